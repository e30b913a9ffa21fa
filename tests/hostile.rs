//! Hostile files and hostile neighbours: pid and log files that are not what
//! they should be, a log that fills up or disappears, and strangers on the
//! monitor's return port. Supervision must go on, and a dead tunnel must never
//! pass as healthy.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn pid_file_that_is_a_directory() {
    let fake = Fake::new("piddir");
    let dir = fake.dir.path("a-directory");
    fs::create_dir(&dir).unwrap();
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_PIDFILE", &dir).env("FAKE_PLAN", "hang");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    let message = format!("cannot open pid file \"{}\": Is a directory", dir.display());
    assert_eq!(fake.messages().last().unwrap(), &message);
    assert_eq!(fake.runs(), 0);
    assert!(dir.is_dir());
}

#[test]
fn log_file_that_is_a_directory() {
    let fake = Fake::new("logdir");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_LOGFILE", &fake.dir.0)
        .env("FAKE_PLAN", "hang");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!("autossh: {}: Is a directory\n", fake.dir.0.display())
    );
    assert_eq!(fake.runs(), 0);
}

/// Restarts ssh with USR1 `times` times and checks each one happened, with the
/// log in whatever state the test put it.
fn restarts_go_on(fake: &Fake, r: &Running, times: usize) {
    for n in 0..times {
        let before = fake.runs();
        r.signal(libc::SIGUSR1);
        assert!(
            wait_until(LIMIT, || fake.runs() > before),
            "restart {n} did not happen"
        );
        // Let the new ssh settle before prodding again.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(alive(r.pid));
}

#[test]
fn deleted_log_file_does_not_stop_supervision() {
    let fake = Fake::new("logdeleted");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("FAKE_PLAN", "hang");
    let mut r = Running::start(c);
    assert!(fake.wait_log("ssh child pid is", LIMIT));
    fs::remove_file(fake.log_path()).unwrap();
    restarts_go_on(&fake, &r, 3);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
}

/// A small tmpfs, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_does_not_stop_supervision() {
    if !need_root() {
        return;
    }
    let fake = Fake::new("diskfull");
    let mount = fake.dir.path("disk");
    fs::create_dir(&mount).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(status.success());
    let _disk = SmallDisk(mount.clone());
    // Fill it to the last byte.
    let mut filler = fs::File::create(mount.join("filler")).unwrap();
    while filler.write_all(&[0u8; 4096]).is_ok() {}
    let _ = filler.write_all(&[0u8; 1]);
    drop(filler);

    let log = mount.join("autossh.log");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_LOGFILE", &log).env("FAKE_PLAN", "hang");
    let mut r = Running::start(c);
    assert!(wait_until(LIMIT, || fake.runs() == 1));
    restarts_go_on(&fake, &r, 3);
    assert_eq!(fs::metadata(&log).map(|m| m.len()).unwrap_or(0), 0);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
}

/// The local address of the listening TCP socket on `port`, from /proc.
fn listening_address(port: u16) -> Option<String> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (addr, p) = f.get(1)?.split_once(':')?;
        (u16::from_str_radix(p, 16).ok()? == port && f.get(3) == Some(&"0A"))
            .then(|| addr.to_string())
    })
}

#[test]
fn return_listener_is_on_loopback_only() {
    let fake = Fake::new("lo");
    let port = free_pair();
    let mut c = fake.autossh(&["-M", &port.to_string(), "host"]);
    c.env("FAKE_PLAN", "hang");
    let mut r = Running::start(c);
    assert!(fake.wait_log("ssh child pid is", LIMIT));
    // 127.0.0.1 as /proc shows it.
    assert_eq!(listening_address(port + 1).as_deref(), Some("0100007F"));
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
}

#[test]
fn replayed_and_forged_lines_do_not_pass_a_dead_tunnel() {
    if !have_socat() {
        return;
    }
    let fake = Fake::new("replay");
    let port = free_pair();
    // The tunnel swallows everything (recording what it got) and never answers.
    let mut c = fake.autossh(&["-M", &port.to_string(), "host"]);
    c.env("FAKE_PLAN", "fwd:swallowrecord")
        .env("AUTOSSH_POLL", "2")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_LOGLEVEL", "7");
    let mut r = Running::start(c);
    // The first test fails; its line is what the stranger will replay.
    assert!(fake.wait_log("port down, restarting ssh", LIMIT));
    let received = fs::read_to_string(fake.dir.path("received")).unwrap();
    let old = received.split_inclusive("\r\n").next().unwrap().to_string();
    let fields: Vec<&str> = old.split(' ').collect();
    let forged = format!("{} {} {} 12345 \r\n", fields[0], fields[1], fields[2]);
    // A stranger keeps offering both on the return port through the next tests.
    let back = port + 1;
    let stranger = std::thread::spawn(move || {
        for i in 0..150 {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", back)) {
                let line = if i % 2 == 0 { &old } else { &forged };
                let _ = s.write_all(line.as_bytes());
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert!(wait_until(LIMIT, || fake.count_log("port down") >= 3));
    stranger.join().unwrap();
    assert_eq!(fake.count_log("connection ok"), 0, "{:?}", fake.messages());
    // Not even heard: a connection that is not from ssh is closed unread.
    assert!(
        fake.count_log("a connection to the return port not from ssh, closed") > 0,
        "{:?}",
        fake.messages()
    );
    assert_eq!(fake.count_log("not what I sent: "), 0);
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
}
