//! Processes as /proc shows them: the fields of `/proc/PID/stat` that
//! autossh (`owner`) and the tunnel-list program need, read in one place.
//! Each line is read into the stack, so that a scan of every process leaves
//! nothing scattered over the heap.

use std::fs;
use std::io::Read;

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

/// The stat of process `pid`, where /proc shows it.
pub fn stat(pid: i32) -> Option<Stat> {
    // A stat line is far shorter than this (its name is at most 64 bytes).
    let mut buf = [0u8; 1024];
    let mut file = fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let n = file.read(&mut buf).ok()?;
    parse_stat(&buf[..n])
}

/// Every pid /proc lists, or None without /proc.
pub fn pids() -> Option<Vec<i32>> {
    Some(
        fs::read_dir("/proc")
            .ok()?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

/// `(pid, parent)` of every process, or None without /proc.
pub fn parents() -> Option<Vec<(i32, i32)>> {
    Some(
        pids()?
            .into_iter()
            .filter_map(|pid| Some((pid, stat(pid)?.ppid)))
            .collect(),
    )
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
        assert!(pids().unwrap().contains(&(std::process::id() as i32)));
        assert!(parents()
            .unwrap()
            .contains(&(std::process::id() as i32, me.ppid)));
        assert_eq!(stat(0), None);
    }
}
