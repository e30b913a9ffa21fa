//! The exact words of every fatal message (SPEC §1, §3, §4, §6, §7), in one
//! place so that they can be read beside the spec. Scripts grep these: change
//! none of them by a byte.
//!
//! Values are shown as they were given; an OS error is shown as the C library's
//! `strerror` shows it, without Rust's `(os error N)`.

use std::fmt;
use std::io;

use nix::errno::Errno;

use crate::attempt::{Failure, Said};
use crate::machine::SpawnError;

/// An OS error as C programs print it: the bare `strerror` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsError(pub Errno);

impl fmt::Display for OsError {
    /// The C library's own text: nix's `desc` is a table of its own, whose
    /// words differ from glibc's for some errors (`I/O error`).
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut buf = [0u8; 256];
        // SAFETY: the XSI strerror_r writes at most buf.len() bytes, a
        // terminating NUL included, into buf; nix does not wrap it.
        let r = unsafe { libc::strerror_r(self.0 as i32, buf.as_mut_ptr().cast(), buf.len()) };
        let text = match (r, buf.iter().position(|&b| b == 0)) {
            (0, Some(end)) => String::from_utf8_lossy(&buf[..end]),
            _ => return f.write_str(self.0.desc()),
        };
        f.write_str(&text)
    }
}

impl std::error::Error for OsError {}

impl From<Errno> for OsError {
    fn from(e: Errno) -> OsError {
        OsError(e)
    }
}

/// The error number of an I/O error (EIO for the few that carry none).
pub fn errno(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

impl From<io::Error> for OsError {
    fn from(e: io::Error) -> OsError {
        OsError(errno(&e))
    }
}

/// Where the bytes that are not UTF-8 go in a message: the 256 code points
/// at the very end of Unicode's last private-use plane, one per byte.
const RAW_BYTES: u32 = 0x10_FF00;

/// `value` for a message, as text that keeps every byte: UTF-8 as it is, any
/// other byte as a private code point that [`raw`] turns back into that byte
/// when the message is written out (SPEC §3: values, paths and the program
/// name are quoted byte for byte). Messages travel as text through `log`.
pub fn shown(value: &[u8]) -> String {
    let byte = |b: u8| char::from_u32(RAW_BYTES + u32::from(b));
    let mut out = String::with_capacity(value.len());
    for chunk in value.utf8_chunks() {
        for c in chunk.valid().chars() {
            if u32::from(c) >= RAW_BYTES {
                // Real text in the range the raw bytes use: its bytes one by
                // one, or [`raw`] would take it for a single byte.
                out.extend(c.encode_utf8(&mut [0; 4]).bytes().filter_map(byte));
            } else {
                out.push(c);
            }
        }
        out.extend(chunk.invalid().iter().filter_map(|&b| byte(b)));
    }
    out
}

/// The bytes of a message made with [`shown`].
pub fn raw(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match u32::from(c).checked_sub(RAW_BYTES).map(u8::try_from) {
            Some(Ok(b)) => out.push(b),
            _ => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

/// SPEC §3: a number variable that does not parse or is out of its range;
/// `what` is e.g. "poll time".
pub fn invalid_variable(what: &str, value: &[u8]) -> String {
    format!("invalid {what} \"{}\"", shown(value))
}

/// SPEC §3: AUTOSSH_MESSAGE over its limit.
pub fn message_too_long(limit: usize) -> String {
    format!("echo message may only be {limit} bytes long")
}

/// SPEC §1: a monitor port that is not a number.
pub fn invalid_port(value: &[u8]) -> String {
    format!("invalid port \"{}\"", shown(value))
}

/// SPEC §1: a monitor port of 65535 or more, or negative, as a C int shows it.
pub fn port_out_of_range(port: i32) -> String {
    format!("monitor port ({port}) out of range")
}

/// SPEC §1: a bad echo port (the two spaces are upstream's).
pub fn invalid_echo_port(value: &[u8]) -> String {
    format!("invalid echo port  \"{}\"", shown(value))
}

/// SPEC §6: the loop-mode listener could not be opened (followed by the error).
pub fn bind(port: u16) -> String {
    format!("bind on 127.0.0.1:{port}")
}

/// A listener on the monitor port that is not ssh's fails the test.
pub fn not_ssh_listener(port: u16) -> String {
    format!("127.0.0.1:{port} is not ssh's: another process listens there")
}

/// Why a connection test failed, for the state file's reason.
pub fn failure(failure: &Failure) -> String {
    match *failure {
        Failure::Connect { port, error } => format!("127.0.0.1:{port}: {}", OsError(error)),
        Failure::NotSsh { port } => not_ssh_listener(port),
        Failure::NoReturn => "nothing came back through the tunnel in time".to_string(),
        Failure::Accept(error) => format!("error accepting read connection: {}", OsError(error)),
        Failure::Answer => "the test line did not come back unchanged, twice".to_string(),
    }
}

/// What a connection test says (SPEC §6), at its level: the words of the
/// original's log lines.
pub fn test_said(said: &Said) -> (log::Level, String) {
    use log::Level::{Debug, Info};
    match said {
        Said::ConnectFailed { port, error } => {
            (Info, format!("127.0.0.1:{port}: {}", OsError(*error)))
        }
        Said::NotFromSsh => (
            Debug,
            "a connection to the return port not from ssh, closed".to_string(),
        ),
        Said::NoReturn => (
            Info,
            "timeout polling to accept read connection".to_string(),
        ),
        Said::AcceptFailed(error) => (
            Info,
            format!("error accepting read connection: {}", OsError(*error)),
        ),
        Said::ReadTimedOut => (
            Debug,
            "timeout on io poll, looping to accept again".to_string(),
        ),
        Said::Passed => (Debug, "connection ok".to_string()),
        Said::Mismatch { sent, got } => (
            Debug,
            format!("not what I sent: \"{}\" : \"{}\"", shown(sent), shown(got)),
        ),
        Said::TwoTries => (Debug, "tried connection 2 times and failed".to_string()),
    }
}

/// SPEC §7: the pid file could not be written (followed by the error).
pub fn pid_file(path: &[u8]) -> String {
    format!("cannot open pid file \"{}\"", shown(path))
}

/// SPEC §3, §5: a log file or the ssh program (followed by the error).
pub fn path(path: &[u8]) -> String {
    shown(path)
}

/// SPEC §4: fork failed (followed by the error).
pub const FORK: &str = "fork";

/// The pipe that reports an exec failure could not be made (followed by the
/// error): our own set-up, not ssh's.
pub const PIPE: &str = "pipe";

/// A line of the supervision log (SPEC §4, §5, §6): what the decisions of
/// `machine` say, as plain data; the text is made only when it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// INFO `max start count reached; exiting`
    MaxStartReached,
    /// DEBUG `checking for grace period, tries = N`
    Tries(u32),
    /// DEBUG `sleeping for grace time N secs`
    Sleeping(u64),
    /// INFO `starting ssh (count N)` or `(count N of M)`
    Starting { count: u32, max: Option<u32> },
    /// INFO `ssh child pid is N`
    ChildPid(i32),
    /// ERR: ssh could not be started, by the step that failed.
    SpawnFailed(SpawnError),
    /// INFO `ssh exited on signal N, restarting ssh`
    EndedBySignal(i32),
    /// INFO `ssh exited with error status N; restarting ssh`
    EndedRestarting(i32),
    /// INFO `ssh exited with status N; NAME exiting`
    EndedExiting(i32),
    /// ERR `ssh exited prematurely with status N; NAME exiting`
    EndedPrematurely(i32),
    /// INFO `received signal to exit (N)`
    ExitSignal(i32),
    /// The one poll failed for good: nothing can wait any more.
    PollFailed(Errno),
    /// INFO `signalled to kill and restart ssh`
    RestartSignal,
    /// INFO `port down, restarting ssh`
    PortDown,
    /// INFO `network changed, testing the connection`
    NetworkChanged,
    /// INFO `ssh's connection was from ADDRESS, an address this host no
    /// longer has; restarting ssh`, or `the link of ssh's connection from
    /// ADDRESS is down; restarting ssh`
    ConnectionGone {
        from: std::net::IpAddr,
        link_down: bool,
    },
    /// INFO `exceeded maximum time to live, shutting down`
    LifetimeReached,
    /// INFO `ssh child pid N did not exit on SIGTERM; sending SIGKILL`
    KillingStubborn(i32),
    /// DEBUG `relay unreachable: ADDRESS:PORT: ERROR`: a knock while waiting
    /// found the relay's door closed.
    RelayUnreachable {
        door: std::net::SocketAddr,
        error: Errno,
    },
    /// INFO (DEBUG after the first) `the relay still holds port N for an
    /// earlier session; starting ssh again in S s`
    PortHeld { port: u16, retry: u64, first: bool },
    /// INFO `ssh is still connecting to ADDRESS:PORT, which answers;
    /// restarting ssh`
    StuckConnecting(std::net::SocketAddr),
    /// DEBUG `the relay ADDRESS:PORT answers again; starting ssh now`
    RelayBack(std::net::SocketAddr),
}

impl Note {
    pub fn level(&self) -> log::Level {
        use log::Level::{Debug, Error, Info};
        match self {
            Note::Tries(_)
            | Note::Sleeping(_)
            | Note::RelayUnreachable { .. }
            | Note::RelayBack(_)
            | Note::PortHeld { first: false, .. } => Debug,
            Note::SpawnFailed(_) | Note::EndedPrematurely(_) | Note::PollFailed(_) => Error,
            _ => Info,
        }
    }

    /// The line's text; `name` is the program name, `program` the ssh program
    /// (named in an exec failure).
    pub fn text(&self, name: &str, program: &[u8]) -> String {
        match *self {
            Note::MaxStartReached => "max start count reached; exiting".to_string(),
            Note::Tries(n) => format!("checking for grace period, tries = {n}"),
            Note::Sleeping(s) => format!("sleeping for grace time {s} secs"),
            Note::Starting { count, max: None } => format!("starting ssh (count {count})"),
            Note::Starting {
                count,
                max: Some(max),
            } => format!("starting ssh (count {count} of {max})"),
            Note::ChildPid(pid) => format!("ssh child pid is {pid}"),
            Note::SpawnFailed(SpawnError::Pipe(e)) => format!("{PIPE}: {}", OsError(e)),
            Note::SpawnFailed(SpawnError::Fork(e)) => format!("{FORK}: {}", OsError(e)),
            Note::SpawnFailed(SpawnError::Exec(e)) => {
                format!("{}: {}", path(program), OsError(e))
            }
            Note::EndedBySignal(n) => format!("ssh exited on signal {n}, restarting ssh"),
            Note::EndedRestarting(s) => format!("ssh exited with error status {s}; restarting ssh"),
            Note::EndedExiting(s) => format!("ssh exited with status {s}; {name} exiting"),
            Note::EndedPrematurely(s) => {
                format!("ssh exited prematurely with status {s}; {name} exiting")
            }
            Note::ExitSignal(n) => format!("received signal to exit ({n})"),
            Note::PollFailed(error) => format!("poll: {}", OsError(error)),
            Note::RestartSignal => "signalled to kill and restart ssh".to_string(),
            Note::PortDown => "port down, restarting ssh".to_string(),
            Note::NetworkChanged => "network changed, testing the connection".to_string(),
            Note::ConnectionGone {
                from,
                link_down: false,
            } => format!(
                "ssh's connection was from {from}, an address this host no longer has; restarting ssh"
            ),
            Note::ConnectionGone {
                from,
                link_down: true,
            } => format!("the link of ssh's connection from {from} is down; restarting ssh"),
            Note::LifetimeReached => "exceeded maximum time to live, shutting down".to_string(),
            Note::KillingStubborn(pid) => {
                format!("ssh child pid {pid} did not exit on SIGTERM; sending SIGKILL")
            }
            Note::RelayUnreachable { door, error } => {
                format!("relay unreachable: {door}: {}", OsError(error))
            }
            Note::PortHeld { port, retry, .. } => format!(
                "the relay still holds port {port} for an earlier session; starting ssh again in {retry} s"
            ),
            Note::StuckConnecting(door) => {
                format!("ssh is still connecting to {door}, which answers; restarting ssh")
            }
            Note::RelayBack(door) => {
                format!("the relay {door} answers again; starting ssh now")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_survive_text() {
        let edge = "\u{10FF41}\u{10FFFF}\u{10FEFF}";
        for bytes in [
            &b"plain"[..],
            b"\xff",
            b"a\xc3(b\x80",
            "é".as_bytes(),
            b"",
            edge.as_bytes(),
            b"\xf4\x8f\xbd",
        ] {
            assert_eq!(raw(&shown(bytes)), bytes);
        }
        // Every short byte string, and random longer ones.
        for n in 0..=0xffffu32 {
            let bytes = n.to_be_bytes();
            assert_eq!(raw(&shown(&bytes[2..])), &bytes[2..]);
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bytes biased to the four-byte sequences near the end of Unicode.
            let bytes: Vec<u8> = x
                .to_le_bytes()
                .iter()
                .map(|&b| match b % 4 {
                    0 => 0xf4,
                    1 => 0x8f,
                    2 => 0xbc | (b >> 6),
                    _ => 0x80 | (b & 0x3f),
                })
                .collect();
            assert_eq!(raw(&shown(&bytes)), bytes, "{bytes:x?}");
        }
        assert_eq!(invalid_port(b"\xff").len(), "invalid port \"\"".len() + 4);
        assert_eq!(raw(&invalid_port(b"\xff")), b"invalid port \"\xff\"");
    }

    /// The texts are the C library's, which is what the spec's messages show.
    #[test]
    fn os_errors_read_as_strerror() {
        for n in 1..=133 {
            // SAFETY: strerror returns a NUL-terminated string, copied at once on
            // this thread (the test harness runs no other strerror here).
            let c = unsafe { std::ffi::CStr::from_ptr(libc::strerror(n)) }
                .to_string_lossy()
                .into_owned();
            let ours = OsError(Errno::from_raw(n)).to_string();
            if !c.starts_with("Unknown error") {
                assert_eq!(ours, c, "errno {n}");
            }
        }
    }
}
