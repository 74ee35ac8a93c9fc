//! Where live memory was allocated, from the target's own tracemalloc: `snapshot --by
//! allocation`. Per-line statistics equal `tracemalloc.take_snapshot().statistics('lineno')`;
//! the flamegraph stacks are the tracebacks tracemalloc kept (up to its N frames).

use crate::analysis::session::{PythonInfo, Session};
use crate::heap::frames::file_names::FileNames;
use crate::heap::tracemalloc::{self, Traces, CUT_OFF};
use crate::process::View;
use crate::profile::{Profile, Stack, Unit};
use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;

pub const SCHEMA: &str = "pymemspy.allocations/1";

/// Bytes and blocks allocated at one line (the most recent frame of their tracebacks).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineStat {
    /// The whole path, as tracemalloc keeps it.
    pub file: String,
    /// The file as shown: relative to the target's `sys.path` (whole with `--full-filenames`).
    pub label: String,
    pub line: u32,
    pub size: u64,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AllocationReport {
    pub schema: &'static str,
    pub pid: i32,
    pub python: PythonInfo,
    /// Frames tracemalloc keeps per allocation (its N).
    pub max_nframe: u32,
    /// Where tracemalloc's tables were found.
    pub found_by: String,
    pub traced_bytes: u64,
    pub traced_blocks: u64,
    /// Largest first, like `statistics('lineno')`.
    pub lines: Vec<LineStat>,
    pub skipped_blocks: u64,
    pub warnings: Vec<String>,
    /// The stacks, for the flamegraph formats (not serialized).
    #[serde(skip)]
    pub traces: Traces,
    /// How files are shown (not serialized: `LineStat` carries both forms).
    #[serde(skip)]
    pub file_names: FileNames,
}

/// Readings of the traces table, the fullest kept.
const READINGS: usize = 3;

/// Read the target's traces (pausing it when the session asks to).
pub fn take(session: &Session) -> anyhow::Result<AllocationReport> {
    let pid = session.target.pid;
    let tl = tracemalloc::locate(
        &session.target.memory,
        &session.target.spans_now(),
        &session.py,
    )
    .with_context(|| format!("process {pid}"))?;
    // A busy target inserts, frees and rehashes while its table is walked, and a walk that
    // meets a rehash misses the chains it moved: the fullest of a few readings (each paused
    // on its own with --pause) is used.
    let mut best: Option<Traces> = None;
    let mut last_err = None;
    for attempt in 0..READINGS {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _paused = match (session.opts.pause, session.target.memory.process()) {
            (true, Some(p)) => Some(p.lock().map_err(|_| crate::error::Error::Permission(pid))?),
            _ => None,
        };
        // The tables grow into mappings made after the session opened (tracing may have
        // begun since): the spans of now.
        let mut view = View::new(
            &session.target.memory,
            session.target.spans_now(),
            session.opts.cache_budget,
        );
        match tracemalloc::read(&mut view, &session.py, &tl) {
            Ok(t) if best.as_ref().is_none_or(|b| t.blocks > b.blocks) => best = Some(t),
            Ok(_) => {}
            Err(e) => last_err = Some(e),
        }
    }
    let traces = match (best, last_err) {
        (Some(t), _) => t,
        (None, Some(e)) => return Err(e).with_context(|| format!("process {pid}")),
        (None, None) => anyhow::bail!("process {pid}: no reading of its traces"),
    };
    let mut view = View::new(
        &session.target.memory,
        session.target.spans_now(),
        session.opts.cache_budget,
    );
    let mut types = crate::heap::objects::types::TypeTable::new(&session.py);
    let mut file_names = FileNames::of_target(
        &mut view,
        &session.py,
        &mut types,
        session.opts.full_filenames,
    );
    let mut warnings = Vec::new();
    if traces.skipped > 0 {
        warnings.push(format!(
            "{} traced blocks skipped: their trace or traceback could not be read (the target \
             was changing them; --pause gives an exact picture)",
            traces.skipped
        ));
    }
    Ok(AllocationReport {
        schema: SCHEMA,
        pid,
        python: session.python_info(),
        max_nframe: traces.config.map_or(0, |c| c.max_nframe),
        found_by: tl.found_by.clone(),
        traced_bytes: traces.bytes,
        traced_blocks: traces.blocks,
        lines: lines(&traces, &mut file_names),
        skipped_blocks: traces.skipped,
        warnings,
        traces,
        file_names,
    })
}

/// Group by the most recent frame, as `statistics('lineno')` does.
pub fn lines(traces: &Traces, file_names: &mut FileNames) -> Vec<LineStat> {
    let mut by_line: BTreeMap<(&str, u32), (u64, u64)> = BTreeMap::new();
    for (frames, bytes, blocks) in &traces.stacks {
        let Some((file, line)) = frames.first() else {
            continue;
        };
        let e = by_line.entry((file, *line)).or_default();
        e.0 = e.0.saturating_add(*bytes);
        e.1 += blocks;
    }
    let mut out: Vec<LineStat> = by_line
        .into_iter()
        .map(|((file, line), (size, count))| LineStat {
            label: file_names.file(file),
            file: file.to_string(),
            line,
            size,
            count,
        })
        .collect();
    out.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.file.cmp(&b.file)));
    out
}

/// The allocation flamegraph: each traceback root (oldest frame) first, frames `file:line`.
pub fn profile(r: &AllocationReport) -> Profile {
    let mut p = Profile::new(
        format!("Live memory by allocating line, pid {}", r.pid),
        format!(
            "bytes of live blocks traced by the target's tracemalloc ({} frames per allocation); \
             exact, for allocations made since tracing started",
            r.max_nframe
        ),
        Unit::Bytes,
    );
    let mut file_names = r.file_names.clone();
    for (frames, bytes, blocks) in &r.traces.stacks {
        let names = frames.iter().rev().map(|(f, l)| match f.as_str() {
            CUT_OFF => super::traced_growth::cut_off_frame(*l),
            _ => format!("{}:{l}", file_names.file(f)),
        });
        p.stacks
            .push(Stack::new(names, *bytes).with_objects(*blocks));
    }
    p.merge_identical();
    p
}
