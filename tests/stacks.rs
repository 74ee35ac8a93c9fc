//! `pymemspy dump` against stacks the target wrote down itself
//! (tests/targets/thread_stacks.py): every thread's frames, innermost first, with their names,
//! files and first lines, the line each frame executes (the blocking call of a parked thread:
//! `Event.wait`, `time.sleep`), the GIL marked on the thread spinning in Python, each thread's
//! threading name and whether it runs or waits (two named threads deadlocked on two locks).
//!
//! Run with `cargo test --release --test stacks -- --nocapture` to see the table.

mod common;

use common::Target;
use serde_json::Value;

const SCHEMA: &str = "pymemspy.dump/1";

/// (name, file, firstlineno) of one frame: the function's identity.
type Frame = (String, String, u64);

/// Frames and, per frame, the lines it may be executing (the truth lists them; the tool's
/// dump gives one).
fn frames(v: &Value) -> Result<(Vec<Frame>, Vec<Vec<u64>>), String> {
    let mut funcs = Vec::new();
    let mut lines = Vec::new();
    for f in v
        .as_array()
        .ok_or_else(|| format!("frames is not an array: {v}"))?
    {
        let get = |key: &str| f.get(key).cloned().unwrap_or(Value::Null);
        let (n, fi, first, line) = if f.is_array() {
            (f[0].clone(), f[1].clone(), f[2].clone(), f[3].clone())
        } else {
            (get("name"), get("file"), get("first_line"), get("line"))
        };
        let line: Vec<u64> = match &line {
            Value::Array(a) => a.iter().filter_map(Value::as_u64).collect(),
            v => v.as_u64().into_iter().collect(),
        };
        match (n.as_str(), fi.as_str(), first.as_u64()) {
            (Some(n), Some(fi), Some(l)) if !line.is_empty() => {
                funcs.push((n.to_string(), fi.to_string(), l));
                lines.push(line);
            }
            _ => return Err(format!("malformed frame {f}")),
        }
    }
    Ok((funcs, lines))
}

/// Compare one dump with the truth; returns (failures, threads matched). `gil`: the build has a
/// GIL (a free-threaded one has none, so no thread holds it).
fn compare(truth: &Value, dump: &Value, pid: u32, gil: bool) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    if dump["schema"] != SCHEMA {
        failures.push(format!("schema {} != {SCHEMA:?}", dump["schema"]));
    }
    if dump["pid"].as_u64() != Some(u64::from(pid)) {
        failures.push(format!("pid {} != {pid}", dump["pid"]));
    }
    let Some(threads) = dump["threads"].as_array() else {
        failures.push("no threads array".into());
        return (failures, 0);
    };
    let mut matched = 0;
    let truth_threads = truth["threads"].as_object().expect("truth threads");
    for (label, want) in truth_threads {
        let ident = want["ident"].as_u64().expect("truth ident");
        let Some(got) = threads
            .iter()
            .find(|t| t["thread_id"].as_u64() == Some(ident))
        else {
            failures.push(format!("{label}: no thread with id {ident:#x} in the dump"));
            continue;
        };
        if let Some(native) = got["native_thread_id"].as_u64() {
            if Some(native) != want["native_id"].as_u64() {
                failures.push(format!(
                    "{label}: native id {native}, truth {}",
                    want["native_id"]
                ));
            }
        }
        let (want_frames, want_lines) = frames(&want["frames"]).expect("truth frames");
        match frames(&got["frames"]) {
            Ok((got_frames, _)) if got_frames != want_frames => failures.push(format!(
                "{label}: frames differ\n  truth: {want_frames:?}\n  tool:  {got_frames:?}"
            )),
            Ok((_, got_lines)) => {
                // The current line of every frame: a parked thread's blocking call included.
                let bad: Vec<String> = want_frames
                    .iter()
                    .zip(want_lines.iter().zip(&got_lines))
                    .filter(|(_, (want, got))| !want.contains(&got[0]))
                    .map(|(f, (want, got))| format!("{} at line {} not {want:?}", f.0, got[0]))
                    .collect();
                if bad.is_empty() {
                    matched += 1;
                } else {
                    failures.push(format!("{label}: lines differ: {}", bad.join("; ")));
                }
            }
            Err(e) => failures.push(format!("{label}: {e}")),
        }
        // Each frame's label: the file relative to the target's sys.path (py-spy's form), the
        // whole path kept in `file`. The script's own frames: sys.path[0] is its directory, so
        // the file's name; library frames: a path relative to some entry, never absolute.
        for f in got["frames"].as_array().into_iter().flatten() {
            let (name, file, line) = (
                f["name"].as_str().unwrap_or("?"),
                f["file"].as_str().unwrap_or("?"),
                f["line"].as_u64().unwrap_or(0),
            );
            let text = f["label"].as_str().unwrap_or("?");
            let ok = if file.ends_with("/thread_stacks.py") {
                text == format!("{name} (thread_stacks.py:{line})")
            } else {
                let shown = text
                    .strip_prefix(&format!("{name} ("))
                    .and_then(|l| l.strip_suffix(&format!(":{line})")));
                shown.is_some_and(|s| file.ends_with(&format!("/{s}")) && !s.starts_with('/'))
            };
            if !ok {
                failures.push(format!("{label}: frame label {text:?} for {file}"));
            }
        }
        // The program's names for its threads, as `why` gives them.
        if got["threading_name"] != want["name"] {
            failures.push(format!(
                "{label}: threading name {}, truth {}",
                got["threading_name"], want["name"]
            ));
        }
        // Idle or active, as the kernel says: waiting on a lock is a futex, the spinner runs.
        let os = &got["os_state"];
        let ok = match want["waits"].as_str() {
            Some("running") => os["active"] == true,
            Some("lock") => os["active"] == false && os["syscall"] == "futex",
            _ => os["active"] == false,
        };
        if !ok {
            failures.push(format!(
                "{label}: os_state {os}, truth waits {}",
                want["waits"]
            ));
        }
        // Only the spinner runs Python; the others wait with the GIL released. Without a GIL,
        // none holds it.
        let holds = got["holds_gil"].as_bool() == Some(true);
        if holds != (gil && label == "spinner") {
            failures.push(format!("{label}: holds_gil = {holds}"));
        }
    }
    (failures, matched)
}

#[test]
fn dump_shows_every_threads_stack() {
    common::over_matrix(
        common::interpreters(),
        "dump_shows_every_threads_stack",
        "dump_shows_every_threads_stack",
        &["label", "version", "threads matched", "tool time", "result"],
        |interp, table, failures| {
            let label = interp.label.clone();
            let gil = !interp.is_free_threaded();
            let target = match Target::spawn(interp, "thread_stacks.py", &[]) {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!("[{label}] target did not start: {e}"));
                    table.row(vec![
                        label,
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "FAIL".into(),
                    ]);
                    return Ok(());
                }
            };
            let run = common::run_tool(&["dump", "--pid", &target.pid_arg(), "--format", "json"]);
            let mut row = vec![label.clone(), target.truth_version()];
            let outcome = if !run.status.success() || run.timed_out {
                Err(format!("tool failed: {}", run.describe()))
            } else {
                serde_json::from_str::<Value>(run.stdout.trim())
                    .map_err(|e| format!("output is not JSON ({e}): {:.300}", run.stdout))
            };
            match outcome {
                Ok(dump) => {
                    let (fails, matched) = compare(&target.truth, &dump, target.pid, gil);
                    let n = target.truth["threads"].as_object().map_or(0, |t| t.len());
                    row.push(format!("{matched}/{n}"));
                    row.push(format!("{:.2}s", run.elapsed.as_secs_f64()));
                    row.push(if fails.is_empty() { "ok" } else { "FAIL" }.into());
                    failures.extend(fails.into_iter().map(|f| format!("[{label}] {f}")));
                }
                Err(e) => {
                    row.extend(["-".into(), "-".into(), "FAIL".into()]);
                    failures.push(format!("[{label}] {e}"));
                }
            }
            table.row(row);
            // The text form names the same functions (and the GIL's holder, where there is one).
            let text = common::run_tool(&["dump", "--pid", &target.pid_arg()]);
            let spinner = if gil {
                "\"spinner\" [holds the GIL] [active]"
            } else {
                "\"spinner\" [active]"
            };
            for func in [
                "main_leaf",
                "worker_leaf",
                "spin_leaf",
                "\"MainThread\"",
                "\"deadlock-a\" [idle: waiting on a lock or condition (futex)",
                spinner,
            ] {
                if !text.stdout.contains(func) {
                    failures.push(format!("[{label}] text dump lacks {func:?}"));
                }
            }
            if text.stdout.contains("holds the GIL") != gil {
                failures.push(format!(
                    "[{label}] text dump says \"holds the GIL\": {}, the build has a GIL: {gil}",
                    !gil
                ));
            }
            Ok(())
        },
    );
}
