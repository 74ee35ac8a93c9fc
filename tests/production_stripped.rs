//! Stripped builds with and without their debug file (docs/stripped-builds.md): which layout sources
//! are used, what still works, and `--debug-dir` pointing at an unpacked `python3.X-dbg`.

mod common;

use common::{Interp, ScratchDir, Table, Target};
use serde_json::Value;
use std::path::Path;

fn layout_sources(pid: &str, extra: &[&str]) -> Result<Vec<String>, String> {
    let mut args = vec!["layout", "--pid", pid];
    args.extend_from_slice(extra);
    let doc = common::tool_json(&args)?;
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
    let doc = common::tool_json(&args)?;
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

/// A stripped 3.11 (a distribution's build, statics without symbols), with or without its
/// build-id debug file beside it: Debian's system python and its -dbg tree.
fn stripped_311(debug_file: bool) -> Option<Interp> {
    common::interpreters().into_iter().find(|i| {
        let b = i.build();
        b.version == (3, 11) && b.stripped && b.debug_file == debug_file && !b.via_loader
    })
}

#[test]
fn stripped_builds_with_and_without_debug_files() {
    let (Some(system), Some(dbg)) = (stripped_311(false), stripped_311(true)) else {
        common::skip(
            "the Debian 3.11 pair (stripped, and stripped with its debug file) is not listed",
        );
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

    // Debian's stripped system python without python3.11-dbg: tables and heuristics only;
    // tracemalloc's tables are found without symbols (`tracemalloc_discovery`).
    let t = Target::spawn(&system, "known_heap.py", &[]).expect("system python");
    match survey(&t.pid_arg(), &[]) {
        Ok(row) => {
            if row[0] != "tables only" || row[2] != "exact" {
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

    // The binary alone, away from its tree: no DWARF until --debug-dir names the unpacked
    // package's usr/lib/debug (tracemalloc's tables are found either way).
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
                    row[0] == "tables only" && row[2] == "exact"
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

/// A recording of the demo started on Debian's stripped python3 (no `usedpools`, no `arenas`
/// symbol): pymalloc's arenas are found from the first census on (right after start no
/// collection has promoted anything to the old generation the heuristic used to sample alone)
/// and its list of pools in use from `.data`, so neither warning says pymalloc is missing on a
/// pymalloc build.
#[test]
fn stripped_recording_from_the_start_finds_pymalloc() {
    let Some(system) = stripped_311(false) else {
        common::skip("no stripped 3.11 without its debug file (Debian's system python) is listed");
        return;
    };
    let dir = ScratchDir::new("stripped-record");
    let out = dir.path().join("demo.json");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo/leaky.py");
    let mut args = vec![
        "record",
        "--duration",
        "3",
        "-o",
        out.to_str().unwrap(),
        "--",
    ];
    args.extend(system.argv_prefix.iter().map(String::as_str));
    args.push(demo.to_str().unwrap());
    let run = common::run_tool(&args);
    assert!(run.status.success(), "record: {}", run.describe());
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let warnings = strings(&doc["warnings"]);
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("pymalloc") || w.contains("pools")),
        "pymalloc warnings on a pymalloc build: {warnings:?}"
    );
    assert!(!run.stderr.contains("pymalloc"), "{}", run.stderr);
}

/// The layout cache (docs/stripped-builds.md, "The layout cache"): on every listed interpreter whose
/// layout comes from DWARF, a second snapshot with the same cache directory takes the offsets
/// from the cache and finds the same layout and the same census; a damaged cache file is
/// ignored and rewritten.
#[test]
fn layout_cache_gives_the_same_layout_and_census() {
    common::over_matrix(
        common::interpreters(),
        "layout cache",
        "layout cache",
        &["interpreter", "first", "second", "damaged", "census"],
        |interp, table, _| {
            let t = Target::spawn(interp, "known_heap.py", &[])?;
            match cache_round(&t)? {
                Some(row) => table.row([vec![interp.label.clone()], row].concat()),
                None => table.row(
                    [interp.label.as_str(), "no DWARF", "", "", ""]
                        .map(String::from)
                        .to_vec(),
                ),
            }
            Ok(())
        },
    );
}

/// One target: Ok(None) when its layout has no DWARF, else the table row.
fn cache_round(t: &Target) -> Result<Option<Vec<String>>, String> {
    let pid = t.pid_arg();
    let cache = ScratchDir::new("layout-cache");
    let with_cache = [("XDG_CACHE_HOME", cache.path().as_os_str())];
    let no_cache = [("PYMEMSPY_NO_CACHE", std::ffi::OsStr::new("1"))];
    let layout = |env: &[(&str, &std::ffi::OsStr)]| -> Result<Value, String> {
        let run = common::run_tool_env(&["layout", "--pid", &pid], env);
        if !run.status.success() {
            return Err(format!("layout: {}", run.describe()));
        }
        let doc: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
        Ok(doc["layout"].clone())
    };
    let snapshot = || -> Result<(Vec<String>, Value), String> {
        let args = ["snapshot", "--pid", &pid, "--format", "json", "--pause"];
        let run = common::run_tool_env(&args, &with_cache);
        if !run.status.success() {
            return Err(format!("snapshot: {}", run.describe()));
        }
        let doc: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
        let sources = strings(&doc["coverage"]["layout"]);
        Ok((sources, doc))
    };
    let dwarf_source = |sources: &[String]| {
        sources
            .iter()
            .find(|s| s.starts_with("DWARF from "))
            .cloned()
    };

    let fresh = layout(&no_cache)?;
    let Some(source) = dwarf_source(&strings(&fresh["sources"])) else {
        return Ok(None);
    };
    let cached_source = format!("{source} (cached)");

    let (first, first_doc) = snapshot()?;
    if dwarf_source(&first).as_ref() != Some(&source) {
        return Err(format!("first run with an empty cache: {first:?}"));
    }
    let files: Vec<_> = std::fs::read_dir(cache.path().join("pymemspy"))
        .map_err(|e| format!("no cache directory written: {e}"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    let [file] = files.as_slice() else {
        return Err(format!("cache files: {files:?}"));
    };

    let (second, second_doc) = snapshot()?;
    if dwarf_source(&second).as_ref() != Some(&cached_source) {
        return Err(format!("second run: {second:?}"));
    }
    // The cached layout is the one DWARF gives, to the last field.
    let mut from_cache = layout(&with_cache)?;
    if strings(&from_cache["sources"]) != strings(&fresh["sources"]) {
        let mut want = strings(&fresh["sources"]);
        for s in want.iter_mut().filter(|s| **s == source) {
            *s = cached_source.clone();
        }
        if strings(&from_cache["sources"]) != want {
            return Err(format!("cached layout sources: {}", from_cache["sources"]));
        }
        from_cache["sources"] = fresh["sources"].clone();
    }
    if from_cache != fresh {
        return Err(format!(
            "cached layout differs:\n  fresh  {fresh}\n  cached {from_cache}"
        ));
    }
    // The same census: every type the target built itself, counted alike.
    let built: Vec<String> = t.truth["built"]
        .as_object()
        .ok_or("truth has no \"built\"")?
        .keys()
        .cloned()
        .collect();
    let (a, b) = (counts(&first_doc, &built), counts(&second_doc, &built));
    if a != b || a.iter().all(|(_, n)| *n == 0) {
        return Err(format!("census differs: first {a:?}, second {b:?}"));
    }

    // A damaged entry: ignored (DWARF read again), then rewritten whole.
    std::fs::write(file, b"{\"schema\": 1, \"offsets\": {\"_is.next\": ")
        .map_err(|e| e.to_string())?;
    let (third, _) = snapshot()?;
    if dwarf_source(&third).as_ref() != Some(&source) {
        return Err(format!("run after damaging the cache: {third:?}"));
    }
    let rewritten: Value = std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("damaged cache file not rewritten")?;
    if !rewritten["offsets"].is_object() {
        return Err(format!("rewritten cache file: {rewritten}"));
    }
    let objects: u64 = a.iter().map(|(_, n)| n).sum();
    Ok(Some(vec![
        "read".into(),
        "cached".into(),
        "ignored, rewritten".into(),
        format!("{objects} built objects alike"),
    ]))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// Per-type object counts of a snapshot document, for the named types.
fn counts(doc: &Value, names: &[String]) -> Vec<(String, u64)> {
    names
        .iter()
        .map(|name| {
            let n = doc["types"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["type"].as_str() == Some(name))
                .filter_map(|e| e["count"].as_u64())
                .sum();
            (name.clone(), n)
        })
        .collect()
}
