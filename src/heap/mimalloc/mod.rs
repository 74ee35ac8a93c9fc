//! Free-threaded builds (3.13t, 3.14t): every object lives in a mimalloc heap of the thread that
//! allocated it. There are no GC lists and no pymalloc arenas; we do what the FT garbage
//! collector does: interpreter → thread states → each thread's four heaps → page queues →
//! pages → blocks, skipping blocks on the page's free lists. Pages of threads that exited sit in
//! the interpreter's abandoned pool, found through their segments.
//!
//! The mimalloc structs are CPython's vendored copy (`Include/internal/mimalloc/mimalloc/
//! types.h`, with the `Py_GIL_DISABLED` page fields); their geometry is the same in 3.13t and
//! 3.14t, so it is fixed here. Where the heaps hang off CPython's structs is per build and comes
//! from the `Layout` (`MimallocLayout`: tables, DWARF).
//!
//! A block is an object only when everything agrees: a real type, a live (split) refcount, the
//! heap its type belongs in, and a size that fits the block.

pub mod fresh_pages;

use crate::heap::objects::sizes::own_size;
use crate::heap::objects::types::{TypeInfo, TypeTable};
use crate::heap::pymalloc::arenas::{BlockFraming, BlockObject, DEBUG_FRAMING};
use crate::heap::regions::Regions;
use crate::heap::walk::Walk;
use crate::process::{Bytes, MemoryExt, View};
use crate::python::layout::{flags, Layout, MimallocLayout};
use crate::python::Python;
use rustc_hash::FxHashSet as HashSet;
use serde::{Deserialize, Serialize};

/// `_mimalloc_thread_state`: current_object_heap, then `mi_heap_t heaps[4]`.
pub(crate) const THREAD_HEAPS: u64 = 8;
/// `mi_heap_t`: size, page queues, cross-thread delayed frees, the tag CPython gives each heap.
pub(crate) const HEAP_SIZE: u64 = 3064;
pub(crate) const HEAP_TLD: u64 = 0;
pub(crate) const HEAP_PAGES: u64 = 1040;
const HEAP_THREAD_DELAYED_FREE: u64 = 2840;
pub(crate) const HEAP_TAG: u64 = 3057;
/// `mi_page_queue_t { first, last, block_size }`, MI_BIN_FULL + 1 of them.
pub(crate) const PAGE_QUEUE_SIZE: u64 = 24;
pub(crate) const PAGE_QUEUES: u64 = 75;
/// `mi_page_t` (96 bytes with the FT qsbr fields).
pub(crate) const PAGE_SIZE: u64 = 96;
const PAGE_SLICE_COUNT: usize = 0;
const PAGE_FLAGS: usize = 8;
const PAGE_CAPACITY: usize = 10;
const PAGE_RESERVED: usize = 12;
const PAGE_FREE: usize = 16;
const PAGE_USED: usize = 24;
const PAGE_XBLOCK_SIZE: usize = 28;
const PAGE_LOCAL_FREE: usize = 32;
const PAGE_XTHREAD_FREE: usize = 40;
const PAGE_NEXT: usize = 56;
/// `mi_segment_t`: 32 MiB aligned, its `slices[]` (one `mi_page_t` each) at 264.
const SEGMENT_SIZE: u64 = 1 << 25;
const SEGMENT_SLICES: u64 = 264;
const SEGMENT_ABANDONED_NEXT: u64 = 176;
const SEGMENT_SLICE_ENTRIES: u64 = 248;
const SLICE_BYTES: u64 = 1 << 16;
const MAX_SLICE_ENTRIES: u64 = SEGMENT_SIZE / SLICE_BYTES + 1;
/// `mi_abandoned_pool_t`: abandoned_visited at 0, the tagged `abandoned` list at 64.
const POOL_VISITED: u64 = 0;
const POOL_ABANDONED: u64 = 64;

/// CPython's heap ids (`_Py_MIMALLOC_HEAP_*`), which are also the page tags.
pub const HEAP_MEM: u8 = 0;
pub const HEAP_OBJECT: u8 = 1;
pub const HEAP_GC: u8 = 2;
pub const HEAP_GC_PRE: u8 = 3;
const HEAP_NAMES: [&str; 4] = ["mem", "object", "gc", "gc_pre"];

const MAX_THREADS: usize = 1 << 14;
const MAX_PAGES_PER_QUEUE: u64 = 1 << 22;
const MAX_SEGMENTS: usize = 1 << 16;
const MAX_DELAYED: u64 = 1 << 24;
/// Page areas up to this size are copied whole; larger (huge) pages are read block by block.
pub(crate) const MAX_PAGE_COPY: u64 = 4 << 20;
/// Bytes of a block read when its page is not copied whole.
const HEAD_OF_LARGE_BLOCK: u64 = 4096;

/// Per heap kind: pages and blocks seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeapStats {
    pub heap: &'static str,
    pub pages: u64,
    /// Bytes of the pages' block areas (capacity × block size).
    pub page_bytes: u64,
    pub blocks_in_use: u64,
    pub bytes_in_use: u64,
    pub objects: u64,
}

/// `HeapStats` read back from a heap dump: the heap kind is one of a few fixed names.
#[derive(Deserialize)]
struct HeapStatsRead {
    heap: String,
    pages: u64,
    page_bytes: u64,
    blocks_in_use: u64,
    bytes_in_use: u64,
    objects: u64,
}

impl<'de> Deserialize<'de> for HeapStats {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<HeapStats, D::Error> {
        HeapStatsRead::deserialize(d).map(HeapStats::from)
    }
}

impl From<HeapStatsRead> for HeapStats {
    fn from(r: HeapStatsRead) -> HeapStats {
        HeapStats {
            heap: HEAP_NAMES
                .into_iter()
                .find(|k| *k == r.heap)
                .unwrap_or("other"),
            pages: r.pages,
            page_bytes: r.page_bytes,
            blocks_in_use: r.blocks_in_use,
            bytes_in_use: r.bytes_in_use,
            objects: r.objects,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MimallocStats {
    pub threads: u64,
    pub heaps: Vec<HeapStats>,
    /// Segments of exited threads (the interpreter's abandoned pool).
    pub abandoned_segments: u64,
    pub abandoned_pages: u64,
    /// Allocated blocks of the object heaps that hold no validated object.
    pub non_object_blocks: u64,
    pub bad_pages: u64,
    /// GC-tracked objects (the collector finds them in the heaps: there are no lists), and
    /// how many of them gc.freeze() froze.
    pub gc_tracked: u64,
    pub gc_frozen: u64,
    #[serde(skip)]
    pub framing: BlockFraming,
}

impl MimallocStats {
    pub fn page_bytes(&self) -> u64 {
        self.heaps.iter().map(|h| h.page_bytes).sum()
    }

    pub fn bytes_in_use(&self) -> u64 {
        self.heaps.iter().map(|h| h.bytes_in_use).sum()
    }
}

pub struct HeapObjects {
    /// Every validated object with its block size, sorted by address.
    pub objects: Vec<BlockObject>,
    /// The GC-tracked ones (what gc.get_objects() reports), sorted.
    pub tracked: Vec<u64>,
    pub stats: MimallocStats,
    pub warnings: Vec<String>,
}

/// A page found on a heap's queues (or in an abandoned segment), its header decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    pub addr: u64,
    pub heap: u8,
    pub start: u64,
    pub block_size: u64,
    pub capacity: u64,
    /// Blocks the page may grow to (capacity grows as the page is extended).
    reserved: u64,
    pub used: u64,
    /// Heads of the free, local-free and thread-free lists.
    pub free_lists: [u64; 3],
}

impl Page {
    fn area(&self) -> (u64, u64) {
        let blocks = self.capacity.max(self.reserved);
        (self.start, self.start + blocks * self.block_size)
    }
}

/// The pages to scan: found before any block is read, so the referent pass can be told up
/// front which addresses the scan will judge.
pub struct Plan {
    pages: Vec<Page>,
    /// Blocks freed by other threads into full pages (`heap->thread_delayed_free`): the page
    /// still counts them as used, but they are dead.
    delayed: HashSet<u64>,
    pub regions: Regions,
    stats: MimallocStats,
    warnings: Vec<String>,
}

/// Find every page of every thread's heaps (and abandoned pages) of every interpreter.
pub fn plan(view: &mut View, py: &Python) -> anyhow::Result<Plan> {
    let l = &py.layout;
    let m = l.mimalloc.ok_or_else(|| {
        anyhow::anyhow!(
            "no mimalloc layout for free-threaded {} (unknown _PyThreadStateImpl.mimalloc; a \
             build with DWARF would tell)",
            l.version
        )
    })?;
    let mut plan = Plan {
        pages: Vec::new(),
        delayed: HashSet::default(),
        regions: Regions::default(),
        stats: MimallocStats {
            heaps: HEAP_NAMES
                .iter()
                .map(|&heap| HeapStats {
                    heap,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        warnings: Vec::new(),
    };
    let mut found: Vec<(u64, u8)> = Vec::new();
    for &interp in &py.interpreters {
        for tstate in thread_states(view, l, &m, interp) {
            plan.stats.threads += 1;
            let state = tstate + m.tstate_mimalloc;
            for id in [HEAP_MEM, HEAP_OBJECT, HEAP_GC, HEAP_GC_PRE] {
                let heap = state + THREAD_HEAPS + id as u64 * HEAP_SIZE;
                heap_pages(view, heap, id, &mut found, &mut plan);
            }
        }
        if let Some(off) = m.interp_mimalloc {
            abandoned_pages(view, interp + off, &mut found, &mut plan.stats);
        }
    }
    if m.interp_mimalloc.is_none() {
        plan.warnings.push(
            "pages of exited threads (mimalloc's abandoned pool) were not walked: its place \
             in the interpreter is unknown for this build"
                .into(),
        );
    }
    found.sort_unstable();
    found.dedup_by_key(|p| p.0);
    for (addr, heap) in found {
        match decode_page(view, addr, heap) {
            Some(p) => plan.pages.push(p),
            None => {
                log::debug!(
                    "page {addr:#x} of the {} heap: header does not validate: {:02x?}",
                    HEAP_NAMES[heap as usize],
                    view.get(addr, 32).unwrap_or_default()
                );
                plan.stats.bad_pages += 1
            }
        }
    }
    plan.regions = Regions::new(plan.pages.iter().map(Page::area).collect());
    Ok(plan)
}

/// Every object in the planned pages (only the GC-tracked ones with `tracked_only`, which
/// leaves the mem and object heaps unread). `visit` sees each object with its bytes when the
/// whole page was at hand (for the referent pass).
pub fn scan(
    view: &mut View,
    l: &Layout,
    types: &mut TypeTable,
    plan: Plan,
    tracked_only: bool,
    mut visit: impl FnMut(&mut View, &mut TypeTable, BlockObject, &TypeInfo, Option<&[u8]>),
) -> HeapObjects {
    scan_keeping(view, l, types, plan, tracked_only, true, &mut visit)
}

/// `scan`; with `keep` false, `HeapObjects::objects` and `tracked` stay empty (a census that
/// tallies objects as `visit` sees them needs no list of them: 40 bytes per object saved).
pub fn scan_keeping(
    view: &mut View,
    l: &Layout,
    types: &mut TypeTable,
    plan: Plan,
    tracked_only: bool,
    keep: bool,
    mut visit: impl FnMut(&mut View, &mut TypeTable, BlockObject, &TypeInfo, Option<&[u8]>),
) -> HeapObjects {
    let mut w = Walk { view, l, types };
    let mut scan = PageScan {
        delayed: &plan.delayed,
        buf: Vec::new(),
        free: Vec::new(),
        tracked_only,
        keep,
        out: HeapObjects {
            objects: Vec::new(),
            tracked: Vec::new(),
            stats: plan.stats,
            warnings: plan.warnings,
        },
    };
    scan.out.stats.framing = detect_framing(&mut w, &plan.pages);
    let gc_heap = |p: &&Page| p.heap == HEAP_GC || p.heap == HEAP_GC_PRE;
    for page in plan.pages.iter().filter(|p| !tracked_only || gc_heap(p)) {
        scan.page(&mut w, page, &mut visit);
    }
    let mut out = scan.out;
    out.objects.sort_unstable_by_key(|b| b.obj);
    out.tracked.sort_unstable();
    out
}

/// Thread states of an interpreter, bounded and cycle-safe.
pub(crate) fn thread_states(
    view: &mut View,
    l: &Layout,
    m: &MimallocLayout,
    interp: u64,
) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cur = view
        .u64(interp.wrapping_add(l.interp.threads_head))
        .unwrap_or(0);
    while cur != 0 && cur.is_multiple_of(8) && out.len() < MAX_THREADS && !out.contains(&cur) {
        out.push(cur);
        cur = view.u64(cur.wrapping_add(m.tstate_next)).unwrap_or(0);
    }
    out
}

/// Queue the pages of one heap, and remember its delayed frees (blocks freed by other threads
/// into a full page: still counted as used by the page, but dead).
fn heap_pages(view: &mut View, heap: u64, id: u8, pages: &mut Vec<(u64, u8)>, out: &mut Plan) {
    let Ok(h) = view.get(heap, HEAP_SIZE as usize).map(|b| b.to_vec()) else {
        out.stats.bad_pages += 1;
        return;
    };
    if h.u64_at(HEAP_TLD as usize) == 0 {
        return; // the thread has not bound its heaps yet
    }
    if h.u8_at(HEAP_TAG as usize) != id {
        out.warnings.push(format!(
            "a thread's {} heap carries tag {} (layout mismatch?): skipped",
            HEAP_NAMES[id as usize],
            h.u8_at(HEAP_TAG as usize)
        ));
        return;
    }
    for q in 0..PAGE_QUEUES {
        let at = (HEAP_PAGES + q * PAGE_QUEUE_SIZE) as usize;
        let mut page = h.u64_at(at);
        let mut steps = 0;
        while page != 0 && page.is_multiple_of(8) && steps < MAX_PAGES_PER_QUEUE {
            pages.push((page, id));
            page = view.u64(page.wrapping_add(PAGE_NEXT as u64)).unwrap_or(0);
            steps += 1;
        }
    }
    let mut block = h.u64_at(HEAP_THREAD_DELAYED_FREE as usize) & !3;
    let mut steps = 0;
    while block != 0 && steps < MAX_DELAYED && out.delayed.insert(block) {
        block = view.u64(block).unwrap_or(0) & !3;
        steps += 1;
    }
}

/// Pages of exited threads: the pool's segment lists, then each segment's in-use slices.
fn abandoned_pages(
    view: &mut View,
    pool: u64,
    pages: &mut Vec<(u64, u8)>,
    stats: &mut MimallocStats,
) {
    let mut segments: Vec<u64> = Vec::new();
    for (off, tagged) in [(POOL_ABANDONED, true), (POOL_VISITED, false)] {
        let head = view.u64(pool.wrapping_add(off)).unwrap_or(0);
        // The main list is a tagged pointer (an ABA counter in the low, in-segment bits).
        let mut seg = if tagged {
            head & !(SEGMENT_SIZE - 1)
        } else {
            head
        };
        while seg != 0
            && seg.is_multiple_of(SEGMENT_SIZE)
            && segments.len() < MAX_SEGMENTS
            && !segments.contains(&seg)
        {
            segments.push(seg);
            seg = view
                .u64(seg.wrapping_add(SEGMENT_ABANDONED_NEXT))
                .unwrap_or(0);
        }
    }
    for seg in segments {
        stats.abandoned_segments += 1;
        let entries = view
            .u64(seg.wrapping_add(SEGMENT_SLICE_ENTRIES))
            .unwrap_or(0)
            .min(MAX_SLICE_ENTRIES);
        let mut i = 0;
        while i < entries {
            let slice = seg + SEGMENT_SLICES + i * PAGE_SIZE;
            let Ok(s) = view.get(slice, PAGE_SIZE as usize).map(|b| b.to_vec()) else {
                break;
            };
            let count = s.u32_at(PAGE_SLICE_COUNT) as u64;
            if s.u32_at(PAGE_XBLOCK_SIZE) > 0 && count > 0 {
                let tag = (s.u8_at(PAGE_FLAGS) >> 3) & 0xf;
                if tag <= HEAP_GC_PRE {
                    stats.abandoned_pages += 1;
                    pages.push((slice, tag));
                }
            }
            i += count.max(1);
        }
    }
}

/// Where a page's blocks start (mimalloc offsets small-block pages by a few blocks).
fn page_start(page: u64, block_size: u64) -> Option<u64> {
    let segment = page & !(SEGMENT_SIZE - 1);
    let idx = page.checked_sub(segment + SEGMENT_SLICES)? / PAGE_SIZE;
    if idx >= MAX_SLICE_ENTRIES {
        return None;
    }
    let start_offset = match block_size {
        8..=64 => 3 * block_size,
        65..=512 => block_size,
        _ => 0,
    };
    Some(segment + idx * SLICE_BYTES + start_offset)
}

/// Mark the blocks of one free list; false when the list leaves the page. `next` reads a free
/// block's link (its first word).
pub(crate) fn mark_free_list(
    mut block: u64,
    page: &Page,
    next: impl Fn(u64) -> u64,
    free: &mut [bool],
) -> bool {
    let (start, bs) = (page.start, page.block_size);
    let mut steps = 0;
    while block != 0 {
        if block < start || !(block - start).is_multiple_of(bs) || steps > page.capacity {
            return false;
        }
        match free.get_mut(((block - start) / bs) as usize) {
            Some(f) => *f = true,
            None => return false,
        }
        block = next(block);
        steps += 1;
    }
    true
}

/// Read and check a page header: its tag must be its heap's, its blocks must fit its slices.
fn decode_page(view: &mut View, addr: u64, heap: u8) -> Option<Page> {
    decode(view.get(addr, PAGE_SIZE as usize).ok()?, addr, heap)
}

pub(crate) fn decode(p: &[u8], addr: u64, heap: u8) -> Option<Page> {
    let capacity = p.u16_at(PAGE_CAPACITY) as u64;
    let reserved = p.u16_at(PAGE_RESERVED) as u64;
    let block_size = p.u32_at(PAGE_XBLOCK_SIZE) as u64;
    let used = p.u32_at(PAGE_USED) as u64;
    let tag = (p.u8_at(PAGE_FLAGS) >> 3) & 0xf;
    let slices = p.u32_at(PAGE_SLICE_COUNT) as u64;
    let free_lists = [
        p.u64_at(PAGE_FREE),
        p.u64_at(PAGE_LOCAL_FREE),
        // The thread-free list carries its delayed-free state in the low two bits.
        p.u64_at(PAGE_XTHREAD_FREE) & !3,
    ];
    let fits = capacity
        .max(reserved)
        .checked_mul(block_size)
        .is_some_and(|n| n <= slices * SLICE_BYTES);
    // A page not extended yet has capacity 0: no blocks, nothing wrong.
    let sane = block_size >= 8 && tag == heap && used <= capacity && fits;
    sane.then_some(Page {
        addr,
        heap,
        start: page_start(addr, block_size)?,
        block_size,
        capacity,
        reserved,
        used,
        free_lists,
    })
}

/// How often a page is re-read when its free lists changed while we read them.
const PAGE_ATTEMPTS: usize = 4;

/// A page's header, blocks and free-block flags read together, straight from the target (not
/// the view's older cached copy): the owner thread keeps allocating while we look, so a free
/// list is followed inside the same copy of the page, and the page is re-read when a list
/// leaves it. None when the page went away or was reused for another block size.
fn read_page_now(
    view: &View,
    planned: &Page,
    buf: &mut Vec<u8>,
    free: &mut Vec<bool>,
) -> Option<(Page, bool)> {
    let mem = view.memory();
    for _ in 0..PAGE_ATTEMPTS {
        let mut h = [0u8; PAGE_SIZE as usize];
        mem.read(planned.addr, &mut h).ok()?;
        let page = decode(&h, planned.addr, planned.heap)
            .filter(|p| p.start == planned.start && p.block_size == planned.block_size)?;
        let area = page.capacity * page.block_size;
        let whole = area <= MAX_PAGE_COPY;
        buf.clear();
        if whole {
            buf.resize(area as usize, 0);
            mem.read(page.start, buf).ok()?;
        }
        free.clear();
        free.resize(page.capacity as usize, false);
        let copy: &[u8] = buf;
        let next = |b: u64| {
            if whole {
                copy.u64_at((b - page.start) as usize)
            } else {
                mem.u64(b).unwrap_or(0)
            }
        };
        if page
            .free_lists
            .iter()
            .all(|&list| mark_free_list(list, &page, next, free))
        {
            return Some((page, whole));
        }
    }
    None
}

/// What a scan of the planned pages carries from one page to the next.
struct PageScan<'p> {
    /// Blocks on a delayed-free list: freed, not yet on a page's lists.
    delayed: &'p HashSet<u64>,
    /// The page's blocks when read whole, and which of them are free.
    buf: Vec<u8>,
    free: Vec<bool>,
    tracked_only: bool,
    /// Keep the objects found in `out` (else `visit` alone sees them).
    keep: bool,
    out: HeapObjects,
}

impl PageScan<'_> {
    /// Every validated object of one page, handed to `visit`.
    fn page(
        &mut self,
        w: &mut Walk,
        planned: &Page,
        visit: &mut impl FnMut(&mut View, &mut TypeTable, BlockObject, &TypeInfo, Option<&[u8]>),
    ) {
        // Taken for the page (given back below): blocks are borrowed from it while the
        // findings are recorded in `self`.
        let mut buf = std::mem::take(&mut self.buf);
        let Some((page, whole)) = read_page_now(w.view, planned, &mut buf, &mut self.free) else {
            log::debug!(
                "page {:#x} of the {} heap: changed or free lists leave it",
                planned.addr,
                HEAP_NAMES[planned.heap as usize]
            );
            self.out.stats.bad_pages += 1;
            self.buf = buf;
            return;
        };
        let (start, capacity, bs) = (page.start, page.capacity, page.block_size);
        let hs = &mut self.out.stats.heaps[page.heap as usize];
        hs.pages += 1;
        hs.page_bytes += capacity * bs;
        if page.used == 0 || capacity == 0 {
            self.buf = buf;
            return;
        }
        let framing = self.out.stats.framing;
        for i in 0..capacity {
            if self.free[i as usize] {
                continue;
            }
            let block = start + i * bs;
            if self.delayed.contains(&block) {
                continue;
            }
            let hs = &mut self.out.stats.heaps[page.heap as usize];
            hs.blocks_in_use += 1;
            hs.bytes_in_use += bs;
            if page.heap == HEAP_MEM {
                continue; // buffers (list items, dict keys), never objects
            }
            let large;
            let b: &[u8] = if whole {
                &buf[(i * bs) as usize..((i + 1) * bs) as usize]
            } else {
                match w.view.get(block, bs.min(HEAD_OF_LARGE_BLOCK) as usize) {
                    Ok(b) => {
                        large = b.to_vec();
                        &large
                    }
                    Err(_) => continue,
                }
            };
            let Some((off, info)) = object_in_block(w, page.heap, b, bs, framing) else {
                self.out.stats.non_object_blocks += 1;
                continue;
            };
            let l = w.l;
            let o = &b[off as usize..];
            let tracked = l.gc_tracked(o) == Some(true) && page.heap != HEAP_OBJECT;
            if self.tracked_only && !tracked {
                continue;
            }
            let found = BlockObject {
                obj: block + off,
                block_size: bs,
                own: own_size(w.view, l, &info, o).unwrap_or(info.basicsize) + info.preheader,
                at: off,
                type_id: crate::heap::pymalloc::arenas::NO_TYPE_ID,
            };
            self.record(page.heap, found, tracked, l.gc_frozen(o) == Some(true));
            visit(w.view, w.types, found, &info, whole.then_some(o));
        }
        self.buf = buf;
    }

    /// Count an object of heap `heap` (and keep it, with `keep`).
    fn record(&mut self, heap: u8, found: BlockObject, tracked: bool, frozen: bool) {
        let out = &mut self.out;
        out.stats.heaps[heap as usize].objects += 1;
        if self.keep {
            out.objects.push(found);
        }
        if tracked {
            if self.keep {
                out.tracked.push(found.obj);
            }
            out.stats.gc_tracked += 1;
            if frozen {
                out.stats.gc_frozen += 1;
            }
        }
    }
}

/// The object in a block of heap `heap`, if one validates there: (offset in block, type).
fn object_in_block(
    w: &mut Walk,
    heap: u8,
    b: &[u8],
    block_size: u64,
    framing: BlockFraming,
) -> Option<(u64, TypeInfo)> {
    let l = w.l;
    // Objects of the GC_PRE heap follow their pre-header: the managed dict and weakref slots
    // (16 bytes; these builds have no GC head to add).
    let pre = if heap == HEAP_GC_PRE {
        l.preheader_size(flags::MANAGED_DICT)
    } else {
        0
    };
    let off = framing.base + pre;
    let o = b.get(off as usize..)?;
    if (o.len() as u64) < l.header_size {
        return None;
    }
    let tp = o.u64_at(l.ob_type as usize);
    if tp == 0 || !tp.is_multiple_of(8) || !l.live_refcount(o) {
        return None;
    }
    let info = w.types.get(w.view, l, tp)?;
    let gc_heap = heap == HEAP_GC || heap == HEAP_GC_PRE;
    if info.preheader != pre || (gc_heap && info.flags & flags::HAVE_GC == 0) {
        return None;
    }
    let need = own_size(w.view, l, info, o)? + pre + framing.overhead;
    (need <= block_size).then(|| (off, info.clone()))
}

/// Plain blocks or debug-allocator framing: whichever makes more of the first blocks validate.
fn detect_framing(w: &mut Walk, pages: &[Page]) -> BlockFraming {
    let framings = [BlockFraming::default(), DEBUG_FRAMING];
    let mut hits = [0u32; 2];
    for page in pages.iter().filter(|p| p.heap != HEAP_MEM) {
        let (capacity, bs, start) = (page.capacity, page.block_size, page.start);
        if !(16..=HEAD_OF_LARGE_BLOCK).contains(&bs) {
            continue;
        }
        for i in 0..capacity.min(64) {
            let Ok(b) = w
                .view
                .get(start.wrapping_add(i * bs), bs as usize)
                .map(|b| b.to_vec())
            else {
                break;
            };
            for (k, f) in framings.iter().enumerate() {
                if object_in_block(w, page.heap, &b, bs, *f).is_some() {
                    hits[k] += 1;
                }
            }
        }
        if hits[0] + hits[1] > 2000 {
            break;
        }
    }
    if hits[1] > hits[0] {
        DEBUG_FRAMING
    } else {
        BlockFraming::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_start_follows_mimalloc_offsets() {
        let seg = 0x7f00_0000_0000u64;
        let page1 = seg + SEGMENT_SLICES + PAGE_SIZE; // slice 1
        assert_eq!(page_start(page1, 32), Some(seg + SLICE_BYTES + 96));
        assert_eq!(page_start(page1, 256), Some(seg + SLICE_BYTES + 256));
        assert_eq!(page_start(page1, 1024), Some(seg + SLICE_BYTES));
    }
}
