//! A recording: censuses of one process over time, kept in bounded memory, and the growth
//! analysis of it (schema `pymemspy.record/1`).
//!
//! Memory stays bounded however long a recording runs:
//! * per sample, only *tracked* types are stored: a type becomes tracked the first time it is
//!   among the `top_types` largest by bytes or by count in a sample, and stays tracked from then
//!   on (at most [`MAX_TRACKED_TYPES`]; later newcomers are counted in `types_untracked`). Every
//!   sample also stores the totals over all types and the RSS;
//! * at most [`MAX_SAMPLES`] samples are kept: past that, every other sample is dropped (the
//!   first and the latest are always kept) and the timeline's resolution halves. The exact
//!   minimum and maximum of every tracked type are kept apart, so thinning never loses them.

use super::growth::{self, Extent, Trend, TypeGrowth};
use crate::analysis::census::Census;
use crate::analysis::session::PythonInfo;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

pub const SCHEMA: &str = "pymemspy.record/1";
pub const DEFAULT_TOP_TYPES: usize = 200;
pub const MAX_TRACKED_TYPES: usize = 2000;
pub const MAX_SAMPLES: usize = 3600;
/// Distinct warnings kept (each with how often it was seen).
const MAX_WARNINGS: usize = 50;

/// One census, reduced to what the recording keeps.
#[derive(Debug, Clone)]
struct Sample {
    /// Seconds since the recording started.
    t: f64,
    rss: Option<u64>,
    objects: u64,
    bytes: u64,
    /// False when the census was cut short (GC lists kept changing while being read).
    complete: bool,
    /// (tracked type index, count, bytes), types with objects only, by index.
    types: Vec<(u32, u64, u64)>,
    /// (tracked type index, native bytes): tracked types whose objects own memory outside
    /// themselves (heap::objects::native), by index.
    native: Vec<(u32, u64)>,
}

impl Sample {
    fn get(&self, idx: u32) -> (u64, u64) {
        match self.types.binary_search_by_key(&idx, |e| e.0) {
            Ok(i) => (self.types[i].1, self.types[i].2),
            Err(_) => (0, 0),
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    name: String,
    /// Time of the first sample that stored it: before that its value is unknown.
    since: f64,
    first: (f64, u64, u64),
    last: (f64, u64, u64),
    count: Extent,
    bytes: Extent,
}

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    Duration,
    Interrupted,
    TargetExited,
    Failed,
}

/// Warnings collapsed by their text with digits masked, so "12 objects skipped" and
/// "15 objects skipped" from different samples are one entry.
#[derive(Debug, Clone, Default)]
struct Warnings {
    entries: Vec<(String, String, u64)>,
    dropped: u64,
}

impl Warnings {
    fn add(&mut self, text: &str) {
        let key: String = text
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == key) {
            e.2 += 1;
        } else if self.entries.len() < MAX_WARNINGS {
            self.entries.push((key, text.to_string(), 1));
        } else {
            self.dropped += 1;
        }
    }

    fn list(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .map(|(_, text, n)| match n {
                1 => text.clone(),
                n => format!("{text} (seen {n} times)"),
            })
            .collect();
        if self.dropped > 0 {
            out.push(format!("{} more warnings not kept", self.dropped));
        }
        out
    }
}

/// A recording in progress.
pub struct Recording {
    pid: i32,
    python: PythonInfo,
    started_at: String,
    interval_s: f64,
    top_types: usize,
    tracked: Vec<Tracked>,
    index: HashMap<String, u32>,
    untracked: u64,
    samples: Vec<Sample>,
    samples_taken: u64,
    thinned: u32,
    rss_extent: Option<Extent>,
    warnings: Warnings,
}

impl Recording {
    pub fn new(
        pid: i32,
        python: PythonInfo,
        started_at: String,
        interval_s: f64,
        top_types: usize,
    ) -> Recording {
        Recording {
            pid,
            python,
            started_at,
            interval_s,
            top_types: top_types.max(1),
            tracked: Vec::new(),
            index: HashMap::new(),
            untracked: 0,
            samples: Vec::new(),
            samples_taken: 0,
            thinned: 0,
            rss_extent: None,
            warnings: Warnings::default(),
        }
    }

    pub fn samples_taken(&self) -> u64 {
        self.samples_taken
    }

    pub fn warn(&mut self, text: &str) {
        self.warnings.add(text);
    }

    /// Add one census taken `t` seconds after the start.
    pub fn add(&mut self, t: f64, rss: Option<u64>, census: &Census, complete: bool) {
        self.track_top(t, census);
        let mut types: Vec<(u32, u64, u64)> = census
            .types
            .iter()
            .filter(|tc| tc.count > 0)
            .filter_map(|tc| Some((*self.index.get(&tc.name)?, tc.count, tc.bytes)))
            .collect();
        types.sort_unstable_by_key(|e| e.0);
        let mut native: Vec<(u32, u64)> = census
            .types
            .iter()
            .filter(|tc| tc.native_bytes > 0)
            .filter_map(|tc| Some((*self.index.get(&tc.name)?, tc.native_bytes)))
            .collect();
        native.sort_unstable_by_key(|e| e.0);
        let sample = Sample {
            t,
            rss,
            objects: census.objects,
            bytes: census.bytes,
            complete,
            types,
            native,
        };
        for (i, tr) in self.tracked.iter_mut().enumerate() {
            let (c, b) = sample.get(i as u32);
            tr.last = (t, c, b);
            tr.count.add(c);
            tr.bytes.add(b);
        }
        if let Some(r) = rss {
            match &mut self.rss_extent {
                Some(e) => e.add(r),
                None => self.rss_extent = Some(Extent::of(r)),
            }
        }
        self.samples.push(sample);
        self.samples_taken += 1;
        if self.samples.len() > MAX_SAMPLES {
            self.thin();
        }
    }

    /// Start tracking this sample's top types by bytes and by count.
    fn track_top(&mut self, t: f64, census: &Census) {
        let n = self.top_types;
        // census.types is sorted by bytes, largest first.
        let mut by_count: Vec<usize> = (0..census.types.len()).collect();
        by_count.sort_unstable_by(|&a, &b| census.types[b].count.cmp(&census.types[a].count));
        // Resource series ("(fds) socket", "(threads) Python", ...) are always tracked: a
        // descriptor leak is small in count but is a leak all the same.
        let resources = (0..census.types.len()).filter(|&i| census.types[i].name.starts_with('('));
        let top = (0..census.types.len().min(n))
            .chain(by_count.into_iter().take(n))
            .chain(resources);
        for i in top {
            let tc = &census.types[i];
            if tc.count == 0 || self.index.contains_key(&tc.name) {
                continue;
            }
            if self.tracked.len() >= MAX_TRACKED_TYPES {
                self.untracked += 1;
                continue;
            }
            self.index
                .insert(tc.name.clone(), self.tracked.len() as u32);
            self.tracked.push(Tracked {
                name: tc.name.clone(),
                since: t,
                first: (t, tc.count, tc.bytes),
                last: (t, tc.count, tc.bytes),
                count: Extent::of(tc.count),
                bytes: Extent::of(tc.bytes),
            });
        }
    }

    /// Halve the timeline's resolution: keep even-numbered samples and the latest one.
    fn thin(&mut self) {
        let last = self.samples.len() - 1;
        let mut i = 0;
        self.samples.retain(|_| {
            let keep = i % 2 == 0 || i == last;
            i += 1;
            keep
        });
        self.thinned += 1;
    }

    /// The fastest growers so far by bytes, from each type's first and latest sample (cheap:
    /// for the progress line, not the verdict).
    pub fn quick_growers(&self, k: usize) -> Vec<(String, f64, i64)> {
        let mut out: Vec<(String, f64, i64)> = self
            .tracked
            .iter()
            .filter_map(|tr| {
                let dt = tr.last.0 - tr.first.0;
                let db = tr.last.2 as i64 - tr.first.2 as i64;
                (dt > 0.0 && db > 0).then(|| {
                    let rate = (tr.last.1 as f64 - tr.first.1 as f64) / dt;
                    (tr.name.clone(), rate, db)
                })
            })
            .collect();
        out.sort_by_key(|g| std::cmp::Reverse(g.2));
        out.truncate(k);
        out
    }

    pub fn latest_rss(&self) -> Option<u64> {
        self.samples.last().and_then(|s| s.rss)
    }

    /// The samples the verdicts are based on: complete censuses only, unless too few are.
    fn analysed(&self) -> Vec<&Sample> {
        let complete: Vec<&Sample> = self.samples.iter().filter(|s| s.complete).collect();
        if complete.len() >= growth::MIN_SAMPLES || complete.len() == self.samples.len() {
            complete
        } else {
            self.samples.iter().collect()
        }
    }

    /// Finish: analyse growth and build the document. Long: mostly the document filled in field by
    /// field from the recording it consumes; the verdicts and warnings before it are a few lines
    /// each.
    pub fn finish(mut self, duration_s: f64, end: EndReason) -> RecordDoc {
        let analysed = self.analysed();
        let mut growth: Vec<TypeGrowth> = self
            .tracked
            .iter()
            .enumerate()
            .map(|(i, tr)| {
                let mut t = Vec::new();
                let mut counts = Vec::new();
                let mut bytes = Vec::new();
                for s in analysed.iter().filter(|s| s.t >= tr.since) {
                    let (c, b) = s.get(i as u32);
                    t.push(s.t);
                    counts.push(c);
                    bytes.push(b);
                }
                TypeGrowth::analyse(
                    &tr.name,
                    &t,
                    &counts,
                    &bytes,
                    Some(tr.count),
                    Some(tr.bytes),
                )
            })
            .collect();
        growth.sort_by(|a, b| {
            b.bytes_delta
                .cmp(&a.bytes_delta)
                .then_with(|| b.count_delta.cmp(&a.count_delta))
                .then_with(|| a.name.cmp(&b.name))
        });
        let rss = self.rss_growth(&analysed);
        let incomplete = self.samples.iter().filter(|s| !s.complete).count();
        if incomplete > 0 {
            self.warnings.add(&format!(
                "{incomplete} of {} samples were cut short (the target changed its GC lists while \
                 they were read); verdicts use the complete ones when there are enough",
                self.samples.len()
            ));
        }
        if self.thinned > 0 {
            self.warnings.add(&format!(
                "long recording: the timeline keeps one sample in {} of the {} taken",
                1u64 << self.thinned,
                self.samples_taken
            ));
        }
        if self.untracked > 0 {
            self.warnings.add(&format!(
                "{} types entered the top {} after {MAX_TRACKED_TYPES} were already tracked and \
                 were not recorded",
                self.untracked, self.top_types
            ));
        }
        let timeline = self
            .samples
            .iter()
            .map(|s| TimelineEntry {
                t: round_ms(s.t),
                rss: s.rss,
                objects: s.objects,
                bytes: s.bytes,
                complete: s.complete,
                types: s
                    .types
                    .iter()
                    .map(|&(i, c, b)| (self.tracked[i as usize].name.clone(), [c, b]))
                    .collect(),
                native: s
                    .native
                    .iter()
                    .map(|&(i, n)| (self.tracked[i as usize].name.clone(), n))
                    .collect(),
            })
            .collect();
        RecordDoc {
            schema: SCHEMA,
            pid: self.pid,
            python: self.python,
            started_at: self.started_at,
            duration_s: round_ms(duration_s),
            interval_s: self.interval_s,
            end_reason: end,
            samples_taken: self.samples_taken,
            top_types: self.top_types,
            types_tracked: self
                .tracked
                .iter()
                .map(|tr| (tr.name.clone(), round_ms(tr.since)))
                .collect(),
            timeline,
            growth,
            rss,
            allocations: None,
            gc: None,
            warnings: self.warnings.list(),
        }
    }

    fn rss_growth(&self, analysed: &[&Sample]) -> Option<RssGrowth> {
        let (t, v): (Vec<f64>, Vec<f64>) = analysed
            .iter()
            .filter_map(|s| Some((s.t, s.rss? as f64)))
            .unzip();
        let ext = self.rss_extent?;
        let fit = growth::classify(&t, &v, &growth::BYTES_THRESHOLDS);
        Some(RssGrowth {
            first: *v.first()? as u64,
            last: *v.last()? as u64,
            min: ext.min,
            max: ext.max,
            bytes_per_s: fit.slope_per_s,
            trend: fit.trend,
        })
    }
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// One sample in the document: `types` maps a type name to `[count, bytes]`. A tracked type
/// missing from a sample had no objects then, or was not tracked yet (see `types_tracked`).
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub t: f64,
    pub rss: Option<u64>,
    pub objects: u64,
    pub bytes: u64,
    pub complete: bool,
    pub types: BTreeMap<String, [u64; 2]>,
    /// Native bytes (memory owned outside the objects: numpy data, bytearray items...) of the
    /// tracked types that have any; absent when none has.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub native: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RssGrowth {
    pub first: u64,
    pub last: u64,
    pub min: u64,
    pub max: u64,
    pub bytes_per_s: f64,
    pub trend: Trend,
}

/// A finished recording: what `--format json` writes, and what every other format renders.
#[derive(Debug, Clone, Serialize)]
pub struct RecordDoc {
    pub schema: &'static str,
    pub pid: i32,
    pub python: PythonInfo,
    pub started_at: String,
    pub duration_s: f64,
    pub interval_s: f64,
    pub end_reason: EndReason,
    pub samples_taken: u64,
    pub top_types: usize,
    /// Tracked type → seconds since the start when it was first stored.
    pub types_tracked: BTreeMap<String, f64>,
    pub timeline: Vec<TimelineEntry>,
    /// Per type, sorted by bytes_delta, largest first.
    pub growth: Vec<TypeGrowth>,
    pub rss: Option<RssGrowth>,
    /// The allocation profile: which Python stacks made the heap grow (absent with --rate 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocations: Option<Allocations>,
    /// The collector over the recording: whether it ran, and how often per generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc: Option<GcActivity>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GcActivity {
    pub enabled_at_start: bool,
    pub enabled_at_end: bool,
    /// Collections per second of generations 0, 1, 2 (None where the build keeps no counts).
    pub collections_per_s: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AllocationStack {
    /// Python frames, outermost first: `qualname (file:line)`, the file as `Allocations::files`
    /// says.
    pub stack: Vec<String>,
    /// Heap growth charged to this stack (scaled to the growth the censuses measured).
    pub bytes: u64,
    pub objects: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Allocations {
    pub rate_hz: f64,
    pub ticks: u64,
    /// "exact" (read from the target's tracemalloc) or "sampled" (from outside: approximate).
    pub mode: &'static str,
    /// How the target's tracing was started when pymemspy started it for this recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing_started_by: Option<String>,
    /// What the weights mean, in words (it is also the flamegraph's subtitle).
    pub method: String,
    /// Sampled: the share of the sampled growth the sampler could charge to a whole stack
    /// (the rest was read on stacks cut off and is left out of the flamegraph).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributed_share: Option<f64>,
    pub stacks: Vec<AllocationStack>,
    /// Each file label the stacks show that is not the whole path, with that path: frames
    /// read `render (leaky.py:50)`, relative to the target's `sys.path` (py-spy's form; with
    /// `--full-filenames` every path is whole and this is empty).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

/// `Allocations::mode` of a profile read from the target's tracemalloc.
pub const EXACT: &str = "exact";
/// `Allocations::mode` of a profile sampled from outside.
pub const SAMPLED: &str = "sampled";
/// What a sampled profile's reader should know, everywhere it is shown.
pub const SAMPLED_HINT: &str = "sampled from outside: approximate (a short-lived leaker beside \
    busy threads can be missed or charged to a neighbour); `--tracemalloc 16` records the exact \
    picture from the program's own traces, at tracemalloc's cost while recording";

impl RecordDoc {
    pub fn suspects(&self) -> impl Iterator<Item = &TypeGrowth> {
        self.growth.iter().filter(|g| g.suspect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::census::TypeCount;

    fn info() -> PythonInfo {
        PythonInfo {
            version: "3.12.1".into(),
            executable: "/usr/bin/python3".into(),
            free_threaded: false,
        }
    }

    fn census(types: &[(&str, u64, u64)]) -> Census {
        let mut c = Census {
            types: types
                .iter()
                .map(|&(n, count, bytes)| TypeCount {
                    name: n.into(),
                    count,
                    bytes,
                    allocated_bytes: bytes,
                    python_sizeof: false,
                    native_bytes: 0,
                })
                .collect(),
            ..Default::default()
        };
        c.types.sort_by_key(|t| std::cmp::Reverse(t.bytes));
        c.objects = c.types.iter().map(|t| t.count).sum();
        c.bytes = c.types.iter().map(|t| t.bytes).sum();
        c
    }

    #[test]
    fn records_growth_and_verdicts() {
        let mut r = Recording::new(42, info(), "now".into(), 0.5, 200);
        for i in 0..12u64 {
            let churn = [0, 900, 1800, 2700][(i % 4) as usize];
            let c = census(&[
                ("Retained", 1000 * i, 56_000 * i),
                ("Churn", churn, churn * 48),
                ("Steady", 500, 24_000),
            ]);
            r.add(i as f64 * 0.5, Some(10 << 20), &c, true);
        }
        let doc = r.finish(6.0, EndReason::Duration);
        let g = |n: &str| doc.growth.iter().find(|g| g.name == n).unwrap();
        assert!(g("Retained").suspect);
        assert!((g("Retained").rate_per_s - 2000.0).abs() < 1.0);
        assert!(!g("Churn").suspect);
        assert_eq!(g("Churn").trend, Trend::Churn);
        assert_eq!(g("Steady").trend, Trend::Flat);
        assert_eq!(doc.growth[0].name, "Retained");
        assert_eq!(doc.timeline.len(), 12);
        // Retained had no objects in the first sample: it joins the top when it has some.
        assert_eq!(doc.types_tracked["Retained"], 0.5);
        assert_eq!(doc.rss.unwrap().trend, Trend::Flat);
    }

    #[test]
    fn only_top_types_are_stored_and_thinning_bounds_the_timeline() {
        let mut r = Recording::new(1, info(), "now".into(), 1.0, 2);
        let c = census(&[("a", 1, 1000), ("b", 2, 900), ("c", 3, 10), ("d", 1, 5)]);
        for i in 0..(MAX_SAMPLES as u64 + 10) {
            r.add(i as f64, None, &c, true);
        }
        assert!(r.samples.len() <= MAX_SAMPLES);
        assert_eq!(r.samples_taken(), MAX_SAMPLES as u64 + 10);
        let doc = r.finish(1.0, EndReason::Interrupted);
        // Top 2 by bytes (a, b) and top 2 by count (c, b): d is never stored.
        let names: Vec<&str> = doc.types_tracked.keys().map(String::as_str).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(doc.warnings.iter().any(|w| w.contains("one sample in 2")));
        assert_eq!(doc.timeline.last().unwrap().t, (MAX_SAMPLES + 9) as f64);
    }

    #[test]
    fn warnings_collapse_by_shape() {
        let mut w = Warnings::default();
        w.add("12 objects skipped");
        w.add("15 objects skipped");
        w.add("other");
        assert_eq!(w.list(), ["12 objects skipped (seen 2 times)", "other"]);
    }
}
