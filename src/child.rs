//! The ssh child: start it, signal it, reap it (SPEC §5, §8).
//!
//! ssh is started with nix's fork and exec rather than std's `Command`, for
//! two things `Command` cannot give: the signals are reset in the child
//! before they are unblocked (std unblocks them first, so a signal could
//! reach our handler in the child), and every failure is named for what
//! failed — the report pipe, the fork, or the exec of ssh — instead of all
//! being reported as ssh's (SPEC §5).

use std::ffi::CString;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execvp, fork, getpid, getppid, pipe2, ForkResult, Pid};

use crate::machine::{Ended, SpawnError};
use crate::signals;

/// What the child is started with, besides its argv.
#[derive(Debug, Default, Clone)]
pub struct Setup {
    /// Variables of ours that ssh must not see.
    pub unset: Vec<&'static str>,
    /// Handled signals that were ignored when autossh started: ignored in ssh
    /// too (SPEC §5: `nohup`).
    pub ignored: Vec<Signal>,
    /// Whether PR_SET_PDEATHSIG works here (a seccomp policy may refuse it).
    pub die_with_parent: bool,
    /// Whether ssh's stderr is a pipe that autossh reads (`words`), rather
    /// than autossh's own.
    pub capture_stderr: bool,
}

/// A running ssh.
pub struct Ssh {
    pid: Pid,
}

/// A started ssh, and the reading end of its stderr when that is captured
/// (non-blocking, close-on-exec).
pub struct Started {
    pub ssh: Ssh,
    pub stderr: Option<OwnedFd>,
}

/// Starts `argv[0]` with `argv[1..]`, found through PATH as execvp finds it.
/// ssh inherits stdio and the environment (less `setup.unset`), dies with us,
/// and receives no descriptor but 0–2.
pub fn spawn(argv: &[Vec<u8>], setup: &Setup) -> Result<Started, SpawnError> {
    // Everything the child needs is made before the fork. A NUL cannot come
    // from argv or the environment; the kernel would refuse it the same way.
    let c_strings = |items: &mut dyn Iterator<Item = Vec<u8>>| {
        items
            .map(CString::new)
            .collect::<Result<Vec<CString>, _>>()
            .map_err(|_| SpawnError::Exec(Errno::EINVAL))
    };
    let args = c_strings(&mut argv.iter().cloned())?;
    let unset = c_strings(&mut setup.unset.iter().map(|n| n.as_bytes().to_vec()))?;
    let (report_read, report_write) = pipe2(OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)?;
    let stderr = if setup.capture_stderr {
        Some(pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(SpawnError::Pipe)?)
    } else {
        None
    };
    let parent = getpid();

    // The handled signals stay blocked across the fork, so that the child can
    // put them back to their defaults before any of them is delivered there.
    let handled = signals::handled_set();
    let mut before = SigSet::empty();
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), Some(&mut before));
    // SAFETY: this process has a single thread, so the child may call anything;
    // it only prepares the exec and leaves with exec or _exit.
    let forked = unsafe { fork() };
    let child = match forked {
        Ok(ForkResult::Child) => {
            drop(report_read);
            let stderr = stderr.map(|(read, write)| {
                drop(read);
                write
            });
            // SAFETY: in the child of the fork above.
            unsafe { exec_child(&args, &unset, setup, parent, report_write, stderr) }
        }
        Ok(ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(SpawnError::Fork(e)),
    };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None);
    let pid = child?;
    drop(report_write);
    let stderr = stderr.map(|(read, write)| {
        drop(write);
        read
    });

    // The exec closes the pipe; a failure sends its errno first.
    let mut reported = [0u8; 4];
    let mut got = 0;
    while got < reported.len() {
        match nix::unistd::read(&report_read, &mut reported[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    if got == reported.len() {
        // The child has _exited: reap it before reporting.
        let _ = waitpid(pid, None);
        return Err(SpawnError::Exec(Errno::from_raw(i32::from_ne_bytes(
            reported,
        ))));
    }
    Ok(Started {
        ssh: Ssh { pid },
        stderr,
    })
}

/// The forked child's way to exec: default signal state (but what was ignored
/// at start), death with the parent, no stray descriptors, the private
/// variables gone.
///
/// # Safety
/// Only in the child of a fork of this single-threaded process.
unsafe fn exec_child(
    args: &[CString],
    unset: &[CString],
    setup: &Setup,
    parent: Pid,
    report: OwnedFd,
    stderr: Option<OwnedFd>,
) -> ! {
    let fail = |errno: Errno| -> ! {
        let _ = nix::unistd::write(&report, &(errno as i32).to_ne_bytes());
        // SAFETY: _exit ends the child without running the parent's cleanups.
        unsafe { libc::_exit(127) }
    };
    for &number in signals::HANDLED.iter().chain(&[libc::SIGPIPE]) {
        if let Ok(sig) = Signal::try_from(number) {
            let action = if setup.ignored.contains(&sig) {
                SigHandler::SigIgn
            } else {
                SigHandler::SigDfl
            };
            // SAFETY: default and ignore are not handlers of ours.
            let _ = unsafe { signal(sig, action) };
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    if let Some(pipe) = stderr {
        // The pipe's own descriptor is close-on-exec; its copy on 2 is not.
        if let Err(e) = nix::unistd::dup2_stderr(&pipe) {
            fail(e);
        }
        // In blocking mode for ssh: the flag is the pipe's, not ours.
        let _ = nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()));
    }
    if setup.die_with_parent {
        // SIGKILL, not SIGTERM: it also ends an ssh that is stopped.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
    // The parent may have died before prctl took effect; 0 means the parent is
    // outside our pid namespace (`unshare -p` without --fork), and cannot be
    // checked.
    let ppid = getppid();
    if ppid != parent && ppid.as_raw() != 0 {
        fail(Errno::ESRCH);
    }
    // Anything opened without close-on-exec behind our back is closed at
    // exec too.
    crate::sys::cloexec_above_stderr();
    for name in unset {
        // SAFETY: a NUL-terminated name; this process has a single thread.
        unsafe { libc::unsetenv(name.as_ptr()) };
    }
    match execvp(&args[0], args) {
        Err(e) => fail(e),
        Ok(never) => match never {},
    }
}

/// Whether PR_SET_PDEATHSIG can be set here: tried on ourselves, with the
/// value we already have, so nothing changes.
pub fn can_die_with_parent() -> Result<(), Errno> {
    let current = nix::sys::prctl::get_pdeathsig()?;
    nix::sys::prctl::set_pdeathsig(current)
}

/// Reaps every child that has ended (as PID 1, orphans are ours too); returns
/// how `ssh` ended if it is among them. Never blocks.
pub fn reap(ssh: Option<Pid>) -> Option<Ended> {
    let mut ended = None;
    // Bounded, though each round reaps one child or stops: without WUNTRACED
    // waitpid reports only ends.
    for _ in 0..65536 {
        let (pid, how) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Ended::Exited(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, Ended::Signaled(sig as i32)),
            Err(Errno::EINTR) => continue,
            Ok(_) | Err(_) => break,
        };
        if Some(pid) == ssh {
            ended = Some(how);
        }
    }
    ended
}

impl Ssh {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Asks ssh to stop: SIGTERM, and SIGCONT in case it is stopped (SPEC §5).
    pub fn terminate(&self) {
        let _ = kill(self.pid, Signal::SIGTERM);
        let _ = kill(self.pid, Signal::SIGCONT);
    }

    /// Ends an ssh that did not stop when asked (SPEC §9.4).
    pub fn kill(&self) {
        // The pid is our unreaped child, so it cannot have been reused.
        let _ = kill(self.pid, Signal::SIGKILL);
    }
}
