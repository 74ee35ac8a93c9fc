//! Free-threaded builds' source: there is no young list; the blocks each thread's mimalloc
//! heaps handed out since the last tick (`heap::mimalloc::fresh_pages`), charged to that
//! thread's stack.

use super::census;
use super::profile::SAMPLED_THREADS;
use super::records::{Batch, NewObject};
use super::sampled::{Sampled, SampledSource};
use super::stats::AllocStats;
use crate::analysis::session::Session;
use crate::heap::gc::young::{block_fingerprint, TypeBitsCache};
use crate::heap::mimalloc::fresh_pages::{FreshBlock, FreshPages};
use crate::heap::mimalloc::{HEAP_GC_PRE, HEAP_OBJECT};
use crate::process::{Bytes, Memory, View};
use crate::python::layout::flags;
use crate::python::Layout;
use std::collections::HashMap;

pub(super) struct Threads {
    /// The pages each thread allocates from.
    pages: FreshPages,
    /// Per thread, the tick its stack was last read and `functions_of` it then.
    thread_functions: HashMap<u64, (u64, Option<u64>)>,
}

impl Threads {
    pub(super) fn new(pages: FreshPages) -> Threads {
        Threads {
            pages,
            thread_functions: HashMap::new(),
        }
    }
}

impl SampledSource for Threads {
    /// The objects each thread's heaps handed out since the last tick, charged to that
    /// thread's stack when the same functions ran at both ticks (the blocks are every
    /// allocation of the interval, not only the newest: as for head pools, an interval in
    /// which the running functions changed is counted as unattributed).
    fn tick(&mut self, session: &Session, tick: u64, s: &mut Sampled) -> Vec<Batch> {
        let py = &session.py;
        let mem = &session.target.memory;
        let mut blocks = Vec::new();
        let mut view = View::new(mem, s.types.spans.clone(), 0);
        self.pages.new_blocks(&mut view, py, &mut blocks);
        drop(view);
        if blocks.is_empty() {
            return Vec::new();
        }
        let mut by_thread: HashMap<u64, Vec<NewObject>> = HashMap::new();
        for b in blocks {
            if let Some(n) = object_in_fresh_block(&mut s.types, mem, &py.layout, &b) {
                by_thread.entry(b.thread).or_default().push(n);
            }
        }
        let mut batches = Vec::new();
        for (thread, fresh) in by_thread {
            let stack = s.stacks.thread_stack(mem, py, thread);
            let functions = stack.map(|id| s.stacks.functions_of(id));
            let before = self.thread_functions.insert(thread, (tick, functions));
            let stable = functions.is_some() && before == Some((tick - 1, functions));
            // Unstable: unattributed.
            batches.push((stack.filter(|_| stable), fresh));
        }
        // Threads that exited.
        self.thread_functions.retain(|_, (t, _)| *t + 2 > tick);
        batches
    }

    fn census(
        &mut self,
        session: &Session,
        types: &mut TypeBitsCache,
        _warnings: &mut Vec<String>,
    ) -> Option<(u64, u64)> {
        census::heaps(session, types)
    }

    fn method(&self) -> &'static str {
        SAMPLED_THREADS
    }

    fn report(&self, stats: &mut AllocStats, _warnings: &mut Vec<String>) {
        stats.fresh_pages = Some(self.pages.stats);
    }
}

/// The object a new mimalloc block holds, if one validates: a real type with a live
/// refcount, in the heap its type belongs in (GC objects in the GC heaps, after the
/// pre-header in the one that has them).
fn object_in_fresh_block(
    types: &mut TypeBitsCache,
    mem: &dyn Memory,
    l: &Layout,
    b: &FreshBlock,
) -> Option<NewObject> {
    let pre = if b.heap == HEAP_GC_PRE { 16 } else { 0 };
    let o = b.bytes.get(pre..)?;
    if (o.len() as u64) < l.header_size || !l.live_refcount(o) {
        return None;
    }
    let type_ptr = o.u64_at(l.ob_type as usize);
    let bits = types.get(mem, l, type_ptr)?;
    if (bits.flags & flags::HAVE_GC != 0) == (b.heap == HEAP_OBJECT) {
        return None;
    }
    let o = &o[..o.len().min(u16::MAX as usize)];
    Some(NewObject {
        obj: b.addr + pre as u64,
        type_ptr,
        fingerprint: block_fingerprint(o, l, bits),
        block: o.len() as u16,
    })
}
