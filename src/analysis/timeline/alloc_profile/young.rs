//! GIL builds' source: the newest objects of the GC's young list, and the blocks pymalloc's
//! head pools handed out (objects the GC never lists: str, bytes, int, float), charged to the
//! stack of the thread that took the GIL last.

use super::census;
use super::profile::SAMPLED;
use super::records::{Batch, NewObject};
use super::sampled::{Sampled, SampledSource};
use super::stats::AllocStats;
use crate::analysis::session::Session;
use crate::heap::frames::stacks::GilState;
use crate::heap::gc::young::{self, block_fingerprint, TypeBitsCache, YoungList, YoungWalkStats};
use crate::heap::pymalloc::head_pools::HeadPools;
use crate::process::{Bytes, Memory, MemoryExt, View};
use crate::python::layout::flags;
use crate::python::{Layout, Python};

/// Ticks that look for pymalloc's `usedpools` again when the first look did not find it.
const HEAD_POOL_TRIES: u64 = 20;

pub(super) struct Young {
    gc_state: u64,
    young_head: u64,
    /// `SamplerOptions::max_walk`.
    max_walk: usize,
    head_pools: Option<HeadPools>,
    /// (thread state, stack) of the last tick that found that thread holding the GIL.
    last_running: Option<(u64, u32)>,
    /// The GIL at the last tick.
    last_gil: Option<GilState>,
    /// `functions_of` the stack at the last tick.
    last_functions: Option<u64>,
    /// Ticks that found a garbage collection running, or the GC state unreadable.
    skipped_collecting: u64,
    skipped_unreadable: u64,
    walks: YoungWalkStats,
}

impl Young {
    /// The young list of the first interpreter (`gc_state`), and its head pools if found.
    pub(super) fn new(session: &Session, s: &Sampled, gc_state: u64, max_walk: usize) -> Young {
        let py = &session.py;
        let mut view = View::new(&session.target.memory, s.types.spans.clone(), 0);
        Young {
            gc_state,
            // Generation 0 (3.14.0–3.14.4: `young`) is the first list; `resolve` proved its head.
            young_head: gc_state + py.layout.gc.generations,
            max_walk,
            head_pools: HeadPools::locate(&mut view, py),
            last_running: None,
            last_gil: None,
            last_functions: None,
            skipped_collecting: 0,
            skipped_unreadable: 0,
            walks: YoungWalkStats::default(),
        }
    }

    /// Untracked objects pymalloc handed out since the last tick. GC objects among the new
    /// blocks are the young walk's.
    fn untracked_blocks(
        &mut self,
        mem: &dyn Memory,
        l: &Layout,
        types: &mut TypeBitsCache,
    ) -> Vec<NewObject> {
        let mut blocks = Vec::new();
        match self.head_pools.as_mut() {
            Some(h) => h.new_blocks(mem, &mut blocks),
            None => return Vec::new(),
        }
        let mut out = Vec::new();
        for b in blocks {
            if b.bytes.len() < l.header_size as usize || !l.live_refcount(&b.bytes) {
                continue;
            }
            let type_ptr = b.bytes.u64_at(l.ob_type as usize);
            let Some(bits) = types.get(mem, l, type_ptr) else {
                continue;
            };
            if bits.flags & flags::HAVE_GC != 0 {
                continue;
            }
            out.push(NewObject {
                obj: b.addr,
                type_ptr,
                fingerprint: block_fingerprint(&b.bytes, l, bits),
                block: b.bytes.len() as u16,
            });
        }
        out
    }

    /// New GC objects, newest first (`heap::gc::young::walk`), stopping at one recorded before.
    fn walk_young(&mut self, session: &Session, s: &mut Sampled, newest: u64) -> Vec<NewObject> {
        let records = &s.records;
        let known = |obj: u64, type_ptr: u64, fp: u64| records.known(obj, type_ptr, fp);
        young::walk(
            &session.target.memory,
            &session.py.layout,
            YoungList {
                head: self.young_head,
                max_walk: self.max_walk,
            },
            newest,
            &mut s.types,
            known,
            &mut self.walks,
        )
        .into_iter()
        .map(|y| NewObject {
            obj: y.obj,
            type_ptr: y.type_ptr,
            fingerprint: y.fingerprint,
            block: 0,
        })
        .collect()
    }

    /// The stack to charge the newest objects to, interned: that of the thread that took the
    /// GIL last, while it holds it. A thread that has released the GIL (asleep, blocked in I/O)
    /// made its newest objects before it stopped, not in the sleep: those go to the stack it
    /// had at the last tick that found it running, or to none.
    fn current_stack(
        &mut self,
        s: &mut Sampled,
        mem: &dyn Memory,
        py: &Python,
        gil: Option<GilState>,
    ) -> Option<u32> {
        let gil = gil.map(|g| (g.holder, g.locked));
        let holder = gil.map(|(h, _)| h).or_else(|| {
            // No GIL holder recorded: the first thread listed will do.
            s.stacks.reader.thread_states(mem, py).first().copied()
        });
        let running = gil.is_none_or(|(_, locked)| locked);
        if !running {
            return self
                .last_running
                .filter(|(ts, _)| Some(*ts) == holder)
                .map(|(_, id)| id);
        }
        let id = match holder.and_then(|ts| s.stacks.reader.thread(mem, py, ts)) {
            Some(t) => s.stacks.intern_thread_stack(t),
            None => s.stacks.intern(Vec::new()),
        };
        if let Some(ts) = holder {
            self.last_running = Some((ts, id));
        }
        Some(id)
    }
}

impl SampledSource for Young {
    /// Read the newest young objects and the head pools' new blocks, and charge the new ones
    /// to the stack of the thread that took the GIL last. A few small reads.
    fn tick(&mut self, session: &Session, tick: u64, s: &mut Sampled) -> Vec<Batch> {
        let py = &session.py;
        let mem = &session.target.memory;
        // Found without a symbol (stripped 3.8–3.11) only once pools are in use: a program
        // recorded from its start may not be there yet at the first look. A few more tries.
        if self.head_pools.is_none() && tick <= HEAD_POOL_TRIES {
            let mut view = View::new(mem, s.types.spans.clone(), 0);
            self.head_pools = HeadPools::locate(&mut view, py);
        }
        let untracked = self.untracked_blocks(mem, &py.layout, &mut s.types);
        let g = py.layout.gc;
        // One read covers `collecting` and the young head's `_gc_prev` (the newest node).
        let head_off = g.generations;
        let lo = head_off.min(g.collecting);
        let hi = (head_off + 16).max(g.collecting + 4);
        let Ok(state) = mem.bytes(self.gc_state.wrapping_add(lo), (hi - lo) as usize) else {
            self.skipped_unreadable += 1;
            return Vec::new();
        };
        let mut fresh = if state.u32_at((g.collecting - lo) as usize) != 0 {
            self.skipped_collecting += 1;
            Vec::new()
        } else {
            let newest = state.u64_at((head_off - lo + 8) as usize) & !3;
            self.walk_young(session, s, newest)
        };
        if fresh.is_empty() && untracked.is_empty() && self.head_pools.is_none() {
            return Vec::new();
        }
        let gil = s.stacks.reader.gil_state(mem, py);
        let stack = self.current_stack(s, mem, py, gil);
        // Head pools give every block since the last tick, not only the newest: they are
        // charged only when one thread held the GIL all along (its holder and count of
        // switches did not change: no other thread can have allocated) and ran the same
        // functions at both ticks (lines may differ); else the interval's work is split between
        // threads or callers and counted as unattributed.
        let functions = stack.map(|id| s.stacks.functions_of(id));
        let alone = gil.is_some_and(|g| {
            self.last_gil
                .is_some_and(|l| l.holder == g.holder && l.switches == g.switches)
        });
        self.last_gil = gil;
        let stable = alone && functions.is_some() && functions == self.last_functions;
        self.last_functions = functions;
        let mut batches = Vec::new();
        if stable {
            fresh.extend(untracked);
        } else {
            batches.push((None, untracked));
        }
        if !fresh.is_empty() {
            // No stack: unattributed.
            batches.push((stack, fresh));
        }
        batches
    }

    fn census(
        &mut self,
        session: &Session,
        types: &mut TypeBitsCache,
        warnings: &mut Vec<String>,
    ) -> Option<(u64, u64)> {
        census::gc_lists(session, types, warnings)
    }

    fn method(&self) -> &'static str {
        SAMPLED
    }

    fn report(&self, stats: &mut AllocStats, warnings: &mut Vec<String>) {
        stats.skipped_collecting = self.skipped_collecting;
        stats.skipped_unreadable = self.skipped_unreadable;
        stats.walks = self.walks;
        stats.head_pools = self.head_pools.as_ref().map(|h| h.stats);
        if self.head_pools.is_none() {
            warnings.push(
                "pymalloc's list of pools in use (usedpools) was not found: objects the GC does \
                 not track (str, bytes, int, float) are not sampled"
                    .into(),
            );
        }
    }
}
