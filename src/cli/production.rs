//! Commands for production setups: process trees (`--subprocesses`), core files, containers.
//! Kept apart from cli.rs so the snapshot command only gains a dispatch line per feature.

use super::target::{open_target, TargetArgs};
use crate::analysis::census::snapshot::{self, Session, SnapshotOptions};
use crate::analysis::census::snapshot_tree;
use crate::analysis::retention::heap_source::LiveSource;
use crate::analysis::timeline::allocations;
use crate::error::Error;
use crate::render;
use crate::render::profile::ProfileFormat;
use std::path::{Path, PathBuf};

/// What `snapshot` attributes memory to.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum By {
    /// What keeps it alive (paths from the roots).
    Retention,
    /// The Python line that allocated it (the target's tracemalloc).
    Allocation,
}

/// `snapshot --by allocation`: per-line table or JSON, or the allocation flamegraph.
pub(crate) fn allocations_cmd(
    t: &TargetArgs,
    opts: SnapshotOptions,
    profile: Option<ProfileFormat>,
    json: bool,
    output: Option<&Path>,
    top: usize,
) -> anyhow::Result<()> {
    let session = Session::from_target(open_target(t)?, opts)?;
    let report = allocations::take(&session)?;
    if let Some(format) = profile {
        let default = format!("pymemspy-{}-allocations.{}", report.pid, format.extension());
        let path = output.map_or_else(|| PathBuf::from(default), Path::to_path_buf);
        let p = allocations::profile(&report);
        render::output::write(Some(&path), &render::profile::render(&p, format)?)?;
        eprintln!("pymemspy: wrote {}", path.display());
        return Ok(());
    }
    let bytes = if json {
        render::json::to_json(&report)?
    } else {
        crate::render::reports::allocations(&report, top).into_bytes()
    };
    render::output::write(output, &bytes)
}

/// `snapshot --core FILE`: the same census, retention flamegraph or JSON as from a live process.
pub(crate) fn snapshot_core_cmd(
    t: &TargetArgs,
    opts: SnapshotOptions,
    profile: Option<ProfileFormat>,
    json: bool,
    output: Option<&Path>,
    top: usize,
) -> anyhow::Result<()> {
    let core = t.core.as_deref().unwrap_or(Path::new("core"));
    let target = open_target(t)?;
    let pid = target.pid;
    if let Some(format) = profile {
        let mut session = Session::from_target(target, opts)?;
        let profile = session.with_objects(|view, py, types, objects| {
            let mut src = LiveSource::new(view, py, types);
            let graph = crate::analysis::retention::heap_graph::capture(&mut src, objects);
            super::heap::retention_profile_of(&graph)
        })?;
        let default = format!("pymemspy-core-{pid}-retention.{}", format.extension());
        let path = output.map_or_else(|| PathBuf::from(default), Path::to_path_buf);
        render::output::write(Some(&path), &render::profile::render(&profile, format)?)?;
        eprintln!("pymemspy: wrote {}", path.display());
        return Ok(());
    }
    let mut snap = snapshot::take_from(target, opts)?;
    snap.core_file = Some(core.display().to_string());
    let bytes = if json {
        render::json::to_json(&snap)?
    } else {
        render::table::snapshot_table(&snap, top).into_bytes()
    };
    render::output::write(output, &bytes)
}

/// `snapshot --subprocesses`: table or JSON only (a flamegraph is per process).
pub(crate) fn snapshot_tree_cmd(
    pid: i32,
    opts: &SnapshotOptions,
    tabular: bool,
    json: bool,
    output: Option<&Path>,
    top: usize,
) -> anyhow::Result<()> {
    if !tabular {
        return Err(Error::Usage(
            "--subprocesses works with --format table or json (flamegraphs are per process: \
             run one per --pid)"
                .into(),
        )
        .into());
    }
    let t = snapshot_tree::take(pid, opts)?;
    let bytes = if json {
        render::json::to_json(&t)?
    } else {
        render::tree_table::tree_table(&t, top).into_bytes()
    };
    render::output::write(output, &bytes)
}
