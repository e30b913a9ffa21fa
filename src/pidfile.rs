//! AUTOSSH_PIDFILE (SPEC §7, §9.12): written once, never through a symlink, and
//! removed at exit only while it still holds our pid.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::messages::{self, OsError};

pub struct PidFile {
    path: PathBuf,
    content: String,
}

impl PidFile {
    /// Writes `PID\n`; the error is the message of SPEC §3.
    pub fn write(path: PathBuf) -> anyhow::Result<PidFile> {
        use std::os::unix::ffi::OsStrExt;
        let content = format!("{}\n", std::process::id());
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            // Never through a symlink (SPEC §9.12); never waiting in open
            // for the reader of a FIFO, where no signal could end us.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .and_then(|mut file| file.write_all(content.as_bytes()))
            .map_err(|e| {
                anyhow::Error::new(OsError::from(e))
                    .context(messages::pid_file(path.as_os_str().as_bytes()))
            })?;
        Ok(PidFile { path, content })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only a regular file is read: reading a FIFO would wait for a writer.
        let regular = fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_file());
        if regular && fs::read(&self.path).is_ok_and(|c| c == self.content.as_bytes()) {
            let _ = fs::remove_file(&self.path);
        }
    }
}
