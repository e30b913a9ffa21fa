//! The service manager's notification protocol (sd_notify), against a socket
//! the test binds.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use common::*;

/// Receives datagrams until `until` holds for the list so far, or `limit`.
fn collect(
    socket: &UnixDatagram,
    limit: Duration,
    until: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end && !until(&got) {
        if let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn has(got: &[String], what: &str) -> bool {
    got.iter().any(|m| m == what)
}

#[test]
fn ready_watchdog_status_and_stopping() {
    let fake = Fake::new("notify");
    let path = fake.dir.path("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut c = fake.autossh(&["-M", "0", "-N", "host"]);
    c.env("FAKE_PLAN", "env")
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "2000000")
        .env("AUTOSSH_GATETIME", "1");
    let began = Instant::now();
    let mut r = Running::start(c);
    let got = collect(&socket, LIMIT, |g| has(g, "READY=1"));
    let ready_after = began.elapsed();
    assert!(has(&got, "READY=1"), "{got:?}");
    // Ready once the first ssh has outlived the gate time of 1 s.
    assert!(ready_after >= Duration::from_millis(950), "{ready_after:?}");
    assert!(has(&got, "STATUS=starting ssh (count 1)"), "{got:?}");
    assert!(
        got.iter()
            .any(|m| m.starts_with("STATUS=ssh child pid is ")),
        "{got:?}"
    );
    // The watchdog every second, half of WATCHDOG_USEC: over 10 s about
    // ten, where the full interval would give five and systemd would kill
    // us; more than one every 0.8 s would be wasted wake-ups.
    let got = collect(&socket, Duration::from_secs(10), |_| false);
    let pings = got.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!((8..=13).contains(&pings), "{pings} pings in 10 s: {got:?}");
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
    let got = collect(&socket, Duration::from_secs(3), |g| has(g, "STOPPING=1"));
    assert!(has(&got, "STATUS=received signal to exit (15)"), "{got:?}");
    assert!(has(&got, "STOPPING=1"), "{got:?}");
    // ssh never sees the manager's variables.
    let ssh = fake.pids()[0];
    let env = std::fs::read_to_string(fake.dir.path(&format!("env.{ssh}"))).unwrap();
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        assert!(!env.contains(var), "{var} reached ssh");
    }
    assert!(env.contains("FAKE_DIR="));
}

#[test]
fn abstract_socket_and_ready_at_once_without_gate_or_monitor() {
    let fake = Fake::new("notifyabs");
    let name = format!("autossh-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("FAKE_PLAN", "hang")
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .env("AUTOSSH_GATETIME", "0");
    let began = Instant::now();
    let mut r = Running::start(c);
    let got = collect(&socket, LIMIT, |g| has(g, "READY=1"));
    assert!(has(&got, "READY=1"), "{got:?}");
    // At once: not after the default gate time (30 s; it is 0 here) or a
    // test (none comes).
    assert!(began.elapsed() < Duration::from_secs(10));
    // A watchdog meant for another process is not ours to feed.
    assert!(!has(&got, "WATCHDOG=1"));
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
}

#[test]
fn ready_after_first_test_with_monitoring() {
    if !have_socat() {
        return;
    }
    let fake = Fake::new("notifyprobe");
    let path = fake.dir.path("n.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let port = free_pair();
    let mut c = fake.autossh(&["-M", &port.to_string(), "host"]);
    c.env("FAKE_PLAN", "fwd:loop")
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "1000000")
        .env("WATCHDOG_PID", "1")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_POLL", "600")
        .env("AUTOSSH_FIRST_POLL", "1");
    let began = Instant::now();
    let mut r = Running::start(c);
    let got = collect(&socket, LIMIT, |g| has(g, "READY=1"));
    assert!(has(&got, "READY=1"), "{got:?}");
    assert!(began.elapsed() >= Duration::from_millis(950));
    assert!(
        !has(&got, "WATCHDOG=1"),
        "WATCHDOG_PID names another process"
    );
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
}

/// READY=1 means a test has passed: a first test that fails sends none, and
/// it comes with the first that passes (here the second ssh's).
#[test]
fn not_ready_while_the_first_test_fails() {
    if !have_socat() {
        return;
    }
    let fake = Fake::new("notifyfail");
    let path = fake.dir.path("n.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let port = free_pair();
    let mut c = fake.autossh(&["-M", &port.to_string(), "host"]);
    c.env("FAKE_PLAN", "fwd:swallow fwd:loop")
        .env("NOTIFY_SOCKET", &path)
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_POLL", "2")
        .env("AUTOSSH_FIRST_POLL", "1");
    let r = Running::start(c);
    let got = collect(&socket, LIMIT, |g| has(g, "READY=1"));
    let at = |what: &str| got.iter().position(|m| m == what);
    let (down, ready) = (at("STATUS=port down, restarting ssh"), at("READY=1"));
    assert!(down.is_some() && ready.is_some(), "{got:?}");
    assert!(
        down < ready,
        "READY=1 before the first test failed: {got:?}"
    );
    assert!(
        at("STATUS=starting ssh (count 2)") < ready,
        "READY=1 before the second ssh: {got:?}"
    );
    r.stop();
}
