//! `pymemspy snapshot --core`: a `gcore` dump gives the same census as the live process it was
//! taken from (GC-only and complete), on every interpreter; `--executable` finds a moved binary.

mod common;

use common::{Interp, Table, Target};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// type → (count, bytes, allocated bytes)
type Census = BTreeMap<String, (u64, u64, u64)>;

fn census(args: &[&str]) -> Result<(Census, Value), String> {
    let doc = common::tool_json(args).map_err(|e| format!("{args:?}: {e}"))?;
    let types = doc["types"]
        .as_array()
        .ok_or("no types")?
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap_or(u64::MAX);
            (
                t["type"].as_str().unwrap_or("?").to_string(),
                (n("count"), n("bytes"), n("allocated_bytes")),
            )
        })
        .collect();
    Ok((types, doc))
}

fn tool_text(args: &[&str]) -> Result<String, String> {
    common::tool(args).map_err(|e| format!("{args:?}: {e}"))
}

fn diff(live: &Census, core: &Census) -> String {
    let mut out = Vec::new();
    for k in live.keys().chain(core.keys()) {
        if live.get(k) != core.get(k) && out.len() < 8 {
            out.push(format!(
                "{k}: live {:?} core {:?}",
                live.get(k),
                core.get(k)
            ));
        }
    }
    out.dedup();
    out.join("; ")
}

/// gcore the target into `dir`, returning the core's path.
fn gcore(pid: u32, dir: &Path) -> Result<PathBuf, String> {
    let prefix = dir.join("core");
    let out = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("cannot run gcore (install gdb): {e}"))?;
    let path = PathBuf::from(format!("{}.{pid}", prefix.display()));
    if !out.status.success() || !path.exists() {
        return Err(format!(
            "gcore failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(path)
}

fn check(interp: &Interp, table: &mut Table) -> Result<(), String> {
    let target = Target::spawn(interp, "known_heap.py", &[])?;
    let pid = target.pid_arg();
    let (live_gc, _) = census(&["snapshot", "--pid", &pid, "--gc-only", "--format", "json"])?;
    let (live_all, _) = census(&["snapshot", "--pid", &pid, "--format", "json"])?;
    let live_tree = tool_text(&[
        "snapshot",
        "--pid",
        &pid,
        "--format",
        "collapsed",
        "-o",
        "-",
    ])?;
    let live_dump = tool_text(&["dump", "--pid", &pid])?;
    let core = gcore(target.pid, target.scratch())?;
    let core_size = std::fs::metadata(&core).map(|m| m.len()).unwrap_or(0);
    let core_dir = common::ScratchDir::new("core");
    let kept = core_dir.path().join("core");
    std::fs::rename(&core, &kept).map_err(|e| format!("move core: {e}"))?;
    drop(target); // killed: the core is all that is left
    let kept_s = kept.to_string_lossy().into_owned();
    let (core_gc, doc) = census(&[
        "snapshot",
        "--core",
        &kept_s,
        "--gc-only",
        "--format",
        "json",
    ])?;
    let (core_all, _) = census(&["snapshot", "--core", &kept_s, "--format", "json"])?;
    if live_gc != core_gc {
        return Err(format!(
            "GC-only census differs: {}",
            diff(&live_gc, &core_gc)
        ));
    }
    if live_all != core_all {
        return Err(format!(
            "complete census differs: {}",
            diff(&live_all, &core_all)
        ));
    }
    // The retention flamegraph and the thread stacks read from the core are the live ones.
    let core_tree = tool_text(&[
        "snapshot",
        "--core",
        &kept_s,
        "--format",
        "collapsed",
        "-o",
        "-",
    ])?;
    if core_tree != live_tree {
        return Err("retention flamegraph (collapsed) differs".into());
    }
    // A thread's state (idle, active) comes from /proc, which a core does not have; its
    // threading name comes from memory, which it does.
    let live_dump: String = live_dump
        .lines()
        .map(|l| match l.find(" [") {
            Some(i) if l.starts_with("Thread ") => format!("{}\n", &l[..i]),
            _ => format!("{l}\n"),
        })
        .collect();
    let core_dump = tool_text(&["dump", "--core", &kept_s])?;
    if core_dump != live_dump {
        return Err(format!("dump differs:\n{live_dump}\nvs\n{core_dump}"));
    }
    let why = tool_text(&["why", "--core", &kept_s, "-t", "__main__.Leaf"])?;
    if !why.contains("__main__.Leaf") {
        return Err(format!("why on the core: {why:.300}"));
    }
    if doc["core_file"].as_str() != Some(kept_s.as_str()) {
        return Err(format!("core_file {}", doc["core_file"]));
    }
    table.row(vec![
        interp.label.clone(),
        format!("{} MiB", core_size >> 20),
        live_gc.values().map(|v| v.0).sum::<u64>().to_string(),
        live_all.values().map(|v| v.0).sum::<u64>().to_string(),
        "census, retention, dump equal".into(),
    ]);
    Ok(())
}

#[test]
fn core_census_equals_live_census() {
    common::over_matrix(
        common::interpreters(),
        "snapshot --core vs live",
        "core",
        &["interpreter", "core", "gc objects", "all objects", "census"],
        common::each(check),
    );
}

/// The executable moved after the dump: `--executable` points at it.
#[test]
fn core_with_moved_executable() {
    // A statically linked interpreter: the runtime lives in the executable itself.
    let Some(interp) = common::interpreters()
        .into_iter()
        .find(|i| i.build().is_static() && !i.is_free_threaded())
    else {
        common::skip("no statically linked interpreter listed");
        return;
    };
    let dir = common::ScratchDir::new("moved-exe");
    let copy = dir.path().join("python-copy");
    std::fs::copy(&interp.argv_prefix[0], &copy).expect("copy interpreter");
    let copied = Interp {
        label: format!("{}-copy", interp.label),
        argv_prefix: vec![copy.to_string_lossy().into_owned()],
    };
    let target = Target::spawn(&copied, "known_heap.py", &[]).expect("spawn copy");
    let pid = target.pid_arg();
    let (live, _) =
        census(&["snapshot", "--pid", &pid, "--gc-only", "--format", "json"]).expect("live");
    let core = gcore(target.pid, dir.path()).expect("gcore");
    drop(target);
    let moved = dir.path().join("python-moved");
    std::fs::rename(&copy, &moved).expect("move interpreter");
    let core_s = core.to_string_lossy().into_owned();
    // Without the executable the runtime cannot be found: one line saying so.
    let run = common::run_tool(&["snapshot", "--core", &core_s, "--gc-only"]);
    assert!(
        !run.status.success(),
        "snapshot without the executable succeeded"
    );
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    let moved_s = moved.to_string_lossy().into_owned();
    let (from_core, _) = census(&[
        "snapshot",
        "--core",
        &core_s,
        "--executable",
        &moved_s,
        "--gc-only",
        "--format",
        "json",
    ])
    .expect("core census with --executable");
    assert_eq!(live, from_core, "{}", diff(&live, &from_core));
}

#[test]
fn core_option_errors_are_one_line() {
    let dir = common::ScratchDir::new("notcore");
    let not_core = dir.path().join("not-a-core");
    std::fs::write(&not_core, b"hello").unwrap();
    let s = not_core.to_string_lossy().into_owned();
    for args in [
        vec!["snapshot", "--core", s.as_str()],
        vec!["snapshot", "--core", "/nonexistent/core.1"],
        vec!["snapshot", "--core", "/bin/true"],
    ] {
        let run = common::run_tool(&args);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert_eq!(
            run.stderr.trim().lines().count(),
            1,
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.starts_with("pymemspy: "), "{}", run.stderr);
    }
}
