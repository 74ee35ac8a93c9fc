//! Heap dump files: `snapshot --format heap` writes one, `--heap FILE` reads it back.
//!
//! Layout: a 16-byte magic `PYMEMSPY-HEAP\0\0\0`, the format version (u32, little-endian),
//! then one zstd frame holding a postcard-encoded `DumpFile`. Integer arrays are postcard
//! varints; addresses are stored as deltas from the previous object, edge targets as deltas
//! from the previous target (the first from the object itself), so most take 1-3 bytes before
//! compression. No object values are kept: only names (see `heap_graph`).

use super::addr_set;
use super::heap_graph::{
    push_size, EdgeLabel, FrameRootEntry, FrameStats, Graph, NO_LABEL, NO_TYPE,
};
use super::ids::Ids;
use crate::analysis::census::snapshot::{self, Snapshot};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const MAGIC: &[u8; 16] = b"PYMEMSPY-HEAP\0\0\0";
/// 3: type edges are no longer stored (made from each object's type), `class_label` added;
/// 4: allocation sites; 5: the whole path of each shortened file label; 6: a held frame's
/// locals named (`EdgeLabel::Local`, the enum's last variant, so formats 3–5 read the same).
pub const VERSION: u32 = 6;
/// The oldest format still read (3: no allocation sites).
const OLDEST: u32 = 3;
/// zstd level: 3 is its default, fast enough to keep the dump within the census's time.
const LEVEL: i32 = 3;

/// A heap dump: the graph, and the census of the same moment with the memory report.
pub struct HeapDump {
    pub pid: i32,
    pub python_version: String,
    pub snapshot: Snapshot,
    pub graph: Graph,
    /// Where objects were allocated, when the target traced (format 4+).
    pub sites: Option<DumpSites>,
    /// Each shortened file label its frames show, with the whole path (format 5+): the JSON,
    /// speedscope and pprof files of a dump then say what the live process's say.
    pub files: std::collections::BTreeMap<String, String>,
}

/// Allocation sites of a dump's objects: each site's text once, and (object index, site index)
/// for the objects traced, by index. Written after the graph, so format 3 files (without it)
/// still read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DumpSites {
    pub names: Vec<String>,
    pub objects: Vec<(u32, u32)>,
}

impl DumpSites {
    pub fn from_sites(sites: &super::why::Sites) -> DumpSites {
        let mut ids: rustc_hash::FxHashMap<&str, u32> = Default::default();
        let mut out = DumpSites::default();
        let mut objects: Vec<(u32, u32)> = sites
            .iter()
            .map(|(&i, name)| {
                let id = *ids.entry(name).or_insert_with(|| {
                    out.names.push(name.to_string());
                    out.names.len() as u32 - 1
                });
                (i, id)
            })
            .collect();
        objects.sort_unstable();
        out.objects = objects;
        out
    }

    /// As `why` takes them (sites out of range are dropped: a corrupt file).
    pub fn to_sites(&self) -> super::why::Sites {
        let names: Vec<std::rc::Rc<str>> = self.names.iter().map(|n| n.as_str().into()).collect();
        self.objects
            .iter()
            .filter_map(|&(i, s)| Some((i, names.get(s as usize)?.clone())))
            .collect()
    }
}

/// What is encoded after the header (format `VERSION`), as it is read back: the integer
/// arrays go straight into the graph's forms as they are read (see `SeqInto`).
#[derive(Deserialize)]
struct DumpFile {
    pid: i32,
    python_version: String,
    /// The census, memory report, collector and coverage sections, as `--format json` writes
    /// them.
    snapshot_json: String,
    names: Vec<String>,
    labels: Vec<EdgeLabel>,
    /// The label of the type edges every typed object has first (not stored per object).
    class_label: u32,
    types: Vec<(u64, String)>,
    /// Read back as the addresses (the deltas summed).
    #[serde(deserialize_with = "addresses")]
    object_delta: addr_set::Builder,
    /// Type index + 1 (0: the type did not validate); read back as the index or `NO_TYPE`.
    #[serde(deserialize_with = "type_indexes")]
    object_type: Ids,
    #[serde(deserialize_with = "sizes")]
    object_bytes: Sizes,
    /// (object index, native bytes), by index: the objects that own memory outside themselves.
    object_native: Vec<(u32, u64)>,
    /// Read back as `Graph::edge_start` (0, then where each object's edges end).
    #[serde(deserialize_with = "edge_ends")]
    edge_count: Vec<u32>,
    /// Written as i64; read back modulo 2^32, which is exact for u32 targets (the target is
    /// the previous one plus the delta, wrapping) and half the memory.
    #[serde(deserialize_with = "wrapped_deltas")]
    edge_delta: Vec<u32>,
    #[serde(deserialize_with = "label_ids")]
    edge_label: Ids,
    modules: Vec<(u32, String)>,
    frame_roots: Vec<FrameRootEntry>,
    frame_stats: FrameStats,
}

/// Object sizes in the graph's form (`Graph::bytes` and `big`).
struct Sizes {
    bytes: Vec<u16>,
    big: Vec<(u32, u64)>,
}

/// A sequence of `T` read into a `Vec<U>` element by element through `push`, its length
/// reserved once: serde's own `Vec` grows by doubling (up to twice a graph array's memory
/// while a dump is read) and would need a second array to narrow or sum the values.
struct SeqInto<T, U, F> {
    push: F,
    _t: std::marker::PhantomData<(T, U)>,
}

/// What a sequence is read into: room is made for the length the file gives, once.
trait Sink: Default {
    fn reserve(&mut self, n: usize) -> std::result::Result<(), std::collections::TryReserveError>;
}

impl<U> Sink for Vec<U> {
    fn reserve(&mut self, n: usize) -> std::result::Result<(), std::collections::TryReserveError> {
        self.try_reserve_exact(n)
    }
}

impl Sink for Ids {
    fn reserve(&mut self, n: usize) -> std::result::Result<(), std::collections::TryReserveError> {
        self.try_reserve_exact(n)
    }
}

/// Addresses are held one page at a time: nothing to reserve.
impl Sink for addr_set::Builder {
    fn reserve(&mut self, _: usize) -> std::result::Result<(), std::collections::TryReserveError> {
        Ok(())
    }
}

fn seq_into<'de, D, T, U>(d: D, push: impl FnMut(&mut U, T)) -> std::result::Result<U, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
    U: Sink,
{
    d.deserialize_seq(SeqInto {
        push,
        _t: std::marker::PhantomData,
    })
}

impl<'de, T, U, F> serde::de::Visitor<'de> for SeqInto<T, U, F>
where
    T: Deserialize<'de>,
    U: Sink,
    F: FnMut(&mut U, T),
{
    type Value = U;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        mut self,
        mut seq: A,
    ) -> std::result::Result<U, A::Error> {
        let mut out = U::default();
        // The length is the file's word: a corrupt one fails here (or past the stream's end),
        // not in an abort on allocation.
        if let Some(n) = seq.size_hint() {
            out.reserve(n.saturating_add(1))
                .map_err(|_| serde::de::Error::custom(format!("array of {n} elements")))?;
        }
        while let Some(x) = seq.next_element::<T>()? {
            (self.push)(&mut out, x);
        }
        Ok(out)
    }
}

/// The deltas summed, straight into the compact set (a flat list would be 8 bytes per object
/// at the peak of a load).
fn addresses<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<addr_set::Builder, D::Error> {
    let mut prev = 0u64;
    seq_into(d, |out: &mut addr_set::Builder, delta: u64| {
        prev = prev.wrapping_add(delta);
        out.push(prev);
    })
}

fn type_indexes<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Ids, D::Error> {
    seq_into(d, |out: &mut Ids, t: u32| {
        out.push_widening(t.checked_sub(1).unwrap_or(NO_TYPE))
    })
}

fn sizes<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Sizes, D::Error> {
    let mut big = Vec::new();
    let bytes = seq_into(d, |out: &mut Vec<u16>, b: u64| push_size(out, &mut big, b))?;
    Ok(Sizes { bytes, big })
}

/// Saturates at u32::MAX, which `decode_body` refuses (more references than the graph holds).
fn edge_ends<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<u32>, D::Error> {
    seq_into(d, |out: &mut Vec<u32>, count: u32| {
        if out.is_empty() {
            out.push(0);
        }
        let end = out.last().copied().unwrap_or(0).saturating_add(count);
        out.push(end);
    })
}

fn wrapped_deltas<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<u32>, D::Error> {
    seq_into(d, |out: &mut Vec<u32>, delta: i64| out.push(delta as u32))
}

fn label_ids<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Ids, D::Error> {
    seq_into(d, |out: &mut Ids, x: u32| out.push_widening(x))
}

/// `DumpFile` as it is written: the graph's arrays borrowed, the delta-coded ones made while
/// they are encoded (no copy of the graph, which may be gigabytes).
#[derive(Serialize)]
struct DumpFileOut<'a, OD, OT, OB, EC, ED, EL> {
    pid: i32,
    python_version: &'a str,
    snapshot_json: String,
    names: &'a [String],
    labels: &'a [EdgeLabel],
    class_label: u32,
    types: &'a [(u64, String)],
    object_delta: OD,
    object_type: OT,
    object_bytes: OB,
    object_native: &'a [(u32, u64)],
    edge_count: EC,
    edge_delta: ED,
    edge_label: EL,
    modules: &'a [(u32, String)],
    frame_roots: &'a [FrameRootEntry],
    frame_stats: FrameStats,
}

/// A sequence serialized from an iterator made on demand (its length known up front).
struct Seq<F>(F);

impl<F, I> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let len = self.0().count();
        let mut seq = s.serialize_seq(Some(len))?;
        for x in self.0() {
            seq.serialize_element(&x)?;
        }
        seq.end()
    }
}

pub fn encode(d: &HeapDump) -> Result<Vec<u8>> {
    let g = &d.graph;
    let objects = &g.objects;
    let stored = |i: usize| g.edge_start[i] as usize..g.edge_start[i + 1] as usize;
    let file = DumpFileOut {
        pid: d.pid,
        python_version: &d.python_version,
        snapshot_json: serde_json::to_string(&d.snapshot)
            .map_err(|e| Error::Usage(format!("encoding the census: {e}")))?,
        names: &g.names,
        labels: &g.labels,
        class_label: g.class_label,
        types: &g.types,
        object_delta: Seq(|| {
            let mut prev = 0u64;
            objects
                .iter()
                .map(move |a| a.wrapping_sub(std::mem::replace(&mut prev, a)))
        }),
        object_type: Seq(|| {
            g.type_of
                .iter()
                .map(|t| if t == NO_TYPE { 0 } else { t + 1 })
        }),
        object_bytes: Seq(|| (0..g.len() as u32).map(|i| g.bytes_of(i))),
        object_native: &g.native,
        edge_count: Seq(|| (0..g.len()).map(|i| stored(i).len() as u32)),
        // Each target as a delta from the previous one (the first from the object itself).
        edge_delta: Seq(|| {
            (0..g.len()).flat_map(move |i| {
                let r = stored(i);
                let prevs =
                    std::iter::once(i as i64).chain(g.edge_to[r.clone()].iter().map(|&t| t as i64));
                g.edge_to[r].iter().zip(prevs).map(|(&t, p)| t as i64 - p)
            })
        }),
        edge_label: Seq(|| g.edge_label.iter()),
        modules: &g.modules,
        frame_roots: &g.frame_roots,
        frame_stats: g.frame_stats,
    };
    let mut out = Vec::with_capacity(g.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    let z = zstd::Encoder::new(out, LEVEL).map_err(|e| Error::io("zstd".to_string(), e))?;
    // postcard writes a byte or a varint at a time: batch them before the compressor.
    let mut w = std::io::BufWriter::with_capacity(1 << 20, z);
    postcard::to_io(&file, &mut w)
        .map_err(|e| Error::Usage(format!("encoding the heap dump: {e}")))?;
    postcard::to_io(&d.sites, &mut w)
        .map_err(|e| Error::Usage(format!("encoding the heap dump: {e}")))?;
    postcard::to_io(&d.files, &mut w)
        .map_err(|e| Error::Usage(format!("encoding the heap dump: {e}")))?;
    let z = w
        .into_inner()
        .map_err(|e| Error::io("zstd".to_string(), e.into_error()))?;
    z.finish().map_err(|e| Error::io("zstd".to_string(), e))
}

/// The largest single text a dump holds (the census JSON; texts are read through this buffer,
/// which is zeroed lazily: only what the longest text uses is ever touched).
const MAX_TEXT: usize = 256 << 20;

/// A dump read back from its file, streamed: neither the file nor its decompressed form is
/// held whole (they would add a third to the graph's own memory at the peak).
pub fn load(path: &Path) -> Result<HeapDump> {
    use std::io::Read;
    let label = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::io(format!("reading {label}"), e))?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut head = Vec::with_capacity(20);
    (&mut r)
        .take(20)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(format!("reading {label}"), e))?;
    let version = check_header(&head, &label)?;
    decode_body(r, &label, version)
}

fn check_header(head: &[u8], label: &str) -> Result<u32> {
    let bad = |why: String| Error::Usage(format!("{label}: {why}"));
    if head.len() < 20 || &head[..16] != MAGIC {
        return Err(bad(
            "not a heap dump (write one with `pymemspy snapshot --format heap`)".into(),
        ));
    }
    let version = u32::from_le_bytes(head[16..20].try_into().unwrap_or([0; 4]));
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(bad(format!(
            "heap dump format {version}; this pymemspy reads formats {OLDEST} to {VERSION}"
        )));
    }
    Ok(version)
}

/// A dump's body (after the header): its sections decoded, checked, and made into the graph. Long:
/// the sections in format order, then one check per way a dump can be corrupt, then the graph; kept
/// together so every check is seen to come before the graph that trusts its indexes.
fn decode_body(compressed: impl std::io::Read, label: &str, version: u32) -> Result<HeapDump> {
    let bad = |why: String| Error::Usage(format!("{label}: {why}"));
    let z = zstd::Decoder::new(compressed).map_err(|e| bad(format!("corrupt: {e}")))?;
    // postcard reads a byte at a time: batch the decompressor's output.
    let z = std::io::BufReader::with_capacity(1 << 20, z);
    let mut texts = vec![0u8; MAX_TEXT];
    let (mut f, (z, _)): (DumpFile, _) =
        postcard::from_io((z, &mut texts[..])).map_err(|e| bad(format!("corrupt: {e}")))?;
    let (sites, z) = if version >= 4 {
        let (s, (z, _)): (Option<DumpSites>, _) =
            postcard::from_io((z, &mut texts[..])).map_err(|e| bad(format!("corrupt: {e}")))?;
        (s, Some(z))
    } else {
        (None, None)
    };
    let files = match (version >= 5, z) {
        (true, Some(z)) => {
            let (f, _): (std::collections::BTreeMap<String, String>, _) =
                postcard::from_io((z, &mut texts[..])).map_err(|e| bad(format!("corrupt: {e}")))?;
            f
        }
        _ => Default::default(),
    };
    drop(texts);
    let objects = std::mem::take(&mut f.object_delta)
        .finish()
        .ok_or_else(|| bad("corrupt: objects out of order".into()))?;
    let n = objects.len();
    let sizes = std::mem::replace(
        &mut f.object_bytes,
        Sizes {
            bytes: Vec::new(),
            big: Vec::new(),
        },
    );
    if f.object_type.len() != n || sizes.bytes.len() != n || f.edge_count.len() != n + 1 {
        // (An empty graph's edge ends are empty too.)
        if !(n == 0 && f.edge_count.is_empty()) {
            return Err(bad("corrupt: object arrays differ in length".into()));
        }
        f.edge_count.push(0);
    }
    let total = f.edge_count.last().copied().unwrap_or(0);
    if total == u32::MAX {
        return Err(bad(
            "more references than this pymemspy holds (4 billion)".into()
        ));
    }
    if total as usize != f.edge_delta.len() || total as usize != f.edge_label.len() {
        return Err(bad("corrupt: edge arrays differ in length".into()));
    }
    let type_of = std::mem::take(&mut f.object_type);
    if type_of
        .iter()
        .any(|t| t != NO_TYPE && t as usize >= f.types.len())
    {
        return Err(bad("corrupt: type index out of range".into()));
    }
    // Each target is the previous one (the first: the object itself) plus its delta, in
    // place: the deltas become `edge_to`.
    let edge_start = std::mem::take(&mut f.edge_count);
    let mut edge_to = std::mem::take(&mut f.edge_delta);
    for (i, w) in edge_start.windows(2).enumerate() {
        let mut prev = i as u32;
        for to in &mut edge_to[w[0] as usize..w[1] as usize] {
            *to = prev.wrapping_add(*to);
            if *to as usize >= n {
                return Err(bad("corrupt: edge target out of range".into()));
            }
            prev = *to;
        }
    }
    if f.object_native.windows(2).any(|w| w[0].0 >= w[1].0)
        || f.object_native
            .last()
            .is_some_and(|&(i, _)| i as usize >= n)
    {
        return Err(bad("corrupt: native entries out of order or range".into()));
    }
    if f.edge_label.iter().any(|l| l as usize >= f.labels.len())
        || (f.class_label != NO_LABEL && f.class_label as usize >= f.labels.len())
        || f.modules.iter().any(|(i, _)| *i as usize >= n)
    {
        return Err(bad("corrupt: index out of range".into()));
    }
    let names = f.names.len() as u32;
    let name_ok = |l: &EdgeLabel| match *l {
        EdgeLabel::Attr(x) | EdgeLabel::Key(x) | EdgeLabel::Field(x) | EdgeLabel::Local(x) => {
            x < names
        }
        _ => true,
    };
    if !f.labels.iter().all(name_ok)
        || f.frame_roots
            .iter()
            .any(|r| r.thread >= names || r.frame >= names || r.slot >= names)
    {
        return Err(bad("corrupt: name index out of range".into()));
    }
    let mut snapshot: Snapshot =
        serde_json::from_str(&f.snapshot_json).map_err(|e| bad(format!("corrupt census: {e}")))?;
    snapshot.schema = snapshot::SCHEMA;
    let mut graph = Graph {
        objects: std::rc::Rc::new(objects),
        type_of,
        bytes: sizes.bytes,
        big: sizes.big,
        native: f.object_native,
        edge_start,
        edge_to,
        edge_label: std::mem::take(&mut f.edge_label),
        labels: f.labels,
        names: f.names,
        types: f.types,
        modules: f.modules,
        frame_roots: f.frame_roots,
        frame_stats: f.frame_stats,
        class_label: f.class_label,
        ..Default::default()
    };
    graph.link_indexes();
    Ok(HeapDump {
        pid: f.pid,
        python_version: f.python_version,
        snapshot,
        graph,
        sites,
        files,
    })
}

/// Whether a file starts like a heap dump (to pick `diff`'s kind of input).
pub fn is_heap_dump(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == MAGIC
}

/// Census and graph of a live process (or core) now: what `snapshot --format heap` writes.
pub fn take(
    target: crate::process::Target,
    opts: crate::analysis::session::SnapshotOptions,
) -> Result<HeapDump> {
    let start = std::time::Instant::now();
    let taken_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let (pid, live) = (target.pid, !target.is_core());
    let full_filenames = opts.full_filenames;
    let mut session = crate::analysis::session::Session::from_target(target, opts)?;
    let (mut snap, (graph, files)) =
        session.snapshot_then(pid, start, taken_at, |view, py, types, objects| {
            let mut src = super::heap_source::LiveSource::new(view, py, types)
                .with_full_filenames(full_filenames);
            let graph = super::heap_graph::capture(&mut src, objects);
            (graph, std::mem::take(&mut src.files))
        })?;
    if live {
        snap.namespace_pid = crate::process::tree::namespace_pid(pid);
    }
    // Where each object was allocated, when the target traces.
    let sites = crate::heap::tracemalloc::locate(
        &session.target.memory,
        &session.target.spans_now(),
        &session.py,
    )
    .ok()
    .and_then(|tl| {
        let all = graph.objects.iter().enumerate().map(|(i, a)| (i as u32, a));
        super::alloc_sites::allocation_sites(&session, &tl, all)
    })
    .map(|(sites, _)| DumpSites::from_sites(&sites));
    Ok(HeapDump {
        pid,
        python_version: snap.python.version.clone(),
        snapshot: snap,
        graph,
        sites,
        files,
    })
}
