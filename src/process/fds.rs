//! Open file descriptors of the target, by kind, from /proc (no Python involved): regular files
//! with their paths, sockets with protocol and state, pipes, eventfds, ...

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fd {
    pub fd: i32,
    /// "file", "socket", "pipe", "anon_inode", "device", "other".
    pub kind: String,
    /// The path for files and devices, `tcp ESTABLISHED` etc. for sockets (None when hidden).
    pub detail: Option<String>,
}

pub fn list(pid: i32, show_paths: bool) -> Vec<Fd> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let links: Vec<(i32, String)> = dir
        .flatten()
        .filter_map(|e| {
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            Some((fd, link.to_string_lossy().into_owned()))
        })
        .collect();
    // The socket tables list every socket of the network namespace (the kernel walks them all
    // for each read, thousands on a busy host): read them only for a process that has one.
    let sockets = if links.iter().any(|(_, l)| l.starts_with("socket:[")) {
        socket_table(pid)
    } else {
        BTreeMap::new()
    };
    let mut out: Vec<Fd> = links
        .iter()
        .map(|(fd, link)| classify(*fd, link, &sockets, show_paths))
        .collect();
    out.sort_by_key(|f| f.fd);
    out
}

fn classify(fd: i32, link: &str, sockets: &BTreeMap<u64, String>, show_paths: bool) -> Fd {
    let inode = |prefix: &str| {
        link.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let (kind, detail) = if let Some(ino) = inode("socket:[") {
        let d = sockets
            .get(&ino)
            .cloned()
            .unwrap_or_else(|| "socket".into());
        ("socket", Some(d))
    } else if link.starts_with("pipe:[") {
        ("pipe", None)
    } else if let Some(rest) = link.strip_prefix("anon_inode:") {
        (
            "anon_inode",
            Some(rest.trim_matches(['[', ']']).to_string()),
        )
    } else if link.starts_with("/dev/") {
        ("device", show_paths.then(|| link.to_string()))
    } else if link.starts_with('/') {
        ("file", show_paths.then(|| link.to_string()))
    } else {
        ("other", None)
    };
    Fd {
        fd,
        kind: kind.into(),
        detail,
    }
}

/// Socket inode → "tcp LISTEN", "udp", "unix" ... from the target's network namespace.
fn socket_table(pid: i32) -> BTreeMap<u64, String> {
    const TCP_STATES: [&str; 12] = [
        "?",
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
    ];
    let mut out = BTreeMap::new();
    for proto in ["tcp", "tcp6", "udp", "udp6", "unix"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{proto}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (inode, state) = if proto == "unix" {
                (f.get(6), None)
            } else {
                (f.get(9), f.get(3))
            };
            let Some(inode) = inode.and_then(|i| i.parse::<u64>().ok()) else {
                continue;
            };
            let name = proto.trim_end_matches('6');
            let detail = match state.and_then(|s| usize::from_str_radix(s, 16).ok()) {
                Some(s) if name == "tcp" => {
                    format!("tcp {}", TCP_STATES.get(s).copied().unwrap_or("?"))
                }
                _ => name.to_string(),
            };
            out.insert(inode, detail);
        }
    }
    out
}

/// OS threads of the target: (tid, name, state letter).
pub fn threads(pid: i32) -> Vec<(i32, String, char)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<(i32, String, char)> = dir
        .flatten()
        .filter_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let state = super::target::process_state_of(&e.path()).unwrap_or('?');
            Some((tid, comm.trim().to_string(), state))
        })
        .collect();
    out.sort();
    out
}
