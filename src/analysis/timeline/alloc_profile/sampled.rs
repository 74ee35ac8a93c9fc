//! What the two sampled sources share: the trait each implements, the state their findings go
//! into (stacks, records, type facts), and the end that turns the records into a profile.

use super::profile::{file_names, imports_apart, AllocProfile};
use super::records::{Batch, Records};
use super::stacks::Stacks;
use super::stats::AllocStats;
use super::survivors;
use super::timing::TickClock;
use super::SamplerOptions;
use crate::analysis::session::Session;
use crate::heap::gc::young::TypeBitsCache;
use crate::heap::objects::types::TypeTable;
use crate::process::View;
use crate::python::Python;

/// A way of finding the objects made since the last tick, without pausing the target: GIL
/// builds' young list and head pools (`young::Young`), free-threaded builds' fresh mimalloc
/// pages (`fresh_pages::Threads`).
pub(super) trait SampledSource {
    /// The objects made since the last tick (`tick` counts from 1), in batches charged to a
    /// stack or to none.
    fn tick(&mut self, session: &Session, tick: u64, s: &mut Sampled) -> Vec<Batch>;
    /// Objects and bytes on the heap now, to scale the profile to its growth (None: the count
    /// failed).
    fn census(
        &mut self,
        session: &Session,
        types: &mut TypeBitsCache,
        warnings: &mut Vec<String>,
    ) -> Option<(u64, u64)>;
    /// `AllocProfile::method`.
    fn method(&self) -> &'static str;
    /// Put this source's own counts into the stats, and say what it could not see.
    fn report(&self, stats: &mut AllocStats, warnings: &mut Vec<String>);
}

/// The state the sampled sources' findings go into.
pub(super) struct Sampled {
    pub stacks: Stacks,
    /// Type facts per type pointer, and the target's readable spans.
    pub types: TypeBitsCache,
    pub records: Records,
    /// Objects and bytes at the first census (None: not taken, or failed).
    pub start_census: Option<(u64, u64)>,
}

impl Sampled {
    pub(super) fn new(session: &Session, py: &Python, max_records: usize) -> Sampled {
        Sampled {
            stacks: Stacks::new(py),
            types: TypeBitsCache::new(
                session.target.pid,
                TypeTable::new(py),
                session.target.spans(),
            ),
            records: Records::new(max_records),
            start_census: None,
        }
    }
}

/// What a sampled profile is built from besides the source and its findings.
pub(super) struct Ending<'a> {
    pub opts: &'a SamplerOptions,
    pub clock: &'a TickClock,
    pub stats: AllocStats,
    pub warnings: Vec<String>,
}

/// Decide which records survived, size them, and charge their stacks; scaled to the growth
/// between the two censuses when they were taken.
pub(super) fn finish(
    mut s: Sampled,
    mut source: Box<dyn SampledSource>,
    session: &mut Session,
    end: Ending,
) -> AllocProfile {
    let Ending {
        opts,
        clock,
        mut stats,
        mut warnings,
    } = end;
    s.types.refresh_spans();
    let mut view = View::new(
        &session.target.memory,
        s.types.spans.clone(),
        session.opts.cache_budget,
    );
    let latest = s.records.latest();
    stats.distinct_records = latest.len() as u64;
    let per_stack = survivors::by_stack(
        &mut view,
        &session.py.layout,
        &mut s.types,
        latest,
        &s.stacks.judge,
        &mut stats,
    );
    drop(view);

    let end_census = if opts.census {
        source.census(session, &mut s.types, &mut warnings)
    } else {
        None
    };
    stats.start_gc_objects = s.start_census.map(|c| c.0);
    stats.start_gc_bytes = s.start_census.map(|c| c.1);
    stats.end_gc_objects = end_census.map(|c| c.0);
    stats.end_gc_bytes = end_census.map(|c| c.1);
    let mut names = file_names(session, opts.full_filenames);
    let mut stacks: Vec<(Vec<String>, u64, u64)> = per_stack
        .into_iter()
        .map(|(sid, (bytes, objects))| (s.stacks.names(sid, &mut names), bytes, objects))
        .collect();
    stacks.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    imports_apart(&mut stacks);
    stats.scale = 1.0;
    clock.finish(&mut stats);
    stats.stacks = s.stacks.reader.stats;
    source.report(&mut stats, &mut warnings);
    stats.cut_stacks = s.stacks.judge.cut_count();
    if stats.cut_survivors > 0 {
        warnings.push(cut_warning(&stats));
    }
    let mut profile =
        AllocProfile::new(stacks, source.method(), stats, warnings, names.full_paths());
    scale(&mut profile, s.start_census, end_census, opts.census);
    profile
}

fn cut_warning(stats: &AllocStats) -> String {
    format!(
        "{:.1}% of the sampled growth ({} of {} surviving objects) was on stacks read cut \
         off (the thread ran on while its stack was read: the chain did not reach the \
         thread's first frame) and is left out; the stacks shown are whole",
        100.0 * stats.cut_survivor_bytes as f64 / stats.survivor_bytes.max(1) as f64,
        stats.cut_survivors,
        stats.survivors
    )
}

/// Scale the profile to the growth between the censuses, or say why it is not.
fn scale(
    profile: &mut AllocProfile,
    start: Option<(u64, u64)>,
    end: Option<(u64, u64)>,
    census: bool,
) {
    match (start, end) {
        (Some(a), Some(b)) if b.1 > a.1 => {
            profile.scale_to(b.1 - a.1, b.0.saturating_sub(a.0));
        }
        (Some(_), Some(_)) => profile.warnings.push(
            "the GC-tracked heap did not grow: bytes are the sampled survivors' own, unscaled"
                .into(),
        ),
        _ if census => profile.warnings.push(
            "heap growth could not be measured: bytes are the sampled survivors' own, \
             unscaled"
                .into(),
        ),
        _ => {}
    }
}
