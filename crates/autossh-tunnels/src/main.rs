//! `autossh-tunnels`: many tunnels from one list, one autossh per tunnel,
//! and the server side of the Synology DSM app that edits the list (`cgi`).
//!
//! Each tunnel of the list (`list`) runs as `autossh -f` with gate time 0,
//! its pid file `RUN_DIR/NAME.pid`, its state file `RUN_DIR/NAME.state`,
//! and `RUN_DIR/NAME.tunnel`, what it was started with (for `reload` to see
//! what changed). Commands that start or stop hold `RUN_DIR/.lock`, so that
//! two of them at once take turns; the lock is never passed to autossh.
//! Every command that starts or stops tunnels returns what it did to each
//! (`commands::Report`): the command line prints it, the app sends it as
//! JSON.
//!
//! It shares with autossh only the library's pure modules: the state file's
//! format and the reading of /proc.

mod cgi;
mod cli;
mod commands;
mod edit;
mod files;
mod form;
mod launch;
mod list;
mod openwrt;
mod procs;
mod report;
mod run_dir;
mod settings;
mod status;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use cli::{Request, USAGE};
use run_dir::Runner;
use settings::{passed_environment, Settings};

fn main() -> ExitCode {
    // Nothing it inherited beyond stdin, stdout and stderr reaches what it
    // starts.
    procs::close_on_exec_from(3);
    let args: Vec<_> = std::env::args_os().collect();
    let vars: Vec<_> = std::env::vars_os().collect();
    let exe = std::env::current_exe().ok();
    let code = run(&args, &vars, exe.as_deref());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Runs the program: `args` is argv, `vars` the environment, `exe` where the
/// program itself is. Returns the exit status.
fn run(args: &[OsString], vars: &[(OsString, OsString)], exe: Option<&Path>) -> i32 {
    use std::os::unix::ffi::OsStrExt;
    let lookup = |name: &str| {
        // The first, as getenv(3) finds it.
        vars.iter()
            .find(|(k, _)| k.as_bytes() == name.as_bytes())
            .map(|(_, v)| v.clone())
    };
    let env: &dyn Fn(&str) -> Option<OsString> = &lookup;
    let request = match cli::parse_args(args.get(1..).unwrap_or_default()) {
        Ok(r) => r,
        Err(why) => {
            eprintln!("autossh-tunnels: {why}");
            if !why.starts_with("usage:") {
                eprint!("{USAGE}");
            }
            return 1;
        }
    };
    match request {
        Request::Version => {
            println!("autossh-tunnels {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Request::Help => {
            print!("{USAGE}");
            return 0;
        }
        _ => {}
    }
    if let Request::OpenWrt { status, section } = &request {
        // OpenWrt's tunnels come from its UCI file, not from the list.
        let set = |name: &str, default: &str| {
            std::path::PathBuf::from(
                lookup(name)
                    .filter(|v| !v.is_empty())
                    .unwrap_or(default.into()),
            )
        };
        let file = set("AUTOSSH_UCI_CONFIG", openwrt::CONFIG);
        let run_dir = set("AUTOSSH_RUN_DIR", openwrt::RUN_DIR);
        return if *status {
            openwrt::status(&file, &run_dir, section.as_deref())
        } else {
            openwrt::procd(&file, &run_dir, section.as_deref())
        };
    }
    let settings = match Settings::from_lookup(env, exe.and_then(Path::parent)) {
        Ok(s) => Settings {
            environment: passed_environment(vars),
            ..s
        },
        Err(why) => {
            eprintln!("autossh-tunnels: {why}");
            return 1;
        }
    };
    let runner = Runner {
        live: true,
        ..Runner::new(settings)
    };
    match request {
        Request::Status { name, json } => runner.status(name.as_deref(), json),
        Request::Check => runner.check(),
        Request::Metrics => runner.metrics(),
        Request::Cgi => cgi::main(runner.s, env),
        // Answered above, without the list's settings.
        Request::OpenWrt { .. } => 1,
        Request::Version | Request::Help => 0,
        Request::Start => runner.start_all().print(),
        Request::Stop => runner.stop_all().print(),
        Request::Restart(None) => runner.restart_all().print(),
        Request::Restart(Some(name)) => runner.restart(&name).print(),
        Request::Reload => runner.reload().print(),
        Request::Add { name, args } => runner.add(&name, &args).print(),
    }
}
