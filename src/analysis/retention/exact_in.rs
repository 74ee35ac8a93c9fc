//! Which objects an exact reference points to. A word of an object's body that looks like a
//! pointer (`EdgeLabel::Ref`) is a guess: stale words — a finished generator's slots, a
//! reused block's leftovers — point at objects held for real elsewhere. Both the tree and the
//! dominators let an exact holder take such an object over from a guessed one.

use super::heap_graph::{EdgeLabel, Graph};

/// A fixed-size bitset.
pub struct Bits(Vec<u64>);

impl Bits {
    pub fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    pub fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    pub fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// Whether label `l` of `g` is exact (anything but a scanned word; type edges are exact).
pub fn exact_labels(g: &Graph) -> Vec<bool> {
    g.labels.iter().map(|l| *l != EdgeLabel::Ref).collect()
}

/// The objects of `g` some exact edge points to (type edges included), one bit each.
pub fn exact_in(g: &Graph, exact: &[bool]) -> Bits {
    let is_exact = |l: u32| exact.get(l as usize).copied().unwrap_or(false);
    let mut bits = Bits::new(g.len());
    for i in 0..g.len() as u32 {
        for (t, l) in g.edges(i) {
            if is_exact(l) {
                bits.set(t as usize);
            }
        }
    }
    bits
}
