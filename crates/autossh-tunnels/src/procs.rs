//! Processes as /proc shows them, and signals that reach only the process
//! meant: a process is named by its pid and its start time, so that a pid
//! taken over by another process is never mistaken for it.

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::Signal;

/// One process: its pid and when it started (clock ticks after boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    start: u64,
}

/// The stat of process `pid` (the library's /proc reading).
pub fn stat(pid: i32) -> Option<autossh::procfs::Stat> {
    autossh::procfs::stat(pid)
}

/// Marks every open descriptor from `first` up close-on-exec: those found in
/// /proc/self/fd, or without /proc every number below the descriptor limit
/// (at most 65,536).
pub fn close_on_exec_from(first: i32) {
    let mark = |fd: i32| {
        // SAFETY: F_GETFD/F_SETFD on a number: at worst EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    };
    match fs::read_dir("/proc/self/fd") {
        Ok(dir) => {
            let open: Vec<i32> = dir
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            // (The folder's own descriptor is in the list; it is closed by now.)
            open.into_iter().filter(|&fd| fd >= first).for_each(mark);
        }
        Err(_) => {
            let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map_or(1024, |(soft, _)| soft.min(65_536) as i32);
            (first..limit).for_each(mark);
        }
    }
}

/// Whether a process has `pid`, seen or not: kill(2) with no signal, which
/// says EPERM for another user's process that /proc hides (`hidepid`).
pub fn exists(pid: i32) -> bool {
    pid > 0
        && !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(Errno::ESRCH)
        )
}

/// Whether this user may read the process's environment (its own user's
/// processes, or anyone's for root).
pub fn environ_readable(pid: i32) -> bool {
    fs::File::open(format!("/proc/{pid}/environ")).is_ok()
}

/// The user a process runs as (its effective uid, as /proc shows it).
pub fn owner(pid: i32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// The value of `key` in the process's environment, where we may read it
/// (our own user's processes, or anyone's for root).
pub fn environ_value(pid: i32, key: &str) -> Option<Vec<u8>> {
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|&b| b == 0)
        .find_map(|entry| entry.strip_prefix(key.as_bytes())?.strip_prefix(b"="))
        .map(<[u8]>::to_vec)
}

impl Proc {
    /// The process that has `pid` now, unless it is gone or a zombie.
    pub fn of(pid: i32) -> Option<Proc> {
        let s = stat(pid).filter(|s| s.state != b'Z' && s.state != b'X')?;
        Some(Proc {
            pid,
            start: s.start,
        })
    }

    /// Whether it still runs (not a zombie, not a new process with its pid).
    pub fn alive(&self) -> bool {
        Proc::of(self.pid) == Some(*self)
    }

    /// Its children now.
    pub fn children(&self) -> Vec<Proc> {
        autossh::procfs::parents()
            .unwrap_or_default()
            .into_iter()
            .filter(|&(_, parent)| parent == self.pid)
            .filter_map(|(pid, _)| Proc::of(pid))
            .collect()
    }

    /// Sends `signal` to this process and to no other. Where the kernel has
    /// pidfds (Linux 5.3), the process is held by one while it is checked,
    /// so that its pid cannot pass to another in between; else the check
    /// comes right before kill(2).
    pub fn signal(&self, signal: Signal) -> bool {
        if self.pid <= 1 {
            return false;
        }
        match pidfd_open(self.pid) {
            Ok(fd) => self.alive() && pidfd_send_signal(&fd, signal).is_ok(),
            Err(_) => {
                self.alive()
                    && nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), signal).is_ok()
            }
        }
    }
}

fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; nix 0.30 has no wrapper for it.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the descriptor was just returned to us and is owned by no one.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn pidfd_send_signal(fd: &OwnedFd, signal: Signal) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags; nix 0.30
    // has no wrapper for it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal as i32,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// A pid as a pid file holds it: digits (blanks around them allowed), and
/// never 0, 1 or less, which kill(2) would read as a group, init or all.
pub fn parse_pid(text: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(text).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i32>().ok().filter(|&pid| pid > 1)
}

/// The directory part of `path` resolved (links, `..`), and its name: two
/// spellings of one file compare equal.
pub fn resolved(path: &Path) -> Option<std::path::PathBuf> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    Some(fs::canonicalize(dir).ok()?.join(path.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_that_are_believed() {
        assert_eq!(parse_pid(b"1234\n"), Some(1234));
        assert_eq!(parse_pid(b" 77 "), Some(77));
        for bad in [
            &b"0"[..],
            b"1",
            b"-1",
            b"-42",
            b"",
            b"\n",
            b"12x",
            b"+5",
            b"99999999999",
            b"1 2",
        ] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn this_process() {
        let me = Proc::of(std::process::id() as i32).unwrap();
        assert!(me.alive());
        assert!(Proc::of(0).is_none());
        assert!(environ_value(std::process::id() as i32, "NO_SUCH_VARIABLE_HERE").is_none());
        assert!(!Proc { pid: 1, start: 0 }.signal(Signal::SIGCONT));
    }
}
