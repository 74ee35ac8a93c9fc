//! tracemalloc's traces, read from outside: every live block the target's tracemalloc tracks,
//! with its size and the Python stack that allocated it. Exact, like
//! `tracemalloc.take_snapshot()`, for a target started with `PYTHONTRACEMALLOC=N` or
//! `-X tracemalloc=N` (only allocations made after tracing started are known).
//!
//! Where the tables live and how they look changes with the version:
//! 3.8–3.11 keep them in static variables found only in `.symtab` (the binary's own or its
//! build-id debug file); 3.12+ keep them in `_PyRuntime.tracemalloc`. 3.8's hashtable stores
//! keys and values inline; 3.9+ stores pointers. 3.15 stores file names as C strings. These
//! facts are data in [`TraceLayout`], resolved once; the walker below has no version checks.

pub mod discovery;

use crate::heap::objects::pyobj;
use crate::heap::tracemalloc::discovery::{discover, validate, Known, Shape};
use crate::process::{Bytes, Memory, MemoryExt, Span, View};
use crate::python::Python;
use anyhow::{anyhow, bail, Context, Result};
use rustc_hash::FxHashMap as HashMap;

/// Bounds against a corrupted or moving table.
const MAX_BUCKETS: u64 = 1 << 28;
const MAX_ENTRIES: u64 = 1 << 28;
const MAX_DOMAINS: u64 = 1 << 12;
const MAX_FRAMES: u64 = 1 << 16;
const MAX_FILENAME: u64 = 4096;
/// No single block is this large: a size above it was read from a trace being freed.
const MAX_BLOCK: u64 = 1 << 40;

pub use crate::python::tracemalloc_layout::TableKind;
use crate::python::tracemalloc_layout::{Location, TracemallocLayout};

/// Where tracemalloc's state is in this process, and how to read it.
#[derive(Debug, Clone)]
pub struct TraceLayout {
    /// `struct _PyTraceMalloc_Config`: initialized@0, tracing@4, max_nframe@8.
    pub config: u64,
    /// Address of the `_Py_hashtable_t *` of domain 0's traces.
    pub traces_ptr: u64,
    /// Address of the `_Py_hashtable_t *` mapping other domains to their traces (3.9+).
    pub domains_ptr: Option<u64>,
    pub table: TableKind,
    /// 3.8 stores `traceback_t.nframe` as an int, later versions as a u16.
    pub nframe_u32: bool,
    /// 3.15 stores `frame_t.filename` as a UTF-8 C string, earlier versions as a str object.
    pub filename_cstr: bool,
    /// How the state was found, for the report.
    pub found_by: String,
}

/// `read`'s error when the target is not tracing: not a failure for callers that only use the
/// traces when they exist (`record` then samples), so they can tell it from a table that did
/// not validate.
#[derive(Debug, thiserror::Error)]
#[error(
    "tracemalloc is not tracing in this process: start it with PYTHONTRACEMALLOC=N or \
     -X tracemalloc=N (N frames per allocation, e.g. 25)"
)]
pub struct NotTracing;

/// Set (to anything) to find the tables without their symbols even where symbols name them:
/// how the tests prove discovery on builds whose symbols tell the truth to compare with.
pub const DISCOVER_ENV: &str = "PYMEMSPY_TRACEMALLOC_DISCOVER";

/// Read and check `struct _PyTraceMalloc_Config` {initialized, tracing, max_nframe}:
/// (tracing, max_nframe), None when it does not read as one.
fn read_config(mem: &dyn Memory, addr: u64) -> Option<(bool, u32)> {
    let mut b = [0u8; 12];
    mem.read(addr, &mut b).ok()?;
    let (initialized, tracing, max_nframe) = (b.u32_at(0), b.u32_at(4), b.u32_at(8));
    (initialized <= 2 && tracing <= 1 && u64::from(max_nframe) <= MAX_FRAMES)
        .then_some((tracing == 1, max_nframe))
}

/// Find tracemalloc's state, or say why it cannot be found (one line, actionable).
///
/// Where symbols or the version's offsets name the tables, that is used, and on 3.12+ proved
/// by sampling the traces table's entries when the target traces. Where no symbol names them
/// (a stripped 3.8–3.11 without its debug file), or the 3.12+ offsets do not validate, the
/// tables are found in the binary's writable data (`tracemalloc_discovery`): they exist only
/// while tracing, so a target that does not trace gets `NotTracing` here.
pub fn locate(mem: &dyn Memory, spans: &[Span], py: &Python) -> Result<TraceLayout> {
    let v = py.layout.version;
    let facts = py
        .tracemalloc
        .as_ref()
        .with_context(|| format!("no tracemalloc layout known for Python {v}"))?;
    let sym = |n: &str| py.binary.symbol(n);
    let cx = Locating {
        mem,
        spans,
        py,
        facts,
        shape: Shape {
            header: facts.header,
            table: facts.table,
            nframe_u32: facts.nframe_u32,
            filename_cstr: facts.filename_cstr,
        },
        known: Known {
            hash_ptr: sym("_Py_hashtable_hash_ptr"),
            compare_direct: sym("_Py_hashtable_compare_direct"),
            hashtable_destroy: sym("_Py_hashtable_destroy"),
            str_type: sym("PyUnicode_Type"),
            ob_type: py.layout.ob_type,
            statics: statics(py),
            max_nframe: None,
        },
        forced: std::env::var_os(DISCOVER_ENV).is_some(),
        fix: format!(
            "install its debug symbols (Debian: python3.{}-dbg) or pass --debug-dir",
            v.minor
        ),
    };
    match facts.location {
        Location::Statics { domains } => cx.in_statics(domains),
        Location::Runtime {
            offset,
            from_dwarf,
            traces,
            domains,
        } => cx.in_runtime(offset, from_dwarf, traces, domains),
    }
}

/// What `locate` knows before it looks, for the way its version keeps the tables.
struct Locating<'a> {
    mem: &'a dyn Memory,
    spans: &'a [Span],
    py: &'a Python,
    facts: &'a TracemallocLayout,
    shape: Shape,
    known: Known,
    /// Found without symbols even where they name the tables (`DISCOVER_ENV`).
    forced: bool,
    /// What would help, for the errors.
    fix: String,
}

impl Locating<'_> {
    fn layout(
        &self,
        config: u64,
        traces_ptr: u64,
        domains_ptr: Option<u64>,
        found_by: String,
    ) -> TraceLayout {
        TraceLayout {
            config,
            traces_ptr,
            domains_ptr,
            table: self.facts.table,
            nframe_u32: self.facts.nframe_u32,
            filename_cstr: self.facts.filename_cstr,
            found_by,
        }
    }

    /// 3.8–3.11: the tables are file-local statics, named by symbols or found in the binary's
    /// data.
    fn in_statics(mut self, domains: bool) -> Result<TraceLayout> {
        let (mem, spans, py) = (self.mem, self.spans, self.py);
        let (v, path, fix) = (py.layout.version, &py.binary.path, &self.fix);
        let sym = |n: &str| py.binary.symbol(n);
        let Some(config) = sym("_Py_tracemalloc_config") else {
            bail!(
                "Python {v}'s tracemalloc configuration (_Py_tracemalloc_config) is not \
                 exported by {path}: {fix}"
            );
        };
        if let (false, Some(traces)) = (self.forced, sym("tracemalloc_traces")) {
            let domains = if domains {
                Some(sym("tracemalloc_domains").context("no tracemalloc_domains symbol")?)
            } else {
                None
            };
            return Ok(self.layout(
                config,
                traces,
                domains,
                "symbols tracemalloc_traces, _Py_tracemalloc_config".to_string(),
            ));
        }
        let (tracing, max_nframe) = read_config(mem, config).with_context(|| {
            format!("tracemalloc's configuration at {config:#x} does not validate")
        })?;
        if !tracing {
            return Err(NotTracing.into());
        }
        self.known.max_nframe = Some(max_nframe);
        // `.bss` first: the table pointers are statics initialized to NULL.
        let regions: Vec<(u64, u64)> = py.binary.data_sections.iter().rev().copied().collect();
        let found =
            discover(mem, spans, &regions, &self.shape, &self.known, domains).map_err(|why| {
                anyhow!(
                    "tracemalloc is tracing, but no symbol of {path} names its tables and they \
                     were not found in its data ({why}): {fix}"
                )
            })?;
        let found_by = format!(
            "found without symbols: traces table pointer at {:#x}{} in {}'s data \
             ({}/{} sampled traces validated)",
            found.traces_ptr,
            found
                .domains_ptr
                .map(|d| format!(", domains at {d:#x}"))
                .unwrap_or_default(),
            path.rsplit('/').next().unwrap_or(path),
            found.validated,
            found.sampled
        );
        Ok(self.layout(config, found.traces_ptr, found.domains_ptr, found_by))
    }

    /// 3.12+: the state is a member of `_PyRuntime` at `offset` (from DWARF or the table),
    /// proved by sampling the traces table, else found among `_PyRuntime`'s words. Long: the
    /// three steps in the order tried, since each error says what the steps before it saw.
    fn in_runtime(
        mut self,
        offset: u64,
        from_dwarf: bool,
        traces: u64,
        domains: u64,
    ) -> Result<TraceLayout> {
        let (mem, spans, py, forced) = (self.mem, self.spans, self.py, self.forced);
        let state = py.runtime.wrapping_add(offset);
        let how = if from_dwarf {
            "DWARF"
        } else {
            "built-in table"
        };
        let named = self.layout(
            state,
            state.wrapping_add(traces),
            Some(state.wrapping_add(domains)),
            format!("_PyRuntime.tracemalloc at +{offset} ({how})"),
        );
        let config = read_config(mem, state);
        if config.is_some_and(|(tracing, _)| !tracing) {
            // Not tracing (its tables hold nothing to prove them by): `read` says so.
            return Ok(named);
        }
        let mut last_sample = None;
        if let (false, Some((_, max_nframe))) = (forced, config) {
            self.known.max_nframe = Some(max_nframe);
            // The table is read while the target's threads add and remove traces: a
            // rehash between reading the header and reading the entries (a churning
            // program crosses the resize thresholds many times a second) frees the bucket
            // array under us, so one failed sample is not proof; a few are.
            for attempt in 0..VALIDATE_ATTEMPTS {
                if attempt > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                let table = mem.u64(state.wrapping_add(traces)).unwrap_or(0);
                last_sample = validate(mem, spans, table, &self.shape, &self.known);
                if last_sample.is_some_and(|s| s.passes()) {
                    return Ok(named);
                }
            }
        }
        // The offsets do not hold on this build (a patch release moved the field): the
        // traces table pointer among the words of `_PyRuntime`, the state around it.
        self.known.max_nframe = None;
        let region = py
            .binary
            .runtime_section
            .unwrap_or((py.runtime, RUNTIME_SCAN));
        let found =
            discover(mem, spans, &[region], &self.shape, &self.known, false).map_err(|why| {
                anyhow!(
                    "tracemalloc's state does not validate at _PyRuntime+{offset} ({how}{}) \
                     and its traces table was not found in _PyRuntime ({why}): pass --debug-dir \
                     with this build's debug file",
                    last_sample.map_or(String::new(), |s| format!(
                        ": {} of {} sampled traces validated, {VALIDATE_ATTEMPTS} times",
                        s.validated, s.sampled
                    ))
                )
            })?;
        let state = found.traces_ptr.wrapping_sub(traces);
        match read_config(mem, state) {
            Some((true, max_nframe)) if found.deepest <= max_nframe.max(1) => {}
            _ => bail!(
                "a traces table was found in _PyRuntime at {:#x}, but no tracing \
                 configuration {traces} bytes before it: pass --debug-dir with this \
                 build's debug file",
                found.traces_ptr
            ),
        }
        let at = state.wrapping_sub(py.runtime);
        Ok(self.layout(
            state,
            found.traces_ptr,
            Some(state.wrapping_add(domains)),
            format!(
                "_PyRuntime.tracemalloc at +{at} (found without symbols{}; {}/{} sampled \
                 traces validated)",
                if forced {
                    String::new()
                } else {
                    format!(": +{offset} from the {how} did not validate")
                },
                found.validated,
                found.sampled
            ),
        ))
    }
}

/// From the start of the binary's writable data to its end (`.data`, `.bss`, `.PyRuntime`).
fn statics(py: &Python) -> (u64, u64) {
    let b = &py.binary;
    let all = b.data_sections.iter().chain(b.runtime_section.as_ref());
    let lo = all.clone().map(|r| r.0).min().unwrap_or(py.runtime);
    let hi = all
        .map(|r| r.0.saturating_add(r.1))
        .max()
        .unwrap_or(py.runtime);
    (lo, hi.max(py.runtime.saturating_add(RUNTIME_SCAN)))
}

/// Samples of the traces table at its expected place before it is declared moved.
const VALIDATE_ATTEMPTS: u32 = 10;

/// Bytes of `_PyRuntime` scanned when its section is not known (3.12–3.15: 280–350 KiB).
const RUNTIME_SCAN: u64 = 512 << 10;

/// tracemalloc's configuration in the target.
#[derive(Debug, Clone, Copy)]
pub struct TraceConfig {
    pub max_nframe: u32,
}

/// One frame: file name and line (most recent first in a traceback, as tracemalloc keeps them).
pub type Frame = (String, u32);

/// The file of the frame `read` adds, outermost, to a traceback that tracemalloc cut at its
/// frame limit (`total_nframe` above `nframe`, 3.9+); its line is how many outer frames were
/// not kept. Such a stack does not begin at its thread's root, and must not read as if it did.
pub const CUT_OFF: &str = "<cut off>";

/// Traces grouped by their traceback (tracemalloc interns tracebacks: one per distinct stack).
#[derive(Debug, Clone, Default)]
pub struct Traces {
    pub config: Option<TraceConfig>,
    /// (frames most recent first, total bytes, blocks).
    pub stacks: Vec<(Vec<Frame>, u64, u64)>,
    pub blocks: u64,
    pub bytes: u64,
    /// Entries whose trace or traceback could not be read (the target was changing them).
    pub skipped: u64,
    /// Domains other than 0 (PyTraceMalloc_Track users, e.g. numpy) that were included.
    pub domains: u64,
}

/// Read every trace. Fails only when tracemalloc is not tracing or its state does not validate.
pub fn read(view: &mut View, py: &Python, tl: &TraceLayout) -> Result<Traces> {
    let cfg = view
        .get(tl.config, 12)
        .ok()
        .context("cannot read tracemalloc's configuration")?;
    let (initialized, tracing, max_nframe) = (cfg.u32_at(0), cfg.u32_at(4), cfg.u32_at(8));
    if initialized > 2 || tracing > 1 || u64::from(max_nframe) > MAX_FRAMES {
        bail!(
            "tracemalloc's configuration does not validate (initialized {initialized}, tracing \
             {tracing}, max_nframe {max_nframe}): layout mismatch ({})",
            tl.found_by
        );
    }
    if tracing == 0 {
        return Err(NotTracing.into());
    }
    let mut traces = Traces {
        config: Some(TraceConfig { max_nframe }),
        ..Traces::default()
    };
    // (size, traceback pointer) per block, from domain 0 and every other domain.
    let mut by_traceback: HashMap<u64, (u64, u64)> = HashMap::default();
    let mut add = |size: u64, tb: u64, traces: &mut Traces| {
        // A trace read while the target freed or reused it: implausible size or pointer.
        if size > MAX_BLOCK || tb == 0 || !tb.is_multiple_of(8) {
            traces.skipped += 1;
            return;
        }
        let e = by_traceback.entry(tb).or_default();
        e.0 = e.0.saturating_add(size);
        e.1 += 1;
        traces.blocks += 1;
        traces.bytes = traces.bytes.saturating_add(size);
    };
    let table = view.u64(tl.traces_ptr).unwrap_or(0);
    walk_traces(view, tl, table, &mut traces, &mut add)?;
    if let Some(domains_ptr) = tl.domains_ptr {
        let domains = view.u64(domains_ptr).unwrap_or(0);
        let mut tables = Vec::new();
        if domains != 0 {
            walk_table(view, domains, MAX_DOMAINS, |_, _key, value| {
                tables.push(value);
                true
            })?;
        }
        for t in tables {
            traces.domains += 1;
            walk_traces(view, tl, t, &mut traces, &mut add)?;
        }
    }
    let mut names: HashMap<u64, String> = HashMap::default();
    for (tb, (bytes, blocks)) in by_traceback {
        match read_traceback(view, py, tl, tb, max_nframe, &mut names) {
            // What pymemspy's own staged script allocated (`record --tracemalloc` on a running
            // process) is not the program's.
            Some(frames)
                if frames
                    .iter()
                    .any(|(f, _)| crate::live_tracing::staging::is_staged_script(f)) =>
            {
                traces.blocks = traces.blocks.saturating_sub(blocks);
                traces.bytes = traces.bytes.saturating_sub(bytes);
            }
            Some(frames) => traces.stacks.push((frames, bytes, blocks)),
            None => traces.skipped += blocks,
        }
    }
    traces
        .stacks
        .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(traces)
}

/// Every (block size, traceback) of one traces table.
fn walk_traces(
    view: &mut View,
    tl: &TraceLayout,
    table: u64,
    traces: &mut Traces,
    add: &mut impl FnMut(u64, u64, &mut Traces),
) -> Result<()> {
    if table == 0 {
        return Ok(());
    }
    match tl.table {
        TableKind::Pointers => {
            let mut found = Vec::new();
            walk_table(view, table, MAX_ENTRIES, |_, _key, value| {
                found.push(value);
                true
            })?;
            for trace in found {
                match view.get(trace, 16) {
                    Ok(b) => {
                        let (size, tb) = (b.u64_at(0), b.u64_at(8));
                        add(size, tb, traces);
                    }
                    Err(_) => traces.skipped += 1,
                }
            }
        }
        TableKind::Inline => {
            let (entries, key_size) = inline_entries(view, table)?;
            for e in entries {
                match view.get(e.wrapping_add(16 + key_size), 16) {
                    Ok(b) => {
                        let (size, tb) = (b.u64_at(0), b.u64_at(8));
                        add(size, tb, traces);
                    }
                    Err(_) => traces.skipped += 1,
                }
            }
        }
    }
    Ok(())
}

/// The entries of 3.8's traces table (keys and values inline) and its key size.
fn inline_entries(view: &mut View, table: u64) -> Result<(Vec<u64>, u64)> {
    let Ok(h) = view.get(table, 40) else {
        bail!("cannot read tracemalloc's traces table");
    };
    let (nbuckets, buckets, key_size) = (h.u64_at(0), h.u64_at(16), h.u64_at(24));
    if nbuckets > MAX_BUCKETS || key_size > 16 {
        bail!("tracemalloc's traces table does not validate");
    }
    let mut entries = Vec::new();
    walk_chains(view, nbuckets, buckets, MAX_ENTRIES, |entry| {
        entries.push(entry);
        true
    })?;
    Ok((entries, key_size))
}

/// Visit `(entry, key, value)` of a 3.9+ `_Py_hashtable_t`.
fn walk_table(
    view: &mut View,
    table: u64,
    max: u64,
    mut f: impl FnMut(u64, u64, u64) -> bool,
) -> Result<()> {
    let Ok(h) = view.get(table, 24) else {
        bail!("cannot read a tracemalloc hashtable");
    };
    let (nentries, nbuckets, buckets) = (h.u64_at(0), h.u64_at(8), h.u64_at(16));
    if nbuckets > MAX_BUCKETS || nentries > max {
        bail!("a tracemalloc hashtable does not validate");
    }
    let mut entries = Vec::new();
    walk_chains(
        view,
        nbuckets,
        buckets,
        nentries.saturating_mul(2).max(64),
        |e| {
            entries.push(e);
            true
        },
    )?;
    for e in entries {
        if let Ok(b) = view.get(e.wrapping_add(16), 16) {
            let (key, value) = (b.u64_at(0), b.u64_at(8));
            if !f(e, key, value) {
                break;
            }
        }
    }
    Ok(())
}

/// Every entry on the bucket chains (a bucket holds the first entry; each entry's first word is
/// the next). Bounded by `max` entries in total, and each chain by that too.
fn walk_chains(
    view: &mut View,
    nbuckets: u64,
    buckets: u64,
    max: u64,
    mut f: impl FnMut(u64) -> bool,
) -> Result<()> {
    let bytes = nbuckets.checked_mul(8).context("bucket array overflows")?;
    // A table the target resizes or edits while we read it: an entry is taken only on the
    // chain its own hash puts it on (a freed entry reused on another chain, or a link read
    // from a moment before an edit, is not), and once.
    let mask = nbuckets.wrapping_sub(1);
    let mut taken = rustc_hash::FxHashSet::default();
    if nbuckets == 0 {
        return Ok(());
    }
    if !view.is_readable(buckets, bytes) {
        bail!("tracemalloc's bucket array is not readable");
    }
    let mem = view.memory();
    let heads = mem
        .bytes(buckets, bytes as usize)
        .map_err(|_| anyhow!("cannot read tracemalloc's bucket array"))?;
    let mut seen = 0u64;
    for i in 0..nbuckets as usize {
        let mut e = heads.u64_at(i * 8);
        while e != 0 {
            seen += 1;
            if seen > max {
                return Ok(());
            }
            let on_its_chain = view
                .u64(e.wrapping_add(8))
                .is_some_and(|hash| !nbuckets.is_power_of_two() || hash & mask == i as u64);
            if on_its_chain && taken.insert(e) && !f(e) {
                return Ok(());
            }
            e = match view.u64(e) {
                Some(n) => n,
                None => break,
            };
        }
    }
    Ok(())
}

/// The frames of one traceback, most recent first.
fn read_traceback(
    view: &mut View,
    py: &Python,
    tl: &TraceLayout,
    tb: u64,
    max_nframe: u32,
    names: &mut HashMap<u64, String>,
) -> Option<Vec<Frame>> {
    let head = view.get(tb, 12).ok()?;
    // 3.9+: u16 nframe, then u16 total_nframe (the frames the stack had); 3.8: an int nframe.
    let (nframe, total) = if tl.nframe_u32 {
        (u64::from(head.u32_at(8)), 0)
    } else {
        (
            u64::from(head.u32_at(8) & 0xffff),
            u64::from(head.u32_at(8) >> 16),
        )
    };
    // A traceback never holds more frames than the configuration allows (nor fewer than none).
    if nframe > u64::from(max_nframe.max(1)) {
        return None;
    }
    let raw = view
        .get(tb.wrapping_add(12), (nframe * 12) as usize)
        .ok()?
        .to_vec();
    if nframe == 0 {
        // tracemalloc's own "no frame" traceback, shown by Python as <unknown>:0.
        return Some(vec![("<unknown>".into(), 0)]);
    }
    let mut frames = Vec::with_capacity(nframe as usize);
    for f in raw.chunks_exact(12) {
        let (name_ptr, line) = (f.u64_at(0), f.u32_at(8));
        let name = match names.get(&name_ptr) {
            Some(n) => n.clone(),
            None => {
                let n = if tl.filename_cstr {
                    view.cstr(name_ptr, MAX_FILENAME as usize)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                } else {
                    pyobj::read_str(view, &py.layout, name_ptr, MAX_FILENAME)
                }
                .unwrap_or_else(|| "<unknown>".into());
                names.insert(name_ptr, n.clone());
                n
            }
        };
        frames.push((name, line));
    }
    if total > nframe {
        frames.push((CUT_OFF.into(), (total - nframe) as u32));
    }
    Some(frames)
}

/// Where each traced block of domain 0 (Python's own allocators) was allocated: the block's
/// address to its traceback, and the tracebacks' innermost frames once read. For `why`'s
/// "allocated at" beside each path.
#[derive(Debug, Default)]
pub struct BlockSites {
    /// Block address → (traceback pointer, block size).
    blocks: HashMap<u64, (u64, u64)>,
    /// Traceback pointer → innermost frame ("file:line"), read on first use.
    sites: HashMap<u64, Option<Frame>>,
    max_nframe: u32,
    names: HashMap<u64, String>,
    /// Entries the table's header counted when it was read.
    pub expected: u64,
}

impl BlockSites {
    /// Read every block of the traces table (no traceback yet: those are read for the objects
    /// asked about).
    pub fn read(view: &mut View, tl: &TraceLayout) -> Result<BlockSites> {
        let cfg = view
            .get(tl.config, 12)
            .ok()
            .context("cannot read tracemalloc's configuration")?;
        let (tracing, max_nframe) = (cfg.u32_at(4), cfg.u32_at(8));
        if tracing != 1 || u64::from(max_nframe) > MAX_FRAMES {
            return Err(NotTracing.into());
        }
        let mut out = BlockSites {
            max_nframe,
            ..BlockSites::default()
        };
        let table = view.u64(tl.traces_ptr).unwrap_or(0);
        if table == 0 {
            return Ok(out);
        }
        // The entry count: first word of 3.9+'s table, second of 3.8's.
        let count_at = match tl.table {
            TableKind::Pointers => 0,
            TableKind::Inline => 8,
        };
        out.expected = view.u64(table.wrapping_add(count_at)).unwrap_or(0);
        match tl.table {
            TableKind::Pointers => {
                let mut found = Vec::new();
                walk_table(view, table, MAX_ENTRIES, |_, key, value| {
                    found.push((key, value));
                    true
                })?;
                let listed = found.len();
                for (block, trace) in found {
                    if let Ok(b) = view.get(trace, 16) {
                        out.blocks.insert(block, (b.u64_at(8), b.u64_at(0)));
                    }
                }
                log::debug!(
                    "traces table: {} entries by its header, {listed} on its chains, {} traces read",
                    out.expected,
                    out.blocks.len()
                );
            }
            TableKind::Inline => {
                let (entries, key_size) = inline_entries(view, table)?;
                for e in entries {
                    // The key is the pointer, after the domain when the key holds both.
                    let key_at = e.wrapping_add(16 + key_size.saturating_sub(8));
                    if let (Some(block), Ok(b)) = (
                        view.u64(key_at),
                        view.get(e.wrapping_add(16 + key_size), 16),
                    ) {
                        out.blocks.insert(block, (b.u64_at(8), b.u64_at(0)));
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The innermost frame of the allocation of the object at `obj`: its block starts at the
    /// object, or before it by the GC header (16 bytes) and the pre-header of 3.12+ objects
    /// with a managed dict (16 more). None: not traced (made before tracing began).
    pub fn site_of(
        &mut self,
        view: &mut View,
        py: &Python,
        tl: &TraceLayout,
        obj: u64,
    ) -> Option<Frame> {
        // The block must also reach past the object's start (a small block just before an
        // untraced object is not its block).
        // Every pre-header size a build puts before an object: none, a GC head or the managed
        // slots (16), or both (32).
        let tb = [0u64, 16, 32].iter().find_map(|d| {
            let block = obj.wrapping_sub(*d);
            let (tb, size) = self.blocks.get(&block).copied()?;
            (block.wrapping_add(size) > obj).then_some(tb)
        })?;
        if let Some(site) = self.sites.get(&tb) {
            return site.clone();
        }
        let site = read_traceback(view, py, tl, tb, self.max_nframe, &mut self.names)
            .and_then(|frames| frames.into_iter().next());
        self.sites.insert(tb, site.clone());
        site
    }
}
