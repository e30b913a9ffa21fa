//! The fault matrix against the real sshd in a test network namespace. After
//! each fault: the user's forward works again, exactly one ssh runs, no zombie
//! is left, and autossh holds the descriptors it held before. Needs root;
//! fails rather than skips in CI.

mod common;

use std::time::{Duration, Instant};

use common::remote::*;
use common::*;

/// What a healthy run looks like, taken once the tunnel is up.
struct Baseline {
    fds: usize,
}

fn baseline(r: &Running) -> Baseline {
    // A sample taken mid-spawn counts the spawn's own short-lived pipe.
    let fds = (0..10)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            fd_count(r.pid)
        })
        .min()
        .unwrap();
    Baseline { fds }
}

/// The checks after a fault; returns how long the forward took to come back.
fn recovered(fake: &Fake, r: &Running, user: u16, base: &Baseline, what: &str) -> Duration {
    let since = Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || echo_through(user)),
        "{what}: forward not back: {:?}",
        fake.messages()
    );
    let took = since.elapsed();
    // Let a restart in flight finish, then look.
    assert!(wait_until(SLOW_LIMIT, || children_of(r.pid).0.len() == 1
        && fd_count(r.pid) == base.fds));
    let (live, zombies) = children_of(r.pid);
    assert_eq!(live.len(), 1, "{what}: ssh processes {live:?}");
    assert!(zombies.is_empty(), "{what}: zombies {zombies:?}");
    assert_eq!(fd_count(r.pid), base.fds, "{what}: descriptors");
    assert!(alive(r.pid));
    eprintln!("{what}: forward back {took:?} after the fault ended");
    took
}

#[test]
fn link_down_and_up() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    let (fake, r, user) = tunnel_up(&remote, "loop");
    let base = baseline(&r);
    remote.link(false);
    // The link of ssh's connection: replaced at once, no test needed.
    assert!(fake.wait_log("the link of ssh's connection from ", SLOW_LIMIT));
    std::thread::sleep(Duration::from_secs(2));
    remote.link(true);
    recovered(&fake, &r, user, &base, "link down");
    r.stop();
}

/// The path cut far away: nothing on this host changes, the regular test
/// finds it.
#[test]
fn traffic_dropped_far_away() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    let (fake, r, user) = tunnel_up(&remote, "loop");
    let base = baseline(&r);
    remote.cut_far(true);
    assert!(fake.wait_log("port down, restarting ssh", SLOW_LIMIT));
    std::thread::sleep(Duration::from_secs(2));
    remote.cut_far(false);
    recovered(&fake, &r, user, &base, "far cut");
    r.stop();
}

#[test]
fn sshd_killed_and_restarted() {
    if !can_run() {
        return;
    }
    let mut remote = Remote::new();
    let (fake, r, user) = tunnel_up(&remote, "loop");
    let base = baseline(&r);
    remote.stop_sshd(true);
    assert!(
        fake.wait_log("restarting ssh", SLOW_LIMIT),
        "{:?}",
        fake.messages()
    );
    std::thread::sleep(Duration::from_secs(2));
    remote.start_sshd();
    recovered(&fake, &r, user, &base, "sshd killed");
    r.stop();
}

#[test]
fn sshd_restarted_under_a_live_session() {
    if !can_run() {
        return;
    }
    let mut remote = Remote::new();
    let (fake, r, user) = tunnel_up(&remote, "loop");
    let base = baseline(&r);
    let ssh = children_of(r.pid).0;
    remote.stop_sshd(false);
    remote.start_sshd();
    // The session is untouched: the same ssh keeps passing the tests.
    let ok = fake.count_log("connection ok");
    assert!(wait_until(SLOW_LIMIT, || fake.count_log("connection ok") >= ok + 2));
    assert_eq!(fake.count_log("starting ssh"), 1);
    recovered(&fake, &r, user, &base, "sshd restarted");
    assert_eq!(children_of(r.pid).0, ssh);
    r.stop();
}

#[test]
fn remote_port_held_by_a_stale_session() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    let fake = Fake::new("stale");
    let (port, user) = (free_pair(), free_pair());
    // A stale session holds the remote end of the monitor loop.
    let mut stale_args = remote.ssh_args(free_pair());
    let host = stale_args.pop().unwrap();
    stale_args.extend(["-R".to_string(), format!("{port}:127.0.0.1:9"), host]);
    let mut stale = std::process::Command::new("/usr/bin/ssh")
        .args(&stale_args)
        .env("FAKE_DIR", &fake.dir.0)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(SLOW_LIMIT, || remote.listening(port)));
    // ExitOnForwardFailure: every new ssh exits 255 while the port is held.
    let r = start(autossh_bin(), &fake, &remote, &port.to_string(), user, "2");
    assert!(
        wait_until(SLOW_LIMIT, || fake
            .count_log("ssh exited with error status 255; restarting ssh")
            >= 2),
        "{:?}",
        fake.messages()
    );
    // The server lets the port go: the tunnel comes back. (No healthy
    // baseline before: ssh is retried every 2 s while the port is held, and
    // spends most of that waiting; the one taken once it is back must hold.)
    let _ = stale.kill();
    let _ = stale.wait();
    assert!(
        wait_until(Duration::from_secs(60), || echo_through(user)),
        "stale remote port: forward not back: {:?}",
        fake.messages()
    );
    let base = baseline(&r);
    std::thread::sleep(Duration::from_secs(3));
    recovered(&fake, &r, user, &base, "stale remote port");
    r.stop();
}

#[test]
fn frozen_ssh_is_replaced() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    let (fake, r, user) = tunnel_up(&remote, "echo");
    let base = baseline(&r);
    let ssh = children_of(r.pid).0[0];
    signal(ssh, libc::SIGSTOP);
    assert!(fake.wait_log("port down, restarting ssh", SLOW_LIMIT));
    recovered(&fake, &r, user, &base, "ssh frozen");
    assert!(!alive(ssh));
    r.stop();
}

#[test]
fn ssh_killed_in_the_middle_of_a_test() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    // Poll 4 s: the test hangs for 2 s, time enough to land inside it.
    let (fake, r, user) = tunnel_up_polling(&remote, "loop", "4");
    let base = baseline(&r);
    // Cut the path far away so that the next test hangs waiting (a cut of
    // this host's link would replace ssh at once), then kill ssh in it:
    // once the test's connection is open (one descriptor more than between
    // tests), and before the test has failed.
    let before = fake.messages().len();
    // The monitor port, from autossh's command line.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", r.pid)).unwrap();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let at = args.iter().position(|a| *a == b"-M").unwrap();
    let port: u16 = std::str::from_utf8(args[at + 1]).unwrap().parse().unwrap();
    remote.cut_far(true);
    assert!(
        wait_until(SLOW_LIMIT, || connected_to(r.pid, port)),
        "no test began: {:?}",
        fake.messages()
    );
    let ssh = children_of(r.pid).0[0];
    signal(ssh, libc::SIGKILL);
    assert!(fake.wait_log("ssh exited on signal 9, restarting ssh", SLOW_LIMIT));
    let since: Vec<String> = fake.messages().split_off(before);
    let died = since
        .iter()
        .position(|m| m == "ssh exited on signal 9, restarting ssh")
        .unwrap();
    assert!(
        !since[..died].iter().any(|m| m.starts_with("port down")),
        "the test had already failed: {since:?}"
    );
    remote.cut_far(false);
    recovered(&fake, &r, user, &base, "ssh killed mid-test");
    r.stop();
}

#[test]
fn autossh_killed_leaves_nothing_behind() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    let fake = Fake::new("killed");
    let (port, user) = (free_pair(), free_pair());
    let mut r = start(autossh_bin(), &fake, &remote, &port.to_string(), user, "2");
    assert!(wait_until(SLOW_LIMIT, || echo_through(user)));
    assert!(remote.listening(port));
    let ssh = children_of(r.pid).0;
    r.signal(libc::SIGKILL);
    assert_eq!(r.wait(SLOW_LIMIT), Some(128 + libc::SIGKILL));
    for pid in &ssh {
        assert!(
            wait_until(SLOW_LIMIT, || !alive(*pid)),
            "ssh {pid} outlived autossh"
        );
    }
    // The remote end lets the monitor port go, and the user's port is free.
    assert!(
        wait_until(SLOW_LIMIT, || !remote.listening(port)),
        "remote port still held"
    );
    assert!(!echo_through(user));
}

#[test]
fn signal_storm() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    let (fake, r, user) = tunnel_up(&remote, "loop");
    let base = baseline(&r);
    // For 10 s and at least a thousand rounds (a busy machine may take
    // longer for those, up to a minute).
    let began = Instant::now();
    let (mut sent, mut restarts) = (0, 0);
    for round in 0.. {
        let spent = began.elapsed();
        if (spent >= Duration::from_secs(10) && round >= 1000) || spent >= Duration::from_secs(60) {
            break;
        }
        for sig in [libc::SIGHUP, libc::SIGCHLD, libc::SIGUSR2, libc::SIGCHLD] {
            r.signal(sig);
            sent += 1;
        }
        // A restart asked for every 100 rounds (about every 0.6 s).
        if round % 100 == 99 {
            r.signal(libc::SIGUSR1);
            restarts += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "signal storm: {sent} signals and {restarts} USR1 in {:?}",
        began.elapsed()
    );
    assert!(restarts >= 5, "{restarts}");
    recovered(&fake, &r, user, &base, "signal storm");
    // Each USR1 that found ssh running restarted it (one that came while an
    // ssh was being stopped has nothing more to do).
    let asked = fake.count_log("signalled to kill and restart ssh");
    assert!(asked >= 2 && asked <= restarts, "{asked} of {restarts}");
    // (An ssh that finds the remote monitor port still held by the session
    // before it exits 255 and is started again too.)
    assert!(fake.count_log("starting ssh") > asked);
    r.stop();
}

/// Whether the log has a wait of at least `secs`.
fn waited(fake: &Fake, secs: u64) -> bool {
    fake.messages().iter().any(|m| {
        m.strip_prefix("sleeping for grace time ")
            .and_then(|w| w.strip_suffix(" secs"))
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= secs)
    })
}

/// How the relay goes away in [`relay_back`].
#[derive(Clone, Copy, PartialEq)]
enum Away {
    /// Its sshd gone, every connection refused (a reboot): `-M 0`, poll 600.
    SshdGone,
    /// Its replies dropped far away, nothing changing on this host: loop
    /// mode, poll 60, ssh ending by its own keepalives.
    Unreachable,
    /// As `SshdGone`, ssh going through a `ProxyCommand` (socat): there is
    /// no door of ssh's own to knock on.
    SshdGoneProxied,
}

/// `program` with the relay away as `away` says until the backoff waits
/// `wait` s or more, then back: how long until the forward works again.
fn relay_back(program: &str, away: Away, wait: u64) -> (Duration, Fake, Running, Remote) {
    let mut remote = Remote::new();
    let fake = Fake::new("knock");
    let user = free_pair();
    let port = free_pair().to_string();
    let (spec, poll, options): (&str, &str, &[&str]) = match away {
        Away::SshdGone => ("0", "600", &[]),
        Away::Unreachable => (
            &port,
            "60",
            &["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2"],
        ),
        Away::SshdGoneProxied => ("0", "600", &["-o", "ProxyCommand=socat - TCP:%h:%p"]),
    };
    let c = command_with(program, &fake, &remote, spec, user, poll, options);
    let r = Running::start(c);
    assert!(
        wait_until(SLOW_LIMIT, || echo_through(user)),
        "{:?}",
        fake.messages()
    );
    // The door is found 5 s after ssh started.
    std::thread::sleep(Duration::from_secs(6));
    match away {
        Away::SshdGone | Away::SshdGoneProxied => remote.stop_sshd(true),
        Away::Unreachable => remote.cut_far(true),
    }
    // The quick starts, then waits of 2, 8, 18 s... The relay comes back
    // as the wait asked for begins.
    assert!(
        wait_until(Duration::from_secs(90), || waited(&fake, wait)),
        "{:?}",
        fake.messages()
    );
    match away {
        Away::SshdGone | Away::SshdGoneProxied => remote.start_sshd(),
        Away::Unreachable => remote.cut_far(false),
    }
    let back = Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || echo_through(user)),
        "{:?}",
        fake.messages()
    );
    (back.elapsed(), fake, r, remote)
}

/// The relay's sshd gone long enough for the backoff's waits to grow, then
/// back just as a long wait began: the knocks find it within about a
/// second, and ssh starts at once instead of at the wait's end. With -M 0
/// and the default poll (600 s), where the waits grow past a minute.
#[test]
fn the_relay_back_ends_the_wait() {
    if !can_run() {
        return;
    }
    let (took, fake, r, _remote) = relay_back(autossh_bin(), Away::SshdGone, 18);
    eprintln!("the relay back: forward back {took:?} after");
    assert!(fake.wait_log("relay unreachable: ", LIMIT));
    assert!(fake.wait_log("answers again; starting ssh now", LIMIT));
    // About a second for the knock, and the login; waiting out the timer
    // would take 18 s at the least.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(children_of(r.pid).0.len(), 1, "{:?}", fake.messages());
    r.stop();
    bench_line(
        "relay's sshd back after a wait of 18 s began (-M 0)",
        took,
        || {
            let (took, _, r, _remote) = relay_back(REFERENCE, Away::SshdGone, 18);
            // (The original may not end on SIGTERM in a wait: killed.)
            drop(r);
            took
        },
    );
}

/// The relay unreachable (its replies dropped far away: knocks go
/// unanswered, not refused), then reachable again as a wait of 18 s began:
/// in loop mode at poll 60, the forward is back within seconds too.
#[test]
fn the_relay_reachable_again_ends_the_wait() {
    if !can_run() {
        return;
    }
    let (took, fake, r, remote) = relay_back(autossh_bin(), Away::Unreachable, 18);
    eprintln!("the relay reachable again: forward back {took:?} after");
    let unreachable = format!(
        "relay unreachable: {}:22: Connection timed out",
        remote.addr
    );
    assert!(fake.wait_log(&unreachable, LIMIT), "{:?}", fake.messages());
    assert!(
        fake.wait_log("answers again; starting ssh now", LIMIT),
        "{:?}",
        fake.messages()
    );
    // A knock (its SYN sent again within a second) and the login; the
    // timer would take 18 s at the least.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(children_of(r.pid).0.len(), 1, "{:?}", fake.messages());
    r.stop();
    bench_line(
        "relay reachable again after a wait of 18 s began (loop, poll 60)",
        took,
        || {
            let (took, _, r, _remote) = relay_back(REFERENCE, Away::Unreachable, 18);
            drop(r);
            took
        },
    );
}

/// Through a `ProxyCommand`, ssh has no connection of its own to the
/// relay: nothing is knocked on, and the backoff's wait is kept.
#[test]
fn a_proxied_ssh_gets_no_knock() {
    if !can_run() || !requires(have_socat(), "socat") {
        return;
    }
    let (took, fake, r, _remote) = relay_back(autossh_bin(), Away::SshdGoneProxied, 8);
    // The wait of 8 s ran out: a knock would have ended it within about a
    // second of the sshd's return.
    assert!(
        took > Duration::from_secs(5),
        "{took:?}: {:?}",
        fake.messages()
    );
    assert_eq!(fake.count_log("relay unreachable"), 0);
    assert_eq!(fake.count_log("answers again"), 0);
    r.stop();
}

/// A relay that answers but refuses the key: the first knock of each wait
/// finds the door open, so knocking stops there and the backoff's waits
/// are kept; no restart storm.
#[test]
fn a_relay_that_refuses_gets_no_more_starts() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    let fake = Fake::new("knockkey");
    let user = free_pair();
    let r = Running::start(command(autossh_bin(), &fake, &remote, "0", user, "600"));
    assert!(
        wait_until(SLOW_LIMIT, || echo_through(user)),
        "{:?}",
        fake.messages()
    );
    std::thread::sleep(Duration::from_secs(6));
    remote.refuse_keys();
    let ssh = children_of(r.pid).0;
    assert_eq!(ssh.len(), 1);
    signal(ssh[0], libc::SIGKILL);
    // Quick starts, refused at once, until a wait of 8 s.
    assert!(
        wait_until(Duration::from_secs(60), || waited(&fake, 8)),
        "{:?}",
        fake.messages()
    );
    let starts = fake.count_log("starting ssh");
    // The wait is kept: no start within 5 s (a knock that ended it would
    // start one within about a second).
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        fake.count_log("starting ssh"),
        starts,
        "{:?}",
        fake.messages()
    );
    assert_eq!(fake.count_log("answers again"), 0);
    assert_eq!(fake.count_log("relay unreachable"), 0);
    r.stop();
}

/// `program` (loop mode, poll 600) against a relay where an earlier
/// session holds the monitor port for `hold` s: the waits it made
/// meanwhile, and how long after the release the forward works again.
fn held_port(program: &str, hold: u64) -> (Vec<String>, Duration, Fake, Running, Remote) {
    let remote = Remote::new();
    let fake = Fake::new("held");
    let (port, user) = (free_pair(), free_pair());
    let mut stale_args = remote.ssh_args(free_pair());
    let host = stale_args.pop().unwrap();
    stale_args.extend(["-R".to_string(), format!("{port}:127.0.0.1:9"), host]);
    let mut stale = std::process::Command::new("/usr/bin/ssh")
        .args(&stale_args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(SLOW_LIMIT, || remote.listening(port)));
    let state = fake.dir.path("state");
    let mut c = command(program, &fake, &remote, &port.to_string(), user, "600");
    c.env("AUTOSSH_STATEFILE", &state);
    let r = Running::start(c);
    assert!(
        wait_until(SLOW_LIMIT, || fake
            .count_log("ssh exited with error status 255")
            >= 1),
        "{:?}",
        fake.messages()
    );
    if program == autossh_bin() {
        let held = format!("the relay still holds port {port} for an earlier session");
        assert!(fake.wait_log(&held, SLOW_LIMIT), "{:?}", fake.messages());
        assert!(wait_until(LIMIT, || std::fs::read_to_string(&state)
            .unwrap_or_default()
            .contains(&format!("reason={held}"))));
    }
    std::thread::sleep(Duration::from_secs(hold));
    let waits: Vec<String> = fake
        .messages()
        .into_iter()
        .filter(|m| m.starts_with("sleeping for grace time "))
        .collect();
    let _ = stale.kill();
    let _ = stale.wait();
    let released = Instant::now();
    assert!(
        wait_until(Duration::from_secs(90), || echo_through(user)),
        "{:?}",
        fake.messages()
    );
    (waits, released.elapsed(), fake, r, remote)
}

/// An earlier session holds the remote port on the relay for a while (here
/// 25 s, poll 600): every new ssh is refused the forward, and is started
/// again every 2 s instead of after the backoff's growing waits; the
/// tunnel is back within seconds of the release, and the state file says
/// why it was not.
#[test]
fn a_held_port_is_found_soon_after_its_release() {
    if !can_run() {
        return;
    }
    let (waits, took, _fake, r, _remote) = held_port(autossh_bin(), 25);
    // A steady pace: the backoff would have waited 2, 8 and 18 s by now.
    assert!(waits.len() >= 8, "{waits:?}");
    assert!(
        waits.iter().all(|w| w == "sleeping for grace time 2 secs"),
        "{waits:?}"
    );
    eprintln!("held port: forward back {took:?} after its release");
    // Within a retry and a login; the backoff would be in a wait of 32 s.
    assert!(took < Duration::from_secs(10), "{took:?}");
    r.stop();
    bench_line("remote port released after 25 s held (loop)", took, || {
        let (_, took, _, r, _remote) = held_port(REFERENCE, 25);
        // (The original may not end on SIGTERM in a wait: killed.)
        drop(r);
        took
    });
}

/// Held for 3 minutes, where the backoff's waits would have grown to a
/// minute: still every 2 s (the pace of the first five minutes), and back
/// within seconds of the release.
#[test]
fn a_port_held_for_minutes_is_found_as_soon() {
    if !can_run() {
        return;
    }
    let (waits, took, _fake, r, _remote) = held_port(autossh_bin(), 180);
    assert!(waits.len() >= 60, "{waits:?}");
    assert!(
        waits.iter().all(|w| w == "sleeping for grace time 2 secs"),
        "{waits:?}"
    );
    eprintln!("held port (3 min): forward back {took:?} after its release");
    assert!(took < Duration::from_secs(10), "{took:?}");
    r.stop();
    bench_line("remote port released after 3 min held (loop)", took, || {
        let (_, took, _, r, _remote) = held_port(REFERENCE, 180);
        drop(r);
        took
    });
}

/// `program` (-M 0, no ConnectTimeout) started while the relay is away:
/// its sshd gone and nothing coming back from it (a host that is down);
/// the path mended and the sshd back 20 s after the start. How long until
/// the forward works.
fn stuck_connecting(program: &str) -> (Duration, Fake, Running, Remote) {
    let mut remote = Remote::new();
    let fake = Fake::new("stuck");
    let user = free_pair();
    remote.stop_sshd(true);
    remote.cut_far(true);
    let mut c = fake.command(program, &["-M", "0"]);
    let mut args = remote.ssh_args(user);
    let at = args.iter().position(|a| a == "ConnectTimeout=2").unwrap();
    args.drain(at - 1..=at);
    c.args(&args)
        .env("AUTOSSH_PATH", "/usr/bin/ssh")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_LOGLEVEL", "7")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let began = Instant::now();
    let r = Running::start(c);
    // Past ssh's SYN at 15 s (or 18 s): its next is 11 s or more away.
    std::thread::sleep(Duration::from_secs(20).saturating_sub(began.elapsed()));
    assert!(!echo_through(user));
    assert_eq!(fake.count_log("starting ssh"), 1, "{:?}", fake.messages());
    let mended = Instant::now();
    remote.cut_far(false);
    remote.start_sshd();
    assert!(
        wait_until(Duration::from_secs(60), || echo_through(user)),
        "{:?}",
        fake.messages()
    );
    (mended.elapsed(), fake, r, remote)
}

/// An ssh without ConnectTimeout started while the relay is away sits in
/// connect (SYN-SENT), and would get through only at its next SYN
/// retransmission: 31 s after its start (then 63 s), or with Linux 6.5's
/// linear first timeouts, 34 s. Its door is knocked on; once the relay
/// answers, ssh is replaced at once.
#[test]
fn an_ssh_stuck_connecting_is_replaced_when_the_relay_answers() {
    if !can_run() {
        return;
    }
    let (took, fake, r, _remote) = stuck_connecting(autossh_bin());
    eprintln!("stuck connecting: forward back {took:?} after the path was mended");
    assert_eq!(
        fake.count_log("ssh is still connecting to "),
        1,
        "{:?}",
        fake.messages()
    );
    // A knock and a login; ssh's own SYN would come 11 s after the mend.
    assert!(took < Duration::from_secs(8), "{took:?}");
    r.stop();
    bench_line(
        "relay back, ssh stuck connecting (-M 0, no ConnectTimeout)",
        took,
        || {
            let (took, _, r, _remote) = stuck_connecting(REFERENCE);
            // (The original may not end on SIGTERM in a wait: killed.)
            drop(r);
            took
        },
    );
}
