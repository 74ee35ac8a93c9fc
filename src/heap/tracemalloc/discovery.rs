//! Finding tracemalloc's tables with no symbol naming them (a stripped distro build without its
//! debug file, or a 3.12+ build whose `_PyRuntime.tracemalloc` moved in a patch release).
//!
//! The table pointers are words of the binary's writable data (3.8–3.11: the file-local statics
//! `tracemalloc_traces` and `tracemalloc_domains` in `.data`/`.bss`; 3.12+: fields of
//! `_PyRuntime`). So: read that data in one piece, keep the words that point into a readable
//! mapping at a 16-aligned address (tracemalloc makes its tables with libc's malloc), read the
//! blocks they point to in batches (one `process_vm_readv` per 1024), keep those laid out as a
//! `_Py_hashtable_t` of this version's shape, and prove a traces table by its entries:
//! - each entry sits on the chain its hash selects, and its hash is `_Py_hashtable_hash_ptr` of
//!   its key (the pointer rotated right by 4 bits): a table keyed by block addresses;
//! - its value is a `trace_t` (a plausible size, a traceback pointer), whose traceback holds at
//!   most `max_nframe` frames and whose newest frame names a str object (3.15: a C string).
//!
//! tracemalloc's other tables fail that: filenames and tracebacks hash by content and have no
//! values. The domains table (3.9+) shares the traces table's compare function and allocator,
//! hashes by value (`hashtable_hash_uint`), and destroys its values with
//! `_Py_hashtable_destroy`; its entries, when it has any, map small ints to traces tables.
//!
//! Everything read is the target's, possibly mid-update: every pointer is checked against the
//! readable mappings before it is read, every count is bounded, and a candidate passes only
//! when most of its sampled entries validate.

use crate::process::{Bytes, Memory, Span};
use crate::python::tracemalloc_layout::{HashtableHeader, TableKind};

/// `process_vm_readv` takes at most IOV_MAX ranges per call.
const IOV_MAX: usize = 1024;
/// Most bytes of writable data scanned (Debian's 3.11: 1.1 MiB of .data, 0.3 MiB of .bss).
const MAX_REGION: u64 = 64 << 20;
/// Most distinct pointed-to blocks whose header is read.
const MAX_CANDIDATES: usize = 1 << 18;
/// Most tables whose entries are sampled (a real build has one of traces' shape, and a few
/// hashtables in all: this bounds what hostile data can make us read, 32 KiB of buckets each).
const MAX_TABLES: usize = 64;
/// Bucket heads read per candidate table, and entries sampled from them.
const SAMPLE_BUCKETS: u64 = 4096;
const SAMPLE_ENTRIES: usize = 32;
/// A table passes when at least this share of its sampled entries validates (the target may
/// free a block between our reads of its entry and its trace).
const MIN_VALID_PERCENT: u64 = 75;
const MAX_BUCKETS: u64 = 1 << 28;
const MAX_FRAMES: u32 = 1 << 16;
const MAX_BLOCK: u64 = 1 << 40;

/// What is known before scanning: exported symbols (`.dynsym` survives stripping) and the
/// configuration, each optional.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    pub hash_ptr: Option<u64>,
    pub compare_direct: Option<u64>,
    pub hashtable_destroy: Option<u64>,
    pub str_type: Option<u64>,
    /// Where an object's type pointer is: 8, or 24 on free-threaded builds.
    pub ob_type: u64,
    /// [start, end) of the binary's writable data (`.data` to `.bss`, `_PyRuntime`), where
    /// tracemalloc's empty traceback (a static: the stack of allocations made before any
    /// Python frame, all of a program's first ones) lives.
    pub statics: (u64, u64),
    pub max_nframe: Option<u32>,
}

/// How the tables look in this build.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub header: HashtableHeader,
    pub table: TableKind,
    pub nframe_u32: bool,
    pub filename_cstr: bool,
}

/// A traces table found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The word holding the traces table pointer.
    pub traces_ptr: u64,
    /// The word holding the domains table pointer (3.9+ statics; found beside it).
    pub domains_ptr: Option<u64>,
    /// Entries sampled from the traces table, and how many validated.
    pub sampled: u64,
    pub validated: u64,
    /// The most frames a sampled traceback held.
    pub deepest: u32,
}

/// A table's sampled entries: (sampled, validated, deepest traceback).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub sampled: u64,
    pub validated: u64,
    pub deepest: u32,
}

impl Sample {
    pub fn passes(&self) -> bool {
        self.validated > 0 && self.validated * 100 >= self.sampled * MIN_VALID_PERCENT
    }
}

/// Readable spans, sorted and merged, for checking a range before reading it.
struct Spans(Vec<Span>);

impl Spans {
    fn new(spans: &[Span]) -> Spans {
        let mut v: Vec<Span> = spans.iter().copied().filter(|s| s.end > s.start).collect();
        v.sort_by_key(|s| s.start);
        let mut merged: Vec<Span> = Vec::with_capacity(v.len());
        for s in v {
            match merged.last_mut() {
                Some(last) if last.end >= s.start => last.end = last.end.max(s.end),
                _ => merged.push(s),
            }
        }
        Spans(merged)
    }

    fn readable(&self, addr: u64, len: u64) -> bool {
        let i = self.0.partition_point(|s| s.start <= addr);
        let Some(s) = i.checked_sub(1).and_then(|i| self.0.get(i)) else {
            return false;
        };
        addr.checked_add(len).is_some_and(|e| e <= s.end)
    }
}

/// Read many small ranges: unreadable ones are refused without a syscall, the rest are read
/// IOV_MAX at a time.
fn fetch(mem: &dyn Memory, spans: &Spans, reqs: &[(u64, usize)]) -> Vec<Option<Vec<u8>>> {
    let mut out = vec![None; reqs.len()];
    let todo: Vec<usize> = (0..reqs.len())
        .filter(|&i| reqs[i].1 > 0 && spans.readable(reqs[i].0, reqs[i].1 as u64))
        .collect();
    for batch in todo.chunks(IOV_MAX) {
        let mut bufs: Vec<Vec<u8>> = batch.iter().map(|&i| vec![0u8; reqs[i].1]).collect();
        let ok = {
            let mut reads: Vec<(u64, &mut [u8])> = batch
                .iter()
                .zip(bufs.iter_mut())
                .map(|(&i, b)| (reqs[i].0, b.as_mut_slice()))
                .collect();
            mem.read_many(&mut reads)
        };
        for ((&i, b), ok) in batch.iter().zip(bufs).zip(ok) {
            if ok {
                out[i] = Some(b);
            }
        }
    }
    out
}

/// `_Py_hashtable_hash_ptr`: the pointer rotated right by 4 bits (`_Py_HashPointerRaw`).
fn hash_ptr(key: u64) -> u64 {
    key.rotate_right(4)
}

/// A header read at a candidate block.
#[derive(Debug, Clone)]
struct Header {
    addr: u64,
    raw: Vec<u8>,
}

impl Header {
    fn at(&self, off: u64) -> u64 {
        self.raw.u64_at(off as usize)
    }
}

/// The common shape of every `_Py_hashtable_t`: a power-of-two bucket count, at most as many
/// entries as buckets (tracemalloc's tables grow at a load of one half), a bucket array, and
/// the allocator's two functions.
fn hashtable_shaped(h: &Header, s: &HashtableHeader) -> bool {
    let (nb, ne, buckets) = (h.at(s.nbuckets), h.at(s.nentries), h.at(s.buckets));
    nb.is_power_of_two()
        && (8..=MAX_BUCKETS).contains(&nb)
        && ne <= nb
        && buckets != 0
        && buckets.is_multiple_of(8)
        && h.at(s.hash_func) != 0
        && h.at(s.compare_func) != 0
        && h.at(s.malloc) != 0
        && h.at(s.free) != 0
        && h.at(s.malloc) != h.at(s.free)
}

/// A traces table's header: keyed by pointers, values freed by tracemalloc (3.9+), inline
/// 16-byte `trace_t` data (3.8).
fn traces_shaped(h: &Header, shape: &Shape, known: &Known) -> bool {
    let s = &shape.header;
    if !hashtable_shaped(h, s) || h.at(s.nentries) == 0 {
        return false;
    }
    if let Some(kd) = s.key_destroy {
        if h.at(kd) != 0 {
            return false;
        }
    }
    if let Some(vd) = s.value_destroy {
        let v = h.at(vd);
        if v == 0 || Some(v) == known.hashtable_destroy {
            return false;
        }
    }
    let key_size = s.key_size.map(|k| h.at(k));
    if let Some(ks) = key_size {
        if !matches!(ks, 8 | 12 | 16) || s.data_size.map(|d| h.at(d)) != Some(16) {
            return false;
        }
    }
    // Domain-keyed 3.8 tables use their own hash (a static): the exported ones only for
    // plain pointer keys.
    if key_size.is_none_or(|ks| ks == 8) {
        if known.hash_ptr.is_some_and(|f| f != h.at(s.hash_func)) {
            return false;
        }
        if known
            .compare_direct
            .is_some_and(|f| f != h.at(s.compare_func))
        {
            return false;
        }
    }
    true
}

/// Sample up to `SAMPLE_ENTRIES` entries of each table (the heads of its first buckets):
/// (table index, bucket index, entry address).
fn sample_entries(
    mem: &dyn Memory,
    spans: &Spans,
    s: &HashtableHeader,
    tables: &[&Header],
) -> Vec<(usize, u64, u64)> {
    let reqs: Vec<(u64, usize)> = tables
        .iter()
        .map(|h| {
            let n = h.at(s.nbuckets).min(SAMPLE_BUCKETS);
            (h.at(s.buckets), (n * 8) as usize)
        })
        .collect();
    let mut out = Vec::new();
    for (t, heads) in fetch(mem, spans, &reqs).into_iter().enumerate() {
        let Some(heads) = heads else { continue };
        out.extend(
            heads
                .chunks_exact(8)
                .enumerate()
                .map(|(i, w)| (t, i as u64, w.u64_at(0)))
                .filter(|&(_, _, e)| e != 0 && e.is_multiple_of(8))
                .take(SAMPLE_ENTRIES),
        );
    }
    out
}

/// Validate sampled entries of candidate traces tables (batched across tables, stage by
/// stage): one `Sample` per table. Long: four stages (entries, traces, tracebacks, file names),
/// each one batched read of what the one before it found, read top to bottom.
fn sample_traces(
    mem: &dyn Memory,
    spans: &Spans,
    shape: &Shape,
    known: &Known,
    tables: &[&Header],
) -> Vec<Sample> {
    let s = &shape.header;
    let mut samples = vec![Sample::default(); tables.len()];
    let entries = sample_entries(mem, spans, s, tables);
    let key_size = |t: usize| s.key_size.map_or(8, |k| tables[t].at(k));
    let entry_len = |t: usize| match shape.table {
        TableKind::Pointers => 32,
        TableKind::Inline => (16 + key_size(t) + 16) as usize,
    };
    let reqs: Vec<(u64, usize)> = entries.iter().map(|&(t, _, e)| (e, entry_len(t))).collect();
    let raw = fetch(mem, spans, &reqs);
    // (table, trace_t address or inline bytes)
    let mut traces: Vec<(usize, Option<u64>, Option<[u64; 2]>)> = Vec::new();
    for (&(t, bucket, _), bytes) in entries.iter().zip(raw) {
        samples[t].sampled += 1;
        let Some(b) = bytes else { continue };
        let mask = tables[t].at(s.nbuckets) - 1;
        let (hash, key) = (b.u64_at(8), b.u64_at(16));
        let hash_ok = match key_size(t) {
            8 => hash == hash_ptr(key),
            // 3.8 domain keys: `_Py_HashPointer(ptr) ^ domain`.
            _ => hash ^ hash_ptr(key) <= u64::from(u32::MAX),
        };
        if hash & mask != bucket || !hash_ok || key == 0 {
            continue;
        }
        match shape.table {
            TableKind::Pointers => traces.push((t, Some(b.u64_at(24)), None)),
            TableKind::Inline => {
                let at = (16 + key_size(t)) as usize;
                traces.push((t, None, Some([b.u64_at(at), b.u64_at(at + 8)])));
            }
        }
    }
    let reqs: Vec<(u64, usize)> = traces
        .iter()
        .map(|&(_, p, _)| (p.unwrap_or(0), if p.is_some() { 16 } else { 0 }))
        .collect();
    let read = fetch(mem, spans, &reqs);
    // (table, traceback address)
    let mut tbs: Vec<(usize, u64)> = Vec::new();
    for ((t, _, inline), bytes) in traces.into_iter().zip(read) {
        let trace = inline.or_else(|| bytes.map(|b| [b.u64_at(0), b.u64_at(8)]));
        let Some([size, tb]) = trace else { continue };
        if size <= MAX_BLOCK && tb != 0 && tb.is_multiple_of(8) {
            tbs.push((t, tb));
        }
    }
    let reqs: Vec<(u64, usize)> = tbs.iter().map(|&(_, tb)| (tb, 24)).collect();
    let read = fetch(mem, spans, &reqs);
    let max = known.max_nframe.unwrap_or(MAX_FRAMES).max(1);
    // (table, frames, filename address)
    let mut names: Vec<(usize, u32, u64)> = Vec::new();
    for ((t, tb), bytes) in tbs.into_iter().zip(read) {
        let Some(b) = bytes else { continue };
        let nframe = if shape.nframe_u32 {
            b.u32_at(8)
        } else {
            u32::from(b.u16_at(8))
        };
        if nframe == 0 {
            // tracemalloc's empty traceback: a static, with no frame to check.
            if (known.statics.0..known.statics.1).contains(&tb) {
                samples[t].validated += 1;
            }
            continue;
        }
        if nframe <= max {
            names.push((t, nframe, b.u64_at(12)));
        }
    }
    let name_len = if shape.filename_cstr {
        8
    } else {
        known.ob_type as usize + 8
    };
    let reqs: Vec<(u64, usize)> = names.iter().map(|&(_, _, n)| (n, name_len)).collect();
    let read = fetch(mem, spans, &reqs);
    for ((t, nframe, _), bytes) in names.into_iter().zip(read) {
        let Some(b) = bytes else { continue };
        let ok = if shape.filename_cstr {
            // A file name: printable text (or its end) in its first bytes.
            b.iter()
                .take_while(|&&c| c != 0)
                .all(|&c| c >= 0x20 && c != 0x7f)
                && b[0] != 0
        } else {
            // A str object: str's type (any type when PyUnicode_Type is not known).
            let ob_type = b.u64_at(known.ob_type as usize);
            known.str_type.map_or(ob_type != 0, |s| s == ob_type)
        };
        if ok {
            samples[t].validated += 1;
            samples[t].deepest = samples[t].deepest.max(nframe);
        }
    }
    samples
}

/// Validate one traces table (a layout's table, found by offsets or symbols).
pub fn validate(
    mem: &dyn Memory,
    spans: &[Span],
    table: u64,
    shape: &Shape,
    known: &Known,
) -> Option<Sample> {
    let spans = Spans::new(spans);
    let raw = fetch(mem, &spans, &[(table, shape.header.size as usize)])
        .pop()
        .flatten()?;
    let h = Header { addr: table, raw };
    if !hashtable_shaped(&h, &shape.header) {
        return None;
    }
    sample_traces(mem, &spans, shape, known, &[&h]).pop()
}

/// Find the word of `regions` that points to tracemalloc's traces table (and, with
/// `find_domains`, the one beside it pointing to its domains table), trying one region at a
/// time in the order given (the likeliest first: reading a candidate's header costs the kernel
/// a page walk, ~6 µs, and Debian's 3.11 `.data` points to 5,000 heap blocks). Err: one line
/// saying what was scanned and what was found.
pub fn discover(
    mem: &dyn Memory,
    spans: &[Span],
    regions: &[(u64, u64)],
    shape: &Shape,
    known: &Known,
    find_domains: bool,
) -> Result<Found, String> {
    let spans = Spans::new(spans);
    let mut why = Vec::new();
    for region in regions {
        match discover_in(mem, &spans, *region, regions, shape, known, find_domains) {
            Ok(found) => return Ok(found),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

/// The blocks the words of `region` point to that could be a hashtable's header (16-aligned,
/// outside the binary's data, readable): each with the words holding it, and the bytes
/// scanned. None when the region could not be read.
fn pointers_in(
    mem: &dyn Memory,
    spans: &Spans,
    region: (u64, u64),
    regions: &[(u64, u64)],
    s: &HashtableHeader,
) -> Option<(rustc_hash::FxHashMap<u64, Vec<u64>>, u64)> {
    let in_regions = |a: u64| regions.iter().any(|&(r, n)| a >= r && a - r < n);
    // value -> the words holding it
    let mut pointed: rustc_hash::FxHashMap<u64, Vec<u64>> = Default::default();
    let (start, size) = region;
    if size > MAX_REGION || !spans.readable(start, size) {
        return None;
    }
    let mut data = vec![0u8; size as usize];
    if mem.read(start, &mut data).is_err() {
        return None;
    }
    for (i, w) in data.chunks_exact(8).enumerate() {
        let v = w.u64_at(0);
        // tracemalloc's tables come from libc's malloc: 16-aligned.
        if v != 0
            && v.is_multiple_of(16)
            && !in_regions(v)
            && spans.readable(v, s.size)
            && (pointed.len() < MAX_CANDIDATES || pointed.contains_key(&v))
        {
            pointed.entry(v).or_default().push(start + 8 * i as u64);
        }
    }
    Some((pointed, size))
}

/// The traces table among the blocks `region` points to: shaped like a hashtable, then like
/// traces, then with sampled entries that validate; exactly one, pointed to by one word. Long:
/// each stage narrows the one before, and each failure says what the stages before it saw.
fn discover_in(
    mem: &dyn Memory,
    spans: &Spans,
    region: (u64, u64),
    regions: &[(u64, u64)],
    shape: &Shape,
    known: &Known,
    find_domains: bool,
) -> Result<Found, String> {
    let began = std::time::Instant::now();
    let s = &shape.header;
    let Some((pointed, scanned)) = pointers_in(mem, spans, region, regions, s) else {
        return Err(format!("{:#x}+{:#x} could not be read", region.0, region.1));
    };
    let mut addrs: Vec<u64> = pointed.keys().copied().collect();
    addrs.sort_unstable();
    let reqs: Vec<(u64, usize)> = addrs.iter().map(|&a| (a, s.size as usize)).collect();
    let raws = fetch(mem, spans, &reqs);
    let headers: Vec<Header> = addrs
        .iter()
        .zip(raws)
        .filter_map(|(&addr, raw)| Some(Header { addr, raw: raw? }))
        .filter(|h| hashtable_shaped(h, s))
        .collect();
    let shaped = headers.len() as u64;
    let candidates: Vec<&Header> = headers
        .iter()
        .filter(|h| traces_shaped(h, shape, known))
        .take(MAX_TABLES)
        .collect();
    let samples = sample_traces(mem, spans, shape, known, &candidates);
    log::debug!(
        "tracemalloc discovery: {} KiB scanned, {} blocks pointed to, {shaped} of a hashtable's \
         shape, {} of traces' shape, samples {samples:?}, {:?}",
        scanned >> 10,
        pointed.len(),
        candidates.len(),
        began.elapsed()
    );
    let passed: Vec<(&Header, Sample)> = candidates
        .iter()
        .zip(samples)
        .filter(|(_, smp)| smp.passes())
        .map(|(h, smp)| (*h, smp))
        .collect();
    let (table, sample) = match passed.as_slice() {
        [] => {
            return Err(format!(
                "no traces table among the {} blocks of a hashtable's shape that {} KiB at \
                 {:#x} point to ({} of traces' shape, none of whose entries validated)",
                shaped,
                scanned >> 10,
                region.0,
                candidates.len()
            ))
        }
        [one] => *one,
        many => {
            return Err(format!(
                "{} tables validate as traces tables: {}",
                many.len(),
                many.iter()
                    .map(|(h, _)| format!("{:#x}", h.addr))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    };
    let words = &pointed[&table.addr];
    let [traces_ptr] = words.as_slice() else {
        return Err(format!(
            "the traces table at {:#x} is pointed to by {} words of the binary's data",
            table.addr,
            words.len()
        ));
    };
    let domains_ptr = if find_domains {
        find_domains_word(mem, spans, shape, known, &headers, table)
            .and_then(|d| {
                // The statics of one translation unit lie together: the closest word.
                pointed[&d]
                    .iter()
                    .copied()
                    .min_by_key(|w| w.abs_diff(*traces_ptr))
            })
            .filter(|w| w.abs_diff(*traces_ptr) < 4096)
    } else {
        None
    };
    Ok(Found {
        traces_ptr: *traces_ptr,
        domains_ptr,
        sampled: sample.sampled,
        validated: sample.validated,
        deepest: sample.deepest,
    })
}

/// The domains table (3.9+): the traces table's compare function and allocator, another hash
/// (`hashtable_hash_uint`), no key destructor, values destroyed by `_Py_hashtable_destroy`;
/// its entries (when any) map a domain number (its own hash) to a traces table. The header's
/// address, when one such table is pointed to from the data.
fn find_domains_word(
    mem: &dyn Memory,
    spans: &Spans,
    shape: &Shape,
    known: &Known,
    headers: &[Header],
    traces: &Header,
) -> Option<u64> {
    let s = &shape.header;
    let (kd, vd) = (s.key_destroy?, s.value_destroy?);
    let same = |h: &Header, off: u64| h.at(off) == traces.at(off);
    let shaped: Vec<&Header> = headers
        .iter()
        .filter(|h| {
            h.addr != traces.addr
                && same(h, s.compare_func)
                && same(h, s.malloc)
                && same(h, s.free)
                && !same(h, s.hash_func)
                && h.at(kd) == 0
                && h.at(vd) != 0
                && !same(h, vd)
                && known.hashtable_destroy.is_none_or(|f| f == h.at(vd))
        })
        .take(MAX_TABLES)
        .collect();
    // Entries of the non-empty ones: {next, hash, key, value} with hash == key, a u32, and
    // value a table with the traces table's hash function.
    let entries = sample_entries(mem, spans, s, &shaped);
    let reqs: Vec<(u64, usize)> = entries.iter().map(|&(_, _, e)| (e, 32)).collect();
    let read = fetch(mem, spans, &reqs);
    let mut bad = vec![false; shaped.len()];
    let mut values: Vec<(usize, u64)> = Vec::new();
    for (&(t, _, _), b) in entries.iter().zip(read) {
        match b {
            Some(b) if b.u64_at(8) == b.u64_at(16) && b.u64_at(16) <= u64::from(u32::MAX) => {
                values.push((t, b.u64_at(24)));
            }
            _ => bad[t] = true,
        }
    }
    let reqs: Vec<(u64, usize)> = values.iter().map(|&(_, v)| (v, s.size as usize)).collect();
    for ((t, _), b) in values.into_iter().zip(fetch(mem, spans, &reqs)) {
        if b.is_none_or(|b| b.u64_at(s.hash_func as usize) != traces.at(s.hash_func)) {
            bad[t] = true;
        }
    }
    let good: Vec<&Header> = shaped
        .into_iter()
        .zip(bad)
        .filter(|(_, bad)| !bad)
        .map(|(h, _)| h)
        .collect();
    match good.as_slice() {
        [one] => Some(one.addr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::memory::fake::FakeMemory;
    use crate::python::tracemalloc_layout::resolve;

    fn put(buf: &mut [u8], off: usize, v: u64) {
        buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// A 3.11-shaped process: .bss with the traces and domains pointers among decoys, a traces
    /// table of 3 entries, a filenames-like table (content hashes), an empty domains table.
    /// Long: the process is built word by word.
    #[test]
    fn finds_the_traces_table_among_decoys_and_rejects_a_wrong_hash() {
        let layout = resolve(11, &Default::default()).unwrap();
        let shape = Shape {
            header: layout.header,
            table: layout.table,
            nframe_u32: false,
            filename_cstr: false,
        };
        let (bss, heap) = (0x1000u64, 0x10_0000u64);
        let (str_type, hash_fn, cmp_fn, destroy, raw_free) =
            (0x9000, 0x7000, 0x7100, 0x7200, 0x7300);
        let mut h = vec![0u8; 0x10000];
        let header = |h: &mut Vec<u8>,
                      at: usize,
                      ne: u64,
                      nb: u64,
                      buckets: u64,
                      hf: u64,
                      cf: u64,
                      vd: u64| {
            put(h, at, ne);
            put(h, at + 8, nb);
            put(h, at + 16, buckets);
            put(h, at + 32, hf);
            put(h, at + 40, cf);
            put(h, at + 56, vd);
            put(h, at + 64, 0x5000);
            put(h, at + 72, 0x5100);
        };
        // traces table at heap+0x100, buckets at +0x200 (16), entries at +0x400..
        header(
            &mut h,
            0x100,
            3,
            16,
            heap + 0x200,
            hash_fn,
            cmp_fn,
            raw_free,
        );
        let filename = heap + 0x2000;
        put(&mut h, 0x2000, 5);
        put(&mut h, 0x2008, str_type);
        for (i, block) in [0x55_0000u64, 0x55_0010, 0x66_1230].iter().enumerate() {
            let hash = block.rotate_right(4);
            let bucket = (hash & 15) as usize;
            let entry = 0x400 + i * 0x40;
            let trace = 0x1000 + i * 0x40;
            let tb = 0x1800 + i * 0x40;
            put(&mut h, 0x200 + bucket * 8, heap + entry as u64);
            put(&mut h, entry + 8, hash);
            put(&mut h, entry + 16, *block);
            put(&mut h, entry + 24, heap + trace as u64);
            put(&mut h, trace, 64);
            put(&mut h, trace + 8, heap + tb as u64);
            put(&mut h, tb + 8, 1);
            put(&mut h, tb + 12, filename);
        }
        // a decoy with the traces shape whose entries hash by content
        header(
            &mut h,
            0x3000,
            1,
            16,
            heap + 0x3100,
            hash_fn,
            cmp_fn,
            raw_free,
        );
        put(&mut h, 0x3100, heap + 0x3200);
        put(&mut h, 0x3208, 0);
        put(&mut h, 0x3210, 0x1234_5670);
        // the domains table: empty
        header(
            &mut h,
            0x4000,
            0,
            16,
            heap + 0x4100,
            0x7400,
            cmp_fn,
            destroy,
        );
        let mut m = FakeMemory::default();
        m.map(heap, h);
        let mut b = vec![0u8; 0x100];
        put(&mut b, 0x20, heap + 0x3000);
        put(&mut b, 0x40, heap + 0x100);
        put(&mut b, 0x48, heap + 0x4000);
        put(&mut b, 0x50, heap + 0x20); // not a table
        m.map(bss, b);
        let spans = [
            Span {
                start: bss,
                end: bss + 0x100,
            },
            Span {
                start: heap,
                end: heap + 0x10000,
            },
        ];
        let known = Known {
            hash_ptr: None,
            compare_direct: None,
            str_type: Some(str_type),
            ob_type: 8,
            statics: (bss, bss + 0x100),
            max_nframe: Some(5),
            hashtable_destroy: Some(destroy),
        };
        let found = discover(&m, &spans, &[(bss, 0x100)], &shape, &known, true).unwrap();
        assert_eq!(found.traces_ptr, bss + 0x40);
        assert_eq!(found.domains_ptr, Some(bss + 0x48));
        assert_eq!((found.sampled, found.validated, found.deepest), (3, 3, 1));
        // The exported hash function disagrees: nothing found, and the error says why.
        let wrong = Known {
            hash_ptr: Some(0x1),
            ..known
        };
        let err = discover(&m, &spans, &[(bss, 0x100)], &shape, &wrong, true).unwrap_err();
        assert!(err.contains("no traces table"), "{err}");
        // The table itself validates; the decoy (content hashes) does not.
        assert!(validate(&m, &spans, heap + 0x100, &shape, &known).is_some_and(|s| s.passes()));
        assert!(!validate(&m, &spans, heap + 0x3000, &shape, &known).is_some_and(|s| s.passes()));
    }

    /// Data full of pointers into a heap of pseudo-random words: no panic, nothing found.
    #[test]
    fn hostile_data_finds_nothing() {
        let layout = resolve(8, &Default::default()).unwrap();
        let shape = Shape {
            header: layout.header,
            table: layout.table,
            nframe_u32: true,
            filename_cstr: false,
        };
        let (bss, heap) = (0x1000u64, 0x10_0000u64);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let words: Vec<u64> = (0..0x2000)
            .map(|i| match i % 4 {
                0 => heap + (next() % 0x10000) / 16 * 16,
                1 => 16 << (next() % 8),
                _ => next() % 64,
            })
            .collect();
        let mut h = vec![0u8; 0x10000];
        for (i, w) in words.iter().enumerate() {
            put(&mut h, (i * 8) % 0xfff8, *w);
        }
        let mut b = vec![0u8; 0x800];
        for i in 0..0x100 {
            put(&mut b, i * 8, heap + (next() % 0x10000) / 16 * 16);
        }
        let mut m = FakeMemory::default();
        m.map(heap, h);
        m.map(bss, b);
        let spans = [
            Span {
                start: bss,
                end: bss + 0x800,
            },
            Span {
                start: heap,
                end: heap + 0x10000,
            },
        ];
        let known = Known {
            hash_ptr: None,
            compare_direct: None,
            hashtable_destroy: None,
            str_type: None,
            ob_type: 8,
            statics: (bss, bss + 0x800),
            max_nframe: None,
        };
        assert!(discover(&m, &spans, &[(bss, 0x800)], &shape, &known, false).is_err());
    }
}
