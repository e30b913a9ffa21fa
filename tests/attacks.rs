//! A local user cannot fool the connection test: not by listening on the
//! monitor port before ssh does (a test would then pass on a dead tunnel),
//! nor by sending wrong lines to the return port (each test would fail and
//! restart ssh). The attacker runs as `nobody`; needs root. The original is
//! run the same way, and what it does is reported, not asserted.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A process of user `nobody`, killed when dropped. Its stdout is a pipe
/// to the test.
struct Attacker(Child);

impl Attacker {
    fn start(args: &[&str]) -> Attacker {
        let mut c = Command::new(args[0]);
        c.args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        as_nobody(&mut c);
        Attacker(c.spawn().expect("the attacker"))
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn can_run() -> bool {
    need_root() && have_socat()
}

/// With a dead tunnel (the fake ssh forwards nothing) and the attacker
/// relaying the monitor port to the return port: how many tests passed and
/// failed in `program`'s log.
fn squatted(program: &str) -> (usize, usize, Vec<String>) {
    let fake = Fake::new("squat");
    let port = free_pair();
    let _attacker = Attacker::start(&[
        "socat",
        &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
        &format!("TCP:127.0.0.1:{}", port + 1),
    ]);
    assert!(wait_until(LIMIT, || std::net::TcpStream::connect((
        "127.0.0.1",
        port
    ))
    .is_ok()));
    let mut c = fake.command(program, &["-M", &port.to_string(), "host"]);
    c.env("FAKE_PLAN", "hang")
        .env("AUTOSSH_POLL", "1")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_LOGLEVEL", "7");
    let r = Running::start(c);
    wait_until(LIMIT, || {
        fake.count_log("connection ok") + fake.count_log("port down") >= 3
    });
    r.stop();
    (
        fake.count_log("connection ok"),
        fake.count_log("port down"),
        fake.messages(),
    )
}

#[test]
fn a_stranger_on_the_monitor_port_cannot_pass_a_test() {
    if !can_run() {
        return;
    }
    let (passed, failed, m) = squatted(autossh_bin());
    assert_eq!(passed, 0, "{m:?}");
    assert!(failed >= 2, "{m:?}");
    assert!(
        m.iter()
            .any(|l| l.ends_with("is not ssh's: another process listens there")),
        "{m:?}"
    );
    if have_reference() {
        let (passed, failed, _) = squatted(REFERENCE);
        eprintln!("the original, monitor port squatted: {passed} tests passed, {failed} failed");
    }
}

/// A healthy tunnel while the attacker sends wrong lines to the return port,
/// from when its first line is sent until two tests have passed or `window`
/// is over: how many tests passed and how many restarts followed.
fn flooded(program: &str, window: Duration) -> (usize, usize, Vec<String>) {
    let fake = Fake::new("flood");
    let port = free_pair();
    let mut c = fake.command(program, &["-M", &port.to_string(), "host"]);
    // The answer takes a while (0.3 s), as on a slow link: the attacker's
    // lines are there first. Poll 6 s: each test waits 3 s for the answer,
    // however busy the machine the flood makes.
    c.env("FAKE_PLAN", "fwd:slowloop")
        .env("AUTOSSH_POLL", "6")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_LOGLEVEL", "7");
    let r = Running::start(c);
    assert!(
        fake.wait_log("connection ok", LIMIT),
        "{program}: {:?}",
        fake.messages()
    );
    // It says so on its stdout once its first line is sent.
    let script = format!(
        "for i in $(seq 1 10000); do echo wrong | socat -u - TCP:127.0.0.1:{},connect-timeout=1 2>/dev/null; [ $i = 1 ] && echo sent; sleep 0.005; done",
        port + 1
    );
    let mut attacker = Attacker::start(&["sh", "-c", &script]);
    let mut said = [0u8; 5];
    let began = attacker.0.stdout.as_mut().unwrap().read_exact(&mut said);
    assert!(began.is_ok(), "the attack never began");
    let before = fake.count_log("connection ok");
    wait_until(window, || fake.count_log("connection ok") >= before + 2);
    drop(attacker);
    let passed = fake.count_log("connection ok") - before;
    let restarts = fake.count_log("port down");
    let m = fake.messages();
    r.stop();
    (passed, restarts, m)
}

#[test]
fn wrong_lines_on_the_return_port_cause_no_restart() {
    if !can_run() {
        return;
    }
    let (passed, restarts, m) = flooded(autossh_bin(), SLOW_LIMIT);
    assert_eq!(restarts, 0, "{m:?}");
    assert!(passed >= 2, "{passed}: {m:?}");
    if have_reference() {
        let (passed, restarts, _) = flooded(REFERENCE, Duration::from_secs(15));
        eprintln!(
            "the original, return port flooded for 15 s: {passed} tests passed, {restarts} restarts"
        );
    }
}
