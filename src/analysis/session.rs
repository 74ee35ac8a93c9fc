//! The session: a process attached to and understood (its memory, its build's layout, its type
//! table), with the options every command reads it by. Censuses, recordings, `why` and live
//! tracing all work on one; `census::snapshot` turns a census into the snapshot JSON.

use crate::analysis::census::complete::ObjectSource;
use crate::analysis::census::memory::{self, MemoryReport};
use crate::analysis::census::resources::{self, Resources};
use crate::analysis::census::Census;
use crate::error::Result;
use crate::heap::gc::gc_lists;
use crate::heap::gc::gc_state::{self, GcState};
use crate::heap::objects::types::TypeTable;
use crate::process::smaps::RssParts;
use crate::process::{Target, View};
use crate::python::{resolve, Python, ResolveOptions};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Stops tried with --pause before reading inside a running collection anyway.
const PAUSE_TRIES: u32 = 50;

/// How long a target stopped inside a collection runs before it is stopped again.
const PAUSE_RETRY: Duration = Duration::from_millis(2);

#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    pub resolve: ResolveOptions,
    /// Stop the target (ptrace) while reading, for a consistent picture.
    pub pause: bool,
    /// Bytes of target memory the view may hold at once.
    pub cache_budget: u64,
    /// Count only GC-tracked objects (GC lists; free-threaded: the TRACKED bit), skipping the
    /// arena scan and referent pass.
    pub gc_only: bool,
    /// Hide file paths of open descriptors.
    pub no_paths: bool,
    /// Break the RSS down (/proc/PID/smaps) at each census. `record` does not show it: the
    /// kernel walking every page table of the target each second is a cost for nothing there.
    pub memory_report: bool,
    /// `--full-filenames`: frames (retention roots, allocation lines) show whole paths, not
    /// paths relative to the target's `sys.path`.
    pub full_filenames: bool,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            resolve: ResolveOptions::default(),
            pause: false,
            // PYMEMSPY_CACHE_MIB: how much target memory a census may hold at once.
            cache_budget: std::env::var("PYMEMSPY_CACHE_MIB")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(256 << 20, |m| m << 20),
            gc_only: false,
            no_paths: false,
            memory_report: true,
            full_filenames: false,
        }
    }
}

/// Bytes of target memory the whole-heap analyses' view holds at most.
pub(crate) const WHOLE_HEAP_BUDGET: u64 = 16 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PythonInfo {
    pub version: String,
    pub executable: String,
    pub free_threaded: bool,
}

/// How the census was made: what was read and what was skipped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Coverage {
    /// Every GC list was walked to its end with no collection running: the census is whole.
    pub complete: bool,
    /// Where the layout came from (tables, debug offsets, DWARF).
    pub layout: Vec<String>,
    /// How objects were found, with counts.
    pub sources: Vec<String>,
    pub gc_lists: Vec<(String, u64)>,
    pub gc_attempts: u32,
    /// GC lists whose count (`gc_lists`, the collector report) is an estimate: the target
    /// changed them while they were read. The census itself does not depend on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gc_lists_approximate: Vec<String>,
    /// What the census noticed that changes nothing a user could act on (objects a running
    /// target was changing while they were read, estimated list counts): kept out of
    /// `warnings`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub skipped_bad_type: u64,
    pub skipped_bad_size: u64,
    pub bytes_read: u64,
    pub bulk_reads: u64,
    pub small_reads: u64,
}

/// A process we have attached to and understood; censuses can be repeated on it cheaply.
pub struct Session {
    pub target: Target,
    pub py: Python,
    pub types: TypeTable,
    pub opts: SnapshotOptions,
}

/// One census and what was read beside it.
pub struct CensusReport {
    pub census: Census,
    pub coverage: Coverage,
    pub warnings: Vec<String>,
    /// Where the process's memory goes (None with --gc-only).
    pub memory: Option<MemoryReport>,
    /// The collector's state.
    pub gc: Option<GcState>,
    /// The process's descriptors and threads (None from a core file).
    pub resources: Option<Resources>,
}

impl Session {
    pub fn open(pid: i32, opts: SnapshotOptions) -> Result<Session> {
        Session::from_target(Target::attach(pid)?, opts)
    }

    /// A session over any target: a live process or a core file.
    pub fn from_target(target: Target, opts: SnapshotOptions) -> Result<Session> {
        let mut phases = crate::analysis::phases::Phases::start("session");
        let py = resolve(&target, &opts.resolve)?;
        let types = TypeTable::new(&py);
        phases.lap("resolve");
        Ok(Session {
            target,
            py,
            types,
            opts,
        })
    }

    pub fn python_info(&self) -> PythonInfo {
        PythonInfo {
            version: self.py.layout.version.to_string(),
            executable: self.py.binary.path.clone(),
            free_threaded: self.py.layout.free_threaded,
        }
    }

    /// Find every object now (GC lists, arenas, referents) and hand them, sorted, to `f`
    /// together with a fresh view: the retention tree and `why` are built from this.
    pub fn with_objects<R>(
        &mut self,
        f: impl FnOnce(&mut View, &Python, &mut TypeTable, Vec<u64>) -> R,
    ) -> Result<R> {
        let _paused = self.pause()?;
        // The analyses read objects in address order (the graph capture): a small window
        // serves them, and a large one would only grow the tool by the target's heap.
        let mut view = View::new(
            &self.target.memory,
            self.target.spans(),
            self.opts.cache_budget.min(WHOLE_HEAP_BUDGET),
        );
        // Only the object list is kept: the walk's lists and blocks go before `f` runs.
        let objects =
            ObjectSource::for_build(&self.py, false).list(&mut view, &self.py, &mut self.types);
        Ok(f(&mut view, &self.py, &mut self.types, objects))
    }

    /// With --pause, stop the target, but outside a garbage collection: a collection stopped
    /// half-way never ends while we read (its objects sit on temporary lists, `_gc_prev` holds
    /// gc_refs), so the GC lists would be cut short on every attempt. Stopped inside one, the
    /// target is let go for a moment to finish it and stopped again, a bounded number of
    /// times; a program that collects without end is read as last stopped (and said so).
    pub(crate) fn pause(&self) -> Result<Option<remoteprocess::Lock>> {
        if !self.opts.pause {
            return Ok(None);
        }
        // A core does not run: nothing to stop.
        let Some(process) = self.target.memory.process() else {
            return Ok(None);
        };
        // Already stopped (SIGSTOP, job control, a debugger): it cannot change while we read,
        // and ptrace would wait on it for nothing.
        if matches!(
            crate::process::target::process_state(self.target.pid),
            Some('T' | 't')
        ) {
            log::info!(
                "process {} is stopped already; --pause has nothing to do",
                self.target.pid
            );
            return Ok(None);
        }
        let pid = self.target.pid;
        let lock = || {
            process.lock().map_err(|e| match e {
                remoteprocess::Error::NixError(nix::errno::Errno::EPERM) => {
                    crate::error::Error::Permission(pid)
                }
                e => crate::error::Error::Usage(format!(
                    "--pause could not stop process {pid} ({e}): drop --pause to read it while \
                     it runs"
                )),
            })
        };
        for _ in 1..PAUSE_TRIES {
            let paused = lock()?;
            if !gc_lists::collection_running(&self.target.memory, &self.py) {
                return Ok(Some(paused));
            }
            drop(paused);
            std::thread::sleep(PAUSE_RETRY);
        }
        lock().map(Some)
    }

    /// Count every object now (only GC-tracked ones with `gc_only`).
    pub fn census(&mut self) -> Result<CensusReport> {
        let _paused = self.pause()?;
        Ok(self.census_unpaused(false)?.0)
    }

    /// The census, and with `keep_objects` every object's address where the census's scan
    /// could keep them (see `ObjectSource::count`). The caller pauses the target. Long: the
    /// report's parts in order (count, collector state, resources, memory, a warning or note per
    /// way the read was uncertain, coverage), all from the one view and walk whose figures end in
    /// the coverage.
    pub(crate) fn census_unpaused(
        &mut self,
        keep_objects: bool,
    ) -> Result<(CensusReport, Option<Vec<u64>>)> {
        let mut phases = crate::analysis::phases::Phases::start("census");
        let mut view = View::new(
            &self.target.memory,
            self.target.spans(),
            self.opts.cache_budget,
        );
        // Repeated censuses (record): classes come and go while the target runs.
        self.types.revalidate(&mut view, &self.py.layout);
        // Static objects live in the Python binary's own mappings (.data, .bss, .PyRuntime).
        let statics: Vec<(u64, u64)> = self
            .target
            .maps
            .iter()
            .filter(|m| m.path.as_deref() == Some(self.py.binary.path.as_str()))
            .map(|m| (m.start, m.end - m.start))
            .collect();
        let source = ObjectSource::for_build(&self.py, self.opts.gc_only);
        let (walked, all, census, objects) = source.count(
            &mut view,
            &self.py,
            &mut self.types,
            &statics,
            keep_objects && !self.opts.gc_only,
        );
        phases.lap("count");
        let mut warnings = self.py.warnings.clone();
        let sources = all.sources.clone();
        warnings.extend(all.warnings.iter().cloned());
        let gc = gc_state::read(
            &mut view,
            &self.py,
            &mut self.types,
            &walked,
            all.mimalloc.as_ref(),
        );
        // Descriptors, threads and RSS come from /proc: a core's pid is not a live process.
        let live = !self.target.is_core();
        let resources = live.then(|| {
            resources::read(
                &mut view,
                &self.py,
                &census,
                self.target.pid,
                !self.opts.no_paths,
            )
        });
        let memory = (self.opts.memory_report && !self.opts.gc_only).then(|| {
            let rss = live
                .then(|| RssParts::read(self.target.pid))
                .flatten()
                .unwrap_or_default();
            memory::report(
                rss,
                all.arenas.as_ref(),
                Some(&all.scan),
                all.mimalloc.as_ref(),
                &census,
            )
        });
        phases.lap("gc state, resources, memory");
        // The GC lists are the census only with --gc-only on a build that keeps them; the
        // complete census counts from the arenas and needs the lists only for the collector
        // report, whose counts it marks approximate when a busy target tore them.
        let from_lists = source == ObjectSource::GcLists;
        let mut notes = Vec::new();
        if !walked.broken.is_empty() {
            warnings.push(format!(
                "GC lists changed while being read and were cut short after {} attempts: {}",
                walked.attempts,
                walked.broken.join(", ")
            ));
        }
        if !walked.approximate.is_empty() {
            notes.push(format!(
                "GC lists changed while being read: the collector's counts of {} are estimates",
                walked.approximate.join(", ")
            ));
        }
        // A note is a warning where it makes the census itself uncertain, else a coverage note.
        let mut say = |note: String, warn: bool| {
            if warn {
                warnings.push(note);
            } else {
                notes.push(note);
            }
        };
        if walked.during_collection {
            say(
                "a garbage collection was running during the walk".to_string(),
                from_lists,
            );
        }
        // Objects a running target was changing while they were read: not actionable, and a
        // handful among many changes nothing; said in the coverage unless they are many.
        let many = |n: u64| n > 0 && n * 1000 >= census.objects.max(1);
        if census.bad_type > 0 {
            say(
                format!(
                    "{} objects skipped: their type did not validate (the target was mutating \
                     them)",
                    census.bad_type
                ),
                many(census.bad_type),
            );
        }
        if census.bad_size > 0 {
            say(
                format!(
                    "{} objects counted at their base size: their size fields did not validate",
                    census.bad_size
                ),
                many(census.bad_size),
            );
        }
        let coverage = Coverage {
            complete: walked.broken.is_empty() && !(walked.during_collection && from_lists),
            layout: self.py.layout.sources.clone(),
            sources,
            gc_lists: walked.lists,
            gc_attempts: walked.attempts,
            gc_lists_approximate: walked.approximate,
            notes,
            skipped_bad_type: census.bad_type,
            skipped_bad_size: census.bad_size,
            bytes_read: view.stats.bytes_read,
            bulk_reads: view.stats.bulk_reads,
            small_reads: view.stats.small_reads,
        };
        Ok((
            CensusReport {
                census,
                coverage,
                warnings,
                memory,
                gc,
                resources,
            },
            objects,
        ))
    }
}
