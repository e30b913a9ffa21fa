//! The test remote host for end-to-end tests with the real OpenSSH: a network
//! namespace of its own reached through a veth pair, sshd with throwaway keys,
//! an echo service on its loopback; and the helpers that run autossh against
//! it. Needs root; `can_run` says whether the tests can run, and fails in CI
//! when they cannot.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;

pub fn can_run() -> bool {
    let tools = ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen"]
        .iter()
        .all(|p| Path::new(p).exists());
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    need_root()
        && requires(
            tools,
            "sshd, ssh or ssh-keygen is missing (.ci/run installs OpenSSH)",
        )
        && requires(ip, "ip is missing (.ci/run installs iproute2)")
        && have_socat()
}

/// Runs `ip -batch -` with `lines` as its commands: one process, so that
/// the changes come in one burst, however busy the machine.
pub fn ip_batch(lines: &[String]) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(lines.join("\n").as_bytes()).unwrap();
    input.write_all(b"\n").unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ip -batch {lines:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sh(args: &[&str]) {
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
pub struct Remote {
    dir: TempDir,
    ns: String,
    link: String,
    pub addr: Ipv4Addr,
    /// This side's address on the link, and a spare one in the same net.
    host_addr: Ipv4Addr,
    spare_addr: Ipv4Addr,
    children: Vec<Child>,
    sshd: Option<Child>,
    /// Whether this remote's net was made unreachable while its link is down.
    unreachable_route: bool,
}

impl Default for Remote {
    fn default() -> Remote {
        Remote::new()
    }
}

impl Remote {
    /// A remote host whose sshd drops a silent client after about 3 s.
    pub fn new() -> Remote {
        Remote::with_client_alive(1, 2)
    }

    /// A remote host whose sshd checks on clients every `interval` seconds and
    /// drops one after `count` unanswered checks.
    pub fn with_client_alive(interval: u32, count: u32) -> Remote {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = (std::process::id() % 100_000) * 16 + n;
        let ns = format!("autossh-e2e-{}-{}", std::process::id(), n);
        let link = format!("vah{:05}{:02}", std::process::id() % 100_000, n);
        let peer = format!("van{:05}{:02}", std::process::id() % 100_000, n);
        // A /29 per remote: this side .1, the remote .2, a spare .3.
        let slot = id % 16_000;
        let (hi, b) = (slot / 32, ((slot % 32) * 8) as u8);
        let (net, a) = (200 + (hi / 250) as u8, (hi % 250) as u8);
        let host_addr = Ipv4Addr::new(10, net, a, b + 1);
        let addr = Ipv4Addr::new(10, net, a, b + 2);
        let spare_addr = Ipv4Addr::new(10, net, a, b + 3);
        let mut remote = Remote {
            dir: TempDir::new("e2e"),
            ns: ns.clone(),
            link: link.clone(),
            addr,
            host_addr,
            spare_addr,
            children: Vec::new(),
            sshd: None,
            unreachable_route: false,
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
            &format!("{host_addr}/29"),
            "dev",
            &link,
        ]);
        sh(&["ip", "link", "set", &link, "up"]);
        // While the link is down (a cut), the remote's net is unreachable
        // from here, as behind a router's own link, instead of sought
        // through this machine's default route, out of the namespaces.
        // (replace: one left by a run that was killed must not stop this one.)
        sh(&[
            "ip",
            "route",
            "replace",
            "unreachable",
            &remote.net(),
            "metric",
            "4000",
        ]);
        remote.unreachable_route = true;
        let inside = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", ns.as_str()];
            v.extend_from_slice(args);
            sh(&v);
        };
        inside(&["ip", "addr", "add", &format!("{addr}/29"), "dev", &peer]);
        inside(&["ip", "link", "set", &peer, "up"]);
        inside(&["ip", "link", "set", "lo", "up"]);
        remote.configure_sshd(interval, count);
        remote.start_sshd();
        remote.spawn_inside(&[
            "socat",
            "TCP-LISTEN:7,bind=127.0.0.1,reuseaddr,fork",
            "PIPE",
        ]);
        remote
    }

    pub fn spawn_inside(&mut self, args: &[&str]) {
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

    fn configure_sshd(&self, interval: u32, count: u32) {
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
             ClientAliveInterval {interval}\nClientAliveCountMax {count}\nLogLevel ERROR\n",
            addr = self.addr,
            dir = d.0.display()
        );
        fs::write(d.path("sshd_config"), config).unwrap();
    }

    /// Starts sshd (again) and waits until it accepts connections.
    pub fn start_sshd(&mut self) {
        let d = &self.dir;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.path("sshd.log"))
            .unwrap();
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
        self.sshd = Some(child);
        let ssh_port = SocketAddr::from((self.addr, 22));
        assert!(
            wait_until(SLOW_LIMIT, || TcpStream::connect_timeout(
                &ssh_port,
                Duration::from_millis(200)
            )
            .is_ok()),
            "sshd did not come up: {}",
            fs::read_to_string(self.dir.path("sshd.log")).unwrap_or_default()
        );
    }

    /// Stops the listening sshd; with `sessions`, also every session it
    /// started (as a crash or a reboot of the remote would).
    pub fn stop_sshd(&mut self, sessions: bool) {
        let Some(mut sshd) = self.sshd.take() else {
            return;
        };
        let pid = sshd.id() as i32;
        if sessions {
            for child in descendants(pid) {
                signal(child, libc::SIGKILL);
            }
        }
        let _ = sshd.kill();
        let _ = sshd.wait();
    }

    /// Whether something listens on TCP `port` inside the remote host.
    pub fn listening(&self, port: u16) -> bool {
        self.listener(port).is_some()
    }

    /// The inode of the socket listening on TCP `port` inside the remote
    /// host, if any: a new listener is told from an old one by it.
    pub fn listener(&self, port: u16) -> Option<u64> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "cat", "/proc/net/tcp"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .find_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let local = f
                    .get(1)
                    .and_then(|a| a.split_once(':'))
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
                (f.get(3) == Some(&"0A") && local == Some(port)).then(|| f.get(9)?.parse().ok())?
            })
    }

    /// ssh options for a non-interactive client of this host, with a user
    /// forward from local `user_port` to the remote echo service.
    pub fn ssh_args(&self, user_port: u16) -> Vec<String> {
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

    /// Runs a command inside the remote host and returns what it printed.
    pub fn run_inside(&self, args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(input);
        let out = run_bounded_child(child, SLOW_LIMIT);
        out.stdout
    }

    /// The /29 of the link.
    fn net(&self) -> String {
        let [a, b, c, d] = self.host_addr.octets();
        format!("{a}.{b}.{c}.{}/29", d & !7)
    }

    /// The remote's host key as a line of known_hosts.
    pub fn known_hosts_line(&self) -> String {
        let public = fs::read_to_string(self.dir.path("host_key.pub")).unwrap();
        let mut f = public.split_whitespace();
        format!(
            "{} {} {}\n",
            self.addr,
            f.next().unwrap(),
            f.next().unwrap()
        )
    }

    /// Lets the holder of `public_key` (a line of id_*.pub) log in as root.
    pub fn authorize(&self, public_key: &str) {
        let mut keys = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path("authorized_keys"))
            .unwrap();
        writeln!(keys, "{}", public_key.trim()).unwrap();
    }

    /// This side's address on the link.
    pub fn client_addr(&self) -> Ipv4Addr {
        self.host_addr
    }

    /// This side moves to another address, as after a new DHCP lease: the old
    /// one goes, the spare one comes.
    pub fn move_client_address(&mut self) {
        let old = format!("{}/29", self.host_addr);
        let new = format!("{}/29", self.spare_addr);
        sh(&["ip", "addr", "del", &old, "dev", &self.link]);
        sh(&["ip", "addr", "add", &new, "dev", &self.link]);
        std::mem::swap(&mut self.host_addr, &mut self.spare_addr);
    }

    pub fn link(&self, up: bool) {
        sh(&[
            "ip",
            "link",
            "set",
            &self.link,
            if up { "up" } else { "down" },
        ]);
    }

    /// From now on the remote host accepts no key: a relay that has not been
    /// given this host's key yet.
    pub fn refuse_keys(&self) {
        fs::write(self.dir.path("authorized_keys"), "").unwrap();
    }

    /// Cuts the path far away (or mends it): everything the remote host
    /// sends to this host is dropped inside its namespace, by a blackhole
    /// route there. This host's links, addresses and routes stay as they are,
    /// so nothing here hears of it: only a test can find it.
    pub fn cut_far(&self, cut: bool) {
        let host = format!("{}/32", self.host_addr);
        let verb = if cut { "add" } else { "del" };
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "ip",
            "route",
            verb,
            "blackhole",
            &host,
        ]);
    }

    /// Cuts the tunnel's path (or mends it) the way `how` names: `link`, this
    /// host's link going down; `far`, [`Remote::cut_far`].
    pub fn cut(&self, how: &str, cut: bool) {
        match how {
            "link" => self.link(!cut),
            "far" => self.cut_far(cut),
            _ => panic!("no cut {how}"),
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Everything still running in the namespace (sessions included).
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse() {
                    signal(pid, libc::SIGKILL);
                }
            }
        }
        for child in self.children.iter_mut().chain(self.sshd.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
        if self.unreachable_route {
            let _ = Command::new("ip")
                .args(["route", "del", "unreachable", &self.net(), "metric", "4000"])
                .output();
        }
    }
}

/// Whether a line sent to local `port` comes back (through the user forward).
pub fn echo_through(port: u16) -> bool {
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

pub fn start(
    program: &str,
    fake: &Fake,
    remote: &Remote,
    spec: &str,
    user_port: u16,
    poll: &str,
) -> Running {
    Running::start(command(program, fake, remote, spec, user_port, poll))
}

/// The command that [`start`] runs.
pub fn command(
    program: &str,
    fake: &Fake,
    remote: &Remote,
    spec: &str,
    user_port: u16,
    poll: &str,
) -> Command {
    command_with(program, fake, remote, spec, user_port, poll, &[])
}

/// As [`command`], with more ssh `options` (before the host).
pub fn command_with(
    program: &str,
    fake: &Fake,
    remote: &Remote,
    spec: &str,
    user_port: u16,
    poll: &str,
    options: &[&str],
) -> Command {
    let mut args = remote.ssh_args(user_port);
    let host = args.pop().unwrap();
    args.extend(options.iter().map(|o| o.to_string()));
    args.push(host);
    let mut c = fake.command(program, &["-M", spec]);
    c.args(args)
        .env("AUTOSSH_PATH", "/usr/bin/ssh")
        .env("AUTOSSH_POLL", poll)
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_LOGLEVEL", "7")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Our autossh (poll 2 s) carrying a user forward to the remote echo service,
/// once that forward works: the fake (for the log), the run, the user port.
pub fn tunnel_up(remote: &Remote, mode: &str) -> (Fake, Running, u16) {
    tunnel_up_polling(remote, mode, "2")
}

/// As [`tunnel_up`], with a poll of `poll` seconds. The first test of each
/// ssh comes 10 s after its start at the soonest: the real ssh's login
/// must not race a short first poll on a busy machine (a lost race is a
/// restart that tests of a healthy tunnel count).
pub fn tunnel_up_polling(remote: &Remote, mode: &str, poll: &str) -> (Fake, Running, u16) {
    let fake = Fake::new("e2e");
    let (port, user) = (free_pair(), free_pair());
    let mut c = command(autossh_bin(), &fake, remote, &spec(mode, port), user, poll);
    let first: u32 = poll.parse().unwrap();
    c.env("AUTOSSH_FIRST_POLL", first.max(10).to_string());
    let r = Running::start(c);
    assert!(
        wait_until(SLOW_LIMIT, || echo_through(user)),
        "{mode}: {:?}",
        fake.messages()
    );
    (fake, r, user)
}

pub fn spec(mode: &str, port: u16) -> String {
    if mode == "loop" {
        port.to_string()
    } else {
        format!("{port}:7")
    }
}
