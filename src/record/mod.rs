//! `pymemspy record`: watch a live process over time. One `Session` is opened (layout and type
//! names are learned once) and a census is taken every interval, with the RSS beside it. The
//! target is never paused (unless --pause) and no code runs in it: in particular no
//! `gc.collect()`, so what a collection would free is seen as it really lingers.
//!
//! Ctrl-C, the end of --duration and the target exiting each end the recording; what was
//! recorded so far is always returned, to be written.

pub mod launch;
pub mod progress;
pub mod schedule;
pub mod tree;

use crate::analysis::census::resources::Resources;
use crate::analysis::session::{Session, SnapshotOptions};
use crate::analysis::timeline::alloc_profile::{AllocSampler, SamplerOptions};
use crate::analysis::timeline::recording::{
    self, AllocationStack, Allocations, EndReason, GcActivity, RecordDoc, Recording,
};
use crate::heap::gc::gc_state::GcState;
use crate::live_tracing::{self, LiveTracing};
use crate::process::stats;
use schedule::Schedule;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Which process to record.
#[derive(Debug, Clone)]
pub enum Source {
    Pid(i32),
    /// Start this command and record it.
    Command(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub source: Source,
    pub duration: Option<Duration>,
    pub interval: Duration,
    pub snapshot: SnapshotOptions,
    /// Types stored per sample: the top N by bytes and by count (see `crate::analysis::timeline::recording`).
    pub top_types: usize,
    /// Set (by the Ctrl-C handler) to end the recording.
    pub stop: Arc<AtomicBool>,
    /// Stack samples per second for the allocation profile (0: none).
    pub rate: f64,
    /// Exact mode with this many frames per allocation: a program we start gets
    /// `PYTHONTRACEMALLOC`; a running process has its tracing turned on for the recording.
    /// None: sampled (or exact when a running process traces already).
    pub tracemalloc: Option<u32>,
    /// `--full-filenames`: allocation frames show whole paths (default: relative to the
    /// target's `sys.path`).
    pub full_filenames: bool,
}

/// The periodic activities of the record loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Census,
    /// One tick of the allocation sampler: the newest GC objects and the running stack.
    Sample,
}

/// Census failures in a row (with the target alive) after which the recording gives up.
const MAX_FAILURES_IN_A_ROW: u32 = 10;
/// Longest sleep between checks of Ctrl-C and the target's exit.
const POLL: Duration = Duration::from_millis(50);

/// Record one process (a command started here, or a pid) until its duration, Ctrl-C or its exit:
/// censuses and allocation samples on one schedule, then the document. Long: the recording's steps
/// in order (start, the loop, the end); the end reads the loop's state (child, session, sampler,
/// live tracing, collector states) and must finish the profile before tracing and the child are
/// stopped.
pub fn record(opts: RecordOptions) -> anyhow::Result<RecordDoc> {
    // Exact mode: a program we start gets tracemalloc from its environment; a running process
    // has it turned on for the recording (`live_tracing`), and off at the end.
    let env = match opts.source {
        Source::Command(_) => launch::tracemalloc_env(opts.tracemalloc),
        Source::Pid(_) => Vec::new(),
    };
    let (mut child, mut session) = launch::open_source(&opts.source, &opts.snapshot, &env)?;
    let pid = session.target.pid;
    let live = match (&opts.source, opts.tracemalloc) {
        (Source::Pid(_), Some(frames)) if opts.rate > 0.0 => {
            let live = LiveTracing::start(&session, frames, live_tracing::DEFAULT_WAIT)?;
            if live.started_by_us() {
                eprintln!(
                    "pymemspy: tracemalloc ({frames} frames) started in process {pid} through {} \
                     in {} ms; it stops when the recording ends (or within {} s if pymemspy \
                     is killed)",
                    live.how,
                    live.took.as_millis(),
                    live_tracing::script::LEASE_EXPIRY.as_secs()
                );
            } else {
                eprintln!("pymemspy: process {pid} traces already: read as it is, left tracing");
            }
            Some(live)
        }
        _ => None,
    };
    let started_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut rec = Recording::new(
        pid,
        session.python_info(),
        started_at,
        opts.interval.as_secs_f64(),
        opts.top_types,
    );
    let progress = progress::Progress::new(&format!("pid {pid}"));
    let t0 = Instant::now();
    let deadline = opts.duration.map(|d| t0 + d);
    let mut schedule = Schedule::new().every(Activity::Census, opts.interval, t0);
    let mut sampler = start_sampler(&session, &opts, &mut rec);
    if sampler.is_some() {
        schedule = schedule.every(
            Activity::Sample,
            Duration::from_secs_f64(1.0 / opts.rate),
            t0,
        );
    }
    let mut failures = 0u32;
    // A runtime that says it is shutting down before we even started: its flag is not to be
    // trusted (or it really is exiting, and the loop will see it go).
    let watch_finalizing = session.py.is_finalizing(&session.target.memory) == Some(false);
    // The collector's state at the first census, to rate its collections at the end.
    let mut first_gc: Option<GcState> = None;
    let mut last_gc: Option<GcState> = None;
    let mut first_gc_at: Option<(Instant, Instant)> = None;
    let mut finalizing_seen = false;
    let mut exit_checked: Option<Instant> = None;

    let end = loop {
        let Some((activity, due)) = schedule.next_due() else {
            break EndReason::Duration;
        };
        let wake = deadline.map_or(due, |d| d.min(due));
        if let Some(end) = sleep_until(wake, &opts.stop, &mut child, pid, &mut exit_checked) {
            break end;
        }
        if deadline.is_some_and(|d| due > d) {
            break EndReason::Duration;
        }
        match activity {
            Activity::Census => match take_sample(&mut session, &mut rec, t0, watch_finalizing) {
                Sampled::Ok(gc) => {
                    failures = 0;
                    let now = Instant::now();
                    last_gc = gc;
                    if first_gc.is_none() {
                        first_gc = last_gc.clone();
                        first_gc_at = Some((now, now));
                    } else if let Some(span) = first_gc_at.as_mut() {
                        span.1 = now;
                    }
                }
                Sampled::Finalizing => {
                    if !finalizing_seen {
                        rec.warn(
                            "the target began shutting down; samples taken during its teardown \
                             were left out",
                        );
                    }
                    finalizing_seen = true;
                }
                Sampled::Failed => {
                    failures += 1;
                    if failures >= MAX_FAILURES_IN_A_ROW {
                        rec.warn(&format!(
                            "recording stopped after {failures} failed censuses in a row"
                        ));
                        break EndReason::Failed;
                    }
                }
                Sampled::TargetGone => break EndReason::TargetExited,
            },
            Activity::Sample => {
                if let Some(s) = sampler.as_mut() {
                    s.sample(&session);
                }
            }
        }
        progress.update(&rec);
        schedule.done(activity, Instant::now());
    };
    let duration = t0.elapsed().as_secs_f64();
    progress.finish();

    if end == EndReason::TargetExited {
        let status = child
            .as_mut()
            .and_then(|c| c.exited())
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        rec.warn(&format!(
            "the target exited{status} after {:.1} s; the recording has the {} samples taken \
             until then",
            duration,
            rec.samples_taken()
        ));
    }
    // Survival is judged on the live heap: finish the profile before stopping a child.
    let profile = match (sampler, end) {
        (Some(s), EndReason::TargetExited) => {
            drop(s);
            rec.warn(
                "the target exited before the recording ended: no allocation profile (which \
                 sampled objects survived can only be read from a live process)",
            );
            None
        }
        (Some(s), _) => Some(s.finish(&mut session)),
        (None, _) => None,
    };
    // The traces were read: tracing we started ends now (tracemalloc.stop() frees them).
    let tracing_how = live
        .as_ref()
        .filter(|l| l.started_by_us())
        .map(|l| format!("pymemspy, through {} in {} ms", l.how, l.took.as_millis()));
    let tracing_end = live.and_then(|l| l.stop());
    if let Some(c) = child.as_mut() {
        // The recording is over: a program we started does not outlive it.
        c.stop();
    }
    let mut doc = rec.finish(duration, end);
    match tracing_end {
        Some(e @ live_tracing::Ending::Stopped(_)) => eprintln!("pymemspy: {}", e.message(pid)),
        // A target that exited took its tracing with it: nothing to warn about.
        Some(e) if end != EndReason::TargetExited => doc.warnings.push(e.message(pid)),
        _ => {}
    }
    doc.gc = gc_activity(first_gc.as_ref(), last_gc.as_ref(), gc_span(&first_gc_at));
    if let Some(mut p) = profile {
        let (bytes, objects) = measured_growth(&doc);
        if bytes > 0 {
            p.scale_to(bytes, objects);
        }
        doc.warnings.extend(p.warnings.iter().cloned());
        let exact = p.method == crate::analysis::timeline::alloc_profile::TRACEMALLOC;
        doc.allocations = Some(Allocations {
            rate_hz: opts.rate,
            ticks: p.stats.ticks,
            mode: if exact {
                recording::EXACT
            } else {
                recording::SAMPLED
            },
            tracing_started_by: tracing_how.filter(|_| exact),
            method: p.method.to_string(),
            attributed_share: p.attributed_share(),
            files: std::mem::take(&mut p.files),
            stacks: p
                .stacks
                .into_iter()
                .map(|(stack, bytes, objects)| AllocationStack {
                    stack,
                    bytes,
                    objects,
                })
                .collect(),
        });
    }
    Ok(doc)
}

fn start_sampler(
    session: &Session,
    record: &RecordOptions,
    rec: &mut Recording,
) -> Option<AllocSampler> {
    if record.rate <= 0.0 {
        return None;
    }
    let opts = SamplerOptions {
        census: false,
        // Exact mode (the target traces): stopped for the readings of its tables when asked
        // to pause, or when we started it with --tracemalloc (that is asking for exactness).
        pause_traced_reads: record.snapshot.pause || record.tracemalloc.is_some(),
        expect_tracing: record.tracemalloc.is_some(),
        baseline: crate::analysis::timeline::alloc_profile::baseline_for(record.duration),
        full_filenames: record.full_filenames,
        ..Default::default()
    };
    match AllocSampler::with_options(session, opts) {
        Ok(s) => Some(s),
        Err(e) => {
            rec.warn(&format!("no allocation profile: {e}"));
            None
        }
    }
}

/// Growth between the first and last complete census (bytes, objects), floored at zero.
fn measured_growth(doc: &RecordDoc) -> (u64, u64) {
    let complete: Vec<_> = doc.timeline.iter().filter(|t| t.complete).collect();
    match (complete.first(), complete.last()) {
        (Some(a), Some(b)) => (
            b.bytes.saturating_sub(a.bytes),
            b.objects.saturating_sub(a.objects),
        ),
        _ => (0, 0),
    }
}

/// Sleep until `when`, waking early for Ctrl-C or the target's exit. The target's exit is
/// looked for at most every POLL (`last_check`), not at every sampler tick: reading
/// /proc/PID/stat makes the kernel settle the target's CPU time under its run-queue lock, a
/// cost to the target that 1000 ticks a second would pay 1000 times.
fn sleep_until(
    when: Instant,
    stop: &AtomicBool,
    child: &mut Option<launch::Child>,
    pid: i32,
    last_check: &mut Option<Instant>,
) -> Option<EndReason> {
    loop {
        if stop.load(Ordering::SeqCst) {
            return Some(EndReason::Interrupted);
        }
        if last_check.is_none_or(|t| t.elapsed() >= POLL) {
            *last_check = Some(Instant::now());
            let gone = match child {
                Some(c) => c.exited().is_some(),
                None => !crate::process::target::is_running(pid),
            };
            if gone {
                return Some(EndReason::TargetExited);
            }
        }
        let now = Instant::now();
        if now >= when {
            return None;
        }
        std::thread::sleep((when - now).min(POLL));
    }
}

enum Sampled {
    /// Kept, with the collector's state at that census.
    Ok(Option<GcState>),
    /// The interpreter is tearing itself down: the census would show objects being freed
    /// en masse, not the program. Not kept; the loop goes on until the process is gone.
    Finalizing,
    Failed,
    TargetGone,
}

fn gc_span(at: &Option<(Instant, Instant)>) -> f64 {
    at.map_or(0.0, |(a, b)| (b - a).as_secs_f64())
}

/// Collections per second per generation between the first and the last census.
fn gc_activity(
    first: Option<&GcState>,
    last: Option<&GcState>,
    seconds: f64,
) -> Option<GcActivity> {
    let (a, b) = (first?, last?);
    let rates = a
        .generations
        .iter()
        .zip(&b.generations)
        .map(|(x, y)| match (x.collections, y.collections) {
            (Some(c0), Some(c1)) if seconds > 0.0 => Some(c1.saturating_sub(c0) as f64 / seconds),
            _ => None,
        })
        .collect();
    Some(GcActivity {
        enabled_at_start: a.enabled,
        enabled_at_end: b.enabled,
        collections_per_s: rates,
    })
}

/// Descriptors, threads and gc.garbage as series beside the types, so that their leaks are
/// judged by the same rule as object leaks. Names start with "(" (never a type name); they add
/// nothing to the census totals.
fn add_resource_series(
    resources: Option<&Resources>,
    gc: Option<&GcState>,
    census: &mut crate::analysis::census::Census,
) {
    use crate::analysis::census::TypeCount;
    let mut push = |name: String, count: u64| {
        census.types.push(TypeCount {
            name,
            count,
            ..TypeCount::default()
        })
    };
    if let Some(r) = resources {
        for (kind, n) in &r.fds_by_kind {
            push(format!("(fds) {kind}"), *n);
        }
        push(
            "(fds) without a Python owner".into(),
            r.fds_without_python_owner,
        );
        push("(threads) OS".into(), r.os_threads);
        push("(threads) Python".into(), r.python_threads);
    }
    if let Some(g) = gc {
        push("(gc) gc.garbage".into(), g.garbage);
    }
}

/// One census plus RSS. A census taken while the target died is thrown away: reads from a
/// vanishing address space are not a picture of anything.
fn take_sample(
    session: &mut Session,
    rec: &mut Recording,
    t0: Instant,
    watch_finalizing: bool,
) -> Sampled {
    if !session.target.is_alive() {
        return Sampled::TargetGone;
    }
    let finalizing =
        |s: &Session| watch_finalizing && s.py.is_finalizing(&s.target.memory) == Some(true);
    if finalizing(session) {
        return Sampled::Finalizing;
    }
    // Arenas come and go while the target runs.
    if let Err(e) = session.target.refresh_maps() {
        if !session.target.is_alive() {
            return Sampled::TargetGone;
        }
        rec.warn(&format!("could not re-read the memory map: {e}"));
    }
    let start = Instant::now();
    let result = session.census();
    let rss = stats::read(session.target.pid).ok().map(|s| s.rss);
    if !session.target.is_alive() {
        return Sampled::TargetGone;
    }
    if finalizing(session) {
        return Sampled::Finalizing;
    }
    // Stamp the sample at the middle of its census.
    let t = (start + start.elapsed() / 2 - t0).as_secs_f64();
    match result {
        Ok(r) => {
            let (mut census, coverage, warnings) = (r.census, r.coverage, r.warnings);
            add_resource_series(r.resources.as_ref(), r.gc.as_ref(), &mut census);
            if r.gc.as_ref().is_some_and(|g| !g.enabled) {
                rec.warn(
                    "the garbage collector is disabled (gc.disable()): reference cycles are \
                     never freed; types growing here may be cyclic garbage",
                );
            }
            rec.add(t, rss, &census, coverage.complete);
            for w in &warnings {
                rec.warn(w);
            }
            Sampled::Ok(r.gc)
        }
        Err(e) => {
            rec.warn(&format!("a census failed: {e}"));
            Sampled::Failed
        }
    }
}
