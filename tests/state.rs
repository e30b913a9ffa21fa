//! AUTOSSH_STATEFILE: the tunnel's state, kept in a file at every change,
//! always whole (fake ssh).

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const KEYS: [&str; 10] = [
    "state",
    "since",
    "pid",
    "ssh_pid",
    "starts",
    "last_test",
    "reason",
    "message",
    "next_start",
    "exit_status",
];

/// The file's keys and values, checked to be whole: every key, in order.
fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    if !text.ends_with('\n') {
        return Err(format!("not whole: {text:?}"));
    }
    let pairs: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    if keys != KEYS {
        return Err(format!("keys {keys:?}: {text:?}"));
    }
    Ok(pairs)
}

fn get(pairs: &[(String, String)], key: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The file now, if it is there.
fn state(path: &Path) -> Option<Vec<(String, String)>> {
    let text = fs::read_to_string(path).ok()?;
    Some(parse(&text).unwrap())
}

/// Reads `path` in a loop on a thread until stopped; every read must be
/// whole. Returns the states seen, in order, without repeats, and how many
/// different files (by `since` and `state`) were read.
struct Reader {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(Vec<String>, usize)>,
}

impl Reader {
    fn start(path: PathBuf) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut seen: Vec<String> = Vec::new();
            let mut versions = HashSet::new();
            let mut reads = 0u64;
            while !flag.load(Ordering::Relaxed) && reads < 50_000_000 {
                reads += 1;
                let Ok(text) = fs::read_to_string(&path) else {
                    continue;
                };
                let pairs = parse(&text).unwrap_or_else(|e| panic!("a torn read: {e}"));
                let s = get(&pairs, "state");
                versions.insert(text.clone());
                if seen.last() != Some(&s) {
                    seen.push(s);
                }
            }
            (seen, versions.len())
        });
        Reader { stop, handle }
    }

    fn stop(self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the reader")
    }
}

fn start(fake: &Fake, spec: &str, plan: &str, env: &[(&str, &str)]) -> (Running, PathBuf) {
    let path = fake.dir.path("tunnel.state");
    let mut c = fake.autossh(&["-M", spec, "host"]);
    c.env("FAKE_PLAN", plan)
        .env("AUTOSSH_STATEFILE", &path)
        .env("AUTOSSH_GATETIME", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    (Running::start(c), path)
}

/// Waits until the file says `state` (with `starts`, when given).
fn wait_state(path: &Path, state_word: &str, starts: Option<&str>) -> bool {
    wait_until(LIMIT, || {
        state(path).is_some_and(|s| {
            get(&s, "state") == state_word && starts.is_none_or(|n| get(&s, "starts") == n)
        })
    })
}

#[test]
fn starting_then_up_after_the_first_test_then_down_and_up_again() {
    if !have_socat() {
        return;
    }
    let fake = Fake::new("state-up");
    let port = free_pair().to_string();
    // Each state lasts: the first test of each ssh comes 3 s after it, so
    // that a reader looking every 20 ms cannot miss one on a busy machine.
    let (r, path) = start(
        &fake,
        &port,
        "fwd:loop",
        &[("AUTOSSH_POLL", "6"), ("AUTOSSH_FIRST_POLL", "3")],
    );
    assert!(
        wait_state(&path, "starting", Some("1")),
        "{:?}",
        state(&path)
    );
    let s = state(&path).unwrap();
    assert_eq!(get(&s, "last_test"), "");
    assert!(wait_state(&path, "up", Some("1")), "{:?}", fake.messages());
    let s = state(&path).unwrap();
    assert_eq!(get(&s, "pid"), r.pid.to_string());
    assert_eq!(get(&s, "ssh_pid"), fake.pids()[0].to_string());
    assert!(get(&s, "last_test").ends_with(" passed"), "{s:?}");
    assert_eq!(get(&s, "reason"), "");
    // ssh killed: down, with why, until the next ssh's first test passes.
    signal(fake.pids()[0], libc::SIGKILL);
    assert!(wait_state(&path, "down", Some("2")), "{:?}", state(&path));
    let s = state(&path).unwrap();
    assert_eq!(get(&s, "reason"), "ssh exited on signal 9, restarting ssh");
    assert!(wait_state(&path, "up", Some("2")), "{:?}", fake.messages());
    assert_eq!(
        get(&state(&path).unwrap(), "ssh_pid"),
        fake.pids()[1].to_string()
    );
    // Restarted on request: down, then up after the third ssh's first test.
    r.signal(libc::SIGUSR1);
    assert!(wait_state(&path, "down", Some("3")), "{:?}", state(&path));
    assert_eq!(
        get(&state(&path).unwrap(), "reason"),
        "signalled to kill and restart ssh"
    );
    assert!(wait_state(&path, "up", Some("3")), "{:?}", fake.messages());
    r.stop();
    let s = state(&path).unwrap();
    assert_eq!(get(&s, "state"), "exited");
    assert_eq!(get(&s, "reason"), "received signal to exit (15)");
    assert_eq!(get(&s, "exit_status"), "1");
}

#[test]
fn a_failing_ssh_is_told_with_its_own_words() {
    let fake = Fake::new("state-refused");
    let path = fake.dir.path("tunnel.state");
    let mut c = fake.autossh(&["-f", "-M", "0", "host"]);
    c.env("FAKE_PLAN", "say:255")
        .env("AUTOSSH_STATEFILE", "tunnel.state")
        .current_dir(&fake.dir.0);
    assert_eq!(run_bounded(c, LIMIT).status.code(), Some(0));
    // Quick restarts, then the backoff: it waits.
    assert!(wait_until(LIMIT, || state(&path)
        .is_some_and(|s| get(&s, "state") == "waiting")));
    let s = state(&path).unwrap();
    let said = format!("fake ssh {} says goodbye", fake.pids().last().unwrap());
    assert_eq!(get(&s, "reason"), said);
    assert_eq!(get(&s, "message"), said);
    let next: i64 = get(&s, "next_start").parse().unwrap();
    let since: i64 = get(&s, "since").parse().unwrap();
    assert!(next >= since && next <= since + 600, "{s:?}");
    let daemon: i32 = get(&s, "pid").parse().unwrap();
    signal(daemon, libc::SIGTERM);
    assert!(wait_until(LIMIT, || state(&path)
        .is_some_and(|s| get(&s, "state") == "exited")));
}

#[test]
fn a_reader_never_sees_a_torn_file() {
    const INSTANCES: usize = 20;
    let fakes: Vec<Fake> = (0..INSTANCES).map(|_| Fake::new("state-torn")).collect();
    let mut runs = Vec::new();
    let mut readers = Vec::new();
    for fake in &fakes {
        let path = fake.dir.path("tunnel.state");
        readers.push(Reader::start(path));
        let (r, _) = start(
            fake,
            "0",
            "exit:255",
            &[("AUTOSSH_POLL", "1"), ("AUTOSSH_MAXSTART", "30")],
        );
        runs.push(r);
    }
    for r in &mut runs {
        assert_eq!(r.wait(Duration::from_secs(120)), Some(0));
    }
    let mut versions = 0;
    for (reader, fake) in readers.into_iter().zip(&fakes) {
        let (seen, n) = reader.stop();
        assert!(!seen.is_empty());
        versions += n;
        // (A reader may stop before it reads the last version.)
        let last = state(&fake.dir.path("tunnel.state")).unwrap();
        assert_eq!(get(&last, "state"), "exited");
    }
    // Each start is two changes (starting, up) and some wait between: the
    // writers made over 1,000 and the readers saw a good share of them.
    let starts: usize = fakes.iter().map(Fake::runs).sum();
    assert_eq!(starts, INSTANCES * 30);
    eprintln!(
        "state files: {versions} versions read of over {} written",
        2 * starts
    );
    assert!(versions > 100, "{versions}");
}

#[test]
fn a_state_file_that_cannot_be_written_is_refused() {
    let fake = Fake::new("state-bad");
    for (path, error) in [
        ("/nonexistent/dir/t.state", "No such file or directory"),
        ("/", "Device or resource busy"),
    ] {
        let mut c = fake.autossh(&["-M", "0", "host"]);
        c.env("AUTOSSH_STATEFILE", path).env("FAKE_PLAN", "hang");
        let o = run_bounded(c, LIMIT);
        assert_eq!(o.status.code(), Some(1));
        let message = format!("cannot write state file \"{path}\": {error}");
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            format!("autossh: {message}\n")
        );
        assert_eq!(fake.runs(), 0);
    }
}

#[test]
fn idle_with_a_state_file_makes_no_system_call() {
    if !have_tool("/usr/bin/strace", "strace") || !have_socat() {
        return;
    }
    let fake = Fake::new("state-idle");
    let port = free_pair().to_string();
    let (r, path) = start(
        &fake,
        &port,
        "fwd:loop",
        // Changes of this host's network made by others would be tested.
        &[
            ("AUTOSSH_POLL", "600"),
            ("AUTOSSH_FIRST_POLL", "1"),
            ("AUTOSSH_NETWATCH", "0"),
        ],
    );
    assert!(wait_until(LIMIT, || state(&path)
        .is_some_and(|s| get(&s, "state") == "up")));
    assert_idle(r.pid, &fake.messages());
    r.stop();
}

/// The state file in a folder others can write (a sticky `/tmp`): another
/// user who makes the temporary file's name first cannot freeze it; and a
/// folder that stops being writable is told once, not at every change.
#[test]
fn a_state_file_in_a_shared_folder_cannot_be_frozen() {
    use std::os::unix::fs::PermissionsExt;
    if !need_root() {
        return;
    }
    let fake = Fake::new("state-shared");
    // autossh runs as nobody; its fake ssh writes in the fake's folder.
    fs::set_permissions(&fake.dir.0, fs::Permissions::from_mode(0o777)).unwrap();
    let shared = fake.dir.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let path = shared.join("t.state");
    // The binary where nobody may run it, wherever the build is (a clone in
    // a private folder, say).
    let bin = fake.dir.path("autossh");
    copy_executable(Path::new(autossh_bin()), &bin);
    let mut c = fake.command(bin.to_str().unwrap(), &["-M", "0", "host"]);
    c.env("FAKE_PLAN", "hang")
        .env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_STATEFILE", &path);
    as_nobody(&mut c);
    let r = Running::start(c);
    assert!(wait_state(&path, "up", Some("1")), "{:?}", fake.messages());
    // Another user (root, here) takes the names a writer could be expected
    // to use: the pid's, and a plain one.
    for name in [format!("t.state.{}.tmp", r.pid), "t.state.tmp".to_string()] {
        fs::write(shared.join(name), "taken").unwrap();
    }
    let kill_ssh = |starts: usize| {
        // The state says up as soon as ssh is started: its pid may not be
        // written yet.
        assert!(wait_until(LIMIT, || fake.runs() == starts - 1));
        let ssh = *fake.pids().last().unwrap();
        signal(ssh, libc::SIGKILL);
        assert!(
            wait_until(LIMIT, || fake.runs() == starts),
            "{:?}",
            fake.messages()
        );
    };
    kill_ssh(2);
    assert!(wait_state(&path, "up", Some("2")), "{:?}", state(&path));
    // The folder no longer writable: several changes, one warning.
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
    kill_ssh(3);
    kill_ssh(4);
    assert!(wait_until(LIMIT, || fake
        .count_log("starting ssh (count 4)")
        == 1));
    assert_eq!(
        fake.count_log("cannot write state file"),
        1,
        "{:?}",
        fake.messages()
    );
    // Writable again: the file follows once more.
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    kill_ssh(5);
    assert!(wait_state(&path, "up", Some("5")), "{:?}", state(&path));
    r.stop();
}
