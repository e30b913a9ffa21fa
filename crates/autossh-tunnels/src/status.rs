//! What the tunnels are doing, for people (`status`), scripts
//! (`status --json`, `check`) and node exporter (`metrics`).

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use autossh::time::local_time;

use crate::files::{read_file, shown_path, FILE_MAX};
use crate::list::{self, List};
use crate::report::{self, Seen};
use crate::run_dir::Runner;

/// A time of the status line: `HH:MM` today, else `YYYY-MM-DD HH:MM`.
pub fn when(t: i64) -> String {
    let at = local_time(t);
    let today = local_time(autossh::time::unix_now());
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

impl Runner {
    /// The tunnels to show: the listed ones in order, then those that run
    /// though no longer listed.
    pub fn seen(&self, list: Option<&List>) -> Vec<Seen> {
        let record = |name: &OsStr| {
            read_file(&self.file(name, ".state"), FILE_MAX, false)
                .ok()
                .map(|t| autossh::staterecord::parse(&t))
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

    pub fn status(&self, name: Option<&str>, json: bool) -> i32 {
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
            let value = report::json(
                self.s.list.as_os_str().as_bytes(),
                error,
                problems,
                &seen,
                &when,
            );
            println!("{value}");
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

    pub fn check(&self) -> i32 {
        match self.read_list() {
            Err(why) => {
                eprintln!("autossh-tunnels: {why}");
                1
            }
            Ok(list) => {
                for p in &list.problems {
                    eprintln!("{}:{}: {}", shown_path(&self.s.list), p.line, p.text);
                }
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

    pub fn metrics(&self) -> i32 {
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
