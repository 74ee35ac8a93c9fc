//! C containers whose contents live where a word-by-word scan of the object cannot see them
//! (deque blocks are malloc'ed outside the object) or whose fields must be named (partial,
//! lru_cache, thread locals), and weak references, which hold nothing.
//!
//! A type is recognised by the tp_name of the nearest base we model (subclasses inherit its
//! layout and add their own slots after its basicsize); offsets come from the `Layout`'s
//! `ContainerFields`.

use crate::heap::objects::type_info::TypeInfo;
pub use crate::heap::objects::type_info::{Container, NAMED};
use crate::process::{Bytes, MemoryExt, View};
use crate::python::frames_layout::StackTop;
use crate::python::layout::{FrameSizing, GenCode, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

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
    // The header again, from the process itself (the view may hold it from before the blocks
    // were read): a running target that changed the deque meanwhile gave items of two moments.
    if let Ok(now) = view.memory().bytes(obj, head_len as usize) {
        if now != h {
            CHANGED_WHILE_READ.fetch_add(1, Ordering::Relaxed);
        }
    }
    out
}

/// Deques found changed while their items were read (their header differed after), since
/// the last `take_changed_while_read`: `why` says so rather than print a count of two moments
/// as if exact. Counted across the capture's threads.
static CHANGED_WHILE_READ: AtomicU64 = AtomicU64::new(0);

/// The deques counted as changed while read since the last call, and start again.
pub fn take_changed_while_read() -> u64 {
    CHANGED_WHILE_READ.swap(0, Ordering::Relaxed)
}

/// Where a field is in this layout (None: not in this version).
type FieldAt = fn(&Layout) -> Option<u64>;

/// The named fields a modelled container holds strongly: where each is, and its name.
pub fn fields(c: Container) -> &'static [(FieldAt, &'static str)] {
    match c {
        Container::DefaultDict => &[(
            |l| Some(l.containers.defaultdict_factory),
            "default_factory",
        )],
        Container::Partial => &[
            (|l| Some(l.containers.partial_func), "func"),
            (|l| Some(l.containers.partial_args), "args"),
            (|l| Some(l.containers.partial_keywords), "keywords"),
        ],
        Container::LruCache => &[
            (|l| Some(l.containers.lru_cache), "cache"),
            (|l| Some(l.containers.lru_func), "__wrapped__"),
        ],
        Container::ThreadLocal => &[
            (|l| Some(l.containers.local_dicts), "<per-thread dicts>"),
            (|l| Some(l.containers.local_args), "<args>"),
            (|l| Some(l.containers.local_kw), "<kwargs>"),
            (|l| l.containers.local_key, "<key>"),
            (|l| l.containers.local_callback, "<callback>"),
            (|l| l.containers.local_watchdogs, "<thread watchdogs>"),
        ],
        Container::Weakref => &[(|l| Some(l.containers.weakref_callback), "__callback__")],
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
            let p = view.u64(obj.checked_add(off(l)?)?)?;
            (p != 0).then_some((p, *name))
        })
        .collect()
}

/// Most live frame slots read from one generator.
const MAX_FRAME_SLOTS: u64 = 1 << 16;

/// The live slots (locals, cells, value stack up to its top) of the frame a 3.11+ generator or
/// coroutine embeds, or None where frames are separate objects (3.8-3.10) or the stack top
/// does not read. The frame's slots start at the type's basicsize (`gi_iframe` is the last
/// field and `localsplus` the frame's last); its fixed fields sit just before them.
pub fn generator_slots(
    view: &mut View,
    l: &Layout,
    obj: u64,
    t: &TypeInfo,
) -> Option<Vec<(usize, u64)>> {
    let top = generator_top(view, l, obj, t)?;
    if top == 0 {
        return Some(Vec::new());
    }
    let base = obj.checked_add(t.basicsize)?;
    let raw = view.get(base, (top * 8) as usize).ok()?;
    Some(
        raw.chunks_exact(8)
            .map(|w| w.u64_at(0))
            .enumerate()
            // 3.14+ stack refs carry tag bits: both set is a tagged int, not a pointer.
            .filter(|&(_, w)| w & 3 != 3)
            .map(|(i, w)| (i, w & !3))
            .filter(|&(_, w)| w != 0)
            .collect(),
    )
}

/// The code object a 3.11+ generator's embedded frame runs (None before 3.11: the frame is
/// an object of its own).
pub fn generator_code(view: &mut View, l: &Layout, obj: u64) -> Option<u64> {
    let FrameSizing::Embedded {
        gen_code,
        frame_code,
        ..
    } = l.frame_sizing
    else {
        return None;
    };
    let code = match gen_code {
        GenCode::Field(at) => view.u64(obj.checked_add(at)?)?,
        GenCode::InFrame(at) => view.u64(obj.checked_add(at)?.checked_add(frame_code)?)?,
    };
    Some(code & !7)
}

/// What a suspended 3.11+ coroutine awaits (`cr_await`): the top of its frame's value stack,
/// when the stack holds anything past the code's locals and cells (measured: 3.11–3.13 the
/// last live slot, 3.14+ the one below a null reference). A coroutine suspends only
/// in an await (`await`, `async for`, `async with` all await), which leaves the awaitable on
/// top; generators and async generators also suspend at a plain `yield`, whose stack top is
/// some temporary (a for loop's iterator), so they are not asked.
pub fn coroutine_awaits(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo) -> Option<u64> {
    let FrameSizing::Embedded { nlocalsplus, .. } = l.frame_sizing else {
        return None;
    };
    let top = generator_top(view, l, obj, t)?;
    let code = generator_code(view, l, obj)?;
    let locals = u64::try_from(view.u32(code.checked_add(nlocalsplus)?)? as i32).ok()?;
    if top <= locals {
        return None;
    }
    let base = obj.checked_add(t.basicsize)?;
    // 3.14+ keep a null reference (tag bits only) above the awaitable while suspended: the
    // topmost slot that holds an object is the one awaited.
    for k in (locals..top).rev() {
        let w = view.u64(base.checked_add(k * 8)?)?;
        if w & 3 == 3 {
            return None; // a tagged int: not an awaitable
        }
        if w & !3 != 0 {
            return Some(w & !3);
        }
    }
    None
}

/// How many of a 3.11+ generator's frame slots are live (locals, cells, stack up to its top).
fn generator_top(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo) -> Option<u64> {
    let s = &l.frames.slots;
    let base = obj.checked_add(t.basicsize)?;
    let frame = base.checked_sub(s.localsplus)?;
    let top = match s.stack_top? {
        StackTop::SlotCount(off) => {
            u64::try_from(view.u32(frame.checked_add(off)?)? as i32).ok()?
        }
        StackTop::Pointer(off) => {
            let bytes = view.u64(frame.checked_add(off)?)?.checked_sub(base)?;
            bytes.is_multiple_of(8).then_some(bytes / 8)?
        }
        // 3.8–3.10: the frame is an object of its own, not embedded in the generator.
        StackTop::ObjectPointer(_) | StackTop::ObjectDepth(_) => return None,
    };
    // No size field bounds the slots (a generator's ob_size is not its frame's): a count past
    // any code's, or slots that do not read, fall back to the caller's scan.
    if top > MAX_FRAME_SLOTS {
        return None;
    }
    Some(top)
}
