//! Starting a tunnel's autossh and stopping it with its ssh.

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::files::{os_error, quoted_word, read_file, shown_path, FILE_MAX};
use crate::list::{self, Tunnel};
use crate::procs::Proc;
use crate::run_dir::Runner;

/// How long a start waits for `autossh -f` to return and then for the pid
/// file of its background process.
const START_WAIT: Duration = Duration::from_secs(10);
/// After SIGKILL, how long until a process must be gone.
const KILL_WAIT: Duration = Duration::from_secs(3);
const STEP: Duration = Duration::from_millis(20);

/// The outcome of a start.
pub enum Started {
    Now(Proc),
    Already(Proc),
}

impl Runner {
    /// What `tunnel` is started with: autossh, its arguments, the list's
    /// settings. A change in any of them is a changed tunnel.
    pub fn command_of(&self, tunnel: &Tunnel) -> (Vec<OsString>, Vec<(OsString, OsString)>) {
        let mut argv = vec![self.s.autossh.clone().into_os_string(), "-f".into()];
        argv.extend(self.s.ssh_options.iter().cloned());
        argv.extend(tunnel.args.iter().cloned());
        (argv, tunnel.env.clone())
    }

    /// The text of `RUN_DIR/NAME.tunnel`: a line per argument and setting,
    /// each a quoted string (control bytes and non-UTF-8 escaped).
    pub fn definition(&self, tunnel: &Tunnel) -> Vec<u8> {
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
    pub fn start(&self, tunnel: &Tunnel) -> Result<Started, String> {
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
                .map(|t| autossh::staterecord::parse(&t));
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
    pub fn stop_many(&self, stopping: &[(OsString, Proc)]) -> Vec<OsString> {
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
}
