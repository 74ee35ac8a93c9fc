//! The allocation profile on request threads (tests/targets/alloc_threads.py): four threads
//! switching the GIL, each request parsing (churn, long) then remembering a session (the leak,
//! short). Issue 16 asks for >= 90% of the weight under `remember` and its leaking line in the
//! collapsed output, on every GIL interpreter.
//!
//! Ignored: not met yet. Measured at the end of session 5: 0.0-0.2% under `remember` on every
//! GIL interpreter, 83-93% on `parse`'s comprehension line: with four threads the objects a
//! tick finds were made by whichever threads ran since the last tick, and the churn's ints and
//! dicts, made again identical at the same addresses by the next request, pass the final
//! liveness check. Run with `cargo test --release --test alloc_threads -- --ignored
//! --nocapture` to see the figures.

mod common;

use common::{Interp, Table, Target};

const MIN_SHARE: f64 = 0.90;
const SECONDS: &str = "10";

/// (total weight, weight under `leaker`, whether a frame names `file:line`).
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

fn run(interp: &Interp, failures: &mut Vec<String>) -> Vec<String> {
    let label = &interp.label;
    let mut row = vec![label.clone()];
    let target = match Target::spawn(interp, "alloc_threads.py", &[]) {
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
    let out = common::run_tool(&[
        "alloc-profile",
        "--pid",
        &target.pid_arg(),
        "--duration",
        SECONDS,
        "-o",
        folded.to_str().expect("utf-8 path"),
    ]);
    if !out.status.success() || out.timed_out {
        failures.push(format!("[{label}] tool failed: {}", out.describe()));
        row.push("FAIL (tool)".into());
        return row;
    }
    let text = std::fs::read_to_string(&folded).unwrap_or_default();
    let leaker = target.truth["leaker"].as_str().unwrap_or("remember");
    let line = target.truth["leak_line"].as_u64().unwrap_or(0);
    let file = target.truth["file"].as_str().unwrap_or("");
    let (total, under, line_seen) = shares(&text, leaker, &format!("{file}:{line})"));
    let share = if total > 0 {
        under as f64 / total as f64
    } else {
        0.0
    };
    row.push(format!("{:.1}%", 100.0 * share));
    row.push(if line_seen { "yes" } else { "no" }.into());
    if share < MIN_SHARE {
        failures.push(format!(
            "[{label}] {:.1}% of the weight under {leaker} (want >= {:.0}%)",
            100.0 * share,
            100.0 * MIN_SHARE
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
    let mut table = Table::new(&["label", "version", "share", "leak line"]);
    let mut failures = Vec::new();
    for interp in common::interpreters() {
        if interp.is_free_threaded() {
            println!(
                "note [{}] skipped: free-threaded build (no GC lists)",
                interp.label
            );
            continue;
        }
        table.row(run(&interp, &mut failures));
    }
    table.print("threads_growth_is_charged_to_the_leaker");
    common::assert_no_failures("threads_growth_is_charged_to_the_leaker", &failures);
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
