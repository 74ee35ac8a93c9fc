//! Heap dumps (`snapshot --format heap`, `--heap FILE`), retained sizes and the leak diff
//! between dumps, against targets that know what they hold.

mod common;

use common::Target;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn tool(args: &[&str]) -> Result<String, String> {
    common::tool(args).map_err(|e| format!("{args:?}: {e}"))
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// The census part of a snapshot: what two reads of one stopped target must agree on.
fn census_of(json: &str) -> Value {
    let v: Value = serde_json::from_str(json).unwrap_or_default();
    serde_json::json!({
        "totals": v["totals"],
        "types": v["types"],
        "python": v["python"],
        "retained_by_type": v["retained_by_type"],
    })
}

/// Each analysis of the stopped target, live and from its dump: (what, live, from the dump).
fn round_trip(target: &Target) -> Result<Vec<(String, String, String)>, String> {
    let pid = target.pid_arg();
    let dir = target.scratch();
    let heap = dir.join("app.heap");
    tool(&[
        "snapshot",
        "--pid",
        &pid,
        "--format",
        "heap",
        "-o",
        path_arg(&heap),
    ])?;
    let mut out = Vec::new();
    for (what, args) in [
        ("snapshot json", vec!["snapshot", "--format", "json"]),
        (
            "snapshot --retained json",
            vec!["snapshot", "--retained", "--format", "json"],
        ),
        (
            "why Private json",
            vec!["why", "-t", "__main__.Private", "-f", "json"],
        ),
        ("why bytes table", vec!["why", "-t", "bytes"]),
        ("why list json", vec!["why", "-t", "list", "-f", "json"]),
        ("why Missing table", vec!["why", "-t", "Private"]),
    ] {
        let mut live = args.clone();
        live.extend(["--pid", &pid]);
        let mut dumped = args.clone();
        dumped.extend(["--heap", path_arg(&heap)]);
        let (a, b) = (tool(&live)?, tool(&dumped)?);
        let (a, b) = if what.starts_with("snapshot") {
            (census_of(&a).to_string(), census_of(&b).to_string())
        } else {
            (a, b)
        };
        out.push((what.to_string(), a, b));
    }
    for format in ["collapsed", "speedscope", "pprof"] {
        let live = dir.join(format!("live.{format}"));
        let dumped = dir.join(format!("dump.{format}"));
        tool(&[
            "snapshot",
            "--pid",
            &pid,
            "--format",
            format,
            "-o",
            path_arg(&live),
        ])?;
        tool(&[
            "snapshot",
            "--heap",
            path_arg(&heap),
            "--format",
            format,
            "-o",
            path_arg(&dumped),
        ])?;
        let read = |p: &PathBuf| {
            std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        out.push((format!("flamegraph {format}"), read(&live), read(&dumped)));
    }
    Ok(out)
}

/// SIGSTOP: a stopped target is read as is, so live and dump see the same heap.
fn stop(pid: u32, sig: i32) {
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

#[test]
fn dump_round_trips_every_analysis() {
    common::over_matrix(
        common::interpreters(),
        "dump_round_trips_every_analysis",
        "dump_round_trips_every_analysis",
        &[
            "label",
            "objects",
            "dump bytes",
            "B/object",
            "analyses equal",
        ],
        |interp, table, failures| {
            let target = Target::spawn(interp, "leak_steps.py", &[])?;
            stop(target.pid, libc::SIGSTOP);
            if let Err(e) = common::wait_for_state(target.pid, 'T', Duration::from_secs(5)) {
                failures.push(format!("[{}] not stopped: {e}", interp.label));
                return Ok(());
            }
            let result = round_trip(&target);
            stop(target.pid, libc::SIGCONT);
            let pairs = result?;
            let mut equal = 0;
            for (what, live, dumped) in &pairs {
                if live == dumped && !live.is_empty() {
                    equal += 1;
                } else {
                    failures.push(format!(
                    "[{}] {what}: the dump's differs from the live one (live {} bytes, dump {} \
                     bytes)\n--- live ---\n{:.1500}\n--- dump ---\n{:.1500}",
                    interp.label,
                    live.len(),
                    dumped.len(),
                    live,
                    dumped
                ));
                }
            }
            let heap = target.scratch().join("app.heap");
            let size = std::fs::metadata(&heap).map(|m| m.len()).unwrap_or(0);
            let census: Value = serde_json::from_str(&pairs[0].1).unwrap_or_default();
            let objects = census["totals"]["objects"].as_u64().unwrap_or(0);
            table.row(vec![
                interp.label.clone(),
                objects.to_string(),
                size.to_string(),
                format!("{:.2}", size as f64 / objects.max(1) as f64),
                format!("{equal}/{}", pairs.len()),
            ]);
            Ok(())
        },
    );
}

#[test]
fn retained_sizes_equal_the_targets_truth() {
    common::over_matrix(
        common::interpreters(),
        "retained_sizes_equal_the_targets_truth",
        "retained_sizes_equal_the_targets_truth",
        &[
            "label",
            "Private retained (truth)",
            "tool",
            "holder list retains (truth)",
            "tool",
            "holder_a retains (truth)",
            "tool",
        ],
        |interp, table, failures| {
            let target = Target::spawn(interp, "leak_steps.py", &[])?;
            let pid = target.pid_arg();
            let run = || -> Result<(u64, u64, u64), String> {
                // --sort retained implies --retained, and orders the types by it (MAT's
                // dominator view): a type of small objects that keep much comes first.
                let snap: Value = serde_json::from_str(&tool(&[
                    "snapshot", "--pid", &pid, "--sort", "retained", "--format", "json",
                ])?)
                .map_err(|e| e.to_string())?;
                let order: Vec<u64> = snap["types"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let name = t["type"].as_str().unwrap_or("");
                        snap["retained_by_type"][name].as_u64().unwrap_or(0)
                    })
                    .collect();
                if order.is_empty() || order.windows(2).any(|w| w[0] < w[1]) {
                    return Err(format!("types not by retained bytes: {order:?}"));
                }
                // __main__.Private (56-byte instances) ranks above the types whose own bytes
                // are larger but retain no more.
                let rank = |name: &str| {
                    snap["types"]
                        .as_array()
                        .and_then(|a| a.iter().position(|t| t["type"] == name))
                };
                if rank("__main__.Private") > rank("str") {
                    return Err(format!(
                        "Private ranked {:?}, str {:?}",
                        rank("__main__.Private"),
                        rank("str")
                    ));
                }
                let by_type = snap["retained_by_type"]["__main__.Private"]
                    .as_u64()
                    .unwrap_or(0);
                let why: Value = serde_json::from_str(&tool(&[
                    "why",
                    "--pid",
                    &pid,
                    "-t",
                    "__main__.Private",
                    "-f",
                    "json",
                ])?)
                .map_err(|e| e.to_string())?;
                let holder = why["retainers"][0]["retained"].as_u64().unwrap_or(0);
                // The shared bytes: held by holder_a and holder_b, retained by neither.
                let why: Value = serde_json::from_str(&tool(&[
                    "why",
                    "--pid",
                    &pid,
                    "-t",
                    "bytes",
                    "-f",
                    "json",
                    "--max-paths",
                    "1000",
                ])?)
                .map_err(|e| e.to_string())?;
                let a = why["retainers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| {
                        r["holder"]
                            .as_str()
                            .is_some_and(|h| h.ends_with(".holder_a → list"))
                    })
                    .and_then(|r| r["retained"].as_u64())
                    .unwrap_or(0);
                Ok((by_type, holder, a))
            };
            let (by_type, holder, a) = run()?;
            let want = (
                target.truth_u64("private_retained"),
                target.truth_u64("holder_retained"),
                target.truth_u64("holder_a_retained"),
            );
            // Known exception, measured: on 3.8 and 3.9 the conservative body words of one heap
            // type object point at a few (8 of 3000) instances' `extra` lists, which only a
            // conservative word (the instance's slot) reaches too; such a list then has two
            // holders and no instance retains it (~0.2% short). Exact everywhere else.
            let slack = |interp: &common::Interp, truth: u64| {
                if !interp.build().at_least(10) {
                    truth / 200
                } else {
                    0
                }
            };
            for (what, got, truth) in [
                (
                    "__main__.Private retained by its instances",
                    by_type,
                    want.0,
                ),
                ("the holder list's retained bytes", holder, want.1),
                ("holder_a (shares its bytes with holder_b)", a, want.2),
            ] {
                let slack = slack(interp, truth);
                if got > truth || got + slack < truth {
                    failures.push(format!(
                        "[{}] {what}: {got}, truth {truth} (allowed short by {slack})",
                        interp.label
                    ));
                }
            }
            table.row(vec![
                interp.label.clone(),
                want.0.to_string(),
                by_type.to_string(),
                want.1.to_string(),
                holder.to_string(),
                want.2.to_string(),
                a.to_string(),
            ]);
            Ok(())
        },
    );
}

/// Send one step (SIGUSR1) and wait until the target says it is done.
fn step(target: &Target, n: u32) -> Result<(), String> {
    let truth = target.scratch().join("truth.json.step");
    stop(target.pid, libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::fs::read_to_string(&truth).ok().as_deref() == Some(&n.to_string()) {
            return common::wait_for_state(target.pid, 'S', Duration::from_secs(10));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("step {n} not done"))
}

#[test]
fn three_dump_diff_names_the_leak_not_the_churn() {
    common::over_matrix(
        common::interpreters(),
        "three_dump_diff_names_the_leak_not_the_churn",
        "three_dump_diff",
        &["label", "Leaked new", "Churn new", "leak path named"],
        |interp, table, failures| {
            let target = Target::spawn(interp, "leak_steps.py", &[])?;
            let pid = target.pid_arg();
            let dir = target.scratch().to_path_buf();
            let run = || -> Result<Value, String> {
                let mut dumps = Vec::new();
                for k in 0..3u32 {
                    if k > 0 {
                        step(&target, k)?;
                    }
                    let p = dir.join(format!("d{k}.heap"));
                    tool(&[
                        "snapshot",
                        "--pid",
                        &pid,
                        "--format",
                        "heap",
                        "-o",
                        path_arg(&p),
                    ])?;
                    dumps.push(p);
                }
                let text = tool(&[
                    "diff",
                    path_arg(&dumps[0]),
                    path_arg(&dumps[1]),
                    path_arg(&dumps[2]),
                    "--format",
                    "json",
                ])?;
                serde_json::from_str(&text).map_err(|e| e.to_string())
            };
            let d = run()?;
            let count_of = |name: &str| {
                d["types"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["type"] == name)
                    .and_then(|t| t["count"].as_u64())
                    .unwrap_or(0)
            };
            let (leaked, churn) = (count_of("__main__.Leaked"), count_of("__main__.Churn"));
            let step_leak = target.truth_u64("step_leak");
            let path_named = d["paths"].as_array().into_iter().flatten().any(|p| {
                p["type"] == "__main__.Leaked"
                    && p["count"].as_u64() == Some(step_leak)
                    && p["path"]
                        .as_str()
                        .is_some_and(|s| s.contains(".leaks") && s.contains("list"))
            });
            // Step 1's leak is in both later dumps; step 2's only in the last; churn never twice.
            if leaked != step_leak {
                failures.push(format!(
                    "[{}] {leaked} Leaked new in both later dumps, want {step_leak}",
                    interp.label
                ));
            }
            if churn != 0 {
                failures.push(format!(
                    "[{}] {churn} Churn counted as leaking",
                    interp.label
                ));
            }
            if !path_named {
                failures.push(format!(
                    "[{}] no path `.leaks → list` with {step_leak} Leaked: {:.2000}",
                    interp.label, d["paths"]
                ));
            }
            table.row(vec![
                interp.label.clone(),
                leaked.to_string(),
                churn.to_string(),
                path_named.to_string(),
            ]);
            Ok(())
        },
    );
}
