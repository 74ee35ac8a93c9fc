//! Commands over heap dumps: `snapshot --format heap` writes one; `--heap FILE` reads one back
//! into the same table, JSON and flamegraphs as a live process gives.

use super::target::{open_target, TargetArgs};
use crate::analysis::retention;
use crate::analysis::retention::dominators;
use crate::analysis::retention::heap_diff;
use crate::analysis::retention::heap_file::{self, HeapDump};
use crate::analysis::retention::heap_graph::{DumpSource, Graph};
use crate::analysis::session::SnapshotOptions;
use crate::error::Error;
use crate::render;
use crate::render::profile::ProfileFormat;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `snapshot` writes when it is not a flamegraph.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Table,
    Json,
    Heap,
}

/// `--retained` (compute what each type's instances retain) and `--sort retained` (order the
/// types by it).
#[derive(Clone, Copy)]
pub(crate) struct Retained {
    pub compute: bool,
    pub sort: bool,
}

pub(crate) fn snapshot_heap_cmd(
    t: &TargetArgs,
    opts: SnapshotOptions,
    profile: Option<ProfileFormat>,
    kind: Kind,
    retained: Retained,
    output: Option<&Path>,
    top: usize,
) -> anyhow::Result<()> {
    let sort = retained.sort;
    let retained = retained.compute;
    if t.heap.is_none() && kind != Kind::Heap {
        // --retained on a live process: the census, then the graph of the same target.
        let target = open_target(t)?;
        let mut dump = heap_file::take(target, opts)?;
        dump.snapshot.retained_by_type = Some(retained_by_type(std::mem::take(&mut dump.graph)));
        return write_snapshot(&mut dump, kind, output, top, sort);
    }
    let Some(heap) = &t.heap else {
        // Write a dump of the live process (or core).
        let target = open_target(t)?;
        let mut phases = crate::analysis::phases::Phases::start("dump");
        let dump = heap_file::take(target, opts)?;
        phases.lap("census and graph");
        let path = output.map_or_else(
            || PathBuf::from(format!("pymemspy-{}.heap", dump.pid)),
            Path::to_path_buf,
        );
        let bytes = heap_file::encode(&dump)?;
        phases.lap("encoded");
        render::output::write(Some(&path), &bytes)?;
        eprintln!(
            "pymemspy: wrote {} ({} objects, {} references, {} bytes)",
            path.display(),
            dump.graph.len(),
            dump.graph.edge_count(),
            bytes.len()
        );
        return Ok(());
    };
    let dump = heap_file::load(heap)?;
    if let Some(format) = profile {
        let default = format!("pymemspy-{}-retention.{}", dump.pid, format.extension());
        let files = dump.files;
        let mut profile = retention_profile_of(dump.graph);
        profile.files = files;
        let path = output.map_or_else(|| PathBuf::from(default), Path::to_path_buf);
        render::output::write(Some(&path), &render::profile::render(&profile, format)?)?;
        eprintln!("pymemspy: wrote {}", path.display());
        return Ok(());
    }
    if kind == Kind::Heap {
        return Err(Error::Usage(format!(
            "{} is a heap dump already: copy the file",
            heap.display()
        ))
        .into());
    }
    let mut dump = dump;
    if retained {
        dump.snapshot.retained_by_type = Some(retained_by_type(std::mem::take(&mut dump.graph)));
    }
    write_snapshot(&mut dump, kind, output, top, sort)
}

fn write_snapshot(
    dump: &mut HeapDump,
    kind: Kind,
    output: Option<&Path>,
    top: usize,
    sort_retained: bool,
) -> anyhow::Result<()> {
    if let (true, Some(r)) = (sort_retained, &dump.snapshot.retained_by_type) {
        // Largest retained first; ties by own bytes, then name, so the order is stable.
        let key = |name: &str| r.get(name).copied().unwrap_or(0);
        dump.snapshot.types.sort_by(|a, b| {
            key(&b.name)
                .cmp(&key(&a.name))
                .then(b.bytes.cmp(&a.bytes))
                .then_with(|| a.name.cmp(&b.name))
        });
    }
    let bytes = match kind {
        Kind::Json => render::json::to_json(&dump.snapshot)?,
        _ => render::table::snapshot_table(&dump.snapshot, top).into_bytes(),
    };
    render::output::write(output, &bytes)
}

/// `why` over a captured graph (live or from a dump), its holders' retained bytes included.
/// It consumes the graph: `why` prints no addresses, so they go first (8 bytes per object off
/// the peak), unless the debug log, which names the other holders by address, wants them.
pub(crate) fn why_on_graph(
    mut g: Graph,
    type_name: &str,
    max_paths: usize,
    pid: i32,
    sites: Option<&crate::analysis::retention::why::Sites>,
) -> crate::analysis::retention::why::WhyReport {
    let mut phases = crate::analysis::phases::Phases::start("why");
    let debug = log::log_enabled!(log::Level::Debug);
    if !debug {
        g.forget_addresses();
    }
    let mut src = DumpSource::new(&g);
    let tree = retention::build_on_graph(&g, &mut src);
    phases.lap("retention tree");
    let mut report =
        crate::analysis::retention::why::explain(&mut src, &tree, type_name, max_paths, pid, sites);
    phases.lap("paths");
    let parent = debug.then(|| tree.parent.clone());
    drop((tree, src));
    match parent {
        // The graph is needed after: its references name the other holders.
        Some(parent) => {
            let d = dominators::compute(&g);
            dominators::annotate_why(&mut report, &d);
            dominators::log_other_holders(&g, &d, &parent, type_name);
        }
        None => {
            let d = dominators::compute_consuming(g);
            dominators::annotate_why(&mut report, &d);
        }
    }
    phases.lap("dominators");
    report
}

/// Per type, what its instances retain together, from a graph nothing needs after (its arrays
/// go as the dominators are done with them; the types stay, in 2 bytes per object where the
/// heap has fewer than 64Ki types).
pub(crate) fn retained_by_type(mut g: Graph) -> BTreeMap<String, u64> {
    g.forget_addresses();
    let types = g.types.clone();
    // The dominators let the graph's copy go on the way.
    let type_of = g.type_of.clone();
    let d = dominators::compute_consuming(g);
    dominators::retained_by_type(&types, |i| type_of.get(i), &d)
        .into_iter()
        .collect()
}

/// The retention flamegraph of a captured graph (live or from a dump), which it consumes: the
/// flamegraph prints no addresses, so they go before the tree is built (8 bytes per object
/// off the peak).
pub(crate) fn retention_profile_of(mut g: Graph) -> crate::profile::Profile {
    let mut phases = crate::analysis::phases::Phases::start("retention");
    g.forget_addresses();
    let mut src = DumpSource::new(&g);
    let tree = retention::build_on_graph(&g, &mut src);
    phases.lap("tree");
    let profile = retention::profile(&mut src, tree);
    phases.lap("profile");
    profile
}

/// `diff a.heap b.heap [c.heap]`: objects new since the first dump (alive in every later one).
pub(crate) fn diff_cmd(
    a: &Path,
    b: &Path,
    c: Option<&Path>,
    json: bool,
    output: Option<&Path>,
    top: usize,
) -> anyhow::Result<()> {
    let mut files = vec![a, b];
    files.extend(c);
    let mut dumps = Vec::new();
    for f in &files {
        if !heap_file::is_heap_dump(f) {
            return Err(Error::Usage(format!(
                "{}: not a heap dump; give heap dumps only (`snapshot --format heap`)",
                f.display()
            ))
            .into());
        }
        dumps.push(heap_file::load(f)?);
    }
    let later: Vec<&Graph> = dumps[1..].iter().map(|d| &d.graph).collect();
    let names = files.iter().map(|f| f.display().to_string()).collect();
    let d = heap_diff::diff(&dumps[0].graph, &later, names, top.max(1000));
    let bytes = if json {
        render::json::to_json(&d)?
    } else {
        crate::render::reports::heap_diff(&d, top).into_bytes()
    };
    render::output::write(output, &bytes)
}
