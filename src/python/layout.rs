//! The one value that describes a target's CPython build: every offset and rule the walkers need.
//!
//! It is resolved once per target (tables → debug offsets → DWARF, then validated against the
//! live process, see `resolve.rs`) and walkers only read it: no version checks in the walkers.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
    pub micro: u8,
}

impl Version {
    pub fn new(major: u8, minor: u8, micro: u8) -> Version {
        Version {
            major,
            minor,
            micro,
        }
    }

    /// From PY_VERSION_HEX (`Py_Version`, debug offsets).
    pub fn from_hex(hex: u64) -> Version {
        Version::new((hex >> 24) as u8, (hex >> 16) as u8, (hex >> 8) as u8)
    }

    /// From text such as "3.11.2" or "3.14.0rc1+".
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.splitn(3, '.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let micro_txt: String = it
            .next()
            .unwrap_or("0")
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        Some(Version::new(major, minor, micro_txt.parse().unwrap_or(0)))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// Where the pymalloc state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ObmallocState {
    /// 3.8–3.11: static globals of obmalloc.c, found by symbol or heuristics.
    Statics,
    /// 3.12: `struct _obmalloc_state` embedded in the interpreter at this offset.
    Embedded(u64),
    /// 3.13+: a pointer to it in the interpreter at this offset.
    Pointer(u64),
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuntimeLayout {
    pub interpreters_head: u64,
    /// `PyThreadState*` that is non-NULL once the runtime is shutting down (module teardown:
    /// a census then sees objects being freed en masse, not the program's steady state).
    pub finalizing: Option<u64>,
    /// 3.8 keeps the GC state in the runtime; later versions in each interpreter.
    pub gc: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct InterpLayout {
    pub next: u64,
    pub threads_head: u64,
    pub gc: Option<u64>,
    pub modules: u64,
    pub sysdict: u64,
    pub builtins: u64,
    pub obmalloc: ObmallocState,
}

/// `struct _gc_runtime_state`. List heads are found through `generation0` where it exists
/// (robust against distro patches that move `generations`), else at `generations`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GcLayout {
    pub size: u64,
    pub enabled: u64,
    pub generations: u64,
    pub generation0: Option<u64>,
    pub permanent: u64,
    pub collecting: u64,
    pub generation_stride: u64,
    pub generation_count: u64,
    /// `generation_stats[3]` ({collections, collected, uncollectable}), inline before 3.15.
    pub stats: Option<u64>,
    /// `gc.garbage`, a list.
    pub garbage: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct TypeLayout {
    pub tp_name: u64,
    pub tp_basicsize: u64,
    pub tp_itemsize: u64,
    pub tp_flags: u64,
    pub tp_base: u64,
    pub tp_dict: u64,
    pub tp_dictoffset: u64,
    /// The method resolution order, a tuple.
    pub tp_mro: u64,
    /// Where instances keep their list of weak references (0: none; negative: a 3.12+
    /// managed pre-header slot). That word is never an ownership edge.
    pub tp_weaklistoffset: u64,
    pub heap_type_size: u64,
    /// 3.11/3.12: `sys.getsizeof` adds the pre-header of the object's type even to a static
    /// type object (`_PyType_PreHeaderSize(Py_TYPE(o))`: `type` is a GC type), so `int` is
    /// 424/432 bytes there; other versions add nothing for static types (measured 3.8–3.15).
    pub static_type_preheader: bool,
    pub ht_name: u64,
    pub ht_qualname: u64,
    pub ht_cached_keys: u64,
    pub type_size: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct UnicodeLayout {
    pub length: u64,
    pub state: u64,
    pub ascii_size: u64,
    pub compact_size: u64,
    pub unicode_size: u64,
    pub utf8_length: u64,
    pub utf8: u64,
    /// ≤3.11: the deprecated wchar_t cache (pointer at 40, length in the compact struct at 64).
    pub wstr: Option<(u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DictKeysLayout {
    /// 3.8–3.10: dk_size, dk_usable, dk_nentries, indices at 40; 24-byte entries.
    Sized,
    /// 3.11+: log2 sizes, a kind byte, indices at 32; 16-byte entries for str-keyed tables.
    Log2,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct DictLayout {
    pub ma_used: u64,
    pub ma_keys: u64,
    pub ma_values: u64,
    pub keys: DictKeysLayout,
    /// 3.13+: values are a `PyDictValues` with an 8-byte header before the pointers.
    pub values_header: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Preheader {
    /// 3.8–3.10: only the GC head precedes GC objects.
    GcOnly,
    /// 3.11+: managed dict (and 3.12+ managed weakref) slots precede the GC head.
    Managed { weakref_flag: Option<u64> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ManagedValues {
    /// No managed values (3.8–3.10).
    None,
    /// 3.11: a values pointer of its own at obj-32 (the dict pointer beside it).
    Pointer(u64),
    /// 3.12: one word holds either the dict or the values pointer minus one (bit 0 set).
    Tagged,
    /// 3.13+: values inline after the object, with an 8-byte header; `valid` at byte 3.
    Inline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LongLayout {
    /// ≤3.11: signed digit count in ob_size.
    ObSize,
    /// 3.12+: lv_tag, digit count in bits 3.. and the sign in bits 0–1.
    Tag,
}

/// How an object header keeps its reference count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Refcount {
    /// `ob_refcnt`, one word at offset 0. `flags_above`: 3.14+ keep a 32-bit count with flag
    /// bits above it (free lists overwrite the word with a pointer, which this rejects).
    Word { flags_above: bool },
    /// Free-threaded: `ob_ref_local` (u32; u32::MAX means immortal) plus `ob_ref_shared >> 2`
    /// (its low two bits are state), and the GC bits in their own byte.
    Split {
        local: u64,
        shared: u64,
        gc_bits: u64,
    },
}

/// Fields of particular object kinds the walkers read, as offsets from the object.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ObjectFields {
    /// `PyLongObject`: lv_tag (3.12+) and where the digits start (int's base size).
    pub long_tag: u64,
    pub long_digits: u64,
    pub bytearray_alloc: u64,
    /// `PyBytesObject.ob_sval`: the bytes, after ob_size and the (deprecated, still there)
    /// ob_shash.
    pub bytes_sval: u64,
    /// `collections.OrderedDict`: od_fast_nodes_size.
    pub odict_fast_nodes_size: u64,
    /// `collections.deque`: leftindex.
    pub deque_leftindex: u64,
    /// `_io.Buffered*`: buffer pointer and buffer_size.
    pub buffered_buffer: u64,
    pub buffered_buffer_size: u64,
    /// `_struct.Struct`: s_len, and s_codes (an array of 32-byte format codes ended by one
    /// whose fmtdef is NULL; `__sizeof__` counts the codes, which differs from s_len for
    /// repeat counts: "3i" is one code of three items).
    pub struct_len: u64,
    pub struct_codes: u64,
    /// `array.array`: allocated, and ob_descr (a `struct arraydescr` whose int itemsize is at
    /// `array_descr_itemsize`).
    pub array_allocated: u64,
    pub array_descr: u64,
    pub array_descr_itemsize: u64,
    /// `itertools.combinations` and `combinations_with_replacement`: r (one index each).
    pub combinations_r: u64,
    /// `itertools.permutations`: pool (a tuple: one index per item) and r (one cycle each).
    pub permutations_pool: u64,
    pub permutations_r: u64,
    /// `itertools.product`: pools (a tuple: one index per pool).
    pub product_pools: u64,
    /// `_io.BytesIO`: buf, a bytes object counted (as its own getsizeof) unless shared.
    pub bytesio_buf: u64,
    /// 3.15+: `bytearray.ob_bytes_object`, the bytes object holding the data, counted as its
    /// own getsizeof (the empty bytes singleton adds nothing). None: ob_alloc is counted.
    pub bytearray_bytes_object: Option<u64>,
    /// `PyCodeObject.co_extra` (a `_PyCodeObjectExtra`: ce_size, then ce_size pointers).
    pub code_extra: u64,
    /// 3.8–3.10: co_cell2arg and co_cellvars (one Py_ssize_t per cell when co_cell2arg is
    /// set). None from 3.11: `__sizeof__` is the variable size rounded up to 8 bytes.
    pub code_cell2arg: Option<(u64, u64)>,
    /// `datetime.time` / `datetime.datetime`: the hastzinfo byte, and how much a naive
    /// instance allocates (`_PyDateTime_BaseTime` / `_PyDateTime_BaseDateTime`: no fold, no
    /// tzinfo). Their `__sizeof__` is tp_basicsize either way.
    pub datetime_hastzinfo: u64,
    pub naive_time_size: u64,
    pub naive_datetime_size: u64,
    pub cell_contents: u64,
    pub module_dict: u64,
    pub function_closure: u64,
}

/// Where a generator's (coroutine's, async generator's) code object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GenCode {
    /// 3.11: `gi_code`, a field of the generator at this offset.
    Field(u64),
    /// 3.12+: the `f_code` / `f_executable` of the frame embedded at this offset (`gi_iframe`).
    InFrame(u64),
}

/// How generators and frame objects size themselves: their `__sizeof__` follows the code
/// object they run, not a field of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FrameSizing {
    /// 3.8–3.10: generators are fixed-size (their frame is a separate object); a frame object
    /// counts `sizeof(PyFrameObject)` plus one slot per local, cell, free variable and stack
    /// entry of its code, less the one slot inside the struct (frameobject.c `frame_sizeof`).
    /// A frame reused from the free list may have more slots than that (ob_size): they are
    /// allocated, not counted.
    FrameObject {
        /// `PyFrameObject.f_code`.
        code: u64,
        /// `PyGenObject.gi_frame` (`cr_frame`, `ag_frame`): the frame a generator holds.
        gen_frame: u64,
        /// `PyCodeObject` ints co_nlocals and co_stacksize, tuples co_cellvars and co_freevars.
        nlocals: u64,
        stacksize: u64,
        cellvars: u64,
        freevars: u64,
    },
    /// 3.11+: generators, coroutines, async generators and frame objects embed a
    /// `_PyInterpreterFrame` (a frame object may point at another's instead); tp_basicsize ends
    /// where its `localsplus` starts, and both `__sizeof__` and the allocation add one pointer
    /// per slot of the code: co_nlocalsplus + co_stacksize (3.11 adds them; 3.12+ computes
    /// co_framesize - FRAME_SPECIALS_SIZE, which codeobject.c and deepfreeze set to that sum).
    Embedded {
        gen_code: GenCode,
        /// `PyFrameObject.f_frame`: the interpreter frame it shows.
        frame_ptr: u64,
        /// The code inside an interpreter frame (`f_code` / `f_executable`; 3.14+ a tagged
        /// `_PyStackRef`, so its low three bits are masked).
        frame_code: u64,
        /// `PyCodeObject` ints co_nlocalsplus and co_stacksize.
        nlocalsplus: u64,
        stacksize: u64,
    },
}

/// Where C containers keep what they hold, as offsets from the object: retention and the
/// referent pass follow these exactly instead of guessing from the body's words. Measured on
/// every interpreter of the matrix (ctypes over each object's words, 3.8-3.15, 3.13t).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ContainerFields {
    /// `collections.deque`: leftblock, rightblock, rightindex (leftindex is in `ObjectFields`).
    /// Blocks are malloc'ed: a left link, 64 item slots, a right link.
    pub deque_leftblock: u64,
    pub deque_rightblock: u64,
    pub deque_rightindex: u64,
    /// `collections.defaultdict`: default_factory, right after the dict.
    pub defaultdict_factory: u64,
    /// `functools.partial`: fn, args, kw.
    pub partial_func: u64,
    pub partial_args: u64,
    pub partial_keywords: u64,
    /// `functools._lru_cache_wrapper`: cache (a dict of key -> link, or key -> result when
    /// unbounded) and func. Its root links are borrowed and not followed.
    pub lru_cache: u64,
    pub lru_func: u64,
    /// `_thread._local`: the dict of per-thread dicts (`dummies` before 3.13, `localdicts`
    /// since), keyed by weak references; the constructor's args and kw; before 3.13 its key
    /// (a str) and the callback its dummies' weak references call; since, the set of weak
    /// references to thread sentinels (held; what they point at is not).
    pub local_dicts: u64,
    pub local_args: u64,
    pub local_kw: u64,
    pub local_key: Option<u64>,
    pub local_callback: Option<u64>,
    pub local_watchdogs: Option<u64>,
    /// `PyWeakReference.wr_callback`: held strongly (wr_object, just before it, never is).
    pub weakref_callback: u64,
}

impl ContainerFields {
    /// Every field moved by `d` bytes (a larger object header).
    pub fn shift(&mut self, d: u64) {
        for f in [
            &mut self.deque_leftblock,
            &mut self.deque_rightblock,
            &mut self.deque_rightindex,
            &mut self.defaultdict_factory,
            &mut self.partial_func,
            &mut self.partial_args,
            &mut self.partial_keywords,
            &mut self.lru_cache,
            &mut self.lru_func,
            &mut self.local_dicts,
            &mut self.local_args,
            &mut self.local_kw,
            &mut self.weakref_callback,
        ] {
            *f += d;
        }
        for f in [
            &mut self.local_key,
            &mut self.local_callback,
            &mut self.local_watchdogs,
        ] {
            *f = f.map(|o| o + d);
        }
    }
}

/// The CPython side of the free-threaded mimalloc heaps (the mimalloc structs themselves are
/// vendored and identical across 3.13t/3.14t: see `heap/mimalloc.rs`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MimallocLayout {
    /// `_PyThreadStateImpl.mimalloc` (`struct _mimalloc_thread_state`).
    pub tstate_mimalloc: u64,
    /// `PyThreadState.next`.
    pub tstate_next: u64,
    /// `PyInterpreterState.mimalloc` (its `abandoned_pool` comes first), where known.
    pub interp_mimalloc: Option<u64>,
}

/// `PyGC_Head`'s two link words, `_gc_next` then `_gc_prev`: what a walker reads to follow or
/// check a GC list. The same struct on every GIL build 3.8–3.15; where the head sits relative
/// to its object, and whether a build has one at all, is `Layout::gc_head_size`.
pub const GC_HEAD_LINKS: usize = 16;
/// `_gc_prev`'s offset in the head.
pub const GC_PREV: usize = 8;

/// Free-threaded builds keep the collector's state per object in `ob_gc_bits` (3.13 and 3.14
/// agree on these two).
const GC_BIT_TRACKED: u8 = 1;
const GC_BIT_FROZEN: u8 = 8;

#[derive(Debug, Clone, Serialize)]
pub struct Layout {
    pub version: Version,
    pub free_threaded: bool,
    /// Where each part came from ("table", "debug offsets", "DWARF"), for `--verbose` and reports.
    pub sources: Vec<String>,
    pub runtime: RuntimeLayout,
    pub interp: InterpLayout,
    pub gc: GcLayout,
    /// `sizeof(PyObject)`: 16, or 32 on free-threaded builds.
    pub header_size: u64,
    pub refcount: Refcount,
    pub ob_type: u64,
    pub ob_size: u64,
    /// Bytes before the object where a managed `__dict__` pointer sits (3.11+).
    pub managed_dict: u64,
    pub type_: TypeLayout,
    pub unicode: UnicodeLayout,
    pub dict: DictLayout,
    pub list_items: u64,
    pub list_allocated: u64,
    pub tuple_items: u64,
    pub set_mask: u64,
    pub set_table: u64,
    pub set_smalltable: u64,
    pub preheader: Preheader,
    /// `PyGC_Head` before GC objects: 16, or 0 on free-threaded builds (no GC lists).
    pub gc_head_size: u64,
    pub long: LongLayout,
    /// 3.11+: `int.__sizeof__` counts at least one digit (0 is 28 bytes, not 24).
    pub long_min_one_digit: bool,
    /// Where instances with a managed dict keep attribute values when no dict was made.
    pub managed_values: ManagedValues,
    pub fields: ObjectFields,
    /// How generators and frame objects follow their code object's size.
    pub frame_sizing: FrameSizing,
    pub containers: ContainerFields,
    /// Free-threaded builds: where the mimalloc heaps hang off thread states.
    pub mimalloc: Option<MimallocLayout>,
    /// 3.12+: immortal objects have a negative 32-bit refcount.
    pub immortal_refcnt: bool,
    /// 3.13+: instance attribute values may live inline after the object.
    pub inline_values: bool,
    /// pymalloc geometry: 256 KiB arenas and 4 KiB pools before 3.10; 1 MiB and 16 KiB since.
    pub arena_size: u64,
    pub pool_size: u64,
    /// pymalloc's pool header, arena table entry and state struct.
    pub pymalloc: PymallocLayout,
    /// Thread states, frames, code objects and the GIL: what stack walkers read.
    pub frames: super::frames_layout::FrameLayout,
}

/// pymalloc's own structures (Objects/obmalloc.c): unchanged on 64-bit builds 3.8–3.15, so
/// one table row (`tables::PYMALLOC`); kept here so the walkers read no bare offsets.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PymallocLayout {
    /// `struct pool_header`: blocks in use (u32), free-list head, arena index, size class
    /// index, first never-carved offset, last offset a block may start at (u32 each).
    pub pool_ref_count: usize,
    pub pool_freeblock: usize,
    pub pool_arenaindex: usize,
    pub pool_szidx: usize,
    pub pool_nextoffset: usize,
    pub pool_maxnextoffset: usize,
    /// `POOL_OVERHEAD`: the header's size, where the first block starts.
    pub pool_overhead: u64,
    /// Size classes step by this (`ALIGNMENT`): class i holds blocks of (i + 1) × it bytes.
    pub alignment: u64,
    /// How many size classes there are (blocks up to 512 bytes).
    pub classes: usize,
    /// `usedpools`: per class a list header two pointers wide (overlaid on the array).
    pub usedpools_stride: u64,
    /// `struct arena_object`: its size, the arena's address and its first never-carved pool.
    pub arena_object_size: u64,
    pub arena_address: usize,
    pub arena_pool_address: usize,
    /// `struct _obmalloc_state` (3.12+): `mgmt` after `pools.used`; in `mgmt`, the arena
    /// table pointer, its length (u32) and `raw_allocated_blocks`.
    pub state_mgmt: u64,
    pub mgmt_arenas: u64,
    pub mgmt_maxarenas: u64,
    pub mgmt_raw_allocated: u64,
}

impl PymallocLayout {
    /// A size class index's block size.
    pub fn block_size(&self, szidx: u64) -> u64 {
        (szidx + 1) * self.alignment
    }
}

/// Type flag bits (stable across versions where present).
pub mod flags {
    pub const INLINE_VALUES: u64 = 1 << 2;
    pub const MANAGED_WEAKREF: u64 = 1 << 3;
    pub const MANAGED_DICT: u64 = 1 << 4;
    pub const HEAPTYPE: u64 = 1 << 9;
    pub const HAVE_GC: u64 = 1 << 14;
    pub const TUPLE_SUBCLASS: u64 = 1 << 26;
    pub const BYTES_SUBCLASS: u64 = 1 << 27;
    pub const UNICODE_SUBCLASS: u64 = 1 << 28;
    pub const TYPE_SUBCLASS: u64 = 1 << 31;
}

impl Layout {
    /// Bytes that precede an object of a type with these flags (GC head and managed slots).
    pub fn preheader_size(&self, tp_flags: u64) -> u64 {
        let gc = if tp_flags & flags::HAVE_GC != 0 {
            self.gc_head_size
        } else {
            0
        };
        let managed = match self.preheader {
            Preheader::GcOnly => 0,
            Preheader::Managed { weakref_flag } => {
                let mask = flags::MANAGED_DICT | weakref_flag.unwrap_or(0);
                if tp_flags & mask != 0 {
                    16
                } else {
                    0
                }
            }
        };
        gc + managed
    }

    /// Does an object header (at least `header_size` bytes) say the object is alive?
    pub fn live_refcount(&self, header: &[u8]) -> bool {
        use crate::process::Bytes;
        if (header.len() as u64) < self.header_size {
            return false;
        }
        match self.refcount {
            Refcount::Word { flags_above: true } => {
                let rc = header.u64_at(0);
                // 32-bit count, 16-bit overflow (never set in practice), 16-bit flags.
                rc & 0xffff_ffff != 0 && (rc >> 32) & 0xffff == 0
            }
            Refcount::Word { flags_above: false } => {
                let rc = header.u64_at(0);
                rc != 0 && rc < 1 << 40
            }
            Refcount::Split { local, shared, .. } => {
                let local = header.u32_at(local as usize);
                if local == u32::MAX {
                    return true; // immortal
                }
                // The shared count may be negative while a merge is queued; the sum of both
                // is what keeps the object alive.
                let count = local as i64 + (header.i64_at(shared as usize) >> 2);
                count > 0 && count < 1 << 40
            }
        }
    }

    /// The reference count an object header holds (u64::MAX for an immortal free-threaded
    /// object), or None for a header too short to hold one.
    pub fn refcount(&self, header: &[u8]) -> Option<u64> {
        use crate::process::Bytes;
        if (header.len() as u64) < self.header_size {
            return None;
        }
        Some(match self.refcount {
            Refcount::Word { flags_above: true } => header.u64_at(0) & 0xffff_ffff,
            Refcount::Word { flags_above: false } => header.u64_at(0),
            Refcount::Split { local, shared, .. } => {
                let local = header.u32_at(local as usize);
                if local == u32::MAX {
                    return Some(u64::MAX);
                }
                (local as i64 + (header.i64_at(shared as usize) >> 2)).max(0) as u64
            }
        })
    }

    /// Free-threaded only: is the object tracked by the GC (what gc.get_objects() lists)?
    pub fn gc_tracked(&self, header: &[u8]) -> Option<bool> {
        self.gc_bit(header, GC_BIT_TRACKED)
    }

    /// Free-threaded only: was the object frozen by gc.freeze()?
    pub fn gc_frozen(&self, header: &[u8]) -> Option<bool> {
        self.gc_bit(header, GC_BIT_FROZEN)
    }

    fn gc_bit(&self, header: &[u8], bit: u8) -> Option<bool> {
        match self.refcount {
            Refcount::Split { gc_bits, .. } => {
                Some(header.get(gc_bits as usize).is_some_and(|b| b & bit != 0))
            }
            Refcount::Word { .. } => None,
        }
    }
}
