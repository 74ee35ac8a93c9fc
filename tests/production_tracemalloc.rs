//! `pymemspy snapshot --by allocation`: tracemalloc's traces read from outside equal
//! `tracemalloc.take_snapshot().statistics('lineno')` computed in the target, per line, on every
//! interpreter whose tracemalloc tables can be found.

mod common;

use common::{Interp, Table, Target};
use serde_json::Value;
use std::collections::BTreeMap;

/// Frames tracemalloc keeps per allocation in the targets.
const NFRAME: &str = "5";

/// Builds where no symbol names tracemalloc's tables (3.8–3.11 statics on a stripped build
/// without its debug file): they must be found by discovery, and say so.
fn stripped(interp: &Interp) -> bool {
    let build = interp.build();
    build.stripped && !build.debug_file && !build.at_least(12)
}

/// Where no symbol names the tables: discovery. Elsewhere discovery is forced once and must
/// read the same lines as symbols, DWARF or the built-in offsets did.
const DISCOVERED: &str = "found without symbols";

/// `snapshot --by allocation --format json` (with `env`): its document.
fn allocations(pid: &str, env: &[(&str, &std::ffi::OsStr)]) -> Result<Value, String> {
    let args = [
        "snapshot",
        "--pid",
        pid,
        "--by",
        "allocation",
        "--format",
        "json",
    ];
    let run = common::run_tool_env(&args, env).ok("snapshot --by allocation")?;
    let doc: Value = serde_json::from_str(&run.stdout).map_err(|e| format!("not JSON: {e}"))?;
    if doc["schema"] != "pymemspy.allocations/1" {
        return Err(format!("schema {}", doc["schema"]));
    }
    Ok(doc)
}

fn check(interp: &Interp, table: &mut Table) -> Result<(), String> {
    let target = Target::spawn(interp, "tracemalloc_heap.py", &[])?;
    let pid = target.pid_arg();
    let doc = allocations(&pid, &[])?;
    let found_by = doc["found_by"].as_str().unwrap_or("?").to_string();
    if stripped(interp) != found_by.contains(DISCOVERED) {
        return Err(format!("tables found by {found_by}"));
    }
    let got: BTreeMap<String, (u64, u64)> = doc["lines"]
        .as_array()
        .ok_or("no lines")?
        .iter()
        .map(|l| {
            (
                format!("{}:{}", l["file"].as_str().unwrap_or("?"), l["line"]),
                (
                    l["size"].as_u64().unwrap_or(0),
                    l["count"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect();
    // Each line's file as shown: relative to the target's sys.path, whose first entry is the
    // script's directory (the whole path stays in `file`).
    for l in doc["lines"].as_array().into_iter().flatten() {
        let file = l["file"].as_str().unwrap_or("?");
        if let Some(name) = file.strip_prefix(&format!(
            "{}/",
            common::target_script("")
                .to_string_lossy()
                .trim_end_matches('/')
        )) {
            if l["label"].as_str() != Some(name) {
                return Err(format!("label {} for {file}, want {name:?}", l["label"]));
            }
        }
    }
    let truth = target.truth["lines"]
        .as_object()
        .ok_or("truth lacks lines")?;
    if truth.len() < 6 {
        return Err(format!("truth has only {} traced lines", truth.len()));
    }
    let mut bad = Vec::new();
    for (line, v) in truth {
        let want = (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0));
        let have = got.get(line).copied().unwrap_or((0, 0));
        if have != want {
            bad.push(format!("{line}: (size, count) {have:?}, expected {want:?}"));
        }
    }
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    // Found without symbols (what a stripped build without its debug file gets): the same
    // lines as the symbols, DWARF or built-in offsets read.
    let mut how = found_by.clone();
    if !found_by.contains(DISCOVERED) {
        let forced = [("PYMEMSPY_TRACEMALLOC_DISCOVER", std::ffi::OsStr::new("1"))];
        let found = allocations(&pid, &forced).map_err(|e| format!("discovery: {e}"))?;
        let by = found["found_by"].as_str().unwrap_or("?");
        if found["lines"] != doc["lines"] || !by.contains(DISCOVERED) {
            return Err(format!("discovery differs (found by {by})"));
        }
        how.push_str("; discovery agrees");
    }
    // 3.12+ found through DWARF: the built-in offsets must agree (builds without debug info).
    if found_by.contains("DWARF") {
        let run = common::run_tool(&[
            "snapshot",
            "--pid",
            &pid,
            "--by",
            "allocation",
            "--format",
            "json",
            "--no-dwarf",
        ]);
        let plain: Value = serde_json::from_str(&run.stdout)
            .map_err(|e| format!("--no-dwarf: {}: {e}", run.describe()))?;
        if plain["lines"] != doc["lines"]
            || !plain["found_by"]
                .as_str()
                .unwrap_or("")
                .contains("built-in")
        {
            return Err(format!(
                "--no-dwarf differs (found by {})",
                plain["found_by"]
            ));
        }
    }
    if doc["max_nframe"].as_u64() != target.truth["nframe"].as_u64() {
        return Err(format!("max_nframe {}", doc["max_nframe"]));
    }
    // The collapsed flamegraph: stacks end at the allocating line, and sum to the same sizes.
    let out = target.scratch().join("alloc.folded");
    let out_s = out.to_string_lossy().into_owned();
    common::run_tool(&[
        "snapshot",
        "--pid",
        &pid,
        "--by",
        "allocation",
        "--format",
        "collapsed",
        // Whole paths, as the truth names the lines.
        "--full-filenames",
        "-o",
        &out_s,
    ])
    .ok("collapsed")?;
    let folded = std::fs::read_to_string(&out).map_err(|e| format!("{out_s}: {e}"))?;
    let mut by_leaf: BTreeMap<String, u64> = BTreeMap::new();
    let mut deepest = 0;
    for l in folded.lines() {
        let Some((stack, value)) = l.rsplit_once(' ') else {
            continue;
        };
        let frames: Vec<&str> = stack.split(';').collect();
        deepest = deepest.max(frames.len());
        *by_leaf
            .entry(frames.last().unwrap_or(&"").to_string())
            .or_default() += value.parse::<u64>().unwrap_or(0);
    }
    for (line, v) in truth {
        if by_leaf.get(line).copied() != v[0].as_u64() {
            return Err(format!(
                "collapsed: {line} sums to {:?}, expected {}",
                by_leaf.get(line),
                v[0]
            ));
        }
    }
    if deepest < 2 {
        return Err("collapsed stacks carry no callers".into());
    }
    table.row(vec![
        interp.label.clone(),
        truth.len().to_string(),
        deepest.to_string(),
        how,
    ]);
    Ok(())
}

#[test]
fn allocation_sites_equal_tracemalloc_statistics() {
    // The targets inherit it: tracing from the first line, as a user would run them.
    std::env::set_var("PYTHONTRACEMALLOC", NFRAME);
    common::over_matrix(
        common::interpreters(),
        "snapshot --by allocation vs tracemalloc statistics('lineno')",
        "tracemalloc",
        &["interpreter", "lines exact", "max depth", "tables found by"],
        common::each(check),
    );
}
