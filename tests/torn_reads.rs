//! Torn reads (issue 7): the tool reads a heap that two threads keep tearing up — allocating,
//! freeing, resizing dicts, making cyclic garbage and calling `gc.collect()` without pause
//! (tests/targets/churn_heap.py) — while a population nobody touches (`Stable`, `StableSlot`)
//! must still be counted exactly.
//!
//! Every run of the tool is bounded in wall time: one killed at the bound is a hang, and a hang,
//! a panic or a failed exit fails the test on that interpreter. Counts may be off now and then
//! (a block read while its page was being reused), but rarely: each stable type must be exact
//! in at least 18 of 20 complete snapshots, and in 90% of a 10-second recording's samples.
//! Run with `cargo test --release --test torn_reads -- --test-threads=2 --nocapture`.

mod common;

use common::{Interp, Run, Target};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

const SCRIPT: &str = "churn_heap.py";
/// Complete snapshots per interpreter, and how many must count each stable type exactly.
const SNAPSHOTS: usize = 20;
const SNAPSHOTS_EXACT: usize = 18;
/// One snapshot takes a second or two on this heap: one still running after this has hung.
const SNAPSHOT_BOUND: Duration = Duration::from_secs(60);
/// GC-only snapshots of the running target per interpreter: fewer, as each walk retries its
/// torn lists (~1 s apiece). Paused ones are cheap and as many as the complete snapshots.
const GC_ONLY_SNAPSHOTS: usize = 10;
/// How long `record` runs, and when it counts as hung.
const RECORD_SECONDS: &str = "10";
const RECORD_BOUND: Duration = Duration::from_secs(90);
/// Share of a recording's samples in which each stable type must be exact.
const RECORD_EXACT_SHARE: f64 = 0.9;

/// Run the tool, killing it after `bound` (a hang).
fn run_bounded(args: &[&str], bound: Duration) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pymemspy"));
    // Hermetic: no layout cache from earlier runs.
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env("PYMEMSPY_NO_CACHE", "1");
    common::run_with_timeout(cmd, bound)
}

/// Why a run is a failure whatever it printed: it hung, panicked or exited non-zero.
fn broken_run(run: &Run, bound: Duration) -> Option<String> {
    if run.timed_out {
        return Some(format!("hung: killed after {bound:?}"));
    }
    if run.stderr.contains("panicked") {
        return Some(format!("panicked: {}", run.stderr.trim()));
    }
    (!run.status.success()).then(|| format!("failed: {}", run.describe()))
}

/// The stable types and their counts, as the target published them.
fn stable_truth(target: &Target) -> BTreeMap<String, u64> {
    target.truth["stable"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn spawn(interp: &Interp, failures: &mut Vec<String>) -> Option<Target> {
    match Target::spawn(interp, SCRIPT, &[]) {
        Ok(t) => Some(t),
        Err(e) => {
            failures.push(format!("[{}] target: {e}", interp.label));
            None
        }
    }
}

/// A quiet heap would pass vacuously: the workers must still be churning when the runs end.
fn check_still_churning(interp: &Interp, target: &Target, failures: &mut Vec<String>) {
    let log = std::fs::read_to_string(&target.log).unwrap_or_default();
    if log.contains("Traceback") || common::process_state(target.pid).is_none_or(|s| s == 'Z') {
        failures.push(format!(
            "[{}] the churning target died or a worker failed; log:\n{}",
            interp.label,
            target.log_tail()
        ));
    }
}

/// A snapshot's count of `name` (0 when absent).
fn snapshot_count(snap: &Value, name: &str) -> u64 {
    snap["types"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["type"] == name))
        .and_then(|t| t["count"].as_u64())
        .unwrap_or(0)
}

/// Per stable type, the counts seen over `n` snapshots; runs that broke go to `failures`.
/// The second value counts, per type, the wrong counts the snapshot did not flag as incomplete.
fn take_snapshots(
    interp: &Interp,
    target: &Target,
    extra: &[&str],
    n: usize,
    failures: &mut Vec<String>,
) -> (BTreeMap<String, Vec<u64>>, BTreeMap<String, usize>) {
    let want = stable_truth(target);
    let pid = target.pid_arg();
    let mut args = vec!["snapshot", "--pid", &pid, "--format", "json"];
    args.extend_from_slice(extra);
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut unflagged: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..n {
        let run = run_bounded(&args, SNAPSHOT_BOUND);
        if let Some(why) = broken_run(&run, SNAPSHOT_BOUND) {
            failures.push(format!("[{}] {extra:?} snapshot {i}: {why}", interp.label));
            continue;
        }
        let snap: Value = match serde_json::from_str(&run.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!(
                    "[{}] {extra:?} snapshot {i}: not JSON ({e})",
                    interp.label
                ));
                continue;
            }
        };
        let complete = snap["coverage"]["complete"] == true;
        for (name, &truth) in &want {
            let count = snapshot_count(&snap, name);
            seen.entry(name.clone()).or_default().push(count);
            if count != truth && complete {
                *unflagged.entry(name.clone()).or_default() += 1;
            }
        }
    }
    (seen, unflagged)
}

fn exact(counts: &[u64], truth: u64) -> usize {
    counts.iter().filter(|&&c| c == truth).count()
}

/// Twenty complete snapshots of the churning heap: no hang, no panic, each stable type exact
/// in at least eighteen. On free-threaded builds this is the mimalloc walk racing the pages'
/// owner threads.
#[test]
fn complete_snapshots_count_stable_types_through_torn_reads() {
    common::over_matrix(
        common::spread_interpreters(),
        "complete_snapshots_count_stable_types_through_torn_reads",
        "complete_snapshots_count_stable_types_through_torn_reads",
        &["label", "type", "truth", "exact", "seen counts"],
        |interp, table, failures| {
            let Some(target) = spawn(interp, failures) else {
                return Ok(());
            };
            let (seen, _) = take_snapshots(interp, &target, &[], SNAPSHOTS, failures);
            check_still_churning(interp, &target, failures);
            for (name, truth) in stable_truth(&target) {
                let counts = seen.get(&name).cloned().unwrap_or_default();
                let hits = exact(&counts, truth);
                if hits < SNAPSHOTS_EXACT {
                    failures.push(format!(
                        "[{}] {name}: exact in {hits}/{SNAPSHOTS} snapshots (want ≥ \
                     {SNAPSHOTS_EXACT}; truth {truth}, tool {counts:?}); target log:\n{}",
                        interp.label,
                        target.log_tail()
                    ));
                }
                let off: Vec<u64> = counts.iter().copied().filter(|&c| c != truth).collect();
                table.row(vec![
                    interp.label.clone(),
                    name,
                    truth.to_string(),
                    format!("{hits}/{SNAPSHOTS}"),
                    format!("off: {off:?}"),
                ]);
            }
            Ok(())
        },
    );
}

/// `--gc-only` snapshots of the same heap. The collector rearranges its lists many times a
/// second, so a list walk of the running target cannot always be exact; what it must never be is
/// silently wrong: a count that is off comes with `coverage.complete: false`. With `--pause` the
/// tool stops the target outside a collection, and each stable type must be exact in at least
/// eighteen of twenty. No hang, no panic. Free-threaded builds keep no GC lists and are skipped.
#[test]
fn gc_only_snapshots_are_exact_when_paused_and_honest_when_not() {
    common::over_matrix(
        common::spread_interpreters(),
        "gc_only_snapshots_are_exact_when_paused_and_honest_when_not",
        "gc_only_snapshots_are_exact_when_paused_and_honest_when_not",
        &[
            "label",
            "type",
            "truth",
            "exact running",
            "off unflagged",
            "exact paused",
        ],
        |interp, table, failures| {
            if interp.is_free_threaded() {
                common::unsupported(&interp.label, "free-threaded build: no GC lists");
                return Ok(());
            }
            let Some(target) = spawn(interp, failures) else {
                return Ok(());
            };
            let (running, unflagged) =
                take_snapshots(interp, &target, &["--gc-only"], GC_ONLY_SNAPSHOTS, failures);
            let (paused, _) = take_snapshots(
                interp,
                &target,
                &["--gc-only", "--pause"],
                SNAPSHOTS,
                failures,
            );
            check_still_churning(interp, &target, failures);
            for (name, truth) in stable_truth(&target) {
                let counts = running.get(&name).cloned().unwrap_or_default();
                let silent = unflagged.get(&name).copied().unwrap_or(0);
                if silent > 0 {
                    failures.push(format!(
                    "[{}] --gc-only {name}: {silent} snapshot(s) claimed complete coverage with a \
                     wrong count (truth {truth}, tool {counts:?})",
                    interp.label
                ));
                }
                let still = paused.get(&name).cloned().unwrap_or_default();
                let hits = exact(&still, truth);
                if hits < SNAPSHOTS_EXACT {
                    failures.push(format!(
                        "[{}] --gc-only --pause {name}: exact in {hits}/{SNAPSHOTS} (want ≥ \
                     {SNAPSHOTS_EXACT}; truth {truth}, tool {still:?})",
                        interp.label
                    ));
                }
                table.row(vec![
                    interp.label.clone(),
                    name,
                    truth.to_string(),
                    format!("{}/{GC_ONLY_SNAPSHOTS}", exact(&counts, truth)),
                    silent.to_string(),
                    format!("{hits}/{SNAPSHOTS}"),
                ]);
            }
            Ok(())
        },
    );
}

/// Per stable type: (samples in which it was exact, samples).
fn record_exactness(doc: &Value, want: &BTreeMap<String, u64>) -> BTreeMap<String, (usize, usize)> {
    let timeline = doc["timeline"].as_array().cloned().unwrap_or_default();
    want.iter()
        .map(|(name, &truth)| {
            let hits = timeline
                .iter()
                .filter(|s| s["types"][name.as_str()][0].as_u64() == Some(truth))
                .count();
            (name.clone(), (hits, timeline.len()))
        })
        .collect()
}

/// Checks of one recording; returns its per-type exactness for the table.
fn check_recording(
    doc: &Value,
    want: &BTreeMap<String, u64>,
    problems: &mut Vec<String>,
) -> BTreeMap<String, (usize, usize)> {
    if doc["schema"] != "pymemspy.record/1" {
        problems.push(format!("schema {}", doc["schema"]));
    }
    let tally = record_exactness(doc, want);
    for (name, &(hits, n)) in &tally {
        if n == 0 || (hits as f64) < RECORD_EXACT_SHARE * n as f64 {
            problems.push(format!(
                "{name}: exact in {hits}/{n} samples (want ≥ {:.0}%)",
                100.0 * RECORD_EXACT_SHARE
            ));
        }
        let growth = doc["growth"]
            .as_array()
            .and_then(|a| a.iter().find(|g| g["type"] == name.as_str()));
        if let Some(g) = growth.filter(|g| g["suspect"] == true) {
            problems.push(format!("{name} flagged as a leak suspect: {g}"));
        }
    }
    tally
}

/// `record` for ten seconds over the churning heap: exits 0 within its bound, writes a valid
/// recording, counts each stable type exactly in at least 90% of its samples and never calls
/// one a leak suspect.
#[test]
fn record_counts_stable_types_through_torn_reads() {
    common::over_matrix(
        common::spread_interpreters(),
        "record_counts_stable_types_through_torn_reads",
        "record_counts_stable_types_through_torn_reads",
        &["label", "samples", "Stable", "StableSlot", "time", "result"],
        |interp, table, failures| {
            let Some(target) = spawn(interp, failures) else {
                return Ok(());
            };
            let out = target.scratch().join("rec.json");
            let out_arg = out.to_string_lossy().into_owned();
            let pid = target.pid_arg();
            let run = run_bounded(
                &[
                    "record",
                    "--pid",
                    &pid,
                    "--duration",
                    RECORD_SECONDS,
                    "--format",
                    "json",
                    "-o",
                    &out_arg,
                ],
                RECORD_BOUND,
            );
            check_still_churning(interp, &target, failures);
            let mut problems = Vec::new();
            let mut tally = BTreeMap::new();
            let mut samples = 0;
            if let Some(why) = broken_run(&run, RECORD_BOUND) {
                problems.push(why);
            } else {
                match std::fs::read_to_string(&out)
                    .map_err(|e| e.to_string())
                    .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
                {
                    Err(e) => problems.push(format!("no valid recording at {out_arg}: {e}")),
                    Ok(doc) => {
                        samples = doc["timeline"].as_array().map_or(0, Vec::len);
                        tally = check_recording(&doc, &stable_truth(&target), &mut problems);
                    }
                }
            }
            let cell = |name: &str| {
                tally
                    .get(name)
                    .map_or("-".into(), |(h, n)| format!("{h}/{n}"))
            };
            table.row(vec![
                interp.label.clone(),
                samples.to_string(),
                cell("__main__.Stable"),
                cell("__main__.StableSlot"),
                format!("{:.1}s", run.elapsed.as_secs_f64()),
                if problems.is_empty() { "ok" } else { "FAIL" }.into(),
            ]);
            failures.extend(
                problems
                    .into_iter()
                    .map(|p| format!("[{}] record: {p}", interp.label)),
            );
            Ok(())
        },
    );
}
