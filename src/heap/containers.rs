//! C containers whose contents live where a word-by-word scan of the object cannot see them
//! (deque blocks are malloc'ed outside the object) or whose fields must be named (partial,
//! lru_cache, thread locals), and weak references, which hold nothing.
//!
//! A type is recognised by the tp_name of the nearest base we model (subclasses inherit its
//! layout and add their own slots after its basicsize); offsets come from the `Layout`'s
//! `ContainerFields`.

use crate::process::{Bytes, View};
use crate::python::layout::Layout;

/// Which modelled C base a type has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Nothing modelled: the body is scanned conservatively.
    None,
    /// The builtin list, dict, set: items followed exactly (`SizeRule` says which).
    Builtin,
    Deque,
    DefaultDict,
    Partial,
    LruCache,
    ThreadLocal,
    /// weakref.ref, proxies and their subclasses (KeyedRef, WeakMethod): the referent is not
    /// held; the callback and subclass slots are.
    Weakref,
}

/// tp_name of each modelled base. Weak reference types were renamed in 3.10.
pub const NAMED: &[(&str, Container)] = &[
    ("collections.deque", Container::Deque),
    ("collections.defaultdict", Container::DefaultDict),
    ("functools.partial", Container::Partial),
    ("functools._lru_cache_wrapper", Container::LruCache),
    ("_thread._local", Container::ThreadLocal),
    ("weakref.ReferenceType", Container::Weakref),
    ("weakref.ProxyType", Container::Weakref),
    ("weakref.CallableProxyType", Container::Weakref),
    ("weakref", Container::Weakref),
    ("weakproxy", Container::Weakref),
    ("weakcallableproxy", Container::Weakref),
];

/// Item slots per deque block; a block is a left link, the slots, a right link.
const DEQUE_BLOCKLEN: u64 = 64;
const DEQUE_BLOCK_BYTES: u64 = 8 + DEQUE_BLOCKLEN * 8 + 8;
const DEQUE_RIGHTLINK: usize = 8 + DEQUE_BLOCKLEN as usize * 8;
/// Longest deque we walk.
const MAX_DEQUE_LEN: u64 = 1 << 26;

/// The items of a deque, left to right: `len` slots from leftblock[leftindex], following the
/// right links. A block that does not read, or a chain that ends early, stops the walk.
pub fn deque_items(view: &mut View, l: &Layout, obj: u64) -> Vec<u64> {
    let c = &l.containers;
    let head_len = c.deque_rightindex.max(l.fields.deque_leftindex) + 8;
    let Ok(h) = view.get(obj, head_len as usize).map(|b| b.to_vec()) else {
        return Vec::new();
    };
    let len = h.i64_at(l.ob_size as usize);
    let leftindex = h.u64_at(l.fields.deque_leftindex as usize);
    let rightblock = h.u64_at(c.deque_rightblock as usize);
    let mut block = h.u64_at(c.deque_leftblock as usize);
    if len <= 0 || len as u64 > MAX_DEQUE_LEN || leftindex >= DEQUE_BLOCKLEN {
        return Vec::new();
    }
    let mut remaining = len as u64;
    let mut out = Vec::with_capacity(remaining as usize);
    let mut index = leftindex;
    let max_blocks = (leftindex + remaining).div_ceil(DEQUE_BLOCKLEN);
    for _ in 0..max_blocks {
        if block == 0 || !block.is_multiple_of(8) {
            break;
        }
        let Ok(b) = view.get(block, DEQUE_BLOCK_BYTES as usize) else {
            break;
        };
        let take = (DEQUE_BLOCKLEN - index).min(remaining);
        for i in index..index + take {
            out.push(b.u64_at(8 + 8 * i as usize));
        }
        remaining -= take;
        if remaining == 0 || block == rightblock {
            break;
        }
        block = b.u64_at(DEQUE_RIGHTLINK);
        index = 0;
    }
    out
}

type FieldAt = fn(&Layout) -> u64;

/// The named fields a modelled container holds strongly: where each is, and its name.
pub fn fields(c: Container) -> &'static [(FieldAt, &'static str)] {
    match c {
        Container::DefaultDict => &[(|l| l.containers.defaultdict_factory, "default_factory")],
        Container::Partial => &[
            (|l| l.containers.partial_func, "func"),
            (|l| l.containers.partial_args, "args"),
            (|l| l.containers.partial_keywords, "keywords"),
        ],
        Container::LruCache => &[
            (|l| l.containers.lru_cache, "cache"),
            (|l| l.containers.lru_func, "__wrapped__"),
        ],
        Container::ThreadLocal => &[(|l| l.containers.local_dicts, "<per-thread dicts>")],
        Container::Weakref => &[(|l| l.containers.weakref_callback, "__callback__")],
        _ => &[],
    }
}

/// (pointer, name) of each named field of `obj`, zero pointers left out.
pub fn field_values(
    view: &mut View,
    l: &Layout,
    obj: u64,
    c: Container,
) -> Vec<(u64, &'static str)> {
    fields(c)
        .iter()
        .filter_map(|(off, name)| {
            let p = view.u64(obj.checked_add(off(l))?)?;
            (p != 0).then_some((p, *name))
        })
        .collect()
}
