//! ssh's own words (what it writes on its stderr) reach the user: through
//! autossh's stderr where that leads somewhere, into the log where it does
//! not, bounded either way; ssh's stderr is its own only on a terminal.

mod common;

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// A background run (-f) with `plan`, until `max` starts are made; the log's
/// messages.
fn in_the_background(fake: &Fake, plan: &str, max: &str) -> Vec<String> {
    let mut c = fake.autossh(&["-f", "-M", "0", "host"]);
    c.env("FAKE_PLAN", plan).env("AUTOSSH_MAXSTART", max);
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        fake.wait_log("max start count reached", SLOW_LIMIT),
        "{:?}",
        fake.messages()
    );
    fake.messages()
}

#[test]
fn in_the_background_ssh_is_heard_in_the_log() {
    let fake = Fake::new("words-bg");
    let m = in_the_background(&fake, "say:255", "2");
    let pids = fake.pids();
    for pid in &pids {
        let said = format!("ssh: fake ssh {pid} says goodbye");
        let at = m.iter().position(|l| *l == said).expect("ssh's line");
        // Before the line about its end.
        assert_eq!(
            m[at + 1],
            "ssh exited with error status 255; restarting ssh"
        );
    }
    assert_eq!(pids.len(), 2);
}

/// Words of a held port pace the next start only when ssh ended at once
/// after them (`ExitOnForwardFailure`); an ssh that said so at its login
/// and ran on has its end judged as any other: the backoff.
#[test]
fn only_fresh_words_of_a_held_port_pace_the_restart() {
    let fake = Fake::new("words-held");
    let mut c = fake.autossh(&["-f", "-M", "0", "host"]);
    c.env("FAKE_PLAN", "held:0 held:7 held:0")
        .env("AUTOSSH_MAXSTART", "3")
        .env("AUTOSSH_LOGLEVEL", "7");
    assert_eq!(run_bounded(c, LIMIT).status.code(), Some(0));
    assert!(fake.wait_log("max start count reached", SLOW_LIMIT));
    let m = fake.messages();
    let held = "the relay still holds port 2200 for an earlier session; starting ssh again in 2 s";
    let ends: Vec<usize> = m
        .iter()
        .enumerate()
        .filter(|(_, l)| *l == "ssh exited with error status 255; restarting ssh")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ends.len(), 3, "{m:?}");
    // The first ended at once: paced. The second ran 7 s after its words.
    assert_eq!(m[ends[0] + 1], held, "{m:?}");
    assert!(
        m[ends[1]..ends[2]]
            .iter()
            .all(|l| !l.contains("holds port")),
        "{m:?}"
    );
}

#[test]
fn a_redirected_stderr_gets_ssh_lines_unchanged() {
    let fake = Fake::new("words-file");
    let file = fake.dir.path("err");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("FAKE_PLAN", "say:255")
        .env("AUTOSSH_MAXSTART", "1")
        .env("AUTOSSH_GATETIME", "0")
        .stderr(fs::File::create(&file).unwrap());
    let o = run_bounded_child(c.spawn().unwrap(), LIMIT);
    assert_eq!(o.status.code(), Some(0));
    let pid = fake.pids()[0];
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("fake ssh {pid} says goodbye\n")
    );
    assert_eq!(fake.count_log("ssh: "), 0, "{:?}", fake.messages());
    // /dev/null shows nothing: there it is logged.
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("FAKE_PLAN", "say:255")
        .env("AUTOSSH_MAXSTART", "1")
        .env("AUTOSSH_GATETIME", "0")
        .stderr(Stdio::null());
    let o = run_bounded_child(c.spawn().unwrap(), LIMIT);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(fake.count_log("says goodbye"), 1, "{:?}", fake.messages());
}

#[test]
fn on_a_terminal_ssh_has_it_itself() {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes the two descriptors; no name, settings or size.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0);
    // SAFETY: both were just opened and are owned here alone.
    let (_master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let tty = fs::read_link(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        slave.as_raw_fd()
    }))
    .unwrap();
    let fake = Fake::new("words-tty");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("FAKE_PLAN", "stdio")
        .env("AUTOSSH_GATETIME", "0")
        .stderr(Stdio::from(slave));
    let o = run_bounded_child(c.spawn().unwrap(), LIMIT);
    assert_eq!(o.status.code(), Some(0));
    let ssh = fake.pids()[0];
    let links = fs::read_to_string(fake.dir.path(&format!("stdio.{ssh}"))).unwrap();
    assert_eq!(links, format!("/dev/null\n{}\n", tty.display()));
}

#[test]
fn a_chatty_ssh_is_bounded_and_never_waits() {
    let fake = Fake::new("words-chatty");
    let began = Instant::now();
    let m = in_the_background(&fake, "chatty:100000", "1");
    // 100,000 lines through the pipe: ssh was never kept waiting. (Read
    // only at autossh's deadlines, the pipe would fill and ssh wait for the
    // poll, 600 s.)
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
    let chatter = m.iter().filter(|l| l.starts_with("ssh: chatter ")).count();
    assert_eq!(chatter, 20, "{m:?}");
    assert!(
        m.contains(&"ssh: (99980 more lines not logged)".to_string()),
        "{m:?}"
    );
    // The last word, which says most of why, is always there.
    let end = m
        .iter()
        .position(|l| l == "ssh exited with error status 255; restarting ssh")
        .unwrap();
    assert_eq!(m[end - 1], "ssh: the last word");
}

#[test]
fn a_long_line_is_cut() {
    let fake = Fake::new("words-long");
    let m = in_the_background(&fake, "long", "1");
    let line = m
        .iter()
        .find(|l| l.starts_with("ssh: x"))
        .expect("the line");
    assert_eq!(line, &format!("ssh: {} [cut]", "x".repeat(512)));
}
