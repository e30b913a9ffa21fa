//! The connection test (SPEC §6), black-box: the fake ssh plays the monitor
//! forwards with socat (healthy, swallowing, answering wrong, refusing,
//! frozen), and the reference runs beside ours where it is installed.

mod common;

use std::fs;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;

/// Starts autossh on `spec` with the fake ssh playing `plan`, poll `poll` s.
fn start(program: &str, fake: &Fake, spec: &str, plan: &str, poll: &str) -> Running {
    let mut c = fake.command(program, &["-M", spec, "-N", "host"]);
    c.env("FAKE_PLAN", plan)
        .env("AUTOSSH_POLL", poll)
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_LOGLEVEL", "7");
    Running::start(c)
}

#[test]
fn healthy_tunnels_are_left_alone() {
    if !have_socat() {
        return;
    }
    for (mode, plan) in [("loop", "fwd:loop"), ("echo", "fwd:echo")] {
        let fake = Fake::new("healthy");
        let port = free_pair();
        let spec = if mode == "loop" {
            port.to_string()
        } else {
            format!("{port}:7")
        };
        let r = start(autossh_bin(), &fake, &spec, plan, "1");
        assert!(
            wait_until(LIMIT, || fake.count_log("connection ok") >= 3),
            "{mode}: {:?}",
            fake.messages()
        );
        assert_eq!(fake.runs(), 1, "{mode}");
        assert_eq!(fake.count_log("port down"), 0, "{mode}");
        r.stop();
    }
}

#[test]
fn probe_line_is_name_pid_id_message() {
    if !have_socat() {
        return;
    }
    let fake = Fake::new("line");
    let port = free_pair();
    let mut c = fake.autossh(&["-M", &format!("{port}:7"), "host"]);
    c.env("FAKE_PLAN", "fwd:record")
        .env("AUTOSSH_POLL", "1")
        .env("AUTOSSH_MESSAGE", "hello there");
    let r = Running::start(c);
    let received = fake.dir.path("received");
    assert!(wait_until(LIMIT, || fs::read(&received)
        .is_ok_and(|b| b.len() > 10 && b.ends_with(b"\r\n"))));
    let text = fs::read_to_string(&received).unwrap();
    let line = text.split("\r\n").next().unwrap();
    let nodename = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let fields: Vec<&str> = line.splitn(5, ' ').collect();
    assert_eq!(fields[0], nodename.trim());
    assert_eq!(fields[1], "autossh");
    assert_eq!(fields[2], r.pid.to_string());
    assert!(fields[3].parse::<u64>().is_ok(), "{line:?}");
    assert_eq!(fields[4], "hello there");
    r.stop();
}

/// The poll of the detection tests: their first test at 4 s, each read
/// given 2 s (half the poll). Long enough that a test that ends when it
/// should and one that waits for something more (another poll, a read past
/// the net timeout) are seconds apart, whatever else the machine is doing.
const POLL: &str = "4";

/// Seconds from the first start until `port down` for the given plan, and
/// the log's messages.
fn detection(
    program: &str,
    spec_of: impl Fn(u16) -> String,
    plan: &str,
) -> (Duration, Vec<String>) {
    let (took, messages, _) = detection_text(program, spec_of, plan);
    (took, messages)
}

/// As [`detection`], with the log's whole text.
fn detection_text(
    program: &str,
    spec_of: impl Fn(u16) -> String,
    plan: &str,
) -> (Duration, Vec<String>, String) {
    let fake = Fake::new("detect");
    let port = free_pair();
    let began = Instant::now();
    let r = start(program, &fake, &spec_of(port), plan, POLL);
    assert!(
        fake.wait_log("port down, restarting ssh", LIMIT),
        "{program} {plan}: {:?}",
        fake.messages()
    );
    let took = began.elapsed();
    assert!(
        wait_until(LIMIT, || fake.runs() >= 2),
        "{program} {plan}: not restarted"
    );
    let text = fake.log_text();
    r.stop();
    (took, messages_of(&text), text)
}

fn loop_spec(port: u16) -> String {
    port.to_string()
}

fn echo_spec(port: u16) -> String {
    format!("{port}:7")
}

#[test]
fn dead_loop_is_restarted_within_poll_and_timeout() {
    if !have_socat() {
        return;
    }
    // The first test at 4 s, its accept gives up at 6 s. Waiting for one
    // more test (a poll after this one's end) would take until 12 s, the
    // full 15 s net timeout until 19 s.
    let (took, m) = detection(autossh_bin(), loop_spec, "fwd:swallow");
    assert!(took < Duration::from_secs(8), "{took:?}");
    let i = m
        .iter()
        .position(|l| l == "port down, restarting ssh")
        .unwrap();
    assert_eq!(m[i - 1], "timeout polling to accept read connection");
}

#[test]
fn dead_echo_is_restarted() {
    if !have_socat() {
        return;
    }
    // The echo test reads twice for 2 s each before it gives up: down at
    // 8 s (a third read is ruled out by the count below); one more test
    // would start a poll after this one's end and fail at 16 s.
    let (took, m) = detection(autossh_bin(), echo_spec, "fwd:swallow");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(
        m.iter()
            .filter(|l| *l == "timeout on io poll, looping to accept again")
            .count(),
        2
    );
}

#[test]
fn wrong_answers_fail_after_a_second_attempt() {
    if !have_socat() {
        return;
    }
    // Echo mode: the wrong line, then on the same connection nothing more
    // (the fake has closed it): two comparisons, two failures, then down.
    // (The lines quote the test line, CR LF and all, as the original's do:
    // they are read from the log's text.)
    let (_, m, text) = detection_text(autossh_bin(), echo_spec, "fwd:wrong");
    let down = text.find("port down, restarting ssh").unwrap();
    assert_eq!(
        text[..down].matches("not what I sent: ").count(),
        2,
        "{m:?}"
    );
    assert!(text[..down].contains("\" : \"wrong\n\""), "{m:?}");
    let i = m
        .iter()
        .position(|l| l == "port down, restarting ssh")
        .unwrap();
    assert_eq!(m[i - 1], "tried connection 2 times and failed", "{m:?}");
    // Loop mode: the wrong line comes back through the return port; the
    // second attempt waits for another connection, which never comes.
    let (_, m, text) = detection_text(autossh_bin(), loop_spec, "fwd:wrongloop");
    let down = text.find("port down, restarting ssh").unwrap();
    assert_eq!(
        text[..down].matches("not what I sent: ").count(),
        1,
        "{m:?}"
    );
    assert!(text[..down].contains("\" : \"bogusbogus"), "{m:?}");
    let i = m
        .iter()
        .position(|l| l == "port down, restarting ssh")
        .unwrap();
    assert_eq!(m[i - 1], "timeout polling to accept read connection");
}

#[test]
fn refused_connection_fails_at_once() {
    let port = free_pair();
    // Down at the first test, 4 s after the start; waiting for a second
    // test would take until 8 s.
    let (took, m) = detection(autossh_bin(), |_| port.to_string(), "hang");
    assert!(took < Duration::from_secs(6), "{took:?}");
    let i = m
        .iter()
        .position(|l| l == "port down, restarting ssh")
        .unwrap();
    assert_eq!(m[i - 1], format!("127.0.0.1:{port}: Connection refused"));
}

#[test]
fn frozen_ssh_is_replaced() {
    if !have_socat() {
        return;
    }
    let fake = Fake::new("frozen");
    let port = free_pair();
    let r = start(autossh_bin(), &fake, &port.to_string(), "fwd:loop", "2");
    assert!(fake.wait_log("connection ok", LIMIT));
    let first = fake.pids()[0];
    signal(first, libc::SIGSTOP);
    assert!(fake.wait_log("port down, restarting ssh", LIMIT));
    assert!(wait_until(LIMIT, || fake.runs() >= 2));
    assert!(
        wait_until(LIMIT, || !alive(first)),
        "the frozen ssh is still there"
    );
    // The new one passes its tests.
    let ok_before = fake.count_log("connection ok");
    assert!(wait_until(LIMIT, || fake.count_log("connection ok") > ok_before));
    r.stop();
}

/// `program` on a swallowing echo tunnel, once its first test is under way:
/// with a poll of 10 s that test lasts 10 s (two reads of 5 s, from 10 s
/// after the start), so whatever waits for its end waits seconds.
fn in_a_long_test(program: &str, tag: &str) -> (Fake, Running) {
    let fake = Fake::new(tag);
    let port = free_pair();
    let r = start(program, &fake, &echo_spec(port), "fwd:swallow", "10");
    assert!(fake.wait_log("ssh child pid is", LIMIT), "{program}");
    in_a_test(&r, &fake, port);
    (fake, r)
}

/// HUP and TERM in the middle of a test: how long `program` took to exit,
/// its status, and the fake.
fn signalled_mid_test(program: &str) -> (Duration, Option<i32>, Fake) {
    let (fake, mut r) = in_a_long_test(program, "midprobe");
    let asked = Instant::now();
    r.signal(libc::SIGHUP);
    r.signal(libc::SIGTERM);
    let status = r.wait(LIMIT);
    (asked.elapsed(), status, fake)
}

/// ssh killed in the middle of a test: how long until `program` started the
/// next, and the fake.
fn killed_mid_test(program: &str) -> (Duration, Fake) {
    let (fake, r) = in_a_long_test(program, "deathmid");
    let killed = Instant::now();
    signal(fake.pids()[0], libc::SIGKILL);
    assert!(
        wait_until(LIMIT, || fake.runs() >= 2),
        "{program}: not restarted"
    );
    let took = killed.elapsed();
    r.stop();
    (took, fake)
}

#[test]
fn signals_are_handled_mid_probe() {
    if !have_socat() {
        return;
    }
    let (took, status, fake) = signalled_mid_test(autossh_bin());
    assert_eq!(status, Some(1));
    // At once, not once the test is over (seconds later).
    assert!(took < Duration::from_secs(3), "{took:?}");
    let m = fake.messages();
    assert_eq!(m.last().unwrap(), "received signal to exit (15)");
    assert_eq!(fake.count_log("port down"), 0, "{m:?}");
    bench_line("signal to exit mid-test", took, || {
        signalled_mid_test(REFERENCE).0
    });
}

#[test]
fn ssh_death_mid_probe_is_seen_at_once() {
    if !have_socat() {
        return;
    }
    let (took, fake) = killed_mid_test(autossh_bin());
    // At once, not once the test is over (seconds later).
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(
        fake.count_log("ssh exited on signal 9, restarting ssh"),
        1,
        "{:?}",
        fake.messages()
    );
    assert_eq!(fake.count_log("port down"), 0);
    bench_line("ssh's death mid-test to the next start", took, || {
        killed_mid_test(REFERENCE).0
    });
}

#[test]
fn busy_return_port_is_fatal() {
    let fake = Fake::new("bind");
    let port = free_pair();
    let _holder = TcpListener::bind(("127.0.0.1", port + 1)).unwrap();
    let mut c = fake.autossh(&["-M", &port.to_string(), "host"]);
    c.env("FAKE_PLAN", "hang");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    let message = format!(
        "bind on 127.0.0.1:{}: {}",
        port + 1,
        os_words("Address already in use")
    );
    assert_eq!(fake.messages(), vec![message.clone()]);
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!("autossh: {message}\n")
    );
    assert_eq!(fake.runs(), 0);
}

#[test]
fn stale_connections_do_not_fail_a_test() {
    if !have_socat() {
        return;
    }
    let fake = Fake::new("stale");
    let port = free_pair();
    let r = start(autossh_bin(), &fake, &port.to_string(), "fwd:loop", "1");
    assert!(fake.wait_log("ssh child pid is", LIMIT));
    // A stranger connects to the return port between tests and says nothing.
    let _stranger = std::net::TcpStream::connect(("127.0.0.1", port + 1)).unwrap();
    assert!(wait_until(LIMIT, || fake.count_log("connection ok") >= 2));
    assert_eq!(fake.count_log("port down"), 0);
    // Closed before the test, it cost not even a second attempt.
    assert_eq!(
        fake.count_log("timeout on io poll"),
        0,
        "{:?}",
        fake.messages()
    );
    assert_eq!(fake.count_log("tried connection 2 times"), 0);
    r.stop();
}

/// Connections to the return port from ssh's own family (here two of its
/// children's, silent), left from before a test, are closed before it
/// sends: ssh's though they are, they cannot cost it its tries.
#[test]
fn stale_connections_of_ssh_are_drained_before_a_test() {
    if !have_socat() {
        return;
    }
    let fake = Fake::new("stale-ssh");
    let port = free_pair();
    let r = start(
        autossh_bin(),
        &fake,
        &port.to_string(),
        "fwd:staleloop",
        "2",
    );
    assert!(
        wait_until(SLOW_LIMIT, || fake.count_log("connection ok") >= 2),
        "{:?}",
        fake.messages()
    );
    // Taken for the test's own, each would have cost a wait of the network
    // timeout and a try: the test failed after two.
    assert_eq!(
        fake.count_log("timeout on io poll"),
        0,
        "{:?}",
        fake.messages()
    );
    assert_eq!(fake.count_log("port down"), 0);
    assert_eq!(fake.runs(), 1);
    r.stop();
}

#[test]
fn idle_between_probes_makes_no_system_call() {
    if !have_tool("/usr/bin/strace", "strace") {
        return;
    }
    if !have_socat() {
        return;
    }
    let fake = Fake::new("idle");
    let port = free_pair();
    let mut c = fake.autossh(&["-M", &port.to_string(), "host"]);
    c.env("FAKE_PLAN", "fwd:loop")
        .env("AUTOSSH_POLL", "600")
        .env("AUTOSSH_FIRST_POLL", "1")
        .env("AUTOSSH_LOGLEVEL", "7");
    let r = Running::start(c);
    assert!(fake.wait_log("connection ok", LIMIT));
    assert_idle(r.pid, &fake.messages());
    r.stop();
}

/// Private memory of `pid`'s heap, in kB, from /proc/PID/smaps.
fn heap_kb(pid: i32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut in_heap = false;
    let mut kb = 0;
    for line in smaps.lines() {
        if line.contains('-') && line.split_whitespace().count() >= 5 {
            in_heap = line.ends_with("[heap]");
        } else if in_heap && line.starts_with("Private_Dirty:") {
            kb += line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    kb
}

/// A connection test reads who owns the monitor port from the host's socket
/// table: however long that table is (a host with thousands of sockets), the
/// instance's heap stays what it was, since only the lines that matter are
/// kept and free memory goes back after the test.
#[test]
fn memory_does_not_grow_with_the_hosts_sockets() {
    if std::env::var_os("AUTOSSH_BIN").is_some() {
        // Under qemu-user the heap measured would be qemu's.
        eprintln!("skipped: runs natively only (qemu-user is not what is measured)");
        return;
    }
    if !have_socat() {
        return;
    }
    // 2,000 sockets of this test's own: a table of about 300 kB.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let many = (limit.rlim_cur as usize).saturating_sub(1024).min(2000);
    assert!(
        many >= 1000,
        "too few descriptors allowed: {}",
        limit.rlim_cur
    );
    let held: Vec<std::net::TcpListener> = (0..many)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let fake = Fake::new("heapgrow");
    let port = free_pair();
    let mut c = fake.autossh(&["-M", &port.to_string(), "host"]);
    c.env("FAKE_PLAN", "fwd:loop")
        .env("AUTOSSH_POLL", "2")
        .env("AUTOSSH_FIRST_POLL", "1")
        .env("AUTOSSH_LOGLEVEL", "7");
    let r = Running::start(c);
    // Three tests, each reading the whole table.
    assert!(wait_until(SLOW_LIMIT, || fake.count_log("connection ok") >= 3));
    // Between tests: the last one's trim follows its log line. A heap that
    // grew with the table stays grown (420 kB it was), so waiting for it
    // to be small cannot pass a heap that grows. (28 kB here, in the
    // debug build.)
    let mut kb = 0;
    let small = wait_until(Duration::from_secs(10), || {
        kb = heap_kb(r.pid);
        kb <= 48
    });
    assert!(
        small,
        "heap of {kb} kB after reading a table of {many} sockets"
    );
    drop(held);
    r.stop();
}

#[test]
fn detects_no_later_than_the_original() {
    if !have_reference() || !have_socat() {
        return;
    }
    for (spec_of, plan) in [
        (loop_spec as fn(u16) -> String, "fwd:swallow"),
        (echo_spec, "fwd:swallow"),
        (loop_spec, "hang"),
    ] {
        let (theirs, their_log) = detection(REFERENCE, spec_of, plan);
        let (ours, our_log) = detection(autossh_bin(), spec_of, plan);
        let mode = if spec_of(1).contains(':') {
            "echo"
        } else {
            "loop"
        };
        println!(
            "bench: {mode} {plan} detected, poll {POLL} s: ours {:.3}s, original {:.3}s",
            ours.as_secs_f64(),
            theirs.as_secs_f64()
        );
        // Not slower: a detection that waited for one more test would come
        // a poll (4 s) after the original's; half of it is the margin.
        assert!(
            ours <= theirs + Duration::from_secs(2),
            "{plan}: ours {ours:?}, theirs {theirs:?}"
        );
        // The same INFO lines up to the restart.
        let info = |m: &[String]| -> Vec<String> {
            m.iter()
                .filter(|l| {
                    l.starts_with("timeout polling")
                        || l.starts_with("port down")
                        || l.contains("Connection refused")
                })
                .take(2)
                .map(|l| l.split(':').next_back().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(info(&our_log), info(&their_log), "{plan}");
    }
}
