//! Logging (SPEC §4): every message goes through the `log` facade to the one
//! logger here, which sends it to syslog (the `syslog` crate, with datagrams
//! formatted as the C library's `syslog(3)` formats them) or to
//! AUTOSSH_LOGFILE, one line per message, and applies AUTOSSH_LOGLEVEL.
//! AUTOSSH_DEBUG copies lines to stderr; errors also reach stderr while the
//! program still has its terminal (SPEC §9.7).

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use log::{Level, LevelFilter, Metadata, Record};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use syslog::{LogFormat, LoggerBackend, Severity};

use crate::config::LogSettings;
use crate::messages::{self, OsError};

/// Syslog's levels (SPEC §4), as the configuration holds them.
pub const ERR: u8 = libc::LOG_ERR as u8;
pub const INFO: u8 = libc::LOG_INFO as u8;
pub const DEBUG: u8 = libc::LOG_DEBUG as u8;

/// The facility of every message.
const FACILITY_USER: u8 = libc::LOG_USER as u8;
/// Where the C library sends syslog messages.
const SYSLOG_SOCKET: &str = "/dev/log";

/// The syslog level of a `log` level.
pub fn syslog_level(level: Level) -> u8 {
    match level {
        Level::Error => ERR,
        Level::Warn => libc::LOG_WARNING as u8,
        Level::Info => INFO,
        Level::Debug | Level::Trace => DEBUG,
    }
}

/// The datagram of the C library's `syslog(3)` with LOG_PID:
/// `<PRI>Mmm dd HH:MM:SS IDENT[PID]: MESSAGE`.
#[derive(Clone)]
struct CFormat {
    ident: Vec<u8>,
}

impl CFormat {
    fn datagram(&self, level: u8, tm: &libc::tm, pid: u32, message: &[u8]) -> Vec<u8> {
        let mut out = format!("<{}>{} ", FACILITY_USER | level, syslog_time(tm)).into_bytes();
        out.extend_from_slice(&self.ident);
        out.extend_from_slice(format!("[{pid}]: ").as_bytes());
        out.extend_from_slice(message);
        out
    }
}

impl LogFormat<&[u8]> for CFormat {
    fn format<W: Write>(
        &self,
        w: &mut W,
        severity: Severity,
        message: &[u8],
    ) -> syslog::Result<()> {
        let datagram = self.datagram(severity as u8, &local_now(), std::process::id(), message);
        // One write is one datagram.
        w.write(&datagram).map(|_| ()).map_err(syslog::Error::Write)
    }
}

type Syslog = syslog::Logger<LoggerBackend, CFormat>;

/// Where messages go.
enum Sink {
    File(File),
    /// Connected when the first message is sent, and again after a send fails
    /// (a restarted syslog daemon), as `syslog(3)` does.
    Syslog {
        format: CFormat,
        connection: Option<Syslog>,
    },
}

impl Sink {
    fn write(&mut self, level: u8, name: &str, message: &str) {
        match self {
            Sink::File(file) => {
                let tm = local_now();
                let line = format!(
                    "{} {}[{}]: {}\n",
                    file_time(&tm),
                    name,
                    std::process::id(),
                    message
                );
                // One write per line, so that lines arrive whole; a failed
                // write must not stop supervision (a full disk, a deleted
                // file): the line is dropped.
                let _ = file.write_all(&messages::raw(&line));
            }
            Sink::Syslog { format, connection } => {
                let severity = severity(level);
                for _ in 0..2 {
                    if connection.is_none() {
                        *connection = syslog::unix_custom(format.clone(), SYSLOG_SOCKET).ok();
                    }
                    let Some(syslog) = connection.as_mut() else {
                        return;
                    };
                    let sent = syslog.formatter.format(
                        &mut syslog.backend,
                        severity,
                        &messages::raw(message)[..],
                    );
                    if sent.is_ok() {
                        return;
                    }
                    // Connect again and retry once.
                    *connection = None;
                }
            }
        }
    }
}

fn severity(level: u8) -> Severity {
    match level {
        0 => Severity::LOG_EMERG,
        1 => Severity::LOG_ALERT,
        2 => Severity::LOG_CRIT,
        3 => Severity::LOG_ERR,
        4 => Severity::LOG_WARNING,
        5 => Severity::LOG_NOTICE,
        6 => Severity::LOG_INFO,
        _ => Severity::LOG_DEBUG,
    }
}

struct Logger {
    name: String,
    level: u8,
    sink: Mutex<Sink>,
    /// The log itself is seen where stderr is (AUTOSSH_LOGFILE naming stderr
    /// or stdout, or the debug copy): errors need no second copy there.
    log_reaches_stderr: bool,
    debug_copy: bool,
}

/// Set once stdio is /dev/null (after -f): no more copies to stderr.
static DETACHED: AtomicBool = AtomicBool::new(false);

fn to_stderr(line: &str) {
    let _ = io::stderr().lock().write_all(&messages::raw(line));
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        syslog_level(metadata.level()) <= self.level.max(INFO)
    }

    fn log(&self, record: &Record) {
        let level = syslog_level(record.level());
        let message = record.args().to_string();
        if level <= self.level {
            if let Ok(mut sink) = self.sink.lock() {
                sink.write(level, &self.name, &message);
            }
            if self.debug_copy {
                to_stderr(&format!(
                    "{}[{}]: {}\n",
                    self.name,
                    std::process::id(),
                    message
                ));
            }
        }
        if level <= INFO {
            crate::notify::status(&message);
        }
        if level <= ERR && !self.log_reaches_stderr && !DETACHED.load(Ordering::Relaxed) {
            to_stderr(&format!("{}: {}\n", self.name, message));
        }
    }

    fn flush(&self) {}
}

/// Whether two descriptors are the same open file.
fn same_file(a: impl AsFd, b: impl AsFd) -> bool {
    match (nix::sys::stat::fstat(a), nix::sys::stat::fstat(b)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// Whether lines written to the log file are seen where `stream` is seen:
/// the same file, and not /dev/null (which shows nothing, wherever it is).
fn shown_on(log: &File, stream: impl AsFd) -> bool {
    !is_null(log) && same_file(log, stream)
}

/// Descriptor 1, for what stat says of it. Not through `io::stdout()`,
/// whose first use gives it a 1 kB buffer that would stay in every instance
/// though autossh never writes there while it runs.
fn stdout_fd() -> BorrowedFd<'static> {
    // SAFETY: descriptor 1 is open for as long as autossh runs: std's
    // runtime opens /dev/null on any of 0, 1 and 2 that is closed before
    // `main`, and only `-f`, after this, puts another in its place.
    unsafe { BorrowedFd::borrow_raw(libc::STDOUT_FILENO) }
}

/// Whether `fd` is /dev/null (or a copy of it under another name).
pub fn is_null(fd: impl AsFd) -> bool {
    // st_rdev is 32 bits wide on MIPS, dev_t 64.
    nix::sys::stat::fstat(fd).is_ok_and(|st| {
        st.st_mode & libc::S_IFMT == libc::S_IFCHR
            && st.st_rdev as libc::dev_t == libc::makedev(1, 3)
    })
}

/// The descriptor that a log file path names when it is one autossh already
/// has: `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`.
fn inherited_descriptor(path: &[u8]) -> Option<i32> {
    match path {
        b"/dev/stdout" => Some(1),
        b"/dev/stderr" => Some(2),
        _ => {
            let number = path
                .strip_prefix(b"/dev/fd/")
                .or_else(|| path.strip_prefix(b"/proc/self/fd/"))?;
            if number.is_empty() || !number.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(number).ok()?.parse().ok()
        }
    }
}

/// Opens AUTOSSH_LOGFILE for appending (SPEC §4). A descriptor autossh
/// already has is duplicated, not opened again: a socket (journald's stderr)
/// cannot be reopened, and a file shared with ssh (`2>tunnel.log`) must be
/// written at the offset they share, or each would overwrite the other.
///
/// A FIFO waits here for its reader, as with the original. Once open, a FIFO
/// or socket of our own is made non-blocking: a reader that stops reading
/// then costs log lines (dropped once its 64 kB are full), never the
/// supervision.
pub fn open(path: &[u8]) -> Result<File, OsError> {
    if let Some(fd) = inherited_descriptor(path) {
        // SAFETY: only duplicated, at once; a descriptor that is not open makes
        // fcntl fail with EBADF, which is reported.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let copy = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
        return Ok(unsafe { File::from_raw_fd(copy) });
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(Path::new(OsStr::from_bytes(path)))?;
    if file.metadata().is_ok_and(|m| !m.file_type().is_file()) {
        // Ours alone: the flag is on our own open file description.
        if let Ok(flags) = fcntl(&file, FcntlArg::F_GETFL) {
            let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
            let _ = fcntl(&file, FcntlArg::F_SETFL(flags));
        }
    }
    Ok(file)
}

/// Installs the logger, with the log file [`open`] gave (None: syslog). When
/// the log file could not be opened, the logger still works (syslog) and the
/// error is returned for the caller to report as fatal: `PATH: OS error`
/// (SPEC §3).
pub fn init(
    name: &str,
    settings: &LogSettings,
    opened: Option<Result<File, OsError>>,
) -> anyhow::Result<()> {
    // The zone is first read here, near the top of the stack: its first
    // reading opens and parses the zone file, which below a log line's
    // frames would touch one more stack page in every idle instance. Later
    // lines only check that it did not change.
    crate::time::local_time(0);
    let mut failure = None;
    let file = match (opened, &settings.file) {
        (Some(Ok(file)), _) => Some(file),
        (Some(Err(e)), Some(path)) => {
            failure = Some(anyhow::Error::new(e).context(messages::path(path)));
            None
        }
        _ => None,
    };
    // A container that logs to /dev/stdout shows stdout and stderr together:
    // an error copied to stderr would show twice (SPEC §9.7).
    let file_is_seen = file
        .as_ref()
        .is_some_and(|f| shown_on(f, io::stderr()) || shown_on(f, stdout_fd()));
    let debug_copy = settings.debug && file.is_none();
    let sink = match file {
        Some(file) => Sink::File(file),
        None => Sink::Syslog {
            format: CFormat {
                ident: messages::raw(name),
            },
            connection: None,
        },
    };
    let logger = Logger {
        name: name.to_string(),
        level: settings.level,
        sink: Mutex::new(sink),
        log_reaches_stderr: file_is_seen || debug_copy,
        debug_copy,
    };
    // Messages up to INFO are always built: they feed the service manager's
    // status line and, for errors, stderr, whatever the level.
    let max = if settings.level >= DEBUG {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// After -f: stderr is /dev/null from now on.
pub fn detached() {
    DETACHED.store(true, Ordering::Relaxed);
}

/// The broken-down local time of now (SPEC §4 log lines).
fn local_now() -> libc::tm {
    crate::time::local_time(crate::time::unix_now())
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `YYYY/MM/DD HH:MM:SS`, the time of a log file line.
fn file_time(tm: &libc::tm) -> String {
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `Mmm dd HH:MM:SS` with the day padded by a space, the time of a syslog
/// datagram as the C library writes it (`%h %e %T`, C locale).
fn syslog_time(tm: &libc::tm) -> String {
    let month = usize::try_from(tm.tm_mon)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .unwrap_or(&"Jan");
    format!(
        "{} {:2} {:02}:{:02}:{:02}",
        month, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm(year: i32, mon: i32, mday: i32, hour: i32, min: i32, sec: i32) -> libc::tm {
        // SAFETY: libc::tm is plain data; all-zero is a valid value.
        let mut t: libc::tm = unsafe { std::mem::zeroed() };
        (t.tm_year, t.tm_mon, t.tm_mday) = (year - 1900, mon - 1, mday);
        (t.tm_hour, t.tm_min, t.tm_sec) = (hour, min, sec);
        t
    }

    #[test]
    fn times() {
        let t = tm(2026, 11, 5, 4, 26, 7);
        assert_eq!(file_time(&t), "2026/11/05 04:26:07");
        assert_eq!(syslog_time(&t), "Nov  5 04:26:07");
        assert_eq!(syslog_time(&tm(2026, 1, 25, 23, 0, 59)), "Jan 25 23:00:59");
    }

    #[test]
    fn datagram_is_the_c_librarys() {
        // SAFETY: libc::tm is plain data; all-zero is a valid value.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        (tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec) = (10, 5, 4, 26, 57);
        let f = CFormat {
            ident: b"autossh".to_vec(),
        };
        assert_eq!(
            f.datagram(INFO, &tm, 9067, b"starting ssh (count 1)"),
            b"<14>Nov  5 04:26:57 autossh[9067]: starting ssh (count 1)".to_vec()
        );
        assert_eq!(f.datagram(ERR, &tm, 1, b"x")[..4], *b"<11>");
    }

    #[test]
    fn descriptors_named_by_path() {
        let d = inherited_descriptor;
        assert_eq!(d(b"/dev/stdout"), Some(1));
        assert_eq!(d(b"/dev/stderr"), Some(2));
        assert_eq!(d(b"/dev/fd/7"), Some(7));
        assert_eq!(d(b"/proc/self/fd/12"), Some(12));
        for other in [
            &b"/dev/fd/"[..],
            b"/dev/fd/x",
            b"/dev/fd/-1",
            b"/tmp/log",
            b"/dev/null",
        ] {
            assert_eq!(d(other), None);
        }
    }

    #[test]
    fn levels() {
        assert_eq!(syslog_level(Level::Error), 3);
        assert_eq!(syslog_level(Level::Info), 6);
        assert_eq!(syslog_level(Level::Debug), 7);
        assert!(matches!(severity(3), Severity::LOG_ERR));
    }
}
