//! The connection test (SPEC §6): a line of test data sent into the tunnel
//! must come back unchanged, through a loop of forwards or a remote echo
//! service. The test never blocks: it is a small state machine that the event
//! loop drives with the descriptor it waits on and a deadline.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::sys;

/// How the test data comes back.
pub enum Path {
    /// Out on `port`, back through the listener on `port + 1`.
    Loop { port: u16, listener: TcpListener },
    /// Out on `port` to a remote echo service, back on the same connection.
    Echo { port: u16 },
}

/// Opens the listener of loop mode on 127.0.0.1 only; the error is the message
/// of SPEC §6.
pub fn listen(port: u16) -> Result<TcpListener, String> {
    // std sets SO_REUSEADDR and close-on-exec on listeners.
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
        .map_err(|e| format!("bind on 127.0.0.1:{}: {}", port, sys::error_text(&e)))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("bind on 127.0.0.1:{}: {}", port, sys::error_text(&e)))?;
    Ok(listener)
}

/// Everything a test needs that lasts the whole run.
pub struct Monitor {
    pub path: Path,
    pub net_timeout: Duration,
    /// `NODENAME NAME PID ` — the fixed start of every test line.
    prefix: String,
    /// ` MESSAGE\r\n` — the fixed end.
    suffix: Vec<u8>,
}

impl Monitor {
    pub fn new(path: Path, net_timeout: Duration, name: &str, message: &[u8]) -> Monitor {
        let mut suffix = vec![b' '];
        suffix.extend_from_slice(message);
        suffix.extend_from_slice(b"\r\n");
        Monitor {
            path,
            net_timeout,
            prefix: format!("{} {} {} ", sys::nodename(), name, std::process::id()),
            suffix,
        }
    }

    fn port(&self) -> u16 {
        match self.path {
            Path::Loop { port, .. } | Path::Echo { port } => port,
        }
    }

    /// Starts a test: connects to the monitor port. A refused connection fails
    /// the test at once.
    pub fn start(&self, now: Instant) -> Option<Probe> {
        if let Path::Loop { listener, .. } = &self.path {
            // Connections left from before (a late return, a stranger) would
            // only stand in the way of this test's own.
            while listener.accept().is_ok() {}
        }
        let mut line = self.prefix.clone().into_bytes();
        line.extend_from_slice((sys::random_u64() >> 33).to_string().as_bytes());
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
            }),
            Err(e) => {
                info!("127.0.0.1:{}: {}", self.port(), sys::error_text(&e));
                None
            }
        }
    }

    /// The descriptor and poll events the test waits for.
    pub fn interest(&self, probe: &Probe) -> (RawFd, i16) {
        match probe.step {
            Step::Connecting | Step::Writing => (probe.out.as_raw_fd(), libc::POLLOUT),
            Step::Accepting => match &self.path {
                Path::Loop { listener, .. } => (listener.as_raw_fd(), libc::POLLIN),
                Path::Echo { .. } => (probe.out.as_raw_fd(), libc::POLLIN),
            },
            Step::Reading => (
                probe.back.as_ref().unwrap_or(&probe.out).as_raw_fd(),
                libc::POLLIN,
            ),
        }
    }

    /// Moves the test on as far as it goes without waiting.
    pub fn advance(&self, probe: &mut Probe, now: Instant) -> Outcome {
        let timed_out = now >= probe.deadline;
        loop {
            match probe.step {
                Step::Connecting => match connect_result(&probe.out) {
                    Ok(true) => probe.step = Step::Writing,
                    Ok(false) if !timed_out => return Outcome::Pending,
                    Ok(false) => {
                        info!(
                            "127.0.0.1:{}: {}",
                            self.port(),
                            sys::errno_text(libc::ETIMEDOUT)
                        );
                        return Outcome::Failed;
                    }
                    Err(e) => {
                        info!("127.0.0.1:{}: {}", self.port(), sys::error_text(&e));
                        return Outcome::Failed;
                    }
                },
                Step::Writing => match (&probe.out).write(&probe.sent[probe.written..]) {
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
                    let Path::Loop { listener, .. } = &self.path else {
                        probe.step = Step::Reading;
                        continue;
                    };
                    match listener.accept() {
                        Ok((back, _)) => {
                            let _ = back.set_nonblocking(true);
                            probe.back = Some(back);
                            probe.got.clear();
                            probe.step = Step::Reading;
                            probe.deadline = now + self.net_timeout;
                            return self.advance(probe, now);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock && !timed_out => {
                            return Outcome::Pending
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            info!("timeout polling to accept read connection");
                            return Outcome::Failed;
                        }
                        Err(e) => {
                            info!("error accepting read connection: {}", sys::error_text(&e));
                            return Outcome::Failed;
                        }
                    }
                }
                Step::Reading => {
                    let want = probe.sent.len() - probe.got.len();
                    let mut buf = vec![0u8; want];
                    let stream = probe.back.as_ref().unwrap_or(&probe.out);
                    match { stream }.read(&mut buf) {
                        Ok(0) => return self.compare(probe, now),
                        Ok(n) => {
                            probe.got.extend_from_slice(&buf[..n]);
                            if probe.got.len() == probe.sent.len() {
                                return self.compare(probe, now);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock && !timed_out => {
                            return Outcome::Pending
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            debug!("timeout on io poll, looping to accept again");
                            return self.again(probe, now);
                        }
                        Err(_) => return self.compare(probe, now),
                    }
                }
            }
        }
    }

    fn after_sending(&self) -> Step {
        match self.path {
            Path::Loop { .. } => Step::Accepting,
            Path::Echo { .. } => Step::Reading,
        }
    }

    fn compare(&self, probe: &mut Probe, now: Instant) -> Outcome {
        if probe.got == probe.sent {
            debug!("connection ok");
            return Outcome::Passed;
        }
        debug!(
            "not what I sent: \"{}\" : \"{}\"",
            String::from_utf8_lossy(&probe.sent),
            String::from_utf8_lossy(&probe.got)
        );
        self.again(probe, now)
    }

    /// One more attempt that sends nothing new (SPEC §6): loop mode waits for a
    /// new connection back, echo mode reads on.
    fn again(&self, probe: &mut Probe, now: Instant) -> Outcome {
        if probe.second {
            debug!("tried connection 2 times and failed");
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
    deadline: Instant,
}

impl Probe {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Passed,
    Failed,
}

/// Starts a non-blocking connection to 127.0.0.1:`port`.
fn connect(port: u16) -> io::Result<TcpStream> {
    // SAFETY: socket returns a new descriptor that is owned by the TcpStream
    // at once; the address is a fully initialised sockaddr_in on the stack.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        let r = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(stream)
    }
}

/// Whether a non-blocking connect has finished: Ok(true) connected,
/// Ok(false) still going, Err the reason it failed.
fn connect_result(stream: &TcpStream) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    if unsafe { libc::poll(&mut pfd, 1, 0) } <= 0 {
        return Ok(false);
    }
    match stream.take_error()? {
        Some(e) => Err(e),
        None => Ok(true),
    }
}
