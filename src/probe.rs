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

use crate::machine::Time;
use crate::messages::{self, OsError};
use crate::owner::{self, Sockets};

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

fn text(e: &io::Error) -> String {
    OsError::from(messages::errno(e)).to_string()
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
    pub fn start(&self, now: Time, ssh: i32) -> Option<Probe> {
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
                log::warn!("127.0.0.1:{port} is not ssh's: another process listens there");
                return None;
            }
            Some(_) => {}
            None => unknown_owners(),
        }
        let mut line = self.prefix.clone();
        line.extend_from_slice((crate::random::u64() >> 33).to_string().as_bytes());
        line.extend_from_slice(&self.suffix);
        match connect(self.port()) {
            Ok(out) => Some(Probe {
                sent: line,
                out,
                back: None,
                step: Step::Connecting,
                second: false,
                written: 0,
                got: Vec::new(),
                deadline: now + self.net_timeout,
                ssh,
                checked: sockets.is_some(),
            }),
            Err(e) => {
                log::info!("127.0.0.1:{}: {}", self.port(), OsError(e));
                None
            }
        }
    }

    /// The descriptor and poll events the test waits for.
    pub fn interest<'a>(&'a self, probe: &'a Probe) -> (BorrowedFd<'a>, PollFlags) {
        match probe.step {
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

    /// Moves the test on as far as it goes without waiting.
    pub fn advance(&self, probe: &mut Probe, now: Time) -> Outcome {
        let timed_out = now >= probe.deadline;
        loop {
            match probe.step {
                Step::Connecting => match connect_result(&probe.out) {
                    Ok(true) => probe.step = Step::Writing,
                    Ok(false) if !timed_out => return Outcome::Pending,
                    Ok(false) => {
                        log::info!("127.0.0.1:{}: {}", self.port(), OsError(Errno::ETIMEDOUT));
                        return Outcome::Failed;
                    }
                    Err(e) => {
                        log::info!("127.0.0.1:{}: {}", self.port(), OsError(e));
                        return Outcome::Failed;
                    }
                },
                Step::Writing => match probe.out.write(&probe.sent[probe.written..]) {
                    Ok(n) => {
                        probe.written += n;
                        if probe.written == probe.sent.len() {
                            probe.step = self.after_sending();
                            probe.deadline = now + self.net_timeout;
                            return self.advance(probe, now);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && !timed_out => {
                        return Outcome::Pending
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.again(probe, now),
                },
                Step::Accepting => {
                    let Mode::Loop { listener, .. } = &self.mode else {
                        probe.step = Step::Reading;
                        continue;
                    };
                    match accept(listener) {
                        Ok(back) if probe.checked && !from_ssh(&back, probe.ssh) => {
                            // A stranger's connection counts for nothing.
                            log::debug!("a connection to the return port not from ssh, closed");
                            continue;
                        }
                        Ok(back) => {
                            probe.back = Some(back);
                            probe.got.clear();
                            probe.step = Step::Reading;
                            probe.deadline = now + self.net_timeout;
                            return self.advance(probe, now);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if !timed_out {
                                return Outcome::Pending;
                            }
                            log::info!("timeout polling to accept read connection");
                            return Outcome::Failed;
                        }
                        Err(e) => {
                            log::info!("error accepting read connection: {}", text(&e));
                            return Outcome::Failed;
                        }
                    }
                }
                Step::Reading => {
                    let want = probe.sent.len() - probe.got.len();
                    let mut buf = vec![0u8; want];
                    let stream = probe.back.as_mut().unwrap_or(&mut probe.out);
                    match stream.read(&mut buf) {
                        Ok(0) => return self.compare(probe, now),
                        Ok(n) => {
                            probe.got.extend_from_slice(&buf[..n]);
                            if probe.got.len() == probe.sent.len() {
                                return self.compare(probe, now);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if !timed_out {
                                return Outcome::Pending;
                            }
                            log::debug!("timeout on io poll, looping to accept again");
                            return self.again(probe, now);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return self.compare(probe, now),
                    }
                }
            }
        }
    }

    fn after_sending(&self) -> Step {
        match self.mode {
            Mode::Loop { .. } => Step::Accepting,
            Mode::Echo { .. } => Step::Reading,
        }
    }

    fn compare(&self, probe: &mut Probe, now: Time) -> Outcome {
        if probe.got == probe.sent {
            log::debug!("connection ok");
            return Outcome::Passed;
        }
        log::debug!(
            "not what I sent: \"{}\" : \"{}\"",
            messages::shown(&probe.sent),
            messages::shown(&probe.got)
        );
        self.again(probe, now)
    }

    /// One more attempt that sends nothing new (SPEC §6): loop mode waits for a
    /// new connection back, echo mode reads on.
    fn again(&self, probe: &mut Probe, now: Time) -> Outcome {
        if probe.second {
            log::debug!("tried connection 2 times and failed");
            return Outcome::Failed;
        }
        probe.second = true;
        probe.got.clear();
        probe.back = None;
        probe.deadline = now + self.net_timeout;
        probe.step = self.after_sending();
        self.advance(probe, now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connecting,
    Writing,
    Accepting,
    Reading,
}

/// One test in progress.
pub struct Probe {
    sent: Vec<u8>,
    out: TcpStream,
    back: Option<TcpStream>,
    step: Step,
    second: bool,
    written: usize,
    got: Vec<u8>,
    deadline: Time,
    /// The ssh whose tunnel is tested.
    ssh: i32,
    /// Whether the sockets' owners could be read when the test began.
    checked: bool,
}

impl Probe {
    pub fn deadline(&self) -> Time {
        self.deadline
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Passed,
    Failed,
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
