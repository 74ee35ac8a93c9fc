//! `why`: the reference paths that keep objects of a type alive, grouped so that 20,000
//! sessions held by one list read as one path with a count; and their direct holders by bytes.

use super::heap_source::HeapSource;
use crate::analysis::retention::{hops, type_name as type_text, Tree, NONE, UNREACHED};
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct PathGroup {
    /// The root's holders: "__main__ (module)", "thread 42 (MainThread) → frame main
    /// (app.py:3)", or "(not reachable from modules or threads)".
    pub root: String,
    /// (edge, type) from the root down to the objects.
    pub hops: Vec<(String, String)>,
    pub count: u64,
    pub bytes: u64,
    /// Of which (or, for mmap, besides which) memory owned outside the objects: heap::objects::native.
    pub native_bytes: u64,
    /// Where this group's objects were allocated (the target's tracemalloc: innermost frame),
    /// the largest first; empty when the target does not trace.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allocated_at: Vec<AllocationSite>,
}

/// One allocation site of a path group's objects.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AllocationSite {
    /// "file:line", or `BEFORE_TRACING`.
    pub site: String,
    pub count: u64,
    pub bytes: u64,
}

/// The site of objects made before the target's tracing began (tracemalloc knows nothing of
/// them).
pub const BEFORE_TRACING: &str = "(not traced: allocated before tracing began)";
/// Sites listed per path group.
const SITES_PER_GROUP: usize = 3;

/// Allocation sites of the objects asked about, by object index in the graph.
pub type Sites = HashMap<u32, std::rc::Rc<str>>;

impl PathGroup {
    /// `__main__ (module) .registry → dict ['sessions'] → list [*] → __main__.Session ×20000`
    pub fn text(&self) -> String {
        format!("{} ×{}", self.path_text(), self.count)
    }

    pub fn path_text(&self) -> String {
        let mut s = self.root.clone();
        for (i, (label, ty)) in self.hops.iter().enumerate() {
            if i > 0 || !label.is_empty() {
                s.push(' ');
            }
            if !label.is_empty() {
                s.push_str(label);
                s.push(' ');
            }
            s.push_str("→ ");
            s.push_str(ty);
        }
        s
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Retainer {
    /// The holder's path (root and hops down to the holder itself).
    pub holder: String,
    pub holder_type: String,
    /// Holders with this same path (a thousand one-object lists under one dict are one line).
    pub holders: u64,
    pub count: u64,
    pub bytes: u64,
    /// What freeing these holders would free (their retained bytes, from the dominator tree).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained: Option<u64>,
    /// The holders' object indexes (for their retained bytes).
    #[serde(skip)]
    pub holder_indexes: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyReport {
    pub schema: &'static str,
    pub pid: i32,
    #[serde(rename = "type")]
    pub type_name: String,
    pub objects: u64,
    pub bytes: u64,
    /// Memory the objects own outside themselves (numpy data, bytearray items...).
    pub native_bytes: u64,
    pub paths: Vec<PathGroup>,
    pub retainers: Vec<Retainer>,
    /// With no object of the type: live type names it may have meant (`Widget` →
    /// `__main__.Widget`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub did_you_mean: Vec<String>,
    /// What the roots could not be read from (thread frames skipped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Each file label the frame roots show that is not the whole path (`leaky.py`), with
    /// that path (read live; a heap dump keeps the labels only).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub files: std::collections::BTreeMap<String, String>,
}

/// A root name (None: unreachable) and (edge, type) hops.
type RootedPath = (Option<String>, Vec<(String, String)>);

/// Why the objects of `type_name` are alive: their paths from the roots grouped and ranked (with
/// their allocation sites when `sites` is given), and their direct holders. Long: one pass over the
/// objects fills the groups, their sites and the holders at once, with the per-parent path caches
/// they share; the report's ranked lists are then made from those maps.
pub fn explain(
    src: &mut dyn HeapSource,
    t: &Tree,
    type_name: &str,
    max_paths: usize,
    pid: i32,
    sites: Option<&Sites>,
) -> WhyReport {
    let mut groups: HashMap<String, PathGroup> = HashMap::default();
    // Per group key: site → (count, bytes).
    let mut group_sites: HashMap<String, HashMap<std::rc::Rc<str>, (u64, u64)>> =
        HashMap::default();
    let before: std::rc::Rc<str> = BEFORE_TRACING.into();
    let mut holders: HashMap<u32, (u64, u64)> = HashMap::default();
    // The path up to the parent is shared by siblings: compute it once per parent.
    let mut by_parent: HashMap<u32, RootedPath> = HashMap::default();
    // Siblings reached by the same edge share their whole path: its group key is made once
    // per (parent, edge), not once per object (a list of a million sessions is one key).
    let mut key_of: HashMap<(u32, u32), String> = HashMap::default();
    let matching: Vec<bool> = (0..t.type_count())
        .map(|id| {
            let tp = t.type_ptr_of_id(id);
            tp != 0 && src.type_name(tp).is_some_and(|name| &*name == type_name)
        })
        .collect();
    let (mut objects, mut bytes, mut native) = (0u64, 0u64, 0u64);
    for i in 0..t.len() as u32 {
        if !matching[t.type_id(i) as usize] {
            continue;
        }
        let tp = t.type_ptr(i);
        objects += 1;
        let b = t.bytes(i);
        let nb = t.native(i);
        bytes += b;
        native += nb;
        let parent = t.parent[i as usize];
        let key = if parent == NONE {
            let (root, path): RootedPath = match t.root(i) {
                // A frame root of the type itself: entered by its slot.
                Some(r) => {
                    let first = r.edge.clone().map(|edge| {
                        let ty = type_text(src, tp).to_string();
                        (edge, ty)
                    });
                    (Some(r.text()), first.into_iter().collect())
                }
                None => (None, Vec::new()),
            };
            group_key(&mut groups, root, path)
        } else {
            let e = holders.entry(parent).or_default();
            e.0 += 1;
            e.1 += b;
            let edge = t.label_id(i);
            match key_of.get(&(parent, edge)) {
                Some(k) => k.clone(),
                None => {
                    let (root, mut path) = by_parent
                        .entry(parent)
                        .or_insert_with(|| {
                            let (root, h) = hops(src, t, parent);
                            let h = h
                                .into_iter()
                                .map(|h| (h.label, h.type_name.to_string()))
                                .collect();
                            (root, h)
                        })
                        .clone();
                    let mut text = src.label(t.label(i));
                    if text.is_empty() {
                        let holder = type_text(src, t.type_ptr(parent));
                        if let Some(name) = super::ref_name(&holder, type_name) {
                            text = name.to_string();
                        }
                    }
                    path.push((text, type_name.to_string()));
                    let k = group_key(&mut groups, root, path);
                    key_of.insert((parent, edge), k.clone());
                    k
                }
            }
        };
        if let Some(sites) = sites {
            let site = sites.get(&i).cloned().unwrap_or_else(|| before.clone());
            let e = group_sites
                .entry(key.clone())
                .or_default()
                .entry(site)
                .or_default();
            e.0 += 1;
            e.1 += b;
        }
        if let Some(g) = groups.get_mut(&key) {
            g.count += 1;
            g.bytes += b;
            g.native_bytes += nb;
        }
    }
    for (key, by_site) in group_sites {
        if let Some(g) = groups.get_mut(&key) {
            let mut list: Vec<AllocationSite> = by_site
                .into_iter()
                .map(|(site, (count, bytes))| AllocationSite {
                    site: site.to_string(),
                    count,
                    bytes,
                })
                .collect();
            list.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.site.cmp(&b.site)));
            list.truncate(SITES_PER_GROUP);
            g.allocated_at = list;
        }
    }
    let mut paths: Vec<PathGroup> = groups.into_values().collect();
    paths.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.count.cmp(&a.count)));
    paths.truncate(max_paths);
    // Holders grouped by their path: each holder's own path, then one line per distinct path.
    let mut by_path: HashMap<String, Retainer> = HashMap::default();
    for (h, (count, bytes)) in holders {
        let (root, path) = by_parent.get(&h).cloned().unwrap_or((None, Vec::new()));
        let holder_type = path.last().map(|p| p.1.clone()).unwrap_or_default();
        let g = PathGroup {
            root: root.unwrap_or_else(|| UNREACHED.to_string()),
            hops: path,
            count,
            bytes,
            native_bytes: 0,
            allocated_at: Vec::new(),
        };
        let r = by_path.entry(g.path_text()).or_insert_with(|| Retainer {
            holder: g.path_text(),
            holder_type,
            holders: 0,
            count: 0,
            bytes: 0,
            retained: None,
            holder_indexes: Vec::new(),
        });
        r.holder_indexes.push(h);
        r.holders += 1;
        r.count += count;
        r.bytes += bytes;
    }
    let mut retainers: Vec<Retainer> = by_path.into_values().collect();
    retainers.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.holder.cmp(&b.holder)));
    retainers.truncate(max_paths);
    let did_you_mean = if objects == 0 {
        similar_types(src, t, type_name)
    } else {
        Vec::new()
    };
    WhyReport {
        schema: "pymemspy.why/1",
        pid,
        type_name: type_name.to_string(),
        objects,
        bytes,
        native_bytes: native,
        paths,
        retainers,
        did_you_mean,
        warnings: frame_warnings(t),
        files: Default::default(),
    }
}

/// The group of a path (made empty the first time), by its key.
fn group_key(
    groups: &mut HashMap<String, PathGroup>,
    root: Option<String>,
    path: Vec<(String, String)>,
) -> String {
    let root = root.unwrap_or_else(|| UNREACHED.to_string());
    let key = format!("{root}|{path:?}");
    groups.entry(key.clone()).or_insert_with(|| PathGroup {
        root,
        hops: path,
        count: 0,
        bytes: 0,
        native_bytes: 0,
        allocated_at: Vec::new(),
    });
    key
}

/// Live type names close to what was asked: the same last component (`Widget` for
/// `__main__.Widget`, `app.models.Widget`), or the same name in another case.
fn similar_types(src: &mut dyn HeapSource, t: &Tree, asked: &str) -> Vec<String> {
    let want = asked
        .rsplit('.')
        .next()
        .unwrap_or(asked)
        .to_ascii_lowercase();
    let mut seen: Vec<u64> = t.type_ptrs().collect();
    seen.sort_unstable();
    seen.dedup();
    let mut out: Vec<String> = seen
        .into_iter()
        .filter_map(|tp| src.type_name(tp).map(|name| name.to_string()))
        .filter(|name| {
            let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
            last == want || name.eq_ignore_ascii_case(asked)
        })
        .collect();
    out.sort();
    out.truncate(10);
    out
}

fn frame_warnings(t: &Tree) -> Vec<String> {
    let f = t.frame_stats;
    if f.unreadable_frames == 0 {
        return Vec::new();
    }
    vec![format!(
        "{} of {} thread frames could not be read as roots: what only they hold is listed as \
         not reachable",
        f.unreadable_frames, f.frames
    )]
}
