//! What the exporter holds per process between scrapes: the latest figures, bounded.
//!
//! Everything here comes from target memory (type names above all), so every collection is
//! bounded: at most `top_types` types plus one `(other)` per process, names cut to
//! [`MAX_NAME_CHARS`], a leak-verdict history of at most [`HISTORY`] samples for at most
//! twice `top_types` names. A target with 100,000 types or 10 KB names costs the same as one
//! with `top_types`.

use crate::analysis::census::Census;
use crate::analysis::timeline::growth::TypeGrowth;
use std::collections::{BTreeMap, HashMap};

/// Longest type name exported, in characters (longer ones are cut and end with "…"). Real
/// qualified names are far shorter; the bound is for hostile or corrupt ones.
pub const MAX_NAME_CHARS: usize = 120;
/// Samples kept per type for the leak verdict: an hour at the default 15 s interval.
pub const HISTORY: usize = 240;
/// The label value that sums every type outside the top N. Parentheses never appear in a
/// qualified type name, so it cannot collide with a real type (`record` uses the same mark).
pub const OTHER: &str = "(other)";

/// One type's figures at the last census.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeFigure {
    pub name: String,
    pub objects: u64,
    pub bytes: u64,
    /// The `record` verdict over the exporter's own history (None for `(other)`).
    pub leak_suspect: Option<bool>,
}

/// Per-generation collector figures.
#[derive(Debug, Clone, Default)]
pub struct GcFigures {
    pub enabled: bool,
    /// (generation, collections, uncollectable); None where the build does not keep it.
    pub generations: Vec<(usize, Option<u64>, Option<u64>)>,
    pub garbage: u64,
}

/// Where the resident memory goes, from the memory report of a full census.
#[derive(Debug, Clone, Default)]
pub struct MemoryFigures {
    /// (part, bytes): objects, allocator in use / free in pools, native unattributed...
    pub parts: Vec<(&'static str, u64)>,
    /// Heap buffers owned by objects (numpy data, bytearray items).
    pub native_owned: u64,
}

/// The figures of one full census.
#[derive(Debug, Clone, Default)]
pub struct CensusFigures {
    /// Unix time (seconds) of the middle of the census.
    pub at: f64,
    /// Wall and CPU seconds the census took.
    pub wall_s: f64,
    pub cpu_s: f64,
    /// Every GC list read to its end with no collection running.
    pub complete: bool,
    pub objects: u64,
    pub bytes: u64,
    pub types: Vec<TypeFigure>,
    pub memory: Option<MemoryFigures>,
    pub gc: Option<GcFigures>,
    /// Names cut to MAX_NAME_CHARS in this census (a sign of a hostile or corrupt target).
    pub names_truncated: u64,
}

/// Figures from /proc, cheap enough to read every interval.
#[derive(Debug, Clone, Default)]
pub struct ProcFigures {
    pub rss: Option<u64>,
    pub fds: Option<u64>,
    pub threads: Option<u64>,
}

/// `name` cut to MAX_NAME_CHARS characters (on a character boundary), marked with "…".
pub fn bounded_name(name: &str) -> (String, bool) {
    match name.char_indices().nth(MAX_NAME_CHARS) {
        Some((cut, _)) => (format!("{}…", &name[..cut]), true),
        None => (name.to_string(), false),
    }
}

/// The top `n` types by bytes plus `(other)`, names bounded. Two long names that cut to the
/// same text are merged: a scrape must never hold the same series twice (Prometheus would
/// reject the whole scrape). Returns the types and how many names were cut.
pub fn top_types(census: &Census, n: usize) -> (Vec<TypeFigure>, u64) {
    // Order every type by bytes (then count, then name, so equal types keep a stable order
    // between censuses); only references are sorted, the names are copied for the top N only.
    let mut order: Vec<&crate::analysis::census::TypeCount> = census.types.iter().collect();
    order.sort_unstable_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(b.count.cmp(&a.count))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut truncated = 0u64;
    let mut top: Vec<TypeFigure> = Vec::with_capacity(n + 1);
    let mut index: HashMap<String, usize> = HashMap::new();
    let (mut other_objects, mut other_bytes) = (0u64, 0u64);
    for t in order {
        if top.len() >= n {
            other_objects = other_objects.saturating_add(t.count);
            other_bytes = other_bytes.saturating_add(t.bytes);
            continue;
        }
        let (name, cut) = bounded_name(&t.name);
        truncated += cut as u64;
        match index.get(&name) {
            Some(&i) => {
                top[i].objects = top[i].objects.saturating_add(t.count);
                top[i].bytes = top[i].bytes.saturating_add(t.bytes);
            }
            None => {
                index.insert(name.clone(), top.len());
                top.push(TypeFigure {
                    name,
                    objects: t.count,
                    bytes: t.bytes,
                    leak_suspect: None,
                });
            }
        }
    }
    top.push(TypeFigure {
        name: OTHER.into(),
        objects: other_objects,
        bytes: other_bytes,
        leak_suspect: None,
    });
    (top, truncated)
}

/// One type's samples for the leak verdict.
#[derive(Debug, Default)]
struct Series {
    t: Vec<f64>,
    objects: Vec<u64>,
    bytes: Vec<u64>,
    /// The census (sequence number) that last added to it, to evict the stalest first.
    last_seen: u64,
}

/// The exporter's own history of one process, for the same leak verdict as `record`
/// (`TypeGrowth::analyse`): per type, the samples of the censuses in which it was in the top N.
#[derive(Debug, Default)]
pub struct History {
    series: BTreeMap<String, Series>,
    censuses: u64,
}

impl History {
    /// Add a census's top types (at `t` seconds) and set their `leak_suspect`. At most
    /// `2 * top_n` names are remembered, so that a type hovering at the edge of the top N keeps
    /// its history while a hostile target cannot grow it.
    pub fn add(&mut self, t: f64, types: &mut [TypeFigure], top_n: usize) {
        self.censuses += 1;
        for ty in types.iter_mut().filter(|ty| ty.name != OTHER) {
            let s = self.series.entry(ty.name.clone()).or_default();
            if s.t.len() >= HISTORY {
                // Oldest first out; HISTORY is small, the shift is cheap next to a census.
                s.t.remove(0);
                s.objects.remove(0);
                s.bytes.remove(0);
            }
            s.t.push(t);
            s.objects.push(ty.objects);
            s.bytes.push(ty.bytes);
            s.last_seen = self.censuses;
            ty.leak_suspect =
                Some(TypeGrowth::analyse(&ty.name, &s.t, &s.objects, &s.bytes, None, None).suspect);
        }
        let cap = top_n.saturating_mul(2).max(1);
        if self.series.len() > cap {
            let mut by_age: Vec<(u64, String)> = self
                .series
                .iter()
                .map(|(k, s)| (s.last_seen, k.clone()))
                .collect();
            by_age.sort_unstable();
            let excess = self.series.len() - cap;
            for (_, k) in by_age.into_iter().take(excess) {
                self.series.remove(&k);
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.series.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::census::TypeCount;

    fn census(types: Vec<(String, u64, u64)>) -> Census {
        Census {
            types: types
                .into_iter()
                .map(|(name, count, bytes)| TypeCount {
                    name,
                    count,
                    bytes,
                    ..TypeCount::default()
                })
                .collect(),
            ..Census::default()
        }
    }

    #[test]
    fn keeps_the_top_n_and_sums_the_rest() {
        let c = census((0..1000).map(|i| (format!("t{i}"), 1, i)).collect());
        let (top, cut) = top_types(&c, 3);
        assert_eq!(cut, 0);
        let names: Vec<_> = top.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["t999", "t998", "t997", OTHER]);
        assert_eq!(top[3].objects, 997);
        assert_eq!(top[3].bytes, (0..997).sum::<u64>());
    }

    #[test]
    fn long_names_are_cut_and_merged() {
        let long = "x".repeat(10_000);
        let c = census(vec![
            (format!("{long}a"), 2, 100),
            (format!("{long}b"), 3, 90),
            ("é".repeat(200), 1, 80),
        ]);
        let (top, cut) = top_types(&c, 20);
        assert_eq!(cut, 3);
        assert_eq!(top.len(), 3, "{top:?}");
        assert_eq!((top[0].objects, top[0].bytes), (5, 190));
        assert!(top
            .iter()
            .all(|t| t.name.chars().count() <= MAX_NAME_CHARS + 1));
    }

    #[test]
    fn history_stays_bounded_and_finds_a_steady_rise() {
        let mut h = History::default();
        let mut last = Vec::new();
        for i in 0..HISTORY + 50 {
            // A leak, a flat type and a new hostile name every census.
            let mut types = vec![
                TypeFigure {
                    name: "Leak".into(),
                    objects: 1000 + 100 * i as u64,
                    bytes: 64_000 + 6400 * i as u64,
                    leak_suspect: None,
                },
                TypeFigure {
                    name: "Flat".into(),
                    objects: 500,
                    bytes: 32_000,
                    leak_suspect: None,
                },
                TypeFigure {
                    name: format!("noise{i}"),
                    objects: 1,
                    bytes: 1,
                    leak_suspect: None,
                },
            ];
            h.add(i as f64 * 15.0, &mut types, 3);
            assert!(h.len() <= 6);
            last = types;
        }
        assert_eq!(last[0].leak_suspect, Some(true));
        assert_eq!(last[1].leak_suspect, Some(false));
    }
}
