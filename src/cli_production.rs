//! Commands for production setups: process trees (`--subprocesses`), core files, containers.
//! Kept apart from cli.rs so the snapshot command only gains a dispatch line per feature.

use crate::analysis::snapshot::SnapshotOptions;
use crate::analysis::snapshot_tree;
use crate::error::Error;
use crate::render;
use std::path::Path;

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
