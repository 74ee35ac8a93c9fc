//! pymalloc arenas: where they are, and every live object in them.
//!
//! Most objects never appear on a GC list (str, int, float, bytes, untracked tuples and dicts),
//! but every object of 512 bytes or less lives in a pymalloc block. We walk arenas → carved pools
//! → allocated blocks (skipping each pool's free list and its never-used tail), and accept a block
//! as an object only when everything about it agrees: a real type, the pre-header that type
//! implies, a sane refcount, and the size class its fields call for.

use crate::heap::objects::sizes::own_size;
use crate::heap::objects::types::{SizeRule, TypeInfo, TypeTable};
use crate::heap::regions::Regions;
use crate::heap::walk::Walk;
use crate::process::view::Chunk;
use crate::process::{Bytes, View};
use crate::python::layout::{flags, Layout, ObmallocState, PymallocLayout, GC_HEAD_LINKS, GC_PREV};
use crate::python::Python;
use anyhow::{anyhow, bail, Context, Result};

const MAX_ARENAS: u64 = 1 << 22;

/// A pool's header, decoded with the layout's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolHeader {
    /// Blocks in use: 0 for an empty pool parked on its arena's free list (stale fields).
    pub count: u32,
    /// Head of the free list that threads through the pool's free blocks.
    pub freeblock: u64,
    pub arenaindex: u32,
    pub szidx: u32,
    /// Offset of the first block never handed out.
    pub nextoffset: u64,
    pub maxnextoffset: u64,
}

impl PoolHeader {
    /// `p` holds the pool from its start (fields past its end read as 0).
    pub fn read(m: &PymallocLayout, p: &[u8]) -> PoolHeader {
        PoolHeader {
            count: p.u32_at(m.pool_ref_count),
            freeblock: p.u64_at(m.pool_freeblock),
            arenaindex: p.u32_at(m.pool_arenaindex),
            szidx: p.u32_at(m.pool_szidx),
            nextoffset: p.u32_at(m.pool_nextoffset) as u64,
            maxnextoffset: p.u32_at(m.pool_maxnextoffset) as u64,
        }
    }

    pub fn block_size(&self, m: &PymallocLayout) -> u64 {
        m.block_size(self.szidx as u64)
    }

    /// Its geometry agrees with itself and the pool size (a stale or torn header does not).
    pub fn plausible(&self, m: &PymallocLayout, pool_size: u64) -> bool {
        (self.szidx as usize) < m.classes
            && self.nextoffset <= pool_size
            && self.maxnextoffset == pool_size - self.block_size(m)
    }
}

#[derive(Debug, Clone)]
pub struct Arena {
    pub address: u64,
    /// First never-carved pool: pools at or past it hold nothing.
    pub pool_address: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Arenas {
    /// Live arenas sorted by address.
    pub arenas: Vec<Arena>,
    pub found_by: String,
    pub arena_size: u64,
    pub pool_size: u64,
    /// `raw_allocated_blocks` where known (3.9+): live >512 B PyObject_Malloc requests.
    pub raw_allocated_blocks: Option<u64>,
}

impl ScanStats {
    /// Fold in the figures of a scan over other arenas.
    pub fn add(&mut self, o: ScanStats) {
        self.pools += o.pools;
        self.blocks_in_use += o.blocks_in_use;
        self.bytes_in_use += o.bytes_in_use;
        self.objects += o.objects;
        self.non_object_blocks += o.non_object_blocks;
        self.bad_pools += o.bad_pools;
        self.pool_bytes += o.pool_bytes;
        self.gc_tracked += o.gc_tracked;
        self.gc_exits.extend(o.gc_exits);
    }
}

impl Arenas {
    /// The arenas in `n` runs of neighbouring arenas holding about as many carved pools each:
    /// work for `n` threads.
    pub fn split(&self, n: usize) -> Vec<Arenas> {
        let carved = |a: &Arena| {
            a.pool_address
                .saturating_sub(a.address)
                .min(self.arena_size)
        };
        let total: u64 = self.arenas.iter().map(carved).sum();
        let share = total.div_ceil(n.max(1) as u64).max(1);
        let mut parts: Vec<Arenas> = Vec::new();
        let mut acc = 0;
        for a in &self.arenas {
            if parts.is_empty() || (acc >= share && parts.len() < n) {
                parts.push(self.clone_empty());
                acc = 0;
            }
            acc += carved(a);
            if let Some(p) = parts.last_mut() {
                p.arenas.push(a.clone());
            }
        }
        parts
    }

    fn clone_empty(&self) -> Arenas {
        Arenas {
            arenas: Vec::new(),
            found_by: self.found_by.clone(),
            arena_size: self.arena_size,
            pool_size: self.pool_size,
            raw_allocated_blocks: self.raw_allocated_blocks,
        }
    }

    /// The arenas as address ranges.
    pub fn regions(&self) -> crate::heap::regions::Regions {
        crate::heap::regions::Regions::new(
            self.arenas
                .iter()
                .map(|a| (a.address, a.address + self.arena_size))
                .collect(),
        )
    }

    pub fn reserved_bytes(&self) -> u64 {
        self.arenas.len() as u64 * self.arena_size
    }
}

/// Find the arena table. Err says why (and what would help) when it cannot be found.
pub fn locate(view: &mut View, py: &Python) -> Result<Arenas> {
    let l = &py.layout;
    let (table, maxarenas, raw, found_by) = match l.interp.obmalloc {
        ObmallocState::Statics => statics(view, py)?,
        ObmallocState::Embedded(off) => {
            let (t, m, r) = from_state(view, &l.pymalloc, py.interpreters[0] + off)?;
            (t, m, r, "interpreter's obmalloc state".to_string())
        }
        ObmallocState::Pointer(off) => {
            let state = view
                .u64(py.interpreters[0] + off)
                .filter(|&p| p != 0)
                .context("the interpreter's obmalloc pointer is unreadable")?;
            let (t, m, r) = from_state(view, &l.pymalloc, state)?;
            (t, m, r, "interpreter's obmalloc state".to_string())
        }
    };
    let arenas = read_table(view, l, table, maxarenas)?;
    Ok(Arenas {
        arenas,
        found_by,
        arena_size: l.arena_size,
        pool_size: l.pool_size,
        raw_allocated_blocks: raw,
    })
}

/// `struct _obmalloc_state` (3.12+): the arena table, its length and the raw block count.
fn from_state(view: &mut View, m: &PymallocLayout, state: u64) -> Result<(u64, u64, Option<u64>)> {
    let mgmt = state + m.state_mgmt;
    let table = view
        .u64(mgmt.wrapping_add(m.mgmt_arenas))
        .context("obmalloc state unreadable")?;
    let max = view
        .u32(mgmt.wrapping_add(m.mgmt_maxarenas))
        .context("obmalloc state unreadable")? as u64;
    let raw = view.u64(mgmt.wrapping_add(m.mgmt_raw_allocated));
    Ok((table, max, raw))
}

/// 3.8–3.11: obmalloc.c's statics, by symbol (in .symtab or the debug file), else heuristics.
fn statics(view: &mut View, py: &Python) -> Result<(u64, u64, Option<u64>, String)> {
    let b = &py.binary;
    if let (Some(a), Some(m)) = (b.symbol("arenas"), b.symbol("maxarenas")) {
        let table = view.u64(a).context("`arenas` unreadable")?;
        let max = view.u32(m).context("`maxarenas` unreadable")? as u64;
        let raw = b.symbol("raw_allocated_blocks").and_then(|r| view.u64(r));
        return Ok((table, max, raw, "symbols arenas/maxarenas".into()));
    }
    heuristic(view, py).map(|(t, m)| (t, m, None, "heuristic (.bss scan; no symbols)".into()))
}

/// Without symbols: take pymalloc'd GC objects, read their pools' `arenaindex`, and find the
/// pointer in the binary's .data/.bss whose arena_object array places each pool in the arena it
/// names. The array's malloc chunk size then bounds its length.
fn heuristic(view: &mut View, py: &Python) -> Result<(u64, u64)> {
    let l = &py.layout;
    let entry = l.pymalloc.arena_object_size;
    let samples = pool_samples(view, py, 16);
    if samples.len() < 4 {
        bail!("no pymalloc pools seen among GC objects (PYTHONMALLOC=malloc?)");
    }
    for &(start, size) in &py.binary.data_sections {
        let Ok(words) = view.get(start, size as usize).map(|b| b.to_vec()) else {
            continue;
        };
        for w in words.chunks_exact(8) {
            let p = w.u64_at(0);
            // glibc's malloc hands out 16-aligned pointers on 64-bit builds.
            if p == 0 || !p.is_multiple_of(16) || !view.is_readable(p, entry) {
                continue;
            }
            let fits = samples.iter().all(|&(idx, pool)| {
                view.u64(p.wrapping_add(idx * entry + l.pymalloc.arena_address as u64))
                    .is_some_and(|a| a != 0 && a <= pool && pool < a + l.arena_size)
            });
            if fits {
                // glibc chunk header: size (with flag bits) just before the user pointer.
                let chunk = view.u64(p - 8).unwrap_or(0) & !7;
                let max = chunk.saturating_sub(16) / entry;
                let need = samples.iter().map(|s| s.0 + 1).max().unwrap_or(1);
                return Ok((p, max.clamp(need, MAX_ARENAS)));
            }
        }
    }
    Err(anyhow!(
        "could not find pymalloc's arena table (stripped build without debug symbols)"
    ))
}

/// (arenaindex, pool address) of pools holding some small GC objects.
fn pool_samples(view: &mut View, py: &Python, want: usize) -> Vec<(u64, u64)> {
    let l = &py.layout;
    let m = &l.pymalloc;
    let gc = py.gc_state(py.interpreters[0]);
    // Oldest generation first (its objects stay put), then the younger ones: right after a
    // program starts (`record -- python3 app.py`) no collection has promoted anything yet,
    // and the old generation alone held too few pools to go on.
    let generations = (0..l.gc.generation_count.min(4))
        .rev()
        .map(|g| gc + l.gc.generations + g * l.gc.generation_stride);
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut steps = 0;
    for head in generations {
        let mut node = view.u64(head).unwrap_or(head) & !3;
        while node != head && out.len() < want && steps < 100_000 {
            steps += 1;
            let pool = node & !(l.pool_size - 1);
            if let Ok(b) = view.get(pool, m.pool_overhead as usize) {
                let h = PoolHeader::read(m, b);
                if h.plausible(m, l.pool_size)
                    && h.arenaindex < 1 << 20
                    && !out.iter().any(|s| s.1 == pool)
                {
                    out.push((h.arenaindex as u64, pool));
                }
            }
            node = view.u64(node).unwrap_or(head) & !3;
        }
    }
    out
}

fn read_table(view: &mut View, l: &Layout, table: u64, max: u64) -> Result<Vec<Arena>> {
    let m = &l.pymalloc;
    if table == 0 || max == 0 {
        return Ok(Vec::new());
    }
    if max > MAX_ARENAS {
        bail!("implausible arena count {max}");
    }
    let raw = view
        .get(table, (max * m.arena_object_size) as usize)
        .ok()
        .context("arena table unreadable")?
        .to_vec();
    let mut arenas: Vec<Arena> = raw
        .chunks_exact(m.arena_object_size as usize)
        .filter_map(|a| {
            let (address, pool_address) =
                (a.u64_at(m.arena_address), a.u64_at(m.arena_pool_address));
            let sane = address != 0
                && pool_address >= address
                && pool_address <= address + l.arena_size
                && view.is_readable(address, 1);
            sane.then_some(Arena {
                address,
                pool_address,
            })
        })
        .collect();
    arenas.sort_by_key(|a| a.address);
    arenas.dedup_by_key(|a| a.address);
    Ok(arenas)
}

/// The debug allocator (`-X dev`, `PYTHONMALLOC=pymalloc_debug`) wraps each request: 16 bytes of
/// size and API id before the object, 8 forbidden bytes after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockFraming {
    pub base: u64,
    pub overhead: u64,
}

pub const DEBUG_FRAMING: BlockFraming = BlockFraming {
    base: 16,
    overhead: 24,
};

/// One object found in a pymalloc block.
#[derive(Debug, Clone, Copy)]
pub struct BlockObject {
    pub obj: u64,
    pub block_size: u64,
    /// Bytes the object's own allocation asked for, pre-header included (its size rule's
    /// own part, computed once while validating).
    pub own: u64,
    /// Offset of the object in its block.
    pub at: u64,
    /// The object's type as an id of the scan's `TypeTable` (`NO_TYPE_ID` where the walker
    /// does not hand one out).
    pub type_id: u32,
}

pub const NO_TYPE_ID: u32 = u32::MAX;

#[derive(Debug, Default, Clone)]
pub struct ScanStats {
    pub pools: u64,
    pub blocks_in_use: u64,
    pub bytes_in_use: u64,
    pub objects: u64,
    /// Allocated blocks that hold no validated object (buffers, keys tables, corpses).
    pub non_object_blocks: u64,
    pub bad_pools: u64,
    /// Bytes of carved pools (in use or with free blocks).
    pub pool_bytes: u64,
    pub framing: BlockFraming,
    /// Objects whose GC head says they are tracked (on some GC list).
    pub gc_tracked: u64,
    /// Where the GC lists leave the arenas (large GC objects live outside them): (the GC head
    /// of a tracked arena object, the node outside the arenas its `_gc_next` points at).
    pub gc_exits: Vec<(u64, u64)>,
}

/// Every validated object in the arenas, in address order: `visit` sees each with its block's
/// bytes (the object starts at `found.at` in them) while the pool is at hand, so sizing and the
/// referent pass need no second read.
pub fn scan(
    view: &mut View,
    l: &Layout,
    types: &mut TypeTable,
    arenas: &Arenas,
    visit: impl FnMut(&mut View, BlockObject, &TypeInfo, &[u8]),
) -> ScanStats {
    let framing = detect_framing(view, l, types, arenas);
    scan_with(view, l, types, arenas, &arenas.regions(), framing, visit)
}

/// `scan` over some of the arenas (`arenas`), with the framing already detected and the
/// regions of every arena (`all`: where GC lists leave the arenas is judged against all).
pub fn scan_with(
    view: &mut View,
    l: &Layout,
    types: &mut TypeTable,
    arenas: &Arenas,
    all: &Regions,
    framing: BlockFraming,
    mut visit: impl FnMut(&mut View, BlockObject, &TypeInfo, &[u8]),
) -> ScanStats {
    let mut w = Walk { view, l, types };
    let mut scan = PoolScan {
        regions: all,
        free: Vec::new(),
        stats: ScanStats {
            framing,
            ..Default::default()
        },
    };
    let ps = arenas.pool_size;
    let mut pool_buf: Vec<u8> = Vec::with_capacity(ps as usize);
    let mut chunk: Option<Chunk> = None;
    for arena in &arenas.arenas {
        let first = (arena.address + ps - 1) & !(ps - 1);
        let mut pool = first;
        // Through the view (not a private buffer): what the objects point to (list items,
        // attribute values, dict keys) mostly sits in these arenas, and is read from its cache.
        // The pool's bytes come from the view's shared chunk, without a copy.
        while pool + ps <= arena.pool_address.min(arena.address + arenas.arena_size) {
            if chunk
                .as_ref()
                .and_then(|c| c.get(pool, ps as usize))
                .is_none()
            {
                chunk = w.view.chunk(pool);
            }
            let shared = chunk.as_ref().and_then(|c| c.get(pool, ps as usize));
            let p: &[u8] = match shared {
                Some(p) => p,
                // Not within one chunk (a mapping's edge): copied out of the view instead.
                None => match w.view.get(pool, ps as usize) {
                    Ok(b) => {
                        pool_buf.clear();
                        pool_buf.extend_from_slice(b);
                        &pool_buf
                    }
                    Err(_) => {
                        scan.stats.bad_pools += 1;
                        pool += ps;
                        continue;
                    }
                },
            };
            let near = Near {
                pool,
                p,
                chunk: chunk.as_ref(),
            };
            scan.pool(&mut w, &near, &mut visit);
            pool += ps;
        }
    }
    scan.stats
}

/// What a scan over a run of arenas carries from one pool to the next.
struct PoolScan<'r> {
    /// Every arena's range: where GC lists leave the arenas is judged against all of them.
    regions: &'r Regions,
    /// One bit per block slot of the pool at hand: is it on the free list?
    free: Vec<u64>,
    stats: ScanStats,
}

impl PoolScan<'_> {
    /// Every validated object of one pool (`near` holds its bytes), handed to `visit`.
    fn pool(
        &mut self,
        w: &mut Walk,
        near: &Near,
        visit: &mut impl FnMut(&mut View, BlockObject, &TypeInfo, &[u8]),
    ) {
        let (pool, p) = (near.pool, near.p);
        let ps = p.len() as u64;
        let l = w.l;
        let m = &l.pymalloc;
        let h = PoolHeader::read(m, p);
        if h.count == 0 {
            return; // an empty pool parked on the arena's free list: its header is stale
        }
        if !h.plausible(m, ps) {
            self.stats.bad_pools += 1;
            return;
        }
        let size = h.block_size(m);
        self.stats.pools += 1;
        self.stats.pool_bytes += ps;
        mark_free(&mut self.free, m, near, &h);
        let framing = self.stats.framing;
        // Blocks of one pool share a size class, so mostly a few types at known offsets (a list
        // and a str share the 64-byte class, allocated in turns): the last few (offset, type)
        // pairs are tried first, which skips the type lookup.
        let mut memo = Memo::default();
        let mut judged = (0u64, 0u64);
        let mut off = m.pool_overhead;
        // The block's slot number, counted rather than divided out (a division per block shows
        // in profiles).
        let mut slot = 0usize;
        while off + size <= h.nextoffset.min(ps) {
            let block = pool + off;
            let is_free = self
                .free
                .get(slot / 64)
                .is_none_or(|w| w & (1 << (slot % 64)) != 0);
            slot += 1;
            if !is_free {
                self.stats.blocks_in_use += 1;
                self.stats.bytes_in_use += size;
                let b = &p[off as usize..(off + size) as usize];
                match memo.judge(w, near, block, b, framing) {
                    Some(f) => {
                        let info = w.types.info(f.id);
                        self.stats.objects += 1;
                        if info.flags & flags::HAVE_GC != 0 {
                            self.gc_head(l, block, b, f.d, &mut judged);
                        }
                        let found = BlockObject {
                            obj: block + f.d,
                            block_size: size,
                            own: f.own,
                            at: f.d,
                            type_id: f.id,
                        };
                        visit(w.view, found, info, b);
                    }
                    None => self.stats.non_object_blocks += 1,
                }
            }
            off += size;
        }
    }

    /// Count a GC object of the pool (at `d` in block `b`) as tracked when its GC head is on a
    /// list (a zero `_gc_next` means untracked), and note where that list leaves the arenas.
    /// The next node is mostly in the same stretch of arenas as the last one (`judged`):
    /// checked against it before searching.
    #[inline(always)]
    fn gc_head(&mut self, l: &Layout, block: u64, b: &[u8], d: u64, judged: &mut (u64, u64)) {
        let Some((head, next, _)) = gc_head_in(l, b, d) else {
            return;
        };
        let next = next & !3;
        if next == 0 {
            return;
        }
        self.stats.gc_tracked += 1;
        if next < judged.0 || next >= judged.1 {
            match self.regions.range_of(next) {
                Some(r) => *judged = r,
                None => self.stats.gc_exits.push((block + head, next)),
            }
        }
    }
}

/// Mark the pool's free blocks in `free`, one bit per block slot: the free list threads
/// through the free blocks themselves. Bounded by the pool's slot count (a torn list cannot
/// spin), and ended at a link out of the pool.
fn mark_free(free: &mut Vec<u64>, m: &PymallocLayout, near: &Near, h: &PoolHeader) {
    let (pool, p) = (near.pool, near.p);
    let (ps, overhead, size) = (p.len() as u64, m.pool_overhead, h.block_size(m));
    free.clear();
    free.resize((((ps - overhead) / size) as usize).div_ceil(64) + 1, 0);
    let mut f = h.freeblock;
    let mut steps = 0;
    while f != 0 && steps <= ps / m.alignment {
        if f < pool + overhead || f >= pool + ps {
            break;
        }
        let slot = ((f - pool - overhead) / size) as usize;
        if let Some(word) = free.get_mut(slot / 64) {
            *word |= 1 << (slot % 64);
        }
        f = p.u64_at((f - pool) as usize);
        steps += 1;
    }
}

/// An object validated in a block: where it starts, its type, its own allocation size.
#[derive(Debug, Clone, Copy)]
struct Found {
    d: u64,
    tp: u64,
    id: u32,
    own: u64,
}

/// The last few distinct (offset, type) pairs that validated in a pool, most recent first.
#[derive(Default)]
struct Memo {
    recent: [Option<Found>; 4],
}

impl Memo {
    /// The object in a block: one of the remembered pairs (`same_as`) or else one found from
    /// scratch (`object_in_block`), which is then remembered.
    #[inline(always)]
    fn judge(
        &mut self,
        w: &mut Walk,
        near: &Near,
        block: u64,
        b: &[u8],
        framing: BlockFraming,
    ) -> Option<Found> {
        // A loop rather than `find` with a closure: the closure was not inlined, and this runs
        // once per block.
        for rank in 0..self.recent.len() {
            let Some(m) = self.recent[rank] else { break };
            if let Some(f) = same_as(w, near, block, b, m, framing) {
                if rank > 0 {
                    self.remember(f, Some(rank));
                }
                return Some(f);
            }
        }
        let f = object_in_block(w, near, block, b, framing);
        if let Some(f) = f {
            // A pair already remembered but rejected by `same_as` (a misfit, a refcount) moves
            // to the front rather than being added twice.
            let rank = self.find(|m| (m.d == f.d && m.tp == f.tp).then_some(m));
            self.remember(f, rank.map(|(_, r)| r));
        }
        f
    }

    /// The first remembered pair `check` accepts, and its rank.
    #[inline(always)]
    fn find(&self, mut check: impl FnMut(Found) -> Option<Found>) -> Option<(Found, usize)> {
        for (i, m) in self.recent.iter().enumerate() {
            let Some(m) = *m else { break };
            if let Some(f) = check(m) {
                return Some((f, i));
            }
        }
        None
    }

    /// Move `f` to the front (`rank`: where it was, or None when new).
    fn remember(&mut self, f: Found, rank: Option<usize>) {
        let at = rank.unwrap_or(self.recent.len() - 1);
        self.recent.copy_within(0..at, 1);
        self.recent[0] = Some(f);
    }
}

/// The block holds an object of the same type at the same offset as `m` (the previous block's):
/// the type is known good, so only the refcount, the size class and what says the object is
/// alive (`alive`) are checked.
#[inline(always)]
fn same_as(
    w: &mut Walk,
    near: &Near,
    block: u64,
    b: &[u8],
    m: Found,
    framing: BlockFraming,
) -> Option<Found> {
    let l = w.l;
    let o = b.get(m.d as usize..)?;
    if (o.len() as u64) < l.header_size
        || o.u64_at(l.ob_type as usize) != m.tp
        || !l.live_refcount(o)
    {
        return None;
    }
    let info = w.types.info(m.id);
    let own = fits_block(w.view, l, info, o, b.len() as u64, framing.overhead)?;
    alive(w, near, block, b, m.d, m.id).then_some(Found { own, ..m })
}

/// The object in a block, if one validates at one of the possible pre-header offsets.
fn object_in_block(
    w: &mut Walk,
    near: &Near,
    block: u64,
    b: &[u8],
    framing: BlockFraming,
) -> Option<Found> {
    let l = w.l;
    let mut tracked_misfit = None;
    // Every pre-header a GIL build puts before an object: none, the GC head, or the GC head
    // after the managed dict and weakref slots (3.11+); the type's own says which must hold.
    for d in [0u64, 16, 32].map(|d| d + framing.base) {
        if d + l.header_size > b.len() as u64 {
            break;
        }
        let o = &b[d as usize..];
        let tp = o.u64_at(l.ob_type as usize);
        if tp == 0 || !tp.is_multiple_of(8) || !l.live_refcount(o) {
            continue;
        }
        let Some(id) = w.types.id(w.view, l, tp) else {
            continue;
        };
        let info = w.types.info(id);
        if info.preheader + framing.base != d {
            continue;
        }
        if let Some(own) = fits_block(w.view, l, info, o, b.len() as u64, framing.overhead) {
            if alive(w, near, block, b, d, id) {
                return Some(Found { d, tp, id, own });
            }
            continue;
        }
        // Some objects size themselves in ways the rules do not follow (a generator's embedded
        // frame, a tuple subclass with a dict): a GC head on a list vouches for them instead.
        let linked = info.flags & flags::HAVE_GC != 0
            && tracked_misfit.is_none()
            && gc_head_in(l, b, d).is_some_and(|(head, next, prev)| {
                next != 0 && gc_head_ok(w.view, near, block + head, next, prev)
            });
        if linked {
            let own = own_size(w.view, l, info, o).unwrap_or(info.basicsize) + info.preheader;
            tracked_misfit = Some(Found { d, tp, id, own });
        }
    }
    tracked_misfit
}

/// Lowest address an object can have: a non-PIE executable is mapped from 4 MiB on. Reference
/// counts of live objects stay far below it.
const MIN_OBJECT_ADDRESS: u64 = 1 << 22;

/// What says an object whose type, refcount and size class validated is alive, in words a
/// block of pointers (a list's items [obj, type(obj), ...], a tuple (type, ...), a dict's
/// entries keyed by type) cannot hold:
/// - a GC type: its GC head is linked into a list (a neighbour links back), or it is
///   untracked (`_gc_next` zero and nothing but the finalized bit in `_gc_prev`);
/// - any other type: its refcount word is not the address of an object (a pointer array's
///   item before a type pointer reads as a small count on a non-PIE build).
#[inline(always)]
fn alive(w: &mut Walk, near: &Near, block: u64, b: &[u8], d: u64, id: u32) -> bool {
    if w.types.info(id).flags & flags::HAVE_GC != 0 {
        return gc_head_in(w.l, b, d)
            .is_some_and(|(head, next, prev)| gc_head_ok(w.view, near, block + head, next, prev));
    }
    let rc = b.u64_at(d as usize);
    rc < MIN_OBJECT_ADDRESS || !rc.is_multiple_of(8) || !is_object_at(w.view, w.l, w.types, rc)
}

/// `alive` for an object outside the arenas (the referent pass's candidates), read through
/// the view: what a pointer into a large array of pointers lands on must not pass either. A GC
/// type's object passes with a GC head in order, or else with a refcount that is not an
/// address: static objects (builtin types, 3.12+ immortal tuples) have no GC head.
pub fn alive_outside(
    view: &mut View,
    l: &Layout,
    types: &mut TypeTable,
    obj: u64,
    t: &TypeInfo,
) -> bool {
    if t.flags & flags::HAVE_GC != 0 {
        if let Some(head) = obj.checked_sub(gc_head_before(l)) {
            let links = view.get(head, GC_HEAD_LINKS);
            if let Ok([next, prev]) = links.map(|h| [h.u64_at(0), h.u64_at(GC_PREV)]) {
                let near = Near {
                    pool: 0,
                    p: &[],
                    chunk: None,
                };
                if gc_head_ok(view, &near, head, next, prev) {
                    return true;
                }
            }
        }
    }
    let Some(rc) = view.u64(obj) else {
        return false;
    };
    rc < MIN_OBJECT_ADDRESS || !rc.is_multiple_of(8) || !is_object_at(view, l, types, rc)
}

/// The GC head before the object at offset `d` of block `b`: (its offset in the block,
/// `_gc_next`, `_gc_prev`), or None when the block has no room for one before the object.
#[inline(always)]
fn gc_head_in(l: &Layout, b: &[u8], d: u64) -> Option<(u64, u64, u64)> {
    let head = d.checked_sub(l.gc_head_size)?;
    let at = head as usize;
    Some((head, b.u64_at(at), b.u64_at(at + GC_PREV)))
}

/// How far before an object outside the arenas `alive_outside` reads two words as its GC head:
/// `gc_head_size` on GIL builds. Free-threaded builds have no GC head (`gc_head_size` 0);
/// there the check has always read the 16 bytes before the object (the managed dict and
/// weakref slots, which pass as an untracked head when both are empty), and still does: the
/// census must not change with the layout's wording. Whether it should is for another change.
fn gc_head_before(l: &Layout) -> u64 {
    if l.free_threaded {
        GC_HEAD_LINKS as u64
    } else {
        l.gc_head_size
    }
}

/// An object's header is at `addr`: its type word names a type.
fn is_object_at(view: &mut View, l: &Layout, types: &mut TypeTable, addr: u64) -> bool {
    view.is_readable(addr, l.header_size)
        && view
            .u64(addr.wrapping_add(l.ob_type))
            .is_some_and(|tp| tp != 0 && tp.is_multiple_of(8) && types.id(view, l, tp).is_some())
}

/// The GC head at `head` (`_gc_next`, `_gc_prev`) is one a live object has:
/// untracked (`_gc_next` zero; untracking keeps only the finalized bit of `_gc_prev`), or
/// linked into a list: its next node points back at it, or its previous node forward at it.
/// While a collection runs, `_gc_prev` words hold reference counts with the collecting bit
/// (bit 1, which no pointer has): set here and in the next node, it links them too.
fn gc_head_ok(view: &mut View, near: &Near, head: u64, next: u64, prev: u64) -> bool {
    if next == 0 {
        return prev & !1 == 0;
    }
    // Nodes are 8-aligned, list heads only 4-aligned on some builds (Debian's GC-head
    // alignment patch puts them at gc+20).
    let n = next & !3;
    if n == 0 {
        return false;
    }
    match n.checked_add(8).and_then(|a| near.u64(view, a)) {
        Some(back) if back & !3 == head => return true,
        Some(back) if prev & 2 != 0 && back & 2 != 0 => return true,
        _ => {}
    }
    let p = prev & !3;
    prev & 2 == 0 && p != 0 && near.u64(view, p).is_some_and(|f| f & !3 == head)
}

/// The bytes a scan holds while it judges a pool's blocks: the pool itself and the view's chunk
/// it came from. A GC head's neighbour is mostly in one of them (list order follows allocation
/// order), read without a lookup.
pub struct Near<'a> {
    pub pool: u64,
    pub p: &'a [u8],
    pub chunk: Option<&'a Chunk>,
}

impl Near<'_> {
    #[inline(always)]
    fn u64(&self, view: &mut View, addr: u64) -> Option<u64> {
        if let Some(off) = addr.checked_sub(self.pool) {
            if off < self.p.len() as u64 && self.p.len() as u64 - off >= 8 {
                return Some(self.p.u64_at(off as usize));
            }
        }
        if let Some(b) = self.chunk.and_then(|c| c.get(addr, 8)) {
            return Some(b.u64_at(0));
        }
        view.u64(addr)
    }
}

/// Plain pymalloc blocks or debug-wrapped ones: whichever makes more of the first blocks
/// validate as objects.
pub fn detect_framing(
    view: &mut View,
    l: &Layout,
    types: &mut TypeTable,
    arenas: &Arenas,
) -> BlockFraming {
    let mut w = Walk { view, l, types };
    let mut hits = [0u32; 2];
    let framings = [BlockFraming::default(), DEBUG_FRAMING];
    let ps = arenas.pool_size;
    'arenas: for arena in &arenas.arenas {
        let mut pool = (arena.address + ps - 1) & !(ps - 1);
        while pool + ps <= arena.pool_address {
            let Ok(p) = w.view.get(pool, ps as usize).map(|b| b.to_vec()) else {
                break;
            };
            let h = PoolHeader::read(&l.pymalloc, &p);
            let size = h.block_size(&l.pymalloc);
            let next = h.nextoffset.min(ps);
            if h.count > 0 && (h.szidx as usize) < l.pymalloc.classes {
                let mut off = l.pymalloc.pool_overhead;
                while off + size <= next {
                    let b = &p[off as usize..(off + size) as usize];
                    let near = Near {
                        pool,
                        p: &p,
                        chunk: None,
                    };
                    for (i, f) in framings.iter().enumerate() {
                        if object_in_block(&mut w, &near, pool + off, b, *f).is_some() {
                            hits[i] += 1;
                        }
                    }
                    off += size;
                }
            }
            if hits[0] + hits[1] > 2000 {
                break 'arenas;
            }
            pool += ps;
        }
    }
    if hits[1] > hits[0] {
        DEBUG_FRAMING
    } else {
        BlockFraming::default()
    }
}

/// Does the block's size class match what this object's fields say it allocated? If so, the
/// bytes its own allocation asked for (pre-header included).
fn fits_block(
    view: &mut View,
    l: &Layout,
    t: &TypeInfo,
    o: &[u8],
    block: u64,
    overhead: u64,
) -> Option<u64> {
    let need = own_size(view, l, t, o)?;
    let own = need + t.preheader;
    let want = (own + overhead).next_multiple_of(l.pymalloc.alignment);
    let fits = if t.flags & flags::INLINE_VALUES != 0 && l.inline_values {
        // Instance attribute values live inline after the object: the block is larger.
        block >= want
    } else {
        // Tolerate one size class of slack for int: 0 allocates a digit on some versions only.
        block == want || (t.rule == SizeRule::Int && block == want + l.pymalloc.alignment)
    };
    fits.then_some(own)
}
