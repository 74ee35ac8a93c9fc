//! A recording of a process tree (`record --subprocesses`, schema `pymemspy.record-tree/1`): one
//! `pymemspy.record/1` recording per Python process that lived under the root during the
//! recording, each with its lifetime, and the leak suspects gathered across processes.
//!
//! Workers come and go (max-requests recycling, crashes): a process that exits keeps its
//! recording, marked with when it was seen gone; a process forked during the recording is marked
//! `new`. Every timeline counts seconds from the start of the whole recording, so the processes'
//! timelines line up.

use super::recording::{EndReason, RecordDoc};
use crate::python::processes::Skipped;
use serde::Serialize;
use std::collections::BTreeMap;

pub const SCHEMA: &str = "pymemspy.record-tree/1";

/// Why a process's recording stopped before the whole recording did, or that it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessState {
    /// Still running when the recording ended.
    Running,
    /// Seen gone (exited, killed, or its pid now names another process).
    Exited,
    /// Its censuses kept failing, or it stopped being a Python process (exec): no longer followed.
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessRecording {
    pub pid: i32,
    /// /proc/PID/cmdline, arguments joined by spaces (cut at 300 characters).
    pub cmdline: String,
    /// The process named by --pid (or started after `--`).
    pub root: bool,
    /// Seconds from the start of the recording to the process's first census attempt.
    pub first_seen_s: f64,
    /// False for the processes found at the first look (the root and the workers already
    /// running); true for those that appeared later.
    pub new: bool,
    /// Seconds from the start of the recording to when the process was seen gone or given up.
    pub ended_s: Option<f64>,
    pub state: ProcessState,
    /// Its own recording; `duration_s` is how long it was followed, `timeline[].t` counts from
    /// the start of the whole recording.
    pub recording: RecordDoc,
}

/// One process in which a type is a leak suspect.
#[derive(Debug, Clone, Serialize)]
pub struct SuspectIn {
    pub pid: i32,
    /// Objects per second (Theil–Sen slope of the count).
    pub rate_per_s: f64,
    pub bytes_per_s: f64,
    pub count_delta: i64,
    pub bytes_delta: i64,
}

/// A type that is a leak suspect in at least one process.
#[derive(Debug, Clone, Serialize)]
pub struct TreeSuspect {
    #[serde(rename = "type")]
    pub name: String,
    /// The processes where it grows steadily, by pid.
    pub processes: Vec<SuspectIn>,
    /// How many processes had a verdict on it (it was among their recorded types with enough
    /// samples): "grows in 1 of 4" reads differently from "grows in 4 of 4".
    pub judged_in: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordTreeDoc {
    pub schema: &'static str,
    pub root_pid: i32,
    pub started_at: String,
    pub duration_s: f64,
    pub interval_s: f64,
    pub end_reason: EndReason,
    /// Every Python process followed, in the order they were found (the root first when it is
    /// Python).
    pub processes: Vec<ProcessRecording>,
    /// Types that are leak suspects in some process: in the most processes first, then by name.
    pub suspects: Vec<TreeSuspect>,
    /// Processes of the tree that were not followed, and why (latest reason per process).
    pub skipped: Vec<Skipped>,
    /// What this mode does not do, in words (e.g. no allocation flamegraph).
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// Gather every process's suspects by type name.
pub fn suspects_across(processes: &[ProcessRecording]) -> Vec<TreeSuspect> {
    let mut by_name: BTreeMap<&str, TreeSuspect> = BTreeMap::new();
    for p in processes {
        for g in &p.recording.growth {
            let entry = by_name.entry(&g.name).or_insert_with(|| TreeSuspect {
                name: g.name.clone(),
                processes: Vec::new(),
                judged_in: 0,
            });
            if g.trend != super::growth::Trend::TooShort {
                entry.judged_in += 1;
            }
            if g.suspect {
                entry.processes.push(SuspectIn {
                    pid: p.pid,
                    rate_per_s: g.rate_per_s,
                    bytes_per_s: g.bytes_per_s,
                    count_delta: g.count_delta,
                    bytes_delta: g.bytes_delta,
                });
            }
        }
    }
    let mut out: Vec<TreeSuspect> = by_name
        .into_values()
        .filter(|s| !s.processes.is_empty())
        .collect();
    for s in &mut out {
        s.processes.sort_by_key(|p| p.pid);
    }
    out.sort_by(|a, b| {
        b.processes
            .len()
            .cmp(&a.processes.len())
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::census::{Census, TypeCount};
    use crate::analysis::session::PythonInfo;
    use crate::analysis::timeline::recording::Recording;

    fn process(pid: i32, leak: Option<&str>) -> ProcessRecording {
        let info = PythonInfo {
            version: "3.12.1".into(),
            executable: "python3".into(),
            free_threaded: false,
        };
        let mut r = Recording::new(pid, info, "now".into(), 0.25, 200);
        for i in 0..12u64 {
            let mut types = vec![TypeCount {
                name: "Steady".into(),
                count: 100,
                bytes: 4800,
                allocated_bytes: 4800,
                python_sizeof: false,
                native_bytes: 0,
            }];
            if let Some(name) = leak {
                types.push(TypeCount {
                    name: name.into(),
                    count: 50 * i,
                    bytes: 2400 * i,
                    allocated_bytes: 2400 * i,
                    python_sizeof: false,
                    native_bytes: 0,
                });
            }
            types.sort_by_key(|t| std::cmp::Reverse(t.bytes));
            let c = Census {
                types,
                ..Default::default()
            };
            r.add(i as f64 * 0.25, None, &c, true);
        }
        ProcessRecording {
            pid,
            cmdline: "python3 app.py".into(),
            root: false,
            first_seen_s: 0.0,
            new: false,
            ended_s: None,
            state: ProcessState::Running,
            recording: r.finish(3.0, EndReason::Duration),
        }
    }

    #[test]
    fn suspects_are_gathered_per_type_across_processes() {
        let procs = [
            process(30, Some("Leak")),
            process(10, Some("Leak")),
            process(20, Some("Other")),
            process(40, None),
        ];
        let s = suspects_across(&procs);
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Leak", "Other"]);
        let pids: Vec<i32> = s[0].processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [10, 30]);
        assert_eq!(s[0].judged_in, 2);
        assert!((s[0].processes[0].rate_per_s - 200.0).abs() < 1.0);
    }
}
