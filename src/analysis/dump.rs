//! `pymemspy dump`: every thread's Python stack now, like `py-spy dump`, read without pausing.

use crate::analysis::census::snapshot::{PythonInfo, Session};
use crate::heap::stacks::{Frame, StackReader, StackStats};
use serde::Serialize;

pub const SCHEMA: &str = "pymemspy.dump/1";

#[derive(Debug, Clone, Serialize)]
pub struct ThreadDump {
    /// `threading.get_ident()`.
    pub thread_id: u64,
    /// The kernel's thread id (3.11+).
    pub native_thread_id: Option<u64>,
    /// The OS thread name (`/proc/PID/task/TID/comm`), when the native id is known.
    pub name: Option<String>,
    pub holds_gil: bool,
    /// Innermost frame first.
    pub frames: Vec<Frame>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dump {
    pub schema: &'static str,
    pub pid: i32,
    pub python: PythonInfo,
    pub threads: Vec<ThreadDump>,
    pub stats: StackStats,
}

pub fn take(session: &Session) -> Dump {
    let mut reader = StackReader::new(&session.py);
    let pid = session.target.pid;
    let threads = reader
        .all_threads(&session.target.memory, &session.py)
        .into_iter()
        .map(|t| ThreadDump {
            thread_id: t.thread_id,
            native_thread_id: t.native_thread_id,
            // A core's pid is no live process: its /proc entry, if any, is someone else's.
            name: t
                .native_thread_id
                .filter(|_| !session.target.is_core())
                .and_then(|tid| thread_name(pid, tid)),
            holds_gil: t.holds_gil,
            frames: t.frames.iter().map(|&f| reader.frame(f).clone()).collect(),
        })
        .collect();
    Dump {
        schema: SCHEMA,
        pid,
        python: session.python_info(),
        threads,
        stats: reader.stats,
    }
}

fn thread_name(pid: i32, tid: u64) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
    Some(comm.trim_end().to_string())
}
