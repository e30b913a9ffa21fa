//! AUTOSSH_PIDFILE (SPEC §7, §9.12): written once, never through a symlink, and
//! removed at exit only while it still holds our pid.

use crate::prelude::*;
use crate::sys;

pub struct PidFile {
    path: Vec<u8>,
    content: String,
}

impl PidFile {
    /// Writes `PID\n`; the error is the message of SPEC §3.
    pub fn write(path: &[u8]) -> Result<PidFile, String> {
        let content = format!("{}\n", sys::getpid());
        let result = sys::open(
            path,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW,
            0o644,
        )
        .and_then(|fd| sys::write_all(fd.raw(), content.as_bytes()));
        match result {
            Ok(()) => Ok(PidFile {
                path: path.to_vec(),
                content,
            }),
            Err(e) => Err(format!(
                "cannot open pid file \"{}\": {}",
                String::from_utf8_lossy(path),
                sys::error_text(&e)
            )),
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = sys::read_file(&self.path).is_ok_and(|c| c == self.content.as_bytes());
        let regular =
            sys::lstat_mode(&self.path).is_some_and(|mode| mode & libc::S_IFMT == libc::S_IFREG);
        if ours && regular {
            let _ = sys::unlink(&self.path);
        }
    }
}
