//! One connection test (SPEC §6) as plain data, in the manner of a sans-I/O
//! protocol: [`Attempt::feed`] is told what the sockets did and the time,
//! and [`Attempt::step`] says what to do next. It touches no socket and
//! reads no clock; `probe` connects, writes, accepts and reads for it.
//!
//! The test: connect to the monitor port, write the line, then wait for it
//! to come back, through a new connection on the return port (loop mode) or
//! on the same connection (echo mode). A line that does not come back whole
//! and unchanged gets one more try that sends nothing new: loop mode waits
//! for a new connection back, echo mode reads on. Each wait has the network
//! timeout.

use std::time::Duration;

use nix::errno::Errno;

use crate::time::Time;

/// What the socket work is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Waiting for the connect to the monitor port to finish.
    Connecting,
    /// Writing [`Attempt::unsent`].
    Writing,
    /// Taking the next connection off the return port (loop mode).
    Accepting,
    /// Reading up to [`Attempt::wanted`] bytes from the connection back.
    Reading,
}

/// What the socket did, told to [`Attempt::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Did<'a> {
    /// The connect finished.
    Connected,
    /// Wrote this many bytes.
    Wrote(usize),
    /// A connection came in on the return port; `ssh`: from ssh (or a
    /// process it started), or from where owners cannot be told.
    Accepted { ssh: bool },
    /// Read these bytes.
    Read(&'a [u8]),
    /// The connection back was closed (read 0 bytes).
    Closed,
    /// Nothing to do until the descriptor is ready.
    WouldBlock,
    /// The step failed with this error.
    Failed(Errno),
}

/// Why a test failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connect to the monitor port failed (refused, timed out...).
    Connect { port: u16, error: Errno },
    /// Another process than ssh listens on the monitor port.
    NotSsh { port: u16 },
    /// Nothing came back on the return port within the network timeout.
    NoReturn,
    /// Taking the connection back failed.
    Accept(Errno),
    /// Two tries, and the line did not come back unchanged.
    Answer,
}

/// Where the test stands after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on: do [`Attempt::step`] again (`wait`: once its descriptor is
    /// ready, or at the deadline).
    Going {
        wait: bool,
    },
    Passed,
    Failed(Failure),
}

/// What the test has to say, for the log (the words are `messages`').
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// The connect to 127.0.0.1:`port` failed (info).
    ConnectFailed { port: u16, error: Errno },
    /// A connection back that is not ssh's, passed over (debug).
    NotFromSsh,
    /// No connection back in time (info).
    NoReturn,
    /// Taking the connection back failed (info).
    AcceptFailed(Errno),
    /// Nothing (more) to read in time: one more try (debug).
    ReadTimedOut,
    /// The line came back (debug).
    Passed,
    /// What came back is not the line (debug).
    Mismatch { sent: Vec<u8>, got: Vec<u8> },
    /// The second try failed too (debug).
    TwoTries,
}

/// One test in progress.
#[derive(Debug, Clone)]
pub struct Attempt {
    sent: Vec<u8>,
    /// Loop mode: the line comes back on a connection of its own.
    looped: bool,
    port: u16,
    net_timeout: Duration,
    step: Step,
    second: bool,
    written: usize,
    got: Vec<u8>,
    deadline: Time,
    /// What to log, in order, since the last [`Attempt::take_said`].
    said: Vec<Said>,
}

impl Attempt {
    /// A test of `line` through the monitor port `port`, its connect under
    /// way at `now`.
    pub fn new(
        line: Vec<u8>,
        looped: bool,
        port: u16,
        net_timeout: Duration,
        now: Time,
    ) -> Attempt {
        Attempt {
            sent: line,
            looped,
            port,
            net_timeout,
            step: Step::Connecting,
            second: false,
            written: 0,
            got: Vec::new(),
            deadline: now + net_timeout,
            said: Vec::new(),
        }
    }

    pub fn step(&self) -> Step {
        self.step
    }

    /// When the current wait ends.
    pub fn deadline(&self) -> Time {
        self.deadline
    }

    /// What is still to be written.
    pub fn unsent(&self) -> &[u8] {
        &self.sent[self.written.min(self.sent.len())..]
    }

    /// How many bytes are still to come back.
    pub fn wanted(&self) -> usize {
        self.sent.len().saturating_sub(self.got.len())
    }

    /// What the test said since the last call.
    pub fn take_said(&mut self) -> Vec<Said> {
        std::mem::take(&mut self.said)
    }

    /// What the socket did at `now` for the current step.
    pub fn feed(&mut self, did: Did, now: Time) -> Verdict {
        let timed_out = now >= self.deadline;
        let going = Verdict::Going { wait: false };
        match (self.step, did) {
            (_, Did::WouldBlock) if !timed_out => Verdict::Going { wait: true },
            (Step::Connecting, Did::Connected) => {
                self.step = Step::Writing;
                going
            }
            (Step::Connecting, Did::WouldBlock) => self.connect_failed(Errno::ETIMEDOUT),
            (Step::Connecting, Did::Failed(error)) => self.connect_failed(error),
            (Step::Writing, Did::Wrote(n)) => {
                self.written = (self.written + n).min(self.sent.len());
                if self.written == self.sent.len() {
                    self.wait_for_return(now);
                }
                going
            }
            (Step::Writing, _) => self.again(now),
            (Step::Accepting, Did::Accepted { ssh: false }) => {
                // A stranger's connection counts for nothing.
                self.said.push(Said::NotFromSsh);
                going
            }
            (Step::Accepting, Did::Accepted { ssh: true }) => {
                self.got.clear();
                self.step = Step::Reading;
                self.deadline = now + self.net_timeout;
                going
            }
            (Step::Accepting, Did::WouldBlock) => {
                self.said.push(Said::NoReturn);
                Verdict::Failed(Failure::NoReturn)
            }
            (Step::Accepting, Did::Failed(error)) => {
                self.said.push(Said::AcceptFailed(error));
                Verdict::Failed(Failure::Accept(error))
            }
            (Step::Reading, Did::Read(bytes)) => {
                let take = bytes.len().min(self.wanted());
                self.got.extend_from_slice(&bytes[..take]);
                if self.wanted() == 0 {
                    self.compare(now)
                } else {
                    going
                }
            }
            (Step::Reading, Did::WouldBlock) => {
                self.said.push(Said::ReadTimedOut);
                self.again(now)
            }
            (Step::Reading, Did::Closed | Did::Failed(_)) => self.compare(now),
            // Told something the step cannot have done: taken as a failure
            // of the step, never as a pass.
            (Step::Connecting, _) => self.connect_failed(Errno::EINVAL),
            (Step::Accepting, _) => {
                self.said.push(Said::AcceptFailed(Errno::EINVAL));
                Verdict::Failed(Failure::Accept(Errno::EINVAL))
            }
            (Step::Reading, _) => self.again(now),
        }
    }

    fn connect_failed(&mut self, error: Errno) -> Verdict {
        let port = self.port;
        self.said.push(Said::ConnectFailed { port, error });
        Verdict::Failed(Failure::Connect { port, error })
    }

    /// The line is out: wait for it to come back.
    fn wait_for_return(&mut self, now: Time) {
        self.step = if self.looped {
            Step::Accepting
        } else {
            Step::Reading
        };
        self.deadline = now + self.net_timeout;
    }

    fn compare(&mut self, now: Time) -> Verdict {
        if self.got == self.sent {
            self.said.push(Said::Passed);
            return Verdict::Passed;
        }
        self.said.push(Said::Mismatch {
            sent: self.sent.clone(),
            got: self.got.clone(),
        });
        self.again(now)
    }

    /// One more try that sends nothing new (SPEC §6): loop mode waits for a
    /// new connection back, echo mode reads on.
    fn again(&mut self, now: Time) -> Verdict {
        if self.second {
            self.said.push(Said::TwoTries);
            return Verdict::Failed(Failure::Answer);
        }
        self.second = true;
        self.got.clear();
        self.wait_for_return(now);
        Verdict::Going { wait: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: Duration = Duration::from_secs(15);
    const LINE: &[u8] = b"nas tunnel 42 1234 x\r\n";

    fn s(n: u64) -> Time {
        Duration::from_secs(n)
    }

    fn sent(looped: bool) -> Attempt {
        let mut a = Attempt::new(LINE.to_vec(), looped, 20000, NET, s(0));
        assert_eq!(a.feed(Did::Connected, s(1)), Verdict::Going { wait: false });
        assert_eq!(a.unsent(), LINE);
        assert_eq!(a.feed(Did::Wrote(5), s(1)), Verdict::Going { wait: false });
        assert_eq!(a.unsent(), &LINE[5..]);
        assert_eq!(
            a.feed(Did::Wrote(LINE.len() - 5), s(1)),
            Verdict::Going { wait: false }
        );
        a
    }

    #[test]
    fn a_loop_passes_with_its_line_back_from_ssh() {
        let mut a = sent(true);
        assert_eq!(a.step(), Step::Accepting);
        assert_eq!(a.deadline(), s(16));
        // A stranger first: passed over, the wait goes on.
        assert_eq!(
            a.feed(Did::Accepted { ssh: false }, s(2)),
            Verdict::Going { wait: false }
        );
        assert_eq!(a.step(), Step::Accepting);
        assert_eq!(a.feed(Did::WouldBlock, s(3)), Verdict::Going { wait: true });
        assert_eq!(
            a.feed(Did::Accepted { ssh: true }, s(4)),
            Verdict::Going { wait: false }
        );
        assert_eq!((a.step(), a.deadline()), (Step::Reading, s(19)));
        assert_eq!(
            a.feed(Did::Read(&LINE[..3]), s(4)),
            Verdict::Going { wait: false }
        );
        assert_eq!(a.wanted(), LINE.len() - 3);
        assert_eq!(a.feed(Did::Read(&LINE[3..]), s(4)), Verdict::Passed);
        assert_eq!(a.take_said(), vec![Said::NotFromSsh, Said::Passed]);
    }

    #[test]
    fn an_echo_reads_on_the_same_connection() {
        let mut a = sent(false);
        assert_eq!(a.step(), Step::Reading);
        assert_eq!(a.feed(Did::Read(LINE), s(2)), Verdict::Passed);
    }

    #[test]
    fn a_refused_or_silent_monitor_port_fails_at_once() {
        let mut a = Attempt::new(LINE.to_vec(), true, 20000, NET, s(0));
        let refused = Errno::ECONNREFUSED;
        assert_eq!(
            a.feed(Did::Failed(refused), s(0)),
            Verdict::Failed(Failure::Connect {
                port: 20000,
                error: refused
            })
        );
        let mut a = Attempt::new(LINE.to_vec(), true, 20000, NET, s(0));
        assert_eq!(
            a.feed(Did::WouldBlock, s(14)),
            Verdict::Going { wait: true }
        );
        let timed_out = Failure::Connect {
            port: 20000,
            error: Errno::ETIMEDOUT,
        };
        assert_eq!(a.feed(Did::WouldBlock, s(15)), Verdict::Failed(timed_out));
        assert_eq!(
            a.take_said(),
            vec![Said::ConnectFailed {
                port: 20000,
                error: Errno::ETIMEDOUT
            }]
        );
    }

    #[test]
    fn a_wrong_or_missing_answer_gets_one_more_try() {
        // Loop: a wrong line, then a new connection back with the right one.
        let mut a = sent(true);
        a.feed(Did::Accepted { ssh: true }, s(2));
        assert_eq!(
            a.feed(Did::Read(b"wrong"), s(2)),
            Verdict::Going { wait: false }
        );
        assert_eq!(a.feed(Did::Closed, s(2)), Verdict::Going { wait: false });
        assert_eq!((a.step(), a.deadline()), (Step::Accepting, s(17)));
        a.feed(Did::Accepted { ssh: true }, s(3));
        assert_eq!(a.feed(Did::Read(LINE), s(3)), Verdict::Passed);
        let said = a.take_said();
        assert!(
            matches!(&said[0], Said::Mismatch { got, .. } if got == b"wrong"),
            "{said:?}"
        );
        // Echo: nothing in time, then the line on the second read.
        let mut a = sent(false);
        assert_eq!(
            a.feed(Did::WouldBlock, s(16)),
            Verdict::Going { wait: false }
        );
        assert_eq!((a.step(), a.deadline()), (Step::Reading, s(31)));
        assert_eq!(a.feed(Did::Read(LINE), s(17)), Verdict::Passed);
        assert_eq!(a.take_said(), vec![Said::ReadTimedOut, Said::Passed]);
        // Twice wrong: failed.
        let mut a = sent(false);
        a.feed(Did::Closed, s(2));
        assert_eq!(a.feed(Did::Closed, s(2)), Verdict::Failed(Failure::Answer));
        assert_eq!(a.take_said().last(), Some(&Said::TwoTries));
        // A write that fails is a try that failed.
        let mut a = Attempt::new(LINE.to_vec(), true, 20000, NET, s(0));
        a.feed(Did::Connected, s(0));
        assert_eq!(
            a.feed(Did::Failed(Errno::EPIPE), s(0)),
            Verdict::Going { wait: false }
        );
        assert_eq!(a.step(), Step::Accepting);
    }

    #[test]
    fn no_connection_back_in_time_fails() {
        let mut a = sent(true);
        assert_eq!(
            a.feed(Did::WouldBlock, s(16)),
            Verdict::Failed(Failure::NoReturn)
        );
        let mut a = sent(true);
        assert_eq!(
            a.feed(Did::Failed(Errno::EMFILE), s(2)),
            Verdict::Failed(Failure::Accept(Errno::EMFILE))
        );
    }

    #[test]
    fn more_than_the_line_is_never_taken_and_nothing_odd_passes() {
        let mut a = sent(false);
        let mut long = LINE.to_vec();
        long.extend_from_slice(b"and more");
        assert_eq!(a.feed(Did::Read(&long), s(2)), Verdict::Passed);
        // Told what a step cannot do: never a pass.
        let mut a = sent(false);
        assert_eq!(a.feed(Did::Connected, s(2)), Verdict::Going { wait: false });
        assert_eq!(
            a.feed(Did::Wrote(3), s(2)),
            Verdict::Failed(Failure::Answer)
        );
        let mut a = Attempt::new(LINE.to_vec(), true, 1, NET, s(0));
        assert!(matches!(a.feed(Did::Read(LINE), s(0)), Verdict::Failed(_)));
    }
}
