//! Processes as /proc shows them: the fields of `/proc/PID/stat` that
//! autossh (`owner`) and the tunnel-list program need, read in one place.
//! Paths and lines are made and read on the stack, and directories are
//! walked without a name per entry on the heap: a scan of every process at
//! each connection test leaves nothing scattered over the heap, where small
//! freed blocks would keep pages resident in every idle instance.

use std::ffi::CStr;
use std::fs;
use std::io::{Read, Write as _};

use nix::dir::Dir;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The state letter (`R`, `S`, `Z`...).
    pub state: u8,
    pub ppid: i32,
    /// The kernel's flags (`PF_*`).
    pub flags: u64,
    /// When it started, in clock ticks after boot: with the pid, what names
    /// one process and no later one that takes its pid.
    pub start: u64,
}

/// The kernel's flag of a process that is exiting.
const PF_EXITING: u64 = 0x4;

impl Stat {
    /// Whether the process is on its way out: a zombie, or exiting though
    /// its parent has not yet heard.
    pub fn dying(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x') || self.flags & PF_EXITING != 0
    }
}

/// Reads a stat line. The process's name, in parentheses, may hold any
/// bytes (not UTF-8, or `) `): the fields are counted from its last `)`.
pub fn parse_stat(text: &[u8]) -> Option<Stat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state, ppid, pgrp, session, tty, tpgid, flags, ...,
    // starttime (the 20th).
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?;
    let flags = fields.nth(4)?.parse().ok()?;
    let start = fields.nth(12)?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        flags,
        start,
    })
}

/// `/proc/PID/WHAT` as a C string, made in `buf`: opened through nix as
/// it is, with no copy to make on the stack; None where `what` is too long.
pub fn path(buf: &mut [u8; 64], pid: i32, what: impl std::fmt::Display) -> Option<&CStr> {
    let mut out = &mut buf[..];
    write!(out, "/proc/{pid}/{what}\0").ok()?;
    let len = 64 - out.len();
    CStr::from_bytes_with_nul(&buf[..len]).ok()
}

/// The stat of process `pid`, where /proc shows it.
pub fn stat(pid: i32) -> Option<Stat> {
    // Enough for the fields up to the start time, however long their
    // numbers: the name is at most 64 bytes, and 20 fields of at most 20
    // digits follow it.
    let mut buf = [0u8; 512];
    let mut name = [0u8; 64];
    let fd = open(
        path(&mut name, pid, "stat")?,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let n = fs::File::from(fd).read(&mut buf).ok()?;
    parse_stat(&buf[..n])
}

/// Calls `f` with the name of each entry of the directory at `path`
/// (without `.` and `..`); false where it cannot be read.
pub fn each_entry(path: &CStr, mut f: impl FnMut(&[u8])) -> bool {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let Ok(mut dir) = Dir::open(path, flags, Mode::empty()) else {
        return false;
    };
    // Bounded by the directory: its end ends the walk, as does an error.
    for entry in dir.iter() {
        let Ok(entry) = entry else { break };
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            f(name);
        }
    }
    true
}

/// A name of decimal digits as a number (a pid, a descriptor).
pub fn number(name: &[u8]) -> Option<i32> {
    std::str::from_utf8(name)
        .ok()?
        .parse()
        .ok()
        .filter(|&n| n >= 0)
}

/// `(pid, parent)` of every process, or None without /proc.
pub fn parents() -> Option<Vec<(i32, i32)>> {
    // Sized past what small hosts run: the list is one block, large enough
    // to be given back whole after the test, and it grows in such blocks.
    let mut found = Vec::with_capacity(512);
    let read = each_entry(c"/proc", |name| {
        if let Some(pid) = number(name) {
            if let Some(stat) = stat(pid) {
                found.push((pid, stat.ppid));
            }
        }
    });
    read.then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stat line with these fields after the name (the rest zero).
    fn line(name: &str, state: &str, ppid: i32, flags: u64, start: u64) -> Vec<u8> {
        let mut fields = vec!["0".to_string(); 20];
        fields[0] = state.into();
        fields[1] = ppid.to_string();
        fields[6] = flags.to_string();
        fields[19] = start.to_string();
        format!("42 ({name}) {} 10 20", fields.join(" ")).into_bytes()
    }

    #[test]
    fn stat_lines_whatever_the_name() {
        let s = parse_stat(&line("a) b) (c", "S", 7, 0x0040_0000, 12345)).unwrap();
        assert_eq!(
            s,
            Stat {
                state: b'S',
                ppid: 7,
                flags: 0x0040_0000,
                start: 12345
            }
        );
        assert!(!s.dying());
        let mut odd = b"42 (\xff\xfe) ".to_vec();
        odd.extend_from_slice(&line("x", "R", 3, 0, 1)[7..]);
        assert_eq!(parse_stat(&odd).map(|s| s.ppid), Some(3));
        assert!(parse_stat(&line("x", "R", 1, 0x0040_0004, 1))
            .unwrap()
            .dying());
        assert!(parse_stat(&line("x", "Z", 1, 0, 1)).unwrap().dying());
        for bad in [
            &b""[..],
            b"42 (cut",
            b"42 (x) S 7",
            b"42 (x) S x 1 1 1 1 1 1",
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn this_process() {
        let me = stat(std::process::id() as i32).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id() as i32);
        assert!(!me.dying());
        let mut name = [0u8; 64];
        assert_eq!(path(&mut name, 123, "fd"), Some(c"/proc/123/fd"));
        assert_eq!(
            path(&mut name, i32::MIN, format_args!("fd/{}", i32::MAX)),
            Some(c"/proc/-2147483648/fd/2147483647")
        );
        assert_eq!(path(&mut name, 1, "x".repeat(100)), None);
        assert_eq!(path(&mut name, 1, "a\0b"), None, "a name with a NUL");
        assert_eq!(number(b"42"), Some(42));
        for bad in [&b"self"[..], b"", b"-1", b"4x", b"99999999999"] {
            assert_eq!(number(bad), None, "{bad:?}");
        }
        let mut mine = Vec::new();
        assert!(each_entry(c"/proc/self/fd", |n| mine.push(number(n))));
        assert!(!mine.is_empty() && mine.iter().all(Option::is_some));
        assert!(!each_entry(c"/nonexistent", |_| panic!()));
        assert!(parents()
            .unwrap()
            .contains(&(std::process::id() as i32, me.ppid)));
        assert_eq!(stat(0), None);
    }
}
