//! A census: objects counted and sized by type name. The group holds how every object is found
//! (`complete`), the session that attaches and counts (`snapshot`), one census per process of a
//! tree (`snapshot_tree`), where the process's memory goes (`memory`) and leaks that are not
//! bytes (`resources`).

pub mod complete;
pub mod memory;
pub mod resources;
pub mod snapshot;
pub mod snapshot_tree;

use crate::heap::objects::native;
use crate::heap::objects::sizes::{getsizeof, getsizeof_at_hand, own_size};
use crate::heap::objects::types::{SizeRule, TypeInfo, TypeTable};
use crate::heap::pymalloc::arenas::BlockObject;
use crate::process::Bytes;
use crate::process::View;
use crate::python::Layout;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TypeCount {
    #[serde(rename = "type")]
    pub name: String,
    pub count: u64,
    /// Sum of sys.getsizeof.
    pub bytes: u64,
    /// What the allocators really hold for these objects: pymalloc size classes, malloc chunks,
    /// inline attribute values (3.13+); static objects hold no heap for themselves.
    pub allocated_bytes: u64,
    /// `sys.getsizeof` of these objects calls a `__sizeof__` written in Python, which no outside
    /// reader can run: `bytes` is what the nearest builtin base's rule gives. Only written when
    /// set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub python_sizeof: bool,
    /// Memory these objects own outside their own allocation (heap::objects::native): numpy data
    /// buffers, bytearray and array.array items, BytesIO buffers, mmap lengths. Part of
    /// `bytes` where sys.getsizeof counts it (all but mmap).
    #[serde(default)]
    pub native_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Census {
    pub types: Vec<TypeCount>,
    pub objects: u64,
    pub bytes: u64,
    pub allocated_bytes: u64,
    /// Sum of the types' native bytes.
    pub native_bytes: u64,
    /// The part of `native_bytes` that is heap memory no object of its own accounts for
    /// (heap::objects::native::native_in_heap): what the memory report takes out of "native".
    pub native_heap_bytes: u64,
    /// Objects whose type pointer was not a valid type (torn reads, corruption).
    pub bad_type: u64,
    /// Objects of a valid type whose size fields did not make sense (counted at base size).
    pub bad_size: u64,
    /// (type name, fd) of live objects that own a file descriptor (-1 once closed).
    pub fd_owners: Vec<(String, i32)>,
}

/// Where an object's own allocation came from, as far as the census knows.
pub struct Placement<'a> {
    /// pymalloc objects with their block sizes, sorted by address.
    pub blocks: &'a [BlockObject],
    /// (start, size) of the binary's data sections: static objects live there.
    pub statics: &'a [(u64, u64)],
    /// Objects outside the blocks and statics were malloc'd (glibc chunk headers precede them).
    /// Not so on free-threaded builds, where such objects sit in mimalloc pages that appeared
    /// after the walk: there the word before an object is the previous block's data.
    pub malloc_outside: bool,
}

/// Count and size `objects` (sorted by address). Types are resolved once per type pointer.
pub fn count(
    view: &mut View,
    l: &Layout,
    types: &mut TypeTable,
    objects: &[u64],
    placement: &Placement,
) -> Census {
    let mut tally = Tally::default();
    let mut blocks = placement.blocks.iter().peekable();
    for &obj in objects {
        // Merge-join with the (sorted) block list.
        while blocks.next_if(|b| b.obj < obj).is_some() {}
        let block = blocks.peek().filter(|b| b.obj == obj).map(|b| b.block_size);
        tally.add_object(view, l, types, obj, block, placement);
    }
    tally.finish(view, l, types)
}

/// Per-type sums as objects are met: by type pointer, names resolved once at the end.
pub struct Tally {
    /// (type pointer, [count, bytes, allocated bytes]) per type met.
    sums: Vec<(u64, [u64; N])>,
    /// Type pointer → its entry in `sums`.
    index: HashMap<u64, usize>,
    /// A direct-mapped cache in front of `index`: objects come in runs of a few types, which
    /// this answers without hashing.
    recent: Box<[(u64, usize); RECENT_TYPES]>,
    /// Sums of arena objects by the scan's type id (no lookup at all), folded into `sums` by
    /// type pointer when tallies meet or finish.
    by_id: Vec<(u64, [u64; N])>,
    bad_type: u64,
    bad_size: u64,
    fd_owners: Vec<(String, i32)>,
}

const RECENT_TYPES: usize = 64;
/// Sums per type: count, bytes, allocated bytes, native bytes.
const N: usize = 4;

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            sums: Vec::new(),
            index: HashMap::default(),
            recent: Box::new([(0, 0); RECENT_TYPES]),
            by_id: Vec::new(),
            bad_type: 0,
            bad_size: 0,
            fd_owners: Vec::new(),
        }
    }
}

impl Tally {
    /// An object read through the view (found on a GC list or by reference).
    pub fn add_object(
        &mut self,
        view: &mut View,
        l: &Layout,
        types: &mut TypeTable,
        obj: u64,
        block: Option<u64>,
        placement: &Placement,
    ) {
        let Some(tp) = view.u64(obj.wrapping_add(l.ob_type)) else {
            self.bad_type += 1;
            return;
        };
        let Some(info) = types.get(view, l, tp) else {
            self.bad_type += 1;
            return;
        };
        // An object whose size fields do not validate is still counted: at its base size.
        let size = getsizeof(view, l, obj, info).unwrap_or_else(|| {
            log::debug!("size of a {} at {obj:#x} did not validate", info.name);
            self.bad_size += 1;
            info.basicsize + info.preheader
        });
        if info.owns_fd {
            // The descriptor is the first field after the object header.
            let fd = view
                .u32(obj.wrapping_add(l.header_size))
                .map_or(-1, |v| v as i32);
            self.fd_owners.push((info.name.to_string(), fd));
        }
        let allocated = allocated(view, l, obj, info, size, block, placement);
        let native = native::native_of(view, l, obj, info);
        let allocated = if native::native_is_object(info.rule) {
            allocated.saturating_sub(native)
        } else {
            allocated
        };
        self.add(tp, size, allocated, native);
    }

    /// An object of a pymalloc block, sized from the block bytes at hand (`body` runs from the
    /// object to the block's end).
    pub fn add_block_object(
        &mut self,
        view: &mut View,
        l: &Layout,
        found: BlockObject,
        info: &TypeInfo,
        body: &[u8],
    ) {
        // object.__sizeof__ is exactly the own size the block was validated with.
        let size = if info.rule == SizeRule::Generic {
            found.own
        } else {
            getsizeof_at_hand(view, l, found.obj, info, body).unwrap_or_else(|| {
                self.bad_size += 1;
                info.basicsize + info.preheader
            })
        };
        if info.owns_fd {
            let at = l.header_size as usize;
            let fd = body.get(at..at + 4).map_or(-1, |b| b.u32_at(0) as i32);
            self.fd_owners.push((info.name.to_string(), fd));
        }
        let allocated = found.block_size + size.saturating_sub(found.own);
        let native = if native::has_native(info.rule) {
            native::native_bytes(view, l, info, body)
        } else {
            0
        };
        let allocated = if native::native_is_object(info.rule) {
            allocated.saturating_sub(native)
        } else {
            allocated
        };
        let id = found.type_id as usize;
        if found.type_id == crate::heap::pymalloc::arenas::NO_TYPE_ID {
            return self.add(info.addr, size, allocated, native);
        }
        if id >= self.by_id.len() {
            self.by_id.resize(id + 1, (0, [0; N]));
        }
        let e = &mut self.by_id[id];
        e.0 = info.addr;
        e.1[0] += 1;
        e.1[1] += size;
        e.1[2] += allocated;
        e.1[3] += native;
    }

    /// Move the by-id sums into the by-pointer ones.
    fn fold_ids(&mut self) {
        for (tp, v) in std::mem::take(&mut self.by_id) {
            if v[0] == 0 {
                continue;
            }
            let e = self.entry(tp);
            for i in 0..N {
                e[i] += v[i];
            }
        }
    }

    /// Fold in a tally made by another thread.
    pub fn merge(&mut self, mut o: Tally) {
        self.fold_ids();
        o.fold_ids();
        for (tp, v) in o.sums {
            let e = self.entry(tp);
            for i in 0..N {
                e[i] += v[i];
            }
        }
        self.bad_type += o.bad_type;
        self.bad_size += o.bad_size;
        self.fd_owners.extend(o.fd_owners);
    }

    fn add(&mut self, tp: u64, size: u64, allocated: u64, native: u64) {
        let e = self.entry(tp);
        e[0] += 1;
        e[1] += size;
        e[2] += allocated;
        e[3] += native;
    }

    fn entry(&mut self, tp: u64) -> &mut [u64; N] {
        let r = (tp >> 4) as usize % RECENT_TYPES;
        let (cached, at) = self.recent[r];
        let at = if cached == tp && tp != 0 {
            at
        } else {
            let next = self.sums.len();
            let at = *self.index.entry(tp).or_insert(next);
            if at == next {
                self.sums.push((tp, [0; N]));
            }
            self.recent[r] = (tp, at);
            at
        };
        &mut self.sums[at].1
    }

    pub fn finish(mut self, view: &mut View, l: &Layout, types: &mut TypeTable) -> Census {
        self.fold_ids();
        let mut census = Census {
            bad_type: self.bad_type,
            bad_size: self.bad_size,
            fd_owners: self.fd_owners,
            ..Census::default()
        };
        let mut by_name: HashMap<String, ([u64; N], bool)> = HashMap::default();
        for (tp, v) in self.sums {
            if let Some(info) = types.get(view, l, tp) {
                if native::native_in_heap(info.rule) {
                    census.native_heap_bytes += v[3];
                }
                let (e, python_sizeof) = by_name.entry(info.name.to_string()).or_default();
                for i in 0..N {
                    e[i] += v[i];
                }
                *python_sizeof |= info.python_sizeof;
            }
        }
        census.types = by_name
            .into_iter()
            .map(
                |(name, ([count, bytes, allocated_bytes, native_bytes], python_sizeof))| {
                    TypeCount {
                        name,
                        count,
                        bytes,
                        allocated_bytes,
                        python_sizeof,
                        native_bytes,
                    }
                },
            )
            .collect();
        census
            .types
            .sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        census.objects = census.types.iter().map(|t| t.count).sum();
        census.bytes = census.types.iter().map(|t| t.bytes).sum();
        census.allocated_bytes = census.types.iter().map(|t| t.allocated_bytes).sum();
        census.native_bytes = census.types.iter().map(|t| t.native_bytes).sum();
        census
    }
}

/// The object's real footprint: its own allocation as the allocator rounded it, plus the
/// buffers it owns as sys.getsizeof counts them.
fn allocated(
    view: &mut View,
    l: &Layout,
    obj: u64,
    t: &TypeInfo,
    getsizeof: u64,
    block: Option<u64>,
    placement: &Placement,
) -> u64 {
    let mut head = [0u8; 64];
    let n = view
        .span_of(obj)
        .map_or(0, |s| 64.min((s.end - obj) as usize));
    if let Ok(b) = view.get(obj, n) {
        head[..n].copy_from_slice(b);
    }
    let own = own_size(view, l, t, &head[..n]).unwrap_or(t.basicsize) + t.preheader;
    let owned_buffers = getsizeof.saturating_sub(own);
    if let Some(b) = block {
        return b + owned_buffers;
    }
    if placement
        .statics
        .iter()
        .any(|&(s, n)| obj >= s && obj < s + n)
    {
        return owned_buffers;
    }
    if !placement.malloc_outside {
        return getsizeof;
    }
    // glibc: the chunk size (with flag bits; bit 1 = mmapped) sits just before the pointer.
    let start = obj - t.preheader;
    // Only a plausible header counts: 16-byte granular, and no more slack than malloc leaves
    // (a few bytes, or up to a page for an mmapped chunk).
    let usable = view.u64(start - 8).and_then(|h| {
        let chunk = h & !7;
        let mmapped = h & 2 != 0;
        let u = chunk.checked_sub(if mmapped { 16 } else { 8 })?;
        let slack = if mmapped { 4096 + 16 } else { 32 };
        (chunk.is_multiple_of(16) && u >= own && u <= own + slack).then_some(u)
    });
    match usable {
        Some(u) => u + owned_buffers,
        None => getsizeof,
    }
}
