//! Labelled references out of an object: what a person would call them (a module global, a
//! class attribute, an instance attribute, a dict key, a list index). The retention flamegraph
//! and `why` walk these from the roots; the census's referent pass only needs the targets.

pub mod thread_roots;

use crate::heap::frames::frame_slots::{frame_slots, slot_names, SlotKind};
use crate::heap::frames::stacks::FrameAt;
use crate::heap::objects::containers::{
    coroutine_awaits, deque_items, field_values, generator_code, generator_slots, Container,
};
use crate::heap::objects::native;
use crate::heap::objects::pyobj::{body_words, dict_items, dict_keys, managed_attrs, ManagedAttrs};
use crate::heap::objects::types::{SizeRule, TypeInfo};
use crate::process::{Bytes, View};
use crate::python::layout::{flags, FrameSizing, Layout};

/// Dicts larger than this are shown as one `[…]` key: per-key frames would drown the picture,
/// and keys are user data.
pub const MAX_NAMED_KEYS: usize = 32;
const MAX_ITEMS: u64 = 1 << 26;
/// Item pointers read at once.
const ITEMS_PER_READ: u64 = 1 << 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// A name in a namespace (module global, class or instance attribute): a str pointer.
    Attr(u64),
    /// A str key of a small dict (a str pointer).
    Key(u64),
    /// A key of a large dict, or a non-str key.
    AnyKey,
    /// The key object itself.
    KeyObject,
    /// An item of a sequence or set.
    Item,
    /// A known field.
    Field(&'static str),
    /// A local variable (or cell) of a frame a generator, a coroutine or a frame object
    /// holds: a str pointer, the name its code gives the slot.
    Local(u64),
    /// A pointer found in the object's body.
    Ref,
}

/// An object's type: its instances own it (heap types) or are the only way to it (static
/// types no module exports: `dict_keys`, `_asyncio.FutureIter`). Followed after every exact
/// edge, so a class is charged to the module that defines it, not to its first instance.
pub const CLASS: Label = Label::Field("__class__");

impl Label {
    /// Edges a walk follows only once every exact edge has been: guesses and types. A held
    /// frame's locals are named but weigh as the value-stack words beside them: both are read
    /// as the frame stood at one moment, and the tree and the dominators do not change with
    /// the names.
    pub fn deferred(self) -> bool {
        matches!(self, Label::Ref | Label::Local(_)) || self == CLASS
    }
}

/// Where `edges` puts what it finds, as (target, label), in order: a list, or a consumer that
/// takes each edge as it comes (a heap-graph capture, which so never holds the items of a
/// million-item list as labelled pairs at 24 bytes each).
pub trait Edges {
    fn push(&mut self, edge: (u64, Label));

    fn extend(&mut self, edges: impl IntoIterator<Item = (u64, Label)>) {
        for e in edges {
            self.push(e);
        }
    }
}

impl Edges for Vec<(u64, Label)> {
    fn push(&mut self, edge: (u64, Label)) {
        Vec::push(self, edge);
    }

    fn extend(&mut self, edges: impl IntoIterator<Item = (u64, Label)>) {
        Extend::extend(self, edges);
    }
}

/// Edges of `obj` (of type `t`), appended to `out` as (target, label). Long: one arm per size
/// rule, kept together so that the rules read as one table.
pub fn edges(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo, out: &mut impl Edges) {
    out.push((t.addr, CLASS));
    match t.rule {
        SizeRule::Str | SizeRule::Int => return,
        SizeRule::List => {
            // The two fields copied out (no buffer per list: millions of lists).
            let Ok((array, len)) = view.get(obj, (l.list_items + 8) as usize).map(|h| {
                (
                    h.u64_at(l.list_items as usize),
                    h.u64_at(l.ob_size as usize),
                )
            }) else {
                return;
            };
            items(view, array, len, out);
            container_rest(view, l, obj, t, out);
            return;
        }
        SizeRule::Dict | SizeRule::OrderedDict => {
            dict_edges(view, l, obj, false, out);
            container_rest(view, l, obj, t, out);
            return;
        }
        SizeRule::Deque => {
            out.extend(
                deque_items(view, l, obj)
                    .into_iter()
                    .map(|p| (p, Label::Item)),
            );
            container_rest(view, l, obj, t, out);
            return;
        }
        SizeRule::Set => {
            let Ok((mask, table)) = view.get(obj, (l.set_table + 8) as usize).map(|h| {
                (
                    h.u64_at(l.set_mask as usize),
                    h.u64_at(l.set_table as usize),
                )
            }) else {
                return;
            };
            if mask < MAX_ITEMS {
                // `setentry`: key, hash (16 bytes on every version).
                if let Ok(raw) = view.get(table, ((mask + 1) * 16) as usize) {
                    out.extend(raw.chunks_exact(16).map(|e| (e.u64_at(0), Label::Item)));
                }
            }
            container_rest(view, l, obj, t, out);
            return;
        }
        SizeRule::Type => {
            // Class attributes, named; then the rest of the type object (mro, bases, ...).
            if let Some(d) = view
                .u64(obj.wrapping_add(l.type_.tp_dict))
                .filter(|&d| d != 0)
            {
                out.push((d, Label::Field("__dict__")));
                dict_edges(view, l, d, true, out);
            }
        }
        SizeRule::NdArray => {
            // An object-dtype array's elements; the rest of the body (base, descr) below.
            let items = native::object_items(view, l, obj);
            out.extend(items.into_iter().map(|p| (p, Label::Item)));
        }
        _ => {}
    }
    if t.flags & flags::TUPLE_SUBCLASS != 0 {
        let n = view.u64(obj.wrapping_add(l.ob_size)).unwrap_or(0);
        items(view, obj + l.tuple_items, n, out);
        return;
    }
    if let Some(closure_off) = function_closure(l, t) {
        if let Some(c) = view.u64(obj.wrapping_add(closure_off)).filter(|&c| c != 0) {
            out.push((c, Label::Field("__closure__")));
        }
    }
    if &*t.name == "cell" {
        if let Some(c) = view
            .u64(obj.wrapping_add(l.fields.cell_contents))
            .filter(|&c| c != 0)
        {
            out.push((c, Label::Field("cell_contents")));
        }
        return;
    }
    if &*t.name == "module" {
        if let Some(d) = view
            .u64(obj.wrapping_add(l.fields.module_dict))
            .filter(|&d| d != 0)
        {
            out.push((d, Label::Field("__dict__")));
            dict_edges(view, l, d, true, out);
        }
        return;
    }
    if t.container == Container::Generator {
        generator_edges(view, l, obj, t, out);
        return;
    }
    if t.rule == SizeRule::Frame && t.flags & flags::HEAPTYPE == 0 {
        frame_object_edges(view, l, obj, t, out);
        return;
    }
    if t.rule == SizeRule::Code {
        // A code object's object fields end with its line table. What follows holds no object
        // (caches behind plain pointers, executor and monitoring data, co_extra, ints), and a
        // field CPython leaves unset keeps a stale word: one pointed at a live bytes object
        // another object holds, and took it from its holder's retained size.
        fields_below(view, l, obj, t, l.frames.code.linetable + 8, out);
        return;
    }
    if t.container != Container::None {
        container_rest(view, l, obj, t, out);
        return;
    }
    instance_dict(view, l, obj, t, out);
    if t.scan_body {
        body(view, l, obj, t, l.header_size, out);
    }
}

/// What a modelled C container holds besides its items: its named fields, its `__dict__`, and
/// the slots a Python subclass added after the base's fields (scanned word by word). The
/// base's other words are never guessed at: for a weak reference they include its referent.
fn container_rest(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo, out: &mut impl Edges) {
    for (p, name) in field_values(view, l, obj, t.container) {
        out.push((p, Label::Field(name)));
    }
    instance_dict(view, l, obj, t, out);
    if t.flags & flags::HEAPTYPE != 0 && t.basicsize > t.own_from {
        body(view, l, obj, t, t.own_from, out);
    }
}

/// A generator or coroutine: its fields and its frame's fixed fields word by word, then only
/// the live slots of its frame (3.11+; before, the frame is an object of its own). The live
/// slots include what it awaits (the sub-coroutine sits on its value stack).
fn generator_edges(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo, out: &mut impl Edges) {
    let Some(slots) = generator_slots(view, l, obj, t) else {
        // 3.8–3.10: the frame is an object of its own, which the generator's first field
        // holds; named as Python names it (its locals are then named by the frame's edges).
        if let FrameSizing::FrameObject { gen_frame, .. } = l.frame_sizing {
            let name = match &*t.name {
                "coroutine" => "cr_frame",
                "async_generator" => "ag_frame",
                _ => "gi_frame",
            };
            let frame = Some((gen_frame, name));
            words(view, l, obj, t, l.header_size..u64::MAX, frame, out);
        } else {
            body(view, l, obj, t, l.header_size, out);
        }
        return;
    };
    words(view, l, obj, t, l.header_size..t.basicsize, None, out);
    // What a suspended coroutine awaits, named as Python names it; the other slots stay
    // guesses by position (their names are the code's, not the object's).
    let awaits = if &*t.name == "coroutine" {
        coroutine_awaits(view, l, obj, t)
    } else {
        None
    };
    // The locals' names, from the code the frame runs (none when they do not read: the
    // slots stay unnamed).
    let names = generator_code(view, l, obj)
        .and_then(|code| slot_names(view, l, 0, code))
        .unwrap_or_default();
    let mut named = false;
    for (i, w) in slots {
        if !named && Some(w) == awaits {
            named = true;
            out.push((w, Label::Field("cr_await")));
        } else {
            let label = names.get(i).map_or(Label::Ref, |&n| Label::Local(n));
            out.push((w, label));
        }
    }
}

/// A frame object: its own fields, then only the live slots of the frame it holds. The rest of
/// its slot array is dead value-stack entries (3.8-3.10) or, in a 3.11+ frame object that
/// shows a frame living elsewhere, memory never written: stale pointers to live objects there
/// would give them paths that do not exist.
fn frame_object_edges(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo, out: &mut impl Edges) {
    let localsplus = l.frames.slots.localsplus;
    let (fields_end, frame) = match l.frame_sizing {
        // 3.8-3.10: the frame object is the frame.
        FrameSizing::FrameObject { .. } => (localsplus, Some(obj)),
        // 3.11+: the interpreter frame embedded after the object's fields is its own only
        // when `f_frame` points at it.
        FrameSizing::Embedded { frame_ptr, .. } => {
            let Some(embedded) = (obj + t.basicsize).checked_sub(localsplus) else {
                return;
            };
            let owned = view.u64(obj.wrapping_add(frame_ptr)) == Some(embedded);
            if owned {
                (t.basicsize, Some(embedded))
            } else {
                (t.basicsize - localsplus, None)
            }
        }
    };
    fields_below(view, l, obj, t, fields_end, out);
    let Some(frame) = frame else {
        return;
    };
    let Some(code) = view.u64(frame.wrapping_add(l.frames.frame.code)) else {
        return;
    };
    let mut slots = Vec::new();
    let at = FrameAt {
        addr: frame,
        code: code & !7,
    };
    frame_slots(view, l, 0, at, &mut slots);
    out.extend(slots.into_iter().map(|s| (s.value, slot_label(s.kind))));
}

/// A frame slot's edge: its local's name, or an unnamed value-stack word.
fn slot_label(kind: SlotKind) -> Label {
    match kind {
        SlotKind::Named(name) => Label::Local(name),
        SlotKind::Stack => Label::Ref,
    }
}

/// The words of an object's body from its header up to offset `end` (its weak-reference list
/// aside), as conservative edges.
fn fields_below(
    view: &mut View,
    l: &Layout,
    obj: u64,
    t: &TypeInfo,
    end: u64,
    out: &mut impl Edges,
) {
    words(view, l, obj, t, l.header_size..end, None, out);
}

/// Where a function keeps its closure cells (3.10 moved the field).
fn function_closure(l: &Layout, t: &TypeInfo) -> Option<u64> {
    (&*t.name == "function" && t.flags & flags::HEAPTYPE == 0).then_some(l.fields.function_closure)
}

fn items(view: &mut View, at: u64, n: u64, out: &mut impl Edges) {
    if n == 0 || n > MAX_ITEMS {
        return;
    }
    // In reads of 1 MiB (as fast per byte as one read; a huge list's array is not copied
    // whole). A chunk that cannot be read ends the items.
    let mut done = 0;
    while done < n {
        let k = (n - done).min(ITEMS_PER_READ);
        let Ok(raw) = view.get(at.wrapping_add(done * 8), (k * 8) as usize) else {
            return;
        };
        out.extend(raw.chunks_exact(8).map(|w| (w.u64_at(0), Label::Item)));
        done += k;
    }
}

/// Entries of a dict as edges. `namespace`: the keys are attribute names.
fn dict_edges(view: &mut View, l: &Layout, d: u64, namespace: bool, out: &mut impl Edges) {
    let Some(entries) = dict_items(view, l, d) else {
        return;
    };
    let small = entries.len() <= MAX_NAMED_KEYS;
    for (k, v) in entries {
        let label = match (namespace, small) {
            (true, _) => Label::Attr(k),
            (false, true) => Label::Key(k),
            (false, false) => Label::AnyKey,
        };
        out.push((v, label));
        out.push((k, Label::KeyObject));
    }
}

/// Instance attributes: a managed or `__dict__` dict, or (3.11+) values stored without one.
/// Static types with a `__dict__` slot (functools.partial, OrderedDict) keep it at their
/// tp_dictoffset like heap types do.
fn instance_dict(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo, out: &mut impl Edges) {
    let attrs = managed_attrs(view, l, obj, t);
    let (dict, values) = (attrs.dict, attrs.values);
    if dict != 0 || values != 0 {
        if dict != 0 {
            out.push((dict, Label::Field("__dict__")));
            dict_edges(view, l, dict, true, out);
        }
        if values != 0 {
            split_values(view, l, t, attrs, out);
        }
        return;
    }
    if t.rule == SizeRule::Type {
        return; // a class's tp_dict, already followed as its namespace
    }
    let off = view
        .u64(t.addr.wrapping_add(l.type_.tp_dictoffset))
        .unwrap_or(0) as i64;
    if off > 0 {
        if let Some(d) = view.u64(obj.wrapping_add(off as u64)).filter(|&d| d != 0) {
            out.push((d, Label::Field("__dict__")));
            dict_edges(view, l, d, true, out);
        }
    }
}

/// Attribute values kept in an array whose names are the class's cached (shared) keys.
fn split_values(
    view: &mut View,
    l: &Layout,
    t: &TypeInfo,
    attrs: ManagedAttrs,
    out: &mut impl Edges,
) {
    let values = attrs.values;
    let keys = view
        .u64(t.addr.wrapping_add(l.type_.ht_cached_keys))
        .unwrap_or(0);
    if keys == 0 {
        return;
    }
    let Some(k) = dict_keys(view, l, keys) else {
        return;
    };
    let n = attrs.slots(k.nentries).min(4096) as usize;
    // The values copied out (on the stack for the usual few attributes: one instance in
    // three of a heap can be a class instance), then the names read in place.
    let mut few = [0u64; SMALL_VALUES];
    let many: Vec<u64>;
    let vals: &[u64] = match view.get(values, n * 8) {
        Ok(b) if n <= SMALL_VALUES => {
            for (v, w) in few.iter_mut().zip(b.chunks_exact(8)) {
                *v = w.u64_at(0);
            }
            &few[..n]
        }
        Ok(b) => {
            many = b.chunks_exact(8).map(|w| w.u64_at(0)).collect();
            &many
        }
        Err(_) => return,
    };
    let Ok(names) = view.get(keys.wrapping_add(k.entries_at), n * k.entry_size as usize) else {
        return;
    };
    let key_off = if k.entry_size == 24 { 8 } else { 0 };
    for (i, &v) in vals.iter().enumerate() {
        let name = names.u64_at(i * k.entry_size as usize + key_off);
        if name != 0 && v != 0 {
            out.push((v, Label::Attr(name)));
        }
    }
}

/// Split values copied to the stack (more go to the heap).
const SMALL_VALUES: usize = 32;

/// Conservative: every word of the body from offset `from` on that may be a pointer
/// (validated by the caller), except the head of the object's weak reference list: the
/// weakref objects there belong to whoever made them, and hold nothing.
fn body(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo, from: u64, out: &mut impl Edges) {
    words(view, l, obj, t, from..u64::MAX, None, out);
}

/// The words of an object's body at offsets in `within` (its weak-reference list aside), as
/// conservative edges, except the one `named` field (offset, name) known for what it is.
fn words(
    view: &mut View,
    l: &Layout,
    obj: u64,
    t: &TypeInfo,
    within: std::ops::Range<u64>,
    named: Option<(u64, &'static str)>,
    out: &mut impl Edges,
) {
    let offsets = (l.header_size..).step_by(8);
    out.extend(
        offsets
            .zip(body_words(view, l, obj, t))
            .filter(|&(off, _)| within.contains(&off) && off != t.weaklist)
            .map(|(off, w)| match named {
                Some((at, name)) if at == off => (w, Label::Field(name)),
                _ => (w, Label::Ref),
            }),
    );
}
