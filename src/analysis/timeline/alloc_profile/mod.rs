//! Which code makes the heap grow: an allocation profile weighted by what survives.
//!
//! Charging counter deltas to the sampled stack measures allocations, not growth (a prototype
//! put 7% of the weight on the real leaker, the rest on code that allocated and freed).
//! What works is object identity:
//!
//! 1. At each tick, walk the young generation backwards from its newest node, at most
//!    `max_walk` nodes, and never past the generation-0 head (older generations hold survivors
//!    of earlier work, not what runs now). Stop at a node we already recorded. Remember each new
//!    object's address, type and a content fingerprint together with the stack of the thread
//!    that took the GIL last. Ticks that find a collection running skip the walk.
//! 2. At the end, a recorded object counts as a survivor when its type and fingerprint still
//!    match and it is still alive: address and type alone are fooled by pymalloc and free lists
//!    reusing addresses LIFO (the leaker's objects land where the churner's died).
//! 3. Stacks weigh the `sys.getsizeof` bytes of their survivors, scaled so the total equals the
//!    growth of GC-tracked bytes between the first and the last census.
//!
//! Objects the GC never lists (str, bytes, int, float) come from pymalloc's head pools instead
//! (`heap::pymalloc::head_pools`): the blocks each size class handed out since the last tick,
//! recorded the same way with a fingerprint of their contents.
//!
//! Where new objects are found depends on what the build and the target let us know, chosen
//! once when sampling starts (`Source`), each source a module with its own state:
//! - `young`: GIL builds, the young list and the head pools, as above;
//! - `fresh_pages`: free-threaded builds (no young list), each thread's new mimalloc blocks;
//! - `traced`: the target traces with tracemalloc (its own, or `live_tracing`'s): exact, read
//!   from its tables at both ends.
//!
//! The two sampled sources implement `sampled::SampledSource`: a tick returns what they found,
//! in batches charged to a stack or to none (`records`). The parts they share are named for
//! what they are: `stacks` (interning, `judge`), `survivors`, `census` (the growth to scale
//! to), `timing`, `stats`, and `profile`, what callers get.
//!
//! Nothing here pauses the target, unless asked to: the censuses with `--pause`, the exact
//! mode's readings with `SamplerOptions::pause_traced_reads`.

mod census;
mod fresh_pages;
mod judge;
mod profile;
mod records;
mod sampled;
mod stacks;
mod stats;
mod survivors;
mod timing;
mod traced;
mod young;

pub use profile::{AllocProfile, IMPORTS, SAMPLED, SAMPLED_THREADS, TRACEMALLOC};
pub use stats::AllocStats;

use crate::analysis::session::Session;
use crate::analysis::timeline::traced_growth::Baseline;
use crate::error::{Error, Result};
use crate::heap::mimalloc::fresh_pages::FreshPages;
use sampled::{Sampled, SampledSource};
use std::time::Duration;
use timing::TickClock;

#[derive(Debug, Clone, Copy)]
pub struct SamplerOptions {
    /// Most young-generation nodes read per tick.
    pub max_walk: usize,
    /// Cap on recorded objects (memory bound for long recordings); later ones are counted only.
    pub max_records: usize,
    /// Count every GC object when sampling starts and when it finishes, to scale the profile
    /// to the growth in between. Off: the caller scales with `AllocProfile::scale_to`.
    pub census: bool,
    /// When the target traces its allocations: stop it while its tables are read (twice per
    /// recording), for an exact reading of a busy target (`traced_growth::read`).
    pub pause_traced_reads: bool,
    /// The target was started with tracemalloc on: wait for it (up to `traced::TRACING_WAIT`) to
    /// begin tracing rather than sample (a new runtime is readable before tracemalloc starts).
    pub expect_tracing: bool,
    /// Exact mode: how long the baseline keeps being read (`TracedGrowth::tick`).
    pub baseline: Baseline,
    /// `--full-filenames`: frames show whole paths, not paths relative to `sys.path`.
    pub full_filenames: bool,
}

/// The baseline window: a fifth of a recording of known length, at most 2 s (2 s without a
/// length), extended while the program imports or still warms up (`TracedGrowth::tick`), up to
/// half the recording (10 s without one).
pub fn baseline_for(duration: Option<Duration>) -> Baseline {
    const MAX: Duration = Duration::from_secs(2);
    match duration {
        Some(d) => Baseline {
            window: (d / 5).min(MAX),
            longest: d / 2,
        },
        None => Baseline {
            window: MAX,
            longest: Duration::from_secs(10),
        },
    }
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            max_walk: 64,
            max_records: 4_000_000,
            census: true,
            pause_traced_reads: false,
            expect_tracing: false,
            baseline: baseline_for(None),
            full_filenames: false,
        }
    }
}

/// How often the code-address cache is dropped (a freed code object's address can be reused).
const CODE_CACHE_TICKS: u64 = 1000;

/// Samples a live target, tick by tick, into an `AllocProfile`.
pub struct AllocSampler {
    opts: SamplerOptions,
    source: Source,
    clock: TickClock,
    stats: AllocStats,
    warnings: Vec<String>,
}

/// How the sampler learns what was allocated, chosen once (`AllocSampler::with_options`).
enum Source {
    /// Ticks read new objects (`young::Young`, `fresh_pages::Threads`) into `Sampled` (boxed:
    /// it is far larger than the traced state).
    Sampled(Box<Sampled>, Box<dyn SampledSource>),
    /// The target's tracemalloc: exact, read at both ends.
    Traced(traced::Traced),
}

impl AllocSampler {
    /// Prepare to sample: proves the stack layout on the live process and takes the first
    /// census (one walk of every GC list; the growth the profile is scaled to starts here).
    pub fn with_options(session: &Session, opts: SamplerOptions) -> Result<Self> {
        let py = &session.py;
        let pid = session.target.pid;
        let mut warnings = Vec::new();
        let traced = traced::start(session, &opts, &mut warnings);
        let fresh_pages = FreshPages::locate(py);
        if py.layout.free_threaded && traced.is_none() && fresh_pages.is_none() {
            return Err(Error::Unsupported {
                pid,
                why: "free-threaded build whose threads' mimalloc heaps are not located (a \
                      build with DWARF would tell)"
                    .into(),
            });
        }
        let interp = *py.interpreters.first().ok_or_else(|| Error::Unsupported {
            pid,
            why: "no interpreter to sample".into(),
        })?;
        let source = match (traced, fresh_pages) {
            // Exact: nothing to sample, and no GC lists needed (free-threaded builds too).
            (Some(traced), _) => Source::Traced(traced),
            (None, pages) => {
                let mut s = Sampled::new(session, py, opts.max_records);
                let source: Box<dyn SampledSource> = match pages {
                    Some(pages) => Box::new(fresh_pages::Threads::new(pages)),
                    None => Box::new(young::Young::new(
                        session,
                        &s,
                        py.gc_state(interp),
                        opts.max_walk,
                    )),
                };
                let threads = s.stacks.reader.all_threads(&session.target.memory, py);
                if !threads.iter().any(|t| !t.frames.is_empty()) {
                    warnings.push(
                        "no thread showed a Python frame when sampling started: stacks may be \
                         empty"
                            .into(),
                    );
                }
                Source::Sampled(Box::new(s), source)
            }
        };
        let mut sampler = AllocSampler {
            opts,
            source,
            clock: TickClock::default(),
            stats: AllocStats::default(),
            warnings,
        };
        if let (Source::Sampled(s, source), true) = (&mut sampler.source, opts.census) {
            s.start_census = source.census(session, &mut s.types, &mut sampler.warnings);
        }
        Ok(sampler)
    }

    /// One tick: read what the source found new since the last one, and charge it. A few
    /// small reads; never pauses the target.
    pub fn sample(&mut self, session: &Session) {
        let start = self.clock.start();
        self.stats.ticks += 1;
        match &mut self.source {
            Source::Sampled(s, source) => {
                if self.stats.ticks.is_multiple_of(CODE_CACHE_TICKS) {
                    s.stacks.reader.forget_code_addresses();
                }
                for batch in source.tick(session, self.stats.ticks, s) {
                    s.records.take(batch, &mut self.stats);
                }
            }
            Source::Traced(t) => t.tick(session),
        }
        self.clock.end(start);
    }

    /// Decide which records survived, size them, and charge their stacks (or, when the
    /// target traces, read what each traceback gained).
    pub fn finish(self, session: &mut Session) -> AllocProfile {
        let AllocSampler {
            opts,
            source,
            clock,
            mut stats,
            warnings,
        } = self;
        match source {
            Source::Sampled(s, source) => {
                let end = sampled::Ending {
                    opts: &opts,
                    clock: &clock,
                    stats,
                    warnings,
                };
                sampled::finish(*s, source, session, end)
            }
            Source::Traced(t) => {
                clock.finish(&mut stats);
                t.finish(session, opts.full_filenames, stats, warnings)
            }
        }
    }
}
