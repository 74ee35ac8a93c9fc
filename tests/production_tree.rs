//! `pymemspy snapshot --subprocesses`: a master forking 3 workers (each building a known number
//! of objects of its own type) plus a non-Python child (`sleep`), on every interpreter.

mod common;

use common::{Interp, Table, Target};
use serde_json::Value;
use std::collections::BTreeSet;

/// Kills the target's whole tree: the master's SIGKILL leaves its children orphaned.
struct TreeGuard(Vec<i32>);

impl Drop for TreeGuard {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn check(interp: &Interp, table: &mut Table) -> Result<(), String> {
    let target = Target::spawn(interp, "forked_workers.py", &[])?;
    let truth = target.truth.clone();
    let sleep_pid = truth["sleep"].as_i64().ok_or("truth lacks sleep")? as i32;
    let workers = truth["workers"].as_object().ok_or("truth lacks workers")?;
    let mut guard = TreeGuard(vec![sleep_pid]);
    guard
        .0
        .extend(workers.keys().filter_map(|k| k.parse::<i32>().ok()));
    let run = common::run_tool(&[
        "snapshot",
        "--pid",
        &target.pid_arg(),
        "--subprocesses",
        "--gc-only",
        "--format",
        "json",
    ]);
    if !run.status.success() {
        return Err(run.describe());
    }
    let doc: Value = serde_json::from_str(&run.stdout).map_err(|e| format!("not JSON ({e})"))?;
    if doc["schema"] != "pymemspy.snapshot-tree/1" {
        return Err(format!("schema {}", doc["schema"]));
    }
    let procs = doc["processes"].as_array().ok_or("no processes")?;
    let found: BTreeSet<i64> = procs.iter().filter_map(|p| p["pid"].as_i64()).collect();
    let mut want: BTreeSet<i64> = workers.keys().filter_map(|k| k.parse().ok()).collect();
    want.insert(i64::from(target.pid));
    if found != want {
        return Err(format!("processes {found:?}, expected {want:?}"));
    }
    let skipped = doc["skipped"].as_array().ok_or("no skipped")?;
    let sleep_note = skipped
        .iter()
        .find(|s| s["pid"].as_i64() == Some(i64::from(sleep_pid)))
        .ok_or_else(|| format!("sleep {sleep_pid} not in skipped: {skipped:?}"))?;
    let reason = sleep_note["reason"].as_str().unwrap_or("");
    if !reason.starts_with("not Python") {
        return Err(format!("sleep skipped for {reason:?}"));
    }
    let count_in = |snap: &Value, ty: &str| -> u64 {
        snap["types"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == ty)
            .and_then(|t| t["count"].as_u64())
            .unwrap_or(0)
    };
    let mut counts = Vec::new();
    for (pid, w) in workers {
        let ty = w["type"].as_str().unwrap_or("?");
        let expected = w["count"].as_u64().unwrap_or(0);
        for p in procs {
            let is_worker = p["pid"].as_i64().map(|x| x.to_string()) == Some(pid.clone());
            let got = count_in(p, ty);
            let want = if is_worker { expected } else { 0 };
            if got != want {
                return Err(format!(
                    "pid {}: {ty} count {got}, expected {want}",
                    p["pid"]
                ));
            }
        }
        let combined = count_in(&doc["combined"], ty);
        if combined != expected {
            return Err(format!(
                "combined {ty} count {combined}, expected {expected}"
            ));
        }
        counts.push(format!("{ty}={expected}"));
    }
    // The table names every process and the skipped child.
    let run = common::run_tool(&[
        "snapshot",
        "--pid",
        &target.pid_arg(),
        "--subprocesses",
        "--gc-only",
    ]);
    if !run.status.success() {
        return Err(format!("table: {}", run.describe()));
    }
    let note = format!("note: skipped pid {sleep_pid}: not Python");
    if !run.stdout.contains(&note) || !run.stdout.contains("combined top types") {
        return Err(format!("table lacks {note:?} or the combined view"));
    }
    table.row(vec![
        interp.label.clone(),
        found.len().to_string(),
        skipped.len().to_string(),
        counts.join(" "),
    ]);
    Ok(())
}

#[test]
fn subprocesses_master_with_forked_workers() {
    let mut table = Table::new(&["interpreter", "python procs", "skipped", "exact counts"]);
    let mut failures = Vec::new();
    for interp in common::interpreters() {
        if interp.is_free_threaded() {
            println!(
                "note: {} skipped (free-threaded builds are not supported yet)",
                interp.label
            );
            continue;
        }
        if let Err(e) = check(&interp, &mut table) {
            failures.push(format!("{}: {e}", interp.label));
        }
    }
    table.print("snapshot --subprocesses");
    common::assert_no_failures("subprocesses", &failures);
}
