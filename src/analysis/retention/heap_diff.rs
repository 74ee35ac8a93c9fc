//! Leak diff between heap dumps: the objects present in the later dumps and not in the first
//! (same address and type), grouped by type and by their path from the roots in the last dump.
//! With two later dumps, only the objects alive in both count: what a slow leak keeps, not
//! what churns (made and freed between dumps).

use super::heap_graph::{DumpSource, Graph};
use super::heap_source::HeapSource;
use super::why::PathGroup;
use crate::analysis::retention::{self, NONE, UNREACHED};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::Serialize;

pub const SCHEMA: &str = "pymemspy.heap-diff/1";

#[derive(Debug, Clone, Serialize)]
pub struct NewType {
    #[serde(rename = "type")]
    pub name: String,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewPath {
    #[serde(rename = "type")]
    pub type_name: String,
    /// `__main__ (module) .leaks → list [*] → __main__.Leaked`.
    pub path: String,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeapDiff {
    pub schema: &'static str,
    /// The dumps, first to last.
    pub dumps: Vec<String>,
    /// Objects new since the first dump (and, with three dumps, alive in both later ones).
    pub objects: u64,
    pub bytes: u64,
    pub types: Vec<NewType>,
    pub paths: Vec<NewPath>,
}

/// (address, type name) of every object of a graph whose type validated.
fn identities(g: &Graph) -> HashSet<(u64, &str)> {
    (0..g.len() as u32)
        .zip(g.objects.iter())
        .filter_map(|(i, a)| Some((a, g.type_name_of(i)?)))
        .collect()
}

/// `first` and `later` dumps (one or two), with their names for the output. Long: the report's
/// parts in the order it lists them (the new objects, their tally by type, their paths grouped as
/// `why` groups them), each a pass over the same new objects of the last dump.
pub fn diff(first: &Graph, later: &[&Graph], names: Vec<String>, max_paths: usize) -> HeapDiff {
    let old = identities(first);
    let last = later[later.len() - 1];
    // Kept in every later dump but the last: alive there too.
    let between: Vec<HashSet<(u64, &str)>> = later[..later.len() - 1]
        .iter()
        .map(|g| identities(g))
        .collect();
    let new: Vec<u32> = (0..last.len() as u32)
        .zip(last.objects.iter())
        .filter(|&(i, a)| {
            let Some(t) = last.type_name_of(i) else {
                return false;
            };
            let id = (a, t);
            !old.contains(&id) && between.iter().all(|b| b.contains(&id))
        })
        .map(|(i, _)| i)
        .collect();
    let mut by_type: HashMap<&str, (u64, u64)> = HashMap::default();
    for &i in &new {
        let e = by_type
            .entry(last.type_name_of(i).unwrap_or("?"))
            .or_default();
        e.0 += 1;
        e.1 += last.bytes_of(i);
    }
    // Paths in the last dump, as `why` shows them (one per parent, shared by its children).
    let mut src = DumpSource::new(last);
    let tree = retention::build_on_graph(last, &mut src);
    let mut by_parent: HashMap<u32, (String, Vec<(String, String)>)> = HashMap::default();
    let mut groups: HashMap<String, NewPath> = HashMap::default();
    for &i in &new {
        let ty = last.type_name_of(i).unwrap_or("?").to_string();
        let parent = tree.parent[i as usize];
        let (root, mut hops) = if parent == NONE {
            match tree.root(i) {
                Some(r) => (
                    r.text(),
                    r.edge
                        .clone()
                        .map(|e| vec![(e, ty.clone())])
                        .unwrap_or_default(),
                ),
                None => (UNREACHED.to_string(), Vec::new()),
            }
        } else {
            by_parent
                .entry(parent)
                .or_insert_with(|| {
                    let (root, h) = retention::hops(&mut src, &tree, parent);
                    (
                        root.unwrap_or_else(|| UNREACHED.to_string()),
                        h.into_iter()
                            .map(|h| (h.label, h.type_name.to_string()))
                            .collect(),
                    )
                })
                .clone()
        };
        if parent != NONE {
            hops.push((src.label(tree.label(i)), ty.clone()));
        }
        let text = PathGroup {
            root,
            hops,
            count: 0,
            bytes: 0,
            native_bytes: 0,
            allocated_at: Vec::new(),
        }
        .path_text();
        let g = groups.entry(text.clone()).or_insert_with(|| NewPath {
            type_name: ty,
            path: text,
            count: 0,
            bytes: 0,
        });
        g.count += 1;
        g.bytes += last.bytes_of(i);
    }
    let mut types: Vec<NewType> = by_type
        .into_iter()
        .map(|(name, (count, bytes))| NewType {
            name: name.to_string(),
            count,
            bytes,
        })
        .collect();
    types.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    let mut paths: Vec<NewPath> = groups.into_values().collect();
    paths.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    paths.truncate(max_paths);
    HeapDiff {
        schema: SCHEMA,
        dumps: names,
        objects: new.len() as u64,
        bytes: new.iter().map(|&i| last.bytes_of(i)).sum(),
        types,
        paths,
    }
}
