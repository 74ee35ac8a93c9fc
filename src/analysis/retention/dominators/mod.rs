//! Retained size: what freeing an object would free. An object's retained bytes are its own
//! plus those of every object it dominates — every path from the roots to them passes through
//! it. The dominator tree is computed over the whole captured graph from a virtual root whose
//! children are the modules, then what thread frames hold, then every object no root reaches
//! (each its own root: what it alone holds is still what freeing it would free). Conservative
//! edges count only into objects no exact edge reaches (`Kept`).
//!
//! Algorithm: Cooper, Harvey and Kennedy's iterative one ("A Simple, Fast Dominance
//! Algorithm"), over integer arrays: a DFS numbering, predecessors, one `idom` array.
//! Here: the computation and its memory plan; `kept` which edges count, `dfs` the numbering,
//! `preds` the predecessors, `instances` the type edges as predecessors, `by_type` the
//! per-type sums of `--retained`.

mod by_type;
mod dfs;
mod instances;
mod kept;
mod preds;

pub use self::by_type::retained_by_type;
use self::instances::Instances;
use self::kept::Kept;
use self::preds::Preds;
use super::heap_graph::Graph;
use super::ids::Ids;

const UNDEF: u32 = u32::MAX;

pub struct Dominators {
    /// Per object: its immediate dominator (an object index), or `ROOT` for the virtual root.
    pub idom: Vec<u32>,
    /// Per object: retained bytes (`sys.getsizeof` of itself and all it dominates).
    pub retained: Vec<u64>,
}

/// The virtual root, as an `idom` value.
pub const ROOT: u32 = u32::MAX - 1;

/// The graph a computation reads: borrowed, or owned and let go of array by array as soon as
/// the computation is done with each (the predecessors and the graph's edges are never held
/// together with the labels, nor the post order beside them: `why`'s peak memory).
enum Held<'g> {
    Borrowed(&'g Graph),
    Owned(Box<Graph>),
}

impl Held<'_> {
    fn graph(&self) -> &Graph {
        match self {
            Held::Borrowed(g) => g,
            Held::Owned(g) => g,
        }
    }

    fn release(&mut self, what: impl FnOnce(&mut Graph)) {
        if let Held::Owned(g) = self {
            what(g);
        }
    }
}

/// Dominators of a graph the caller goes on using.
pub fn compute(g: &Graph) -> Dominators {
    run(Held::Borrowed(g))
}

/// Dominators of a graph nothing needs after: its labels, edges and types are let go on the
/// way (sizes stay to the end).
pub fn compute_consuming(g: Graph) -> Dominators {
    run(Held::Owned(Box::new(g)))
}

/// Dominators and retained bytes of `held`'s graph, its arrays let go as each stops being needed.
/// Long: the computation's phases in order (DFS, predecessors, passes, retained bytes) with each
/// array released at the point it stops being needed; kept whole so the memory plan reads in one
/// place.
fn run(mut held: Held) -> Dominators {
    let n = held.graph().len();
    let mut phases = crate::analysis::phases::Phases::start("dominators");
    let kept = Kept::of(held.graph());
    held.release(|g| g.edge_label = Ids::default());
    let g = held.graph();
    let stored_edges = g.edge_to.len();
    // Node numbering: 0 is the virtual root, object i is i + 1.
    let (post, root_children) = dfs::postorder(g, &kept);
    phases.lap("DFS");
    if stored_edges + 2 * n >= u32::MAX as usize || !Preds::fits(n + 1, stored_edges + n) {
        // Past u32 offsets (4G references): every object is its own holder's only part.
        log::warn!("too many references for retained sizes: each object retains itself");
        return Dominators {
            idom: vec![ROOT; n],
            retained: (0..n as u32).map(|i| g.bytes_of(i)).collect(),
        };
    }
    let instances = Instances::of(g, &kept, n);
    held.release(|g| g.type_of = Ids::default());
    let g = held.graph();
    // Predecessors, root edges included, type edges aside (`instances`).
    let preds = Preds::of(n + 1, |f| {
        for &c in &root_children {
            f(0, c + 1);
        }
        for i in 0..n as u32 {
            for t in kept.stored_targets(g, i) {
                f(i + 1, t + 1);
            }
        }
    });
    drop((kept, root_children));
    held.release(|g| {
        g.edge_to = Vec::new();
        g.edge_start = Vec::new();
    });
    let g = held.graph();
    let mut order = vec![0u32; n + 1];
    for (v, &p) in post.iter().enumerate() {
        // Every node has its post number (the root's children cover all objects).
        if let Some(o) = order.get_mut(p as usize) {
            *o = v as u32;
        }
    }
    log::debug!(
        "dominators: {n} objects, {stored_edges} stored references, {} predecessors of joins listed, {} by type",
        preds.listed(),
        instances.count
    );
    phases.lap("predecessors");
    let mut idom = vec![UNDEF; n + 1];
    idom[0] = 0;
    let intersect = |idom: &[u32], mut a: u32, mut b: u32| -> u32 {
        while a != b {
            while post[a as usize] < post[b as usize] {
                a = idom[a as usize];
            }
            while post[b as usize] < post[a as usize] {
                b = idom[b as usize];
            }
        }
        a
    };
    // A node with one predecessor is dominated by it, whatever else the graph holds: the
    // first pass sets it (at its place in the order, as the algorithm would), the later passes
    // leave it out (most of a heap: an object held by one container) and revisit the joins.
    let single = |v: u32| -> Option<u32> {
        match (preds.single(v), instances.count_of(v)) {
            (Some(p), 0) if p != v => Some(p),
            (None, 1) if preds.none(v) => instances.of_node(v).next().filter(|&p| p != v),
            _ => None,
        }
    };
    let join = |idom: &mut Vec<u32>, v: u32| -> bool {
        let mut new = UNDEF;
        for p in preds.of_node(v).chain(instances.of_node(v)) {
            if idom[p as usize] == UNDEF {
                continue;
            }
            new = if new == UNDEF {
                p
            } else {
                intersect(idom, p, new)
            };
            if new == 0 {
                break; // nothing dominates above the virtual root
            }
        }
        let changed = new != UNDEF && idom[v as usize] != new;
        if changed {
            idom[v as usize] = new;
        }
        changed
    };
    // Reverse postorder, the root (last in postorder) skipped.
    let mut joins: Vec<u32> = Vec::new();
    let mut changed = false;
    for &v in order.iter().rev().skip(1) {
        if let Some(p) = single(v) {
            idom[v as usize] = p;
            continue;
        }
        joins.push(v);
        changed |= join(&mut idom, v);
    }
    while changed {
        changed = false;
        for &v in &joins {
            changed |= join(&mut idom, v);
        }
    }
    phases.lap("passes");
    drop((preds, joins, post, instances));
    // Retained bytes: children before parents (postorder).
    let mut retained = vec![0u64; n + 1];
    for &v in &order {
        if v == 0 {
            continue;
        }
        let own = retained[v as usize] + g.bytes_of(v - 1);
        retained[v as usize] = own;
        let d = idom[v as usize];
        if d != UNDEF {
            retained[d as usize] += own;
        }
    }
    drop(order);
    // Node numbers back to object indexes, in place (a copy would double these arrays at the
    // peak of a `why`: 12 bytes per object).
    for d in &mut idom {
        *d = match *d {
            0 | UNDEF => ROOT,
            d => d - 1,
        };
    }
    idom.remove(0);
    retained.remove(0);
    Dominators { idom, retained }
}

/// `why`'s retainers with the bytes their holders retain.
pub fn annotate_why(r: &mut super::why::WhyReport, d: &Dominators) {
    for h in &mut r.retainers {
        h.retained = Some(
            h.holder_indexes
                .iter()
                .filter_map(|&i| d.retained.get(i as usize))
                .sum(),
        );
    }
}

/// Debugging retained sizes: objects of `type_name` whose immediate dominator is not their
/// tree parent, with every object that references them (`PYMEMSPY_LOG=debug`).
pub fn log_other_holders(g: &Graph, d: &Dominators, parent: &[u32], type_name: &str) {
    let mut shown = 0;
    for i in 0..g.len() as u32 {
        if shown >= 50 || g.type_name_of(i) != Some(type_name) {
            continue;
        }
        if d.idom[i as usize] == parent[i as usize] {
            continue;
        }
        shown += 1;
        let holders: Vec<String> = (0..g.len() as u32)
            .flat_map(|s| g.edges(s).map(move |(t, l)| (s, t, l)))
            .filter(|&(_, t, _)| t == i)
            .map(|(s, _, l)| {
                format!(
                    "{:#x} {} via {:?}",
                    g.objects.get(s),
                    g.type_name_of(s).unwrap_or("?"),
                    g.labels[l as usize]
                )
            })
            .collect();
        log::debug!(
            "{type_name} at {:#x}: idom {:?}, tree parent {}, referenced by {holders:?}",
            g.objects.get(i),
            d.idom.get(i as usize),
            parent[i as usize]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::retention::heap_graph::{EdgeLabel, NO_TYPE};
    use crate::analysis::retention::test_graph::{graph, REF};

    #[test]
    fn shared_object_is_retained_by_no_single_holder() {
        // 0 → 1, 0 → 2; 1 → 3, 2 → 3 (shared); 1 → 4 (private); 5 unreachable.
        let g = graph(&[
            (10, &[1, 2]),
            (20, &[3, 4]),
            (30, &[3]),
            (40, &[]),
            (50, &[]),
            (60, &[]),
        ]);
        let d = compute(&g);
        assert_eq!(d.retained, vec![150, 70, 30, 40, 50, 60]);
        assert_eq!(d.idom, vec![ROOT, 0, 0, 0, 1, ROOT]);
    }

    #[test]
    fn cycles_and_nested_instances() {
        // 0 → 1 → 2 → 1 (cycle); all of type t: the type retains the root's bytes once.
        let g = graph(&[(1, &[1]), (2, &[2]), (4, &[1])]);
        let d = compute(&g);
        assert_eq!(d.retained, vec![7, 6, 4]);
        let by_type = retained_by_type(&g.types, |i| g.type_of.get(i), &d);
        assert_eq!(by_type.get("t"), Some(&7));
    }

    #[test]
    fn conservative_words_count_only_where_nothing_exact_reaches() {
        // 0 → 1 (exact) → 2 (only a body word: a slot); 0 → 3 whose stale word points at 1.
        let g = graph(&[
            (1, &[1, 3]),
            (10, &[2 + REF]),
            (100, &[]),
            (1000, &[1 + REF]),
        ]);
        let d = compute(&g);
        assert_eq!(d.idom, vec![ROOT, 0, 1, 0]);
        assert_eq!(d.retained, vec![1111, 110, 100, 1000]);
    }

    /// `g` with objects 3.. of type C, whose type object is object 1.
    fn with_class(mut g: Graph) -> Graph {
        g.labels.push(EdgeLabel::Field(0));
        g.class_label = 2;
        g.types = vec![(0x1010, "C".into())];
        g.type_index = vec![1];
        g.type_of = (0..g.len())
            .map(|i| if i >= 3 { 0 } else { NO_TYPE })
            .collect();
        g
    }

    #[test]
    fn type_edges_make_the_class_a_join() {
        // 0 → 1 (the class), 0 → 2 → 3, 4 (instances); with 5, an instance no root reaches,
        // the class has a holder outside 0's part of the heap.
        let nodes: &[(u64, &[u32])] = &[
            (1, &[1, 2]),
            (10, &[]),
            (100, &[3, 4]),
            (1000, &[]),
            (10000, &[]),
            (100000, &[]),
        ];
        for (objects, idom, retained) in [
            (
                6,
                vec![ROOT, ROOT, 0, 2, 2, ROOT],
                vec![11101, 10, 11100, 1000, 10000, 100000],
            ),
            (
                5,
                vec![ROOT, 0, 0, 2, 2],
                vec![11111, 10, 11100, 1000, 10000],
            ),
        ] {
            let g = with_class(graph(&nodes[..objects]));
            let d = compute(&g);
            assert_eq!((&d.idom, &d.retained), (&idom, &retained));
            // Consuming the graph lets arrays go on the way, not the answer.
            let d = compute_consuming(g);
            assert_eq!((d.idom, d.retained), (idom, retained));
        }
    }
}
