//! Walking the cyclic GC's object lists (every generation and the permanent one) of every
//! interpreter. The view reads the heap in bulk; here we only follow `_gc_next` locally.
//!
//! The target keeps running, so each step is checked: aligned, mapped, and its `_gc_prev` must
//! point back at the node we came from. A torn list is re-read; a collection in progress
//! (objects parked on temporary lists, `_gc_prev` holding gc_refs) is waited out.
//!
//! GIL builds only: free-threaded builds have no GC head and no lists (the census scans their
//! mimalloc heaps instead).

use crate::process::{Bytes, Memory, MemoryExt, View};
use crate::python::layout::{GC_HEAD_LINKS, GC_PREV};
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
    /// Object addresses (node + the layout's `gc_head_size`), in list order.
    pub objects: Vec<u64>,
    /// (list label, objects found) for reports and debugging.
    pub lists: Vec<(String, u64)>,
    /// Lists abandoned on a broken link after all attempts.
    pub broken: Vec<String>,
    pub attempts: u32,
    /// The walk ran while a collection was in progress (counts may be off).
    pub during_collection: bool,
    /// Lists whose count is an estimate (`count_lists`: the target changed them while they
    /// were read; nothing else depends on them).
    pub approximate: Vec<String>,
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
        .any(|&gc| memory.u32(gc.wrapping_add(off)).unwrap_or(0) != 0)
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

/// Every list head of every interpreter, labelled `interpN.genI` / `interpN.permanent`.
pub fn heads(py: &Python) -> Vec<(String, u64)> {
    let g = py.layout.gc;
    let mut out = Vec::new();
    for (ii, gc) in gc_states(py).into_iter().enumerate() {
        for i in 0..g.generation_count {
            out.push((
                format!("interp{ii}.gen{i}"),
                gc + g.generations + i * g.generation_stride,
            ));
        }
        out.push((format!("interp{ii}.permanent"), gc + g.permanent));
    }
    out
}

fn walk_once(view: &mut View, py: &Python, limits: &WalkLimits, out: &mut GcObjects) {
    for (label, head) in heads(py) {
        let before = out.objects.len();
        let end = walk_list(view, py, head, limits.max_nodes, &mut out.objects);
        out.lists
            .push((label.clone(), (out.objects.len() - before) as u64));
        if let ListEnd::Broken = end {
            out.broken.push(label);
        }
    }
}

/// Per-list object counts without keeping the objects, for a census that found the tracked
/// objects another way (`tracked` of them): lists are walked up to `budget` nodes each, and
/// when exactly one list is longer (the old generation, typically) its count is what remains.
/// Several long lists are walked in full.
///
/// A busy target changes its lists faster than they can be read whole. The census does not
/// depend on these counts, so a list the target tore is not re-read until it holds still: it
/// gets another attempt, then an estimate (the nodes walked before the tear; the largest such
/// list gets what remains of `tracked`) and is named in `approximate`, never in `broken`.
pub fn count_lists(view: &mut View, py: &Python, tracked: u64, budget: u64) -> GcObjects {
    let mut out = GcObjects::default();
    for attempt in 1..=COUNT_ATTEMPTS {
        out = count_lists_once(view, py, tracked, budget);
        out.attempts = attempt;
        if out.broken.is_empty() && !collecting(view, py) {
            return out;
        }
        // A list changed under the walk: read it again, not from the cache.
        view.forget();
    }
    // Still torn: estimates. The walked prefix of each torn list is a lower bound; the largest
    // torn list takes what the others leave of the tracked total (it is mostly the old
    // generation, whose length the young ones' churn does not change much).
    let torn = std::mem::take(&mut out.broken);
    if let Some(big) = out
        .lists
        .iter()
        .enumerate()
        .filter(|(_, (label, _))| torn.contains(label))
        .max_by_key(|(_, (_, n))| *n)
        .map(|(i, _)| i)
    {
        let others: u64 = (0..out.lists.len())
            .filter(|&i| i != big)
            .map(|i| out.lists[i].1)
            .sum();
        out.lists[big].1 = out.lists[big].1.max(tracked.saturating_sub(others));
    }
    out.approximate = torn;
    out
}

/// Walks of the GC lists a complete census makes before it settles for estimates.
const COUNT_ATTEMPTS: u32 = 2;

fn count_lists_once(view: &mut View, py: &Python, tracked: u64, budget: u64) -> GcObjects {
    let mut out = GcObjects {
        during_collection: !wait_for_quiet_gc(view, py, WalkLimits::default().collecting_wait),
        ..Default::default()
    };
    let mut long = Vec::new();
    let mut scratch = Vec::new();
    let heads = heads(py);
    for (label, head) in heads.iter().cloned() {
        scratch.clear();
        match walk_list(view, py, head, budget, &mut scratch) {
            ListEnd::Complete => out.lists.push((label, scratch.len() as u64)),
            ListEnd::Broken if scratch.len() as u64 >= budget => {
                long.push(out.lists.len());
                out.lists.push((label, 0));
            }
            ListEnd::Broken => {
                out.lists.push((label.clone(), scratch.len() as u64));
                out.broken.push(label);
            }
        }
    }
    if let [only] = long[..] {
        let others: u64 = out.lists.iter().map(|l| l.1).sum();
        out.lists[only].1 = tracked.saturating_sub(others);
    } else {
        for i in long {
            scratch.clear();
            let (label, head) = (out.lists[i].0.clone(), heads[i].1);
            if let ListEnd::Broken = walk_list(view, py, head, 1 << 30, &mut scratch) {
                out.broken.push(label);
            }
            out.lists[i].1 = scratch.len() as u64;
        }
    }
    out
}

/// GC-tracked objects outside the arenas: each is reached from a list head or from a tracked
/// object in an arena whose `_gc_next` leaves the arenas (`exits`: that object's GC head and
/// the node it links to); chains of outside nodes are followed until they come back into an
/// arena or to a head. Each step must be linked back (`_gc_prev`, or the collecting bit while
/// a collection runs): a busy target changes its lists while they are read, and a chain it has
/// cut is not followed into memory it may have freed. Objects past a cut are still found by
/// the referent pass. Returns object addresses.
pub fn outside_objects(
    view: &mut View,
    py: &Python,
    exits: &[(u64, u64)],
    in_arenas: impl Fn(u64) -> bool,
) -> Vec<u64> {
    let gc_head = py.layout.gc_head_size;
    let heads: Vec<u64> = heads(py).into_iter().map(|h| h.1).collect();
    let mut starts: Vec<(u64, u64)> = heads
        .iter()
        .filter_map(|&h| view.u64(h).map(|n| (h, n & !3)))
        .collect();
    starts.extend_from_slice(exits);
    let mut seen = rustc_hash::FxHashSet::default();
    let mut out = Vec::new();
    // Bounded: corrupted links cannot make this spin.
    let mut budget = 1u64 << 26;
    for (from, start) in starts {
        let (mut prev, mut node) = (from, start);
        while budget > 0
            && node != 0
            && node.is_multiple_of(8)
            && !heads.contains(&node)
            && !in_arenas(node)
            && !seen.contains(&node)
        {
            budget -= 1;
            let Ok(b) = view.get(node, GC_HEAD_LINKS) else {
                break;
            };
            let (next, back) = (b.u64_at(0), b.u64_at(GC_PREV));
            if back & !3 != prev && back & 2 == 0 {
                break;
            }
            seen.insert(node);
            out.push(node + gc_head);
            prev = node;
            node = next & !3;
        }
    }
    out
}

fn walk_list(
    view: &mut View,
    py: &Python,
    head: u64,
    max_nodes: u64,
    objects: &mut Vec<u64>,
) -> ListEnd {
    let gc_head = py.layout.gc_head_size;
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
        let Ok(b) = view.get(node, GC_HEAD_LINKS) else {
            return ListEnd::Broken;
        };
        let (next, back) = (b.u64_at(0) & !3, b.u64_at(GC_PREV) & !3);
        if back != prev {
            return ListEnd::Broken;
        }
        objects.push(node + gc_head);
        prev = node;
        node = next;
    }
    ListEnd::Complete
}
