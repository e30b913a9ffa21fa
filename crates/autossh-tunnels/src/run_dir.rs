//! The run folder: a pid file, a state file and a definition per tunnel,
//! the lock that commands take turns with, the mark that the tunnels are
//! on, and which pid file is believed.
//!
//! A pid file is believed only when the process with that pid is the
//! autossh of that very pid file: not a zombie, running as the pid file's
//! owner, with `AUTOSSH_PIDFILE` naming that file in its environment, and
//! not a child of such an autossh (its ssh inherits the variable). Another
//! user, who cannot read that environment, compares its command line with
//! the one `NAME.tunnel` records, for status alone. A pid of 0, 1 or less is
//! never believed. Signals go only to a believed autossh and to the children
//! it had when it was signalled, each named by pid and start time (`procs`).

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::files::{foreign_folder, os_error, quoted_word, read_file, read_regular, shown_path};
use crate::files::{FILE_MAX, LIST_MAX};
use crate::list::{self, List};
use crate::procs::{self, Proc};
use crate::settings::Settings;

/// The kernel's id of this boot, where it says one.
fn boot_id() -> Option<Vec<u8>> {
    read_file(Path::new("/proc/sys/kernel/random/boot_id"), 64, true)
        .ok()
        .filter(|id| !id.is_empty())
}

/// How long a command waits for another one's lock.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// The mark that the tunnels are on: written by `start`, `restart` and
/// `reload`, removed by `stop` (the package's start and stop). A change
/// made in the app starts a tunnel only while it is there.
const ON: &str = ".on";

pub struct Runner {
    pub s: Settings,
    /// Whether what is done is printed as it is done (the command line).
    pub live: bool,
}

/// What a pid file is believed to say.
pub enum Belief {
    /// The tunnel's autossh.
    Ours(Proc),
    /// A process runs, but whether it is the tunnel's cannot be told: why.
    Unknown(String),
    /// Nothing of the tunnel's runs.
    No,
}

impl Belief {
    /// As `status` shows it: the pid believed, or why it cannot be told.
    pub fn shown(self) -> (Option<i32>, Option<String>) {
        match self {
            Belief::Ours(p) => (Some(p.pid), None),
            Belief::Unknown(why) => (None, Some(why)),
            Belief::No => (None, None),
        }
    }
}

impl Runner {
    pub fn new(s: Settings) -> Runner {
        Runner { s, live: false }
    }

    pub fn file(&self, name: &OsStr, ext: &str) -> PathBuf {
        let mut file = name.to_os_string();
        file.push(ext);
        self.s.run_dir.join(file)
    }

    /// The list, or why it cannot be read.
    pub fn read_list(&self) -> Result<List, String> {
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

    /// Whether the tunnels are on: the mark (see [`ON`]) was written since
    /// the system started (a run folder that outlives a reboot, as the
    /// Synology package's does, keeps a mark from before: after a crash the
    /// package is not running, and neither are the tunnels), or some tunnel
    /// runs (one an earlier version started, which wrote no mark).
    pub fn on(&self) -> bool {
        let mark = read_file(&self.s.run_dir.join(ON), FILE_MAX, false);
        let this_boot = match (mark, boot_id()) {
            (Ok(mark), Some(boot)) => mark.is_empty() || mark == boot,
            (Ok(_), None) => true,
            (Err(_), _) => false,
        };
        this_boot || self.pid_files().iter().any(|(_, p)| p.is_some())
    }

    /// Marks the tunnels on (with this boot's id) or off.
    pub fn set_on(&self, on: bool) -> Result<(), String> {
        let path = self.s.run_dir.join(ON);
        let done = if on {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path)
                .and_then(|mut f| f.write_all(&boot_id().unwrap_or_default()))
        } else {
            match fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        };
        done.map_err(|e| format!("cannot write {}: {}", shown_path(&path), os_error(&e)))
    }

    /// Runs `work` holding the lock (creating the run folder first); why
    /// not, where it cannot be taken.
    pub fn locked<T>(&self, work: impl FnOnce(&Runner) -> T) -> Result<T, String> {
        let mut this = Runner {
            s: self.s.clone(),
            live: self.live,
        };
        let made = !this.s.run_dir.exists();
        let created = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&this.s.run_dir)
            // Made here: 0755 whatever the umask (with 002 it would be
            // group-writable, and refused below).
            .and_then(|()| match made {
                true => fs::set_permissions(&this.s.run_dir, fs::Permissions::from_mode(0o755)),
                false => Ok(()),
            });
        if let Err(e) = created {
            return Err(format!(
                "cannot make the run folder {}: {}",
                shown_path(&this.s.run_dir),
                os_error(&e)
            ));
        }
        if let Ok(dir) = fs::canonicalize(&this.s.run_dir) {
            this.s.run_dir = dir;
        }
        // Another user who owns the folder, or can write in it, could hold
        // its lock or plant pid files: such a folder is not used.
        let wrong = match fs::metadata(&this.s.run_dir) {
            Ok(meta) => foreign_folder(&meta),
            Err(e) => Some(format!("cannot be read: {}", os_error(&e))),
        };
        if let Some(why) = wrong {
            return Err(format!(
                "the run folder {} {why}; nothing changed",
                shown_path(&this.s.run_dir)
            ));
        }
        // Opened close-on-exec, as every file of the standard library: no
        // autossh started under it holds it.
        // Readable by this user alone: flock(2) takes a lock on a file open
        // for reading, so a lock others could read, others could hold.
        let path = this.s.run_dir.join(".lock");
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
                return Err(format!(
                    "cannot open the lock {}: {}",
                    shown_path(&path),
                    os_error(&e)
                ));
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
                    return Err(format!(
                        "another autossh-tunnels command holds {} ({}); try again later",
                        shown_path(&path),
                        e.desc()
                    ));
                }
            }
        };
        Ok(work(&this))
    }

    /// The autossh that runs tunnel `name`, if its pid file is believed by
    /// the strict check, which signals and starts rely on.
    pub fn running(&self, name: &OsStr) -> Option<Proc> {
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
    pub fn belief(&self, name: &OsStr, from_outside: bool) -> Belief {
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
    pub fn pid_files(&self) -> Vec<(OsString, Option<Proc>)> {
        self.pid_file_names()
            .into_iter()
            .map(|name| {
                let p = self.running(&name);
                (name, p)
            })
            .collect()
    }

    /// The names of the pid files in the run folder, sorted.
    pub fn pid_file_names(&self) -> Vec<OsString> {
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

    pub fn forget(&self, name: &OsStr) {
        for ext in [".pid", ".state", ".tunnel"] {
            let _ = fs::remove_file(self.file(name, ext));
        }
    }
}
