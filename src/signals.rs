//! Signals reach the event loop through signal-hook (SPEC §5): its handler
//! only records the signal and sends a byte to a socket that the one `poll`
//! watches, so no signal is missed between two polls and nothing of ours runs
//! in signal context.
//!
//! What autossh inherits does not change this: the handled signals are
//! unblocked at start-up, and those that were ignored then are remembered, to
//! be ignored in ssh as well (SPEC §5).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;

use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use signal_hook::consts::signal::*;
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

/// The signals the loop reacts to. SIGPIPE is ignored instead (std's runtime
/// does that before `main`).
pub const HANDLED: [i32; 8] = [
    SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM,
];

/// The handled signals as a set, for masks.
pub fn handled_set() -> SigSet {
    let mut set = SigSet::empty();
    for sig in HANDLED.iter().filter_map(|&n| Signal::try_from(n).ok()) {
        set.add(sig);
    }
    set
}

/// Whether `signal` is ignored now (nix can only query by replacing).
fn is_ignored(signal: i32) -> bool {
    // SAFETY: with a null new action, sigaction only writes the current one
    // into the zeroed struct it is given.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

/// A datagram socket connected to itself: the one descriptor serves as both
/// ends of signal-hook's self-pipe, which keeps autossh within tight
/// descriptor limits (SPEC §5).
fn self_socket() -> io::Result<UnixDatagram> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    // An unnamed address makes the kernel pick a unique abstract one.
    use std::os::fd::AsRawFd;
    socket::bind(fd.as_raw_fd(), &UnixAddr::new_unnamed())?;
    let own: UnixAddr = socket::getsockname(fd.as_raw_fd())?;
    socket::connect(fd.as_raw_fd(), &own)?;
    Ok(UnixDatagram::from(fd))
}

/// The signals that arrived, waiting to be read.
pub struct Signals {
    delivery: SignalDelivery<Arc<UnixDatagram>, SignalOnly>,
    ignored_at_start: Vec<Signal>,
}

impl Signals {
    pub fn install() -> io::Result<Signals> {
        let ignored_at_start = HANDLED
            .iter()
            .filter(|&&n| is_ignored(n))
            .filter_map(|&n| Signal::try_from(n).ok())
            .collect();
        let socket = Arc::new(self_socket()?);
        let delivery = SignalDelivery::with_pipe(socket.clone(), socket, SignalOnly, HANDLED)?;
        // A mask inherited from the parent (SIGCHLD blocked, say) must not keep
        // them from us.
        sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&handled_set()), None)?;
        Ok(Signals {
            delivery,
            ignored_at_start,
        })
    }

    /// What the loop polls for reading.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.delivery.get_read().as_fd()
    }

    /// Every signal that arrived since the last call, each once.
    pub fn pending(&mut self) -> impl Iterator<Item = i32> + '_ {
        self.delivery.pending()
    }

    /// The handled signals that were ignored when autossh started.
    pub fn ignored_at_start(&self) -> &[Signal] {
        &self.ignored_at_start
    }
}
