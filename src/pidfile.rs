//! AUTOSSH_PIDFILE (SPEC §7, §9.12): written once, never through a symlink, and
//! removed at exit only while it still holds our pid.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::sys;

pub struct PidFile {
    path: PathBuf,
    content: String,
}

impl PidFile {
    /// Writes `PID\n`; the error is the message of SPEC §3.
    pub fn write(path: &Path) -> Result<PidFile, String> {
        let content = format!("{}\n", std::process::id());
        let result = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .and_then(|mut f| f.write_all(content.as_bytes()).map(|_| f));
        match result {
            Ok(_) => Ok(PidFile {
                path: path.to_path_buf(),
                content,
            }),
            Err(e) => Err(format!(
                "cannot open pid file \"{}\": {}",
                path.display(),
                sys::error_text(&e)
            )),
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read(&self.path).is_ok_and(|c| c == self.content.as_bytes());
        let link = std::fs::symlink_metadata(&self.path).is_ok_and(|m| !m.is_file());
        if ours && !link {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
