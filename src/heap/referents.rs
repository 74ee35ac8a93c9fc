//! The referent pass: objects that are neither on a GC list nor in a pymalloc block (str, bytes,
//! int and untracked tuples over 512 bytes; static objects such as small ints and builtin types),
//! found by following pointers out of the objects we already know.
//!
//! Containers are followed exactly (list items, dict entries, set table, split values); other
//! objects' bodies are scanned conservatively, word by word: a word is an object only if it
//! passes the same validation as everything else (a real type, a sane refcount, a size that
//! computes). Pointers into arenas (or mimalloc pages) are skipped: the heap scan already judged
//! every block there.

use crate::heap::objects::containers::{deque_items, field_values, Container};
use crate::heap::objects::native;
use crate::heap::objects::pyobj::{
    after_header, body_words, dict_items, dict_keys, managed_attrs_in, pointer_span, ManagedAttrs,
};
use crate::heap::objects::sizes::{getsizeof, own_size};
use crate::heap::objects::types::{SizeRule, TypeInfo, TypeTable};
use crate::heap::pymalloc::arenas::BlockObject;
use crate::heap::regions::Regions;
use crate::process::{Bytes, View};
use crate::python::layout::{flags, Layout};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Most items read from one container.
const MAX_ITEMS: u64 = 1 << 26;

pub struct Referents {
    /// Heap areas whose blocks were all judged already.
    judged: Regions,
    /// Objects found outside the arenas, queued or done (GC-listed ones included, to avoid
    /// re-scanning).
    known: HashSet<u64>,
    /// The last pointer pushed per slot: most bodies point at the same few statics (their
    /// type, None, small ints), which this answers without a hash lookup.
    recent: Box<[u64; RECENT]>,
    /// Attribute slots of each class's shared keys, per type (3.11/3.12 values arrays).
    values_len: HashMap<u64, u64>,
    /// The last type's entry of `values_len`: instances of one class come in runs.
    last_values_len: (u64, u64),
    /// The judged range the last pointer fell in: most pointers land in the same one.
    last_judged: (u64, u64),
    /// The type of the last arena object scanned (queued once per run of that type).
    last_type: u64,
    pending: Vec<u64>,
    pub found: Vec<u64>,
    pub rejected: u64,
}

const RECENT: usize = 1024;

impl Referents {
    pub fn new(judged: Regions) -> Referents {
        Referents {
            judged,
            known: HashSet::default(),
            recent: Box::new([0; RECENT]),
            values_len: HashMap::default(),
            last_values_len: (0, 0),
            last_judged: (0, 0),
            last_type: 0,
            pending: Vec::new(),
            found: Vec::new(),
            rejected: 0,
        }
    }

    /// Take over what another pass (a thread scanning other arenas) queued.
    pub fn absorb(&mut self, o: Referents) {
        for p in o.pending {
            if self.known.insert(p) {
                self.pending.push(p);
            }
        }
        self.known.extend(o.known);
        self.rejected += o.rejected;
        self.found.extend(o.found);
    }

    /// Mark an object found by other means (a GC list) so it is not reported again.
    pub fn mark_known(&mut self, obj: u64) {
        if !self.judged.contains(obj) {
            self.known.insert(obj);
        }
    }

    fn push(&mut self, p: u64) {
        if p == 0 || !p.is_multiple_of(8) {
            return;
        }
        let r = (p >> 4) as usize % RECENT;
        if self.recent[r] == p {
            return;
        }
        self.recent[r] = p;
        if p >= self.last_judged.0 && p < self.last_judged.1 {
            return;
        }
        if let Some(range) = self.judged.range_of(p) {
            self.last_judged = range;
            return;
        }
        if self.known.insert(p) {
            self.pending.push(p);
        }
    }

    fn push_words(&mut self, b: &[u8]) {
        for w in b.chunks_exact(8) {
            self.push(w.u64_at(0));
        }
    }

    /// Queue the referents of `obj`. `body` holds its bytes from `obj` on when the caller has
    /// them at hand; otherwise they are read through the view.
    pub fn scan(
        &mut self,
        view: &mut View,
        l: &Layout,
        obj: u64,
        t: &TypeInfo,
        body: Option<&[u8]>,
    ) {
        // The type is an object too (static types are found this way).
        self.push(t.addr);
        self.scan_fields(view, l, obj, t, body);
        let attrs = managed_attrs_in(view, l, obj, t, None);
        self.scan_managed(view, l, t, attrs);
    }

    /// `scan` for an object of an arena block, with the whole block at hand (its pre-header
    /// too).
    pub fn scan_block(
        &mut self,
        view: &mut View,
        l: &Layout,
        found: BlockObject,
        t: &TypeInfo,
        block: &[u8],
    ) {
        // The type is an object too: queued once per run of objects of one type.
        if self.last_type != t.addr {
            self.last_type = t.addr;
            self.push(t.addr);
        }
        if t.leaf {
            return; // str, int, float...: nothing else to queue
        }
        // The object's own bytes only: a block is often larger than what its object asked
        // for (inline values, size-class rounding), and the tail keeps whatever the block held
        // before, pointers that look like referents and are not.
        let own = found.own.saturating_sub(t.preheader);
        let span = match body_len(l, t, block.get(found.at as usize..)) {
            Some(span) => span.min(own),
            None => own,
        };
        let end = ((found.at + span) as usize).clamp(found.at as usize, block.len());
        let body = block.get(found.at as usize..end);
        self.scan_fields(view, l, found.obj, t, body);
        let start = found.obj - found.at;
        let mut attrs = managed_attrs_in(view, l, found.obj, t, Some((start, block)));
        // The rules scan_fields follows exactly; every other body was queued word by word.
        let exact = matches!(
            t.rule,
            SizeRule::Str
                | SizeRule::Int
                | SizeRule::List
                | SizeRule::Dict
                | SizeRule::OrderedDict
                | SizeRule::Set
        );
        let scanned_whole = t.scan_body && !exact && body.is_some();
        if scanned_whole && attrs.values >= found.obj && attrs.values < start + end as u64 {
            // Inline values (3.13+) inside the object's own bytes were all queued above.
            attrs.values = 0;
        }
        self.scan_managed(view, l, t, attrs);
    }

    /// The object's own pointer fields (the type aside). Long: one arm per size rule, kept
    /// together so that the rules read as one table.
    fn scan_fields(
        &mut self,
        view: &mut View,
        l: &Layout,
        obj: u64,
        t: &TypeInfo,
        body: Option<&[u8]>,
    ) {
        match t.rule {
            SizeRule::Str | SizeRule::Int => {}
            SizeRule::List => {
                let (n, items) = match body.filter(|b| b.len() >= (l.list_items + 8) as usize) {
                    Some(b) => (
                        b.u64_at(l.ob_size as usize),
                        b.u64_at(l.list_items as usize),
                    ),
                    None => match view.get(obj, (l.list_items + 8) as usize) {
                        Ok(b) => (
                            b.u64_at(l.ob_size as usize),
                            b.u64_at(l.list_items as usize),
                        ),
                        Err(_) => (0, 0),
                    },
                };
                self.scan_array(view, items, n);
            }
            SizeRule::Dict | SizeRule::OrderedDict => {
                for (k, v) in dict_items(view, l, obj).unwrap_or_default() {
                    self.push(k);
                    self.push(v);
                }
            }
            SizeRule::Set => {
                let (mask, table) = match view.get(obj, (l.set_table + 8) as usize) {
                    Ok(b) => (
                        b.u64_at(l.set_mask as usize),
                        b.u64_at(l.set_table as usize),
                    ),
                    Err(_) => (u64::MAX, 0),
                };
                if mask < MAX_ITEMS {
                    // `setentry`: key, hash (16 bytes on every version).
                    if let Ok(raw) = view.get(table, ((mask + 1) * 16) as usize) {
                        for e in raw.chunks_exact(16) {
                            self.push(e.u64_at(0));
                        }
                    }
                }
            }
            SizeRule::NdArray => {
                // The body (base, descr), then an object-dtype array's elements.
                match body {
                    Some(b) => self.push_words(after_header(l, b)),
                    None => body_words(view, l, obj, t)
                        .into_iter()
                        .for_each(|w| self.push(w)),
                }
                for p in native::object_items(view, l, obj) {
                    self.push(p);
                }
            }
            SizeRule::Deque => {
                // Items live in malloc'ed blocks the body only points to.
                for p in deque_items(view, l, obj) {
                    self.push(p);
                }
                match body {
                    Some(b) => self.push_words(after_header(l, b)),
                    None => body_words(view, l, obj, t)
                        .into_iter()
                        .for_each(|w| self.push(w)),
                }
            }
            _ if t.scan_body => match body {
                Some(b) => self.push_words(after_header(l, b)),
                None => body_words(view, l, obj, t)
                    .into_iter()
                    .for_each(|w| self.push(w)),
            },
            _ => {}
        }
        if matches!(
            t.rule,
            SizeRule::List | SizeRule::Dict | SizeRule::OrderedDict | SizeRule::Set
        ) && t.container != Container::None
        {
            self.scan_container_rest(view, l, obj, t);
        }
    }

    /// What an exactly followed container holds besides its items: named fields (a
    /// defaultdict's factory) and a Python subclass's slots, word by word.
    fn scan_container_rest(&mut self, view: &mut View, l: &Layout, obj: u64, t: &TypeInfo) {
        for (p, _) in field_values(view, l, obj, t.container) {
            self.push(p);
        }
        if t.flags & flags::HEAPTYPE != 0 && t.basicsize > t.own_from {
            let words = body_words(view, l, obj, t);
            let skip = (t.own_from.saturating_sub(l.header_size) / 8) as usize;
            for w in words.into_iter().skip(skip) {
                self.push(w);
            }
        }
    }

    fn scan_array(&mut self, view: &mut View, at: u64, n: u64) {
        if n == 0 || n > MAX_ITEMS {
            return;
        }
        if let Ok(raw) = view.get(at, (n * 8) as usize) {
            for w in raw.chunks_exact(8) {
                self.push(w.u64_at(0));
            }
        }
    }

    /// 3.11/3.12 instances keep attribute values in a separately allocated array before the
    /// object (3.13+ keep them inline, inside the body already scanned).
    fn scan_managed(&mut self, view: &mut View, l: &Layout, t: &TypeInfo, attrs: ManagedAttrs) {
        let (dict, values) = (attrs.dict, attrs.values);
        self.push(dict);
        if values == 0 {
            return;
        }
        // The class's shared keys change only when a new attribute name appears: read them
        // once per type and census, not once per instance.
        let n = if self.last_values_len.0 == t.addr {
            self.last_values_len.1
        } else {
            let n = match self.values_len.get(&t.addr) {
                Some(&n) => n,
                None => {
                    let keys = view
                        .u64(t.addr.wrapping_add(l.type_.ht_cached_keys))
                        .unwrap_or(0);
                    let n = (keys != 0)
                        .then(|| dict_keys(view, l, keys))
                        .flatten()
                        .map_or(0, |k| (k.nentries + k.usable).min(4096));
                    self.values_len.insert(t.addr, n);
                    n
                }
            };
            self.last_values_len = (t.addr, n);
            n
        };
        self.scan_array(view, values, attrs.slots(n));
    }

    /// Validate queued pointers; each new object is recorded and its referents queued in turn.
    pub fn drain(&mut self, view: &mut View, l: &Layout, types: &mut TypeTable) {
        while let Some(p) = self.pending.pop() {
            let Some(t) = validate(view, l, types, p) else {
                self.rejected += 1;
                continue;
            };
            self.found.push(p);
            self.scan(view, l, p, &t, None);
        }
    }
}

/// An object outside the arenas: real type, sane refcount, a size that computes, and what
/// says a block's object is alive (`arenas::alive_outside`).
fn validate(view: &mut View, l: &Layout, types: &mut TypeTable, p: u64) -> Option<TypeInfo> {
    let head = view.get(p, l.header_size as usize).ok()?;
    let tp = head.u64_at(l.ob_type as usize);
    if !l.live_refcount(head) || tp == 0 || !tp.is_multiple_of(8) {
        return None;
    }
    let t = types.get(view, l, tp)?.clone();
    getsizeof(view, l, p, &t)?;
    (fits_its_mapping(view, l, p, &t)
        && crate::heap::pymalloc::arenas::alive_outside(view, l, types, p, &t))
    .then_some(t)
}

/// The object's own bytes lie inside the mapping it starts in, and a list's item array inside
/// its own. A word in an array of pointers (a tuple of classes, a list's items) followed by a
/// type pointer reads like an object header; its "size" is then another pointer, hundreds of
/// megabytes (seen on a non-PIE 3.14, whose heap addresses also pass as refcounts).
fn fits_its_mapping(view: &mut View, l: &Layout, p: u64, t: &TypeInfo) -> bool {
    let Some(span) = view.span_of(p) else {
        return false;
    };
    let n = ((span.end - p) as usize).min(OBJECT_HEAD);
    let Ok(head) = view.get(p, n).map(|b| b.to_vec()) else {
        return false;
    };
    let fits = own_size(view, l, t, &head)
        .is_some_and(|own| p.checked_add(own).is_some_and(|e| e <= span.end));
    if !fits {
        return false;
    }
    if t.rule != SizeRule::List || head.len() < (l.list_allocated + 8) as usize {
        return true;
    }
    let size = head.i64_at(l.ob_size as usize);
    let allocated = head.u64_at(l.list_allocated as usize);
    let items = head.u64_at(l.list_items as usize);
    if size < 0 || size as u64 > allocated {
        return false;
    }
    allocated == 0
        || view.span_of(items).is_some_and(|s| {
            allocated
                .checked_mul(8)
                .and_then(|b| items.checked_add(b))
                .is_some_and(|e| e <= s.end)
        })
}

/// Bytes read to check an object's fields (every fixed field `own_size` reads).
const OBJECT_HEAD: usize = 160;

/// `pyobj::pointer_span` of the object whose bytes start `b`.
fn body_len(l: &Layout, t: &TypeInfo, b: Option<&[u8]>) -> Option<u64> {
    let b = b.filter(|b| b.len() as u64 >= l.ob_size + 8)?;
    Some(pointer_span(t, b.i64_at(l.ob_size as usize).unsigned_abs()))
}
