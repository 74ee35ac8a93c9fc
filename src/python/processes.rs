//! Which processes of a tree run CPython, and why the others are skipped. A process is Python
//! when its mapped files hold a CPython runtime, exactly as `snapshot` decides, so
//! gunicorn/uwsgi masters, multiprocessing workers and embedded interpreters are found alike.

use super::binary;
use crate::process::tree::tree;
use crate::process::Target;
use serde::Serialize;

/// A process of the tree that is not censused, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub pid: i32,
    pub reason: String,
}

/// The tree under a pid, split into Python processes (root first, then breadth-first by pid)
/// and the rest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Descendants {
    pub python: Vec<i32>,
    pub skipped: Vec<Skipped>,
}

/// Every Python process in the tree under `root` (root included when it is Python), and the
/// others with the reason each was skipped ("not Python (/usr/bin/sleep)", "permission ...").
pub fn python_descendants(root: i32) -> Descendants {
    let mut d = Descendants::default();
    for pid in tree(root) {
        match is_python(pid) {
            Ok(()) => d.python.push(pid),
            Err(e) => d.skipped.push(Skipped {
                pid,
                reason: reason(&e),
            }),
        }
    }
    d
}

fn is_python(pid: i32) -> crate::error::Result<()> {
    let target = Target::attach(pid)?;
    binary::locate(&target).map(|_| ())
}

/// The error's text without the "process N" preamble the caller already shows.
pub fn reason(e: &crate::error::Error) -> String {
    use crate::error::Error;
    match e {
        Error::NotPython { exe, .. } => format!("not Python ({exe})"),
        Error::Exited(_) | Error::NoSuchProcess(_) => "exited".into(),
        Error::Permission(_) => "permission denied".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_a_process_that_is_not_python() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = child.id() as i32;
        // Until the exec is visible the child still maps the test binary: wait for it, bounded.
        for _ in 0..200 {
            if crate::process::tree::cmdline(pid, 100) == "sleep 30" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let d = python_descendants(pid);
        assert!(d.python.is_empty());
        assert_eq!(d.skipped.len(), 1);
        assert!(
            d.skipped[0].reason.starts_with("not Python"),
            "{:?}",
            d.skipped
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
