//! The background thread: discovery each interval, cheap /proc figures each interval, and full
//! censuses paced by a CPU budget. A scrape never waits for any of it: results are swapped into
//! the shared state under a lock held only for the swap.
//!
//! Pacing: a census of a 1M-object process costs ~0.09 CPU-s, so twenty of them every 15 s
//! would be ~12% of a core. After each census the thread waits until its census CPU since start
//! is within `cpu_budget` (a fraction of one core) of the wall time; processes then get their
//! census less often than `--interval` (each one's `pymemspy_census_timestamp_seconds` says
//! when its figures are from), while RSS, descriptors and threads, read from /proc, keep the
//! interval. Never pauses a target, never writes to one.

use super::discovery::{self, Discovery, ProcKey, Selection};
use super::encode::labels as encode_labels;
use super::model::{self, CensusFigures, GcFigures, History, MemoryFigures, ProcFigures};
use crate::analysis::session::{CensusReport, Session, SnapshotOptions};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Longest sleep between checks for the stop flag.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct Config {
    pub selection: Selection,
    pub interval: Duration,
    pub top_types: usize,
    /// Fraction of one core the censuses may use on average.
    pub cpu_budget: f64,
    /// Extra labels on every process's series; `service` overrides the derived name.
    pub labels: Vec<(String, String)>,
    /// Bytes of target memory one census may hold at once.
    pub cache_budget: u64,
}

/// One followed process, as a scrape sees it.
#[derive(Debug, Default)]
pub struct ProcState {
    /// Its label set, encoded once.
    pub labels: String,
    /// The last attempt to read it succeeded.
    pub up: bool,
    /// Failed attempts by reason (permission, exited, unsupported, census).
    pub errors: BTreeMap<&'static str, u64>,
    pub census: Option<CensusFigures>,
    pub proc_figures: ProcFigures,
    /// Python threads at the last census.
    pub python_threads: Option<u64>,
}

/// Everything a scrape reads.
#[derive(Debug, Default)]
pub struct Shared {
    pub procs: BTreeMap<ProcKey, ProcState>,
    /// Processes seen but not followed, by reason, at the last discovery.
    pub skipped: HashMap<String, u64>,
    pub census_cpu_s: f64,
    pub censuses: u64,
    pub discoveries: u64,
    /// Type names cut to the bound since start.
    pub names_truncated: u64,
}

/// What only the background thread holds per process.
struct Worker {
    session: Option<Session>,
    history: History,
    next_census: Instant,
    /// Unix time of its first census, the origin of its history's time axis.
    origin: Option<f64>,
}

pub fn spawn(cfg: Config, shared: Arc<Mutex<Shared>>, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("census".into())
        .spawn(move || run(cfg, shared, stop))
        .expect("spawning the census thread");
}

fn run(cfg: Config, shared: Arc<Mutex<Shared>>, stop: Arc<AtomicBool>) {
    let mut discovery = Discovery::new(cfg.selection.clone());
    let mut workers: BTreeMap<ProcKey, Worker> = BTreeMap::new();
    let t0 = Instant::now();
    let cpu0 = process_cpu_s();
    let mut next_discovery = t0;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= next_discovery {
            discover(&cfg, &mut discovery, &mut workers, &shared);
            next_discovery = now + cfg.interval;
        }
        // Within budget when the exporter's CPU so far (censuses, discovery, scrapes) is at
        // most the budget's share of the time elapsed.
        let allowed = cfg.cpu_budget * t0.elapsed().as_secs_f64();
        let census_cpu = process_cpu_s() - cpu0;
        let due = workers
            .iter()
            .filter(|(_, w)| w.next_census <= now)
            .min_by_key(|(_, w)| w.next_census)
            .map(|(k, _)| *k);
        match due {
            // A budget of a whole core is no limit (a census's arena scan may use two).
            Some(key) if census_cpu <= allowed || cfg.cpu_budget >= 1.0 => {
                census_one(&cfg, key, &mut workers, &shared)
            }
            _ => {
                let next = workers
                    .values()
                    .map(|w| w.next_census)
                    .min()
                    .unwrap_or(next_discovery)
                    .min(next_discovery);
                let wait = next.saturating_duration_since(Instant::now());
                // Over budget: wait for the budget to allow the CPU spent.
                let budget_wait = if cfg.cpu_budget < 1.0 && census_cpu > allowed {
                    Duration::from_secs_f64(((census_cpu - allowed) / cfg.cpu_budget).min(60.0))
                } else {
                    Duration::ZERO
                };
                std::thread::sleep(wait.max(budget_wait).clamp(Duration::from_millis(5), POLL));
            }
        }
    }
}

/// One discovery round: add new processes, drop gone ones, refresh labels and /proc figures.
fn discover(
    cfg: &Config,
    discovery: &mut Discovery,
    workers: &mut BTreeMap<ProcKey, Worker>,
    shared: &Mutex<Shared>,
) {
    let known: HashSet<ProcKey> = workers.keys().copied().collect();
    let found = discovery.round(&known);
    let now = Instant::now();
    let followed: HashSet<ProcKey> = found.python.iter().copied().collect();
    // Gone (exited, or its pid recycled): its series leave the next scrape, so Prometheus marks
    // them stale at once instead of repeating the last value.
    workers.retain(|k, _| followed.contains(k));
    for key in &found.python {
        // A new process is censused at once (a recycled worker's replacement appears within
        // one interval); the CPU budget spreads a burst of them out.
        workers.entry(*key).or_insert_with(|| Worker {
            session: None,
            history: History::default(),
            next_census: now,
            origin: None,
        });
    }
    let roles = discovery::roles(&found.python);
    // /proc reads and label sets outside the lock.
    let mut fresh: Vec<(ProcKey, String, ProcFigures)> = Vec::new();
    for key in &found.python {
        let (parent, role) = roles.get(&key.pid).cloned().unwrap_or_default();
        let version = workers
            .get(key)
            .and_then(|w| w.session.as_ref())
            .map(|s| s.py.layout.version.to_string())
            .unwrap_or_default();
        let labels = process_labels(cfg, key.pid, &version, &parent, role);
        fresh.push((*key, labels, proc_figures(key.pid)));
    }
    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
    s.discoveries += 1;
    s.skipped = found.skipped;
    s.procs.retain(|k, _| followed.contains(k));
    for (key, labels, figures) in fresh {
        let p = s.procs.entry(key).or_default();
        p.labels = labels;
        p.proc_figures = figures;
    }
}

fn process_labels(cfg: &Config, pid: i32, version: &str, parent: &str, role: &str) -> String {
    let service = cfg
        .labels
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| discovery::service_name(pid));
    let pid = pid.to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("pid", &pid),
        ("service", &service),
        ("python", version),
        ("role", role),
        ("parent", parent),
    ];
    for (k, v) in &cfg.labels {
        if !pairs.iter().any(|(name, _)| name == k) {
            pairs.push((k, v));
        }
    }
    encode_labels(&pairs)
}

/// RSS, descriptors and threads from /proc: cheap, read at every interval.
fn proc_figures(pid: i32) -> ProcFigures {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok());
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count() as u64);
    ProcFigures {
        rss: crate::process::stats::parse_status(&status).map(|m| m.rss),
        fds,
        threads,
    }
}

/// Census one process (opening its session first if needed).
fn census_one(
    cfg: &Config,
    key: ProcKey,
    workers: &mut BTreeMap<ProcKey, Worker>,
    shared: &Mutex<Shared>,
) {
    let Some(w) = workers.get_mut(&key) else {
        return;
    };
    w.next_census = Instant::now() + cfg.interval;
    let cpu_start = process_cpu_s();
    let wall_start = Instant::now();
    let mut opened = false;
    if w.session.is_none() {
        let opts = SnapshotOptions {
            cache_budget: cfg.cache_budget,
            ..SnapshotOptions::default()
        };
        match Session::open(key.pid, opts) {
            Ok(s) => {
                w.session = Some(s);
                opened = true;
            }
            Err(e) => {
                let spent = process_cpu_s() - cpu_start;
                record_error(shared, key, &e, spent);
                return;
            }
        }
    }
    let session = w.session.as_mut().expect("opened above");
    // Arenas come and go while the target runs.
    let _ = session.target.refresh_maps();
    let result = session.census();
    let wall_s = wall_start.elapsed().as_secs_f64();
    let cpu_s = process_cpu_s() - cpu_start;
    let report = match result {
        Ok(r) if session.target.is_alive() => r,
        Ok(_) => {
            // Read while the process died: not a picture of anything.
            record_error(shared, key, &crate::error::Error::Exited(key.pid), cpu_s);
            return;
        }
        Err(e) => {
            // A session that fails may be stale (the process exec'd): open a new one next time.
            w.session = None;
            record_error(shared, key, &e, cpu_s);
            return;
        }
    };
    let now_unix = unix_now() - wall_s / 2.0;
    let origin = *w.origin.get_or_insert(now_unix);
    let (mut figures, python_threads) = figures(report, cfg.top_types, now_unix, wall_s, cpu_s);
    w.history
        .add(now_unix - origin, &mut figures.types, cfg.top_types);
    let version = opened.then(|| session.py.layout.version.to_string());
    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
    s.census_cpu_s += cpu_s;
    s.censuses += 1;
    s.names_truncated += figures.names_truncated;
    if let Some(p) = s.procs.get_mut(&key) {
        p.up = true;
        p.python_threads = python_threads;
        p.census = Some(figures);
        if let Some(v) = version {
            // The version is known from the first census on: put it in the label set now
            // rather than at the next discovery.
            p.labels = p
                .labels
                .replacen("python=\"\"", &format!("python=\"{v}\""), 1);
        }
    }
}

fn record_error(shared: &Mutex<Shared>, key: ProcKey, e: &crate::error::Error, cpu_s: f64) {
    use crate::error::Error;
    let reason = match e {
        Error::Permission(_) => "permission",
        Error::Exited(_) | Error::NoSuchProcess(_) => "exited",
        Error::NotPython { .. } => "not_python",
        Error::Unsupported { .. } => "unsupported",
        _ => "census",
    };
    log::info!("process {}: {e}", key.pid);
    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
    s.census_cpu_s += cpu_s;
    if let Some(p) = s.procs.get_mut(&key) {
        p.up = false;
        *p.errors.entry(reason).or_default() += 1;
    }
}

/// The exported figures of one census (and its count of Python threads).
fn figures(
    r: CensusReport,
    top_n: usize,
    at: f64,
    wall_s: f64,
    cpu_s: f64,
) -> (CensusFigures, Option<u64>) {
    let (types, names_truncated) = model::top_types(&r.census, top_n);
    let memory = r.memory.as_ref().map(|m| {
        let mut parts = vec![
            ("objects", m.python_objects_allocated_bytes),
            ("native_unattributed", m.native_bytes),
            ("file_backed", m.rss.file),
        ];
        if let Some(p) = &m.pymalloc {
            parts.push(("pymalloc_in_use", p.in_use_bytes));
            parts.push(("pymalloc_free_in_pools", p.free_in_pools_bytes));
        }
        if let Some(p) = &m.mimalloc {
            parts.push(("mimalloc_in_use", p.in_use_bytes));
            parts.push(("mimalloc_free_in_pages", p.free_in_pages_bytes));
        }
        MemoryFigures {
            parts,
            native_owned: m.owned_by_objects_bytes,
        }
    });
    let gc = r.gc.as_ref().map(|g| GcFigures {
        enabled: g.enabled,
        generations: g
            .generations
            .iter()
            .enumerate()
            .map(|(i, gen)| (i, gen.collections, gen.uncollectable))
            .collect(),
        garbage: g.garbage,
    });
    let figures = CensusFigures {
        at,
        wall_s,
        cpu_s,
        complete: r.coverage.complete,
        objects: r.census.objects,
        bytes: r.census.bytes,
        types,
        memory,
        gc,
        names_truncated,
    };
    (figures, r.resources.map(|res| res.python_threads))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// CPU time of the whole exporter: a census scans arenas on several threads (complete.rs), so
/// the calling thread's own time would undercount it; and the budget is the exporter's, all
/// of it (discovery, /proc reads, scrapes).
fn process_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
