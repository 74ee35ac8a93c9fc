//! Where the process's memory goes, in numbers a person can act on: Python objects, pymalloc's
//! arenas (and how much of them is free: the "Python does not give memory back" question), the
//! rest of the anonymous memory (native allocations), files and stacks.

use super::Census;
use crate::heap::mimalloc::{HeapStats, MimallocStats};
use crate::heap::pymalloc::arenas::{Arenas, ScanStats};
use crate::process::smaps::RssParts;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pymalloc {
    pub arenas: u64,
    /// Address space reserved by arenas.
    pub reserved_bytes: u64,
    /// Pools carved out of the arenas so far (each holds blocks of one size class).
    pub pool_bytes: u64,
    /// Bytes of blocks in use (live objects and object-owned buffers).
    pub in_use_bytes: u64,
    /// Free blocks inside carved pools: fragmentation that cannot go back to the OS until a
    /// whole arena empties.
    pub free_in_pools_bytes: u64,
    /// Arena space never carved into pools yet.
    pub never_carved_bytes: u64,
    /// in_use / reserved.
    pub utilization: f64,
    /// How the arenas were found.
    pub found_by: String,
    /// Live pymalloc-API requests over 512 bytes, served by malloc (3.9+).
    pub raw_allocated_blocks: Option<u64>,
}

/// Free-threaded builds: mimalloc's pages, per heap kind (mem = PyMem buffers, object, gc,
/// gc_pre), and how full they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mimalloc {
    pub threads: u64,
    pub abandoned_pages: u64,
    /// Bytes of page block areas.
    pub page_bytes: u64,
    pub in_use_bytes: u64,
    /// Free blocks inside pages: held by the process, not by objects.
    pub free_in_pages_bytes: u64,
    pub heaps: Vec<HeapStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryReport {
    pub rss: RssParts,
    pub pymalloc: Option<Pymalloc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mimalloc: Option<Mimalloc>,
    /// sys.getsizeof of every object found, and what the allocators really hold for them.
    pub python_objects_bytes: u64,
    pub python_objects_allocated_bytes: u64,
    /// Heap buffers that Python objects own outside their allocation (numpy data, bytearray
    /// and array.array items: heap::objects::native), part of `python_objects_allocated_bytes` but
    /// shown on a line of their own, taken out of what would otherwise be "native".
    pub owned_by_objects_bytes: u64,
    /// The types that own them, largest first (at most 3): (type, native bytes).
    pub owned_by_objects_types: Vec<(String, u64)>,
    /// Anonymous resident memory not explained by pymalloc arenas, objects outside them or the
    /// buffers objects own: C extensions, interpreter internals, malloc overhead and free
    /// lists.
    pub native_bytes: u64,
    /// The resident memory as a tree whose parts add up: the top level to RSS, each part's
    /// children to it (`depth` 0 under RSS). What the table prints.
    #[serde(default)]
    pub parts: Vec<MemoryPart>,
}

impl MemoryReport {
    /// The tree of `parts`; for a report stored before it existed (an older heap dump), made
    /// from the same fields.
    pub fn tree(&self) -> Vec<MemoryPart> {
        if !self.parts.is_empty() {
            return self.parts.clone();
        }
        let in_pages = self.pymalloc.as_ref().map_or(0, |p| p.in_use_bytes)
            + self.mimalloc.as_ref().map_or(0, |m| m.in_use_bytes);
        parts(
            &self.rss,
            self.pymalloc.as_ref(),
            self.mimalloc.as_ref(),
            self.python_objects_allocated_bytes.saturating_sub(in_pages),
            &self.owned_by_objects_types,
        )
    }
}

/// One part of the resident memory; the parts after it with a greater depth are its children.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemoryPart {
    pub name: String,
    pub bytes: u64,
    pub depth: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// RSS = file-backed pages + the rest (anonymous mappings); the rest = allocator pages (each =
/// blocks in use + free blocks), objects outside them, the main stack and what is left, which
/// is native. "python objects" and "pymalloc arenas" overlap (objects live in the arenas), so
/// they are never siblings here. When the named parts exceed the anonymous pages (some of them
/// not resident), "native" is 0.
fn parts(
    rss: &RssParts,
    pymalloc: Option<&Pymalloc>,
    mimalloc: Option<&Mimalloc>,
    outside: u64,
    owners: &[(String, u64)],
) -> Vec<MemoryPart> {
    let part = |name: &str, bytes: u64, depth: u8, note: &str| MemoryPart {
        name: name.into(),
        bytes,
        depth,
        note: note.into(),
    };
    let anon = rss.rss.saturating_sub(rss.file);
    let mut under = Vec::new();
    let mut named = 0u64;
    if let Some(p) = pymalloc {
        let in_use = p.in_use_bytes.min(p.pool_bytes);
        // Arena space never carved into pools is reserved but untouched: not resident.
        under.push(part(
            "pymalloc pools",
            p.pool_bytes,
            1,
            "carved in the arenas",
        ));
        under.push(part("objects", in_use, 2, "blocks in use"));
        under.push(part(
            "free in pools",
            p.pool_bytes - in_use,
            2,
            "held until a whole arena empties",
        ));
        named += p.pool_bytes;
    }
    if let Some(m) = mimalloc {
        let in_use = m.in_use_bytes.min(m.page_bytes);
        under.push(part("mimalloc pages", m.page_bytes, 1, ""));
        under.push(part("in use", in_use, 2, "objects and buffers"));
        under.push(part("free in pages", m.page_bytes - in_use, 2, ""));
        named += m.page_bytes;
    }
    under.push(part(
        "python objects outside",
        outside,
        1,
        if owners.is_empty() {
            "large objects and statics"
        } else {
            "large objects and statics, with the buffers objects own"
        },
    ));
    under.push(part("main stack", rss.stack, 1, ""));
    named += outside + rss.stack;
    under.push(part(
        "native / unattributed",
        anon.saturating_sub(named),
        1,
        "C extensions, interpreter, malloc, thread stacks",
    ));
    let mut out = vec![
        part(
            "file-backed",
            rss.file,
            0,
            "executable, libraries, mapped files",
        ),
        // When the named parts exceed it (some not resident), "native" is 0: the renderer
        // says by how much.
        part("anonymous", anon, 0, ""),
    ];
    out.extend(under);
    out
}

pub fn report(
    rss: RssParts,
    arenas: Option<&Arenas>,
    scan: Option<&ScanStats>,
    mi: Option<&MimallocStats>,
    census: &Census,
) -> MemoryReport {
    let mimalloc = mi.map(|m| Mimalloc {
        threads: m.threads,
        abandoned_pages: m.abandoned_pages,
        page_bytes: m.page_bytes(),
        in_use_bytes: m.bytes_in_use(),
        free_in_pages_bytes: m.page_bytes().saturating_sub(m.bytes_in_use()),
        heaps: m.heaps.clone(),
    });
    let pymalloc = match (arenas, scan) {
        (Some(a), Some(s)) if !a.arenas.is_empty() => {
            let reserved = a.reserved_bytes();
            Some(Pymalloc {
                arenas: a.arenas.len() as u64,
                reserved_bytes: reserved,
                pool_bytes: s.pool_bytes,
                in_use_bytes: s.bytes_in_use,
                free_in_pools_bytes: s.pool_bytes.saturating_sub(s.bytes_in_use),
                never_carved_bytes: reserved.saturating_sub(s.pool_bytes),
                utilization: s.bytes_in_use as f64 / reserved.max(1) as f64,
                found_by: a.found_by.clone(),
                raw_allocated_blocks: a.raw_allocated_blocks,
            })
        }
        _ => None,
    };
    // Objects outside arenas (or mimalloc pages) hold at most what was not in their blocks.
    let in_arenas = pymalloc.as_ref().map_or(0, |p| p.in_use_bytes)
        + mimalloc.as_ref().map_or(0, |m| m.in_use_bytes);
    let outside = census.allocated_bytes.saturating_sub(in_arenas);
    let arena_reserved = pymalloc.as_ref().map_or(0, |p| p.pool_bytes)
        + mimalloc.as_ref().map_or(0, |m| m.page_bytes);
    let native = (rss.anon + rss.swap)
        .saturating_sub(arena_reserved)
        .saturating_sub(outside)
        .saturating_sub(rss.stack);
    // `outside` already holds the owned buffers (the census's allocated bytes count what
    // sys.getsizeof counts beyond the object): they are named here, not subtracted again.
    let mut owners: Vec<(String, u64)> = census
        .types
        .iter()
        .filter(|t| t.native_bytes > 0 && owns_heap_buffers(&t.name))
        .map(|t| (t.name.clone(), t.native_bytes))
        .collect();
    owners.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    owners.truncate(3);
    let parts = parts(&rss, pymalloc.as_ref(), mimalloc.as_ref(), outside, &owners);
    MemoryReport {
        parts,
        rss,
        pymalloc,
        mimalloc,
        python_objects_bytes: census.bytes,
        python_objects_allocated_bytes: census.allocated_bytes,
        owned_by_objects_bytes: census.native_heap_bytes,
        owned_by_objects_types: owners,
        native_bytes: native,
    }
}

/// Types whose native bytes the census counted as heap buffers (`Census::native_heap_bytes`):
/// by name, since the report sees names only. Subclasses of these are named otherwise and
/// still counted in the total, only not listed.
fn owns_heap_buffers(name: &str) -> bool {
    matches!(name, "numpy.ndarray" | "bytearray" | "array.array")
}
