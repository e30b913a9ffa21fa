//! A hostile start: what autossh inherits from whoever starts it — a socket or
//! a shared file for stderr, a blocked SIGCHLD, ignored signals, a tight
//! descriptor limit, a refused prctl, a pid namespace, bytes that are not
//! UTF-8 — must not change what it does (SPEC §3–5). Where the original can be
//! run the same way, it is, to show what it does.

mod common;

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Runs `f` in the started process before it execs autossh.
fn before_exec(c: &mut Command, f: impl FnMut() -> io::Result<()> + Send + Sync + 'static) {
    // SAFETY: the closures given here make only system calls.
    unsafe { c.pre_exec(f) };
}

#[test]
fn log_to_a_stderr_that_is_a_socket() {
    let fake = Fake::new("stderrsock");
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_LOGFILE", "/dev/stderr")
        .env("AUTOSSH_GATETIME", "0")
        .env("FAKE_PLAN", "exit:255 exit:0")
        .stderr(Stdio::from(OwnedFd::from(theirs)));
    let mut r = Running::start(c);
    assert_eq!(r.wait(LIMIT), Some(0));
    ours.set_read_timeout(Some(LIMIT)).unwrap();
    let mut text = String::new();
    ours.read_to_string(&mut text).unwrap();
    assert_eq!(messages_of(&text).len(), 7, "{text}");
    assert!(
        text.ends_with("]: ssh exited with status 0; autossh exiting\n"),
        "{text}"
    );
}

#[test]
fn a_stderr_file_shared_with_ssh_keeps_every_line() {
    let fake = Fake::new("stderrfile");
    let file = fake.dir.path("tunnel.log");
    // As `autossh ... 2>tunnel.log` does: the file is not opened for appending.
    let script = format!("exec \"$0\" -M 0 host 2>\"{}\"", file.display());
    let mut c = fake.command("sh", &["-c", &script, autossh_bin()]);
    c.env("AUTOSSH_LOGFILE", "/dev/stderr")
        .env("AUTOSSH_GATETIME", "0")
        .env("FAKE_PLAN", "say:255 say:255 say:0");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let ours = lines.iter().filter(|l| l.contains(" autossh[")).count();
    let ssh = lines.iter().filter(|l| l.starts_with("fake ssh ")).count();
    // A note, 3 starts, 3 pids, 2 restarts, 1 exit.
    assert_eq!((ours, ssh), (10, 3), "{text}");
    assert_eq!(lines.len(), 13, "a line was overwritten or broken: {text}");
}

#[test]
fn a_blocked_sigchld_is_unblocked() {
    let fake = Fake::new("sigchld");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_GATETIME", "0")
        .env("FAKE_PLAN", "exit:255 exit:255 hang");
    before_exec(&mut c, || {
        // SAFETY: plain signal-mask calls on a set built here.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        Ok(())
    });
    let mut r = Running::start(c);
    assert!(
        wait_until(LIMIT, || fake.runs() == 3),
        "{:?}",
        fake.messages()
    );
    r.signal(libc::SIGTERM);
    // A child's death missed would show as a SIGKILL after the 5 s grace.
    assert_eq!(r.wait(LIMIT), Some(1));
    assert!(!fake.log_text().contains("did not exit on SIGTERM"));
}

/// The signal masks of the last fake ssh: blocked and ignored, the classic
/// signals only (the C library's own real-time ones are not ours to judge).
fn masks(fake: &Fake) -> (u64, u64) {
    let pid = *fake.pids().last().unwrap();
    let text = std::fs::read_to_string(fake.dir.path(&format!("sigs.{pid}"))).unwrap();
    let mask = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap() & 0x7fff_ffff
    };
    (mask("SigBlk"), mask("SigIgn"))
}

fn bit(signal: i32) -> u64 {
    1 << (signal - 1)
}

#[test]
fn signals_ignored_at_start_stay_ignored_in_ssh() {
    let run = |program: &str| {
        let fake = Fake::new("nohup");
        let mut c = fake.command(program, &["-M", "0", "host"]);
        c.env("AUTOSSH_GATETIME", "0").env("FAKE_PLAN", "sigs");
        // As `nohup` and a shell's background job leave them.
        before_exec(&mut c, || {
            for s in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
                // SAFETY: setting a disposition to ignore.
                unsafe { libc::signal(s, libc::SIG_IGN) };
            }
            Ok(())
        });
        let o = run_bounded(c, LIMIT);
        assert_eq!(o.status.code(), Some(0), "{program}");
        masks(&fake)
    };
    let ignored = bit(libc::SIGHUP) | bit(libc::SIGINT) | bit(libc::SIGQUIT);
    assert_eq!(run(autossh_bin()), (0, ignored));
    if have_reference() {
        // The original keeps HUP and QUIT ignored, and puts INT back to its
        // default (it handles INT itself).
        let (blocked, theirs) = run(REFERENCE);
        assert_eq!(
            (blocked, theirs & bit(libc::SIGHUP)),
            (0, bit(libc::SIGHUP))
        );
    }
}

#[test]
fn tight_descriptor_limits() {
    if !have_socat() {
        return;
    }
    for program in [autossh_bin(), REFERENCE] {
        if program == REFERENCE && !have_reference() {
            continue;
        }
        // Loop monitoring within 8 descriptors: the test passes, twice.
        let fake = Fake::new("fdloop");
        let port = free_pair();
        let script = format!("ulimit -n 8 && exec \"$0\" -M {port} host");
        let mut c = fake.command("sh", &["-c", &script, program]);
        c.env("AUTOSSH_GATETIME", "0")
            .env("FAKE_PLAN", "fwd:loop")
            .env("AUTOSSH_POLL", "1")
            .env("AUTOSSH_DEBUG", "1");
        let mut r = Running::start(c);
        assert!(
            wait_until(LIMIT, || fake.count_log("connection ok") >= 2),
            "{program}: {:?}",
            fake.messages()
        );
        r.signal(libc::SIGTERM);
        assert_eq!(r.wait(LIMIT), Some(1), "{program}");

        // Restarts without monitoring within 7.
        let fake = Fake::new("fdoff");
        let script = "ulimit -n 7 && exec \"$0\" -M 0 host";
        let mut c = fake.command("sh", &["-c", script, program]);
        c.env("AUTOSSH_GATETIME", "0")
            .env("FAKE_PLAN", "exit:255 exit:255 exit:0");
        let o = run_bounded(c, LIMIT);
        assert_eq!(o.status.code(), Some(0), "{program}: {:?}", fake.messages());
        assert_eq!(fake.runs(), 3, "{program}");
    }
}

#[test]
fn a_pid_namespace_without_fork_does_not_stop_ssh() {
    if !need_root() {
        return;
    }
    // ssh's parent is outside its pid namespace: it sees none.
    let fake = Fake::new("unshare");
    let mut c = fake.command("unshare", &["-p", autossh_bin(), "-M", "0", "host"]);
    c.env("AUTOSSH_GATETIME", "0").env("FAKE_PLAN", "exit:0");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0), "{:?}", fake.messages());
    assert_eq!(fake.runs(), 1);
    assert!(fake
        .log_text()
        .contains("ssh exited with status 0; autossh exiting"));
}

/// One instruction of a classic BPF program, as seccomp takes it.
#[repr(C)]
struct Filter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> Filter {
    Filter { code, jt, jf, k }
}

/// Installs a seccomp filter on this process (and what it execs).
fn install_filter(filter: &[Filter]) -> io::Result<()> {
    #[repr(C)]
    struct Program {
        len: u16,
        filter: *const Filter,
    }
    let program = Program {
        len: filter.len() as u16,
        filter: filter.as_ptr(),
    };
    // SAFETY: a well-formed filter program that lives through the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, 2, &program as *const Program) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A filter under which the system calls numbered `numbers` (and, when
/// given, only with `arg0` as their first argument) fail with `errno`.
fn failing(numbers: &[u32], arg0: Option<u32>, errno: i32) -> Vec<Filter> {
    let k = numbers.len();
    let mut filter = vec![op(LD_W_ABS, 0, 0, 0)]; // the system call number
    for (j, &n) in numbers.iter().enumerate() {
        filter.push(op(JEQ_K, (k - j) as u8, 0, n));
    }
    filter.push(op(RET_K, 0, 0, RET_ALLOW));
    if let Some(a) = arg0 {
        filter.push(op(LD_W_ABS, 0, 0, 16)); // the first argument (low half)
        filter.push(op(JEQ_K, 0, 1, a));
    }
    filter.push(op(RET_K, 0, 0, RET_ERRNO | errno as u32));
    filter.push(op(RET_K, 0, 0, RET_ALLOW));
    filter
}

/// The numbers of a system call for this machine's processes: on x86_64 also
/// those of 32-bit x86, so that the filters hold for the i686 build too.
fn numbers(native: libc::c_long, i386: u32) -> Vec<u32> {
    let mut all = vec![native as u32];
    if cfg!(target_arch = "x86_64") {
        all.push(i386);
    }
    all
}

/// Refuses prctl(PR_SET_PDEATHSIG) with EPERM, as a strict container policy may.
fn refuse_pdeathsig() -> io::Result<()> {
    let prctl = numbers(libc::SYS_prctl, 172);
    install_filter(&failing(
        &prctl,
        Some(libc::PR_SET_PDEATHSIG as u32),
        libc::EPERM,
    ))
}

/// Makes the system calls that kernels older than 5.9 (DSM 6.2 has 3.10)
/// lack fail as such a kernel fails them: ENOSYS.
fn old_kernel() -> io::Result<()> {
    let mut newer = numbers(libc::SYS_close_range, 436);
    newer.extend(numbers(libc::SYS_getrandom, 355));
    newer.extend(numbers(libc::SYS_statx, 383));
    install_filter(&failing(&newer, None, libc::ENOSYS))
}

#[test]
fn an_old_kernel_without_close_range_or_getrandom() {
    // An inherited descriptor that is not close-on-exec must still not reach
    // ssh, and the random monitor port must still be drawn.
    let fake = Fake::new("oldkernel");
    let mut c = fake.command(
        "bash",
        &["-c", "exec 7</dev/null; exec \"$0\" host", autossh_bin()],
    );
    c.env("AUTOSSH_GATETIME", "0").env("FAKE_PLAN", "fds");
    before_exec(&mut c, old_kernel);
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0), "{:?}", fake.messages());
    fake.assert_ssh_got_only_stdio();
    assert!(fake.messages()[0].starts_with("no monitor port given, using "));
}

/// Makes every poll fail with ENOMEM: the standard library's start-up check
/// of fds 0-2 falls back to fcntl on that, and the event loop can no longer
/// wait.
fn failing_poll() -> io::Result<()> {
    let mut polls = numbers(libc::SYS_ppoll, 309);
    if cfg!(target_arch = "x86_64") {
        polls.extend([7, 168, 414]); // poll, i386's poll and ppoll_time64
    }
    install_filter(&failing(&polls, None, libc::ENOMEM))
}

/// A poll that fails for good ends autossh: ssh stopped, exit 1, and the
/// state file says so rather than the last state it saw.
#[test]
fn a_failing_poll_ends_cleanly_and_says_so() {
    if std::env::var_os("AUTOSSH_BIN").is_some() {
        // qemu-user polls for itself; the filter would stop it instead.
        let _ = writeln!(
            io::stderr(),
            "skipped: runs natively only (qemu-user is not what is measured)"
        );
        return;
    }
    let fake = Fake::new("pollfails");
    let state = fake.dir.path("tunnel.state");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_GATETIME", "0")
        .env("AUTOSSH_STATEFILE", &state)
        .env("FAKE_PLAN", "hang");
    before_exec(&mut c, failing_poll);
    let o = run_bounded(c, SLOW_LIMIT);
    assert_eq!(o.status.code(), Some(1), "{:?}", fake.messages());
    assert!(
        fake.messages()
            .iter()
            .any(|m| m == "poll: Cannot allocate memory"),
        "{:?}",
        fake.messages()
    );
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.starts_with("state=exited\n"), "{text}");
    assert!(text.contains("\nexit_status=1\n"), "{text}");
    assert!(text.contains("\nssh_pid=\n"), "{text}");
}

#[test]
fn a_refused_pdeathsig_is_not_fatal() {
    let fake = Fake::new("seccomp");
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_GATETIME", "0")
        .env("FAKE_PLAN", "exit:255 exit:0");
    before_exec(&mut c, refuse_pdeathsig);
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(0), "{:?}", fake.messages());
    assert_eq!(fake.runs(), 2);
    assert!(fake.messages().contains(
        &"ssh will not die with autossh: PR_SET_PDEATHSIG: Operation not permitted".to_string()
    ));
}

#[test]
fn orphans_are_reaped_as_pid_1() {
    if !need_root() {
        return;
    }
    let fake = Fake::new("pid1");
    let mut c = fake.command(
        "unshare",
        &["-p", "-f", "--mount-proc", autossh_bin(), "-M", "0", "host"],
    );
    c.env("AUTOSSH_GATETIME", "0").env("FAKE_PLAN", "orphans");
    let mut r = Running::start(c);
    assert!(wait_until(LIMIT, || fake.runs() == 1));
    // autossh is the child of unshare here, PID 1 inside.
    let mut autossh = 0;
    assert!(wait_until(LIMIT, || {
        autossh = children_of(r.pid).0.first().copied().unwrap_or(0);
        autossh != 0
    }));
    // The fake makes three orphans that live 0.3 s, then becomes `sleep
    // 1000`; once the orphans have died they must not stay zombies: in the
    // end only ssh is left (a PID 1 that does not reap keeps three zombies).
    // (Its pid in the fake's file is the namespace's: it is found here.)
    let is_ssh = |p: &i32| {
        std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\x001000\0")
    };
    assert!(wait_until(LIMIT, || children_of(autossh)
        .0
        .iter()
        .any(is_ssh)));
    let (mut live, mut zombies) = (Vec::new(), Vec::new());
    wait_until(LIMIT, || {
        (live, zombies) = children_of(autossh);
        live.len() == 1 && zombies.is_empty()
    });
    assert!(zombies.is_empty(), "zombies {zombies:?}");
    assert_eq!(live.len(), 1, "only ssh: {live:?}");
    assert!(is_ssh(&live[0]), "only ssh: {live:?}");
    // unshare waits for its child: autossh, PID 1 inside, takes the signal.
    signal(autossh, libc::SIGTERM);
    assert!(r.wait(LIMIT).is_some());
}

#[test]
fn bytes_that_are_not_utf8_are_quoted_as_they_are() {
    let fake = Fake::new("bytes");
    let bad = OsStr::from_bytes(b"\xff1");
    let mut c = fake.autossh(&[]);
    c.arg("-M").arg(bad).arg("host");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(o.stderr, b"autossh: invalid port \"\xff1\"\n");
    let log = std::fs::read(fake.log_path()).unwrap();
    assert!(log.ends_with(b"]: invalid port \"\xff1\"\n"), "{log:?}");

    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_POLL", bad);
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.stderr, b"autossh: invalid poll time \"\xff1\"\n");

    // The program name, through a symlink named with such a byte.
    let link = fake.dir.0.join(OsStr::from_bytes(b"tun\xfe"));
    std::os::unix::fs::symlink(autossh_bin(), &link).unwrap();
    let mut c = Command::new(&link);
    c.arg("-V");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.stdout, b"tun\xfe 1.4g\n");
}

/// Text at the very end of Unicode (U+10FF00–U+10FFFF, private use) is text
/// like any other: its bytes reach stderr and the log as given (SPEC §3).
#[test]
fn text_at_the_end_of_unicode_is_quoted_as_it_is() {
    let fake = Fake::new("unicode-end");
    for value in ["\u{10FF41}1", "\u{10FFFF}", "x\u{10FF00}\u{10FEFF}"] {
        let mut c = fake.autossh(&[]);
        c.arg("-M").arg(value).arg("host");
        let o = run_bounded(c, LIMIT);
        assert_eq!(o.status.code(), Some(1));
        let expected = format!("invalid port \"{value}\"\n");
        assert_eq!(o.stderr, format!("autossh: {expected}").as_bytes());
        let log = std::fs::read(fake.log_path()).unwrap();
        assert!(log.ends_with(expected.as_bytes()), "{log:?}");
    }
    // And in an ssh argument that fails to start: the program path.
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_PATH", "/nonexistent/\u{10FF2F}ssh");
    let o = run_bounded(c, LIMIT);
    assert_eq!(o.status.code(), Some(1));
    let log = std::fs::read_to_string(fake.log_path()).unwrap();
    assert!(
        log.contains("]: /nonexistent/\u{10FF2F}ssh: No such file or directory\n"),
        "{log:?}"
    );
}

/// autossh with its log in a new FIFO of `fake`'s folder; the FIFO's path.
fn logging_to_a_fifo(fake: &Fake) -> (Running, std::path::PathBuf) {
    let fifo = fake.dir.path("log.fifo");
    mkfifo(&fifo);
    let mut c = fake.autossh(&["-M", "0", "host"]);
    c.env("AUTOSSH_LOGFILE", &fifo).env("FAKE_PLAN", "hang");
    (Running::start(c), fifo)
}

/// AUTOSSH_LOGFILE naming a FIFO that has no reader yet: autossh waits for
/// one, as the original does, and TERM or INT still end it there.
#[test]
fn a_log_fifo_without_a_reader_leaves_autossh_killable() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let fake = Fake::new("logfifo");
        let (mut r, _) = logging_to_a_fifo(&fake);
        // Waiting in open(2) for the reader.
        assert!(wait_until(LIMIT, || std::fs::read_to_string(format!(
            "/proc/{}/wchan",
            r.pid
        ))
        .is_ok_and(|w| w.contains("fifo") || w.contains("partner"))));
        assert_eq!(r.wait(Duration::from_millis(200)), None);
        r.signal(sig);
        assert_eq!(r.wait(LIMIT), Some(128 + sig), "signal {sig}");
        assert_eq!(fake.runs(), 0);
    }
    // With a reader it goes on, and logs into the FIFO.
    let fake = Fake::new("logfifo");
    let (r, fifo) = logging_to_a_fifo(&fake);
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let logged = wait_until(LIMIT, || {
        if let Ok(n) = reader.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).contains("ssh child pid is")
    });
    assert!(logged, "{:?}", String::from_utf8_lossy(&got));
    r.stop();
}
