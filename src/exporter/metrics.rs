//! The series, built at each scrape from the latest figures (`Shared`). Names follow the
//! Prometheus conventions: base units (`_bytes`, `_seconds`), `_total` on counters, one
//! family per meaning with labels for its parts.

use super::encode::{Exposition, Format, Kind};
use super::scheduler::Shared;
use std::time::Instant;

/// The text of one scrape in `format`: every process's series, then the exporter's own. Long: one
/// sample per series, in the order they are exposed; a flat list kept whole reads as the catalogue
/// of the exporter's series.
pub fn exposition(
    s: &Shared,
    top_types: usize,
    scrapes: u64,
    started: Instant,
    format: Format,
) -> String {
    let mut e = Exposition::default();
    declare(&mut e);
    for p in s.procs.values() {
        let l = p.labels.as_str();
        e.sample("pymemspy_up", l, &[], p.up as u8 as f64);
        for (reason, n) in &p.errors {
            e.sample("pymemspy_read_errors", l, &[("reason", reason)], *n as f64);
        }
        let f = &p.proc_figures;
        if let Some(v) = f.rss {
            e.sample("pymemspy_resident_memory_bytes", l, &[], v as f64);
        }
        if let Some(v) = f.fds {
            e.sample("pymemspy_open_fds", l, &[], v as f64);
        }
        if let Some(v) = f.threads {
            e.sample("pymemspy_threads", l, &[("kind", "os")], v as f64);
        }
        if let Some(v) = p.python_threads {
            e.sample("pymemspy_threads", l, &[("kind", "python")], v as f64);
        }
        let Some(c) = &p.census else { continue };
        e.sample("pymemspy_census_timestamp_seconds", l, &[], c.at);
        e.sample("pymemspy_census_duration_seconds", l, &[], c.wall_s);
        e.sample("pymemspy_census_cpu_seconds", l, &[], c.cpu_s);
        e.sample("pymemspy_census_complete", l, &[], c.complete as u8 as f64);
        e.sample("pymemspy_objects", l, &[], c.objects as f64);
        e.sample("pymemspy_object_bytes", l, &[], c.bytes as f64);
        // At most top_types + 1 per process whatever the target holds (model::top_types).
        for t in c.types.iter().take(top_types + 1) {
            let ty = [("type", t.name.as_str())];
            e.sample("pymemspy_type_objects", l, &ty, t.objects as f64);
            e.sample("pymemspy_type_bytes", l, &ty, t.bytes as f64);
            if let Some(suspect) = t.leak_suspect {
                e.sample("pymemspy_type_leak_suspect", l, &ty, suspect as u8 as f64);
            }
        }
        if let Some(m) = &c.memory {
            for (part, v) in &m.parts {
                e.sample("pymemspy_memory_bytes", l, &[("part", part)], *v as f64);
            }
            e.sample("pymemspy_native_owned_bytes", l, &[], m.native_owned as f64);
        }
        if let Some(g) = &c.gc {
            e.sample("pymemspy_gc_enabled", l, &[], g.enabled as u8 as f64);
            e.sample("pymemspy_gc_garbage_objects", l, &[], g.garbage as f64);
            for (gen, collections, uncollectable) in &g.generations {
                let gen = gen.to_string();
                let lg = [("generation", gen.as_str())];
                if let Some(v) = collections {
                    e.sample("pymemspy_gc_collections", l, &lg, *v as f64);
                }
                if let Some(v) = uncollectable {
                    e.sample("pymemspy_gc_uncollectable_objects", l, &lg, *v as f64);
                }
            }
        }
    }
    e.sample("pymemspy_exporter_processes", "", &[], s.procs.len() as f64);
    for (reason, n) in &s.skipped {
        e.sample(
            "pymemspy_exporter_skipped_processes",
            "",
            &[("reason", reason)],
            *n as f64,
        );
    }
    e.sample("pymemspy_exporter_censuses", "", &[], s.censuses as f64);
    e.sample(
        "pymemspy_exporter_census_cpu_seconds",
        "",
        &[],
        s.census_cpu_s,
    );
    e.sample(
        "pymemspy_exporter_type_names_truncated",
        "",
        &[],
        s.names_truncated as f64,
    );
    e.sample("pymemspy_exporter_scrapes", "", &[], scrapes as f64);
    e.sample(
        "pymemspy_exporter_uptime_seconds",
        "",
        &[],
        started.elapsed().as_secs_f64(),
    );
    e.finish(format)
}

fn declare(e: &mut Exposition) {
    use Kind::{Counter, Gauge};
    let families: &[(&'static str, Kind, &'static str)] = &[
        ("pymemspy_up", Gauge, "1 when the last read of the process succeeded, 0 when it failed (see pymemspy_read_errors_total)."),
        ("pymemspy_read_errors", Counter, "Failed reads of the process by reason (permission, exited, unsupported, census)."),
        ("pymemspy_resident_memory_bytes", Gauge, "Resident set size (VmRSS), read every interval."),
        ("pymemspy_open_fds", Gauge, "Open file descriptors, read every interval."),
        ("pymemspy_threads", Gauge, "Threads: kind=os from /proc every interval, kind=python at the last census."),
        ("pymemspy_census_timestamp_seconds", Gauge, "Unix time of the last census, which the object and type figures are from."),
        ("pymemspy_census_duration_seconds", Gauge, "Wall time of the last census."),
        ("pymemspy_census_cpu_seconds", Gauge, "Exporter CPU time spent on the last census."),
        ("pymemspy_census_complete", Gauge, "1 when every GC list was read to its end with no collection running."),
        ("pymemspy_objects", Gauge, "Live Python objects."),
        ("pymemspy_object_bytes", Gauge, "Sum of sys.getsizeof of the live objects."),
        ("pymemspy_type_objects", Gauge, "Live objects of a type (the top types by bytes, the rest as the type (other))."),
        ("pymemspy_type_bytes", Gauge, "Sum of sys.getsizeof of a type's live objects (top types by bytes, the rest as the type (other))."),
        ("pymemspy_type_leak_suspect", Gauge, "1 when the type's count or bytes grow steadily over the exporter's history of the process (the verdict of pymemspy record)."),
        ("pymemspy_memory_bytes", Gauge, "Where the memory goes: objects, allocator in use and free, native memory no object explains, file-backed pages."),
        ("pymemspy_native_owned_bytes", Gauge, "Heap buffers owned by objects outside their own allocation (numpy data, bytearray items)."),
        ("pymemspy_gc_enabled", Gauge, "1 when the garbage collector is enabled."),
        ("pymemspy_gc_garbage_objects", Gauge, "Length of gc.garbage."),
        ("pymemspy_gc_collections", Counter, "Collections of a generation since the process started."),
        ("pymemspy_gc_uncollectable_objects", Counter, "Uncollectable objects found by collections of a generation since the process started."),
        ("pymemspy_exporter_processes", Gauge, "Processes followed."),
        ("pymemspy_exporter_skipped_processes", Gauge, "Processes seen at the last discovery but not followed, by reason."),
        ("pymemspy_exporter_censuses", Counter, "Censuses taken."),
        ("pymemspy_exporter_census_cpu_seconds", Counter, "CPU time the exporter spent on censuses."),
        ("pymemspy_exporter_type_names_truncated", Counter, "Type names longer than the bound, cut."),
        ("pymemspy_exporter_scrapes", Counter, "Scrapes of /metrics answered."),
        ("pymemspy_exporter_uptime_seconds", Gauge, "Seconds since the exporter started."),
    ];
    for (name, kind, help) in families {
        e.family(name, *kind, help);
    }
}
