//! The connection test (SPEC §6): a line of test data sent into the tunnel
//! must come back unchanged, through a loop of forwards or a remote echo
//! service. The test never blocks: it is a small state machine that the event
//! loop drives with the descriptor it waits on and a deadline.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};

use crate::attempt::{Attempt, Did, Failure, Step, Verdict};
use crate::messages::{self, OsError};
use crate::owner::{self, Sockets};
use crate::time::Time;

/// How the test data comes back.
pub enum Mode {
    /// Out on `port`, back through the listener on `port + 1`.
    Loop { port: u16, listener: TcpListener },
    /// Out on `port` to a remote echo service, back on the same connection.
    Echo { port: u16 },
}

/// Opens the listener of loop mode on 127.0.0.1 only (std sets SO_REUSEADDR);
/// the error is the message of SPEC §6.
pub fn listen(port: u16) -> anyhow::Result<TcpListener> {
    let open = || -> io::Result<TcpListener> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    open().map_err(|e| anyhow::Error::new(OsError::from(e)).context(messages::bind(port)))
}

/// Takes a waiting connection off `listener`, non-blocking (std makes it
/// close-on-exec).
fn accept(listener: &TcpListener) -> io::Result<TcpStream> {
    let (stream, _) = listener.accept()?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Everything a test needs that lasts the whole run.
pub struct Monitor {
    pub mode: Mode,
    pub net_timeout: Duration,
    /// `NODENAME NAME PID ` — the fixed start of every test line.
    prefix: Vec<u8>,
    /// ` MESSAGE\r\n` — the fixed end.
    suffix: Vec<u8>,
}

impl Monitor {
    pub fn new(mode: Mode, net_timeout: Duration, name: &str, message: &[u8]) -> Monitor {
        use std::os::unix::ffi::OsStrExt;
        let mut prefix = nix::sys::utsname::uname()
            .map(|u| u.nodename().as_bytes().to_vec())
            .unwrap_or_default();
        prefix.extend_from_slice(&crate::messages::raw(&format!(
            " {} {} ",
            name,
            std::process::id()
        )));
        let mut suffix = vec![b' '];
        suffix.extend_from_slice(message);
        suffix.extend_from_slice(b"\r\n");
        Monitor {
            mode,
            net_timeout,
            prefix,
            suffix,
        }
    }

    fn port(&self) -> u16 {
        match self.mode {
            Mode::Loop { port, .. } | Mode::Echo { port } => port,
        }
    }

    /// Starts a test of the tunnel of ssh `ssh`: connects to the monitor
    /// port. A refused connection, or a listener there that is not ssh's,
    /// fails the test at once.
    pub fn start(&self, now: Time, ssh: i32) -> Result<Probe, Failure> {
        if let Mode::Loop { listener, .. } = &self.mode {
            // Connections left from before (a late return, a stranger) would
            // only stand in the way of this test's own.
            while accept(listener).is_ok() {}
        }
        let port = self.port();
        let sockets = Sockets::read(ssh, port);
        match &sockets {
            Some(s)
                if !s.listener_is_ssh(port) && !owner::listeners(&s.entries, port).is_empty() =>
            {
                // Someone else's: what came back would prove nothing.
                log::warn!("{}", messages::not_ssh_listener(port));
                return Err(Failure::NotSsh { port });
            }
            Some(_) => {}
            None => unknown_owners(),
        }
        let mut line = self.prefix.clone();
        line.extend_from_slice((crate::random::u64() >> 33).to_string().as_bytes());
        line.extend_from_slice(&self.suffix);
        let looped = matches!(self.mode, Mode::Loop { .. });
        let mut attempt = Attempt::new(line, looped, port, self.net_timeout, now);
        match connect(port) {
            Ok(out) => Ok(Probe {
                attempt,
                out,
                back: None,
                ssh,
                checked: sockets.is_some(),
            }),
            Err(e) => {
                let verdict = attempt.feed(Did::Failed(e), now);
                say(&mut attempt);
                match verdict {
                    Verdict::Failed(failure) => Err(failure),
                    _ => Err(Failure::Connect { port, error: e }),
                }
            }
        }
    }

    /// The descriptor and poll events the test waits for.
    pub fn interest<'a>(&'a self, probe: &'a Probe) -> (BorrowedFd<'a>, PollFlags) {
        match probe.attempt.step() {
            Step::Connecting | Step::Writing => (probe.out.as_fd(), PollFlags::POLLOUT),
            Step::Accepting => match &self.mode {
                Mode::Loop { listener, .. } => (listener.as_fd(), PollFlags::POLLIN),
                Mode::Echo { .. } => (probe.out.as_fd(), PollFlags::POLLIN),
            },
            Step::Reading => (
                probe.back.as_ref().unwrap_or(&probe.out).as_fd(),
                PollFlags::POLLIN,
            ),
        }
    }

    /// Moves the test on as far as it goes without waiting: does what the
    /// attempt asks, and tells it what happened.
    pub fn advance(&self, probe: &mut Probe, now: Time) -> Outcome {
        // Bounded: a peer that trickles bytes or strangers cannot keep us.
        for _ in 0..64 {
            let mut buf = [0u8; 256];
            let did = match probe.attempt.step() {
                Step::Connecting => match connect_result(&probe.out) {
                    Ok(true) => Did::Connected,
                    Ok(false) => Did::WouldBlock,
                    Err(e) => Did::Failed(e),
                },
                Step::Writing => match probe.out.write(probe.attempt.unsent()) {
                    Ok(n) => Did::Wrote(n),
                    Err(e) => match would(&e) {
                        Some(did) => did,
                        None => continue,
                    },
                },
                Step::Accepting => match &self.mode {
                    Mode::Loop { listener, .. } => match accept(listener) {
                        Ok(back) => {
                            let ssh = !probe.checked || from_ssh(&back, probe.ssh);
                            // A stranger's connection is closed at once.
                            probe.back = ssh.then_some(back);
                            Did::Accepted { ssh }
                        }
                        Err(e) => match would(&e) {
                            Some(did) => did,
                            None => continue,
                        },
                    },
                    Mode::Echo { .. } => Did::Failed(Errno::EINVAL),
                },
                Step::Reading => {
                    let want = probe.attempt.wanted().min(buf.len());
                    let stream = probe.back.as_mut().unwrap_or(&mut probe.out);
                    match stream.read(&mut buf[..want]) {
                        Ok(0) => Did::Closed,
                        Ok(n) => Did::Read(&buf[..n]),
                        Err(e) => match would(&e) {
                            Some(did) => did,
                            None => continue,
                        },
                    }
                }
            };
            let verdict = probe.attempt.feed(did, now);
            say(&mut probe.attempt);
            if probe.attempt.step() == Step::Accepting {
                // Waiting for a new connection back: the last one is done.
                probe.back = None;
            }
            match verdict {
                Verdict::Going { wait: true } => return Outcome::Pending,
                Verdict::Going { wait: false } => {}
                Verdict::Passed => return Outcome::Passed,
                Verdict::Failed(failure) => return Outcome::Failed(failure),
            }
        }
        Outcome::Pending
    }
}

/// What an I/O error tells the attempt: None for an interrupted call, to be
/// made again.
fn would(e: &io::Error) -> Option<Did<'static>> {
    match e.kind() {
        io::ErrorKind::WouldBlock => Some(Did::WouldBlock),
        io::ErrorKind::Interrupted => None,
        _ => Some(Did::Failed(messages::errno(e))),
    }
}

/// Logs what the attempt said, in its words.
fn say(attempt: &mut Attempt) {
    for said in attempt.take_said() {
        let (level, text) = messages::test_said(&said);
        log::log!(level, "{text}");
    }
}

/// One test in progress: the attempt and its sockets.
pub struct Probe {
    attempt: Attempt,
    out: TcpStream,
    back: Option<TcpStream>,
    /// The ssh whose tunnel is tested.
    ssh: i32,
    /// Whether the sockets' owners could be read when the test began.
    checked: bool,
}

impl Probe {
    pub fn deadline(&self) -> Time {
        self.attempt.deadline()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Passed,
    Failed(Failure),
}

/// Whether a connection accepted on the return port comes from ssh (or a
/// process it started). Where that cannot be read now (no descriptor left
/// under a tight limit), it is trusted, as before.
fn from_ssh(back: &TcpStream, ssh: i32) -> bool {
    let (Ok(peer), Ok(ours)) = (back.peer_addr(), back.local_addr()) else {
        return false;
    };
    match Sockets::read(ssh, ours.port()) {
        Some(s) => s.peer_is_ssh(peer.port(), ours.port()),
        None => {
            unknown_owners();
            true
        }
    }
}

/// Says once that the sockets' owners cannot be read here.
fn unknown_owners() {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        log::debug!("cannot tell whose sockets are whose here: tests trust what answers");
    }
}

/// Starts a non-blocking connection to 127.0.0.1:`port` (std has no
/// non-blocking connect).
fn connect(port: u16) -> Result<TcpStream, Errno> {
    let fd: OwnedFd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    use std::os::fd::AsRawFd;
    match socket::connect(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e),
    }
}

/// Whether a non-blocking connect has finished: Ok(true) connected,
/// Ok(false) still going, Err the reason it failed.
fn connect_result(stream: &TcpStream) -> Result<bool, Errno> {
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLOUT)];
    if poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) == 0 {
        return Ok(false);
    }
    match socket::getsockopt(stream, sockopt::SocketError)? {
        0 => Ok(true),
        e => Err(Errno::from_raw(e)),
    }
}
