//! Every node's counted predecessors (root edges included, type edges aside: `instances`),
//! for the dominator passes. Most of a heap's objects have one (an object held by one
//! container): that one is kept in the node's own slot, and only nodes with two or more get a
//! run in the shared list, so the list holds the joins' predecessors alone (about half of
//! them on a service-shaped heap).
//!
//! `start[v]` is `NONE` (no predecessor), `FLAG | p` (the one predecessor p), or where v's
//! run starts in `list`. A run goes on to the next entry that carries `FLAG` (the next run's
//! first, flagged once filled) or the list's end. Node numbers are below 2^31 (`fits`).

const FLAG: u32 = 1 << 31;
const NONE: u32 = u32::MAX;

pub(super) struct Preds {
    start: Vec<u32>,
    list: Vec<u32>,
}

impl Preds {
    /// Whether `nodes` nodes and `edges` edges fit the encoding.
    pub(super) fn fits(nodes: usize, edges: usize) -> bool {
        nodes < FLAG as usize - 1 && edges < FLAG as usize
    }

    /// Predecessors of `nodes` nodes from their edges: `each_edge(f)` calls `f(from, to)` for
    /// every one, the same ones on both calls (a count, then a fill).
    pub(super) fn of(nodes: usize, each_edge: impl Fn(&mut dyn FnMut(u32, u32))) -> Preds {
        let mut start = vec![0u32; nodes];
        each_edge(&mut |_, to| {
            if let Some(c) = start.get_mut(to as usize) {
                *c = c.saturating_add(1);
            }
        });
        // Counts to the ends of the joins' runs (filled downwards: each ends at its start).
        let mut end = 0u32;
        for s in &mut start {
            if *s >= 2 {
                end = end.saturating_add(*s);
                *s = end;
            } else {
                *s = NONE;
            }
        }
        let mut list = vec![0u32; end as usize];
        each_edge(&mut |from, to| {
            let Some(s) = start.get_mut(to as usize) else {
                return;
            };
            if *s == NONE {
                *s = FLAG | from;
            } else if *s & FLAG == 0 && *s > 0 {
                if let Some(slot) = list.get_mut(*s as usize - 1) {
                    *s -= 1;
                    *slot = from;
                }
            }
        });
        for &s in &start {
            if s & FLAG == 0 {
                if let Some(first) = list.get_mut(s as usize) {
                    *first |= FLAG;
                }
            }
        }
        Preds { start, list }
    }

    /// Node `v`'s predecessors.
    pub(super) fn of_node(&self, v: u32) -> impl Iterator<Item = u32> + '_ {
        let s = self.start.get(v as usize).copied().unwrap_or(NONE);
        let (one, run) = match s {
            NONE => (None, &[][..]),
            s if s & FLAG != 0 => (Some(s & !FLAG), &[][..]),
            s => (None, self.list.get(s as usize..).unwrap_or(&[])),
        };
        let run = (run.iter().enumerate())
            .take_while(|&(k, &p)| k == 0 || p & FLAG == 0)
            .map(|(_, &p)| p & !FLAG);
        one.into_iter().chain(run)
    }

    /// Node `v`'s predecessor when it has exactly one.
    pub(super) fn single(&self, v: u32) -> Option<u32> {
        let s = *self.start.get(v as usize)?;
        (s != NONE && s & FLAG != 0).then_some(s & !FLAG)
    }

    /// Whether node `v` has none.
    pub(super) fn none(&self, v: u32) -> bool {
        self.start.get(v as usize).is_none_or(|&s| s == NONE)
    }

    /// Predecessors kept in the shared list (the joins').
    pub(super) fn listed(&self) -> usize {
        self.list.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node gets exactly its predecessors (as a set), whether it has none, one or many.
    #[test]
    fn gives_each_node_its_predecessors() {
        let edges: Vec<(u32, u32)> = vec![
            (0, 1),
            (0, 2),
            (1, 3),
            (2, 3),
            (3, 3),
            (1, 4),
            (4, 5),
            (2, 5),
            (3, 5),
            (0, 6),
        ];
        let nodes = 8;
        let p = Preds::of(nodes, |f| {
            for &(a, b) in &edges {
                f(a, b);
            }
        });
        for v in 0..nodes as u32 {
            let mut got: Vec<u32> = p.of_node(v).collect();
            got.sort_unstable();
            let mut want: Vec<u32> = edges.iter().filter(|e| e.1 == v).map(|e| e.0).collect();
            want.sort_unstable();
            assert_eq!(got, want, "node {v}");
            assert_eq!(p.single(v), (want.len() == 1).then(|| want[0]), "node {v}");
            assert_eq!(p.none(v), want.is_empty(), "node {v}");
        }
        // Only the joins' predecessors (3: three, 5: three) are listed.
        assert_eq!(p.listed(), 6);
    }
}
