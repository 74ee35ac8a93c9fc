//! The pools pymalloc allocates from now. For each size class, `usedpools` links the pools
//! with free blocks, and every small allocation is served by the first one (a pool that fills
//! up leaves the list). Reading those head pools at two moments and comparing their allocated
//! blocks shows what was allocated in between, objects the GC never lists (str, bytes, int,
//! float) included: the allocation sampler's view of untracked growth.
//!
//! Hostile input as ever: a pool header that does not validate is skipped, every loop is
//! bounded by the pool size.

use crate::heap::pymalloc::arenas::PoolHeader;
use crate::process::{Bytes, Memory, MemoryExt, View};
use crate::python::layout::{ObmallocState, PymallocLayout};
use crate::python::Python;
use std::collections::HashMap;

/// Pools whose allocated blocks are remembered (the heads and the recent former heads).
const MAX_REMEMBERED: usize = 256;

/// A block allocated since the last look, with its bytes at the time of this one.
pub struct NewBlock {
    pub addr: u64,
    pub bytes: Vec<u8>,
}

pub struct HeadPools {
    /// `usedpools[0]`: the list header of class i overlays entries 2i and 2i+1.
    used: u64,
    pool_size: u64,
    m: PymallocLayout,
    /// The head pool per size class at the last look.
    heads: Vec<u64>,
    /// The pools looked at, by address.
    seen: HashMap<u64, Seen>,
    /// Where the changed pools are read to.
    scratch: Vec<u8>,
    pub stats: HeadPoolStats,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct HeadPoolStats {
    pub looks: u64,
    pub pools_read: u64,
    pub bad_pools: u64,
    pub new_blocks: u64,
}

/// Without the `usedpools` symbol (stripped distro 3.8–3.11, whose arenas the census finds by
/// heuristic): the static array in `.data` where every size class's two list words either
/// point at their own list header (an empty class: the header overlays the entry one stride
/// earlier) or at one pool whose header names that class. A run of such pairs, with at least
/// a few classes in use, does not occur by chance.
fn find_usedpools(view: &mut View, py: &Python) -> Option<u64> {
    let l = &py.layout;
    let m = &l.pymalloc;
    let stride = m.usedpools_stride;
    if stride < 16 || m.classes == 0 || !l.pool_size.is_power_of_two() {
        return None;
    }
    let span = m.classes * stride as usize;
    for &(start, size) in &py.binary.data_sections {
        // Bounded: .data of a python binary is well under this.
        let size = size.min(64 << 20) as usize;
        let Ok(words) = view.get(start, size).map(|b| b.to_vec()) else {
            continue;
        };
        let mut off = 0usize;
        while off + span <= words.len() {
            let used = start + off as u64;
            if usedpools_at(view, m, l.pool_size, &words[off..off + span], used) {
                return Some(used);
            }
            off += 8;
        }
    }
    None
}

fn usedpools_at(view: &mut View, m: &PymallocLayout, pool_size: u64, w: &[u8], used: u64) -> bool {
    let stride = m.usedpools_stride as usize;
    // Cheap test first: class 0's words are equal (empty: its header) or pool-aligned.
    let (a, b) = (w.u64_at(0), w.u64_at(8));
    let header0 = used.wrapping_sub(stride as u64);
    if !(a == b && a == header0 || a != 0 && a.is_multiple_of(pool_size)) {
        return false;
    }
    let mut in_use = 0;
    for class in 0..m.classes {
        let (next, prev) = (w.u64_at(class * stride), w.u64_at(class * stride + 8));
        let header = (used + (class * stride) as u64).wrapping_sub(stride as u64);
        if next == header && prev == header {
            continue;
        }
        for p in [next, prev] {
            if p == 0 || !p.is_multiple_of(pool_size) {
                return false;
            }
            let Ok(h) = view.get(p, m.pool_overhead as usize) else {
                return false;
            };
            let h = PoolHeader::read(m, h);
            if !h.plausible(m, pool_size) || h.szidx as usize != class {
                return false;
            }
        }
        in_use += 1;
    }
    in_use >= 4
}

impl HeadPools {
    /// Where `usedpools` is: obmalloc.c's static (3.8–3.11, by symbol) or the start of the
    /// interpreter's obmalloc state (3.12+); found in `.data` on builds without the symbol
    /// (stripped distro 3.11). None without pymalloc.
    pub fn locate(view: &mut View, py: &Python) -> Option<HeadPools> {
        let l = &py.layout;
        if l.free_threaded {
            return None;
        }
        let interp = *py.interpreters.first()?;
        let used = match l.interp.obmalloc {
            ObmallocState::Statics => py
                .binary
                .symbol("usedpools")
                .or_else(|| find_usedpools(view, py))?,
            ObmallocState::Embedded(off) => interp.checked_add(off)?,
            ObmallocState::Pointer(off) => {
                view.u64(interp.checked_add(off)?).filter(|&p| p != 0)?
            }
        };
        Some(HeadPools {
            used,
            pool_size: l.pool_size,
            m: l.pymalloc,
            heads: vec![0; l.pymalloc.classes],
            seen: HashMap::new(),
            scratch: Vec::new(),
            stats: HeadPoolStats::default(),
        })
    }

    /// Blocks allocated in the head pools since the last call, appended to `out`. The first
    /// call only takes note of what is allocated. Three system calls per call: the list heads,
    /// the pools' headers, and the pools whose header changed, whole.
    pub fn new_blocks(&mut self, mem: &dyn Memory, out: &mut Vec<NewBlock>) {
        self.stats.looks += 1;
        let stride = self.m.usedpools_stride;
        let Ok(used) = mem.bytes(self.used, self.m.classes * stride as usize) else {
            return;
        };
        let mut heads = vec![0u64; self.m.classes];
        for (i, h) in heads.iter_mut().enumerate() {
            // An empty list points at its own header (one entry before its own).
            let first = used.u64_at(i * stride as usize);
            let header = self.used + (i as u64) * stride - stride;
            if first != header && first.is_multiple_of(self.pool_size) {
                *h = first;
            }
        }
        // Each class's head, and a former head that left the list since (it filled up or
        // emptied): what it handed out last counts too.
        let mut pools: Vec<(u64, usize)> = Vec::new();
        let before = std::mem::take(&mut self.heads);
        for (class, (&old, &new)) in before.iter().zip(&heads).enumerate() {
            if old != 0 && old != new {
                pools.push((old, class));
            }
            if new != 0 {
                pools.push((new, class));
            }
        }
        self.heads = heads;
        // Headers first: a pool whose allocation state did not change is not read again.
        let mut headers = vec![vec![0u8; self.m.pool_overhead as usize]; pools.len()];
        let ok = {
            let mut reads: Vec<(u64, &mut [u8])> = pools
                .iter()
                .zip(headers.iter_mut())
                .map(|(&(pool, _), h)| (pool, &mut h[..]))
                .collect();
            mem.read_many(&mut reads)
        };
        let changed: Vec<(u64, usize)> = pools
            .iter()
            .zip(&headers)
            .zip(&ok)
            .filter(|((&(pool, _), h), &ok)| {
                ok && self
                    .seen
                    .get(&pool)
                    .is_none_or(|s| s.state != state_of(&self.m, h))
            })
            .map(|((&p, _), _)| p)
            .collect();
        let ps = self.pool_size as usize;
        // One buffer for all the pools, kept between ticks.
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(ps * changed.len(), 0);
        let ok = {
            let mut reads: Vec<(u64, &mut [u8])> = changed
                .iter()
                .zip(buf.chunks_exact_mut(ps))
                .map(|(&(pool, _), b)| (pool, b))
                .collect();
            mem.read_many(&mut reads)
        };
        for ((&(pool, class), p), ok) in changed.iter().zip(buf.chunks_exact(ps)).zip(ok) {
            if ok {
                self.look(pool, class, p, out);
            }
        }
        self.scratch = buf;
        if self.seen.len() > MAX_REMEMBERED {
            let keep: Vec<u64> = self.heads.iter().copied().filter(|&h| h != 0).collect();
            self.seen.retain(|p, _| keep.contains(p));
        }
    }

    /// Read one pool; blocks allocated now and not at its last read go to `out`. A pool not
    /// seen before is only noted: which of its blocks are new cannot be told.
    fn look(&mut self, pool: u64, class: usize, p: &[u8], out: &mut Vec<NewBlock>) {
        self.stats.pools_read += 1;
        let (m, ps) = (self.m, self.pool_size);
        let h = PoolHeader::read(&m, p);
        let (size, nextoffset, overhead) = (h.block_size(&m), h.nextoffset, m.pool_overhead);
        if h.szidx as usize != class || !h.plausible(&m, ps) {
            self.stats.bad_pools += 1;
            self.seen.remove(&pool);
            return;
        }
        let slots = ((ps - overhead) / size) as usize;
        let mut allocated = vec![0u64; slots.div_ceil(64)];
        let carved = ((nextoffset.saturating_sub(overhead)) / size) as usize;
        for s in 0..carved.min(slots) {
            allocated[s / 64] |= 1 << (s % 64);
        }
        // The free list threads through the free blocks themselves.
        let mut f = h.freeblock;
        for _ in 0..=slots {
            if f < pool + overhead || f >= pool + ps {
                break;
            }
            let s = ((f - pool - overhead) / size) as usize;
            if let Some(w) = allocated.get_mut(s / 64) {
                *w &= !(1 << (s % 64));
            }
            f = p.u64_at((f - pool) as usize);
        }
        if let Some(before) = self.seen.get(&pool) {
            for (k, (&now, &was)) in allocated.iter().zip(&before.allocated).enumerate() {
                let mut fresh = now & !was;
                while fresh != 0 {
                    let s = k * 64 + fresh.trailing_zeros() as usize;
                    fresh &= fresh - 1;
                    let at = (overhead + s as u64 * size) as usize;
                    if let Some(b) = p.get(at..at + size as usize) {
                        out.push(NewBlock {
                            addr: pool + at as u64,
                            bytes: b.to_vec(),
                        });
                        self.stats.new_blocks += 1;
                    }
                }
            }
        }
        self.seen.insert(
            pool,
            Seen {
                state: state_of(&m, p),
                allocated,
            },
        );
    }
}

/// What a pool was at its last read: its allocation state (blocks in use, free-list head,
/// first never-used offset: unchanged means nothing was handed out) and its allocated blocks.
struct Seen {
    state: (u32, u64, u64),
    allocated: Vec<u64>,
}

fn state_of(m: &PymallocLayout, header: &[u8]) -> (u32, u64, u64) {
    let h = PoolHeader::read(m, header);
    (h.count, h.freeblock, h.nextoffset)
}
