//! Ours beside the original (`/usr/lib/autossh/autossh`, Debian's build of 1.4g)
//! on the same inputs with the same fake ssh: the same ssh argv, exit status and
//! INFO-level log lines, except where SPEC §9 says we differ, which is asserted
//! as the spec says. Skips when the original is missing, except in CI.

mod common;

use std::time::Duration;

use common::*;

/// What one run showed.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: Option<i32>,
    argvs: Vec<Vec<String>>,
    messages: Vec<String>,
}

/// Pids differ between runs: they are replaced by `N`.
fn normalise(message: &str) -> String {
    let mut out = String::new();
    let mut digits = false;
    let after_pid = message.contains("pid is ");
    for c in message.chars() {
        if after_pid && c.is_ascii_digit() && out.ends_with("pid is ") {
            digits = true;
            out.push('N');
            continue;
        }
        if digits && c.is_ascii_digit() {
            continue;
        }
        digits = false;
        out.push(c);
    }
    out
}

fn run_one(program: &str, args: &[&str], env: &[(&str, &str)]) -> Seen {
    let fake = Fake::new("cmp");
    let mut c = fake.command(program, args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = run_bounded(c, LIMIT);
    let background = args
        .iter()
        .any(|a| a.starts_with('-') && a.contains('f') && !a.contains('='));
    if background && o.status.code() == Some(0) {
        // The run goes on after the foreground part returns: let it finish.
        assert!(fake.wait_log("exiting", LIMIT), "{program} {args:?}");
    }
    Seen {
        status: o.status.code(),
        argvs: fake.pids().iter().map(|&p| fake.argv_of(p)).collect(),
        messages: fake.messages().iter().map(|m| normalise(m)).collect(),
    }
}

fn both(args: &[&str], env: &[(&str, &str)]) -> Option<(Seen, Seen)> {
    if !have_reference() {
        return None;
    }
    Some((
        run_one(REFERENCE, args, env),
        run_one(autossh_bin(), args, env),
    ))
}

fn assert_same(args: &[&str], env: &[(&str, &str)]) {
    if let Some((theirs, ours)) = both(args, env) {
        assert_eq!(ours, theirs, "{args:?} {env:?}");
    }
}

#[test]
fn same_ssh_command_lines() {
    let (p, q) = (free_pair(), free_pair());
    let gate = [("AUTOSSH_GATETIME", "0")];
    let lines: &[&[&str]] = &[
        &["-M", "{P}", "-fN", "-R", "2200:localhost:22", "me@nas"],
        &["-M", "0", "-N", "-R", "2200:localhost:22", "me@nas"],
        &["-M", "{P}:7", "-N", "host"],
        &["-M", "{Px}:0x7", "host"],
        &["-M", "{Po}", "-L", "8080:web:80", "-N", "gw"],
        &[
            "-M",
            "0",
            "-o",
            "ServerAliveInterval 30",
            "-NL",
            "8080:web:80",
            "gw",
        ],
        &["-M", "{Q}", "-t", "host", "screen -e^Zz -D -R"],
        &["-NTf", "-M", "0", "-p2222", "user@host"],
        &["-M0", "-L8808:foo:80", "-ofoo=f", "-fi", "key", "host"],
        &["-2", "-fN", "-M", "{P}", "-R", "2200:localhost:22", "u@h"],
        &[
            "-M", "0", "-4", "-C", "-q", "-i", "/k", "-l", "me", "-p", "22", "h",
        ],
        &["-M", "0", "-D", "1080", "-g", "-N", "h"],
        &["-M", "abc", "-M", "0", "host"],
    ];
    for args in lines {
        let filled = fill(args, p, q);
        let args = &refs(&filled)[..];
        if let Some((theirs, ours)) = both(args, &gate) {
            // -f: the backgrounded run may still be going; argv is what counts.
            assert_eq!(ours.argvs, theirs.argvs, "{args:?}");
            assert_eq!(ours.status, theirs.status, "{args:?}");
        }
    }
}

#[test]
fn same_exit_status_rules() {
    for (plan, gate) in [
        ("exit:0", "0"),
        ("exit:1", "0"),
        ("exit:2", "0"),
        ("exit:3", "0"),
        ("exit:255", "0"),
        ("exit:0", "30"),
        ("exit:1", "30"),
        ("exit:255", "30"),
        ("kill:KILL", "30"),
        ("sleep:2:1", "1"),
        ("sleep:2:255 exit:1", "1"),
    ] {
        assert_same(
            &["-M", "0", "-N", "host"],
            &[
                ("FAKE_PLAN", plan),
                ("AUTOSSH_GATETIME", gate),
                ("AUTOSSH_MAXSTART", "3"),
            ],
        );
    }
    assert_same(&["-M", "0", "host"], &[("AUTOSSH_MAXSTART", "0")]);
}

#[test]
fn same_port_errors() {
    let p = free_pair();
    for spec in [
        "abc",
        "-V",
        "65535",
        "65534",
        "0x11170",
        "-1",
        "abc:0",
        "0:x",
        "{P}:",
        ":7",
        " {P}",
        "{P} ",
        "+{P}",
        "99999999999999999999",
        "0:7",
    ] {
        let spec = &fill(&[spec], p, p)[0];
        assert_same(&["-M", spec, "host"], &[("AUTOSSH_GATETIME", "0")]);
    }
}

#[test]
fn same_exit_status_for_bad_variables() {
    let long = "x".repeat(65);
    for (var, value) in [
        ("AUTOSSH_POLL", "x"),
        ("AUTOSSH_POLL", "0"),
        ("AUTOSSH_FIRST_POLL", "0"),
        ("AUTOSSH_GATETIME", "-2"),
        ("AUTOSSH_GATETIME", "1s"),
        ("AUTOSSH_MAXSTART", "-2"),
        ("AUTOSSH_LOGLEVEL", "8"),
        ("AUTOSSH_MESSAGE", long.as_str()),
    ] {
        if let Some((theirs, ours)) = both(&["-V"], &[(var, value)]) {
            // The original sends these to syslog; ours to the configured log.
            assert_eq!(
                (ours.status, theirs.status),
                (Some(1), Some(1)),
                "{var}={value}"
            );
            assert!(ours.argvs.is_empty() && theirs.argvs.is_empty());
        }
    }
}

#[test]
fn same_version_and_usage_errors() {
    if !have_reference() {
        return;
    }
    let fake = Fake::new("usage");
    for args in [
        &["-V"][..],
        &["-V", "-Z"],
        &["-M", "0", "-NV", "h"],
        &["h", "-V"],
    ] {
        let theirs = run_bounded(fake.command(REFERENCE, args), LIMIT);
        let ours = run_bounded(fake.command(autossh_bin(), args), LIMIT);
        assert_eq!(ours.stdout, theirs.stdout, "{args:?}");
        assert_eq!(ours.status.code(), theirs.status.code());
    }
    for args in [&["-Z"][..], &["h", "-p"], &[], &["-M", "0"]] {
        let theirs = run_bounded(fake.command(REFERENCE, args), LIMIT);
        let ours = run_bounded(fake.command(autossh_bin(), args), LIMIT);
        assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
        let first = |o: &std::process::Output, argv0: &str| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .replace(argv0, "ARGV0")
        };
        assert_eq!(
            first(&ours, autossh_bin()),
            first(&theirs, REFERENCE),
            "{args:?}"
        );
    }
}

#[test]
fn same_signal_handling() {
    if !have_reference() {
        return;
    }
    for program in [REFERENCE, autossh_bin()] {
        let fake = Fake::new("sig");
        let mut c = fake.command(program, &["-M", "0", "-N", "host"]);
        c.env("FAKE_PLAN", "hang");
        let mut r = Running::start(c);
        assert!(fake.wait_log("ssh child pid is", LIMIT), "{program}");
        // Signalled once ssh runs: under load the original can lose a child
        // that its restart signal meets before the exec.
        assert!(wait_until(LIMIT, || fake.runs() == 1), "{program}");
        r.signal(libc::SIGUSR1);
        assert!(
            wait_until(LIMIT, || fake.count_log("ssh child pid is") == 2),
            "{program}"
        );
        // Killed from outside once it runs (the original can miss a child that
        // dies at once: that is not what this compares).
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            wait_until(LIMIT, || fake.runs() == 2),
            "{program}: {:?}",
            fake.messages()
        );
        signal(fake.pids()[1], libc::SIGKILL);
        assert!(
            wait_until(LIMIT, || fake.count_log("ssh child pid is") == 3),
            "{program}"
        );
        std::thread::sleep(Duration::from_millis(300));
        r.signal(libc::SIGTERM);
        assert_eq!(r.wait(LIMIT), Some(1), "{program}");
        let messages: Vec<String> = fake.messages().iter().map(|m| normalise(m)).collect();
        assert_eq!(
            messages,
            strings(&[
                "port set to 0, monitoring disabled",
                "starting ssh (count 1)",
                "ssh child pid is N",
                "signalled to kill and restart ssh",
                "starting ssh (count 2)",
                "ssh child pid is N",
                "ssh exited on signal 9, restarting ssh",
                "starting ssh (count 3)",
                "ssh child pid is N",
                "received signal to exit (15)",
            ]),
            "{program}"
        );
    }
}

#[test]
fn same_lifetime() {
    assert_same(
        &["-M", "0", "host"],
        &[
            ("FAKE_PLAN", "hang"),
            ("AUTOSSH_MAXLIFETIME", "2"),
            ("AUTOSSH_POLL", "2"),
        ],
    );
}

// The deliberate differences (SPEC §9), each checked on both.

#[test]
fn differs_remote_command_verbatim() {
    let gate = [("AUTOSSH_GATETIME", "0")];
    if let Some((theirs, ours)) = both(&["-M", "0", "host", "echo", "-v"], &gate) {
        assert_ne!(theirs.argvs, ours.argvs);
        assert_eq!(ours.argvs, vec![strings(&["host", "echo", "-v"])]);
    }
    if let Some((theirs, ours)) = both(&["-M", "0", "-o", "", "host"], &gate) {
        assert_eq!(theirs.argvs, vec![strings(&["-o", "host"])]);
        assert_eq!(ours.argvs, vec![strings(&["-o", "", "host"])]);
    }
    if let Some((theirs, ours)) = both(&["-NM0", "host"], &gate) {
        assert_ne!(theirs.argvs, ours.argvs);
        assert_eq!(ours.argvs, vec![strings(&["-N", "host"])]);
    }
}

#[test]
fn differs_new_openssh_options() {
    if let Some((theirs, ours)) = both(
        &["-M", "0", "-B", "lo", "host"],
        &[("AUTOSSH_GATETIME", "0")],
    ) {
        assert_eq!(theirs.status, Some(1));
        assert!(theirs.argvs.is_empty());
        assert_eq!(ours.status, Some(0));
        assert_eq!(ours.argvs, vec![strings(&["-B", "lo", "host"])]);
    }
}

#[test]
fn differs_autossh_port_over_m() {
    let p = free_pair();
    let port = p.to_string();
    // Debian's build lets -M win; upstream and we let AUTOSSH_PORT win.
    let env = [("AUTOSSH_GATETIME", "0"), ("AUTOSSH_PORT", port.as_str())];
    if let Some((theirs, ours)) = both(&["-M", "0", "host"], &env) {
        assert_eq!(theirs.argvs, vec![strings(&["host"])]);
        assert_eq!(
            ours.argvs,
            vec![fill(
                &[
                    "-L",
                    "{P}:127.0.0.1:{P}",
                    "-R",
                    "{P}:127.0.0.1:{P1}",
                    "host"
                ],
                p,
                p
            )]
        );
    }
}

#[test]
fn differs_negative_and_wide_numbers() {
    for (var, value) in [
        ("AUTOSSH_POLL", "-5"),
        ("AUTOSSH_POLL", "4294967301"),
        ("AUTOSSH_MAXLIFETIME", "-2"),
    ] {
        if let Some((theirs, ours)) = both(&["-V"], &[(var, value)]) {
            assert_eq!(theirs.status, Some(0), "{var}={value}");
            assert_eq!(ours.status, Some(1), "{var}={value}");
        }
    }
    let gate = [("AUTOSSH_GATETIME", "0")];
    if let Some((theirs, ours)) = both(&["-M", "20000:70000", "host"], &gate) {
        assert_eq!(
            theirs.argvs,
            vec![strings(&["-L", "20000:127.0.0.1:70000", "host"])]
        );
        assert_eq!(ours.status, Some(1));
        assert!(ours.argvs.is_empty());
    }
}

#[test]
fn differs_hup_during_backoff() {
    if !have_reference() {
        return;
    }
    let mut outcomes = Vec::new();
    for program in [REFERENCE, autossh_bin()] {
        let fake = Fake::new("hup");
        let mut c = fake.command(program, &["-M", "0", "host"]);
        c.env("FAKE_PLAN", "exit:255").env("AUTOSSH_GATETIME", "0");
        let mut r = Running::start(c);
        // The seventh start waits 2 s, the eighth 8 s.
        assert!(fake.wait_log("(count 7)", LIMIT));
        assert!(wait_until(LIMIT, || fake.runs() == 7));
        // The seventh ssh has ended and been reaped: the wait has begun.
        let seventh = fake.pids()[6];
        assert!(wait_until(LIMIT, || !exists(seventh)), "{program}");
        std::thread::sleep(Duration::from_millis(300));
        // Ours starts the eighth at once, where the wait would end 8 s on.
        r.signal(libc::SIGHUP);
        let died = r.wait(Duration::from_secs(5));
        let runs = fake.runs();
        r.signal(libc::SIGTERM);
        let _ = r.wait(LIMIT);
        outcomes.push((died, runs));
    }
    // The original dies of the signal; ours starts ssh at once.
    assert_eq!(outcomes[0], (Some(128 + libc::SIGHUP), 7));
    assert_eq!(outcomes[1], (None, 8));
}

#[test]
fn differs_no_descriptor_leak() {
    if !have_reference() {
        return;
    }
    let mut lists = Vec::new();
    for program in [REFERENCE, autossh_bin()] {
        let fake = Fake::new("leak");
        let mut c = fake.command(
            "/bin/sh",
            &["-c", &format!("exec 7</dev/null; exec {program} -M 0 host")],
        );
        c.env("FAKE_PLAN", "fds").env("AUTOSSH_GATETIME", "0");
        run_bounded(c, LIMIT);
        lists.push(fake.fds_of(*fake.pids().last().unwrap()));
    }
    assert!(
        lists[0].contains(&"7".to_string()),
        "the original passes fd 7 on: {:?}",
        lists[0]
    );
    assert!(!lists[1].contains(&"7".to_string()), "{:?}", lists[1]);
}
