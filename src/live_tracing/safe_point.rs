//! 3.8–3.13: no interface asks a running interpreter to run code, so pymemspy has one of its
//! threads call `PyRun_SimpleStringFlags` at a safe point, by ptrace. The safe point is the
//! entry of `PyEval_SaveThread`: a thread gets there holding the GIL (or, free-threaded,
//! attached), between two bytecodes, about to block in a system call, with no allocator, GC or
//! interpreter lock of its own held — the point where CPython itself expects other threads to
//! run Python. A thread that waits forever in a join never gets there; the threads doing I/O,
//! sleeping or taking locks get there many times a second.
//!
//! The steps, each undone before the next can fail half-way:
//! 1. seize every thread (new ones followed through clone events), never stopping them;
//! 2. one int3 byte at `PyEval_SaveThread`, until the first thread reaches it (or a timeout);
//! 3. the byte put back at once, and read back; other threads that trapped meanwhile are
//!    rewound to the entry;
//! 4. the thread that reached it is given a call: `PyRun_SimpleStringFlags(code, NULL)`, its
//!    code string deep in the unused part of its own stack, returning through a `ret` byte to the
//!    entry of `PyEval_SaveThread` with its stack pointer as it was. So the call needs no
//!    tracer to end well: the thread finishes it and goes on exactly where it was stopped,
//!    every callee-saved register as it was (the ABI), the caller-saved ones dead at a call;
//! 5. every thread detached, each signal that arrived meanwhile passed on.
//!
//! This runs in a process of its own (`pymemspy` re-executed with a hidden subcommand, in its
//! own process group): killing pymemspy, or Ctrl-C in its terminal, does not interrupt these
//! steps half-way; pymemspy restores the byte itself if this process dies while it is armed.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::process::write;

const INT3: u8 = 0xCC;
const RET: u8 = 0xC3;
/// How long every thread gets to reach a ptrace stop before detaching.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// Most threads followed.
const MAX_THREADS: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub pid: i32,
    /// `PyEval_SaveThread`.
    pub safe_point: u64,
    /// `PyRun_SimpleStringFlags`.
    pub function: u64,
    pub code: String,
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Outcome {
    /// This thread was given the call and let go.
    Called {
        tid: i32,
        threads: usize,
        waited_ms: u64,
    },
    /// No thread reached the safe point in time; nothing was changed.
    NoSafePoint { threads: usize },
    /// The target exited meanwhile.
    Gone,
}

fn pid_of(t: i32) -> Pid {
    Pid::from_raw(t)
}

fn tasks(pid: i32) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// The threads we trace, and what each owes at detach time.
struct Threads {
    pid: i32,
    traced: HashSet<i32>,
    /// Threads in a ptrace stop now, with the signal to pass on when they go (None: none).
    stopped: HashMap<i32, Option<Signal>>,
}

impl Threads {
    /// Seize every thread, again until no new one appears (a thread made between two listings
    /// by a seized one is followed through its clone event anyway).
    fn seize_all(pid: i32) -> Result<Threads> {
        let mut t = Threads {
            pid,
            traced: HashSet::new(),
            stopped: HashMap::new(),
        };
        for _ in 0..16 {
            let mut new = 0;
            for tid in tasks(pid) {
                if t.traced.contains(&tid) || t.traced.len() >= MAX_THREADS {
                    continue;
                }
                match ptrace::seize(pid_of(tid), Options::PTRACE_O_TRACECLONE) {
                    Ok(()) => {
                        t.traced.insert(tid);
                        new += 1;
                    }
                    Err(Errno::ESRCH) => {}
                    Err(e) => {
                        t.detach_all();
                        bail!("cannot trace thread {tid} of process {pid}: {e}");
                    }
                }
            }
            if new == 0 {
                break;
            }
        }
        if t.traced.is_empty() {
            bail!("process {pid} has no thread to trace");
        }
        Ok(t)
    }

    /// Handle one event that is not ours to act on: pass signals on, follow clones, keep a
    /// group stop a group stop. Returns a SIGTRAP stop for the caller to look at.
    fn route(&mut self, status: WaitStatus) -> Option<i32> {
        match status {
            WaitStatus::Stopped(p, Signal::SIGTRAP) => return Some(p.as_raw()),
            WaitStatus::Stopped(p, sig) => {
                let _ = ptrace::cont(p, sig);
            }
            WaitStatus::PtraceEvent(p, _, e) if e == Event::PTRACE_EVENT_CLONE as i32 => {
                if let Ok(new) = ptrace::getevent(p) {
                    self.traced.insert(new as i32);
                }
                let _ = ptrace::cont(p, None);
            }
            WaitStatus::PtraceEvent(p, sig, e) if e == Event::PTRACE_EVENT_STOP as i32 => {
                let group_stop = matches!(
                    sig,
                    Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
                );
                if group_stop {
                    // Someone stopped the process: it stays stopped, as it would untraced.
                    // SAFETY: PTRACE_LISTEN on a tracee in group-stop; no memory is passed.
                    unsafe {
                        libc::ptrace(libc::PTRACE_LISTEN, p.as_raw(), 0, 0);
                    }
                } else {
                    let _ = ptrace::cont(p, None);
                }
            }
            WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _) => {
                self.traced.remove(&p.as_raw());
                self.stopped.remove(&p.as_raw());
            }
            WaitStatus::PtraceEvent(p, _, _) | WaitStatus::PtraceSyscall(p) => {
                let _ = ptrace::cont(p, None);
            }
            WaitStatus::Continued(_) | WaitStatus::StillAlive => {}
        }
        None
    }

    fn wait_any(&self) -> Option<WaitStatus> {
        match waitpid(None, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => None,
            Ok(s) => Some(s),
        }
    }

    fn alive(&self) -> bool {
        std::path::Path::new(&format!("/proc/{}", self.pid)).exists() && !self.traced.is_empty()
    }

    /// Bring every thread to a ptrace stop, rewinding any that trapped on `breakpoint` (the
    /// byte is already back), then detach them all, each with the signal it was owed.
    fn detach_all_rewinding(&mut self, breakpoint: Option<u64>) {
        for &tid in &self.traced {
            if !self.stopped.contains_key(&tid) {
                let _ = ptrace::interrupt(pid_of(tid));
            }
        }
        let deadline = Instant::now() + STOP_WAIT;
        while self.stopped.len() < self.traced.len() && Instant::now() < deadline {
            let Some(status) = self.wait_any() else {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            };
            match status {
                WaitStatus::Stopped(p, Signal::SIGTRAP) => {
                    rewind_if_trapped(p, breakpoint);
                    self.stopped.insert(p.as_raw(), None);
                }
                WaitStatus::Stopped(p, sig) => {
                    self.stopped.insert(p.as_raw(), Some(sig));
                }
                WaitStatus::PtraceEvent(p, _, e) if e == Event::PTRACE_EVENT_CLONE as i32 => {
                    if let Ok(new) = ptrace::getevent(p) {
                        self.traced.insert(new as i32);
                        let _ = ptrace::interrupt(pid_of(new as i32));
                    }
                    self.stopped.insert(p.as_raw(), None);
                }
                WaitStatus::PtraceEvent(p, _, _) => {
                    self.stopped.insert(p.as_raw(), None);
                }
                other => {
                    self.route(other);
                }
            }
        }
        self.detach_all();
    }

    fn detach_all(&mut self) {
        for &tid in &self.traced {
            let sig = self.stopped.get(&tid).copied().flatten();
            let _ = ptrace::detach(pid_of(tid), sig);
        }
        self.traced.clear();
        self.stopped.clear();
    }
}

/// A thread stopped just past our int3 is put back on the instruction the byte covered.
fn rewind_if_trapped(p: Pid, breakpoint: Option<u64>) {
    let Some(bp) = breakpoint else { return };
    if let Ok(mut regs) = ptrace::getregs(p) {
        if regs.rip == bp + 1 {
            regs.rip = bp;
            let _ = ptrace::setregs(p, regs);
        }
    }
}

/// A `ret` byte in the text near `near` (any 0xC3 is a `ret` when jumped to).
fn find_ret(text: &write::Text, near: u64) -> Result<u64> {
    let bytes = text
        .read(near, 4096)
        .context("cannot read the text of PyEval_SaveThread")?;
    let i = memchr::memchr(RET, &bytes).context("no ret byte near PyEval_SaveThread")?;
    Ok(near + i as u64)
}

/// Run the request. Every path out of here leaves the text as it was and no thread traced. Long:
/// arm, wait for a thread at the safe point, restore, then call or let go, in order; kept whole so
/// every path out can be seen to restore the byte and detach the threads.
pub fn run(req: &Request) -> Result<Outcome> {
    let text = write::Text::open(req.pid)?;
    let original = text.byte(req.safe_point)?;
    if original == INT3 {
        bail!(
            "PyEval_SaveThread of process {} starts with a breakpoint already (is a debugger \
             attached?)",
            req.pid
        );
    }
    let ret_gadget = find_ret(&text, req.safe_point)?;
    let mut threads = Threads::seize_all(req.pid)?;
    let bp = req.safe_point;
    if let Err(e) = text.set_byte(bp, INT3) {
        let _ = text.set_byte(bp, original);
        threads.detach_all();
        return Err(e);
    }
    // Tell the parent the byte is armed (it restores it if this process dies from now on).
    println!("armed");
    if std::env::var(super::KILL_STEP_VAR).as_deref() == Ok("armed") {
        // The test kills pymemspy now: the byte stays armed past its death.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_millis(req.wait_ms);
    let mut hit = None;
    while hit.is_none() && Instant::now() < deadline && threads.alive() {
        let Some(status) = threads.wait_any() else {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        };
        if let Some(tid) = threads.route(status) {
            let regs = ptrace::getregs(pid_of(tid));
            match regs {
                Ok(r) if r.rip == bp + 1 && has_room(req.pid, r.rsp) => {
                    hit = Some((tid, r));
                    threads.stopped.insert(tid, None);
                }
                Ok(mut r) if r.rip == bp + 1 => {
                    // No room on this thread's stack for the call: let it go on, wait for
                    // another.
                    r.rip = bp;
                    let _ = ptrace::setregs(pid_of(tid), r);
                    let _ = ptrace::cont(pid_of(tid), None);
                }
                _ => {
                    let _ = ptrace::cont(pid_of(tid), Signal::SIGTRAP);
                }
            }
        }
    }
    // The byte goes back before anything else.
    let restored = text.set_byte(bp, original);
    let waited_ms = started.elapsed().as_millis() as u64;
    let count = threads.traced.len();
    let outcome = match (hit, restored.is_ok()) {
        (Some((tid, mut regs)), true) => {
            regs.rip = bp;
            match prepare_call(req, tid, regs, ret_gadget) {
                Ok(()) => Outcome::Called {
                    tid,
                    threads: count,
                    waited_ms,
                },
                Err(e) => {
                    // Back where it was stopped, as if nothing happened.
                    let _ = ptrace::setregs(pid_of(tid), regs);
                    threads.detach_all_rewinding(Some(bp));
                    return Err(e);
                }
            }
        }
        (Some((tid, mut regs)), false) => {
            regs.rip = bp;
            let _ = ptrace::setregs(pid_of(tid), regs);
            threads.detach_all_rewinding(Some(bp));
            restored?;
            unreachable!()
        }
        (None, _) if !threads.alive() => Outcome::Gone,
        (None, _) => Outcome::NoSafePoint { threads: count },
    };
    threads.detach_all_rewinding(Some(bp));
    restored?;
    if text.byte(bp)? != original {
        bail!("the byte at PyEval_SaveThread did not read back as it was");
    }
    Ok(outcome)
}

/// The thread's stack mapping `[lo, hi)` around `rsp`, from /proc/PID/maps.
fn stack_mapping(pid: i32, rsp: u64) -> Option<(u64, u64)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines().find_map(|line| {
        let (range, rest) = line.split_once(' ')?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        );
        (lo <= rsp && rsp < hi && rest.starts_with("rw")).then_some((lo, hi))
    })
}

/// Whether a thread stopped with this stack pointer has room for the call (`prepare_call`).
fn has_room(pid: i32, rsp: u64) -> bool {
    stack_mapping(pid, rsp).is_some_and(|(lo, _)| {
        let code_at = lo.saturating_add(64).max(rsp.saturating_sub(1 << 20));
        rsp.saturating_sub(code_at) >= 2 * CALL_ROOM
    })
}

/// Room the call may use below the stack pointer before it could reach its code string (the
/// parser copies the string long before that depth).
const CALL_ROOM: u64 = 16 * 1024;

/// Give a thread stopped at the safe point (`regs`, rewound) the call, returning to where it
/// was: `[rsp-16] = ret byte, [rsp-8] = safe point`, so the callee's `ret` lands on the `ret`
/// byte, whose own `ret` lands on the safe point with the stack pointer as it was. The code
/// string goes deep in the same stack mapping (at most 1 MiB below, at least `CALL_ROOM`; the
/// main thread's mapping may be only ~128 KiB), in memory no frame uses now; it stays there,
/// dead, like any stack garbage.
fn prepare_call(
    req: &Request,
    tid: i32,
    regs: libc::user_regs_struct,
    ret_gadget: u64,
) -> Result<()> {
    let rsp = regs.rsp;
    // At a function's entry rsp ≡ 8 (mod 16); the callee's entry sees rsp - 16, the same.
    if rsp % 16 != 8 {
        bail!("the thread's stack pointer is not as at a function entry");
    }
    let (lo, _) = stack_mapping(req.pid, rsp).context("the thread's stack is not mapped")?;
    let mut code = req.code.clone().into_bytes();
    code.push(0);
    let code_at = (lo.saturating_add(64).max(rsp.saturating_sub(1 << 20)) + 15) & !15;
    if rsp.saturating_sub(code_at) < CALL_ROOM + code.len() as u64 {
        bail!("the thread's stack has no room below its frames for the call");
    }
    write::data(req.pid, code_at, &code)?;
    let mut frame = Vec::with_capacity(16);
    frame.extend_from_slice(&ret_gadget.to_le_bytes());
    frame.extend_from_slice(&req.safe_point.to_le_bytes());
    write::data(req.pid, rsp - 16, &frame)?;
    let mut call = regs;
    call.rip = req.function;
    call.rdi = code_at;
    call.rsi = 0;
    call.rax = 0;
    call.rsp = rsp - 16;
    call.orig_rax = u64::MAX;
    ptrace::setregs(pid_of(tid), call).context("cannot set the thread's registers")?;
    Ok(())
}
