//! Plain-text tables for people: largest first, with totals and what was skipped.

use crate::analysis::census::memory::MemoryReport;
use crate::analysis::census::snapshot::Snapshot;
use std::fmt::Write;

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// After the name of a type whose `__sizeof__` is Python code (explained under the table).
pub(crate) const PYTHON_SIZEOF_MARK: &str = " (*)";

/// The census as a text table: the heading, one row per type (the `top` largest), then the memory,
/// collector and resources sections and the warnings. Long: the table's parts in the order they
/// print (heading, columns, rows, the rest, the `__sizeof__` note, sections), each a few lines; the
/// heading and the rows share the `native_cell` and `retained` columns.
pub fn snapshot_table(s: &Snapshot, top: usize) -> String {
    let mut o = String::new();
    let pid = match (s.namespace_pid, &s.core_file) {
        (_, Some(core)) => format!("{} (core file {core})", s.pid),
        (Some(inner), None) => format!("{} (pid {inner} in its container)", s.pid),
        (None, None) => s.pid.to_string(),
    };
    let _ = writeln!(
        o,
        "pymemspy snapshot: pid {} — Python {}{} ({})",
        pid,
        s.python.version,
        if s.python.free_threaded {
            " free-threaded"
        } else {
            ""
        },
        s.python.executable
    );
    let _ = writeln!(
        o,
        "{} objects, {} (sys.getsizeof), {} types — read in {:.0} ms\n",
        thousands(s.totals.objects),
        human_bytes(s.totals.bytes),
        thousands(s.types.len() as u64),
        s.duration_ms
    );
    // --gc-only: which objects those are (the GC lists hold gc.freeze()'s frozen objects too).
    if let [only] = s.coverage.sources.as_slice() {
        if only.starts_with("GC lists (") && only.contains("gc.freeze()") {
            let _ = writeln!(o, "GC-tracked objects only (--gc-only): {only}\n");
        }
    }
    // The native column only when some object owns memory outside itself (heap::objects::native).
    let native = s.types.iter().any(|t| t.native_bytes > 0);
    let native_cell = |v: Option<u64>| match (native, v) {
        (false, _) => String::new(),
        (true, None) => format!(" {:>12}", "native"),
        (true, Some(0)) => format!(" {:>12}", ""),
        (true, Some(v)) => format!(" {:>12}", human_bytes(v)),
    };
    // With --retained: what the type's instances retain together (the dominator tree).
    let retained = |name: &str| -> String {
        s.retained_by_type.as_ref().map_or(String::new(), |r| {
            format!(" {:>12}", human_bytes(r.get(name).copied().unwrap_or(0)))
        })
    };
    let _ = writeln!(
        o,
        "{:>12} {:>6} {:>12}{} {:>12}{}  type",
        "bytes",
        "%",
        "allocated",
        native_cell(None),
        "count",
        if s.retained_by_type.is_some() {
            format!(" {:>12}", "retained")
        } else {
            String::new()
        }
    );
    let total = s.totals.bytes.max(1) as f64;
    for t in s.types.iter().take(top) {
        let _ = writeln!(
            o,
            "{:>12} {:>5.1}% {:>12}{} {:>12}{}  {}{}",
            human_bytes(t.bytes),
            100.0 * t.bytes as f64 / total,
            human_bytes(t.allocated_bytes),
            native_cell(Some(t.native_bytes)),
            thousands(t.count),
            retained(&t.name),
            t.name,
            if t.python_sizeof {
                PYTHON_SIZEOF_MARK
            } else {
                ""
            }
        );
    }
    if s.types.len() > top {
        let rest: u64 = s.types[top..].iter().map(|t| t.bytes).sum();
        let _ = writeln!(
            o,
            "{:>12} {:>5.1}% {:>12}{} {:>12}  ({} more types: --top N, or --format json)",
            human_bytes(rest),
            100.0 * rest as f64 / total,
            "",
            native_cell(Some(0)),
            "",
            s.types.len() - top
        );
    }
    if s.types.iter().take(top).any(|t| t.python_sizeof) {
        let _ = writeln!(
            o,
            "\n{} these types define __sizeof__ in Python: sys.getsizeof would call it, which \
             pymemspy cannot do from outside;\n  their bytes follow the builtin base's rule \
             (JSON: \"python_sizeof\": true).",
            PYTHON_SIZEOF_MARK.trim()
        );
    }
    if let Some(m) = &s.memory {
        memory_section(&mut o, m);
    }
    if let Some(g) = &s.gc {
        gc_section(&mut o, g);
    }
    if let Some(r) = &s.resources {
        resources_section(&mut o, r);
    }
    for w in &s.warnings {
        let _ = writeln!(o, "\nwarning: {w}");
    }
    o
}

fn memory_section(o: &mut String, m: &MemoryReport) {
    let r = &m.rss;
    let _ = writeln!(
        o,
        "\nwhere the memory is (RSS {}; each indented group adds up to the line above it):",
        human_bytes(r.rss)
    );
    let parts = m.tree();
    for (i, p) in parts.iter().enumerate() {
        let depth = p.depth as usize;
        let mut note = p.note.clone();
        match p.name.as_str() {
            "anonymous" => {
                let named: u64 = parts[i + 1..]
                    .iter()
                    .take_while(|c| c.depth > p.depth)
                    .filter(|c| c.depth == p.depth + 1 && c.name != "native / unattributed")
                    .map(|c| c.bytes)
                    .sum();
                if named > p.bytes {
                    note = format!(
                        "the parts below exceed it by {}: not all of them resident",
                        human_bytes(named - p.bytes)
                    );
                }
            }
            "pymalloc pools" => {
                if let Some(pm) = &m.pymalloc {
                    note = format!(
                        "carved in {} arenas ({} more reserved, never carved: not resident)",
                        pm.arenas,
                        human_bytes(pm.never_carved_bytes)
                    );
                }
            }
            "python objects outside" if !m.owned_by_objects_types.is_empty() => {
                let types: Vec<String> = m
                    .owned_by_objects_types
                    .iter()
                    .map(|(t, b)| format!("{t} {}", human_bytes(*b)))
                    .collect();
                note = format!("{note}: {}", types.join(", "));
            }
            _ => {}
        }
        let line = format!(
            "  {:indent$}{:<w$}{:>12}  {}",
            "",
            p.name,
            human_bytes(p.bytes),
            note,
            indent = 2 * depth,
            w = 30usize.saturating_sub(2 * depth)
        );
        let _ = writeln!(o, "{}", line.trim_end());
    }
    let _ = writeln!(
        o,
        "  python objects in all: {} allocated ({} by sys.getsizeof), in the pools and outside \
         them above",
        human_bytes(m.python_objects_allocated_bytes),
        human_bytes(m.python_objects_bytes)
    );
    if r.swap > 0 {
        let _ = writeln!(o, "  swapped out (not in RSS): {}", human_bytes(r.swap));
    }
}

pub fn why_table(r: &crate::analysis::retention::why::WhyReport) -> String {
    let mut o = String::new();
    let native = if r.native_bytes > 0 {
        format!(
            "; {} of it owned outside the objects (native)",
            human_bytes(r.native_bytes)
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "why {}: {} objects, {} (sys.getsizeof){native}\n",
        r.type_name,
        thousands(r.objects),
        human_bytes(r.bytes)
    );
    if r.objects == 0 {
        let _ = writeln!(
            o,
            "no live objects of that type (names are as `snapshot` prints them)"
        );
        if !r.did_you_mean.is_empty() {
            let _ = writeln!(o, "did you mean: {}", r.did_you_mean.join(", "));
        }
        return o;
    }
    let _ = writeln!(o, "paths from the roots (shortest, grouped):");
    for g in &r.paths {
        let native = if g.native_bytes > 0 {
            format!("  (native {})", human_bytes(g.native_bytes))
        } else {
            String::new()
        };
        let _ = writeln!(o, "  {:>10}  {}{native}", human_bytes(g.bytes), g.text());
        for site in &g.allocated_at {
            let at = if site.site.starts_with('(') {
                ""
            } else {
                "allocated at "
            };
            let _ = writeln!(
                o,
                "  {:>10}    {at}{} ×{}",
                human_bytes(site.bytes),
                site.site,
                thousands(site.count)
            );
        }
    }
    let _ = writeln!(o, "\ntop retainers (direct holders, by bytes held):");
    for h in &r.retainers {
        let holders = if h.holders > 1 {
            format!("{} holders at ", thousands(h.holders))
        } else {
            String::new()
        };
        let retains = h
            .retained
            .map_or(String::new(), |r| format!(" (retains {})", human_bytes(r)));
        let _ = writeln!(
            o,
            "  {:>10}  {:>8} objects held by {holders}{}{retains}",
            human_bytes(h.bytes),
            thousands(h.count),
            h.holder
        );
    }
    for w in &r.warnings {
        let _ = writeln!(o, "\nwarning: {w}");
    }
    o
}

fn gc_section(o: &mut String, g: &crate::heap::gc::gc_state::GcState) {
    let _ = writeln!(
        o,
        "\ngarbage collector: {}{}",
        if g.enabled {
            "enabled"
        } else {
            "DISABLED (gc.disable(): reference cycles are never freed)"
        },
        if g.collecting { ", collecting now" } else { "" }
    );
    for (i, gen) in g.generations.iter().enumerate() {
        let stats = match (gen.collections, gen.collected, gen.uncollectable) {
            (Some(c), Some(d), Some(u)) => format!(
                ", {} collections, {} collected, {} uncollectable",
                thousands(c),
                thousands(d),
                thousands(u)
            ),
            _ => String::new(),
        };
        let objects = gen
            .objects
            .map_or(String::new(), |n| format!("{} objects, ", thousands(n)));
        let _ = writeln!(
            o,
            "  generation {i}: {objects}threshold {}, count {}{stats}",
            gen.threshold, gen.count
        );
    }
    if let Some(n) = g.tracked {
        let _ = writeln!(
            o,
            "  tracked: {} objects, {} of them not frozen (free-threaded: no per-generation \
             lists; found in the heaps)",
            thousands(n),
            thousands(n.saturating_sub(g.frozen))
        );
    }
    let _ = writeln!(o, "  frozen (gc.freeze): {} objects", thousands(g.frozen));
    if g.garbage > 0 {
        let types: Vec<String> = g
            .garbage_types
            .iter()
            .take(5)
            .map(|(t, n)| format!("{t} ×{n}"))
            .collect();
        let _ = writeln!(
            o,
            "  gc.garbage: {} objects ({})",
            thousands(g.garbage),
            types.join(", ")
        );
    }
}

fn resources_section(o: &mut String, r: &crate::analysis::census::resources::Resources) {
    let kinds: Vec<String> = r
        .fds_by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let _ = writeln!(o, "\nfile descriptors: {} ({})", r.fds, kinds.join(", "));
    let _ = writeln!(
        o,
        "  {} Python file/socket objects alive ({} closed); {} descriptors have no live Python owner",
        r.python_fd_objects, r.python_fd_objects_closed, r.fds_without_python_owner
    );
    let _ = writeln!(
        o,
        "threads: {} OS threads, {} Python thread states",
        r.os_threads, r.python_threads
    );
}
