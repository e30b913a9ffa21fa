//! End to end with the real OpenSSH: a test remote host in a network namespace
//! of its own (a veth pair, sshd with throwaway keys, an echo service on its
//! loopback), the real ssh as the child, and faults made by taking the link
//! down. Needs root; skips without it, except in CI, where it fails.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;

const LIMIT: Duration = Duration::from_secs(30);

fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen"]
        .iter()
        .all(|p| Path::new(p).exists())
        && have_socat();
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if root && tools && ip {
        return true;
    }
    assert!(
        !in_ci(),
        "end-to-end tests cannot run in CI (root {root}, tools {tools}, ip {ip})"
    );
    false
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test remote host: a namespace reached through a veth pair, running sshd
/// and an echo service. Everything is removed on drop.
struct Remote {
    dir: TempDir,
    ns: String,
    link: String,
    pub addr: Ipv4Addr,
    children: Vec<Child>,
}

impl Remote {
    fn new() -> Remote {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = (std::process::id() % 100_000) * 16 + n;
        let ns = format!("autossh-e2e-{}-{}", std::process::id(), n);
        let link = format!("vah{:05}{:02}", std::process::id() % 100_000, n);
        let peer = format!("van{:05}{:02}", std::process::id() % 100_000, n);
        let slot = id % 16_000;
        let (a, b) = ((slot / 64) as u8, ((slot % 64) * 4) as u8);
        let host_addr = Ipv4Addr::new(10, 200 + (a / 250), a % 250, b + 1);
        let addr = Ipv4Addr::new(10, 200 + (a / 250), a % 250, b + 2);
        let mut remote = Remote {
            dir: TempDir::new("e2e"),
            ns: ns.clone(),
            link: link.clone(),
            addr,
            children: Vec::new(),
        };
        sh(&["ip", "netns", "add", &ns]);
        sh(&[
            "ip", "link", "add", &link, "type", "veth", "peer", "name", &peer,
        ]);
        sh(&["ip", "link", "set", &peer, "netns", &ns]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{host_addr}/30"),
            "dev",
            &link,
        ]);
        sh(&["ip", "link", "set", &link, "up"]);
        let inside = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", ns.as_str()];
            v.extend_from_slice(args);
            sh(&v);
        };
        inside(&["ip", "addr", "add", &format!("{addr}/30"), "dev", &peer]);
        inside(&["ip", "link", "set", &peer, "up"]);
        inside(&["ip", "link", "set", "lo", "up"]);
        remote.start_sshd();
        remote.spawn_inside(&[
            "socat",
            "TCP-LISTEN:7,bind=127.0.0.1,reuseaddr,fork",
            "PIPE",
        ]);
        let ssh_port = SocketAddr::from((addr, 22));
        assert!(
            wait_until(LIMIT, || TcpStream::connect_timeout(
                &ssh_port,
                Duration::from_millis(200)
            )
            .is_ok()),
            "sshd did not come up: {}",
            fs::read_to_string(remote.dir.path("sshd.log")).unwrap_or_default()
        );
        remote
    }

    fn spawn_inside(&mut self, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn start_sshd(&mut self) {
        let d = &self.dir;
        for (key, kind) in [("host_key", "ed25519"), ("id", "ed25519")] {
            sh(&[
                "ssh-keygen",
                "-q",
                "-t",
                kind,
                "-N",
                "",
                "-f",
                d.path(key).to_str().unwrap(),
            ]);
        }
        fs::copy(d.path("id.pub"), d.path("authorized_keys")).unwrap();
        // sshd needs its privilege separation folder.
        let _ = fs::create_dir_all("/run/sshd");
        let config = format!(
            "ListenAddress {addr}:22\nHostKey {dir}/host_key\nAuthorizedKeysFile {dir}/authorized_keys\n\
             PidFile {dir}/sshd.pid\nStrictModes no\nUsePAM no\nPermitRootLogin yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowTcpForwarding yes\n\
             ClientAliveInterval 1\nClientAliveCountMax 2\nLogLevel ERROR\n",
            addr = self.addr,
            dir = d.0.display()
        );
        fs::write(d.path("sshd_config"), config).unwrap();
        let log = fs::File::create(d.path("sshd.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
            ])
            .arg(d.path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// ssh options for a non-interactive client of this host, with a user
    /// forward from local `user_port` to the remote echo service.
    fn ssh_args(&self, user_port: u16) -> Vec<String> {
        let key = self.dir.path("id");
        [
            "-F",
            "/dev/null",
            "-i",
            key.to_str().unwrap(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=2",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "LogLevel=ERROR",
            "-N",
            "-L",
            &format!("{user_port}:127.0.0.1:7"),
            &format!("root@{}", self.addr),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn link(&self, up: bool) {
        sh(&[
            "ip",
            "link",
            "set",
            &self.link,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

/// Whether a line sent to local `port` comes back (through the user forward).
fn echo_through(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    if s.write_all(b"ping\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && &buf == b"ping\n"
}

fn start(
    program: &str,
    fake: &Fake,
    remote: &Remote,
    spec: &str,
    user_port: u16,
    poll: &str,
) -> Running {
    let mut c = fake.command(program, &["-M", spec]);
    c.args(remote.ssh_args(user_port))
        .env("AUTOSSH_PATH", "/usr/bin/ssh")
        .env("AUTOSSH_POLL", poll)
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_LOGLEVEL", "7")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Running::start(c)
}

fn stop(mut r: Running) {
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(LIMIT), Some(1));
}

/// Our autossh (poll 2 s) carrying a user forward to the remote echo service,
/// once that forward works: the fake (for the log), the run, the user port.
fn tunnel_up(remote: &Remote, mode: &str) -> (Fake, Running, u16) {
    let fake = Fake::new("e2e");
    let (port, user) = (free_pair(), free_pair());
    let r = start(AUTOSSH, &fake, remote, &spec(mode, port), user, "2");
    assert!(
        wait_until(LIMIT, || echo_through(user)),
        "{mode}: {:?}",
        fake.messages()
    );
    (fake, r, user)
}

fn spec(mode: &str, port: u16) -> String {
    if mode == "loop" {
        port.to_string()
    } else {
        format!("{port}:7")
    }
}

#[test]
fn healthy_tunnel_is_left_alone() {
    if !can_run() {
        return;
    }
    let remote = Remote::new();
    for mode in ["loop", "echo"] {
        let (fake, r, user) = tunnel_up(&remote, mode);
        assert!(
            wait_until(LIMIT, || fake.count_log("connection ok") >= 3),
            "{mode}: {:?}",
            fake.messages()
        );
        assert_eq!(fake.count_log("starting ssh"), 1, "{mode}");
        assert_eq!(fake.count_log("port down"), 0, "{mode}");
        assert!(echo_through(user));
        stop(r);
    }
}

#[test]
fn cut_link_is_detected_and_tunnel_comes_back() {
    if !can_run() {
        return;
    }
    for mode in ["loop", "echo"] {
        let remote = Remote::new();
        let (fake, r, user) = tunnel_up(&remote, mode);
        assert!(wait_until(LIMIT, || fake.count_log("connection ok") >= 1));

        let cut = Instant::now();
        remote.link(false);
        assert!(
            fake.wait_log("port down, restarting ssh", LIMIT),
            "{mode}: {:?}",
            fake.messages()
        );
        // Poll 2 s + net timeout 1 s (echo mode reads twice), plus scheduling.
        let detected = cut.elapsed();
        let bound = if mode == "loop" { 4000 } else { 5000 };
        assert!(
            detected < Duration::from_millis(bound),
            "{mode}: {detected:?}"
        );

        std::thread::sleep(Duration::from_secs(2));
        let back = Instant::now();
        remote.link(true);
        assert!(
            wait_until(LIMIT, || echo_through(user)),
            "{mode}: forward not back: {:?}",
            fake.messages()
        );
        let recovered = back.elapsed();
        assert!(recovered < Duration::from_secs(10), "{mode}: {recovered:?}");
        eprintln!("{mode}: detected in {detected:?}, forward back {recovered:?} after link up");
        stop(r);
    }
}

#[test]
fn detects_no_later_than_the_original() {
    if !can_run() || !have_reference() {
        return;
    }
    let remote = Remote::new();
    let (ours_fake, theirs_fake) = (Fake::new("e2e-ours"), Fake::new("e2e-theirs"));
    let (p1, u1, p2, u2) = (free_pair(), free_pair(), free_pair(), free_pair());
    let ours = start(AUTOSSH, &ours_fake, &remote, &p1.to_string(), u1, "4");
    let theirs = start(REFERENCE, &theirs_fake, &remote, &p2.to_string(), u2, "4");
    assert!(wait_until(LIMIT, || ours_fake.count_log("connection ok")
        >= 1
        && theirs_fake.count_log("connection ok") >= 1));
    let cut = Instant::now();
    remote.link(false);
    let mut ours_at = None;
    let mut theirs_at = None;
    wait_until(LIMIT, || {
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
    eprintln!("link cut detected: ours {ours_at:?}, original {theirs_at:?}");
    assert!(
        ours_at <= theirs_at + Duration::from_millis(500),
        "ours {ours_at:?}, original {theirs_at:?}"
    );
    remote.link(true);
    stop(ours);
    stop(theirs);
}
