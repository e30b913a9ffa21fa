//! The wait before each start of ssh (SPEC §5): quick restarts are free for a
//! while, then each one waits longer, up to the poll time.

use std::time::Duration;

use crate::time::Time;

/// Seconds to wait before start number `tries + 1` of a quick series.
pub fn wait_secs(tries: u32, poll: u32) -> u32 {
    if tries <= 5 {
        return 0;
    }
    let t = f64::from(tries - 5);
    let secs = f64::from(poll) / 100.0 * (t * t / 3.0);
    // The conversion truncates, which is the floor of a non-negative value.
    secs.min(f64::from(poll)) as u32
}

/// How many starts came in quick succession.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    tries: u32,
    last_start: Option<Time>,
}

impl Backoff {
    /// Called before a start: counts it, and returns the wait before it.
    pub fn before_start(&mut self, now: Time, poll: u32) -> (u32, Duration) {
        let min = (poll / 10).max(10);
        let quick = self
            .last_start
            .is_some_and(|last| now.saturating_sub(last) < Duration::from_secs(u64::from(min)));
        self.tries = if quick {
            self.tries.saturating_add(1)
        } else {
            0
        };
        let wait = wait_secs(self.tries, poll);
        (self.tries, Duration::from_secs(u64::from(wait)))
    }

    pub fn started(&mut self, at: Time) {
        self.last_start = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_600_series() {
        let waits: Vec<u32> = (0..12).map(|t| wait_secs(t, 600)).collect();
        assert_eq!(waits, [0, 0, 0, 0, 0, 0, 2, 8, 18, 32, 50, 72]);
        assert_eq!(wait_secs(100, 600), 600);
        assert_eq!(wait_secs(u32::MAX, 600), 600);
    }

    #[test]
    fn poll_150_series() {
        let waits: Vec<u32> = (6..11).map(|t| wait_secs(t, 150)).collect();
        assert_eq!(waits, [0, 2, 4, 8, 12]);
    }

    #[test]
    fn quick_starts_count_slow_ones_reset() {
        let mut b = Backoff::default();
        let t0 = Duration::from_secs(1000);
        assert_eq!(b.before_start(t0, 600), (0, Duration::ZERO));
        b.started(t0);
        let t1 = t0 + Duration::from_secs(59);
        assert_eq!(b.before_start(t1, 600).0, 1);
        b.started(t1);
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(b.before_start(t2, 600).0, 0);
        b.started(t2);
        // Poll 1: the minimum is 10 s.
        let t3 = t2 + Duration::from_secs(9);
        assert_eq!(b.before_start(t3, 1).0, 1);
        for _ in 0..5 {
            b.started(t3);
            b.before_start(t3, 1);
        }
        assert_eq!(b.before_start(t3, 600), (7, Duration::from_secs(8)));
    }
}
