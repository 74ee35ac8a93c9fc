//! Which process a command reads, as the command line names it: a live pid, a core file or a
//! heap dump, and the options that resolve its build.

use crate::error::Error;
use crate::process::core::CoreProcess;
use crate::process::Target;
use crate::python::ResolveOptions;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Clone)]
pub(crate) struct TargetArgs {
    /// Process id of the Python process (decimal or 0x hex).
    #[arg(short, long, required_unless_present_any = ["core", "heap"], value_parser = parse_pid)]
    pid: Option<i32>,
    /// Read a heap dump (`snapshot --format heap -o FILE`) instead of a live process.
    #[arg(long, conflicts_with_all = ["pid", "core"])]
    pub(crate) heap: Option<PathBuf>,
    /// Read a core file (`gcore -o PREFIX PID`) instead of a live process.
    #[arg(long, conflicts_with = "pid")]
    pub(crate) core: Option<PathBuf>,
    /// With --core: the Python executable, when the path recorded in the core is not valid here.
    #[arg(long, requires = "core")]
    pub(crate) executable: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) resolve: ResolveArgs,
}

impl TargetArgs {
    /// The live process (0 with `--core`, where clap makes `--pid` optional).
    pub(crate) fn pid(&self) -> i32 {
        self.pid.unwrap_or(0)
    }

    pub(crate) fn resolve_options(&self) -> ResolveOptions {
        self.resolve.options()
    }
}

/// How the build is resolved, for every command that attaches (`snapshot`, `why`, `record`,
/// `top`, `dump`, ...): flattened into each command's arguments.
#[derive(Args, Clone, Default)]
pub(crate) struct ResolveArgs {
    /// Extra directories with `.build-id/xx/yyyy.debug` files (repeatable).
    #[arg(long = "debug-dir")]
    debug_dirs: Vec<PathBuf>,
    /// Do not read DWARF debug info even when present.
    #[arg(long)]
    no_dwarf: bool,
}

impl ResolveArgs {
    pub(crate) fn options(&self) -> ResolveOptions {
        ResolveOptions {
            debug_dirs: self.debug_dirs.clone(),
            no_dwarf: self.no_dwarf,
            ..Default::default()
        }
    }
}

/// A pid as people write it: decimal, or hex with 0x (as some tools and logs print them).
pub(crate) fn parse_pid(s: &str) -> anyhow::Result<i32> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => i32::from_str_radix(hex, 16),
        None => t.parse::<i32>(),
    };
    match parsed {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => anyhow::bail!("`{s}` is not a process id (a positive number, decimal or 0x hex)"),
    }
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
