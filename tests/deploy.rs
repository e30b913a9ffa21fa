//! What `deploy/` ships, each piece run: the man page, the systemd unit and
//! its example, the Synology rc script.

mod common;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

fn deploy(path: &str) -> String {
    format!("{DEPLOY}/{path}")
}

#[test]
fn man_page_renders_without_warnings_and_covers_everything() {
    let page = fs::read_to_string(deploy("autossh.1")).unwrap();
    for var in VARIABLES {
        assert!(page.contains(var), "the man page lacks {var}");
    }
    for word in [
        "EXIT STATUS",
        "SIGNALS",
        "RESTART RULES",
        "DIFFERENCES",
        "EXAMPLES",
        "systemctl",
        "Synology",
    ] {
        assert!(page.contains(word), "the man page lacks {word}");
    }
    if !have_tool("/usr/bin/groff", "groff-base") {
        return;
    }
    // With the Debian package's other pages.
    for page in [
        "autossh.1",
        "autossh-tunnels.1",
        "rscreen.1",
        "autossh-argv0.1",
    ] {
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(deploy(page))
            .output()
            .unwrap();
        assert!(out.status.success(), "{page}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "groff warnings in {page}"
        );
    }
    // autossh-tunnels' page names every setting it reads.
    let tunnels = fs::read_to_string(deploy("autossh-tunnels.1")).unwrap();
    for var in [
        "AUTOSSH_TUNNELS",
        "AUTOSSH_RUN_DIR",
        "AUTOSSH_STOP_WAIT",
        "AUTOSSH_SSH_OPTIONS",
    ] {
        assert!(tunnels.contains(var), "autossh-tunnels.1 lacks {var}");
    }
}

/// KEY=VALUE lines of an EnvironmentFile.
fn environment_file(path: &str) -> Vec<(String, String)> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

#[test]
fn systemd_unit_and_example_become_ready() {
    let unit = fs::read_to_string(deploy("systemd/autossh@.service")).unwrap();
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert_eq!(exec, "ExecStart=/usr/bin/autossh $SSH_ARGS");
    for line in [
        "Type=notify",
        "Restart=always",
        "EnvironmentFile=/etc/autossh/%i.conf",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    let start_timeout: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStartSec="))
        .unwrap()
        .parse()
        .unwrap();

    // Run the example as systemd would, with the fake ssh in ssh's place and a
    // free monitor port in place of the example's.
    if !have_socat() {
        return;
    }
    let fake = Fake::new("unit");
    let socket_path = fake.dir.path("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = free_pair();
    let mut args = Vec::new();
    let mut c = fake.autossh(&[]);
    for (k, v) in environment_file(&deploy("systemd/example.conf")) {
        if k == "SSH_ARGS" {
            let mut words = v.split_whitespace();
            while let Some(w) = words.next() {
                args.push(w.to_string());
                if w == "-M" {
                    words.next();
                    args.push(port.to_string());
                }
            }
            assert!(!args.iter().any(|a| a.starts_with("-f")));
        } else {
            c.env(k, v);
        }
    }
    c.args(&args)
        .env("FAKE_PLAN", "fwd:loop")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "120000000");
    let began = Instant::now();
    let mut r = Running::start(c);
    let mut ready = false;
    let mut buf = [0u8; 1024];
    while !ready && began.elapsed() < Duration::from_secs(start_timeout) {
        if let Ok(n) = socket.recv(&mut buf) {
            ready = &buf[..n] == b"READY=1";
        }
    }
    assert!(
        ready,
        "not ready within TimeoutStartSec: {:?}",
        fake.messages()
    );
    // Ready after the first test (AUTOSSH_FIRST_POLL, 10 s), well before
    // systemd would give up on the start.
    assert!(began.elapsed() < Duration::from_secs(start_timeout / 2));
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait(SLOW_LIMIT), Some(1));
}

fn path_with_tunnels() -> String {
    let dir = Path::new(tunnels_bin())
        .parent()
        .unwrap()
        .display()
        .to_string();
    format!("{dir}:{}", std::env::var("PATH").unwrap_or_default())
}

fn rc(fake: &Fake, conf: &Path, command: &str) -> (i32, String) {
    let mut c = Command::new("sh");
    c.arg(deploy("synology/autossh.sh"))
        .arg(command)
        .env("AUTOSSH", autossh_bin())
        .env("AUTOSSH_TUNNELS", conf)
        .env("AUTOSSH_RUN_DIR", fake.dir.path("run"))
        // autossh-tunnels: beside AUTOSSH, else (an AUTOSSH_BIN of its own) here.
        .env("PATH", path_with_tunnels());
    let out = run_bounded(c, SLOW_LIMIT);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn synology_rc_script_starts_checks_and_stops_tunnels() {
    let fake = Fake::new("dsm");
    let conf = fake.dir.path("tunnels.conf");
    let ssh = fake.ssh();
    let log = fake.log_path();
    let dir = fake.dir.0.display();
    fs::write(
        &conf,
        format!(
            "# two tunnels, and lines that are wrong\n\
             tunnel one -M 0 -N -R 2200:localhost:22 me@relay\n\
             tunnel\n\
             tunnel two -M 0 -N -L 8080:web:80 me@gw\n\
             tunnel one -N other@host\n\
             \n\
             tunel three -N me@typo\n\
             env two NOBLANK=a b\n\
             env one AUTOSSH_PATH={ssh}\nenv two AUTOSSH_PATH={ssh}\n\
             env one AUTOSSH_LOGFILE={log}\nenv two AUTOSSH_LOGFILE={log}\n\
             env one FAKE_DIR={dir}\nenv two FAKE_DIR={dir}\n\
             env one FAKE_PLAN=hang\nenv two FAKE_PLAN=hang\n",
            ssh = ssh.display(),
            log = log.display(),
        ),
    )
    .unwrap();
    let pid_file = |name: &str| fake.dir.path(&format!("run/{name}.pid"));
    let read_pid = |name: &str| -> i32 {
        fs::read_to_string(pid_file(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };

    assert_eq!(rc(&fake, &conf, "status").0, 3);
    let (code, out) = rc(&fake, &conf, "start");
    assert_eq!(code, 0, "{out}");
    // Each wrong line is named with its number; the good tunnels start.
    let file = conf.display();
    for wrong in [
        format!("{file}:3: a tunnel needs a name"),
        format!("{file}:5: tunnel one is already on line 2"),
        format!("{file}:7: not a tunnel, a setting or a comment: tunel three"),
        format!("{file}:8: a setting is env NAME VARIABLE=VALUE"),
    ] {
        assert!(out.contains(&wrong), "{wrong} in {out}");
    }
    assert!(wait_until(SLOW_LIMIT, || fake.runs() == 2));
    let (code, out) = rc(&fake, &conf, "status");
    assert_eq!(code, 0, "{out}");
    let (one, two) = (read_pid("one"), read_pid("two"));
    assert!(alive(one) && alive(two));
    let mut argvs: Vec<Vec<String>> = fake.pids().iter().map(|&p| fake.argv_of(p)).collect();
    argvs.sort();
    assert_eq!(
        argvs,
        vec![
            strings(&["-N", "-L", "8080:web:80", "me@gw"]),
            strings(&["-N", "-R", "2200:localhost:22", "me@relay"]),
        ]
    );

    // A tunnel that died shows in status (1: some run, not all), and start
    // brings back only it.
    signal(one, libc::SIGKILL);
    assert!(wait_until(SLOW_LIMIT, || !alive(one)));
    assert_eq!(rc(&fake, &conf, "status").0, 1);
    let (code, out) = rc(&fake, &conf, "start");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("two: already running"), "{out}");
    assert_eq!(rc(&fake, &conf, "status").0, 0);
    assert_eq!(read_pid("two"), two);

    let ssh_pids = fake.pids();
    let (code, out) = rc(&fake, &conf, "stop");
    assert_eq!(code, 0, "{out}");
    assert_eq!(rc(&fake, &conf, "status").0, 3);
    assert!(!pid_file("one").exists() && !pid_file("two").exists());
    for pid in ssh_pids {
        assert!(
            wait_until(SLOW_LIMIT, || !alive(pid)),
            "ssh {pid} left running"
        );
    }
    assert!(!alive(two));
}

#[test]
fn demo_runs_and_cleans_up() {
    if !have_tool("/usr/sbin/sshd", "openssh-server") {
        return;
    }
    // The fake's folder holds the demo's temporary folder, and its FAKE_DIR
    // marks everything the demo starts, for cleanup if the test fails.
    let fake = Fake::new("demo");
    let mut c = fake.command(&deploy("demo"), &[]);
    c.env_remove("AUTOSSH_PATH")
        .env_remove("AUTOSSH_LOGFILE")
        .env("AUTOSSH", autossh_bin())
        .env("TMPDIR", &fake.dir.0);
    let out = run_bounded(c, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("through the forward: SSH-2.0-"), "{stdout}");
    assert!(stdout.contains("connection test passed"), "{stdout}");
    assert!(
        stdout.contains("restarted; through the forward again: SSH-2.0-"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ssh exited on signal 9, restarting ssh"),
        "{stdout}"
    );
    assert!(stdout.contains("starting ssh (count 2)"), "{stdout}");
    // Its temporary folder is gone, and so is everything it started.
    let left: Vec<_> = fs::read_dir(&fake.dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("autossh-demo."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let marker = format!("FAKE_DIR={}", fake.dir.0.display());
    let running = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<i32>().is_ok())
        .filter(|e| {
            fs::read(e.path().join("environ"))
                .unwrap_or_default()
                .split(|&b| b == 0)
                .any(|v| v == marker.as_bytes())
        })
        .count();
    assert_eq!(running, 0, "the demo left processes running");
}

/// A folder with `autossh` in it, for scripts that run it from PATH.
fn path_with_autossh(fake: &Fake) -> String {
    let bin = fake.dir.path("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(autossh_bin(), bin.join("autossh")).unwrap();
    format!("{}:/usr/bin:/bin", bin.display())
}

#[test]
fn wrapper_scripts_work_unchanged() {
    // autossh.host: a reverse tunnel in the background.
    let fake = Fake::new("host");
    let port = free_pair();
    let mut c = fake.command(
        "sh",
        &[concat!(env!("CARGO_MANIFEST_DIR"), "/autossh.host")],
    );
    c.env("PATH", path_with_autossh(&fake))
        .env("SSH_AUTH_SOCK", "/nonexistent")
        .env("USER_AT_HOST", "me@relay")
        .env("AUTOSSH_PORT", port.to_string())
        .env("FAKE_PLAN", "hang");
    let out = run_bounded(c, SLOW_LIMIT);
    assert_eq!(out.status.code(), Some(0));
    assert!(wait_until(SLOW_LIMIT, || fake.runs() == 1));
    assert_eq!(
        fake.last_argv(),
        strings(&[
            "-L",
            &format!("{port}:127.0.0.1:{port}"),
            "-R",
            &format!("{port}:127.0.0.1:{}", port + 1),
            "-2",
            "-N",
            "-R",
            "2200:localhost:22",
            "me@relay",
        ])
    );

    // rscreen: the remote command arrives as one argument.
    let fake = Fake::new("rscreen");
    let mut c = fake.command("sh", &[&deploy("examples/rscreen"), "-p", "2222", "host"]);
    c.env("PATH", path_with_autossh(&fake))
        .env("SSH_AUTH_SOCK", "/nonexistent")
        .env("AUTOSSH_GATETIME", "0");
    let out = run_bounded(c, SLOW_LIMIT);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        fake.last_argv(),
        strings(&["-t", "-p", "2222", "host", "screen -Rd"])
    );

    // Called as rtmux it runs tmux; as ruscreen screen in UTF-8 mode, or
    // what ~/.ruscreenrc says; autossh-argv0 under a host's name goes there,
    // and under its own name refuses.
    let home = TempDir::new("rschome");
    for (name, target) in [
        ("rtmux", "examples/rscreen"),
        ("ruscreen", "examples/rscreen"),
        ("relay.example.net", "examples/autossh-argv0"),
        ("autossh-argv0", "examples/autossh-argv0"),
    ] {
        std::os::unix::fs::symlink(deploy(target), home.path(name)).unwrap();
    }
    let sibling = |name: &str, rc: Option<&str>, args: &[&str]| {
        let fake = Fake::new("rsibling");
        if let Some(rc) = rc {
            fs::write(home.path(&format!(".{name}rc")), rc).unwrap();
        }
        let link = home.path(name);
        let mut all = vec![link.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut c = fake.command("sh", &all);
        c.env("PATH", path_with_autossh(&fake))
            .env("HOME", &home.0)
            .env("SSH_AUTH_SOCK", "/nonexistent")
            .env("AUTOSSH_PORT", "0")
            .env("AUTOSSH_GATETIME", "0");
        let out = run_bounded(c, SLOW_LIMIT);
        let argv = if fake.runs() > 0 {
            fake.last_argv()
        } else {
            Vec::new()
        };
        (out, argv)
    };
    let (out, argv) = sibling("rtmux", None, &["host"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(argv, strings(&["-t", "host", "tmux attach || tmux new"]));
    let (_, argv) = sibling("ruscreen", None, &["host"]);
    assert_eq!(argv, strings(&["-t", "host", "screen -RdU"]));
    let (_, argv) = sibling("ruscreen", Some("RSCREEN_COMMAND='screen -x'\n"), &["host"]);
    assert_eq!(argv, strings(&["-t", "host", "screen -x"]));
    let (out, argv) = sibling("relay.example.net", None, &["-N"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(argv, strings(&["relay.example.net", "-N"]));
    // Help on stdout and 0; no host: usage on stderr and 1; ssh never runs.
    let (out, argv) = sibling("rtmux", None, &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage: rtmux "));
    assert!(argv.is_empty());
    let (out, argv) = sibling("ruscreen", None, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: ruscreen "));
    assert!(argv.is_empty());
    let (out, argv) = sibling("autossh-argv0", None, &["-N"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(argv.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("link named after the host"));
}
