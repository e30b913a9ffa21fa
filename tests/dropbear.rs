//! With dropbear's client, `dbclient`, as ssh (OpenWrt's usual ssh), against
//! the real sshd of the test remote host: a key of dropbear's own format,
//! the host key taken on first use (`-y`), loop monitoring and `-M 0`, a
//! killed dbclient replaced, a cut link found, and dbclient's own words in
//! the state file. Needs root and dropbear-bin; skips without them, except
//! in CI, where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::remote::*;
use common::*;

const DBCLIENT: &str = "/usr/bin/dbclient";

fn can_run_dropbear() -> bool {
    can_run()
        && have_tool(DBCLIENT, "dropbear-bin")
        && have_tool("/usr/bin/dropbearkey", "dropbear-bin")
}

/// A key in dropbear's format (as `dropbearkey` makes them on a router),
/// authorized on the remote host.
fn dropbear_key(remote: &Remote, fake: &Fake) -> PathBuf {
    let key = fake.dir.path("id_dropbear");
    let out = Command::new("/usr/bin/dropbearkey")
        .args(["-t", "ed25519", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .expect("dropbearkey prints the public key")
        .to_string();
    remote.authorize(&public);
    key
}

/// autossh running dbclient with `-M spec`, carrying a user forward from
/// local `user` to the remote echo service. HOME is the test's folder, where
/// dbclient looks for known_hosts; the remote's host key is accepted unseen
/// (`-y`).
fn dbclient_command(fake: &Fake, remote: &Remote, key: &Path, spec: &str, user: u16) -> Command {
    dbclient_command_with(fake, remote, key, spec, user, &["-y"])
}

/// As [`dbclient_command`], with `options` instead of `-y`.
fn dbclient_command_with(
    fake: &Fake,
    remote: &Remote,
    key: &Path,
    spec: &str,
    user: u16,
    options: &[&str],
) -> Command {
    let mut c = fake.autossh(&["-M", spec]);
    c.args(["-i", key.to_str().unwrap(), "-N", "-T"])
        .args(options)
        .args(["-o", "ExitOnForwardFailure=yes"])
        .args(["-L", &format!("{user}:127.0.0.1:7")])
        .arg(format!("root@{}", remote.addr))
        .env("AUTOSSH_PATH", DBCLIENT)
        .env("AUTOSSH_POLL", "4")
        .env("AUTOSSH_FIRST_POLL", "10")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_LOGLEVEL", "7")
        .env("AUTOSSH_STATEFILE", fake.dir.path("state"))
        .env("HOME", &fake.dir.0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// The pid of the ssh (here dbclient) autossh started last, from its log.
fn child_pid(fake: &Fake) -> Option<i32> {
    fake.messages()
        .iter()
        .rev()
        .find_map(|m| m.strip_prefix("ssh child pid is ")?.trim().parse().ok())
}

fn state(fake: &Fake) -> String {
    std::fs::read_to_string(fake.dir.path("state")).unwrap_or_default()
}

/// Loop monitoring and `-M 0`: the forward works, a loop test passes
/// through dbclient's forwards, and a dbclient killed is replaced with the
/// forward back. With `-y` (loop), an unknown host key is accepted and not
/// written down; without it (`-M 0`), the key known beforehand is checked.
#[test]
fn dbclient_tunnels_are_kept_up() {
    if !can_run_dropbear() {
        return;
    }
    let remote = Remote::new();
    for mode in ["loop", "0"] {
        let fake = Fake::new("dropbear");
        let key = dropbear_key(&remote, &fake);
        let (port, user) = (free_pair(), free_pair());
        let (spec, options): (String, &[&str]) = if mode == "loop" {
            (port.to_string(), &["-y"])
        } else {
            std::fs::create_dir(fake.dir.path(".ssh")).unwrap();
            std::fs::write(fake.dir.path(".ssh/known_hosts"), remote.known_hosts_line()).unwrap();
            ("0".to_string(), &[])
        };
        let c = dbclient_command_with(&fake, &remote, &key, &spec, user, options);
        let r = Running::start(c);
        assert!(
            wait_until(SLOW_LIMIT, || echo_through(user)),
            "{mode}: {:?}",
            fake.messages()
        );
        if mode == "loop" {
            // The test data went out through dbclient's -L and came back
            // through its -R.
            assert!(
                fake.wait_log("connection ok", SLOW_LIMIT),
                "{:?}",
                fake.messages()
            );
            assert_eq!(fake.count_log("port down"), 0, "{:?}", fake.messages());
            // dbclient says so on stderr, which reaches the log.
            assert_eq!(
                fake.count_log("key accepted unconditionally"),
                1,
                "{:?}",
                fake.messages()
            );
            let known =
                std::fs::read_to_string(fake.dir.path(".ssh/known_hosts")).unwrap_or_default();
            assert!(!known.contains(&remote.addr.to_string()), "{known:?}");
        } else {
            assert_eq!(fake.count_log("key accepted"), 0, "{:?}", fake.messages());
        }
        assert!(
            wait_until(SLOW_LIMIT, || state(&fake).starts_with("state=up\n")),
            "{mode}: {}",
            state(&fake)
        );

        let first = child_pid(&fake).expect("a child pid in the log");
        signal(first, libc::SIGKILL);
        assert!(
            fake.wait_log("ssh exited on signal 9, restarting ssh", SLOW_LIMIT),
            "{mode}: {:?}",
            fake.messages()
        );
        assert!(
            wait_until(SLOW_LIMIT, || echo_through(user)
                && child_pid(&fake).is_some_and(|p| p != first)),
            "{mode}: not back: {:?}",
            fake.messages()
        );
        assert_eq!(fake.count_log("starting ssh (count"), 2, "{mode}");
        r.stop();
    }
}

/// The path to the relay cut far away (nothing on this host hears of it)
/// is found, and the tunnel comes back once the path does: with loop
/// monitoring by the test, with `-M 0` by dbclient's own keepalive (`-K`),
/// which is then all there is.
#[test]
fn a_cut_under_dbclient_is_found_and_mended() {
    if !can_run_dropbear() {
        return;
    }
    for mode in ["loop", "0"] {
        let remote = Remote::new();
        let fake = Fake::new("dropbear-cut");
        let key = dropbear_key(&remote, &fake);
        let (port, user) = (free_pair(), free_pair());
        let spec = if mode == "loop" {
            port.to_string()
        } else {
            "0".to_string()
        };
        let mut c = dbclient_command(&fake, &remote, &key, &spec, user);
        if mode == "0" {
            c.args(["-K", "1"]);
        }
        let r = Running::start(c);
        assert!(
            wait_until(SLOW_LIMIT, || echo_through(user)),
            "{mode}: {:?}",
            fake.messages()
        );
        if mode == "loop" {
            assert!(fake.wait_log("connection ok", SLOW_LIMIT));
        }
        let cut = Instant::now();
        remote.cut("far", true);
        let replaced = || {
            fake.count_log("port down, restarting ssh") > 0
                || fake.count_log("starting ssh (count 2)") > 0
        };
        assert!(
            wait_until(SLOW_LIMIT, replaced),
            "{mode}: {:?}",
            fake.messages()
        );
        let detected = cut.elapsed();
        std::thread::sleep(std::time::Duration::from_secs(2));
        remote.cut("far", false);
        let mended = Instant::now();
        assert!(
            wait_until(SLOW_LIMIT, || echo_through(user)),
            "{mode}: forward not back: {:?}",
            fake.messages()
        );
        eprintln!(
            "dbclient, far cut, -M {mode}: found in {detected:?}, back {:?} after the cut ended",
            mended.elapsed()
        );
        r.stop();
    }
}

/// A key the remote refuses: dbclient's own words reach the log and the
/// state file's reason, and the tunnel is said not to be up.
#[test]
fn dbclients_words_are_the_reason() {
    if !can_run_dropbear() {
        return;
    }
    let remote = Remote::new();
    let fake = Fake::new("dropbear-refused");
    let key = dropbear_key(&remote, &fake);
    remote.refuse_keys();
    let (port, user) = (free_pair(), free_pair());
    let r = Running::start(dbclient_command(
        &fake,
        &remote,
        &key,
        &port.to_string(),
        user,
    ));
    let words = "No auth methods could be used";
    assert!(fake.wait_log(words, SLOW_LIMIT), "{:?}", fake.messages());
    assert!(
        wait_until(SLOW_LIMIT, || {
            let s = state(&fake);
            !s.starts_with("state=up\n")
                && s.lines()
                    .any(|l| l.starts_with("reason=") && l.contains(words))
        }),
        "{}",
        state(&fake)
    );
    let m = fake.messages();
    let at = m.iter().position(|l| l.contains(words)).unwrap();
    assert!(
        m[at..]
            .iter()
            .any(|l| l.starts_with("ssh exited with error status")),
        "{m:?}"
    );
    r.stop();
}
