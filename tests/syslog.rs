//! What autossh really sends to syslog, caught on a /dev/log of the test's own
//! (a private mount namespace with a fresh /dev), and the logcheck ignore file
//! of `deploy/logcheck` checked against it: it must ignore every routine line,
//! at least all that Debian's file ignores for the original. Needs root.

mod common;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The script that gives `program` a /dev/log of the test's own: a private
/// mount namespace with a fresh /dev where /dev/log links to $SOCK.
const PRIVATE_DEV_LOG: &str = r#"set -e
mount --make-rprivate /
mkdir -p "$T/dev"
mount --rbind /dev "$T/dev"
mount -t tmpfs tmpfs /dev
for n in null zero urandom random; do touch /dev/$n; mount --bind "$T/dev/$n" /dev/$n; done
ln -s "$SOCK" /dev/log
exec "$@""#;

fn with_private_log(
    fake: &Fake,
    sock: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut c = fake.command(
        "unshare",
        &["-m", "sh", "-c", PRIVATE_DEV_LOG, "sh", program],
    );
    c.args(args)
        .env_remove("AUTOSSH_LOGFILE")
        .env("T", &fake.dir.0)
        .env("SOCK", sock)
        .stdout(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Every datagram waiting on `socket`.
fn receive(socket: &UnixDatagram) -> Vec<Vec<u8>> {
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// Runs `program args` with /dev/log pointing at a socket of ours; returns the
/// datagrams received, as they were sent.
fn datagrams(fake: &Fake, program: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<Vec<u8>> {
    let sock = fake.dir.path("log.sock");
    let _ = std::fs::remove_file(&sock);
    let socket = UnixDatagram::bind(&sock).unwrap();
    let out = run_bounded(with_private_log(fake, &sock, program, args, env), LIMIT);
    assert!(
        out.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    receive(&socket)
}

/// The datagrams as syslog files write them (`Mmm dd hh:mm:ss host ...`).
fn syslog_lines(fake: &Fake, program: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut lines = Vec::new();
    for datagram in datagrams(fake, program, args, env) {
        let raw = String::from_utf8_lossy(&datagram).into_owned();
        // "<14>Nov 25 04:26:57 autossh[9067]: message"
        let body = raw.split_once('>').map(|(_, b)| b).unwrap_or(&raw);
        if body.len() > 16 {
            lines.push(format!("{} {} {}", &body[..15], host.trim(), &body[16..]));
        }
    }
    lines
}

/// A datagram with its time and pid replaced, so that two runs compare:
/// `<14>TIME autossh[PID]: message`. The time must be `Mmm dd hh:mm:ss`.
fn normalised(datagram: &[u8]) -> String {
    let text = String::from_utf8_lossy(datagram);
    let (pri, rest) = text.split_once('>').expect("a priority");
    let (time, rest) = rest.split_at(15);
    let b = time.as_bytes();
    assert!(
        b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':',
        "not a syslog(3) time: {time:?}"
    );
    let (ident, message) = rest.split_once(": ").expect("an ident");
    let ident = ident.split('[').next().unwrap();
    let message = if message.starts_with("ssh child pid is ") {
        "ssh child pid is N"
    } else {
        message
    };
    format!("{pri}>TIME{ident}[PID]: {message}")
}

fn matches(patterns: &str, line: &str) -> bool {
    patterns.lines().filter(|p| !p.is_empty()).any(|p| {
        let mut grep = Command::new("grep")
            .args(["-qE", p])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = grep.stdin.take().unwrap();
        let _ = input.write_all(format!("{line}\n").as_bytes());
        drop(input);
        grep.wait().is_ok_and(|s| s.success())
    })
}

/// ssh's routine lines, as autossh logs them in the background, are in the
/// logcheck ignore file; what may say why a tunnel is down is not.
#[test]
fn logcheck_ignores_sshs_routine_lines_only() {
    let ours_file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/logcheck/autossh"
    ))
    .unwrap();
    let fake = Fake::new("logcheck-ssh");
    let mut c = fake.autossh(&["-f", "-M", "0", "host"]);
    c.env("FAKE_PLAN", "known");
    assert_eq!(run_bounded(c, LIMIT).status.code(), Some(0));
    assert!(fake.wait_log("autossh exiting", LIMIT));
    let said = fake
        .messages()
        .into_iter()
        .find(|m| m.starts_with("ssh: "))
        .expect("ssh's line logged");
    let line = |message: &str| format!("Dec  1 09:00:00 nas autossh[1234]: {message}");
    assert!(matches(&ours_file, &line(&said)), "not ignored: {said}");
    // A connection replaced after its address went, IPv4 or IPv6.
    for (from, link_down) in [("10.200.0.1", false), ("2001:db8::7", true)] {
        let note = autossh::messages::Note::ConnectionGone {
            from: from.parse().unwrap(),
            link_down,
        };
        let text = note.text("autossh", b"ssh");
        assert!(matches(&ours_file, &line(&text)), "not ignored: {text}");
    }
    for reason in [
        "ssh: Permission denied (publickey).",
        "ssh: Host key verification failed.",
        "ssh: Warning: remote port forwarding failed for listen port 2200",
    ] {
        assert!(!matches(&ours_file, &line(reason)), "ignored: {reason}");
    }
}

/// The syslog tests replace /dev/log in a mount namespace: root only.
fn can_run() -> bool {
    need_root()
}

#[test]
fn syslog_lines_and_logcheck_patterns() {
    if !can_run() {
        return;
    }
    let ours_file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/logcheck/autossh"
    ))
    .unwrap();
    type Scenario<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let scenarios: &[Scenario] = &[
        (&["-M", "0", "host"], &[("FAKE_PLAN", "exit:0")]),
        (
            &["-M", "0", "host"],
            &[
                ("FAKE_PLAN", "exit:255 kill:KILL exit:0"),
                ("AUTOSSH_GATETIME", "0"),
            ],
        ),
        (
            &["-M", "0", "host"],
            &[
                ("FAKE_PLAN", "exit:1"),
                ("AUTOSSH_GATETIME", "0"),
                ("AUTOSSH_MAXSTART", "2"),
            ],
        ),
        (
            &["-M", "0", "host"],
            &[
                ("FAKE_PLAN", "hang"),
                ("AUTOSSH_MAXLIFETIME", "1"),
                ("AUTOSSH_POLL", "1"),
            ],
        ),
    ];
    let mut ours_all = Vec::new();
    for (args, env) in scenarios {
        let fake = Fake::new("syslog");
        let ours = syslog_lines(&fake, autossh_bin(), args, env);
        assert!(!ours.is_empty(), "{args:?} {env:?}: nothing reached syslog");
        if have_reference() {
            let fake = Fake::new("syslogref");
            let theirs = syslog_lines(&fake, REFERENCE, args, env);
            let strip = |l: &String| l.split_once("]: ").map_or("", |x| x.1).to_string();
            let norm = |v: &[String]| -> Vec<String> {
                v.iter()
                    .map(strip)
                    .filter(|m| !m.starts_with("ssh child pid is") && !m.contains("lifetime"))
                    .collect()
            };
            assert_eq!(norm(&ours), norm(&theirs), "{args:?} {env:?}");
            // Debian's own ignore file comes with its autossh package.
            let debian_file = "/etc/logcheck/ignore.d.workstation/autossh";
            let debian = std::fs::read_to_string(debian_file);
            if requires(debian.is_ok(), &format!("{debian_file} is missing")) {
                let debian = debian.unwrap_or_default();
                for line in &theirs {
                    if matches(&debian, line) {
                        let counterpart = ours.iter().find(|o| strip(o) == strip(line));
                        if let Some(o) = counterpart {
                            assert!(matches(&ours_file, o), "ours does not ignore {o:?}");
                        }
                    }
                }
            }
        }
        ours_all.extend(ours);
    }
    for line in &ours_all {
        assert!(line.contains(" autossh["), "{line}");
        if !line.contains("lifetime") {
            assert!(matches(&ours_file, line), "not ignored: {line:?}");
        }
    }
}

/// The bytes sent are those of the C library's syslog(3), as the original
/// sends them: priority, time, ident, pid, message, nothing more.
#[test]
fn datagrams_are_the_c_librarys() {
    if !can_run() || !have_reference() {
        return;
    }
    let args = ["-M", "0", "host"];
    let env = [
        ("FAKE_PLAN", "exit:255 kill:KILL exit:0"),
        ("AUTOSSH_GATETIME", "0"),
    ];
    let fake = Fake::new("dgram");
    let ours: Vec<String> = datagrams(&fake, autossh_bin(), &args, &env)
        .iter()
        .map(|d| normalised(d))
        .collect();
    let fake = Fake::new("dgramref");
    let theirs: Vec<String> = datagrams(&fake, REFERENCE, &args, &env)
        .iter()
        .map(|d| normalised(d))
        .collect();
    assert!(ours.len() >= 7, "{ours:#?}");
    assert_eq!(ours, theirs);
}

/// When the syslog daemon restarts (its socket removed and made again),
/// logging resumes once the socket is back, as syslog(3) does.
#[test]
fn logging_resumes_after_the_syslog_daemon_restarts() {
    if !can_run() {
        return;
    }
    let fake = Fake::new("relog");
    let sock = fake.dir.path("log.sock");
    let first = UnixDatagram::bind(&sock).unwrap();
    // A restart every two seconds, four in all, then exit 0: the fourth
    // start comes over 4 s after the daemon came back.
    let env = [
        ("FAKE_PLAN", "sleep:2:255"),
        ("AUTOSSH_GATETIME", "0"),
        ("AUTOSSH_MAXSTART", "4"),
    ];
    let mut running = Running::start(with_private_log(
        &fake,
        &sock,
        autossh_bin(),
        &["-M", "0", "host"],
        &env,
    ));
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|m: &String| m.contains("starting ssh (count 1 of 4)"))
    {
        let n = first.recv(&mut buf).expect("the first start is logged");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // The daemon goes away, then comes back on the same path.
    drop(first);
    std::fs::remove_file(&sock).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let second = UnixDatagram::bind(&sock).unwrap();
    assert_eq!(running.wait(LIMIT), Some(0));
    let after: Vec<String> = receive(&second)
        .iter()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect();
    assert!(
        after
            .iter()
            .any(|m| m.ends_with("max start count reached; exiting")),
        "{after:#?}"
    );
    assert!(
        after
            .iter()
            .any(|m| m.contains("starting ssh (count 4 of 4)")),
        "{after:#?}"
    );
}

/// Of two bad variables, the first in upstream's order is the one reported
/// (SPEC §3), as the original reports it.
#[test]
fn the_first_bad_variable_in_upstreams_order_is_reported() {
    if !can_run() || !have_reference() {
        return;
    }
    let long = "m".repeat(65);
    // Values that both programs refuse.
    let order = [
        ("AUTOSSH_LOGLEVEL", "9"),
        ("AUTOSSH_POLL", "x"),
        ("AUTOSSH_FIRST_POLL", "x"),
        ("AUTOSSH_GATETIME", "1s"),
        ("AUTOSSH_MAXSTART", "-2"),
        ("AUTOSSH_MESSAGE", long.as_str()),
        ("AUTOSSH_MAXLIFETIME", "1s"),
    ];
    let message = |program: &str, env: &[(&str, &str)]| -> Vec<String> {
        let fake = Fake::new("order");
        datagrams(&fake, program, &["-M", "0", "host"], env)
            .iter()
            .map(|d| {
                let text = String::from_utf8_lossy(d).into_owned();
                text.split_once(": ")
                    .map_or(text.clone(), |x| x.1.to_string())
            })
            .collect()
    };
    for pair in order.windows(2) {
        // The later one first in the environment, to be sure order there
        // does not matter.
        let env = [pair[1], pair[0]];
        let ours = message(autossh_bin(), &env);
        let theirs = message(REFERENCE, &env);
        assert_eq!(ours.len(), 1, "{env:?}: {ours:?}");
        assert_eq!(ours, theirs, "{env:?}");
    }
}
