//! Whole-process memory figures from the kernel (/proc/PID/status), sampled beside each census:
//! what the operating system charges the process, which the object census alone cannot show
//! (allocator caches, fragmentation, native buffers).

use crate::error::{Error, Result};

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemStats {
    /// VmRSS: resident set size.
    pub rss: u64,
    /// RssAnon: resident anonymous memory (heap, arenas), when the kernel reports it.
    pub rss_anon: Option<u64>,
}

/// Read the resident-memory figures of `pid`.
pub fn read(pid: i32) -> Result<MemStats> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Exited(pid),
        _ => Error::io(format!("reading {path}"), e),
    })?;
    parse_status(&text).ok_or(Error::Exited(pid))
}

/// The figures from the text of a status file. A zombie or kernel thread has no VmRSS: None.
pub fn parse_status(text: &str) -> Option<MemStats> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let rest = line[name.len()..].trim_start_matches(':').trim();
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kib.checked_mul(1024)
    };
    Some(MemStats {
        rss: field("VmRSS")?,
        rss_anon: field("RssAnon"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let text = "Name:\tpython3\nVmRSS:\t   10240 kB\nRssAnon:\t    2048 kB\n";
        let s = parse_status(text).unwrap();
        assert_eq!(s.rss, 10240 * 1024);
        assert_eq!(s.rss_anon, Some(2048 * 1024));
    }

    #[test]
    fn zombie_has_no_rss() {
        assert_eq!(parse_status("Name:\tpython3\nState:\tZ (zombie)\n"), None);
    }

    #[test]
    fn reads_own_process() {
        let s = read(std::process::id() as i32).unwrap();
        assert!(s.rss > 0);
    }
}
