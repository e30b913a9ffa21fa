//! A changed network is noticed at once, not at the next poll: the kernel's
//! routing notifications reach the event loop, and a settled change is tested
//! like a poll. Against a real sshd in a network namespace of the test's own,
//! beside the original; a flood of interface changes that cannot touch the
//! tunnel costs no test. Needs root.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::remote::{self, echo_through, start, Remote};
use common::*;

/// The tests here change the host's own network, which every other test of
/// this binary would hear: one at a time.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_changed_address_is_tested_at_once() {
    if !remote::can_run() {
        return;
    }
    let _alone = alone();
    let mut remote = Remote::new();
    // Ours and the original side by side, polling only every 120 s.
    let ours = Fake::new("netours");
    let (p1, u1) = (free_pair(), free_pair());
    let r_ours = start(autossh_bin(), &ours, &remote, &p1.to_string(), u1, "120");
    let theirs = have_reference().then(|| {
        let fake = Fake::new("nettheirs");
        let (p2, u2) = (free_pair(), free_pair());
        let r = start(REFERENCE, &fake, &remote, &p2.to_string(), u2, "120");
        (fake, r, u2)
    });
    assert!(
        wait_until(SLOW_LIMIT, || echo_through(u1)),
        "{:?}",
        ours.messages()
    );
    if let Some((fake, _, u2)) = &theirs {
        assert!(
            wait_until(SLOW_LIMIT, || echo_through(*u2)),
            "{:?}",
            fake.messages()
        );
    }
    let first_ssh = ours.count_log("starting ssh");

    // A new address, as after a new lease: ssh's connection is dead.
    let moved = Instant::now();
    remote.move_client_address();
    // Found dead within the net timeout (15 s) and a settled second, and back.
    assert!(
        wait_until(SLOW_LIMIT, || ours.count_log("starting ssh") > first_ssh
            && echo_through(u1)),
        "{:?}",
        ours.messages()
    );
    let took = moved.elapsed();
    let messages = ours.messages();
    assert!(
        messages
            .iter()
            .any(|m| m == "network changed, testing the connection"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m == "port down, restarting ssh"),
        "{messages:?}"
    );
    assert!(took < Duration::from_secs(15 + 10), "{took:?}");
    let theirs_said = match &theirs {
        Some((fake, _, _)) => {
            // The original still waits for its poll.
            assert!(
                !fake.log_text().contains("port down"),
                "{:?}",
                fake.messages()
            );
            format!(
                "the original had not noticed after {:.1}s",
                moved.elapsed().as_secs_f64()
            )
        }
        None => "the original was not run".to_string(),
    };
    println!(
        "address change: ours back after {:.1}s; {theirs_said}",
        took.as_secs_f64()
    );
    r_ours.stop();
    if let Some((_, r, _)) = theirs {
        drop(r);
    }
}

/// veth pairs created and removed by a test, removed also when it fails.
struct Links(Vec<String>);

impl Drop for Links {
    fn drop(&mut self) {
        for link in &self.0 {
            let _ = Command::new("ip")
                .args(["link", "del", link])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// An autossh with a healthy loop (fake ssh, poll 120 s) through a flood of
/// 100 veth pairs made and removed, then one global address added and
/// removed: how many tests each caused.
fn tests_caused(netwatch: &str) -> (usize, usize) {
    let fake = Fake::new("netflood");
    let port = free_pair();
    let mut c = fake.autossh(&["-M", &port.to_string(), "host"]);
    c.env("FAKE_PLAN", "fwd:loop")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_POLL", "120")
        .env("AUTOSSH_FIRST_POLL", "1")
        .env("AUTOSSH_NETWATCH", netwatch)
        .env("AUTOSSH_DEBUG", "1");
    let mut r = Running::start(c);
    assert!(wait_until(SLOW_LIMIT, || fake.count_log("connection ok") == 1));

    // As a host that starts and stops containers all day.
    let tag = format!("{}{}", std::process::id() % 100_000, netwatch);
    let mut links = Links(Vec::new());
    for n in 0..100 {
        let name = format!("afl{tag}x{n}");
        let peer = format!("afp{tag}x{n}");
        links.0.push(name.clone());
        remote::sh(&[
            "ip", "link", "add", &name, "type", "veth", "peer", "name", &peer,
        ]);
        remote::sh(&["ip", "link", "set", &name, "up"]);
    }
    drop(links);
    std::thread::sleep(Duration::from_secs(3));
    let flood = fake.count_log("network changed");

    // A global address that comes and goes: a change that counts.
    let links = Links(vec![format!("afa{tag}")]);
    let peer = format!("afb{tag}");
    let (link, n) = (&links.0[0], std::process::id() % 250);
    remote::sh(&[
        "ip", "link", "add", link, "type", "veth", "peer", "name", &peer,
    ]);
    remote::sh(&[
        "ip",
        "addr",
        "add",
        &format!("10.199.{n}.1/30"),
        "dev",
        link,
    ]);
    remote::sh(&[
        "ip",
        "addr",
        "del",
        &format!("10.199.{n}.1/30"),
        "dev",
        link,
    ]);
    drop(links);
    std::thread::sleep(Duration::from_secs(3));
    let address = fake.count_log("network changed") - flood;

    assert_eq!(
        fake.count_log("connection ok"),
        1 + flood + address,
        "{:?}",
        fake.messages()
    );
    assert_eq!(fake.runs(), 1);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(SLOW_LIMIT), Some(1));
    (flood, address)
}

#[test]
fn a_flood_of_interface_changes_costs_no_test() {
    if !remote::can_run() || !have_socat() {
        return;
    }
    let _alone = alone();
    let (flood, address) = tests_caused("1");
    assert_eq!(flood, 0, "tests for a flood of links without addresses");
    // A burst of changes is tested once, after it settles.
    assert_eq!(address, 1);
    // Turned off, nothing is tested.
    assert_eq!(tests_caused("0"), (0, 0));
}

/// A cut far away changes nothing on this host: no change is heard, and
/// the regular test is what finds it (tests/e2e.rs times it).
#[test]
fn a_far_cut_is_not_heard_of_here() {
    if !remote::can_run() {
        return;
    }
    let _alone = alone();
    let remote = Remote::new();
    let (fake, r, _) = remote::tunnel_up(&remote, "loop");
    // The remote host's own making has settled.
    std::thread::sleep(Duration::from_secs(2));
    let heard = fake.count_log("network changed");
    remote.cut_far(true);
    assert!(fake.wait_log("port down, restarting ssh", SLOW_LIMIT));
    assert_eq!(
        fake.count_log("network changed"),
        heard,
        "{:?}",
        fake.messages()
    );
    remote.cut_far(false);
    r.stop();
}

#[test]
fn netwatch_can_be_turned_off_and_rejects_junk() {
    let fake = Fake::new("netoff");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_NETWATCH", "2");
    let o = run_bounded(c, SLOW_LIMIT);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "autossh: invalid network watch \"2\"\n"
    );
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_NETWATCH", "0")
        .env("AUTOSSH_GATETIME", "0")
        .env("FAKE_PLAN", "exit:0");
    assert_eq!(run_bounded(c, SLOW_LIMIT).status.code(), Some(0));
}
