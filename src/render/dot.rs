//! `why --dot`: the reference paths as a Graphviz graph.

use crate::analysis::retention::why::WhyReport;
use rustc_hash::FxHashMap as HashMap;

/// Graphviz: one node per path prefix, edges labelled like the text paths.
pub fn why(r: &WhyReport) -> String {
    let mut ids: HashMap<String, usize> = HashMap::default();
    let mut nodes = String::new();
    let mut edges = String::new();
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    for g in &r.paths {
        let mut prefix = g.root.clone();
        let mut prev = node(&mut ids, &mut nodes, &prefix, &g.root, &esc);
        for (k, (label, ty)) in g.hops.iter().enumerate() {
            prefix.push_str(&format!("|{label}|{ty}"));
            let shown = if k + 1 == g.hops.len() {
                format!("{ty} ×{}", g.count)
            } else {
                ty.clone()
            };
            let id = node(&mut ids, &mut nodes, &prefix, &shown, &esc);
            edges.push_str(&format!("  n{prev} -> n{id} [label=\"{}\"];\n", esc(label)));
            prev = id;
        }
    }
    format!(
        "digraph why {{\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n{nodes}{edges}}}\n"
    )
}

fn node(
    ids: &mut HashMap<String, usize>,
    nodes: &mut String,
    key: &str,
    label: &str,
    esc: &dyn Fn(&str) -> String,
) -> usize {
    let n = ids.len();
    *ids.entry(key.to_string()).or_insert_with(|| {
        nodes.push_str(&format!("  n{n} [label=\"{}\"];\n", esc(label)));
        n
    })
}
