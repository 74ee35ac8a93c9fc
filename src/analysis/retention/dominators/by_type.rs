//! Retained bytes summed per type.

use super::{Dominators, ROOT};
use crate::analysis::retention::heap_graph::NO_TYPE;
use rustc_hash::FxHashMap as HashMap;

/// Per type name: the bytes its instances retain together, each object counted once (an
/// instance inside another instance's dominator subtree adds nothing: a list of lists retains
/// what the outer list retains).
pub fn retained_by_type(
    types: &[(u64, String)],
    type_of: impl Fn(usize) -> u32,
    d: &Dominators,
) -> HashMap<String, u64> {
    let n = d.idom.len();
    // Children lists of the dominator tree (CSR), then a DFS with a count of open instances
    // per type.
    let mut start = vec![0u32; n + 2];
    let mut roots = Vec::new();
    for (v, &p) in d.idom.iter().enumerate() {
        if p == ROOT {
            roots.push(v as u32);
        } else {
            start[p as usize + 2] += 1;
        }
    }
    for v in 1..start.len() {
        start[v] += start[v - 1];
    }
    let mut kids = vec![0u32; start[n + 1] as usize];
    for (v, &p) in d.idom.iter().enumerate() {
        if p != ROOT {
            let slot = &mut start[p as usize + 1];
            kids[*slot as usize] = v as u32;
            *slot += 1;
        }
    }
    let mut open = vec![0u32; types.len()];
    let mut by_type = vec![0u64; types.len()];
    // (node, entered): entered nodes are closed when popped the second time.
    let mut stack: Vec<(u32, bool)> = roots.iter().rev().map(|&r| (r, false)).collect();
    while let Some((v, entered)) = stack.pop() {
        let t = Some(type_of(v as usize))
            .filter(|&t| (t as usize) < types.len())
            .unwrap_or(NO_TYPE);
        if entered {
            if t != NO_TYPE {
                open[t as usize] -= 1;
            }
            continue;
        }
        if t != NO_TYPE {
            if open[t as usize] == 0 {
                by_type[t as usize] += d.retained[v as usize];
            }
            open[t as usize] += 1;
        }
        stack.push((v, true));
        for &k in kids[start[v as usize] as usize..start[v as usize + 1] as usize]
            .iter()
            .rev()
        {
            stack.push((k, false));
        }
    }
    let mut out: HashMap<String, u64> = HashMap::default();
    for (t, (_, name)) in types.iter().enumerate() {
        *out.entry(name.clone()).or_default() += by_type[t];
    }
    out
}
