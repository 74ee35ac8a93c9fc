//! Where the process's resident memory is, from /proc/PID/smaps: anonymous vs file-backed,
//! the brk heap, stacks, swap.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RssParts {
    pub rss: u64,
    /// Anonymous memory (malloc, mmap'd arenas, thread stacks...).
    pub anon: u64,
    /// Resident pages of mapped files (executable, libraries, mmap'd data files).
    pub file: u64,
    /// The brk heap ([heap]): glibc malloc's main arena.
    pub heap: u64,
    /// The main thread's stack.
    pub stack: u64,
    pub swap: u64,
}

impl RssParts {
    pub fn read(pid: i32) -> Option<RssParts> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
        Some(parse(&text))
    }
}

fn parse(text: &str) -> RssParts {
    let mut p = RssParts::default();
    let mut name = String::new();
    let mut file_backed = false;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(first) = it.next() else { continue };
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: "start-end perms offset dev inode [path]".
            let fields: Vec<&str> = line.split_whitespace().collect();
            name = fields.get(5..).map(|f| f.join(" ")).unwrap_or_default();
            let inode = fields.get(4).copied().unwrap_or("0");
            file_backed = inode != "0";
            continue;
        }
        let kb = |it: &mut std::str::SplitWhitespace| {
            it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024
        };
        match first {
            "Rss:" => {
                let v = kb(&mut it);
                p.rss += v;
                if file_backed {
                    p.file += v;
                }
                match name.as_str() {
                    "[heap]" => p.heap += v,
                    "[stack]" => p.stack += v,
                    _ => {}
                }
            }
            "Anonymous:" => p.anon += kb(&mut it),
            "Swap:" => p.swap += kb(&mut it),
            _ => {}
        }
    }
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_parts() {
        let text = "\
55d0-55e0 r-xp 00000000 08:01 1234 /usr/bin/python3
Rss:                 100 kB
Anonymous:             0 kB
Swap:                  0 kB
5600-5700 rw-p 00000000 00:00 0 [heap]
Rss:                 300 kB
Anonymous:           300 kB
Swap:                 10 kB
7ff0-7ff1 rw-p 00000000 00:00 0 [stack]
Rss:                   8 kB
Anonymous:             8 kB
";
        let p = super::parse(text);
        assert_eq!(p.rss, 408 * 1024);
        assert_eq!(p.file, 100 * 1024);
        assert_eq!(p.anon, 308 * 1024);
        assert_eq!(p.heap, 300 * 1024);
        assert_eq!(p.stack, 8 * 1024);
        assert_eq!(p.swap, 10 * 1024);
    }
}
