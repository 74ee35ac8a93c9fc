//! Reading the few object kinds the walkers must understand: str (names) and dict (type dicts,
//! module globals, instance attributes). Everything is bounded and validated.

use crate::process::{Bytes, View};
use crate::python::layout::{DictKeysLayout, Layout, LongLayout};

/// Longest string we will decode for a name.
pub const MAX_NAME: u64 = 4096;
/// Largest dict we will iterate (entries); larger ones are skipped as implausible.
pub const MAX_DICT_ENTRIES: u64 = 1 << 26;

/// Decoded header of a str object.
#[derive(Debug, Clone, Copy)]
pub struct StrHeader {
    pub length: u64,
    pub kind: u8,
    pub compact: bool,
    pub ascii: bool,
    /// Where the characters are.
    pub data: u64,
}

pub fn str_header(view: &mut View, l: &Layout, addr: u64) -> Option<StrHeader> {
    let b = view.get(addr, l.unicode.unicode_size as usize).ok()?;
    decode_str_header(b, l, addr)
}

/// The header of the str at `addr` from its first `unicode.unicode_size` bytes, already read.
pub fn decode_str_header(b: &[u8], l: &Layout, addr: u64) -> Option<StrHeader> {
    let u = &l.unicode;
    let length = b.u64_at(u.length as usize);
    let state = b.u32_at(u.state as usize);
    let kind = ((state >> 2) & 7) as u8;
    let compact = state & (1 << 5) != 0;
    let ascii = state & (1 << 6) != 0;
    if !matches!(kind, 1 | 2 | 4) || length > (1 << 40) || (ascii && kind != 1) {
        return None;
    }
    let data = if compact && ascii {
        addr + u.ascii_size
    } else if compact {
        addr + u.compact_size
    } else {
        // Legacy (e.g. str subclasses): data pointer follows the compact struct.
        b.u64_at(u.compact_size as usize)
    };
    Some(StrHeader {
        length,
        kind,
        compact,
        ascii,
        data,
    })
}

/// The text of a str object (up to `max` characters), lossily decoded.
pub fn read_str(view: &mut View, l: &Layout, addr: u64, max: u64) -> Option<String> {
    let h = str_header(view, l, addr)?;
    if h.length > max {
        return None;
    }
    let nbytes = (h.length * h.kind as u64) as usize;
    let raw = view.get(h.data, nbytes).ok()?;
    Some(decode_chars(raw, h.kind))
}

/// Text from the character data of a str of this kind (1, 2 or 4 bytes a character).
pub fn decode_chars(raw: &[u8], kind: u8) -> String {
    match kind {
        1 => raw.iter().map(|&c| c as char).collect(),
        2 => raw
            .chunks_exact(2)
            .map(|c| char::from_u32(u16::from_le_bytes([c[0], c[1]]) as u32).unwrap_or('\u{fffd}'))
            .collect(),
        _ => raw
            .chunks_exact(4)
            .map(|c| char::from_u32(c.u32_at(0)).unwrap_or('\u{fffd}'))
            .collect(),
    }
}

/// Geometry of a dict's keys object.
#[derive(Debug, Clone, Copy)]
pub struct DictKeys {
    pub refcnt: u64,
    /// Number of slots (a power of two).
    pub size: u64,
    pub usable: u64,
    pub nentries: u64,
    pub entry_size: u64,
    /// Offset of the first entry from the keys object.
    pub entries_at: u64,
    /// Size of the keys object as `_PyDict_KeysSize` computes it.
    pub alloc_size: u64,
}

pub fn dict_keys(view: &mut View, l: &Layout, keys: u64) -> Option<DictKeys> {
    let b = view.get(keys, 40).ok()?;
    let refcnt = b.u64_at(0);
    let k = match l.dict.keys {
        DictKeysLayout::Sized => {
            let size = b.u64_at(8);
            if size == 0 || !size.is_power_of_two() || size > MAX_DICT_ENTRIES * 2 {
                return None;
            }
            let ix = if size <= 0xff {
                1
            } else if size <= 0xffff {
                2
            } else if size <= 0xffff_ffff {
                4
            } else {
                8
            };
            let usable_max = size * 2 / 3;
            DictKeys {
                refcnt,
                size,
                usable: b.u64_at(24),
                nentries: b.u64_at(32),
                entry_size: 24,
                entries_at: 40 + ix * size,
                alloc_size: 40 + ix * size + usable_max * 24,
            }
        }
        DictKeysLayout::Log2 => {
            let log2 = b.u8_at(8) as u64;
            let log2_index = b.u8_at(9) as u64;
            let kind = b.u8_at(10);
            if log2 > 40 || log2_index > 44 || kind > 2 {
                return None;
            }
            let size = 1u64 << log2;
            let entry_size = if kind == 0 { 24 } else { 16 };
            let index_bytes = 1u64 << log2_index;
            DictKeys {
                refcnt,
                size,
                usable: b.u64_at(16),
                nentries: b.u64_at(24),
                entry_size,
                entries_at: 32 + index_bytes,
                alloc_size: 32 + index_bytes + (size * 2 / 3) * entry_size,
            }
        }
    };
    (k.nentries <= k.size && k.nentries <= MAX_DICT_ENTRIES).then_some(k)
}

/// (key, value) pointers of a dict, skipping deleted entries. `values` is the split-table values
/// array (already past any header), or 0 for a combined table.
pub fn dict_entries(
    view: &mut View,
    l: &Layout,
    keys_addr: u64,
    values: u64,
) -> Option<Vec<(u64, u64)>> {
    let k = dict_keys(view, l, keys_addr)?;
    let bytes = k.nentries * k.entry_size;
    let raw = view
        .get(keys_addr.wrapping_add(k.entries_at), bytes as usize)
        .ok()?
        .to_vec();
    let split_vals = if values != 0 {
        Some(view.get(values, (k.nentries * 8) as usize).ok()?.to_vec())
    } else {
        None
    };
    let mut out = Vec::with_capacity(k.nentries as usize);
    for i in 0..k.nentries as usize {
        let e = i * k.entry_size as usize;
        let key_off = if k.entry_size == 24 { 8 } else { 0 };
        let key = raw.u64_at(e + key_off);
        let val = match &split_vals {
            Some(v) => v.u64_at(i * 8),
            None => raw.u64_at(e + key_off + 8),
        };
        if key != 0 && val != 0 {
            out.push((key, val));
        }
    }
    Some(out)
}

/// Entries of a dict object (combined or split).
pub fn dict_items(view: &mut View, l: &Layout, dict: u64) -> Option<Vec<(u64, u64)>> {
    let b = view.get(dict, (l.dict.ma_values + 8) as usize).ok()?;
    let keys = b.u64_at(l.dict.ma_keys as usize);
    let values = b.u64_at(l.dict.ma_values as usize);
    let values = if values != 0 {
        values + l.dict.values_header
    } else {
        0
    };
    dict_entries(view, l, keys, values)
}

/// Look up a str key in a dict by comparing decoded text (no hashing needed for small dicts).
pub fn dict_get_str(view: &mut View, l: &Layout, dict: u64, key: &str) -> Option<u64> {
    let items = dict_items(view, l, dict)?;
    items.into_iter().find_map(|(k, v)| {
        let h = str_header(view, l, k)?;
        if h.length != key.chars().count() as u64 {
            return None;
        }
        (read_str(view, l, k, MAX_NAME)? == key).then_some(v)
    })
}

/// A non-negative int below 2**64 (a thread ident), read from its 30-bit digits. None for
/// negative or larger ints; the caller checks that `addr` is an int.
pub fn read_small_int(view: &mut View, l: &Layout, addr: u64) -> Option<u64> {
    let ndigits = match l.long {
        LongLayout::ObSize => u64::try_from(view.u64(addr.wrapping_add(l.ob_size))? as i64).ok()?,
        LongLayout::Tag => {
            let tag = view.u64(addr.wrapping_add(l.fields.long_tag))?;
            // Sign in bits 0–1: 0 positive, 1 zero, 2 negative.
            if tag & 3 == 2 {
                return None;
            }
            tag >> 3
        }
    };
    if ndigits > 3 {
        return None;
    }
    let mut value: u128 = 0;
    for i in 0..ndigits {
        let d = view.u32(addr.wrapping_add(l.fields.long_digits + 4 * i))? & 0x3fff_ffff;
        value |= (d as u128) << (30 * i);
    }
    u64::try_from(value).ok()
}

/// Longest object body scanned word by word.
pub const MAX_BODY: u64 = 1 << 16;

/// The words of an object's body after its header (basicsize + items, bounded): the candidates
/// a conservative scan validates as pointers.
pub fn body_words(
    view: &mut View,
    l: &Layout,
    obj: u64,
    t: &crate::heap::objects::type_info::TypeInfo,
) -> Vec<u64> {
    let n = view.u64(obj.wrapping_add(l.ob_size)).unwrap_or(0) as i64;
    let len = pointer_span(t, n.unsigned_abs()).min(MAX_BODY);
    let Some(span) = view.span_of(obj) else {
        return Vec::new();
    };
    let len = len.min(span.end - obj);
    match view.get(obj, len as usize) {
        Ok(b) => words_after_header(l, b),
        Err(_) => Vec::new(),
    }
}

/// Bytes of an object of type `t` with `n` items that may hold object pointers: the fixed part,
/// and the items only when they are pointer-sized. Narrower items (a compiled regex's u32 codes,
/// an int's digits, bytes) hold none, and the allocation's rounding past the last one keeps
/// whatever the memory held before: a stale pointer there gave a str a path it does not have.
pub fn pointer_span(t: &crate::heap::objects::type_info::TypeInfo, n: u64) -> u64 {
    if t.itemsize == 8 {
        n.checked_mul(8)
            .and_then(|x| x.checked_add(t.basicsize))
            .unwrap_or(t.basicsize)
    } else {
        t.basicsize
    }
}

/// The 8-byte words of `b` (an object's bytes) after the object header.
pub fn words_after_header(l: &Layout, b: &[u8]) -> Vec<u64> {
    after_header(l, b)
        .chunks_exact(8)
        .map(|w| w.u64_at(0))
        .collect()
}

/// The bytes of `b` (an object's bytes) after the object header.
pub fn after_header<'b>(l: &Layout, b: &'b [u8]) -> &'b [u8] {
    &b[(l.header_size as usize).min(b.len())..]
}

/// An instance's managed attribute storage (3.11+): its dict, if one was made, and its values
/// array (already past any header), if the values live without one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManagedAttrs {
    pub dict: u64,
    pub values: u64,
    /// Slots the values array has, where the object says (3.13+ inline values carry a capacity
    /// byte): the class's shared keys may name more attributes than an older instance has
    /// room for, and the words past its slots belong to the next block.
    pub capacity: Option<u64>,
}

impl ManagedAttrs {
    /// How many value slots to read when the class's shared keys name `named` attributes.
    pub fn slots(&self, named: u64) -> u64 {
        self.capacity.map_or(named, |c| c.min(named))
    }
}

pub fn managed_attrs(
    view: &mut View,
    l: &Layout,
    obj: u64,
    t: &crate::heap::objects::type_info::TypeInfo,
) -> ManagedAttrs {
    managed_attrs_in(view, l, obj, t, None)
}

/// `managed_attrs` with the object's block at hand (`block` starts at address `start`): the
/// pre-header words come from it instead of a read through the view.
pub fn managed_attrs_in(
    view: &mut View,
    l: &Layout,
    obj: u64,
    t: &crate::heap::objects::type_info::TypeInfo,
    block: Option<(u64, &[u8])>,
) -> ManagedAttrs {
    use crate::python::layout::{flags, ManagedValues};
    if t.flags & flags::MANAGED_DICT == 0 || l.managed_values == ManagedValues::None {
        return ManagedAttrs::default();
    }
    let mut word_at = |addr: u64| -> u64 {
        match block {
            Some((start, b)) if addr >= start && addr + 8 <= start + b.len() as u64 => {
                b.u64_at((addr - start) as usize)
            }
            _ => view.u64(addr).unwrap_or(0),
        }
    };
    let word = word_at(obj - l.managed_dict);
    let (dict, values, capacity) = match l.managed_values {
        ManagedValues::Pointer(off) => (word, word_at(obj - off), None),
        ManagedValues::Tagged if word & 1 == 1 => (0, word + 1, None),
        ManagedValues::Inline if t.flags & flags::INLINE_VALUES != 0 && word & 1 == 0 => {
            // The values' header: capacity, size, embedded and valid bytes.
            let header = word_at(obj + t.basicsize);
            let valid = (header >> 24) & 0xff != 0;
            let values = if valid && word == 0 {
                obj + t.basicsize + 8
            } else {
                0
            };
            (word, values, Some(header & 0xff))
        }
        _ => (word & !1, 0, None),
    };
    ManagedAttrs {
        dict,
        values,
        capacity,
    }
}

/// Only identifier-like keys are shown: anything else may be user data (heaps hold secrets).
pub fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_alphanumeric())
}
