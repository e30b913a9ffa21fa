//! autossh: start ssh, keep it running, and restart it when it dies or its
//! tunnel stops passing traffic. The behaviour contract is SPEC.md of the
//! project; each module names the sections it carries out.

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

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use args::{Monitor, Request, UsageError};
use config::{Config, LogSettings};

/// The version autossh reports: the one it is a drop-in for.
pub const VERSION: &str = "1.4g";

/// The name the program goes by: the basename of argv[0] (SPEC §1, §4).
pub fn program_name(argv0: Option<&OsString>) -> String {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned())
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
    let _ = std::io::stderr().write_all(&text);
    1
}

/// Runs autossh with `args` (argv, program name first) and the environment seen
/// through `lookup`; returns the exit status.
pub fn run(args: &[OsString], lookup: &dyn Fn(&str) -> Option<OsString>) -> i32 {
    let began = Instant::now();
    sys::cloexec_inherited();
    let name = program_name(args.first());
    let argv0 = args.first().map(|a| a.as_bytes()).unwrap_or(b"autossh");

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
            let _ = writeln!(std::io::stdout(), "{name} {VERSION}");
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
    let pid_path = config.pid_file.as_ref().map(|p| {
        std::env::current_dir()
            .map(|dir| dir.join(p))
            .unwrap_or_else(|_| p.clone())
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
    let net_timeout = std::time::Duration::from_millis(u64::from(config.net_timeout_ms));
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
