//! Which references the dominators follow, decided once per edge into bitsets.

use super::super::exact_in::exact_labels;
pub(super) use super::super::exact_in::Bits;
use super::super::heap_graph::Graph;

/// Which edges count: exact ones always; a conservative one (a word of an object's body that
/// looks like a pointer) only into an object no exact edge reaches. Such words are guesses —
/// a finished generator's or a dead tuple's stale slots point at objects that are held for
/// real elsewhere, and counting them would take those objects from their true holder —, but
/// they are also how `__slots__` values and C extensions' fields are found, which nothing else
/// reaches. Decided once per edge into bitsets, so the labels can go before the walk.
pub(super) struct Kept {
    /// Per stored edge (`Graph::edge_to`'s positions).
    pub(super) stored: Bits,
    /// Whether the type edges count: their label is exact, or (never in practice) their
    /// target has no exact in-edge — per object, then.
    class_exact: bool,
    exact_in: Bits,
}

impl Kept {
    pub(super) fn of(g: &Graph) -> Kept {
        let exact = exact_labels(g);
        let is_exact = |l: u32| exact.get(l as usize).copied().unwrap_or(false);
        let exact_in = g.exact_in().clone();
        let mut stored = Bits::new(g.edge_to.len());
        for (k, (&t, l)) in g.edge_to.iter().zip(g.edge_label.iter()).enumerate() {
            if is_exact(l) || !exact_in.get(t as usize) {
                stored.set(k);
            }
        }
        Kept {
            stored,
            class_exact: is_exact(g.class_label),
            exact_in,
        }
    }

    /// Whether a type edge into `t` counts.
    pub(super) fn class_counts(&self, t: u32) -> bool {
        self.class_exact || !self.exact_in.get(t as usize)
    }

    /// Object `i`'s counted stored edges (its type edge aside), in order.
    pub(super) fn stored_targets<'a>(
        &'a self,
        g: &'a Graph,
        i: u32,
    ) -> impl Iterator<Item = u32> + 'a {
        let a = g.edge_start.get(i as usize).map_or(0, |&a| a as usize);
        let b = g.edge_start.get(i as usize + 1).map_or(a, |&b| b as usize);
        (a..b.max(a))
            .filter(|&k| self.stored.get(k))
            .filter_map(|k| g.edge_to.get(k).copied())
    }
}
