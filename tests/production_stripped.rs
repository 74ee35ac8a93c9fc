//! Stripped builds with and without their debug file (docs/stripped.md): which layout sources
//! are used, what still works, and `--debug-dir` pointing at an unpacked `python3.X-dbg`.

mod common;

use common::{Interp, ScratchDir, Table, Target};
use serde_json::Value;
use std::path::Path;

fn layout_sources(pid: &str, extra: &[&str]) -> Result<Vec<String>, String> {
    let mut args = vec!["layout", "--pid", pid];
    args.extend_from_slice(extra);
    let run = common::run_tool(&args);
    if !run.status.success() {
        return Err(format!("layout: {}", run.describe()));
    }
    let doc: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
    Ok(doc["layout"]["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect())
}

/// What works on one target: (layout has DWARF, GC census ok, complete census arena source,
/// tracemalloc ok or its error).
fn survey(pid: &str, extra: &[&str]) -> Result<Vec<String>, String> {
    let sources = layout_sources(pid, extra)?;
    let dwarf = sources.iter().any(|s| s.starts_with("DWARF"));
    let mut args = vec!["snapshot", "--pid", pid, "--format", "json"];
    args.extend_from_slice(extra);
    let run = common::run_tool(&args);
    if !run.status.success() {
        return Err(format!("snapshot: {}", run.describe()));
    }
    let doc: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
    let arenas = doc["coverage"]["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str())
        .find(|s| s.starts_with("pymalloc arenas"))
        .map(|s| {
            let inner = s.split_once('(').map_or(s, |(_, r)| r);
            inner
                .rsplit_once("), ")
                .map_or(inner, |(i, _)| i)
                .to_string()
        })
        .unwrap_or_else(|| "none".into());
    let mut args = vec![
        "snapshot",
        "--pid",
        pid,
        "--by",
        "allocation",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let run = common::run_tool(&args);
    let tracemalloc = if run.status.success() {
        "exact".to_string()
    } else {
        run.stderr.trim().to_string()
    };
    Ok(vec![
        if dwarf { "DWARF" } else { "tables only" }.to_string(),
        arenas,
        tracemalloc,
        doc["totals"]["objects"].to_string(),
    ])
}

#[test]
fn stripped_builds_with_and_without_debug_files() {
    let interps = common::interpreters();
    let by_label = |l: &str| interps.iter().find(|i| i.label == l).cloned();
    let (Some(system), Some(dbg)) = (
        by_label("debian-bookworm-system-3.11"),
        by_label("debian-bookworm-3.11-dbg"),
    ) else {
        println!("note: the Debian 3.11 pair is not listed; skipped");
        return;
    };
    std::env::set_var("PYTHONTRACEMALLOC", "1");
    let mut table = Table::new(&[
        "interpreter",
        "layout",
        "pymalloc arenas",
        "tracemalloc",
        "objects",
    ]);
    let mut failures = Vec::new();

    // Debian's stripped system python without python3.11-dbg: tables and heuristics only.
    let t = Target::spawn(&system, "known_heap.py", &[]).expect("system python");
    match survey(&t.pid_arg(), &[]) {
        Ok(row) => {
            if row[0] != "tables only" || !row[2].contains("python3.11-dbg") {
                failures.push(format!("system 3.11 without debug file: {row:?}"));
            }
            table.row([vec![system.label.clone()], row].concat());
        }
        Err(e) => failures.push(format!("system 3.11: {e}")),
    }
    drop(t);

    // The same kind of build with its debug file beside it (found automatically).
    let t = Target::spawn(&dbg, "known_heap.py", &[]).expect("dbg python");
    match survey(&t.pid_arg(), &[]) {
        Ok(row) => {
            if row[0] != "DWARF" || row[1] != "symbols arenas/maxarenas" || row[2] != "exact" {
                failures.push(format!("3.11 with debug file: {row:?}"));
            }
            table.row([vec![dbg.label.clone()], row].concat());
        }
        Err(e) => failures.push(format!("3.11-dbg: {e}")),
    }
    drop(t);

    // The binary alone, away from its tree: nothing found until --debug-dir names the
    // unpacked package's usr/lib/debug.
    let tree = Path::new(&dbg.argv_prefix[0])
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    let dir = ScratchDir::new("stripped");
    let copy = dir.path().join("python3.11");
    std::fs::copy(&dbg.argv_prefix[0], &copy).expect("copy the binary");
    let alone = Interp {
        label: "3.11 binary alone".into(),
        argv_prefix: vec![
            "env".into(),
            format!("PYTHONHOME={}", tree.join("usr").display()),
            copy.to_string_lossy().into_owned(),
        ],
    };
    let t = Target::spawn(&alone, "known_heap.py", &[]).expect("copied python");
    let debug_dir = tree.join("usr/lib/debug").to_string_lossy().into_owned();
    let mut objects = Vec::new();
    for (label, extra) in [
        ("binary alone", vec![]),
        (
            "binary alone --debug-dir",
            vec!["--debug-dir", debug_dir.as_str()],
        ),
    ] {
        match survey(&t.pid_arg(), &extra) {
            Ok(row) => {
                let with = !extra.is_empty();
                let ok = if with {
                    row[0] == "DWARF" && row[2] == "exact"
                } else {
                    row[0] == "tables only" && row[2].contains("--debug-dir")
                };
                if !ok {
                    failures.push(format!("{label}: {row:?}"));
                }
                objects.push(row[3].clone());
                table.row([vec![label.to_string()], row].concat());
            }
            Err(e) => failures.push(format!("{label}: {e}")),
        }
    }
    // The same process, arenas found by the .bss heuristic or by symbols: the same census.
    if objects.len() == 2 && objects[0] != objects[1] {
        failures.push(format!("heuristic vs symbols census: {objects:?} objects"));
    }
    table.print("stripped builds and debug files");
    common::assert_no_failures("stripped", &failures);
}
