//! Where objects were allocated, from the target's own tracemalloc: the innermost frame of each
//! object's trace, for `why`'s "allocated at" and the heap dump's sites. Nothing here when the
//! target does not trace.

use super::heap_graph::Graph;
use super::why::Sites;
use crate::analysis::session::Session;

/// The graph index and address of every object of `type_name` (for `allocation_sites`, after
/// the graph lets its addresses go).
pub fn objects_of_type(g: &Graph, type_name: &str) -> Vec<(u32, u64)> {
    (0..g.len() as u32)
        .filter(|&i| g.type_name_of(i) == Some(type_name))
        .map(|i| (i, g.objects.get(i)))
        .collect()
}

/// Tries at a consistent reading of the traces table: a busy target inserts, frees and
/// rehashes (tracemalloc shrinks its table as blocks are freed) while it is walked, and even a
/// target stopped by --pause can be stopped in the middle of a rehash.
const SITE_TRIES: usize = 8;

/// Where each of `asked` (graph index, address) was allocated, from the target's tracemalloc
/// (None when it does not trace): the innermost frame of each object's trace. The table is
/// read until a reading holds the entries its header counts (stopping the target for each
/// reading with --pause, never without), and the most complete reading is used, with a
/// warning when even that one missed entries.
pub fn allocation_sites(
    session: &Session,
    tl: &crate::heap::tracemalloc::TraceLayout,
    asked: impl IntoIterator<Item = (u32, u64)>,
) -> Option<(Sites, Option<String>)> {
    let mut best: Option<crate::heap::tracemalloc::BlockSites> = None;
    let complete = |b: &crate::heap::tracemalloc::BlockSites| {
        b.len() as u64 >= b.expected.saturating_mul(99) / 100
    };
    let mut view = None;
    for attempt in 0..SITE_TRIES {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(5 * attempt as u64));
        }
        let paused = session.pause().ok()?;
        // The traces live in malloc's heap, which grows: the mappings as they are now.
        let spans = crate::process::target::readable_spans(session.target.pid).ok()?;
        let mut v =
            crate::process::View::new(&session.target.memory, spans, session.opts.cache_budget);
        let read = crate::heap::tracemalloc::BlockSites::read(&mut v, tl).ok()?;
        drop(paused);
        let better = best.as_ref().is_none_or(|b| read.len() > b.len());
        let done = complete(&read);
        if better {
            best = Some(read);
            view = Some(v);
        }
        if done {
            break;
        }
    }
    let (mut blocks, mut view) = (best?, view?);
    let mut types = crate::heap::objects::types::TypeTable::new(&session.py);
    let mut file_names = crate::heap::frames::file_names::FileNames::of_target(
        &mut view,
        &session.py,
        &mut types,
        session.opts.full_filenames,
    );
    let mut names: rustc_hash::FxHashMap<(String, u32), std::rc::Rc<str>> = Default::default();
    let mut sites = Sites::default();
    for (i, addr) in asked {
        if let Some(frame) = blocks.site_of(&mut view, &session.py, tl, addr) {
            let site = names
                .entry(frame.clone())
                .or_insert_with(|| format!("{}:{}", file_names.file(&frame.0), frame.1).into())
                .clone();
            sites.insert(i, site);
        }
    }
    log::debug!(
        "allocation sites: {} of {} traced blocks read, {} objects placed",
        blocks.len(),
        blocks.expected,
        sites.len()
    );
    let warning = (!complete(&blocks)).then(|| {
        format!(
            "the target's traces changed while they were read ({} of {} read in the best of {} \
             tries): some objects show as not traced",
            blocks.len(),
            blocks.expected,
            SITE_TRIES
        )
    });
    Some((sites, warning))
}
