//! `-f` (SPEC §5): into the background once everything is validated.

use crate::sys::Errno;

/// Forks; the parent exits 0 at once, the child leads a new session in `/` with
/// stdio on /dev/null.
pub fn detach() -> Result<(), Errno> {
    // SAFETY: single-threaded here; the parent only calls _exit after fork.
    match unsafe { libc::fork() } {
        -1 => return Err(Errno::last()),
        0 => {}
        // SAFETY: _exit ends the parent without running the child's cleanups twice.
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: setsid and chdir take no pointers but a valid C string literal; the
    // descriptors are ours: /dev/null is opened, duplicated onto 0–2, then closed.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    crate::log::detached();
    Ok(())
}
