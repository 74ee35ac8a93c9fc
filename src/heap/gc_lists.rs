//! Walking the cyclic GC's object lists (every generation and the permanent one) of every
//! interpreter. The view reads the heap in bulk; here we only follow `_gc_next` locally.
//!
//! The target keeps running, so each step is checked: aligned, mapped, and its `_gc_prev` must
//! point back at the node we came from. A torn list is re-read; a collection in progress
//! (objects parked on temporary lists, `_gc_prev` holding gc_refs) is waited out.

use crate::process::{Bytes, Memory, MemoryExt, View};
use crate::python::Python;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct WalkLimits {
    /// Upper bound on nodes per list: a cycle in corrupted memory cannot spin forever.
    pub max_nodes: u64,
    /// How long to wait for a running collection to finish before walking anyway.
    pub collecting_wait: Duration,
    pub attempts: u32,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            max_nodes: 1 << 30,
            collecting_wait: Duration::from_millis(500),
            attempts: 5,
        }
    }
}

#[derive(Debug, Default)]
pub struct GcObjects {
    /// Object addresses (node + 16), in list order.
    pub objects: Vec<u64>,
    /// (list label, objects found) for reports and debugging.
    pub lists: Vec<(String, u64)>,
    /// Lists abandoned on a broken link after all attempts.
    pub broken: Vec<String>,
    pub attempts: u32,
    /// The walk ran while a collection was in progress (counts may be off).
    pub during_collection: bool,
}

enum ListEnd {
    Complete,
    Broken,
}

pub fn walk(view: &mut View, py: &Python, limits: &WalkLimits) -> GcObjects {
    let mut out = GcObjects::default();
    for attempt in 1..=limits.attempts.max(1) {
        out = GcObjects {
            attempts: attempt,
            ..Default::default()
        };
        out.during_collection = !wait_for_quiet_gc(view, py, limits.collecting_wait);
        walk_once(view, py, limits, &mut out);
        let collecting_now = collecting(view, py);
        if out.broken.is_empty() && !collecting_now {
            break;
        }
        // Re-read everything: what we cached may be from before the mutation.
        view.forget();
    }
    out
}

fn gc_states(py: &Python) -> Vec<u64> {
    let mut states: Vec<u64> = py.interpreters.iter().map(|&i| py.gc_state(i)).collect();
    states.dedup();
    states
}

fn collecting(view: &View, py: &Python) -> bool {
    // Read live, not from the cache: this flag is what we are waiting on.
    collection_running(view.memory(), py)
}

/// Whether any interpreter's collector is running now (read live from `memory`).
pub fn collection_running(memory: &dyn Memory, py: &Python) -> bool {
    let off = py.layout.gc.collecting;
    gc_states(py)
        .iter()
        .any(|&gc| memory.u32(gc + off).unwrap_or(0) != 0)
}

/// True when no collection runs (now or within `wait`).
fn wait_for_quiet_gc(view: &View, py: &Python, wait: Duration) -> bool {
    let start = Instant::now();
    while collecting(view, py) {
        if start.elapsed() > wait {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn walk_once(view: &mut View, py: &Python, limits: &WalkLimits, out: &mut GcObjects) {
    let g = py.layout.gc;
    for (ii, gc) in gc_states(py).into_iter().enumerate() {
        let heads = (0..g.generation_count)
            .map(|i| {
                (
                    format!("interp{ii}.gen{i}"),
                    gc + g.generations + i * g.generation_stride,
                )
            })
            .chain([(format!("interp{ii}.permanent"), gc + g.permanent)]);
        for (label, head) in heads {
            let before = out.objects.len();
            let end = walk_list(view, head, limits.max_nodes, &mut out.objects);
            out.lists
                .push((label.clone(), (out.objects.len() - before) as u64));
            if let ListEnd::Broken = end {
                out.broken.push(label);
            }
        }
    }
}

fn walk_list(view: &mut View, head: u64, max_nodes: u64, objects: &mut Vec<u64>) -> ListEnd {
    let Some(first) = view.u64(head) else {
        return ListEnd::Broken;
    };
    let mut prev = head;
    let mut node = first & !3;
    let mut steps = 0u64;
    while node != head {
        steps += 1;
        if steps > max_nodes || node % 8 != 0 {
            return ListEnd::Broken;
        }
        let Ok(b) = view.get(node, 16) else {
            return ListEnd::Broken;
        };
        let (next, back) = (b.u64_at(0) & !3, b.u64_at(8) & !3);
        if back != prev {
            return ListEnd::Broken;
        }
        objects.push(node + 16);
        prev = node;
        node = next;
    }
    ListEnd::Complete
}
