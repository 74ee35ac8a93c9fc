//! `pymemspy render` end to end: folded stacks in, every profile format out, no target needed.

mod common;

use std::fs;

const FOLDED: &str = "\
# a comment line
<module> (app.py:40);handle (app.py:12) 3000
<module> (app.py:40);handle (app.py:12) 1000
<module> (app.py:40);load (db.py:7) 500
not a stack line
";

fn render(format: &str, extra: &[&str]) -> (common::Run, Vec<u8>, common::ScratchDir) {
    let dir = common::ScratchDir::new("render");
    let input = dir.path().join("in.folded");
    let output = dir.path().join("out");
    fs::write(&input, FOLDED).unwrap();
    let mut args = vec![
        "render",
        "--input",
        input.to_str().unwrap(),
        "--format",
        format,
        "-o",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = common::run_tool(&args);
    let bytes = fs::read(&output).unwrap_or_default();
    (run, bytes, dir)
}

#[test]
fn render_writes_every_format_and_reports_skipped_lines() {
    for format in ["svg", "collapsed", "speedscope", "pprof"] {
        let (run, bytes, _dir) = render(format, &["--title", "Growth by stack"]);
        assert!(run.status.success(), "{format}: {}", run.describe());
        assert!(!bytes.is_empty(), "{format}: empty output");
        assert!(
            run.stderr.contains("skipped 1 line") && run.stderr.contains("line 5"),
            "{format}: skipped line not reported: {}",
            run.stderr
        );
    }
}

#[test]
fn collapsed_output_merges_and_sums() {
    let (run, bytes, _dir) = render("collapsed", &[]);
    assert!(run.status.success(), "{}", run.describe());
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(
        text,
        "<module> (app.py:40);handle (app.py:12) 4000\n<module> (app.py:40);load (db.py:7) 500\n"
    );
}

#[test]
fn svg_carries_title_subtitle_and_unit() {
    let (run, bytes, _dir) = render(
        "svg",
        &[
            "--title",
            "Retained by path",
            "--subtitle",
            "bytes kept alive",
            "--unit",
            "objects",
        ],
    );
    assert!(run.status.success(), "{}", run.describe());
    let svg = String::from_utf8(bytes).unwrap();
    for needle in [
        "<svg",
        "Retained by path",
        "bytes kept alive",
        "4,500 objects",
        "handle (app.py:12)",
    ] {
        assert!(svg.contains(needle), "SVG lacks {needle:?}");
    }
}

#[test]
fn unreadable_input_is_one_actionable_line() {
    let run = common::run_tool(&[
        "render",
        "--input",
        "/nonexistent/in.folded",
        "--format",
        "svg",
    ]);
    assert_eq!(run.status.code(), Some(1));
    let err = run.stderr.trim();
    assert!(
        err.starts_with("pymemspy: cannot read /nonexistent/in.folded"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
