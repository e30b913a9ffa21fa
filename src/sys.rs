//! Small wrappers over the C library calls that std does not offer.

use std::ffi::CStr;
use std::io;

extern "C" {
    pub fn tzset();
}

/// The C library's text for an OS error number, as `strerror` gives it.
pub fn errno_text(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated string that stays valid
    // until the next strerror call; it is copied at once, on this single thread.
    unsafe { CStr::from_ptr(libc::strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

/// An error as C programs print it: the bare `strerror` text.
pub fn error_text(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(errno) => errno_text(errno),
        None => error.to_string(),
    }
}

/// The last OS error.
pub fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// Device and inode of an open descriptor.
pub fn fd_identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: fstat writes only into the zeroed struct it is given.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev, st.st_ino))
    }
}

/// Marks every descriptor above stderr that this process inherited close-on-exec,
/// so that ssh receives only 0–2 (SPEC §2, §9.9). Our own descriptors are all
/// opened close-on-exec.
pub fn cloexec_inherited() {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect(),
        // Without /proc, try the usual range.
        Err(_) => (3..1024).collect(),
    };
    for fd in fds {
        set_cloexec(fd);
    }
}

pub fn set_cloexec(fd: i32) {
    // SAFETY: F_GETFD/F_SETFD only change descriptor flags; a closed fd is EBADF.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// Random bytes from the kernel, with a weak fallback where getrandom is missing
/// (old NAS kernels): the probe id and the random port need no cryptography.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // The raw system call, not the glibc wrapper, which old C libraries lack.
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getrandom,
            buf.as_mut_ptr(),
            buf.len(),
            libc::GRND_NONBLOCK,
        )
    };
    if n == buf.len() as libc::c_long {
        return u64::from_ne_bytes(buf);
    }
    if let Ok(bytes) = std::fs::read("/proc/sys/kernel/random/uuid") {
        let mut v = 0u64;
        for b in bytes {
            v = v.rotate_left(5) ^ u64::from(b);
        }
        return v;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// The node name of `uname`, for the probe string (SPEC §6).
pub fn nodename() -> String {
    // SAFETY: uname fills the zeroed struct; nodename is NUL-terminated within it.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::new();
        }
        CStr::from_ptr(u.nodename.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}
