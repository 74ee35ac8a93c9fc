//! One census of a live process as the snapshot JSON (`pymemspy.snapshot/1`): attach, take
//! the session's census, report.

use super::memory::MemoryReport;
use super::resources::Resources;
use crate::analysis::census::complete::ObjectSource;
use crate::analysis::census::TypeCount;
use crate::analysis::session::WHOLE_HEAP_BUDGET;
use crate::analysis::session::{CensusReport, Coverage, PythonInfo, Session, SnapshotOptions};
use crate::error::Result;
use crate::heap::gc::gc_state::GcState;
use crate::heap::objects::types::TypeTable;
use crate::process::{Target, View};
use crate::python::Python;
use serde::{Deserialize, Serialize};
use std::time::{Instant, SystemTime};

pub const SCHEMA: &str = "pymemspy.snapshot/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Totals {
    pub objects: u64,
    pub bytes: u64,
    pub allocated_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Set back to `SCHEMA` when read from a heap dump.
    #[serde(skip_deserializing)]
    pub schema: &'static str,
    pub pid: i32,
    pub python: PythonInfo,
    pub taken_at: String,
    pub duration_ms: f64,
    pub totals: Totals,
    pub types: Vec<TypeCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc: Option<GcState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    pub coverage: Coverage,
    pub warnings: Vec<String>,
    /// The core file read instead of a live process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub core_file: Option<String>,
    /// The process's pid inside its own PID namespace (a container), when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_pid: Option<i32>,
    /// With --retained: per type, the bytes its instances retain together (what freeing them
    /// all would free; dominator tree over the heap graph).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retained_by_type: Option<std::collections::BTreeMap<String, u64>>,
}

pub fn take(pid: i32, opts: SnapshotOptions) -> Result<Snapshot> {
    let mut snap = take_from(Target::attach(pid)?, opts)?;
    snap.namespace_pid = crate::process::tree::namespace_pid(pid);
    Ok(snap)
}

/// A snapshot of any target (a live process or a core file).
pub fn take_from(target: Target, opts: SnapshotOptions) -> Result<Snapshot> {
    let start = Instant::now();
    let taken_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let pid = target.pid;
    let mut session = Session::from_target(target, opts)?;
    session.snapshot(pid, start, taken_at)
}

impl Session {
    /// A census now as a `Snapshot`, then `f` on every object (as `with_objects` gives them),
    /// with the target paused once for both (with --pause). On default builds the census's
    /// own scan lists the objects: the heap is read once, and the list matches the census.
    pub fn snapshot_then<R>(
        &mut self,
        pid: i32,
        start: Instant,
        taken_at: String,
        f: impl FnOnce(&mut View, &Python, &mut TypeTable, Vec<u64>) -> R,
    ) -> Result<(Snapshot, R)> {
        let _paused = self.pause()?;
        let (report, objects) = self.census_unpaused(true)?;
        let snap = self.snapshot_of(report, pid, start, taken_at);
        let mut view = View::new(
            &self.target.memory,
            self.target.spans(),
            self.opts.cache_budget.min(WHOLE_HEAP_BUDGET),
        );
        let objects = match objects {
            Some(objects) => objects,
            None => {
                ObjectSource::for_build(&self.py, false).list(&mut view, &self.py, &mut self.types)
            }
        };
        Ok((snap, f(&mut view, &self.py, &mut self.types, objects)))
    }

    /// A census now, as a `Snapshot` (`start`: when the command began, for `duration_ms`).
    pub fn snapshot(&mut self, pid: i32, start: Instant, taken_at: String) -> Result<Snapshot> {
        let report = self.census()?;
        Ok(self.snapshot_of(report, pid, start, taken_at))
    }

    /// A census report as a `Snapshot` of process `pid`.
    fn snapshot_of(
        &self,
        report: CensusReport,
        pid: i32,
        start: Instant,
        taken_at: String,
    ) -> Snapshot {
        let CensusReport {
            census,
            coverage,
            warnings,
            memory,
            gc,
            resources,
        } = report;
        Snapshot {
            schema: SCHEMA,
            pid,
            python: self.python_info(),
            taken_at,
            duration_ms: start.elapsed().as_secs_f64() * 1000.0,
            totals: Totals {
                objects: census.objects,
                bytes: census.bytes,
                allocated_bytes: census.allocated_bytes,
            },
            memory,
            gc,
            resources,
            types: census.types,
            coverage,
            warnings,
            core_file: None,
            namespace_pid: None,
            retained_by_type: None,
        }
    }
}
