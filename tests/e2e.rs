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

/// Both cuts: this host's link going down (the network watch hears it and
/// tests at once) and the path cut far away (nothing to hear: the regular
/// poll finds it).
#[test]
fn cut_link_is_detected_and_tunnel_comes_back() {
    if !can_run() {
        return;
    }
    for how in ["link", "far"] {
        for mode in ["loop", "echo"] {
            let remote = Remote::new();
            let (fake, r, user) = tunnel_up(&remote, mode);
            assert!(wait_until(SLOW_LIMIT, || fake.count_log("connection ok") >= 1));

            let cut = Instant::now();
            remote.cut(how, true);
            assert!(
                fake.wait_log("port down, restarting ssh", SLOW_LIMIT),
                "{how} {mode}: {:?}",
                fake.messages()
            );
            // Poll 2 s + net timeout 1 s (echo mode reads twice), plus scheduling.
            let detected = cut.elapsed();
            let bound = if mode == "loop" { 4000 } else { 5000 };
            assert!(
                detected < allow(Duration::from_millis(bound)),
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
/// from the cut to `port down`.
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
            if ours_at.is_none() && ours_fake.count_log("port down") > 0 {
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
        eprintln!("{what} detected: ours {ours_at:?}, original {theirs_at:?}");

        assert!(
            ours_at <= theirs_at + allow(Duration::from_millis(500)),
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
