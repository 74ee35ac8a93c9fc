//! Heap dump files: `snapshot --format heap` writes one, `--heap FILE` reads it back.
//!
//! Layout: a 16-byte magic `PYMEMSPY-HEAP\0\0\0`, the format version (u32, little-endian),
//! then one zstd frame holding a postcard-encoded `DumpFile`. Integer arrays are postcard
//! varints; addresses are stored as deltas from the previous object, edge targets as deltas
//! from the previous target (the first from the object itself), so most take 1-3 bytes before
//! compression. No object values are kept: only names (see `heap_graph`).

use super::heap_graph::{EdgeLabel, FrameRootEntry, FrameStats, Graph, NO_LABEL, NO_TYPE};
use crate::analysis::census::snapshot::{self, Snapshot};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const MAGIC: &[u8; 16] = b"PYMEMSPY-HEAP\0\0\0";
/// 3: type edges are no longer stored (made from each object's type), `class_label` added.
pub const VERSION: u32 = 3;
/// zstd level: 3 is its default, fast enough to keep the dump within the census's time.
const LEVEL: i32 = 3;

/// A heap dump: the graph, and the census of the same moment with the memory report.
pub struct HeapDump {
    pub pid: i32,
    pub python_version: String,
    pub snapshot: Snapshot,
    pub graph: Graph,
}

/// What is encoded after the header (format `VERSION`).
#[derive(Serialize, Deserialize)]
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
    object_delta: Vec<u64>,
    /// Type index + 1 (0: the type did not validate).
    object_type: Vec<u32>,
    object_bytes: Vec<u64>,
    /// (object index, native bytes), by index: the objects that own memory outside themselves.
    object_native: Vec<(u32, u64)>,
    edge_count: Vec<u32>,
    edge_delta: Vec<i64>,
    edge_label: Vec<u32>,
    modules: Vec<(u32, String)>,
    frame_roots: Vec<FrameRootEntry>,
    frame_stats: FrameStats,
}

/// `DumpFile` as it is written: the graph's arrays borrowed, the delta-coded ones made while
/// they are encoded (no copy of the graph, which may be gigabytes).
#[derive(Serialize)]
struct DumpFileOut<'a, OD, OT, OB, EC, ED> {
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
    edge_label: &'a [u32],
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
            (0..objects.len())
                .map(|i| objects[i].wrapping_sub(if i == 0 { 0 } else { objects[i - 1] }))
        }),
        object_type: Seq(|| {
            g.type_of
                .iter()
                .map(|&t| if t == NO_TYPE { 0 } else { t + 1 })
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
        edge_label: &g.edge_label,
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
    let z = w
        .into_inner()
        .map_err(|e| Error::io("zstd".to_string(), e.into_error()))?;
    z.finish().map_err(|e| Error::io("zstd".to_string(), e))
}

pub fn decode(bytes: &[u8], label: &str) -> Result<HeapDump> {
    let bad = |why: String| Error::Usage(format!("{label}: {why}"));
    if bytes.len() < 20 || &bytes[..16] != MAGIC {
        return Err(bad(
            "not a heap dump (write one with `pymemspy snapshot --format heap`)".into(),
        ));
    }
    let version = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or([0; 4]));
    if version != VERSION {
        return Err(bad(format!(
            "heap dump format {version}; this pymemspy reads format {VERSION}"
        )));
    }
    let raw = zstd::decode_all(&bytes[20..]).map_err(|e| bad(format!("corrupt: {e}")))?;
    let mut f: DumpFile = postcard::from_bytes(&raw).map_err(|e| bad(format!("corrupt: {e}")))?;
    drop(raw);
    let n = f.object_delta.len();
    if f.object_type.len() != n || f.object_bytes.len() != n || f.edge_count.len() != n {
        return Err(bad("corrupt: object arrays differ in length".into()));
    }
    let total: u64 = f.edge_count.iter().map(|&c| c as u64).sum();
    if total >= u32::MAX as u64 {
        return Err(bad(
            "more references than this pymemspy holds (4 billion)".into()
        ));
    }
    if total != f.edge_delta.len() as u64 || total != f.edge_label.len() as u64 {
        return Err(bad("corrupt: edge arrays differ in length".into()));
    }
    // The decoded arrays become the graph's in place where their types allow, and each goes
    // as soon as it is turned into its graph form: a dump is read back in about the memory
    // the graph itself takes.
    let mut objects = std::mem::take(&mut f.object_delta);
    let mut prev = 0u64;
    for a in objects.iter_mut() {
        prev = prev.wrapping_add(*a);
        *a = prev;
    }
    if objects.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad("corrupt: objects out of order".into()));
    }
    let mut type_of = std::mem::take(&mut f.object_type);
    for t in type_of.iter_mut() {
        *t = match *t {
            0 => NO_TYPE,
            t if (t as usize) <= f.types.len() => t - 1,
            _ => return Err(bad("corrupt: type index out of range".into())),
        };
    }
    let mut edge_to = Vec::with_capacity(total as usize);
    let mut edge_start = std::mem::take(&mut f.edge_count);
    let edge_delta = std::mem::take(&mut f.edge_delta);
    let mut e = 0usize;
    for (i, c) in edge_start.iter_mut().enumerate() {
        let mut prev = i as i64;
        for &d in &edge_delta[e..e + *c as usize] {
            let to = prev.wrapping_add(d);
            if to < 0 || to as usize >= n {
                return Err(bad("corrupt: edge target out of range".into()));
            }
            edge_to.push(to as u32);
            prev = to;
        }
        e += *c as usize;
        *c = e as u32; // the end of object i's edges
    }
    drop(edge_delta);
    edge_start.insert(0, 0);
    if f.object_native.windows(2).any(|w| w[0].0 >= w[1].0)
        || f.object_native
            .last()
            .is_some_and(|&(i, _)| i as usize >= n)
    {
        return Err(bad("corrupt: native entries out of order or range".into()));
    }
    if f.edge_label.iter().any(|&l| l as usize >= f.labels.len())
        || (f.class_label != NO_LABEL && f.class_label as usize >= f.labels.len())
        || f.modules.iter().any(|(i, _)| *i as usize >= n)
    {
        return Err(bad("corrupt: index out of range".into()));
    }
    let names = f.names.len() as u32;
    let name_ok = |l: &EdgeLabel| match *l {
        EdgeLabel::Attr(x) | EdgeLabel::Key(x) | EdgeLabel::Field(x) => x < names,
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
        bytes: Vec::with_capacity(n),
        big: Vec::new(),
        native: f.object_native,
        edge_start,
        edge_to,
        edge_label: f.edge_label,
        labels: f.labels,
        names: f.names,
        types: f.types,
        modules: f.modules,
        frame_roots: f.frame_roots,
        frame_stats: f.frame_stats,
        class_label: f.class_label,
        type_index: Vec::new(),
        frame_root_index: Vec::new(),
    };
    for b in std::mem::take(&mut f.object_bytes) {
        graph.push_bytes(b);
    }
    graph.link_indexes();
    Ok(HeapDump {
        pid: f.pid,
        python_version: f.python_version,
        snapshot,
        graph,
    })
}

pub fn load(path: &Path) -> Result<HeapDump> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    decode(&bytes, &path.display().to_string())
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
pub fn take(target: crate::process::Target, opts: snapshot::SnapshotOptions) -> Result<HeapDump> {
    let start = std::time::Instant::now();
    let taken_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let (pid, live) = (target.pid, !target.is_core());
    let mut session = snapshot::Session::from_target(target, opts)?;
    let mut snap = session.snapshot(pid, start, taken_at)?;
    if live {
        snap.namespace_pid = crate::process::tree::namespace_pid(pid);
    }
    let graph = session.with_objects(|view, py, types, objects| {
        let mut src = super::heap_source::LiveSource::new(view, py, types);
        super::heap_graph::capture(&mut src, objects)
    })?;
    Ok(HeapDump {
        pid,
        python_version: snap.python.version.clone(),
        snapshot: snap,
        graph,
    })
}
