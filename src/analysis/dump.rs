//! `pymemspy dump`: every thread's Python stack now, like `py-spy dump`, read without pausing.

use crate::analysis::session::{PythonInfo, Session};
use crate::heap::frames::file_names::FileNames;
use crate::heap::frames::stacks::{Frame, StackReader, StackStats};
use crate::heap::graph::thread_roots::thread_names;
use crate::process::View;
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
    /// The name the program gave it (`threading.current_thread().name`), from
    /// `threading._active`: what `why` names it by.
    pub threading_name: Option<String>,
    pub holds_gil: bool,
    /// What the kernel says the thread does now (live processes, when the native id is
    /// known): running, or waiting and on what.
    pub os_state: Option<OsState>,
    /// Innermost frame first.
    pub frames: Vec<DumpFrame>,
}

/// A frame with the text it is shown by.
#[derive(Debug, Clone, Serialize)]
pub struct DumpFrame {
    /// `name`, `file` (the whole path), `line`, `first_line`.
    #[serde(flatten)]
    pub frame: Frame,
    /// `render (leaky.py:50)`: the file relative to the target's `sys.path` (whole with
    /// `--full-filenames`).
    pub label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dump {
    pub schema: &'static str,
    pub pid: i32,
    pub python: PythonInfo,
    pub threads: Vec<ThreadDump>,
    pub stats: StackStats,
}

/// A thread as the kernel sees it, read from `/proc/PID/task/TID/{stat,syscall,wchan}`.
#[derive(Debug, Clone, Serialize)]
pub struct OsState {
    /// The state letter of `stat` (R running, S sleeping, D disk wait, T stopped, ...).
    pub state: char,
    /// On a CPU or ready to run (`R`): what py-spy calls active.
    pub active: bool,
    /// The system call it waits in, by name where known (`futex`: a lock or a condition,
    /// `epoll_wait`, `select`, `clock_nanosleep`...), else its number.
    pub syscall: Option<String>,
    /// The kernel function it sleeps in (`wchan`), when the kernel shows it.
    pub wchan: Option<String>,
}

pub fn take(session: &mut Session, full_filenames: bool) -> Dump {
    let mut reader = StackReader::new(&session.py);
    let pid = session.target.pid;
    let live = !session.target.is_core();
    let threads = reader.all_threads(&session.target.memory, &session.py);
    // The names `why` uses (`thread 3790 (MainThread)`), read the same way.
    let names = {
        let mut view = View::new(&session.target.memory, session.target.spans(), 0);
        thread_names(&mut view, &session.py, &mut session.types)
    };
    let mut file_names = {
        let mut view = View::new(&session.target.memory, session.target.spans(), 0);
        FileNames::of_target(&mut view, &session.py, &mut session.types, full_filenames)
    };
    let threads = threads
        .into_iter()
        .map(|t| {
            let known = names.get(&t.thread_id);
            let native = t.native_thread_id.or(known.and_then(|k| k.1));
            // A core's pid is no live process: its /proc entry, if any, is someone else's.
            let tid = native.filter(|_| live);
            ThreadDump {
                thread_id: t.thread_id,
                native_thread_id: native,
                name: tid.and_then(|tid| thread_name(pid, tid)),
                threading_name: known.and_then(|k| k.0.clone()),
                holds_gil: t.holds_gil,
                os_state: tid.and_then(|tid| os_state(pid, tid)),
                frames: t
                    .frames
                    .iter()
                    .map(|&f| {
                        let frame = reader.frame(f).clone();
                        let label = file_names.frame(&frame);
                        DumpFrame { frame, label }
                    })
                    .collect(),
            }
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

fn os_state(pid: i32, tid: u64) -> Option<OsState> {
    let dir = format!("/proc/{pid}/task/{tid}");
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // `pid (comm) S ...`: the name may hold spaces and parentheses, so split after the last ')'.
    let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
    let active = state == 'R';
    // `syscall` reads "running" for a thread on a CPU; needs the same access as reading memory.
    let syscall = (!active)
        .then(|| std::fs::read_to_string(format!("{dir}/syscall")).ok())
        .flatten()
        .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok())
        .filter(|&n| n >= 0)
        .map(|n| syscall_name(n).map_or_else(|| format!("syscall {n}"), str::to_string));
    let wchan = (!active)
        .then(|| std::fs::read_to_string(format!("{dir}/wchan")).ok())
        .flatten()
        .map(|w| w.trim().to_string())
        // "0" when the kernel hides it.
        .filter(|w| !w.is_empty() && w != "0" && w.chars().all(|c| c.is_ascii_graphic()));
    Some(OsState {
        state,
        active,
        syscall,
        wchan,
    })
}

/// The system calls a Python thread waits in, by number (x86-64 and arm64 tables).
fn syscall_name(n: i64) -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    let table: &[(i64, &str)] = &[
        (0, "read"),
        (1, "write"),
        (2, "open"),
        (7, "poll"),
        (23, "select"),
        (34, "pause"),
        (35, "nanosleep"),
        (43, "accept"),
        (45, "recvfrom"),
        (47, "recvmsg"),
        (61, "wait4"),
        (202, "futex"),
        (230, "clock_nanosleep"),
        (232, "epoll_wait"),
        (247, "waitid"),
        // A thread blocked opening a FIFO no writer opened yet (or a file on a hung mount).
        (257, "openat"),
        (270, "pselect6"),
        (271, "ppoll"),
        (281, "epoll_pwait"),
        (288, "accept4"),
    ];
    #[cfg(target_arch = "aarch64")]
    let table: &[(i64, &str)] = &[
        (22, "epoll_pwait"),
        (56, "openat"),
        (63, "read"),
        (64, "write"),
        (72, "pselect6"),
        (73, "ppoll"),
        (95, "waitid"),
        (98, "futex"),
        (101, "nanosleep"),
        (115, "clock_nanosleep"),
        (202, "accept"),
        (207, "recvfrom"),
        (212, "recvmsg"),
        (242, "accept4"),
        (260, "wait4"),
    ];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let table: &[(i64, &str)] = &[];
    table.iter().find(|e| e.0 == n).map(|e| e.1)
}

#[cfg(test)]
mod tests {
    use super::syscall_name;

    #[test]
    fn a_thread_opening_a_fifo_names_its_call() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(syscall_name(257), Some("openat"));
        #[cfg(target_arch = "aarch64")]
        assert_eq!(syscall_name(56), Some("openat"));
        assert_eq!(syscall_name(-1), None);
    }
}
