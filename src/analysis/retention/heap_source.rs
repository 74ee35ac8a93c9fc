//! What the whole-heap analyses ask besides the captured graph: roots, type names and label
//! text. A live process (or core) answers through a view while its graph is captured
//! (`LiveSource`); a captured graph answers from its tables (`heap_graph::DumpSource`), in the
//! same order and words, so every analysis gives the same output on either.

use crate::analysis::retention::{self, Namer};
use crate::heap::frames::file_names::FileNames;
use crate::heap::graph::thread_roots::{self, FrameRoot, FrameRootStats};
use crate::heap::graph::Label;
use crate::heap::objects::types::TypeTable;
use crate::process::View;
use crate::python::Python;
use std::rc::Rc;

/// The questions the retention tree, the flamegraph and `why` ask of a heap, beyond its graph.
pub trait HeapSource {
    /// Modules as roots, `__main__` first: (index into `objects`, module name).
    fn module_roots(&mut self, objects: &super::addr_set::AddrSet) -> Vec<(u32, String)>;
    /// What thread frames hold, innermost frame first within a thread.
    fn frame_roots(&mut self) -> (Vec<FrameRoot>, FrameRootStats);
    /// A type's name as `repr(type)` prints it; None when it is not a type.
    fn type_name(&mut self, tp: u64) -> Option<Rc<str>>;
    /// The edge's text: `.attr`, `['key']`, `[*]`, `[…]`.
    fn label(&mut self, label: Label) -> String;
}

/// A live process (or core), read through a view.
pub struct LiveSource<'a, 'm> {
    pub view: &'a mut View<'m>,
    pub py: &'a Python,
    pub types: &'a mut TypeTable,
    namer: Namer<'a>,
    /// `--full-filenames`: frame roots name their files whole.
    pub full_filenames: bool,
    /// The frame roots' shortened file labels with their whole paths (`FileNames::full_paths`),
    /// once `frame_roots` ran.
    pub files: std::collections::BTreeMap<String, String>,
}

impl<'a, 'm> LiveSource<'a, 'm> {
    pub fn new(
        view: &'a mut View<'m>,
        py: &'a Python,
        types: &'a mut TypeTable,
    ) -> LiveSource<'a, 'm> {
        LiveSource {
            view,
            py,
            types,
            namer: Namer::new(py),
            full_filenames: false,
            files: Default::default(),
        }
    }

    /// Frame roots with whole file paths (`--full-filenames`) or not.
    pub fn with_full_filenames(mut self, full: bool) -> Self {
        self.full_filenames = full;
        self
    }

    /// An attribute or key name as paths show it (`…` when not identifier-like).
    pub fn name(&mut self, ptr: u64) -> Rc<str> {
        self.namer.name(self.view, ptr)
    }
}

impl HeapSource for LiveSource<'_, '_> {
    fn module_roots(&mut self, objects: &super::addr_set::AddrSet) -> Vec<(u32, String)> {
        retention::module_roots(self.view, self.py, objects)
    }

    fn frame_roots(&mut self) -> (Vec<FrameRoot>, FrameRootStats) {
        let mut names = FileNames::of_target(self.view, self.py, self.types, self.full_filenames);
        let roots = thread_roots::frame_roots(self.view, self.py, self.types, &mut names);
        self.files = names.full_paths();
        roots
    }

    fn type_name(&mut self, tp: u64) -> Option<Rc<str>> {
        self.types
            .get(self.view, &self.py.layout, tp)
            .map(|t| t.name.clone())
    }

    fn label(&mut self, label: Label) -> String {
        self.namer.label(self.view, label)
    }
}
