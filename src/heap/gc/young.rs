//! The newest GC objects, read while the target runs: a walk of the young generation from its
//! newest node backwards, and the content fingerprints that tell an object from a later one
//! at the same address (pymalloc and the free lists reuse addresses LIFO, so the leaker's
//! objects land where the churner's died). The allocation sampler (`analysis::timeline::
//! alloc_profile`) charges what this finds to the running stack.
//!
//! Hostile input as ever: every node is checked to link back to the one before it, every walk
//! is bounded, and a node that does not validate ends the walk and is counted.

use crate::heap::objects::types::TypeTable;
use crate::process::target::readable_spans;
use crate::process::{Bytes, Memory, Span, View};
use crate::python::layout::{flags, Preheader, GC_PREV};
use crate::python::Layout;
use serde::Serialize;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::time::{Duration, Instant};

/// Bytes read around each young node: the 16-byte pre-header (3.11+ managed dict/weakref
/// slots), the GC head, and the first 48 bytes of the object. A fixed window, read 100 times
/// a second: its offsets are a GIL build's (young walks never run on free-threaded builds,
/// which have no GC lists), and `window_matches_every_gil_layout` ties them to the layouts.
pub const NODE_READ: usize = 80;
/// Offsets inside that read.
pub const AT_GC_HEAD: usize = 16;
pub const AT_OBJECT: usize = 32;
/// `sizeof(PyObject)` in that window: the fields a fingerprint hashes start after it.
const HEADER: usize = 16;
/// Bytes of a separate values array hashed into the fingerprint: the first two attributes.
pub const VALUES_READ: usize = 16;
/// How stale the readable-span list may be before a type lookup that failed refreshes it.
const SPANS_MAX_AGE: Duration = Duration::from_secs(1);

/// Type facts the fingerprint needs.
#[derive(Debug, Clone, Copy)]
pub struct TypeBits {
    pub flags: u64,
    pub basicsize: u64,
}

/// A GC object found new by a walk.
#[derive(Debug, Clone, Copy)]
pub struct YoungObject {
    pub obj: u64,
    pub type_ptr: u64,
    pub fingerprint: u64,
}

/// How the walks ended, for the report and for tuning.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct YoungWalkStats {
    /// Walks that stopped at a node recorded before, at the generation-0 head, at the node
    /// limit, or on a link that changed under us.
    pub walks_reached_known: u64,
    pub walks_reached_head: u64,
    pub walks_capped: u64,
    pub walks_broken: u64,
    pub nodes_read: u64,
    /// Objects not recorded because their type did not validate.
    pub bad_type: u64,
}

/// Type facts per type pointer, read once; a lookup that fails refreshes the readable spans
/// (a type may sit in memory mapped since the last look), at most every `SPANS_MAX_AGE`.
pub struct TypeBitsCache {
    pid: i32,
    pub types: TypeTable,
    bits: HashMap<u64, Option<TypeBits>>,
    pub spans: Vec<Span>,
    spans_at: Instant,
}

impl TypeBitsCache {
    pub fn new(pid: i32, types: TypeTable, spans: Vec<Span>) -> TypeBitsCache {
        TypeBitsCache {
            pid,
            types,
            bits: HashMap::new(),
            spans,
            spans_at: Instant::now(),
        }
    }

    /// The type's bits, looked up in the target the first time.
    pub fn get(&mut self, mem: &dyn Memory, l: &Layout, type_ptr: u64) -> Option<TypeBits> {
        if let Some(bits) = self.bits.get(&type_ptr) {
            return *bits;
        }
        let mut bits = self.lookup(mem, l, type_ptr);
        if bits.is_none() && self.spans_at.elapsed() > SPANS_MAX_AGE {
            self.refresh_spans();
            bits = self.lookup(mem, l, type_ptr);
        }
        self.bits.insert(type_ptr, bits);
        bits
    }

    /// The bits of a type met before (None when never met or not a valid type).
    pub fn known(&self, type_ptr: u64) -> Option<TypeBits> {
        self.bits.get(&type_ptr).copied().flatten()
    }

    /// Spans the caller has just read (they also serve its own view).
    pub fn set_spans(&mut self, spans: Vec<Span>) {
        self.spans = spans;
        self.spans_at = Instant::now();
    }

    /// Re-read the target's readable spans now.
    pub fn refresh_spans(&mut self) {
        if let Ok(spans) = readable_spans(self.pid) {
            self.spans = spans;
        }
        self.spans_at = Instant::now();
    }

    fn lookup(&mut self, mem: &dyn Memory, l: &Layout, type_ptr: u64) -> Option<TypeBits> {
        if type_ptr == 0 || !type_ptr.is_multiple_of(8) {
            return None;
        }
        // A small budget: type objects are few and read once.
        let mut view = View::new(mem, self.spans.clone(), 0);
        let t = self.types.get(&mut view, l, type_ptr)?;
        Some(TypeBits {
            flags: t.flags,
            basicsize: t.basicsize,
        })
    }
}

/// The young generation's list: its head node, and the most nodes a walk reads.
#[derive(Debug, Clone, Copy)]
pub struct YoungList {
    pub head: u64,
    pub max_walk: usize,
}

/// New GC objects, newest first: from `newest` back along `_gc_prev` until the list's head,
/// `max_walk` nodes, a broken link, or an object `known(obj, type, fingerprint)` says was
/// seen before.
pub fn walk(
    mem: &dyn Memory,
    l: &Layout,
    list: YoungList,
    newest: u64,
    types: &mut TypeBitsCache,
    known: impl Fn(u64, u64, u64) -> bool,
    stats: &mut YoungWalkStats,
) -> Vec<YoungObject> {
    let YoungList { head, max_walk } = list;
    let mut pages = Pages::new(mem);
    let mut fresh = Vec::new();
    let mut node = newest;
    let mut expected_next = head;
    let mut steps = 0;
    loop {
        if node == head {
            stats.walks_reached_head += 1;
            break;
        }
        if steps == max_walk {
            stats.walks_capped += 1;
            break;
        }
        steps += 1;
        let Some(b) = node
            .is_multiple_of(8)
            .then(|| node.checked_sub(AT_GC_HEAD as u64))
            .flatten()
            .and_then(|at| pages.get(at, NODE_READ))
        else {
            stats.walks_broken += 1;
            break;
        };
        stats.nodes_read += 1;
        let next = b.u64_at(AT_GC_HEAD) & !3;
        let prev = b.u64_at(AT_GC_HEAD + GC_PREV);
        // A link that does not point back, or the collecting bit: the list is changing.
        // The newest node may already have a newer one after it (the target allocates
        // while we read): only its being tracked and alive is checked.
        let linked = if steps == 1 {
            next != 0
        } else {
            next == expected_next
        };
        let refcnt = b.u64_at(AT_OBJECT) as u32;
        if !linked || prev & 2 != 0 || refcnt == 0 {
            stats.walks_broken += 1;
            break;
        }
        let obj = node + l.gc_head_size;
        let type_ptr = b.u64_at(AT_OBJECT + l.ob_type as usize);
        let b = b.to_vec();
        let Some(bits) = types.get(mem, l, type_ptr) else {
            stats.bad_type += 1;
            expected_next = node;
            node = prev & !3;
            continue;
        };
        let values = separate_values(&b, l, bits)
            .and_then(|v| pages.get(v, VALUES_READ))
            .map(<[u8]>::to_vec);
        let fp = fingerprint(&b, values.as_deref(), l, bits);
        if known(obj, type_ptr, fp) {
            stats.walks_reached_known += 1;
            break;
        }
        fresh.push(YoungObject {
            obj,
            type_ptr,
            fingerprint: fp,
        });
        expected_next = node;
        node = prev & !3;
    }
    fresh
}

/// A content fingerprint that tells an object from a later one at the same address: the
/// object's first fields after its header (never past its fixed size, whose neighbour's bytes
/// would change under it), plus, for types with them, the managed dict/weakref slots before
/// the GC head and the first inline attribute values (3.13+). `b` is a `NODE_READ` read.
pub fn fingerprint(b: &[u8], values: Option<&[u8]>, l: &Layout, bits: TypeBits) -> u64 {
    let mut h = DefaultHasher::new();
    if let Some(v) = values {
        h.write(v);
    }
    if bits.flags & flags::INLINE_VALUES != 0 && l.inline_values {
        // The values live right after the fixed part and belong to the object: their header
        // and first attribute values.
        h.write(&b[AT_OBJECT + HEADER..AT_OBJECT + 48]);
    } else {
        let own = bits.basicsize.saturating_sub(HEADER as u64).min(16) as usize;
        h.write(&b[AT_OBJECT + HEADER..AT_OBJECT + HEADER + own]);
    }
    // Managed slots before the GC head belong to the object: hashed too.
    if l.preheader_size(bits.flags) > l.gc_head_size {
        h.write(&b[..AT_GC_HEAD]);
    }
    h.finish()
}

/// The fingerprint of an untracked object alone in its block: every byte of the block but the
/// refcount and, for str and bytes, the hash they compute on first use. These objects never
/// change after creation, and the block's slack past them is written by no one while they live.
fn untracked_fingerprint(b: &[u8], l: &Layout, bits: TypeBits) -> u64 {
    let mut h = DefaultHasher::new();
    let body = &b[(l.ob_type as usize).min(b.len())..];
    if bits.flags & (flags::UNICODE_SUBCLASS | flags::BYTES_SUBCLASS) != 0 && body.len() >= 24 {
        // type, length, [hash], rest
        h.write(&body[..16]);
        h.write(&body[24..]);
    } else {
        h.write(body);
    }
    h.finish()
}

/// The fingerprint of an object read from its block (`b` starts at the object): for an
/// untracked one, `untracked_fingerprint`; for a GC object, which changes as it is used (a
/// list grows, a dict fills), its type and first fields as `fingerprint` takes them, or the
/// head of its inline attribute values.
pub fn block_fingerprint(b: &[u8], l: &Layout, bits: TypeBits) -> u64 {
    if bits.flags & flags::HAVE_GC == 0 {
        return untracked_fingerprint(b, l, bits);
    }
    let mut h = DefaultHasher::new();
    let word = |at: u64| b.get(at as usize..at as usize + 8).unwrap_or_default();
    h.write(word(l.ob_type));
    // Inline values follow the object's fixed part: their header and first attributes.
    let (at, own) = if bits.flags & flags::INLINE_VALUES != 0 && l.inline_values {
        (bits.basicsize as usize, 32)
    } else {
        let own = bits.basicsize.saturating_sub(l.header_size).min(16);
        (l.header_size as usize, own as usize)
    };
    h.write(b.get(at..at + own).unwrap_or_default());
    h.finish()
}

/// Where a managed-dict instance keeps its separate attribute-values array (3.11/3.12; 3.13+
/// keeps them inline, before 3.11 there is a dict), from the node read: 3.11 has no managed
/// weakref slot and puts the values pointer first in the pre-header; 3.12 keeps a tagged
/// `dict_or_values` second (bit 0 set: values, else a dict, which is not hashed because its
/// refcount changes). The values array is as new as the object and reused with it, but its
/// contents tell a reused address from the object recorded there.
pub fn separate_values(b: &[u8], l: &Layout, bits: TypeBits) -> Option<u64> {
    if bits.flags & flags::MANAGED_DICT == 0 || l.inline_values {
        return None;
    }
    let ptr = match l.preheader {
        Preheader::Managed { weakref_flag: None } => b.u64_at(0),
        Preheader::Managed {
            weakref_flag: Some(_),
        } => match b.u64_at(8) {
            tagged if tagged & 1 == 1 => tagged & !7,
            _ => 0,
        },
        Preheader::GcOnly => 0,
    };
    (ptr != 0 && ptr.is_multiple_of(8)).then_some(ptr)
}

/// Page-sized reads within one walk: consecutive allocations share pages, so a walk of 64
/// nodes costs a few reads instead of 64. (`View` keeps large windows for scans; this is the
/// few-pages cache of a walk that runs 100 times a second.)
struct Pages<'m> {
    mem: &'m dyn Memory,
    pages: Vec<(u64, Option<Box<[u8]>>)>,
    scratch: Vec<u8>,
}

const PAGE: u64 = 4096;

impl<'m> Pages<'m> {
    fn new(mem: &'m dyn Memory) -> Pages<'m> {
        Pages {
            mem,
            pages: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn get(&mut self, addr: u64, len: usize) -> Option<&[u8]> {
        let page = addr & !(PAGE - 1);
        let end = addr.checked_add(len as u64)?;
        if end <= page + PAGE {
            let i = match self.pages.iter().position(|(p, _)| *p == page) {
                Some(i) => i,
                None => {
                    let mut buf = vec![0u8; PAGE as usize].into_boxed_slice();
                    let ok = self.mem.read(page, &mut buf).is_ok();
                    self.pages.push((page, ok.then_some(buf)));
                    self.pages.len() - 1
                }
            };
            if let Some(data) = &self.pages[i].1 {
                let off = (addr - page) as usize;
                return data.get(off..off + len);
            }
        }
        // Straddles two pages, or the page read failed: read just these bytes.
        self.scratch.resize(len, 0);
        self.mem.read(addr, &mut self.scratch).ok()?;
        Some(&self.scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::{layout::Version, tables};

    fn layout(minor: u8) -> Layout {
        tables::table_layout(Version::new(3, minor, 0)).unwrap()
    }

    #[test]
    fn window_matches_every_gil_layout() {
        for minor in 8..=15 {
            let l = layout(minor);
            assert_eq!(l.gc_head_size, (AT_OBJECT - AT_GC_HEAD) as u64, "3.{minor}");
            assert_eq!(l.header_size, HEADER as u64, "3.{minor}");
            // The widest pre-header (managed slots and GC head) fits before the object.
            let widest = l.preheader_size(flags::HAVE_GC | flags::MANAGED_DICT);
            assert!(widest <= AT_OBJECT as u64, "3.{minor}");
        }
    }

    #[test]
    fn fingerprint_ignores_bytes_past_the_object() {
        let l = layout(10);
        let bits = TypeBits {
            flags: flags::HAVE_GC,
            basicsize: 24, // e.g. a cell: one field after the header
        };
        let mut a = vec![7u8; NODE_READ];
        let mut b = a.clone();
        // The next block starts 8 bytes into the object's second field slot.
        b[AT_OBJECT + 24] ^= 0xff;
        assert_eq!(
            fingerprint(&a, None, &l, bits),
            fingerprint(&b, None, &l, bits)
        );
        a[AT_OBJECT + 16] ^= 0xff;
        assert_ne!(
            fingerprint(&a, None, &l, bits),
            fingerprint(&b, None, &l, bits)
        );
        // Before 3.11 the bytes before the GC head belong to another block.
        b = a.clone();
        b[0] ^= 0xff;
        assert_eq!(
            fingerprint(&a, None, &l, bits),
            fingerprint(&b, None, &l, bits)
        );
    }

    #[test]
    fn fingerprint_covers_managed_slots_and_inline_values() {
        let l = layout(13);
        let bits = TypeBits {
            flags: flags::HAVE_GC | flags::MANAGED_DICT | flags::INLINE_VALUES,
            basicsize: 16,
        };
        let a = vec![1u8; NODE_READ];
        for at in [0, AT_OBJECT + 16, AT_OBJECT + 40] {
            let mut b = a.clone();
            b[at] ^= 0xff;
            assert_ne!(
                fingerprint(&a, None, &l, bits),
                fingerprint(&b, None, &l, bits),
                "{at}"
            );
        }
    }
}
