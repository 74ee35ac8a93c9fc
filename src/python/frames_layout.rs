//! Where Python stacks live: thread states, frames, code objects and the GIL, per version.
//!
//! One `FrameLayout` is part of the target's `Layout`. The rows below were read from the DWARF of
//! the pyenv builds 3.8.18–3.13.0 and of Debian's 3.11.2 / 3.13.5 / 3.14.10 / 3.15.2 debug files
//! (`p &((PyThreadState*)0)->next` and friends in gdb). From 3.13 on, the runtime's own debug
//! offsets (thread_state, interpreter_frame, code_object and GIL groups) override the table, see
//! `apply_debug_offsets`. The stack walker in `heap::frames::stacks` only reads this value.
//!
//! Adding a CPython version: copy the nearest row, compare with the new build's DWARF, then run
//! `pymemspy dump --pid` on it and the `stacks` test.

use super::layout::Version;
use crate::process::Bytes;
use serde::Serialize;

/// How a thread state leads to its innermost frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CurrentFrame {
    /// A frame pointer stored in the thread state itself: 3.8–3.10 `tstate->frame` (a
    /// `PyFrameObject`), 3.13+ `tstate->current_frame` (a `_PyInterpreterFrame`).
    InThreadState(u64),
    /// 3.11/3.12: `tstate->cframe` points at a `_PyCFrame` (usually on the C stack) whose
    /// `current_frame` is the innermost `_PyInterpreterFrame`.
    ViaCFrame { cframe: u64, current_frame: u64 },
}

/// Fields of `PyThreadState` the walker reads, all from one read of its first `read_len` bytes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ThreadStateLayout {
    pub next: u64,
    /// `pthread_self()` of the thread: `threading.get_ident()`.
    pub thread_id: u64,
    /// The kernel's thread id (`threading.get_native_id()`); not kept before 3.11.
    pub native_thread_id: Option<u64>,
    pub current_frame: CurrentFrame,
    /// 3.11+: `datastack_chunk` and `datastack_top` (the next free slot of that chunk). Frames
    /// of plain function calls live in `[chunk, top)`, which one read covers.
    pub datastack: Option<(u64, u64)>,
}

impl ThreadStateLayout {
    /// Bytes of the thread state to read to see every field above.
    pub fn read_len(&self) -> u64 {
        let mut end = self.next.max(self.thread_id);
        if let Some(n) = self.native_thread_id {
            end = end.max(n);
        }
        end = end.max(match self.current_frame {
            CurrentFrame::InThreadState(o) => o,
            CurrentFrame::ViaCFrame { cframe, .. } => cframe,
        });
        if let Some((chunk, top)) = self.datastack {
            end = end.max(chunk).max(top);
        }
        end + 8
    }
}

/// One frame: a `PyFrameObject` (3.8–3.10) or a `_PyInterpreterFrame` (3.11+).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FrameFields {
    /// Bytes to read per frame (covers every field below).
    pub size: u64,
    /// The calling frame (`f_back` / `previous`).
    pub previous: u64,
    /// The code object (`f_code` / `f_executable`). Since 3.14 it is a `_PyStackRef` with tag
    /// bits; pointers are 8-aligned in every version, so the walker masks the low bits always.
    pub code: u64,
    /// `owner` byte of an interpreter frame (3.11+).
    pub owner: Option<u64>,
    /// Owners from this value up are frames the C code pushed (3.12/3.13 `FRAME_OWNED_BY_CSTACK`
    /// shims = 3; 3.14 `FRAME_OWNED_BY_INTERPRETER` = 3 and `_CSTACK` = 4; 3.15 `_INTERPRETER`
    /// = 3): not Python code, skipped.
    pub first_c_owner: Option<u8>,
    /// Where the frame says which instruction it is at: what its current line is computed from.
    pub instr: InstrAt,
}

/// How a frame records the instruction it executes (CPython's `PyFrame_GetLineNumber` reads the
/// same field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InstrAt {
    /// 3.8/3.9 `f_lasti`: an int, a byte offset into `co_code`.
    LastiBytes(u64),
    /// 3.10 `f_lasti`: an int, an index in code units (2 bytes).
    LastiUnits(u64),
    /// 3.11/3.12 `prev_instr`, 3.13+ `instr_ptr`: a pointer into the code object's own
    /// `co_code_adaptive` (at `CodeLayout::code_start`).
    Pointer(u64),
}

/// The encoding of a code object's line table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LineFormat {
    /// 3.8/3.9 `co_lnotab`: (byte delta, signed line delta) pairs.
    Lnotab,
    /// 3.10 `co_linetable` (PEP 626): (byte delta, signed line delta or -128 for none) pairs.
    Pep626,
    /// 3.11+ `co_linetable`, the location table: one entry per run of code units.
    Locations,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CodeLayout {
    pub filename: u64,
    pub name: u64,
    /// 3.11+; before that a frame is named by `co_name`.
    pub qualname: Option<u64>,
    /// An `int` field.
    pub firstlineno: u64,
    /// 3.13+: `co_flags` (an int) and the bit that marks the interpreter's own shim code
    /// (`CO_NO_MONITORING_EVENTS`, set on the `__init__` cleanup frame pushed between a class
    /// call and its `__init__`): such frames are not user code and are skipped.
    pub shim_flag: Option<(u64, u32)>,
    /// The line table (a bytes object: `co_lnotab` before 3.10, `co_linetable` after).
    pub linetable: u64,
    pub line_format: LineFormat,
    /// 3.11+: where the bytecode starts in the code object (`co_code_adaptive`, which is also
    /// `code.__basicsize__`); the frame's instruction pointer is relative to it.
    pub code_start: u64,
}

impl CodeLayout {
    pub fn read_len(&self) -> u64 {
        self.filename
            .max(self.name)
            .max(self.qualname.unwrap_or(0))
            .max(self.firstlineno)
            .max(self.shim_flag.map_or(0, |(off, _)| off))
            .max(self.linetable)
            + 8
    }
}

/// Where `struct _gil_runtime_state` sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GilBase {
    /// 3.8–3.11: `_PyRuntime.ceval.gil`, one GIL for the process.
    Runtime,
    /// 3.12+: `interp->_gil`, the main interpreter's own GIL.
    Interpreter,
}

/// Which thread runs Python: `last_holder` is the thread state that took the GIL last (it stays
/// set while the GIL is released, which is what lets us charge allocations made just before a
/// sleep), `locked` says whether it is held now. Both exist in every version 3.8–3.15; for
/// ≤3.11 `_PyRuntime.gilstate.tstate_current` would also do, but it is NULL while released.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GilLayout {
    pub base: GilBase,
    /// `locked`, an int, from the base.
    pub locked: u64,
    /// `last_holder`, a `PyThreadState*`, from the base.
    pub last_holder: u64,
}

impl GilLayout {
    /// `switch_number`, the count of changes of holder: the `unsigned long` right after
    /// `locked` (an int, padded to 8) in every version 3.8–3.15.
    pub fn switch_number(&self) -> u64 {
        self.locked + 8
    }
}

/// Which names a code object gives its frame's slots, in slot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SlotNames {
    /// 3.11+: `co_localsplusnames`, one tuple naming every local, cell and free slot (its
    /// length is `co_nlocalsplus`).
    LocalsPlus { names: u64 },
    /// 3.8–3.10: `co_varnames` (co_nlocals of them), then `co_cellvars`, then `co_freevars`.
    Split {
        varnames: u64,
        cellvars: u64,
        freevars: u64,
    },
}

/// Where the top of a frame's value stack is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StackTop {
    /// 3.11–3.13 `stacktop`: an int, the number of live slots from `localsplus[0]`.
    SlotCount(u64),
    /// 3.14+ `stackpointer`: a pointer one past the last live slot.
    Pointer(u64),
    /// 3.8/3.9 `PyFrameObject.f_stacktop`: a pointer one past the last live slot of a frame
    /// that is not running (a suspended generator's, a new one's); NULL while it runs.
    ObjectPointer(u64),
    /// 3.10 `PyFrameObject.f_stackdepth`: an int, the live value-stack slots past the named
    /// ones of a frame that is not running; -1 while it runs.
    ObjectDepth(u64),
}

/// A frame's local variables, cells and value stack: the references a running function holds,
/// which make every thread's frames retention roots.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SlotLayout {
    /// Offset of the first slot from the frame (`f_localsplus` / `localsplus`).
    pub localsplus: u64,
    pub names: SlotNames,
    /// None: only named slots are read. 3.8–3.10 keep it in the frame object only while the
    /// frame does not run (`f_stacktop` NULL, `f_stackdepth` -1 then: named slots only); a
    /// suspended coroutine's value stack holds what it awaits.
    pub stack_top: Option<StackTop>,
    /// 3.8–3.10: a frame is a `PyFrameObject`, itself a GC object worth charging to its thread.
    pub frame_is_object: bool,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct FrameLayout {
    pub tstate: ThreadStateLayout,
    pub frame: FrameFields,
    pub code: CodeLayout,
    pub gil: GilLayout,
    pub slots: SlotLayout,
}

const CODE_38_310: CodeLayout = CodeLayout {
    filename: 104,
    name: 112,
    qualname: None,
    firstlineno: 40,
    shim_flag: None,
    // co_lnotab (3.8/3.9) and co_linetable (3.10) share the slot after co_name.
    linetable: 120,
    line_format: LineFormat::Lnotab,
    code_start: 0,
};

const CODE_311: CodeLayout = CodeLayout {
    filename: 112,
    name: 120,
    qualname: Some(128),
    firstlineno: 72,
    shim_flag: None,
    linetable: 136,
    line_format: LineFormat::Locations,
    code_start: 184,
};

/// 3.12 moved `co_firstlineno` up; unchanged since (3.13.0, 3.13.5, 3.14.10, 3.15.2).
const CODE_312: CodeLayout = CodeLayout {
    filename: 112,
    name: 120,
    qualname: Some(128),
    firstlineno: 68,
    shim_flag: None,
    linetable: 136,
    line_format: LineFormat::Locations,
    code_start: 192,
};

/// 3.13 added the `__init__` cleanup shim, marked by CO_NO_MONITORING_EVENTS (0x2000000) in
/// co_flags@48 (verified live on 3.14.10: flags 0x2000001 on `_Py_InitCleanup`).
/// co_code_adaptive: 200 in 3.13 (`code.__basicsize__`); the debug offsets say it too.
const CODE_313: CodeLayout = CodeLayout {
    shim_flag: Some((48, 0x0200_0000)),
    code_start: 200,
    ..CODE_312
};
/// 3.14 grew the code object by 8 bytes before co_code_adaptive (208).
const CODE_314_315: CodeLayout = CodeLayout {
    code_start: 208,
    ..CODE_313
};

/// `PyFrameObject`: f_back@24, f_code@32 in 3.8–3.10; f_lasti@104 in 3.8/3.9 (a byte
/// offset), @96 in 3.10 (f_stacktop became an int; a code-unit index).
const FRAME_OBJECT_38_39: FrameFields = FrameFields {
    size: 112,
    previous: 24,
    code: 32,
    owner: None,
    first_c_owner: None,
    instr: InstrAt::LastiBytes(104),
};
const FRAME_OBJECT_310: FrameFields = FrameFields {
    instr: InstrAt::LastiUnits(96),
    ..FRAME_OBJECT_38_39
};

/// 3.12/3.13 `_PyInterpreterFrame` (80 bytes): f_code/f_executable@0, previous@8, owner@70.
const IFRAME_312_313: FrameFields = FrameFields {
    size: 80,
    previous: 8,
    code: 0,
    owner: Some(70),
    first_c_owner: Some(3),
    instr: InstrAt::Pointer(56),
};

/// 3.14/3.15 `_PyInterpreterFrame` (88 bytes): stackpointer became a pointer, owner moved to 74.
const IFRAME_314_315: FrameFields = FrameFields {
    size: 88,
    previous: 8,
    code: 0,
    owner: Some(74),
    first_c_owner: Some(3),
    instr: InstrAt::Pointer(56),
};

/// 3.8–3.10: `f_localsplus` follows the fixed fields of `PyFrameObject` (checked live against
/// `id()` of a frame's arguments); co_varnames@72, co_freevars@80, co_cellvars@88;
/// f_stacktop@72 (3.8/3.9), f_stackdepth@80 (3.10).
const fn slots_38_310(localsplus: u64, stack_top: StackTop) -> SlotLayout {
    SlotLayout {
        localsplus,
        names: SlotNames::Split {
            varnames: 72,
            cellvars: 88,
            freevars: 80,
        },
        stack_top: Some(stack_top),
        frame_is_object: true,
    }
}

/// 3.11+: `co_localsplusnames`@96 in every version (checked live, 3.11.2–3.15.2); localsplus
/// and the stack top follow the interpreter frame's fixed fields.
const fn slots_311(localsplus: u64, stack_top: StackTop) -> SlotLayout {
    SlotLayout {
        localsplus,
        names: SlotNames::LocalsPlus { names: 96 },
        stack_top: Some(stack_top),
        frame_is_object: false,
    }
}

/// The table layout for a minor version (None when unknown; `tables.rs` then refuses it anyway).
/// Long: one arm per minor version, kept together so the versions' frame offsets read as one table.
pub fn table(version: Version) -> Option<FrameLayout> {
    let gil_runtime = |locked, last_holder| GilLayout {
        base: GilBase::Runtime,
        locked,
        last_holder,
    };
    let gil_interp = |locked, last_holder| GilLayout {
        base: GilBase::Interpreter,
        locked,
        last_holder,
    };
    let old_tstate = ThreadStateLayout {
        next: 8,
        thread_id: 176,
        native_thread_id: None,
        current_frame: CurrentFrame::InThreadState(24),
        datastack: None,
    };
    if version.major != 3 {
        return None;
    }
    Some(match version.minor {
        8 => FrameLayout {
            tstate: old_tstate,
            frame: FRAME_OBJECT_38_39,
            code: CODE_38_310,
            gil: gil_runtime(1168, 1160),
            slots: slots_38_310(360, StackTop::ObjectPointer(72)),
        },
        9 | 10 => FrameLayout {
            tstate: old_tstate,
            frame: if version.minor == 9 {
                FRAME_OBJECT_38_39
            } else {
                FRAME_OBJECT_310
            },
            code: CodeLayout {
                line_format: if version.minor == 9 {
                    LineFormat::Lnotab
                } else {
                    LineFormat::Pep626
                },
                ..CODE_38_310
            },
            gil: gil_runtime(368, 360),
            // 3.10's fixed fields end 8 bytes earlier (f_stacktop became an int f_stackdepth).
            slots: if version.minor == 9 {
                slots_38_310(360, StackTop::ObjectPointer(72))
            } else {
                slots_38_310(352, StackTop::ObjectDepth(80))
            },
        },
        11 => FrameLayout {
            tstate: ThreadStateLayout {
                next: 8,
                thread_id: 152,
                native_thread_id: Some(160),
                current_frame: CurrentFrame::ViaCFrame {
                    cframe: 56,
                    current_frame: 8,
                },
                datastack: Some((296, 304)),
            },
            // f_func@0 … f_code@32, frame_obj@40, previous@48, is_entry@68, owner@69. 3.11 has
            // no shim frames: every frame on the chain runs Python code.
            frame: FrameFields {
                size: 80,
                previous: 48,
                code: 32,
                owner: Some(69),
                first_c_owner: None,
                instr: InstrAt::Pointer(56),
            },
            code: CODE_311,
            gil: gil_runtime(376, 368),
            slots: slots_311(72, StackTop::SlotCount(64)),
        },
        12 => FrameLayout {
            tstate: ThreadStateLayout {
                next: 8,
                thread_id: 136,
                native_thread_id: Some(144),
                current_frame: CurrentFrame::ViaCFrame {
                    cframe: 56,
                    current_frame: 0,
                },
                datastack: Some((232, 240)),
            },
            frame: IFRAME_312_313,
            code: CODE_312,
            gil: gil_interp(1056, 1048),
            slots: slots_311(72, StackTop::SlotCount(64)),
        },
        13 => FrameLayout {
            tstate: ThreadStateLayout {
                next: 8,
                thread_id: 152,
                native_thread_id: Some(160),
                current_frame: CurrentFrame::InThreadState(72),
                datastack: Some((232, 240)),
            },
            frame: IFRAME_312_313,
            code: CODE_313,
            gil: gil_interp(7768, 7760),
            slots: slots_311(72, StackTop::SlotCount(64)),
        },
        14 => FrameLayout {
            tstate: ThreadStateLayout {
                next: 8,
                thread_id: 152,
                native_thread_id: Some(160),
                current_frame: CurrentFrame::InThreadState(72),
                datastack: Some((232, 240)),
            },
            frame: IFRAME_314_315,
            code: CODE_314_315,
            gil: gil_interp(7800, 7792),
            slots: slots_311(80, StackTop::Pointer(64)),
        },
        15 => FrameLayout {
            tstate: ThreadStateLayout {
                next: 8,
                thread_id: 176,
                native_thread_id: Some(184),
                current_frame: CurrentFrame::InThreadState(72),
                datastack: Some((256, 264)),
            },
            frame: IFRAME_314_315,
            code: CODE_314_315,
            gil: gil_interp(7752, 7744),
            slots: slots_311(80, StackTop::Pointer(64)),
        },
        _ => return None,
    })
}

/// Positions, inside `_Py_DebugOffsets`, of the groups we use (read off the debug builds of
/// 3.13.5, 3.14.10 and 3.15.2 with `ptype /o struct _Py_DebugOffsets`).
struct Positions {
    /// interpreter_state.gil_runtime_state, then _enabled, _locked, _holder follow.
    gil_runtime_state: usize,
    gil_locked: usize,
    gil_holder: usize,
    /// thread_state group: size, prev, next, interp, current_frame, ...
    ts_next: usize,
    ts_current_frame: usize,
    ts_thread_id: usize,
    ts_native_thread_id: usize,
    ts_datastack_chunk: usize,
    /// interpreter_frame group: size, previous, executable, instr_ptr, localsplus, owner.
    if_size: usize,
    if_previous: usize,
    if_executable: usize,
    if_instr_ptr: usize,
    if_owner: usize,
    if_localsplus: usize,
    /// 3.14+: the frame's stackpointer (after owner).
    if_stackpointer: Option<usize>,
    /// code_object group: size, filename, name, qualname, linetable, firstlineno.
    co_filename: usize,
    co_name: usize,
    co_qualname: usize,
    co_linetable: usize,
    co_firstlineno: usize,
    /// After argcount.
    co_localsplusnames: usize,
    /// After localspluskinds.
    co_code_adaptive: usize,
}

fn positions(minor: u8) -> Option<Positions> {
    // 3.14 added interpreter_state.threads_main (+8 from there on), code_object_generation and
    // tlbc_generation (+16 more before thread_state), interpreter_frame.stackpointer and
    // tlbc_index (+16 after it); 3.15 adds base_frame, last_profiled_frame(_seq) in thread_state
    // and holds_gil & co. plus err_stackitem after it.
    let (ip, ts, ifr, co) = match minor {
        13 => (48, 152, 224, 272),
        14 => (48, 176, 248, 312),
        15 => (48, 176, 312, 376),
        _ => return None,
    };
    let gil_runtime_state = ip + if minor >= 14 { 80 } else { 72 };
    let (ts_thread_id, ts_native, ts_chunk) = if minor >= 15 {
        (ts + 64, ts + 72, ts + 80)
    } else {
        (ts + 40, ts + 48, ts + 56)
    };
    Some(Positions {
        gil_runtime_state,
        gil_locked: gil_runtime_state + 16,
        gil_holder: gil_runtime_state + 24,
        ts_next: ts + 16,
        ts_current_frame: ts + 32,
        ts_thread_id,
        ts_native_thread_id: ts_native,
        ts_datastack_chunk: ts_chunk,
        if_size: ifr,
        if_previous: ifr + 8,
        if_executable: ifr + 16,
        if_instr_ptr: ifr + 24,
        if_owner: ifr + 40,
        if_localsplus: ifr + 32,
        if_stackpointer: (minor >= 14).then_some(ifr + 48),
        co_filename: co + 8,
        co_name: co + 16,
        co_qualname: co + 24,
        co_linetable: co + 32,
        co_firstlineno: co + 40,
        co_localsplusnames: co + 56,
        co_code_adaptive: co + 72,
    })
}

/// Let the runtime's debug offsets (3.13+, bytes read at `_PyRuntime`) override the table.
/// Values that do not look like offsets inside their structs are ignored, keeping the table's.
/// Returns true when applied. Long: read every offset, check them all, then assign them; kept whole
/// so nothing is assigned unless every value passed the checks.
pub fn apply_debug_offsets(raw: &[u8], version: Version, frames: &mut FrameLayout) -> bool {
    let Some(p) = positions(version.minor) else {
        return false;
    };
    if raw.len() < p.co_code_adaptive + 8 || version.major != 3 {
        return false;
    }
    let get = |pos: usize| raw.u64_at(pos);
    let small = |v: u64| v < 4096;
    let ts = [
        get(p.ts_next),
        get(p.ts_current_frame),
        get(p.ts_thread_id),
        get(p.ts_native_thread_id),
        get(p.ts_datastack_chunk),
    ];
    let fr = [
        get(p.if_size),
        get(p.if_previous),
        get(p.if_executable),
        get(p.if_owner),
        get(p.if_localsplus),
        p.if_stackpointer.map_or(0, get),
        get(p.if_instr_ptr),
    ];
    let co = [
        get(p.co_filename),
        get(p.co_name),
        get(p.co_qualname),
        get(p.co_firstlineno),
        get(p.co_localsplusnames),
        get(p.co_linetable),
        get(p.co_code_adaptive),
    ];
    let gil = [
        get(p.gil_runtime_state),
        get(p.gil_locked),
        get(p.gil_holder),
    ];
    let frame_ok = fr[0] > 0 && fr[0] <= 256 && fr[1..].iter().all(|&v| v < fr[0]);
    if !(ts.iter().all(|&v| small(v))
        && frame_ok
        && co.iter().all(|&v| small(v))
        && gil.iter().all(|&v| v < (1 << 20)))
    {
        return false;
    }
    let t = &mut frames.tstate;
    t.next = ts[0];
    t.current_frame = CurrentFrame::InThreadState(ts[1]);
    t.thread_id = ts[2];
    t.native_thread_id = Some(ts[3]);
    // datastack_top directly follows datastack_chunk in every version that has it.
    t.datastack = Some((ts[4], ts[4] + 8));
    frames.frame.size = fr[0];
    frames.frame.previous = fr[1];
    frames.frame.code = fr[2];
    frames.frame.owner = Some(fr[3]);
    frames.frame.instr = InstrAt::Pointer(fr[6]);
    // 3.13 has no stacktop in the debug offsets: the table's stays.
    frames.slots.localsplus = fr[4];
    if p.if_stackpointer.is_some() {
        frames.slots.stack_top = Some(StackTop::Pointer(fr[5]));
    }
    frames.slots.names = SlotNames::LocalsPlus { names: co[4] };
    frames.code = CodeLayout {
        filename: co[0],
        name: co[1],
        qualname: Some(co[2]),
        firstlineno: co[3],
        // Not in the debug offsets: the table's stays.
        shim_flag: frames.code.shim_flag,
        linetable: co[5],
        line_format: LineFormat::Locations,
        code_start: co[6],
    };
    // The debug offsets give the GIL fields as absolute offsets in the interpreter state.
    frames.gil = GilLayout {
        base: GilBase::Interpreter,
        locked: gil[1],
        last_holder: gil[2],
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_minor_has_a_row() {
        for minor in 8..=15 {
            let f = table(Version::new(3, minor, 0)).expect("row");
            assert!(f.tstate.read_len() <= 512);
            assert!(f.frame.previous < f.frame.size && f.frame.code < f.frame.size);
            assert_eq!(f.code.qualname.is_some(), minor >= 11);
            assert_eq!(f.tstate.datastack.is_some(), minor >= 11);
        }
        assert!(table(Version::new(3, 7, 0)).is_none());
    }

    /// The 3.14 debug offsets as a 3.14.10 process carries them must give back the table row.
    #[test]
    fn debug_offsets_agree_with_the_314_row() {
        let mut raw = vec![0u8; 760];
        let mut put = |pos: usize, v: u64| raw[pos..pos + 8].copy_from_slice(&v.to_le_bytes());
        put(128, 7784); // gil_runtime_state
        put(144, 7800); // locked
        put(152, 7792); // holder
        for (pos, v) in [(192, 8), (208, 72), (216, 152), (224, 160), (232, 232)] {
            put(pos, v);
        }
        for (pos, v) in [
            (248, 88),
            (256, 8),
            (264, 0),
            (280, 80),
            (288, 74),
            (296, 64),
            (272, 56),
        ] {
            put(pos, v);
        }
        for (pos, v) in [
            (320, 112),
            (328, 120),
            (336, 128),
            (344, 136),
            (352, 68),
            (368, 96),
            (384, 208),
        ] {
            put(pos, v);
        }
        let v = Version::new(3, 14, 10);
        let want = table(v).unwrap();
        let mut got = want;
        got.tstate.thread_id = 0;
        got.gil.locked = 0;
        got.slots.localsplus = 0;
        got.slots.stack_top = None;
        got.slots.names = SlotNames::LocalsPlus { names: 0 };
        assert!(apply_debug_offsets(&raw, v, &mut got));
        assert_eq!(format!("{want:?}"), format!("{got:?}"));
    }
}
