//! `autossh-tunnels`: many tunnels from one list, one autossh per tunnel.
//!
//! Each tunnel of the list (`list`) runs as `autossh -f` with gate time 0,
//! its pid file `RUN_DIR/NAME.pid`, its state file `RUN_DIR/NAME.state`,
//! and `RUN_DIR/NAME.tunnel`, what it was started with (for `reload` to see
//! what changed). Commands that start or stop hold `RUN_DIR/.lock`, so that
//! two of them at once take turns; the lock is never passed to autossh.
//!
//! A pid file is believed only when the process with that pid is the
//! autossh of that very pid file: not a zombie, running as the pid file's
//! owner, with `AUTOSSH_PIDFILE` naming that file in its environment, and
//! not a child of such an autossh (its ssh inherits the variable). Another
//! user, who cannot read that environment, compares its command line with
//! the one `NAME.tunnel` records, for status alone. A pid of 0, 1 or less is never
//! believed. Signals go only to a believed autossh and to the children it
//! had when it was signalled, each named by pid and start time (`procs`).

pub mod cgi;
pub mod edit;
pub mod form;
pub mod json;
pub mod list;
pub mod procs;
pub mod report;

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;

use list::{List, Tunnel};
use procs::Proc;
use report::Seen;

/// The program's own settings, from the environment (the rc script's).
pub const SETTINGS: [&str; 5] = [
    "AUTOSSH",
    "AUTOSSH_TUNNELS",
    "AUTOSSH_RUN_DIR",
    "AUTOSSH_STOP_WAIT",
    "AUTOSSH_SSH_OPTIONS",
];

/// What a tunnel's autossh gets of the environment this program runs in,
/// whoever started it (a shell, the package's scripts, the DSM app's CGI
/// request): these variables. The rest (a CGI request's `HTTP_COOKIE` and
/// `QUERY_STRING`, a service manager's `NOTIFY_SOCKET`, this program's own
/// settings) stays here. Of autossh's own variables, those that make sense
/// for every tunnel pass; a monitor port (`AUTOSSH_PORT`) is a tunnel's own
/// (`env NAME AUTOSSH_PORT=...`), but 0, monitoring off for all, passes;
/// the pid file, state file and gate time are set per tunnel.
pub const PASSED: [&str; 32] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_COLLATE",
    "LC_MONETARY",
    "LC_MESSAGES",
    "LC_PAPER",
    "LC_NAME",
    "LC_ADDRESS",
    "LC_TELEPHONE",
    "LC_MEASUREMENT",
    "LC_IDENTIFICATION",
    "TZ",
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "AUTOSSH_PATH",
    "AUTOSSH_POLL",
    "AUTOSSH_FIRST_POLL",
    "AUTOSSH_MAXSTART",
    "AUTOSSH_MAXLIFETIME",
    "AUTOSSH_MESSAGE",
    "AUTOSSH_LOGFILE",
    "AUTOSSH_LOGLEVEL",
    "AUTOSSH_DEBUG",
    "AUTOSSH_NETWATCH",
];

/// The part of `vars` (this program's environment) that every tunnel's
/// autossh starts with ([`PASSED`]), in their order.
pub fn passed_environment(vars: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    vars.iter()
        .filter(|(k, v)| {
            let k = k.as_bytes();
            PASSED.iter().any(|p| p.as_bytes() == k)
                || (k == b"AUTOSSH_PORT" && v.as_bytes() == b"0")
        })
        .cloned()
        .collect()
}

const USAGE: &str = "usage: autossh-tunnels start | stop | restart [NAME] | reload | status [NAME] [--json] | check | metrics\n";

/// How long a command waits for another one's lock.
const LOCK_WAIT: Duration = Duration::from_secs(120);
/// How long a start waits for `autossh -f` to return and then for the pid
/// file of its background process.
const START_WAIT: Duration = Duration::from_secs(10);
/// After SIGKILL, how long until a process must be gone.
const KILL_WAIT: Duration = Duration::from_secs(3);
const STEP: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub autossh: PathBuf,
    pub list: PathBuf,
    pub run_dir: PathBuf,
    pub stop_wait: Duration,
    pub ssh_options: Vec<OsString>,
    /// What every tunnel's autossh starts with ([`passed_environment`]).
    pub environment: Vec<(OsString, OsString)>,
}

impl Settings {
    /// The settings from `env`; `beside` is where this program lives, whose
    /// `autossh` is the default.
    pub fn from_lookup(
        env: &dyn Fn(&str) -> Option<OsString>,
        beside: Option<&Path>,
    ) -> Result<Settings, String> {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        let autossh = set("AUTOSSH").map(PathBuf::from).unwrap_or_else(|| {
            beside
                .map(|dir| dir.join("autossh"))
                .filter(|p| p.exists())
                .unwrap_or_else(|| PathBuf::from("autossh"))
        });
        let stop_wait = match set("AUTOSSH_STOP_WAIT") {
            None => 15,
            Some(v) => v
                .to_str()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&v| v <= 3600)
                .ok_or_else(|| {
                    format!(
                        "AUTOSSH_STOP_WAIT must be a number of seconds from 0 to 3600, not {}",
                        list::shown(v.as_bytes(), 40)
                    )
                })?,
        };
        let ssh_options = match set("AUTOSSH_SSH_OPTIONS") {
            None => Vec::new(),
            Some(v) => list::words(v.as_bytes())
                .map_err(|why| format!("AUTOSSH_SSH_OPTIONS: {why}"))?
                .into_iter()
                .map(OsString::from_vec)
                .collect(),
        };
        Ok(Settings {
            autossh,
            list: set("AUTOSSH_TUNNELS").map_or_else(
                || "/usr/local/etc/autossh/tunnels.conf".into(),
                PathBuf::from,
            ),
            run_dir: set("AUTOSSH_RUN_DIR")
                .map_or_else(|| "/var/run/autossh".into(), PathBuf::from),
            stop_wait: Duration::from_secs(stop_wait),
            ssh_options,
            environment: Vec::new(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Start,
    Stop,
    Restart(Option<String>),
    Reload,
    Status {
        name: Option<String>,
        json: bool,
    },
    Check,
    Metrics,
    /// The DSM app's server side, one CGI request (`cgi`).
    Cgi,
    Version,
    Help,
}

/// The command line (without argv[0]).
pub fn parse_args(args: &[OsString]) -> Result<Request, String> {
    let words: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let name = |w: &[u8]| list::check_name(w).map(String::from);
    let request = match words.as_slice() {
        [b"start"] => Request::Start,
        [b"stop"] => Request::Stop,
        [b"restart"] => Request::Restart(None),
        [b"restart", n] => Request::Restart(Some(name(n)?)),
        [b"reload"] => Request::Reload,
        [b"check"] => Request::Check,
        [b"metrics"] => Request::Metrics,
        [b"cgi"] => Request::Cgi,
        [b"-V" | b"--version"] => Request::Version,
        [b"-h" | b"--help"] => Request::Help,
        [b"status", rest @ ..] if rest.len() <= 2 => {
            let json = rest.contains(&&b"--json"[..]);
            let names: Vec<&&[u8]> = rest.iter().filter(|w| **w != b"--json").collect();
            match names.as_slice() {
                [] => Request::Status { name: None, json },
                [n] if rest.len() == 1 || json => Request::Status {
                    name: Some(name(n)?),
                    json,
                },
                _ => return Err(USAGE.trim_end().to_string()),
            }
        }
        _ => return Err(USAGE.trim_end().to_string()),
    };
    Ok(request)
}

/// Runs the program: `args` is argv, `vars` the environment, `exe` where the
/// program itself is. Returns the exit status.
pub fn main(args: &[OsString], vars: &[(OsString, OsString)], exe: Option<&Path>) -> i32 {
    let lookup = |name: &str| {
        // The first, as getenv(3) finds it.
        vars.iter()
            .find(|(k, _)| k.as_bytes() == name.as_bytes())
            .map(|(_, v)| v.clone())
    };
    let env: &dyn Fn(&str) -> Option<OsString> = &lookup;
    let request = match parse_args(args.get(1..).unwrap_or_default()) {
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
    let runner = Runner::new(settings);
    // A list that cannot be read changes nothing, and leaves nothing behind
    // (not even the run folder); it is read again under the lock.
    if matches!(
        request,
        Request::Start | Request::Restart(_) | Request::Reload
    ) {
        if let Err(why) = runner.read_list() {
            eprintln!("autossh-tunnels: {why}; nothing changed");
            return 1;
        }
    }
    match request {
        Request::Start => runner.locked(|r| r.start_all()),
        Request::Stop => runner.locked(|r| r.stop_all()),
        Request::Restart(None) => runner.locked(|r| r.stop_all().max(r.start_all())),
        Request::Restart(Some(name)) => runner.locked(|r| r.restart(&name)),
        Request::Reload => runner.locked(|r| r.reload()),
        Request::Status { name, json } => runner.status(name.as_deref(), json),
        Request::Check => runner.check(),
        Request::Metrics => runner.metrics(),
        Request::Cgi => cgi::main(runner.s, env),
        Request::Version | Request::Help => 0,
    }
}

/// A time of the status line: `HH:MM` today, else `YYYY-MM-DD HH:MM`.
fn when(t: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let at = local_time(t as libc::time_t);
    let today = local_time(now as libc::time_t);
    let day = |tm: &libc::tm| (tm.tm_year, tm.tm_yday);
    if day(&at) == day(&today) {
        format!("{:02}:{:02}", at.tm_hour, at.tm_min)
    } else {
        format!(
            "{}-{:02}-{:02} {:02}:{:02}",
            at.tm_year + 1900,
            at.tm_mon + 1,
            at.tm_mday,
            at.tm_hour,
            at.tm_min
        )
    }
}

/// The broken-down local time of a Unix time (a copy of the log's, so that
/// autossh's own code stays as it is).
fn local_time(t: libc::time_t) -> libc::tm {
    extern "C" {
        fn tzset();
    }
    // SAFETY: tzset only reads TZ and the zone files; localtime_r writes only
    // into the zeroed struct it is given. nix wraps neither.
    unsafe {
        tzset();
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    }
}

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
fn foreign_folder(meta: &fs::Metadata) -> Option<String> {
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
fn os_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

fn shown_path(p: &Path) -> String {
    list::shown(p.as_os_str().as_bytes(), 200)
}

struct Runner {
    s: Settings,
}

/// A word of `RUN_DIR/NAME.tunnel`: a quoted string, control bytes
/// escaped; bytes that are not UTF-8 as a list of numbers.
fn quoted_word(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("{bytes:?}"),
    }
}

/// What a pid file is believed to say.
enum Belief {
    /// The tunnel's autossh.
    Ours(Proc),
    /// A process runs, but whether it is the tunnel's cannot be told: why.
    Unknown(String),
    /// Nothing of the tunnel's runs.
    No,
}

impl Belief {
    /// As `status` shows it: the pid believed, or why it cannot be told.
    fn shown(self) -> (Option<i32>, Option<String>) {
        match self {
            Belief::Ours(p) => (Some(p.pid), None),
            Belief::Unknown(why) => (None, Some(why)),
            Belief::No => (None, None),
        }
    }
}

/// The outcome of a start.
enum Started {
    Now(Proc),
    Already(Proc),
}

impl Runner {
    fn new(s: Settings) -> Runner {
        Runner { s }
    }

    fn file(&self, name: &OsStr, ext: &str) -> PathBuf {
        let mut file = name.to_os_string();
        file.push(ext);
        self.s.run_dir.join(file)
    }

    /// The list, or why it cannot be read.
    fn read_list(&self) -> Result<List, String> {
        // (A list may be a symlink, into a shared folder.)
        read_file(&self.s.list, LIST_MAX, true)
            .map(|text| list::parse(&text))
            .map_err(|e| {
                format!(
                    "cannot read the tunnel list {}: {}",
                    shown_path(&self.s.list),
                    os_error(&e)
                )
            })
    }

    /// The list with its wrong lines reported on stderr.
    fn list_reported(&self) -> Result<List, String> {
        let list = self.read_list()?;
        for p in &list.problems {
            eprintln!("{}:{}: {}", shown_path(&self.s.list), p.line, p.text);
        }
        Ok(list)
    }

    /// Runs `work` holding the lock (creating the run folder first).
    fn locked(mut self, work: impl FnOnce(&Runner) -> i32) -> i32 {
        let made = !self.s.run_dir.exists();
        let created = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.s.run_dir)
            // Made here: 0755 whatever the umask (with 002 it would be
            // group-writable, and refused below).
            .and_then(|()| match made {
                true => fs::set_permissions(&self.s.run_dir, fs::Permissions::from_mode(0o755)),
                false => Ok(()),
            });
        if let Err(e) = created {
            eprintln!(
                "autossh-tunnels: cannot make the run folder {}: {}",
                shown_path(&self.s.run_dir),
                os_error(&e)
            );
            return 1;
        }
        if let Ok(dir) = fs::canonicalize(&self.s.run_dir) {
            self.s.run_dir = dir;
        }
        // Another user who owns the folder, or can write in it, could hold
        // its lock or plant pid files: such a folder is not used.
        let wrong = match fs::metadata(&self.s.run_dir) {
            Ok(meta) => foreign_folder(&meta),
            Err(e) => Some(format!("cannot be read: {}", os_error(&e))),
        };
        if let Some(why) = wrong {
            eprintln!(
                "autossh-tunnels: the run folder {} {why}; nothing changed",
                shown_path(&self.s.run_dir)
            );
            return 1;
        }
        // Opened close-on-exec, as every file of the standard library: no
        // autossh started under it holds it.
        // Readable by this user alone: flock(2) takes a lock on a file open
        // for reading, so a lock others could read, others could hold.
        let path = self.s.run_dir.join(".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .and_then(|f| {
                use std::os::unix::fs::MetadataExt;
                let meta = f.metadata()?;
                // SAFETY: geteuid cannot fail and touches no memory.
                if meta.uid() != unsafe { libc::geteuid() } || !meta.is_file() {
                    return Err(std::io::Error::other("not this user's own file"));
                }
                if meta.mode() & 0o077 != 0 {
                    // An earlier version's 0644 lock: made private.
                    f.set_permissions(fs::Permissions::from_mode(0o600))?;
                }
                Ok(f)
            });
        let mut file = match file {
            Ok(f) => f,
            Err(e) => {
                eprintln!(
                    "autossh-tunnels: cannot open the lock {}: {}",
                    shown_path(&path),
                    os_error(&e)
                );
                return 1;
            }
        };
        let began = Instant::now();
        let _lock = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => break lock,
                Err((f, nix::errno::Errno::EWOULDBLOCK | nix::errno::Errno::EINTR))
                    if began.elapsed() < LOCK_WAIT =>
                {
                    file = f;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, e)) => {
                    eprintln!(
                        "autossh-tunnels: another autossh-tunnels command holds {} ({}); try again later",
                        shown_path(&path),
                        e.desc()
                    );
                    return 1;
                }
            }
        };
        work(&self)
    }

    /// The autossh that runs tunnel `name`, if its pid file is believed by
    /// the strict check, which signals and starts rely on.
    fn running(&self, name: &OsStr) -> Option<Proc> {
        match self.belief(name, false) {
            Belief::Ours(p) => Some(p),
            Belief::Unknown(_) | Belief::No => None,
        }
    }

    /// Whether tunnel `name`'s pid file is believed. The user who runs the
    /// tunnels checks the process's environment. Another user (a monitoring
    /// job, `from_outside`) cannot read it: it believes a process of the pid
    /// file's owner whose command line is the one `RUN_DIR/NAME.tunnel`
    /// records, and where /proc hides the process from it (hidepid), it
    /// says it cannot tell. Starting and stopping rely on the strict check
    /// alone.
    fn belief(&self, name: &OsStr, from_outside: bool) -> Belief {
        use std::os::unix::fs::MetadataExt;
        let path = self.file(name, ".pid");
        let Ok((text, meta)) = read_regular(&path, FILE_MAX, false) else {
            return Belief::No;
        };
        let Some(pid) = procs::parse_pid(&text) else {
            return Belief::No;
        };
        if pid == std::process::id() as i32 {
            return Belief::No;
        }
        let Some(process) = Proc::of(pid) else {
            // There, but /proc does not show it to this user (hidepid); a
            // zombie it shows, and a zombie is no tunnel.
            let hidden = procs::stat(pid).is_none();
            if from_outside && hidden && procs::exists(pid) {
                return Belief::Unknown(format!(
                    "pid {pid} runs, but this user cannot see its process"
                ));
            }
            return Belief::No;
        };
        // A tunnel runs as the user who runs the tunnels, who wrote its pid
        // file: another user's process is never one, whatever its
        // environment says.
        if procs::owner(pid) != Some(meta.uid()) {
            return Belief::No;
        }
        if !procs::environ_readable(pid) {
            if !from_outside {
                return Belief::No;
            }
            // Another user: the command line it was started with, which
            // RUN_DIR/NAME.tunnel records, is what it can compare.
            let recorded = read_file(&self.file(name, ".tunnel"), LIST_MAX, false);
            let cmdline = fs::read(format!("/proc/{pid}/cmdline"));
            return match (recorded, cmdline) {
                (Ok(recorded), Ok(cmdline)) => {
                    let args: Vec<String> = cmdline
                        .split(|&b| b == 0)
                        .take(cmdline.iter().filter(|&&b| b == 0).count())
                        .map(|a| format!("arg {}", quoted_word(a)))
                        .collect();
                    let listed: Vec<&[u8]> = recorded
                        .split(|&b| b == b'\n')
                        .filter(|l| l.starts_with(b"arg "))
                        .collect();
                    if args.len() == listed.len()
                        && args.iter().zip(&listed).all(|(a, l)| a.as_bytes() == *l)
                    {
                        Belief::Ours(process)
                    } else {
                        Belief::No
                    }
                }
                (Err(_), _) => Belief::No,
                (_, Err(_)) => {
                    Belief::Unknown(format!("this user cannot read pid {pid}'s command line"))
                }
            };
        }
        let holds = |pid: i32| {
            procs::environ_value(pid, "AUTOSSH_PIDFILE")
                .and_then(|v| procs::resolved(Path::new(OsStr::from_bytes(&v))))
                .is_some_and(|v| Some(v) == procs::resolved(&path))
        };
        if !holds(pid) {
            return Belief::No;
        }
        // Its ssh has the variable too; the autossh is its parent.
        let Some(parent) = procs::stat(pid).map(|s| s.ppid) else {
            return Belief::No;
        };
        if parent > 1 && holds(parent) {
            return Belief::No;
        }
        Belief::Ours(process)
    }

    /// Every tunnel with a pid file in the run folder, whatever its name,
    /// and whether it is believed.
    fn pid_files(&self) -> Vec<(OsString, Option<Proc>)> {
        self.pid_file_names()
            .into_iter()
            .map(|name| {
                let p = self.running(&name);
                (name, p)
            })
            .collect()
    }

    /// The names of the pid files in the run folder, sorted.
    fn pid_file_names(&self) -> Vec<OsString> {
        let Ok(dir) = fs::read_dir(&self.s.run_dir) else {
            return Vec::new();
        };
        let mut found: Vec<OsString> = dir
            .filter_map(|e| {
                let file = e.ok()?.file_name();
                let name = file.as_bytes().strip_suffix(b".pid")?;
                (!name.is_empty()).then(|| OsString::from_vec(name.to_vec()))
            })
            .collect();
        found.sort();
        found
    }

    fn forget(&self, name: &OsStr) {
        for ext in [".pid", ".state", ".tunnel"] {
            let _ = fs::remove_file(self.file(name, ext));
        }
    }

    /// What `tunnel` is started with: autossh, its arguments, the list's
    /// settings. A change in any of them is a changed tunnel.
    fn command_of(&self, tunnel: &Tunnel) -> (Vec<OsString>, Vec<(OsString, OsString)>) {
        let mut argv = vec![self.s.autossh.clone().into_os_string(), "-f".into()];
        argv.extend(self.s.ssh_options.iter().cloned());
        argv.extend(tunnel.args.iter().cloned());
        (argv, tunnel.env.clone())
    }

    /// The text of `RUN_DIR/NAME.tunnel`: a line per argument and setting,
    /// each a quoted string (control bytes and non-UTF-8 escaped).
    fn definition(&self, tunnel: &Tunnel) -> Vec<u8> {
        let (argv, env) = self.command_of(tunnel);
        let mut out = String::new();
        for a in argv {
            out.push_str(&format!("arg {}\n", quoted_word(a.as_bytes())));
        }
        for (k, v) in env {
            out.push_str(&format!(
                "env {} {}\n",
                quoted_word(k.as_bytes()),
                quoted_word(v.as_bytes())
            ));
        }
        out.into_bytes()
    }

    /// Starts `tunnel` unless its autossh runs.
    fn start(&self, tunnel: &Tunnel) -> Result<Started, String> {
        let name = OsStr::new(&tunnel.name);
        if let Some(p) = self.running(name) {
            return Ok(Started::Already(p));
        }
        // Whatever is there is left from an autossh that is gone.
        self.forget(name);
        let definition = self.definition(tunnel);
        let temporary = self.s.run_dir.join(format!(".{}.tunnel.tmp", tunnel.name));
        let _ = fs::remove_file(&temporary);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temporary)
            .and_then(|mut f| f.write_all(&definition))
            .and_then(|()| fs::rename(&temporary, self.file(name, ".tunnel")))
            .map_err(|e| format!("cannot write in the run folder: {}", os_error(&e)))?;
        match self.launch(tunnel) {
            Ok(p) => Ok(Started::Now(p)),
            Err(why) => {
                self.forget(name);
                Err(why)
            }
        }
    }

    fn launch(&self, tunnel: &Tunnel) -> Result<Proc, String> {
        let name = OsStr::new(&tunnel.name);
        let (argv, env) = self.command_of(tunnel);
        // autossh's words when it refuses to start, in a file of no name.
        let errors_path = self.s.run_dir.join(format!(".{}.errors", tunnel.name));
        let _ = fs::remove_file(&errors_path);
        let mut errors = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&errors_path)
            .map_err(|e| format!("cannot write in the run folder: {}", os_error(&e)))?;
        let _ = fs::remove_file(&errors_path);
        let stderr = errors.try_clone().map_err(|e| e.to_string())?;
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .env_clear()
            .envs(self.s.environment.iter().map(|(k, v)| (k, v)));
        c.envs(env)
            .env("AUTOSSH_GATETIME", "0")
            .env("AUTOSSH_PIDFILE", self.file(name, ".pid"))
            .env("AUTOSSH_STATEFILE", self.file(name, ".state"));
        let mut child = c.spawn().map_err(|e| {
            format!(
                "cannot run {}: {}",
                shown_path(&self.s.autossh),
                os_error(&e)
            )
        })?;
        let began = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if began.elapsed() < START_WAIT => std::thread::sleep(STEP),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} did not go into the background",
                        shown_path(&self.s.autossh)
                    ));
                }
            }
        };
        if !status.success() {
            let mut said = Vec::new();
            use std::io::Seek;
            let _ = errors.seek(std::io::SeekFrom::Start(0));
            let _ = errors.take(64 * 1024).read_to_end(&mut said);
            let last = said
                .split(|&b| b == b'\n')
                .rfind(|l| !l.is_empty())
                .map(|l| list::shown(l, 300))
                .unwrap_or_else(|| format!("autossh ended with {status}"));
            return Err(last);
        }
        let began = Instant::now();
        loop {
            if let Some(p) = self.running(name) {
                return Ok(p);
            }
            let state = read_file(&self.file(name, ".state"), FILE_MAX, false)
                .ok()
                .map(|t| crate::statefile::parse(&t));
            if let Some(r) = state.filter(|r| r.state.as_deref() == Some("exited")) {
                let why = r.reason.map(|r| list::shown(&r, 300));
                return Err(why.unwrap_or_else(|| "autossh exited at once".into()));
            }
            if began.elapsed() > START_WAIT {
                return Err(
                    "autossh went into the background but wrote no pid file (see its log)".into(),
                );
            }
            std::thread::sleep(STEP);
        }
    }

    /// Stops these autossh processes, all at once, and waits until each and
    /// its ssh are gone. Returns the names of those that would not go.
    fn stop_many(&self, stopping: &[(OsString, Proc)]) -> Vec<OsString> {
        let mut family: Vec<(usize, Proc)> = Vec::new();
        for (i, (_, p)) in stopping.iter().enumerate() {
            family.extend(p.children().into_iter().map(|c| (i, c)));
            p.signal(Signal::SIGTERM);
        }
        let gone = |family: &[(usize, Proc)]| {
            stopping.iter().all(|(_, p)| !p.alive()) && family.iter().all(|(_, c)| !c.alive())
        };
        let began = Instant::now();
        while !gone(&family) && began.elapsed() < self.s.stop_wait {
            std::thread::sleep(STEP);
        }
        if !gone(&family) {
            for (i, (_, p)) in stopping.iter().enumerate() {
                if p.alive() {
                    family.extend(p.children().into_iter().map(|c| (i, c)));
                    p.signal(Signal::SIGKILL);
                }
            }
            for (_, c) in &family {
                if c.alive() {
                    c.signal(Signal::SIGKILL);
                }
            }
            let began = Instant::now();
            while !gone(&family) && began.elapsed() < KILL_WAIT {
                std::thread::sleep(STEP);
            }
        }
        let mut stuck = Vec::new();
        for (i, (name, p)) in stopping.iter().enumerate() {
            if p.alive() || family.iter().any(|(j, c)| *j == i && c.alive()) {
                stuck.push(name.clone());
            } else {
                self.forget(name);
            }
        }
        stuck
    }

    /// Stops and reports; the exit status.
    fn stop_reported(&self, stopping: &[(OsString, Proc)]) -> i32 {
        let stuck = self.stop_many(stopping);
        for (name, _) in stopping {
            let shown = list::shown(name.as_bytes(), 70);
            if stuck.contains(name) {
                println!("{shown}: still running after SIGKILL");
            } else {
                println!("{shown}: stopped");
            }
        }
        i32::from(!stuck.is_empty())
    }

    fn report_start(&self, tunnel: &Tunnel, verb: &str) -> bool {
        match self.start(tunnel) {
            Ok(Started::Now(p)) => {
                println!("{}: {verb} (pid {})", tunnel.name, p.pid);
                true
            }
            Ok(Started::Already(p)) => {
                println!("{}: already running (pid {})", tunnel.name, p.pid);
                true
            }
            Err(why) => {
                println!("{}: failed to start: {why}", tunnel.name);
                false
            }
        }
    }

    fn start_all(&self) -> i32 {
        let list = match self.list_reported() {
            Ok(l) => l,
            Err(why) => {
                eprintln!("autossh-tunnels: {why}");
                return 1;
            }
        };
        let mut ok = true;
        for tunnel in &list.tunnels {
            ok &= self.report_start(tunnel, "started");
        }
        i32::from(!ok)
    }

    /// Every tunnel it started, listed or not; pid files not believed are
    /// removed, and what was left of tunnels that are gone.
    fn stop_all(&self) -> i32 {
        let mut stopping = Vec::new();
        for (name, p) in self.pid_files() {
            match p {
                Some(p) => stopping.push((name, p)),
                None => {
                    println!("{}: not running", list::shown(name.as_bytes(), 70));
                    self.forget(&name);
                }
            }
        }
        let code = self.stop_reported(&stopping);
        // State and definition files of tunnels whose autossh ended by itself.
        if let Ok(dir) = fs::read_dir(&self.s.run_dir) {
            for e in dir.filter_map(|e| e.ok()) {
                let file = e.file_name();
                let bytes = file.as_bytes();
                let stem = bytes
                    .strip_suffix(b".state")
                    .or_else(|| bytes.strip_suffix(b".tunnel"));
                if let Some(stem) = stem.filter(|s| !s.is_empty() && s[0] != b'.') {
                    let name = OsStr::from_bytes(stem);
                    if self.running(name).is_none() {
                        self.forget(name);
                    }
                }
            }
        }
        code
    }

    fn restart(&self, name: &str) -> i32 {
        let list = match self.list_reported() {
            Ok(l) => l,
            Err(why) => {
                eprintln!("autossh-tunnels: {why}");
                return 1;
            }
        };
        let Some(tunnel) = list.get(name) else {
            eprintln!(
                "autossh-tunnels: no tunnel {name} in {}",
                shown_path(&self.s.list)
            );
            return 1;
        };
        if let Some(p) = self.running(OsStr::new(name)) {
            if self.stop_reported(&[(name.into(), p)]) != 0 {
                return 1;
            }
        }
        i32::from(!self.report_start(tunnel, "started"))
    }

    /// New tunnels start, removed ones stop, changed ones restart; the
    /// others are left as they run.
    fn reload(&self) -> i32 {
        let list = match self.list_reported() {
            Ok(l) => l,
            Err(why) => {
                // Nothing is stopped for a list that cannot be read.
                eprintln!("autossh-tunnels: {why}; nothing changed");
                return 1;
            }
        };
        let mut code = 0;
        let mut stopping = Vec::new();
        let mut changed = Vec::new();
        for (name, p) in self.pid_files() {
            let Some(p) = p else {
                self.forget(&name);
                continue;
            };
            match name.to_str().and_then(|n| list.get(n)) {
                None => stopping.push((name, p)),
                Some(tunnel) => {
                    let was = read_file(&self.file(&name, ".tunnel"), LIST_MAX, false).ok();
                    if was.as_deref() != Some(&self.definition(tunnel)[..]) {
                        stopping.push((name, p));
                        changed.push(tunnel.name.clone());
                    }
                }
            }
        }
        code = code.max(self.stop_reported(&stopping));
        for tunnel in &list.tunnels {
            let verb = if changed.contains(&tunnel.name) {
                "restarted"
            } else {
                "started"
            };
            match self.running(OsStr::new(&tunnel.name)) {
                Some(p) => println!("{}: unchanged (pid {})", tunnel.name, p.pid),
                None => code = code.max(i32::from(!self.report_start(tunnel, verb))),
            }
        }
        code
    }

    /// The tunnels to show: the listed ones in order, then those that run
    /// though no longer listed.
    fn seen(&self, list: Option<&List>) -> Vec<Seen> {
        let record = |name: &OsStr| {
            read_file(&self.file(name, ".state"), FILE_MAX, false)
                .ok()
                .map(|t| crate::statefile::parse(&t))
        };
        let mut seen: Vec<Seen> = list
            .map(|l| l.tunnels.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|t| (t, false))
            .chain(
                list.map(|l| l.off.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|t| (t, true)),
            )
            .map(|(t, disabled)| {
                let name = OsStr::new(&t.name);
                let (pid, unknown) = self.belief(name, true).shown();
                Seen {
                    name: t.name.clone(),
                    listed: true,
                    disabled,
                    pid,
                    unknown,
                    record: record(name),
                }
            })
            .collect();
        for name in self.pid_file_names() {
            let listed = name.to_str().is_some_and(|n| {
                list.is_some_and(|l| l.get(n).is_some() || l.disabled(n).is_some())
            });
            if listed {
                continue;
            }
            let (pid, unknown) = self.belief(&name, true).shown();
            if pid.is_some() || unknown.is_some() {
                seen.push(Seen {
                    name: list::shown(name.as_bytes(), 70),
                    listed: false,
                    disabled: false,
                    pid,
                    unknown,
                    record: record(&name),
                });
            }
        }
        seen
    }

    fn status(&self, name: Option<&str>, json: bool) -> i32 {
        let list = self.read_list();
        let mut seen = self.seen(list.as_ref().ok());
        if let Some(name) = name {
            seen.retain(|s| s.name == name);
            if seen.is_empty() {
                eprintln!(
                    "autossh-tunnels: no tunnel {name} in {}",
                    shown_path(&self.s.list)
                );
                return 1;
            }
        }
        if json {
            let (error, problems) = match &list {
                Ok(l) => (None, l.problems.as_slice()),
                Err(why) => (Some(why.as_str()), &[][..]),
            };
            print!(
                "{}",
                report::json(
                    self.s.list.as_os_str().as_bytes(),
                    error,
                    problems,
                    &seen,
                    &when
                )
            );
        } else {
            if let Err(why) = &list {
                eprintln!("autossh-tunnels: {why}");
            }
            for s in &seen {
                println!("{}", s.line(&when));
            }
        }
        report::exit_status(&seen)
    }

    fn check(&self) -> i32 {
        match self.list_reported() {
            Err(why) => {
                eprintln!("autossh-tunnels: {why}");
                1
            }
            Ok(list) => {
                let n = list.tunnels.len();
                let s = if n == 1 { "" } else { "s" };
                if list.problems.is_empty() {
                    println!(
                        "{}: {n} tunnel{s}, every line understood",
                        shown_path(&self.s.list)
                    );
                    0
                } else {
                    let p = list.problems.len();
                    let ps = if p == 1 { "" } else { "s" };
                    println!(
                        "{}: {n} tunnel{s}, {p} wrong line{ps}",
                        shown_path(&self.s.list)
                    );
                    1
                }
            }
        }
    }

    fn metrics(&self) -> i32 {
        let list = self.read_list();
        if let Err(why) = &list {
            eprintln!("autossh-tunnels: {why}");
        }
        let seen = self.seen(list.as_ref().ok());
        let problems = list.as_ref().map_or(0, |l| l.problems.len());
        let mut text = report::metrics(problems, &seen);
        text.push_str(&format!(
            "# HELP autossh_tunnels_list_readable 1 when the tunnel list could be read.\n\
             # TYPE autossh_tunnels_list_readable gauge\n\
             autossh_tunnels_list_readable {}\n",
            u8::from(list.is_ok())
        ));
        let _ = std::io::stdout().write_all(text.as_bytes());
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Request, String> {
        parse_args(&v.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn command_lines() {
        assert_eq!(args(&["start"]), Ok(Request::Start));
        assert_eq!(
            args(&["restart", "relay"]),
            Ok(Request::Restart(Some("relay".into())))
        );
        assert_eq!(
            args(&["status", "--json"]),
            Ok(Request::Status {
                name: None,
                json: true
            })
        );
        assert_eq!(
            args(&["status", "--json", "x"]),
            Ok(Request::Status {
                name: Some("x".into()),
                json: true
            })
        );
        assert_eq!(
            args(&["status", "x"]),
            Ok(Request::Status {
                name: Some("x".into()),
                json: false
            })
        );
        for bad in [
            &[][..],
            &["strat"],
            &["status", "a", "b"],
            &["start", "x"],
            &["restart", "a", "b"],
            &["status", "--json", "--json", "x"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
        assert!(args(&["restart", ".x"])
            .unwrap_err()
            .contains("not a tunnel name"));
    }

    #[test]
    fn only_the_allowed_environment_is_passed() {
        let vars: Vec<(OsString, OsString)> = [
            ("HTTP_COOKIE", "id=secret"),
            ("PATH", "/bin"),
            ("LC_TIME", "C"),
            ("QUERY_STRING", "a=b"),
            ("AUTOSSH_POLL", "30"),
            ("AUTOSSH_PORT", "20000"),
            ("LC_FOO", "x"),
            ("AUTOSSH_PIDFILE", "/tmp/x"),
            ("AUTOSSH_SSH_OPTIONS", "-i key"),
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
            ("LC", "x"),
            ("TZ", "UTC"),
        ]
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
        let passed: Vec<String> = passed_environment(&vars)
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        assert_eq!(
            passed,
            ["PATH=/bin", "LC_TIME=C", "AUTOSSH_POLL=30", "TZ=UTC"]
        );
        // Monitoring off passes: it is the same for every tunnel.
        let off = [(OsString::from("AUTOSSH_PORT"), OsString::from("0"))];
        assert_eq!(passed_environment(&off).len(), 1);
    }

    #[test]
    fn settings() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let s = Settings::from_lookup(&env(&[]), None).unwrap();
        assert_eq!(s.autossh, PathBuf::from("autossh"));
        assert_eq!(s.list, PathBuf::from("/usr/local/etc/autossh/tunnels.conf"));
        assert_eq!(s.run_dir, PathBuf::from("/var/run/autossh"));
        assert_eq!(s.stop_wait, Duration::from_secs(15));
        let s = Settings::from_lookup(
            &env(&[
                ("AUTOSSH_SSH_OPTIONS", "-i '/my key' -o A=*"),
                ("AUTOSSH_STOP_WAIT", "0"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.ssh_options, ["-i", "/my key", "-o", "A=*"]);
        assert_eq!(s.stop_wait, Duration::ZERO);
        for bad in [
            &[("AUTOSSH_STOP_WAIT", "x")][..],
            &[("AUTOSSH_STOP_WAIT", "3601")],
            &[("AUTOSSH_STOP_WAIT", "-1")],
            &[("AUTOSSH_SSH_OPTIONS", "-o 'x")],
        ] {
            assert!(Settings::from_lookup(&env(bad), None).is_err(), "{bad:?}");
        }
    }
}
