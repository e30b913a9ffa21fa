//! End to end with the real OpenSSH: a test remote host in a network namespace
//! of its own (a veth pair, sshd with throwaway keys, an echo service on its
//! loopback), the real ssh as the child, and faults made by taking the link
//! down. Needs root; skips without it, except in CI, where it fails.

mod common;

use std::time::{Duration, Instant};

use common::remote::*;
use common::*;

#[test]
fn healthy_tunnel_is_left_alone() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    for mode in ["loop", "echo"] {
        let (fake, r, user) = tunnel_up(&remote, mode);
        assert!(
            wait_until(SLOW_LIMIT, || fake.count_log("connection ok") >= 3),
            "{mode}: {:?}",
            fake.messages()
        );
        assert_eq!(fake.count_log("starting ssh"), 1, "{mode}");
        assert_eq!(fake.count_log("port down"), 0, "{mode}");
        assert!(echo_through(user));
        r.stop();
    }
}

/// Whether ssh was replaced for a dead connection: a failed test, or the
/// link or address of its connection gone.
fn replaced(fake: &Fake) -> bool {
    fake.count_log("port down, restarting ssh") > 0 || fake.count_log("ssh's connection") > 0
}

/// Both cuts: this host's link going down (the network watch hears it, and
/// it is the link of ssh's connection: ssh is replaced at once) and the path
/// cut far away (nothing to hear: the regular poll finds it).
#[test]
fn cut_link_is_detected_and_tunnel_comes_back() {
    if !can_run() {
        return;
    }
    for how in ["link", "far"] {
        for mode in ["loop", "echo"] {
            let remote = Remote::new();
            let (fake, r, user) = tunnel_up_polling(&remote, mode, "4");
            // Cut just after a test has passed: the next one starts a poll
            // (4 s) after it, so when the cut is found says which test
            // found it.
            let passed = fake.count_log("connection ok");
            assert!(wait_until(SLOW_LIMIT, || fake.count_log("connection ok") > passed));

            let cut = Instant::now();
            remote.cut(how, true);
            assert!(
                wait_until(SLOW_LIMIT, || replaced(&fake)),
                "{how} {mode}: {:?}",
                fake.messages()
            );
            if how == "link" {
                // The link of ssh's connection went down: no test needed.
                assert_eq!(fake.count_log("port down"), 0, "{:?}", fake.messages());
            }
            // A far cut is found by the next test: poll 4 s + net timeout 2 s,
            // 6 s (echo mode reads twice: 8 s); had that test been missed,
            // the one after would find it a whole test later (the next
            // starts a poll after the last one's end): 12 s, 16 s. The link
            // is heard at once, where the next test would have taken 6 s.
            let detected = cut.elapsed();
            let bound = match (how, mode) {
                ("link", _) => 4,
                (_, "loop") => 8,
                _ => 10,
            };
            assert!(
                detected < Duration::from_secs(bound),
                "{how} {mode}: {detected:?}"
            );

            std::thread::sleep(Duration::from_secs(2));
            let back = Instant::now();
            remote.cut(how, false);
            assert!(
                wait_until(SLOW_LIMIT, || echo_through(user)),
                "{how} {mode}: forward not back: {:?}",
                fake.messages()
            );
            // Back within seconds: ssh's ConnectTimeout is 2 s and the
            // backoff's waits are capped at the poll, 4 s; 15 s is far past
            // both.
            let recovered = back.elapsed();
            assert!(
                recovered < Duration::from_secs(15),
                "{how} {mode}: {recovered:?}"
            );
            eprintln!(
                "{how} cut, {mode}: detected in {detected:?}, forward back {recovered:?} after the cut ended"
            );
            r.stop();
        }
    }
}

/// Ours and the original side by side, poll 4 s, for each cut: the time
/// from the cut to ssh's replacement (`port down`, or for ours the link of
/// ssh's connection down).
#[test]
fn detects_no_later_than_the_original() {
    if !can_run() || !have_reference() {
        return;
    }
    for how in ["link", "far"] {
        let remote = Remote::new();
        let (ours_fake, theirs_fake) = (Fake::new("e2e-ours"), Fake::new("e2e-theirs"));
        let (p1, u1, p2, u2) = (free_pair(), free_pair(), free_pair(), free_pair());
        let ours = start(autossh_bin(), &ours_fake, &remote, &p1.to_string(), u1, "4");
        let theirs = start(REFERENCE, &theirs_fake, &remote, &p2.to_string(), u2, "4");
        assert!(wait_until(SLOW_LIMIT, || ours_fake
            .count_log("connection ok")
            >= 1
            && theirs_fake.count_log("connection ok") >= 1));
        let cut = Instant::now();
        remote.cut(how, true);
        let mut ours_at = None;
        let mut theirs_at = None;
        wait_until(SLOW_LIMIT, || {
            if ours_at.is_none() && replaced(&ours_fake) {
                ours_at = Some(cut.elapsed());
            }
            if theirs_at.is_none() && theirs_fake.count_log("port down") > 0 {
                theirs_at = Some(cut.elapsed());
            }
            ours_at.is_some() && theirs_at.is_some()
        });
        let (ours_at, theirs_at) = (
            ours_at.expect("ours detected"),
            theirs_at.expect("theirs detected"),
        );
        let what = if how == "link" {
            "link cut"
        } else {
            "remote cut"
        };
        println!(
            "bench: {what} detected, poll 4 s: ours {:.3}s, original {:.3}s",
            ours_at.as_secs_f64(),
            theirs_at.as_secs_f64()
        );

        // Not later: a detection that missed a test would come a poll (4 s)
        // after the original's; half of it is the margin.
        assert!(
            ours_at <= theirs_at + Duration::from_secs(2),
            "{how}: ours {ours_at:?}, original {theirs_at:?}"
        );
        remote.cut(how, false);
        ours.stop();
        theirs.stop();
    }
}

/// In the background, ssh's stderr is /dev/null: its own reason for failing
/// reaches the log all the same.
#[test]
fn a_refused_key_is_told_in_the_log() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    remote.refuse_keys();
    let fake = Fake::new("e2e-refused");
    let pid_file = fake.dir.path("pid");
    let (port, user) = (free_pair(), free_pair());
    let mut c = fake.command(autossh_bin(), &["-f", "-M", &port.to_string()]);
    c.args(remote.ssh_args(user))
        .env("AUTOSSH_PATH", "/usr/bin/ssh")
        .env("AUTOSSH_PIDFILE", &pid_file)
        .env("AUTOSSH_STATEFILE", fake.dir.path("state"));
    assert_eq!(run_bounded(c, SLOW_LIMIT).status.code(), Some(0));
    let told = fake.wait_log("Permission denied (publickey)", SLOW_LIMIT);
    // The state file says so too: not up, with ssh's own words as the reason.
    let state = || std::fs::read_to_string(fake.dir.path("state")).unwrap_or_default();
    let stated = wait_until(SLOW_LIMIT, || {
        let s = state();
        (s.starts_with("state=down\n") || s.starts_with("state=waiting\n"))
            && s.lines()
                .any(|l| l.starts_with("reason=") && l.contains("Permission denied (publickey)"))
    });
    let daemon: Option<i32> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok());
    if let Some(pid) = daemon {
        signal(pid, libc::SIGTERM);
        assert!(wait_until(SLOW_LIMIT, || !exists(pid)));
    }
    assert!(told, "{:?}", fake.messages());
    assert!(stated, "{}", state());
    let m = fake.messages();
    let at = m
        .iter()
        .position(|l| l.starts_with("ssh: ") && l.contains("Permission denied (publickey)"))
        .unwrap();
    assert_eq!(
        m[at + 1],
        "ssh exited with error status 255; restarting ssh"
    );
}

/// The state file's text, or empty.
fn state_of(fake: &Fake) -> String {
    std::fs::read_to_string(fake.dir.path("state")).unwrap_or_default()
}

fn state_says(fake: &Fake, key: &str) -> String {
    state_of(fake)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_default()
}

/// Our autossh against the test remote host with a state file; `extra`
/// ssh arguments go before the destination.
fn with_state(remote: &Remote, fake: &Fake, port: u16, user: u16, extra: &[String]) -> Running {
    let mut args = remote.ssh_args(user);
    let destination = args.pop().unwrap();
    args.extend(extra.iter().cloned());
    args.push(destination);
    let mut c = fake.command(autossh_bin(), &["-M", &port.to_string()]);
    c.args(args)
        .env("AUTOSSH_PATH", "/usr/bin/ssh")
        .env("AUTOSSH_POLL", "2")
        // Each ssh's login has 8 s before its first test: it cannot lose
        // that race however busy the machine (a lost one is a restart).
        .env("AUTOSSH_FIRST_POLL", "8")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_STATEFILE", fake.dir.path("state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    Running::start(c)
}

#[test]
fn the_state_file_follows_a_real_tunnel() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    let fake = Fake::new("e2e-state");
    let (port, user) = (free_pair(), free_pair());
    let r = with_state(&remote, &fake, port, user, &[]);
    let is = |state: &str, starts: &str| {
        wait_until(SLOW_LIMIT, || {
            state_says(&fake, "state") == state && state_says(&fake, "starts") == starts
        })
    };
    // Starting until the first test (8 s after the start) passes.
    assert!(is("starting", "1"), "{}", state_of(&fake));
    assert!(is("up", "1"), "{}: {:?}", state_of(&fake), fake.messages());
    assert!(echo_through(user));
    // ssh killed: down, then up with the next ssh's first test.
    let ssh = children_of(r.pid).0[0];
    signal(ssh, libc::SIGKILL);
    assert!(is("down", "2"), "{}", state_of(&fake));
    assert_eq!(
        state_says(&fake, "reason"),
        "ssh exited on signal 9, restarting ssh"
    );
    assert!(is("up", "2"), "{}: {:?}", state_of(&fake), fake.messages());
    assert!(state_says(&fake, "last_test").ends_with(" passed"));
    r.stop();
    assert_eq!(state_says(&fake, "state"), "exited");
}

/// A remote port held by another session, with ExitOnForwardFailure=yes:
/// the reason says the relay holds it, and ssh's own words are the message.
#[test]
fn a_held_remote_port_is_the_reason() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    let fake = Fake::new("e2e-held");
    let (port, user, held) = (free_pair(), free_pair(), free_pair());
    // Another session holds the port that this tunnel forwards.
    let mut other = remote.ssh_args(free_pair());
    let host = other.pop().unwrap();
    other.extend(["-R".to_string(), format!("{held}:127.0.0.1:9"), host]);
    let mut holder = std::process::Command::new("/usr/bin/ssh")
        .args(&other)
        .env("FAKE_DIR", &fake.dir.0)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(SLOW_LIMIT, || remote.listening(held)));
    let r = with_state(
        &remote,
        &fake,
        port,
        user,
        &["-R".to_string(), format!("{held}:127.0.0.1:9")],
    );
    // The reason is autossh's reading of it; ssh's own words are the
    // message.
    let told = wait_until(SLOW_LIMIT, || {
        state_says(&fake, "reason").contains(&format!(
            "the relay still holds port {held} for an earlier session"
        )) && state_says(&fake, "message").contains("remote port forwarding failed")
    });
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(told, "{}: {:?}", state_of(&fake), fake.messages());
    assert!(matches!(
        state_says(&fake, "state").as_str(),
        "down" | "waiting"
    ));
    assert!(fake.count_log("remote port forwarding failed") >= 1);
    r.stop();
}

/// A host name that cannot be resolved: the resolver's own words. No
/// lookup leaves this machine: the run has a mount namespace of its own
/// whose resolv.conf names 127.0.0.1, where nothing answers.
#[test]
fn an_unknown_host_is_the_reason() {
    if !can_run() {
        return;
    }
    let fake = Fake::new("e2e-unknown");
    std::fs::write(
        fake.dir.path("resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    std::fs::write(fake.dir.path("nsswitch.conf"), "hosts: files dns\n").unwrap();
    let script = format!(
        "mount --bind {d}/resolv.conf /etc/resolv.conf && mount --bind {d}/nsswitch.conf /etc/nsswitch.conf && exec \"$0\" -M 0 -N -o BatchMode=yes -o ConnectTimeout=2 no-such-host.invalid",
        d = fake.dir.0.display()
    );
    let mut c = fake.command(
        "unshare",
        &[
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            autossh_bin(),
        ],
    );
    c.env("AUTOSSH_PATH", "/usr/bin/ssh")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_MAXSTART", "2")
        .env("AUTOSSH_STATEFILE", fake.dir.path("state"))
        .stderr(std::process::Stdio::null());
    let o = run_bounded_child(c.spawn().unwrap(), SLOW_LIMIT);
    assert_eq!(o.status.code(), Some(0), "{:?}", fake.messages());
    let said = fake
        .messages()
        .into_iter()
        .find(|m| m.starts_with("ssh: ") && m.contains("resolve"))
        .unwrap_or_default();
    assert!(
        said.contains("Could not resolve hostname no-such-host.invalid"),
        "{said}: {:?}",
        fake.messages()
    );
    assert_eq!(state_says(&fake, "state"), "exited");
    assert!(
        state_says(&fake, "message").contains("Could not resolve hostname"),
        "{}",
        state_of(&fake)
    );
}
