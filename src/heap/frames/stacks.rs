//! Python stacks of every thread, read from outside while the target runs.
//!
//! A thread state gives the innermost frame; frames link to their callers. From 3.11 on, plain
//! function frames live in the thread's data stack, so one read of `[chunk, top)` serves most
//! of a stack; other frames (older chunks, generators, frame objects) cost one small read each.
//! Code objects are named once and cached by address, with their line table decoded: a tick
//! costs a handful of reads, and each frame's current line a binary search.
//!
//! Everything read is hostile input: pointers are checked for alignment, loops are bounded, a
//! frame whose code is not a code object ends nothing but is counted and skipped.

use crate::heap::frames::line_table::{LineTable, MAX_TABLE_BYTES};
use crate::heap::objects::pyobj::{decode_chars, decode_str_header};
use crate::process::{Bytes, Memory, MemoryExt};
use crate::python::frames_layout::{CurrentFrame, FrameLayout, GilBase, InstrAt};
use crate::python::{Layout, Python};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

/// Deepest stack we follow; deeper ones are cut (innermost frames kept) and counted.
pub const MAX_DEPTH: usize = 512;
/// Most threads we list per interpreter: a corrupted `next` chain cannot spin forever.
pub const MAX_THREADS: usize = 4096;
/// Longest name or file name we decode.
const MAX_NAME_CHARS: u64 = 1024;
/// Largest data-stack extent we read in one go (the first chunk is 16 KiB; deep recursion
/// grows later chunks, which are read frame by frame instead).
const MAX_CHUNK_READ: u64 = 256 << 10;
/// A name read speculatively with its header: most names fit.
const SHORT_STR_READ: usize = 160;

/// One Python frame, as a person reads it: `qualname (file:line)`, the line it is executing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Frame {
    /// `co_qualname` (3.11+) or `co_name`.
    pub name: String,
    pub file: String,
    /// The line being executed (for a caller: the line of the call), from the frame's
    /// instruction and the code object's line table; the function's first line when the
    /// table gives none.
    pub line: u32,
    /// First line of the function (the code object's `co_firstlineno`): with `name` and `file`,
    /// the function's identity, the same whichever of its lines runs.
    pub first_line: u32,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}:{})", self.name, self.file, self.line)
    }
}

/// Index of a function (name, file, first line) in a `StackReader`'s table.
type FuncId = u32;

/// Where a frame is in its code: a byte offset, or a pointer into the code object's bytecode.
#[derive(Debug, Clone, Copy)]
enum Instr {
    Offset(i64),
    Pointer(u64),
}

/// Index of a `Frame` in a `StackReader`'s table: stacks are cheap vectors of these.
pub type FrameId = u32;

/// The GIL as one read sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GilState {
    /// The thread state that took it last.
    pub holder: u64,
    /// Held now.
    pub locked: bool,
    /// Changes of holder since the interpreter started.
    pub switches: u64,
}

#[derive(Debug, Clone)]
pub struct ThreadStack {
    pub tstate: u64,
    /// `threading.get_ident()` of the thread.
    pub thread_id: u64,
    /// The kernel's id (3.11+).
    pub native_thread_id: Option<u64>,
    /// Holds the GIL now.
    pub holds_gil: bool,
    /// Innermost frame first.
    pub frames: Vec<FrameId>,
    /// Where each of `frames` lives and the code object it runs (same order): what the
    /// retention roots read a frame's local variables from.
    pub located: Vec<FrameAt>,
    /// The chain ended where a thread's first frame ends it (a null link), not on a pointer
    /// that could not be read, a frame linking to itself, or the depth limit: read while the
    /// thread ran on, a stack can come out cut (a few innermost frames, no root).
    pub whole: bool,
}

/// The address of a frame (a `PyFrameObject` or a `_PyInterpreterFrame`) and of its code object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAt {
    pub addr: u64,
    pub code: u64,
}

/// What the reader skipped or cut, for reports.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct StackStats {
    pub stacks: u64,
    pub frames: u64,
    /// Frames pushed by C code (shim/entry frames) or running the interpreter's own shim
    /// code, not Python code.
    pub c_frames: u64,
    /// Frames whose code pointer was not a code object (torn read, corruption).
    pub bad_frames: u64,
    /// Chains that ended on an unreadable or misaligned frame pointer.
    pub broken_chains: u64,
    /// Stacks cut at `MAX_DEPTH`.
    pub truncated: u64,
    /// Code objects named (cache misses).
    pub code_loads: u64,
}

/// What a code address turned out to hold.
#[derive(Debug, Clone)]
enum CodeKind {
    /// The function and the code object's decoded line table (None: unreadable).
    User(FuncId, Option<Rc<LineTable>>),
    /// The interpreter's own shim code: the frame is skipped.
    Shim,
}

pub struct StackReader {
    frames: FrameLayout,
    code_type: u64,
    str_type: u64,
    /// Code object address → its function (None: not a code object).
    codes: HashMap<u64, Option<CodeKind>>,
    bytes_type: u64,
    table: Vec<Frame>,
    /// Functions by identity, and frames by (function, current line).
    funcs: Vec<(String, String, u32)>,
    func_ids: HashMap<(String, String, u32), FuncId>,
    ids: HashMap<(FuncId, u32), FrameId>,
    pub stats: StackStats,
}

impl StackReader {
    pub fn new(py: &Python) -> StackReader {
        StackReader {
            frames: py.layout.frames,
            code_type: py.binary.symbol("PyCode_Type").unwrap_or(0),
            str_type: py.binary.symbol("PyUnicode_Type").unwrap_or(0),
            bytes_type: py.binary.symbol("PyBytes_Type").unwrap_or(0),
            codes: HashMap::new(),
            table: Vec::new(),
            funcs: Vec::new(),
            func_ids: HashMap::new(),
            ids: HashMap::new(),
            stats: StackStats::default(),
        }
    }

    pub fn frame(&self, id: FrameId) -> &Frame {
        &self.table[id as usize]
    }

    /// The type pointer of code objects (0 when the symbol is not known).
    pub fn code_type(&self) -> u64 {
        self.code_type
    }

    /// The function a code object is: (name, file, first line, last line); None when `code` is
    /// not a readable code object of Python source (or is the interpreter's shim).
    pub fn code_function(
        &mut self,
        mem: &dyn Memory,
        l: &Layout,
        code: u64,
    ) -> Option<(String, String, u32, u32)> {
        let CodeKind::User(func, lines) = self.load_code(mem, l, code)? else {
            return None;
        };
        let (name, file, first) = self.funcs[func as usize].clone();
        let last = lines.map_or(first, |t| t.last_line().max(first));
        Some((name, file, first, last))
    }

    /// Forget which address holds which code object (frame ids stay valid). A long recording
    /// calls this now and then: a freed code object's address may be reused by another.
    pub fn forget_code_addresses(&mut self) {
        self.codes.clear();
    }

    /// The thread state that took the GIL last, and whether the GIL is held now.
    pub fn gil(&self, mem: &dyn Memory, py: &Python) -> Option<(u64, bool)> {
        self.gil_state(mem, py).map(|g| (g.holder, g.locked))
    }

    /// `gil`, and how many times the GIL has changed hands (one read).
    pub fn gil_state(&self, mem: &dyn Memory, py: &Python) -> Option<GilState> {
        let g = self.frames.gil;
        let base = match g.base {
            GilBase::Runtime => py.runtime,
            GilBase::Interpreter => *py.interpreters.first()?,
        };
        let lo = g.locked.min(g.last_holder);
        let hi = g.locked.max(g.last_holder).max(g.switch_number()) + 8;
        let b = mem.bytes(base.wrapping_add(lo), (hi - lo) as usize).ok()?;
        let holder = b.u64_at((g.last_holder - lo) as usize);
        let locked = b.u32_at((g.locked - lo) as usize) != 0;
        let switches = b.u64_at((g.switch_number() - lo) as usize);
        (holder != 0 && holder.is_multiple_of(8)).then_some(GilState {
            holder,
            locked,
            switches,
        })
    }

    /// Every thread state of every interpreter, newest thread first within an interpreter.
    pub fn thread_states(&self, mem: &dyn Memory, py: &Python) -> Vec<u64> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for &interp in &py.interpreters {
            let mut cur = mem
                .u64(interp.wrapping_add(py.layout.interp.threads_head))
                .unwrap_or(0);
            let mut n = 0;
            while cur != 0 && cur.is_multiple_of(8) && n < MAX_THREADS && seen.insert(cur) {
                out.push(cur);
                n += 1;
                cur = cur
                    .checked_add(self.frames.tstate.next)
                    .and_then(|at| mem.u64(at).ok())
                    .unwrap_or(0);
            }
        }
        out
    }

    /// Stacks of every thread, the GIL holder marked.
    pub fn all_threads(&mut self, mem: &dyn Memory, py: &Python) -> Vec<ThreadStack> {
        let gil = self.gil(mem, py);
        self.thread_states(mem, py)
            .into_iter()
            .filter_map(|ts| {
                let mut t = self.thread(mem, py, ts)?;
                t.holds_gil = gil == Some((t.tstate, true));
                Some(t)
            })
            .collect()
    }

    /// One thread's identity and stack (innermost first). None when its state is unreadable.
    pub fn thread(&mut self, mem: &dyn Memory, py: &Python, tstate: u64) -> Option<ThreadStack> {
        let t = self.frames.tstate;
        let tb = mem.bytes(tstate, t.read_len() as usize).ok()?;
        let innermost = match t.current_frame {
            CurrentFrame::InThreadState(off) => tb.u64_at(off as usize),
            CurrentFrame::ViaCFrame {
                cframe,
                current_frame,
            } => match tb.u64_at(cframe as usize) {
                0 => 0,
                cf if cf.is_multiple_of(8) => cf
                    .checked_add(current_frame)
                    .and_then(|at| mem.u64(at).ok())
                    .unwrap_or(0),
                _ => 0,
            },
        };
        let datastack = t.datastack.and_then(|(chunk_off, top_off)| {
            let chunk = tb.u64_at(chunk_off as usize);
            let top = tb.u64_at(top_off as usize);
            (chunk != 0 && top > chunk && top - chunk <= MAX_CHUNK_READ)
                .then(|| mem.bytes(chunk, (top - chunk) as usize).ok())
                .flatten()
                .map(|bytes| (chunk, bytes))
        });
        let (frames, located, whole) = self.walk(mem, &py.layout, innermost, datastack.as_ref());
        Some(ThreadStack {
            tstate,
            thread_id: tb.u64_at(t.thread_id as usize),
            native_thread_id: t.native_thread_id.map(|o| tb.u64_at(o as usize)),
            holds_gil: false,
            frames,
            located,
            whole,
        })
    }

    /// Follow the frame chain from `innermost`. `datastack` is the thread's current data-stack
    /// extent, already read: frames inside it cost no syscall.
    fn walk(
        &mut self,
        mem: &dyn Memory,
        l: &Layout,
        innermost: u64,
        datastack: Option<&(u64, Vec<u8>)>,
    ) -> (Vec<FrameId>, Vec<FrameAt>, bool) {
        let f = self.frames.frame;
        let size = f.size as usize;
        let mut out = Vec::new();
        let mut located = Vec::new();
        let mut cur = innermost;
        let mut steps = 0;
        let mut buf = vec![0u8; size];
        let mut whole = true;
        self.stats.stacks += 1;
        while cur != 0 {
            if steps == MAX_DEPTH {
                self.stats.truncated += 1;
                whole = false;
                break;
            }
            steps += 1;
            if !cur.is_multiple_of(8) {
                self.stats.broken_chains += 1;
                whole = false;
                break;
            }
            let local = datastack.and_then(|(start, bytes)| {
                let off = cur.checked_sub(*start)? as usize;
                bytes.get(off..off + size)
            });
            let fb: &[u8] = match local {
                Some(b) => b,
                None => {
                    if mem.read(cur, &mut buf).is_err() {
                        self.stats.broken_chains += 1;
                        whole = false;
                        break;
                    }
                    &buf
                }
            };
            let code = fb.u64_at(f.code as usize) & !3;
            let prev = fb.u64_at(f.previous as usize);
            let instr = match f.instr {
                InstrAt::LastiBytes(o) => Instr::Offset(i64::from(fb.u32_at(o as usize) as i32)),
                InstrAt::LastiUnits(o) => {
                    Instr::Offset(i64::from(fb.u32_at(o as usize) as i32).saturating_mul(2))
                }
                InstrAt::Pointer(o) => Instr::Pointer(fb.u64_at(o as usize)),
            };
            let owner = f.owner.map(|o| fb.u8_at(o as usize));
            let c_owned = matches!((owner, f.first_c_owner), (Some(o), Some(c)) if o >= c);
            if c_owned {
                self.stats.c_frames += 1;
            } else {
                match self.code_frame(mem, l, code, instr) {
                    Some(Some(id)) => {
                        out.push(id);
                        located.push(FrameAt { addr: cur, code });
                        self.stats.frames += 1;
                    }
                    Some(None) => self.stats.c_frames += 1,
                    None => self.stats.bad_frames += 1,
                }
            }
            if prev == cur {
                self.stats.broken_chains += 1;
                whole = false;
                break;
            }
            cur = prev;
        }
        (out, located, whole)
    }

    /// The frame of a code object at an instruction, the code named and its line table decoded
    /// once per address: Some(None) for the interpreter's shim code, None when `code` is not a
    /// readable code object.
    fn code_frame(
        &mut self,
        mem: &dyn Memory,
        l: &Layout,
        code: u64,
        instr: Instr,
    ) -> Option<Option<FrameId>> {
        let kind = match self.codes.get(&code) {
            Some(known) => known.clone(),
            None => {
                self.stats.code_loads += 1;
                let kind = self.load_code(mem, l, code);
                // Cache only what we could read: a torn read is retried next time.
                if kind.is_some() || code == 0 || !code.is_multiple_of(8) {
                    self.codes.insert(code, kind.clone());
                }
                kind
            }
        };
        match kind? {
            CodeKind::Shim => Some(None),
            CodeKind::User(func, lines) => {
                let offset = match instr {
                    Instr::Offset(o) => o,
                    Instr::Pointer(p) => {
                        let start = code.wrapping_add(self.frames.code.code_start);
                        p.wrapping_sub(start) as i64
                    }
                };
                let first_line = self.funcs[func as usize].2;
                let line = match (&lines, u64::try_from(offset)) {
                    (Some(t), Ok(off)) => t.line_at(off),
                    _ => 0,
                };
                let line = if line == 0 { first_line } else { line };
                Some(Some(self.frame_id(func, line)))
            }
        }
    }

    fn frame_id(&mut self, func: FuncId, line: u32) -> FrameId {
        if let Some(&id) = self.ids.get(&(func, line)) {
            return id;
        }
        let (name, file, first_line) = self.funcs[func as usize].clone();
        let id = self.table.len() as FrameId;
        self.table.push(Frame {
            name,
            file,
            line,
            first_line,
        });
        self.ids.insert((func, line), id);
        id
    }

    fn load_code(&mut self, mem: &dyn Memory, l: &Layout, code: u64) -> Option<CodeKind> {
        if code == 0 || !code.is_multiple_of(8) {
            return None;
        }
        let c = self.frames.code;
        let b = mem.bytes(code, c.read_len() as usize).ok()?;
        if b.u64_at(l.ob_type as usize) != self.code_type {
            return None;
        }
        if let Some((off, bit)) = c.shim_flag {
            if b.u32_at(off as usize) & bit != 0 {
                return Some(CodeKind::Shim);
            }
        }
        let name_ptr = c
            .qualname
            .map_or(b.u64_at(c.name as usize), |q| b.u64_at(q as usize));
        let name = self.read_str(mem, l, name_ptr)?;
        let file = self.read_str(mem, l, b.u64_at(c.filename as usize))?;
        let first_line = b.u32_at(c.firstlineno as usize);
        let lines = self
            .read_bytes(mem, l, b.u64_at(c.linetable as usize))
            .map(|t| Rc::new(LineTable::decode(c.line_format, &t, first_line)));
        let key = (name, file, first_line);
        let func = match self.func_ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.funcs.len() as FuncId;
                self.funcs.push(key.clone());
                self.func_ids.insert(key, id);
                id
            }
        };
        Some(CodeKind::User(func, lines))
    }

    /// A bytes object's contents (a line table), bounded.
    fn read_bytes(&self, mem: &dyn Memory, l: &Layout, addr: u64) -> Option<Vec<u8>> {
        if addr == 0 || !addr.is_multiple_of(8) || self.bytes_type == 0 {
            return None;
        }
        let head = mem.bytes(addr, (l.ob_size + 8) as usize).ok()?;
        if head.u64_at(l.ob_type as usize) != self.bytes_type {
            return None;
        }
        let len = head.u64_at(l.ob_size as usize);
        if len > MAX_TABLE_BYTES {
            return None;
        }
        let data = addr.checked_add(l.fields.bytes_sval)?;
        mem.bytes(data, len as usize).ok().map(|b| b.to_vec())
    }

    /// A str object's text, with one read when it is short (the usual case).
    fn read_str(&self, mem: &dyn Memory, l: &Layout, addr: u64) -> Option<String> {
        if addr == 0 || !addr.is_multiple_of(8) {
            return None;
        }
        let head_len = l.unicode.unicode_size as usize;
        let b = mem
            .bytes(addr, SHORT_STR_READ)
            .or_else(|_| mem.bytes(addr, head_len))
            .ok()?;
        if b.u64_at(l.ob_type as usize) != self.str_type {
            return None;
        }
        let h = decode_str_header(&b, l, addr)?;
        if h.length > MAX_NAME_CHARS {
            return None;
        }
        let nbytes = (h.length * h.kind as u64) as usize;
        let local = h
            .data
            .checked_sub(addr)
            .and_then(|off| b.get(off as usize..off as usize + nbytes));
        Some(match local {
            Some(raw) => decode_chars(raw, h.kind),
            None => decode_chars(&mem.bytes(h.data, nbytes).ok()?, h.kind),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_print_like_tracebacks_name_them() {
        let f = Frame {
            name: "Server.handle".into(),
            file: "/srv/app.py".into(),
            line: 42,
            first_line: 40,
        };
        assert_eq!(f.to_string(), "Server.handle (/srv/app.py:42)");
    }
}
