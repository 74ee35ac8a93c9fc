//! The pprof files pymemspy writes must open in the reference reader, `go tool pprof`.
//! Needs Go (Debian: `apt-get install golang-go`); without it the test fails in CI (env CI set)
//! and prints a note elsewhere.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

/// Folded stacks in pymemspy's frame convention, with Python's angle-bracket names that
/// pprof's C++ name simplifier would otherwise mangle, and a retention-style path.
const FOLDED: &str = "\
<module> (app.py:40);serve (app.py:88);load_users (app/db.py:7) 4194304
<module> (app.py:40);serve (app.py:88);render_page (app/views.py:30) 1048576
<module> (app.py:40);<lambda> (app.py:5) 524288
__main__.app_cache;dict;list 65536
";

fn go_available() -> bool {
    Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn go_tool_pprof_reads_our_pprof() {
    if !go_available() {
        common::skip(
            "`go` not found: pprof file not checked with go tool pprof (apt-get install golang-go)",
        );
        return;
    }
    let dir = common::ScratchDir::new("pprof-go");
    let input = dir.path().join("stacks.folded");
    let output = dir.path().join("profile.pb.gz");
    fs::write(&input, FOLDED).unwrap();
    let run = common::run_tool(&[
        "render",
        "--input",
        input.to_str().unwrap(),
        "--format",
        "pprof",
        "--title",
        "Heap growth by allocating stack",
        "-o",
        output.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "render failed: {}", run.describe());

    for (args, expected) in [
        (
            &["-top"][..],
            &[
                "inuse_space",
                "Heap growth by allocating stack",
                "load_users",
                "render_page",
                "serve",
                "<module>",
                "<lambda>",
                "__main__.app_cache",
                "dict",
                "list",
            ][..],
        ),
        (
            &["-top", "-lines"][..],
            &["app/db.py:7", "app/views.py:30", "app.py:40"][..],
        ),
    ] {
        let mut cmd = Command::new("go");
        cmd.args(["tool", "pprof"]).args(args).arg(&output);
        let run = common::run_with_timeout(cmd, Duration::from_secs(120));
        assert!(
            run.status.success(),
            "go tool pprof {args:?} failed: {}",
            run.describe()
        );
        for name in expected {
            assert!(
                run.stdout.contains(name),
                "go tool pprof {args:?} does not list {name:?}:\n{}",
                run.stdout
            );
        }
        assert!(
            !run.stdout.contains("<unknown>"),
            "a frame lost its name:\n{}",
            run.stdout
        );
    }
}
