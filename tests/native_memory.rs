//! Memory owned outside the object (numpy data buffers, bytearray and array.array items,
//! BytesIO buffers) against tests/targets/numpy_heap.py, in every venv that
//! scripts/provision-venvs.sh made (numpy 1.x and 2.x layouts).

mod common;

use common::Target;
use serde_json::Value;

/// Sum of the folded stacks' weights whose path names `needle`.
fn weight_under(folded: &str, needle: &str) -> u64 {
    folded
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// (count, bytes, native) of a type in a snapshot document.
fn tool_type(doc: &Value, name: &str) -> [u64; 3] {
    let t = doc["types"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["type"] == name));
    let f = |k: &str| t.and_then(|t| t[k].as_u64()).unwrap_or(0);
    [f("count"), f("bytes"), f("native_bytes")]
}

/// Objects of a `why` report whose path starts at `__main__`'s global `global` and ends in
/// an element of an array (`[*]` into the type), not through an index (a DataFrame's column
/// names are strs it holds too), and those filed as unreachable.
fn why_counts(report: &Value, global: &str) -> (u64, u64) {
    let (mut held, mut unreached) = (0, 0);
    for p in report["paths"].as_array().into_iter().flatten() {
        let count = p["count"].as_u64().unwrap_or(0);
        let root = p["root"].as_str().unwrap_or("");
        let hops = p["hops"].as_array().cloned().unwrap_or_default();
        let first = hops.first().and_then(|h| h[0].as_str()).unwrap_or("");
        let last = hops.last().and_then(|h| h[0].as_str()).unwrap_or("");
        let through_index = hops
            .iter()
            .any(|h| h[1].as_str().is_some_and(|t| t.ends_with("Index")));
        if root == "__main__ (module)" && first == global && last == "[*]" && !through_index {
            held += count;
        }
        // Filed apart from modules and threads: unreached, or under the root of a cycle or of
        // an object no other object refers to (issue 33, item 8).
        if root.starts_with("(not reachable")
            || root.starts_with("(unreachable cycle")
            || root.starts_with("(no Python referrer")
        {
            unreached += count;
        }
    }
    (held, unreached)
}

fn within(tool: u64, truth: u64, frac: f64) -> bool {
    (tool as f64 - truth as f64).abs() <= frac * truth as f64
}

/// Every check on one target. The types compared are every type that owns memory outside
/// itself in this heap; the rest of the census is the other tests' business.
#[test]
fn native_memory_matches_truth() {
    let venvs = match common::numpy_venvs() {
        Ok(v) => v,
        Err(why) => {
            common::skip(&why);
            return;
        }
    };
    common::over_matrix(
        venvs,
        "native_memory_matches_truth",
        "native memory",
        &[
            "venv",
            "numpy",
            "ndarray count tool/truth",
            "ndarray bytes tool/truth",
            "ndarray native tool/truth",
            "bytearray/array/BytesIO/mmap native",
            "under .frame tool/truth",
            "owned line / unattributed",
            "held strs (labels, frame)",
        ],
        |venv, table, failures| {
            let label = &venv.interp.label;
            let target = Target::spawn(&venv.interp, "numpy_heap.py", &[])?;
            let truth = &target.truth;
            let pid = target.pid_arg();
            let folded_path = target.scratch().join("n.folded");
            let snap = common::run_tool(&["snapshot", "--pid", &pid, "--format", "json"]);
            let flame = common::run_tool(&[
                "snapshot",
                "--pid",
                &pid,
                "--format",
                "collapsed",
                "-o",
                folded_path.to_str().unwrap_or_default(),
            ]);
            let why = |ty: &str| {
                common::run_tool(&[
                    "why",
                    "--pid",
                    &pid,
                    "--type",
                    ty,
                    "--format",
                    "json",
                    "--max-paths",
                    "200",
                ])
            };
            let (why_str, why_dict) = (why("str"), why("dict"));
            let why_text = common::run_tool(&["why", "--pid", &pid, "--type", "numpy.ndarray"]);
            let runs = [&snap, &flame, &why_str, &why_dict, &why_text];
            if let Some(bad) = runs.iter().find(|r| !r.status.success()) {
                failures.push(format!("[{label}] tool failed: {}", bad.describe()));
                return Ok(());
            }
            let doc: Value = serde_json::from_str(&snap.stdout).unwrap_or_default();
            let t = |name: &str, i: usize| truth["types"][name][i].as_u64().unwrap_or(0);

            // ndarray: sys.getsizeof (numpy's array_sizeof) and the data the arrays own.
            let nd = tool_type(&doc, "numpy.ndarray");
            if !within(nd[1], t("numpy.ndarray", 1), 0.01) {
                failures.push(format!(
                    "[{label}] ndarray bytes {} vs sys.getsizeof {}",
                    nd[1],
                    t("numpy.ndarray", 1)
                ));
            }
            // Allowed: a few arrays only C holds (numpy's own caches), which no walk from
            // gc.get_objects() reaches but the tool's heap scan finds.
            let nd_truth = t("numpy.ndarray", 0);
            if nd[0] < nd_truth || nd[0] > nd_truth + 16 {
                failures.push(format!(
                    "[{label}] ndarray count {} vs {nd_truth} reachable",
                    nd[0]
                ));
            }
            if !within(nd[2], t("numpy.ndarray", 2), 0.01) {
                failures.push(format!(
                    "[{label}] ndarray native {} vs owned nbytes {}",
                    nd[2],
                    t("numpy.ndarray", 2)
                ));
            }
            // The other owners: counts exact, bytes within a page (one stray buffer the truth's
            // walk cannot reach).
            let mut others = Vec::new();
            for name in ["bytearray", "array.array", "_io.BytesIO", "mmap.mmap"] {
                let got = tool_type(&doc, name);
                let (want_count, want_bytes, want_native) = (t(name, 0), t(name, 1), t(name, 2));
                if got[0] != want_count
                    || got[2].abs_diff(want_native) > 4096
                    || got[1].abs_diff(want_bytes) > 4096
                {
                    failures.push(format!(
                        "[{label}] {name}: tool count {} bytes {} native {}, truth count \
                     {want_count} bytes {want_bytes} native {want_native}",
                        got[0], got[1], got[2]
                    ));
                }
                others.push(format!("{}/{}", got[2], want_native));
            }

            // The retention flamegraph charges the DataFrame's arrays to the DataFrame's path.
            let folded = std::fs::read_to_string(&folded_path).unwrap_or_default();
            let under_frame = weight_under(&folded, ";.frame ");
            let (frame_native, frame_bytes) = (
                target.truth_u64("frame_native"),
                target.truth_u64("frame_bytes"),
            );
            if under_frame < frame_native || !within(under_frame, frame_bytes, 0.10) {
                failures.push(format!(
                    "[{label}] under .frame {under_frame}: want >= its arrays' {frame_native} and \
                 within 10% of the {frame_bytes} reachable from it"
                ));
            }

            // The memory report names the owned buffers instead of leaving them "native".
            let mem = &doc["memory"];
            let owned = mem["owned_by_objects_bytes"].as_u64().unwrap_or(0);
            let unattributed = mem["native_bytes"].as_u64().unwrap_or(u64::MAX);
            let owners = target.truth_u64("owners_nbytes");
            if owned < owners || unattributed >= owners / 2 {
                failures.push(format!(
                    "[{label}] memory report: owned by objects {owned} (want >= {owners}), \
                 native/unattributed {unattributed} (want < {})",
                    owners / 2
                ));
            }

            // The memory report is a tree whose parts add up: the top level to RSS, each
            // group to its parent (numpy's buffers sit in "python objects outside", never
            // beside the arenas that hold objects too).
            let parts: Vec<(String, u64, u64)> = mem["parts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap_or("").to_string(),
                        p["bytes"].as_u64().unwrap_or(0),
                        p["depth"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            let rss = mem["rss"]["rss"].as_u64().unwrap_or(0);
            let top: u64 = parts.iter().filter(|p| p.2 == 0).map(|p| p.1).sum();
            if parts.is_empty() || top != rss {
                failures.push(format!(
                    "[{label}] memory parts {parts:?} do not sum to RSS {rss}"
                ));
            }
            for (i, (name, bytes, depth)) in parts.iter().enumerate() {
                let children: Vec<u64> = parts[i + 1..]
                    .iter()
                    .take_while(|c| c.2 > *depth)
                    .filter(|c| c.2 == depth + 1)
                    .map(|c| c.1)
                    .collect();
                // "anonymous" adds up unless its named parts exceed it (then native is 0).
                let sum: u64 = children.iter().sum();
                if !children.is_empty() && sum != *bytes && !(name == "anonymous" && sum > *bytes) {
                    failures.push(format!(
                        "[{label}] memory part {name} {bytes} != its parts {children:?}"
                    ));
                }
            }

            // Object arrays' elements are edges: their strs and dicts have paths.
            let ws: Value = serde_json::from_str(&why_str.stdout).unwrap_or_default();
            let wd: Value = serde_json::from_str(&why_dict.stdout).unwrap_or_default();
            let (labels_strs, unreached_strs) = why_counts(&ws, ".labels");
            let (frame_strs, _) = why_counts(&ws, ".frame");
            let (labels_dicts, _) = why_counts(&wd, ".labels");
            let want = (
                target.truth_u64("labels_strs"),
                target.truth_u64("frame_strs"),
                target.truth_u64("labels_dicts"),
            );
            if (labels_strs, frame_strs, labels_dicts) != want {
                failures.push(format!(
                    "[{label}] why: (labels strs, frame strs, labels dicts) = \
                 {:?}, truth {want:?}; {unreached_strs} strs unreachable",
                    (labels_strs, frame_strs, labels_dicts)
                ));
            }
            if !why_text.stdout.contains("(native ") {
                failures.push(format!(
                    "[{label}] why numpy.ndarray shows no native bytes:\n{}",
                    why_text.stdout
                ));
            }
            table.row(vec![
                label.clone(),
                venv.numpy.clone(),
                format!("{}/{nd_truth}", nd[0]),
                format!("{}/{}", nd[1], t("numpy.ndarray", 1)),
                format!("{}/{}", nd[2], t("numpy.ndarray", 2)),
                others.join(" "),
                format!("{under_frame}/{frame_bytes}"),
                format!("{owned} / {unattributed}"),
                format!("{labels_strs}, {frame_strs} ({unreached_strs} unreachable)"),
            ]);
            Ok(())
        },
    );
}
