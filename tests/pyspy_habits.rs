//! A py-spy user's habits, driven through the CLI as such a user types them: the program
//! without `--`, `-s`, `--nonblocking`, `-f flamegraph` / `-f raw`, `dump --json`,
//! `top --delay`, hex pids, `-i`; clap's whole error; one exit status per kind of error; "did you
//! mean" in `why`; `--pause` on a process stopped already.

mod common;

use common::{Interp, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn interp() -> Interp {
    common::interpreters()
        .into_iter()
        .find(|i| !i.is_free_threaded())
        .expect("an interpreter with a GIL")
}

fn check(failures: &mut Vec<String>, what: &str, ok: bool, run: &common::Run) {
    if !ok {
        failures.push(format!("{what}: {}", run.describe()));
    }
}

#[test]
fn a_py_spy_users_commands_work() {
    let interp = interp();
    let dir = common::ScratchDir::new("habits");
    let out = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let mut failures = Vec::new();

    // The program straight after the options, no `--`; its own options stay its own.
    let svg = out("spawned.svg");
    let mut argv = vec!["record", "-o", &svg, "-d", "2", "-r", "50"];
    argv.extend(interp.argv_prefix.iter().map(String::as_str));
    let script = common::target_script("known_heap.py");
    let truth = out("truth.json");
    argv.extend([script.to_str().unwrap(), truth.as_str()]);
    let run = common::run_tool(&argv);
    check(
        &mut failures,
        "record -o x.svg PROGRAM",
        run.status.success() && std::fs::metadata(&svg).is_ok_and(|m| m.len() > 0),
        &run,
    );

    let target = Target::spawn(&interp, "known_heap.py", &[]).expect("target");
    let pid = target.pid_arg();
    let hex = format!("{:#x}", target.pid);

    let flame = out("nb.svg");
    let run = common::run_tool(&[
        "record",
        "--pid",
        &hex,
        "-d",
        "1",
        "--nonblocking",
        "-i",
        "-f",
        "flamegraph",
        "-o",
        &flame,
    ]);
    check(
        &mut failures,
        "record --pid 0xHEX --nonblocking -i -f flamegraph",
        run.status.success() && std::fs::read_to_string(&flame).is_ok_and(|s| s.contains("<svg")),
        &run,
    );
    let raw = out("raw.txt");
    let run = common::run_tool(&["record", "-p", &pid, "-d", "1", "-f", "raw", "-o", &raw]);
    check(
        &mut failures,
        "record -f raw",
        run.status.success()
            && !std::fs::read_to_string(&raw)
                .unwrap_or_default()
                .contains("<svg"),
        &run,
    );
    let tree = out("tree.json");
    let run = common::run_tool(&["record", "-s", "-p", &pid, "-d", "1", "-o", &tree]);
    check(
        &mut failures,
        "record -s",
        run.status.success()
            && std::fs::read_to_string(&tree).is_ok_and(|s| s.contains("pymemspy.record-tree/1")),
        &run,
    );
    let run = common::run_tool(&["dump", "--pid", &pid, "--json"]);
    check(
        &mut failures,
        "dump --json",
        run.status.success() && serde_json::from_str::<serde_json::Value>(&run.stdout).is_ok(),
        &run,
    );
    // `--delay` is `--interval`: a bad value is refused by our own check, not by clap.
    let run = common::run_tool(&["top", "--pid", &pid, "--delay", "0"]);
    check(
        &mut failures,
        "top --delay 0",
        run.status.code() == Some(2) && run.stderr.contains("--interval must be"),
        &run,
    );
    let run = common::run_tool(&["snapshot", "--pid", &hex, "-f", "raw", "-o", &out("r.txt")]);
    check(
        &mut failures,
        "snapshot --pid 0xHEX -f raw",
        run.status.success(),
        &run,
    );

    // why: a bare class name suggests the qualified one.
    let run = common::run_tool(&["why", "--pid", &pid, "--type", "Leaf"]);
    check(
        &mut failures,
        "why --type Leaf",
        run.status.success() && run.stdout.contains("did you mean: __main__.Leaf"),
        &run,
    );

    // --pause on a process that is stopped already reads it as it is.
    kill(Pid::from_raw(target.pid as i32), Signal::SIGSTOP).expect("SIGSTOP");
    let run = common::run_tool(&["snapshot", "--pid", &pid, "--pause", "--top", "3"]);
    let _ = kill(Pid::from_raw(target.pid as i32), Signal::SIGCONT);
    check(
        &mut failures,
        "snapshot --pause on a stopped process",
        run.status.success() && run.stdout.contains("objects"),
        &run,
    );
    drop(target);
    common::assert_no_failures("py-spy habits", &failures);
}

#[test]
fn errors_have_clap_detail_and_one_status_per_kind() {
    let mut failures = Vec::new();
    // clap's whole message: the valid values and the usage, exit 2.
    let run = common::run_tool(&["record", "--pid", "1", "--format", "bogus"]);
    check(
        &mut failures,
        "bad --format",
        run.status.code() == Some(2) && run.stderr.contains("possible values"),
        &run,
    );
    let run = common::run_tool(&["snapshot", "--pid", "1", "--formt", "json"]);
    check(
        &mut failures,
        "misspelt flag",
        run.status.code() == Some(2) && run.stderr.contains("similar"),
        &run,
    );
    // A missing output directory: the same status and words in every command.
    for cmd in ["snapshot", "record", "why"] {
        let mut args = vec![cmd, "--pid", "1", "-o", "/nonexistent-dir/x.out"];
        if cmd == "why" {
            args.extend(["--type", "dict"]);
        }
        let run = common::run_tool(&args);
        check(
            &mut failures,
            &format!("{cmd} -o /nonexistent-dir/x.out"),
            run.status.code() == Some(2)
                && run.stderr.trim() == "pymemspy: -o /nonexistent-dir/x.out: directory /nonexistent-dir does not exist",
            &run,
        );
    }
    let run = common::run_tool(&["snapshot", "--pid", "999999999"]);
    check(
        &mut failures,
        "no such pid",
        run.status.code() == Some(3),
        &run,
    );
    let sleeper = common::KillOnDrop::spawn("sleep", &["30"]);
    let run = common::run_tool(&["snapshot", "--pid", &sleeper.pid().to_string()]);
    check(
        &mut failures,
        "not Python",
        run.status.code() == Some(5),
        &run,
    );
    let run = common::run_tool(&["--help"]);
    check(
        &mut failures,
        "--help lists manpage and exit statuses",
        run.status.success()
            && run.stdout.contains("manpage")
            && run.stdout.contains("Exit status"),
        &run,
    );
    common::assert_no_failures("errors", &failures);
}

/// Every subcommand's help: no run of spaces inside a sentence (a string continuation that
/// kept its indentation), and every target flag it lists is used there: `--heap FILE` and
/// `--core FILE` are read (the error names the file), never ignored for "no process with pid 0".
#[test]
fn every_help_text_reads_cleanly_and_lists_only_flags_that_work() {
    let mut failures = Vec::new();
    let commands = [
        "snapshot",
        "record",
        "top",
        "diff",
        "why",
        "dump",
        "completions",
        "manpage",
        "layout",
        "render",
        "alloc-profile",
    ];
    let top = common::run_tool(&["--help"]);
    check(
        &mut failures,
        "--help names the heap dump",
        top.stdout.contains("--format heap"),
        &top,
    );
    let mut texts = vec![("pymemspy --help".to_string(), top.stdout.clone())];
    for cmd in commands {
        let run = common::run_tool(&[cmd, "--help"]);
        check(
            &mut failures,
            &format!("{cmd} --help"),
            run.status.success(),
            &run,
        );
        texts.push((format!("{cmd} --help"), run.stdout.clone()));
        for (flag, needs) in [("--heap", "dump.heap"), ("--core", "dump.core")] {
            if !run.stdout.contains(&format!("{flag} <")) {
                continue;
            }
            let file = format!("/nonexistent-dir/{needs}");
            let mut args = vec![cmd, flag, &file];
            if cmd == "why" {
                args.extend(["--type", "dict"]);
            }
            let used = common::run_tool(&args);
            check(
                &mut failures,
                &format!("{cmd} lists {flag} and reads it"),
                !used.status.success()
                    && used.stderr.contains("nonexistent-dir")
                    && !used.stderr.contains("pid 0"),
                &used,
            );
        }
    }
    // A hidden flag is refused with a reason, not ignored.
    let run = common::run_tool(&["dump", "--heap", "/nonexistent-dir/x.heap"]);
    check(
        &mut failures,
        "dump --heap refused",
        run.status.code() == Some(2) && run.stderr.contains("not a heap dump"),
        &run,
    );
    // A listed flag where it can do nothing is refused, not ignored.
    let run = common::run_tool(&["snapshot", "--pid", "1", "--full-filenames"]);
    check(
        &mut failures,
        "snapshot --full-filenames on the census table refused",
        run.status.code() == Some(2) && run.stderr.contains("where frames are shown"),
        &run,
    );
    for (what, text) in &texts {
        let mut in_commands = false;
        for line in text.lines() {
            if line.ends_with(':') && !line.starts_with(' ') {
                in_commands = line == "Commands:";
            }
            let body = line.trim_start();
            // Commands, flags, arguments and possible values are padded into a column: the
            // first gap after them is layout.
            let column = in_commands || body.starts_with(['-', '<', '[']);
            let body = match (column, body.split_once("  ")) {
                (true, Some((_, rest))) => rest.trim_start(),
                _ => body,
            };
            if body.contains("  ") {
                failures.push(format!("{what}: run of spaces in {line:?}"));
            }
        }
    }
    common::assert_no_failures("help texts", &failures);
}

/// Every message pymemspy can print is a string literal in its source: none holds a run of
/// spaces between words (a `\` continuation whose next line's indentation was kept, or a
/// joined line), and no continuation glues two words together.
#[test]
fn no_message_in_the_source_has_runs_of_spaces() {
    // Column layouts where the gap is meant.
    let allowed = [
        "b bytes  g growth  c count  s suspects  p pause  q quit",
        "pymemspy top  pid {}  Python {}  every {}s{state}",
    ];
    let mut failures = Vec::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source readable");
            for (i, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for lit in literals(line) {
                    let words_gap = lit.as_bytes().windows(4).enumerate().any(|(j, w)| {
                        // After `\n` the indentation is meant.
                        let escaped = j > 0 && lit.as_bytes()[j - 1] == b'\\';
                        !escaped
                            && (w[0].is_ascii_alphabetic() || b",.;:)".contains(&w[0]))
                            && w[1] == b' '
                            && w[2] == b' '
                            && lit[j + 2..]
                                .trim_start()
                                .starts_with(|c: char| c.is_ascii_alphabetic() || c == '(')
                    });
                    if words_gap && !allowed.iter().any(|a| lit.contains(a)) {
                        failures.push(format!("{}:{}: {lit:?}", path.display(), i + 1));
                    }
                }
                // `word\` then a line starting with a word: "foo\⏎ bar" reads "foobar".
                if let Some(before) = line.strip_suffix('\\') {
                    let next = text.lines().nth(i + 1).unwrap_or("").trim_start();
                    if before.ends_with(|c: char| c.is_ascii_alphabetic())
                        && next.starts_with(|c: char| c.is_ascii_alphabetic())
                        && in_string(line)
                    {
                        failures.push(format!("{}:{}: words glued", path.display(), i + 1));
                    }
                }
            }
        }
    }
    common::assert_no_failures("source messages", &failures);
}

/// The text of the ordinary string literals that start and end on this line.
fn literals(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        match (&mut cur, c) {
            (None, '"') if prev != '\'' && prev != '#' && prev != 'r' => cur = Some(String::new()),
            (None, _) => {}
            (Some(s), '\\') => {
                if let Some(e) = chars.next() {
                    s.push('\\');
                    s.push(e);
                }
            }
            (Some(_), '"') => out.push(cur.take().unwrap_or_default()),
            (Some(s), c) => s.push(c),
        }
        prev = c;
    }
    out
}

/// Does the line end inside a string literal (an odd number of unescaped quotes)?
fn in_string(line: &str) -> bool {
    let mut inside = false;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => inside = !inside,
            _ => {}
        }
    }
    inside
}
