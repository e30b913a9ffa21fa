//! ssh's own words: what ssh writes on its stderr (`Permission denied
//! (publickey).`, `Host key verification failed.`, `Warning: remote port
//! forwarding failed ...`) is the reason a tunnel is down, and is kept.
//!
//! Where autossh's stderr is a terminal, ssh writes there itself. Otherwise
//! ssh's stderr is a pipe that autossh reads in its one `poll`: each line goes
//! on unchanged to autossh's stderr where that leads somewhere (the journal,
//! a redirected file), or is logged at INFO as `ssh: LINE` where it does not
//! (in the background, or /dev/null). Bounded: a line is cut at
//! [`LINE_MAX`] bytes; of the log lines, at most [`PER_START`] per start of
//! ssh and [`PER_MINUTE`] a minute, the rest counted and said in one line,
//! and the last line of each ssh is always logged. The pipe is always read,
//! so ssh never waits on it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::messages;
use crate::time::Time;

/// Where a longer line is cut; what follows is dropped, and the kept part is
/// marked with [`CUT`].
pub const LINE_MAX: usize = 512;
/// The mark of a cut line.
pub const CUT: &str = " [cut]";
/// Log lines of one start of ssh, at most (the last line aside).
pub const PER_START: u32 = 20;
/// Log lines of ssh a minute, at most, over all starts.
pub const PER_MINUTE: u32 = 60;
const MINUTE: Duration = Duration::from_secs(60);

/// Where ssh's lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Unchanged to autossh's stderr.
    Stderr,
    /// Into autossh's log as `ssh: LINE`.
    Log,
}

/// How many lines may be logged: a pure count over plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    this_start: u32,
    minute_began: Option<Time>,
    this_minute: u32,
    /// Lines not logged since the last report of them.
    dropped: u32,
}

impl Budget {
    pub fn new() -> Budget {
        Budget {
            this_start: 0,
            minute_began: None,
            this_minute: 0,
            dropped: 0,
        }
    }

    /// A new ssh: its own allowance.
    pub fn started(&mut self) {
        self.this_start = 0;
    }

    /// Whether a line at `now` may be logged; counts it either way.
    pub fn admit(&mut self, now: Time) -> bool {
        if self
            .minute_began
            .is_none_or(|began| now.saturating_sub(began) >= MINUTE)
        {
            self.minute_began = Some(now);
            self.this_minute = 0;
        }
        if self.this_start >= PER_START || self.this_minute >= PER_MINUTE {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        self.this_start += 1;
        self.this_minute += 1;
        true
    }

    /// How many lines were not logged since the last call.
    pub fn take_dropped(&mut self) -> u32 {
        std::mem::take(&mut self.dropped)
    }
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::new()
    }
}

/// A line for the log: CR and LF gone, cut where it is too long.
pub fn shown_line(line: &[u8], cut: bool) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut text = messages::shown(line);
    if cut {
        text.push_str(CUT);
    }
    text
}

/// A line of ssh's, as kept until the next.
struct Last {
    line: Vec<u8>,
    cut: bool,
    logged: bool,
    /// When it was read.
    at: Time,
}

/// The stderr of the running ssh, read as it comes.
pub struct Words {
    pipe: OwnedFd,
    sink: Sink,
    /// The line being read, up to [`LINE_MAX`] bytes.
    line: Vec<u8>,
    /// The line being read is longer than [`LINE_MAX`].
    cut: bool,
    /// The last whole line, to be logged at the end if it was not.
    last: Option<Last>,
}

impl Words {
    pub fn new(pipe: OwnedFd, sink: Sink) -> Words {
        Words {
            pipe,
            sink,
            line: Vec::new(),
            cut: false,
            last: None,
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }

    /// The last whole line ssh wrote, as it wrote it (CR and all), and
    /// when it was read.
    pub fn last(&self) -> Option<(&[u8], Time)> {
        self.last.as_ref().map(|l| (&l.line[..], l.at))
    }

    /// Reads what is there; each whole line goes where it goes. Returns false
    /// once the pipe is closed (ssh and all it started are gone).
    pub fn read(&mut self, now: Time, budget: &mut Budget) -> bool {
        let mut buf = [0u8; 1024];
        // Bounded: a chatty ssh cannot keep us here.
        for _ in 0..64 {
            match nix::unistd::read(&self.pipe, &mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    for &b in &buf[..n] {
                        self.byte(b, now, budget);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => return true,
            }
        }
        true
    }

    fn byte(&mut self, b: u8, now: Time, budget: &mut Budget) {
        if b == b'\n' {
            let line = std::mem::take(&mut self.line);
            let cut = std::mem::take(&mut self.cut);
            self.line_done(line, cut, now, budget);
        } else if self.line.len() < LINE_MAX {
            self.line.push(b);
        } else {
            self.cut = true;
        }
    }

    fn line_done(&mut self, line: Vec<u8>, cut: bool, now: Time, budget: &mut Budget) {
        match self.sink {
            Sink::Stderr => {
                to_stderr(&line, cut);
                self.last = Some(Last {
                    line,
                    cut,
                    logged: true,
                    at: now,
                });
            }
            Sink::Log => {
                let logged = budget.admit(now);
                if logged {
                    report_dropped(budget);
                    log::info!("ssh: {}", shown_line(&line, cut));
                }
                self.last = Some(Last {
                    line,
                    cut,
                    logged,
                    at: now,
                });
            }
        }
    }

    /// ssh has ended: what is left is read, a last unfinished line counts as
    /// a line, and the last line is logged if it was not. Returns that line
    /// and when it was read.
    pub fn finish(mut self, now: Time, budget: &mut Budget) -> Option<(Vec<u8>, Time)> {
        self.read(now, budget);
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let cut = self.cut;
            self.line_done(line, cut, now, budget);
        }
        if self.sink == Sink::Log {
            let unlogged = self.last.as_ref().filter(|l| !l.logged);
            let dropped = budget
                .take_dropped()
                .saturating_sub(u32::from(unlogged.is_some()));
            if dropped > 0 {
                log::info!("ssh: ({dropped} more lines not logged)");
            }
            if let Some(l) = unlogged {
                log::info!("ssh: {}", shown_line(&l.line, l.cut));
            }
        }
        self.last.map(|l| (l.line, l.at))
    }
}

/// The remote port ssh's last line says the relay would not forward (it
/// still holds it for an earlier session): OpenSSH's `Error: remote port
/// forwarding failed for listen port N` (with ExitOnForwardFailure) or its
/// `Warning: ...`.
pub fn held_port(line: &[u8]) -> Option<u16> {
    const SAID: &[u8] = b"remote port forwarding failed for listen port ";
    let at = line.windows(SAID.len()).position(|w| w == SAID)? + SAID.len();
    let digits: Vec<u8> = line[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Whether ssh's last line says it got as far as the relay's door (a TCP
/// connection): anything but OpenSSH's words of a connect that failed
/// (`ssh: connect to host H port P: Connection timed out`, `... to address
/// ...`) or of a name not found. Words we do not know count as reached:
/// the door is then taken as open, which at worst keeps a wait.
pub fn reached_relay(line: &[u8]) -> bool {
    const NOT: [&[u8]; 3] = [
        b"connect to host ",
        b"connect to address ",
        b"Could not resolve hostname ",
    ];
    !NOT.iter()
        .any(|said| line.windows(said.len()).any(|w| w == *said))
}

fn report_dropped(budget: &mut Budget) {
    let dropped = budget.take_dropped();
    if dropped > 0 {
        log::info!("ssh: ({dropped} more lines not logged)");
    }
}

/// A line to autossh's stderr, as ssh wrote it (one write, so it stays
/// whole), unless stderr cannot take it now: a reader that stops reading
/// must not stop autossh.
fn to_stderr(line: &[u8], cut: bool) {
    let stderr = std::io::stderr();
    let mut fds = [PollFd::new(stderr.as_fd(), PollFlags::POLLOUT)];
    if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1)) {
        return;
    }
    let mut out = Vec::with_capacity(line.len() + CUT.len() + 1);
    out.extend_from_slice(line);
    if cut {
        out.extend_from_slice(CUT.as_bytes());
    }
    out.push(b'\n');
    let _ = nix::unistd::write(stderr, &out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_an_ssh_that_got_through() {
        for line in [
            &b"ssh: connect to host 10.0.0.2 port 22: Connection timed out"[..],
            b"ssh: connect to host relay port 22: No route to host\r",
            b"ssh: connect to address 2001:db8::2 port 22: Connection refused",
            b"ssh: Could not resolve hostname relay: Name or service not known",
        ] {
            assert!(!reached_relay(line), "{}", String::from_utf8_lossy(line));
        }
        for line in [
            &b"root@10.0.0.2: Permission denied (publickey)."[..],
            b"Error: remote port forwarding failed for listen port 2200",
            b"Connection timed out during banner exchange",
            b"kex_exchange_identification: read: Connection reset by peer",
            b"",
        ] {
            assert!(reached_relay(line), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_held_port_in_ssh_words() {
        assert_eq!(
            held_port(b"Error: remote port forwarding failed for listen port 2200"),
            Some(2200)
        );
        assert_eq!(
            held_port(b"Warning: remote port forwarding failed for listen port 80\r"),
            Some(80)
        );
        assert_eq!(
            held_port(b"Error: remote port forwarding failed for listen path /tmp/s"),
            None
        );
        assert_eq!(
            held_port(b"remote port forwarding failed for listen port 99999"),
            None
        );
        assert_eq!(held_port(b"Permission denied (publickey)."), None);
    }

    fn s(n: u64) -> Time {
        Duration::from_secs(n)
    }

    #[test]
    fn a_start_and_a_minute_have_their_budgets() {
        let mut b = Budget::new();
        let admitted = (0..30).filter(|_| b.admit(s(0))).count();
        assert_eq!(admitted, PER_START as usize);
        assert_eq!(b.take_dropped(), 10);
        assert_eq!(b.take_dropped(), 0);
        // A new ssh: again, until the minute's budget runs out.
        b.started();
        assert_eq!((0..30).filter(|_| b.admit(s(1))).count(), 20);
        b.started();
        assert_eq!((0..30).filter(|_| b.admit(s(2))).count(), 20);
        b.started();
        assert_eq!((0..30).filter(|_| b.admit(s(3))).count(), 0);
        assert_eq!(b.take_dropped(), 10 + 10 + 30);
        // A minute on, lines are logged again.
        b.started();
        assert!(b.admit(s(61)));
    }

    #[test]
    fn lines_for_the_log() {
        assert_eq!(
            shown_line(b"Permission denied (publickey).\r", false),
            "Permission denied (publickey)."
        );
        assert_eq!(shown_line(b"abc", true), "abc [cut]");
        assert_eq!(messages::raw(&shown_line(b"\xff", false)), b"\xff");
    }
}
