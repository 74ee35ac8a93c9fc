//! Errors a person can act on: each says what happened and what to do, in one line.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("no process with pid {0}: check the pid (e.g. `pgrep -af python`)")]
    NoSuchProcess(i32),

    #[error(
        "permission denied reading process {0}: run with sudo, or grant CAP_SYS_PTRACE \
         (`sudo setcap cap_sys_ptrace+ep $(which pymemspy)`); in a container add \
         `--cap-add SYS_PTRACE`; with Yama, check /proc/sys/kernel/yama/ptrace_scope"
    )]
    Permission(i32),

    #[error("process {pid} ({exe}) is not a Python process: no CPython runtime (_PyRuntime) in its binary or libraries")]
    NotPython { pid: i32, exe: String },

    #[error("process {pid} runs a CPython build pymemspy cannot read yet: {why}")]
    Unsupported { pid: i32, why: String },

    /// pymemspy will not (or cannot now) turn the process's tracing on: its owner's opt-out, a
    /// stopped process, no thread running Python code. Exit status of "unsupported".
    #[error("process {pid}: tracing not started: {why}")]
    TracingRefused { pid: i32, why: String },

    #[error("process {0} exited while it was being read")]
    Exited(i32),

    /// A command line that cannot work (exit status 2, like clap's own usage errors).
    #[error("{0}")]
    Usage(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Exit statuses, one per kind of failure, so that scripts can tell them apart (README,
/// "Exit status"; clap's own usage errors exit with 2 too).
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NO_PROCESS: i32 = 3;
pub const EXIT_PERMISSION: i32 = 4;
pub const EXIT_NOT_READABLE: i32 = 5;

impl Error {
    /// 1: anything else (an I/O error writing the output, a read that failed mid-way).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::NoSuchProcess(_) | Error::Exited(_) => EXIT_NO_PROCESS,
            Error::Permission(_) => EXIT_PERMISSION,
            Error::NotPython { .. } | Error::Unsupported { .. } | Error::TracingRefused { .. } => {
                EXIT_NOT_READABLE
            }
            Error::Io { .. } => 1,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
