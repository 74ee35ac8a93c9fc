//! At the end: which recorded objects are still the objects recorded, their sizes, and the
//! stacks they are charged to.

use super::judge::StackJudge;
use super::records::Record;
use super::stats::AllocStats;
use crate::heap::gc::young::{
    block_fingerprint, fingerprint, separate_values, TypeBitsCache, AT_GC_HEAD, AT_OBJECT,
    NODE_READ, VALUES_READ,
};
use crate::heap::objects::sizes::getsizeof;
use crate::process::{Bytes, View};
use crate::python::Layout;
use std::collections::HashMap;

/// Per stack, the (bytes, objects) of the survivors among `latest`, the latest record at
/// each address. Survivors on stacks the judge finds cut off are counted apart, not charged.
pub(super) fn by_stack(
    view: &mut View,
    l: &Layout,
    types: &mut TypeBitsCache,
    latest: Vec<Record>,
    judge: &StackJudge,
    stats: &mut AllocStats,
) -> HashMap<u32, (u64, u64)> {
    let mut per_stack: HashMap<u32, (u64, u64)> = HashMap::new();
    for r in latest {
        let Some(bytes) = survivor_size(view, l, types, &r, stats) else {
            continue;
        };
        stats.survivors += 1;
        stats.survivor_bytes += bytes;
        if !judge.is_whole(r.stack) {
            stats.cut_survivors += 1;
            stats.cut_survivor_bytes += bytes;
            continue;
        }
        let e = per_stack.entry(r.stack).or_default();
        e.0 += bytes;
        e.1 += 1;
    }
    per_stack
}

/// `sys.getsizeof` of a recorded object when it is still the object we recorded.
fn survivor_size(
    view: &mut View,
    l: &Layout,
    types: &mut TypeBitsCache,
    r: &Record,
    stats: &mut AllocStats,
) -> Option<u64> {
    if r.block > 0 {
        return untracked_survivor_size(view, l, types, r, stats);
    }
    let node = r.obj - l.gc_head_size;
    let Ok(b) = view.get(node - AT_GC_HEAD as u64, NODE_READ) else {
        stats.dead_unreadable += 1;
        return None;
    };
    let b = b.to_vec();
    let refcnt = b.u64_at(AT_OBJECT) as u32;
    let type_ptr = b.u64_at(AT_OBJECT + l.ob_type as usize);
    // A freed object has refcount 0 (its memory may not be reused yet).
    if type_ptr != r.type_ptr || refcnt == 0 {
        stats.dead_type_changed += 1;
        return None;
    }
    let bits = types.known(r.type_ptr)?;
    let values = separate_values(&b, l, bits)
        .and_then(|v| view.get(v, VALUES_READ).ok())
        .map(<[u8]>::to_vec);
    if fingerprint(&b, values.as_deref(), l, bits) != r.fingerprint {
        stats.dead_fingerprint_changed += 1;
        return None;
    }
    let info = types.types.get(view, l, r.type_ptr)?.clone();
    Some(getsizeof(view, l, r.obj, &info).unwrap_or(info.basicsize + info.preheader))
}

/// `survivor_size` of an object recorded from its block (a head pool's, or a free-threaded
/// build's mimalloc block).
fn untracked_survivor_size(
    view: &mut View,
    l: &Layout,
    types: &mut TypeBitsCache,
    r: &Record,
    stats: &mut AllocStats,
) -> Option<u64> {
    let Ok(b) = view.get(r.obj, r.block as usize) else {
        stats.dead_unreadable += 1;
        return None;
    };
    let b = b.to_vec();
    if b.u64_at(l.ob_type as usize) != r.type_ptr || !l.live_refcount(&b) {
        stats.dead_type_changed += 1;
        return None;
    }
    let bits = types.known(r.type_ptr)?;
    if block_fingerprint(&b, l, bits) != r.fingerprint {
        stats.dead_fingerprint_changed += 1;
        return None;
    }
    let info = types.types.get(view, l, r.type_ptr)?.clone();
    Some(getsizeof(view, l, r.obj, &info).unwrap_or(info.basicsize))
}
