//! Reliability: bad input gives one clear line, the target is never modified, no object values
//! leak into any output, output files are written safely.

mod common;

use common::{KillOnDrop, Target};
use std::path::Path;
use std::time::{Duration, Instant};

fn one_line_error(run: &common::Run, what: &str, needles: &[&str]) -> Result<(), String> {
    let err = run.stderr.trim();
    if run.status.success() || run.status.code() == Some(101) {
        return Err(format!(
            "{what}: exit {:?} (want a clean failure)",
            run.status.code()
        ));
    }
    if err.lines().count() != 1 {
        return Err(format!("{what}: stderr is not one line: {err:?}"));
    }
    let lower = err.to_lowercase();
    if !needles.iter().any(|n| lower.contains(n)) {
        return Err(format!("{what}: {err:?} says none of {needles:?}"));
    }
    Ok(())
}

fn first_interpreter() -> common::Interp {
    common::interpreters()
        .into_iter()
        .find(|i| !i.is_free_threaded())
        .expect("an interpreter")
}

#[test]
fn bad_input_gives_one_clear_line() {
    let mut failures = Vec::new();
    // A zombie: our own child that exited and was never waited for.
    let zombie = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let zpid = zombie.id();
    let start = Instant::now();
    while common::process_state(zpid) != Some('Z') && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = common::run_tool(&["snapshot", "--pid", &zpid.to_string()]);
    if let Err(e) = one_line_error(&run, "zombie", &["exited", "not a python"]) {
        failures.push(e);
    }
    // Garbage arguments: clap's whole message (what is wrong on its first line, then the valid
    // values or the usage), exit status 2, no panic.
    for args in [
        vec!["snapshot", "--pid", "abc"],
        vec!["snapshot"],
        vec!["frobnicate"],
        vec!["snapshot", "--pid", "1", "--format", "nonsense"],
        vec!["why", "--pid", "1"],
    ] {
        let run = common::run_tool(&args);
        let first = run.stderr.lines().next().unwrap_or("").to_lowercase();
        let says = ["invalid", "required", "unrecognized", "not provided"]
            .iter()
            .any(|n| first.contains(n));
        if run.status.code() != Some(2) || !first.starts_with("error: ") || !says {
            failures.push(format!("{args:?}: {}", run.describe()));
        }
    }
    // A pid without permission: the tool as `nobody` against a Python process of ours.
    let interp = first_interpreter();
    let target = Target::spawn(&interp, "known_heap.py", &[]).expect("target");
    if nix_is_root() {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            env!("CARGO_BIN_EXE_pymemspy"),
        ])
        .args(["snapshot", "--pid", &target.pid_arg()]);
        let run = common::run_with_timeout(cmd, Duration::from_secs(60));
        if let Err(e) = one_line_error(&run, "unprivileged", &["permission", "sudo"]) {
            failures.push(e);
        }
    } else {
        common::skip("not root: the unprivileged case needs root to drop privileges");
    }
    // A process that exits while being read: every run ends cleanly (success or one line).
    for i in 0..5 {
        let child = KillOnDrop::spawn(
            &interp.argv_prefix[0],
            &[
                &interp.argv_prefix[1..].join(" "),
                "-c",
                "import time\nx=[[i] for i in range(300000)]\ntime.sleep(0.15)",
            ]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<&str>>(),
        );
        std::thread::sleep(Duration::from_millis(60 + 20 * i));
        let run = common::run_tool(&["snapshot", "--pid", &child.pid().to_string()]);
        let clean = run.status.success() || one_line_error(&run, "exiting target", &[""]).is_ok();
        if !clean || run.timed_out {
            failures.push(format!("exiting target, run {i}: {}", run.describe()));
        }
    }
    drop(zombie);
    common::assert_no_failures("bad_input_gives_one_clear_line", &failures);
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn target_is_never_modified_and_no_values_leak() {
    let mut failures = Vec::new();
    for interp in common::interpreters() {
        if interp.is_free_threaded() {
            continue;
        }
        let target = match Target::spawn(&interp, "secret_heap.py", &[]) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("[{}] {e}", interp.label));
                continue;
            }
        };
        let marker = target.truth["marker"].as_str().unwrap_or("?").to_string();
        let pid = target.pid_arg();
        let dir = target.scratch().to_path_buf();
        let out = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let runs = [
            common::run_tool(&["snapshot", "--pid", &pid]),
            common::run_tool(&["snapshot", "--pid", &pid, "--format", "json"]),
            common::run_tool(&[
                "snapshot",
                "--pid",
                &pid,
                "--format",
                "collapsed",
                "-o",
                &out("r.folded"),
            ]),
            common::run_tool(&[
                "snapshot",
                "--pid",
                &pid,
                "--format",
                "svg",
                "-o",
                &out("r.svg"),
            ]),
            common::run_tool(&[
                "why",
                "--pid",
                &pid,
                "--type",
                "str",
                "--dot",
                &out("w.dot"),
            ]),
            common::run_tool(&[
                "why",
                "--pid",
                &pid,
                "--type",
                "__main__.Account",
                "--format",
                "json",
            ]),
            common::run_tool(&["snapshot", "--pid", &pid, "--pause"]),
        ];
        let mut text = String::new();
        for r in &runs {
            if !r.status.success() {
                failures.push(format!("[{}] tool failed: {}", interp.label, r.describe()));
            }
            text.push_str(&r.stdout);
            text.push_str(&r.stderr);
        }
        for f in ["r.folded", "r.svg", "w.dot"] {
            text.push_str(&std::fs::read_to_string(dir.join(f)).unwrap_or_default());
        }
        if text.contains(&marker) {
            failures.push(format!(
                "[{}] an object value appears in the output",
                interp.label
            ));
        }
        // Ask the target to checksum its objects again.
        let _ = std::process::Command::new("kill")
            .args(["-USR1", &pid])
            .status();
        let after = dir.join("truth.json.after");
        let start = Instant::now();
        while !after.exists() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let again: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&after).unwrap_or_default())
                .unwrap_or_default();
        if again["checksum"] != target.truth["checksum"] {
            failures.push(format!(
                "[{}] the target's objects changed while read",
                interp.label
            ));
        }
    }
    // And no write path exists in the source but the one the opt-in live tracing uses
    // (`process/write.rs`, called from `live_tracing/` alone).
    for entry in walk(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))) {
        let src = std::fs::read_to_string(&entry).unwrap_or_default();
        let path = entry.display().to_string();
        if path.ends_with("src/process/write.rs") {
            continue;
        }
        if src.contains("write::data") || src.contains("write::Text") {
            if !path.contains("src/live_tracing/") {
                failures.push(format!("{path} writes to a target outside live_tracing"));
            }
            continue;
        }
        for forbidden in [
            "process_vm_writev",
            "PTRACE_POKE",
            "ptrace::write",
            "/mem\", \"w",
        ] {
            if src.contains(forbidden) {
                failures.push(format!("{} mentions {forbidden}", entry.display()));
            }
        }
    }
    common::assert_no_failures("target_is_never_modified_and_no_values_leak", &failures);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn output_files_are_replaced_atomically_and_owned_by_the_sudo_user() {
    let interp = first_interpreter();
    let target = Target::spawn(&interp, "known_heap.py", &[]).expect("target");
    let dir = target.scratch().to_path_buf();
    // A pre-planted symlink to a file we care about: it must be replaced, not followed.
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "keep me").expect("write victim");
    let link = dir.join("out.json");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pymemspy"));
    cmd.args([
        "snapshot",
        "--pid",
        &target.pid_arg(),
        "--format",
        "json",
        "-o",
    ])
    .arg(&link)
    .env("SUDO_UID", "65534")
    .env("SUDO_GID", "65534")
    // Hermetic: no layout cache from earlier runs.
    .env("PYMEMSPY_NO_CACHE", "1");
    let run = common::run_with_timeout(cmd, Duration::from_secs(120));
    assert!(run.status.success(), "{}", run.describe());
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "keep me",
        "symlink was followed"
    );
    let meta = std::fs::symlink_metadata(&link).expect("output");
    assert!(meta.file_type().is_file(), "output is not a regular file");
    let snap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&link).unwrap()).unwrap();
    assert_eq!(snap["schema"], "pymemspy.snapshot/1");
    if nix_is_root() {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.uid(), 65534, "not owned by SUDO_UID");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pymemspy-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}
