//! The complete census (GC lists + pymalloc arenas + referents) against a truth the target
//! computes itself: the closure of gc.get_referents over gc.get_objects().
//!
//! That truth cannot see a few thousand objects every interpreter keeps out of the GC's sight
//! (interned strings held by an untracked dict, code-object internals such as co_localspluskinds):
//! the tool, reading memory, does see them. So besides the raw comparison we run each target at
//! two scales and require the tool's excess over the truth to stay constant: whatever the heap
//! grows by, the tool counts within 1%. And as every object the truth names is a real object, the
//! tool never counts fewer of a checked type than the truth.
//!
//! On 3.11+ each code object's local names sit in a tuple no attribute returns
//! (co_localsplusnames). Equal name tuples are shared (the compiler's constant cache, deepfreeze),
//! so the truth finds each by address and counts it once: one per code object counted ~600
//! tuples that do not exist, which read as tuples the tool missed.

mod common;

use common::{Interp, Target};
use serde_json::Value;
use std::collections::BTreeMap;

/// Types the issue names, checked per type.
const CHECKED: &[&str] = &[
    "list",
    "float",
    "str",
    "bytes",
    "int",
    "tuple",
    "dict",
    "decimal.Decimal",
    "datetime.datetime",
];
/// Types whose instances all have one known size: bytes per object must match exactly.
const FIXED_SIZE: &[&str] = &["float", "decimal.Decimal", "datetime.datetime"];

type Counts = BTreeMap<String, (u64, u64)>;

struct Measure {
    /// gc.get_objects() per type: every one of them is in the complete census.
    gc_truth: Counts,
    truth: Counts,
    tool: Counts,
    truth_total: u64,
    tool_total: u64,
    /// 3.11+ hidden name tuples: (distinct, code objects holding one, not verified).
    hidden: (u64, u64, u64),
}

fn counts(v: &Value) -> Counts {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, e)| {
                    (
                        k.clone(),
                        (e[0].as_u64().unwrap_or(0), e[1].as_u64().unwrap_or(0)),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn measure(interp: &Interp, scale: &str) -> Result<Measure, String> {
    let target = Target::spawn(interp, "full_heap.py", &["--scale", scale])?;
    let snap = common::snapshot_json(&target.pid_arg())?;
    let tool: Counts = snap["types"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let name = t["type"].as_str().unwrap_or("").to_string();
                    (
                        name,
                        (
                            t["count"].as_u64().unwrap_or(0),
                            t["bytes"].as_u64().unwrap_or(0),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let full = &target.truth["full"];
    let hidden = &full["hidden_name_tuples"];
    let field = |k: &str| hidden[k].as_u64().unwrap_or(0);
    Ok(Measure {
        hidden: (
            field("distinct"),
            field("code_objects"),
            field("unverified"),
        ),
        gc_truth: counts(&target.truth["types"]),
        truth: counts(&full["types"]),
        tool,
        truth_total: full["total_objects"].as_u64().unwrap_or(0),
        tool_total: snap["totals"]["objects"].as_u64().unwrap_or(0),
    })
}

fn get(c: &Counts, k: &str) -> (u64, u64) {
    c.get(k).copied().unwrap_or((0, 0))
}

fn check(label: &str, small: &Measure, big: &Measure, failures: &mut Vec<String>) -> String {
    let mut worst = 0f64;
    for &ty in CHECKED {
        let (t1, _) = get(&small.truth, ty);
        let (s1, _) = get(&small.tool, ty);
        let (t4, tb4) = get(&big.truth, ty);
        let (s4, sb4) = get(&big.tool, ty);
        // The excess over the truth must not grow with the heap.
        let drift = (s4 as i64 - t4 as i64) - (s1 as i64 - t1 as i64);
        let pct = 100.0 * drift.unsigned_abs() as f64 / t4.max(1) as f64;
        worst = worst.max(pct);
        if pct > 1.0 {
            failures.push(format!(
                "[{label}] {ty}: tool {s1}/{s4} vs truth {t1}/{t4} at scale 1/4: \
                 excess drifts by {drift} ({pct:.2}% of truth)"
            ));
        }
        if FIXED_SIZE.contains(&ty) && s4 > 0 && t4 > 0 && sb4 / s4 != tb4 / t4 {
            failures.push(format!(
                "[{label}] {ty}: {} bytes per object, truth {}",
                sb4 / s4,
                tb4 / t4
            ));
        }
    }
    // Every object the truth reaches is one the tool must count (a shortfall is a miss, not
    // an excess that could cancel out), and the truth must have read every hidden name tuple.
    for (scale, m) in [("1", small), ("4", big)] {
        for &ty in CHECKED {
            let (t, _) = get(&m.truth, ty);
            let (s, _) = get(&m.tool, ty);
            if s < t {
                failures.push(format!(
                    "[{label}] {ty}: tool {s} < truth {t} at scale {scale}"
                ));
            }
        }
        if m.hidden.2 > 0 {
            failures.push(format!(
                "[{label}] truth could not verify {} of {} hidden name tuples at scale {scale}",
                m.hidden.2, m.hidden.1
            ));
        }
    }
    // Every GC-tracked object is an object: no tracked type may come out short, whatever its
    // size rule (generators embed their frame; tuple subclasses carry a dict).
    for m in [small, big] {
        let short: Vec<String> = m
            .gc_truth
            .iter()
            .filter(|(ty, (n, _))| get(&m.tool, ty).0 < *n)
            .take(5)
            .map(|(ty, (n, _))| format!("{ty} {}/{n}", get(&m.tool, ty).0))
            .collect();
        if !short.is_empty() {
            failures.push(format!(
                "[{label}] GC-tracked types counted short (tool/gc.get_objects): {}",
                short.join(", ")
            ));
        }
    }
    let total_pct =
        100.0 * (big.tool_total as f64 - big.truth_total as f64) / big.truth_total.max(1) as f64;
    if total_pct.abs() > 5.0 {
        failures.push(format!(
            "[{label}] total objects: tool {}, truth {} ({total_pct:+.2}%)",
            big.tool_total, big.truth_total
        ));
    }
    format!("{worst:.2}% / {total_pct:+.2}%")
}

#[test]
fn complete_census_matches_referent_truth() {
    common::over_matrix(
        common::interpreters(),
        "complete_census_matches_referent_truth",
        "complete_census_matches_referent_truth",
        &[
            "label",
            "str truth/tool",
            "float",
            "int",
            "tuple",
            "name tuples",
            "worst drift / total",
        ],
        |interp, table, failures| {
            let (small, big) = match (measure(interp, "1"), measure(interp, "4")) {
                (Ok(s), Ok(b)) => (s, b),
                (Err(e), _) | (_, Err(e)) => return Err(e),
            };
            let summary = check(&interp.label, &small, &big, failures);
            let pair = |ty: &str| format!("{}/{}", get(&big.truth, ty).0, get(&big.tool, ty).0);
            table.row(vec![
                interp.label.clone(),
                pair("str"),
                pair("float"),
                pair("int"),
                pair("tuple"),
                format!("{}/{}", big.hidden.0, big.hidden.1),
                summary,
            ]);
            Ok(())
        },
    );
}
