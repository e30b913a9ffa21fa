//! The machine's timers: READY=1 and the watchdog for the service manager,
//! the quiet after a network change, and the pace of starts after a lost
//! connection or while the relay holds a port.

use std::time::Duration;

use super::{Action, Actions, Rules};
use crate::time::Time;

/// The quiet after a network change before it is tested: a change is often a
/// burst of messages.
pub const SETTLE: Duration = Duration::from_secs(1);
/// A new ssh gets this long to log in and open its forwards before a network
/// change tests it: a change heard while it starts (often the tail of the
/// burst that replaced the last one) waits for it.
pub const YOUNG: Duration = Duration::from_secs(5);
/// After a lost connection, for this long ssh is restarted once a second
/// and these starts are not counted as quick ones: the relay may hold the
/// old session's remote forwards until it notices the old connection is
/// gone, and a new ssh with `ExitOnForwardFailure` fails until then.
pub const PACED: Duration = Duration::from_secs(10);
/// The wait between paced starts.
pub const PACE: Duration = Duration::from_secs(1);
/// While ssh's last words say the relay refused a remote forward (it still
/// holds that port for an earlier session, until it notices that session
/// is gone), ssh is started again every 2 s for the first 5 minutes (a
/// relay with `ClientAliveInterval` lets go within a minute or a few, and
/// the port is found within 2 s of its release), every 10 s until 15
/// minutes, then every 30 s: each retry is a full login on the relay, so
/// a relay that holds on for good (TCP keepalive alone: two hours) gets
/// one every 30 s at most.
pub fn held_wait(held_for: Duration) -> Duration {
    match held_for.as_secs() {
        0..300 => Duration::from_secs(2),
        300..900 => Duration::from_secs(10),
        _ => Duration::from_secs(30),
    }
}

/// ssh's words of a held port count only when it ended this soon after
/// them: with `ExitOnForwardFailure` it ends at once. One without it that
/// said so at its login and ran on, to end much later of something else,
/// says nothing of the port now.
pub const HELD_FRESH: Duration = Duration::from_secs(5);

/// READY=1, once: when the first test passes, or when ssh has outlived the
/// gate time, or at the start when there is neither (SPEC §5; systemd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Readiness {
    pub(super) sent: bool,
}

impl Readiness {
    /// When a running ssh started at `started` counts as up.
    pub(super) fn deadline(&self, rules: &Rules, started: Time) -> Option<Time> {
        (!self.sent && rules.gate_time > 0)
            .then(|| started + Duration::from_secs(u64::from(rules.gate_time)))
    }

    pub(super) fn set(&mut self, out: &mut Actions) {
        if !self.sent {
            self.sent = true;
            out.push(Action::Ready);
        }
    }
}

/// WATCHDOG=1 at a fixed interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Watchdog {
    pub(super) every: Duration,
    pub(super) next: Time,
}

impl Watchdog {
    pub(super) fn run(&mut self, now: Time, out: &mut Actions) {
        if now >= self.next {
            out.push(Action::Watchdog);
            self.next = now + self.every;
        }
    }
}

/// The quiet second after a network change (a change is often a burst of
/// messages); then it is tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Settle {
    pub(super) until: Option<Time>,
}

impl Settle {
    /// Each change pushes the test back.
    pub(super) fn changed(&mut self, now: Time) {
        self.until = Some(now + SETTLE);
    }

    /// When the change is tested: once settled, and never on an ssh started
    /// at `started` that is still young.
    pub(super) fn due(&self, started: Option<Time>) -> Option<Time> {
        self.until
            .map(|at| started.map_or(at, |started| at.max(started + YOUNG)))
    }

    /// Whether a change is due by `now`; it is then forgotten.
    pub(super) fn take(&mut self, now: Time, started: Option<Time>) -> bool {
        let settled = self.due(started).is_some_and(|at| now >= at);
        if settled {
            self.until = None;
        }
        settled
    }

    pub(super) fn forget(&mut self) {
        self.until = None;
    }
}
