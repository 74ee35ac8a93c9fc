//! The allocation profile on request threads (tests/targets/alloc_threads.py): four threads
//! switching the GIL, each request parsing (churn, long) then remembering a session (the leak,
//! short). Issue 16 asks for >= 90% of the weight under `remember` and its leaking line in the
//! collapsed output, on every GIL interpreter.
//!
//! Exact mode (`threads_growth_is_exact_when_the_target_traces`): the target traces its own
//! allocations (`tracemalloc.start(16)`, as a service started with PYTHONTRACEMALLOC=16 does),
//! and the profile is the growth of its traces per traceback, read from outside at the start
//! and the end: exact whatever the threads and the leaker's length. Checked on every
//! interpreter whose tracemalloc tables are found (not the stripped system 3.11).
//!
//! Sampled mode is ignored: not met. Measured at the end of session 5: 0.0-0.2% under
//! `remember` on every GIL interpreter, 83-93% on `parse`'s comprehension line: a sampler sees
//! the stack at its ticks, and a function this much shorter than the tick (`remember`, a few
//! microseconds of each request) is almost never on it; the objects a tick finds were made by
//! whichever threads ran since the last tick. Run with `cargo test --release --test
//! alloc_threads -- --ignored --nocapture` to see the figures.

mod common;

use common::{Interp, Target};

const MIN_SHARE: f64 = 0.90;
const SECONDS: &str = "10";

/// (total weight, weight under `leaker`, whether a frame names `file:line`).
/// The tests that run a four-thread server take turns: each measures a CPU-bound program and
/// the tool on a two-core machine, and two at once made each other's start-up outlast the
/// recording's baseline.
static ONE_SERVER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_server_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_SERVER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn shares(folded: &str, leaker: &str, line_frame: &str) -> (u64, u64, bool) {
    let mut total = 0;
    let mut under = 0;
    let mut line_seen = false;
    for l in folded.lines() {
        let Some((stack, w)) = l.rsplit_once(' ') else {
            continue;
        };
        let w: u64 = w.parse().unwrap_or(0);
        total += w;
        let funcs: Vec<&str> = stack
            .split(';')
            .map(|f| f.split(" (").next().unwrap_or(f))
            .collect();
        if funcs.contains(&leaker) {
            under += w;
        }
        line_seen |= stack.contains(line_frame);
    }
    (total, under, line_seen)
}

fn run(interp: &Interp, failures: &mut Vec<String>, args: &[&str]) -> Vec<String> {
    let label = &interp.label;
    let mut row = vec![label.clone()];
    let target = match Target::spawn(interp, "alloc_threads.py", args) {
        Ok(t) => t,
        Err(e) => {
            failures.push(format!("[{label}] target did not start: {e}"));
            row.push("FAIL (target)".into());
            return row;
        }
    };
    row.push(target.truth_version());
    let _ = std::fs::write(target.scratch().join("truth.json.go"), "");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let folded = target.scratch().join("out.folded");
    let pid = target.pid_arg();
    let mut argv = vec![
        "alloc-profile",
        "--pid",
        &pid,
        "--duration",
        SECONDS,
        "-o",
        folded.to_str().expect("utf-8 path"),
    ];
    if args.contains(&"--tracemalloc") {
        // Exact needs a still picture of tables the target rewrites thousands of times a
        // second: stopped for the two reads (without it, churn reads as growth, and says so).
        argv.push("--pause");
    }
    let out = common::run_tool(&argv);
    if !out.status.success() || out.timed_out {
        failures.push(format!("[{label}] tool failed: {}", out.describe()));
        row.push("FAIL (tool)".into());
        return row;
    }
    let exact = out
        .stderr
        .contains("exact: read from the target's own tracemalloc");
    if args.contains(&"--tracemalloc") && !exact {
        failures.push(format!(
            "[{label}] the target traces, but the profile was not read from its traces: {}",
            out.stderr.trim()
        ));
    }
    let text = std::fs::read_to_string(&folded).unwrap_or_default();
    let leaker = target.truth["leaker"].as_str().unwrap_or("remember");
    let line = target.truth["leak_line"].as_u64().unwrap_or(0);
    let file = target.truth["file"].as_str().unwrap_or("");
    // Frames show the file relative to the target's sys.path, as py-spy does: the script's
    // directory is sys.path[0], so the leaking frame reads `remember (alloc_threads.py:43)`
    // (with the parenthesis: a whole path, ` (/…/alloc_threads.py:43)`, does not match).
    let name = std::path::Path::new(file)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?");
    let (total, under, line_seen) = shares(&text, leaker, &format!(" ({name}:{line})"));
    let share = if total > 0 {
        under as f64 / total as f64
    } else {
        0.0
    };
    row.push(format!("{:.1}%", 100.0 * share));
    row.push(if line_seen { "yes" } else { "no" }.into());
    if share < MIN_SHARE {
        let mut heaviest: Vec<(u64, &str)> = text
            .lines()
            .filter_map(|l| {
                let (stack, w) = l.rsplit_once(' ')?;
                Some((w.parse().ok()?, stack.rsplit(';').next()?))
            })
            .collect();
        heaviest.sort_unstable_by(|a, b| b.cmp(a));
        heaviest.truncate(3);
        failures.push(format!(
            "[{label}] {:.1}% of the weight under {leaker} (want >= {:.0}%); heaviest leaves: \
             {heaviest:?}; {}",
            100.0 * share,
            100.0 * MIN_SHARE,
            out.stderr.lines().next().unwrap_or("")
        ));
    }
    if !line_seen {
        failures.push(format!(
            "[{label}] the leaking line {line} is not in the profile"
        ));
    }
    row
}

#[test]
#[ignore = "issue 16: the 4-thread shape is not met yet (thin or empty profile)"]
fn threads_growth_is_charged_to_the_leaker() {
    let _turn = one_server_at_a_time();
    common::over_matrix(
        common::spread_interpreters(),
        "threads_growth_is_charged_to_the_leaker",
        "threads_growth_is_charged_to_the_leaker",
        &["label", "version", "share", "leak line"],
        |interp, table, failures| {
            if interp.is_free_threaded() {
                common::unsupported(&interp.label, "free-threaded build (no GC lists)");
                return Ok(());
            }
            table.row(run(interp, failures, &[]));
            Ok(())
        },
    );
}

#[test]
fn threads_growth_is_exact_when_the_target_traces() {
    let _turn = one_server_at_a_time();
    common::over_matrix(
        common::spread_interpreters(),
        "threads_growth_is_exact_when_the_target_traces",
        "threads_growth_is_exact_when_the_target_traces",
        &["label", "version", "share", "leak line"],
        |interp, table, failures| {
            table.row(run(interp, failures, &["--tracemalloc", "16"]));
            Ok(())
        },
    );
}

#[test]
fn folded_shares_group_by_function_and_find_the_line() {
    let (t, u, seen) = shares(
        "serve (a.py:5);handle (a.py:9);remember (a.py:43) 300\n\
         serve (a.py:5);handle (a.py:8);parse (a.py:30) 100\n",
        "remember",
        "a.py:43)",
    );
    assert_eq!((t, u, seen), (400, 300, true));
}

/// `record --tracemalloc 16 -- python alloc_threads.py`: the program is started tracing, the
/// recording waits for tracemalloc to begin, reads its tables with the program stopped, and
/// shows the start-up's imports apart (under `[imports]`): >= 90% of the rest under `remember`.
#[test]
fn spawned_with_tracemalloc_is_exact_and_startup_is_apart() {
    let _turn = one_server_at_a_time();
    common::over_matrix(
        common::spread_interpreters(),
        "spawned_with_tracemalloc_is_exact_and_startup_is_apart",
        "spawned_with_tracemalloc_is_exact_and_startup_is_apart",
        &["label", "share", "imports", "leak line", "attempts"],
        |interp, table, failures| {
            let label = interp.label.clone();
            // The attribution depends on when the program's start-up ends against the
            // recording's baseline: on a loaded machine one run can miss it. A miss is printed
            // the moment it is seen and measured once more on a fresh start; both attempts are
            // in the output, and only a second miss fails.
            let mut run = spawned_run(interp)?;
            let mut attempts = 1;
            if !run.passes() {
                println!(
                    "[{label}] first attempt: {:.1}% under remember, leak line {}: measuring again",
                    100.0 * run.share,
                    if run.line_seen { "seen" } else { "missing" }
                );
                attempts = 2;
                run = spawned_run(interp)?;
            }
            if run.failed_record.is_some() {
                failures.push(format!(
                    "[{label}] record failed: {}",
                    run.failed_record.unwrap_or_default()
                ));
                table.row(vec![
                    label,
                    "FAIL".into(),
                    String::new(),
                    String::new(),
                    attempts.to_string(),
                ]);
                return Ok(());
            }
            table.row(vec![
                label.clone(),
                format!("{:.1}%", 100.0 * run.share),
                format!("{:.1}%", 100.0 * run.imports),
                if run.line_seen { "yes" } else { "no" }.into(),
                attempts.to_string(),
            ]);
            if run.share < MIN_SHARE {
                failures.push(format!(
                    "[{label}] {:.1}% of the program's growth under remember (want >= 90%)",
                    100.0 * run.share
                ));
            }
            if !run.line_seen {
                failures.push(format!(
                    "[{label}] the leaking line {} is not in the profile",
                    run.line
                ));
            }
            Ok(())
        },
    );
}

/// One `record --tracemalloc 16 -- python alloc_threads.py` run, as the test judges it.
#[derive(Default)]
struct SpawnedRun {
    /// Of the growth outside the start-up, the share under `remember`.
    share: f64,
    /// The start-up's share of everything.
    imports: f64,
    line_seen: bool,
    line: u64,
    /// The tool failed: how.
    failed_record: Option<String>,
}

impl SpawnedRun {
    fn passes(&self) -> bool {
        self.failed_record.is_none() && self.share >= MIN_SHARE && self.line_seen
    }
}

fn spawned_run(interp: &Interp) -> Result<SpawnedRun, String> {
    let dir = common::ScratchDir::new("spawn-exact");
    let truth = dir.path().join("truth.json");
    let folded = dir.path().join("out.collapsed");
    let script = common::target_script("alloc_threads.py");
    let mut argv: Vec<String> = [
        "record",
        // Whole paths here (the alloc-profile runs check the short form): the frame must
        // name exactly the file the truth gives.
        "--full-filenames",
        "--tracemalloc",
        "16",
        "--duration",
        "12",
        "-o",
        folded.to_str().expect("utf-8 path"),
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(interp.argv_prefix.iter().cloned());
    argv.extend([
        script.display().to_string(),
        truth.display().to_string(),
        "--no-wait".into(),
        "--seconds".into(),
        "60".into(),
    ]);
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let gil = std::ffi::OsString::from("0");
    let cache = tempfile::tempdir().expect("temporary cache directory");
    let mut env = vec![("XDG_CACHE_HOME", cache.path().as_os_str())];
    if interp.is_free_threaded() {
        env.push(("PYTHON_GIL", gil.as_os_str()));
    }
    let out = common::run_tool_env(&args, &env);
    if !out.status.success() || out.timed_out {
        return Ok(SpawnedRun {
            failed_record: Some(out.describe()),
            ..SpawnedRun::default()
        });
    }
    let text = std::fs::read_to_string(&folded).unwrap_or_default();
    let truth: serde_json::Value = std::fs::read_to_string(&truth)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let line = truth["leak_line"].as_u64().unwrap_or(0);
    let file = truth["file"].as_str().unwrap_or("?");
    // The start-up apart: its share is reported, the leaker's is of the rest.
    let (imports, rest): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.starts_with("[imports];"));
    let weight = |ls: &[&str]| -> u64 {
        ls.iter()
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
            .sum()
    };
    let (total, under, line_seen) =
        shares(&rest.join("\n"), "remember", &format!(" ({file}:{line})"));
    let all = weight(&imports) + total;
    Ok(SpawnedRun {
        share: under as f64 / total.max(1) as f64,
        imports: weight(&imports) as f64 / all.max(1) as f64,
        line_seen,
        line,
        failed_record: None,
    })
}
