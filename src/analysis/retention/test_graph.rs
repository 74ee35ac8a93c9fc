//! Small hand-made graphs for the retention analyses' unit tests.

use super::addr_set::AddrSet;
use super::heap_graph::{EdgeLabel, Graph, NO_LABEL};

/// A graph from (bytes, edges) per object; module root = object 0.
/// Edge targets at or above `REF` are conservative edges to `target - REF`.
pub const REF: u32 = 1000;

pub fn graph(nodes: &[(u64, &[u32])]) -> Graph {
    let mut g = Graph {
        objects: std::rc::Rc::new(AddrSet::new(
            &(0..nodes.len() as u64)
                .map(|i| 0x1000 + i * 16)
                .collect::<Vec<_>>(),
        )),
        type_of: vec![0; nodes.len()].into(),
        types: vec![(1, "t".into())],
        labels: vec![EdgeLabel::Item, EdgeLabel::Ref],
        modules: vec![(0, "m".into())],
        class_label: NO_LABEL,
        ..Default::default()
    };
    g.edge_start.push(0);
    for (b, es) in nodes {
        g.push_bytes(*b);
        g.edge_to.extend(es.iter().map(|&t| t % REF));
        g.edge_label.extend(es.iter().map(|&t| u32::from(t >= REF)));
        g.edge_start.push(g.edge_to.len() as u32);
    }
    g
}
