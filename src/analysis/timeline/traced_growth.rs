//! Exact allocation growth, when the target traces its own allocations (`PYTHONTRACEMALLOC=N`,
//! `-X tracemalloc=N`, `tracemalloc.start(N)`, or `record --tracemalloc N -- …`).
//!
//! Sampling can only charge what a tick finds to the code running at that tick: a leak made by a
//! function much shorter than the tick, or by one of several request threads, lands on other
//! code (issue 16's measurements). tracemalloc records the allocating traceback of every live
//! block inside the target, so the growth between two readings of its tables, per traceback,
//! is exact: `snapshot.compare_to(old, 'traceback')` read from outside. tracemalloc keeps file
//! and line per frame; function names come from the target's code objects (`CodeNames`).

use crate::analysis::session::Session;
use crate::heap::frames::file_names::FileNames;
use crate::heap::frames::stacks::StackReader;
use crate::heap::tracemalloc::{self, Frame, TraceLayout, Traces, CUT_OFF};
use crate::process::View;
use rustc_hash::FxHashMap as HashMap;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// tracemalloc's tables at the start of a recording, by traceback.
pub struct TracedGrowth {
    layout: TraceLayout,
    start: HashMap<Vec<Frame>, (u64, u64)>,
    pub max_nframe: u32,
    /// Stop the target while each table is read (see `read`).
    pause: bool,
    /// The baseline keeps being read (the most each traceback held) until then: a program we
    /// started is still importing, and its requests' temporaries are not in flight yet, when
    /// the first reading is taken.
    baseline_until: Instant,
    next_reading: Instant,
    /// While the import system's tracebacks keep growing (a program still starting), the
    /// baseline is extended by `window`, up to `hard_until`.
    window: Duration,
    hard_until: Instant,
    last_imports: u64,
    /// The sum of the most each traceback held so far (`held_maxima`).
    last_held: u64,
}

/// The baseline is extended while a reading raises the sum of the tracebacks' maxima by more
/// than this fraction: the program is still warming up (threads starting, caches filling, its
/// requests' temporaries not yet at their usual height). A steady program's leak adds far less
/// per reading; on a loaded machine the warm-up can outlast the first window (measured: four
/// request threads whose in-flight temporaries, not yet in the baseline, read as ~98% of the
/// growth).
const STILL_WARMING: f64 = 0.05;

/// The root a stack cut at tracemalloc's frame limit stands under instead of its thread's:
/// what it is, and how many outer frames it lost.
pub const CUT_OFF_ROOT: &str = "[cut off by tracemalloc's frame limit]";

/// The outermost frame of a stack tracemalloc cut: `CUT_OFF_ROOT` with the frames it lost.
pub fn cut_off_frame(missing: u32) -> String {
    format!("{CUT_OFF_ROOT} ({missing} outer frames not kept)")
}

fn held_maxima(t: &HashMap<Vec<Frame>, (u64, u64)>) -> u64 {
    t.values().map(|v| v.0).sum()
}

/// Time between two baseline readings.
const BASELINE_GAP: Duration = Duration::from_millis(200);

/// Readings of the tables at each end, and the time between them. What is alive at one instant
/// includes the temporaries of every request in flight (four request threads each half-way
/// through building 2,000 dicts: hundreds of kilobytes, more than ten seconds of a small leak).
/// Growth is therefore counted from the most a traceback held in any start reading to the
/// least it held in any end reading: temporaries, up and down between readings, cancel; a leak,
/// which only grows, is short by what it gained during the readings.
const READINGS: usize = 5;
const READING_GAP: Duration = Duration::from_millis(50);

/// A stack's growth: frames root first (`name (file:line)`), bytes and blocks grown.
pub type GrownStack = (Vec<String>, u64, u64);

impl TracedGrowth {
    /// Read the traces now, if the target is tracing (Ok(None) when it is not, or when its
    /// tables are not found on this build: then the caller samples).
    /// Err(None): not tracing, or no tables on this build; Err(Some(why)): tracing, but its
    /// tables could not be read.
    pub fn start(
        session: &Session,
        pause: bool,
        baseline: Baseline,
    ) -> Result<TracedGrowth, Option<anyhow::Error>> {
        let layout = tracemalloc::locate(
            &session.target.memory,
            &session.target.spans_now(),
            &session.py,
        )
        .map_err(|why| (!why.is::<tracemalloc::NotTracing>()).then_some(why))?;
        // A read torn by the target's own edits fails validation: try again, a few times.
        let mut last = None;
        let mut traces = None;
        for _ in 0..3 {
            match read(session, &layout, pause) {
                Ok(t) => {
                    traces = Some(t);
                    break;
                }
                Err(why) => last = Some(why),
            }
        }
        let traces = match (traces, last) {
            (Some(t), _) => t,
            (None, Some(why)) if why.is::<tracemalloc::NotTracing>() => return Err(None),
            (None, why) => return Err(why),
        };
        let max_nframe = traces.config.map_or(0, |c| c.max_nframe);
        let mut start = by_traceback(traces);
        for _ in 1..READINGS {
            std::thread::sleep(READING_GAP);
            if let Ok(t) = read(session, &layout, pause) {
                merge_max(&mut start, t);
            }
        }
        let now = Instant::now();
        Ok(TracedGrowth {
            last_imports: imports_held(&start),
            last_held: held_maxima(&start),
            layout,
            max_nframe,
            start,
            pause,
            baseline_until: now + baseline.window,
            next_reading: now + BASELINE_GAP,
            window: baseline.window,
            hard_until: now + baseline.longest,
        })
    }

    /// Called at every sampler tick: one more baseline reading while the baseline window lasts.
    pub fn tick(&mut self, session: &Session) {
        let now = Instant::now();
        if now >= self.baseline_until || now < self.next_reading {
            return;
        }
        self.next_reading = now + BASELINE_GAP;
        if let Ok(t) = read(session, &self.layout, self.pause) {
            let reading = by_traceback(t);
            let imports = imports_held(&reading);
            let mut warming = imports > self.last_imports; // still importing
            self.last_imports = imports;
            for (frames, (bytes, blocks)) in reading {
                let e = self.start.entry(frames).or_default();
                *e = (e.0.max(bytes), e.1.max(blocks));
            }
            let held = held_maxima(&self.start);
            warming |= held as f64 > self.last_held as f64 * (1.0 + STILL_WARMING);
            log::debug!(
                "tracemalloc baseline reading: maxima {held} bytes (was {}), imports {imports}, \
                 warming {warming}, {} tracebacks, until {:?}",
                self.last_held,
                self.start.len(),
                self.baseline_until.saturating_duration_since(now)
            );
            self.last_held = held;
            if warming {
                // Its start-up is not over.
                self.baseline_until = (now + self.window).min(self.hard_until);
            }
        }
    }

    /// Whether the tables are read with the target stopped.
    pub fn pauses(&self) -> bool {
        self.pause
    }

    /// Read the traces again: the blocks each traceback gained, named. Tracebacks whose bytes
    /// did not grow are left out (what was freed is not growth).
    pub fn finish(
        self,
        session: &mut Session,
        file_names: &mut FileNames,
    ) -> anyhow::Result<(Vec<GrownStack>, u64)> {
        // The code objects found below are read through the target's own list of mappings.
        let _ = session.target.refresh_maps();
        let end = read(session, &self.layout, self.pause)?;
        let skipped = end.skipped;
        let mut end = by_traceback(end);
        for _ in 1..READINGS {
            std::thread::sleep(READING_GAP);
            let Ok(t) = read(session, &self.layout, self.pause) else {
                continue;
            };
            let again = by_traceback(t);
            end.retain(|frames, (bytes, blocks)| match again.get(frames) {
                Some(&(b, n)) => {
                    *bytes = (*bytes).min(b);
                    *blocks = (*blocks).min(n);
                    true
                }
                None => false,
            });
        }
        let mut grown: Vec<(Vec<Frame>, u64, u64)> = end
            .into_iter()
            .filter_map(|(frames, (bytes, blocks))| {
                let (b0, n0) = self.start.get(&frames).copied().unwrap_or((0, 0));
                (bytes > b0).then(|| (frames, bytes - b0, blocks.saturating_sub(n0)))
            })
            .collect();
        grown.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for (frames, bytes, _) in grown.iter().take(3) {
            log::debug!(
                "tracemalloc growth {bytes} bytes (baseline most {:?}) at {:?}",
                self.start.get(frames),
                frames.first()
            );
        }
        let files: HashSet<&str> = grown
            .iter()
            .flat_map(|(f, _, _)| f.iter().map(|(file, _)| file.as_str()))
            .collect();
        let names = CodeNames::read(session, &files);
        let stacks = grown
            .iter()
            .map(|(frames, bytes, blocks)| {
                // tracemalloc keeps the most recent frame first.
                let text = frames
                    .iter()
                    .rev()
                    .map(|(file, line)| match (file.as_str(), line) {
                        // tracemalloc's frame for an allocation made with no Python frame.
                        ("<unknown>", 0) => "<no Python frame>".to_string(),
                        (CUT_OFF, missing) => cut_off_frame(*missing),
                        _ => {
                            let name = names.function_at(file, *line).unwrap_or("?");
                            format!("{name} ({}:{line})", file_names.file(file))
                        }
                    })
                    .collect();
                (text, *bytes, *blocks)
            })
            .collect();
        Ok((stacks, skipped))
    }
}

/// Read every trace. A busy target rewrites its tables thousands of times a second while they
/// are read: chunks read a few milliseconds apart then hold the short-lived blocks of different
/// moments, and churn reads as growth (measured on the demo: 47% of the "growth" on a list
/// comprehension whose strings all die). With `pause`, the target is stopped for the read.
fn read(session: &Session, layout: &TraceLayout, pause: bool) -> anyhow::Result<Traces> {
    let _stopped =
        match (pause, session.target.memory.process()) {
            (true, Some(p)) => Some(p.lock().map_err(|e| {
                anyhow::anyhow!("could not stop the target to read its traces: {e}")
            })?),
            _ => None,
        };
    // Its tables grow into new mappings while it runs: the spans of now, not of the start.
    let mut view = View::new(
        &session.target.memory,
        session.target.spans_now(),
        session.opts.cache_budget,
    );
    tracemalloc::read(&mut view, &session.py, layout)
}

/// How long the baseline is read: `window` from the start, extended by `window` while the
/// program imports, never past `longest`.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    pub window: Duration,
    pub longest: Duration,
}

/// The file name the import system's frames carry (`<frozen importlib._bootstrap>` and
/// `…_bootstrap_external>`).
pub const IMPORT_SYSTEM: &str = "<frozen importlib._bootstrap";

/// Bytes held by tracebacks that run the import system.
fn imports_held(t: &HashMap<Vec<Frame>, (u64, u64)>) -> u64 {
    t.iter()
        .filter(|(frames, _)| {
            frames
                .iter()
                .any(|(file, _)| file.starts_with(IMPORT_SYSTEM))
        })
        .map(|(_, (bytes, _))| *bytes)
        .sum()
}

fn merge_max(into: &mut HashMap<Vec<Frame>, (u64, u64)>, t: Traces) {
    for (frames, (bytes, blocks)) in by_traceback(t) {
        let e = into.entry(frames).or_default();
        *e = (e.0.max(bytes), e.1.max(blocks));
    }
}

fn by_traceback(t: Traces) -> HashMap<Vec<Frame>, (u64, u64)> {
    let mut out: HashMap<Vec<Frame>, (u64, u64)> = HashMap::default();
    for (frames, bytes, blocks) in t.stacks {
        let e = out.entry(frames).or_default();
        e.0 = e.0.saturating_add(bytes);
        e.1 += blocks;
    }
    out
}

/// Which function each line of a file is in, from the target's code objects: per file, the
/// (first line, last line, name) of every code object, the innermost one covering a line
/// winning (a method inside its class body, a nested function inside its parent).
#[derive(Default)]
pub struct CodeNames {
    by_file: HashMap<String, Vec<(u32, u32, String)>>,
}

impl CodeNames {
    /// Every code object of these files, found among all the target's objects.
    pub fn read(session: &mut Session, files: &HashSet<&str>) -> CodeNames {
        let mut out = CodeNames::default();
        if files.is_empty() {
            return out;
        }
        let py = session.py.clone();
        let mut stacks = StackReader::new(&py);
        let code_type = stacks.code_type();
        if code_type == 0 {
            return out;
        }
        let l = &py.layout;
        let found = session.with_objects(|view, _py, _types, objects| {
            let mut codes = Vec::new();
            for &o in &objects {
                if view.u64(o.wrapping_add(l.ob_type)) == Some(code_type) {
                    codes.push(o);
                }
            }
            codes
        });
        let mem = &session.target.memory;
        for code in found.unwrap_or_default() {
            let Some((name, file, first, last)) = stacks.code_function(mem, l, code) else {
                continue;
            };
            if files.contains(file.as_str()) {
                out.by_file
                    .entry(file)
                    .or_default()
                    .push((first, last, name));
            }
        }
        for v in out.by_file.values_mut() {
            v.sort();
            v.dedup();
        }
        out
    }

    /// The innermost function whose lines cover `line` in `file`.
    pub fn function_at(&self, file: &str, line: u32) -> Option<&str> {
        self.by_file
            .get(file)?
            .iter()
            .filter(|(first, last, _)| *first <= line && line <= *last)
            .max_by_key(|(first, last, _)| (*first, std::cmp::Reverse(*last)))
            .map(|(_, _, name)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_function_names_a_line() {
        let mut n = CodeNames::default();
        n.by_file.insert(
            "app.py".into(),
            vec![
                (1, 40, "<module>".into()),
                (10, 20, "Cache".into()),
                (12, 15, "Cache.put".into()),
                (30, 33, "serve".into()),
            ],
        );
        assert_eq!(n.function_at("app.py", 13), Some("Cache.put"));
        assert_eq!(n.function_at("app.py", 18), Some("Cache"));
        assert_eq!(n.function_at("app.py", 31), Some("serve"));
        assert_eq!(n.function_at("app.py", 2), Some("<module>"));
        assert_eq!(n.function_at("other.py", 2), None);
    }

    #[test]
    fn a_cut_stack_names_its_root_for_what_it_is() {
        let f = cut_off_frame(12);
        assert!(f.starts_with(CUT_OFF_ROOT), "{f}");
        assert!(f.ends_with("(12 outer frames not kept)"), "{f}");
        assert!(!f.contains(';'), "{f}");
    }
}
