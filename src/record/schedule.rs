//! When the recorder does what: periodic activities, each with its own period, run in order of
//! due time. The loop sleeps until the earliest is due, runs it, and asks for the next one; a
//! second activity (stack sampling at --rate Hz) is one more `every(...)`.

use std::time::{Duration, Instant};

pub struct Schedule<A> {
    items: Vec<Item<A>>,
}

struct Item<A> {
    activity: A,
    period: Duration,
    next: Instant,
}

impl<A: Copy + PartialEq> Default for Schedule<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Copy + PartialEq> Schedule<A> {
    pub fn new() -> Self {
        Schedule { items: Vec::new() }
    }

    /// Run `activity` every `period`, first at `first`.
    pub fn every(mut self, activity: A, period: Duration, first: Instant) -> Self {
        self.items.push(Item {
            activity,
            period: period.max(Duration::from_millis(1)),
            next: first,
        });
        self
    }

    /// The activity due first, and when (earlier-added activities win ties).
    pub fn next_due(&self) -> Option<(A, Instant)> {
        self.items
            .iter()
            .min_by_key(|i| i.next)
            .map(|i| (i.activity, i.next))
    }

    /// `activity` has run; it is next due one period later on its grid. Ticks already missed
    /// (a census that took longer than the interval) are skipped, not run back to back.
    pub fn done(&mut self, activity: A, now: Instant) {
        for item in self.items.iter_mut().filter(|i| i.activity == activity) {
            item.next += item.period;
            if item.next <= now {
                let behind = now - item.next;
                let missed = behind.as_nanos() / item.period.as_nanos() + 1;
                item.next += item.period * u32::try_from(missed).unwrap_or(u32::MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum A {
        Census,
        Stacks,
    }

    #[test]
    fn interleaves_activities_by_due_time() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new()
            .every(A::Census, ms(1000), t0)
            .every(A::Stacks, ms(300), t0);
        let mut order = Vec::new();
        for _ in 0..6 {
            let (a, due) = s.next_due().unwrap();
            order.push((a, (due - t0).as_millis()));
            s.done(a, due);
        }
        assert_eq!(
            order,
            [
                (A::Census, 0),
                (A::Stacks, 0),
                (A::Stacks, 300),
                (A::Stacks, 600),
                (A::Stacks, 900),
                (A::Census, 1000)
            ]
        );
    }

    #[test]
    fn skips_missed_ticks_and_stays_on_the_grid() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new().every(A::Census, ms(500), t0);
        // The census at 0 took 1.2 s: the ticks at 0.5 and 1.0 are gone, the next is at 1.5.
        s.done(A::Census, t0 + ms(1200));
        assert_eq!(s.next_due().unwrap().1 - t0, ms(1500));
    }
}
