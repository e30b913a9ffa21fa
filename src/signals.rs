//! Signals arrive as bytes on a pipe that the event loop polls (SPEC §5).
//!
//! The handler only writes the signal number into a non-blocking pipe, so no
//! signal is missed between two polls and nothing runs in signal context. A
//! handler that finds itself in a forked child that has not exec'd yet puts the
//! default action back and raises the signal again, so the parent never hears
//! its child's signals.

use core::sync::atomic::{AtomicI32, Ordering};

use crate::prelude::*;
use crate::sys::{self, Errno, Fd};

/// The signals the loop reacts to. SIGPIPE is ignored instead.
pub const HANDLED: [i32; 8] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
];

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
static OWNER_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // SAFETY: only async-signal-safe calls (getpid, signal, raise, write) on
    // values this handler owns; errno is saved and restored around them.
    unsafe {
        let errno = *libc::__errno_location();
        if libc::getpid() != OWNER_PID.load(Ordering::Relaxed) {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        } else {
            let byte = signal as u8;
            // A full pipe already holds a wake-up: dropping this byte loses nothing
            // but a repeat of a signal that is still pending in the pipe.
            libc::write(
                WRITE_FD.load(Ordering::Relaxed),
                (&byte as *const u8).cast(),
                1,
            );
        }
        *libc::__errno_location() = errno;
    }
}

/// The reading end of the signal pipe.
pub struct SignalPipe {
    read: Fd,
    _write: Fd,
}

fn pipe() -> Result<(Fd, Fd), Errno> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both descriptors, which are then owned here.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(Errno::last());
    }
    Ok((Fd::new(fds[0])?, Fd::new(fds[1])?))
}

impl SignalPipe {
    /// Installs the handlers; SIGPIPE is ignored (ssh gets it back as default).
    pub fn install() -> Result<SignalPipe, Errno> {
        let (read, write) = pipe()?;
        WRITE_FD.store(write.raw(), Ordering::Relaxed);
        OWNER_PID.store(sys::getpid(), Ordering::Relaxed);
        for &signal in &HANDLED {
            // SAFETY: the action is a plain handler with SA_RESTART; the struct is
            // zeroed and its mask emptied before use.
            unsafe {
                let mut action: libc::sigaction = core::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(signal, &action, core::ptr::null_mut()) != 0 {
                    return Err(Errno::last());
                }
            }
        }
        // SAFETY: ignoring SIGPIPE has no preconditions.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        Ok(SignalPipe {
            read,
            _write: write,
        })
    }

    pub fn fd(&self) -> i32 {
        self.read.raw()
    }

    /// Every signal that arrived since the last call, in order.
    pub fn drain(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads at most buf.len() bytes into buf from our own pipe.
            let n = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            out.extend(buf[..n as usize].iter().map(|&b| i32::from(b)));
        }
        out
    }
}
