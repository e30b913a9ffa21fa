//! The command line, the ssh command line and the variables, black-box
//! (SPEC §1–3).

mod common;

use common::*;

/// Runs autossh with the fake ssh (which exits 0 at once) and gate time 0.
fn run(fake: &Fake, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = fake.autossh(args);
    c.env("AUTOSSH_GATETIME", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    run_bounded(c, LIMIT)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version() {
    let fake = Fake::new("version");
    for args in [
        &["-V"][..],
        &["-V", "-Z"],
        &["host", "-V"],
        &["-NV"],
        &["-M", "abc", "-V"],
    ] {
        let o = run(&fake, args, &[]);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), "autossh 1.4g\n");
    }
    assert_eq!(fake.runs(), 0);
}

#[test]
fn version_uses_the_name_it_is_called_by() {
    let fake = Fake::new("name");
    let link = fake.dir.path("mytun");
    std::os::unix::fs::symlink(autossh_bin(), &link).unwrap();
    let o = run_bounded(fake.command(link.to_str().unwrap(), &["-V"]), LIMIT);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "mytun 1.4g\n");
    let o = run_bounded(
        fake.command(link.to_str().unwrap(), &["-M", "x", "host"]),
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(fake.log_text().contains(" mytun["), "{}", fake.log_text());
    assert!(stderr(&o).contains("mytun: invalid port \"x\""));
}

#[test]
fn usage_errors() {
    let fake = Fake::new("usage");
    let o = run(&fake, &["-Z", "-V"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.starts_with(&format!("{}: invalid option -- 'Z'\nusage: autossh [-V] [-M monitor_port[:echo_port]] [-f] [SSH_OPTIONS]", autossh_bin())), "{e}");
    for var in VARIABLES {
        assert!(e.contains(var), "usage lacks {var}");
    }
    let o = run(&fake, &["host", "-p"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with(&format!(
        "{}: option requires an argument -- 'p'\nusage: autossh ",
        autossh_bin()
    )));
    let o = run(&fake, &["-M"], &[]);
    assert!(stderr(&o).starts_with(&format!(
        "{}: option requires an argument -- 'M'\n",
        autossh_bin()
    )));
    for args in [&[][..], &["-M", "0"], &["-N", "--"]] {
        let o = run(&fake, args, &[]);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).starts_with("usage: autossh "), "{args:?}");
    }
    assert_eq!(fake.runs(), 0);
}

#[test]
fn bad_ports() {
    let cases: &[(&[&str], &str)] = &[
        (&["-M", "abc", "host"], "invalid port \"abc\""),
        (&["-M", "-V", "host"], "invalid port \"-V\""),
        (&["-M", "20000 ", "host"], "invalid port \"20000 \""),
        (&["-M", ":7", "host"], "invalid port \"\""),
        (
            &["-M", "65535", "host"],
            "monitor port (65535) out of range",
        ),
        (
            &["-M", "0x11170", "host"],
            "monitor port (70000) out of range",
        ),
        (&["-M", "-1", "host"], "monitor port (-1) out of range"),
        (&["-M", "abc:0", "host"], "invalid echo port  \"0\""),
        (&["-M", "0:x", "host"], "invalid echo port  \"x\""),
        (&["-M", "20000:", "host"], "invalid echo port  \"\""),
        (
            &["-M", "20000:65536", "host"],
            "invalid echo port  \"65536\"",
        ),
        (&["-M", "0", "-M", "abc", "host"], "invalid port \"abc\""),
    ];
    for (args, message) in cases {
        let fake = Fake::new("port");
        let o = run(&fake, args, &[]);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(fake.messages(), vec![message.to_string()], "{args:?}");
        assert_eq!(stderr(&o), format!("autossh: {message}\n"), "{args:?}");
        assert_eq!(fake.runs(), 0, "{args:?}");
    }
    // The variable is checked instead of -M, with the same messages.
    let fake = Fake::new("envport");
    let o = run(&fake, &["-M", "0", "host"], &[("AUTOSSH_PORT", "abc")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(fake.messages(), vec!["invalid port \"abc\"".to_string()]);
}

#[test]
fn bad_variables() {
    let long = "m".repeat(65);
    let cases: Vec<(&str, &str, String)> = vec![
        ("AUTOSSH_GATETIME", "x", "invalid gate time \"x\"".into()),
        ("AUTOSSH_GATETIME", "-1", "invalid gate time \"-1\"".into()),
        ("AUTOSSH_POLL", "0", "invalid poll time \"0\"".into()),
        ("AUTOSSH_POLL", "-5", "invalid poll time \"-5\"".into()),
        (
            "AUTOSSH_POLL",
            "4294967301",
            "invalid poll time \"4294967301\"".into(),
        ),
        ("AUTOSSH_POLL", "", "invalid poll time \"\"".into()),
        (
            "AUTOSSH_FIRST_POLL",
            "08",
            "invalid first poll time \"08\"".into(),
        ),
        (
            "AUTOSSH_MAXSTART",
            "-2",
            "invalid max start number \"-2\"".into(),
        ),
        (
            "AUTOSSH_MAXLIFETIME",
            "1s",
            "invalid max lifetime \"1s\"".into(),
        ),
        ("AUTOSSH_LOGLEVEL", "8", "invalid log level \"8\"".into()),
        ("AUTOSSH_LOGLEVEL", "1x", "invalid log level \"1x\"".into()),
        (
            "AUTOSSH_MESSAGE",
            &long,
            "echo message may only be 64 bytes long".into(),
        ),
    ];
    for (var, value, message) in &cases {
        let fake = Fake::new("var");
        let pid_file = fake.dir.path("pid");
        let o = run(
            &fake,
            &["-V"],
            &[
                (var, value),
                ("AUTOSSH_PIDFILE", pid_file.to_str().unwrap()),
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{var}={value}");
        assert!(o.stdout.is_empty());
        assert_eq!(stderr(&o), format!("autossh: {message}\n"), "{var}={value}");
        assert!(
            fake.messages().contains(message),
            "{var}: {:?}",
            fake.messages()
        );
        assert!(!pid_file.exists());
        assert_eq!(fake.runs(), 0);
    }
    // An invalid level below ERR is still reported (SPEC §9.7).
    let fake = Fake::new("lvl");
    let o = run(&fake, &["host"], &[("AUTOSSH_LOGLEVEL", "-1")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        fake.messages(),
        vec!["invalid log level \"-1\"".to_string()]
    );
    assert_eq!(stderr(&o), "autossh: invalid log level \"-1\"\n");
}

#[test]
fn unwritable_log_file() {
    let fake = Fake::new("logfile");
    let path = fake.dir.path("no/such/dir/log");
    let o = run(
        &fake,
        &["-V"],
        &[("AUTOSSH_LOGFILE", path.to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!("autossh: {}: No such file or directory\n", path.display())
    );
}

/// The argv ssh receives for a command line (gate 0, fake ssh exits 0 at once).
fn ssh_argv(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let fake = Fake::new("argv");
    let o = run(&fake, args, env);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    // With -f the run goes on in the background: wait for it to finish.
    assert!(fake.wait_log("autossh exiting", LIMIT), "{args:?}");
    assert_eq!(fake.runs(), 1);
    fake.last_argv()
}

#[test]
fn real_world_command_lines() {
    let (p, q) = (free_pair(), free_pair());
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["-M", "{P}", "-fN", "-R", "2200:localhost:22", "me@nas"],
            &[
                "-L",
                "{P}:127.0.0.1:{P}",
                "-R",
                "{P}:127.0.0.1:{P1}",
                "-N",
                "-R",
                "2200:localhost:22",
                "me@nas",
            ],
        ),
        (
            &["-M", "0", "-N", "-R", "2200:localhost:22", "me@nas"],
            &["-N", "-R", "2200:localhost:22", "me@nas"],
        ),
        (
            &[
                "-M",
                "0",
                "-o",
                "ServerAliveInterval 30",
                "-o",
                "ServerAliveCountMax 3",
                "-NL",
                "8080:web:80",
                "gw",
            ],
            &[
                "-o",
                "ServerAliveInterval 30",
                "-o",
                "ServerAliveCountMax 3",
                "-NL",
                "8080:web:80",
                "gw",
            ],
        ),
        (
            &["-M", "{Q}", "-t", "host", "screen -e^Zz -D -R"],
            &[
                "-L",
                "{Q}:127.0.0.1:{Q}",
                "-R",
                "{Q}:127.0.0.1:{Q1}",
                "-t",
                "host",
                "screen -e^Zz -D -R",
            ],
        ),
        (
            &["-M", "{P}:7", "-N", "host"],
            &["-L", "{P}:127.0.0.1:7", "-N", "host"],
        ),
        (
            &["-M", "{Px}:0x7", "host"],
            &["-L", "{P}:127.0.0.1:7", "host"],
        ),
        (
            &["-NTfM0", "-p2222", "user@host"],
            &["-NT", "-p2222", "user@host"],
        ),
        (
            &["-M0", "-L8808:foo:80", "-ofoo=f", "-fi", "key", "host"],
            &["-L8808:foo:80", "-ofoo=f", "-i", "key", "host"],
        ),
        (
            &["-M", "0", "host", "echo", "-v", "-f", "-M", "5", "--", "x"],
            &["host", "echo", "-v", "-f", "-M", "5", "--", "x"],
        ),
        (
            &["-M", "0", "host", "-N", "ls", "-l"],
            &["host", "-N", "ls", "-l"],
        ),
        (&["-M", "0", "-o", "", "host"], &["-o", "", "host"]),
        (
            &["-M", "0", "-B", "eth0", "-J", "jump", "-W", "h:22", "host"],
            &["-B", "eth0", "-J", "jump", "-W", "h:22", "host"],
        ),
        (&["-M", "0", "--", "host", "-v"], &["host", "-v"]),
        (
            &["-M", "0", "host", "--", "cmd", "--", "x"],
            &["host", "cmd", "--", "x"],
        ),
        (
            &["-2", "-fN", "-M", "{P}", "-R", "2200:localhost:22", "u@h"],
            &[
                "-L",
                "{P}:127.0.0.1:{P}",
                "-R",
                "{P}:127.0.0.1:{P1}",
                "-2",
                "-N",
                "-R",
                "2200:localhost:22",
                "u@h",
            ],
        ),
    ];
    for (args, expect) in cases {
        let (args, expect) = (fill(args, p, q), fill(expect, p, q));
        let got = ssh_argv(&refs(&args), &[]);
        assert_eq!(got, expect, "{args:?}");
    }
}

#[test]
fn autossh_port_wins_and_consumes_m() {
    let p = free_pair();
    let f = |items: &[&str]| fill(items, p, p);
    let port = p.to_string();
    let got = ssh_argv(&["-M", "0", "-N", "host"], &[("AUTOSSH_PORT", &port)]);
    assert_eq!(
        got,
        f(&[
            "-L",
            "{P}:127.0.0.1:{P}",
            "-R",
            "{P}:127.0.0.1:{P1}",
            "-N",
            "host"
        ])
    );
    let got = ssh_argv(&["-M", &port, "host"], &[("AUTOSSH_PORT", "0")]);
    assert_eq!(got, strings(&["host"]));
    // Empty counts as unset.
    let got = ssh_argv(&["-M", "0", "host"], &[("AUTOSSH_PORT", "")]);
    assert_eq!(got, strings(&["host"]));
}

#[test]
fn random_port_when_none_given() {
    let fake = Fake::new("random");
    let o = run(&fake, &["-N", "host"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let argv = fake.last_argv();
    assert_eq!(argv.len(), 6, "{argv:?}");
    let port: u32 = argv[1].split(':').next().unwrap().parse().unwrap();
    assert!((32768..=65533).contains(&port));
    assert_eq!(argv[0], "-L");
    assert_eq!(argv[1], format!("{port}:127.0.0.1:{port}"));
    assert_eq!(argv[3], format!("{port}:127.0.0.1:{}", port + 1));
    assert!(fake.log_text().contains(&port.to_string()));
}

#[test]
fn ssh_found_in_path_and_default_messages() {
    let fake = Fake::new("pathlookup");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_PATH", "ssh")
        .env("PATH", format!("{}:/usr/bin:/bin", fake.dir.0.display()))
        .env("AUTOSSH_GATETIME", "0");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(fake.runs(), 1);
    let m = fake.messages();
    assert_eq!(m[0], "port set to 0, monitoring disabled");
    assert_eq!(m[1], "starting ssh (count 1)");
    assert!(m[2].starts_with("ssh child pid is "));
    assert_eq!(m[3], "ssh exited with status 0; autossh exiting");
}

#[test]
fn log_file_line_format() {
    let fake = Fake::new("format");
    run(&fake, &["-M", "0", "host"], &[]);
    let text = fake.log_text();
    let first = text.lines().next().unwrap();
    // YYYY/MM/DD HH:MM:SS autossh[PID]: message
    let b = first.as_bytes();
    assert_eq!(
        (b[4], b[7], b[10], b[13], b[16], b[19]),
        (b'/', b'/', b' ', b':', b':', b' '),
        "{first}"
    );
    assert!(first[20..].starts_with("autossh["), "{first}");
    assert!(
        first.ends_with("]: port set to 0, monitoring disabled"),
        "{first}"
    );
}

#[test]
fn debug_copies_to_stderr() {
    let fake = Fake::new("debug");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env_remove("AUTOSSH_LOGFILE")
        .env("AUTOSSH_DEBUG", "1")
        .env("AUTOSSH_GATETIME", "0");
    let o = run_bounded(c, LIMIT);
    let e = stderr(&o);
    assert!(
        e.contains("]: checking for grace period, tries = 0\n"),
        "{e}"
    );
    assert!(e.contains("]: starting ssh (count 1)\n"), "{e}");
    assert!(e.starts_with("autossh["), "{e}");
}

#[test]
fn log_level_filters() {
    let fake = Fake::new("level");
    let o = run(&fake, &["-M", "0", "host"], &[("AUTOSSH_LOGLEVEL", "5")]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(fake.log_text(), "");
    let fake = Fake::new("level7");
    run(&fake, &["-M", "0", "host"], &[("AUTOSSH_LOGLEVEL", "7")]);
    assert!(fake
        .log_text()
        .contains("checking for grace period, tries = 0"));
}

#[test]
fn short_poll_and_lifetime_notes() {
    let fake = Fake::new("notes");
    run(
        &fake,
        &["-M", "0", "host"],
        &[("AUTOSSH_POLL", "10"), ("AUTOSSH_MAXLIFETIME", "5")],
    );
    let m = fake.messages();
    for note in [
        "poll time is greater than lifetime, dropping poll time to 5",
        "first poll time is greater than lifetime, dropping first poll time to 5",
        "short poll time: adjusting net timeouts to 2500",
    ] {
        assert!(m.iter().any(|l| l == note), "{note}: {m:?}");
    }
}

#[test]
fn log_to_stderr_or_stdout_for_containers() {
    let fake = Fake::new("stderrlog");
    let mut c = fake.autossh(&["-M", "abc", "host"]);
    c.env("AUTOSSH_LOGFILE", "/dev/stderr");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    // One line, in the log format, and no second copy of the error.
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.ends_with("]: invalid port \"abc\"\n"), "{e}");
    assert!(e.contains(" autossh["), "{e}");

    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_LOGFILE", "/dev/stdout")
        .env("AUTOSSH_GATETIME", "0");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        messages_of(&out),
        vec![
            "port set to 0, monitoring disabled".to_string(),
            "starting ssh (count 1)".into(),
            format!("ssh child pid is {}", fake.pids()[0]),
            "ssh exited with status 0; autossh exiting".into(),
        ]
    );
}

/// As container images run it (jnovack/autossh: AUTOSSH_LOGFILE=/dev/stdout,
/// stdout and stderr read together by the engine): each fatal line once, on
/// stdout, and nothing on stderr (SPEC §9.7).
#[test]
fn a_log_on_stdout_shows_each_error_once() {
    let fake = Fake::new("stdoutlog");
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (
            &["-M", "0", "host"],
            &[("AUTOSSH_POLL", "x")],
            "invalid poll time \"x\"",
        ),
        (&["-M", "abc", "host"], &[], "invalid port \"abc\""),
        (
            &["-M", "0", "host"],
            &[("AUTOSSH_GATETIME", "30"), ("FAKE_PLAN", "exit:255")],
            "ssh exited prematurely with status 255; autossh exiting",
        ),
    ];
    for (args, env, line) in cases {
        for path in ["/dev/stdout", "/proc/self/fd/1"] {
            let mut c = fake.autossh(args);
            c.env("AUTOSSH_LOGFILE", path);
            for (k, v) in env {
                c.env(k, v);
            }
            let o = run_bounded(c, LIMIT);
            assert_eq!(o.status.code(), Some(1));
            let out = String::from_utf8_lossy(&o.stdout);
            assert_eq!(out.matches(line).count(), 1, "{path}: {out}");
            assert_eq!(stderr(&o), "", "{path}");
        }
    }
    // A log file that is /dev/null, as stdout is, hides nothing from stderr.
    let mut c = fake.autossh(&["-M", "abc", "host"]);
    c.env("AUTOSSH_LOGFILE", "/dev/null")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let o = run_bounded_child(c.spawn().unwrap(), LIMIT);
    assert_eq!(stderr(&o), "autossh: invalid port \"abc\"\n");
}

#[test]
fn a_closed_stdout_pipe_is_an_error_not_a_death() {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe fills both descriptors; the reading end is closed at once
    // and the writing end is handed to the child's stdout, which owns it.
    let stdout = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        std::process::Stdio::from_raw_fd(fds[1])
    };
    let status = std::process::Command::new(autossh_bin())
        .arg("-V")
        .stdout(stdout)
        .status()
        .unwrap();
    // The child starts with SIGPIPE at its default (the test harness's own
    // ignore is reset for it), so only autossh's own choice keeps it alive.
    assert_eq!(status.code(), Some(0), "{status:?}");
}
