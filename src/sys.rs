//! What neither std nor nix wraps: descriptor hygiene and giving freed
//! memory back.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::dir::Dir;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::stat::Mode;

/// Marks every descriptor above stderr close-on-exec, so that ssh receives
/// only 0–2 (SPEC §2, §9.9): at start-up for what autossh inherited, and in
/// the child before the exec for anything opened behind our back. One call
/// of close_range(2) where the kernel has it (5.11 and later); on older
/// kernels (a NAS) a walk over /proc/self/fd instead.
pub fn cloexec_above_stderr() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor
    // flags; nix has no wrapper.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // ENOSYS before 5.9, EINVAL for the flag before 5.11; a seccomp policy
    // may give either, or EPERM: whatever the reason, walk.
    cloexec_by_walking();
}

/// The fallback of [`cloexec_above_stderr`].
fn cloexec_by_walking() {
    let Ok(mut dir) = Dir::open("/proc/self/fd", OFlag::O_RDONLY, Mode::empty()) else {
        // Without /proc nothing can be listed: our own descriptors are all
        // opened close-on-exec anyway.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_mark_every_inherited_descriptor() {
        use std::os::fd::IntoRawFd;
        for walk in [false, true] {
            // A descriptor without close-on-exec, as a parent might leave one.
            let fd = nix::unistd::dup(std::io::stdin()).unwrap().into_raw_fd();
            // SAFETY: fd was just made by dup and is ours.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
            if walk {
                cloexec_by_walking();
            } else {
                cloexec_above_stderr();
            }
            let flags = fcntl(borrowed, FcntlArg::F_GETFD).unwrap();
            assert!(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
            let _ = nix::unistd::close(fd);
        }
    }
}
