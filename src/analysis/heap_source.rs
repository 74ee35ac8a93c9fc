//! Where the retention tree and `why` read the heap from: a live process (through a `View`) or
//! a heap dump written earlier (`heap_graph::Graph`). Both answer the same questions in the
//! same order, so every analysis gives the same output on either.

use super::retention::{self, Namer};
use super::thread_roots::{self, FrameRoot, FrameRootStats};
use crate::heap::graph::{self, Label};
use crate::heap::native;
use crate::heap::sizes::getsizeof;
use crate::heap::types::TypeTable;
use crate::process::View;
use crate::python::Python;
use std::rc::Rc;

/// The questions the retention tree, the flamegraph and `why` ask of a heap.
pub trait HeapSource {
    /// Modules as roots, `__main__` first: (index into `objects`, module name).
    fn module_roots(&mut self, objects: &[u64]) -> Vec<(u32, String)>;
    /// What thread frames hold, innermost frame first within a thread.
    fn frame_roots(&mut self) -> (Vec<FrameRoot>, FrameRootStats);
    /// The type pointer, `sys.getsizeof` and native bytes of object `i` (at `obj`); None when
    /// its type does not validate.
    fn type_and_size(&mut self, i: u32, obj: u64) -> Option<TypeSize>;
    /// The labelled references out of object `i` (at `obj`), as (target address, label).
    fn edges(&mut self, i: u32, obj: u64, out: &mut Vec<(u64, Label)>);
    /// The same references as (target index, label), for a source that knows the indexes
    /// (a captured graph): true when it answered, false to have `edges` asked instead.
    fn edge_indexes(&mut self, _i: u32, _out: &mut Vec<(u32, Label)>) -> bool {
        false
    }
    /// A type's name as `repr(type)` prints it; None when it is not a type.
    fn type_name(&mut self, tp: u64) -> Option<Rc<str>>;
    /// The edge's text: `.attr`, `['key']`, `[*]`, `[…]`.
    fn label(&mut self, label: Label) -> String;
}

/// What one object is and weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeSize {
    pub tp: u64,
    /// `sys.getsizeof`.
    pub bytes: u64,
    /// Memory it owns outside itself (`heap::native`): numpy data, bytearray items...
    pub native: u64,
}

/// A live process (or core), read through a view.
pub struct LiveSource<'a, 'm> {
    pub view: &'a mut View<'m>,
    pub py: &'a Python,
    pub types: &'a mut TypeTable,
    namer: Namer<'a>,
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
        }
    }

    /// An attribute or key name as paths show it (`…` when not identifier-like).
    pub fn name(&mut self, ptr: u64) -> Rc<str> {
        self.namer.name(self.view, ptr)
    }
}

impl HeapSource for LiveSource<'_, '_> {
    fn module_roots(&mut self, objects: &[u64]) -> Vec<(u32, String)> {
        retention::module_roots(self.view, self.py, objects)
    }

    fn frame_roots(&mut self) -> (Vec<FrameRoot>, FrameRootStats) {
        thread_roots::frame_roots(self.view, self.py, self.types)
    }

    fn type_and_size(&mut self, _i: u32, obj: u64) -> Option<TypeSize> {
        let l = &self.py.layout;
        let tp = self.view.u64(obj.checked_add(l.ob_type)?)?;
        let info = self.types.get(self.view, l, tp)?;
        Some(TypeSize {
            tp,
            bytes: getsizeof(self.view, l, obj, info).unwrap_or(info.basicsize),
            native: native::native_of(self.view, l, obj, info),
        })
    }

    fn edges(&mut self, _i: u32, obj: u64, out: &mut Vec<(u64, Label)>) {
        let l = &self.py.layout;
        let Some(tp) = self.view.u64(obj + l.ob_type) else {
            return;
        };
        let Some(info) = self.types.get(self.view, l, tp).cloned() else {
            return;
        };
        graph::edges(self.view, l, obj, &info, out);
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
