//! Every type's `bytes` on a heap shaped like a real program's (tests/targets/stdlib_heap.py:
//! asyncio with pending tasks, generators suspended at several depths, frames, itertools,
//! collections, threading, re, decimal, datetime, io, array, struct, weakrefs) against the sum of
//! `sys.getsizeof` the target computes itself.
//!
//! * `--gc-only`: every type of gc.get_objects() must match in count and bytes, exactly.
//! * the complete census: every type that has GC-tracked objects must count at least those;
//!   where it counts exactly them (every instance is tracked), its bytes must equal the truth's;
//!   where it counts more (tuples and dicts have untracked instances too), the referent closure
//!   (`full`) is the truth when it saw as many.
//!
//! The only exceptions, each with its reason, are listed below. Types whose `sys.getsizeof`
//! calls a `__sizeof__` written in Python are told apart by the target itself (`python_sizeof`):
//! the tool must flag exactly those (JSON `python_sizeof`) and is not asked for their bytes.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Interp, Table, Target};
use serde_json::Value;

/// Types whose complete-census bytes are compared with the GC truth only: the referent closure
/// holds a reference to the object's buffer while it sizes it, which changes what
/// `sys.getsizeof` says (`BytesIO.__sizeof__` skips a buffer whose refcount is above one).
const CLOSURE_PERTURBS: &[&str] = &["_io.BytesIO"];

type Counts = BTreeMap<String, (u64, u64)>;

fn counts(v: &Value) -> Counts {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, e)| {
                    let n = |i: usize| e[i].as_u64().unwrap_or(0);
                    (k.clone(), (n(0), n(1)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The tool's census: per type (count, bytes), and the types it flags as Python `__sizeof__`.
fn tool_census(target: &Target, gc_only: bool) -> Result<(Counts, BTreeSet<String>), String> {
    let pid = target.pid_arg();
    let mut args = vec!["snapshot", "--pid", &pid, "--format", "json"];
    if gc_only {
        args.push("--gc-only");
    }
    let doc = common::tool_json(&args).map_err(|e| format!("tool {args:?}: {e}"))?;
    let mut out = Counts::new();
    let mut flagged = BTreeSet::new();
    for t in doc["types"].as_array().ok_or("no types array")? {
        let name = t["type"].as_str().unwrap_or("").to_string();
        if t["python_sizeof"] == Value::Bool(true) {
            flagged.insert(name.clone());
        }
        // Two classes may share a name; the truth merges them too.
        let e = out.entry(name).or_insert((0, 0));
        e.0 += t["count"].as_u64().unwrap_or(0);
        e.1 += t["bytes"].as_u64().unwrap_or(0);
    }
    Ok((out, flagged))
}

/// What one census check found: types compared, exact, excused (with reasons), failures.
#[derive(Default)]
struct Outcome {
    checked: usize,
    exact: usize,
    /// (type, why it is not compared exactly).
    exceptions: Vec<(String, String)>,
    failures: Vec<String>,
}

fn get(c: &Counts, k: &str) -> (u64, u64) {
    c.get(k).copied().unwrap_or((0, 0))
}

/// `--gc-only` against gc.get_objects(): every type, count and bytes.
fn check_gc_only(truth: &Counts, tool: &Counts, python_sizeof: &BTreeSet<String>) -> Outcome {
    let mut o = Outcome::default();
    let names: BTreeSet<&String> = truth.keys().chain(tool.keys()).collect();
    for name in names {
        o.checked += 1;
        let (tc, tb) = get(truth, name);
        let (sc, sb) = get(tool, name);
        if tc != sc {
            o.failures
                .push(format!("gc-only {name}: count truth {tc}, tool {sc}"));
        } else if tb == sb {
            o.exact += 1;
        } else if python_sizeof.contains(name) {
            o.exceptions.push((
                name.to_string(),
                format!("__sizeof__ in Python (getsizeof {tb}, builtin rule {sb})"),
            ));
        } else {
            o.failures.push(format!(
                "gc-only {name}: bytes truth {tb}, tool {sb} ({tc} objects)"
            ));
        }
    }
    o
}

/// Types that also have objects gc.get_objects() does not list, more of them than the referent
/// closure reaches: the complete census counts more, so their bytes are not compared one to one.
const UNTRACKED_TOO: &[(&str, &str)] = &[
    (
        "tuple",
        "untracked once all items are atomic; code objects' internal tuples (co_localspluskinds, \
         names) and statics are beyond the referent closure",
    ),
    (
        "dict",
        "untracked when atomic; the dicts of static types and interned-string tables are beyond \
         the referent closure",
    ),
    (
        "type",
        "static types are untracked; the closure reaches only those something names",
    ),
    (
        "frame",
        "untracked frame objects: 3.11+ a frame object of a running or suspended frame \
         (_PyFrame_New_NoTrack), 3.8-3.10 frames kept for reuse",
    ),
    (
        "frozenset",
        "free-threaded: gc.get_objects() lists fewer than the referent closure reaches",
    ),
    (
        "function",
        "free-threaded: gc.get_objects() lists fewer than the referent closure reaches",
    ),
];

/// Objects of other types the complete census may count beyond what the truth sees: none, now
/// that a block counts only with a linked (or untracked) GC head or a refcount that is not an
/// address (`heap::arenas::alive`).
const PHANTOM_SLACK: u64 = 0;

/// The complete census, for every type with GC-tracked objects.
fn check_complete(
    gc_truth: &Counts,
    full_truth: &Counts,
    tool: &Counts,
    python_sizeof: &BTreeSet<String>,
) -> Outcome {
    let mut o = Outcome::default();
    for (name, &(gc_count, gc_bytes)) in gc_truth {
        o.checked += 1;
        let (sc, sb) = get(tool, name);
        let (fc, fb) = get(full_truth, name);
        let want = if sc == gc_count {
            Some(gc_bytes)
        } else if sc == fc && !CLOSURE_PERTURBS.contains(&name.as_str()) {
            Some(fb)
        } else {
            None
        };
        let untracked_too = UNTRACKED_TOO.iter().find(|(t, _)| t == name);
        if sc < gc_count {
            o.failures.push(format!(
                "complete {name}: {sc} objects, gc.get_objects() has {gc_count}"
            ));
        } else if want == Some(sb) {
            o.exact += 1;
        } else if python_sizeof.contains(name) {
            o.exceptions.push((
                name.clone(),
                "__sizeof__ in Python (complete census)".to_string(),
            ));
        } else if let Some(want) = want {
            o.failures.push(format!(
                "complete {name}: bytes truth {want}, tool {sb} ({sc} objects)"
            ));
        } else if let Some((_, why)) = untracked_too {
            o.exceptions.push((
                name.clone(),
                format!("{sc} objects, gc truth {gc_count}, referent closure {fc}: {why}"),
            ));
        } else if sc <= fc.max(gc_count) + PHANTOM_SLACK {
            o.exceptions.push((
                name.clone(),
                format!("{sc} objects, gc truth {gc_count}, referent closure {fc}: phantom blocks"),
            ));
        } else {
            o.failures.push(format!(
                "complete {name}: {sc} objects, gc truth {gc_count}, referent closure {fc}"
            ));
        }
    }
    o
}

#[test]
fn every_type_sized_like_sys_getsizeof() {
    let mut table = Table::new(&[
        "label",
        "gc-only types",
        "exact",
        "exceptions",
        "complete tracked types",
        "exact",
        "exceptions",
        "attempts",
    ]);
    let mut failures = Vec::new();
    let mut retried = Vec::new();
    // Exceptions by type: (the first interpreter's wording, the labels it applies to).
    let mut exceptions: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for interp in common::interpreters() {
        let label = &interp.label;
        // A failure is printed the moment it is seen (a long log may be cut before the end),
        // then measured once more on a fresh target: both attempts are reported, and only a
        // second failure fails the test (the target is a real program on a loaded machine).
        let mut attempts = 1;
        let mut outcome = measure(&interp);
        if let Some(first) = failed(&outcome) {
            println!("[{label}] FAILED, first attempt:\n  {}", first.join("\n  "));
            attempts = 2;
            outcome = measure(&interp);
            match failed(&outcome) {
                Some(again) => println!("[{label}] FAILED again:\n  {}", again.join("\n  ")),
                None => retried.push(format!("[{label}] {}", first.join("; "))),
            }
        }
        match outcome {
            Ok((gc, complete)) => {
                for (name, e) in gc.exceptions.iter().chain(&complete.exceptions) {
                    let entry = exceptions
                        .entry(name.clone())
                        .or_insert_with(|| (e.clone(), Vec::new()));
                    if !entry.1.contains(label) {
                        entry.1.push(label.clone());
                    }
                }
                failures.extend(gc.failures.iter().map(|f| format!("[{label}] {f}")));
                failures.extend(complete.failures.iter().map(|f| format!("[{label}] {f}")));
                table.row(vec![
                    label.clone(),
                    gc.checked.to_string(),
                    gc.exact.to_string(),
                    gc.exceptions.len().to_string(),
                    complete.checked.to_string(),
                    complete.exact.to_string(),
                    complete.exceptions.len().to_string(),
                    attempts.to_string(),
                ]);
            }
            Err(e) => failures.push(format!("[{label}] {e}")),
        }
    }
    table.print("every_type_sized_like_sys_getsizeof");
    println!("exceptions, by type (the first interpreter's figures; where they apply):");
    for (name, (why, labels)) in &exceptions {
        println!("  {name} [{}]: {why}", labels.join(", "));
    }
    if !retried.is_empty() {
        println!(
            "exact only on the second attempt ({}), the first attempt's failures:",
            retried.len()
        );
        for r in &retried {
            println!("  {r}");
        }
    }
    common::assert_no_failures("every_type_sized_like_sys_getsizeof", &failures);
}

/// The failures of one attempt, None when it passed.
fn failed(outcome: &Result<(Outcome, Outcome), String>) -> Option<Vec<String>> {
    match outcome {
        Err(e) => Some(vec![e.clone()]),
        Ok((gc, complete)) if !gc.failures.is_empty() || !complete.failures.is_empty() => Some(
            gc.failures
                .iter()
                .chain(&complete.failures)
                .cloned()
                .collect(),
        ),
        Ok(_) => None,
    }
}

fn measure(interp: &Interp) -> Result<(Outcome, Outcome), String> {
    let target = Target::spawn(interp, "stdlib_heap.py", &[])?;
    let gc_truth = counts(&target.truth["types"]);
    let full_truth = counts(&target.truth["full"]["types"]);
    let python_sizeof: BTreeSet<String> = target.truth["python_sizeof"]
        .as_array()
        .ok_or("truth lacks python_sizeof")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if python_sizeof.is_empty() {
        return Err("the target's classes with a Python __sizeof__ were not seen".into());
    }
    let (gc_tool, gc_flagged) = tool_census(&target, true)?;
    let (complete_tool, complete_flagged) = tool_census(&target, false)?;
    let mut gc = check_gc_only(&gc_truth, &gc_tool, &python_sizeof);
    let mut complete = check_complete(&gc_truth, &full_truth, &complete_tool, &python_sizeof);
    // The tool flags exactly the types whose getsizeof is Python code.
    for (what, flagged, outcome) in [
        ("gc-only", &gc_flagged, &mut gc),
        ("complete", &complete_flagged, &mut complete),
    ] {
        if *flagged != python_sizeof {
            outcome.failures.push(format!(
                "{what}: tool flags python_sizeof on {flagged:?}, the target says {python_sizeof:?}"
            ));
        }
    }
    Ok((gc, complete))
}

/// The stdlib heap's truth is a fixed point on every interpreter (the objects alive after it is
/// published are the ones it counts): otherwise a difference above would be the truth's.
#[test]
fn stdlib_heap_truth_is_a_fixed_point() {
    common::over_matrix(
        common::interpreters(),
        "stdlib_heap_truth_is_a_fixed_point",
        "stdlib_heap_truth_is_a_fixed_point",
        &["label", "verdict"],
        |interp, table, failures| {
            let dir = common::ScratchDir::new("selfcheck-stdlib");
            let truth = dir.path().join("truth.json");
            let truth = truth.to_string_lossy();
            let run = common::run_script(
                interp,
                "stdlib_heap.py",
                &[truth.as_ref()],
                &[("PYMEMSPY_SELFCHECK", "1")],
            );
            let verdict = run
                .stderr
                .lines()
                .rfind(|l| l.starts_with("SELFCHECK OK") || l.starts_with("SELFCHECK FAIL"))
                .unwrap_or("no verdict")
                .to_string();
            if !(run.status.success() && !run.timed_out && verdict.starts_with("SELFCHECK OK")) {
                failures.push(format!("[{}] {}", interp.label, run.describe()));
            }
            table.row(vec![interp.label.clone(), verdict]);
            Ok(())
        },
    );
}
