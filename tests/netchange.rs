//! A changed network is noticed at once, not at the next poll: the kernel's
//! routing notifications reach the event loop, and a settled change is tested
//! like a poll, and a change that takes away the address of ssh's own
//! connection replaces ssh at once, in every mode. Against a real sshd in a network namespace of the test's own,
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

/// The client's address moved under live tunnels (poll 120 s, as after a new
/// DHCP lease): ssh's connection was from the address that went, so it is
/// dead for certain, and ssh is replaced at once, without a test, in loop
/// mode, echo mode and with `-M 0` (no ServerAliveInterval). The original
/// beside it waits for its poll. Each mode is timed on a tunnel of its own:
/// those that come back first are not kept waiting by the loop mode's. The
/// loop mode's new ssh can only open its remote monitor forward once the
/// relay has dropped the old session, which holds the port until its
/// ClientAlive checks give up: it is timed from that moment too.
#[test]
fn a_moved_address_replaces_ssh_at_once() {
    if !remote::can_run() {
        return;
    }
    let _alone = alone();
    let mut remote = Remote::new();
    let mut ours = Vec::new();
    for mode in ["loop", "echo", "off"] {
        let fake = Fake::new(&format!("netmove{mode}"));
        let (port, user) = (free_pair(), free_pair());
        let spec = match mode {
            "off" => "0".to_string(),
            mode => remote::spec(mode, port),
        };
        let r = start(autossh_bin(), &fake, &remote, &spec, user, "120");
        ours.push((mode, fake, r, user, port));
    }
    let theirs = have_reference().then(|| {
        let fake = Fake::new("nettheirs");
        let (port, user) = (free_pair(), free_pair());
        let r = start(REFERENCE, &fake, &remote, &port.to_string(), user, "120");
        (fake, r, user)
    });
    for (mode, fake, _, user, _) in &ours {
        assert!(
            wait_until(SLOW_LIMIT, || echo_through(*user)),
            "{mode}: {:?}",
            fake.messages()
        );
    }
    if let Some((fake, _, user)) = &theirs {
        assert!(
            wait_until(SLOW_LIMIT, || echo_through(*user)),
            "{:?}",
            fake.messages()
        );
    }
    let starts: Vec<usize> = ours
        .iter()
        .map(|(_, fake, _, _, _)| fake.count_log("starting ssh"))
        .collect();

    let old = remote.client_addr();
    let held = remote.listener(ours[0].4).expect("the loop's monitor port");
    let moved = Instant::now();
    remote.move_client_address();
    // Each tunnel timed on its own, all watched at once, and the moment the
    // relay lets go of the loop's old remote monitor port (its listening
    // socket gone, or already another's).
    let mut back: Vec<Option<Duration>> = vec![None; ours.len()];
    let mut released = None;
    wait_until(SLOW_LIMIT, || {
        if released.is_none() && remote.listener(ours[0].4) != Some(held) {
            released = Some(moved.elapsed());
        }
        for (i, (_, fake, _, user, _)) in ours.iter().enumerate() {
            if back[i].is_none()
                && fake.count_log("starting ssh") > starts[i]
                && echo_through(*user)
            {
                back[i] = Some(moved.elapsed());
            }
        }
        back.iter().all(Option::is_some)
    });
    let mut report = Vec::new();
    let released = released.expect("the relay never let go of the old session");
    for ((mode, fake, _, _, _), took) in ours.iter().zip(back) {
        let messages = fake.messages();
        let took = took.unwrap_or_else(|| panic!("{mode}: not back: {messages:?}"));
        let said = format!(
            "ssh's connection was from {old}, an address this host no longer has; restarting ssh"
        );
        assert!(messages.contains(&said), "{mode}: {messages:?}");
        assert_eq!(fake.count_log("port down"), 0, "{mode}: {messages:?}");
        // In loop mode ssh is retried once a second until the relay has let
        // go; from then on the same bound as the others. Found by a test
        // instead, the tunnel would be back 16 s after the move at the
        // soonest (a quiet second, then the 15 s net timeout), found by the
        // poll 120 s after; bench/compare gives the figures.
        let from = if *mode == "loop" {
            took.saturating_sub(released)
        } else {
            took
        };
        assert!(
            from < Duration::from_secs(10),
            "{mode}: back after {took:?} (the relay let go after {released:?}): {messages:?}"
        );
        report.push((*mode, took));
    }
    let theirs_said = match &theirs {
        Some((fake, _, user)) => {
            // Given as long again as ours all took, and more.
            let back = wait_until(Duration::from_secs(10), || echo_through(*user));
            let at = moved.elapsed().as_secs_f64();
            assert!(!fake.log_text().contains("port down") || back);
            if back {
                format!("{at:.2}s")
            } else {
                format!("not back after {at:.1}s (it waits for its poll, 120 s)")
            }
        }
        None => "not run".to_string(),
    };
    // The figures, for bench/compare; the original runs in loop mode.
    for (mode, took) in report {
        let (mode, original) = match mode {
            "loop" => ("loop mode", theirs_said.as_str()),
            "echo" => ("echo mode", "not run in this mode"),
            _ => ("-M 0", "not run in this mode"),
        };
        println!(
            "bench: address moved, forward back, {mode}: ours {:.2}s, original {original}",
            took.as_secs_f64()
        );
    }
    println!(
        "bench: address moved, the relay let go of the old session after: {:.2}s",
        released.as_secs_f64()
    );
    for (_, _, r, _, _) in ours {
        r.stop();
    }
    if let Some((_, r, _)) = theirs {
        drop(r);
    }
}

/// An address of another link removed, and that link taken away: ssh's
/// connection is not touched, nothing is restarted; a monitored tunnel
/// tests once for the burst at most.
#[test]
fn an_address_removed_elsewhere_restarts_nothing() {
    if !remote::can_run() {
        return;
    }
    let _alone = alone();
    let remote = Remote::new();
    let mut ours = Vec::new();
    for mode in ["loop", "off"] {
        let fake = Fake::new(&format!("netelse{mode}"));
        let (port, user) = (free_pair(), free_pair());
        let spec = match mode {
            "off" => "0".to_string(),
            mode => remote::spec(mode, port),
        };
        let r = start(autossh_bin(), &fake, &remote, &spec, user, "120");
        assert!(
            wait_until(SLOW_LIMIT, || echo_through(user)),
            "{mode}: {:?}",
            fake.messages()
        );
        ours.push((mode, fake, r, user));
    }
    // The remote host's own making has settled.
    std::thread::sleep(Duration::from_secs(2));
    let tested: Vec<usize> = ours
        .iter()
        .map(|(_, f, _, _)| f.count_log("network changed"))
        .collect();
    let tag = std::process::id() % 100_000;
    let links = Links(vec![format!("afe{tag}")]);
    let peer = format!("aff{tag}");
    let (link, n) = (&links.0[0], std::process::id() % 250);
    let address = format!("10.198.{n}.1/30");
    // One burst, from one process: well inside the quiet second however
    // busy the machine.
    remote::ip_batch(&[
        format!("link add {link} type veth peer name {peer}"),
        format!("addr add {address} dev {link}"),
        format!("link set {link} up"),
        format!("addr del {address} dev {link}"),
        format!("link set {link} down"),
        format!("link del {link}"),
    ]);
    drop(links);
    std::thread::sleep(Duration::from_secs(3));
    for ((mode, fake, r, user), before) in ours.into_iter().zip(tested) {
        let messages = fake.messages();
        assert_eq!(fake.count_log("starting ssh"), 1, "{mode}: {messages:?}");
        assert!(
            !messages.iter().any(|m| m.contains("ssh's connection")),
            "{mode}: {messages:?}"
        );
        let tests = fake.count_log("network changed") - before;
        if mode == "off" {
            assert_eq!(tests, 0, "{messages:?}");
        } else {
            assert!(tests <= 1, "{tests} tests for one burst: {messages:?}");
        }
        assert!(echo_through(user), "{mode}");
        r.stop();
    }
}

/// With `-M 0` the watch is open (for a lost connection), and still nothing
/// runs between changes: not one system call while idle.
#[test]
fn idle_with_m0_and_the_watch_makes_no_system_call() {
    if !have_tool("/usr/bin/strace", "strace") {
        return;
    }
    let _alone = alone();
    let fake = Fake::new("idlem0");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("FAKE_PLAN", "hang")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_LOGLEVEL", "7");
    let r = Running::start(c);
    assert!(fake.wait_log("ssh child pid is", LIMIT));
    // One of its sockets is a routing netlink socket: the watch.
    let netlink = std::fs::read_to_string("/proc/net/netlink").unwrap_or_default();
    let route: Vec<u64> = netlink
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"0")).then(|| f.last()?.parse().ok())?
        })
        .collect();
    assert!(
        socket_inodes(r.pid).iter().any(|i| route.contains(i)),
        "no netlink watch with -M 0"
    );
    assert_idle(r.pid, &fake.messages());
    r.stop();
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
    // One burst, from one process, as above.
    remote::ip_batch(&[
        format!("link add {link} type veth peer name {peer}"),
        format!("addr add 10.199.{n}.1/30 dev {link}"),
        format!("addr del 10.199.{n}.1/30 dev {link}"),
        format!("link del {link}"),
    ]);
    drop(links);
    if netwatch == "1" {
        // Its test, however long a busy machine takes to get to it; then a
        // while for any test more that the burst would wrongly cause.
        assert!(
            wait_until(SLOW_LIMIT, || fake.count_log("connection ok") > 1 + flood),
            "{:?}",
            fake.messages()
        );
    }
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
