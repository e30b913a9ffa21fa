//! The commands that start and stop tunnels, and the edits of the list
//! that the app and `add` make. Each returns a [`Report`]: what it did to
//! every tunnel it touched and why it could not do more. The exit status is
//! decided here, in one place; the command line prints a report, the app
//! sends it as JSON.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;

use serde_json::{json, Value};

use crate::edit;
use crate::files::{os_error, read_file, shown_path, write_list, LIST_MAX};
use crate::form::Form;
use crate::launch::Started;
use crate::list::{self, List, Tunnel};
use crate::procs::Proc;
use crate::run_dir::Runner;

/// What a command did to one tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Started(i32),
    Restarted(i32),
    /// It ran already, and was left so.
    AlreadyRunning(i32),
    /// It runs as it was, what it runs with did not change.
    Unchanged(i32),
    Stopped,
    NotRunning,
    /// Not started: the tunnels are stopped (see `run_dir::ON`).
    Held,
    /// It would not start: why.
    Failed(String),
    /// It would not stop, even after SIGKILL.
    Stuck,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::Stuck)
    }

    /// The word the app's JSON gives it.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Started(_) => "started",
            Outcome::Restarted(_) => "restarted",
            Outcome::AlreadyRunning(_) => "already running",
            Outcome::Unchanged(_) => "unchanged",
            Outcome::Stopped => "stopped",
            Outcome::NotRunning => "not running",
            Outcome::Held => "not started",
            Outcome::Failed(_) => "failed",
            Outcome::Stuck => "still running",
        }
    }

    fn pid(&self) -> Option<i32> {
        match self {
            Outcome::Started(p)
            | Outcome::Restarted(p)
            | Outcome::AlreadyRunning(p)
            | Outcome::Unchanged(p) => Some(*p),
            _ => None,
        }
    }

    /// As the command line says it, after `NAME: `.
    pub fn text(&self) -> String {
        match self {
            Outcome::Started(p) => format!("started (pid {p})"),
            Outcome::Restarted(p) => format!("restarted (pid {p})"),
            Outcome::AlreadyRunning(p) => format!("already running (pid {p})"),
            Outcome::Unchanged(p) => format!("unchanged (pid {p})"),
            Outcome::Stopped => "stopped".into(),
            Outcome::NotRunning => "not running".into(),
            Outcome::Held => "not started: the tunnels are stopped".into(),
            Outcome::Failed(why) => format!("failed to start: {why}"),
            Outcome::Stuck => "still running after SIGKILL".into(),
        }
    }
}

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every tunnel touched, with what happened to it, in order.
    pub tunnels: Vec<(String, Outcome)>,
    /// Wrong lines of the list (`LIST:LINE: what`).
    pub warnings: Vec<String>,
    /// Why the command could not do all it was asked (where it could not).
    pub error: Option<String>,
    /// Whether the list was written (by an edit).
    pub saved: bool,
    /// Whether each line is printed as it comes (the command line), so that
    /// a long stop shows its progress and a command killed part-way has
    /// said what it did.
    pub live: bool,
}

impl Report {
    /// A report for `runner`: live on the command line.
    fn of(runner: &Runner) -> Report {
        Report {
            live: runner.live,
            ..Report::default()
        }
    }

    fn push(&mut self, name: &OsStr, outcome: Outcome) {
        let name = list::shown(name.as_bytes(), 70);
        if self.live {
            println!("{name}: {}", outcome.text());
        }
        self.tunnels.push((name, outcome));
    }

    fn warn(&mut self, warnings: Vec<String>) {
        if self.live {
            for w in &warnings {
                eprintln!("{w}");
            }
        }
        self.warnings = warnings;
    }

    fn fail(&mut self, why: String) {
        if self.error.is_none() {
            self.error = Some(why);
        }
    }

    pub fn failed(&self) -> bool {
        self.error.is_some() || self.tunnels.iter().any(|(_, o)| o.failed())
    }

    /// The exit status: 1 when anything failed.
    pub fn code(&self) -> i32 {
        i32::from(self.failed())
    }

    /// A line per tunnel, as the command line prints them.
    pub fn lines(&self) -> String {
        self.tunnels
            .iter()
            .map(|(name, o)| format!("{name}: {}\n", o.text()))
            .collect()
    }

    /// What failed, in a sentence (for the app's error).
    pub fn failure(&self) -> Option<String> {
        let mut parts: Vec<String> = self.error.iter().cloned().collect();
        parts.extend(
            self.tunnels
                .iter()
                .filter(|(_, o)| o.failed())
                .map(|(name, o)| format!("{name}: {}", o.text())),
        );
        if parts.is_empty() {
            return None;
        }
        let said = parts.join("; ");
        Some(if self.saved {
            format!("the list was saved, but {said}")
        } else {
            said
        })
    }

    /// Prints what was not printed yet: the list's wrong lines and the
    /// error on stderr, the tunnels on stdout; where the list was written
    /// though something failed, it says so. Returns the exit status.
    pub fn print(&self) -> i32 {
        if !self.live {
            for w in &self.warnings {
                eprintln!("{w}");
            }
            print!("{}", self.lines());
        }
        match self.failure() {
            Some(why) if self.saved => eprintln!("autossh-tunnels: {why}"),
            _ => {
                if let Some(why) = &self.error {
                    eprintln!("autossh-tunnels: {why}");
                }
            }
        }
        self.code()
    }

    /// The app's JSON of it.
    pub fn json(&self) -> Value {
        let tunnels: Vec<Value> = self
            .tunnels
            .iter()
            .map(|(name, o)| {
                json!({
                    "name": name,
                    "outcome": o.word(),
                    "pid": o.pid(),
                    "reason": match o {
                        Outcome::Failed(why) => Some(why.clone()),
                        Outcome::Stuck => Some(o.text()),
                        _ => None,
                    },
                })
            })
            .collect();
        json!({
            "ok": !self.failed(),
            "saved": self.saved,
            "tunnels": tunnels,
            "told": self.lines(),
            "error": self.failure(),
        })
    }
}

/// A change of the list, as the app (or `add`) asks for it.
pub enum Edit {
    /// A new tunnel; refused when one of its name is listed.
    Create(Form),
    /// A tunnel the app wrote, replaced.
    Update(Form),
    Delete,
}

/// Why an edit was refused; the list stays as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A tunnel of that name is there already, or is not the app's.
    Conflict(String),
    /// No tunnel of that name.
    Missing(String),
    /// The list or the run folder cannot be used.
    Failed(String),
}

impl Refused {
    pub fn why(&self) -> &str {
        match self {
            Refused::Conflict(w) | Refused::Missing(w) | Refused::Failed(w) => w,
        }
    }
}

/// What a reload does with a listed tunnel, once the tunnels to stop were
/// stopped.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    Done(Outcome),
    /// Start it; `true` when it is a restart (it changed).
    Start(bool),
}

/// [`Settled`] from whether the tunnel changed, whether it would not stop
/// (when it changed), and the autossh that runs it now. A changed tunnel
/// that still runs was not restarted, and is never called unchanged.
fn settled(changed: bool, stuck: bool, running: Option<i32>) -> Settled {
    match (changed, running) {
        (true, _) if stuck => Settled::Done(Outcome::Stuck),
        (true, Some(_)) => Settled::Done(Outcome::Stuck),
        (true, None) => Settled::Start(true),
        (false, Some(pid)) => Settled::Done(Outcome::Unchanged(pid)),
        (false, None) => Settled::Start(false),
    }
}

impl Runner {
    /// The list's wrong lines, as the command line shows them.
    fn warnings(&self, list: &List) -> Vec<String> {
        list.problems
            .iter()
            .map(|p| format!("{}:{}: {}", shown_path(&self.s.list), p.line, p.text))
            .collect()
    }

    /// Runs `work` with the list, read under the lock. A list that cannot
    /// be read changes nothing and leaves nothing behind (not even the run
    /// folder): it is read once before the lock is taken.
    fn with_list(&self, work: impl FnOnce(&Runner, &List, &mut Report)) -> Report {
        let mut report = Report::of(self);
        if let Err(why) = self.read_list() {
            report.fail(format!("{why}; nothing changed"));
            return report;
        }
        let done = self.locked(|r| match r.read_list() {
            Err(why) => report.fail(format!("{why}; nothing changed")),
            Ok(list) => {
                report.warn(r.warnings(&list));
                work(r, &list, &mut report)
            }
        });
        if let Err(why) = done {
            report.fail(why);
        }
        report
    }

    /// Starts `tunnel` (said with `verb` when it was not running).
    fn start_one(&self, tunnel: &Tunnel, verb: fn(i32) -> Outcome) -> Outcome {
        match self.start(tunnel) {
            Ok(Started::Now(p)) => verb(p.pid),
            Ok(Started::Already(p)) => Outcome::AlreadyRunning(p.pid),
            Err(why) => Outcome::Failed(why),
        }
    }

    /// Stops these, all at once, and says what became of each.
    fn stop_these(&self, stopping: &[(OsString, Proc)], report: &mut Report) {
        let stuck = self.stop_many(stopping);
        for (name, _) in stopping {
            let outcome = match stuck.contains(name) {
                true => Outcome::Stuck,
                false => Outcome::Stopped,
            };
            report.push(name, outcome);
        }
    }

    /// Every listed tunnel that does not run starts; the tunnels are on.
    pub fn start_all(&self) -> Report {
        self.with_list(|r, list, report| {
            if let Err(why) = r.set_on(true) {
                report.fail(why);
            }
            for tunnel in &list.tunnels {
                let outcome = r.start_one(tunnel, Outcome::Started);
                report.push(OsStr::new(&tunnel.name), outcome);
            }
        })
    }

    /// Every tunnel it started stops, listed or not; the tunnels are off.
    pub fn stop_all(&self) -> Report {
        let mut report = Report::of(self);
        if let Err(why) = self.locked(|r| r.stop_everything(&mut report)) {
            report.fail(why);
        }
        report
    }

    /// [`Runner::stop_all`] under the lock: pid files not believed are
    /// removed, and what was left of tunnels that are gone.
    fn stop_everything(&self, report: &mut Report) {
        if let Err(why) = self.set_on(false) {
            report.fail(why);
        }
        let mut stopping = Vec::new();
        for (name, p) in self.pid_files() {
            match p {
                Some(p) => stopping.push((name, p)),
                None => {
                    report.push(&name, Outcome::NotRunning);
                    self.forget(&name);
                }
            }
        }
        self.stop_these(&stopping, report);
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
    }

    /// Everything stops, then the listed tunnels start.
    pub fn restart_all(&self) -> Report {
        self.with_list(|r, list, report| {
            r.stop_everything(report);
            if let Err(why) = r.set_on(true) {
                report.fail(why);
            }
            for tunnel in &list.tunnels {
                let outcome = r.start_one(tunnel, Outcome::Started);
                report.push(OsStr::new(&tunnel.name), outcome);
            }
        })
    }

    /// Tunnel `name` stops (where it runs) and starts again.
    pub fn restart(&self, name: &str) -> Report {
        self.with_list(|r, list, report| r.restart_listed(name, list, report))
    }

    fn restart_listed(&self, name: &str, list: &List, report: &mut Report) {
        let Some(tunnel) = list.get(name) else {
            report.fail(format!("no tunnel {name} in {}", shown_path(&self.s.list)));
            return;
        };
        let mut verb: fn(i32) -> Outcome = Outcome::Started;
        if let Some(p) = self.running(OsStr::new(name)) {
            if !self.stop_many(&[(name.into(), p)]).is_empty() {
                report.push(OsStr::new(name), Outcome::Stuck);
                return;
            }
            verb = Outcome::Restarted;
        }
        report.push(OsStr::new(name), self.start_one(tunnel, verb));
    }

    /// New tunnels start, removed ones stop, changed ones restart; the
    /// others are left as they run. The tunnels are on.
    pub fn reload(&self) -> Report {
        self.with_list(|r, list, report| {
            if let Err(why) = r.set_on(true) {
                report.fail(why);
            }
            let mut stopping = Vec::new();
            let mut changed = Vec::new();
            for (name, p) in r.pid_files() {
                let Some(p) = p else {
                    r.forget(&name);
                    continue;
                };
                match name.to_str().and_then(|n| list.get(n)) {
                    None => stopping.push((name, p)),
                    Some(tunnel) if r.changed(tunnel) => {
                        changed.push((name, p));
                    }
                    Some(_) => {}
                }
            }
            let stuck = r.stop_many(&[&stopping[..], &changed[..]].concat());
            for (name, _) in &stopping {
                let outcome = match stuck.contains(name) {
                    true => Outcome::Stuck,
                    false => Outcome::Stopped,
                };
                report.push(name, outcome);
            }
            for tunnel in &list.tunnels {
                let name = OsStr::new(&tunnel.name);
                let outcome = match settled(
                    changed.iter().any(|(n, _)| n == name),
                    stuck.iter().any(|s| s == name),
                    r.running(name).map(|p| p.pid),
                ) {
                    Settled::Done(outcome) => outcome,
                    Settled::Start(true) => r.start_one(tunnel, Outcome::Restarted),
                    Settled::Start(false) => r.start_one(tunnel, Outcome::Started),
                };
                report.push(name, outcome);
            }
        })
    }

    /// Whether what `tunnel` would start with differs from what its
    /// running autossh was started with.
    fn changed(&self, tunnel: &Tunnel) -> bool {
        let was = read_file(
            &self.file(OsStr::new(&tunnel.name), ".tunnel"),
            LIST_MAX,
            false,
        )
        .ok();
        was.as_deref() != Some(&self.definition(tunnel)[..])
    }

    /// Brings tunnel `name` in line with the list and touches no other: a
    /// running one that is no longer listed (or disabled) stops, one that
    /// changed restarts; one that does not run starts only while the
    /// tunnels are on.
    fn apply(&self, name: &str, list: &List, report: &mut Report) {
        let os = OsStr::new(name);
        let wanted = list.get(name);
        let outcome = match (self.running(os), wanted) {
            (Some(p), None) => match self.stop_many(&[(name.into(), p)]).is_empty() {
                true => Outcome::Stopped,
                false => Outcome::Stuck,
            },
            (Some(p), Some(tunnel)) if self.changed(tunnel) => {
                match self.stop_many(&[(name.into(), p)]).is_empty() {
                    true => self.start_one(tunnel, Outcome::Restarted),
                    false => Outcome::Stuck,
                }
            }
            (Some(p), Some(_)) => Outcome::Unchanged(p.pid),
            (None, Some(tunnel)) if self.on() => self.start_one(tunnel, Outcome::Started),
            (None, Some(_)) => {
                self.forget(os);
                Outcome::Held
            }
            (None, None) => {
                self.forget(os);
                Outcome::NotRunning
            }
        };
        report.push(os, outcome);
    }

    /// Changes tunnel `name` in the list, under the lock, and applies the
    /// change to it alone. Refused, the list is as it was; done, the report
    /// says what became of the tunnel.
    pub fn edit(&self, name: &str, edit: Edit) -> Result<Report, Refused> {
        let list_path = self.s.list.clone();
        let done = self.locked(|r| {
            let text = read_file(&list_path, LIST_MAX, true).map_err(|e| {
                Refused::Failed(format!("cannot read the tunnel list: {}", os_error(&e)))
            })?;
            let listed = list::parse(&text);
            let exists = listed.get(name).or_else(|| listed.disabled(name));
            let written_by_app = |t: &Tunnel| {
                let words: Vec<String> = t
                    .args
                    .iter()
                    .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned())
                    .collect();
                Form::from_args(&t.name, &words, true).is_some()
            };
            let new_text = match (&edit, exists) {
                (Edit::Create(_), Some(_)) => {
                    return Err(Refused::Conflict(format!(
                        "a tunnel {name} is already in the list"
                    )))
                }
                (Edit::Update(_) | Edit::Delete, None) => {
                    return Err(Refused::Missing(format!("no tunnel {name} in the list")))
                }
                (Edit::Update(_), Some(t)) if !written_by_app(t) => {
                    return Err(Refused::Conflict(format!(
                        "tunnel {name} was written by hand; change it in the tunnel list"
                    )))
                }
                (Edit::Create(form) | Edit::Update(form), _) => {
                    edit::put(&text, name, &form.line())
                }
                (Edit::Delete, Some(_)) => edit::remove(&text, name),
            };
            write_list(&list_path, &new_text).map_err(|e| {
                Refused::Failed(format!("cannot write the tunnel list: {}", os_error(&e)))
            })?;
            let mut report = Report {
                saved: true,
                ..Report::of(r)
            };
            let now = list::parse(&new_text);
            report.warn(r.warnings(&now));
            r.apply(name, &now, &mut report);
            Ok(report)
        });
        done.map_err(Refused::Failed)?
    }

    /// The app's restart of one tunnel: refused while the tunnels are
    /// stopped and it does not run.
    pub fn restart_in_app(&self, name: &str) -> Result<Report, Refused> {
        let done = self.locked(|r| {
            let list = r.read_list().map_err(Refused::Failed)?;
            if list.get(name).is_none() {
                return Err(Refused::Missing(format!(
                    "no running tunnel {name} in the list"
                )));
            }
            if !r.on() && r.running(OsStr::new(name)).is_none() {
                return Err(Refused::Conflict(
                    "the tunnels are stopped: start the package first".into(),
                ));
            }
            let mut report = Report::of(r);
            r.restart_listed(name, &list, &mut report);
            Ok(report)
        });
        done.map_err(Refused::Failed)?
    }

    /// `add NAME ARGS...`: a tunnel the app can edit, checked as the app
    /// checks its form, added to the list (and started while the tunnels
    /// are on).
    pub fn add(&self, name: &str, args: &[String]) -> Report {
        let form = match Form::from_words(name, args) {
            Ok(form) => form,
            Err(errors) => {
                let why: Vec<String> = errors
                    .iter()
                    .map(|(field, why)| format!("{field}: {why}"))
                    .collect();
                let mut report = Report::of(self);
                report.fail(format!("{name} not added: {}", why.join("; ")));
                return report;
            }
        };
        match self.edit(name, Edit::Create(form)) {
            Ok(report) => report,
            Err(refused) => {
                let mut report = Report::of(self);
                report.fail(format!("{name} not added: {}", refused.why()));
                report
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_calls_nothing_unchanged_that_changed() {
        assert_eq!(settled(true, true, Some(7)), Settled::Done(Outcome::Stuck));
        assert_eq!(settled(true, false, Some(7)), Settled::Done(Outcome::Stuck));
        assert_eq!(settled(true, false, None), Settled::Start(true));
        assert_eq!(
            settled(false, false, Some(7)),
            Settled::Done(Outcome::Unchanged(7))
        );
        assert_eq!(settled(false, false, None), Settled::Start(false));
    }

    #[test]
    fn exit_status_and_words_in_one_place() {
        let mut r = Report::default();
        r.push(OsStr::new("a"), Outcome::Started(10));
        r.push(OsStr::new("b"), Outcome::Held);
        r.push(OsStr::new("c"), Outcome::Unchanged(12));
        assert_eq!(r.code(), 0);
        assert_eq!(r.failure(), None);
        assert_eq!(
            r.lines(),
            "a: started (pid 10)\nb: not started: the tunnels are stopped\nc: unchanged (pid 12)\n"
        );
        let j = r.json();
        assert_eq!(j["ok"], true);
        assert_eq!(j["tunnels"][0]["pid"], 10);
        assert_eq!(j["tunnels"][1]["outcome"], "not started");
        r.saved = true;
        r.push(OsStr::new("d"), Outcome::Failed("no such host".into()));
        assert_eq!(r.code(), 1);
        assert_eq!(
            r.failure().unwrap(),
            "the list was saved, but d: failed to start: no such host"
        );
        let j = r.json();
        assert_eq!(j["ok"], false);
        assert_eq!(j["tunnels"][3]["reason"], "no such host");
        let stuck = Report {
            tunnels: vec![("e".into(), Outcome::Stuck)],
            ..Report::default()
        };
        assert_eq!(stuck.code(), 1);
        let broken = Report {
            error: Some("cannot make the run folder /x: Permission denied".into()),
            ..Report::default()
        };
        assert_eq!(broken.code(), 1);
        assert_eq!(broken.json()["ok"], false);
    }
}
