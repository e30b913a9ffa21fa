//! autossh: start ssh, keep it running, and restart it when it dies or its
//! tunnel stops passing traffic. The behaviour contract is SPEC.md of the
//! project; each module names the sections it carries out.

// What the fuzz target (fuzz/) drives is public; the rest is the binary's.
pub(crate) mod addresses;
pub mod args;
pub(crate) mod attempt;
pub(crate) mod backoff;
pub(crate) mod child;
pub mod cnum;
pub mod config;
pub(crate) mod daemon;
pub(crate) mod knock;
pub(crate) mod log;
pub(crate) mod machine;
pub mod messages;
pub(crate) mod netwatch;
pub(crate) mod notify;
pub(crate) mod owner;
pub(crate) mod pidfile;
pub(crate) mod plan;
pub(crate) mod pollset;
pub(crate) mod ports;
pub(crate) mod probe;
pub(crate) mod random;
pub(crate) mod signals;
pub(crate) mod statefile;
// Shared with the tunnel-list program (crates/autossh-tunnels): pure
// modules only.
pub mod procfs;
pub mod staterecord;
pub(crate) mod supervisor;
pub(crate) mod sys;
pub mod time;
pub(crate) mod words;

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::time::Duration;

use ::log::info;
use anyhow::Context;

use args::{MonitorSpec, Request, UsageError};
use config::{Config, LogSettings};
use messages::OsError;

/// The version autossh reports: the one it is a drop-in for.
pub const VERSION: &str = "1.4g";

/// The name the program goes by: the basename of argv[0] (SPEC §1, §4), as
/// message text that keeps its bytes (`messages::shown`).
pub fn program_name(argv0: Option<&OsString>) -> String {
    argv0
        .and_then(|a| Path::new(a).file_name())
        .map(|n| messages::shown(n.as_bytes()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "autossh".to_string())
}

fn usage_error(argv0: &[u8], name: &str, error: UsageError) -> i32 {
    let mut text = Vec::new();
    let mut line = |what: &[u8], c: u8| {
        text.extend_from_slice(argv0);
        text.extend_from_slice(what);
        text.extend_from_slice(&[c, b'\'', b'\n']);
    };
    match error {
        UsageError::InvalidOption(c) => line(b": invalid option -- '", c),
        UsageError::MissingArgument(c) => line(b": option requires an argument -- '", c),
        UsageError::NoDestination => {}
    }
    text.extend_from_slice(&messages::raw(&args::usage(name)));
    let _ = std::io::stderr().write_all(&text);
    1
}

/// Whether fewer than 16 descriptors are allowed: then autossh opens none
/// it can do without.
fn few_descriptors() -> bool {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .is_ok_and(|(soft, _)| soft < 16)
}

/// Runs autossh with `args` (argv, program name first) and the environment seen
/// through `env`; returns the exit status, or the error that stops it at
/// start-up (for the caller to log, with `{:#}`, and exit 1).
pub fn run(args: &[OsString], env: &dyn Fn(&str) -> Option<OsString>) -> anyhow::Result<i32> {
    let clock = time::Clock::start();
    match prepare(args, env, &clock)? {
        Start::Exit(code) => Ok(code),
        Start::Supervise {
            settings,
            signals,
            pid_file,
        } => {
            let code = supervisor::run(*settings, signals, clock);
            // STOPPING=1 first, then the pid file goes, as it always did.
            notify::stopping();
            drop(pid_file);
            Ok(code)
        }
    }
}

/// What start-up leaves to do.
enum Start {
    /// Nothing to start (`-V`, a usage error): exit with this status.
    Exit(i32),
    /// The tunnel, to supervise until the end; the pid file goes with it.
    Supervise {
        settings: Box<supervisor::Settings>,
        signals: signals::Signals,
        pid_file: Option<pidfile::PidFile>,
    },
}

/// Everything before the loop: the settings read and checked, the log,
/// the signals, the listener and the files. Kept out of `run`'s frame, so
/// that the many values of start-up hold no stack below the loop's.
#[inline(never)]
fn prepare(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
    clock: &time::Clock,
) -> anyhow::Result<Start> {
    let lookup = |name: &str| env(name).map(OsString::into_vec);
    // The log file is opened before the signals are ours: opening a FIFO
    // waits for its reader, and TERM and INT must still end autossh there,
    // as they end the original.
    let log_file = lookup("AUTOSSH_LOGFILE")
        .filter(|path| !path.is_empty())
        .map(|path| log::open(&path));
    // Then, while the heap is still almost empty: registering the signals
    // allocates and frees a good deal, and later allocations then fill those
    // holes instead of touching new pages in every instance.
    let signals = signals::Signals::install();
    sys::cloexec_above_stderr();
    let name = program_name(args.first());
    let argv0 = args.first().map_or(&b"autossh"[..], |a| a.as_bytes());
    let args: Vec<Vec<u8>> = args.iter().skip(1).map(|a| a.as_bytes().to_vec()).collect();

    // SPEC §3: the variables first, the log settings before the rest.
    let (log_settings, level_error) = match LogSettings::from_lookup(&lookup) {
        Ok(settings) => (settings, None),
        Err((settings, message)) => (settings, Some(message)),
    };
    log::init(&name, &log_settings, log_file)?;
    if let Some(message) = level_error {
        anyhow::bail!(message);
    }
    let config = Config::from_lookup(&lookup).map_err(anyhow::Error::msg)?;
    let signals = signals.map_err(OsError::from).context("signal pipe")?;

    let scanned = match args::scan(&args) {
        Ok(Request::Version) => {
            let _ = std::io::stdout().write_all(&messages::raw(&format!("{name} {VERSION}\n")));
            return Ok(Start::Exit(0));
        }
        Ok(Request::Run(scanned)) => scanned,
        Err(error) => return Ok(Start::Exit(usage_error(argv0, &name, error))),
    };

    // SPEC §1: AUTOSSH_PORT wins over -M; without either, a free random pair.
    let monitor = match config.port.as_ref().or(scanned.monitor.as_ref()) {
        Some(spec) => args::parse_monitor(spec).map_err(anyhow::Error::msg)?,
        None => {
            let port = ports::free_pair().context("no free monitor port pair found")?;
            info!("no monitor port given, using {port}");
            MonitorSpec::Loop { port }
        }
    };
    if monitor == MonitorSpec::Off {
        info!("port set to 0, monitoring disabled");
    }
    for note in &config.notes {
        info!("{note}");
    }

    let argv = args::ssh_command(&config.ssh_path, monitor, &scanned.ssh_args);
    // SPEC §9.17: a relative pid (or state) file is relative to where
    // autossh started.
    let absolute = |p: &Vec<u8>| {
        let p = Path::new(OsStr::from_bytes(p));
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |dir| dir.join(p))
    };
    let pid_path = config.pid_file.as_ref().map(absolute);
    let state_path = config.state_file.as_ref().map(absolute);
    if scanned.background {
        daemon::detach().map_err(OsError).context(messages::FORK)?;
    }

    // SPEC §6: the listener of loop mode is opened once, after -f.
    let mode = match monitor {
        MonitorSpec::Off => None,
        MonitorSpec::Echo { port, .. } => Some(probe::Mode::Echo { port }),
        MonitorSpec::Loop { port } => Some(probe::Mode::Loop {
            port,
            listener: probe::listen(port + 1)?,
        }),
    };
    let net_timeout = Duration::from_millis(u64::from(config.net_timeout_ms));
    let monitor = mode.map(|mode| probe::Monitor::new(mode, net_timeout, &name, &config.message));

    // Network changes are tested at once, where there is a test to run; and
    // in every mode, a change that takes away ssh's address replaces ssh.
    let netwatch = if config.netwatch {
        netwatch::NetWatch::open()
    } else {
        None
    };
    let watchdog = notify::init(&lookup);
    let pid_file = pid_path.map(pidfile::PidFile::write).transpose()?;
    // Written once now, so that a path that cannot be written is an error
    // before anything starts.
    let state_file = state_path.map(statefile::StateFile::new);
    if let Some(file) = &state_file {
        file.write(&statefile::starting(clock.wall(), std::process::id()))
            .map_err(|e| {
                anyhow::Error::new(OsError::from(e)).context(statefile::cannot_write(file.path()))
            })?;
    }
    let die_with_parent = match child::can_die_with_parent() {
        Ok(()) => true,
        Err(e) => {
            ::log::warn!(
                "ssh will not die with {name}: PR_SET_PDEATHSIG: {}",
                OsError(e)
            );
            false
        }
    };
    let host = plan::Host {
        stderr_tty: nix::unistd::isatty(std::io::stderr()).unwrap_or(false),
        stderr_null: log::is_null(std::io::stderr()),
        few_descriptors: few_descriptors(),
        manager: notify::enabled(),
        watchdog,
    };
    let plan = plan::plan(&config, &scanned, monitor.is_some(), host);
    let setup = child::Setup {
        unset: notify::PRIVATE_VARIABLES
            .into_iter()
            .filter(|name| lookup(name).is_some())
            .collect(),
        ignored: signals.ignored_at_start().to_vec(),
        die_with_parent,
        capture_stderr: plan.words.is_some(),
    };
    let settings = Box::new(supervisor::Settings {
        name,
        argv,
        setup,
        rules: plan.rules,
        monitor,
        netwatch,
        words: plan.words,
        state_file,
        knock_from_ssh: plan.knock_from_ssh,
    });
    Ok(Start::Supervise {
        settings,
        signals,
        pid_file,
    })
}
