//! Commands over heap dumps: `snapshot --format heap` writes one; `--heap FILE` reads one back
//! into the same table, JSON and flamegraphs as a live process gives.

use crate::analysis::heap_file::{self, HeapDump};
use crate::analysis::heap_graph::DumpSource;
use crate::analysis::retention;
use crate::analysis::snapshot::SnapshotOptions;
use crate::cli::TargetArgs;
use crate::error::Error;
use crate::render;
use crate::render::profile::ProfileFormat;
use std::path::{Path, PathBuf};

/// What `snapshot` writes when it is not a flamegraph.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Table,
    Json,
    Heap,
}

pub(crate) fn snapshot_heap_cmd(
    t: &TargetArgs,
    opts: SnapshotOptions,
    profile: Option<ProfileFormat>,
    kind: Kind,
    output: Option<&Path>,
    top: usize,
) -> anyhow::Result<()> {
    let Some(heap) = &t.heap else {
        // Write a dump of the live process (or core).
        let target = crate::cli_production::open_target(t)?;
        let dump = heap_file::take(target, opts)?;
        let path = output.map_or_else(
            || PathBuf::from(format!("pymemspy-{}.heap", dump.pid)),
            Path::to_path_buf,
        );
        let bytes = heap_file::encode(&dump)?;
        render::output::write(Some(&path), &bytes)?;
        eprintln!(
            "pymemspy: wrote {} ({} objects, {} references, {} bytes)",
            path.display(),
            dump.graph.len(),
            dump.graph.edge_to.len(),
            bytes.len()
        );
        return Ok(());
    };
    let dump = heap_file::load(heap)?;
    if let Some(format) = profile {
        let profile = retention_profile(&dump);
        let default = format!("pymemspy-{}-retention.{}", dump.pid, format.extension());
        let path = output.map_or_else(|| PathBuf::from(default), Path::to_path_buf);
        render::output::write(Some(&path), &render::profile::render(&profile, format)?)?;
        eprintln!("pymemspy: wrote {}", path.display());
        return Ok(());
    }
    let bytes = match kind {
        Kind::Json => render::json::to_json(&dump.snapshot)?,
        Kind::Table => render::table::snapshot_table(&dump.snapshot, top).into_bytes(),
        Kind::Heap => {
            return Err(Error::Usage(format!(
                "{} is a heap dump already: copy the file",
                heap.display()
            ))
            .into())
        }
    };
    render::output::write(output, &bytes)
}

/// The retention flamegraph of a dump: the live tree, built from the dump's graph.
pub(crate) fn retention_profile(dump: &HeapDump) -> crate::render::profile::Profile {
    let mut src = DumpSource::new(&dump.graph);
    let tree = retention::build(&mut src, dump.graph.objects.clone());
    retention::profile(&mut src, &tree)
}
