//! Stage 2 of the pipeline: from a target process to one validated `Layout`.
//!
//! Order: locate the runtime → tell the version → start from the table → let debug offsets and
//! DWARF override → prove the result against the live process (type(type) is type, GC list heads
//! link back to themselves). A layout that does not prove itself is an error, never a guess.

use super::binary::{self, PythonBinary};
use super::debug_offsets;
use super::dwarf;
use super::layout::{Layout, Version};
use super::layout_cache;
use super::tables;
use crate::error::{Error, Result};
use crate::process::{Memory, MemoryExt, Target};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ResolveOptions {
    /// Extra directories holding `.build-id/xx/yyyy.debug` files.
    pub debug_dirs: Vec<PathBuf>,
    /// Skip DWARF even when present (faster; tables and debug offsets only).
    pub no_dwarf: bool,
    /// Keep what DWARF yields in the per-user layout cache, and use it (see `layout_cache`).
    pub cache: bool,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            debug_dirs: Vec::new(),
            no_dwarf: false,
            cache: layout_cache::enabled_by_env(),
        }
    }
}

/// Everything stage 3 needs to walk a heap.
#[derive(Debug, Clone)]
pub struct Python {
    pub binary: PythonBinary,
    pub layout: Layout,
    pub runtime: u64,
    /// `PyInterpreterState*` of every interpreter, main first.
    pub interpreters: Vec<u64>,
    /// `&PyType_Type`: the root of every type check.
    pub type_type: u64,
    pub version_found_by: &'static str,
    pub warnings: Vec<String>,
    /// Where tracemalloc keeps its tables (None: a version whose layout is not known).
    pub tracemalloc: Option<super::tracemalloc_layout::TracemallocLayout>,
}

impl Python {
    /// True once the runtime has begun shutting down (None when the layout does not say where
    /// to look, or the read failed).
    pub fn is_finalizing(&self, mem: &dyn Memory) -> Option<bool> {
        let off = self.layout.runtime.finalizing?;
        mem.u64(self.runtime.wrapping_add(off)).ok().map(|p| p != 0)
    }

    /// Address of the GC state of an interpreter.
    pub fn gc_state(&self, interp: u64) -> u64 {
        match (self.layout.runtime.gc, self.layout.interp.gc) {
            (Some(off), _) => self.runtime + off,
            (None, Some(off)) => interp + off,
            (None, None) => 0,
        }
    }
}

const MAX_INTERPRETERS: usize = 256;

/// Which CPython `target` runs and where its structures are: the binary, the version, the layout,
/// checked by `type(type)`, and the interpreters. Long: the layout's sources applied in order (the
/// table, then debug offsets, then DWARF, each overriding the last), then checked; kept in one
/// place so that order is visible.
pub fn resolve(target: &Target, opts: &ResolveOptions) -> Result<Python> {
    let mut binary = binary::locate(target)?;
    let debug_file = dwarf::debug_file(&binary, target, &opts.debug_dirs);
    // The cache stands for the DWARF: without DWARF, there is nothing to keep.
    let cache_slot = debug_file
        .as_deref()
        .filter(|_| opts.cache && !opts.no_dwarf)
        .and_then(|f| layout_cache::Slot::new(&binary, f));
    let cached = cache_slot.as_ref().and_then(|s| s.load());
    // A stripped build's static symbols (pymalloc's arenas, ...) live in its debug file.
    let mut debug_symbols = BTreeMap::new();
    if !binary.has_debug_info {
        if let Some(dbg) = &debug_file {
            debug_symbols = match &cached {
                Some(entry) => entry.symbols.clone(),
                None => binary::debug_symbols(dbg).unwrap_or_default(),
            };
            binary.add_symbols(&debug_symbols);
        }
    }
    let mem = &target.memory;
    let unsupported = |why: String| Error::Unsupported {
        pid: target.pid,
        why,
    };

    let head = mem
        .bytes(binary.runtime, debug_offsets::READ_LEN)
        .map_err(|_| unsupported(format!("cannot read _PyRuntime at {:#x}", binary.runtime)))?;
    let dbg = debug_offsets::parse(&head);
    let (version, version_found_by) = if let Some(d) = &dbg {
        (d.version, "debug offsets")
    } else if let Some(v) = binary
        .symbol("Py_Version")
        .and_then(|a| mem.u64(a).ok())
        .filter(|v| v >> 24 == 3)
    {
        (Version::from_hex(v), "Py_Version")
    } else if let Some(v) = binary.version_text().as_deref().and_then(Version::parse) {
        (v, "version string")
    } else {
        return Err(unsupported(
            "could not tell the Python version (no debug offsets, Py_Version or version string)"
                .into(),
        ));
    };

    let mut layout = tables::table_layout(version).ok_or_else(|| {
        let known: Vec<String> = tables::supported_minors()
            .map(|m| format!("3.{m}"))
            .collect();
        unsupported(format!(
            "Python {version} is not supported (supported: {})",
            known.join(", ")
        ))
    })?;
    if let Some(d) = &dbg {
        d.apply(&mut layout);
        super::frames_layout::apply_debug_offsets(&head, version, &mut layout.frames);
    }
    let mut warnings = Vec::new();
    let mut dwarf_offsets = dwarf::Offsets::new();
    if let Some(path) = debug_file.as_deref().filter(|_| !opts.no_dwarf) {
        let free_threaded = layout.free_threaded;
        let hit = cached
            .filter(|e| e.free_threaded == free_threaded)
            .map(|e| e.offsets);
        let from_cache = hit.is_some();
        let read = match hit {
            Some(offsets) => Ok(offsets),
            None => dwarf::read_file(path, free_threaded),
        };
        match read {
            Ok(offsets) => {
                if let Some(slot) = cache_slot.as_ref().filter(|_| !from_cache) {
                    slot.store(free_threaded, &offsets, &debug_symbols);
                }
                if !offsets.is_empty() {
                    dwarf::override_layout(&offsets, &mut layout);
                    let cached = if from_cache { " (cached)" } else { "" };
                    layout
                        .sources
                        .push(format!("DWARF from {}{cached}", path.display()));
                }
                dwarf_offsets = offsets;
            }
            Err(e) => warnings.push(format!("debug info ignored: {e}")),
        }
    }

    let type_type = binary
        .symbol("PyType_Type")
        .ok_or_else(|| unsupported("no PyType_Type symbol in the Python binary".into()))?;
    let meta = mem.u64(type_type.wrapping_add(layout.ob_type)).unwrap_or(0);
    if meta != type_type {
        return Err(unsupported(format!(
            "type(type) is not type ({meta:#x} != {type_type:#x}): wrong binary or layout"
        )));
    }

    let interpreters = interpreters(mem, binary.runtime, &layout).ok_or_else(|| {
        unsupported("no interpreter in _PyRuntime (the process may still be starting)".into())
    })?;
    let mut py = Python {
        runtime: binary.runtime,
        binary,
        layout,
        interpreters,
        type_type,
        version_found_by,
        warnings,
        tracemalloc: super::tracemalloc_layout::resolve(version.minor, &dwarf_offsets),
    };
    if !py.layout.free_threaded {
        settle_gc_heads(mem, &mut py).map_err(|e| unsupported(e.to_string()))?;
    }
    Ok(py)
}

fn interpreters(mem: &dyn Memory, runtime: u64, layout: &Layout) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    let mut cur = mem
        .u64(runtime.wrapping_add(layout.runtime.interpreters_head))
        .ok()?;
    while cur != 0 && out.len() < MAX_INTERPRETERS && !out.contains(&cur) {
        out.push(cur);
        cur = mem.u64(cur.wrapping_add(layout.interp.next)).unwrap_or(0);
    }
    // The list is newest first; the main interpreter is the last one.
    out.reverse();
    (!out.is_empty()).then_some(out)
}

/// Find where the generation list heads really are, and prove it.
///
/// `generation0` points at the first head in every generational layout; following it rather than
/// trusting the `generations` offset is what makes Debian's 3.13 (GC-head alignment patch,
/// generations at +20 instead of +24) work without a special case.
fn settle_gc_heads(mem: &dyn Memory, py: &mut Python) -> anyhow::Result<()> {
    let interp = py.interpreters[0];
    let gc = py.gc_state(interp);
    let g = &mut py.layout.gc;
    if let Some(off) = g.generation0 {
        let gen0 = mem
            .u64(gc.wrapping_add(off))
            .map_err(|e| anyhow::anyhow!("reading generation0: {e}"))?;
        match gen0.checked_sub(gc) {
            Some(d) if d < g.size => g.generations = d,
            _ => {
                anyhow::bail!("GC generation0 pointer {gen0:#x} is outside the GC state at {gc:#x}")
            }
        }
    }
    let heads: Vec<u64> = (0..g.generation_count)
        .map(|i| gc + g.generations + i * g.generation_stride)
        .chain([gc + g.permanent])
        .collect();
    for h in heads {
        if !head_links_back(mem, h) {
            anyhow::bail!("GC list head at {h:#x} does not link back to itself: layout mismatch");
        }
    }
    Ok(())
}

/// A list head is valid when its next node's prev pointer comes back to it (or the list is
/// empty). `_gc_prev` carries flag bits in its low two bits.
///
/// The two words are read at different moments while the target runs: a thread that frees the
/// list's first object between them makes a correct layout look wrong. So both are re-read,
/// a few dozen times over some milliseconds, before the layout is declared wrong.
fn head_links_back(mem: &dyn Memory, head: u64) -> bool {
    for _ in 0..HEAD_CHECK_ATTEMPTS {
        let Ok(next) = mem.u64(head).map(|v| v & !3) else {
            return false;
        };
        if next == head || mem.u64(next.wrapping_add(8)).map(|v| v & !3).ok() == Some(head) {
            return true;
        }
        // During a collection the objects' `_gc_prev` hold reference counts, not links, but
        // `_gc_next` still chains them: the head's own `_gc_prev` names the last node, whose
        // next is the head.
        let last = mem.u64(head.wrapping_add(8)).map(|v| v & !3);
        if last.is_ok_and(|p| p != 0 && mem.u64(p).map(|v| v & !3).ok() == Some(head)) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    false
}

const HEAD_CHECK_ATTEMPTS: u32 = 50;
