//! Memory an object owns outside its own allocation: a numpy array's data buffer, a
//! bytearray's or an `array.array`'s items, an `io.BytesIO`'s buffer, an `mmap`'s mapping.
//!
//! These objects are small headers in front of large buffers. `sys.getsizeof` counts the buffer
//! for most of them (numpy's `array_sizeof`, `array.array.__sizeof__`, bytearray's, BytesIO's),
//! so the census needs the buffer to be right, and the memory report needs it to say whose the
//! "native" memory is. Every fact here was read from the extension's own struct definitions;
//! the struct offsets are relative to the end of the object header, which is what differs
//! between default, debug and free-threaded builds.

use crate::heap::objects::type_info::{SizeRule, TypeInfo};
use crate::process::{Bytes, View};
use crate::python::layout::Layout;

/// numpy's `NPY_ARRAY_OWNDATA` flag: the array frees its data buffer (else `base` holds it).
const NPY_ARRAY_OWNDATA: u32 = 0x0004;
/// numpy's `NPY_OBJECT` type number: elements are `PyObject *`.
const NPY_OBJECT: u32 = 17;
/// `NPY_MAXDIMS` is 32 in numpy 1.x and 64 in 2.x: more is not an array.
const MAX_DIMS: u64 = 64;
/// No buffer we believe is larger (1 TiB): a larger product is a torn or hostile read.
const MAX_NBYTES: u64 = 1 << 40;
/// Most element pointers read from one object array.
const MAX_OBJECT_ITEMS: u64 = 1 << 26;

/// `PyArrayObject_fields` after the object header: the same in numpy 1.x and 2.x (numpy 2 only
/// changed the descriptor).
mod array_fields {
    pub const DATA: u64 = 0;
    pub const ND: u64 = 8;
    pub const DIMENSIONS: u64 = 16;
    pub const DESCR: u64 = 40;
    pub const FLAGS: u64 = 48;
    /// Bytes of the fields read (through `flags`).
    pub const SPAN: u64 = 52;
}

/// Where a dtype (`PyArray_Descr`) keeps its item size. numpy 2.0 widened `elsize` to
/// `npy_intp` and moved it behind a 64-bit `flags`; which layout a process has is decided from
/// the size of the `numpy.dtype` base type itself, which the two versions give differently
/// (1.x: header + 80 bytes, 2.x: header + 72), so no version string is needed and a dtype
/// subclass of any size is read right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescrLayout {
    /// numpy 1.x: `int elsize` at header + 16.
    V1,
    /// numpy 2.x: `npy_intp elsize` at header + 24.
    V2,
}

impl DescrLayout {
    /// From the `numpy.dtype` type's tp_basicsize.
    pub fn from_dtype_basicsize(l: &Layout, basicsize: u64) -> Option<DescrLayout> {
        match basicsize.checked_sub(l.header_size)? {
            80 => Some(DescrLayout::V1),
            72 => Some(DescrLayout::V2),
            _ => None,
        }
    }
}

/// `PyArray_Descr` after the object header: `type_num` is where both versions keep it.
const DESCR_TYPE_NUM: u64 = 12;

/// What one ndarray says about its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdArray {
    pub data: u64,
    pub nd: u64,
    pub owns_data: bool,
    pub object_items: bool,
    /// Item size times the product of the dimensions.
    pub nbytes: u64,
}

/// Read an ndarray from its header bytes `b` (from the object on; short slices read as zero).
/// None when its fields do not validate: the caller counts the object at its base size.
pub fn ndarray(view: &mut View, l: &Layout, b: &[u8]) -> Option<NdArray> {
    use array_fields::*;
    let h = l.header_size;
    let at = |off: u64| (h + off) as usize;
    if (b.len() as u64) < h + SPAN {
        return None;
    }
    let nd = b.u32_at(at(ND)) as u64;
    if nd > MAX_DIMS {
        return None;
    }
    let descr = b.u64_at(at(DESCR));
    let (elsize, type_num) = descr_item(view, l, descr)?;
    let dims = b.u64_at(at(DIMENSIONS));
    let mut count: u64 = 1;
    if nd > 0 {
        let raw = view.get(dims, (nd * 8) as usize).ok()?;
        for d in raw.chunks_exact(8) {
            let d = d.i64_at(0);
            if d < 0 {
                return None;
            }
            count = count.checked_mul(d as u64)?;
        }
    }
    let nbytes = count.checked_mul(elsize)?;
    if nbytes > MAX_NBYTES {
        return None;
    }
    Some(NdArray {
        data: b.u64_at(at(DATA)),
        nd,
        owns_data: b.u32_at(at(FLAGS)) & NPY_ARRAY_OWNDATA != 0,
        object_items: type_num == NPY_OBJECT,
        nbytes,
    })
}

/// A dtype's (item size, type number), its layout decided from its `numpy.dtype` base.
fn descr_item(view: &mut View, l: &Layout, descr: u64) -> Option<(u64, u32)> {
    if descr == 0 || !descr.is_multiple_of(8) {
        return None;
    }
    let tp = view.u64(descr.checked_add(l.ob_type)?)?;
    let layout = dtype_layout(view, l, tp)?;
    let h = l.header_size;
    let b = view.get(descr, (h + 32) as usize).ok()?;
    let type_num = b.u32_at((h + DESCR_TYPE_NUM) as usize);
    let elsize = match layout {
        DescrLayout::V1 => b.u32_at((h + 16) as usize) as i32 as i64,
        DescrLayout::V2 => b.i64_at((h + 24) as usize),
    };
    // An item is never negative nor larger than the largest buffer we believe in.
    (0..=MAX_NBYTES as i64)
        .contains(&elsize)
        .then_some((elsize as u64, type_num))
}

/// Up the dtype's bases to `numpy.dtype` (a dtype's type is `numpy.dtypes.Float64DType` or a
/// user dtype; its bases end at `numpy.dtype`, then `object`).
fn dtype_layout(view: &mut View, l: &Layout, tp: u64) -> Option<DescrLayout> {
    let mut cur = tp;
    for _ in 0..8 {
        if cur == 0 {
            return None;
        }
        let name = view.u64(cur.checked_add(l.type_.tp_name)?)?;
        if view.cstr(name, 16).is_some_and(|n| n == b"numpy.dtype") {
            let basicsize = view.u64(cur.checked_add(l.type_.tp_basicsize)?)?;
            return DescrLayout::from_dtype_basicsize(l, basicsize);
        }
        cur = view.u64(cur.checked_add(l.type_.tp_base)?)?;
    }
    None
}

/// `sys.getsizeof` of an ndarray before the pre-header: numpy's `array_sizeof` is
/// `tp_basicsize + nd * 2 * sizeof(npy_intp)` (the dimensions and strides it allocates) plus,
/// when the array owns its data, `nbytes`. A view, or an array whose `base` holds the buffer,
/// adds nothing: its base is counted instead.
pub fn ndarray_sizeof(view: &mut View, l: &Layout, t: &TypeInfo, b: &[u8]) -> Option<u64> {
    let a = ndarray(view, l, b)?;
    Some(t.basicsize + a.nd * 16 + if a.owns_data { a.nbytes } else { 0 })
}

/// `mmap.mmap`: `char *data; Py_ssize_t size` right after the header (the same on 3.8-3.15).
/// The mapping's length, zero once closed.
pub fn mmap_bytes(l: &Layout, b: &[u8]) -> Option<u64> {
    let h = l.header_size as usize;
    let (data, size) = (b.u64_at(h), b.i64_at(h + 8));
    if data == 0 {
        return Some(0);
    }
    (0..1 << 44).contains(&size).then_some(size as u64)
}

/// Whether a size rule's objects own memory outside their allocation: the census computes
/// `native` only for these.
pub fn has_native(rule: SizeRule) -> bool {
    matches!(
        rule,
        SizeRule::NdArray
            | SizeRule::ByteArray
            | SizeRule::Array
            | SizeRule::BytesIO
            | SizeRule::Mmap
    )
}

/// Whether the rule's native bytes are heap memory that no Python object of their own
/// accounts for (so the memory report moves them out of "native / unattributed"). A BytesIO's
/// buffer is a bytes object the census counts by itself; an mmap is a mapping of its own,
/// reported with the files or shared memory, not in the anonymous heap.
pub fn native_in_heap(rule: SizeRule) -> bool {
    matches!(
        rule,
        SizeRule::NdArray | SizeRule::ByteArray | SizeRule::Array
    )
}

/// Whether the rule's native bytes are a Python object of their own (a BytesIO's buffer is a
/// bytes object), which the census counts and allocates by itself: the owner's allocated
/// bytes leave them out so they are not counted twice.
pub fn native_is_object(rule: SizeRule) -> bool {
    rule == SizeRule::BytesIO
}

/// Bytes the object owns outside its own allocation (0 for rules that own none, or when the
/// fields do not validate). `b` holds the object's bytes from the object on.
pub fn native_bytes(view: &mut View, l: &Layout, t: &TypeInfo, b: &[u8]) -> u64 {
    match t.rule {
        SizeRule::NdArray => ndarray(view, l, b)
            .filter(|a| a.owns_data)
            .map_or(0, |a| a.nbytes),
        SizeRule::ByteArray => b.u64_at(l.fields.bytearray_alloc as usize).min(MAX_NBYTES),
        SizeRule::Array => array_items_bytes(view, l, b).unwrap_or(0),
        SizeRule::BytesIO => bytesio_buffer(view, l, b).unwrap_or(0),
        SizeRule::Mmap => mmap_bytes(l, b).unwrap_or(0),
        _ => 0,
    }
}

/// The items an array.array has allocated: allocated × its typecode's item size (the memory it
/// owns outside itself, which its `__sizeof__` adds).
pub fn array_items_bytes(view: &mut View, l: &Layout, b: &[u8]) -> Option<u64> {
    let f = &l.fields;
    let descr = b.u64_at(f.array_descr as usize);
    let itemsize = view.u32(descr.checked_add(f.array_descr_itemsize)?)? as u64;
    let allocated = b.u64_at(f.array_allocated as usize);
    allocated.min(1 << 40).checked_mul(itemsize.min(1 << 8))
}

/// What `_io.BytesIO.__sizeof__` adds for its buffer: the bytes object's own getsizeof, unless
/// someone else holds it too (SHARED_BUF: a reference count above one, immortal included).
pub fn bytesio_buffer(view: &mut View, l: &Layout, b: &[u8]) -> Option<u64> {
    let buf = b.u64_at(l.fields.bytesio_buf as usize);
    if buf == 0 {
        return Some(0);
    }
    let head = view.get(buf, l.header_size as usize).ok()?.to_vec();
    if l.refcount(&head)? > 1 {
        return Some(0);
    }
    bytes_getsizeof(view, l, buf)
}

/// `sys.getsizeof` of a bytes object (object.__sizeof__ of its type; not GC, no pre-header).
pub fn bytes_getsizeof(view: &mut View, l: &Layout, obj: u64) -> Option<u64> {
    let tp = view.u64(obj.checked_add(l.ob_type)?)?;
    let len = view.u64(obj.checked_add(l.ob_size)?)?;
    let basic = view.u64(tp.checked_add(l.type_.tp_basicsize)?)?;
    let item = view.u64(tp.checked_add(l.type_.tp_itemsize)?)?;
    (basic < 1 << 16 && item <= 1 && len < 1 << 40).then(|| basic + len * item)
}

/// `native_bytes` of an object read through the view (0 for types that own nothing outside).
pub fn native_of(view: &mut View, l: &Layout, obj: u64, t: &TypeInfo) -> u64 {
    if !has_native(t.rule) {
        return 0;
    }
    let mut head = [0u8; 128];
    let n = view
        .span_of(obj)
        .map_or(0, |s| head.len().min((s.end - obj) as usize));
    match view.get(obj, n) {
        Ok(b) => {
            head[..n].copy_from_slice(b);
            native_bytes(view, l, t, &head[..n])
        }
        Err(_) => 0,
    }
}

/// The element pointers of an object-dtype array that owns its buffer (a view's elements are
/// its base's, reached through the base). NULL slots are left out; the caller validates the
/// rest like any other pointer.
pub fn object_items(view: &mut View, l: &Layout, obj: u64) -> Vec<u64> {
    let n = (l.header_size + array_fields::SPAN) as usize;
    let Ok(b) = view.get(obj, n).map(|b| b.to_vec()) else {
        return Vec::new();
    };
    let Some(a) = ndarray(view, l, &b) else {
        return Vec::new();
    };
    if !a.object_items || !a.owns_data || a.nbytes == 0 || a.nbytes / 8 > MAX_OBJECT_ITEMS {
        return Vec::new();
    }
    match view.get(a.data, a.nbytes as usize) {
        Ok(raw) => raw
            .chunks_exact(8)
            .map(|w| w.u64_at(0))
            .filter(|&p| p != 0)
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::memory::fake::FakeMemory;
    use crate::process::view::Span;
    use crate::python::layout::Version;
    use crate::python::tables::table_layout;

    const BASE: u64 = 0x10000;
    const DTYPE_TYPE: u64 = BASE;
    const NAME: u64 = BASE + 0x800;
    const DESCR: u64 = BASE + 0x900;
    const DIMS: u64 = BASE + 0xa00;

    fn put(mem: &mut [u8], addr: u64, v: u64) {
        let at = (addr - BASE) as usize;
        mem[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// A fake heap: the `numpy.dtype` type, one float64 descriptor of the given layout and a
    /// dims array [3, 4]; returns it with the array's header bytes.
    fn heap(l: &Layout, layout: DescrLayout, dims: [i64; 2]) -> (FakeMemory, Vec<u8>) {
        let mut mem = vec![0u8; 0x1000];
        let basicsize = l.header_size + if layout == DescrLayout::V1 { 80 } else { 72 };
        put(&mut mem, DTYPE_TYPE + l.type_.tp_name, NAME);
        put(&mut mem, DTYPE_TYPE + l.type_.tp_basicsize, basicsize);
        let at = (NAME - BASE) as usize;
        mem[at..at + 12].copy_from_slice(b"numpy.dtype\0");
        put(&mut mem, DESCR + l.ob_type, DTYPE_TYPE);
        let h = l.header_size;
        match layout {
            DescrLayout::V1 => put(&mut mem, DESCR + h + 16, 8),
            DescrLayout::V2 => put(&mut mem, DESCR + h + 24, 8),
        }
        let tn = (DESCR + h + DESCR_TYPE_NUM - BASE) as usize;
        mem[tn..tn + 4].copy_from_slice(&12u32.to_le_bytes()); // NPY_DOUBLE
        put(&mut mem, DIMS, dims[0] as u64);
        put(&mut mem, DIMS + 8, dims[1] as u64);
        let mut fake = FakeMemory::default();
        fake.map(BASE, mem);
        let mut arr = vec![0u8; (h + array_fields::SPAN) as usize + 4];
        let set = |b: &mut Vec<u8>, off: u64, v: u64| {
            let at = (h + off) as usize;
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        };
        set(&mut arr, array_fields::DATA, 0x7000_0000);
        let nd_at = (h + array_fields::ND) as usize;
        arr[nd_at..nd_at + 4].copy_from_slice(&2u32.to_le_bytes());
        set(&mut arr, array_fields::DIMENSIONS, DIMS);
        set(&mut arr, array_fields::DESCR, DESCR);
        let flags_at = (h + array_fields::FLAGS) as usize;
        arr[flags_at..flags_at + 4].copy_from_slice(&NPY_ARRAY_OWNDATA.to_le_bytes());
        (fake, arr)
    }

    fn layout() -> Layout {
        table_layout(Version {
            major: 3,
            minor: 12,
            micro: 1,
        })
        .expect("3.12 layout")
    }

    fn read(l: &Layout, fake: &FakeMemory, arr: &[u8]) -> Option<NdArray> {
        let spans = vec![Span {
            start: BASE,
            end: BASE + 0x1000,
        }];
        let mut view = View::new(fake, spans, 0);
        ndarray(&mut view, l, arr)
    }

    #[test]
    fn both_descr_layouts_give_nbytes() {
        let l = layout();
        for d in [DescrLayout::V1, DescrLayout::V2] {
            let (fake, arr) = heap(&l, d, [3, 4]);
            let a = read(&l, &fake, &arr).expect("validates");
            assert_eq!(
                (a.nd, a.nbytes, a.owns_data, a.object_items),
                (2, 96, true, false)
            );
        }
    }

    #[test]
    fn hostile_arrays_do_not_validate() {
        let l = layout();
        let (fake, arr) = heap(&l, DescrLayout::V2, [-1, 4]);
        assert_eq!(read(&l, &fake, &arr), None, "negative dimension");
        let (fake, arr) = heap(&l, DescrLayout::V2, [1 << 40, 1 << 40]);
        assert_eq!(read(&l, &fake, &arr), None, "overflowing size");
        let (fake, mut arr) = heap(&l, DescrLayout::V2, [3, 4]);
        let nd_at = (l.header_size + array_fields::ND) as usize;
        arr[nd_at..nd_at + 4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(read(&l, &fake, &arr), None, "too many dimensions");
        let (fake, mut arr) = heap(&l, DescrLayout::V2, [3, 4]);
        let descr_at = (l.header_size + array_fields::DESCR) as usize;
        arr[descr_at..descr_at + 8].copy_from_slice(&0xdead_0000u64.to_le_bytes());
        assert_eq!(read(&l, &fake, &arr), None, "wild descriptor");
        assert_eq!(read(&l, &fake, &arr[..20]), None, "short header");
        assert_eq!(DescrLayout::from_dtype_basicsize(&l, 100), None);
    }
}
