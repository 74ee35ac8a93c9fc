//! `sys.getsizeof` computed from outside: the `__sizeof__` of the nearest builtin base plus the
//! pre-header, exactly as CPython adds them.

use super::native;
use super::pyobj::{decode_str_header, dict_keys};
use super::types::{SizeRule, TypeInfo};
use crate::process::{Bytes, View};
use crate::python::layout::{flags, Layout, LongLayout};

/// Bytes of an object header we read to size it: enough for every fixed field used below.
const HEAD: usize = 160;

/// `sys.getsizeof(obj)`, or None when the object's fields do not make sense (a torn read).
pub fn getsizeof(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo) -> Option<u64> {
    let span = view.span_of(obj)?;
    let n = HEAD.min((span.end - obj) as usize);
    // A stack copy: the view stays free for the reads below (dict keys, str data).
    let mut head = [0u8; HEAD];
    head[..n].copy_from_slice(view.get(obj, n).ok()?);
    getsizeof_from(view, l, obj, t, &head[..n])
}

/// `sys.getsizeof(obj)` when the caller already holds the object's bytes (an arena block):
/// only what lives elsewhere (dict keys, a type's cached keys) is read through the view.
/// Fields past the block's end read as zero; none of the rules reads past the object's own
/// size for an object small enough to sit in a block.
pub fn getsizeof_at_hand(
    view: &mut View,
    l: &Layout,
    obj: u64,
    t: &TypeInfo,
    body: &[u8],
) -> Option<u64> {
    getsizeof_from(view, l, obj, t, body)
}

fn getsizeof_from(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo, b: &[u8]) -> Option<u64> {
    let ob_size = b.i64_at(l.ob_size as usize).unsigned_abs();
    let core = match t.rule {
        SizeRule::Generic => t.basicsize + ob_size.checked_mul(t.itemsize)?,
        SizeRule::List => t.basicsize + b.u64_at(l.list_allocated as usize).checked_mul(8)?,
        SizeRule::Set => {
            let table = b.u64_at(l.set_table as usize);
            let mask = b.u64_at(l.set_mask as usize);
            let extra = if table != obj + l.set_smalltable {
                mask.checked_add(1)?.checked_mul(16)?
            } else {
                0
            };
            t.basicsize + extra
        }
        SizeRule::Dict => dict_size(view, l, b, t.basicsize)?,
        SizeRule::OrderedDict => {
            // odict_sizeof: the dict part, the fast-nodes index, and one node per item.
            let fast_nodes_size = b.u64_at(l.fields.odict_fast_nodes_size as usize);
            let used = b.u64_at(l.dict.ma_used as usize);
            dict_size(view, l, b, t.basicsize)? + 8 * fast_nodes_size + 32 * used
        }
        SizeRule::ByteArray => t.basicsize + b.u64_at(l.fields.bytearray_alloc as usize),
        SizeRule::Deque => {
            // Blocks of 64 slots plus two links: (leftindex + len + 63) / 64 of them.
            let leftindex = b.u64_at(l.fields.deque_leftindex as usize);
            let blocks = leftindex.checked_add(ob_size)?.div_ceil(64);
            t.basicsize + blocks * (64 * 8 + 16)
        }
        SizeRule::Buffered => {
            let f = &l.fields;
            let buffer = b.u64_at(f.buffered_buffer as usize);
            t.basicsize
                + if buffer != 0 {
                    b.u64_at(f.buffered_buffer_size as usize)
                } else {
                    0
                }
        }
        SizeRule::Struct => {
            t.basicsize + 32 * b.u64_at(l.fields.struct_len as usize).checked_add(1)?
        }
        SizeRule::Int => {
            let digits = match l.long {
                LongLayout::ObSize => ob_size,
                LongLayout::Tag => b.u64_at(l.fields.long_tag as usize) >> 3,
            };
            let min_one = l.long_min_one_digit;
            l.fields.long_digits + 4 * if min_one { digits.max(1) } else { digits }
        }
        SizeRule::Str => str_size(l, obj, b)?,
        SizeRule::NdArray => native::ndarray_sizeof(view, l, t, b)?,
        SizeRule::ArrayArray => t.basicsize + native::array_items_bytes(view, l, b)?,
        SizeRule::BytesIO => t.basicsize + native::bytesio_buffer_bytes(view, l, b)?,
        SizeRule::Mmap => t.basicsize,
        SizeRule::Type => {
            let tflags = view.u64(obj + l.type_.tp_flags)?;
            if tflags & flags::HEAPTYPE == 0 {
                // A static type: no pre-header is added for it either.
                return Some(l.type_.type_size);
            }
            let keys = view.u64(obj + l.type_.ht_cached_keys).unwrap_or(0);
            let keys_size = if keys != 0 {
                dict_keys(view, l, keys)?.alloc_size
            } else {
                0
            };
            l.type_.heap_type_size + keys_size
        }
    };
    (core < (1 << 40)).then_some(core + t.preheader)
}

/// Bytes the object's own allocation requested (without pre-header): what pymalloc or malloc
/// was asked for, before rounding. Buffers it owns (list items, dict keys) are separate.
pub fn own_size(l: &Layout, t: &TypeInfo, o: &[u8]) -> Option<u64> {
    let ob_size = o.i64_at(l.ob_size as usize).unsigned_abs();
    Some(match t.rule {
        SizeRule::Str if t.flags & flags::HEAPTYPE == 0 => {
            let state = o.u32_at(l.unicode.state as usize);
            let len = o.u64_at(l.unicode.length as usize);
            let kind = ((state >> 2) & 7) as u64;
            match (state & (1 << 5) != 0, state & (1 << 6) != 0) {
                (true, true) => l.unicode.ascii_size + len + 1,
                (true, false) => l.unicode.compact_size + (len + 1) * kind,
                _ => l.unicode.unicode_size,
            }
        }
        SizeRule::Int if l.long == LongLayout::Tag => {
            t.basicsize + 4 * (o.u64_at(l.fields.long_tag as usize) >> 3).max(1)
        }
        _ => t.basicsize + ob_size.checked_mul(t.itemsize)?,
    })
}

fn dict_size(view: &mut View, l: &Layout, b: &[u8], basicsize: u64) -> Option<u64> {
    let keys_addr = b.u64_at(l.dict.ma_keys as usize);
    let values = b.u64_at(l.dict.ma_values as usize);
    let k = dict_keys(view, l, keys_addr)?;
    let mut size = basicsize;
    if values != 0 {
        let usable = match l.dict.keys {
            crate::python::layout::DictKeysLayout::Sized => k.size * 2 / 3,
            crate::python::layout::DictKeysLayout::Log2 => k.nentries + k.usable,
        };
        size += usable * 8;
    }
    if k.refcnt == 1 {
        size += k.alloc_size;
    }
    Some(size)
}

fn str_size(l: &Layout, obj: u64, b: &[u8]) -> Option<u64> {
    let u = &l.unicode;
    // Short slices read as zero past their end: a compact str's header fits any block.
    let h = decode_str_header(b, l, obj)?;
    let mut size = if h.compact && h.ascii {
        u.ascii_size + h.length + 1
    } else if h.compact {
        u.compact_size + (h.length + 1) * h.kind as u64
    } else {
        u.unicode_size
            + if h.data != 0 {
                (h.length + 1) * h.kind as u64
            } else {
                0
            }
    };
    if !(h.compact && h.ascii) {
        let utf8 = b.u64_at(u.utf8 as usize);
        if utf8 != 0 && utf8 != h.data {
            size += b.u64_at(u.utf8_length as usize) + 1;
        }
    }
    if let Some((wstr_off, wlen_off)) = u.wstr {
        let wstr = b.u64_at(wstr_off as usize);
        if wstr != 0 && wstr != h.data {
            let wlen = if h.compact && h.ascii {
                h.length
            } else {
                b.u64_at(wlen_off as usize)
            };
            size += (wlen + 1) * 4;
        }
    }
    Some(size)
}
