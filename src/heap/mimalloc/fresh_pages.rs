//! The pages each thread of a free-threaded build allocates from now: the mimalloc counterpart
//! of `head_pools`. Every thread allocates in heaps of its own (objects, GC objects, GC objects
//! with a pre-header), and each size class is served by the first page of its queue in that
//! heap. Reading those pages at two moments and comparing their blocks in use shows what was
//! allocated in between — GC objects and untracked ones (str, int, bytes) alike — and by which
//! thread: a page belongs to one thread's heap. The allocation sampler charges what this
//! finds to that thread's stack.
//!
//! Hostile input as ever: a page header that does not validate is skipped, a free list that
//! leaves its page (the owner changed it while we read) skips the page for this look, every
//! loop is bounded.

use crate::heap::mimalloc::{
    self, Page, HEAP_GC, HEAP_GC_PRE, HEAP_OBJECT, HEAP_PAGES, HEAP_SIZE, HEAP_TAG, HEAP_TLD,
    MAX_PAGE_COPY, PAGE_QUEUES, PAGE_QUEUE_SIZE, PAGE_SIZE, THREAD_HEAPS,
};
use crate::process::{Bytes, Memory, View};
use crate::python::layout::MimallocLayout;
use crate::python::Python;
use std::collections::HashMap;

/// The heaps objects are allocated in (the `mem` heap holds buffers: list items, dict keys).
const OBJECT_HEAPS: [u8; 3] = [HEAP_OBJECT, HEAP_GC, HEAP_GC_PRE];
/// The last queue holds full pages: nothing is allocated there.
const FULL_QUEUE: u64 = PAGE_QUEUES - 1;
/// The thread list is read again every this many looks (threads come and go).
const THREADS_EVERY: u64 = 64;
/// Pages remembered between looks before the ones no longer heads are let go.
const MAX_REMEMBERED: usize = 4096;
/// Most bytes of pages read in one look: the rest wait for the next (a burst of new pages on
/// many threads must not make one tick read, or hold, the whole heap).
const MAX_READ_PER_LOOK: u64 = 32 << 20;
/// Largest read buffer kept between looks.
const MAX_SCRATCH: usize = 16 << 20;
/// Most threads followed.
const MAX_THREADS: usize = 1024;

/// A block allocated since the last look, with its bytes at the time of this one, and the
/// thread whose heap it is in.
pub struct FreshBlock {
    pub thread: u64,
    pub heap: u8,
    pub addr: u64,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct FreshPageStats {
    pub looks: u64,
    pub threads: u64,
    pub pages_read: u64,
    /// Pages whose header did not validate, or whose free lists left the page while read.
    pub bad_pages: u64,
    /// Head pages too large to copy at each look (huge objects): not followed.
    pub large_pages: u64,
    /// Changed pages left for the next look (over `MAX_READ_PER_LOOK`).
    pub deferred_pages: u64,
    pub new_blocks: u64,
}

/// A page at its last read: its allocation state (unchanged: nothing handed out or freed)
/// and its blocks in use.
struct Seen {
    start: u64,
    block_size: u64,
    state: [u64; 5],
    in_use: Vec<u64>,
}

/// A page to look at: where, in which heap, whose.
#[derive(Clone, Copy)]
struct Head {
    page: u64,
    heap: u8,
    thread: u64,
}

pub struct FreshPages {
    m: MimallocLayout,
    interps: Vec<u64>,
    threads: Vec<u64>,
    /// The head page per (heap address, queue) at the last look.
    heads: HashMap<(u64, u64), Head>,
    seen: HashMap<u64, Seen>,
    /// Where the changed pages are read to, kept between looks (fresh pages each time cost
    /// more in page faults than the copy).
    scratch: Vec<u8>,
    pub stats: FreshPageStats,
}

impl FreshPages {
    /// On free-threaded builds whose thread states' mimalloc heaps are known; None elsewhere.
    pub fn locate(py: &Python) -> Option<FreshPages> {
        let l = &py.layout;
        if !l.free_threaded {
            return None;
        }
        Some(FreshPages {
            m: l.mimalloc?,
            interps: py.interpreters.clone(),
            threads: Vec::new(),
            heads: HashMap::new(),
            seen: HashMap::new(),
            scratch: Vec::new(),
            stats: FreshPageStats::default(),
        })
    }

    /// Blocks allocated in the threads' head pages since the last call, appended to `out`.
    /// The first call only takes note of what is allocated. Three system calls per call: the
    /// threads' heaps, the pages' headers, and the pages whose header changed (header again
    /// and blocks, whole).
    pub fn new_blocks(&mut self, view: &mut View, py: &Python, out: &mut Vec<FreshBlock>) {
        let mem = view.memory();
        if self.stats.looks.is_multiple_of(THREADS_EVERY) {
            self.threads = self
                .interps
                .iter()
                .flat_map(|&i| mimalloc::thread_states(view, &py.layout, &self.m, i))
                .take(MAX_THREADS)
                .collect();
            self.stats.threads = self.threads.len() as u64;
        }
        self.stats.looks += 1;
        let heads = self.read_heads(mem);
        // Each queue's head, and a former head that is not one any more (it filled up, or
        // the thread moved on): what it handed out last counts too.
        let mut pages: Vec<Head> = heads.values().copied().collect();
        for (key, old) in &self.heads {
            if heads.get(key).is_none_or(|new| new.page != old.page) {
                pages.push(*old);
            }
        }
        pages.sort_unstable_by_key(|h| h.page);
        pages.dedup_by_key(|h| h.page);
        self.heads = heads;
        let changed = self.changed_pages(mem, &pages);
        self.read_changed(mem, &changed, out);
        if self.seen.len() > MAX_REMEMBERED {
            let keep: std::collections::HashSet<u64> =
                self.heads.values().map(|h| h.page).collect();
            self.seen.retain(|p, _| keep.contains(p));
        }
    }

    /// The first page of every allocation queue of every thread's object heaps.
    fn read_heads(&mut self, mem: &dyn Memory) -> HashMap<(u64, u64), Head> {
        let heaps: Vec<(u64, u8, u64)> = self
            .threads
            .iter()
            .flat_map(|&t| {
                let state = t + self.m.tstate_mimalloc;
                OBJECT_HEAPS.map(|id| (state + THREAD_HEAPS + id as u64 * HEAP_SIZE, id, t))
            })
            .collect();
        let mut buf = vec![0u8; heaps.len() * HEAP_SIZE as usize];
        let ok = {
            let mut reads: Vec<(u64, &mut [u8])> = heaps
                .iter()
                .zip(buf.chunks_exact_mut(HEAP_SIZE as usize))
                .map(|(&(heap, _, _), b)| (heap, b))
                .collect();
            mem.read_many(&mut reads)
        };
        let mut heads = HashMap::new();
        for ((&(heap, id, thread), h), ok) in heaps
            .iter()
            .zip(buf.chunks_exact(HEAP_SIZE as usize))
            .zip(ok)
        {
            // Unreadable (the thread exited), not bound yet, or not the heap we think it is.
            if !ok || h.u64_at(HEAP_TLD as usize) == 0 || h.u8_at(HEAP_TAG as usize) != id {
                continue;
            }
            for q in 0..FULL_QUEUE {
                let page = h.u64_at((HEAP_PAGES + q * PAGE_QUEUE_SIZE) as usize);
                if page != 0 && page.is_multiple_of(8) {
                    heads.insert(
                        (heap, q),
                        Head {
                            page,
                            heap: id,
                            thread,
                        },
                    );
                }
            }
        }
        heads
    }

    /// The pages whose allocation state changed since their last read, decoded.
    fn changed_pages(&mut self, mem: &dyn Memory, pages: &[Head]) -> Vec<(Head, Page)> {
        let ps = PAGE_SIZE as usize;
        let mut buf = vec![0u8; pages.len() * ps];
        let ok = {
            let mut reads: Vec<(u64, &mut [u8])> = pages
                .iter()
                .zip(buf.chunks_exact_mut(ps))
                .map(|(h, b)| (h.page, b))
                .collect();
            mem.read_many(&mut reads)
        };
        let mut changed = Vec::new();
        let mut budget = MAX_READ_PER_LOOK;
        for ((head, b), ok) in pages.iter().zip(buf.chunks_exact(ps)).zip(ok) {
            let Some(page) = ok
                .then(|| mimalloc::decode(b, head.page, head.heap))
                .flatten()
            else {
                self.stats.bad_pages += 1;
                self.seen.remove(&head.page);
                continue;
            };
            if page.capacity * page.block_size > MAX_PAGE_COPY {
                self.stats.large_pages += 1;
                continue;
            }
            let same = self.seen.get(&head.page).is_some_and(|s| {
                s.state == state_of(&page)
                    && s.start == page.start
                    && s.block_size == page.block_size
            });
            if !same {
                let bytes = page.capacity * page.block_size;
                if bytes > budget {
                    self.stats.deferred_pages += 1;
                    continue;
                }
                budget -= bytes;
                changed.push((*head, page));
            }
        }
        changed
    }

    /// Read the changed pages' headers and blocks together; blocks in use now and not at the
    /// page's last read go to `out`. A page not seen before is only noted: which of its
    /// blocks are new cannot be told.
    fn read_changed(
        &mut self,
        mem: &dyn Memory,
        changed: &[(Head, Page)],
        out: &mut Vec<FreshBlock>,
    ) {
        let ps = PAGE_SIZE as usize;
        let sizes: Vec<usize> = changed
            .iter()
            .map(|(_, p)| (p.capacity * p.block_size) as usize)
            .collect();
        let mut buf = std::mem::take(&mut self.scratch);
        let header_bytes = changed.len() * ps;
        buf.resize(header_bytes + sizes.iter().sum::<usize>(), 0);
        let (headers, areas) = buf.split_at_mut(header_bytes);
        let ok = {
            let mut reads: Vec<(u64, &mut [u8])> = Vec::with_capacity(2 * changed.len());
            let mut rest = &mut areas[..];
            for (((head, page), h), &n) in
                changed.iter().zip(headers.chunks_exact_mut(ps)).zip(&sizes)
            {
                let (a, r) = std::mem::take(&mut rest).split_at_mut(n);
                rest = r;
                reads.push((head.page, h));
                reads.push((page.start, a));
            }
            mem.read_many(&mut reads)
        };
        let mut at = 0;
        for (k, ((head, planned), &n)) in changed.iter().zip(&sizes).enumerate() {
            let area = &areas[at..at + n];
            at += n;
            if !(ok[2 * k] && ok[2 * k + 1]) {
                self.stats.bad_pages += 1;
                continue;
            }
            // The header read beside the blocks: the free lists are followed in this copy.
            let page = mimalloc::decode(&headers[k * ps..(k + 1) * ps], head.page, head.heap)
                .filter(|p| {
                    p.start == planned.start
                        && p.block_size == planned.block_size
                        && p.capacity <= planned.capacity
                });
            let Some(page) = page else {
                self.stats.bad_pages += 1;
                self.seen.remove(&head.page);
                continue;
            };
            self.look(head, &page, area, out);
        }
        // A burst's buffer is not kept.
        if buf.len() <= MAX_SCRATCH {
            self.scratch = buf;
        }
    }

    fn look(&mut self, head: &Head, page: &Page, area: &[u8], out: &mut Vec<FreshBlock>) {
        self.stats.pages_read += 1;
        let (start, bs, capacity) = (page.start, page.block_size, page.capacity as usize);
        let mut free = vec![false; capacity];
        let next = |b: u64| area.u64_at((b - start) as usize);
        let whole = page
            .free_lists
            .iter()
            .all(|&list| mimalloc::mark_free_list(list, page, next, &mut free));
        if !whole {
            // Changed while read: looked at again next time.
            self.stats.bad_pages += 1;
            self.seen.remove(&head.page);
            return;
        }
        let mut in_use = vec![0u64; capacity.div_ceil(64)];
        for (i, _) in free.iter().enumerate().filter(|(_, &f)| !f) {
            in_use[i / 64] |= 1 << (i % 64);
        }
        if let Some(before) = self.seen.get(&head.page) {
            for (k, &now) in in_use.iter().enumerate() {
                let was = before.in_use.get(k).copied().unwrap_or(0);
                let mut fresh = now & !was;
                while fresh != 0 {
                    let i = k * 64 + fresh.trailing_zeros() as usize;
                    fresh &= fresh - 1;
                    let off = i * bs as usize;
                    if let Some(b) = area.get(off..off + bs as usize) {
                        out.push(FreshBlock {
                            thread: head.thread,
                            heap: head.heap,
                            addr: start + off as u64,
                            bytes: b.to_vec(),
                        });
                        self.stats.new_blocks += 1;
                    }
                }
            }
        }
        self.seen.insert(
            head.page,
            Seen {
                start,
                block_size: bs,
                state: state_of(page),
                in_use,
            },
        );
    }
}

/// What changes when a page hands a block out or takes one back.
fn state_of(p: &Page) -> [u64; 5] {
    [
        p.used,
        p.capacity,
        p.free_lists[0],
        p.free_lists[1],
        p.free_lists[2],
    ]
}
