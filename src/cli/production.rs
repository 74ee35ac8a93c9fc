//! Commands for production setups: process trees (`--subprocesses`), core files, containers.
//! Kept apart from cli.rs so the snapshot command only gains a dispatch line per feature.

use crate::analysis::allocations;
use crate::analysis::heap_source::LiveSource;
use crate::analysis::snapshot::{self, Session, SnapshotOptions};
use crate::analysis::snapshot_tree;
use crate::cli::TargetArgs;
use crate::error::Error;
use crate::process::core::CoreProcess;
use crate::process::Target;
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
        allocations::table(&report, top).into_bytes()
    };
    render::output::write(output, &bytes)
}

/// The target named on the command line: a core file (`--core`) or a live process (`--pid`).
pub(crate) fn open_target(t: &TargetArgs) -> anyhow::Result<Target> {
    match &t.core {
        Some(core) => {
            let c = CoreProcess::open(core, t.executable.as_deref())?;
            let target = Target::from_core(c.memory, c.maps, c.pid);
            // Finding the runtime needs the files the process mapped: say which one is missing.
            if let Err(Error::NotPython { .. }) = crate::python::binary::locate(&target) {
                let exe = c.executable.as_deref().unwrap_or("?");
                let missing = if t.executable.is_some() || Path::new(exe).is_file() {
                    String::new()
                } else {
                    format!(" ({exe} is not on this machine)")
                };
                anyhow::bail!(
                    "core file {}: no CPython runtime in the files it maps{missing}: pass \
                     --executable /path/to/the/python/binary it ran",
                    core.display()
                );
            }
            Ok(target)
        }
        None => Ok(Target::attach(t.pid())?),
    }
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
            let graph = crate::analysis::heap_graph::capture(&mut src, objects);
            crate::cli_heap::retention_profile_of(&graph)
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
