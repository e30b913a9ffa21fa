//! autossh-tunnels: the tunnel list run as one autossh per tunnel, against
//! the fake ssh (and, at the end, the real sshd of the test remote host).
//! Every case the old shell logic got wrong is here: a dot name, a stale or
//! reused pid file, a pid file of 0, two starts at once, CR line ends,
//! arguments expanded by the shell.

// The black-box helpers are the workspace's, shared with autossh's tests.
#[path = "../../../tests/common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

fn tunnels_bin() -> &'static str {
    env!("CARGO_BIN_EXE_autossh-tunnels")
}

/// A run folder, a list and a fake ssh of one test's own.
struct Place {
    fake: Fake,
    list: PathBuf,
    run: PathBuf,
}

impl Drop for Place {
    /// Every autossh of this run folder is killed, with its ssh (the fake's
    /// own guard kills the rest).
    fn drop(&mut self) {
        for pid in self.autossh_pids() {
            for child in descendants(pid) {
                signal(child, libc::SIGKILL);
            }
            signal(pid, libc::SIGKILL);
        }
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Place {
    fn new(tag: &str) -> Place {
        let fake = Fake::new(tag);
        let list = fake.dir.path("tunnels.conf");
        let run = fake.dir.path("run");
        // The tunnels' ssh gets no FAKE_PLAN: autossh-tunnels starts them
        // with an environment of its own.
        fake.plan("hang");
        Place { fake, list, run }
    }

    fn write(&self, text: &str) {
        fs::write(&self.list, text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.fake.command(tunnels_bin(), args);
        c.env("AUTOSSH", autossh_bin())
            .env("AUTOSSH_TUNNELS", &self.list)
            .env("AUTOSSH_RUN_DIR", &self.run)
            .env("AUTOSSH_STOP_WAIT", "10");
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        let o = run_bounded(self.command(args), SLOW_LIMIT);
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.run.join(format!("{name}.pid"))
    }

    fn pid(&self, name: &str) -> i32 {
        fs::read_to_string(self.pid_file(name))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Every autossh (not its ssh) whose pid file is in the run folder, by
    /// what its environment says.
    fn autossh_pids(&self) -> Vec<i32> {
        let prefix = format!("AUTOSSH_PIDFILE={}/", self.run.display());
        let holds = |pid: i32| {
            fs::read(format!("/proc/{pid}/environ"))
                .unwrap_or_default()
                .split(|&b| b == 0)
                .any(|v| v.starts_with(prefix.as_bytes()))
        };
        let parent = |pid: i32| -> i32 {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
        };
        let Ok(dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| alive(pid) && holds(pid) && !holds(parent(pid)))
            .collect()
    }

    /// How many autossh processes run tunnel `name`.
    fn count(&self, name: &str) -> usize {
        let file = self.pid_file(name);
        self.autossh_pids()
            .into_iter()
            .filter(|&pid| {
                fs::read(format!("/proc/{pid}/environ"))
                    .unwrap_or_default()
                    .split(|&b| b == 0)
                    .any(|v| v == format!("AUTOSSH_PIDFILE={}", file.display()).as_bytes())
            })
            .count()
    }

    fn ssh_argv_of(&self, name: &str) -> Vec<String> {
        let autossh = self.pid(name);
        let mut ssh = Vec::new();
        assert!(
            wait_until(LIMIT, || {
                ssh = children_of(autossh).0;
                ssh.len() == 1 && !self.fake.argv_of(ssh[0]).is_empty()
            }),
            "no ssh for {name}"
        );
        self.fake.argv_of(ssh[0])
    }
}

/// A tunnel line of the fake: no monitoring, so that nothing but the start
/// matters.
fn line(name: &str) -> String {
    format!("tunnel {name} -M 0 -N me@{name}.example\n")
}

#[test]
fn start_status_stop() {
    let p = Place::new("tl-basic");
    p.write(&(line("one") + &line("two")));
    assert_eq!(p.run(&["status"]).code, 3);
    let o = p.run(&["start"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("one: started (pid "), "{}", o.stdout);
    assert!(o.stdout.contains("two: started (pid "), "{}", o.stdout);
    assert_eq!((p.count("one"), p.count("two")), (1, 1));
    assert_eq!(p.ssh_argv_of("one"), ["-N", "me@one.example"]);
    let o = p.run(&["status"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.stdout.contains("one: up since "), "{}", o.stdout);
    let o = p.run(&["start"]);
    assert!(o
        .stdout
        .contains(&format!("one: already running (pid {})", p.pid("one"))));
    assert_eq!(p.count("one"), 1);

    // One of them dies: 1 (some run), and start brings back only it.
    let one = p.pid("one");
    let (one_ssh, _) = children_of(one);
    signal(one, libc::SIGKILL);
    assert!(wait_until(LIMIT, || !alive(one)));
    for pid in one_ssh {
        signal(pid, libc::SIGKILL);
    }
    assert_eq!(p.run(&["status"]).code, 1);
    let two = p.pid("two");
    let o = p.run(&["start"]);
    assert!(o.stdout.contains("two: already running"), "{}", o.stdout);
    assert!(o.stdout.contains("one: started"), "{}", o.stdout);
    assert_eq!(p.pid("two"), two);

    let everything: Vec<i32> = p
        .autossh_pids()
        .into_iter()
        .flat_map(|pid| descendants(pid).into_iter().chain([pid]))
        .collect();
    assert_eq!(everything.len(), 4, "two autossh and their ssh");
    let o = p.run(&["stop"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    // stop returns only once each autossh and its ssh are gone.
    for pid in everything {
        assert!(!alive(pid), "{pid} left running");
    }
    assert_eq!(p.run(&["status"]).code, 3);
    let left: Vec<_> = fs::read_dir(&p.run)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, [".lock"]);
}

/// The shell logic let a name begin with a dot, and then its stop, which
/// visited only `*.pid`, passed over it. Now such a name is a wrong line;
/// and stop stops whatever pid file of ours there is, dot or not.
#[test]
fn a_dot_name_is_refused_and_stop_stops_every_pid_file() {
    let p = Place::new("tl-dot");
    p.write(&(line(".hidden") + &line("seen")));
    let o = p.run(&["start"]);
    assert!(
        o.stderr.contains(":1: not a tunnel name: .hidden"),
        "{}",
        o.stderr
    );
    assert_eq!(o.code, 0);
    assert_eq!(p.count("seen"), 1);
    assert!(!p.pid_file(".hidden").exists());
    assert_eq!(p.run(&["check"]).code, 1);

    // An autossh started by the old logic under a dot name.
    let mut old = p.fake.autossh(&["-f", "-M", "0", "-N", "me@old"]);
    old.env("AUTOSSH_PIDFILE", p.pid_file(".old"))
        .env("FAKE_PLAN", "hang");
    assert!(run_bounded(old, LIMIT).status.success());
    assert!(wait_until(LIMIT, || p.pid(".old") > 0 && p.count(".old") == 1));
    let old = p.pid(".old");
    assert!(wait_until(LIMIT, || children_of(old).0.len() == 1));
    let old_ssh = children_of(old).0[0];
    let o = p.run(&["stop"]);
    assert!(o.stdout.contains(".old: stopped"), "{}", o.stdout);
    assert!(!alive(old) && !alive(old_ssh));
    assert!(p.autossh_pids().is_empty());
}

/// A pid file left behind (autossh killed, a power cut) whose pid now
/// belongs to another process: not believed, not signalled.
#[test]
fn a_pid_file_of_another_process_is_not_believed() {
    let p = Place::new("tl-stale");
    p.write(&(line("one") + &line("two")));
    fs::create_dir_all(&p.run).unwrap();
    let mut sleeper = Command::new("sleep");
    sleeper.arg("60");
    let other = Running::start(sleeper);
    fs::write(p.pid_file("one"), format!("{}\n", other.pid)).unwrap();
    let o = p.run(&["status"]);
    assert_eq!(o.code, 3, "{}", o.stdout);
    assert!(o.stdout.contains("one: stopped"), "{}", o.stdout);

    let o = p.run(&["start"]);
    assert!(o.stdout.contains("one: started"), "{}", o.stdout);
    assert_eq!(p.count("one"), 1);
    assert_ne!(p.pid("one"), other.pid);

    // The pid of tunnel two's autossh in one's pid file: an autossh of ours,
    // but not one's.
    let one = p.pid("one");
    signal(one, libc::SIGKILL);
    assert!(wait_until(LIMIT, || !alive(one)));
    fs::write(p.pid_file("one"), format!("{}\n", p.pid("two"))).unwrap();
    let o = p.run(&["status", "one"]);
    assert_eq!(o.code, 3, "{}", o.stdout);
    let o = p.run(&["start"]);
    assert!(o.stdout.contains("one: started"), "{}", o.stdout);
    assert_eq!((p.count("one"), p.count("two")), (1, 1));

    // And the stranger again, now in two's pid file, at stop.
    let two = p.pid("two");
    fs::write(p.pid_file("two"), format!("{}\n", other.pid)).unwrap();
    let o = p.run(&["stop"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("two: not running"), "{}", o.stdout);
    assert!(alive(other.pid), "stop signalled a process not its own");
    // The lost autossh of two is still ours to clean up.
    assert!(alive(two));
    signal(two, libc::SIGKILL);
}

/// 0 would be the caller's process group for kill(2), -1 every process, 1
/// init: none of them is ever believed.
#[test]
fn pid_files_of_0_1_and_negative_signal_nothing() {
    let p = Place::new("tl-zero");
    p.write(&(line("zero") + &line("one") + &line("minus") + &line("group")));
    fs::create_dir_all(&p.run).unwrap();
    for (name, pid) in [
        ("zero", "0"),
        ("one", "1"),
        ("minus", "-1"),
        ("group", "-42"),
    ] {
        fs::write(p.pid_file(name), format!("{pid}\n")).unwrap();
    }
    assert_eq!(p.run(&["status"]).code, 3);
    // The program and a sibling in a process group of their own: a signal to
    // the group would end both.
    let mut sh = Command::new("sh");
    sh.args([
        "-c",
        "sleep 30 & s=$!; \"$0\" stop; rc=$?; kill -0 $s && echo sibling alive; kill $s; exit $rc",
        tunnels_bin(),
    ])
    .env("AUTOSSH", autossh_bin())
    .env("AUTOSSH_TUNNELS", &p.list)
    .env("AUTOSSH_RUN_DIR", &p.run)
    .process_group(0);
    let o = run_bounded(sh, SLOW_LIMIT);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("sibling alive"), "{out}");
    for name in ["zero", "one", "minus", "group"] {
        assert!(out.contains(&format!("{name}: not running")), "{out}");
        assert!(!p.pid_file(name).exists());
    }
    // And start starts each, not taken in by the files.
    for (name, pid) in [("zero", "0"), ("one", "1")] {
        fs::write(p.pid_file(name), format!("{pid}\n")).unwrap();
    }
    let o = p.run(&["start"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    for name in ["zero", "one", "minus", "group"] {
        assert_eq!(p.count(name), 1, "{name}");
    }
    assert_eq!(p.run(&["stop"]).code, 0);
    assert!(p.autossh_pids().is_empty());
}

/// Boot racing a user, a cron job: starts at once take turns, and each
/// tunnel runs once.
#[test]
fn starts_at_once_run_each_tunnel_once() {
    let p = Place::new("tl-race");
    p.write(&(line("a") + &line("b") + &line("c")));
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let mut c = p.command(&["start"]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut started = 0;
    for child in starts {
        let o = run_bounded_child(child, SLOW_LIMIT);
        assert_eq!(o.status.code(), Some(0));
        started += String::from_utf8_lossy(&o.stdout)
            .matches(": started")
            .count();
    }
    assert_eq!(started, 3);
    for name in ["a", "b", "c"] {
        assert_eq!(p.count(name), 1, "{name}");
    }
    assert!(wait_until(LIMIT, || p.fake.runs() == 3));
    assert_eq!(p.run(&["stop"]).code, 0);
    assert!(p.autossh_pids().is_empty());
}

/// A stop while a start runs waits for it, then stops all it started.
#[test]
fn a_stop_while_a_start_runs() {
    let p = Place::new("tl-stopstart");
    let names: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    p.write(&names.iter().map(|n| line(n)).collect::<String>());
    let mut start = p.command(&["start"]);
    start.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = start.spawn().unwrap();
    // The first pid file is there: the start holds the lock.
    assert!(wait_until(LIMIT, || p.pid_file("t0").exists()));
    let stop = p.run(&["stop"]);
    let start = run_bounded_child(start, SLOW_LIMIT);
    assert_eq!(start.status.code(), Some(0));
    assert_eq!(stop.code, 0, "{}", stop.stdout);
    assert_eq!(
        stop.stdout.matches(": stopped").count(),
        8,
        "{}",
        stop.stdout
    );
    assert!(p.autossh_pids().is_empty());
    assert!(!p.fake.pids().into_iter().any(alive));
}

/// A list saved with Windows line ends, a missing final newline, tabs.
#[test]
fn windows_line_ends_and_no_final_newline() {
    let p = Place::new("tl-crlf");
    p.write(
        "# saved on Windows\r\ntunnel crlf\t-M 0 -N me@relay\r\n\r\ntunnel last -M 0 -N me@last",
    );
    let o = p.run(&["check"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("2 tunnels, every line understood"),
        "{}",
        o.stdout
    );
    assert_eq!(p.run(&["start"]).code, 0);
    assert_eq!(p.ssh_argv_of("crlf"), ["-N", "me@relay"]);
    assert_eq!(p.ssh_argv_of("last"), ["-N", "me@last"]);
    assert_eq!(p.run(&["stop"]).code, 0);
}

/// The shell split arguments with an unquoted `$(...)`: globs matched the
/// files of its folder. Now every word reaches ssh as written, and quotes
/// keep blanks.
#[test]
fn arguments_reach_ssh_as_written() {
    let p = Place::new("tl-glob");
    let cwd = p.fake.dir.path("cwd");
    fs::create_dir_all(&cwd).unwrap();
    for file in ["SendEnv=LC_ALL", "8080:1:80", "8080:::80", "x"] {
        fs::write(cwd.join(file), "").unwrap();
    }
    p.write(
        "tunnel g -M 0 -N -o SendEnv=LC_* -L 8080:[::1]:80 -o 'ProxyCommand=nc %h %p' \
         -o \"RemoteCommand=echo $HOME `id` $(id)\" * ~ me@relay\n",
    );
    let mut c = p.command(&["start"]);
    c.current_dir(&cwd);
    let o = run_bounded(c, SLOW_LIMIT);
    assert!(o.status.success());
    assert_eq!(
        p.ssh_argv_of("g"),
        [
            "-N",
            "-o",
            "SendEnv=LC_*",
            "-L",
            "8080:[::1]:80",
            "-o",
            "ProxyCommand=nc %h %p",
            "-o",
            "RemoteCommand=echo $HOME `id` $(id)",
            "*",
            "~",
            "me@relay"
        ]
    );
    assert_eq!(p.run(&["stop"]).code, 0);
}

/// A 250-character name, an unclosed quote, a duplicate: each named with
/// its line; the good tunnel runs; check says 1; nothing of the bad ones is
/// made.
#[test]
fn wrong_lines_are_named_and_the_good_ones_run() {
    let p = Place::new("tl-bad");
    let long = "n".repeat(250);
    p.write(&format!(
        "{}tunnel {long} -M 0 -N me@x\ntunnel q -N 'me@x\n{}env nobody X=1\n",
        line("good"),
        line("good")
    ));
    let o = p.run(&["check"]);
    assert_eq!(o.code, 1);
    let file = p.list.display().to_string();
    for wrong in [
        format!("{file}:2: not a tunnel name: nnnn"),
        format!("{file}:3: a quote (') is not closed"),
        format!("{file}:4: tunnel good is already on line 1"),
        format!("{file}:5: a setting for tunnel nobody, which is not in the list"),
    ] {
        assert!(o.stderr.contains(&wrong), "{wrong} in {}", o.stderr);
    }
    assert!(o.stderr.lines().all(|l| l.len() < 200), "{}", o.stderr);
    let o = p.run(&["start"]);
    assert_eq!(o.code, 0);
    assert_eq!(p.count("good"), 1);
    let made: Vec<_> = fs::read_dir(&p.run)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| !f.starts_with("good.") && f != ".lock" && f != ".on")
        .collect();
    assert!(made.is_empty(), "{made:?}");
    assert_eq!(p.run(&["stop"]).code, 0);
}

/// A list that is not there, a folder, one that cannot be read: said
/// plainly, exit 1, nothing started, nothing made.
#[test]
fn an_unreadable_list() {
    let p = Place::new("tl-unread");
    for command in ["start", "check", "reload", "restart"] {
        let o = p.run(&[command]);
        assert_eq!(o.code, 1, "{command}");
        assert!(
            o.stderr.contains(&format!(
                "cannot read the tunnel list {}: No such file or directory",
                p.list.display()
            )),
            "{command}: {}",
            o.stderr
        );
    }
    assert!(!p.run.exists(), "the run folder was made");
    fs::create_dir_all(&p.list).unwrap();
    let o = p.run(&["start"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("not a regular file"), "{}", o.stderr);
    fs::remove_dir(&p.list).unwrap();
    if is_root() {
        // As nobody, a list only root may read.
        p.write(&line("x"));
        fs::set_permissions(&p.list, fs::Permissions::from_mode(0o600)).unwrap();
        // A copy of the program that nobody may run, in the test's folder.
        let program = p.fake.dir.path("autossh-tunnels");
        copy_executable(Path::new(tunnels_bin()), &program);
        let mut c = p.fake.command(program.to_str().unwrap(), &["check"]);
        c.env("AUTOSSH_TUNNELS", &p.list).uid(65534).gid(65534);
        let o = run_bounded(c, SLOW_LIMIT);
        assert_eq!(o.status.code(), Some(1));
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(said.contains("Permission denied"), "{said}");
    }
    assert!(p.autossh_pids().is_empty());
}

/// reload: new tunnels start, removed ones stop, changed ones restart, and
/// the others keep their autossh.
#[test]
fn reload_touches_only_what_changed() {
    let p = Place::new("tl-reload");
    p.write(&(line("same") + &line("changed") + &line("removed")));
    assert_eq!(p.run(&["start"]).code, 0);
    let (same, changed, removed) = (p.pid("same"), p.pid("changed"), p.pid("removed"));
    p.write(&format!(
        "{}tunnel changed -M 0 -N me@elsewhere\n{}",
        line("same"),
        line("new")
    ));
    let o = p.run(&["reload"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains(&format!("same: unchanged (pid {same})")),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("removed: stopped"), "{}", o.stdout);
    assert!(o.stdout.contains("changed: restarted"), "{}", o.stdout);
    assert!(o.stdout.contains("new: started"), "{}", o.stdout);
    assert_eq!(p.pid("same"), same);
    assert!(alive(same));
    assert!(!alive(changed) && !alive(removed));
    assert_eq!(p.ssh_argv_of("changed"), ["-N", "me@elsewhere"]);
    assert_eq!(p.count("removed"), 0);
    // A setting counts as a change too; the rest stays.
    p.write(&format!(
        "{}tunnel changed -M 0 -N me@elsewhere\n{}env new AUTOSSH_POLL=77\n",
        line("same"),
        line("new")
    ));
    let new = p.pid("new");
    let o = p.run(&["reload"]);
    assert!(o.stdout.contains("new: restarted"), "{}", o.stdout);
    assert!(!alive(new));
    assert_eq!(p.pid("same"), same);

    // restart NAME: that one only.
    let changed = p.pid("changed");
    let o = p.run(&["restart", "changed"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(!alive(changed) && p.count("changed") == 1);
    assert_eq!(p.pid("same"), same);
    assert_eq!(p.run(&["restart", "nosuch"]).code, 1);
    assert_eq!(p.run(&["stop"]).code, 0);
    assert!(p.autossh_pids().is_empty());
}

/// autossh holds none of the program's descriptors (the lock above all);
/// and a tunnel that cannot start says why.
#[test]
fn autossh_holds_no_lock_and_failures_are_told() {
    let p = Place::new("tl-fds");
    p.write(&(line("a") + "tunnel bad -M 70000 -N me@x\n"));
    let o = p.run(&["start"]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stdout.contains("bad: failed to start: ") && o.stdout.contains("70000"),
        "{}",
        o.stdout
    );
    assert!(!p.pid_file("bad").exists());
    let pid = p.pid("a");
    for fd in fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let target = fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert!(
            !target.to_string_lossy().contains(".lock"),
            "autossh holds {target:?}"
        );
    }
    assert_eq!(p.run(&["stop"]).code, 0);
}

#[test]
fn bad_command_lines_and_settings() {
    let p = Place::new("tl-usage");
    p.write(&line("a"));
    for args in [
        &[][..],
        &["go"],
        &["status", "a", "b"],
        &["restart", "../x"],
    ] {
        let o = p.run(args);
        assert_eq!(o.code, 1, "{args:?}");
        assert!(o.stderr.contains("usage: autossh-tunnels"), "{}", o.stderr);
    }
    let mut c = p.command(&["start"]);
    c.env("AUTOSSH_STOP_WAIT", "soon");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("AUTOSSH_STOP_WAIT"));
    assert!(!p.run.exists());
    let o = p.run(&["--version"]);
    assert_eq!(
        o.stdout,
        format!("autossh-tunnels {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// status, status --json and metrics against the real sshd of the test
/// remote host: a good tunnel up, one whose key the relay refuses, with
/// ssh's own words.
#[test]
fn status_and_metrics_with_a_real_sshd() {
    if !remote::can_run() {
        return;
    }
    let remote = remote::Remote::new();
    let p = Place::new("tl-real");
    let other_key = p.fake.dir.path("refused");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let quoted = |args: Vec<String>| {
        args.iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let good = remote.ssh_args(free_pair());
    let mut refused = remote.ssh_args(free_pair());
    let i = refused.iter().position(|a| a == "-i").unwrap();
    refused[i + 1] = other_key.display().to_string();
    refused.insert(0, "IdentitiesOnly=yes".into());
    refused.insert(0, "-o".into());
    let log = p.fake.log_path();
    p.write(&format!(
        "tunnel good {}\ntunnel refused {}\n\
         env good AUTOSSH_POLL=2\nenv good AUTOSSH_PATH=/usr/bin/ssh\n\
         env refused AUTOSSH_PATH=/usr/bin/ssh\nenv refused AUTOSSH_POLL=2\n\
         env good AUTOSSH_LOGFILE={}\nenv refused AUTOSSH_LOGFILE={}\n",
        quoted(good),
        quoted(refused),
        log.display(),
        log.display(),
    ));
    let o = p.run(&["start"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let mut status = String::new();
    let ok = wait_until(SLOW_LIMIT, || {
        status = p.run(&["status"]).stdout;
        status.contains("good: up since ")
            && status.contains("(tested ")
            && status.contains("Permission denied (publickey")
    });
    assert!(ok, "{status}\n{:?}", p.fake.messages());
    let refused_line = status.lines().find(|l| l.starts_with("refused: ")).unwrap();
    assert!(
        refused_line.starts_with("refused: waiting (retry ")
            || refused_line.starts_with("refused: down since "),
        "{refused_line}"
    );
    // The refused tunnel's reason is ssh's words while it waits, and the
    // line of its restart while the next ssh tries: read until the words.
    let mut json = serde_json::Value::Null;
    let said = wait_until(SLOW_LIMIT, || {
        json = serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
        json["tunnels"][1]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Permission denied (publickey"))
    });
    assert!(said, "{json}");
    let tunnels = json["tunnels"].as_array().unwrap();
    assert_eq!(tunnels[0]["name"], "good");
    assert_eq!(tunnels[0]["state"], "up");
    assert_eq!(tunnels[0]["last_test_passed"], true);
    assert!(tunnels[0]["ssh_pid"].as_u64().is_some());
    assert_eq!(tunnels[1]["running"], true);
    assert!(tunnels[1]["reason"]
        .as_str()
        .unwrap()
        .contains("Permission denied (publickey"));
    let metrics = p.run(&["metrics"]).stdout;
    for line in [
        "autossh_tunnel_up{tunnel=\"good\"} 1\n",
        "autossh_tunnel_up{tunnel=\"refused\"} 0\n",
        "autossh_tunnel_state{tunnel=\"good\",state=\"up\"} 1\n",
        "autossh_tunnel_last_test_passed{tunnel=\"good\"} 1\n",
        "autossh_tunnels_list_problems 0\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(metrics.contains("autossh_tunnel_starts_total{tunnel=\"refused\"} "));
    // Exactly one HELP and TYPE per family, as the text format wants.
    for family in ["autossh_tunnel_up", "autossh_tunnel_state"] {
        assert_eq!(metrics.matches(&format!("# TYPE {family} ")).count(), 1);
    }
    assert_eq!(p.run(&["stop"]).code, 0);
    assert!(p.autossh_pids().is_empty());
}

/// Descriptors that autossh-tunnels inherits beyond stdin, stdout and stderr
/// stay with it: `autossh-tunnels start 3>&1 | cat` ends, since no autossh
/// holds the pipe.
#[test]
fn inherited_descriptors_are_not_handed_on() {
    let p = Place::new("tun-fds");
    p.write("tunnel one -M 0 -N me@one\n");
    let mut fds = [0; 2];
    // SAFETY: a pipe into a local array; both ends are owned below. Both
    // close-on-exec: no other test's child may hold them.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = (fds[0], fds[1]);
    let mut c = p.command(&["start"]);
    // SAFETY: dup2 between fork and exec, async-signal-safe: the pipe's
    // write end as descriptor 3, not close-on-exec.
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(write, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = run_bounded(c, SLOW_LIMIT);
    // SAFETY: our own descriptor, closed once.
    unsafe { libc::close(write) };
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(p.count("one"), 1);
    // SAFETY: the read end, owned from here on.
    let mut pipe = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(read) };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut pipe, &mut rest);
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(LIMIT).is_ok(),
        "the tunnel's autossh holds the pipe autossh-tunnels inherited"
    );
    assert_eq!(p.run(&["stop"]).code, 0);
}

/// Whether `text` is what Prometheus' text format allows of a sample line's
/// labels: `{name="value",...}` with only `\\`, `\"` and `\n` escaped.
fn labels_are_well_formed(line: &str) -> bool {
    let Some(open) = line.find('{') else {
        return true;
    };
    let mut chars = line[open + 1..].chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect::<String>();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
        if chars.next() != Some('"') {
            return false;
        }
        loop {
            match chars.next() {
                Some('\\') => {
                    if !matches!(chars.next(), Some('\\' | '"' | 'n')) {
                        return false;
                    }
                }
                Some('"') => break,
                Some(_) => {}
                None => return false,
            }
        }
        match chars.next() {
            Some(',') => continue,
            Some('}') => return chars.next() == Some(' '),
            _ => return false,
        }
    }
}

/// An autossh that runs with a pid file in the run folder though not in the
/// list is shown under the pid file's name, whatever it holds: `metrics`
/// escapes it, so that the whole scrape stays readable.
#[test]
fn metrics_escape_what_a_name_holds() {
    let p = Place::new("tun-metrics");
    p.write("tunnel good -M 0 -N me@good\n");
    assert_eq!(p.run(&["start"]).code, 0);
    fs::create_dir_all(&p.run).unwrap();
    let odd = "we\"ird\\one";
    let mut stray = p.fake.autossh(&["-f", "-M", "0", "-N", "me@stray"]);
    stray
        .env("AUTOSSH_PIDFILE", p.pid_file(odd))
        .env("FAKE_PLAN", "hang");
    assert!(run_bounded(stray, LIMIT).status.success());
    assert!(wait_until(LIMIT, || p.pid(odd) > 0 && p.count(odd) == 1));
    let metrics = p.run(&["metrics"]).stdout;
    assert!(
        metrics.contains("autossh_tunnel_up{tunnel=\"we\\\"ird\\\\one\"} 0\n"),
        "{metrics}"
    );
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        assert!(labels_are_well_formed(line), "{line:?} in\n{metrics}");
    }
    assert_eq!(p.run(&["stop"]).code, 0);
    assert!(p.autossh_pids().is_empty());
}

/// A FIFO where a tunnel's state or definition file belongs (put there by
/// whoever can write in the run folder) is refused at once: status, its
/// JSON, metrics and reload all answer, and stop still stops.
#[test]
fn a_fifo_in_the_run_folder_hangs_nothing() {
    let p = Place::new("tun-fifo");
    p.write("tunnel one -M 0 -N me@one\n");
    assert_eq!(p.run(&["start"]).code, 0);
    let autossh = p.pid("one");
    assert!(autossh > 0);
    for ext in ["state", "tunnel"] {
        let path = p.run.join(format!("one.{ext}"));
        let _ = fs::remove_file(&path);
        mkfifo(&path);
    }
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["status", "one"],
        &["metrics"],
        &["reload"],
    ] {
        let o = p.run(args);
        assert!(
            o.code == 0 || o.code == 3,
            "{args:?}: {} {}",
            o.code,
            o.stderr
        );
    }
    let o = p.run(&["stop"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!alive(autossh));
}

/// A pid file whose pid now belongs to another user's process that has the
/// pid file's path in its environment (as an autossh of that user could):
/// not believed, not signalled. A tunnel is ours only when its process runs
/// as the user who runs the tunnels.
#[test]
fn another_users_process_is_not_a_tunnel() {
    if !need_root() {
        return;
    }
    let p = Place::new("tl-user");
    p.write(&line("one"));
    fs::create_dir_all(&p.run).unwrap();
    let mut c = Command::new("sleep");
    c.arg("60")
        .env("AUTOSSH_PIDFILE", p.pid_file("one"))
        .stdin(Stdio::null());
    as_nobody(&mut c);
    let stranger = Running::start(c);
    fs::write(p.pid_file("one"), format!("{}\n", stranger.pid)).unwrap();
    let o = p.run(&["status", "one"]);
    assert_eq!(o.code, 3, "{}", o.stdout);
    assert!(o.stdout.contains("one: stopped"), "{}", o.stdout);
    let o = p.run(&["stop"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(alive(stranger.pid), "stop signalled another user's process");
    fs::write(p.pid_file("one"), format!("{}\n", stranger.pid)).unwrap();
    let o = p.run(&["start"]);
    assert!(o.stdout.contains("one: started"), "{}", o.stdout);
    assert_ne!(p.pid("one"), stranger.pid);
    assert!(alive(stranger.pid));
    assert_eq!(p.run(&["stop"]).code, 0);
    assert!(alive(stranger.pid), "stop signalled another user's process");
}

/// A run folder that others can write in, or that another user owns, is
/// not used: start says why, and starts and leaves nothing.
#[test]
fn a_foreign_run_folder_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let p = Place::new("tl-foreign");
    p.write(&line("one"));
    fs::create_dir_all(&p.run).unwrap();
    fs::set_permissions(&p.run, fs::Permissions::from_mode(0o777)).unwrap();
    let o = p.run(&["start"]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stderr
            .contains("can be written by others (mode 0777); nothing changed"),
        "{}",
        o.stderr
    );
    assert_eq!(p.count("one"), 0);
    assert!(!p.run.join(".lock").exists());
    fs::set_permissions(&p.run, fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&p.run, Some(65534), Some(65534)).unwrap();
        let o = p.run(&["start"]);
        assert_eq!(o.code, 1, "{}", o.stdout);
        assert!(
            o.stderr
                .contains("belongs to another user (uid 65534, not 0)"),
            "{}",
            o.stderr
        );
        assert_eq!(p.count("one"), 0);
        std::os::unix::fs::chown(&p.run, Some(0), Some(0)).unwrap();
    }
    // The folder as it should be, with an earlier version's lock that
    // anyone could read (and so hold): it runs, and the lock is made
    // private.
    let lock = p.run.join(".lock");
    fs::write(&lock, "").unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o644)).unwrap();
    let o = p.run(&["start"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(p.count("one"), 1);
    assert_eq!(
        fs::metadata(&lock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Another user's lock is not taken as ours.
    if is_root() {
        std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
        let o = p.run(&["stop"]);
        assert_eq!(o.code, 1, "{}", o.stdout);
        assert!(
            o.stderr.contains("not this user's own file"),
            "{}",
            o.stderr
        );
        assert_eq!(p.count("one"), 1);
        std::os::unix::fs::chown(&lock, Some(0), Some(0)).unwrap();
    }
    assert_eq!(p.run(&["stop"]).code, 0);
}

/// Whether the kernel is at least `major.minor` (uname's release).
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

/// A monitoring job that runs as another user than the tunnels' (here
/// nobody, the tunnels root's) cannot read autossh's environment: status
/// tells by what it can read, the pid file's owner and age, and says up.
/// Where /proc hides other users' processes from it, it says unknown, with
/// why, and exit 4: never stopped.
#[test]
fn another_user_is_told_the_truth() {
    if !need_root() {
        return;
    }
    let p = Place::new("tl-monitor");
    p.write(&line("one"));
    assert_eq!(p.run(&["start"]).code, 0);
    assert!(wait_until(LIMIT, || p
        .run(&["status"])
        .stdout
        .starts_with("one: up")));
    let autossh = p.pid("one");
    // The program where nobody may run it.
    let bin = p.fake.dir.path("autossh-tunnels");
    copy_executable(Path::new(tunnels_bin()), &bin);
    let as_nobody = |args: &[&str], hidden: bool| -> Out {
        let drop = "setpriv --reuid=65534 --regid=65534 --clear-groups --";
        let mut c = Command::new("unshare");
        if hidden {
            // A /proc of its own (Linux 5.8 and later: a new instance, the
            // host's untouched) that hides other users' processes.
            c.args(["-m", "--propagation", "private", "sh", "-c"])
                .arg(format!(
                    "mount -t proc -o hidepid=2 proc /proc && exec {drop} \"$@\""
                ));
        } else {
            c.args(["sh", "-c"]).arg(format!("exec {drop} \"$@\""));
        }
        c.arg("sh")
            .arg(&bin)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("AUTOSSH_TUNNELS", &p.list)
            .env("AUTOSSH_RUN_DIR", &p.run)
            .stdin(Stdio::null());
        let o = run_bounded(c, SLOW_LIMIT);
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    };
    let o = as_nobody(&["status"], false);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.starts_with("one: up"), "{}", o.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&as_nobody(&["status", "--json"], false).stdout).unwrap();
    assert_eq!(json["tunnels"][0]["state"], "up", "{json}");
    assert_eq!(json["tunnels"][0]["pid"], autossh, "{json}");
    let metrics = as_nobody(&["metrics"], false).stdout;
    assert!(
        metrics.contains("autossh_tunnel_up{tunnel=\"one\"} 1\n"),
        "{metrics}"
    );
    if kernel_at_least(5, 8) {
        let o = as_nobody(&["status"], true);
        assert_eq!(o.code, 4, "{}{}", o.stdout, o.stderr);
        assert_eq!(
            o.stdout,
            format!("one: unknown: pid {autossh} runs, but this user cannot see its process\n")
        );
        let json: serde_json::Value =
            serde_json::from_str(&as_nobody(&["status", "--json"], true).stdout).unwrap();
        assert_eq!(json["tunnels"][0]["state"], "unknown", "{json}");
        assert_eq!(json["tunnels"][0]["running"], serde_json::Value::Null);
        let metrics = as_nobody(&["metrics"], true).stdout;
        assert!(
            metrics.contains("autossh_tunnel_state{tunnel=\"one\",state=\"unknown\"} 1\n"),
            "{metrics}"
        );
    } else {
        eprintln!("skipped: a /proc of its own needs Linux 5.8");
    }
    // Nothing of this touched the tunnel.
    assert!(alive(autossh));
    assert_eq!(p.run(&["stop"]).code, 0);
}

/// add: the install wizard's tunnel, checked as the app checks its form
/// (a host the shell's check let through is refused with the app's words),
/// added to the list, and started only while the tunnels are on.
#[test]
fn add_checks_as_the_app_does_and_starts_only_while_on() {
    let p = Place::new("tl-add");
    let list = "# the package's list\ntunnel hand -M 0 -N me@hand.example\n";
    p.write(list);
    for (host, said) in [
        ("relay_1", "host: not a host name or address"),
        ("relay.", "host: not a host name or address"),
        ("-oProxyCommand=id", "host: not a host name or address"),
    ] {
        let o = p.run(&[
            "add",
            "first",
            "-N",
            "-p",
            "22",
            "-R",
            "2200:localhost:22",
            &format!("u@{host}"),
        ]);
        assert_eq!(o.code, 1, "{host}: {}", o.stdout);
        assert!(
            o.stderr
                .starts_with(&format!("autossh-tunnels: first not added: {said}")),
            "{host}: {}",
            o.stderr
        );
        assert_eq!(fs::read_to_string(&p.list).unwrap(), list);
    }
    let o = p.run(&["add", "first", "-N", "-o", "ProxyCommand=x", "relay"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("arguments: the app's tunnels are -N"),
        "{}",
        o.stderr
    );
    let o = p.run(&["add", "../x", "-N", "-R", "1:h:2", "relay"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("not a tunnel name"), "{}", o.stderr);

    // Good: in the list, as the app writes it; not started, the tunnels
    // being stopped.
    let args = [
        "-N",
        "-p",
        "22",
        "-R",
        "2200:localhost:22",
        "u@relay.example",
    ];
    let o = p.run(&[&["add", "first"][..], &args].concat());
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert_eq!(o.stdout, "first: not started: the tunnels are stopped\n");
    assert_eq!(
        fs::read_to_string(&p.list).unwrap(),
        format!("{list}tunnel first -N -R 2200:localhost:22 u@relay.example\n")
    );
    assert_eq!(p.pid("first"), 0);
    assert_eq!(p.pid("hand"), 0);
    let o = p.run(&[&["add", "first"][..], &args].concat());
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("first not added: a tunnel first is already in the list"),
        "{}",
        o.stderr
    );
    // On: the next one starts, alone.
    assert_eq!(p.run(&["start"]).code, 0);
    let hand = p.pid("hand");
    let o = p.run(&["add", "second", "-N", "-L", "8080:localhost:80", "relay"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.starts_with("second: started (pid "),
        "{}",
        o.stdout
    );
    assert!(alive(p.pid("second")));
    assert_eq!(p.pid("hand"), hand);
    assert_eq!(p.run(&["stop"]).code, 0);
    assert!(p.autossh_pids().is_empty());
}
