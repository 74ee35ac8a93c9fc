//! Command line: subcommands and their options, dispatched to the pipeline.

use crate::analysis::snapshot::{self, SnapshotOptions};
use crate::python::ResolveOptions;
use crate::render;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pymemspy",
    version,
    about = "Where is the memory of a running Python process? Reads it from outside: no code \
             injected, nothing written, not stopped unless asked."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Census of live objects by type, now.
    Snapshot(SnapshotArgs),
    /// Print the resolved CPython layout of a process as JSON (for debugging new builds).
    #[command(hide = true)]
    Layout(TargetArgs),
    /// Every thread's Python stack now (innermost frame first), without pausing the process.
    Dump(crate::cli_stacks::DumpArgs),
    /// Sample which code makes the heap grow; writes collapsed stacks weighted by bytes.
    #[command(hide = true)]
    AllocProfile(crate::cli_stacks::AllocProfileArgs),
}

#[derive(Args, Clone)]
pub(crate) struct TargetArgs {
    /// Process id of the Python process.
    #[arg(short, long)]
    pub(crate) pid: i32,
    /// Extra directories with `.build-id/xx/yyyy.debug` files (repeatable).
    #[arg(long = "debug-dir")]
    debug_dirs: Vec<PathBuf>,
    /// Do not read DWARF debug info even when present.
    #[arg(long)]
    no_dwarf: bool,
}

impl TargetArgs {
    pub(crate) fn resolve_options(&self) -> ResolveOptions {
        ResolveOptions {
            debug_dirs: self.debug_dirs.clone(),
            no_dwarf: self.no_dwarf,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum SnapshotFormat {
    Table,
    Json,
}

#[derive(Args)]
struct SnapshotArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(short, long, value_enum, default_value = "table")]
    format: SnapshotFormat,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Rows in the table.
    #[arg(long, default_value = "25")]
    top: usize,
    /// Count only objects on the GC's lists (containers and instances).
    #[arg(long)]
    gc_only: bool,
    /// Stop the target while reading (ptrace), for a consistent picture of a busy process.
    #[arg(long)]
    pause: bool,
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Snapshot(a) => snapshot_cmd(a),
        Command::Dump(a) => crate::cli_stacks::dump_cmd(a),
        Command::AllocProfile(a) => crate::cli_stacks::alloc_profile_cmd(a),
        Command::Layout(t) => {
            let target = crate::process::Target::attach(t.pid)?;
            let py = crate::python::resolve(&target, &t.resolve_options())?;
            let out = serde_json::json!({
                "binary": py.binary.path,
                "runtime": format!("{:#x}", py.runtime),
                "runtime_found_by": py.binary.runtime_found_by,
                "version_found_by": py.version_found_by,
                "interpreters": py.interpreters.iter().map(|i| format!("{i:#x}")).collect::<Vec<_>>(),
                "layout": py.layout,
                "warnings": py.warnings,
            });
            render::output::write(None, &render::json::to_json(&out)?)
        }
    }
}

fn snapshot_cmd(a: SnapshotArgs) -> anyhow::Result<()> {
    let opts = SnapshotOptions {
        resolve: a.target.resolve_options(),
        pause: a.pause,
        ..Default::default()
    };
    let snap = snapshot::take(a.target.pid, opts)?;
    let bytes = match a.format {
        SnapshotFormat::Json => render::json::to_json(&snap)?,
        SnapshotFormat::Table => render::table::snapshot_table(&snap, a.top).into_bytes(),
    };
    render::output::write(a.output.as_deref(), &bytes)
}
