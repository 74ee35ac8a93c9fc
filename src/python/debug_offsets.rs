//! `_Py_DebugOffsets` (3.13+): the runtime describes a few of its own struct offsets at the very
//! start of `_PyRuntime`. The struct is not self-describing, so where each value sits depends on
//! the version; these positions were read off 3.13.5, 3.14.10 and 3.15.2.

use super::layout::{Layout, Version};
use crate::process::Bytes;

pub const COOKIE: &[u8; 8] = b"xdebugpy";
/// Enough to cover the largest known struct (3.15: 888 bytes).
pub const READ_LEN: usize = 1024;

/// Positions of the values we use, inside the debug offsets struct.
struct Positions {
    runtime_size: usize,
    finalizing: usize,
    interpreters_head: usize,
    interp_size: usize,
    interp_next: usize,
    interp_threads_head: usize,
    interp_gc: usize,
    interp_modules: usize,
    interp_sysdict: usize,
    interp_builtins: usize,
    gc_size: usize,
    gc_collecting: usize,
}

fn positions(minor: u8) -> Option<Positions> {
    // 3.14 inserted interpreter_state.threads_main after threads_head, shifting what follows.
    let (shift, gc_size) = match minor {
        13 => (0, 568),
        14 => (8, 648),
        15 => (8, 752),
        _ => return None,
    };
    Some(Positions {
        runtime_size: 24,
        finalizing: 32,
        interpreters_head: 40,
        interp_size: 48,
        interp_next: 64,
        interp_threads_head: 72,
        interp_gc: 80 + shift,
        interp_modules: 88 + shift,
        interp_sysdict: 96 + shift,
        interp_builtins: 104 + shift,
        gc_size,
        gc_collecting: gc_size + 8,
    })
}

#[derive(Debug, Clone)]
pub struct DebugOffsets {
    pub version: Version,
    pub free_threaded: bool,
    pub runtime_size: u64,
    pub finalizing: u64,
    pub interp_size: u64,
    pub interpreters_head: u64,
    pub interp_next: u64,
    pub interp_threads_head: u64,
    pub interp_gc: u64,
    pub interp_modules: u64,
    pub interp_sysdict: u64,
    pub interp_builtins: u64,
    pub gc_size: u64,
    pub gc_collecting: u64,
}

/// Parse the struct from bytes read at `_PyRuntime`. None when there is no cookie (before 3.13)
/// or the version is one we have no positions for.
pub fn parse(raw: &[u8]) -> Option<DebugOffsets> {
    if raw.get(..8)? != COOKIE {
        return None;
    }
    let version = Version::from_hex(raw.u64_at(8));
    let p = positions(version.minor)?;
    let d = DebugOffsets {
        version,
        free_threaded: raw.u64_at(16) != 0,
        runtime_size: raw.u64_at(p.runtime_size),
        finalizing: raw.u64_at(p.finalizing),
        interp_size: raw.u64_at(p.interp_size),
        interpreters_head: raw.u64_at(p.interpreters_head),
        interp_next: raw.u64_at(p.interp_next),
        interp_threads_head: raw.u64_at(p.interp_threads_head),
        interp_gc: raw.u64_at(p.interp_gc),
        interp_modules: raw.u64_at(p.interp_modules),
        interp_sysdict: raw.u64_at(p.interp_sysdict),
        interp_builtins: raw.u64_at(p.interp_builtins),
        gc_size: raw.u64_at(p.gc_size),
        gc_collecting: raw.u64_at(p.gc_collecting),
    };
    d.plausible().then_some(d)
}

impl DebugOffsets {
    /// Offsets must fall inside their structs; anything else means we mis-read the layout.
    fn plausible(&self) -> bool {
        let in_interp = |o: u64| o < self.interp_size;
        self.version.major == 3
            && self.interpreters_head < self.runtime_size
            && self.runtime_size < (16 << 20)
            && self.interp_size < (16 << 20)
            && [
                self.interp_next,
                self.interp_threads_head,
                self.interp_gc,
                self.interp_modules,
                self.interp_sysdict,
                self.interp_builtins,
            ]
            .into_iter()
            .all(in_interp)
            && self.gc_collecting < self.gc_size
            && self.gc_size < 4096
    }

    /// Overwrite the table values the debug offsets know better.
    pub fn apply(&self, layout: &mut Layout) {
        layout.free_threaded = self.free_threaded;
        if self.free_threaded {
            // The free-threaded object header is 32 bytes: ob_tid, flags, refcounts, then type.
            layout.ob_type = 24;
            layout.ob_size = 32;
        }
        layout.runtime.interpreters_head = self.interpreters_head;
        layout.runtime.finalizing =
            (self.finalizing < self.runtime_size).then_some(self.finalizing);
        layout.interp.next = self.interp_next;
        layout.interp.threads_head = self.interp_threads_head;
        layout.interp.gc = Some(self.interp_gc);
        layout.interp.modules = self.interp_modules;
        layout.interp.sysdict = self.interp_sysdict;
        layout.interp.builtins = self.interp_builtins;
        layout.gc.collecting = self.gc_collecting;
        if self.version.minor == 14 && self.gc_size == 240 {
            // 3.14.0–3.14.4 shipped the incremental GC: young/old[0]/old[1] sit where the
            // generations would, but there is no `generation0` pointer.
            layout.gc.generation0 = None;
        }
        layout.gc.size = self.gc_size;
        layout.sources.push("debug offsets".into());
    }
}
