//! Per-version facts as data: the starting point of every `Layout`.
//!
//! Sources: DWARF of the pyenv builds 3.8.18–3.13.0 and of Debian's 3.13.5 / 3.14.10 / 3.15.2
//! debug files. Debug offsets (3.13+) and DWARF,
//! when present, override these values in `resolve.rs`; validation against the live process
//! decides in the end.
//!
//! Adding a CPython version: copy the nearest row, fix what moved (compare the DWARF of the new
//! build with `pymemspy layout --pid`), and run the test matrix.

use super::layout::*;

/// Facts that differ between minor versions, one row each.
struct Row {
    minor: u8,
    interpreters_head: u64,
    /// `_PyRuntime._finalizing` (3.8: `finalizing`): set once the runtime starts shutting down.
    runtime_finalizing: u64,
    runtime_gc: Option<u64>,
    interp_next: u64,
    interp_threads_head: u64,
    interp_gc: Option<u64>,
    interp_modules: u64,
    interp_sysdict: u64,
    interp_builtins: u64,
    obmalloc: ObmallocState,
    gc: GcLayout,
    heap_type_size: u64,
    ht_name: u64,
    type_size: u64,
}

const GC_38_313: GcLayout = GcLayout {
    size: 240,
    enabled: 12,
    generations: 24,
    generation0: Some(96),
    permanent: 104,
    collecting: 200,
    generation_stride: 24,
    generation_count: 3,
    stats: Some(128),
    garbage: 208,
};

/// 3.14.5+ went back to the generational GC but kept the incremental GC's field offsets; the
/// 3.14.0–3.14.4 incremental layout has young/old[0]/old[1] at the same places and no
/// `generation0` pointer (`resolve.rs` drops it when debug offsets say gc.size == 240).
const GC_314: GcLayout = GcLayout {
    size: 264,
    enabled: 12,
    generations: 24,
    generation0: Some(256),
    permanent: 96,
    collecting: 192,
    generation_stride: 24,
    generation_count: 3,
    stats: Some(120),
    garbage: 200,
};

const GC_315: GcLayout = GcLayout {
    size: 176,
    enabled: 0,
    generations: 8,
    generation0: Some(168),
    permanent: 80,
    collecting: 112,
    generation_stride: 24,
    generation_count: 3,
    // 3.15 keeps the statistics in a separately allocated ring buffer.
    stats: None,
    garbage: 128,
};

const ROWS: &[Row] = &[
    Row {
        minor: 8,
        interpreters_head: 32,
        runtime_finalizing: 16,
        runtime_gc: Some(344),
        interp_next: 0,
        interp_threads_head: 8,
        interp_gc: None,
        interp_modules: 56,
        interp_sysdict: 72,
        interp_builtins: 80,
        obmalloc: ObmallocState::Statics,
        gc: GC_38_313,
        heap_type_size: 880,
        ht_name: 848,
        type_size: 416,
    },
    Row {
        minor: 9,
        interpreters_head: 32,
        runtime_finalizing: 16,
        runtime_gc: None,
        interp_next: 0,
        interp_threads_head: 8,
        interp_gc: Some(616),
        interp_modules: 856,
        interp_sysdict: 872,
        interp_builtins: 880,
        obmalloc: ObmallocState::Statics,
        gc: GC_38_313,
        heap_type_size: 880,
        ht_name: 840,
        type_size: 408,
    },
    Row {
        minor: 10,
        interpreters_head: 32,
        runtime_finalizing: 16,
        runtime_gc: None,
        interp_next: 0,
        interp_threads_head: 8,
        interp_gc: Some(616),
        interp_modules: 856,
        interp_sysdict: 872,
        interp_builtins: 880,
        obmalloc: ObmallocState::Statics,
        gc: GC_38_313,
        heap_type_size: 888,
        ht_name: 848,
        type_size: 408,
    },
    Row {
        minor: 11,
        interpreters_head: 40,
        runtime_finalizing: 24,
        runtime_gc: None,
        interp_next: 0,
        interp_threads_head: 16,
        interp_gc: Some(648),
        interp_modules: 888,
        interp_sysdict: 904,
        interp_builtins: 912,
        obmalloc: ObmallocState::Statics,
        gc: GC_38_313,
        heap_type_size: 904,
        ht_name: 848,
        type_size: 408,
    },
    Row {
        minor: 12,
        interpreters_head: 40,
        runtime_finalizing: 24,
        runtime_gc: None,
        interp_next: 0,
        interp_threads_head: 72,
        interp_gc: Some(112),
        interp_modules: 944,
        interp_sysdict: 352,
        interp_builtins: 360,
        obmalloc: ObmallocState::Embedded(3960),
        gc: GC_38_313,
        heap_type_size: 920,
        ht_name: 856,
        type_size: 416,
    },
    Row {
        minor: 13,
        interpreters_head: 632,
        runtime_finalizing: 608,
        runtime_gc: None,
        interp_next: 7264,
        interp_threads_head: 7344,
        interp_gc: Some(7400),
        interp_modules: 7656,
        interp_sysdict: 7640,
        interp_builtins: 7648,
        obmalloc: ObmallocState::Pointer(10800),
        gc: GC_38_313,
        heap_type_size: 928,
        ht_name: 856,
        type_size: 416,
    },
    Row {
        minor: 14,
        interpreters_head: 808,
        runtime_finalizing: 784,
        runtime_gc: None,
        interp_next: 7272,
        interp_threads_head: 7344,
        interp_gc: Some(7408),
        interp_modules: 7688,
        interp_sysdict: 7672,
        interp_builtins: 7680,
        obmalloc: ObmallocState::Pointer(10904),
        gc: GC_314,
        heap_type_size: 936,
        ht_name: 856,
        type_size: 416,
    },
    Row {
        minor: 15,
        interpreters_head: 936,
        runtime_finalizing: 912,
        runtime_gc: None,
        interp_next: 7264,
        interp_threads_head: 7336,
        interp_gc: Some(7400),
        interp_modules: 7592,
        interp_sysdict: 7576,
        interp_builtins: 7584,
        obmalloc: ObmallocState::Pointer(10880),
        gc: GC_315,
        heap_type_size: 944,
        ht_name: 864,
        type_size: 424,
    },
];

pub fn supported_minors() -> impl Iterator<Item = u8> {
    ROWS.iter().map(|r| r.minor)
}

/// The table layout for a version, or None when the minor version is unknown. Long: one field per
/// layout member with the version's value beside it; kept together so the table reads as one.
pub fn table_layout(version: Version) -> Option<Layout> {
    if version.major != 3 {
        return None;
    }
    let row = ROWS.iter().find(|r| r.minor == version.minor)?;
    let m = version.minor;
    let pre312 = m < 12;
    let unicode = if pre312 {
        UnicodeLayout {
            length: 16,
            state: 32,
            ascii_size: 48,
            compact_size: 72,
            unicode_size: 80,
            utf8_length: 48,
            utf8: 56,
            wstr: Some((40, 64)),
        }
    } else {
        UnicodeLayout {
            length: 16,
            state: 32,
            ascii_size: 40,
            compact_size: 56,
            unicode_size: 64,
            utf8_length: 40,
            utf8: 48,
            wstr: None,
        }
    };
    Some(Layout {
        version,
        free_threaded: false,
        sources: vec![format!("built-in table for 3.{m}")],
        runtime: RuntimeLayout {
            interpreters_head: row.interpreters_head,
            finalizing: Some(row.runtime_finalizing),
            gc: row.runtime_gc,
        },
        interp: InterpLayout {
            next: row.interp_next,
            threads_head: row.interp_threads_head,
            gc: row.interp_gc,
            modules: row.interp_modules,
            sysdict: row.interp_sysdict,
            builtins: row.interp_builtins,
            obmalloc: row.obmalloc,
        },
        gc: row.gc,
        header_size: 16,
        refcount: Refcount::Word {
            flags_above: m >= 14,
        },
        ob_type: 8,
        ob_size: 16,
        managed_dict: 24,
        type_: TypeLayout {
            tp_name: 24,
            tp_basicsize: 32,
            tp_itemsize: 40,
            tp_flags: 168,
            tp_base: 256,
            tp_dict: 264,
            tp_dictoffset: 288,
            tp_mro: 344,
            tp_weaklistoffset: 208,
            heap_type_size: row.heap_type_size,
            static_type_preheader: matches!(m, 11 | 12),
            ht_name: row.ht_name,
            ht_qualname: row.ht_name + 16,
            ht_cached_keys: row.ht_name + 24,
            type_size: row.type_size,
        },
        unicode,
        dict: DictLayout {
            ma_used: 16,
            ma_keys: 32,
            ma_values: 40,
            keys: if m < 11 {
                DictKeysLayout::Sized
            } else {
                DictKeysLayout::Log2
            },
            values_header: if m >= 13 { 8 } else { 0 },
        },
        list_items: 24,
        list_allocated: 32,
        tuple_items: if m >= 14 { 32 } else { 24 },
        set_mask: 32,
        set_table: 40,
        set_smalltable: 64,
        preheader: match m {
            8..=10 => Preheader::GcOnly,
            11 => Preheader::Managed { weakref_flag: None },
            _ => Preheader::Managed {
                weakref_flag: Some(flags::MANAGED_WEAKREF),
            },
        },
        gc_head_size: 16,
        long: if m >= 12 {
            LongLayout::Tag
        } else {
            LongLayout::ObSize
        },
        fields: ObjectFields {
            long_tag: 16,
            long_digits: 24,
            bytearray_alloc: 24,
            bytes_sval: 32,
            odict_fast_nodes_size: 72,
            deque_leftindex: 40,
            buffered_buffer: 56,
            buffered_buffer_size: 120,
            struct_len: 24,
            struct_codes: 32,
            array_allocated: 32,
            array_descr: 40,
            array_descr_itemsize: 4,
            combinations_r: 40,
            permutations_pool: 16,
            permutations_r: 48,
            product_pools: 16,
            bytesio_buf: 16,
            bytearray_bytes_object: (m >= 15).then_some(56),
            // DWARF: co_extra@144 (3.8–3.10), 176, 184, 192, 200 (3.14, 3.15).
            code_extra: match m {
                8..=10 => 144,
                11 => 176,
                12 => 184,
                13 => 192,
                _ => 200,
            },
            code_cell2arg: (m <= 10).then_some((96, 88)),
            datetime_hastzinfo: 24,
            naive_time_size: 32,
            naive_datetime_size: 40,
            cell_contents: 16,
            module_dict: 16,
            function_closure: if m >= 10 { 72 } else { 48 },
        },
        frame_sizing: frame_sizing(m),
        containers: ContainerFields {
            deque_leftblock: 24,
            deque_rightblock: 32,
            deque_rightindex: 48,
            defaultdict_factory: 48,
            partial_func: 16,
            partial_args: 24,
            partial_keywords: 32,
            lru_cache: 72,
            lru_func: 88,
            // 3.13 dropped the local's `key` (its first field) and its weakref callback, and
            // added the thread watchdogs after the dicts.
            local_dicts: if m >= 13 { 40 } else { 48 },
            local_args: if m >= 13 { 16 } else { 24 },
            local_kw: if m >= 13 { 24 } else { 32 },
            local_key: (m < 13).then_some(16),
            local_callback: (m < 13).then_some(56),
            local_watchdogs: (m >= 13).then_some(48),
            weakref_callback: 24,
        },
        mimalloc: None,
        immortal_refcnt: m >= 12,
        inline_values: m >= 13,
        long_min_one_digit: m >= 11,
        managed_values: match m {
            8..=10 => ManagedValues::None,
            11 => ManagedValues::Pointer(32),
            12 => ManagedValues::Tagged,
            _ => ManagedValues::Inline,
        },
        arena_size: if m >= 10 { 1 << 20 } else { 256 << 10 },
        pool_size: if m >= 10 { 16 << 10 } else { 4 << 10 },
        pymalloc: PYMALLOC,
        frames: super::frames_layout::table(version)?,
    })
}

/// pymalloc's structures on 64-bit builds (obmalloc.c; the same 3.8–3.15, checked against
/// DWARF of 3.11-dbg and Debian 3.13–3.15: `ptype /o struct pool_header`, `arena_object`,
/// `_obmalloc_state`).
pub const PYMALLOC: PymallocLayout = PymallocLayout {
    pool_ref_count: 0,
    pool_freeblock: 8,
    pool_arenaindex: 32,
    pool_szidx: 36,
    pool_nextoffset: 40,
    pool_maxnextoffset: 44,
    pool_overhead: 48,
    alignment: 16,
    classes: 32,
    usedpools_stride: 16,
    arena_object_size: 48,
    arena_address: 0,
    arena_pool_address: 8,
    // pools.used: 2 × 32 classes × 8-byte pointers.
    state_mgmt: 512,
    mgmt_arenas: 0,
    mgmt_maxarenas: 8,
    // arenas, maxarenas (padded), unused and usable lists, nfp2lasta[65], three counters.
    mgmt_raw_allocated: 576,
};

/// Where generators and frame objects find their code object, and the code object's slot
/// counts (DWARF of pyenv 3.10.13–3.13.0 and Debian 3.14.10 / 3.15.2: `ptype /o PyCodeObject`,
/// `PyGenObject`, `PyFrameObject`).
fn frame_sizing(minor: u8) -> FrameSizing {
    match minor {
        8..=10 => FrameSizing::FrameObject {
            code: 32,
            gen_frame: 16,
            nlocals: 28,
            stacksize: 32,
            cellvars: 88,
            freevars: 80,
        },
        // gi_code@16, gi_iframe@80; the frame's f_code@32; co_stacksize@68, co_nlocalsplus@76.
        11 => FrameSizing::Embedded {
            gen_code: GenCode::Field(16),
            frame_ptr: 24,
            frame_code: 32,
            nlocalsplus: 76,
            stacksize: 68,
        },
        // gi_iframe@72 (3.14 grew the frame, not what precedes it); f_code/f_executable@0;
        // co_stacksize@64, co_nlocalsplus@72.
        _ => FrameSizing::Embedded {
            gen_code: GenCode::InFrame(72),
            frame_ptr: 24,
            frame_code: 0,
            nlocalsplus: 72,
            stacksize: 64,
        },
    }
}

/// `_PyThreadStateImpl.mimalloc` and `PyInterpreterState.mimalloc` of free-threaded builds, per
/// minor version: neither is in the debug offsets. 3.13: DWARF of 3.13.5t (both agree with the
/// reference's 3.13.5t figure); 3.14: 3.14.7t (thread state only). DWARF overrides these.
const FT_MIMALLOC: &[(u8, u64, Option<u64>)] = &[(13, 0x158, Some(0x2a40)), (14, 0x3a8, None)];

/// The one place where a free-threaded build's layout departs from the default build's.
///
/// `PyObject` grows from 16 to 32 bytes (ob_tid, flags, mutex, gc bits, split refcounts before
/// ob_type), so every field of every object moves by the same 16 bytes. There is no GC head;
/// the managed dict and weakref slots form a 16-byte pre-header (dict at -8). Debug offsets and
/// DWARF, applied after this, still have the last word. Long: one list per struct of the fields
/// that move with the header; kept together so every moved field is listed in this one place.
pub fn adjust_for_free_threading(l: &mut Layout) {
    use super::frames_layout::SlotNames;
    const HEAD_GROWTH: u64 = 16;
    let d = HEAD_GROWTH;
    l.free_threaded = true;
    l.header_size += d;
    l.ob_type += d;
    l.ob_size += d;
    l.refcount = Refcount::Split {
        local: 12,
        shared: 16,
        gc_bits: 11,
    };
    l.managed_dict = 8;
    l.gc_head_size = 0;
    l.preheader = Preheader::Managed {
        weakref_flag: Some(flags::MANAGED_WEAKREF),
    };
    let t = &mut l.type_;
    for f in [
        &mut t.tp_name,
        &mut t.tp_basicsize,
        &mut t.tp_itemsize,
        &mut t.tp_flags,
        &mut t.tp_base,
        &mut t.tp_dict,
        &mut t.tp_dictoffset,
        &mut t.tp_mro,
        &mut t.tp_weaklistoffset,
        &mut t.heap_type_size,
        &mut t.ht_name,
        &mut t.ht_qualname,
        &mut t.ht_cached_keys,
        &mut t.type_size,
    ] {
        *f += d;
    }
    let u = &mut l.unicode;
    for f in [
        &mut u.length,
        &mut u.state,
        &mut u.ascii_size,
        &mut u.compact_size,
        &mut u.unicode_size,
        &mut u.utf8_length,
        &mut u.utf8,
    ] {
        *f += d;
    }
    for f in [
        &mut l.dict.ma_used,
        &mut l.dict.ma_keys,
        &mut l.dict.ma_values,
        &mut l.list_items,
        &mut l.list_allocated,
        &mut l.tuple_items,
        &mut l.set_mask,
        &mut l.set_table,
        &mut l.set_smalltable,
    ] {
        *f += d;
    }
    let o = &mut l.fields;
    for f in [
        &mut o.long_tag,
        &mut o.long_digits,
        &mut o.bytearray_alloc,
        &mut o.bytes_sval,
        &mut o.odict_fast_nodes_size,
        &mut o.deque_leftindex,
        &mut o.buffered_buffer,
        &mut o.buffered_buffer_size,
        &mut o.struct_len,
        &mut o.struct_codes,
        &mut o.array_allocated,
        &mut o.array_descr,
        &mut o.combinations_r,
        &mut o.permutations_pool,
        &mut o.permutations_r,
        &mut o.product_pools,
        &mut o.bytesio_buf,
        &mut o.code_extra,
        &mut o.datetime_hastzinfo,
        &mut o.naive_time_size,
        &mut o.naive_datetime_size,
        &mut o.cell_contents,
        &mut o.module_dict,
        &mut o.function_closure,
    ] {
        *f += d;
    }
    o.bytearray_bytes_object = o.bytearray_bytes_object.map(|b| b + d);
    o.code_cell2arg = o.code_cell2arg.map(|(a, c)| (a + d, c + d));
    // Generators and frame objects are objects (their fields move), the interpreter frame
    // inside is not; the code object's fields move like any object's.
    if let FrameSizing::Embedded {
        gen_code,
        frame_ptr,
        nlocalsplus,
        stacksize,
        ..
    } = &mut l.frame_sizing
    {
        *gen_code = match *gen_code {
            GenCode::Field(o) => GenCode::Field(o + d),
            GenCode::InFrame(o) => GenCode::InFrame(o + d),
        };
        for f in [frame_ptr, nlocalsplus, stacksize] {
            *f += d;
        }
    }
    l.containers.shift(d);
    // Code objects are objects too (frame structs are not): what the stack walker and the
    // frame roots read from them moves with the header.
    let c = &mut l.frames.code;
    for f in [
        &mut c.filename,
        &mut c.name,
        &mut c.firstlineno,
        &mut c.linetable,
        &mut c.code_start,
    ] {
        *f += d;
    }
    c.qualname = c.qualname.map(|q| q + d);
    c.shim_flag = c.shim_flag.map(|(off, bit)| (off + d, bit));
    if let SlotNames::LocalsPlus { names } = &mut l.frames.slots.names {
        *names += d;
    }
    let known = FT_MIMALLOC.iter().find(|r| r.0 == l.version.minor);
    l.mimalloc = known.map(|&(_, tstate, interp)| MimallocLayout {
        tstate_mimalloc: tstate,
        tstate_next: 8,
        interp_mimalloc: interp,
    });
    l.sources
        .push("free-threaded object header (+16 on every object field)".into());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every numeric leaf of a layout, by its path (`type_.tp_name`, `frames.code.name`).
    fn leaves(l: &Layout) -> Vec<(String, i64)> {
        fn walk(prefix: String, v: &serde_json::Value, out: &mut Vec<(String, i64)>) {
            match v {
                serde_json::Value::Number(n) => out.extend(n.as_i64().map(|n| (prefix, n))),
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        walk(format!("{prefix}.{k}"), v, out)
                    }
                }
                serde_json::Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        walk(format!("{prefix}[{i}]"), v, out)
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(
            String::new(),
            &serde_json::to_value(l).expect("layout serializes"),
            &mut out,
        );
        out
    }

    /// Free-threading moves every field of every object by 16 bytes. A field added to the
    /// layout and forgotten in `adjust_for_free_threading` would silently read 16 bytes early
    /// on 3.13t: here every numeric leaf must either move by exactly 16 or be named below as
    /// not an offset into an object (or as changed on purpose).
    #[test]
    fn free_threading_moves_every_object_field() {
        // Leaves that are not offsets into an object: interpreter and runtime structs, thread
        // states, interpreter frames, GC lists, sizes, counts, tags and bit numbers.
        const NOT_OBJECT_FIELDS: &[&str] = &[
            ".version",
            ".runtime.",
            ".interp.",
            ".gc.",
            ".frames.thread.",
            ".frames.frame.",
            ".frames.gil",
            ".frames.runtime",
            ".frames.code.lines",
            ".long.",
            ".arena_size",
            ".pool_size",
            ".pymalloc.",
            ".type_.type_size",
            ".type_.heap_type_size",
            ".frames.tstate.",
            // Offsets inside structs that are not objects: dict values, array descriptors,
            // the interpreter frame; a flag's bit.
            ".dict.values_header",
            ".fields.array_descr_itemsize",
            ".frame_sizing.Embedded.frame_code",
            ".frames.code.shim_flag[1]",
            ".frames.slots.localsplus",
            ".frames.slots.stack_top",
        ];
        // Changed on purpose, by other amounts (the header itself and what hangs off it).
        const REDEFINED: &[&str] = &[
            ".header_size",
            ".refcount",
            ".managed_dict",
            ".gc_head_size",
            ".preheader",
            ".mimalloc",
            ".free_threaded",
        ];
        for minor in [13, 14] {
            let default = table_layout(Version::new(3, minor, 0)).expect("row");
            let mut ft = default.clone();
            adjust_for_free_threading(&mut ft);
            let before: std::collections::BTreeMap<String, i64> =
                leaves(&default).into_iter().collect();
            let mut unmoved = Vec::new();
            for (path, after) in leaves(&ft) {
                let named = |list: &[&str]| list.iter().any(|p| path.starts_with(p));
                if named(REDEFINED) || named(NOT_OBJECT_FIELDS) {
                    continue;
                }
                match before.get(&path) {
                    Some(&b) if after == b + 16 => {}
                    b => unmoved.push(format!("{path}: {b:?} -> {after}")),
                }
            }
            assert!(
                unmoved.is_empty(),
                "3.{minor}t: object fields not moved by the free-threaded header (shift them \
                 in adjust_for_free_threading, or name them here if they are not object \
                 fields):\n{}",
                unmoved.join("\n")
            );
        }
    }

    /// Offsets read with gdb from the DWARF of the 3.13.5t build.
    #[test]
    fn free_threaded_313_matches_dwarf() {
        let mut l = table_layout(Version::new(3, 13, 5)).expect("3.13 row");
        adjust_for_free_threading(&mut l);
        assert_eq!((l.ob_type, l.ob_size, l.header_size), (24, 32, 32));
        assert_eq!((l.type_.tp_name, l.type_.tp_flags), (40, 184));
        assert_eq!((l.type_.ht_name, l.type_.heap_type_size), (872, 944));
        assert_eq!(l.type_.type_size, 432);
        assert_eq!(
            (l.dict.ma_used, l.dict.ma_keys, l.dict.ma_values),
            (32, 48, 56)
        );
        assert_eq!(
            (l.tuple_items, l.list_items, l.list_allocated),
            (40, 40, 48)
        );
        assert_eq!((l.set_mask, l.set_table, l.set_smalltable), (48, 56, 80));
        let u = &l.unicode;
        assert_eq!((u.length, u.state, u.ascii_size), (32, 48, 56));
        assert_eq!((u.compact_size, u.unicode_size, u.utf8), (72, 80, 64));
        assert_eq!((l.fields.long_tag, l.fields.function_closure), (32, 88));
        assert_eq!((l.fields.cell_contents, l.fields.module_dict), (32, 32));
        assert_eq!(l.fields.bytearray_alloc, 40);
        assert_eq!(l.preheader_size(flags::HAVE_GC), 0);
        assert_eq!(l.preheader_size(flags::HAVE_GC | flags::MANAGED_DICT), 16);
        assert_eq!(l.mimalloc.map(|m| m.tstate_mimalloc), Some(344));
        // gi_iframe@88, PyFrameObject.f_frame@40, co_stacksize@80, co_nlocalsplus@88.
        assert_eq!(
            l.frame_sizing,
            FrameSizing::Embedded {
                gen_code: GenCode::InFrame(88),
                frame_ptr: 40,
                frame_code: 0,
                nlocalsplus: 88,
                stacksize: 80,
            }
        );
        assert_eq!(l.type_.tp_mro, 360);
    }

    #[test]
    fn split_refcounts_tell_live_from_dead() {
        let mut l = table_layout(Version::new(3, 13, 5)).expect("3.13 row");
        adjust_for_free_threading(&mut l);
        let header = |local: u32, shared: i64, bits: u8| {
            let mut h = vec![0u8; 32];
            h[11] = bits;
            h[12..16].copy_from_slice(&local.to_le_bytes());
            h[16..24].copy_from_slice(&shared.to_le_bytes());
            h
        };
        assert!(l.live_refcount(&header(u32::MAX, 0, 0)));
        assert!(l.live_refcount(&header(1, 0, 0)));
        assert!(l.live_refcount(&header(0, 2 << 2, 0)));
        assert!(!l.live_refcount(&header(0, 0, 0)));
        assert!(!l.live_refcount(&header(0, -(1 << 2), 0)));
        assert_eq!(l.gc_tracked(&header(1, 0, 1)), Some(true));
        assert_eq!(l.gc_tracked(&header(1, 0, 64)), Some(false));
    }
}
