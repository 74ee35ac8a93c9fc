//! What a running function holds: the local variables, cells and value-stack slots of one
//! frame, read from outside. Objects held only by a sleeping function's locals are reachable
//! from no module, so every thread's frames are retention roots (see `crate::analysis::retention`).
//!
//! The slots sit right after the frame's fixed fields; their names come from the code object
//! (`SlotLayout` says where, per version). Everything read is hostile input: name tuples must be
//! tuples of bounded length, the stack top must fall inside the frame's slots, and each value is
//! only a candidate that the caller validates against the census's objects.

use crate::heap::frames::stacks::FrameAt;
use crate::process::{Bytes, View};
use crate::python::frames_layout::{SlotNames, StackTop};
use crate::python::Layout;

/// Most named slots (locals + cells + frees) we read from one frame.
const MAX_NAMED: u64 = 1 << 16;
/// Most value-stack slots above the named ones (`co_stacksize` is far smaller in practice).
const MAX_STACK: u64 = 4096;

/// How a slot is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// A local variable, cell or free variable, named by this str object.
    Named(u64),
    /// A value-stack entry (an intermediate value: a call's arguments, a loop's iterator).
    Stack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The object pointer held (tag bits removed); unvalidated.
    pub value: u64,
    pub kind: SlotKind,
}

/// The frame's non-empty slots, appended to `out`. `tuple_type` is `PyTuple_Type` (0: unknown,
/// not checked). Returns false when the frame's names or slots could not be read.
pub fn frame_slots(
    view: &mut View,
    l: &Layout,
    tuple_type: u64,
    frame: FrameAt,
    out: &mut Vec<Slot>,
) -> bool {
    let s = l.frames.slots;
    let Some(names) = slot_names(view, l, tuple_type, frame.code) else {
        return false;
    };
    let named = names.len() as u64;
    let Some(base) = frame.addr.checked_add(s.localsplus) else {
        return false;
    };
    let live = stack_top(view, s.stack_top, frame.addr, base, named)
        .filter(|&top| top >= named && top - named <= MAX_STACK)
        .unwrap_or(named);
    if live == 0 {
        return true;
    }
    let Ok(raw) = view.get(base, (live * 8) as usize) else {
        return false;
    };
    for (i, w) in raw.chunks_exact(8).map(|w| w.u64_at(0)).enumerate() {
        // 3.13t/3.14 stack refs carry tag bits: both set is a tagged int, not a pointer.
        if w & 3 == 3 {
            continue;
        }
        let value = w & !3;
        if value == 0 {
            continue;
        }
        let kind = names
            .get(i)
            .map_or(SlotKind::Stack, |&n| SlotKind::Named(n));
        out.push(Slot { value, kind });
    }
    true
}

/// The names `code` gives its frame's slots, in slot order (str pointers, unvalidated): locals,
/// cells, frees. None when a name tuple does not read as one.
pub fn slot_names(view: &mut View, l: &Layout, tuple_type: u64, code: u64) -> Option<Vec<u64>> {
    let mut names = Vec::new();
    let tuples: &[u64] = match &l.frames.slots.names {
        SlotNames::LocalsPlus { names } => std::slice::from_ref(names),
        SlotNames::Split {
            varnames,
            cellvars,
            freevars,
        } => &[*varnames, *cellvars, *freevars],
    };
    for &off in tuples {
        if !tuple_items(view, l, tuple_type, code.wrapping_add(off), &mut names) {
            return None;
        }
    }
    Some(names)
}

/// Items of the tuple whose pointer is stored at `at`, appended to `out` (an empty or NULL
/// field adds nothing). False when it is not a readable tuple of sane length.
fn tuple_items(view: &mut View, l: &Layout, tuple_type: u64, at: u64, out: &mut Vec<u64>) -> bool {
    let Some(tuple) = view.u64(at) else {
        return false;
    };
    if tuple == 0 {
        return true;
    }
    if !tuple.is_multiple_of(8) {
        return false;
    }
    if tuple_type != 0 && view.u64(tuple.wrapping_add(l.ob_type)) != Some(tuple_type) {
        return false;
    }
    let Some(n) = view.u64(tuple.wrapping_add(l.ob_size)) else {
        return false;
    };
    if n > MAX_NAMED || out.len() as u64 + n > MAX_NAMED {
        return false;
    }
    match view.get(tuple.wrapping_add(l.tuple_items), (n * 8) as usize) {
        Ok(raw) => {
            out.extend(raw.chunks_exact(8).map(|w| w.u64_at(0)));
            true
        }
        Err(_) => false,
    }
}

/// Live slots from the first one, as the frame's stack top says (None: unknown, torn, or a
/// 3.8–3.10 frame that runs). `named`: the locals, cells and frees before the value stack.
fn stack_top(
    view: &mut View,
    top: Option<StackTop>,
    frame: u64,
    base: u64,
    named: u64,
) -> Option<u64> {
    match top? {
        StackTop::SlotCount(off) => {
            let n = view.u32(frame.checked_add(off)?)? as i32;
            u64::try_from(n).ok()
        }
        StackTop::Pointer(off) | StackTop::ObjectPointer(off) => {
            let p = view.u64(frame.checked_add(off)?)?;
            let bytes = p.checked_sub(base)?;
            bytes.is_multiple_of(8).then_some(bytes / 8)
        }
        StackTop::ObjectDepth(off) => {
            let n = view.u32(frame.checked_add(off)?)? as i32;
            named.checked_add(u64::try_from(n).ok()?)
        }
    }
}
