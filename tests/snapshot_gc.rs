//! `pymemspy snapshot --gc-only` against ground truth computed inside real
//! interpreters (tests/targets/known_heap.py, tests/targets/_truth.py).
//!
//! Free-threaded builds have no GC lists: there `--gc-only` counts the objects
//! of the mimalloc GC heaps whose `ob_gc_bits` has TRACKED, which is exactly
//! what gc.get_objects() returns, so every type is compared the same way.
//!
//! Every test iterates all interpreters sequentially, collects failures,
//! prints a per-interpreter table, and only then asserts. Run with
//! `cargo test --test snapshot_gc -- --nocapture` to see the tables.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Interp, Run, Table, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// Types whose bytes must match sys.getsizeof exactly. OrderedDict is left
/// out on purpose: its __sizeof__ adds the size of its private linked list.
const EXACT_BYTES: &[&str] = &[
    "__main__.Leaf",
    "__main__.Outer.Inner",
    "list",
    "dict",
    "set",
    "tuple",
    "__main__.DictSub",
    "__main__.Slotted",
    "function",
    "cell",
    "type",
];

const SCHEMA: &str = "pymemspy.snapshot/1";

/// Per-type (count, bytes), keyed by type name.
type Census = BTreeMap<String, (u64, u64)>;

/// What the tool reported, reduced to what the tests compare.
struct Snapshot {
    total_objects: u64,
    total_bytes: u64,
    types: Census,
    /// The collector section: objects on the generations' lists (None on free-threaded
    /// builds, which keep none), frozen ones, and every tracked one where reported.
    gc_listed: Option<u64>,
    gc_frozen: Option<u64>,
    gc_tracked: Option<u64>,
    /// How the objects were found (`coverage.sources`).
    sources: Vec<String>,
}

/// The result of comparing one snapshot with the truth.
struct Verdict {
    failures: Vec<String>,
    /// Bytes differences on types outside EXACT_BYTES: printed, not failures.
    notes: Vec<String>,
    types_matched: usize,
    types_total: usize,
}

fn truth_census(truth: &Value) -> Census {
    let types = truth["types"].as_object().expect("truth has types");
    types
        .iter()
        .map(|(name, v)| {
            let count = v[0].as_u64().expect("truth count");
            let bytes = v[1].as_u64().expect("truth bytes");
            (name.clone(), (count, bytes))
        })
        .collect()
}

/// Parse and sanity-check the tool's JSON output.
fn parse_snapshot(stdout: &str, pid: u32) -> Result<Snapshot, String> {
    let doc: Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("output is not JSON ({e}): {:.300}", stdout.trim()))?;
    if doc["schema"] != SCHEMA {
        return Err(format!("schema {} != {SCHEMA:?}", doc["schema"]));
    }
    if doc["pid"].as_u64() != Some(u64::from(pid)) {
        return Err(format!("pid {} != {pid}", doc["pid"]));
    }
    let field = |v: &Value, key: &str| -> Result<u64, String> {
        v[key]
            .as_u64()
            .ok_or_else(|| format!("missing integer {key:?} in {v}"))
    };
    let mut types = Census::new();
    for entry in doc["types"].as_array().ok_or("no types array")? {
        let name = entry["type"].as_str().ok_or("type entry without name")?;
        let slot = types.entry(name.to_string()).or_insert((0, 0));
        // Two distinct classes may share a name; the truth merges them too.
        slot.0 += field(entry, "count")?;
        slot.1 += field(entry, "bytes")?;
    }
    let gens = doc["gc"]["generations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let gc_listed = gens
        .iter()
        .map(|g| g["objects"].as_u64())
        .sum::<Option<u64>>()
        .filter(|_| !gens.is_empty());
    Ok(Snapshot {
        gc_listed,
        gc_frozen: doc["gc"]["frozen"].as_u64(),
        gc_tracked: doc["gc"]["tracked"].as_u64(),
        sources: doc["coverage"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
        total_objects: field(&doc["totals"], "objects")?,
        total_bytes: field(&doc["totals"], "bytes")?,
        types,
    })
}

/// Compare a snapshot with the truth.
///
/// The tool also walks the permanent generation, which gc.get_objects() does
/// not: per type the tool may see more than the truth, the excess summed over
/// all types is exactly freeze_count (at census time), and when that is 0
/// every type matches exactly. Types the target built itself are created
/// after anything was frozen, so they always match exactly.
fn compare(truth: &Value, snap: &Snapshot) -> Verdict {
    let want = truth_census(truth);
    let frozen = truth["freeze_count"].as_u64().expect("freeze_count");
    let mut v = Verdict {
        failures: Vec::new(),
        notes: Vec::new(),
        types_matched: 0,
        types_total: 0,
    };
    check_totals(truth, snap, frozen, &mut v.failures);
    check_collector(truth, snap, frozen, &mut v.failures);
    let names: std::collections::BTreeSet<&String> = want.keys().chain(snap.types.keys()).collect();
    v.types_total = names.len();
    let mut excess = 0i64;
    for name in names {
        let (tc, tb) = want.get(name).copied().unwrap_or((0, 0));
        let (sc, sb) = snap.types.get(name).copied().unwrap_or((0, 0));
        if tc == sc {
            v.types_matched += 1;
            check_bytes(name, tb, sb, &mut v);
        } else if sc < tc || frozen == 0 {
            v.failures
                .push(format!("{name}: count truth {tc}, tool {sc}"));
        }
        excess += sc as i64 - tc as i64;
    }
    if excess != frozen as i64 {
        v.failures.push(format!(
            "per-type excess over truth sums to {excess}, expected freeze_count {frozen}"
        ));
    }
    check_built(truth, snap, frozen, &mut v.failures);
    v
}

/// The collector section agrees with the truth: every tracked object is either on the
/// generations' lists (or, free-threaded, found in the heaps) or frozen, and the frozen ones are
/// gc.get_freeze_count()'s — or, when the target froze everything after its census (`--freeze`),
/// all of them.
fn check_collector(truth: &Value, snap: &Snapshot, frozen: u64, failures: &mut Vec<String>) {
    let all = truth["total_objects"].as_u64().expect("total_objects") + frozen;
    let froze_after = truth["frozen"] == Value::Bool(true);
    let want_frozen = if froze_after { all } else { frozen };
    let tool_frozen = snap.gc_frozen.unwrap_or(u64::MAX);
    if tool_frozen != want_frozen {
        failures.push(format!(
            "gc.frozen: tool {:?}, want {want_frozen}",
            snap.gc_frozen
        ));
    }
    let tracked = match (snap.gc_listed, snap.gc_tracked) {
        (Some(listed), None) => Some(listed + tool_frozen),
        (None, Some(tracked)) => Some(tracked),
        _ => None,
    };
    // The output says which objects --gc-only counted: those gc.get_objects() lists and those
    // gc.freeze() put in the permanent generation, which it does not (GC-list builds).
    if snap.gc_listed.is_some() {
        let want = format!(
            "GC lists ({all} objects: {} as gc.get_objects() lists them, {want_frozen} frozen by \
             gc.freeze() in the permanent generation)",
            all - want_frozen
        );
        if snap.sources != [want.clone()] {
            failures.push(format!("sources: {:?}, want [{want:?}]", snap.sources));
        }
    }
    if tracked != Some(all) {
        failures.push(format!(
            "gc section: listed {:?}, tracked {:?}, frozen {:?}; want {all} tracked in all \
             (exactly one of listed/tracked reported)",
            snap.gc_listed, snap.gc_tracked, snap.gc_frozen
        ));
    }
}

fn check_totals(truth: &Value, snap: &Snapshot, frozen: u64, failures: &mut Vec<String>) {
    let want = truth["total_objects"].as_u64().expect("total_objects") + frozen;
    if snap.total_objects != want {
        failures.push(format!(
            "total objects: tool {}, truth {want} (incl. freeze_count {frozen})",
            snap.total_objects
        ));
    }
    // The per-type list must be complete: it has to add up to the totals.
    let (count, bytes) = snap
        .types
        .values()
        .fold((0, 0), |(c, b), (tc, tb)| (c + tc, b + tb));
    if (count, bytes) != (snap.total_objects, snap.total_bytes) {
        failures.push(format!(
            "types add up to {count} objects / {bytes} B, totals say {} / {} B",
            snap.total_objects, snap.total_bytes
        ));
    }
}

fn check_bytes(name: &str, want: u64, got: u64, v: &mut Verdict) {
    if want == got {
        return;
    }
    let line = format!("{name}: bytes truth {want}, tool {got}");
    if EXACT_BYTES.contains(&name) {
        v.failures.push(line);
    } else {
        v.notes.push(line);
    }
}

/// The types known_heap.py built must be counted exactly (and the truth must
/// have seen at least what was built, or the target itself is wrong). A builtin
/// type such as tuple may also have instances frozen at startup (3.12.1 freezes
/// 375 tuples), which the tool sees and gc.get_objects() does not.
fn check_built(truth: &Value, snap: &Snapshot, frozen: u64, failures: &mut Vec<String>) {
    let want = truth_census(truth);
    let built = truth["built"].as_object().expect("truth has built");
    for (name, n) in built {
        let n = n.as_u64().expect("built count");
        let tc = want.get(name).map_or(0, |c| c.0);
        let sc = snap.types.get(name).map_or(0, |c| c.0);
        if tc < n {
            failures.push(format!("{name}: target built {n} but truth counted {tc}"));
        }
        if sc < tc || sc > tc + frozen {
            failures.push(format!("{name} (built): truth {tc}, tool {sc}"));
        }
    }
}

/// Run the tool on a target and compare; Err on a tool failure.
fn snapshot_and_compare(target: &Target) -> Result<(Verdict, Snapshot, Duration), String> {
    let run = common::run_tool(&[
        "snapshot",
        "--pid",
        &target.pid_arg(),
        "--format",
        "json",
        "--gc-only",
    ]);
    if !run.status.success() || run.timed_out {
        return Err(format!("tool failed: {}", run.describe()));
    }
    let snap = parse_snapshot(&run.stdout, target.pid)?;
    Ok((compare(&target.truth, &snap), snap, run.elapsed))
}

const HEADER: &[&str] = &[
    "label",
    "version",
    "objects truth(+frozen)",
    "objects tool",
    "types matched",
    "tool time",
    "result",
];

/// One table row plus the failures (prefixed with the label) of one run.
fn record(
    label: &str,
    target: &Target,
    outcome: &Result<(Verdict, Snapshot, Duration), String>,
    table: &mut Table,
    failures: &mut Vec<String>,
) {
    let truth_total = target.truth_u64("total_objects");
    let frozen = target.truth_u64("freeze_count");
    let mut row = vec![
        label.to_string(),
        target.truth_version(),
        format!("{truth_total}(+{frozen})"),
    ];
    match outcome {
        Ok((verdict, snap, elapsed)) => {
            for note in &verdict.notes {
                println!("note [{label}] bytes differ (not checked): {note}");
            }
            row.push(snap.total_objects.to_string());
            row.push(format!("{}/{}", verdict.types_matched, verdict.types_total));
            row.push(format!("{:.2}s", elapsed.as_secs_f64()));
            row.push(
                if verdict.failures.is_empty() {
                    "ok"
                } else {
                    "FAIL"
                }
                .into(),
            );
            failures.extend(verdict.failures.iter().map(|f| format!("[{label}] {f}")));
        }
        Err(err) => {
            row.extend(["-".into(), "-".into(), "-".into(), "FAIL".into()]);
            failures.push(format!("[{label}] {err}"));
        }
    }
    table.row(row);
}

/// Row for an interpreter that was skipped or whose target did not start.
fn record_no_target(label: &str, why: &str, table: &mut Table) {
    let mut row = vec![label.to_string()];
    row.extend(std::iter::repeat_n("-".to_string(), 5));
    row.push(why.to_string());
    table.row(row);
}

/// Spawn known_heap.py with `args` on every interpreter and compare a
/// snapshot with its truth; `extra` runs further checks on a live target.
fn census_scenario(
    test: &str,
    args: &[&str],
    extra: impl Fn(&Interp, &Target, &mut Table, &mut Vec<String>),
) {
    common::over_matrix(
        common::interpreters(),
        test,
        test,
        HEADER,
        |interp, table, failures| {
            let target = Target::spawn(interp, "known_heap.py", args).map_err(|err| {
                record_no_target(&interp.label, "FAIL (target)", table);
                format!("target did not start: {err}")
            })?;
            let outcome = snapshot_and_compare(&target);
            record(&interp.label, &target, &outcome, table, failures);
            extra(interp, &target, table, failures);
            Ok(())
        },
    );
}

#[test]
fn gc_census_matches_truth() {
    census_scenario("gc_census_matches_truth", &[], |_, _, _, _| {});
}

#[test]
fn frozen_census_matches_truth() {
    census_scenario(
        "frozen_census_matches_truth",
        &["--freeze"],
        |interp, target, _, failures| {
            if target.truth["frozen"] != Value::Bool(true) {
                failures.push(format!("[{}] target did not record frozen", interp.label));
            }
        },
    );
}

#[test]
fn deadlocked_and_stopped_targets() {
    census_scenario(
        "deadlocked_and_stopped_targets",
        &["--deadlock"],
        |interp, target, table, failures| {
            let label = format!("{} (SIGSTOPped)", interp.label);
            match stop(target) {
                Ok(()) => {
                    let outcome = snapshot_and_compare(target);
                    record(&label, target, &outcome, table, failures);
                    // The tool must leave a stopped process stopped.
                    if let Err(err) = common::wait_for_state(target.pid, 'T', Duration::ZERO) {
                        failures.push(format!("[{label}] not stopped after the tool ran: {err}"));
                    }
                }
                Err(err) => failures.push(format!("[{label}] could not stop target: {err}")),
            }
            let _ = kill(Pid::from_raw(target.pid as i32), Signal::SIGCONT);
        },
    );
}

/// SIGSTOP the target and wait until the kernel reports it stopped.
fn stop(target: &Target) -> Result<(), String> {
    kill(Pid::from_raw(target.pid as i32), Signal::SIGSTOP).map_err(|e| e.to_string())?;
    common::wait_for_state(target.pid, 'T', Duration::from_secs(10))
}

/// A failed run must say why on exactly one line of stderr.
fn check_one_line_error(
    what: &str,
    run: &Run,
    must_mention: &[&str],
    any_of: &[&str],
) -> Vec<String> {
    let mut failures = Vec::new();
    let stderr = run.stderr.trim();
    let lower = stderr.to_lowercase();
    if run.status.success() || run.timed_out {
        failures.push(format!(
            "{what}: expected a non-zero exit, got {}",
            run.describe()
        ));
    }
    if stderr.is_empty() || stderr.lines().count() != 1 {
        failures.push(format!("{what}: stderr should be one line, got {stderr:?}"));
    }
    for word in must_mention {
        if !lower.contains(&word.to_lowercase()) {
            failures.push(format!(
                "{what}: stderr does not mention {word:?}: {stderr:?}"
            ));
        }
    }
    if !any_of.iter().any(|p| lower.contains(p)) {
        failures.push(format!(
            "{what}: stderr says none of {any_of:?}: {stderr:?}"
        ));
    }
    failures
}

#[test]
fn errors_are_one_clear_line() {
    let mut table = Table::new(&["case", "exit", "stderr"]);
    let mut failures = Vec::new();

    let missing = "999999999";
    let run = common::run_tool(&["snapshot", "--pid", missing]);
    table.row(vec![
        "no such pid".into(),
        run.status.to_string(),
        run.stderr.trim().into(),
    ]);
    failures.extend(check_one_line_error(
        "missing pid",
        &run,
        &[missing],
        &[
            "no such process",
            "not exist",
            "does not exist",
            "not found",
            "no process",
        ],
    ));

    let sleeper = common::KillOnDrop::spawn("sleep", &["30"]);
    let pid = sleeper.pid().to_string();
    let run = common::run_tool(&["snapshot", "--pid", &pid]);
    drop(sleeper);
    table.row(vec![
        "not python (sleep)".into(),
        run.status.to_string(),
        run.stderr.trim().into(),
    ]);
    failures.extend(check_one_line_error(
        "non-Python pid",
        &run,
        &[&pid, "python"],
        &["not a python", "not python", "no python"],
    ));

    table.print("errors_are_one_clear_line");
    common::assert_no_failures("errors_are_one_clear_line", &failures);
}
