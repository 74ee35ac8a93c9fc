//! Which objects an exact reference points to. A word of an object's body that looks like a
//! pointer (`EdgeLabel::Ref`) is a guess: stale words — a finished generator's slots, a
//! reused block's leftovers — point at objects held for real elsewhere. Both the tree and the
//! dominators let an exact holder take such an object over from a guessed one.

use super::heap_graph::{EdgeLabel, Graph};

/// A fixed-size bitset.
#[derive(Debug, Clone, Default)]
pub struct Bits(Vec<u64>);

impl Bits {
    pub fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    /// Set bit `i` (nothing past the end: a graph's indexes are checked where they are made).
    pub fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    pub fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// Whether label `l` of `g` is exact (anything but a scanned word; type edges are exact). A
/// held frame's named locals weigh as the value-stack words beside them (see
/// `heap::graph::Label::deferred`).
pub fn exact_labels(g: &Graph) -> Vec<bool> {
    g.labels
        .iter()
        .map(|l| !matches!(l, EdgeLabel::Ref | EdgeLabel::Local(_)))
        .collect()
}

/// The objects of `g` some exact edge points to (type edges included), one bit each: one
/// pass over the stored edges in their order, then the type objects that have instances.
pub fn exact_in(g: &Graph, exact: &[bool]) -> Bits {
    let is_exact = |l: u32| exact.get(l as usize).copied().unwrap_or(false);
    let mut bits = Bits::new(g.len());
    for (&t, l) in g.edge_to.iter().zip(g.edge_label.iter()) {
        if is_exact(l) {
            bits.set(t as usize);
        }
    }
    if is_exact(g.class_label) {
        let mut has_instances = Bits::new(g.types.len());
        for t in g.type_of.iter() {
            has_instances.set(t as usize);
        }
        for t in 0..g.types.len() as u32 {
            if let Some(to) = g
                .class_edge_of_type(t)
                .filter(|_| has_instances.get(t as usize))
            {
                bits.set(to as usize);
            }
        }
    }
    bits
}
