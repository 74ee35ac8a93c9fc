//! What `top` shows, without a terminal: the censuses seen so far and the screen they make.
//!
//! Kept apart from the terminal loop so the rows, deltas and sorting can be checked by unit
//! tests, and so the screen is plain text lines (works over ssh, in any terminal).

use crate::analysis::census::Census;
use crate::analysis::timeline::growth::{TypeGrowth, MIN_SAMPLES};
use crate::render::table::{human_bytes, thousands};
use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;

/// Samples kept per type for the leak-suspect verdict (older ones are dropped; the baseline of
/// "since start" is kept apart).
pub const HISTORY: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Bytes,
    Growth,
    Count,
}

impl SortBy {
    fn label(self) -> &'static str {
        match self {
            SortBy::Bytes => "bytes",
            SortBy::Growth => "growth (bytes/s since start)",
            SortBy::Count => "count",
        }
    }
}

/// One type's numbers now, at the previous census and at the first one.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub count: u64,
    pub bytes: u64,
    /// Memory the type's objects own outside themselves (heap::objects::native), now.
    pub native: u64,
    pub count_since_start: i64,
    pub bytes_since_start: i64,
    pub bytes_last_interval: i64,
    /// Bytes per second since the first census.
    pub bytes_per_s: f64,
}

/// One census, reduced to what `top` needs.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Seconds since the first census.
    pub t: f64,
    pub types: HashMap<String, (u64, u64)>,
    /// Native bytes of the types that have any.
    pub native: HashMap<String, u64>,
    pub objects: u64,
    pub bytes: u64,
    pub rss: Option<u64>,
}

impl Sample {
    pub fn from_census(t: f64, census: &Census, rss: Option<u64>) -> Sample {
        Sample {
            t,
            types: census
                .types
                .iter()
                .map(|tc| (tc.name.clone(), (tc.count, tc.bytes)))
                .collect(),
            native: census
                .types
                .iter()
                .filter(|tc| tc.native_bytes > 0)
                .map(|tc| (tc.name.clone(), tc.native_bytes))
                .collect(),
            objects: census.objects,
            bytes: census.bytes,
            rss,
        }
    }
}

/// Everything seen since `top` started, and how the person wants it shown.
pub struct Model {
    pub pid: i32,
    pub python: String,
    pub interval_s: f64,
    pub sort: SortBy,
    pub paused: bool,
    pub suspects_only: bool,
    first: Option<Sample>,
    history: VecDeque<Sample>,
    /// Censuses taken, warnings of the latest one, whether it was whole.
    pub censuses: u64,
    pub warnings: Vec<String>,
    pub complete: bool,
}

impl Model {
    pub fn new(pid: i32, python: String, interval_s: f64) -> Model {
        Model {
            pid,
            python,
            interval_s,
            sort: SortBy::Bytes,
            paused: false,
            suspects_only: false,
            first: None,
            history: VecDeque::new(),
            censuses: 0,
            warnings: Vec::new(),
            complete: true,
        }
    }

    pub fn push(&mut self, sample: Sample, complete: bool, warnings: Vec<String>) {
        if self.first.is_none() {
            self.first = Some(sample.clone());
        }
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(sample);
        self.censuses += 1;
        self.complete = complete;
        self.warnings = warnings;
    }

    pub fn latest(&self) -> Option<&Sample> {
        self.history.back()
    }

    /// Every type of the latest census (and those gone since the first), sorted as asked.
    pub fn rows(&self) -> Vec<Row> {
        let (Some(first), Some(now)) = (self.first.as_ref(), self.history.back()) else {
            return Vec::new();
        };
        let prev = self
            .history
            .len()
            .checked_sub(2)
            .and_then(|i| self.history.get(i));
        let mut names: Vec<&String> = now.types.keys().collect();
        // Types that vanished since the start are growth too (negative), worth seeing.
        names.extend(first.types.keys().filter(|n| !now.types.contains_key(*n)));
        let get = |s: &Sample, n: &str| s.types.get(n).copied().unwrap_or((0, 0));
        let diff = |a: u64, b: u64| (a as i128 - b as i128) as i64;
        let elapsed = now.t - first.t;
        let mut rows: Vec<Row> = names
            .into_iter()
            .map(|name| {
                let (count, bytes) = get(now, name);
                let (c0, b0) = get(first, name);
                let (_, bp) = prev.map(|p| get(p, name)).unwrap_or((count, bytes));
                let bytes_since_start = diff(bytes, b0);
                Row {
                    name: name.clone(),
                    count,
                    bytes,
                    native: now.native.get(name.as_str()).copied().unwrap_or(0),
                    count_since_start: diff(count, c0),
                    bytes_since_start,
                    bytes_last_interval: diff(bytes, bp),
                    bytes_per_s: if elapsed > 0.0 {
                        bytes_since_start as f64 / elapsed
                    } else {
                        0.0
                    },
                }
            })
            .collect();
        let key = |r: &Row| -> (f64, u64) {
            match self.sort {
                SortBy::Bytes => (r.bytes as f64, r.count),
                SortBy::Growth => (r.bytes_per_s, r.bytes),
                SortBy::Count => (r.count as f64, r.bytes),
            }
        };
        rows.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            kb.0.total_cmp(&ka.0)
                .then(kb.1.cmp(&ka.1))
                .then(a.name.cmp(&b.name))
        });
        rows
    }

    /// Leak suspects by the rule of `crate::analysis::timeline::growth` over the kept samples.
    pub fn suspects(&self) -> Vec<TypeGrowth> {
        if self.history.len() < MIN_SAMPLES {
            return Vec::new();
        }
        let Some(now) = self.history.back() else {
            return Vec::new();
        };
        let t: Vec<f64> = self.history.iter().map(|s| s.t).collect();
        let mut out: Vec<TypeGrowth> = now
            .types
            .keys()
            .filter_map(|name| {
                let (counts, bytes): (Vec<u64>, Vec<u64>) = self
                    .history
                    .iter()
                    .map(|s| s.types.get(name).copied().unwrap_or((0, 0)))
                    .unzip();
                let g = TypeGrowth::analyse(name, &t, &counts, &bytes, None, None);
                g.suspect.then_some(g)
            })
            .collect();
        out.sort_by(|a, b| b.bytes_per_s.total_cmp(&a.bytes_per_s));
        out
    }

    /// The screen as lines of at most `width` characters, at most `height` lines.
    /// `age_s` is how old the latest census is.
    pub fn screen(&self, width: usize, height: usize, age_s: Option<f64>) -> Vec<String> {
        let mut lines = Vec::new();
        let state = if self.paused { "  PAUSED" } else { "" };
        lines.push(format!(
            "pymemspy top  pid {}  Python {}  every {}s{state}",
            self.pid, self.python, self.interval_s
        ));
        match self.latest() {
            None => lines.push("taking the first census...".to_string()),
            Some(now) => {
                let rss = now.rss.map(human_bytes).unwrap_or_else(|| "?".into());
                let age = age_s
                    .map(|a| format!("{a:.1}s"))
                    .unwrap_or_else(|| "-".into());
                lines.push(format!(
                    "RSS {rss}  objects {}  object bytes {}  censuses {}  sample age {age}  over {:.1}s{}",
                    thousands(now.objects),
                    human_bytes(now.bytes),
                    self.censuses,
                    now.t,
                    if self.complete { "" } else { "  (last census cut short)" }
                ));
            }
        }
        let view = if self.suspects_only {
            "leak suspects"
        } else {
            "all types"
        };
        lines.push(format!(
            "sort: {}  showing: {view}   keys: b bytes  g growth  c count  s suspects  p pause  q quit",
            self.sort.label()
        ));
        lines.push(String::new());
        if self.suspects_only {
            self.suspect_lines(&mut lines);
        } else {
            self.type_lines(&mut lines);
        }
        if let Some(w) = self.warnings.last() {
            lines.truncate(height.saturating_sub(1));
            lines.push(format!("warning: {w}"));
        }
        lines.truncate(height);
        lines
            .into_iter()
            .map(|l| l.chars().take(width).collect())
            .collect()
    }

    fn type_lines(&self, lines: &mut Vec<String>) {
        let mark = |s: SortBy| if self.sort == s { '*' } else { ' ' };
        lines.push(format!(
            "{:>13}{} {:>11}{} {:>11} {:>12} {:>11} {:>11} {:>11}{}  TYPE",
            "COUNT",
            mark(SortBy::Count),
            "BYTES",
            mark(SortBy::Bytes),
            "NATIVE",
            "COUNT +START",
            "BYTES +START",
            "BYTES +LAST",
            "BYTES/S",
            mark(SortBy::Growth),
        ));
        for r in self.rows() {
            lines.push(format!(
                "{:>13}  {:>11}  {:>11} {:>12} {:>11} {:>11} {:>11}   {}",
                thousands(r.count),
                human_bytes(r.bytes),
                if r.native > 0 {
                    human_bytes(r.native)
                } else {
                    String::new()
                },
                signed_count(r.count_since_start),
                signed_bytes(r.bytes_since_start),
                signed_bytes(r.bytes_last_interval),
                signed_bytes(r.bytes_per_s.round() as i64),
                r.name
            ));
        }
    }

    fn suspect_lines(&self, lines: &mut Vec<String>) {
        if self.history.len() < MIN_SAMPLES {
            lines.push(format!(
                "leak suspects need {MIN_SAMPLES} censuses; {} so far",
                self.history.len()
            ));
            return;
        }
        let suspects = self.suspects();
        if suspects.is_empty() {
            lines.push(format!(
                "no leak suspect over the last {} censuses (no type grows steadily)",
                self.history.len()
            ));
            return;
        }
        lines.push(format!(
            "{:>13} {:>11} {:>10} {:>11} {:>9}  TYPE",
            "COUNT", "BYTES", "OBJECTS/S", "BYTES/S", "TREND"
        ));
        for g in suspects {
            lines.push(format!(
                "{:>13} {:>11} {:>10.1} {:>11} {:>9}  {}",
                thousands(g.count_last),
                human_bytes(g.bytes_last),
                g.rate_per_s,
                signed_bytes(g.bytes_per_s.round() as i64),
                g.trend.as_str(),
                g.name
            ));
        }
    }
}

fn signed_count(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "+" };
    format!("{sign}{}", thousands(v.unsigned_abs()))
}

fn signed_bytes(v: i64) -> String {
    if v == 0 {
        return "0".into();
    }
    let sign = if v < 0 { "-" } else { "+" };
    format!("{sign}{}", human_bytes(v.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, types: &[(&str, u64, u64)]) -> Sample {
        Sample {
            t,
            types: types
                .iter()
                .map(|&(n, c, b)| (n.to_string(), (c, b)))
                .collect(),
            native: HashMap::default(),
            objects: types.iter().map(|t| t.1).sum(),
            bytes: types.iter().map(|t| t.2).sum(),
            rss: Some(1 << 20),
        }
    }

    #[test]
    fn deltas_and_sorts() {
        let mut m = Model::new(1, "3.12.1".into(), 1.0);
        m.push(
            sample(0.0, &[("big", 10, 10_000), ("grow", 1, 100)]),
            true,
            vec![],
        );
        m.push(
            sample(1.0, &[("big", 10, 10_000), ("grow", 5, 500)]),
            true,
            vec![],
        );
        m.push(
            sample(2.0, &[("big", 10, 10_000), ("grow", 9, 900)]),
            true,
            vec![],
        );
        let rows = m.rows();
        assert_eq!(rows[0].name, "big");
        let grow = &rows[1];
        assert_eq!(grow.count_since_start, 8);
        assert_eq!(grow.bytes_since_start, 800);
        assert_eq!(grow.bytes_last_interval, 400);
        assert_eq!(grow.bytes_per_s, 400.0);
        m.sort = SortBy::Growth;
        assert_eq!(m.rows()[0].name, "grow");
        let screen = m.screen(160, 40, Some(0.2));
        assert!(screen.iter().any(|l| l.contains("RSS 1.0 MiB")));
        assert!(screen.iter().any(|l| l.starts_with("sort: growth")));
        assert!(screen.iter().all(|l| l.chars().count() <= 160));
    }

    #[test]
    fn a_vanished_type_shows_its_loss_and_screen_fits() {
        let mut m = Model::new(1, "3.12.1".into(), 1.0);
        m.push(sample(0.0, &[("gone", 3, 300)]), true, vec![]);
        m.push(sample(1.0, &[("new", 1, 10)]), true, vec!["w".into()]);
        let gone = m.rows().into_iter().find(|r| r.name == "gone").unwrap();
        assert_eq!((gone.count, gone.bytes_since_start), (0, -300));
        let screen = m.screen(20, 3, None);
        assert_eq!(screen.len(), 3);
        assert_eq!(screen[2], "warning: w");
    }

    #[test]
    fn steady_growth_is_a_suspect() {
        let mut m = Model::new(1, "3.12.1".into(), 0.5);
        for i in 0..12u64 {
            let t = i as f64 * 0.5;
            m.push(
                sample(
                    t,
                    &[
                        ("leak", 1000 + 500 * i, 56_000 + 28_000 * i),
                        ("flat", 7, 700),
                    ],
                ),
                true,
                vec![],
            );
        }
        let s = m.suspects();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "leak");
        m.suspects_only = true;
        assert!(m.screen(160, 40, None).iter().any(|l| l.ends_with("leak")));
    }
}
