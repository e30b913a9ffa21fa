//! Signals reach the event loop through signal-hook (SPEC §5): the action
//! registered for each handled signal only sets that signal's flag and sends
//! a byte to a socket that the one `poll` watches, so no signal is missed
//! between two polls and nothing else of ours runs in signal context. The
//! flags are eight statics, not a table of every signal number on the heap
//! (signal-hook's iterator keeps one of 6 kB in every instance).
//!
//! What autossh inherits does not change this: the handled signals are
//! unblocked at start-up, and those that were ignored then are remembered, to
//! be ignored in ssh as well (SPEC §5).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use signal_hook::consts::signal::*;
use signal_hook::low_level::{register, unregister};
use signal_hook::SigId;

/// Set by a handled signal's action, taken by the loop: `PENDING[i]` is
/// `HANDLED[i]`'s. There is one set for the process, so there is one
/// `Signals` at a time (`INSTALLED`).
static PENDING: [AtomicBool; HANDLED.len()] = [const { AtomicBool::new(false) }; HANDLED.len()];

/// Whether a `Signals` exists.
static INSTALLED: AtomicBool = AtomicBool::new(false);

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
/// ends of the self-pipe, which keeps autossh within tight
/// descriptor limits (SPEC §5).
fn self_socket() -> io::Result<UnixDatagram> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    // An unnamed address makes the kernel pick a unique abstract one.
    socket::bind(fd.as_raw_fd(), &UnixAddr::new_unnamed())?;
    let own: UnixAddr = socket::getsockname(fd.as_raw_fd())?;
    socket::connect(fd.as_raw_fd(), &own)?;
    Ok(UnixDatagram::from(fd))
}

/// The signals that arrived, waiting to be read.
pub struct Signals {
    socket: UnixDatagram,
    /// The actions registered, removed again when this goes.
    actions: Vec<SigId>,
    /// Indexes of `HANDLED` by signal number: the order they are told in.
    order: [usize; HANDLED.len()],
    ignored_at_start: Vec<Signal>,
}

impl Signals {
    pub fn install() -> io::Result<Signals> {
        if INSTALLED.swap(true, Ordering::SeqCst) {
            return Err(io::Error::other("the signals are handled already"));
        }
        for flag in &PENDING {
            flag.store(false, Ordering::SeqCst);
        }
        let signals = Signals::register();
        if signals.is_err() {
            INSTALLED.store(false, Ordering::SeqCst);
        }
        signals
    }

    fn register() -> io::Result<Signals> {
        let ignored_at_start = HANDLED
            .iter()
            .filter(|&&n| is_ignored(n))
            .filter_map(|&n| Signal::try_from(n).ok())
            .collect();
        let socket = self_socket()?;
        let mut signals = Signals {
            actions: Vec::with_capacity(HANDLED.len()),
            order: std::array::from_fn(|i| i),
            socket,
            ignored_at_start,
        };
        signals.order.sort_by_key(|&i| HANDLED[i]);
        let fd = signals.socket.as_raw_fd();
        for (i, &signal) in HANDLED.iter().enumerate() {
            // SAFETY: the action only stores to an atomic and sends one byte
            // without waiting, both safe in a signal handler (signal-hook
            // keeps errno); the descriptor outlives it, as Drop removes the
            // action before the socket closes.
            let id = unsafe {
                register(signal, move || {
                    PENDING[i].store(true, Ordering::SeqCst);
                    let _ = socket::send(fd, &[0], MsgFlags::MSG_DONTWAIT);
                })
            }?;
            signals.actions.push(id);
        }
        // A mask inherited from the parent (SIGCHLD blocked, say) must not keep
        // them from us.
        sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&handled_set()), None)?;
        Ok(signals)
    }

    /// What the loop polls for reading.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Every signal that arrived since the last call, each once, in the
    /// order of their numbers.
    pub fn pending(&mut self) -> impl Iterator<Item = i32> + '_ {
        // The wake-ups first, then the flags: a signal whose flag is taken
        // here either sent its byte already or wakes the next poll.
        let mut buf = [0u8; 1];
        // Bounded: each round takes one byte, and only the handled signals'
        // actions send any (a few hundred fit in the socket's buffer).
        for _ in 0..4096 {
            match socket::recv(self.socket.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) if n > 0 => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                _ => break,
            }
        }
        self.order
            .iter()
            .filter(|&&i| PENDING[i].swap(false, Ordering::SeqCst))
            .map(|&i| HANDLED[i])
    }

    /// The handled signals that were ignored when autossh started.
    pub fn ignored_at_start(&self) -> &[Signal] {
        &self.ignored_at_start
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.actions.drain(..) {
            unregister(id);
        }
        INSTALLED.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_once_in_the_order_of_numbers() {
        let mut signals = Signals::install().unwrap();
        assert!(Signals::install().is_err(), "one at a time");
        let _ = signals.pending().count();
        // Each three times, in an order that is neither `HANDLED`'s nor
        // the numbers': told once each, by number.
        for _ in 0..3 {
            for signal in [Signal::SIGTERM, Signal::SIGALRM, Signal::SIGHUP] {
                nix::sys::signal::raise(signal).unwrap();
            }
        }
        let ready = |signals: &Signals, ms: u16| {
            let mut set = [nix::poll::PollFd::new(
                signals.fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            nix::poll::poll(&mut set, ms).unwrap()
        };
        assert_eq!(ready(&signals, 1000), 1, "a wake-up to poll");
        let got: Vec<i32> = signals.pending().collect();
        assert_eq!(got, [SIGHUP, SIGALRM, SIGTERM]);
        assert_eq!(signals.pending().count(), 0, "taken");
        assert_eq!(ready(&signals, 0), 0, "the wake-ups are drained with them");
        drop(signals);
        // The actions went with it: a signal now finds no flag of ours set.
        nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
        assert!(!PENDING.iter().any(|p| p.load(Ordering::SeqCst)));
    }
}
