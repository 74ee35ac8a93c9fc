//! One census per Python process in a process tree (a gunicorn master and its forked workers,
//! a multiprocessing pool), plus their sum: `snapshot --subprocesses`.

use super::snapshot::{self, Snapshot, Totals};
use super::TypeCount;
use crate::analysis::session::SnapshotOptions;
use crate::python::processes::{self, Skipped};
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;

pub const SCHEMA: &str = "pymemspy.snapshot-tree/1";

#[derive(Debug, Clone, Serialize)]
pub struct Combined {
    pub processes: usize,
    pub totals: Totals,
    /// Every type summed over the processes, largest first.
    pub types: Vec<TypeCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotTree {
    pub schema: &'static str,
    pub root_pid: i32,
    pub processes: Vec<Snapshot>,
    pub combined: Combined,
    pub skipped: Vec<Skipped>,
}

/// Census every Python process under `root` (root included). Processes that are not Python, or
/// that fail (exit, permission, unsupported build), are listed in `skipped` with the reason; the
/// call fails only when no process at all could be censused.
pub fn take(root: i32, opts: &SnapshotOptions) -> crate::error::Result<SnapshotTree> {
    let found = processes::python_descendants(root);
    let mut skipped = found.skipped;
    let mut processes = Vec::new();
    let mut first_error = None;
    for pid in found.python {
        match snapshot::take(pid, opts.clone()) {
            Ok(s) => processes.push(s),
            Err(e) => {
                skipped.push(Skipped {
                    pid,
                    reason: e.to_string(),
                });
                first_error.get_or_insert(e);
            }
        }
    }
    if processes.is_empty() {
        // Nothing censused: the root's own error says the most (not Python, permission, ...).
        return Err(match first_error {
            Some(e) => e,
            None => {
                snapshot::take(root, opts.clone())
                    .err()
                    .unwrap_or(crate::error::Error::NotPython {
                        pid: root,
                        exe: "?".into(),
                    })
            }
        });
    }
    skipped.sort_by_key(|s| s.pid);
    Ok(SnapshotTree {
        schema: SCHEMA,
        root_pid: root,
        combined: combine(&processes),
        processes,
        skipped,
    })
}

/// Sum the censuses by type name.
pub fn combine(processes: &[Snapshot]) -> Combined {
    let mut by_name: HashMap<&str, TypeCount> = HashMap::default();
    let mut totals = Totals {
        objects: 0,
        bytes: 0,
        allocated_bytes: 0,
    };
    for s in processes {
        totals.objects += s.totals.objects;
        totals.bytes += s.totals.bytes;
        totals.allocated_bytes += s.totals.allocated_bytes;
        for t in &s.types {
            let e = by_name.entry(&t.name).or_insert_with(|| TypeCount {
                name: t.name.clone(),
                count: 0,
                bytes: 0,
                python_sizeof: t.python_sizeof,
                ..TypeCount::default()
            });
            e.count += t.count;
            e.bytes += t.bytes;
            e.allocated_bytes += t.allocated_bytes;
            e.native_bytes += t.native_bytes;
            e.python_sizeof |= t.python_sizeof;
        }
    }
    let mut types: Vec<TypeCount> = by_name.into_values().collect();
    types.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    Combined {
        processes: processes.len(),
        totals,
        types,
    }
}
