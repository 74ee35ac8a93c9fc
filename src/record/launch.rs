//! `record -- python app.py`: start the target ourselves, wait until its Python runtime is up,
//! and make sure it does not outlive the recording.

use crate::analysis::session::{Session, SnapshotOptions};
use crate::error::Error;
use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// How long a freshly started program may take to initialise its Python runtime.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a permission error on the child we started is taken for its exec in progress.
const EXEC_RACE_WINDOW: Duration = Duration::from_secs(2);
/// How long the child gets to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// A program we started. Stopped (SIGTERM, then SIGKILL) if still running when dropped.
pub struct Child {
    child: std::process::Child,
    status: Option<ExitStatus>,
}

/// Start `argv` with our stdin, stdout and stderr (it stays in our process group, so Ctrl-C
/// in the terminal reaches both).
pub fn spawn(argv: &[String], env: &[(&str, String)]) -> anyhow::Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::Usage("no command after `--`".into()))?;
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    Ok(Child {
        child,
        status: None,
    })
}

impl Child {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The exit status once the child has exited (reaps it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// End the child if it still runs: SIGTERM, a grace period, then SIGKILL.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if self.exited().is_some() {
            return self.status;
        }
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return self.status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        self.status
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Errors that mean "not yet" while a program starts: its libpython is not mapped yet, or its
/// runtime has no interpreter or GC state yet. A permission problem or an unsupported build
/// will not go away by waiting.
pub(crate) fn worth_retrying(e: &Error) -> bool {
    match e {
        Error::NotPython { .. } | Error::Exited(_) | Error::Io { .. } => true,
        Error::Unsupported { why, .. } => {
            !(why.contains("not supported") || why.contains("free-threaded"))
        }
        Error::NoSuchProcess(_)
        | Error::Permission(_)
        | Error::Usage(_)
        | Error::TracingRefused { .. } => false,
    }
}

/// Frames per allocation when pymemspy starts a program in exact mode (its cost: docs/performance.md).
pub const DEFAULT_FRAMES: u32 = 16;

/// A session on `source`: the running process, or the program started for it (returned too,
/// so that it lives, and is stopped, with the caller's use of the session).
/// The environment that starts a program with tracemalloc keeping `frames` frames.
pub fn tracemalloc_env(frames: Option<u32>) -> Vec<(&'static str, String)> {
    frames
        .map(|n| ("PYTHONTRACEMALLOC", n.to_string()))
        .into_iter()
        .collect()
}

pub fn open_source(
    source: &super::Source,
    opts: &SnapshotOptions,
    env: &[(&str, String)],
) -> anyhow::Result<(Option<Child>, Session)> {
    match source {
        super::Source::Pid(pid) => Ok((None, Session::open(*pid, opts.clone())?)),
        super::Source::Command(argv) => {
            let mut child = spawn(argv, env)?;
            let session = open_when_ready(&mut child, opts)?;
            Ok((Some(child), session))
        }
    }
}

/// Open a session on the child as soon as its runtime is initialised.
pub fn open_when_ready(child: &mut Child, opts: &SnapshotOptions) -> anyhow::Result<Session> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        let err = match Session::open(child.pid(), opts.clone()) {
            Ok(session) => return Ok(session),
            Err(e) => e,
        };
        if let Some(status) = child.exited() {
            anyhow::bail!(
                "the program exited ({status}) before its Python runtime could be read ({err})"
            );
        }
        // Our own child cannot really be out of reach: a permission error in its first moments
        // is a read that met the exec half-way (its credentials and memory being replaced).
        let exec_race = matches!(err, Error::Permission(_)) && start.elapsed() < EXEC_RACE_WINDOW;
        if !(exec_race || worth_retrying(&err)) || start.elapsed() > READY_TIMEOUT {
            return Err(anyhow::Error::new(err).context(format!(
                "the started program (pid {}) did not become a readable Python process within {} s",
                child.pid(),
                READY_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}
