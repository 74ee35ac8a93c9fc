//! Type edges grouped by type object, as predecessors.

use super::kept::{Bits, Kept};
use crate::analysis::retention::heap_graph::{Graph, NO_INDEX};

/// The type edges that count, as predecessors grouped by type object: every object has one,
/// so as entries of the predecessor arrays they would double them (`why`'s peak memory);
/// grouped, they take one entry per object in place of `Graph::type_of`, which goes.
pub(super) struct Instances {
    /// The type objects' nodes, sorted, and where each one's instances start in `members`.
    pub(super) types: Vec<(u32, u32)>,
    /// Per node: whether it is one of `types` (most lookups are of other nodes).
    is_type: Bits,
    /// Instance nodes, grouped by type object.
    pub(super) members: Vec<u32>,
}

impl Instances {
    pub(super) fn of(g: &Graph, kept: &Kept, n: usize) -> Instances {
        let mut nodes: Vec<u32> = (g.type_index.iter())
            .filter(|&&t| t != NO_INDEX && (t as usize) < n && kept.class_counts(t))
            .map(|&t| t + 1)
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        // Counted per type object, then placed (a counting sort: no second copy of the
        // objects).
        let mut count = vec![0u32; nodes.len() + 1];
        // Per type (few): its type object's place in `nodes`; then per object, a lookup.
        let slot_of_type: Vec<Option<usize>> = (0..g.types.len() as u32)
            .map(|ty| {
                g.class_edge_of_type(ty)
                    .and_then(|t| nodes.binary_search(&(t + 1)).ok())
            })
            .collect();
        let slot = |i: u32| {
            let ty = g.type_of.get(i as usize);
            *slot_of_type.get(ty as usize)?
        };
        for i in 0..n as u32 {
            if let Some(k) = slot(i) {
                count[k + 1] += 1;
            }
        }
        for k in 1..count.len() {
            count[k] += count[k - 1];
        }
        let mut members = vec![0u32; count.last().copied().unwrap_or(0) as usize];
        let mut next = count.clone();
        for i in 0..n as u32 {
            if let Some(k) = slot(i) {
                members[next[k] as usize] = i + 1;
                next[k] += 1;
            }
        }
        let mut is_type = Bits::new(n + 1);
        for &v in &nodes {
            is_type.set(v as usize);
        }
        Instances {
            types: nodes.into_iter().zip(count).collect(),
            is_type,
            members,
        }
    }

    /// The nodes whose type edge into node `v` counts.
    pub(super) fn of_node(&self, v: u32) -> &[u32] {
        if !self.is_type.get(v as usize) {
            return &[];
        }
        let Ok(k) = self.types.binary_search_by_key(&v, |&(t, _)| t) else {
            return &[];
        };
        let a = self.types[k].1 as usize;
        let b = self
            .types
            .get(k + 1)
            .map_or(self.members.len(), |&(_, b)| b as usize);
        self.members.get(a..b).unwrap_or(&[])
    }
}
