//! `sys.getsizeof` computed from outside: the `__sizeof__` of the nearest builtin base plus the
//! pre-header, exactly as CPython adds them.

use crate::heap::objects::native;
use crate::heap::objects::pyobj::{decode_str_header, dict_keys};
use crate::heap::objects::type_info::{SizeRule, TypeInfo};
use crate::process::{Bytes, View};
use crate::python::layout::{flags, FrameSizing, GenCode, Layout, LongLayout};

/// Bytes of an object header we read to size it: enough for every fixed field used below.
const HEAD: usize = 160;

/// Counts and lengths read from the target are capped here before any arithmetic: no real
/// object comes near (a size past 2^40 is refused at the end anyway), and a hostile word then
/// cannot overflow the sums below.
const MAX_COUNT: u64 = 1 << 40;

fn count(v: u64) -> u64 {
    v.min(MAX_COUNT)
}

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

/// `sys.getsizeof` from the object's bytes `b`. Long: one arm per size rule, kept together so
/// that the rules read as one table.
fn getsizeof_from(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo, b: &[u8]) -> Option<u64> {
    let ob_size = count(b.i64_at(l.ob_size as usize).unsigned_abs());
    let core = match t.rule {
        SizeRule::Generic | SizeRule::NaiveTime | SizeRule::NaiveDateTime => {
            t.basicsize + ob_size.checked_mul(t.itemsize)?
        }
        SizeRule::List => t.basicsize + count(b.u64_at(l.list_allocated as usize)) * 8,
        SizeRule::Set => {
            let table = b.u64_at(l.set_table as usize);
            let mask = count(b.u64_at(l.set_mask as usize));
            let extra = if Some(table) != obj.checked_add(l.set_smalltable) {
                // `setentry` is a key and its hash, 16 bytes on every version.
                mask.checked_add(1)?.checked_mul(16)?
            } else {
                0
            };
            t.basicsize + extra
        }
        SizeRule::Dict => dict_size(view, l, b, t.basicsize)?,
        SizeRule::OrderedDict => {
            // odict_sizeof: the dict part, the fast-nodes index, and one node per item.
            let fast_nodes_size = count(b.u64_at(l.fields.odict_fast_nodes_size as usize));
            let used = count(b.u64_at(l.dict.ma_used as usize));
            dict_size(view, l, b, t.basicsize)? + 8 * fast_nodes_size + 32 * used
        }
        SizeRule::ByteArray => match l.fields.bytearray_bytes_object {
            // Measured on 3.15.2: an empty bytearray (holding the empty bytes singleton) adds
            // nothing, any other the getsizeof of its bytes object (ob_alloc bytes long).
            Some(at) => {
                let bytes = b.u64_at(at as usize);
                let alloc = b.u64_at(l.fields.bytearray_alloc as usize);
                t.basicsize
                    + if bytes != 0 && alloc != 0 {
                        native::bytes_getsizeof(view, l, bytes)?
                    } else {
                        0
                    }
            }
            None => t.basicsize + count(b.u64_at(l.fields.bytearray_alloc as usize)),
        },
        SizeRule::Code => code_size(view, l, t, b)?,
        SizeRule::Deque => {
            // Blocks of 64 slots plus two links (`BLOCKLEN` and the links are fixed in
            // _collectionsmodule.c): (leftindex + len + 63) / 64 of them.
            let leftindex = count(b.u64_at(l.fields.deque_leftindex as usize));
            let blocks = leftindex.checked_add(ob_size)?.div_ceil(64);
            t.basicsize + blocks * (64 * 8 + 16)
        }
        SizeRule::Buffered => {
            let f = &l.fields;
            let buffer = b.u64_at(f.buffered_buffer as usize);
            t.basicsize
                + if buffer != 0 {
                    count(b.u64_at(f.buffered_buffer_size as usize))
                } else {
                    0
                }
        }
        SizeRule::Struct => t.basicsize + 32 * struct_codes(view, l, b)?.checked_add(1)?,
        SizeRule::Generator | SizeRule::Frame => frame_backed_size(view, l, t, b)?,
        SizeRule::Array => t.basicsize + native::array_items_bytes(view, l, b)?,
        SizeRule::Combinations => {
            t.basicsize + 8 * b.u64_at(l.fields.combinations_r as usize).min(1 << 32)
        }
        SizeRule::Permutations => {
            let f = &l.fields;
            let pool = b.u64_at(f.permutations_pool as usize);
            let n = view.u64(pool.checked_add(l.ob_size)?)?.min(1 << 32);
            t.basicsize + 8 * (n + b.u64_at(f.permutations_r as usize).min(1 << 32))
        }
        SizeRule::Product => {
            let pools = b.u64_at(l.fields.product_pools as usize);
            t.basicsize + 8 * view.u64(pools.checked_add(l.ob_size)?)?.min(1 << 32)
        }
        SizeRule::BytesIO => t.basicsize + native::bytesio_buffer(view, l, b)?,
        SizeRule::Int => {
            let digits = match l.long {
                LongLayout::ObSize => ob_size,
                LongLayout::Tag => count(b.u64_at(l.fields.long_tag as usize) >> 3),
            };
            let min_one = l.long_min_one_digit;
            l.fields.long_digits + 4 * if min_one { digits.max(1) } else { digits }
        }
        SizeRule::Str => str_size(l, obj, b)?,
        SizeRule::NdArray => native::ndarray_sizeof(view, l, t, b)?,
        SizeRule::Mmap => t.basicsize,
        SizeRule::Type => {
            let tflags = view.u64(obj.wrapping_add(l.type_.tp_flags))?;
            if tflags & flags::HEAPTYPE == 0 {
                // A static type: a pre-header is added for it only where `static_type_preheader`.
                let pre = if l.type_.static_type_preheader {
                    t.preheader
                } else {
                    0
                };
                return Some(l.type_.type_size + pre);
            }
            let keys = view
                .u64(obj.wrapping_add(l.type_.ht_cached_keys))
                .unwrap_or(0);
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
/// was asked for, before rounding. Buffers it owns (list items, dict keys) are separate. The
/// view is read only for objects sized by another object (a generator by its code).
pub fn own_size(view: &mut View, l: &Layout, t: &TypeInfo, o: &[u8]) -> Option<u64> {
    let ob_size = count(o.i64_at(l.ob_size as usize).unsigned_abs());
    Some(match t.rule {
        // 3.11+: allocated with one pointer per slot of the code (genobject.c make_gen,
        // frameobject.c _PyFrame_New_NoTrack), exactly what __sizeof__ counts.
        SizeRule::Generator | SizeRule::Frame
            if matches!(l.frame_sizing, FrameSizing::Embedded { .. }) =>
        {
            frame_backed_size(view, l, t, o)?
        }
        SizeRule::Str if t.flags & flags::HEAPTYPE == 0 => {
            let state = o.u32_at(l.unicode.state as usize);
            let len = count(o.u64_at(l.unicode.length as usize));
            let kind = ((state >> 2) & 7) as u64;
            match (state & (1 << 5) != 0, state & (1 << 6) != 0) {
                (true, true) => l.unicode.ascii_size + len + 1,
                (true, false) => l.unicode.compact_size + (len + 1) * kind,
                _ => l.unicode.unicode_size,
            }
        }
        SizeRule::NaiveTime | SizeRule::NaiveDateTime
            if o.get(l.fields.datetime_hastzinfo as usize) == Some(&0) =>
        {
            match t.rule {
                SizeRule::NaiveTime => l.fields.naive_time_size,
                _ => l.fields.naive_datetime_size,
            }
        }
        SizeRule::Int if l.long == LongLayout::Tag => {
            t.basicsize + 4 * count(o.u64_at(l.fields.long_tag as usize) >> 3).max(1)
        }
        _ => t.basicsize + ob_size.checked_mul(t.itemsize)?,
    })
}

/// Most slots a code object's frame may have (co_nlocalsplus + co_stacksize): far above what
/// any real function needs, low enough to reject a misread.
const MAX_FRAME_SLOTS: u64 = 1 << 20;

/// `__sizeof__` of a generator, coroutine, async generator or frame object: what the code object
/// it runs makes of its frame (see `FrameSizing`).
fn frame_backed_size(view: &mut View, l: &Layout, t: &TypeInfo, b: &[u8]) -> Option<u64> {
    let generator = t.rule == SizeRule::Generator;
    let slots = match l.frame_sizing {
        FrameSizing::FrameObject {
            code,
            nlocals,
            stacksize,
            cellvars,
            freevars,
            ..
        } => {
            if generator {
                // No __sizeof__ of its own: object.__sizeof__.
                let ob_size = b.i64_at(l.ob_size as usize).unsigned_abs();
                return t.basicsize.checked_add(ob_size.checked_mul(t.itemsize)?);
            }
            let code = b.u64_at(code as usize);
            let ints = int_pair(view, code, nlocals, stacksize)?;
            let mut tuples = 0;
            for at in [cellvars, freevars] {
                let tuple = view.u64(code.checked_add(at)?)?;
                tuples += view
                    .u64(tuple.checked_add(l.ob_size)?)?
                    .min(MAX_FRAME_SLOTS);
            }
            // The struct already holds one slot (f_localsplus[1]).
            (ints + tuples).checked_sub(1)?
        }
        FrameSizing::Embedded {
            gen_code,
            frame_ptr,
            frame_code,
            nlocalsplus,
            stacksize,
        } => {
            let code = if generator {
                match gen_code {
                    GenCode::Field(at) => b.u64_at(at as usize),
                    GenCode::InFrame(at) => b.u64_at((at + frame_code) as usize),
                }
            } else {
                let frame = b.u64_at(frame_ptr as usize);
                view.u64(frame.checked_add(frame_code)?)?
            };
            // 3.14+ keep the code as a tagged stack reference.
            int_pair(view, code & !7, nlocalsplus, stacksize)?
        }
    };
    (slots <= MAX_FRAME_SLOTS).then_some(t.basicsize + slots * 8)
}

/// The sum of two non-negative C ints of an object (a code object's slot counts).
fn int_pair(view: &mut View, obj: u64, a: u64, b: u64) -> Option<u64> {
    if obj == 0 {
        return None;
    }
    let x = view.u32(obj.checked_add(a)?)? as i32;
    let y = view.u32(obj.checked_add(b)?)? as i32;
    let sum = u64::try_from(x).ok()? + u64::try_from(y).ok()?;
    (sum <= MAX_FRAME_SLOTS).then_some(sum)
}

/// How many format codes a `_struct.Struct` holds: s_codes up to the one with a NULL fmtdef,
/// at most s_len of them (each code covers one or more items).
fn struct_codes(view: &mut View, l: &Layout, b: &[u8]) -> Option<u64> {
    const CODE_SIZE: u64 = 32;
    let len = b.u64_at(l.fields.struct_len as usize).min(1 << 12);
    let codes = b.u64_at(l.fields.struct_codes as usize);
    let bytes = view.get(codes, ((len + 1) * CODE_SIZE) as usize).ok()?;
    (0..=len).find(|&i| bytes.u64_at((i * CODE_SIZE) as usize) == 0)
}

/// `code.__sizeof__`: 3.11+ the variable-size object rounded up to a pointer (_PyObject_VAR_SIZE);
/// 3.8–3.10 tp_basicsize plus one Py_ssize_t per cell when cells map to arguments. Both add the
/// co_extra block (ce_size, then ce_size pointers) when one was attached.
fn code_size(view: &mut View, l: &Layout, t: &TypeInfo, b: &[u8]) -> Option<u64> {
    let f = &l.fields;
    let mut size = match f.code_cell2arg {
        Some((cell2arg, cellvars)) => {
            let cells = b.u64_at(cellvars as usize);
            t.basicsize
                + if b.u64_at(cell2arg as usize) != 0 && cells != 0 {
                    8 * view.u64(cells.checked_add(l.ob_size)?)?.min(1 << 32)
                } else {
                    0
                }
        }
        None => {
            let ob_size = b.i64_at(l.ob_size as usize).unsigned_abs().min(1 << 40);
            (t.basicsize + ob_size * t.itemsize).div_ceil(8) * 8
        }
    };
    let extra = b.u64_at(f.code_extra as usize);
    if extra != 0 {
        let n = view.u64(extra)?.min(1 << 16);
        size += 8 + 8 * n.max(1);
    }
    Some(size)
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
    let length = count(h.length);
    let mut size = if h.compact && h.ascii {
        u.ascii_size + length + 1
    } else if h.compact {
        u.compact_size + (length + 1) * h.kind as u64
    } else {
        u.unicode_size
            + if h.data != 0 {
                (length + 1) * h.kind as u64
            } else {
                0
            }
    };
    if !(h.compact && h.ascii) {
        let utf8 = b.u64_at(u.utf8 as usize);
        if utf8 != 0 && utf8 != h.data {
            size += count(b.u64_at(u.utf8_length as usize)) + 1;
        }
    }
    if let Some((wstr_off, wlen_off)) = u.wstr {
        let wstr = b.u64_at(wstr_off as usize);
        if wstr != 0 && wstr != h.data {
            let wlen = if h.compact && h.ascii {
                length
            } else {
                count(b.u64_at(wlen_off as usize))
            };
            size += (wlen + 1) * 4;
        }
    }
    Some(size)
}
