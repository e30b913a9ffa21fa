//! What neither std nor nix wraps: marking inherited descriptors
//! close-on-exec, local time for log lines, and a random number.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::dir::Dir;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::stat::Mode;

/// Marks every descriptor above stderr that this process inherited
/// close-on-exec, so that ssh receives only 0–2 (SPEC §2, §9.9). Our own
/// descriptors are all opened close-on-exec.
pub fn cloexec_inherited() {
    let Ok(mut dir) = Dir::open("/proc/self/fd", OFlag::O_RDONLY, Mode::empty()) else {
        // Without /proc, ssh's own start (close_range in child.rs) is what holds.
        return;
    };
    let own = dir.as_raw_fd();
    let fds: Vec<i32> = dir
        .iter()
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str().ok()?.parse().ok())
        .filter(|&fd| fd > 2 && fd != own)
        .collect();
    drop(dir);
    for fd in fds {
        // SAFETY: `fd` was listed open just now, on this single thread, and
        // nothing has closed it since; the borrow lasts only for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
}

/// A random number: each call hashes with new keys drawn by std from the
/// kernel (it falls back to /dev/urandom on kernels without getrandom). The
/// probe id and the random port need no cryptography, only unpredictability.
pub fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Gives the pages of freed memory back to the kernel. A start of ssh
/// allocates and frees a little (the environment for ssh, log lines), which
/// would otherwise stay resident in every idle instance.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory; nix has no wrapper.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The broken-down local time of now (SPEC §4 log lines).
pub fn local_now() -> libc::tm {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .map(|t| t.tv_sec())
        .unwrap_or(0);
    // SAFETY: tzset only reads TZ and the zone files; localtime_r writes only
    // into the zeroed struct it is given. nix wraps neither.
    unsafe {
        tzset();
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    }
}

extern "C" {
    fn tzset();
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `YYYY/MM/DD HH:MM:SS`, the time of a log file line.
pub fn file_time(tm: &libc::tm) -> String {
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `Mmm dd HH:MM:SS` with the day padded by a space, the time of a syslog
/// datagram as the C library writes it (`%h %e %T`, C locale).
pub fn syslog_time(tm: &libc::tm) -> String {
    let month = usize::try_from(tm.tm_mon)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .unwrap_or(&"Jan");
    format!(
        "{} {:2} {:02}:{:02}:{:02}",
        month, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm(year: i32, mon: i32, mday: i32, hour: i32, min: i32, sec: i32) -> libc::tm {
        // SAFETY: libc::tm is plain data; all-zero is a valid value.
        let mut t: libc::tm = unsafe { std::mem::zeroed() };
        (t.tm_year, t.tm_mon, t.tm_mday) = (year - 1900, mon - 1, mday);
        (t.tm_hour, t.tm_min, t.tm_sec) = (hour, min, sec);
        t
    }

    #[test]
    fn times() {
        let t = tm(2026, 11, 5, 4, 26, 7);
        assert_eq!(file_time(&t), "2026/11/05 04:26:07");
        assert_eq!(syslog_time(&t), "Nov  5 04:26:07");
        assert_eq!(syslog_time(&tm(2026, 1, 25, 23, 0, 59)), "Jan 25 23:00:59");
    }

    #[test]
    fn random_numbers_differ() {
        let a: Vec<u64> = (0..8).map(|_| random_u64()).collect();
        let mut b = a.clone();
        b.dedup();
        assert_eq!(a.len(), b.len());
    }
}
