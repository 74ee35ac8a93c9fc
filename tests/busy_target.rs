//! Censuses of a busy multi-threaded target complete (tests/targets/busy_server.py: 4 threads
//! allocating and freeing dicts, lists, instances and strs without pause, beside a stable
//! population of known size), without stopping it.
//!
//! The GC lists change under the reader all the time. The complete census counts from the
//! arenas and needs the lists only for objects outside them and the collector's per-generation
//! counts, so a torn walk makes those counts estimates (said in the JSON coverage), never a
//! census "cut short". Of 20 snapshots at least 19 must be complete with no "cut short"
//! warning, and every one must count the stable population exactly; a short `record` must have
//! every sample complete.

mod common;

use std::collections::BTreeMap;

use common::{Interp, Table, Target};
use serde_json::Value;

const SNAPSHOTS: usize = 20;
const MIN_COMPLETE: usize = 19;

fn stable_counts(types: &Value) -> BTreeMap<String, u64> {
    types
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    (
                        t["type"].as_str().unwrap_or("").to_string(),
                        t["count"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn cut_short(warnings: &Value) -> Option<String> {
    warnings
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|w| w.contains("cut short"))
        .map(str::to_string)
}

/// How many of SNAPSHOTS censuses were complete; every one must count the stable population.
fn snapshots(target: &Target, failures: &mut Vec<String>, label: &str) -> usize {
    let stable = target.truth["stable"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut complete = 0;
    for i in 1..=SNAPSHOTS {
        let run = common::run_tool(&["snapshot", "--pid", &target.pid_arg(), "--format", "json"]);
        if !run.status.success() || run.timed_out {
            failures.push(format!("[{label}] snapshot {i}: {}", run.describe()));
            continue;
        }
        let snap: Value = match serde_json::from_str(&run.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("[{label}] snapshot {i}: bad JSON: {e}"));
                continue;
            }
        };
        let short = cut_short(&snap["warnings"]);
        if snap["coverage"]["complete"] == true && short.is_none() {
            complete += 1;
        } else {
            println!(
                "[{label}] snapshot {i} incomplete: {}",
                short.unwrap_or_else(|| snap["warnings"].to_string())
            );
        }
        let counts = stable_counts(&snap["types"]);
        for (ty, n) in &stable {
            let n = n.as_u64().unwrap_or(0);
            let got = counts.get(ty).copied().unwrap_or(0);
            if got != n {
                failures.push(format!(
                    "[{label}] snapshot {i}: {ty} counted {got}, made {n}"
                ));
            }
        }
    }
    complete
}

/// Samples of a short recording, and how many were complete.
fn record(target: &Target, label: &str, failures: &mut Vec<String>) -> (usize, usize) {
    let out = target.scratch().join("record.json");
    let run = common::run_tool(&[
        "record",
        "--pid",
        &target.pid_arg(),
        "--duration",
        "4",
        "--interval",
        "0.4",
        "--format",
        "json",
        "-o",
        out.to_str().unwrap_or_default(),
    ]);
    if !run.status.success() || run.timed_out {
        failures.push(format!("[{label}] record: {}", run.describe()));
        return (0, 0);
    }
    let doc: Value = match std::fs::read_to_string(&out)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            failures.push(format!("[{label}] record output: {e}"));
            return (0, 0);
        }
    };
    let timeline = doc["timeline"].as_array().cloned().unwrap_or_default();
    let complete = timeline.iter().filter(|s| s["complete"] == true).count();
    if let Some(w) = cut_short(&doc["warnings"]) {
        failures.push(format!("[{label}] record warns: {w}"));
    }
    if timeline.is_empty() {
        failures.push(format!("[{label}] record took no sample"));
    } else if complete < timeline.len() {
        failures.push(format!(
            "[{label}] record: {complete} of {} samples complete",
            timeline.len()
        ));
    }
    (complete, timeline.len())
}

fn check(interp: &Interp, table: &mut Table, failures: &mut Vec<String>) -> Result<(), String> {
    let target = Target::spawn(interp, "busy_server.py", &[])?;
    let label = &interp.label;
    let complete = snapshots(&target, failures, label);
    if complete < MIN_COMPLETE {
        failures.push(format!(
            "[{label}] {complete} of {SNAPSHOTS} snapshots complete (want {MIN_COMPLETE})"
        ));
    }
    let (rec_complete, samples) = record(&target, label, failures);
    table.row(vec![
        label.clone(),
        format!("{complete}/{SNAPSHOTS}"),
        format!("{rec_complete}/{samples}"),
    ]);
    Ok(())
}

#[test]
fn busy_target_censuses_complete() {
    common::over_matrix(
        common::spread_interpreters(),
        "busy_target_censuses_complete",
        "busy_target_censuses_complete",
        &["label", "complete snapshots", "complete record samples"],
        check,
    );
}
