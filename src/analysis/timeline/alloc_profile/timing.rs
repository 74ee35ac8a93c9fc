//! How long ticks took, and how often they came: the figures a caller tunes the rate by.

use super::stats::AllocStats;
use std::time::Instant;

/// Each tick's duration, and the first and last tick's time.
#[derive(Default)]
pub(super) struct TickClock {
    tick_ns: Vec<u32>,
    first_tick: Option<Instant>,
    last_tick: Option<Instant>,
}

impl TickClock {
    /// A tick begins: its start time.
    pub(super) fn start(&mut self) -> Instant {
        let start = Instant::now();
        self.first_tick.get_or_insert(start);
        start
    }

    /// The tick that began at `start` is over.
    pub(super) fn end(&mut self, start: Instant) {
        let end = Instant::now();
        self.last_tick = Some(end);
        self.tick_ns
            .push((end - start).as_nanos().min(u32::MAX as u128) as u32);
    }

    /// The duration, achieved rate and tick-time percentiles, into `s`.
    pub(super) fn finish(&self, s: &mut AllocStats) {
        if let (Some(a), Some(b)) = (self.first_tick, self.last_tick) {
            s.duration_s = (b - a).as_secs_f64();
            if s.ticks > 1 && s.duration_s > 0.0 {
                s.achieved_hz = (s.ticks - 1) as f64 / s.duration_s;
            }
        }
        let mut us: Vec<f64> = self.tick_ns.iter().map(|&n| n as f64 / 1000.0).collect();
        if us.is_empty() {
            return;
        }
        us.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| us[((us.len() - 1) as f64 * p).round() as usize];
        s.tick_us_mean = us.iter().sum::<f64>() / us.len() as f64;
        s.tick_us_p50 = pct(0.5);
        s.tick_us_p95 = pct(0.95);
        s.tick_us_max = pct(1.0);
    }
}
