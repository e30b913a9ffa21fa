//! The ssh child: start it, signal it, reap it (SPEC §5, §8).

use alloc::ffi::CString;

use crate::prelude::*;
use crate::sys::{self, Errno, Fd};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
}

/// A running ssh.
pub struct Ssh {
    pid: i32,
}

/// Starts `argv[0]` with `argv[1..]`, found through PATH as execvp finds it.
/// ssh inherits stdio and the environment (less `unset`), dies with us
/// (PR_SET_PDEATHSIG), and receives no descriptor but 0–2. The error is why
/// it could not start: the fork's, or the exec's, reported back through a
/// close-on-exec pipe.
pub fn spawn(argv: &[Vec<u8>], unset: &[&str]) -> Result<Ssh, Errno> {
    // Everything the child needs is built before the fork.
    let args = argv
        .iter()
        .map(|a| sys::c_string(a))
        .collect::<Result<Vec<CString>, Errno>>()?;
    let mut pointers: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    pointers.push(core::ptr::null());
    let unset = unset
        .iter()
        .map(|name| sys::c_string(name.as_bytes()))
        .collect::<Result<Vec<CString>, Errno>>()?;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both descriptors, which are then owned here.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Errno::last());
    }
    let (report_read, report_write) = (Fd::new(fds[0])?, Fd::new(fds[1])?);
    let parent = sys::getpid();

    // SAFETY: this process has a single thread, so the child may call anything;
    // it calls only what prepares the exec, and leaves with exec or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Errno::last());
    }
    if pid == 0 {
        // SAFETY: in the child; see above.
        unsafe { exec_child(&pointers, &unset, parent, report_write.raw()) }
    }
    drop(report_write);

    // The exec closes the pipe; a failure sends its errno first.
    let mut reported = [0u8; 4];
    let mut got = 0;
    while got < reported.len() {
        match report_read.read(&mut reported[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno(libc::EINTR)) => {}
            Err(_) => break,
        }
    }
    if got == reported.len() {
        // The child has _exited: reap it before reporting.
        let mut status = 0;
        // SAFETY: waits for our own child only.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(Errno(i32::from_ne_bytes(reported)));
    }
    Ok(Ssh { pid })
}

/// The forked child's way to exec: default signal state, death with the
/// parent, no stray descriptors, the private variables gone.
///
/// # Safety
/// Only in the child of a fork of this single-threaded process; `argv` is a
/// NULL-terminated array of valid C strings.
unsafe fn exec_child(
    argv: &[*const libc::c_char],
    unset: &[CString],
    parent: i32,
    report: i32,
) -> ! {
    let fail = |errno: i32| -> ! {
        let bytes = errno.to_ne_bytes();
        libc::write(report, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    };
    // ssh starts with no signal blocked and SIGPIPE at its default.
    let mut none: libc::sigset_t = core::mem::zeroed();
    libc::sigemptyset(&mut none);
    libc::sigprocmask(libc::SIG_SETMASK, &none, core::ptr::null_mut());
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    // SIGKILL, not SIGTERM: it also ends an ssh that is stopped.
    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
        fail(*libc::__errno_location());
    }
    // The parent may have died before prctl took effect.
    if libc::getppid() != parent {
        fail(libc::ESRCH);
    }
    // Anything opened behind our back (a library's descriptor) is closed at exec
    // too. Old kernels lack close_range: then the marking done at start-up
    // (sys::cloexec_inherited) is what holds.
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    libc::syscall(
        libc::SYS_close_range,
        3 as libc::c_uint,
        libc::c_uint::MAX,
        CLOSE_RANGE_CLOEXEC,
    );
    for name in unset {
        libc::unsetenv(name.as_ptr());
    }
    libc::execvp(argv[0], argv.as_ptr());
    fail(*libc::__errno_location())
}

impl Ssh {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Reaps the child if it has ended; never blocks.
    pub fn try_reap(&mut self) -> Option<Ended> {
        let mut status = 0;
        // SAFETY: waits, without blocking, for our own child only.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r == 0 {
            return None;
        }
        if r < 0 {
            if Errno::last() == Errno(libc::EINTR) {
                return None;
            }
            // ECHILD: someone else reaped it; it is gone all the same.
            return Some(Ended::Signaled(libc::SIGKILL));
        }
        Some(if libc::WIFEXITED(status) {
            Ended::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Ended::Signaled(libc::WTERMSIG(status))
        } else {
            Ended::Exited(255)
        })
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
        unsafe { libc::kill(self.pid, signal) };
    }
}
