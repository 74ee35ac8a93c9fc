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
//! (`heap::pymalloc::head_pools`): the blocks each size class handed out since the last tick, recorded
//! the same way with a fingerprint of their contents.
//!
//! Nothing here pauses the target.

use super::traced_growth::{self, Baseline, TracedGrowth};
use crate::analysis::census;
use crate::analysis::session::Session;
use crate::error::{Error, Result};
use crate::heap::gc::gc_lists::{self, WalkLimits};
use crate::heap::mimalloc::fresh_pages::{FreshBlock, FreshPages};
use crate::heap::pymalloc::head_pools::HeadPools;

/// Ticks that look for pymalloc's `usedpools` again when the first look did not find it.
const HEAD_POOL_TRIES: u64 = 20;
use crate::heap::frames::file_names::FileNames;
use crate::heap::frames::stacks::{FrameId, GilState, StackReader, StackStats, ThreadStack};
use crate::heap::gc::young::{
    self, block_fingerprint, fingerprint, separate_values, TypeBitsCache, YoungList,
    YoungWalkStats, AT_GC_HEAD, AT_OBJECT, NODE_READ, VALUES_READ,
};
use crate::heap::mimalloc::{HEAP_GC_PRE, HEAP_OBJECT};
use crate::heap::objects::sizes::getsizeof;
use crate::heap::objects::types::TypeTable;
use crate::process::target::readable_spans;
use crate::process::{Bytes, Memory, MemoryExt, View};
use crate::python::layout::flags;
use crate::python::{Layout, Python};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hasher};
use std::time::{Duration, Instant};

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
    /// The target was started with tracemalloc on: wait (up to `TRACING_WAIT`) for it to begin
    /// tracing rather than sample (a new runtime is readable before tracemalloc starts).
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

/// How long a program started with tracemalloc on may take to begin tracing.
const TRACING_WAIT: Duration = Duration::from_secs(10);

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

/// An object seen new at some tick.
#[derive(Debug, Clone, Copy)]
struct Record {
    obj: u64,
    type_ptr: u64,
    fingerprint: u64,
    stack: u32,
    /// 0: a GC object from the young list; else the bytes read at the object from its block
    /// (an untracked object alone in a pymalloc block, or any object in a free-threaded
    /// build's mimalloc block: `block_fingerprint`).
    block: u16,
}

/// An object found new at a tick, before it is charged to a stack.
#[derive(Debug, Clone, Copy)]
struct NewObject {
    obj: u64,
    type_ptr: u64,
    fingerprint: u64,
    /// As `Record::block`.
    block: u16,
}

/// What the sampler did, for the report and for tuning.
#[derive(Debug, Default, Clone, Serialize)]
pub struct AllocStats {
    pub duration_s: f64,
    pub ticks: u64,
    /// Ticks per second actually achieved (first to last tick).
    pub achieved_hz: f64,
    pub tick_us_mean: f64,
    pub tick_us_p50: f64,
    pub tick_us_p95: f64,
    pub tick_us_max: f64,
    /// Ticks that found a garbage collection running (no walk).
    pub skipped_collecting: u64,
    /// Ticks whose GC state could not be read.
    pub skipped_unreadable: u64,
    /// How the young-generation walks ended.
    #[serde(flatten)]
    pub walks: YoungWalkStats,
    /// Objects recorded, and objects dropped over `max_records`.
    pub records: u64,
    /// Of which untracked objects found in pymalloc's head pools.
    pub untracked_records: u64,
    /// What the head-pool reads saw (None: not available on this build).
    pub head_pools: Option<crate::heap::pymalloc::head_pools::HeadPoolStats>,
    /// Free-threaded builds: what the reads of each thread's head pages saw.
    pub fresh_pages: Option<crate::heap::mimalloc::fresh_pages::FreshPageStats>,
    pub dropped: u64,
    /// New objects not charged to any stack: found while the last GIL holder had released it
    /// (sleeping, blocked) and no earlier running stack of that thread was known, or head-pool
    /// blocks of an interval in which the running functions changed.
    pub unattributed: u64,
    /// Distinct addresses at the end (a later record at the same address replaces the earlier).
    pub distinct_records: u64,
    /// Survivors (and their bytes, before scaling) left out because their stack was read cut
    /// off: its chain did not end at the thread's first frame, or its outermost frame is not
    /// the thread's root (`StackJudge`). Shown, not charged to a stack that is not whole.
    pub cut_survivors: u64,
    pub cut_survivor_bytes: u64,
    /// Distinct stacks judged cut off.
    pub cut_stacks: u64,
    /// Recorded objects still alive at the end (fingerprint, type and refcount agree).
    pub survivors: u64,
    pub survivor_bytes: u64,
    /// Survivors by the failed check, for tuning the fingerprint.
    pub dead_type_changed: u64,
    pub dead_fingerprint_changed: u64,
    pub dead_unreadable: u64,
    /// GC-tracked objects and bytes at the first and last census (None: not taken).
    pub start_gc_bytes: Option<u64>,
    pub end_gc_bytes: Option<u64>,
    pub start_gc_objects: Option<u64>,
    pub end_gc_objects: Option<u64>,
    /// survivor bytes × scale = reported bytes.
    pub scale: f64,
    pub stacks: StackStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct AllocProfile {
    /// (frames root first, bytes of heap growth charged, surviving objects charged), heaviest
    /// first. Sampled: both numbers are scaled estimates (see `AllocStats::scale`); from
    /// tracemalloc: the exact bytes and blocks each traceback gained.
    pub stacks: Vec<(Vec<String>, u64, u64)>,
    /// How the stacks were found: `SAMPLED` or `TRACEMALLOC`.
    pub method: &'static str,
    pub stats: AllocStats,
    pub warnings: Vec<String>,
    /// Each file label the frames show that is not the whole path (`leaky.py`), with that
    /// path: frames read `name (label:line)` for people, machine readers find the file here.
    pub files: BTreeMap<String, String>,
    /// Per stack (same order): the sampled survivors' own (bytes, objects), before scaling.
    #[serde(skip)]
    sampled: Vec<(u64, u64)>,
}

impl AllocProfile {
    /// Sampled: the share of the sampled survivors' bytes charged to a whole stack (the rest
    /// was read on stacks cut off, or with no stack known, and is reported apart). None when
    /// exact or nothing survived.
    pub fn attributed_share(&self) -> Option<f64> {
        if self.method == TRACEMALLOC || self.stats.survivor_bytes == 0 {
            return None;
        }
        let charged: u64 = self.sampled.iter().map(|s| s.0).sum();
        Some((charged as f64 / self.stats.survivor_bytes as f64).min(1.0))
    }

    /// Scale the stacks so they add up to this growth of GC-tracked memory (a caller that
    /// measures growth itself, e.g. from its own snapshots, passes its figures here). Shares
    /// between stacks do not change.
    pub fn scale_to(&mut self, growth_bytes: u64, growth_objects: u64) {
        if self.method == TRACEMALLOC {
            return; // exact already, and in allocated bytes, not `sys.getsizeof`
        }
        // The survivors left out as cut off count in the whole the growth is shared over: the
        // stacks shown keep their own share, and the rest is reported, not spread over them.
        let (ob, bb) = self.sampled.iter().fold(
            (self.stats.cut_survivors, self.stats.cut_survivor_bytes),
            |(o, b), s| (o + s.1, b + s.0),
        );
        if bb == 0 {
            return;
        }
        let byte_scale = growth_bytes as f64 / bb as f64;
        let obj_scale = growth_objects as f64 / ob.max(1) as f64;
        for (stack, raw) in self.stacks.iter_mut().zip(&self.sampled) {
            stack.1 = (raw.0 as f64 * byte_scale).round() as u64;
            stack.2 = (raw.1 as f64 * obj_scale).round() as u64;
        }
        self.stats.scale = byte_scale;
    }

    /// Collapsed stacks, `frame;frame;frame bytes` per line, as flamegraph tools read them.
    pub fn folded(&self) -> String {
        let mut out = String::new();
        for (frames, bytes, _) in &self.stacks {
            if *bytes == 0 {
                continue;
            }
            let names: Vec<String> = frames.iter().map(|f| f.replace(';', ",")).collect();
            out.push_str(&names.join(";"));
            out.push(' ');
            out.push_str(&bytes.to_string());
            out.push('\n');
        }
        out
    }
}

/// `AllocProfile::method` of a sampled profile.
pub const SAMPLED: &str = "width = heap growth by Python stack and line: newest GC objects and \
    pymalloc's new blocks (str, bytes, int, float) sampled with the running stack, counted if \
    still alive at the end";
/// `AllocProfile::method` of a sampled profile of a free-threaded build.
pub const SAMPLED_THREADS: &str = "width = heap growth by Python stack and line: the blocks \
    each thread's mimalloc heaps handed out between two samples, charged to that thread's \
    stack, counted if still alive at the end";
/// `AllocProfile::method` of a profile read from the target's tracemalloc.
pub const TRACEMALLOC: &str = "width = bytes each allocating traceback gained between the \
    start and the end, read from the target's own tracemalloc (exact; frames as deep as its \
    N)";

/// The root frame under which stacks running the import system are shown: a program's
/// start-up (and any later import) apart from the code it imports for.
pub const IMPORTS: &str = "[imports]";

/// Put stacks that run the import system under `IMPORTS`.
fn imports_apart(stacks: &mut [(Vec<String>, u64, u64)]) {
    // Frames read `name (file:line)`.
    let import_frame = format!("({}", super::traced_growth::IMPORT_SYSTEM);
    for (frames, _, _) in stacks.iter_mut() {
        if frames.iter().any(|f| f.contains(&import_frame)) {
            frames.insert(0, IMPORTS.to_string());
        }
    }
}

pub struct AllocSampler {
    pid: i32,
    opts: SamplerOptions,
    stacks: StackReader,
    /// Type facts per type pointer, and the target's readable spans.
    types: TypeBitsCache,
    gc_state: u64,
    young_head: u64,
    records: Vec<Record>,
    /// Address → index of the latest record there.
    latest: HashMap<u64, u32>,
    stack_ids: HashMap<Vec<FrameId>, u32>,
    stack_table: Vec<Vec<FrameId>>,
    /// Which interned stacks are whole (see `StackJudge`).
    judge: StackJudge,
    /// (thread state, stack) of the last tick that found that thread holding the GIL.
    last_running: Option<(u64, u32)>,
    head_pools: Option<HeadPools>,
    /// Free-threaded builds: the pages each thread allocates from (there is no young list).
    fresh_pages: Option<FreshPages>,
    /// Free-threaded builds: per thread, the tick its stack was last read and `functions_of`
    /// it then.
    thread_functions: HashMap<u64, (u64, Option<u64>)>,
    /// The GIL at the last tick.
    last_gil: Option<GilState>,
    /// `functions_of` the stack at the last tick, and per interned stack.
    last_functions: Option<u64>,
    function_sigs: HashMap<u32, u64>,
    tick_ns: Vec<u32>,
    first_tick: Option<Instant>,
    last_tick: Option<Instant>,
    start_census: Option<(u64, u64)>,
    /// The target traces its allocations: the profile is read from its tables, exact, and
    /// ticks do nothing.
    traced: Option<TracedGrowth>,
    stats: AllocStats,
    warnings: Vec<String>,
}

impl AllocSampler {
    /// Prepare to sample: proves the stack layout on the live process and takes the first
    /// census (one walk of every GC list; the growth the profile is scaled to starts here).
    pub fn with_options(session: &Session, opts: SamplerOptions) -> Result<Self> {
        let py = &session.py;
        let pid = session.target.pid;
        let mut traced = TracedGrowth::start(session, opts.pause_traced_reads, opts.baseline);
        let since = Instant::now();
        while traced.is_err() && opts.expect_tracing && since.elapsed() < TRACING_WAIT {
            std::thread::sleep(Duration::from_millis(10));
            traced = TracedGrowth::start(session, opts.pause_traced_reads, opts.baseline);
        }
        let mut warnings = Vec::new();
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
        let traced = traced.ok();
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
        let gc_state = py.gc_state(interp);
        let mut sampler = AllocSampler {
            pid,
            opts,
            stacks: StackReader::new(py),
            types: TypeBitsCache::new(pid, TypeTable::new(py), session.target.spans()),
            gc_state,
            // Generation 0 (3.14.0–3.14.4: `young`) is the first list; `resolve` proved its head.
            young_head: gc_state + py.layout.gc.generations,
            records: Vec::new(),
            latest: HashMap::new(),
            stack_ids: HashMap::new(),
            stack_table: Vec::new(),
            judge: StackJudge::default(),
            last_running: None,
            head_pools: None,
            fresh_pages,
            thread_functions: HashMap::new(),
            last_gil: None,
            last_functions: None,
            function_sigs: HashMap::new(),
            tick_ns: Vec::new(),
            first_tick: None,
            last_tick: None,
            start_census: None,
            traced,
            stats: AllocStats::default(),
            warnings,
        };
        if sampler.traced.is_some() {
            // Exact: nothing to sample, and no GC lists needed (free-threaded builds too).
            return Ok(sampler);
        }
        let mem = &session.target.memory;
        let mut view = View::new(mem, sampler.types.spans.clone(), 0);
        sampler.head_pools = HeadPools::locate(&mut view, py);
        drop(view);
        let threads = sampler.stacks.all_threads(mem, py);
        if !threads.iter().any(|t| !t.frames.is_empty()) {
            sampler.warnings.push(
                "no thread showed a Python frame when sampling started: stacks may be empty".into(),
            );
        }
        if opts.census {
            sampler.start_census = sampler.gc_census(session);
        }
        Ok(sampler)
    }

    /// One tick: read the newest young objects and charge the new ones to the stack of the
    /// thread that took the GIL last. A few small reads; never pauses the target.
    pub fn sample(&mut self, session: &Session) {
        let start = Instant::now();
        self.first_tick.get_or_insert(start);
        self.stats.ticks += 1;
        if self.stats.ticks.is_multiple_of(CODE_CACHE_TICKS) {
            self.stacks.forget_code_addresses();
        }
        match self.traced.as_mut() {
            Some(t) => t.tick(session),
            None if self.fresh_pages.is_some() => self.tick_threads(session),
            None => self.tick(session),
        }
        let end = Instant::now();
        self.last_tick = Some(end);
        self.tick_ns
            .push((end - start).as_nanos().min(u32::MAX as u128) as u32);
    }

    fn tick(&mut self, session: &Session) {
        let py = &session.py;
        let mem = &session.target.memory;
        // Found without a symbol (stripped 3.8–3.11) only once pools are in use: a program
        // recorded from its start may not be there yet at the first look. A few more tries.
        if self.head_pools.is_none() && self.stats.ticks <= HEAD_POOL_TRIES {
            let mut view = View::new(mem, self.types.spans.clone(), 0);
            self.head_pools = HeadPools::locate(&mut view, py);
        }
        let untracked = self.untracked_blocks(mem, &py.layout);
        let g = py.layout.gc;
        // One read covers `collecting` and the young head's `_gc_prev` (the newest node).
        let head_off = g.generations;
        let lo = head_off.min(g.collecting);
        let hi = (head_off + 16).max(g.collecting + 4);
        let Ok(state) = mem.bytes(self.gc_state.wrapping_add(lo), (hi - lo) as usize) else {
            self.stats.skipped_unreadable += 1;
            return;
        };
        let mut fresh = if state.u32_at((g.collecting - lo) as usize) != 0 {
            self.stats.skipped_collecting += 1;
            Vec::new()
        } else {
            let newest = state.u64_at((head_off - lo + 8) as usize) & !3;
            self.walk_young(session, newest)
        };
        if fresh.is_empty() && untracked.is_empty() && self.head_pools.is_none() {
            return;
        }
        let gil = self.stacks.gil_state(mem, py);
        let stack = self.current_stack(mem, py, gil);
        // Head pools give every block since the last tick, not only the newest: they are
        // charged only when one thread held the GIL all along (its holder and count of
        // switches did not change: no other thread can have allocated) and ran the same
        // functions at both ticks (lines may differ); else the interval's work is split between
        // threads or callers and counted as unattributed.
        let functions = stack.map(|s| self.functions_of(s));
        let alone = gil.is_some_and(|g| {
            self.last_gil
                .is_some_and(|l| l.holder == g.holder && l.switches == g.switches)
        });
        self.last_gil = gil;
        let stable = alone && functions.is_some() && functions == self.last_functions;
        self.last_functions = functions;
        if stable {
            fresh.extend(untracked);
        } else {
            self.stats.unattributed += untracked.len() as u64;
            self.forget_reused(&untracked);
        }
        if fresh.is_empty() {
            return;
        }
        let Some(stack) = stack else {
            self.stats.unattributed += fresh.len() as u64;
            self.forget_reused(&fresh);
            return;
        };
        self.keep(fresh, stack);
    }

    /// Record new objects as made by `stack`.
    fn keep(&mut self, fresh: Vec<NewObject>, stack: u32) {
        for NewObject {
            obj,
            type_ptr,
            fingerprint,
            block,
        } in fresh
        {
            if self.records.len() >= self.opts.max_records {
                self.stats.dropped += 1;
                continue;
            }
            let idx = self.records.len() as u32;
            self.records.push(Record {
                obj,
                type_ptr,
                fingerprint,
                stack,
                block,
            });
            self.latest.insert(obj, idx);
            self.stats.records += 1;
            if block > 0 {
                self.stats.untracked_records += 1;
            }
        }
    }

    /// Free-threaded builds: the objects each thread's heaps handed out since the last tick,
    /// charged to that thread's stack when the same functions ran at both ticks (the blocks
    /// are every allocation of the interval, not only the newest: as for head pools, an
    /// interval in which the running functions changed is counted as unattributed).
    fn tick_threads(&mut self, session: &Session) {
        let py = &session.py;
        let mem = &session.target.memory;
        let mut blocks = Vec::new();
        if let Some(f) = self.fresh_pages.as_mut() {
            let mut view = View::new(mem, self.types.spans.clone(), 0);
            f.new_blocks(&mut view, py, &mut blocks);
        }
        if blocks.is_empty() {
            return;
        }
        let mut by_thread: HashMap<u64, Vec<NewObject>> = HashMap::new();
        for b in blocks {
            if let Some(n) = self.object_in_fresh_block(mem, &py.layout, &b) {
                by_thread.entry(b.thread).or_default().push(n);
            }
        }
        let tick = self.stats.ticks;
        for (thread, fresh) in by_thread {
            let stack = self.thread_stack(mem, py, thread);
            let functions = stack.map(|s| self.functions_of(s));
            let before = self.thread_functions.insert(thread, (tick, functions));
            let stable = functions.is_some() && before == Some((tick - 1, functions));
            match stack {
                Some(stack) if stable => self.keep(fresh, stack),
                _ => {
                    self.stats.unattributed += fresh.len() as u64;
                    self.forget_reused(&fresh);
                }
            }
        }
        // Threads that exited.
        self.thread_functions.retain(|_, (t, _)| *t + 2 > tick);
    }

    /// The object a new mimalloc block holds, if one validates: a real type with a live
    /// refcount, in the heap its type belongs in (GC objects in the GC heaps, after the
    /// pre-header in the one that has them).
    fn object_in_fresh_block(
        &mut self,
        mem: &dyn Memory,
        l: &Layout,
        b: &FreshBlock,
    ) -> Option<NewObject> {
        let pre = if b.heap == HEAP_GC_PRE { 16 } else { 0 };
        let o = b.bytes.get(pre..)?;
        if (o.len() as u64) < l.header_size || !l.live_refcount(o) {
            return None;
        }
        let type_ptr = o.u64_at(l.ob_type as usize);
        let bits = self.types.get(mem, l, type_ptr)?;
        if (bits.flags & flags::HAVE_GC != 0) == (b.heap == HEAP_OBJECT) {
            return None;
        }
        let o = &o[..o.len().min(u16::MAX as usize)];
        Some(NewObject {
            obj: b.addr + pre as u64,
            type_ptr,
            fingerprint: block_fingerprint(o, l, bits),
            block: o.len() as u16,
        })
    }

    /// A thread's stack now, interned (None: no Python frame, or unreadable).
    fn thread_stack(&mut self, mem: &dyn Memory, py: &Python, thread: u64) -> Option<u32> {
        let t = self.stacks.thread(mem, py, thread)?;
        if t.frames.is_empty() {
            return None;
        }
        Some(self.intern_thread_stack(t))
    }

    /// Intern a thread's stack and tell the judge how it was read.
    fn intern_thread_stack(&mut self, t: ThreadStack) -> u32 {
        let root = t.frames.last().map(|&f| {
            let f = self.stacks.frame(f);
            (
                (f.name.clone(), f.file.clone(), f.first_line),
                f.name == "<module>",
            )
        });
        let (tstate, whole) = (t.tstate, t.whole);
        let id = self.intern_stack(t.frames);
        self.judge.saw(id, tstate, whole, root);
        id
    }

    fn intern_stack(&mut self, frames: Vec<FrameId>) -> u32 {
        match self.stack_ids.get(&frames) {
            Some(&id) => id,
            None => {
                let id = self.stack_table.len() as u32;
                self.stack_table.push(frames.clone());
                self.stack_ids.insert(frames, id);
                id
            }
        }
    }

    /// Untracked objects pymalloc handed out since the last tick. GC objects among the new
    /// blocks are the young walk's.
    fn untracked_blocks(&mut self, mem: &dyn Memory, l: &Layout) -> Vec<NewObject> {
        let mut blocks = Vec::new();
        match self.head_pools.as_mut() {
            Some(h) => h.new_blocks(mem, &mut blocks),
            None => return Vec::new(),
        }
        let mut out = Vec::new();
        for b in blocks {
            if b.bytes.len() < l.header_size as usize || !l.live_refcount(&b.bytes) {
                continue;
            }
            let type_ptr = b.bytes.u64_at(l.ob_type as usize);
            let Some(bits) = self.types.get(mem, l, type_ptr) else {
                continue;
            };
            if bits.flags & flags::HAVE_GC != 0 {
                continue;
            }
            out.push(NewObject {
                obj: b.addr,
                type_ptr,
                fingerprint: block_fingerprint(&b.bytes, l, bits),
                block: b.bytes.len() as u16,
            });
        }
        out
    }

    /// New GC objects, newest first (`heap::gc::young::walk`), stopping at one recorded before.
    fn walk_young(&mut self, session: &Session, newest: u64) -> Vec<NewObject> {
        let (latest, records) = (&self.latest, &self.records);
        let known = |obj: u64, type_ptr: u64, fp: u64| {
            latest.get(&obj).is_some_and(|&i| {
                let r = records[i as usize];
                r.type_ptr == type_ptr && r.fingerprint == fp
            })
        };
        young::walk(
            &session.target.memory,
            &session.py.layout,
            YoungList {
                head: self.young_head,
                max_walk: self.opts.max_walk,
            },
            newest,
            &mut self.types,
            known,
            &mut self.stats.walks,
        )
        .into_iter()
        .map(|y| NewObject {
            obj: y.obj,
            type_ptr: y.type_ptr,
            fingerprint: y.fingerprint,
            block: 0,
        })
        .collect()
    }

    /// The stack to charge the newest objects to, interned: that of the thread that took the
    /// GIL last, while it holds it. A thread that has released the GIL (asleep, blocked in I/O)
    /// made its newest objects before it stopped, not in the sleep: those go to the stack it
    /// had at the last tick that found it running, or to none.
    fn current_stack(
        &mut self,
        mem: &dyn Memory,
        py: &Python,
        gil: Option<GilState>,
    ) -> Option<u32> {
        let gil = gil.map(|g| (g.holder, g.locked));
        let holder = gil.map(|(h, _)| h).or_else(|| {
            // No GIL holder recorded: the first thread listed will do.
            self.stacks.thread_states(mem, py).first().copied()
        });
        let running = gil.is_none_or(|(_, locked)| locked);
        if !running {
            return self
                .last_running
                .filter(|(ts, _)| Some(*ts) == holder)
                .map(|(_, id)| id);
        }
        let id = match holder.and_then(|ts| self.stacks.thread(mem, py, ts)) {
            Some(t) => self.intern_thread_stack(t),
            None => self.intern_stack(Vec::new()),
        };
        if let Some(ts) = holder {
            self.last_running = Some((ts, id));
        }
        Some(id)
    }

    /// New objects not recorded still prove that what was recorded at their addresses died:
    /// kept, such a record passes the final check whenever the new object looks the same (the
    /// same int or str made again by the next request).
    fn forget_reused(&mut self, fresh: &[NewObject]) {
        for n in fresh {
            self.latest.remove(&n.obj);
        }
    }

    /// The functions of an interned stack, whatever lines they are at.
    fn functions_of(&mut self, stack: u32) -> u64 {
        if let Some(&h) = self.function_sigs.get(&stack) {
            return h;
        }
        let mut h = DefaultHasher::new();
        for &f in &self.stack_table[stack as usize] {
            let f = self.stacks.frame(f);
            h.write(f.name.as_bytes());
            h.write(f.file.as_bytes());
            h.write_u32(f.first_line);
        }
        let h = h.finish();
        self.function_sigs.insert(stack, h);
        h
    }

    /// Objects and bytes on every GC list now, or None when the walk failed. Pauses the target
    /// only when the session was asked to (`--pause`).
    fn gc_census(&mut self, session: &Session) -> Option<(u64, u64)> {
        let mem = &session.target.memory;
        let spans = readable_spans(self.pid).ok()?;
        self.types.set_spans(spans.clone());
        let _paused = session.pause().ok()?;
        let mut view = View::new(mem, spans, session.opts.cache_budget);
        if self.fresh_pages.is_some() {
            // Free-threaded: no lists; every object of the heaps, counted as the census does
            // (what the sampled survivors, untracked ones included, are part of).
            let source = census::complete::ObjectSource::for_build(&session.py, false);
            let (_, _, c, _) =
                source.count(&mut view, &session.py, &mut self.types.types, &[], false);
            return Some((c.objects, c.bytes));
        }
        // The target keeps allocating, and lists change under any walk: a young list cut
        // short costs a few hundred objects; an older one is cut where collections append
        // survivors (its tail), so the count comes out low. Taken as an estimate, said so.
        let limits = WalkLimits {
            collecting_wait: Duration::from_millis(200),
            attempts: 3,
            ..WalkLimits::default()
        };
        let walked = gc_lists::walk(&mut view, &session.py, &limits);
        if walked.broken.iter().any(|list| !list.ends_with(".gen0")) {
            self.warnings.push(format!(
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
            &mut view,
            &session.py.layout,
            &mut self.types.types,
            &objects,
            &placement,
        );
        Some((c.objects, c.bytes))
    }

    /// Decide which records survived, size them, and charge their stacks (or, when the
    /// target traces, read what each traceback gained).
    pub fn finish(mut self, session: &mut Session) -> AllocProfile {
        if let Some(traced) = self.traced.take() {
            return self.finish_traced(traced, session);
        }
        let mem = &session.target.memory;
        let l = &session.py.layout;
        self.types.refresh_spans();
        let mut view = View::new(mem, self.types.spans.clone(), session.opts.cache_budget);
        self.stats.distinct_records = self.latest.len() as u64;
        // Per stack: (bytes, objects) of sampled survivors.
        let mut per_stack: HashMap<u32, (u64, u64)> = HashMap::new();
        let latest: Vec<u32> = self.latest.values().copied().collect();
        for idx in latest {
            let r = self.records[idx as usize];
            let Some(bytes) = self.survivor_size(&mut view, l, &r) else {
                continue;
            };
            self.stats.survivors += 1;
            self.stats.survivor_bytes += bytes;
            if !self.judge.is_whole(r.stack) {
                self.stats.cut_survivors += 1;
                self.stats.cut_survivor_bytes += bytes;
                continue;
            }
            let e = per_stack.entry(r.stack).or_default();
            e.0 += bytes;
            e.1 += 1;
        }
        drop(view);

        let end_census = if self.opts.census {
            self.gc_census(session)
        } else {
            None
        };
        self.stats.start_gc_objects = self.start_census.map(|c| c.0);
        self.stats.start_gc_bytes = self.start_census.map(|c| c.1);
        self.stats.end_gc_objects = end_census.map(|c| c.0);
        self.stats.end_gc_bytes = end_census.map(|c| c.1);
        let mut names = self.file_names(session);
        let mut stacks: Vec<(Vec<String>, u64, u64)> = per_stack
            .into_iter()
            .map(|(sid, (bytes, objects))| {
                let frames = &self.stack_table[sid as usize];
                // Innermost first in the reader; root first here.
                let mut names: Vec<String> = frames
                    .iter()
                    .rev()
                    .map(|&f| names.frame(self.stacks.frame(f)))
                    .collect();
                if names.is_empty() {
                    names.push("<no Python frame>".into());
                }
                (names, bytes, objects)
            })
            .collect();
        stacks.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        imports_apart(&mut stacks);
        self.stats.scale = 1.0;
        self.finish_timing();
        self.stats.stacks = self.stacks.stats;
        self.stats.head_pools = self.head_pools.as_ref().map(|h| h.stats);
        if self.head_pools.is_none() && self.fresh_pages.is_none() && self.traced.is_none() {
            self.warnings.push(
                "pymalloc's list of pools in use (usedpools) was not found: objects the GC does \
                 not track (str, bytes, int, float) are not sampled"
                    .into(),
            );
        }
        self.stats.fresh_pages = self.fresh_pages.as_ref().map(|f| f.stats);
        self.stats.cut_stacks = self.judge.cut_count();
        if self.stats.cut_survivors > 0 {
            self.warnings.push(format!(
                "{:.1}% of the sampled growth ({} of {} surviving objects) was on stacks read cut \
                 off (the thread ran on while its stack was read: the chain did not reach the \
                 thread's first frame) and is left out; the stacks shown are whole",
                100.0 * self.stats.cut_survivor_bytes as f64
                    / self.stats.survivor_bytes.max(1) as f64,
                self.stats.cut_survivors,
                self.stats.survivors
            ));
        }
        let mut profile = AllocProfile {
            sampled: stacks.iter().map(|s| (s.1, s.2)).collect(),
            stacks,
            method: if self.fresh_pages.is_some() {
                SAMPLED_THREADS
            } else {
                SAMPLED
            },
            stats: self.stats,
            warnings: self.warnings,
            files: names.full_paths(),
        };
        match (self.start_census, end_census) {
            (Some(a), Some(b)) if b.1 > a.1 => {
                profile.scale_to(b.1 - a.1, b.0.saturating_sub(a.0));
            }
            (Some(_), Some(_)) => profile.warnings.push(
                "the GC-tracked heap did not grow: bytes are the sampled survivors' own, unscaled"
                    .into(),
            ),
            _ if self.opts.census => profile.warnings.push(
                "heap growth could not be measured: bytes are the sampled survivors' own, \
                 unscaled"
                    .into(),
            ),
            _ => {}
        }
        profile
    }

    fn finish_traced(mut self, traced: TracedGrowth, session: &mut Session) -> AllocProfile {
        self.finish_timing();
        let max_nframe = traced.max_nframe;
        let traced_paused = traced.pauses();
        let mut names = self.file_names(session);
        let mut stacks = match traced.finish(session, &mut names) {
            Ok((stacks, skipped)) => {
                if skipped > 0 {
                    self.warnings.push(format!(
                        "{skipped} traced blocks skipped at the end: their trace could not be \
                         read (the target was changing them)"
                    ));
                }
                stacks
            }
            Err(why) => {
                self.warnings.push(format!(
                    "the target's tracemalloc could not be read at the end ({why}): no \
                     allocation profile"
                ));
                Vec::new()
            }
        };
        if !traced_paused {
            self.warnings.push(
                "tracemalloc's tables were read while the target ran: a busy target's \
                 short-lived blocks can read as growth (--pause stops it for the two reads)"
                    .into(),
            );
        }
        if max_nframe == 1 {
            self.warnings.push(
                "tracemalloc keeps one frame per allocation here: each stack is only the line \
                 that allocated (PYTHONTRACEMALLOC=16 keeps the callers too)"
                    .into(),
            );
        }
        // A stack tracemalloc cut at its frame limit stands under its own root, never as if
        // its innermost frames were where its thread began (issue 33: Django's request stacks
        // are deeper than 16 frames); the share is said.
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
            self.warnings.push(format!(
                "{:.1}% of the traced growth is on stacks deeper than tracemalloc's {max_nframe} \
                 frames: they stand under \"{}\" (--tracemalloc with more frames keeps their \
                 threads' roots)",
                100.0 * cut as f64 / total.max(1) as f64,
                traced_growth::CUT_OFF_ROOT
            ));
        }
        imports_apart(&mut stacks);
        self.stats.scale = 1.0;
        AllocProfile {
            sampled: stacks.iter().map(|s| (s.1, s.2)).collect(),
            stacks,
            method: TRACEMALLOC,
            stats: self.stats,
            warnings: self.warnings,
            files: names.full_paths(),
        }
    }

    /// How frames name their files: relative to the target's `sys.path`, read now (a program
    /// may extend it while it runs; the end is when the frames are named).
    fn file_names(&self, session: &mut Session) -> FileNames {
        if self.opts.full_filenames {
            return FileNames::whole();
        }
        let mut view = View::new(&session.target.memory, session.target.spans(), 0);
        FileNames::of_target(&mut view, &session.py, &mut session.types, false)
    }

    /// `sys.getsizeof` of a recorded object when it is still the object we recorded.
    fn survivor_size(&mut self, view: &mut View, l: &Layout, r: &Record) -> Option<u64> {
        if r.block > 0 {
            return self.untracked_survivor_size(view, l, r);
        }
        let node = r.obj - 16;
        let Ok(b) = view.get(node - AT_GC_HEAD as u64, NODE_READ) else {
            self.stats.dead_unreadable += 1;
            return None;
        };
        let b = b.to_vec();
        let refcnt = b.u64_at(AT_OBJECT) as u32;
        let type_ptr = b.u64_at(AT_OBJECT + l.ob_type as usize);
        // A freed object has refcount 0 (its memory may not be reused yet).
        if type_ptr != r.type_ptr || refcnt == 0 {
            self.stats.dead_type_changed += 1;
            return None;
        }
        let bits = self.types.known(r.type_ptr)?;
        let values = separate_values(&b, l, bits)
            .and_then(|v| view.get(v, VALUES_READ).ok())
            .map(<[u8]>::to_vec);
        if fingerprint(&b, values.as_deref(), l, bits) != r.fingerprint {
            self.stats.dead_fingerprint_changed += 1;
            return None;
        }
        let info = self.types.types.get(view, l, r.type_ptr)?.clone();
        Some(getsizeof(view, l, r.obj, &info).unwrap_or(info.basicsize + info.preheader))
    }

    /// `survivor_size` of an object recorded from a head pool.
    fn untracked_survivor_size(&mut self, view: &mut View, l: &Layout, r: &Record) -> Option<u64> {
        let Ok(b) = view.get(r.obj, r.block as usize) else {
            self.stats.dead_unreadable += 1;
            return None;
        };
        let b = b.to_vec();
        if b.u64_at(l.ob_type as usize) != r.type_ptr || !l.live_refcount(&b) {
            self.stats.dead_type_changed += 1;
            return None;
        }
        let bits = self.types.known(r.type_ptr)?;
        if block_fingerprint(&b, l, bits) != r.fingerprint {
            self.stats.dead_fingerprint_changed += 1;
            return None;
        }
        let info = self.types.types.get(view, l, r.type_ptr)?.clone();
        Some(getsizeof(view, l, r.obj, &info).unwrap_or(info.basicsize))
    }

    fn finish_timing(&mut self) {
        let s = &mut self.stats;
        if let (Some(a), Some(b)) = (self.first_tick, self.last_tick) {
            s.duration_s = (b - a).as_secs_f64();
            if s.ticks > 1 && s.duration_s > 0.0 {
                s.achieved_hz = (s.ticks - 1) as f64 / s.duration_s;
            }
        }
        let mut us: Vec<f64> = self.tick_ns.iter().map(|&n| n as f64 / 1000.0).collect();
        if us.is_empty() {
            return;
        }
        us.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| us[((us.len() - 1) as f64 * p).round() as usize];
        s.tick_us_mean = us.iter().sum::<f64>() / us.len() as f64;
        s.tick_us_p50 = pct(0.5);
        s.tick_us_p95 = pct(0.95);
        s.tick_us_max = pct(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_that_import_are_shown_apart() {
        let mut stacks = vec![
            (
                vec![
                    "<module> (app.py:1)".into(),
                    "_find_and_load (<frozen importlib._bootstrap>:1176)".into(),
                    "<module> (lib.py:3)".into(),
                ],
                10,
                1,
            ),
            (vec!["main (app.py:9)".into()], 20, 2),
        ];
        imports_apart(&mut stacks);
        assert_eq!(stacks[0].0[0], IMPORTS);
        assert_eq!(stacks[1].0, vec!["main (app.py:9)".to_string()]);
    }

    #[test]
    fn scaling_keeps_shares_and_hits_the_growth() {
        let mut p = AllocProfile {
            stacks: vec![
                (vec!["main (a.py:1)".into(), "leak (a.py:5)".into()], 300, 3),
                (vec!["main (a.py:1)".into()], 100, 1),
            ],
            method: SAMPLED,
            stats: AllocStats::default(),
            warnings: vec![],
            files: BTreeMap::new(),
            sampled: vec![(300, 3), (100, 1)],
        };
        p.scale_to(4000, 40);
        assert_eq!((p.stacks[0].1, p.stacks[1].1), (3000, 1000));
        assert_eq!((p.stacks[0].2, p.stacks[1].2), (30, 10));
        assert_eq!(
            p.folded(),
            "main (a.py:1);leak (a.py:5) 3000\nmain (a.py:1) 1000\n"
        );
    }
}

/// A function's identity: (name, file, first line).
type FuncKey = (String, String, u32);

/// Which sampled stacks are whole, from the thread's first frame to the one running (issue 33:
/// a Django process's flamegraph had 27% of its bytes on stacks of one to three frames with no
/// thread at the root). A stack read while its thread runs on can come out cut: the frame
/// chain changes under the reader, and ends early on a link that cannot be read, or on a
/// frame that has just been left (a generator's frame, whose link is cleared when it
/// suspends). So a stack is whole when its chain ended on a null link at least once, and its
/// outermost frame is its thread's root: the outermost function of most of that thread's
/// samples (a thread's first frame does not change while it runs), or module code (an import
/// started from C, or the program's own `<module>`, is a root of its own).
#[derive(Default)]
struct StackJudge {
    /// Per interned stack: ended on a null link at least once; its thread; its root.
    stacks: HashMap<u32, JudgedStack>,
    /// Per thread state: how many whole-read samples each root function had.
    roots: HashMap<u64, HashMap<FuncKey, u64>>,
}

struct JudgedStack {
    null_ended: bool,
    tstate: u64,
    root: Option<(FuncKey, bool)>,
}

impl StackJudge {
    fn saw(&mut self, id: u32, tstate: u64, whole: bool, root: Option<(FuncKey, bool)>) {
        if whole {
            if let Some((key, _)) = &root {
                *self
                    .roots
                    .entry(tstate)
                    .or_default()
                    .entry(key.clone())
                    .or_default() += 1;
            }
        }
        let e = self.stacks.entry(id).or_insert(JudgedStack {
            null_ended: false,
            tstate,
            root,
        });
        e.null_ended |= whole;
    }

    /// The root most of a thread's whole-read samples had.
    fn thread_root(&self, tstate: u64) -> Option<&FuncKey> {
        self.roots
            .get(&tstate)?
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| k)
    }

    /// Whole, or never judged (an empty stack: `<no Python frame>`).
    fn is_whole(&self, id: u32) -> bool {
        let Some(s) = self.stacks.get(&id) else {
            return true;
        };
        let Some((key, module)) = &s.root else {
            return true;
        };
        s.null_ended && (*module || self.thread_root(s.tstate) == Some(key))
    }

    fn cut_count(&self) -> u64 {
        self.stacks.keys().filter(|&&id| !self.is_whole(id)).count() as u64
    }
}

#[cfg(test)]
mod judge_tests {
    use super::*;

    fn key(name: &str) -> FuncKey {
        (name.to_string(), "/app/x.py".to_string(), 1)
    }

    #[test]
    fn a_stack_is_whole_from_its_threads_root() {
        let mut j = StackJudge::default();
        // Thread 1: most samples start at `run`; one read came out as `as_sql` alone.
        for _ in 0..5 {
            j.saw(0, 1, true, Some((key("run"), false)));
        }
        j.saw(1, 1, true, Some((key("as_sql"), false)));
        // A chain that broke on an unreadable link.
        j.saw(2, 1, false, Some((key("run"), false)));
        // Module code is a root of its own (an import started from C).
        j.saw(3, 1, true, Some((key("<module>"), true)));
        // Another thread, its own root.
        j.saw(4, 2, true, Some((key("serve"), false)));
        assert!(j.is_whole(0));
        assert!(!j.is_whole(1));
        assert!(!j.is_whole(2));
        assert!(j.is_whole(3));
        assert!(j.is_whole(4));
        assert_eq!(j.cut_count(), 2);
        // Read whole once, the same frames are whole.
        j.saw(2, 1, true, Some((key("run"), false)));
        assert!(j.is_whole(2));
    }
}
