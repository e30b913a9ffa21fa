//! Files as this program reads and writes them: only regular files, read
//! without blocking and up to a size; folders checked for their owner;
//! a list replaced whole.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::list;

/// The largest tunnel list read.
pub const LIST_MAX: u64 = 4 << 20;
/// The largest pid, state or definition file read.
pub const FILE_MAX: u64 = 64 << 10;

/// The text of the regular file at `path`, at most `max` bytes of it (more
/// is an error). It is opened without blocking, so that a FIFO or a device
/// put in its place is refused at once instead of waited on, and unless
/// `follow`, a symlink at the end of `path` is refused too.
pub fn read_file(path: &Path, max: u64, follow: bool) -> std::io::Result<Vec<u8>> {
    read_regular(path, max, follow).map(|(text, _)| text)
}

/// As [`read_file`], with what the file's metadata says (its owner).
pub fn read_regular(
    path: &Path,
    max: u64,
    follow: bool,
) -> std::io::Result<(Vec<u8>, fs::Metadata)> {
    let mut flags = libc::O_NONBLOCK;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = Vec::new();
    file.take(max + 1).read_to_end(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {} kB",
            max >> 10
        )));
    }
    Ok((text, meta))
}

/// What is wrong with a run folder of `meta` for this user, if anything:
/// it is not a folder, another user owns it, or others can write in it.
pub fn foreign_folder(meta: &fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() {
        Some("is not a folder".into())
    } else if meta.uid() != me {
        Some(format!(
            "belongs to another user (uid {}, not {me})",
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "can be written by others (mode {:04o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// An error of the system as `strerror` words it, without Rust's
/// "(os error N)".
pub fn os_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

pub fn shown_path(p: &Path) -> String {
    list::shown(p.as_os_str().as_bytes(), 200)
}

/// A word of `RUN_DIR/NAME.tunnel`: a quoted string, control bytes
/// escaped; bytes that are not UTF-8 as a list of numbers.
pub fn quoted_word(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("{bytes:?}"),
    }
}

/// A number no other process can guess: std draws each hasher's keys from
/// the kernel.
pub fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Replaces the list with `text`, whole: through a temporary in its folder
/// (its name drawn anew, so that no one can take it first), renamed over
/// it, with the old one's permissions. A list that is a symlink (into a
/// shared folder edited over the network) stays one: its target is what is
/// replaced, in the target's folder.
pub fn write_list(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let target;
    let path = if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        target = fs::canonicalize(path)?;
        target.as_path()
    } else {
        path
    };
    let mode = fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o777);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{:016x}.tmp", random()));
    let temporary = path.with_file_name(name);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)
        .and_then(|mut f| {
            f.write_all(text)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}
