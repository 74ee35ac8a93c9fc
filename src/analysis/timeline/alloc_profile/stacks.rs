//! The stacks new objects are charged to: read from the target, interned (a record keeps a
//! small id, not its frames), judged whole or cut off (`judge`), and known by their functions.

use super::judge::StackJudge;
use crate::heap::frames::file_names::FileNames;
use crate::heap::frames::stacks::{FrameId, StackReader, ThreadStack};
use crate::process::Memory;
use crate::python::Python;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};

pub(super) struct Stacks {
    pub reader: StackReader,
    ids: HashMap<Vec<FrameId>, u32>,
    table: Vec<Vec<FrameId>>,
    /// Which interned stacks are whole (see `StackJudge`).
    pub judge: StackJudge,
    /// `functions_of` per interned stack.
    function_sigs: HashMap<u32, u64>,
}

impl Stacks {
    pub(super) fn new(py: &Python) -> Stacks {
        Stacks {
            reader: StackReader::new(py),
            ids: HashMap::new(),
            table: Vec::new(),
            judge: StackJudge::default(),
            function_sigs: HashMap::new(),
        }
    }

    /// A thread's stack now, interned (None: no Python frame, or unreadable).
    pub(super) fn thread_stack(
        &mut self,
        mem: &dyn Memory,
        py: &Python,
        thread: u64,
    ) -> Option<u32> {
        let t = self.reader.thread(mem, py, thread)?;
        if t.frames.is_empty() {
            return None;
        }
        Some(self.intern_thread_stack(t))
    }

    /// Intern a thread's stack and tell the judge how it was read.
    pub(super) fn intern_thread_stack(&mut self, t: ThreadStack) -> u32 {
        let root = t.frames.last().map(|&f| {
            let f = self.reader.frame(f);
            (
                (f.name.clone(), f.file.clone(), f.first_line),
                f.name == "<module>",
            )
        });
        let (tstate, whole) = (t.tstate, t.whole);
        let id = self.intern(t.frames);
        self.judge.saw(id, tstate, whole, root);
        id
    }

    pub(super) fn intern(&mut self, frames: Vec<FrameId>) -> u32 {
        match self.ids.get(&frames) {
            Some(&id) => id,
            None => {
                let id = self.table.len() as u32;
                self.table.push(frames.clone());
                self.ids.insert(frames, id);
                id
            }
        }
    }

    /// The functions of an interned stack, whatever lines they are at.
    pub(super) fn functions_of(&mut self, stack: u32) -> u64 {
        if let Some(&h) = self.function_sigs.get(&stack) {
            return h;
        }
        let mut h = DefaultHasher::new();
        for &f in &self.table[stack as usize] {
            let f = self.reader.frame(f);
            h.write(f.name.as_bytes());
            h.write(f.file.as_bytes());
            h.write_u32(f.first_line);
        }
        let h = h.finish();
        self.function_sigs.insert(stack, h);
        h
    }

    /// An interned stack's frames as the profile shows them, root first (the reader lists
    /// the innermost first).
    pub(super) fn names(&self, stack: u32, files: &mut FileNames) -> Vec<String> {
        let mut names: Vec<String> = self.table[stack as usize]
            .iter()
            .rev()
            .map(|&f| files.frame(self.reader.frame(f)))
            .collect();
        if names.is_empty() {
            names.push("<no Python frame>".into());
        }
        names
    }
}
