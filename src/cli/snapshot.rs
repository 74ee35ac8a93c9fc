//! What `snapshot` writes once its arguments are checked: the census or the retention
//! flamegraph of a live process or a core file (one path), one census per process of a tree
//! (`--subprocesses`), live memory by allocating line (`--by allocation`).

use super::target::{open_target, TargetArgs};
use crate::analysis::census::snapshot;
use crate::analysis::census::snapshot_tree;
use crate::analysis::retention::heap_source::LiveSource;
use crate::analysis::session::{Session, SnapshotOptions};
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

/// How a snapshot is written: a flamegraph format, else JSON or a table of `top` rows; to
/// `path`, else the format's default file (flamegraphs) or standard output.
pub(crate) struct Output<'a> {
    pub profile: Option<ProfileFormat>,
    pub json: bool,
    pub path: Option<&'a Path>,
    pub top: usize,
}

/// `snapshot --by allocation`: per-line table or JSON, or the allocation flamegraph.
pub(crate) fn allocations_cmd(
    t: &TargetArgs,
    opts: SnapshotOptions,
    out: &Output,
    trace: Option<crate::live_tracing::TraceWindow>,
) -> anyhow::Result<()> {
    let session = Session::from_target(open_target(t)?, opts)?;
    let live = match trace {
        Some(w) => w.open(&session)?,
        None => None,
    };
    let report = allocations::take(&session);
    // Read: tracing pymemspy started for this ends now (its traces are freed).
    crate::live_tracing::end_window(live, session.target.pid);
    let report = report?;
    if let Some(format) = out.profile {
        let default = format!("pymemspy-{}-allocations.{}", report.pid, format.extension());
        let path = out
            .path
            .map_or_else(|| PathBuf::from(default), Path::to_path_buf);
        let p = allocations::profile(&report);
        render::output::write(Some(&path), &render::profile::render(&p, format)?)?;
        eprintln!("pymemspy: wrote {}", path.display());
        return Ok(());
    }
    let bytes = if out.json {
        render::json::to_json(&report)?
    } else {
        crate::render::reports::allocations(&report, out.top).into_bytes()
    };
    render::output::write(out.path, &bytes)
}

/// `snapshot` of a live process (`--pid`) or a core file (`--core`): the census as a table or
/// JSON, or the retention flamegraph. One path for both: the target is all that differs.
pub(crate) fn snapshot_target_cmd(
    t: &TargetArgs,
    opts: SnapshotOptions,
    out: &Output,
) -> anyhow::Result<()> {
    let target = open_target(t)?;
    let pid = target.pid;
    if let Some(format) = out.profile {
        let full_filenames = opts.full_filenames;
        let mut session = Session::from_target(target, opts)?;
        let mut phases = crate::analysis::phases::Phases::start("retention");
        let profile = session.with_objects(|view, py, types, objects| {
            // The graph once (address order, on every core), then the tree on it: the same
            // path, and so the same output, as a heap dump's flamegraph.
            let mut src = LiveSource::new(view, py, types).with_full_filenames(full_filenames);
            let graph = crate::analysis::retention::heap_graph::capture(&mut src, objects);
            phases.lap("graph captured");
            let mut profile = super::heap::retention_profile_of(graph);
            profile.files = std::mem::take(&mut src.files);
            profile
        })?;
        let from = if t.core.is_some() { "core-" } else { "" };
        let default = format!("pymemspy-{from}{pid}-retention.{}", format.extension());
        let path = out
            .path
            .map_or_else(|| PathBuf::from(default), Path::to_path_buf);
        render::output::write(Some(&path), &render::profile::render(&profile, format)?)?;
        eprintln!("pymemspy: wrote {}", path.display());
        return Ok(());
    }
    let mut snap = snapshot::take_from(target, opts)?;
    match t.core.as_deref() {
        Some(core) => snap.core_file = Some(core.display().to_string()),
        None => snap.namespace_pid = crate::process::tree::namespace_pid(pid),
    }
    let bytes = if out.json {
        render::json::to_json(&snap)?
    } else {
        render::table::snapshot_table(&snap, out.top).into_bytes()
    };
    render::output::write(out.path, &bytes)
}

/// `snapshot --subprocesses`: table or JSON only (a flamegraph is per process).
pub(crate) fn snapshot_tree_cmd(
    pid: i32,
    opts: &SnapshotOptions,
    out: &Output,
) -> anyhow::Result<()> {
    if out.profile.is_some() {
        return Err(Error::Usage(
            "--subprocesses works with --format table or json (flamegraphs are per process: \
             run one per --pid)"
                .into(),
        )
        .into());
    }
    let t = snapshot_tree::take(pid, opts)?;
    let bytes = if out.json {
        render::json::to_json(&t)?
    } else {
        render::tree_table::tree_table(&t, out.top).into_bytes()
    };
    render::output::write(out.path, &bytes)
}
