//! The complete census. How objects are found is decided once, by the layout:
//! - default builds: GC lists ∪ pymalloc arena objects ∪ what they reference;
//! - free-threaded builds: every object of the mimalloc heaps ∪ what they reference (statics).

use crate::analysis::census::{Census, Placement, Tally};
use crate::heap::gc::gc_lists::{self, GcObjects, WalkLimits};
use crate::heap::mimalloc::{self, MimallocStats};
use crate::heap::objects::types::{TypeInfo, TypeTable};
use crate::heap::pymalloc::arenas::{self, BlockObject};
use crate::heap::referents::Referents;
use crate::heap::regions::Regions;
use crate::process::View;
use crate::python::Python;

/// How this build's objects are found, chosen once from the layout (and `--gc-only`): the
/// census and the whole-heap analyses ask it, and nothing else decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectSource {
    /// `--gc-only` on a build with GC lists: the lists are the census.
    GcLists,
    /// Default builds: pymalloc's arenas scanned on every core, the GC lists for what lies
    /// outside them, and the referent pass for the rest.
    Arenas,
    /// Free-threaded builds: every object of the mimalloc heaps and the statics they reference
    /// (only the GC-tracked ones with `gc_only`).
    Mimalloc { gc_only: bool },
}

impl ObjectSource {
    pub fn for_build(py: &Python, gc_only: bool) -> ObjectSource {
        match (py.layout.free_threaded, gc_only) {
            (true, gc_only) => ObjectSource::Mimalloc { gc_only },
            (false, true) => ObjectSource::GcLists,
            (false, false) => ObjectSource::Arenas,
        }
    }

    /// A census: every object found, counted and sized. `statics` are the (start, size) of the
    /// binary's mappings, where static objects live. `GcObjects` describes the GC-list walk
    /// (empty on free-threaded builds). With `keep_objects`, every object's address too
    /// (sorted, what `list` gives) where the same pass can keep it (default builds); `None`
    /// where it cannot, and the caller lists them with `list`.
    pub fn count(
        self,
        view: &mut View,
        py: &Python,
        types: &mut TypeTable,
        statics: &[(u64, u64)],
        keep_objects: bool,
    ) -> (GcObjects, AllObjects, Census, Option<Vec<u64>>) {
        match self {
            ObjectSource::Arenas => {
                let (walked, mut all, census) = count_all(view, py, types, statics, keep_objects);
                let objects = keep_objects.then(|| std::mem::take(&mut all.objects));
                (walked, all, census, objects)
            }
            ObjectSource::Mimalloc { gc_only: false } => {
                let (all, census) = count_all_mimalloc(view, py, types, statics);
                (GcObjects::default(), all, census, None)
            }
            ObjectSource::GcLists | ObjectSource::Mimalloc { gc_only: true } => {
                let (walked, all) = collect(view, py, types, true);
                let placement = Placement {
                    blocks: &all.blocks,
                    statics,
                    malloc_outside: all.mimalloc.is_none(),
                };
                let census = super::count(view, &py.layout, types, &all.objects, &placement);
                (walked, all, census, None)
            }
        }
    }

    /// Every object's address, sorted: the input of the whole-heap analyses (always every
    /// object, whatever `gc_only` said).
    pub fn list(self, view: &mut View, py: &Python, types: &mut TypeTable) -> Vec<u64> {
        match self {
            ObjectSource::Mimalloc { .. } => find_all_mimalloc(view, py, types, false).objects,
            ObjectSource::GcLists | ObjectSource::Arenas => list_all(view, py, types).objects,
        }
    }
}

/// Every object of the target (or only the GC-tracked ones with `gc_only`), by the method this
/// build calls for; `GcObjects` describes the GC-list walk (empty on free-threaded builds).
fn collect(
    view: &mut View,
    py: &Python,
    types: &mut TypeTable,
    gc_only: bool,
) -> (GcObjects, AllObjects) {
    if py.layout.free_threaded {
        return (
            GcObjects::default(),
            find_all_mimalloc(view, py, types, gc_only),
        );
    }
    let mut phases = crate::analysis::phases::Phases::start("collect");
    let walked = gc_lists::walk(view, py, &WalkLimits::default());
    phases.lap("GC lists");
    let all = if gc_only {
        let mut objects = walked.objects.clone();
        objects.sort_unstable();
        objects.dedup();
        let mut all = AllObjects::only(objects);
        // gc.get_objects() does not list the permanent generation: say how many of the count
        // it would list and how many gc.freeze() put beyond it.
        let frozen: u64 = walked
            .lists
            .iter()
            .filter(|(label, _)| label.ends_with(".permanent"))
            .map(|(_, n)| n)
            .sum();
        let total = walked.objects.len() as u64;
        all.sources.push(format!(
            "GC lists ({total} objects: {} as gc.get_objects() lists them, {frozen} frozen by \
             gc.freeze() in the permanent generation)",
            total.saturating_sub(frozen)
        ));
        all
    } else {
        let mut all = find_all(view, py, types, &walked.objects);
        all.sources
            .insert(0, format!("GC lists ({} objects)", walked.objects.len()));
        all
    };
    (walked, all)
}

/// Free-threaded: the mimalloc heaps hold every object allocated at run time; the referent pass
/// adds static objects (builtin types, small ints, interned statics) they point to.
fn find_all_mimalloc(
    view: &mut View,
    py: &Python,
    types: &mut TypeTable,
    gc_only: bool,
) -> AllObjects {
    let l = &py.layout;
    let mut out = AllObjects::only(Vec::new());
    let plan = match mimalloc::plan(view, py) {
        Ok(p) => p,
        Err(why) => {
            out.warnings.push(format!(
                "mimalloc heaps not walked ({why}): no objects counted"
            ));
            return out;
        }
    };
    let mut refs = Referents::new(plan.regions.clone());
    let heaps = mimalloc::scan(
        view,
        l,
        types,
        plan,
        gc_only,
        |view, _types, found, info, body| {
            if !gc_only {
                refs.scan(view, l, found.obj, info, body)
            }
        },
    );
    out.warnings.extend(heaps.warnings.iter().cloned());
    describe_heaps(&mut out, &heaps.stats);
    if gc_only {
        out.objects = heaps.tracked;
        out.blocks = heaps.objects;
    } else {
        refs.drain(view, l, types);
        out.sources.push(format!(
            "referents: {} more objects outside the heaps",
            refs.found.len()
        ));
        let mut found = std::mem::take(&mut refs.found);
        found.sort_unstable();
        let block_objs: Vec<u64> = heaps.objects.iter().map(|b| b.obj).collect();
        out.objects = merge_sorted(&block_objs, &found);
        out.blocks = heaps.objects;
    }
    out.mimalloc = Some(heaps.stats);
    out
}

/// What the heap scan covered (a source line) and what it skipped (a warning).
fn describe_heaps(out: &mut AllObjects, s: &MimallocStats) {
    out.sources.push(format!(
        "mimalloc heaps: {} threads, {} pages{}{}, {} objects ({} GC-tracked) in {} blocks",
        s.threads,
        s.heaps.iter().map(|h| h.pages).sum::<u64>(),
        if s.abandoned_pages > 0 {
            format!(" ({} abandoned)", s.abandoned_pages)
        } else {
            String::new()
        },
        if s.framing == arenas::DEBUG_FRAMING {
            "; debug allocator framing"
        } else {
            ""
        },
        s.heaps.iter().map(|h| h.objects).sum::<u64>(),
        s.gc_tracked,
        s.heaps
            .iter()
            .filter(|h| h.heap != "mem")
            .map(|h| h.blocks_in_use)
            .sum::<u64>(),
    ));
    if s.bad_pages > 0 {
        out.warnings.push(format!(
            "{} mimalloc pages skipped: their headers or free lists did not validate (the \
             target was changing them)",
            s.bad_pages
        ));
    }
}

/// The complete census of a free-threaded build, tallied while the heaps are scanned (no list
/// of every object): heap objects, then the statics the referent pass finds.
fn count_all_mimalloc(
    view: &mut View,
    py: &Python,
    types: &mut TypeTable,
    statics: &[(u64, u64)],
) -> (AllObjects, Census) {
    let l = &py.layout;
    let mut phases = crate::analysis::phases::Phases::start("count_all_mimalloc");
    let mut out = AllObjects::only(Vec::new());
    let plan = match mimalloc::plan(view, py) {
        Ok(p) => p,
        Err(why) => {
            out.warnings.push(format!(
                "mimalloc heaps not walked ({why}): no objects counted"
            ));
            return (out, Census::default());
        }
    };
    let mut refs = Referents::new(plan.regions.clone());
    let mut tally = Tally::default();
    // A small window of its own, like the arena scan's: pages are read in order and what their
    // objects point to is mostly near; the session's larger cache would only grow the tool.
    let mem = view.memory();
    let mut scan_view = View::new(
        mem,
        view.spans().to_vec(),
        view.budget().min(SCAN_BUDGET * 4),
    );
    let view = &mut scan_view;
    let in_heap = Placement {
        blocks: &[],
        statics,
        malloc_outside: false,
    };
    let heaps = mimalloc::scan_keeping(
        view,
        l,
        types,
        plan,
        false,
        false,
        |view, types, found, info, body| {
            match body {
                Some(b) => tally.add_block_object(view, l, found, info, b),
                // A large block read in part: sized through the view.
                None => {
                    tally.add_object(view, l, types, found.obj, Some(found.block_size), &in_heap)
                }
            }
            refs.scan(view, l, found.obj, info, body);
        },
    );
    phases.lap("heap scan");
    refs.drain(view, l, types);
    let outside = Placement {
        blocks: &[],
        statics,
        malloc_outside: false,
    };
    let mut found = std::mem::take(&mut refs.found);
    found.sort_unstable();
    for &o in &found {
        tally.add_object(view, l, types, o, None, &outside);
    }
    let census = tally.finish(view, l, types);
    phases.lap("referents counted");
    out.warnings.extend(heaps.warnings.iter().cloned());
    describe_heaps(&mut out, &heaps.stats);
    out.sources.push(format!(
        "referents: {} more objects outside the heaps",
        found.len()
    ));
    out.mimalloc = Some(heaps.stats);
    (out, census)
}

pub struct AllObjects {
    /// Every object found, sorted by address, each once.
    pub objects: Vec<u64>,
    /// pymalloc block objects with their block sizes (for allocated bytes).
    pub blocks: Vec<BlockObject>,
    pub arenas: Option<arenas::Arenas>,
    pub scan: arenas::ScanStats,
    /// Free-threaded builds: what the mimalloc walk saw.
    pub mimalloc: Option<MimallocStats>,
    pub sources: Vec<String>,
    pub warnings: Vec<String>,
}

impl AllObjects {
    /// Just these objects (the GC-only census).
    pub fn only(objects: Vec<u64>) -> AllObjects {
        AllObjects {
            objects,
            blocks: Vec::new(),
            arenas: None,
            scan: Default::default(),
            mimalloc: None,
            sources: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// GC list nodes walked per list to count it; one longer list is counted by difference.
const LIST_BUDGET: u64 = 50_000;

/// The complete census of a default build without a list of every object: block objects are
/// tallied while the arena scan holds their bytes; only the objects outside the arenas (large
/// ones, statics) are collected and sized through the view. `AllObjects` comes back without
/// `objects` and `blocks`: only what the reports need, unless `keep_objects` asks for every
/// object's address too (sorted, as `list_all` gives it) from the same scan: a heap dump and
/// `--retained` need both, and one scan is half the reading and gives a list that matches
/// the census.
pub fn count_all(
    view: &mut View,
    py: &Python,
    types: &mut TypeTable,
    statics: &[(u64, u64)],
    keep_objects: bool,
) -> (GcObjects, AllObjects, Census) {
    let l = &py.layout;
    let mut phases = crate::analysis::phases::Phases::start("count_all");
    let mut out = AllObjects::only(Vec::new());
    let scan = ArenaScan::new(view, py, types, &mut out);
    let scanned = scan.run(
        view,
        py,
        &mut out,
        "counted",
        |(tally, listed): &mut (Tally, Vec<u64>), view, found, info, block| {
            tally.add_block_object(view, l, found, info, &block[found.at as usize..]);
            if keep_objects {
                listed.push(found.obj);
            }
        },
    );
    let mut refs = Referents::new(scan.regions.clone());
    let mut tally = Tally::default();
    let mut stats = scan.stats();
    let mut blocks: Vec<u64> = Vec::with_capacity(scanned.iter().map(|p| p.found.1.len()).sum());
    for part in scanned {
        let (found, listed) = part.found;
        blocks.extend_from_slice(&listed);
        drop(listed);
        log::debug!(
            "scan part: {} objects, {} bytes read in {} bulk reads",
            part.stats.objects,
            part.view.bytes_read,
            part.view.bulk_reads
        );
        refs.absorb(part.refs);
        tally.merge(found);
        stats.add(part.stats);
        view.stats.add(&part.view);
    }
    sort_blocks(&mut blocks);
    phases.lap("arena scan");
    // Tracked objects outside the arenas are found where the GC lists leave them: no walk of
    // every list node (a random walk over a heap larger than the view's budget would re-read
    // it chunk by chunk); the lists are then only counted.
    let outside = scan.outside(view, py, types, &mut stats, &mut refs);
    let walked = gc_lists::count_lists(view, py, outside.tracked(&stats), LIST_BUDGET);
    phases.lap("GC lists and referents");
    // Objects malloc'd outside the arenas: GC-listed ones, then what the referent pass found
    // (what it found of the former is counted once, as GC objects).
    let placement = Placement {
        blocks: &[],
        statics,
        malloc_outside: true,
    };
    let found: Vec<u64> = outside
        .found
        .iter()
        .copied()
        .filter(|o| outside.gc.binary_search(o).is_err())
        .collect();
    for &o in outside.gc.iter().chain(&found) {
        tally.add_object(view, l, types, o, None, &placement);
    }
    let census = tally.finish(view, l, types);
    phases.lap("outside objects counted");
    scan.finish(&mut out, stats, &outside.gc, found.len());
    if keep_objects {
        merge_into(&mut blocks, &merge_sorted(&outside.gc, &outside.found));
        out.objects = blocks;
    }
    (walked, out, census)
}

/// Every object of a default build as one sorted address list, found as `count_all` finds
/// them (arenas scanned in parallel through small windows, GC objects outside the arenas from
/// where the lists leave them, then the referent pass) but keeping only addresses: the input of
/// the whole-heap analyses, 8 bytes per object. (`find_all` walks every GC list node and keeps
/// each block's facts: five times the time and 40 more bytes per object.)
pub fn list_all(view: &mut View, py: &Python, types: &mut TypeTable) -> AllObjects {
    let mut phases = crate::analysis::phases::Phases::start("list_all");
    let mut out = AllObjects::only(Vec::new());
    let scan = ArenaScan::new(view, py, types, &mut out);
    let scanned = scan.run(
        view,
        py,
        &mut out,
        "listed",
        |objects: &mut Vec<u64>, _, found, _, _| {
            objects.push(found.obj);
        },
    );
    let mut refs = Referents::new(scan.regions.clone());
    let mut stats = scan.stats();
    let mut blocks: Vec<u64> = Vec::with_capacity(scanned.iter().map(|p| p.found.len()).sum());
    for part in scanned {
        blocks.extend_from_slice(&part.found);
        drop(part.found);
        refs.absorb(part.refs);
        stats.add(part.stats);
    }
    sort_blocks(&mut blocks);
    phases.lap("arena scan");
    let found = scan.outside(view, py, types, &mut stats, &mut refs);
    phases.lap("referents");
    scan.finish(&mut out, stats, &found.gc, found.found.len());
    let outside = merge_sorted(&found.gc, &found.found);
    drop(found);
    merge_into(&mut blocks, &outside);
    out.objects = blocks;
    phases.lap("merge");
    out
}

/// The block objects of every scan part, in address order and distinct. Parts are runs of
/// arenas in address order, each scanned in order: sorted already, unless the target's arena
/// table changed under us.
fn sort_blocks(blocks: &mut Vec<u64>) {
    if !blocks.is_sorted() {
        blocks.sort_unstable();
    }
    blocks.dedup();
}

/// What one thread's scan of a run of arenas found: what its visitor kept, the referents its
/// objects point to, its statistics and its reads.
struct ScanPart<S> {
    found: S,
    refs: Referents,
    stats: arenas::ScanStats,
    view: crate::process::view::ViewStats,
}

/// What `count_all` and `list_all` share: the arena table found once, scanned on several
/// cores (each thread with its own view), then the objects outside the arenas.
struct ArenaScan {
    arenas: arenas::Arenas,
    regions: Regions,
    framing: arenas::BlockFraming,
}

/// Objects outside the arenas: the GC-tracked ones (sorted) and what the referent pass found
/// beyond every scanned object (sorted; it may include some of the former).
struct Outside {
    gc: Vec<u64>,
    found: Vec<u64>,
}

impl Outside {
    /// GC-tracked objects: those the arena scan saw and those outside it.
    fn tracked(&self, stats: &arenas::ScanStats) -> u64 {
        stats.gc_tracked + self.gc.len() as u64
    }
}

impl ArenaScan {
    fn new(view: &mut View, py: &Python, types: &mut TypeTable, out: &mut AllObjects) -> Self {
        let arenas = locate_arenas(view, py, out);
        let regions = arenas.regions();
        let framing = arenas::detect_framing(view, &py.layout, types, &arenas);
        ArenaScan {
            arenas,
            regions,
            framing,
        }
    }

    /// Empty statistics with this scan's block framing.
    fn stats(&self) -> arenas::ScanStats {
        arenas::ScanStats {
            framing: self.framing,
            ..Default::default()
        }
    }

    /// Scan the arenas, one run of them per thread, each thread with its own view (a share
    /// of the budget), type table and referent pass; `visit` sees every block object with its
    /// bytes and keeps what it needs in the thread's `S`. A thread that fails is left out,
    /// with a warning that part of the heap was not `what`.
    fn run<S: Default + Send>(
        &self,
        view: &View,
        py: &Python,
        out: &mut AllObjects,
        what: &str,
        visit: impl Fn(&mut S, &mut View, BlockObject, &TypeInfo, &[u8]) + Sync,
    ) -> Vec<ScanPart<S>> {
        let parts = self.arenas.split(scan_threads(&self.arenas));
        let mem = view.memory();
        let spans = view.spans().to_vec();
        // The scan reads arenas in address order and what their objects point to is mostly
        // near: a small window per thread re-reads little and stays in the CPU's caches
        // (measured on a 4M-object heap, two threads: 4 MiB each read 292 MB, 32 MiB each
        // 278 MB; the small window was faster, with a third of the page faults) and keeps the
        // tool's memory small.
        let budget = (view.budget() / parts.len().max(1) as u64).min(SCAN_BUDGET);
        let (visit, l) = (&visit, &py.layout);
        let done: Vec<ScanPart<S>> = std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .iter()
                .map(|part| {
                    let spans = spans.clone();
                    s.spawn(move || {
                        let mut view = View::new(mem, spans, budget);
                        let mut types = TypeTable::new(py);
                        let mut refs = Referents::new(self.regions.clone());
                        let mut found = S::default();
                        let stats = arenas::scan_with(
                            &mut view,
                            l,
                            &mut types,
                            part,
                            &self.regions,
                            self.framing,
                            |view, object, info, block| {
                                visit(&mut found, view, object, info, block);
                                refs.scan_block(view, l, object, info, block);
                            },
                        );
                        ScanPart {
                            found,
                            refs,
                            stats,
                            view: view.stats,
                        }
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        if done.len() != parts.len() {
            out.warnings.push(format!(
                "an arena scan thread failed: part of the heap was not {what}"
            ));
        }
        done
    }

    /// The objects outside the arenas: GC-tracked ones from where the lists leave the arenas
    /// (`stats.gc_exits`, taken), then the referent pass over them and everything queued by
    /// the scan.
    fn outside(
        &self,
        view: &mut View,
        py: &Python,
        types: &mut TypeTable,
        stats: &mut arenas::ScanStats,
        refs: &mut Referents,
    ) -> Outside {
        let l = &py.layout;
        let exits = std::mem::take(&mut stats.gc_exits);
        let regions = &self.regions;
        let mut gc = gc_lists::outside_objects(view, py, &exits, |a| regions.contains(a));
        gc.retain(|&o| !regions.contains(o));
        gc.sort_unstable();
        gc.dedup();
        // The chains are followed only outside the arenas (whose objects the scan saw).
        for &o in &gc {
            refs.mark_known(o);
        }
        for &o in &gc {
            let Some(tp) = view.u64(o.wrapping_add(l.ob_type)) else {
                continue;
            };
            if let Some(t) = types.get(view, l, tp).cloned() {
                refs.scan(view, l, o, &t, None);
            }
        }
        refs.drain(view, l, types);
        let mut found = std::mem::take(&mut refs.found);
        found.sort_unstable();
        Outside { gc, found }
    }

    /// Say where the objects were found, and keep the arena table and statistics.
    fn finish(
        self,
        out: &mut AllObjects,
        stats: arenas::ScanStats,
        outside_gc: &[u64],
        found: usize,
    ) {
        out.sources.push(format!(
            "GC lists ({} objects: {} in arenas, {} outside)",
            stats.gc_tracked + outside_gc.len() as u64,
            stats.gc_tracked,
            outside_gc.len()
        ));
        out.sources.push(arena_source(&self.arenas, &stats));
        out.sources.push(format!(
            "referents: {found} more objects outside the arenas"
        ));
        out.scan = stats;
        out.arenas = Some(self.arenas);
    }
}

/// Threads an arena scan uses: one per core, at most `MAX_SCAN_THREADS`, and no more than
/// one per eight arenas (a small heap is not worth a thread).
fn scan_threads(arenas: &arenas::Arenas) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_SCAN_THREADS)
        .min(arenas.arenas.len().div_ceil(8).max(1))
}

/// Bytes of target memory each scanning thread's view holds at most.
const SCAN_BUDGET: u64 = 4 << 20;

/// Most threads a census scans arenas with.
const MAX_SCAN_THREADS: usize = 4;

fn arena_source(arenas: &arenas::Arenas, scan: &arenas::ScanStats) -> String {
    format!(
        "pymalloc arenas: {} arenas ({}{}), {} objects in {} blocks",
        arenas.arenas.len(),
        arenas.found_by,
        if scan.framing == arenas::DEBUG_FRAMING {
            "; debug allocator framing"
        } else {
            ""
        },
        scan.objects,
        scan.blocks_in_use
    )
}

/// The arena table, or an empty one with a warning saying what was not counted.
fn locate_arenas(view: &mut View, py: &Python, out: &mut AllObjects) -> arenas::Arenas {
    let arenas = match arenas::locate(view, py) {
        Ok(a) => a,
        Err(why) => {
            out.warnings.push(format!(
                "pymalloc arenas not scanned ({why}): only GC-tracked objects and what they \
                 reference were counted"
            ));
            arenas::Arenas::default()
        }
    };
    if arenas.arenas.is_empty() && out.warnings.is_empty() {
        out.warnings.push(
            "no pymalloc arenas in use (PYTHONMALLOC=malloc or mimalloc?): only GC-tracked \
             objects and what they reference were counted"
                .into(),
        );
    }
    arenas
}

pub fn find_all(view: &mut View, py: &Python, types: &mut TypeTable, gc: &[u64]) -> AllObjects {
    let l = &py.layout;
    let mut out = AllObjects::only(Vec::new());
    let arenas = locate_arenas(view, py, &mut out);
    let mut phases = crate::analysis::phases::Phases::start("find_all");
    let mut refs = Referents::new(arenas.regions());
    gc.iter().for_each(|&o| refs.mark_known(o));
    phases.lap("mark GC objects known");
    let mut blocks = Vec::new();
    let scan = arenas::scan(view, l, types, &arenas, |view, found, info, block| {
        blocks.push(found);
        refs.scan_block(view, l, found, info, block)
    });
    phases.lap("arena scan");
    // GC objects the arena scan did not cover (large ones, or ones it could not validate),
    // found by a merge of two sorted lists.
    let mut gc_sorted = gc.to_vec();
    gc_sorted.sort_unstable();
    gc_sorted.dedup();
    let mut in_blocks = blocks.iter().map(|b| b.obj).peekable();
    let mut uncovered = Vec::new();
    for &o in &gc_sorted {
        while in_blocks.next_if(|&b| b < o).is_some() {}
        if in_blocks.peek() != Some(&o) {
            uncovered.push(o);
        }
    }
    for o in uncovered {
        let Some(tp) = view.u64(o.wrapping_add(l.ob_type)) else {
            continue;
        };
        if let Some(t) = types.get(view, l, tp).cloned() {
            refs.scan(view, l, o, &t, None);
        }
    }
    refs.drain(view, l, types);
    phases.lap("referents");
    out.sources.push(arena_source(&arenas, &scan));
    out.sources.push(format!(
        "referents: {} more objects outside the arenas",
        refs.found.len()
    ));
    let mut found = std::mem::take(&mut refs.found);
    found.sort_unstable();
    let block_objs: Vec<u64> = blocks.iter().map(|b| b.obj).collect();
    out.objects = merge_sorted(&merge_sorted(&gc_sorted, &block_objs), &found);
    phases.lap("merge");
    out.blocks = blocks;
    out.scan = scan;
    out.arenas = Some(arenas);
    out
}

/// Union of two sorted, deduplicated lists, sorted and deduplicated.
fn merge_sorted(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// `a` becomes the union of `a` and `b` (both sorted and deduplicated), in place: `a` is the
/// long list of every block object (96 MB at 12M objects) and `b` the few outside the arenas,
/// so growing `a` and filling it from the back spares a second list of every object.
fn merge_into(a: &mut Vec<u64>, b: &[u64]) {
    let common = {
        let (mut i, mut j, mut common) = (0, 0, 0);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    common += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        common
    };
    let (mut i, mut j) = (a.len(), b.len());
    a.resize(a.len() + b.len() - common, 0);
    let mut at = a.len();
    // Everything of `b` is placed once `j` is 0; what is left of `a` is where it was.
    while j > 0 {
        at -= 1;
        if i > 0 && a[i - 1] >= b[j - 1] {
            if a[i - 1] == b[j - 1] {
                j -= 1;
            }
            a[at] = a[i - 1];
            i -= 1;
        } else {
            a[at] = b[j - 1];
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn merge_into_is_the_same_union() {
        let cases: [(&[u64], &[u64]); 6] = [
            (&[1, 3, 5], &[2, 3, 6]),
            (&[], &[2]),
            (&[2], &[]),
            (&[4, 5], &[1, 2]),
            (&[1, 2, 3], &[1, 2, 3]),
            (&[1, 9], &[2, 3, 4, 9, 10]),
        ];
        for (a, b) in cases {
            let mut merged = a.to_vec();
            super::merge_into(&mut merged, b);
            assert_eq!(merged, super::merge_sorted(a, b), "{a:?} ∪ {b:?}");
        }
    }

    #[test]
    fn merge_is_a_sorted_union() {
        assert_eq!(
            super::merge_sorted(&[1, 3, 5], &[2, 3, 6]),
            vec![1, 2, 3, 5, 6]
        );
        assert_eq!(super::merge_sorted(&[], &[2]), vec![2]);
    }
}
