//! autossh: start ssh, keep it running, and restart it when it dies or its
//! tunnel stops passing traffic. The behaviour contract is SPEC.md of the
//! project; each module names the sections it carries out.
//!
//! The library needs no Rust standard library, only `core`, `alloc` and the C
//! library: the binary (`main.rs`) supplies the allocator and the panic
//! handler, and stays small in size and in resident memory.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

/// What every module takes from `alloc`.
pub(crate) mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec::Vec;
    pub use alloc::{format, vec};
}

pub mod args;
pub mod backoff;
pub mod child;
pub mod cnum;
pub mod config;
pub mod daemon;
#[macro_use]
pub mod log;
pub mod notify;
pub mod pidfile;
pub mod ports;
pub mod probe;
pub mod signals;
pub mod supervisor;
pub mod sys;

use core::time::Duration;

use args::{Monitor, Request, UsageError};
use config::{Config, LogSettings};
use prelude::*;
use sys::Instant;

/// The version autossh reports: the one it is a drop-in for.
pub const VERSION: &str = "1.4g";

/// The name the program goes by: the basename of argv[0] (SPEC §1, §4).
pub fn program_name(argv0: Option<&Vec<u8>>) -> String {
    argv0
        .map(|a| String::from_utf8_lossy(sys::file_name(a)).into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "autossh".to_string())
}

fn usage_error(argv0: &[u8], name: &str, error: UsageError) -> i32 {
    let mut text = Vec::new();
    match error {
        UsageError::InvalidOption(c) => {
            text.extend_from_slice(argv0);
            text.extend_from_slice(b": invalid option -- '");
            text.push(c);
            text.extend_from_slice(b"'\n");
        }
        UsageError::MissingArgument(c) => {
            text.extend_from_slice(argv0);
            text.extend_from_slice(b": option requires an argument -- '");
            text.push(c);
            text.extend_from_slice(b"'\n");
        }
        UsageError::NoDestination => {}
    }
    text.extend_from_slice(args::usage(name).as_bytes());
    let _ = sys::write_all(2, &text);
    1
}

/// Runs autossh with `args` (argv, program name first) and the environment seen
/// through `lookup`; returns the exit status.
pub fn run(args: &[Vec<u8>], lookup: &dyn Fn(&str) -> Option<Vec<u8>>) -> i32 {
    let began = Instant::now();
    // A closed pipe on stdout or stderr is an error to a write, not a death
    // (ssh gets SIGPIPE back at its default).
    // SAFETY: ignoring SIGPIPE has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    sys::fill_closed_stdio();
    sys::cloexec_inherited();
    let name = program_name(args.first());
    let argv0 = args.first().map(|a| a.as_slice()).unwrap_or(b"autossh");

    // SPEC §3: the variables first, the log settings before the rest.
    let (log_settings, level_error) = match LogSettings::from_lookup(lookup) {
        Ok(settings) => (settings, None),
        Err((settings, message)) => (settings, Some(message)),
    };
    if let Err(message) = log::init(&name, &log_settings) {
        error!("{message}");
        return 1;
    }
    if let Some(message) = level_error {
        log::always(log::ERR, &message);
        return 1;
    }
    let config = match Config::from_lookup(lookup) {
        Ok(config) => config,
        Err(message) => {
            error!("{message}");
            return 1;
        }
    };

    let scanned = match args::scan(args.get(1..).unwrap_or_default()) {
        Ok(Request::Version) => {
            let _ = sys::write_all(1, format!("{name} {VERSION}\n").as_bytes());
            return 0;
        }
        Ok(Request::Run(scanned)) => scanned,
        Err(error) => return usage_error(argv0, &name, error),
    };

    // SPEC §1: AUTOSSH_PORT wins over -M; without either, a free random pair.
    let monitor = match config.port.as_ref().or(scanned.monitor.as_ref()) {
        Some(spec) => match args::parse_monitor(spec) {
            Ok(monitor) => monitor,
            Err(message) => {
                error!("{message}");
                return 1;
            }
        },
        None => match ports::free_pair() {
            Some(port) => {
                info!("no monitor port given, using {port}");
                Monitor::Loop { port }
            }
            None => {
                error!("no free monitor port pair found");
                return 1;
            }
        },
    };
    if monitor == Monitor::Off {
        info!("port set to 0, monitoring disabled");
    }
    for note in &config.notes {
        info!("{note}");
    }

    let argv = args::ssh_command(&config.ssh_path, monitor, &scanned.ssh_args);
    let mut gate_time = config.gate_time;
    // SPEC §9.17: a relative pid file is relative to where autossh started.
    let pid_path = config.pid_file.as_ref().map(|p| match sys::current_dir() {
        Some(dir) => sys::join(&dir, p),
        None => p.clone(),
    });
    if scanned.background {
        if let Err(e) = daemon::detach() {
            error!("fork: {}", sys::error_text(&e));
            return 1;
        }
        gate_time = 0;
    }

    // SPEC §6: the listener of loop mode is opened once, after -f.
    let path = match monitor {
        Monitor::Off => None,
        Monitor::Echo { port, .. } => Some(probe::Path::Echo { port }),
        Monitor::Loop { port } => match probe::listen(port + 1) {
            Ok(listener) => Some(probe::Path::Loop { port, listener }),
            Err(message) => {
                error!("{message}");
                return 1;
            }
        },
    };
    let net_timeout = Duration::from_millis(u64::from(config.net_timeout_ms));
    let monitor = path.map(|path| probe::Monitor::new(path, net_timeout, &name, &config.message));

    let watchdog = notify::init(lookup);

    let signals = match signals::SignalPipe::install() {
        Ok(signals) => signals,
        Err(e) => {
            error!("signal pipe: {}", sys::error_text(&e));
            return 1;
        }
    };
    let _pid_file = match pid_path.as_deref().map(pidfile::PidFile::write) {
        Some(Err(message)) => {
            error!("{message}");
            return 1;
        }
        Some(Ok(file)) => Some(file),
        None => None,
    };
    let settings = supervisor::Settings {
        name,
        argv,
        gate_time,
        poll: config.poll,
        first_poll: config.first_poll,
        monitor,
        max_start: config.max_start,
        max_lifetime: config.max_lifetime,
        watchdog,
    };
    let code = supervisor::Supervisor::new(settings, signals, began).run();
    notify::stopping();
    code
}
