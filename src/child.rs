//! The ssh child: start it, signal it, reap it (SPEC §5, §8).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, getppid, Pid};

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

/// Starts `argv[0]` with `argv[1..]`, found through PATH as execvp finds it.
/// ssh inherits stdio and the environment (less `unset`, which makes std copy
/// the environment: it is given only the variables that are set), dies with
/// us, and receives no descriptor but 0–2. The error is why it could not start: the fork's, or the
/// exec's, which std reports back before `spawn` returns.
///
/// std empties the signal mask and puts SIGPIPE back to its default in the
/// child; exec resets the signals we handle.
pub fn spawn(argv: &[Vec<u8>], unset: &[&str]) -> io::Result<Ssh> {
    let mut command = Command::new(OsStr::from_bytes(&argv[0]));
    command.args(argv[1..].iter().map(|a| OsStr::from_bytes(a)));
    for name in unset {
        command.env_remove(name);
    }
    let parent = getpid();
    // SAFETY: the closure runs in the forked child of this single-threaded
    // process and makes only system calls (prctl, getppid, close_range).
    unsafe { command.pre_exec(move || prepare(parent)) };
    command.spawn().map(|child| Ssh { child })
}

/// In the child, before exec: death with the parent, no stray descriptors.
fn prepare(parent: Pid) -> io::Result<()> {
    // SIGKILL, not SIGTERM: it also ends an ssh that is stopped.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    // The parent may have died before prctl took effect.
    if getppid() != parent {
        return Err(Errno::ESRCH.into());
    }
    // Anything opened without close-on-exec behind our back is closed at exec
    // too. Old kernels lack close_range: then the marking done at start-up
    // (sys::cloexec_inherited) is what holds.
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags; nix has no wrapper.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    Ok(())
}

impl Ssh {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reaps the child if it has ended; never blocks.
    pub fn try_reap(&mut self) -> Option<Ended> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(match (status.code(), status.signal()) {
                (Some(code), _) => Ended::Exited(code),
                (None, Some(signal)) => Ended::Signaled(signal),
                (None, None) => Ended::Exited(255),
            }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            // ECHILD: someone else reaped it; it is gone all the same.
            Err(_) => Some(Ended::Signaled(libc::SIGKILL)),
        }
    }

    /// Asks ssh to stop: SIGTERM, and SIGCONT in case it is stopped (SPEC §5).
    pub fn terminate(&self) {
        self.signal(Signal::SIGTERM);
        self.signal(Signal::SIGCONT);
    }

    /// Ends an ssh that did not stop when asked (SPEC §9.4).
    pub fn kill(&self) {
        self.signal(Signal::SIGKILL);
    }

    fn signal(&self, signal: Signal) {
        // The pid is our unreaped child, so it cannot have been reused.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}
