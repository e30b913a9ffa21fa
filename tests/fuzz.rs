//! Arbitrary argv and AUTOSSH_* values never make autossh panic, hang or exit
//! with anything but 0 or 1.

mod common;
#[path = "common/rng.rs"]
#[allow(dead_code)]
mod rng;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use rng::Rng;

const TOKENS: &[&str] = &[
    "-M",
    "-M0",
    "-f",
    "-V",
    "-N",
    "-NTf",
    "-fN",
    "-NM20000",
    "-p",
    "-p2222",
    "-L",
    "-R",
    "-o",
    "-B",
    "--",
    "-",
    "",
    "host",
    "me@nas",
    "echo",
    "-v",
    "-Z",
    "-M",
    "0",
    "20000",
    "20000:7",
    "0x4e20",
    "-1",
    "65535",
    "abc",
    ":",
    "20000:",
    "-MV",
    "-oX=f",
    "-h",
    "-?",
    "-Mf",
    "-fM",
    "99999999999999999999",
];

const NUMBERS: &[&str] = &[
    "",
    " ",
    "0",
    "1",
    "-1",
    "-2",
    "2",
    "08",
    "0x",
    "0x1f",
    "010",
    "+3",
    " 5",
    "5 ",
    "2147483647",
    "2147483648",
    "-2147483648",
    "4294967301",
    "99999999999999999999",
    "abc",
    "1e3",
    "7",
    "8",
];

const NUMERIC: &[&str] = &[
    "AUTOSSH_GATETIME",
    "AUTOSSH_POLL",
    "AUTOSSH_FIRST_POLL",
    "AUTOSSH_MAXSTART",
    "AUTOSSH_MAXLIFETIME",
    "AUTOSSH_LOGLEVEL",
];

/// The orphans that reached this process (its subreaper) and have ended:
/// reaped, as (program name, wait status).
fn reap_orphans() -> Vec<(String, i32)> {
    let mut ended = Vec::new();
    for _ in 0..10_000 {
        // SAFETY: waitid writes only into the zeroed siginfo it is given; with
        // WNOWAIT the child stays a zombie, so its /proc entry can be read.
        let pid = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            if libc::waitid(libc::P_ALL, 0, &mut info, flags) != 0 {
                break;
            }
            info.si_pid()
        };
        if pid == 0 {
            break;
        }
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let mut status = 0;
        // SAFETY: reaps the zombie just seen; writes only `status`.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        ended.push((name.trim().to_string(), status));
    }
    ended
}

/// The seed: AUTOSSH_FUZZ_SEED to replay one, else a new one, printed.
fn seed() -> u64 {
    let seed = match std::env::var("AUTOSSH_FUZZ_SEED") {
        Ok(s) => s.parse().expect("AUTOSSH_FUZZ_SEED is a number"),
        Err(_) => {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        }
    };
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "fuzz seed {seed} (replay: AUTOSSH_FUZZ_SEED={seed} cargo test --test fuzz)"
    );
    seed
}

#[test]
fn arbitrary_input_exits_cleanly() {
    let seed = seed();
    let mut rng = Rng(seed);
    let fake = Fake::new("fuzz");
    // Runs with -f go on in a process of their own, whose stderr is
    // /dev/null: as their subreaper, this test gets them back when they end,
    // and sees how (a panic aborts).
    // SAFETY: prctl only marks this process; this test is alone in its binary.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    for round in 0..300 {
        let mut argv: Vec<OsString> = Vec::new();
        for _ in 0..rng.below(7) {
            if rng.below(5) == 0 {
                argv.push(OsString::from_vec(rng.bytes()));
            } else {
                argv.push(rng.pick(TOKENS).into());
            }
        }
        let mut c = fake.command(autossh_bin(), &[]);
        c.args(&argv);
        let mut env = Vec::new();
        for var in NUMERIC {
            if rng.below(3) == 0 {
                let value: OsString = if rng.below(4) == 0 {
                    OsString::from_vec(rng.bytes())
                } else {
                    rng.pick(NUMBERS).into()
                };
                env.push((var.to_string(), value));
            }
        }
        if rng.below(3) == 0 {
            env.push(("AUTOSSH_PORT".into(), rng.pick(TOKENS).into()));
        }
        if rng.below(3) == 0 {
            let len = rng.below(80);
            env.push(("AUTOSSH_MESSAGE".into(), "m".repeat(len as usize).into()));
        }
        if rng.below(4) == 0 {
            env.push(("AUTOSSH_DEBUG".into(), OsString::from_vec(rng.bytes())));
        }
        for (k, v) in &env {
            c.env(k, v);
        }
        // Poll and lifetime stay short so that nothing can wait long.
        c.env("FAKE_PLAN", "exit:0");
        let out = run_bounded(c, Duration::from_secs(20));
        let code = out.status.code();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(code, Some(0) | Some(1)),
            "seed {seed} round {round}: {argv:?} {env:?} -> {code:?} {stderr}"
        );
        assert!(
            !stderr.contains("panicked"),
            "seed {seed} round {round}: {argv:?} {env:?}: {stderr}"
        );
    }
    // Backgrounded runs end once their ssh exits 0: give them a moment.
    assert!(wait_until(Duration::from_secs(10), || {
        let pids = fake.pids();
        pids.iter().all(|&p| !alive(p))
    }));
    let mut ended = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            ended.extend(reap_orphans());
            children_of(std::process::id() as i32).0.is_empty()
        }),
        "seed {seed}: background runs left"
    );
    ended.extend(reap_orphans());
    for (name, status) in &ended {
        if name == "autossh" {
            let clean = libc::WIFEXITED(*status) && matches!(libc::WEXITSTATUS(*status), 0 | 1);
            assert!(
                clean,
                "seed {seed}: a background autossh ended with status {status:#x}"
            );
        }
    }
}
