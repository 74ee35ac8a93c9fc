//! The exact source: the target traces its allocations with tracemalloc (its own, or turned on
//! for the recording by `live_tracing`), and the profile is what each traceback gained between
//! readings of its tables at both ends (`traced_growth`). Ticks only extend the baseline.

use super::profile::{file_names, imports_apart, AllocProfile, TRACEMALLOC};
use super::stats::AllocStats;
use super::SamplerOptions;
use crate::analysis::session::Session;
use crate::analysis::timeline::traced_growth::{self, TracedGrowth};
use std::time::{Duration, Instant};

/// How long a program started with tracemalloc on may take to begin tracing.
const TRACING_WAIT: Duration = Duration::from_secs(10);

pub(super) struct Traced {
    growth: TracedGrowth,
}

/// The target's traces, read now when it traces (waiting for it to begin when it was started
/// with tracemalloc on); None: sample instead, with a warning when that was not expected.
pub(super) fn start(
    session: &Session,
    opts: &SamplerOptions,
    warnings: &mut Vec<String>,
) -> Option<Traced> {
    let mut traced = TracedGrowth::start(session, opts.pause_traced_reads, opts.baseline);
    let since = Instant::now();
    while traced.is_err() && opts.expect_tracing && since.elapsed() < TRACING_WAIT {
        std::thread::sleep(Duration::from_millis(10));
        traced = TracedGrowth::start(session, opts.pause_traced_reads, opts.baseline);
    }
    match &traced {
        Err(Some(why)) => warnings.push(format!(
            "the target traces its allocations, but its tracemalloc tables could not be read \
             ({why:#}): sampling instead"
        )),
        // Exact mode was asked for: falling back to sampling is said, never silent.
        Err(None) if opts.expect_tracing => warnings.push(format!(
            "exact mode: the target did not begin tracing within {} s (tracemalloc was \
             stopped, or never started): sampling instead",
            TRACING_WAIT.as_secs()
        )),
        _ => {}
    }
    traced.ok().map(|growth| Traced { growth })
}

impl Traced {
    /// One more baseline reading while the baseline window lasts (`TracedGrowth::tick`).
    pub(super) fn tick(&mut self, session: &Session) {
        self.growth.tick(session);
    }

    /// Read what each traceback gained since the start. `stats` has the timing already.
    pub(super) fn finish(
        self,
        session: &mut Session,
        full_filenames: bool,
        mut stats: AllocStats,
        mut warnings: Vec<String>,
    ) -> AllocProfile {
        let max_nframe = self.growth.max_nframe;
        let traced_paused = self.growth.pauses();
        let mut names = file_names(session, full_filenames);
        let mut stacks = match self.growth.finish(session, &mut names) {
            Ok((stacks, skipped)) => {
                if skipped > 0 {
                    warnings.push(format!(
                        "{skipped} traced blocks skipped at the end: their trace could not be \
                         read (the target was changing them)"
                    ));
                }
                stacks
            }
            Err(why) => {
                warnings.push(format!(
                    "the target's tracemalloc could not be read at the end ({why}): no \
                     allocation profile"
                ));
                Vec::new()
            }
        };
        if !traced_paused {
            warnings.push(
                "tracemalloc's tables were read while the target ran: a busy target's \
                 short-lived blocks can read as growth (--pause stops it for the two reads)"
                    .into(),
            );
        }
        if max_nframe == 1 {
            warnings.push(
                "tracemalloc keeps one frame per allocation here: each stack is only the line \
                 that allocated (PYTHONTRACEMALLOC=16 keeps the callers too)"
                    .into(),
            );
        }
        // A stack tracemalloc cut at its frame limit stands under its own root, never as if
        // its innermost frames were where its thread began (Django's request stacks are deeper
        // than 16 frames); the share is said.
        let cut: u64 = stacks
            .iter()
            .filter(|s| {
                s.0.first()
                    .is_some_and(|f| f.starts_with(traced_growth::CUT_OFF_ROOT))
            })
            .map(|s| s.1)
            .sum();
        let total: u64 = stacks.iter().map(|s| s.1).sum();
        if cut > 0 {
            warnings.push(format!(
                "{:.1}% of the traced growth is on stacks deeper than tracemalloc's {max_nframe} \
                 frames: they stand under \"{}\" (--tracemalloc with more frames keeps their \
                 threads' roots)",
                100.0 * cut as f64 / total.max(1) as f64,
                traced_growth::CUT_OFF_ROOT
            ));
        }
        imports_apart(&mut stacks);
        stats.scale = 1.0;
        AllocProfile::new(stacks, TRACEMALLOC, stats, warnings, names.full_paths())
    }
}
