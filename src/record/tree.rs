//! `pymemspy record --subprocesses`: record every Python process under a root (a gunicorn,
//! celery or uwsgi master and its workers, a multiprocessing pool) while workers come and go.
//!
//! At every census tick the tree under the root is listed again (one pass over /proc):
//! processes not seen before are attached (each gets its own `Session`: its layout is resolved
//! once, when it is first seen), the ones that are gone are marked ended — their recording is
//! kept — and every live one is censused exactly as `record` does. A process is named by its pid
//! *and* its start time, so a recycled pid is a new process, not the continuation of an old one.
//!
//! No allocation profile in this mode: stacks are sampled per process at 100 Hz, and spread over
//! a pool the sampler would cost that many times over (and the master, usually idle, has none
//! worth having). `record --pid WORKER` gives one worker's flamegraph.
//!
//! Ctrl-C, the end of --duration and the root exiting end the recording; what was recorded is
//! returned.

use super::schedule::Schedule;
use super::{
    gc_activity, gc_span, launch, progress, sleep_until, take_sample, RecordOptions, Sampled,
    Source, MAX_FAILURES_IN_A_ROW,
};
use crate::analysis::session::{Session, SnapshotOptions};
use crate::analysis::timeline::record_tree::{self, ProcessRecording, ProcessState, RecordTreeDoc};
use crate::analysis::timeline::recording::{EndReason, Recording};
use crate::error::Error;
use crate::heap::gc::gc_state::GcState;
use crate::process::target::is_running;
use crate::process::tree;
use crate::python::processes::{self, Skipped};
use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

/// Processes followed over one recording, at most: a pool recycling a worker per request must
/// not grow the recorder's memory without bound (each recording is itself bounded).
pub const MAX_PROCESSES: usize = 256;
/// Failed censuses in a row after which the process is attached again from scratch (it may have
/// exec'd: same pid, another program or a fresh interpreter at other addresses).
const REATTACH_AFTER: u32 = 3;
/// Looks at a process that is not (yet) readable Python before it is left alone for good —
/// unless its executable changes (fork, then exec).
const RECHECKS: u32 = 3;
const CMDLINE_CHARS: usize = 300;

pub const ALLOCATIONS_NOTE: &str = "no allocation flamegraph with --subprocesses (stack sampling \
    is per process): run `pymemspy record --pid WORKER` for one worker's flamegraph";

/// One Python process being followed.
struct Member {
    pid: i32,
    start_time: Option<u64>,
    cmdline: String,
    root: bool,
    new: bool,
    first_seen: f64,
    ended: Option<(f64, ProcessState)>,
    session: Session,
    rec: Recording,
    watch_finalizing: bool,
    finalizing_seen: bool,
    failures: u32,
    first_gc: Option<GcState>,
    /// The collector at the latest kept census.
    last_gc: Option<GcState>,
    gc_span: Option<(Instant, Instant)>,
}

impl Member {
    fn live(&self) -> bool {
        self.ended.is_none()
    }
}

/// A process of the tree that is not followed, and what it was when last looked at.
struct Passed {
    start_time: Option<u64>,
    exe: String,
    reason: String,
    looks: u32,
    retry: bool,
}

struct Tree {
    root: i32,
    opts: SnapshotOptions,
    top_types: usize,
    interval_s: f64,
    members: Vec<Member>,
    passed: BTreeMap<i32, Passed>,
    /// Tree-level warnings (per-process ones go to each recording).
    warnings: Vec<String>,
    refused: u64,
}

/// Record every Python process under a root (a command started here, or a pid) until the duration,
/// Ctrl-C or the root's exit. Long: the steps in order (start the root, find its processes, the
/// loop, the end), each a few lines over `Tree`'s methods; the child started at the top is stopped
/// at the end.
pub fn record_tree(opts: RecordOptions) -> anyhow::Result<RecordTreeDoc> {
    let mut child = match &opts.source {
        Source::Command(argv) => Some(launch::spawn(
            argv,
            &launch::tracemalloc_env(opts.tracemalloc),
        )?),
        Source::Pid(_) => None,
    };
    // The root first: a command we started must become readable Python, and a --pid that is
    // not a process at all is an error now, not an empty recording.
    let first = match (&opts.source, child.as_mut()) {
        (_, Some(c)) => Some(launch::open_when_ready(c, &opts.snapshot)?),
        (Source::Pid(pid), None) => match Session::open(*pid, opts.snapshot.clone()) {
            Ok(s) => Some(s),
            // A shell or a C master can start Python workers: follow them without the root.
            Err(Error::NotPython { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        (Source::Command(_), None) => unreachable!("a command source always has a child"),
    };
    let root = match (&opts.source, child.as_ref()) {
        (_, Some(c)) => c.pid(),
        (Source::Pid(pid), None) => *pid,
        (Source::Command(_), None) => unreachable!("a command source always has a child"),
    };
    let started_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let t0 = Instant::now();
    let mut tree = Tree {
        root,
        opts: opts.snapshot.clone(),
        top_types: opts.top_types,
        interval_s: opts.interval.as_secs_f64(),
        members: Vec::new(),
        passed: BTreeMap::new(),
        warnings: Vec::new(),
        refused: 0,
    };
    if let Some(session) = first {
        tree.follow(session, 0.0, false);
    }
    tree.discover(t0, false);
    if tree.members.is_empty() {
        let why = tree
            .passed
            .values()
            .map(|p| p.reason.as_str())
            .next()
            .unwrap_or("no process");
        anyhow::bail!("no Python process under pid {root} (the root: {why})");
    }
    let progress = progress::Progress::new(&format!("the tree under pid {root}"));
    let deadline = opts.duration.map(|d| t0 + d);
    let mut schedule = Schedule::new().every((), opts.interval, t0);
    let mut exit_checked = None;
    let end = loop {
        let Some(((), due)) = schedule.next_due() else {
            break EndReason::Duration;
        };
        let wake = deadline.map_or(due, |d| d.min(due));
        if let Some(end) = sleep_until(wake, &opts.stop, &mut child, root, &mut exit_checked) {
            break end;
        }
        if deadline.is_some_and(|d| due > d) {
            break EndReason::Duration;
        }
        // The first tick's processes were found just above.
        if due > t0 {
            tree.discover(t0, true);
        }
        tree.census_all(t0);
        let live = tree.members.iter().filter(|m| m.live()).count();
        let samples: u64 = tree.members.iter().map(|m| m.rec.samples_taken()).sum();
        progress.set(format!(
            "· {live} live of {} processes · {samples} samples",
            tree.members.len()
        ));
        schedule.done((), Instant::now());
    };
    let duration = t0.elapsed().as_secs_f64();
    progress.finish();
    if end == EndReason::TargetExited {
        tree.warnings.push(format!(
            "the root (pid {root}) exited after {duration:.1} s; the recording has what was \
             taken until then"
        ));
    }
    if let Some(c) = child.as_mut() {
        // The recording is over: a program we started does not outlive it.
        c.stop();
    }
    Ok(tree.finish(started_at, duration, end))
}

impl Tree {
    /// Start following a process whose session is open.
    fn follow(&mut self, session: Session, t: f64, new: bool) {
        let pid = session.target.pid;
        let rec = Recording::new(
            pid,
            session.python_info(),
            humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            self.interval_s,
            self.top_types,
        );
        let watch_finalizing = session.py.is_finalizing(&session.target.memory) == Some(false);
        log::info!("following pid {pid} from {t:.3} s");
        self.members.push(Member {
            pid,
            start_time: tree::start_time(pid),
            cmdline: tree::cmdline(pid, CMDLINE_CHARS),
            root: pid == self.root,
            new,
            first_seen: t,
            ended: None,
            session,
            rec,
            watch_finalizing,
            finalizing_seen: false,
            failures: 0,
            first_gc: None,
            last_gc: None,
            gc_span: None,
        });
    }

    /// List the tree again: end the processes that are gone, attach the new ones.
    fn discover(&mut self, t0: Instant, later: bool) {
        let t = t0.elapsed().as_secs_f64();
        let pids = tree::tree(self.root);
        for m in self.members.iter_mut().filter(|m| m.live()) {
            // Gone, or the pid now names another process.
            if !is_running(m.pid) || tree::start_time(m.pid) != m.start_time {
                m.ended = Some((t, ProcessState::Exited));
            }
        }
        for pid in pids {
            let start = tree::start_time(pid);
            let followed = self
                .members
                .iter()
                .any(|m| m.pid == pid && m.live() && m.start_time == start);
            if followed || !is_running(pid) || !self.worth_a_look(pid, start) {
                continue;
            }
            if self.members.len() >= MAX_PROCESSES {
                self.refused += 1;
                self.pass(
                    pid,
                    start,
                    format!("over {MAX_PROCESSES} processes followed"),
                    false,
                );
                continue;
            }
            match Session::open(pid, self.opts.clone()) {
                Ok(session) => {
                    self.passed.remove(&pid);
                    self.follow(session, t, later);
                }
                Err(e) => {
                    let retry = launch::worth_retrying(&e);
                    self.pass(pid, start, processes::reason(&e), retry);
                }
            }
        }
    }

    /// Whether a pid not followed should be tried (again).
    fn worth_a_look(&self, pid: i32, start: Option<u64>) -> bool {
        match self.passed.get(&pid) {
            None => true,
            Some(p) if p.start_time != start => true,
            Some(p) if p.exe != exe_of(pid) => true,
            Some(p) => p.retry && p.looks < RECHECKS,
        }
    }

    fn pass(&mut self, pid: i32, start: Option<u64>, reason: String, retry: bool) {
        let looks = match self.passed.get(&pid) {
            Some(p) if p.start_time == start => p.looks + 1,
            _ => 1,
        };
        self.passed.insert(
            pid,
            Passed {
                start_time: start,
                exe: exe_of(pid),
                reason,
                looks,
                retry,
            },
        );
    }

    /// One census of every live process.
    fn census_all(&mut self, t0: Instant) {
        let mut fell_off = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            if !m.live() {
                continue;
            }
            match take_sample(&mut m.session, &mut m.rec, t0, m.watch_finalizing) {
                Sampled::Ok(gc) => {
                    m.failures = 0;
                    let now = Instant::now();
                    m.last_gc = gc;
                    if m.first_gc.is_none() {
                        m.first_gc = m.last_gc.clone();
                        m.gc_span = Some((now, now));
                    } else if let Some(span) = m.gc_span.as_mut() {
                        span.1 = now;
                    }
                }
                Sampled::Finalizing => {
                    if !m.finalizing_seen {
                        m.rec.warn(
                            "the process began shutting down; samples taken during its \
                             teardown were left out",
                        );
                    }
                    m.finalizing_seen = true;
                }
                Sampled::TargetGone => {
                    m.ended = Some((t0.elapsed().as_secs_f64(), ProcessState::Exited))
                }
                Sampled::Failed => {
                    m.failures += 1;
                    if m.failures == REATTACH_AFTER && !reattach(m) {
                        fell_off.push(i);
                    } else if m.failures >= MAX_FAILURES_IN_A_ROW {
                        m.rec.warn(&format!(
                            "no longer followed after {} failed censuses in a row",
                            m.failures
                        ));
                        m.ended = Some((t0.elapsed().as_secs_f64(), ProcessState::Failed));
                    }
                }
            }
        }
        // Attached in the instant between fork and exec, it turned out to run something else:
        // not a Python process of the tree after all.
        for &i in fell_off.iter().rev() {
            let m = &self.members[i];
            if m.rec.samples_taken() == 0 {
                let (pid, start) = (m.pid, m.start_time);
                self.members.remove(i);
                self.pass(pid, start, not_python(pid), false);
            } else {
                let t = t0.elapsed().as_secs_f64();
                let m = &mut self.members[i];
                m.rec.warn(&format!(
                    "the process stopped being Python ({})",
                    exe_of(m.pid)
                ));
                m.ended = Some((t, ProcessState::Failed));
            }
        }
    }

    fn finish(self, started_at: String, duration: f64, end: EndReason) -> RecordTreeDoc {
        let processes: Vec<ProcessRecording> = self
            .members
            .into_iter()
            .map(|m| {
                let (ended_s, state) = match m.ended {
                    Some((t, s)) => (Some(round_ms(t)), s),
                    None => (None, ProcessState::Running),
                };
                let until = ended_s.unwrap_or(duration);
                let own_end = match state {
                    ProcessState::Running => end,
                    ProcessState::Exited => EndReason::TargetExited,
                    ProcessState::Failed => EndReason::Failed,
                };
                let mut rec = m.rec;
                if state == ProcessState::Exited {
                    rec.warn(&format!(
                        "the process exited {:.1} s into the recording; its recording has the \
                         {} samples taken until then",
                        until,
                        rec.samples_taken()
                    ));
                }
                let mut doc = rec.finish((until - m.first_seen).max(0.0), own_end);
                doc.gc = gc_activity(m.first_gc.as_ref(), m.last_gc.as_ref(), gc_span(&m.gc_span));
                ProcessRecording {
                    pid: m.pid,
                    cmdline: m.cmdline,
                    root: m.root,
                    first_seen_s: round_ms(m.first_seen),
                    new: m.new,
                    ended_s,
                    state,
                    recording: doc,
                }
            })
            .collect();
        let mut warnings = self.warnings;
        if self.refused > 0 {
            warnings.push(format!(
                "{} processes appeared after {MAX_PROCESSES} were already followed and were not \
                 recorded",
                self.refused
            ));
        }
        let skipped = self
            .passed
            .into_iter()
            .map(|(pid, p)| Skipped {
                pid,
                reason: p.reason,
            })
            .collect();
        RecordTreeDoc {
            schema: record_tree::SCHEMA,
            root_pid: self.root,
            started_at,
            duration_s: round_ms(duration),
            interval_s: self.interval_s,
            end_reason: end,
            suspects: record_tree::suspects_across(&processes),
            processes,
            skipped,
            notes: vec![ALLOCATIONS_NOTE.to_string()],
            warnings,
        }
    }
}

/// After a few failed censuses of a live process: attach again (it may have exec'd a fresh
/// interpreter). False when it is no longer a Python process.
fn reattach(m: &mut Member) -> bool {
    match Session::open(m.pid, m.session.opts.clone()) {
        Ok(s) => {
            m.rec.warn(&format!(
                "attached again after {} failed censuses (the process may have exec'd)",
                m.failures
            ));
            m.watch_finalizing = s.py.is_finalizing(&s.target.memory) == Some(false);
            m.session = s;
            true
        }
        Err(Error::NotPython { .. }) => false,
        // Anything else: keep trying the old session until MAX_FAILURES_IN_A_ROW.
        Err(_) => true,
    }
}

fn exe_of(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn not_python(pid: i32) -> String {
    format!("not Python ({})", exe_of(pid))
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}
