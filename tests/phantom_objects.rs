//! The complete census counts no phantom objects: pymalloc blocks holding pointer arrays shaped
//! like object headers (a list's items [obj, type(obj), ...], isinstance tuples, dicts keyed by
//! type, gc.get_referents results), alive or freed, are not objects
//! (tests/targets/phantom_heap.py plants them for tracked and untracked types).
//!
//! Per phase (start, base, planted, freed) three consecutive snapshots, each checked exactly:
//! - every type the target knows the number of (a heap class with 20,000 instances, slotted
//!   subclasses of int, float, str, bytes, tuple and dict) equals that number;
//! - every always-tracked type (lists, the heap classes) equals gc.get_objects();
//! - the builtin types the decoys name (int, float, str, bytes, tuple, dict) move between
//!   phases by the decoys the target made of them (none for int, float, str, bytes: the decoys
//!   hold only objects that existed before them), give or take `BUILTIN_SLACK`: a static
//!   object (b'&', a small int) is found only while something references it, and interpreter
//!   caches keep a str or tuple now and then. The slotted subclasses, counted exactly, run the
//!   very rules these types do.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{Interp, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// Types every instance of which is on a GC list from birth to death: the tool must count
/// exactly what gc.get_objects() lists.
const ALWAYS_TRACKED: &[&str] = &[
    "list",
    "__main__.Plain",
    "__main__.Slotted",
    "__main__.MyTuple",
    "__main__.MyDict",
];
/// Builtin types the decoys name, compared between phases.
const BUILTINS: &[&str] = &["int", "float", "str", "bytes", "tuple", "dict"];
const SNAPSHOTS: usize = 3;
/// How far a builtin type's count may move between phases for reasons of the target's own.
const BUILTIN_SLACK: i64 = 1;

type Counts = BTreeMap<String, u64>;

fn snapshot(target: &Target) -> Result<Counts, String> {
    let snap = common::snapshot_json(&target.pid_arg())?;
    Ok(snap["types"]
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
        .unwrap_or_default())
}

/// Signal the target on to the next phase and wait until it has published it and gone idle.
fn advance(target: &mut Target, phase: u64) -> Result<(), String> {
    kill(Pid::from_raw(target.pid as i32), Signal::SIGUSR1).map_err(|e| e.to_string())?;
    let path = target.scratch().join("truth.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = read_truth(&path).filter(|t| t["phase"].as_u64() == Some(phase)) {
            target.truth = t;
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "target did not reach phase {phase}; log:\n{}",
                target.log_tail()
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
    // The truth appears a few bytecodes before the target sleeps again.
    common::wait_for_state(target.pid, 'S', Duration::from_secs(10))?;
    thread::sleep(Duration::from_millis(200));
    common::wait_for_state(target.pid, 'S', Duration::from_secs(10))
}

fn read_truth(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

struct Phase {
    name: String,
    truth: Value,
    snaps: Vec<Counts>,
}

fn gc_count(truth: &Value, ty: &str) -> u64 {
    truth["types"][ty][0].as_u64().unwrap_or(0)
}

fn run(interp: &Interp, failures: &mut Vec<String>) -> Result<Vec<Phase>, String> {
    let mut target = Target::spawn(interp, "phantom_heap.py", &[])?;
    let mut phases = Vec::new();
    for phase in 0..4u64 {
        if phase > 0 {
            advance(&mut target, phase)?;
        }
        let mut snaps = Vec::new();
        for _ in 0..SNAPSHOTS {
            snaps.push(snapshot(&target)?);
        }
        phases.push(Phase {
            name: target.truth["phase_name"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
            truth: target.truth.clone(),
            snaps,
        });
    }
    let label = &interp.label;
    let get = |c: &Counts, ty: &str| c.get(ty).copied().unwrap_or(0);
    for p in &phases {
        for (i, s) in p.snaps.iter().enumerate() {
            let at = format!("[{label}] {} #{}", p.name, i + 1);
            if let Some(known) = p.truth["known"].as_object() {
                for (ty, n) in known {
                    let n = n.as_u64().unwrap_or(0);
                    if get(s, ty) != n {
                        failures.push(format!("{at}: {ty} counted {}, made {n}", get(s, ty)));
                    }
                }
            }
            for &ty in ALWAYS_TRACKED {
                let want = gc_count(&p.truth, ty);
                if get(s, ty) != want {
                    failures.push(format!(
                        "{at}: {ty} counted {}, gc.get_objects() {want}",
                        get(s, ty)
                    ));
                }
            }
        }
    }
    // Builtins: each later phase's count is the base's plus the decoys made of that type.
    let base = &phases[1].snaps[0];
    for p in &phases[1..] {
        for (i, s) in p.snaps.iter().enumerate() {
            for &ty in BUILTINS {
                let made = if p.name == "planted" {
                    p.truth["made"][ty].as_u64().unwrap_or(0)
                } else {
                    0
                };
                let want = get(base, ty) + made;
                if (get(s, ty) as i64 - want as i64).abs() > BUILTIN_SLACK {
                    failures.push(format!(
                        "[{label}] {} #{}: {ty} counted {} = base {} {:+}, decoys made {made}",
                        p.name,
                        i + 1,
                        get(s, ty),
                        get(base, ty),
                        get(s, ty) as i64 - get(base, ty) as i64
                    ));
                }
            }
        }
    }
    Ok(phases)
}

#[test]
fn no_phantom_objects() {
    common::over_matrix(
        common::interpreters(),
        "no_phantom_objects",
        "no_phantom_objects",
        &[
            "label",
            "phase",
            "Plain tool/truth",
            "list tool/gc",
            "MyInt/MyStr/MyFloat/MyBytes",
            "int/str/float excess",
            "tuple/dict excess",
        ],
        |interp, table, failures| {
            if interp.is_free_threaded() {
                // No pymalloc arenas: the mimalloc scan has its own page-level checks.
                common::unsupported(&interp.label, "no pymalloc arenas (free-threaded)");
                return Ok(());
            }
            let phases = run(interp, failures)?;
            let base = phases[1].snaps[0].clone();
            for p in &phases[1..] {
                let s = &p.snaps[SNAPSHOTS - 1];
                let get = |c: &Counts, ty: &str| c.get(ty).copied().unwrap_or(0) as i64;
                let made = |ty: &str| {
                    if p.name == "planted" {
                        p.truth["made"][ty].as_i64().unwrap_or(0)
                    } else {
                        0
                    }
                };
                let excess = |ty: &str| get(s, ty) - get(&base, ty) - made(ty);
                table.row(vec![
                    interp.label.clone(),
                    p.name.clone(),
                    format!("{}/{}", get(s, "__main__.Plain"), 20000),
                    format!("{}/{}", get(s, "list"), gc_count(&p.truth, "list")),
                    ["MyInt", "MyStr", "MyFloat", "MyBytes"]
                        .iter()
                        .map(|t| get(s, &format!("__main__.{t}")).to_string())
                        .collect::<Vec<_>>()
                        .join("/"),
                    format!("{}/{}/{}", excess("int"), excess("str"), excess("float")),
                    format!("{}/{}", excess("tuple"), excess("dict")),
                ]);
            }
            Ok(())
        },
    );
}
