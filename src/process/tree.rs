//! The process tree under a pid (which of them run CPython: `python::processes`).
//!
//! Parents are read from /proc/*/stat (every kernel has it; /proc/PID/task/*/children needs
//! CONFIG_PROC_CHILDREN). A process is Python when its mapped files hold a CPython runtime,
//! exactly as `snapshot` decides, so gunicorn/uwsgi masters, multiprocessing workers and
//! embedded interpreters are found alike. Cheap enough for `record` to call each interval.

use std::collections::{BTreeMap, VecDeque};

/// Bound on the tree size: a fork bomb under the target must not make us walk forever.
const MAX_PROCESSES: usize = 4096;

/// `root` and every process below it, breadth-first, root first.
pub fn tree(root: i32) -> Vec<i32> {
    let children = children_by_parent();
    let mut out = vec![root];
    let mut queue = VecDeque::from([root]);
    while let Some(p) = queue.pop_front() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            if out.len() >= MAX_PROCESSES || out.contains(&c) {
                continue;
            }
            out.push(c);
            queue.push_back(c);
        }
    }
    out
}

/// ppid → children (sorted by pid), from one pass over /proc.
fn children_by_parent() -> BTreeMap<i32, Vec<i32>> {
    let mut map: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            map.entry(ppid).or_default().push(pid);
        }
    }
    for kids in map.values_mut() {
        kids.sort_unstable();
    }
    map
}

/// The parent pid from /proc/PID/stat (the field after the state letter).
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// When the process started (clock ticks since boot, field 22 of /proc/PID/stat): with the pid,
/// it names one process, so a recycled pid is not mistaken for the process that had it before.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name start at field 3 (the state): field 22 is the 20th.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// The command line, arguments joined by spaces, cut at `max` characters ("" for a zombie or a
/// kernel thread).
pub fn cmdline(pid: i32, max: usize) -> String {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return String::new();
    };
    let text = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The pid a process has in its own PID namespace (a container), from the last `NSpid` field
/// of /proc/PID/status; None when it is the same as the host's (or the kernel does not say).
pub fn namespace_pid(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    let inner: i32 = line.split_whitespace().last()?.parse().ok()?;
    (inner != pid).then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let me = std::process::id() as i32;
        let pid = child.id() as i32;
        // The kernel can show an empty command line for a moment after spawn returns (CI saw it
        // on a loaded machine): wait, bounded, for the exec to be visible.
        for _ in 0..200 {
            if !cmdline(pid, 100).is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(parent_of(pid), Some(me));
        assert!(start_time(pid).is_some_and(|t| t >= start_time(me).unwrap_or(0)));
        assert_eq!(cmdline(pid, 100), "sleep 30");
        assert_eq!(cmdline(pid, 3), "sle…");
        assert!(tree(me).contains(&pid));
        let _ = child.kill();
        let _ = child.wait();
    }
}
