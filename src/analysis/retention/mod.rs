//! Who holds the memory: a breadth-first spanning tree of the object graph from the roots
//! (modules by name, then thread frames when known). Each object is charged once, to the path by
//! which the BFS first reached it, so widths add up to the heap. The retention flamegraph and
//! `why` both read this one tree: no second walker.

pub mod addr_set;
pub mod alloc_sites;
pub mod delta_queue;
pub mod dominators;
pub mod exact_in;
pub mod heap_diff;
pub mod heap_file;
pub mod heap_graph;
pub mod heap_source;
pub mod ids;
#[cfg(test)]
mod test_graph;
pub mod varint;
pub mod why;

use self::delta_queue::DeltaQueue;
use self::heap_graph::{DumpSource, Graph, NO_TYPE};
use self::heap_source::HeapSource;
use self::ids::Ids;
use crate::heap::graph::thread_roots::FrameRootStats;
use crate::heap::graph::Label;
use crate::heap::objects::pyobj::{dict_items, is_identifier, read_str, MAX_NAME};
use crate::process::View;
use crate::profile::{Profile, Stack, Unit};
use crate::python::Python;
use rustc_hash::FxHashMap as HashMap;
use std::rc::Rc;

pub const NONE: u32 = u32::MAX;
/// Paths deeper than this are folded into one frame (linked lists can be 100k deep).
const MAX_DEPTH: usize = 48;

/// The spanning tree over a census's objects (indexes into the sorted object list).
///
/// Built on a captured graph (live or from a dump), it keeps per object only its parent and
/// the edge it was reached by (the graph's label id): 6 bytes (8 past 65,536 labels). Types
/// and sizes are the graph's.
pub struct Tree<'g> {
    pub parent: Vec<u32>,
    /// Per object: index into `labels` of the edge its parent reached it by (2 bytes each
    /// below 64Ki labels: every heap measured).
    label_of: Ids,
    /// The graph's labels as the live walker's `Label`s, by id.
    labels: Vec<Label>,
    g: &'g Graph,
    /// Root objects: modules first, then what thread frames hold.
    pub roots: Vec<Root>,
    /// Object index → its position in `roots`.
    root_of: HashMap<u32, u32>,
    /// What the thread-frame walk read and skipped.
    pub frame_stats: FrameRootStats,
}

/// Flags per object while a tree is built.
const SEEN: u8 = 1;
/// A deferred edge into the object is queued already: a later one would change nothing (the
/// queue is first-in first-out, and the first one marks the object seen).
const GUESS_QUEUED: u8 = 2;
/// A guess into the object waits for the other guesses (its target has an exact holder).
const LATE: u8 = 4;

/// Where paths of objects no root reaches are filed (now only objects whose own type did not
/// validate: every other object is reached from one of the roots below or a cycle's).
pub const UNREACHED: &str = "(not reachable from modules or threads)";
/// The root of an object no module, thread or other object refers to, and what it holds: it is
/// alive, so something that is not a Python object holds it — a C extension's static or struct,
/// the interpreter's own state (per-thread dicts, codec and import registries, caches), or a
/// reference leaked in C. Found from the graph alone, so a heap dump says the same.
pub const NO_REFERRER: &str = "(no Python referrer: held by C code or the interpreter)";
/// The root of a reference cycle nothing above reaches: garbage the cyclic collector frees at
/// its next run, unless C code holds one of its objects (refcounts would tell; the graph does
/// not keep them).
pub const IN_CYCLE: &str = "(unreachable cycle: garbage not yet collected, unless C code holds it)";

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

impl<'g> Tree<'g> {
    fn new(g: &'g Graph, labels: Vec<Label>) -> Tree<'g> {
        let n = g.len();
        Tree {
            parent: vec![NONE; n],
            label_of: Ids::filled(n, 0, g.labels.len()),
            labels,
            g,
            roots: Vec::new(),
            root_of: HashMap::default(),
            frame_stats: FrameRootStats::default(),
        }
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root whose object is `i`, if any.
    pub fn root(&self, i: u32) -> Option<&Root> {
        self.root_of.get(&i).map(|&r| &self.roots[r as usize])
    }

    /// The edge by which object `i` was reached (`Label::Ref` for roots and unreached ones).
    pub fn label(&self, i: u32) -> Label {
        match self.parent[i as usize] {
            NONE => Label::Ref,
            _ => self.labels[self.label_of.get(i as usize) as usize],
        }
    }

    /// The edge object `i` was reached by, as an id (equal ids, equal labels).
    pub fn label_id(&self, i: u32) -> u32 {
        self.label_of.get(i as usize)
    }

    /// Object `i`'s type as an id (0: none); see `type_ptr_of_id`.
    pub fn type_id(&self, i: u32) -> u32 {
        match self.g.type_of.get(i as usize) {
            NO_TYPE => 0,
            t => t + 1,
        }
    }

    /// How many type ids there are (id 0 included).
    pub fn type_count(&self) -> u32 {
        self.g.types.len() as u32 + 1
    }

    /// The type pointer of a type id (0 for id 0).
    pub fn type_ptr_of_id(&self, id: u32) -> u64 {
        id.checked_sub(1)
            .and_then(|t| self.g.types.get(t as usize))
            .map_or(0, |t| t.0)
    }

    /// Object `i`'s type pointer (0: its type did not validate).
    pub fn type_ptr(&self, i: u32) -> u64 {
        self.type_ptr_of_id(self.type_id(i))
    }

    /// Object `i`'s `sys.getsizeof` (0 when its type did not validate).
    pub fn bytes(&self, i: u32) -> u64 {
        match self.g.type_of.get(i as usize) {
            NO_TYPE => 0,
            _ => self.g.bytes_of(i),
        }
    }

    /// Memory object `i` owns outside itself (heap::objects::native: numpy data, bytearray items...);
    /// part of its bytes where sys.getsizeof counts it (all but mmap).
    pub fn native(&self, i: u32) -> u64 {
        self.g
            .native
            .binary_search_by_key(&i, |&(j, _)| j)
            .map_or(0, |k| self.g.native[k].1)
    }

    /// The distinct type pointers of the tree's objects.
    pub fn type_ptrs(&self) -> impl Iterator<Item = u64> + '_ {
        (1..self.type_count()).map(|id| self.type_ptr_of_id(id))
    }

    fn add_root(&mut self, root: Root) {
        self.root_of.insert(root.index, self.roots.len() as u32);
        self.roots.push(root);
    }
}

/// Build the tree on a captured graph (live or from a dump): its edges as they are, its
/// types and sizes not copied. `src` answers for the same graph.
///
/// Modules are walked to the end first, then thread frames: an object both reach is shown
/// under its module path, and frames claim only what the running code alone keeps alive.
pub fn build_on_graph<'g>(g: &'g Graph, src: &mut DumpSource<'g>) -> Tree<'g> {
    let labels = (0..g.labels.len() as u32)
        .map(|l| src.live_label(l))
        .collect();
    let mut t = Tree::new(g, labels);
    let mut flags = vec![0u8; t.len()];
    // Both queues 1–2 bytes per entry (`DeltaQueue`): the frontier can hold millions.
    let mut queue = DeltaQueue::<1>::new();
    for &(i, ref name) in &g.modules {
        if flags[i as usize] & SEEN == 0 {
            flags[i as usize] |= SEEN;
            t.add_root(Root {
                index: i,
                holders: vec![format!("{name} (module)").into()],
                edge: None,
            });
            queue.push_back([i]);
        }
    }
    let mut guessed = DeltaQueue::<3>::new();
    walk(&mut t, &mut flags, &mut queue, &mut guessed);
    let (frame_roots, stats) = src.frame_roots();
    t.frame_stats = stats;
    // The graph found each frame root's object by address once (`link_indexes`).
    for (r, &i) in frame_roots.into_iter().zip(&g.frame_root_index) {
        if i == heap_graph::NO_INDEX {
            continue;
        }
        if flags[i as usize] & SEEN == 0 {
            flags[i as usize] |= SEEN;
            t.add_root(Root {
                index: i,
                holders: vec![r.thread, r.frame],
                edge: Some(r.slot),
            });
            queue.push_back([i]);
        }
    }
    walk(&mut t, &mut flags, &mut queue, &mut guessed);
    log::debug!(
        "tree: frontier queue {} bytes at most, {} guesses in {} bytes",
        queue.capacity_bytes(),
        guessed.len(),
        guessed.capacity_bytes()
    );
    // Last, what only conservative pointers and type edges reach, in the order they were found;
    // a guess into a leaf (a str, an int: it holds nothing) that an exact edge points to waits
    // until no other guess is left, so its exact holder, when some guess leads there, takes it
    // (a stale word in a reused block must not claim a str of an object array that pandas
    // holds through C fields). Only leaves wait: a container reached by a guess first keeps its
    // subtree where it was found, as before.
    follow_guesses(&mut t, &mut flags, &mut queue, &mut guessed);
    unreached_roots(&mut t, &mut flags, &mut queue, &mut guessed, src);
    t
}

/// Roots for what modules and threads do not reach (issue 33: 800 dicts of a Django process
/// were filed as "not reachable" and nothing more). First the objects no other object refers
/// to (`NO_REFERRER`), walked like any root; then, of what is still unseen, each object in
/// address order roots what it reaches (`IN_CYCLE`): everything left is held only by other
/// unseen objects, so it hangs in cycles. Objects whose type did not validate stay unreached.
fn unreached_roots(
    t: &mut Tree,
    flags: &mut [u8],
    queue: &mut DeltaQueue<1>,
    guessed: &mut DeltaQueue<3>,
    src: &mut DumpSource<'_>,
) {
    let n = t.len() as u32;
    let unseen = |flags: &[u8], t: &Tree, i: u32| {
        flags[i as usize] & SEEN == 0 && t.g.type_of.get(i as usize) != NO_TYPE
    };
    if !(0..n).any(|i| unseen(flags, t, i)) {
        return;
    }
    // Which unseen objects some other object refers to (any edge: any reference keeps alive).
    let mut referred = vec![false; t.len()];
    for i in 0..n {
        if t.g.type_of.get(i as usize) == NO_TYPE {
            continue; // its words were not read as references
        }
        // An object that refers to itself is a cycle of one: referred, not held from C.
        for (j, _) in t.g.edges(i) {
            referred[j as usize] = true;
        }
    }
    for (text, pick_referred) in [(NO_REFERRER, false), (IN_CYCLE, true)] {
        for i in 0..n {
            if !unseen(flags, t, i) || referred[i as usize] != pick_referred {
                continue;
            }
            flags[i as usize] |= SEEN;
            let ty = type_name(src, t.type_ptr(i));
            t.add_root(Root {
                index: i,
                holders: vec![text.into(), ty],
                edge: None,
            });
            queue.push_back([i]);
            walk(t, flags, queue, guessed);
            if pick_referred {
                // One cycle at a time: its own guesses before the next root is chosen.
                follow_guesses(t, flags, queue, guessed);
            }
        }
        walk(t, flags, queue, guessed);
        follow_guesses(t, flags, queue, guessed);
    }
}

/// The deferred edges (guesses, types) in the order found, walking what each reaches.
fn follow_guesses(
    t: &mut Tree,
    flags: &mut [u8],
    queue: &mut DeltaQueue<1>,
    guessed: &mut DeltaQueue<3>,
) {
    let g = t.g;
    let exact_in = g.exact_in();
    let mut late = DeltaQueue::<3>::new();
    while let Some([from, to, label]) = guessed.pop_front().or_else(|| late.pop_front()) {
        if flags[to as usize] & SEEN == 0 {
            if flags[to as usize] & LATE == 0
                && t.labels[label as usize] == Label::Ref
                && exact_in.get(to as usize)
                && g.holds_nothing(to)
            {
                flags[to as usize] |= LATE;
                late.push_back([from, to, label]);
                continue;
            }
            flags[to as usize] |= SEEN;
            t.parent[to as usize] = from;
            t.label_of.set(to as usize, label);
            queue.push_back([to]);
            walk(t, flags, queue, guessed);
        }
    }
}

/// Breadth-first from what is queued, marking each object's parent and edge on first sight.
///
/// Words found by scanning an object's body (`Label::Ref`) are only guesses: a stale pointer
/// left in unused bytes looks like a reference. They go to `guessed` and are followed after
/// every exact edge from every root, so a list a frame's local really holds is not charged to
/// a module through a leftover word. Type edges (`graph::CLASS`) wait there too: a class is
/// charged to the module defining it, not to its first instance.
fn walk(t: &mut Tree, flags: &mut [u8], queue: &mut DeltaQueue<1>, guessed: &mut DeltaQueue<3>) {
    while let Some([i]) = queue.pop_front() {
        if t.g.type_of.get(i as usize) == NO_TYPE {
            continue; // its type did not validate: its words were not read as references
        }
        for (j, label) in t.g.edges(i) {
            let f = flags[j as usize];
            if f & SEEN != 0 {
                continue;
            }
            if t.labels[label as usize].deferred() {
                if f & GUESS_QUEUED == 0 {
                    flags[j as usize] |= GUESS_QUEUED;
                    guessed.push_back([i, j, label]);
                }
                continue;
            }
            flags[j as usize] |= SEEN;
            t.parent[j as usize] = i;
            t.label_of.set(j as usize, label);
            queue.push_back([j]);
        }
    }
}

/// Modules from sys.modules, `__main__` first, as (object index, name).
pub fn module_roots(
    view: &mut View,
    py: &Python,
    objects: &addr_set::AddrSet,
) -> Vec<(u32, String)> {
    let l = &py.layout;
    let mut out = Vec::new();
    for &interp in &py.interpreters {
        let Some(modules) = view
            .u64(interp.wrapping_add(l.interp.modules))
            .filter(|&m| m != 0)
        else {
            continue;
        };
        for (k, v) in dict_items(view, l, modules).unwrap_or_default() {
            let i = objects.find(v);
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
            Label::Local(p) => format!("local '{}'", self.name(view, p)),
            Label::Ref => String::new(),
        }
    }
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
            _ => {
                let text = src.label(t.label(j));
                match (text.is_empty(), k.checked_sub(1)) {
                    (true, Some(p)) => ref_name(
                        &type_name(src, t.type_ptr(chain[p])),
                        &type_name(src, t.type_ptr(j)),
                    )
                    .map_or(text, str::to_string),
                    _ => text,
                }
            }
        };
        out.push(Hop {
            label,
            type_name: type_name(src, t.type_ptr(j)),
        });
    }
    (root.map(Root::text), out)
}

/// The name of a field found by scanning its holder's body (an unnamed `Label::Ref`), where the
/// two types say which field it must be: an asyncio Task's coroutine is its `_coro` (no other
/// field of a pending Task holds a coroutine; the C struct's layout differs by version, the
/// types do not).
pub fn ref_name(holder: &str, held: &str) -> Option<&'static str> {
    match (holder, held) {
        ("_asyncio.Task", "coroutine") => Some("._coro"),
        _ => None,
    }
}

/// The retention flamegraph: every object's bytes stacked on its path from the roots.
///
/// Paths form a trie keyed by (parent node, edge label, type): objects reached the same way
/// share a node, so the work is one hash lookup per object, not a path rebuild. Long: its three
/// stages (the roots' nodes, every object's node, the stacks) share the trie's node table and id
/// maps, which the `child` closure captures.
pub fn profile(src: &mut dyn HeapSource, mut t: Tree) -> Profile {
    // Node 0 is the invisible top; nodes carry (parent, frame text, depth, bytes, objects).
    let mut nodes: Vec<(u32, String, usize, u64, u64)> = vec![(NONE, String::new(), 0, 0, 0)];
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
    // The trie is keyed by ids, not by labels and type pointers, so a lookup hashes 12 bytes.
    // Label ids that spell the same label, and type ids of one type, share a canonical id.
    let mut edges: Vec<Label> = Vec::new();
    let mut edge_ids: HashMap<Label, u32> = HashMap::default();
    let mut edge_id = |l: Label| {
        *edge_ids.entry(l).or_insert_with(|| {
            edges.push(l);
            (edges.len() - 1) as u32
        })
    };
    let ref_edge = edge_id(Label::Ref);
    let edge_of: Vec<u32> = t.labels.iter().map(|&l| edge_id(l)).collect();
    let mut kinds: Vec<u64> = Vec::new();
    let mut kind_ids: HashMap<u64, u32> = HashMap::default();
    let kind_of: Vec<u32> = (0..t.type_count())
        .map(|id| {
            let tp = t.type_ptr_of_id(id);
            *kind_ids.entry(tp).or_insert_with(|| {
                kinds.push(tp);
                (kinds.len() - 1) as u32
            })
        })
        .collect();
    let mut index: HashMap<(u32, u64), u32> = HashMap::default();
    let mut child = |nodes: &mut Vec<(u32, String, usize, u64, u64)>,
                     src: &mut dyn HeapSource,
                     parent: u32,
                     edge: u32,
                     kind: u32| {
        let depth = nodes[parent as usize].2;
        if depth >= MAX_DEPTH {
            return parent;
        }
        *index
            .entry((parent, (edge as u64) << 32 | kind as u64))
            .or_insert_with(|| {
                let tp = kinds[kind as usize];
                let text = match src.label(edges[edge as usize]) {
                    l if l.is_empty() => type_name(src, tp).to_string(),
                    l => format!("{l} {}", type_name(src, tp)),
                };
                nodes.push((parent, text, depth + 1, 0, 0));
                (nodes.len() - 1) as u32
            })
    };
    // An object's node is the child, by (edge, type), of its parent's node. Once known it
    // takes the parent's place in `up` (no second array of 4 bytes per object); `known` says
    // which entries are nodes. Each object is resolved once: chains are climbed to the nearest
    // known ancestor, then resolved downwards.
    let n = t.len();
    let mut up = std::mem::take(&mut t.parent);
    let mut known = vec![0u64; n.div_ceil(64)];
    let is_known = |known: &[u64], i: u32| known[i as usize / 64] >> (i % 64) & 1 == 1;
    let mut chain: Vec<u32> = Vec::new();
    for start in 0..n as u32 {
        if is_known(&known, start) {
            continue;
        }
        chain.clear();
        let mut cur = start;
        let mut node = loop {
            if is_known(&known, cur) {
                break up[cur as usize];
            }
            chain.push(cur);
            match up[cur as usize] {
                // A root is its own holders' node; anything else without a parent is filed
                // as unreached, by type.
                NONE => {
                    chain.pop();
                    let node = match root_nodes.get(&cur) {
                        Some(&r) => r,
                        None => {
                            let kind = kind_of[t.type_id(cur) as usize];
                            child(&mut nodes, src, unreached, ref_edge, kind)
                        }
                    };
                    chain.push(cur);
                    break node;
                }
                // Parents come from a breadth-first walk and cannot loop; bounded anyway.
                _ if chain.len() > n => break unreached,
                p => cur = p,
            }
        };
        while let Some(i) = chain.pop() {
            // The chain's top, when it had no parent, has its node already.
            if up[i as usize] != NONE {
                node = child(
                    &mut nodes,
                    src,
                    node,
                    edge_of[t.label_id(i) as usize],
                    kind_of[t.type_id(i) as usize],
                );
            }
            up[i as usize] = node;
            known[i as usize / 64] |= 1 << (i % 64);
            nodes[node as usize].3 += t.bytes(i);
            nodes[node as usize].4 += 1;
        }
    }
    drop((up, known));
    let mut p = Profile::new(
        // `n`, not `t.len()`: the parents were taken out of `t` above.
        format!("Retention: what holds the memory ({n} objects)"),
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

#[cfg(test)]
mod tests {
    use super::test_graph::{graph, REF};
    use super::*;

    /// A stale word that points at an object some other object really holds does not take it:
    /// the holder, itself reached only through a guess (an object array behind a C
    /// extension's fields), is found first.
    #[test]
    fn exact_holder_takes_over_from_a_stale_word() {
        // Module 0 guesses the leaf 2 (a stale word) before 1; 1 holds 2 for real. 3: a leaf
        // only a guess reaches, and keeps.
        let g = graph(&[
            (8, &[REF + 2, REF + 1]),
            (8, &[2, REF + 3]),
            (8, &[]),
            (8, &[]),
        ]);
        let mut src = DumpSource::new(&g);
        let t = build_on_graph(&g, &mut src);
        assert_eq!(t.parent, vec![NONE, 0, 1, 1]);
        assert_eq!(t.label(2), Label::Item);
        assert_eq!(t.label(3), Label::Ref);
    }
}
