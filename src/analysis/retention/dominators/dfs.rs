//! The depth-first numbering the dominators are computed in.

use super::kept::{Bits, Kept};
use super::UNDEF;
use crate::analysis::retention::heap_graph::{Graph, NO_INDEX};

/// Post numbers of every node (0 the virtual root, object i node i + 1) from a DFS over the
/// counted edges, and the virtual root's children: the named roots, then every object in
/// address order that no earlier child reached.
pub(super) fn postorder(g: &Graph, kept: &Kept) -> (Vec<u32>, Vec<u32>) {
    let n = g.len();
    // The virtual root's children: modules and frame roots, then every object in address
    // order that the DFS has not reached from an earlier child by then (found by the DFS).
    let mut root_children = named_roots(g);
    let named = root_children.len() as u64;
    // DFS postorder from the virtual root (iterative; heaps hold 100k-deep linked lists).
    // Only the post numbers are kept: the order is rebuilt from them when it is needed.
    let mut post = vec![UNDEF; n + 1];
    let mut finished = 0u32;
    let mut visited = Bits::new(n + 1);
    let mut stack: Vec<Frame> = Vec::new();
    // The virtual root's next child (its own counter: named roots, then every object).
    let mut root_k = 0u64;
    visited.set(0);
    stack.push(Frame::ROOT);
    while let Some(top) = stack.last_mut() {
        let next = if top.v == 0 {
            let k = root_k;
            root_k += 1;
            match k.checked_sub(named) {
                None => root_children.get(k as usize).map(|&c| c + 1),
                Some(i) => (i < n as u64).then_some(i as u32 + 1),
            }
        } else {
            top.next_child(g, kept)
        };
        match next {
            Some(c) => {
                if !visited.get(c as usize) {
                    visited.set(c as usize);
                    if top.v == 0 && root_k > named {
                        root_children.push(c - 1);
                    }
                    stack.push(Frame::of(g, kept, c));
                }
            }
            None => {
                post[top.v as usize] = finished;
                finished += 1;
                stack.pop();
            }
        }
    }
    (post, root_children)
}

/// A node on the DFS stack and what of its edges is still to go: its type edge (`UNDEF`
/// when gone or not counted), then its stored edges `next..end`.
struct Frame {
    v: u32,
    class: u32,
    next: u32,
    end: u32,
}

impl Frame {
    const ROOT: Frame = Frame {
        v: 0,
        class: UNDEF,
        next: 0,
        end: 0,
    };

    /// Node `v` (object `v - 1`), none of its edges taken.
    fn of(g: &Graph, kept: &Kept, v: u32) -> Frame {
        let i = (v - 1) as usize;
        let class = g
            .class_edge(v - 1)
            .filter(|&(t, _)| kept.class_counts(t))
            .map_or(UNDEF, |(t, _)| t + 1);
        let next = g.edge_start.get(i).copied().unwrap_or(0);
        let end = g.edge_start.get(i + 1).copied().unwrap_or(next).max(next);
        Frame {
            v,
            class,
            next,
            end,
        }
    }

    /// The next counted edge's target node.
    fn next_child(&mut self, g: &Graph, kept: &Kept) -> Option<u32> {
        if self.class != UNDEF {
            return Some(std::mem::replace(&mut self.class, UNDEF));
        }
        while self.next < self.end {
            let k = self.next as usize;
            self.next += 1;
            if kept.stored.get(k) {
                return g.edge_to.get(k).map(|&t| t + 1);
            }
        }
        None
    }
}

/// Modules, then frame roots: children of the virtual root even when another root reaches them.
fn named_roots(g: &Graph) -> Vec<u32> {
    let mut out: Vec<u32> = g.modules.iter().map(|(i, _)| *i).collect();
    out.extend(
        g.frame_root_index
            .iter()
            .copied()
            .filter(|&i| i != NO_INDEX),
    );
    out
}
