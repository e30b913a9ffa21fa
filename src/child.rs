//! The ssh child: start it, signal it, reap it (SPEC §5, §8).

use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
}

/// A running ssh.
pub struct Ssh {
    child: Child,
}

/// Starts `argv[0]` with `argv[1..]`. ssh inherits stdio and the environment
/// (less `unset`), dies with us (PR_SET_PDEATHSIG), and receives no descriptor
/// but 0–2.
pub fn spawn(argv: &[OsString], unset: &[&str]) -> io::Result<Ssh> {
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    for name in unset {
        command.env_remove(name);
    }
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and uses only
    // async-signal-safe calls (prctl, getppid, syscall, sigprocmask).
    unsafe {
        command.pre_exec(move || {
            // SIGKILL, not SIGTERM: it also ends an ssh that is stopped.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            // Anything opened behind our back (a library's descriptor) is closed
            // at exec too. Old kernels lack close_range: then the marking done at
            // start-up (sys::cloexec_inherited) is what holds.
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    let child = command.spawn()?;
    Ok(Ssh { child })
}

impl Ssh {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Reaps the child if it has ended; never blocks.
    pub fn try_reap(&mut self) -> Option<Ended> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(match (status.code(), status.signal()) {
                (Some(code), _) => Ended::Exited(code),
                (None, Some(signal)) => Ended::Signaled(signal),
                (None, None) => Ended::Exited(255),
            }),
            Ok(None) => None,
            // ECHILD: someone else reaped it; it is gone all the same.
            Err(_) => Some(Ended::Signaled(libc::SIGKILL)),
        }
    }

    /// Asks ssh to stop: SIGTERM, and SIGCONT in case it is stopped (SPEC §5).
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
        self.signal(libc::SIGCONT);
    }

    /// Ends an ssh that did not stop when asked (SPEC §9.4).
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    fn signal(&self, signal: i32) {
        // SAFETY: the pid is our unreaped child, so it cannot have been reused.
        unsafe { libc::kill(self.pid(), signal) };
    }
}
