//! The connection test (SPEC §6): a line of test data sent into the tunnel
//! must come back unchanged, through a loop of forwards or a remote echo
//! service. The test never blocks: it is a small state machine that the event
//! loop drives with the descriptor it waits on and a deadline.

use core::time::Duration;

use crate::prelude::*;
use crate::sys::{self, Errno, Fd, Instant};

const WOULD_BLOCK: Errno = Errno(libc::EAGAIN);
const INTERRUPTED: Errno = Errno(libc::EINTR);

/// How the test data comes back.
pub enum Path {
    /// Out on `port`, back through the listener on `port + 1`.
    Loop { port: u16, listener: Fd },
    /// Out on `port` to a remote echo service, back on the same connection.
    Echo { port: u16 },
}

/// Opens the listener of loop mode on 127.0.0.1 only; the error is the message
/// of SPEC §6.
pub fn listen(port: u16) -> Result<Fd, String> {
    sys::tcp_bind_loopback(port, Some(128))
        .map_err(|e| format!("bind on 127.0.0.1:{}: {}", port, sys::error_text(&e)))
}

/// Takes a waiting connection off `listener`, non-blocking and close-on-exec.
fn accept(listener: &Fd) -> Result<Fd, Errno> {
    // SAFETY: accept4 with null address pointers; the new descriptor is owned
    // by the Fd at once.
    Fd::new(unsafe {
        libc::accept4(
            listener.raw(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })
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
            prefix: format!("{} {} {} ", sys::nodename(), name, sys::getpid()),
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
            while accept(listener).is_ok() {}
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
    pub fn interest(&self, probe: &Probe) -> (i32, i16) {
        match probe.step {
            Step::Connecting | Step::Writing => (probe.out.raw(), libc::POLLOUT),
            Step::Accepting => match &self.path {
                Path::Loop { listener, .. } => (listener.raw(), libc::POLLIN),
                Path::Echo { .. } => (probe.out.raw(), libc::POLLIN),
            },
            Step::Reading => (
                probe.back.as_ref().unwrap_or(&probe.out).raw(),
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
                Step::Writing => match probe.out.write(&probe.sent[probe.written..]) {
                    Ok(n) => {
                        probe.written += n;
                        if probe.written == probe.sent.len() {
                            probe.step = self.after_sending();
                            probe.deadline = now + self.net_timeout;
                            return self.advance(probe, now);
                        }
                    }
                    Err(WOULD_BLOCK) if !timed_out => return Outcome::Pending,
                    Err(INTERRUPTED) => {}
                    Err(_) => return self.again(probe, now),
                },
                Step::Accepting => {
                    let Path::Loop { listener, .. } = &self.path else {
                        probe.step = Step::Reading;
                        continue;
                    };
                    match accept(listener) {
                        Ok(back) => {
                            probe.back = Some(back);
                            probe.got.clear();
                            probe.step = Step::Reading;
                            probe.deadline = now + self.net_timeout;
                            return self.advance(probe, now);
                        }
                        Err(WOULD_BLOCK) if !timed_out => return Outcome::Pending,
                        Err(WOULD_BLOCK) => {
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
                    match stream.read(&mut buf) {
                        Ok(0) => return self.compare(probe, now),
                        Ok(n) => {
                            probe.got.extend_from_slice(&buf[..n]);
                            if probe.got.len() == probe.sent.len() {
                                return self.compare(probe, now);
                            }
                        }
                        Err(WOULD_BLOCK) if !timed_out => return Outcome::Pending,
                        Err(INTERRUPTED) => {}
                        Err(WOULD_BLOCK) => {
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
    out: Fd,
    back: Option<Fd>,
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
fn connect(port: u16) -> Result<Fd, Errno> {
    // SAFETY: socket returns a new descriptor that is owned by the Fd at once;
    // the address is a fully initialised sockaddr_in on the stack.
    unsafe {
        let fd = Fd::new(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let addr = sys::loopback(port);
        let r = libc::connect(
            fd.raw(),
            (&addr as *const libc::sockaddr_in).cast(),
            core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if r != 0 {
            let e = Errno::last();
            if e != Errno(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(fd)
    }
}

/// Whether a non-blocking connect has finished: Ok(true) connected,
/// Ok(false) still going, Err the reason it failed.
fn connect_result(stream: &Fd) -> Result<bool, Errno> {
    let mut pfd = libc::pollfd {
        fd: stream.raw(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    if unsafe { libc::poll(&mut pfd, 1, 0) } <= 0 {
        return Ok(false);
    }
    let mut error: libc::c_int = 0;
    let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `error`.
    let r = unsafe {
        libc::getsockopt(
            stream.raw(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut error as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(Errno::last());
    }
    match error {
        0 => Ok(true),
        e => Err(Errno(e)),
    }
}
