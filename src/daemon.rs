//! `-f` (SPEC §5): into the background once everything is validated.

use std::fs::OpenOptions;

use nix::errno::Errno;
use nix::unistd::{chdir, dup2_stderr, dup2_stdin, dup2_stdout, fork, setsid, ForkResult};

/// Forks; the parent exits 0 at once, the child leads a new session in `/` with
/// stdio on /dev/null.
pub fn detach() -> Result<(), Errno> {
    // SAFETY: the process is single-threaded here; the parent only exits.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    let _ = setsid();
    let _ = chdir("/");
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = dup2_stdin(&null);
        let _ = dup2_stdout(&null);
        let _ = dup2_stderr(&null);
    }
    crate::log::detached();
    Ok(())
}
