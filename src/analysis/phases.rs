//! Wall time and peak memory per pipeline phase, logged at debug level (`PYMEMSPY_LOG=debug`): where a census
//! spends its time on a given heap, without a profiler.

use std::time::Instant;

pub struct Phases {
    what: &'static str,
    last: Instant,
}

impl Phases {
    pub fn start(what: &'static str) -> Phases {
        Phases {
            what,
            last: Instant::now(),
        }
    }

    /// Log the time since the previous lap under `name`.
    pub fn lap(&mut self, name: &str) {
        let now = Instant::now();
        log::debug!(
            "{} {name}: {:.1} ms, RSS {} MiB, peak {} MiB",
            self.what,
            (now - self.last).as_secs_f64() * 1e3,
            status_kib("VmRSS:") / 1024,
            status_kib("VmHWM:") / 1024
        );
        self.last = now;
    }
}

/// A memory figure of the tool's own status (`VmRSS:` now, `VmHWM:` the peak so far), 0 where
/// /proc does not say.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
