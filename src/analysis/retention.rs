//! Who holds the memory: a breadth-first spanning tree of the object graph from the roots
//! (modules by name, then thread frames when known). Each object is charged once, to the path by
//! which the BFS first reached it, so widths add up to the heap. The retention flamegraph and
//! `why` both read this one tree: no second walker.

use super::heap_source::{HeapSource, TypeSize};
use super::thread_roots::FrameRootStats;
use crate::heap::graph::Label;
use crate::heap::pyobj::{dict_items, read_str, MAX_NAME};
use crate::process::View;
use crate::python::Python;
use crate::render::profile::{Profile, Stack, Unit};
use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;
use std::rc::Rc;

pub const NONE: u32 = u32::MAX;
/// Paths deeper than this are folded into one frame (linked lists can be 100k deep).
const MAX_DEPTH: usize = 48;

/// The spanning tree over a census's objects (indexes into the sorted object list).
///
/// Per object it keeps 25 bytes beside the address: parent, edge, type and size as 4-byte
/// ids or values (labels and types interned; sizes over 4 GiB and native bytes, both rare, in
/// side tables), the BFS order and a flag byte. A 16M-object heap's tree fits in 530 MB.
pub struct Tree {
    /// The objects, sorted (shared with the graph the tree may be built from).
    pub objects: Rc<Vec<u64>>,
    pub parent: Vec<u32>,
    /// Per object: index into `labels` of the edge its parent reached it by.
    label_of: Vec<u32>,
    labels: Vec<Label>,
    label_ids: HashMap<Label, u32>,
    /// Per object: index into `types` (0: not sized yet, or its type did not validate).
    type_of: Vec<u32>,
    types: Vec<u64>,
    type_ids: HashMap<u64, u32>,
    /// Per object: `sys.getsizeof`, `BIG` when it is in `big`.
    bytes: Vec<u32>,
    big: HashMap<u32, u64>,
    /// Memory objects own outside themselves (heap::native: numpy data, bytearray items...),
    /// by object; part of their bytes where sys.getsizeof counts it (all but mmap).
    native: HashMap<u32, u64>,
    /// Root objects: modules first, then what thread frames hold.
    pub roots: Vec<Root>,
    /// Object index → its position in `roots`.
    root_of: HashMap<u32, u32>,
    /// Object indexes in BFS order (parents before children).
    pub order: Vec<u32>,
    /// What the thread-frame walk read and skipped.
    pub frame_stats: FrameRootStats,
}

/// `Tree::bytes` of an object whose size is kept in `Tree::big`.
const BIG: u32 = u32::MAX;
/// `Tree` flags per object while it is built.
const SEEN: u8 = 1;
/// A deferred edge into the object is queued already: a later one would change nothing (the
/// queue is first-in first-out, and the first one marks the object seen).
const GUESS_QUEUED: u8 = 2;

/// Where paths of objects no root reaches are filed.
pub const UNREACHED: &str = "(not reachable from modules or threads)";

/// A root object and what holds it, as paths print it.
#[derive(Debug, Clone)]
pub struct Root {
    pub index: u32,
    /// The holders, outermost first: `__main__ (module)` (the root object itself), or
    /// `thread 42 (MainThread)`, `frame main (/srv/app.py:3)` (above the root object).
    pub holders: Vec<Rc<str>>,
    /// The edge from the last holder into the root object (`local 'batch'`); None when the
    /// root object is its own holder (a module).
    pub edge: Option<String>,
}

impl Root {
    /// `__main__ (module)` or `thread 42 (MainThread) → frame main (/srv/app.py:3)`.
    pub fn text(&self) -> String {
        self.holders.join(" → ")
    }
}

impl Tree {
    fn new(objects: Rc<Vec<u64>>) -> Tree {
        let n = objects.len();
        let mut t = Tree {
            parent: vec![NONE; n],
            label_of: vec![0; n],
            labels: Vec::new(),
            label_ids: HashMap::default(),
            type_of: vec![0; n],
            types: vec![0],
            type_ids: HashMap::default(),
            bytes: vec![0; n],
            big: HashMap::default(),
            native: HashMap::default(),
            roots: Vec::new(),
            root_of: HashMap::default(),
            order: Vec::with_capacity(n),
            objects,
            frame_stats: FrameRootStats::default(),
        };
        t.intern_label(Label::Ref);
        t
    }

    pub fn index_of(&self, addr: u64) -> Option<u32> {
        self.objects.binary_search(&addr).ok().map(|i| i as u32)
    }

    /// The root whose object is `i`, if any.
    pub fn root(&self, i: u32) -> Option<&Root> {
        self.root_of.get(&i).map(|&r| &self.roots[r as usize])
    }

    /// The edge by which object `i` was reached (`Label::Ref` for roots and unreached ones).
    pub fn label(&self, i: u32) -> Label {
        self.labels[self.label_of[i as usize] as usize]
    }

    /// Object `i`'s type pointer (0: its type did not validate).
    pub fn type_ptr(&self, i: u32) -> u64 {
        self.types[self.type_of[i as usize] as usize]
    }

    /// Object `i`'s type as an id (0: none); see `type_ptr_of_id`.
    pub fn type_id(&self, i: u32) -> u32 {
        self.type_of[i as usize]
    }

    /// How many type ids there are (id 0 included).
    pub fn type_count(&self) -> u32 {
        self.types.len() as u32
    }

    /// The type pointer of a type id (0 for id 0).
    pub fn type_ptr_of_id(&self, id: u32) -> u64 {
        self.types.get(id as usize).copied().unwrap_or(0)
    }

    /// The edge object `i` was reached by, as an id (equal ids, equal labels).
    pub fn label_id(&self, i: u32) -> u32 {
        self.label_of[i as usize]
    }

    /// Object `i`'s `sys.getsizeof`.
    pub fn bytes(&self, i: u32) -> u64 {
        match self.bytes[i as usize] {
            BIG => self.big.get(&i).copied().unwrap_or(0),
            b => b as u64,
        }
    }

    /// Memory object `i` owns outside itself.
    pub fn native(&self, i: u32) -> u64 {
        self.native.get(&i).copied().unwrap_or(0)
    }

    /// The distinct type pointers of the tree's objects.
    pub fn type_ptrs(&self) -> impl Iterator<Item = u64> + '_ {
        self.types.iter().copied().filter(|&p| p != 0)
    }

    fn add_root(&mut self, root: Root) {
        self.root_of.insert(root.index, self.roots.len() as u32);
        self.roots.push(root);
    }

    fn intern_label(&mut self, label: Label) -> u32 {
        if let Some(&id) = self.label_ids.get(&label) {
            return id;
        }
        self.labels.push(label);
        let id = (self.labels.len() - 1) as u32;
        self.label_ids.insert(label, id);
        id
    }

    fn set_parent(&mut self, child: u32, parent: u32, label: Label) {
        self.parent[child as usize] = parent;
        self.label_of[child as usize] = self.intern_label(label);
    }

    fn set_size(&mut self, i: u32, s: TypeSize) {
        let id = match self.type_ids.get(&s.tp) {
            Some(&id) => id,
            None => {
                self.types.push(s.tp);
                let id = (self.types.len() - 1) as u32;
                self.type_ids.insert(s.tp, id);
                id
            }
        };
        self.type_of[i as usize] = id;
        self.bytes[i as usize] = match u32::try_from(s.bytes) {
            Ok(b) if b != BIG => b,
            _ => {
                self.big.insert(i, s.bytes);
                BIG
            }
        };
        if s.native > 0 {
            self.native.insert(i, s.native);
        }
    }
}

/// Build the tree. `objects` must be sorted and deduplicated (the census's list).
///
/// Modules are walked to the end first, then thread frames: an object both reach is shown
/// under its module path, and frames claim only what the running code alone keeps alive.
pub fn build(src: &mut dyn HeapSource, objects: Rc<Vec<u64>>) -> Tree {
    let n = objects.len();
    let mut t = Tree::new(objects);
    let mut flags = vec![0u8; n];
    let mut queue: VecDeque<u32> = VecDeque::new();
    for (i, name) in src.module_roots(&t.objects) {
        if flags[i as usize] & SEEN == 0 {
            flags[i as usize] |= SEEN;
            t.add_root(Root {
                index: i,
                holders: vec![format!("{name} (module)").into()],
                edge: None,
            });
            queue.push_back(i);
        }
    }
    let mut guessed = VecDeque::new();
    walk(src, &mut t, &mut flags, &mut queue, &mut guessed);
    let (frame_roots, stats) = src.frame_roots();
    t.frame_stats = stats;
    for r in frame_roots {
        let Some(i) = t.index_of(r.object) else {
            continue;
        };
        if flags[i as usize] & SEEN == 0 {
            flags[i as usize] |= SEEN;
            t.add_root(Root {
                index: i,
                holders: vec![r.thread, r.frame],
                edge: Some(r.slot),
            });
            queue.push_back(i);
        }
    }
    walk(src, &mut t, &mut flags, &mut queue, &mut guessed);
    // Last, what only conservative pointers and type edges reach, in the order they were found.
    while let Some((from, to, label)) = guessed.pop_front() {
        if flags[to as usize] & SEEN == 0 {
            flags[to as usize] |= SEEN;
            t.set_parent(to, from, label);
            queue.push_back(to);
            walk(src, &mut t, &mut flags, &mut queue, &mut guessed);
        }
    }
    // Objects no root reaches still count: type and size, under a root of their own.
    for (i, f) in flags.iter().enumerate() {
        if f & SEEN == 0 {
            if let Some(s) = src.type_and_size(i as u32, t.objects[i]) {
                t.set_size(i as u32, s);
            }
        }
    }
    t
}

/// Breadth-first from what is queued, marking each object's parent and edge on first sight.
///
/// Words found by scanning an object's body (`Label::Ref`) are only guesses: a stale pointer
/// left in unused bytes looks like a reference. They go to `guessed` and are followed after
/// every exact edge from every root, so a list a frame's local really holds is not charged to
/// a module through a leftover word. Type edges (`graph::CLASS`) wait there too: a class is
/// charged to the module defining it, not to its first instance.
fn walk(
    src: &mut dyn HeapSource,
    t: &mut Tree,
    flags: &mut [u8],
    queue: &mut VecDeque<u32>,
    guessed: &mut VecDeque<(u32, u32, Label)>,
) {
    let mut edges = Vec::new();
    let mut indexed = Vec::new();
    while let Some(i) = queue.pop_front() {
        t.order.push(i);
        let obj = t.objects[i as usize];
        let Some(size) = src.type_and_size(i, obj) else {
            continue;
        };
        t.set_size(i, size);
        indexed.clear();
        if !src.edge_indexes(i, &mut indexed) {
            edges.clear();
            src.edges(i, obj, &mut edges);
            indexed.extend(
                edges
                    .iter()
                    .filter_map(|&(to, label)| Some((t.index_of(to)?, label))),
            );
        }
        for &(j, label) in &indexed {
            let f = flags[j as usize];
            if f & SEEN != 0 {
                continue;
            }
            if label.deferred() {
                if f & GUESS_QUEUED == 0 {
                    flags[j as usize] |= GUESS_QUEUED;
                    guessed.push_back((i, j, label));
                }
                continue;
            }
            flags[j as usize] |= SEEN;
            t.set_parent(j, i, label);
            queue.push_back(j);
        }
    }
}

/// Modules from sys.modules, `__main__` first, as (object index, name).
pub fn module_roots(view: &mut View, py: &Python, objects: &[u64]) -> Vec<(u32, String)> {
    let l = &py.layout;
    let mut out = Vec::new();
    for &interp in &py.interpreters {
        let Some(modules) = view.u64(interp + l.interp.modules).filter(|&m| m != 0) else {
            continue;
        };
        for (k, v) in dict_items(view, l, modules).unwrap_or_default() {
            let i = objects.binary_search(&v).ok().map(|i| i as u32);
            let (Some(i), Some(name)) = (i, read_str(view, l, k, MAX_NAME)) else {
                continue;
            };
            out.push((i, name));
        }
    }
    out.sort_by_key(|(_, name)| name != "__main__");
    out
}

/// Turns labels and types into frame text, caching names by pointer.
pub struct Namer<'p> {
    py: &'p Python,
    names: HashMap<u64, Rc<str>>,
}

impl<'p> Namer<'p> {
    pub fn new(py: &'p Python) -> Namer<'p> {
        Namer {
            py,
            names: HashMap::default(),
        }
    }

    pub fn name(&mut self, view: &mut View, ptr: u64) -> Rc<str> {
        let l = &self.py.layout;
        self.names
            .entry(ptr)
            .or_insert_with(|| {
                read_str(view, l, ptr, 64)
                    .filter(|s| is_identifier(s))
                    .unwrap_or_else(|| "…".into())
                    .into()
            })
            .clone()
    }

    /// The edge's text: `.attr`, `['key']`, `[*]`, `[…]`.
    pub fn label(&mut self, view: &mut View, label: Label) -> String {
        match label {
            Label::Attr(p) => format!(".{}", self.name(view, p)),
            Label::Key(p) => format!("['{}']", self.name(view, p)),
            Label::AnyKey => "[…]".into(),
            Label::KeyObject => "(key)".into(),
            Label::Item => "[*]".into(),
            Label::Field(f) => f.to_string(),
            Label::Ref => String::new(),
        }
    }
}

/// Only identifier-like keys are shown: anything else may be user data (heaps hold secrets).
pub fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_alphanumeric())
}

pub fn type_name(src: &mut dyn HeapSource, tp: u64) -> Rc<str> {
    src.type_name(tp).unwrap_or_else(|| "?".into())
}

/// One step of a path: the edge's text and the type it leads to.
pub struct Hop {
    pub label: String,
    pub type_name: Rc<str>,
}

/// The path to object `i`: its root's text (None when no root reaches it) and the hops from
/// there, the last hop being `i` itself. A frame root's object is the first hop, entered by
/// its slot (`local 'batch'`); a module is its own root and not a hop.
pub fn hops(src: &mut dyn HeapSource, t: &Tree, i: u32) -> (Option<String>, Vec<Hop>) {
    let mut chain = Vec::new();
    let mut cur = i;
    while cur != NONE && chain.len() <= 100_000 {
        chain.push(cur);
        cur = t.parent[cur as usize];
    }
    chain.reverse();
    let root = t.root(chain[0]);
    let mut out = Vec::with_capacity(chain.len());
    for (k, &j) in chain.iter().enumerate() {
        let label = match root {
            Some(r) if k == 0 => match &r.edge {
                Some(edge) => edge.clone(),
                None => continue,
            },
            _ => src.label(t.label(j)),
        };
        out.push(Hop {
            label,
            type_name: type_name(src, t.type_ptr(j)),
        });
    }
    (root.map(Root::text), out)
}

/// The retention flamegraph: every object's bytes stacked on its path from the roots.
///
/// Paths form a trie keyed by (parent node, edge label, type): objects reached the same way
/// share a node, so the work is one hash lookup per object, not a path rebuild.
pub fn profile(src: &mut dyn HeapSource, t: &Tree) -> Profile {
    // Node 0 is the invisible top; nodes carry (parent, frame text, depth, bytes, objects).
    let mut nodes: Vec<(u32, String, usize, u64, u64)> = vec![(NONE, String::new(), 0, 0, 0)];
    let mut index: HashMap<(u32, Label, u64), u32> = HashMap::default();
    let mut root_nodes: HashMap<u32, u32> = HashMap::default();
    // Holder nodes (modules, threads, frames) and frame roots' own nodes, by (parent, text).
    let mut named: HashMap<(u32, String), u32> = HashMap::default();
    for r in &t.roots {
        let mut node = 0u32;
        let mut texts: Vec<String> = r.holders.iter().map(|h| h.to_string()).collect();
        if let Some(edge) = &r.edge {
            let ty = type_name(src, t.type_ptr(r.index));
            texts.push(format!("{edge} {ty}"));
        }
        for text in texts {
            let depth = nodes[node as usize].2 + 1;
            node = *named.entry((node, text.clone())).or_insert_with(|| {
                nodes.push((node, text, depth, 0, 0));
                (nodes.len() - 1) as u32
            });
        }
        root_nodes.insert(r.index, node);
    }
    nodes.push((0, UNREACHED.into(), 1, 0, 0));
    let unreached = (nodes.len() - 1) as u32;
    let mut node_of = vec![NONE; t.objects.len()];
    let mut child = |nodes: &mut Vec<(u32, String, usize, u64, u64)>,
                     src: &mut dyn HeapSource,
                     parent: u32,
                     label: Label,
                     tp: u64| {
        let depth = nodes[parent as usize].2;
        if depth >= MAX_DEPTH {
            return parent;
        }
        *index.entry((parent, label, tp)).or_insert_with(|| {
            let text = match src.label(label) {
                l if l.is_empty() => type_name(src, tp).to_string(),
                l => format!("{l} {}", type_name(src, tp)),
            };
            nodes.push((parent, text, depth + 1, 0, 0));
            (nodes.len() - 1) as u32
        })
    };
    for &i in &t.order {
        let iu = i as usize;
        let node = match root_nodes.get(&i) {
            Some(&n) => n,
            None => {
                let p = t.parent[iu];
                let pn = if p == NONE {
                    unreached
                } else {
                    node_of[p as usize]
                };
                if pn == NONE {
                    unreached
                } else {
                    child(&mut nodes, src, pn, t.label(i), t.type_ptr(i))
                }
            }
        };
        node_of[iu] = node;
        nodes[node as usize].3 += t.bytes(i);
        nodes[node as usize].4 += 1;
    }
    let unreached_objects: Vec<usize> =
        (0..node_of.len()).filter(|&i| node_of[i] == NONE).collect();
    for i in unreached_objects {
        let n = child(&mut nodes, src, unreached, Label::Ref, t.type_ptr(i as u32));
        nodes[n as usize].3 += t.bytes(i as u32);
        nodes[n as usize].4 += 1;
    }
    let mut p = Profile::new(
        format!(
            "Retention: what holds the memory ({} objects)",
            t.objects.len()
        ),
        "width = bytes (sys.getsizeof) of objects first reached along each path from the \
         roots: modules, then what thread frames hold (breadth-first; each object charged once)",
        Unit::Bytes,
    );
    for n in 1..nodes.len() {
        let (_, _, _, bytes, count) = nodes[n];
        if count == 0 {
            continue;
        }
        let mut frames = Vec::new();
        let mut cur = n as u32;
        while cur != 0 && cur != NONE {
            frames.push(nodes[cur as usize].1.clone());
            cur = nodes[cur as usize].0;
        }
        frames.reverse();
        p.stacks.push(Stack::new(frames, bytes).with_objects(count));
    }
    p
}
