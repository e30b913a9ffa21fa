//! Logging (SPEC §4): syslog by default, or a file with one flushed line per
//! message; AUTOSSH_DEBUG copies lines to stderr. Errors also reach stderr while
//! the program still has its terminal (SPEC §9.7).

use core::sync::atomic::{AtomicBool, Ordering};

use alloc::ffi::CString;

use crate::config::LogSettings;
use crate::prelude::*;
use crate::sys::{self, Fd, Once};

pub const ERR: u8 = 3;
pub const INFO: u8 = 6;
pub const DEBUG: u8 = 7;

struct Logger {
    name: String,
    level: u8,
    file: Option<Fd>,
    /// The log itself is what stderr is (AUTOSSH_LOGFILE=/dev/stderr, or the
    /// debug copy): errors need no second copy there.
    log_reaches_stderr: bool,
    debug_copy: bool,
}

static LOGGER: Once<Logger> = Once::new();
/// Set once stdio is /dev/null (after -f): no more copies to stderr.
static DETACHED: AtomicBool = AtomicBool::new(false);

/// Opens the log. On failure the logger still works (syslog), and the error is
/// returned for the caller to report as fatal: `PATH: OS error` (SPEC §3).
pub fn init(name: &str, settings: &LogSettings) -> Result<(), String> {
    let mut failure = None;
    let file = settings.file.as_ref().and_then(|path| {
        sys::open(path, libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, 0o644)
            .map_err(|e| {
                failure = Some(format!(
                    "{}: {}",
                    String::from_utf8_lossy(path),
                    sys::error_text(&e)
                ))
            })
            .ok()
    });
    let file_is_stderr = match (&file, sys::fd_identity(2)) {
        (Some(f), Some(stderr)) => sys::fd_identity(f.raw()) == Some(stderr),
        _ => false,
    };
    let debug_copy = settings.debug && file.is_none();
    if file.is_none() {
        // The ident must outlive every syslog call: it is leaked once, on purpose.
        let ident = CString::new(name.replace('\0', "")).unwrap_or_default();
        let ident: &'static CString = Box::leak(Box::new(ident));
        // SAFETY: `ident` is a valid NUL-terminated string that lives forever.
        unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_USER) };
    } else {
        // SAFETY: tzset only reads the TZ variable; called once before localtime_r.
        unsafe { sys::tzset() };
    }
    LOGGER.set(Logger {
        name: name.to_string(),
        level: settings.level,
        file,
        log_reaches_stderr: file_is_stderr || debug_copy,
        debug_copy,
    });
    match failure {
        Some(message) => Err(message),
        None => Ok(()),
    }
}

/// After -f: stderr is /dev/null from now on.
pub fn detached() {
    DETACHED.store(true, Ordering::Relaxed);
}

fn timestamp() -> String {
    let mut now: libc::time_t = 0;
    // SAFETY: time and localtime_r write only into the locals given to them.
    let tm = unsafe {
        libc::time(&mut now);
        let mut tm: libc::tm = core::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

fn emit(logger: &Logger, level: u8, message: &str) {
    let pid = sys::getpid();
    if let Some(file) = logger.file.as_ref() {
        let line = format!("{} {}[{}]: {}\n", timestamp(), logger.name, pid, message);
        // A failed write must not stop supervision (a full disk, a deleted file).
        let _ = sys::write_all(file.raw(), line.as_bytes());
    } else {
        let text = CString::new(message.replace('\0', "")).unwrap_or_default();
        // SAFETY: the format is a literal "%s" and `text` is NUL-terminated.
        unsafe { libc::syslog(i32::from(level), c"%s".as_ptr(), text.as_ptr()) };
    }
    if logger.debug_copy {
        let line = format!("{}[{}]: {}\n", logger.name, pid, message);
        let _ = sys::write_all(2, line.as_bytes());
    }
}

/// Logs `message` at syslog `level` when the configured level lets it through.
pub fn log(level: u8, message: &str) {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    if level <= logger.level {
        emit(logger, level, message);
    }
    if level <= INFO {
        crate::notify::status(message);
    }
    if level <= ERR && !logger.log_reaches_stderr && !DETACHED.load(Ordering::Relaxed) {
        let _ = sys::write_all(2, format!("{}: {}\n", logger.name, message).as_bytes());
    }
}

/// Logs `message` whatever the configured level (SPEC §9.7: an invalid log level
/// is always reported).
pub fn always(level: u8, message: &str) {
    if let Some(logger) = LOGGER.get() {
        emit(logger, level, message);
        if !logger.log_reaches_stderr {
            let _ = sys::write_all(2, format!("{}: {}\n", logger.name, message).as_bytes());
        }
    }
}

/// Whether messages at `level` are written at all (to skip building them).
pub fn enabled(level: u8) -> bool {
    LOGGER.get().is_some_and(|l| level <= l.level)
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::INFO, &alloc::format!($($arg)*)) };
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::ERR, &alloc::format!($($arg)*)) };
}

#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::DEBUG) {
            $crate::log::log($crate::log::DEBUG, &alloc::format!($($arg)*))
        }
    };
}
