//! Turning the target's own tracemalloc on for a recording and off at its end (`record --pid P
//! --tracemalloc N`): the one thing pymemspy writes into another process, opt-in only.
//!
//! How the code gets to run: on 3.14+, PEP 768's protocol (`remote_exec`), which the target's
//! owner can turn off — pymemspy then refuses and tries nothing else; on 3.8–3.13, a call at
//! `PyEval_SaveThread`'s entry by ptrace (`safe_point`), in a short-lived process of its own.
//! What runs is `script`: it starts tracemalloc and a watchdog that stops it when the lease
//! kept by pymemspy ends or expires, so tracing ends even when pymemspy is killed. The files
//! live in `staging`, inside the target's mount namespace.

pub mod remote_exec;
pub mod safe_point;
pub mod script;
pub mod staging;

use crate::analysis::session::Session;
use crate::error::Error;
use crate::heap::tracemalloc;
use crate::process::{write, MemoryExt};
use anyhow::{bail, Context, Result};
use script::Status;
use staging::Staging;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The hidden subcommand that runs `safe_point` in a process of its own.
pub const SAFE_POINT_COMMAND: &str = "__safe-point-call";
/// How long a thread has to reach a point where the script can run.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);
/// How long the watchdog has to confirm the end of tracing once the lease is removed.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// Tracing that pymemspy turned on (or found on), for one recording.
pub struct LiveTracing {
    pid: i32,
    /// None when the target was tracing already: it is left tracing.
    staging: Option<Staging>,
    keeper: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    /// How the script got to run, for the report.
    pub how: &'static str,
    /// From the command to the script's "started".
    pub took: Duration,
}

/// Whether the target's tracemalloc is on, when its state can be found (None: not found).
pub fn is_tracing(session: &Session) -> Option<bool> {
    let tl =
        tracemalloc::locate(&session.target.memory, &session.target.spans(), &session.py).ok()?;
    let cfg = session.target.memory.bytes(tl.config, 12).ok()?;
    let tracing = u32::from_le_bytes(cfg.get(4..8)?.try_into().ok()?);
    (tracing <= 1).then_some(tracing == 1)
}

/// Refuse targets where nothing could run now or where running code would be wrong.
fn check_target(session: &Session) -> Result<()> {
    let pid = session.target.pid;
    if let Some(state) = crate::process::target::process_state(pid) {
        if state == 'T' || state == 't' {
            return Err(Error::TracingRefused {
                pid,
                why: "the process is stopped (SIGSTOP or a debugger): it cannot start tracing \
                      now; resume it (kill -CONT) and try again, or record it sampled"
                    .into(),
            }
            .into());
        }
    }
    if session.py.is_finalizing(&session.target.memory) == Some(true) {
        bail!("process {pid} is shutting down: tracing was not started");
    }
    Ok(())
}

impl LiveTracing {
    /// Start the target's tracemalloc keeping `frames` frames, waiting up to `wait` for a
    /// thread to run the script. A target that traces already is left as it is.
    pub fn start(session: &Session, frames: u32, wait: Duration) -> Result<LiveTracing> {
        let pid = session.target.pid;
        let t0 = Instant::now();
        if is_tracing(session) == Some(true) {
            return Ok(LiveTracing {
                pid,
                staging: None,
                keeper: None,
                how: "the program was tracing already (left tracing)",
                took: Duration::ZERO,
            });
        }
        check_target(session)?;
        let staging = Staging::create(pid, |dir| script::source(dir, frames))?;
        let mut live = LiveTracing {
            pid,
            staging: Some(staging),
            keeper: None,
            how: "",
            took: Duration::ZERO,
        };
        live.keep_lease();
        test_step("staged");
        let staging = live.staging.as_ref().expect("just set");
        let py = &session.py;
        let mem = &session.target.memory;
        if py.layout.version.minor >= 14 {
            let d = remote_exec::support(py, mem).ok_or_else(|| Error::TracingRefused {
                pid,
                why: "its debug offsets do not show PEP 768's fields: cannot ask it to start \
                      tracing (start it with PYTHONTRACEMALLOC=16)"
                    .into(),
            })?;
            remote_exec::check_enabled(pid, py, mem, &d)?;
            let asked = remote_exec::ask(pid, py, mem, &d, &staging.script_path())?;
            live.how = "PEP 768 (sys.remote_exec's protocol)";
            test_step("asked");
            let outcome = wait_for_status(staging, wait);
            // Whatever happened, no thread keeps the request to run it later.
            remote_exec::withdraw(pid, mem, &d, &asked);
            live.finish_start(outcome, wait, t0)?;
        } else {
            let outcome = call_at_safe_point(session, &staging.script_path(), wait)?;
            live.how = "a call at PyEval_SaveThread (ptrace)";
            match outcome {
                safe_point::Outcome::Called { .. } => {
                    let status = wait_for_status(staging, Duration::from_secs(10));
                    live.finish_start(status, wait, t0)?;
                }
                safe_point::Outcome::NoSafePoint { .. } => {
                    return Err(no_python_running(
                        pid,
                        wait,
                        " to a point where it releases the GIL",
                    ));
                }
                safe_point::Outcome::Gone => return Err(Error::Exited(pid).into()),
            }
        }
        Ok(live)
    }

    fn finish_start(&mut self, status: Option<Status>, wait: Duration, t0: Instant) -> Result<()> {
        self.took = t0.elapsed();
        match status {
            Some(Status::Started { .. }) => {
                test_step("started");
                Ok(())
            }
            Some(Status::AlreadyTracing) => {
                self.how = "the program was tracing already (left tracing)";
                self.end();
                Ok(())
            }
            Some(Status::Failed { why }) => {
                bail!("the target could not start tracemalloc: {why}")
            }
            Some(Status::Stopped { why }) => bail!("tracing stopped as soon as it began ({why})"),
            None => Err(no_python_running(self.pid, wait, "")),
        }
    }

    /// Refresh the lease in the background until the end.
    fn keep_lease(&mut self) {
        let Some(staging) = &self.staging else { return };
        let stop = Arc::new(AtomicBool::new(false));
        let lease = staging.lease_handle();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                lease.refresh();
                std::thread::sleep(script::LEASE_REFRESH);
            }
        });
        self.keeper = Some((stop, handle));
    }

    /// Whether pymemspy started the tracing (and so will stop it).
    pub fn started_by_us(&self) -> bool {
        self.staging.is_some()
    }

    /// Stop the tracing pymemspy started: end the lease, and wait for the watchdog to say it
    /// stopped (tracemalloc.stop() freed the traces). None when the target traced on its own:
    /// its tracing is left as it was.
    pub fn stop(mut self) -> Option<Ending> {
        if !self.started_by_us() {
            return None;
        }
        Some(match self.end() {
            Some(why) => Ending::Stopped(why),
            None => Ending::Unconfirmed,
        })
    }

    fn end(&mut self) -> Option<String> {
        if let Some((flag, handle)) = self.keeper.take() {
            flag.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
        let mut staging = self.staging.take()?;
        let was_running = matches!(staging.status(), Some(Status::Started { .. }));
        staging.end_lease();
        test_step("stopping");
        if !was_running {
            return None;
        }
        let deadline = Instant::now() + STOP_WAIT;
        while Instant::now() < deadline {
            if let Some(Status::Stopped { why }) = staging.status() {
                return Some(why);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// What `snapshot --by allocation` and `why` take with `--pid P --tracemalloc N`: the
/// target's tracing on for a window, so that what it allocates then is traced when they read
/// (a reading the moment tracing starts would find every object "allocated before tracing
/// began"). The caller reads, then `stop`s. A target that traces already is read at once.
pub struct TraceWindow {
    pub frames: u32,
    pub window: Duration,
}

impl TraceWindow {
    /// Start the tracing and wait out the window (Ctrl-C ends it early: the reading is taken
    /// then). None when the target is not a running process (a core, a heap dump).
    pub fn open(&self, session: &Session) -> Result<Option<LiveTracing>> {
        let pid = session.target.pid;
        if session.target.memory.process().is_none() {
            return Err(Error::Usage(
                "--tracemalloc starts a running process's tracing: it needs --pid".into(),
            )
            .into());
        }
        let live = LiveTracing::start(session, self.frames, DEFAULT_WAIT)?;
        if !live.started_by_us() {
            eprintln!("pymemspy: process {pid} traces already: read as it is, left tracing");
            return Ok(Some(live));
        }
        eprintln!(
            "pymemspy: tracemalloc ({} frames) started in process {pid} through {} in {} ms; \
             tracing for {} s (Ctrl-C reads now), then it stops (or within {} s if pymemspy \
             is killed)",
            self.frames,
            live.how,
            live.took.as_millis(),
            (self.window.as_secs_f64() * 10.0).round() / 10.0,
            script::LEASE_EXPIRY.as_secs()
        );
        // A second Ctrl-C leaves at once; the lease then expires and the target stops tracing.
        let interrupted = crate::interrupt::first_ctrl_c()?;
        let deadline = Instant::now() + self.window;
        while Instant::now() < deadline && !interrupted.load(Ordering::SeqCst) {
            if crate::process::target::process_state(pid).is_none() {
                return Err(Error::Exited(pid).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(live))
    }
}

/// How the tracing pymemspy started ended: one message for `record`, the trace window of
/// `snapshot`/`why`, and whatever reads traces next.
pub enum Ending {
    /// The watchdog said tracing stopped, and why ("lease removed").
    Stopped(String),
    /// No word from the watchdog in time; it stops tracing on its own at the lease's expiry.
    Unconfirmed,
}

impl Ending {
    /// What a person reads: the stop, or (a warning) what to expect and how to check.
    pub fn message(&self, pid: i32) -> String {
        match self {
            Ending::Stopped(why) => format!("tracemalloc stopped in process {pid} ({why})"),
            Ending::Unconfirmed => format!(
                "process {pid} did not confirm that its tracing stopped; its watchdog stops it \
                 within {} s (check with `pymemspy snapshot --by allocation --pid {pid}`)",
                script::LEASE_EXPIRY.as_secs()
            ),
        }
    }
}

/// Stop tracing pymemspy started after a reading, saying so on stderr.
pub fn end_window(live: Option<LiveTracing>, pid: i32) {
    match live.and_then(LiveTracing::stop) {
        Some(end @ Ending::Stopped(_)) => eprintln!("pymemspy: {}", end.message(pid)),
        Some(end) => eprintln!("pymemspy: warning: {}", end.message(pid)),
        None => {}
    }
}

/// The test of pymemspy killed at every step (`tests/live_tracing.rs`) names a step in
/// `PYMEMSPY_TEST_KILL_STEP`: there pymemspy says "step NAME" and waits, to be killed there.
/// (The tracer process, given the same variable, holds its breakpoint armed a while.)
pub const KILL_STEP_VAR: &str = "PYMEMSPY_TEST_KILL_STEP";

fn test_step(name: &str) {
    if std::env::var(KILL_STEP_VAR).as_deref() == Ok(name) {
        eprintln!("pymemspy: step {name}");
        std::thread::sleep(Duration::from_secs(3));
    }
}

impl Drop for LiveTracing {
    fn drop(&mut self) {
        self.end();
    }
}

fn no_python_running(pid: i32, wait: Duration, at: &str) -> anyhow::Error {
    Error::TracingRefused {
        pid,
        why: format!(
            "no thread ran Python code{} within {} s (waiting in C, deadlocked, or CPU-bound \
             threads that never release the GIL); nothing was left pending: try again when it \
             serves requests, start it with PYTHONTRACEMALLOC=16, or record it sampled",
            at,
            wait.as_secs()
        ),
    }
    .into()
}

/// Poll the status file until the script says something, or `wait` passes.
fn wait_for_status(staging: &Staging, wait: Duration) -> Option<Status> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(s) = staging.status() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Run `safe_point` in a child process of its own, restoring the breakpoint byte ourselves if
/// that process dies while the byte is armed.
fn call_at_safe_point(
    session: &Session,
    script_path: &str,
    wait: Duration,
) -> Result<safe_point::Outcome> {
    let pid = session.target.pid;
    let sym = |name: &str| {
        session
            .py
            .binary
            .symbol(name)
            .ok_or_else(|| Error::TracingRefused {
                pid,
                why: format!(
                    "its binary ({}) does not export {name}: pymemspy cannot start its tracing; \
                 start it with PYTHONTRACEMALLOC=16",
                    session.py.binary.path
                ),
            })
    };
    let request = safe_point::Request {
        pid,
        safe_point: sym("PyEval_SaveThread")?,
        function: sym("PyRun_SimpleStringFlags")?,
        code: script::loader(script_path),
        wait_ms: wait.as_millis() as u64,
    };
    let text = write::Text::open(pid)?;
    let original = text.byte(request.safe_point)?;
    let exe = std::env::current_exe().context("cannot find pymemspy's own executable")?;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(exe)
        .arg(SAFE_POINT_COMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("cannot start pymemspy's tracer process")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(serde_json::to_string(&request)?.as_bytes())?;
    }
    let stdout = child
        .stdout
        .take()
        .context("no pipe from the tracer process")?;
    let mut armed = false;
    let mut outcome = None;
    let mut failure = None;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line == "armed" {
            armed = true;
            test_step("armed");
        } else if let Some(json) = line.strip_prefix("ok ") {
            outcome = serde_json::from_str(json).ok();
        } else if let Some(why) = line.strip_prefix("error ") {
            failure = Some(why.to_string());
        }
    }
    let status = child.wait()?;
    if outcome.is_none() && failure.is_none() && armed && !status.success() {
        // It died with the byte armed: put it back before a thread reaches it.
        let _ = text.set_byte(request.safe_point, original);
    }
    match (outcome, failure) {
        (Some(o), _) => Ok(o),
        (None, Some(why)) => bail!("{why}"),
        (None, None) => bail!("pymemspy's tracer process ended without a result ({status})"),
    }
}

/// The hidden subcommand's body: a request on stdin, "armed" then "ok {json}" or "error …"
/// on stdout.
pub fn safe_point_command() -> i32 {
    // Signals that would end this process half-way are held off: every step is bounded.
    // SAFETY: setting a signal's disposition to ignore, before any thread is started.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let mut input = String::new();
    if std::io::Read::read_to_string(&mut std::io::stdin(), &mut input).is_err() {
        println!("error cannot read the request");
        return 2;
    }
    let request: safe_point::Request = match serde_json::from_str(&input) {
        Ok(r) => r,
        Err(e) => {
            println!("error bad request: {e}");
            return 2;
        }
    };
    match safe_point::run(&request) {
        Ok(o) => {
            println!("ok {}", serde_json::to_string(&o).unwrap_or_default());
            0
        }
        Err(e) => {
            println!("error {e:#}");
            1
        }
    }
}
