//! `_Py_DebugOffsets` (3.13+): the runtime describes a few of its own struct offsets at the very
//! start of `_PyRuntime`. The struct is not self-describing, so where each value sits depends on
//! the version; these positions were read off 3.13.5, 3.14.10 and 3.15.2.

use super::layout::{Layout, Version};
use crate::process::Bytes;

pub const COOKIE: &[u8; 8] = b"xdebugpy";
/// Enough to cover the largest known struct (3.15: 888 bytes).
pub const READ_LEN: usize = 1024;

/// Positions of the values we use, inside the debug offsets struct.
struct Positions {
    runtime_size: usize,
    finalizing: usize,
    interpreters_head: usize,
    interp_size: usize,
    interp_next: usize,
    interp_threads_head: usize,
    interp_gc: usize,
    interp_modules: usize,
    interp_sysdict: usize,
    interp_builtins: usize,
    gc_size: usize,
    gc_collecting: usize,
    /// Position of the `pyobject` group; the object groups follow it in a fixed order.
    objects: Option<ObjectPositions>,
}

/// Positions of the object-layout groups (pyobject … unicode_object), known for 3.13 and 3.14.
struct ObjectPositions {
    pyobject: usize,
    type_object: usize,
    tuple_object: usize,
    list_object: usize,
    dict_object: usize,
    long_object: usize,
    unicode_object: usize,
}

fn positions(minor: u8) -> Option<Positions> {
    // 3.14 inserted interpreter_state.threads_main after threads_head, shifting what follows.
    let (shift, gc_size) = match minor {
        13 => (0, 568),
        14 => (8, 648),
        15 => (8, 752),
        _ => return None,
    };
    // 3.13: read off the 3.13.5t DWARF. 3.14 adds interpreter, frame and code fields before
    // pyobject and a set_object group after list_object; the sum lands on gc at 648 as known.
    let objects = match minor {
        13 => Some(ObjectPositions {
            pyobject: 352,
            type_object: 368,
            tuple_object: 400,
            list_object: 424,
            dict_object: 448,
            long_object: 488,
            unicode_object: 536,
        }),
        14 => Some(ObjectPositions {
            pyobject: 400,
            type_object: 416,
            tuple_object: 448,
            list_object: 472,
            dict_object: 528,
            long_object: 568,
            unicode_object: 616,
        }),
        _ => None,
    };
    Some(Positions {
        runtime_size: 24,
        finalizing: 32,
        interpreters_head: 40,
        interp_size: 48,
        interp_next: 64,
        interp_threads_head: 72,
        interp_gc: 80 + shift,
        interp_modules: 88 + shift,
        interp_sysdict: 96 + shift,
        interp_builtins: 104 + shift,
        gc_size,
        gc_collecting: gc_size + 8,
        objects,
    })
}

#[derive(Debug, Clone)]
pub struct DebugOffsets {
    pub version: Version,
    pub free_threaded: bool,
    pub runtime_size: u64,
    pub finalizing: u64,
    pub interp_size: u64,
    pub interpreters_head: u64,
    pub interp_next: u64,
    pub interp_threads_head: u64,
    pub interp_gc: u64,
    pub interp_modules: u64,
    pub interp_sysdict: u64,
    pub interp_builtins: u64,
    pub gc_size: u64,
    pub gc_collecting: u64,
    /// Object header and field offsets, when this version's positions are known and the
    /// values read there are self-consistent.
    pub objects: Option<ObjectOffsets>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectOffsets {
    pub header_size: u64,
    pub ob_type: u64,
    pub tp_name: u64,
    pub tp_flags: u64,
    pub tuple_items: u64,
    pub list_items: u64,
    pub list_size: u64,
    pub ma_keys: u64,
    pub ma_values: u64,
    pub long_tag: u64,
    pub long_digits: u64,
    pub str_state: u64,
    pub str_length: u64,
    pub ascii_size: u64,
}

fn object_offsets(raw: &[u8], p: &ObjectPositions) -> Option<ObjectOffsets> {
    let at = |pos: usize| raw.u64_at(pos);
    let o = ObjectOffsets {
        header_size: at(p.pyobject),
        ob_type: at(p.pyobject + 8),
        tp_name: at(p.type_object + 8),
        tp_flags: at(p.type_object + 24),
        tuple_items: at(p.tuple_object + 8),
        list_items: at(p.list_object + 8),
        list_size: at(p.list_object + 16),
        ma_keys: at(p.dict_object + 8),
        ma_values: at(p.dict_object + 16),
        long_tag: at(p.long_object + 8),
        long_digits: at(p.long_object + 16),
        str_state: at(p.unicode_object + 8),
        str_length: at(p.unicode_object + 16),
        ascii_size: at(p.unicode_object + 24),
    };
    // Not self-describing: accept only values that hang together (a misplaced group reads
    // sizes where offsets should be, or zeros).
    let tuple_size = at(p.tuple_object);
    let consistent = matches!(o.header_size, 16 | 32)
        && o.ob_type == o.header_size - 8
        && o.list_size == o.header_size
        && tuple_size == o.tuple_items + 8
        && o.long_tag == o.header_size
        && o.long_digits == o.header_size + 8
        && o.str_length == o.header_size
        && o.ascii_size > o.str_state
        && o.ma_values == o.ma_keys + 8
        && o.tp_flags > o.tp_name
        && o.tp_flags < 512;
    consistent.then_some(o)
}

/// Parse the struct from bytes read at `_PyRuntime`. None when there is no cookie (before 3.13)
/// or the version is one we have no positions for.
pub fn parse(raw: &[u8]) -> Option<DebugOffsets> {
    if raw.get(..8)? != COOKIE {
        return None;
    }
    let version = Version::from_hex(raw.u64_at(8));
    let p = positions(version.minor)?;
    let d = DebugOffsets {
        version,
        free_threaded: raw.u64_at(16) != 0,
        runtime_size: raw.u64_at(p.runtime_size),
        finalizing: raw.u64_at(p.finalizing),
        interp_size: raw.u64_at(p.interp_size),
        interpreters_head: raw.u64_at(p.interpreters_head),
        interp_next: raw.u64_at(p.interp_next),
        interp_threads_head: raw.u64_at(p.interp_threads_head),
        interp_gc: raw.u64_at(p.interp_gc),
        interp_modules: raw.u64_at(p.interp_modules),
        interp_sysdict: raw.u64_at(p.interp_sysdict),
        interp_builtins: raw.u64_at(p.interp_builtins),
        gc_size: raw.u64_at(p.gc_size),
        gc_collecting: raw.u64_at(p.gc_collecting),
        objects: p.objects.as_ref().and_then(|o| object_offsets(raw, o)),
    };
    d.plausible().then_some(d)
}

impl DebugOffsets {
    /// Offsets must fall inside their structs; anything else means we mis-read the layout.
    fn plausible(&self) -> bool {
        let in_interp = |o: u64| o < self.interp_size;
        self.version.major == 3
            && self.interpreters_head < self.runtime_size
            && self.runtime_size < (16 << 20)
            && self.interp_size < (16 << 20)
            && [
                self.interp_next,
                self.interp_threads_head,
                self.interp_gc,
                self.interp_modules,
                self.interp_sysdict,
                self.interp_builtins,
            ]
            .into_iter()
            .all(in_interp)
            && self.gc_collecting < self.gc_size
            && self.gc_size < 4096
    }

    /// Overwrite the table values the debug offsets know better.
    pub fn apply(&self, layout: &mut Layout) {
        if self.free_threaded {
            super::tables::adjust_for_free_threading(layout);
        }
        if let Some(o) = self.objects {
            layout.header_size = o.header_size;
            layout.ob_type = o.ob_type;
            layout.ob_size = o.list_size;
            layout.type_.tp_name = o.tp_name;
            layout.type_.tp_flags = o.tp_flags;
            layout.tuple_items = o.tuple_items;
            layout.list_items = o.list_items;
            layout.dict.ma_keys = o.ma_keys;
            layout.dict.ma_values = o.ma_values;
            layout.fields.long_tag = o.long_tag;
            layout.fields.long_digits = o.long_digits;
            layout.unicode.state = o.str_state;
            layout.unicode.length = o.str_length;
            layout.unicode.ascii_size = o.ascii_size;
        }
        layout.runtime.interpreters_head = self.interpreters_head;
        layout.runtime.finalizing =
            (self.finalizing < self.runtime_size).then_some(self.finalizing);
        layout.interp.next = self.interp_next;
        layout.interp.threads_head = self.interp_threads_head;
        layout.interp.gc = Some(self.interp_gc);
        layout.interp.modules = self.interp_modules;
        layout.interp.sysdict = self.interp_sysdict;
        layout.interp.builtins = self.interp_builtins;
        layout.gc.collecting = self.gc_collecting;
        if self.version.minor == 14 && self.gc_size == 240 {
            // 3.14.0–3.14.4 shipped the incremental GC: young/old[0]/old[1] sit where the
            // generations would, but there is no `generation0` pointer.
            layout.gc.generation0 = None;
        }
        layout.gc.size = self.gc_size;
        layout.sources.push(
            if self.objects.is_some() {
                "debug offsets (with object fields)"
            } else {
                "debug offsets"
            }
            .into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The struct as a free-threaded 3.13.5t build publishes it (values read with gdb).
    fn ft_313() -> Vec<u8> {
        let mut raw = vec![0u8; READ_LEN];
        let mut put = |pos: usize, v: u64| raw[pos..pos + 8].copy_from_slice(&v.to_le_bytes());
        put(8, 0x030d_05f0);
        put(16, 1);
        put(24, 300_000);
        put(40, 632);
        put(48, 200_000);
        for (pos, v) in [
            (64, 7264),
            (72, 7344),
            (80, 7400),
            (88, 7656),
            (96, 7640),
            (104, 7648),
        ] {
            put(pos, v);
        }
        for (pos, v) in [
            (352, 32),
            (360, 24),
            (376, 40),
            (392, 184),
            (400, 48),
            (408, 40),
            (416, 32),
            (424, 56),
            (432, 40),
            (440, 32),
            (456, 48),
            (464, 56),
            (496, 32),
            (504, 40),
            (544, 48),
            (552, 32),
            (560, 56),
            (568, 300),
            (576, 200),
        ] {
            put(pos, v);
        }
        raw[..8].copy_from_slice(COOKIE);
        raw
    }

    #[test]
    fn free_threaded_object_fields_are_read_and_applied() {
        let d = parse(&ft_313()).expect("plausible");
        assert!(d.free_threaded);
        let o = d.objects.expect("object groups consistent");
        assert_eq!((o.header_size, o.ob_type, o.tuple_items), (32, 24, 40));
        let mut l = crate::python::tables::table_layout(d.version).expect("3.13 row");
        d.apply(&mut l);
        assert!(l.free_threaded);
        assert_eq!((l.ob_type, l.ob_size, l.dict.ma_keys), (24, 32, 48));
        assert_eq!(l.unicode.ascii_size, 56);
    }

    #[test]
    fn inconsistent_object_groups_are_ignored() {
        let mut raw = ft_313();
        raw[360..368].copy_from_slice(&8u64.to_le_bytes()); // ob_type no longer header - 8
        let d = parse(&raw).expect("plausible");
        assert!(d.objects.is_none());
    }
}

/// PEP 768's fields (3.14+): where a debugger asks a thread to run a script. The group is the
/// last of the table (read off the 3.14.10 and 3.15.2 DWARF: at 712 of 760 bytes, 840 of 888).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebuggerSupport {
    /// In a thread state: the eval-breaker word.
    pub eval_breaker: u64,
    /// In a thread state: `struct _remote_debugger_support`.
    pub remote_debugger_support: u64,
    /// In an interpreter state: 1 unless remote debugging is disabled.
    pub remote_debugging_enabled: u64,
    /// In `_remote_debugger_support`: the int flag, and the path buffer and its size.
    pub debugger_pending_call: u64,
    pub debugger_script_path: u64,
    pub debugger_script_path_size: u64,
}

/// `Py_MAX_SCRIPT_PATH_SIZE`: the path buffer, NUL included.
pub const SCRIPT_PATH_SIZE: u64 = 512;

/// The debugger-support group of a 3.14+ table, when it validates (None before 3.14).
pub fn debugger_support(raw: &[u8]) -> Option<DebuggerSupport> {
    if raw.get(..8)? != COOKIE {
        return None;
    }
    let version = Version::from_hex(raw.u64_at(8));
    let table_size = match version.minor {
        14 => 760,
        15 => 888,
        _ => return None,
    };
    let at = table_size - 48;
    let field = |i: usize| -> Option<u64> {
        let start = at + 8 * i;
        Some(u64::from_le_bytes(
            raw.get(start..start + 8)?.try_into().ok()?,
        ))
    };
    let d = DebuggerSupport {
        eval_breaker: field(0)?,
        remote_debugger_support: field(1)?,
        remote_debugging_enabled: field(2)?,
        debugger_pending_call: field(3)?,
        debugger_script_path: field(4)?,
        debugger_script_path_size: field(5)?,
    };
    // Offsets inside a thread state (under 4 KiB in every version) and the path buffer's
    // known size: a table of another shape fails here rather than steer a write.
    let small = |v: u64| v < 4096;
    (d.debugger_script_path_size == SCRIPT_PATH_SIZE
        && small(d.eval_breaker)
        && small(d.remote_debugger_support)
        && small(d.debugger_pending_call)
        && small(d.debugger_script_path)
        && d.remote_debugging_enabled < (1 << 20))
        .then_some(d)
}
