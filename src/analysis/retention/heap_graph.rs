//! The heap as a graph captured once: objects sorted by address (type, `sys.getsizeof`), their
//! labelled references as integer arrays (CSR), edge labels interned into a string table, and
//! the roots (modules by name, thread frames with their slot names). A heap dump is this graph
//! written to a file (`heap_file`); `DumpSource` answers the retention tree's and `why`'s
//! questions from it exactly as `LiveSource` does from the process.
//!
//! Only names are kept: of types, attributes, small identifier-like dict keys, modules,
//! threads, frames and locals — the very text the live analyses print. Never object values.

use super::addr_set::AddrSet;
use super::exact_in::{self, Bits};
use super::heap_source::{HeapSource, LiveSource};
use super::ids::{self, Ids};
use crate::heap::graph::thread_roots::{FrameRoot, FrameRootStats};
use crate::heap::graph::{self, Label};
use crate::heap::objects::native;
use crate::heap::objects::sizes::getsizeof;
use crate::heap::objects::types::TypeTable;
use crate::process::View;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;
use std::rc::Rc;

/// `type_of` of an object whose type did not validate.
pub const NO_TYPE: u32 = ids::NONE;
/// Most references a graph keeps (edge offsets are u32).
const MAX_EDGES: usize = u32::MAX as usize - 1;
/// `Graph::bytes` of an object whose size is in `Graph::big`.
pub const BIG: u16 = u16::MAX;
/// `Graph::class_label` of a graph without type edges.
pub const NO_LABEL: u32 = u32::MAX;
/// `Graph::type_index` of a type that is not one of the graph's objects.
pub const NO_INDEX: u32 = u32::MAX;

/// An edge label with its names interned (indexes into `Graph::names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EdgeLabel {
    Attr(u32),
    Key(u32),
    AnyKey,
    KeyObject,
    Item,
    Field(u32),
    Ref,
    /// Last, so that dumps written before it read the same.
    Local(u32),
}

/// A thread frame's root: the object and the interned texts naming where it is held.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FrameRootEntry {
    pub object: u64,
    pub thread: u32,
    pub frame: u32,
    pub slot: u32,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct FrameStats {
    pub threads: u64,
    pub frames: u64,
    pub unreadable_frames: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Object addresses, sorted and distinct, by index (shared with the retention tree built
    /// on it).
    pub objects: Rc<AddrSet>,
    /// Per object: index into `types`, or `NO_TYPE` (2 bytes each below 64Ki types).
    pub type_of: Ids,
    /// Per object: `sys.getsizeof`, or `BIG` for the few sizes of 64 KiB and more (large
    /// lists, dicts, strings, arrays), kept in `big` (by index, searched).
    pub bytes: Vec<u16>,
    pub big: Vec<(u32, u64)>,
    /// (object index, native bytes) of the few objects that own memory outside themselves
    /// (`heap::objects::native`), by index.
    pub native: Vec<(u32, u64)>,
    /// Edges of object i after its first: `edge_to[edge_start[i]..edge_start[i + 1]]` (object
    /// indexes), in the order the live walker lists them (the breadth-first tree depends on it).
    /// The first edge of every typed object, to its type (`graph::CLASS`), is not stored: it
    /// is made from `type_of` (see `edges`), which saves a quarter of a typical heap's edges.
    /// (u32: a heap with more references than that would need 32 GB for them alone; `capture`
    /// stops adding references there, and says so.)
    pub edge_start: Vec<u32>,
    pub edge_to: Vec<u32>,
    /// Per stored edge: index into `labels` (2 bytes each below 64Ki labels).
    pub edge_label: Ids,
    pub labels: Vec<EdgeLabel>,
    /// The label of the type edges (`NO_LABEL` in a graph without them).
    pub class_label: u32,
    /// Per type: its type object's index among `objects`, `NO_INDEX` when it is not one of
    /// them (derived from `types` by `link_indexes`, not stored).
    pub type_index: Vec<u32>,
    /// Per frame root (in `frame_roots`' order): its object's index, `NO_INDEX` when it is not
    /// one of the graph's objects (derived by `link_indexes`, so that the tree needs no
    /// addresses).
    pub frame_root_index: Vec<u32>,
    /// Interned texts: attribute and key names (as the live paths show them, `…` for what is
    /// not identifier-like), field names, thread, frame and slot texts.
    pub names: Vec<String>,
    /// (type object address, name as `repr(type)` prints it).
    pub types: Vec<(u64, String)>,
    /// Module roots, `__main__` first: (object index, module name).
    pub modules: Vec<(u32, String)>,
    pub frame_roots: Vec<FrameRootEntry>,
    pub frame_stats: FrameStats,
    /// The objects an exact edge points to, found once for the tree and the dominators
    /// (`exact_in`; derived from the edges, which are not changed once it is).
    pub(super) exact_in: OnceCell<Bits>,
}

/// The next object's size, in `Graph::bytes` (and `big` for 64 KiB and more).
pub fn push_size(bytes: &mut Vec<u16>, big: &mut Vec<(u32, u64)>, size: u64) {
    let i = bytes.len() as u32;
    match u16::try_from(size) {
        Ok(b) if b != BIG => bytes.push(b),
        _ => {
            bytes.push(BIG);
            big.push((i, size));
        }
    }
}

impl Graph {
    /// How many objects (their addresses may have been let go: `forget_addresses`).
    pub fn len(&self) -> usize {
        self.type_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Let the object addresses go (1–2 bytes per object), for an analysis that prints none and
    /// finds nothing by address after `link_indexes`: the retention flamegraph and `why`. The
    /// graph still answers by index; `objects` is empty after.
    pub fn forget_addresses(&mut self) {
        self.objects = Rc::new(AddrSet::default());
    }

    /// Object `i`'s `sys.getsizeof`.
    pub fn bytes_of(&self, i: u32) -> u64 {
        match self.bytes.get(i as usize) {
            Some(&BIG) => self
                .big
                .binary_search_by_key(&i, |&(j, _)| j)
                .map_or(0, |k| self.big[k].1),
            Some(&b) => b as u64,
            None => 0,
        }
    }

    /// Append object `i`'s size (objects in index order).
    #[cfg(test)]
    pub fn push_bytes(&mut self, bytes: u64) {
        push_size(&mut self.bytes, &mut self.big, bytes);
    }

    /// Edges of object `i` as (target index, label id): its type edge, then the stored ones.
    pub fn edges(&self, i: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let (a, b) = self.stored(i);
        self.class_edge(i).into_iter().chain(
            self.edge_to[a..b]
                .iter()
                .copied()
                .zip(self.edge_label.range(a..b)),
        )
    }

    /// The type edge of object `i`, when its type is one of the graph's objects.
    pub fn class_edge(&self, i: u32) -> Option<(u32, u32)> {
        if self.class_label == NO_LABEL {
            return None;
        }
        let t = self.type_of.get(i as usize);
        Some((self.class_edge_of_type(t)?, self.class_label))
    }

    /// The target of the type edges of type `t`'s instances: its type object's index.
    pub fn class_edge_of_type(&self, t: u32) -> Option<u32> {
        if self.class_label == NO_LABEL {
            return None;
        }
        let to = *self.type_index.get(t as usize)?;
        (to != NO_INDEX).then_some(to)
    }

    /// Every edge, stored or made: the length of arrays indexed by edge.
    pub fn edge_count(&self) -> usize {
        self.edge_to.len()
            + (0..self.len() as u32)
                .filter(|&i| self.class_edge(i).is_some())
                .count()
    }

    /// The objects some exact edge points to (`exact_in::exact_in`), computed on first use.
    pub fn exact_in(&self) -> &Bits {
        self.exact_in
            .get_or_init(|| exact_in::exact_in(self, &exact_in::exact_labels(self)))
    }

    /// Whether object `i` references nothing but its type (a str, an int, a float).
    pub fn holds_nothing(&self, i: u32) -> bool {
        let (a, b) = self.stored(i);
        a == b
    }

    fn stored(&self, i: u32) -> (usize, usize) {
        match (
            self.edge_start.get(i as usize),
            self.edge_start.get(i as usize + 1),
        ) {
            (Some(&a), Some(&b)) => (a as usize, b as usize),
            _ => (0, 0),
        }
    }

    /// Derive `type_index` and `frame_root_index` from the addresses (after a capture or a
    /// load).
    pub fn link_indexes(&mut self) {
        let index = |addr: u64| self.objects.find(addr).unwrap_or(NO_INDEX);
        self.type_index = self.types.iter().map(|&(tp, _)| index(tp)).collect();
        self.frame_root_index = self.frame_roots.iter().map(|r| index(r.object)).collect();
    }

    /// The type name of object `i` (None when its type did not validate).
    pub fn type_name_of(&self, i: u32) -> Option<&str> {
        let t = self.type_of.get(i as usize);
        (t != NO_TYPE).then(|| self.types[t as usize].1.as_str())
    }
}

/// Interns texts and labels while a graph is captured.
#[derive(Default)]
struct Interner {
    names: Vec<String>,
    name_ids: HashMap<String, u32>,
    labels: Vec<EdgeLabel>,
    label_ids: HashMap<Label, u32>,
    entry_ids: HashMap<EdgeLabel, u32>,
    types: Vec<(u64, String)>,
    type_ids: HashMap<u64, u32>,
}

impl Interner {
    fn name(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(s) {
            return id;
        }
        self.names.push(s.to_string());
        let id = (self.names.len() - 1) as u32;
        self.name_ids.insert(s.to_string(), id);
        id
    }

    fn label(&mut self, src: &mut LiveSource, label: Label) -> u32 {
        if let Some(&id) = self.label_ids.get(&label) {
            return id;
        }
        let entry = match label {
            Label::Attr(p) => EdgeLabel::Attr(self.name(&src.name(p))),
            Label::Key(p) => EdgeLabel::Key(self.name(&src.name(p))),
            Label::AnyKey => EdgeLabel::AnyKey,
            Label::KeyObject => EdgeLabel::KeyObject,
            Label::Item => EdgeLabel::Item,
            Label::Field(f) => EdgeLabel::Field(self.name(f)),
            Label::Local(p) => EdgeLabel::Local(self.name(&src.name(p))),
            Label::Ref => EdgeLabel::Ref,
        };
        // Two str pointers with the same text share one label.
        let labels = &mut self.labels;
        let id = *self.entry_ids.entry(entry).or_insert_with(|| {
            labels.push(entry);
            (labels.len() - 1) as u32
        });
        self.label_ids.insert(label, id);
        id
    }

    /// The id of an interned label, interning it.
    fn entry(&mut self, entry: EdgeLabel) -> u32 {
        let labels = &mut self.labels;
        *self.entry_ids.entry(entry).or_insert_with(|| {
            labels.push(entry);
            (labels.len() - 1) as u32
        })
    }

    /// The id of a type whose name is known already.
    fn known_type(&mut self, tp: u64, name: &str) -> u32 {
        if let Some(&id) = self.type_ids.get(&tp) {
            return id;
        }
        self.types.push((tp, name.to_string()));
        let id = (self.types.len() - 1) as u32;
        self.type_ids.insert(tp, id);
        id
    }

    fn type_id(&mut self, src: &mut LiveSource, tp: u64) -> u32 {
        if let Some(&id) = self.type_ids.get(&tp) {
            return id;
        }
        let name = src
            .type_name(tp)
            .map_or_else(|| "?".to_string(), |n| n.to_string());
        self.types.push((tp, name));
        let id = (self.types.len() - 1) as u32;
        self.type_ids.insert(tp, id);
        id
    }
}

/// One thread's share of a capture: its run's edges and what it interned. Its per-object
/// values go straight into its run of the graph's arrays (`Run`).
#[derive(Default)]
struct Part {
    native: Vec<(u32, u64)>,
    big: Vec<(u32, u64)>,
    edge_to: Vec<u32>,
    edge_label: Vec<u32>,
    names: Interner,
    class_label: u32,
    dropped_edges: u64,
}

/// A thread's run of the graph's per-object arrays: types (the part's own ids until merged),
/// sizes, and the end of each object's edges (counted from the run's first edge).
struct Run<'a> {
    first: usize,
    len: usize,
    type_of: &'a mut [u32],
    bytes: &'a mut [u16],
    edge_end: &'a mut [u32],
}

/// Takes an object's edges as `graph::edges` finds them, straight into the part's arrays: the
/// type edge (first) is left out (it is made from `type_of`), targets that are not objects
/// are dropped, labels already interned are looked up here and new ones (rare) are given
/// provisional ids (`u32::MAX` down), interned after the object in order of first sight (when
/// the view is free again to read their names) and patched in.
struct PartEdges<'p> {
    part: &'p mut Part,
    index: &'p AddrSet,
    max_edges: usize,
    /// The object's type while its first edge is awaited, to recognise the type edge.
    type_edge: Option<u64>,
    /// Labels not interned yet, in order of first sight.
    new_labels: Vec<Label>,
}

impl graph::Edges for PartEdges<'_> {
    fn push(&mut self, (to, label): (u64, Label)) {
        if let Some(tp) = self.type_edge.take() {
            if label == graph::CLASS && to == tp {
                return;
            }
        }
        let Some(j) = self.index.find(to) else {
            return;
        };
        let p = &mut *self.part;
        if p.edge_to.len() >= self.max_edges {
            p.dropped_edges += 1;
            return;
        }
        p.edge_to.push(j);
        let id = match p.names.label_ids.get(&label) {
            Some(&id) => id,
            None => {
                let k = match self.new_labels.iter().position(|&l| l == label) {
                    Some(k) => k,
                    None => {
                        self.new_labels.push(label);
                        self.new_labels.len() - 1
                    }
                };
                u32::MAX - k as u32
            }
        };
        p.edge_label.push(id);
    }
}

/// Capture one run of objects: type, size, native bytes and edges, in order.
fn capture_part(src: &mut LiveSource, run: Run, index: &AddrSet, max_edges: usize) -> Part {
    let mut p = Part::default();
    p.class_label = p.names.label(src, graph::CLASS);
    let mut new_labels = Vec::new();
    let l = &src.py.layout;
    for (k, obj) in index.iter_from(run.first as u32).take(run.len).enumerate() {
        let i = (run.first + k) as u32;
        let first_edge = p.edge_label.len();
        // What `LiveSource::type_and_size` and `edges` read, with one type lookup.
        let found = src.view.u64(obj.wrapping_add(l.ob_type)).and_then(|tp| {
            let info = src.types.get(src.view, l, tp)?;
            let bytes = getsizeof(src.view, l, obj, info).unwrap_or(info.basicsize);
            let native = native::native_of(src.view, l, obj, info);
            let mut sink = PartEdges {
                part: &mut p,
                index,
                max_edges,
                type_edge: Some(tp),
                new_labels: std::mem::take(&mut new_labels),
            };
            graph::edges(src.view, l, obj, info, &mut sink);
            new_labels = sink.new_labels;
            Some((tp, bytes, native))
        });
        if !new_labels.is_empty() {
            let ids: Vec<u32> = new_labels.iter().map(|&l| p.names.label(src, l)).collect();
            let first_new = u32::MAX - (ids.len() as u32 - 1);
            for id in &mut p.edge_label[first_edge..] {
                if *id >= first_new {
                    *id = ids[(u32::MAX - *id) as usize];
                }
            }
            new_labels.clear();
        }
        let bytes = found.map_or(0, |f| f.1);
        run.bytes[k] = match u16::try_from(bytes) {
            Ok(b) if b != BIG => b,
            _ => {
                p.big.push((i, bytes));
                BIG
            }
        };
        if let Some((tp, _, native)) = found {
            run.type_of[k] = p.names.type_id(src, tp);
            if native > 0 {
                p.native.push((i, native));
            }
        }
        run.edge_end[k] = p.edge_to.len() as u32;
    }
    p.edge_to.shrink_to_fit();
    p.edge_label.shrink_to_fit();
    p
}

/// Most threads a capture reads with, and fewest objects worth a thread.
const CAPTURE_THREADS: usize = 4;
/// Runs of objects per thread (taken in turn): the runs' edges are appended to the graph's
/// one at a time, so more runs than threads keep the copy's extra memory to one run's share.
const RUNS_PER_THREAD: usize = 4;
const OBJECTS_PER_THREAD: usize = 250_000;
/// Bytes of target memory each capture thread's view holds (objects are read in address
/// order; what they point to for names is mostly near).
const CAPTURE_BUDGET: u64 = 8 << 20;

/// Capture the graph of `objects` (sorted, distinct: the census's list) from a live source:
/// every object's type, size and edges in address order (runs of objects on several threads,
/// each with its own view and type table, merged in order), then the roots. Long: the capture's
/// steps in order (index, runs, parts on threads, merge, roots), each a block; the runs are
/// disjoint `&mut` slices of the graph's arrays, made and filled in this one scope.
pub fn capture(src: &mut LiveSource, objects: Vec<u64>) -> Graph {
    let mut phases = crate::analysis::phases::Phases::start("capture");
    let n = objects.len();
    // The addresses in 1–2 bytes each from here on, before the graph's arrays are made.
    let index = AddrSet::new(&objects);
    phases.lap("index");
    drop(objects);
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, CAPTURE_THREADS)
        .min(n.div_ceil(OBJECTS_PER_THREAD).max(1));
    let run_count = if threads == 1 {
        1
    } else {
        threads * RUNS_PER_THREAD
    };
    let per = n.div_ceil(run_count).max(1);
    let max_edges = MAX_EDGES / run_count;
    // Types by the parts' own ids until merged, then narrowed.
    let mut type_of = vec![NO_TYPE; n];
    let mut g = Graph {
        bytes: vec![0; n],
        edge_start: vec![0; n + 1],
        ..Default::default()
    };
    // Each run's slices of the per-object arrays.
    let mut runs: Vec<Run> = Vec::with_capacity(run_count);
    {
        let (mut types, mut sizes, mut ends) = (
            type_of.as_mut_slice(),
            g.bytes.as_mut_slice(),
            &mut g.edge_start[1..],
        );
        let mut first = 0;
        while first < n || runs.is_empty() {
            let len = per.min(n - first);
            let (t, t_rest) = std::mem::take(&mut types).split_at_mut(len);
            let (b, b_rest) = std::mem::take(&mut sizes).split_at_mut(len);
            let (e, e_rest) = std::mem::take(&mut ends).split_at_mut(len);
            (types, sizes, ends) = (t_rest, b_rest, e_rest);
            runs.push(Run {
                first,
                len,
                type_of: t,
                bytes: b,
                edge_end: e,
            });
            first += len;
        }
    }
    let firsts: Vec<(usize, usize)> = runs.iter().map(|r| (r.first, r.len)).collect();
    let parts: Vec<Part> = if runs.len() == 1 {
        runs.into_iter()
            .map(|run| capture_part(src, run, &index, max_edges))
            .collect()
    } else {
        let (mem, spans, py) = (src.view.memory(), src.view.spans().to_vec(), src.py);
        let index = &index;
        let total = runs.len();
        let mut turns: Vec<Vec<(usize, Run)>> = (0..threads).map(|_| Vec::new()).collect();
        for (k, run) in runs.into_iter().enumerate() {
            turns[k % threads].push((k, run));
        }
        let mut parts: Vec<Part> = (0..total).map(|_| Part::default()).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = turns
                .into_iter()
                .map(|mine| {
                    let spans = spans.clone();
                    s.spawn(move || {
                        let mut view = View::new(mem, spans, CAPTURE_BUDGET);
                        let mut types = TypeTable::new(py);
                        let mut src = LiveSource::new(&mut view, py, &mut types);
                        let parts = mine
                            .into_iter()
                            .map(|(k, run)| (k, capture_part(&mut src, run, index, max_edges)))
                            .collect::<Vec<_>>();
                        log::debug!(
                            "capture thread: {} bytes read in {} bulk reads, {} small reads",
                            view.stats.bytes_read,
                            view.stats.bulk_reads,
                            view.stats.small_reads
                        );
                        parts
                    })
                })
                .collect();
            // A thread that failed leaves its runs without edges (and with whatever types it
            // wrote: cleared below).
            for h in handles {
                for (k, part) in h.join().unwrap_or_default() {
                    parts[k] = part;
                }
            }
        });
        parts
    };
    phases.lap("parts");
    let mut names = Interner::default();
    let mut dropped_edges = 0;
    // The parts' label counts bound the merged one: it decides the labels' width up front.
    g.edge_label = Ids::with_bound(
        parts.iter().map(|p| p.names.labels.len()).sum(),
        parts.iter().map(|p| p.edge_to.len()).sum(),
    );
    for (p, (first, len)) in parts.into_iter().zip(firsts) {
        dropped_edges += p.dropped_edges;
        merge_part(&mut g, &mut type_of, &mut names, p, first..first + len);
    }
    phases.lap("merged");
    log::debug!("capture: {} objects, {} stored edges", n, g.edge_to.len());
    if dropped_edges > 0 {
        log::warn!("{dropped_edges} references past the first {MAX_EDGES} were not kept");
    }
    g.modules = src.module_roots(&index);
    let (frames, stats) = src.frame_roots();
    g.frame_roots = frames
        .iter()
        .map(|r| FrameRootEntry {
            object: r.object,
            thread: names.name(&r.thread),
            frame: names.name(&r.frame),
            slot: names.name(&r.slot),
        })
        .collect();
    g.frame_stats = FrameStats {
        threads: stats.threads,
        frames: stats.frames,
        unreadable_frames: stats.unreadable_frames,
    };
    g.objects = Rc::new(index);
    g.names = names.names;
    g.labels = names.labels;
    g.types = names.types;
    g.type_of = Ids::narrowed(type_of, g.types.len());
    g.link_indexes();
    g
}

/// Append a part's edges to the graph and turn its run's interned ids into the graph's.
fn merge_part(
    g: &mut Graph,
    type_of: &mut [u32],
    names: &mut Interner,
    p: Part,
    run: std::ops::Range<usize>,
) {
    let name_map: Vec<u32> = p.names.names.iter().map(|t| names.name(t)).collect();
    let label_map: Vec<u32> = p
        .names
        .labels
        .iter()
        .map(|&l| {
            let global = match l {
                EdgeLabel::Attr(x) => EdgeLabel::Attr(name_map[x as usize]),
                EdgeLabel::Key(x) => EdgeLabel::Key(name_map[x as usize]),
                EdgeLabel::Field(x) => EdgeLabel::Field(name_map[x as usize]),
                EdgeLabel::Local(x) => EdgeLabel::Local(name_map[x as usize]),
                other => other,
            };
            names.entry(global)
        })
        .collect();
    let type_map: Vec<u32> = p
        .names
        .types
        .iter()
        .map(|(tp, name)| names.known_type(*tp, name))
        .collect();
    if let Some(&class) = label_map.get(p.class_label as usize) {
        g.class_label = class;
    }
    for t in &mut type_of[run.clone()] {
        // A run whose thread failed has no type table: its objects stay untyped.
        *t = type_map.get(*t as usize).copied().unwrap_or(NO_TYPE);
    }
    let base = g.edge_to.len() as u32;
    let ends = &mut g.edge_start[run.start + 1..run.end + 1];
    if p.names.labels.is_empty() {
        ends.fill(0);
    }
    for e in ends {
        *e += base;
    }
    g.big.extend(p.big);
    g.native.extend(p.native);
    // The first part's arrays become the graph's (no copy: fresh pages cost more than the
    // copy here); later parts are appended.
    (g.edge_label).extend(p.edge_label.iter().map(|&l| label_map[l as usize]));
    drop(p.edge_label);
    if g.edge_to.is_empty() {
        g.edge_to = p.edge_to;
    } else {
        g.edge_to.extend_from_slice(&p.edge_to);
    }
}

/// Answers from a captured graph, in the live source's order and words.
pub struct DumpSource<'g> {
    g: &'g Graph,
    type_names: HashMap<u64, Rc<str>>,
    /// Field names as the `&'static str` `Label::Field` holds (a handful, leaked once).
    fields: HashMap<u32, &'static str>,
    texts: Vec<Rc<str>>,
}

impl<'g> DumpSource<'g> {
    pub fn new(g: &'g Graph) -> DumpSource<'g> {
        let mut fields = HashMap::default();
        for l in &g.labels {
            if let EdgeLabel::Field(f) = *l {
                fields.entry(f).or_insert_with(|| {
                    let s: &'static str = Box::leak(g.names[f as usize].clone().into_boxed_str());
                    s
                });
            }
        }
        DumpSource {
            g,
            type_names: g
                .types
                .iter()
                .map(|(tp, name)| (*tp, Rc::from(name.as_str())))
                .collect(),
            fields,
            texts: g.names.iter().map(|s| Rc::from(s.as_str())).collect(),
        }
    }

    /// The live `Label` an interned one stands for (names by their index in the table).
    pub fn live_label(&self, id: u32) -> Label {
        match self
            .g
            .labels
            .get(id as usize)
            .copied()
            .unwrap_or(EdgeLabel::Ref)
        {
            EdgeLabel::Attr(n) => Label::Attr(n as u64),
            EdgeLabel::Key(n) => Label::Key(n as u64),
            EdgeLabel::AnyKey => Label::AnyKey,
            EdgeLabel::KeyObject => Label::KeyObject,
            EdgeLabel::Item => Label::Item,
            EdgeLabel::Field(n) => Label::Field(self.fields.get(&n).copied().unwrap_or("?")),
            EdgeLabel::Local(n) => Label::Local(n as u64),
            EdgeLabel::Ref => Label::Ref,
        }
    }

    fn text(&self, id: u64) -> &str {
        self.g.names.get(id as usize).map_or("…", String::as_str)
    }
}

impl HeapSource for DumpSource<'_> {
    fn module_roots(&mut self, _objects: &AddrSet) -> Vec<(u32, String)> {
        self.g.modules.clone()
    }

    fn frame_roots(&mut self) -> (Vec<FrameRoot>, FrameRootStats) {
        let text = |id: u32| -> Rc<str> {
            self.texts
                .get(id as usize)
                .cloned()
                .unwrap_or_else(|| "?".into())
        };
        let roots = self
            .g
            .frame_roots
            .iter()
            .map(|r| FrameRoot {
                object: r.object,
                thread: text(r.thread),
                frame: text(r.frame),
                slot: text(r.slot).to_string(),
            })
            .collect();
        let s = self.g.frame_stats;
        (
            roots,
            FrameRootStats {
                threads: s.threads,
                frames: s.frames,
                unreadable_frames: s.unreadable_frames,
            },
        )
    }

    fn type_name(&mut self, tp: u64) -> Option<Rc<str>> {
        self.type_names.get(&tp).cloned()
    }

    /// The same words as `retention::Namer::label`.
    fn label(&mut self, label: Label) -> String {
        match label {
            Label::Attr(n) => format!(".{}", self.text(n)),
            Label::Key(n) => format!("['{}']", self.text(n)),
            Label::AnyKey => "[…]".into(),
            Label::KeyObject => "(key)".into(),
            Label::Item => "[*]".into(),
            Label::Field(f) => f.to_string(),
            Label::Local(n) => format!("local '{}'", self.text(n)),
            Label::Ref => String::new(),
        }
    }
}
