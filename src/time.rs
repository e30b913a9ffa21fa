//! Time, read in one place. Decisions take [`Time`], the time since
//! autossh began on the monotonic clock (SPEC §9.8), which no change of
//! the wall clock moves; the wall clock is read only for what people read
//! (log lines, the state file's dates). A pure module of the library: the
//! tunnels tool shows dates with it too.

use std::time::{Duration, Instant};

/// Time since autossh began, on the monotonic clock.
pub type Time = Duration;

/// The clocks, for the loop: this module is the only one that reads them
/// (the log's dates and the tunnels tool use [`unix_now`]).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    began: Instant,
}

impl Clock {
    /// Time 0 is now.
    pub fn start() -> Clock {
        Clock {
            began: Instant::now(),
        }
    }

    /// The time since [`Clock::start`].
    pub fn now(&self) -> Time {
        self.began.elapsed()
    }

    /// Seconds since the Unix epoch, for dates people read.
    pub fn wall(&self) -> i64 {
        unix_now()
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The broken-down local time of `t` (seconds since the Unix epoch), in
/// the zone that TZ names now (it is read again each time: a zone changed
/// under a running autossh shows in its next line).
pub fn local_time(t: i64) -> libc::tm {
    extern "C" {
        fn tzset();
    }
    // (libc marks time_t deprecated on musl, whose 32-bit one will widen.)
    #[allow(deprecated)]
    let t = t as libc::time_t;
    // SAFETY: tzset only reads TZ and the zone files; localtime_r writes only
    // into the zeroed struct it is given. nix wraps neither.
    unsafe {
        tzset();
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_starts_at_zero_and_runs_on() {
        let clock = Clock::start();
        let a = clock.now();
        let b = clock.now();
        assert!(a <= b && b < Duration::from_secs(5));
        // 2020-01-01 or later.
        assert!(clock.wall() > 1_577_836_800);
        let tm = local_time(clock.wall());
        assert!(tm.tm_year >= 120 && (0..12).contains(&tm.tm_mon));
    }
}
