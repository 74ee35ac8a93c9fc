//! The table for `snapshot --subprocesses`: one line per process, the combined top types, then
//! each process's own census.

use super::table::{human_bytes, snapshot_table, thousands};
use crate::analysis::census::snapshot_tree::SnapshotTree;
use std::fmt::Write;

pub fn tree_table(t: &SnapshotTree, top: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "pymemspy snapshot: {} Python processes under pid {}\n",
        t.processes.len(),
        t.root_pid
    );
    let _ = writeln!(
        o,
        "{:>8} {:>12} {:>12} {:>12}  python / executable",
        "pid", "bytes", "allocated", "objects"
    );
    for s in &t.processes {
        let _ = writeln!(
            o,
            "{:>8} {:>12} {:>12} {:>12}  {} {}",
            s.pid,
            human_bytes(s.totals.bytes),
            human_bytes(s.totals.allocated_bytes),
            thousands(s.totals.objects),
            s.python.version,
            s.python.executable
        );
    }
    let c = &t.combined;
    let _ = writeln!(
        o,
        "{:>8} {:>12} {:>12} {:>12}",
        "all",
        human_bytes(c.totals.bytes),
        human_bytes(c.totals.allocated_bytes),
        thousands(c.totals.objects)
    );
    for s in &t.skipped {
        let _ = writeln!(o, "note: skipped pid {}: {}", s.pid, s.reason);
    }
    let _ = writeln!(o, "\ncombined top types:");
    let _ = writeln!(
        o,
        "{:>12} {:>6} {:>12} {:>12}  type",
        "bytes", "%", "allocated", "count"
    );
    let total = c.totals.bytes.max(1) as f64;
    for ty in c.types.iter().take(top) {
        let _ = writeln!(
            o,
            "{:>12} {:>5.1}% {:>12} {:>12}  {}{}",
            human_bytes(ty.bytes),
            100.0 * ty.bytes as f64 / total,
            human_bytes(ty.allocated_bytes),
            thousands(ty.count),
            ty.name,
            // Explained under each process's table below.
            if ty.python_sizeof {
                super::table::PYTHON_SIZEOF_MARK
            } else {
                ""
            }
        );
    }
    for s in &t.processes {
        let _ = writeln!(o, "\n{}", "=".repeat(72));
        o.push_str(&snapshot_table(s, top));
    }
    o
}
