//! The growth a sampled profile is scaled to: objects and bytes on the heap when sampling
//! starts and when it finishes, counted the way the source's build allows.

use crate::analysis::census;
use crate::analysis::session::Session;
use crate::heap::gc::gc_lists::{self, WalkLimits};
use crate::heap::gc::young::TypeBitsCache;
use crate::process::target::readable_spans;
use crate::process::View;
use std::time::Duration;

/// Run a count over a fresh view of the target (its mappings read again: the heap grew).
/// Pauses the target only when the session was asked to (`--pause`).
fn counted(
    session: &Session,
    types: &mut TypeBitsCache,
    count: impl FnOnce(&mut View, &mut TypeBitsCache) -> Option<(u64, u64)>,
) -> Option<(u64, u64)> {
    let spans = readable_spans(session.target.pid).ok()?;
    types.set_spans(spans.clone());
    let _paused = session.pause().ok()?;
    let mut view = View::new(&session.target.memory, spans, session.opts.cache_budget);
    count(&mut view, types)
}

/// GIL builds: objects and bytes on every GC list now, or None when the walk failed.
pub(super) fn gc_lists(
    session: &Session,
    types: &mut TypeBitsCache,
    warnings: &mut Vec<String>,
) -> Option<(u64, u64)> {
    counted(session, types, |view, types| {
        // The target keeps allocating, and lists change under any walk: a young list cut
        // short costs a few hundred objects; an older one is cut where collections append
        // survivors (its tail), so the count comes out low. Taken as an estimate, said so.
        let limits = WalkLimits {
            collecting_wait: Duration::from_millis(200),
            attempts: 3,
            ..WalkLimits::default()
        };
        let walked = gc_lists::walk(view, &session.py, &limits);
        if walked.broken.iter().any(|list| !list.ends_with(".gen0")) {
            warnings.push(format!(
                "GC lists changed while being counted ({}): the growth the bytes are scaled to \
                 is an estimate (--pause gives an exact one)",
                walked.broken.join(", ")
            ));
        }
        let mut objects = walked.objects;
        objects.sort_unstable();
        objects.dedup();
        let placement = census::Placement {
            blocks: &[],
            statics: &[],
            malloc_outside: true,
        };
        let c = census::count(
            view,
            &session.py.layout,
            &mut types.types,
            &objects,
            &placement,
        );
        Some((c.objects, c.bytes))
    })
}

/// Free-threaded builds: no lists; every object of the heaps, counted as the census does
/// (what the sampled survivors, untracked ones included, are part of).
pub(super) fn heaps(session: &Session, types: &mut TypeBitsCache) -> Option<(u64, u64)> {
    counted(session, types, |view, types| {
        let source = census::complete::ObjectSource::for_build(&session.py, false);
        let (_, _, c, _) = source.count(view, &session.py, &mut types.types, &[], false);
        Some((c.objects, c.bytes))
    })
}
