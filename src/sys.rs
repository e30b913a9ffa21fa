//! The few operating-system services the program needs, straight over the C
//! library: descriptors, errors, the monotonic clock, files and sockets. No
//! Rust runtime sits between these and the kernel, which keeps the binary and
//! its resident memory small.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicU8, Ordering};
use core::time::Duration;

use alloc::ffi::CString;

use crate::prelude::*;

extern "C" {
    pub fn tzset();
}

/// An OS error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The error of the last failed call.
    pub fn last() -> Errno {
        // SAFETY: errno is thread-local and always readable.
        Errno(unsafe { *libc::__errno_location() })
    }
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
pub fn error_text(error: &Errno) -> String {
    errno_text(error.0)
}

/// The last OS error.
pub fn last_error() -> Errno {
    Errno::last()
}

/// `Ok(n)` for a call's non-negative result, the last error otherwise.
fn check(r: isize) -> Result<usize, Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// A descriptor this program owns; closed when dropped.
#[derive(Debug)]
pub struct Fd(i32);

impl Fd {
    /// Takes ownership of `fd`, or the last error when it is negative.
    pub fn new(fd: i32) -> Result<Fd, Errno> {
        if fd < 0 {
            Err(Errno::last())
        } else {
            Ok(Fd(fd))
        }
    }

    pub fn raw(&self) -> i32 {
        self.0
    }

    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        // SAFETY: reads at most buf.len() bytes into buf.
        check(unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) })
    }

    pub fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        write(self.0, buf)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once, here.
        unsafe { libc::close(self.0) };
    }
}

/// One write(2) to `fd`.
pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: writes at most buf.len() bytes from buf.
    check(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// Writes all of `buf` to `fd`, going on after interruptions.
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(Errno(libc::EIO)),
            Ok(n) => buf = &buf[n..],
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A C string of `bytes`; a NUL inside is an invalid argument, as the kernel
/// would see it.
pub fn c_string(bytes: &[u8]) -> Result<CString, Errno> {
    CString::new(bytes).map_err(|_| Errno(libc::EINVAL))
}

/// Opens `path` with `flags` (close-on-exec is always added).
pub fn open(path: &[u8], flags: i32, mode: libc::mode_t) -> Result<Fd, Errno> {
    let path = c_string(path)?;
    // SAFETY: path is NUL-terminated; the mode is passed as the variadic argument.
    Fd::new(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })
}

/// The whole content of a (small) file.
pub fn read_file(path: &[u8]) -> Result<Vec<u8>, Errno> {
    let fd = open(path, libc::O_RDONLY, 0)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match fd.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
}

/// `lstat` of `path`: the file's mode, without following a final symlink.
pub fn lstat_mode(path: &[u8]) -> Option<libc::mode_t> {
    let path = c_string(path).ok()?;
    // SAFETY: lstat writes only into the zeroed struct it is given.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        (libc::lstat(path.as_ptr(), &mut st) == 0).then_some(st.st_mode)
    }
}

pub fn unlink(path: &[u8]) -> Result<(), Errno> {
    let path = c_string(path)?;
    // SAFETY: path is NUL-terminated.
    check(unsafe { libc::unlink(path.as_ptr()) } as isize).map(|_| ())
}

/// The working directory.
pub fn current_dir() -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: getcwd writes at most buf.len() bytes, NUL included, into buf.
    let p = unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
    if p.is_null() {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    buf.truncate(len);
    Some(buf)
}

/// `path` made absolute against `dir` (an absolute `path` stays as it is).
pub fn join(dir: &[u8], path: &[u8]) -> Vec<u8> {
    if path.first() == Some(&b'/') {
        return path.to_vec();
    }
    let mut out = dir.to_vec();
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(path);
    out
}

/// The last component of a path, as `basename` sees it for a plain name.
pub fn file_name(path: &[u8]) -> &[u8] {
    let trimmed = match path.iter().rposition(|&b| b != b'/') {
        Some(end) => &path[..=end],
        None => return b"",
    };
    let name = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(slash) => &trimmed[slash + 1..],
        None => trimmed,
    };
    if name == b".." {
        b""
    } else {
        name
    }
}

/// Device and inode of an open descriptor.
pub fn fd_identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: fstat writes only into the zeroed struct it is given.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev as u64, st.st_ino as u64))
    }
}

/// Puts /dev/null on whichever of descriptors 0–2 the program was started
/// without, so that no file of ours takes those numbers (and ssh, which
/// inherits 0–2, finds them open).
pub fn fill_closed_stdio() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only asks; open returns the lowest free number, which
        // is `fd` itself while it is closed and the lower ones are open.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) < 0 && Errno::last() == Errno(libc::EBADF) {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 && null != fd {
                    libc::dup2(null, fd);
                    libc::close(null);
                }
            }
        }
    }
}

/// Marks every descriptor above stderr that this process inherited close-on-exec,
/// so that ssh receives only 0–2 (SPEC §2, §9.9). Our own descriptors are all
/// opened close-on-exec.
pub fn cloexec_inherited() {
    let mut fds = Vec::new();
    // SAFETY: opendir/readdir/closedir on a directory stream used only here;
    // each entry's name is NUL-terminated within the entry.
    unsafe {
        let dir = libc::opendir(c"/proc/self/fd".as_ptr());
        if dir.is_null() {
            // Without /proc, try the usual range.
            fds.extend(3..1024);
        } else {
            loop {
                let entry = libc::readdir(dir);
                if entry.is_null() {
                    break;
                }
                let name = CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes();
                if let Some(fd) = crate::cnum::parse_int(name).filter(|&fd| fd > 2) {
                    fds.push(fd);
                }
            }
            libc::closedir(dir);
        }
    }
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

pub fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Seconds since the epoch.
pub fn time_now() -> i64 {
    // SAFETY: time accepts a null pointer.
    unsafe { libc::time(core::ptr::null_mut()) as i64 }
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
    if let Ok(bytes) = read_file(b"/proc/sys/kernel/random/uuid") {
        let mut v = 0u64;
        for b in bytes {
            v = v.rotate_left(5) ^ u64::from(b);
        }
        return v;
    }
    (time_now() as u64) ^ ((getpid() as u64) << 32) ^ Instant::now().0.subsec_nanos() as u64
}

/// The node name of `uname`, for the probe string (SPEC §6).
pub fn nodename() -> String {
    // SAFETY: uname fills the zeroed struct; nodename is NUL-terminated within it.
    unsafe {
        let mut u: libc::utsname = core::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::new();
        }
        CStr::from_ptr(u.nodename.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// A point on the monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(Duration);

impl Instant {
    pub fn now() -> Instant {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes only into ts.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Instant(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    /// The time from `earlier` to this instant, zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d))
    }
}

impl core::ops::Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d))
    }
}

/// A value set once, early, and read afterwards (the logger, the notifier).
/// Setting is first-come; a value is only seen once fully written.
pub struct Once<T> {
    state: AtomicU8,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: the value is written once, by whoever wins the state change from
// EMPTY to WRITING, and read only after the state says READY.
unsafe impl<T: Sync> Sync for Once<T> {}

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

impl<T> Default for Once<T> {
    fn default() -> Once<T> {
        Once::new()
    }
}

impl<T> Once<T> {
    pub const fn new() -> Once<T> {
        Once {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(None),
        }
    }

    pub fn set(&self, value: T) {
        if self
            .state
            .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: only the winner of the exchange above writes, and no reader
            // looks before READY.
            unsafe { *self.value.get() = Some(value) };
            self.state.store(READY, Ordering::Release);
        }
    }

    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY means the value is written and never written again.
            unsafe { (*self.value.get()).as_ref() }
        } else {
            None
        }
    }
}

/// A TCP socket bound to 127.0.0.1:`port` with SO_REUSEADDR, non-blocking and
/// close-on-exec; listening when `backlog` is given.
pub fn tcp_bind_loopback(port: u16, backlog: Option<i32>) -> Result<Fd, Errno> {
    // SAFETY: socket returns a new descriptor owned by the Fd at once; the
    // option and the address are fully initialised values on the stack.
    unsafe {
        let fd = Fd::new(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd.raw(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = loopback(port);
        if libc::bind(
            fd.raw(),
            (&addr as *const libc::sockaddr_in).cast(),
            core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
        {
            return Err(Errno::last());
        }
        if let Some(backlog) = backlog {
            if libc::listen(fd.raw(), backlog) != 0 {
                return Err(Errno::last());
            }
        }
        Ok(fd)
    }
}

/// The address 127.0.0.1:`port`.
pub fn loopback(port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_in = unsafe { core::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = port.to_be();
    addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(file_name(b"/usr/bin/autossh"), b"autossh");
        assert_eq!(file_name(b"autossh"), b"autossh");
        assert_eq!(file_name(b"./x/"), b"x");
        assert_eq!(file_name(b"/"), b"");
        assert_eq!(file_name(b""), b"");
        assert_eq!(file_name(b"a/.."), b"");
    }

    #[test]
    fn joins() {
        assert_eq!(join(b"/a", b"b"), b"/a/b");
        assert_eq!(join(b"/", b"b"), b"/b");
        assert_eq!(join(b"/a", b"/b"), b"/b");
    }

    #[test]
    fn once_is_set_once() {
        let once = Once::new();
        assert_eq!(once.get(), None);
        once.set(1);
        once.set(2);
        assert_eq!(once.get(), Some(&1));
    }
}
