//! Many restarts without growth, and no child's death missed in any state of
//! the loop.

mod common;

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, Instant};

use common::*;

fn rss_kb(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn two_thousand_restarts_stay_flat() {
    const INSTANCES: usize = 20;
    const STARTS: usize = 100;
    let fakes: Vec<Fake> = (0..INSTANCES).map(|_| Fake::new("soak")).collect();
    let mut runs: Vec<Running> = fakes
        .iter()
        .map(|fake| {
            let mut c = fake.autossh(&["-M", "0", "host"]);
            c.env("FAKE_PLAN", "exit:255")
                .env("AUTOSSH_POLL", "1")
                .env("AUTOSSH_GATETIME", "0")
                .env("AUTOSSH_MAXSTART", STARTS.to_string());
            Running::start(c)
        })
        .collect();
    let mut first: Vec<Option<(usize, u64)>> = vec![None; INSTANCES];
    let mut last: Vec<Option<(usize, u64)>> = vec![None; INSTANCES];
    // pid -> when it was first seen as a zombie.
    let mut zombies: HashMap<i32, Instant> = HashMap::new();
    let mut longest_zombie = Duration::ZERO;
    let end = Instant::now() + Duration::from_secs(240);
    while Instant::now() < end && runs.iter().any(|r| r.child.is_some()) {
        for (i, (fake, r)) in fakes.iter().zip(runs.iter_mut()).enumerate() {
            if r.child.is_none() {
                continue;
            }
            let n = fake.runs();
            // Measured once the quick starts are over and the paths are warm,
            // and again near the end.
            // A sample taken mid-spawn sees the spawn's own short-lived pipe:
            // the fewest descriptors of a window is what the process holds.
            let sample = (fd_count(r.pid), rss_kb(r.pid));
            let keep = |slot: &mut Option<(usize, u64)>| {
                if sample.0 > 0 {
                    *slot = Some(match *slot {
                        Some((fds, _)) => (fds.min(sample.0), sample.1),
                        None => sample,
                    });
                }
            };
            if (20..30).contains(&n) {
                keep(&mut first[i]);
            }
            if (STARTS - 5..STARTS).contains(&n) {
                keep(&mut last[i]);
            }
            // An ssh that a later one has replaced was reaped before that
            // one started: the ssh list is read before the zombies, so a
            // zombie that is not the last ssh is one left behind.
            let pids = fake.pids();
            let (_, seen) = children_of(r.pid);
            let left: Vec<&i32> = seen
                .iter()
                .filter(|z| pids.contains(z) && pids.last() != Some(z))
                .collect();
            assert!(left.is_empty(), "instance {i}: zombies left {left:?}");
            let now = Instant::now();
            zombies.retain(|pid, _| seen.contains(pid));
            for pid in seen {
                let since = *zombies.entry(pid).or_insert(now);
                longest_zombie = longest_zombie.max(now - since);
            }
            let _ = r.wait(Duration::ZERO);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let total: usize = fakes.iter().map(|f| f.runs()).sum();
    eprintln!(
        "soak: {total} ssh starts in {INSTANCES} instances; longest zombie {longest_zombie:?}"
    );
    assert_eq!(total, INSTANCES * STARTS);
    for (i, fake) in fakes.iter().enumerate() {
        assert_eq!(
            fake.messages().last().map(String::as_str),
            Some("max start count reached; exiting"),
            "instance {i}"
        );
        let (fd0, rss0) = first[i].expect("sampled early");
        let (fd1, rss1) = last[i].expect("sampled late");
        eprintln!("instance {i}: fds {fd0} -> {fd1}, rss {rss0} -> {rss1} kB");
        assert_eq!(fd0, fd1, "instance {i}: descriptors grew");
        assert!(rss1 <= rss0 + 64, "instance {i}: rss {rss0} -> {rss1} kB");
    }
    // (How long a zombie lasts is bench/compare's figure, beside the
    // original's: the check here is that none is left behind.)
}

/// Time from SIGKILL of the running ssh to the next ssh's start, as the fake
/// records it.
fn restart_delay(fake: &Fake, ssh: i32) -> Duration {
    let before = fake.runs();
    let killed = Instant::now();
    signal(ssh, libc::SIGKILL);
    assert!(wait_until(Duration::from_secs(10), || fake.runs() > before));
    let took = killed.elapsed();
    // Reaped before the next was started: no zombie waits for a deadline.
    assert!(!exists(ssh), "ssh {ssh} not reaped when the next started");
    took
}

#[test]
fn a_dead_child_is_seen_at_once_in_every_state() {
    // Idle: monitoring off, poll 600 s; ssh killed at varied moments.
    let fake = Fake::new("lost-idle");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("FAKE_PLAN", "hang").env("AUTOSSH_GATETIME", "0");
    let _r = Running::start(c);
    let mut idle = Vec::new();
    // Five kills: six quick starts are free of backoff, so none waits.
    for i in 0..5 {
        assert!(wait_until(Duration::from_secs(10), || fake.runs() == i + 1));
        std::thread::sleep(Duration::from_millis(37 * i as u64));
        let ssh = *fake.pids().last().unwrap();
        idle.push(restart_delay(&fake, ssh));
    }

    // Mid-probe: an echo test of a swallowing tunnel runs from 10 s to 20 s
    // after each start (poll 10 s, net timeout 5 s, two reads); ssh dies in
    // it.
    let mut mid = Vec::new();
    if have_socat() {
        let handles: Vec<_> = (0..5)
            .map(|_| {
                std::thread::spawn(|| {
                    let fake = Fake::new("lost-mid");
                    let port = free_pair();
                    let mut c = fake.autossh(&["-M", &format!("{port}:7"), "host"]);
                    c.env("FAKE_PLAN", "fwd:swallow")
                        .env("AUTOSSH_POLL", "10")
                        .env("AUTOSSH_GATETIME", "0");
                    let r = Running::start(c);
                    assert!(wait_until(Duration::from_secs(10), || fake.runs() == 1));
                    in_a_test(&r, &fake, port);
                    let ssh = fake.pids()[0];
                    let d = restart_delay(&fake, ssh);
                    assert_eq!(fake.count_log("port down"), 0, "{:?}", fake.messages());
                    d
                })
            })
            .collect();
        mid = handles.into_iter().map(|h| h.join().unwrap()).collect();
    }
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    eprintln!(
        "child death to next start: idle max {:?} over {}, mid-probe max {:?} over {}",
        max(&idle),
        idle.len(),
        max(&mid),
        mid.len()
    );
    // Seen at once: a death seen only at the next deadline would wait for
    // the poll in idle (none here: for ever), and for the rest of the test
    // (seconds more) mid-probe.
    assert!(max(&idle) < Duration::from_secs(5), "{idle:?}");
    assert!(max(&mid) < Duration::from_secs(3), "{mid:?}");
}
