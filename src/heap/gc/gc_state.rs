//! The collector's state, read from outside: a library that calls gc.disable() turns every
//! reference cycle into a leak, and uncollectable garbage piles up in gc.garbage.

use crate::heap::gc::gc_lists::GcObjects;
use crate::heap::objects::types::TypeTable;
use crate::process::{Bytes, View};
use crate::python::Python;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generation {
    pub threshold: u32,
    /// gc.get_count(): for generation 0 allocations minus deallocations since the last
    /// collection; for older ones, collections of the younger generation.
    pub count: u32,
    /// Objects on this generation's list now (None on free-threaded builds: no lists).
    pub objects: Option<u64>,
    pub collections: Option<u64>,
    pub collected: Option<u64>,
    pub uncollectable: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcState {
    pub enabled: bool,
    /// A collection is running right now.
    pub collecting: bool,
    pub generations: Vec<Generation>,
    /// Objects in the permanent generation (gc.freeze()).
    pub frozen: u64,
    /// Free-threaded builds: every GC-tracked object, frozen ones included, found in the
    /// mimalloc heaps (the collector keeps no lists there; gc.get_objects() lists the unfrozen).
    pub tracked: Option<u64>,
    /// len(gc.garbage) and the types in it.
    pub garbage: u64,
    pub garbage_types: Vec<(String, u64)>,
}

pub fn read(
    view: &mut View,
    py: &Python,
    types: &mut TypeTable,
    walked: &GcObjects,
    heaps: Option<&crate::heap::mimalloc::MimallocStats>,
) -> Option<GcState> {
    let l = &py.layout;
    let gc = py.gc_state(*py.interpreters.first()?);
    let raw = view.get(gc, l.gc.size as usize).ok()?.to_vec();
    let g = &l.gc;
    let listed = |label: &str| {
        walked
            .lists
            .iter()
            .filter(|(name, _)| name.ends_with(label))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    let generations = (0..g.generation_count)
        .map(|i| {
            let at = (g.generations + i * g.generation_stride) as usize;
            let stat = |k: u64| g.stats.map(|s| raw.u64_at((s + i * 24 + k * 8) as usize));
            Generation {
                threshold: raw.u32_at(at + 16),
                count: raw.u32_at(at + 20),
                objects: heaps.is_none().then(|| listed(&format!("gen{i}"))),
                collections: stat(0),
                collected: stat(1),
                uncollectable: stat(2),
            }
        })
        .collect();
    let garbage_list = raw.u64_at(g.garbage as usize);
    let (garbage, garbage_types) = garbage_contents(view, py, types, garbage_list);
    Some(GcState {
        enabled: raw.u32_at(g.enabled as usize) != 0,
        collecting: raw.u32_at(g.collecting as usize) != 0,
        generations,
        frozen: heaps.map_or_else(|| listed("permanent"), |h| h.gc_frozen),
        tracked: heaps.map(|h| h.gc_tracked),
        garbage,
        garbage_types,
    })
}

fn garbage_contents(
    view: &mut View,
    py: &Python,
    types: &mut TypeTable,
    list: u64,
) -> (u64, Vec<(String, u64)>) {
    let l = &py.layout;
    if list == 0 {
        return (0, Vec::new());
    }
    let Ok(h) = view.get(list, 40).map(|b| b.to_vec()) else {
        return (0, Vec::new());
    };
    let n = h.u64_at(l.ob_size as usize).min(1 << 24);
    let items = h.u64_at(l.list_items as usize);
    let ptrs: Vec<u64> = view
        .get(items, (n * 8) as usize)
        .map(|b| b.chunks_exact(8).map(|w| w.u64_at(0)).collect())
        .unwrap_or_default();
    let mut by_type: HashMap<String, u64> = HashMap::default();
    for p in ptrs {
        let name = view
            .u64(p.wrapping_add(l.ob_type))
            .and_then(|tp| types.get(view, l, tp))
            .map_or_else(|| "?".to_string(), |t| t.name.to_string());
        *by_type.entry(name).or_default() += 1;
    }
    let mut v: Vec<(String, u64)> = by_type.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    (n, v)
}
