//! Leaks that are not bytes: file descriptors and threads, set against the Python objects that
//! should own them.

use super::Census;
use crate::process::fds::{self, Fd};
use crate::process::View;
use crate::python::Python;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resources {
    pub fds: u64,
    pub fds_by_kind: BTreeMap<String, u64>,
    /// Live Python objects owning a descriptor (_io.FileIO, socket.socket and subclasses).
    pub python_fd_objects: u64,
    /// ... of which already closed (the object lingers, the descriptor is gone).
    pub python_fd_objects_closed: u64,
    /// Open descriptors that no live Python file or socket object owns: opened by C code, or
    /// leaked by a Python object that was collected without closing (os.open, dup, ...).
    pub fds_without_python_owner: u64,
    pub os_threads: u64,
    pub python_threads: u64,
    /// OS threads: (tid, name, state).
    pub threads: Vec<(i32, String, char)>,
    pub fd_list: Vec<Fd>,
}

pub fn read(
    view: &mut View,
    py: &Python,
    census: &Census,
    pid: i32,
    show_paths: bool,
) -> Resources {
    let fd_list = fds::list(pid, show_paths);
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for f in &fd_list {
        *by_kind.entry(f.kind.clone()).or_default() += 1;
    }
    let owned: BTreeSet<i32> = census
        .fd_owners
        .iter()
        .map(|(_, fd)| *fd)
        .filter(|&fd| fd >= 0)
        .collect();
    let threads = fds::threads(pid);
    Resources {
        fds: fd_list.len() as u64,
        fds_by_kind: by_kind,
        python_fd_objects: census.fd_owners.len() as u64,
        python_fd_objects_closed: census.fd_owners.iter().filter(|(_, fd)| *fd < 0).count() as u64,
        fds_without_python_owner: fd_list.iter().filter(|f| !owned.contains(&f.fd)).count() as u64,
        os_threads: threads.len() as u64,
        python_threads: python_threads(view, py),
        threads,
        fd_list,
    }
}

/// Thread states on every interpreter's list (`next` is the second word of PyThreadState).
fn python_threads(view: &mut View, py: &Python) -> u64 {
    let mut n = 0;
    for &interp in &py.interpreters {
        let mut t = view
            .u64(interp.wrapping_add(py.layout.interp.threads_head))
            .unwrap_or(0);
        let mut seen = 0;
        while t != 0 && seen < 100_000 {
            n += 1;
            seen += 1;
            t = view.u64(t.wrapping_add(8)).unwrap_or(0);
        }
    }
    n
}
