//! Plain-text reports that are not a census table: the stacks dump, the leak diff between heap
//! dumps, and live memory by allocating line.

use super::table::{human_bytes, thousands};
use crate::analysis::dump::Dump;
use crate::analysis::retention::heap_diff::HeapDiff;
use crate::analysis::timeline::allocations::AllocationReport;
use std::fmt::Write as _;

/// `dump`: every thread's stack as a person reads it: one block per thread, innermost frame first.
pub fn stacks_dump(d: &Dump) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Process {}: {}", d.pid, d.python.executable);
    let _ = writeln!(out, "Python {}", d.python.version);
    for t in &d.threads {
        let _ = write!(out, "\nThread {:#x}", t.thread_id);
        if let Some(n) = t.native_thread_id {
            let _ = write!(out, " (native {n})");
        }
        // The program's name for it (what `why` says), else the OS's.
        if let Some(name) = t.threading_name.as_ref().or(t.name.as_ref()) {
            let _ = write!(out, " {name:?}");
        }
        if t.holds_gil {
            out.push_str(" [holds the GIL]");
        }
        if let Some(s) = &t.os_state {
            out.push_str(&os_state_text(s));
        }
        out.push('\n');
        if t.frames.is_empty() {
            out.push_str("    (no Python frame)\n");
        }
        for f in &t.frames {
            let _ = writeln!(out, "    {}", f.label);
        }
    }
    let s = &d.stats;
    if s.bad_frames + s.broken_chains + s.truncated > 0 {
        let _ = writeln!(
            out,
            "\nnote: {} frames unreadable, {} chains broken, {} stacks cut at depth limit \
             (the target changed while being read)",
            s.bad_frames, s.broken_chains, s.truncated
        );
    }
    out
}

/// ` [active]`, ` [idle: waiting in futex (a lock or condition)]`, ` [idle: sleeping]`.
fn os_state_text(s: &crate::analysis::dump::OsState) -> String {
    if s.active {
        return " [active]".into();
    }
    let what = match (s.syscall.as_deref(), s.state) {
        (Some("futex"), _) => "waiting on a lock or condition (futex)".to_string(),
        (Some(call), _) => format!("waiting in {call}"),
        (None, 'T' | 't') => "stopped".to_string(),
        (None, 'D') => "waiting on disk".to_string(),
        (None, 'Z') => "exited".to_string(),
        (None, _) => "sleeping".to_string(),
    };
    match &s.wchan {
        Some(w) => format!(" [idle: {what}; kernel: {w}]"),
        None => format!(" [idle: {what}]"),
    }
}

/// `diff a.heap b.heap [c.heap]`: what is new, by type and by path from the roots.
pub fn heap_diff(d: &HeapDiff, top: usize) -> String {
    let mut o = String::new();
    let since = match d.dumps.len() {
        3 => format!(
            "new since {} and still alive in {} and {}",
            d.dumps[0], d.dumps[1], d.dumps[2]
        ),
        _ => format!(
            "new in {} since {}",
            d.dumps.last().map_or("", String::as_str),
            d.dumps[0]
        ),
    };
    let _ = writeln!(
        o,
        "objects {since}: {} ({} bytes, sys.getsizeof)\n",
        d.objects, d.bytes
    );
    let _ = writeln!(o, "by type:");
    for t in d.types.iter().take(top) {
        let _ = writeln!(o, "  {:>12} {:>10}  {}", t.bytes, t.count, t.name);
    }
    let _ = writeln!(o, "\nby path from the roots (in the last dump):");
    for p in d.paths.iter().take(top) {
        let _ = writeln!(o, "  {:>12}  {} ×{}", p.bytes, p.path, p.count);
    }
    o
}

/// `snapshot --by-line`: live traced memory per allocating line, heaviest first.
pub fn allocations(r: &AllocationReport, top: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "pymemspy allocations: pid {} — Python {} — tracemalloc, {} frames per allocation",
        r.pid, r.python.version, r.max_nframe
    );
    let _ = writeln!(
        o,
        "{} live in {} traced blocks, {} lines\n",
        human_bytes(r.traced_bytes),
        thousands(r.traced_blocks),
        thousands(r.lines.len() as u64)
    );
    let _ = writeln!(o, "{:>12} {:>6} {:>10}  line", "bytes", "%", "blocks");
    let total = r.traced_bytes.max(1) as f64;
    for l in r.lines.iter().take(top) {
        let _ = writeln!(
            o,
            "{:>12} {:>5.1}% {:>10}  {}:{}",
            human_bytes(l.size),
            100.0 * l.size as f64 / total,
            thousands(l.count),
            l.label,
            l.line
        );
    }
    if r.lines.len() > top {
        let _ = writeln!(o, "({} more lines: --top N)", r.lines.len() - top);
    }
    for w in &r.warnings {
        let _ = writeln!(o, "\nwarning: {w}");
    }
    o
}
