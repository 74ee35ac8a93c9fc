//! Which processes the exporter follows: the pids it was given, or every Python process it can
//! read (optionally those whose command line matches a regex), looked for again each interval
//! so that a recycled pre-fork worker's replacement is found within one interval.
//!
//! A process is Python exactly as `snapshot` decides (`python::processes`); the answer for a
//! process that is not is remembered by (pid, start time, executable), so that the hundreds
//! of other processes of a host are attached to once, not at every interval.

use crate::process::tree::{cmdline, parent_of, start_time};
use std::collections::{HashMap, HashSet};

/// Most processes followed at once: every one costs a session and its series.
pub const MAX_TARGETS: usize = 256;
/// Characters of a command line kept (for matching and the service name).
const CMDLINE_CHARS: usize = 4096;

/// One process, named so that a recycled pid is not taken for the process it had before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcKey {
    pub pid: i32,
    pub start: u64,
}

impl ProcKey {
    pub fn of(pid: i32) -> Option<ProcKey> {
        Some(ProcKey {
            pid,
            start: start_time(pid)?,
        })
    }
}

/// Which processes to follow.
#[derive(Debug, Clone)]
pub enum Selection {
    Pids(Vec<i32>),
    /// Every readable Python process, those whose command line matches when a regex is given.
    All(Option<regex::Regex>),
}

/// What one discovery round found.
#[derive(Debug, Default)]
pub struct Found {
    pub python: Vec<ProcKey>,
    /// Processes not followed and why (not counting those that are simply not Python).
    pub skipped: HashMap<String, u64>,
}

pub struct Discovery {
    selection: Selection,
    /// Processes known not to be Python, by (pid, start, exe).
    not_python: HashSet<(ProcKey, String)>,
    me: i32,
}

impl Discovery {
    pub fn new(selection: Selection) -> Discovery {
        Discovery {
            selection,
            not_python: HashSet::new(),
            me: std::process::id() as i32,
        }
    }

    /// The processes to follow now. `known` are followed already (not attached to again).
    pub fn round(&mut self, known: &HashSet<ProcKey>) -> Found {
        let mut found = Found::default();
        let pids: Vec<i32> = match &self.selection {
            Selection::Pids(p) => {
                // Named pids are followed whatever they are: one that cannot be read shows as
                // down with its reason, which is what its owner needs to see.
                found.python = p.iter().filter_map(|&pid| ProcKey::of(pid)).collect();
                return found;
            }
            Selection::All(_) => all_pids(),
        };
        let mut seen_not_python = HashSet::new();
        for pid in pids {
            if pid == self.me {
                continue;
            }
            let Some(key) = ProcKey::of(pid) else {
                continue;
            };
            if known.contains(&key) {
                found.python.push(key);
                continue;
            }
            let line = cmdline(pid, CMDLINE_CHARS);
            // Kernel threads and zombies have no command line and no Python in them.
            if line.is_empty() {
                continue;
            }
            if let Selection::All(Some(re)) = &self.selection {
                if !re.is_match(&line) {
                    continue;
                }
            }
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let id = (key, exe);
            if self.not_python.contains(&id) {
                seen_not_python.insert(id);
                continue;
            }
            match is_python(pid) {
                Ok(()) => found.python.push(key),
                Err(crate::error::Error::NotPython { .. }) => {
                    seen_not_python.insert(id);
                }
                Err(crate::error::Error::Exited(_) | crate::error::Error::NoSuchProcess(_)) => {}
                Err(e) => {
                    *found
                        .skipped
                        .entry(crate::python::processes::reason(&e))
                        .or_default() += 1;
                }
            }
            if found.python.len() >= MAX_TARGETS {
                *found
                    .skipped
                    .entry("over the target limit".into())
                    .or_default() += 1;
                break;
            }
        }
        // Forget processes that are gone: the cache is as big as the host's process table.
        self.not_python = seen_not_python;
        found
    }
}

fn is_python(pid: i32) -> crate::error::Result<()> {
    let target = crate::process::Target::attach(pid)?;
    crate::python::binary::locate(&target).map(|_| ())
}

fn all_pids() -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// A service name from a command line: the script or module Python runs (`app.py` → `app`,
/// `-m celery` → `celery`, `/venv/bin/gunicorn app:app` → `gunicorn`), or the program itself
/// when it is not an interpreter (`uwsgi`, an embedding program).
pub fn service_name(pid: i32) -> String {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return String::new();
    };
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .take(64)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    service_from_args(&args)
}

pub fn service_from_args(args: &[String]) -> String {
    let base = |s: &str| {
        let b = s.rsplit('/').next().unwrap_or(s);
        b.strip_suffix(".py").unwrap_or(b).to_string()
    };
    let Some(first) = args.first() else {
        return String::new();
    };
    // A process title set by the program (gunicorn, celery: "gunicorn: worker [app]") is one
    // argument with spaces: its first word is the program.
    let first = first.split_whitespace().next().unwrap_or(first);
    if !base(first).starts_with("python") {
        return base(first).trim_end_matches(':').to_string();
    }
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-m" => return it.next().map(|m| m.to_string()).unwrap_or_default(),
            "-c" => return "-c".into(),
            // Options that take a value.
            "-W" | "-X" | "-Q" => {
                it.next();
            }
            s if s.starts_with("-m") && s.len() > 2 => return s[2..].to_string(),
            s if s.starts_with('-') => {}
            s => return base(s),
        }
    }
    base(first)
}

/// Parent and role of each followed process: a process whose parent is followed too is a
/// `worker` of it; one with followed children is a `parent`; the rest are `main`.
pub fn roles(followed: &[ProcKey]) -> HashMap<i32, (String, &'static str)> {
    let pids: HashSet<i32> = followed.iter().map(|k| k.pid).collect();
    let parents: HashMap<i32, i32> = followed
        .iter()
        .filter_map(|k| Some((k.pid, parent_of(k.pid)?)))
        .collect();
    let has_children: HashSet<i32> = parents
        .values()
        .copied()
        .filter(|p| pids.contains(p))
        .collect();
    followed
        .iter()
        .map(|k| {
            let role = match parents.get(&k.pid) {
                Some(p) if pids.contains(p) => (p.to_string(), "worker"),
                _ if has_children.contains(&k.pid) => (String::new(), "parent"),
                _ => (String::new(), "main"),
            };
            (k.pid, role)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn service_names() {
        assert_eq!(
            service_from_args(&args("/usr/bin/python3 app.py --x")),
            "app"
        );
        assert_eq!(
            service_from_args(&args("python3.12 -u -m celery worker")),
            "celery"
        );
        assert_eq!(
            service_from_args(&args("python -X dev /srv/w/job.py")),
            "job"
        );
        assert_eq!(
            service_from_args(&args("/usr/bin/python3 /venv/bin/gunicorn app:app")),
            "gunicorn"
        );
        assert_eq!(
            service_from_args(&["gunicorn: worker [app]".to_string()]),
            "gunicorn"
        );
        assert_eq!(service_from_args(&args("uwsgi --ini x.ini")), "uwsgi");
        assert_eq!(service_from_args(&args("python3")), "python3");
    }
}
