//! Supervision, black-box with the fake ssh (SPEC §5, §7, §8).

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;

fn start(fake: &Fake, plan: &str, env: &[(&str, &str)]) -> Running {
    let mut c = fake.autossh(&["-M", "0", "-N", "host"]);
    c.env("FAKE_PLAN", plan);
    for (k, v) in env {
        c.env(k, v);
    }
    Running::start(c)
}

fn wait_runs(fake: &Fake, n: usize) -> bool {
    wait_until(LIMIT, || fake.runs() >= n)
}

/// The pid of the ssh now running (the last one started), once it runs.
fn current_ssh(fake: &Fake) -> i32 {
    assert!(wait_runs(fake, 1));
    *fake.pids().last().unwrap()
}

#[test]
fn exit_status_rules() {
    // (plan, gate, expected exit, expected runs, last message)
    let cases: &[(&str, &str, i32, usize, &str)] = &[
        (
            "exit:0",
            "0",
            0,
            1,
            "ssh exited with status 0; autossh exiting",
        ),
        (
            "exit:3",
            "0",
            1,
            1,
            "ssh exited with status 3; autossh exiting",
        ),
        ("exit:1", "0", 0, 3, "max start count reached; exiting"),
        ("exit:2", "0", 0, 3, "max start count reached; exiting"),
        ("exit:255", "0", 0, 3, "max start count reached; exiting"),
        (
            "exit:255",
            "30",
            1,
            1,
            "ssh exited prematurely with status 255; autossh exiting",
        ),
        (
            "exit:0",
            "30",
            1,
            1,
            "ssh exited prematurely with status 0; autossh exiting",
        ),
        (
            "sleep:2:1",
            "1",
            1,
            1,
            "ssh exited with status 1; autossh exiting",
        ),
        (
            "sleep:2:255 exit:1",
            "1",
            0,
            3,
            "max start count reached; exiting",
        ),
        ("kill:KILL", "30", 0, 3, "max start count reached; exiting"),
    ];
    for &(plan, gate, code, runs, last) in cases {
        let fake = Fake::new("rules");
        let mut r = start(
            &fake,
            plan,
            &[("AUTOSSH_GATETIME", gate), ("AUTOSSH_MAXSTART", "3")],
        );
        assert_eq!(r.wait(LIMIT), Some(code), "{plan} gate {gate}");
        assert_eq!(fake.runs(), runs, "{plan} gate {gate}");
        let m = fake.messages();
        assert_eq!(m.last().map(String::as_str), Some(last), "{plan}: {m:?}");
        assert_eq!(m[1], "starting ssh (count 1 of 3)");
    }
}

#[test]
fn signal_death_is_logged_and_restarted() {
    let fake = Fake::new("sigdeath");
    let mut r = start(&fake, "kill:SEGV exit:0", &[("AUTOSSH_GATETIME", "0")]);
    assert_eq!(r.wait(LIMIT), Some(0));
    let m = fake.messages();
    assert!(
        m.contains(&"ssh exited on signal 11, restarting ssh".to_string()),
        "{m:?}"
    );
    assert_eq!(fake.runs(), 2);
}

#[test]
fn max_start_zero_starts_nothing() {
    let fake = Fake::new("max0");
    let mut r = start(&fake, "exit:0", &[("AUTOSSH_MAXSTART", "0")]);
    assert_eq!(r.wait(LIMIT), Some(0));
    assert_eq!(fake.runs(), 0);
    assert_eq!(
        fake.messages(),
        strings(&[
            "port set to 0, monitoring disabled",
            "max start count reached; exiting"
        ])
    );
}

#[test]
fn exit_signals_stop_ssh() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
        let fake = Fake::new("exitsig");
        let mut r = start(&fake, "hang", &[]);
        let ssh = current_ssh(&fake);
        assert!(fake.wait_log("ssh child pid is", LIMIT));
        r.signal(sig);
        assert_eq!(r.wait(LIMIT), Some(1), "signal {sig}");
        assert!(!alive(ssh), "ssh survived signal {sig}");
        assert_eq!(
            fake.messages().last().unwrap(),
            &format!("received signal to exit ({sig})")
        );
    }
}

#[test]
fn usr1_restarts_hup_and_usr2_do_nothing() {
    let fake = Fake::new("usr1");
    let mut r = start(&fake, "hang", &[]);
    let first = current_ssh(&fake);
    assert!(fake.wait_log("ssh child pid is", LIMIT));
    r.signal(libc::SIGHUP);
    r.signal(libc::SIGUSR2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.runs(), 1);
    assert!(alive(first));
    r.signal(libc::SIGUSR1);
    assert!(wait_runs(&fake, 2));
    assert!(wait_until(LIMIT, || !alive(first)));
    assert!(fake.wait_log("starting ssh (count 2)", LIMIT));
    assert!(fake.count_log("signalled to kill and restart ssh") == 1);
    // The killed ssh's own exit is not reported as a failure.
    assert_eq!(fake.count_log("exited on signal"), 0);
    assert_eq!(children_of(r.pid).1.len(), 0);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
}

#[test]
fn stubborn_ssh_is_killed_after_grace() {
    let fake = Fake::new("stubborn");
    let mut r = start(&fake, "stubborn", &[]);
    let ssh = current_ssh(&fake);
    assert!(fake.wait_log("ssh child pid is", LIMIT));
    // Let the shell reach its exec, so SIGTERM is really ignored.
    assert!(wait_until(LIMIT, || fs::read_to_string(format!(
        "/proc/{ssh}/comm"
    ))
    .is_ok_and(|c| c.trim() == "sleep")));
    let asked = Instant::now();
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
    let took = asked.elapsed();
    // SIGKILL after the 5 s grace: not before it, and not a whole grace
    // later (upstream waits for ever).
    assert!(took >= Duration::from_millis(4900), "{took:?}");
    assert!(took < Duration::from_secs(9), "{took:?}");
    assert!(!exists(ssh) || !alive(ssh));
    assert!(fake.count_log("sending SIGKILL") == 1);
}

#[test]
fn stopped_ssh_is_continued_and_stopped() {
    let fake = Fake::new("stopped");
    let mut r = start(&fake, "hang", &[]);
    let ssh = current_ssh(&fake);
    assert!(fake.wait_log("ssh child pid is", LIMIT));
    signal(ssh, libc::SIGSTOP);
    r.signal(libc::SIGTERM);
    // Continued, it takes the SIGTERM at once; left stopped, it would last
    // until the SIGKILL 5 s later.
    assert_eq!(r.wait(Duration::from_secs(4)), Some(1));
    assert!(!alive(ssh));
}

#[test]
fn ssh_dies_with_autossh() {
    let fake = Fake::new("pdeath");
    let r = start(&fake, "hang", &[]);
    let ssh = current_ssh(&fake);
    assert!(fake.wait_log("ssh child pid is", LIMIT));
    assert!(wait_until(LIMIT, || fs::read_to_string(format!(
        "/proc/{ssh}/comm"
    ))
    .is_ok_and(|c| c.trim() == "sleep")));
    r.signal(libc::SIGKILL);
    assert!(wait_until(LIMIT, || !alive(ssh)), "ssh outlived autossh");
}

#[test]
fn lifetime_ends_the_run() {
    let fake = Fake::new("lifetime");
    let began = Instant::now();
    let mut r = start(&fake, "hang", &[("AUTOSSH_MAXLIFETIME", "2")]);
    let ssh = current_ssh(&fake);
    assert_eq!(r.wait(LIMIT), Some(0));
    let lived = began.elapsed();
    assert!(lived >= Duration::from_secs(2), "{lived:?}");
    // Ended by its own deadline: the next other one is the poll, 600 s.
    assert!(lived < Duration::from_secs(6), "{lived:?}");
    assert!(!alive(ssh));
    assert_eq!(
        fake.messages().last().unwrap(),
        "exceeded maximum time to live, shutting down"
    );
}

#[test]
fn backoff_waits_and_can_be_prodded() {
    let fake = Fake::new("backoff");
    let mut r = start(
        &fake,
        "exit:255",
        &[("AUTOSSH_GATETIME", "0"), ("AUTOSSH_LOGLEVEL", "7")],
    );
    // Six quick starts, a 2 s wait, the seventh, then an 8 s wait.
    assert!(fake.wait_log("sleeping for grace time 8 secs", LIMIT));
    assert_eq!(fake.runs(), 7);
    assert_eq!(fake.count_log("sleeping for grace time 2 secs"), 1);
    assert!(fake
        .messages()
        .contains(&"checking for grace period, tries = 7".to_string()));
    // HUP prods it: the eighth starts at once (not after the 8 s wait), and
    // the count is kept.
    r.signal(libc::SIGHUP);
    assert!(fake.wait_log("sleeping for grace time 18 secs", Duration::from_secs(6)));
    assert_eq!(fake.runs(), 8);
    r.signal(libc::SIGUSR2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fake.runs(), 8);
    // So does USR1, where the wait would be 18 s.
    r.signal(libc::SIGUSR1);
    assert!(fake.wait_log("sleeping for grace time 32 secs", Duration::from_secs(12)));
    assert_eq!(fake.runs(), 9);
    // TERM ends the 32 s wait.
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(Duration::from_secs(20)), Some(1));
    assert_eq!(
        fake.messages().last().unwrap(),
        "received signal to exit (15)"
    );
    assert_eq!(children_of(r.pid).1.len(), 0);
}

#[test]
fn exec_failure_exits_without_retry() {
    let fake = Fake::new("exec");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_PATH", "/nonexistent/ssh")
        .env("AUTOSSH_GATETIME", "0");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    let m = fake.messages();
    assert_eq!(
        m.iter().filter(|l| l.starts_with("starting ssh")).count(),
        1
    );
    assert_eq!(
        m.last().unwrap(),
        "/nonexistent/ssh: No such file or directory"
    );
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("autossh: /nonexistent/ssh: No such file or directory"));
}

#[test]
fn pid_file_written_and_removed() {
    let fake = Fake::new("pidfile");
    let path = fake.dir.path("autossh.pid");
    let mut r = start(
        &fake,
        "hang",
        &[("AUTOSSH_PIDFILE", path.to_str().unwrap())],
    );
    assert!(wait_until(LIMIT, || path.exists()));
    assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", r.pid));
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
    assert!(!path.exists());
}

#[test]
fn pid_file_never_through_a_symlink_nor_someone_elses() {
    let fake = Fake::new("pidlink");
    let target = fake.dir.path("target");
    fs::write(&target, "keep\n").unwrap();
    let link = fake.dir.path("link.pid");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut r = start(
        &fake,
        "hang",
        &[("AUTOSSH_PIDFILE", link.to_str().unwrap())],
    );
    assert_eq!(r.wait(LIMIT), Some(1));
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep\n");
    assert_eq!(fake.runs(), 0);
    assert_eq!(
        fake.messages().last().unwrap(),
        &format!(
            "cannot open pid file \"{}\": {}",
            link.display(),
            os_words("Too many levels of symbolic links")
        )
    );

    // A pid file that another process has since taken over stays.
    let fake = Fake::new("pidother");
    let path = fake.dir.path("p.pid");
    let mut r = start(
        &fake,
        "hang",
        &[("AUTOSSH_PIDFILE", path.to_str().unwrap())],
    );
    assert!(wait_until(LIMIT, || path.exists()));
    fs::write(&path, "1\n").unwrap();
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
    assert_eq!(fs::read_to_string(&path).unwrap(), "1\n");
}

#[test]
fn background_detaches_after_checks() {
    let fake = Fake::new("bg");
    let pid_file = fake.dir.path("bg.pid");
    // A bad variable fails in the foreground, with nothing left behind.
    let mut c = fake.autossh(&["-f", "-M", "0", "host"]);
    c.env("AUTOSSH_POLL", "x").env("AUTOSSH_PIDFILE", &pid_file);
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    assert!(!pid_file.exists());

    // -f sets the gate time to 0: exit 1 on the first start restarts.
    let mut c = fake.autossh(&["-fN", "-M", "0", "host"]);
    c.env("FAKE_PLAN", "exit:1 hang")
        .env("AUTOSSH_PIDFILE", "bg.pid")
        .current_dir(&fake.dir.0);
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0));
    assert!(wait_until(LIMIT, || pid_file.exists() && fake.runs() >= 2));
    let daemon: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(daemon));
    // Detached: the leader of a session of its own, in /, stdio on /dev/null.
    let stat = fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // After the name: state, ppid, pgrp, session.
    assert_eq!(fields[3], daemon.to_string(), "session of {daemon}: {stat}");
    assert_eq!(fields[2], daemon.to_string(), "process group of {daemon}");
    assert_eq!(
        fs::read_link(format!("/proc/{daemon}/cwd")).unwrap(),
        std::path::Path::new("/")
    );
    for fd in 0..3 {
        let to = fs::read_link(format!("/proc/{daemon}/fd/{fd}")).unwrap();
        assert_eq!(to, std::path::Path::new("/dev/null"), "fd {fd}");
    }
    let ssh = current_ssh(&fake);
    assert_eq!(fake.argv_of(ssh), strings(&["-N", "host"]));
    assert!(fake.wait_log("ssh exited with error status 1; restarting ssh", LIMIT));
    signal(daemon, libc::SIGTERM);
    assert!(wait_until(LIMIT, || !exists(daemon)));
    assert!(wait_until(LIMIT, || !alive(ssh)));
    assert!(!pid_file.exists());
}

#[test]
fn ssh_gets_only_stdio() {
    let fake = Fake::new("fds");
    // Hand autossh an extra open descriptor, as a careless parent would.
    let mut c = fake.command(
        "/bin/sh",
        &[
            "-c",
            &format!("exec 7</dev/null 9>&2; exec {} -M 0 host", autossh_bin()),
        ],
    );
    c.env("FAKE_PLAN", "fds").env("AUTOSSH_GATETIME", "0");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0));
    fake.assert_ssh_got_only_stdio();
}

#[test]
fn ssh_starts_with_default_signals() {
    let fake = Fake::new("sigs");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("FAKE_PLAN", "sigs").env("AUTOSSH_GATETIME", "0");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0));
    let pid = *fake.pids().last().unwrap();
    let masks = fs::read_to_string(fake.dir.path(&format!("sigs.{pid}"))).unwrap();
    // Nothing blocked, nothing ignored (SIGPIPE is ignored only in autossh).
    // The C library's own real-time signals (32, 33) are not ours to judge.
    let classic = |name: &str| {
        let line = masks.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap() & 0x7fff_ffff
    };
    assert_eq!(classic("SigBlk"), 0, "{masks}");
    assert_eq!(classic("SigIgn"), 0, "{masks}");
}

#[test]
fn closed_stdio_is_not_filled_by_our_files() {
    let fake = Fake::new("closedstdio");
    // Started with stdin and stderr closed, as some init scripts do (autossh
    // puts /dev/null there before its own files can take those numbers).
    let mut c = fake.command(
        "/bin/sh",
        &["-c", &format!("exec {} -M 0 host <&- 2>&-", autossh_bin())],
    );
    c.env("FAKE_PLAN", "stdio").env("AUTOSSH_GATETIME", "0");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0));
    let ssh = *fake.pids().last().unwrap();
    let links = fs::read_to_string(fake.dir.path(&format!("stdio.{ssh}"))).unwrap();
    // stdin /dev/null; stderr the pipe autossh reads ssh's words from, since
    // its own is /dev/null.
    let (stdin, stderr) = links.split_once('\n').unwrap();
    assert_eq!(stdin, "/dev/null");
    assert!(stderr.starts_with("pipe:["), "{links}");
    assert!(fake.log_text().contains("ssh exited with status 0"));
}

/// A poll that fails for good (here: EINVAL, more descriptors polled than
/// the limit, which is lowered under the running autossh) is fatal: ssh is
/// stopped, the error logged once, exit 1; no loop that floods the log.
#[test]
fn a_poll_that_fails_for_good_ends_the_run() {
    let fake = Fake::new("pollfail");
    let mut r = start(&fake, "hang", &[]);
    let ssh = current_ssh(&fake);
    assert!(fake.wait_log("ssh child pid is", LIMIT));
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads the new limit from `none` and writes nothing.
    let set = unsafe { libc::prlimit(r.pid, libc::RLIMIT_NOFILE, &none, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    // HUP does nothing but wake the poll, which then fails.
    r.signal(libc::SIGHUP);
    assert_eq!(r.wait(LIMIT), Some(1));
    assert!(wait_until(LIMIT, || !alive(ssh)), "ssh was left running");
    assert_eq!(fake.count_log("poll: "), 1, "{:?}", fake.messages());
    assert_eq!(
        fake.messages().last().map(String::as_str),
        Some("poll: Invalid argument")
    );
}

/// A pid file that is a FIFO: refused at once rather than waited on in
/// open(2), where no signal could end autossh.
#[test]
fn a_pid_file_that_is_a_fifo_is_refused_at_once() {
    let fake = Fake::new("pidfifo");
    let path = fake.dir.path("p.pid");
    mkfifo(&path);
    let mut r = start(
        &fake,
        "hang",
        &[("AUTOSSH_PIDFILE", path.to_str().unwrap())],
    );
    assert_eq!(r.wait(LIMIT), Some(1));
    assert_eq!(fake.runs(), 0);
    assert_eq!(
        fake.messages().last().unwrap(),
        &format!(
            "cannot open pid file \"{}\": No such device or address",
            path.display()
        )
    );
}
