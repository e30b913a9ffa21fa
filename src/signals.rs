//! Signals reach the event loop through signal-hook (SPEC §5): its handler
//! only records the signal and writes a byte into a socket pair that the one
//! `poll` watches, so no signal is missed between two polls and nothing of
//! ours runs in signal context.
//!
//! A forked child that has not yet exec'd ssh still has the handler; what it
//! records stays in its own memory, so the parent never hears the child's
//! signals (at most it wakes once for nothing). exec resets the handled
//! signals to their defaults.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use signal_hook::consts::signal::*;
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

/// The signals the loop reacts to. SIGPIPE is ignored instead (std's runtime
/// does that before `main`).
pub const HANDLED: [i32; 8] = [
    SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM,
];

/// The signals that arrived, waiting to be read.
pub struct Signals(SignalDelivery<UnixStream, SignalOnly>);

impl Signals {
    pub fn install() -> io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        SignalDelivery::with_pipe(read, write, SignalOnly, HANDLED).map(Signals)
    }

    /// What the loop polls for reading.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.get_read().as_fd()
    }

    /// Every signal that arrived since the last call, each once.
    pub fn drain(&mut self) -> Vec<i32> {
        self.0.pending().collect()
    }
}
