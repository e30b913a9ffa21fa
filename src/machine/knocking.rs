//! Knocking on the relay's door while waiting (and while ssh is still
//! connecting): the schedule, and what an answer decides.

use std::net::SocketAddr;
use std::time::Duration;

use nix::errno::Errno;

use super::{Action, Actions, Machine, Phase, Then};
use crate::messages::Note;
use crate::time::Time;

/// While waiting to start ssh again, the relay's door (the address and
/// port of ssh's last connection) is knocked on: a TCP connect, nothing
/// sent. Knocks start at most this often: a relay that is back is found
/// within about a second, for one SYN a second.
pub const KNOCK_EVERY: Duration = Duration::from_secs(1);
/// How long a knock waits for an answer before it counts as unanswered
/// (the relay's replies dropped): the next one then starts at once. Long
/// enough for the kernel to send its SYN again (after 1 s) within one
/// knock: a single lost SYN is not taken for a closed door.
pub const KNOCK_WAIT: Duration = Duration::from_secs(3);

/// The knocks of one wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Knocking {
    /// When the knock in flight started.
    pub(super) since: Option<Time>,
    /// When the next one may start; None: no more in this wait.
    pub(super) next: Option<Time>,
    /// A knock of this wait found the door closed.
    pub(super) closed: bool,
    /// The last answer before this wait found it closed (the relay was
    /// away when the ssh before it started, and no knock found it back
    /// since): an open door at the first knock is the relay back.
    pub(super) was_closed: bool,
}

impl Knocking {
    pub(super) fn deadline(&self) -> Option<Time> {
        match self.since {
            Some(since) => Some(since + KNOCK_WAIT),
            None => self.next,
        }
    }
}

impl Machine {
    /// A knock that is due: the one in flight given up on (it counts as
    /// closed), or the next one started.
    pub(super) fn knock_due(&mut self, now: Time, out: &mut Actions) {
        let Some(door) = self.door else {
            return;
        };
        if let Some(since) = self.knocking.since {
            if now < since + KNOCK_WAIT {
                return;
            }
            out.push(Action::CancelKnock);
            self.knocking.since = None;
            self.closed_door(door, Errno::ETIMEDOUT, out);
            self.knocking.next = Some((since + KNOCK_EVERY).max(now));
        }
        if self.knocking.next.is_some_and(|at| now >= at) {
            self.knocking.since = Some(now);
            self.knocking.next = Some(now + KNOCK_EVERY);
            self.last_knock = Some(now);
            out.push(Action::Knock(door));
        }
    }

    /// The door did not open: while waiting, the reason says so, the first
    /// time in a wait.
    pub(super) fn closed_door(&mut self, door: SocketAddr, error: Errno, out: &mut Actions) {
        self.door_closed = true;
        if !self.knocking.closed {
            self.knocking.closed = true;
            if let Phase::Waiting { .. } = self.phase {
                self.why(Note::RelayUnreachable { door, error }, out);
            }
        }
    }

    /// What a look at the running ssh's connection found: still connecting
    /// (SYN-SENT, its SYNs lost: without ConnectTimeout ssh may sit there
    /// for two minutes, and gets through only at its next retransmission),
    /// or not. A connecting ssh's door is knocked on; once a knock gets
    /// through, it is looked at again, and if it is still connecting then,
    /// it is replaced at once.
    pub(super) fn found(&mut self, connecting: bool, now: Time, out: &mut Actions) {
        let recheck = std::mem::take(&mut self.rechecking);
        let Phase::Running { .. } = self.phase else {
            return;
        };
        match (connecting, recheck) {
            (true, true) => {
                if let Some(door) = self.door {
                    self.why(Note::StuckConnecting(door), out);
                }
                // Started again through the backoff: its first quick starts
                // are at once, and a path where knocks get through and ssh
                // does not still ends in growing waits.
                self.stop(Then::Restart, now, out);
            }
            (true, false) if self.rules.knock => {
                let first = self
                    .last_knock
                    .map_or(now, |last| (last + KNOCK_EVERY).max(now));
                self.knocking = Knocking {
                    next: Some(first),
                    ..Knocking::default()
                };
            }
            _ => self.stop_knocking(out),
        }
    }

    /// The answer to a knock: a door that opened after it was found closed
    /// (in this wait, or by the last knock before it) ends the wait; one
    /// open from the first knock, where no knock found it closed before,
    /// says that reaching the relay is not what failed, and knocking stops
    /// for this wait.
    pub(super) fn knocked(&mut self, error: Option<Errno>, now: Time, out: &mut Actions) {
        let (Some(_), Some(door)) = (self.knocking.since, self.door) else {
            return;
        };
        self.knocking.since = None;
        if error.is_none() {
            self.door_closed = false;
        }
        if let Phase::Running { .. } = self.phase {
            match error {
                Some(error) if !about_the_relay(error) => self.knocking.next = None,
                Some(error) => self.closed_door(door, error, out),
                // The relay answers: is ssh still stuck?
                None => {
                    self.knocking.next = None;
                    self.rechecking = true;
                    out.push(Action::FindDoor);
                }
            }
            return;
        }
        match error {
            // This host could not knock (no descriptor, no such address
            // here): that says nothing of the relay; no more knocks now.
            Some(error) if !about_the_relay(error) => self.knocking.next = None,
            Some(error) => self.closed_door(door, error, out),
            None if self.knocking.closed || self.knocking.was_closed => {
                out.log(Note::RelayBack(door));
                self.launch(now, out);
            }
            None => self.knocking.next = None,
        }
    }

    /// Ends the knocks of a wait that is over.
    pub(super) fn stop_knocking(&mut self, out: &mut Actions) {
        if self.knocking.since.is_some() {
            out.push(Action::CancelKnock);
        }
        self.knocking = Knocking::default();
    }
}

/// Whether a knock's failure says something of the relay (refused,
/// unreachable, timed out), rather than of this host.
pub fn about_the_relay(error: Errno) -> bool {
    matches!(
        error,
        Errno::ECONNREFUSED
            | Errno::ETIMEDOUT
            | Errno::EHOSTUNREACH
            | Errno::ENETUNREACH
            | Errno::EHOSTDOWN
            | Errno::ENETDOWN
            | Errno::ECONNRESET
            | Errno::ECONNABORTED
    )
}
