//! Thread frames as retention roots: what each thread's running functions hold in their local
//! variables, cells and value stacks. An object kept alive only by a sleeping function's local
//! is reachable from no module; these roots name the thread, the frame and the variable.
//!
//! Stacks come from `heap::frames::stacks` (the same walker `dump` uses), slots from
//! `heap::frames::frame_slots`; thread names from `threading._active` when the program uses `threading`.

use crate::heap::frames::file_names::FileNames;
use crate::heap::frames::frame_slots::{frame_slots, Slot, SlotKind};
use crate::heap::frames::stacks::StackReader;
use crate::heap::graph::{self, Label};
use crate::heap::objects::pyobj::{
    dict_get_str, dict_items, is_identifier, read_small_int, read_str, MAX_NAME,
};
use crate::heap::objects::types::TypeTable;
use crate::process::View;
use crate::python::Python;
use rustc_hash::FxHashMap as HashMap;
use std::rc::Rc;

/// Longest thread name shown; longer or odd ones are left out (names are set by programs).
const MAX_THREAD_NAME: usize = 64;
/// Most `threading._active` entries read.
const MAX_THREADS: usize = 4096;

/// One object a frame holds, with the words that name where.
#[derive(Debug, Clone)]
pub struct FrameRoot {
    pub object: u64,
    /// `thread 4242 (MainThread)`.
    pub thread: Rc<str>,
    /// `frame handle_request (/srv/app.py:42)`.
    pub frame: Rc<str>,
    /// `local 'batch'`, `stack`, or `(frame object)`.
    pub slot: String,
}

/// What the walk read and skipped, for warnings.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameRootStats {
    pub threads: u64,
    pub frames: u64,
    /// Frames whose names or slots could not be read.
    pub unreadable_frames: u64,
}

/// Roots of every thread of every interpreter, innermost frame first within a thread (a value
/// held by several frames is charged to the innermost, the one using it now).
pub fn frame_roots(
    view: &mut View,
    py: &Python,
    types: &mut TypeTable,
    file_names: &mut FileNames,
) -> (Vec<FrameRoot>, FrameRootStats) {
    let l = &py.layout;
    let tuple_type = py.binary.symbol("PyTuple_Type").unwrap_or(0);
    let names = thread_names(view, py, types);
    let mut reader = StackReader::new(py);
    let threads = reader.all_threads(view.memory(), py);
    let mut stats = FrameRootStats::default();
    let mut out = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    for t in &threads {
        stats.threads += 1;
        let known = names.get(&t.thread_id);
        let tid = t
            .native_thread_id
            .or(known.and_then(|k| k.1))
            .unwrap_or(t.thread_id);
        let thread: Rc<str> = match known.and_then(|k| k.0.as_deref()) {
            Some(name) => format!("thread {tid} ({name})").into(),
            None => format!("thread {tid}").into(),
        };
        for (&id, &at) in t.frames.iter().zip(&t.located) {
            stats.frames += 1;
            let frame: Rc<str> = format!("frame {}", file_names.frame(reader.frame(id))).into();
            slots.clear();
            if !frame_slots(view, l, tuple_type, at, &mut slots) {
                stats.unreadable_frames += 1;
            }
            for s in &slots {
                let slot = match s.kind {
                    SlotKind::Named(name) => match read_str(view, l, name, 64) {
                        Some(n) if is_identifier(&n) => format!("local '{n}'"),
                        _ => "local".to_string(),
                    },
                    SlotKind::Stack => "stack".to_string(),
                };
                out.push(FrameRoot {
                    object: s.value,
                    thread: thread.clone(),
                    frame: frame.clone(),
                    slot,
                });
            }
            if l.frames.slots.frame_is_object {
                out.push(FrameRoot {
                    object: at.addr,
                    thread: thread.clone(),
                    frame: frame.clone(),
                    slot: "(frame object)".into(),
                });
            }
        }
    }
    (out, stats)
}

/// `threading.get_ident()` → (name, native id) from `threading._active`; empty when the
/// program never imported `threading`. `why`'s thread roots and `dump` name threads by it.
pub fn thread_names(
    view: &mut View,
    py: &Python,
    types: &mut TypeTable,
) -> HashMap<u64, (Option<String>, Option<u64>)> {
    let l = &py.layout;
    let mut out = HashMap::default();
    let active = py.interpreters.first().and_then(|&interp| {
        let modules = view
            .u64(interp.wrapping_add(l.interp.modules))
            .filter(|&m| m != 0)?;
        let threading = dict_get_str(view, l, modules, "threading")?;
        let globals = view
            .u64(threading.wrapping_add(l.fields.module_dict))
            .filter(|&d| d != 0)?;
        dict_get_str(view, l, globals, "_active")
    });
    let Some(active) = active else {
        return out;
    };
    let mut edges = Vec::new();
    for (k, thread) in dict_items(view, l, active)
        .unwrap_or_default()
        .into_iter()
        .take(MAX_THREADS)
    {
        if !is_type(view, py, types, k, "int") {
            continue;
        }
        let Some(ident) = read_small_int(view, l, k) else {
            continue;
        };
        let Some(info) = view
            .u64(thread.wrapping_add(l.ob_type))
            .and_then(|tp| types.get(view, l, tp).cloned())
        else {
            continue;
        };
        edges.clear();
        graph::edges(view, l, thread, &info, &mut edges);
        let (mut name, mut native) = (None, None);
        for &(value, label) in &edges {
            let Label::Attr(key) = label else {
                continue;
            };
            match read_str(view, l, key, MAX_NAME).as_deref() {
                Some("_name") if is_type(view, py, types, value, "str") => {
                    name = read_str(view, l, value, MAX_THREAD_NAME as u64)
                        .filter(|n| is_plain_name(n));
                }
                Some("_native_id") if is_type(view, py, types, value, "int") => {
                    native = read_small_int(view, l, value);
                }
                _ => {}
            }
        }
        out.insert(ident, (name, native));
    }
    out
}

fn is_type(view: &mut View, py: &Python, types: &mut TypeTable, obj: u64, name: &str) -> bool {
    let l = &py.layout;
    view.u64(obj.wrapping_add(l.ob_type))
        .and_then(|tp| types.get(view, l, tp))
        .is_some_and(|t| &*t.name == name)
}

/// Thread names as programs set them (`MainThread`, `Thread-3 (worker)`, `pool_0`): short,
/// printable, no quotes or control characters.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_THREAD_NAME
        && s.chars()
            .all(|c| c.is_alphanumeric() || " _-.()[]:/#@+".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_are_shown_only_when_plain() {
        assert!(is_plain_name("MainThread"));
        assert!(is_plain_name("Thread-3 (worker)"));
        assert!(!is_plain_name(""));
        assert!(!is_plain_name("token=\"abc\"\n"));
        assert!(!is_plain_name(&"x".repeat(65)));
    }
}
