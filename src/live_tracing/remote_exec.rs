//! 3.14+: PEP 768's protocol, the writer's side, done by pymemspy itself. For each thread of
//! the main interpreter: the script's path into `remote_debugger_support.debugger_script_path`,
//! 1 into `debugger_pending_call`, then the eval breaker's "please stop" bit (1 << 5). A thread
//! runs the script at its next eval-breaker check, that is when it next runs Python code.
//! Every thread is asked, because which one will run Python soon is not knowable from outside
//! (a server's main thread may wait in a join forever); the script's exclusive `claim` file
//! makes only the first one act, and `withdraw` clears the flag on the others.

use crate::error::Error;
use crate::heap::frames::stacks::StackReader;
use crate::process::{write, MemoryExt};
use crate::python::debug_offsets::{self, DebuggerSupport};
use crate::python::Python;
use anyhow::Result;

/// `_PY_EVAL_PLEASE_STOP_BIT`.
const PLEASE_STOP: u64 = 1 << 5;
/// Most thread states asked (a bound against a corrupted list).
const MAX_THREADS: usize = 1024;

/// The debugger-support offsets of a 3.14+ build (None before 3.14).
pub fn support(py: &Python, mem: &dyn crate::process::Memory) -> Option<DebuggerSupport> {
    let raw = mem.bytes(py.runtime, debug_offsets::READ_LEN).ok()?;
    debug_offsets::debugger_support(&raw)
}

/// Refuse a process whose owner turned remote debugging off: that is the owner's opt-out, and
/// pymemspy respects it (no other way in is tried).
pub fn check_enabled(
    pid: i32,
    py: &Python,
    mem: &dyn crate::process::Memory,
    d: &DebuggerSupport,
) -> Result<()> {
    let interp = *py
        .interpreters
        .first()
        .ok_or_else(|| Error::TracingRefused {
            pid,
            why: "no interpreter found".into(),
        })?;
    let enabled = mem
        .u32(interp.wrapping_add(d.remote_debugging_enabled))
        .map_err(|_| Error::TracingRefused {
            pid,
            why: "cannot read whether remote debugging is enabled".into(),
        })?;
    if enabled != 1 {
        return Err(Error::TracingRefused {
            pid,
            why: "its owner turned remote debugging off (PYTHON_DISABLE_REMOTE_DEBUG, -X \
                  disable-remote-debug, or a build --without-remote-debug), so pymemspy will not \
                  start its tracing: start the program with PYTHONTRACEMALLOC=16 instead, or \
                  record it sampled (without --tracemalloc)"
                .into(),
        }
        .into());
    }
    Ok(())
}

/// The thread states asked to run the script.
pub struct Asked {
    pub tstates: Vec<u64>,
}

/// Ask every thread of the target to run the script at `path` (as the target names it).
pub fn ask(
    pid: i32,
    py: &Python,
    mem: &dyn crate::process::Memory,
    d: &DebuggerSupport,
    path: &str,
) -> Result<Asked> {
    let mut buf = path.as_bytes().to_vec();
    buf.push(0);
    if buf.len() as u64 > d.debugger_script_path_size {
        anyhow::bail!("the script path {path} is too long for the target's buffer");
    }
    let mut tstates = StackReader::new(py).thread_states(mem, py);
    tstates.truncate(MAX_THREADS);
    let mut asked = Vec::new();
    for ts in tstates {
        let support = ts.wrapping_add(d.remote_debugger_support);
        // A thread state that went away between the list and the write fails its write: skip.
        if write::data(pid, support.wrapping_add(d.debugger_script_path), &buf).is_err() {
            continue;
        }
        if write::data(
            pid,
            support.wrapping_add(d.debugger_pending_call),
            &1i32.to_le_bytes(),
        )
        .is_err()
        {
            continue;
        }
        // The breaker word is the target's to change at any moment: read it just before the
        // write, and only add our bit (CPython's own writer does the same read-modify-write).
        let at = ts.wrapping_add(d.eval_breaker);
        if let Ok(v) = mem.u64(at) {
            let _ = write::data(pid, at, &(v | PLEASE_STOP).to_le_bytes());
        }
        asked.push(ts);
    }
    if asked.is_empty() {
        anyhow::bail!("no thread of process {pid} could be asked to run the script");
    }
    Ok(Asked { tstates: asked })
}

/// Take the request back from every thread that has not run it yet (their pending flag still
/// 1), so that nothing runs later. A thread that reads its flag at this very moment may still
/// run the script; the script then finds the `claim` taken (or the directory gone) and does
/// nothing.
pub fn withdraw(pid: i32, mem: &dyn crate::process::Memory, d: &DebuggerSupport, asked: &Asked) {
    for &ts in &asked.tstates {
        let flag = ts
            .wrapping_add(d.remote_debugger_support)
            .wrapping_add(d.debugger_pending_call);
        if mem.u32(flag).is_ok_and(|v| v != 0) {
            let _ = write::data(pid, flag, &0i32.to_le_bytes());
        }
    }
}
