//! Wall time per pipeline phase, logged at debug level (`PYMEMSPY_LOG=debug`): where a census
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
            "{} {name}: {:.1} ms",
            self.what,
            (now - self.last).as_secs_f64() * 1e3
        );
        self.last = now;
    }
}
