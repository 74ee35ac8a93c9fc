//! Type edges grouped by type object, as predecessors.

use super::kept::{Bits, Kept};
use crate::analysis::retention::heap_graph::{Graph, NO_INDEX};
use crate::analysis::retention::varint;

/// The type edges that count, as predecessors grouped by type object: every object has one,
/// so as entries of the predecessor arrays they would double them (`why`'s peak memory);
/// grouped, in place of `Graph::type_of`, which goes. A group's members are in node order, so
/// each is kept as the varint of its distance from the one before (1–2 bytes where a `u32`
/// took 4: this list is one entry per object, and part of the dominators' peak).
pub(super) struct Instances {
    /// The type objects' nodes, sorted: (node, where its members start in `members`, how many).
    types: Vec<(u32, usize, u32)>,
    /// Per node: whether it is one of `types` (most lookups are of other nodes).
    is_type: Bits,
    /// Instance nodes, grouped by type object, varint distances from the previous member (the
    /// first from 0).
    members: Vec<u8>,
    /// How many members in all.
    pub(super) count: usize,
}

impl Instances {
    pub(super) fn of(g: &Graph, kept: &Kept, n: usize) -> Instances {
        let mut nodes: Vec<u32> = (g.type_index.iter())
            .filter(|&&t| t != NO_INDEX && (t as usize) < n && kept.class_counts(t))
            .map(|&t| t + 1)
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
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
        // Per type object: members and their bytes, counted; then placed (no second copy of
        // the objects).
        let mut count = vec![0u32; nodes.len()];
        let mut len = vec![0usize; nodes.len() + 1];
        let mut last = vec![0u32; nodes.len()];
        for i in 0..n as u32 {
            if let Some(k) = slot(i) {
                count[k] += 1;
                len[k + 1] += varint::len(u64::from(i + 1 - last[k]));
                last[k] = i + 1;
            }
        }
        for k in 1..len.len() {
            len[k] += len[k - 1];
        }
        let mut members = vec![0u8; len.last().copied().unwrap_or(0)];
        let mut next = len.clone();
        last.fill(0);
        for i in 0..n as u32 {
            if let Some(k) = slot(i) {
                let d = i + 1 - last[k];
                last[k] = i + 1;
                let at = &mut next[k];
                varint::put(u64::from(d), |b| {
                    // Sized by the count above; a slot past the end is left unwritten.
                    if let Some(slot) = members.get_mut(*at) {
                        *slot = b;
                    }
                    *at += 1;
                });
            }
        }
        let mut is_type = Bits::new(n + 1);
        for &v in &nodes {
            is_type.set(v as usize);
        }
        Instances {
            count: count.iter().map(|&c| c as usize).sum(),
            types: (nodes.into_iter().zip(len).zip(count))
                .map(|((v, at), c)| (v, at, c))
                .collect(),
            is_type,
            members,
        }
    }

    /// The group of node `v`, when it is a type object with counted instances.
    fn group(&self, v: u32) -> Option<(usize, u32)> {
        if !self.is_type.get(v as usize) {
            return None;
        }
        let k = self.types.binary_search_by_key(&v, |t| t.0).ok()?;
        let (_, at, count) = self.types[k];
        Some((at, count))
    }

    /// How many nodes have a type edge into node `v` that counts.
    pub(super) fn count_of(&self, v: u32) -> u32 {
        self.group(v).map_or(0, |(_, c)| c)
    }

    /// The nodes whose type edge into node `v` counts, in node order.
    pub(super) fn of_node(&self, v: u32) -> impl Iterator<Item = u32> + '_ {
        let (at, count) = self.group(v).unwrap_or((0, 0));
        let mut bytes = self.members.get(at..).unwrap_or(&[]).iter();
        let mut node = 0u32;
        (0..count).map_while(move |_| {
            let d = varint::take(|| bytes.next().copied())? as u32;
            node = node.wrapping_add(d);
            Some(node)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::retention::heap_graph::{EdgeLabel, NO_TYPE};
    use crate::analysis::retention::test_graph::graph;

    /// Members far apart and close together come back as they were, in node order.
    #[test]
    fn members_come_back_in_node_order() {
        let n = 40_000;
        let nodes: Vec<(u64, &[u32])> = (0..n).map(|_| (8, &[][..])).collect();
        let mut g = graph(&nodes);
        let members = [3u32, 4, 200, 16_500, 19_999, 39_999];
        g.labels.push(EdgeLabel::Field(0));
        g.class_label = 2;
        g.types = vec![(0x1010, "C".into())];
        g.type_index = vec![1];
        g.type_of = (0..n as u32)
            .map(|i| if members.contains(&i) { 0 } else { NO_TYPE })
            .collect();
        let inst = Instances::of(&g, &Kept::of(&g), n);
        // Node numbers are object indexes + 1: the class (object 1) is node 2.
        let want: Vec<u32> = members.iter().map(|i| i + 1).collect();
        assert_eq!(inst.of_node(2).collect::<Vec<_>>(), want);
        assert_eq!((inst.count_of(2), inst.count), (6, 6));
        assert_eq!(inst.of_node(3).count(), 0);
        assert_eq!(inst.count_of(1), 0);
    }
}
