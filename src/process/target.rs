//! A live target process: its pid, memory and mappings, and its files as the process sees them
//! (through /proc/PID/root, so a process in another mount namespace works from the host).

use super::core::CoreMemory;
use super::memory::{Fault, FaultKind, LiveMemory, Memory};
use super::view::Span;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub readable: bool,
    /// The path as the target sees it (inside its own mount namespace).
    pub path: Option<String>,
}

pub struct Target {
    pub pid: i32,
    pub memory: TargetMemory,
    pub maps: Vec<Mapping>,
}

/// What a target's bytes are read from: a live process, or a core file (nothing runs there:
/// no pausing, no /proc).
pub enum TargetMemory {
    Live(LiveMemory),
    Core(Box<CoreMemory>),
}

impl TargetMemory {
    /// The live process, for pausing it; None for a core.
    pub fn process(&self) -> Option<&remoteprocess::Process> {
        match self {
            TargetMemory::Live(m) => Some(m.process()),
            TargetMemory::Core(_) => None,
        }
    }
}

impl Memory for TargetMemory {
    #[inline]
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        match self {
            TargetMemory::Live(m) => m.read(addr, buf),
            TargetMemory::Core(c) => c.read(addr, buf),
        }
    }
}

impl Target {
    pub fn attach(pid: i32) -> Result<Target> {
        if pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(Error::NoSuchProcess(pid));
        }
        if process_state(pid) == Some('Z') {
            return Err(Error::Exited(pid));
        }
        let maps = read_maps(pid)?;
        if maps.is_empty() {
            // Kernel threads and zombies have no mappings.
            return Err(Error::NotPython {
                pid,
                exe: exe_name(pid),
            });
        }
        let target = Target {
            pid,
            memory: TargetMemory::Live(LiveMemory::new(pid)),
            maps,
        };
        target.probe()?;
        Ok(target)
    }

    /// A core file as the target (`pid` is the dumped process's, for display only).
    pub fn from_core(memory: CoreMemory, maps: Vec<Mapping>, pid: i32) -> Target {
        Target {
            pid,
            memory: TargetMemory::Core(Box::new(memory)),
            maps,
        }
    }

    pub fn is_core(&self) -> bool {
        matches!(self.memory, TargetMemory::Core(_))
    }

    /// One tiny read proves we may read this process at all, so permission problems surface as
    /// one clear error instead of thousands of skipped objects.
    fn probe(&self) -> Result<()> {
        // Any readable mapping will do: one may be mid-setup (a loader still mapping the
        // program) or a file region past EOF. Permission is only concluded when the kernel says so.
        let mut last = None;
        for m in self.maps.iter().filter(|m| m.readable).take(16) {
            let mut b = [0u8; 8];
            match self.memory.read(m.start, &mut b) {
                Ok(()) => return Ok(()),
                Err(f) => last = Some(f.kind),
            }
        }
        match last {
            Some(FaultKind::Gone) | None => Err(Error::Exited(self.pid)),
            _ if !self.is_alive() => Err(Error::Exited(self.pid)),
            Some(FaultKind::Permission) => Err(Error::Permission(self.pid)),
            Some(_) => Err(Error::Permission(self.pid)),
        }
    }

    /// Re-read /proc/PID/maps: arenas come and go while a recording runs.
    pub fn refresh_maps(&mut self) -> Result<()> {
        if self.is_core() {
            return Ok(());
        }
        self.maps = read_maps(self.pid)?;
        Ok(())
    }

    /// The readable spans as they are now (re-read from /proc for a live process; a core's
    /// do not change): for reads of structures the target may have just grown into new
    /// mappings, without a `&mut` to refresh the target's own list.
    pub fn spans_now(&self) -> Vec<Span> {
        if self.is_core() {
            return self.spans();
        }
        readable_spans(self.pid).unwrap_or_else(|_| self.spans())
    }

    pub fn spans(&self) -> Vec<Span> {
        readable(&self.maps)
    }

    /// A path of the target's, as this process can open it.
    ///
    /// In a container the target's paths are relative to its own root: /proc/PID/root/PATH.
    /// A chrooted target in another mount namespace shows paths under its chroot directory,
    /// which exists only in that namespace: strip the chroot prefix, or open the mapped file
    /// itself through /proc/PID/map_files (root only).
    pub fn host_path(&self, path: &str) -> PathBuf {
        if let TargetMemory::Core(c) = &self.memory {
            return c.host_path(path);
        }
        let root = format!("/proc/{}/root", self.pid);
        let via_root = PathBuf::from(format!("{root}{path}"));
        if via_root.exists() {
            return via_root;
        }
        if let Ok(chroot) = std::fs::read_link(&root) {
            let chroot = chroot.to_string_lossy();
            if let Some(rest) = path.strip_prefix(chroot.trim_end_matches('/')) {
                let inside = PathBuf::from(format!("{root}{rest}"));
                if rest.starts_with('/') && inside.exists() {
                    return inside;
                }
            }
        }
        if !Path::new(path).exists() {
            if let Some(m) = self.maps.iter().find(|m| m.path.as_deref() == Some(path)) {
                let mapped = PathBuf::from(format!(
                    "/proc/{}/map_files/{:x}-{:x}",
                    self.pid, m.start, m.end
                ));
                if std::fs::File::open(&mapped).is_ok() {
                    return mapped;
                }
            }
        }
        PathBuf::from(path)
    }

    pub fn exe(&self) -> String {
        if self.is_core() {
            return "core file".into();
        }
        exe_name(self.pid)
    }

    pub fn is_alive(&self) -> bool {
        !self.is_core() && is_running(self.pid)
    }
}

/// The process exists and is not a zombie (exited, not yet reaped by its parent).
pub fn is_running(pid: i32) -> bool {
    !matches!(process_state(pid), None | Some('Z') | Some('X'))
}

/// The single-letter state from /proc/PID/stat ('R', 'S', 'T', 'Z', ...).
pub fn process_state(pid: i32) -> Option<char> {
    process_state_of(Path::new(&format!("/proc/{pid}")))
}

/// The state letter from `DIR/stat` (a process or a task directory).
pub fn process_state_of(dir: &Path) -> Option<char> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

fn exe_name(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .or_else(|_| std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim().into()))
        .unwrap_or_else(|_| "?".into())
}

/// The readable spans of a live process now, from /proc/PID/maps.
pub fn readable_spans(pid: i32) -> Result<Vec<Span>> {
    read_maps(pid).map(|maps| readable(&maps))
}

fn readable(maps: &[Mapping]) -> Vec<Span> {
    maps.iter()
        .filter(|m| m.readable)
        .map(|m| Span {
            start: m.start,
            end: m.end,
        })
        .collect()
}

fn read_maps(pid: i32) -> Result<Vec<Mapping>> {
    let ranges = proc_maps::get_process_maps(pid).map_err(|e| match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => Error::Permission(pid),
        Some(libc::ENOENT) | Some(libc::ESRCH) => Error::NoSuchProcess(pid),
        _ => Error::io(format!("reading /proc/{pid}/maps"), e),
    })?;
    Ok(ranges
        .iter()
        .map(|r| Mapping {
            start: r.start() as u64,
            end: (r.start() + r.size()) as u64,
            offset: r.offset as u64,
            readable: r.is_read(),
            path: r
                .filename()
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| p.starts_with('/')),
        })
        .collect())
}
