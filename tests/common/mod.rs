//! Shared helpers of the black-box tests: a temporary folder, a fake ssh that
//! records its arguments and behaves as told, and a guard that never leaves an
//! autossh (or its ssh) running.
#![allow(dead_code)]

pub mod remote;
pub mod web;

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The C library's words for an OS error, given as glibc says it: the
/// binary under test prints its own C library's (`strerror`, as the
/// original does). That is glibc's, but musl's for the router builds, which
/// `.ci/run` names with AUTOSSH_BIN_LIBC=musl.
pub fn os_words(glibc: &'static str) -> &'static str {
    if std::env::var("AUTOSSH_BIN_LIBC").as_deref() != Ok("musl") {
        return glibc;
    }
    match glibc {
        "Address already in use" => "Address in use",
        "Too many levels of symbolic links" => "Symbolic link loop",
        "Connection timed out" => "Operation timed out",
        "No route to host" => "Host is unreachable",
        "Network is unreachable" => "Network unreachable",
        same => same,
    }
}

/// The binary under test: the one named by AUTOSSH_BIN when that is set (a
/// static build for another processor, run under emulation), else cargo's:
/// for the tunnel-list crate's tests, the workspace's autossh beside its
/// own binary (`cargo test` in the workspace builds both).
pub fn autossh_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("AUTOSSH_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .or_else(|| option_env!("CARGO_BIN_EXE_autossh").map(String::from))
            .unwrap_or_else(|| {
                let beside = Path::new(tunnels_bin()).with_file_name("autossh");
                assert!(
                    beside.exists(),
                    "no {}: run cargo test in the workspace, or cargo build first",
                    beside.display()
                );
                beside.display().to_string()
            })
    })
}

/// The tunnel-list program: cargo's for its own crate's tests, else the one
/// the workspace built beside autossh.
pub fn tunnels_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match option_env!("CARGO_BIN_EXE_autossh-tunnels") {
        Some(bin) => bin.to_string(),
        None => {
            let beside = Path::new(option_env!("CARGO_BIN_EXE_autossh").unwrap_or("autossh"))
                .with_file_name("autossh-tunnels");
            assert!(
                beside.exists(),
                "no {}: run cargo test in the workspace, or cargo build first",
                beside.display()
            );
            beside.display().to_string()
        }
    })
}
pub const REFERENCE: &str = "/usr/lib/autossh/autossh";

/// Every variable the usage text and the man page must explain.
pub const VARIABLES: [&str; 15] = [
    "AUTOSSH_GATETIME",
    "AUTOSSH_POLL",
    "AUTOSSH_FIRST_POLL",
    "AUTOSSH_MAXSTART",
    "AUTOSSH_MAXLIFETIME",
    "AUTOSSH_MESSAGE",
    "AUTOSSH_PORT",
    "AUTOSSH_PATH",
    "AUTOSSH_PIDFILE",
    "AUTOSSH_LOGFILE",
    "AUTOSSH_LOGLEVEL",
    "AUTOSSH_DEBUG",
    "AUTOSSH_NETWATCH",
    "AUTOSSH_KNOCK",
    "AUTOSSH_STATEFILE",
];

/// `items` with port placeholders filled in, so that the real-world command
/// lines run with ports that are free here: `{P}` and `{P1}` are the free
/// pair `p` and `p + 1` (`{Px}` is `p` in hex, `{Po}` in octal), `{Q}` and
/// `{Q1}` the pair `q`.
pub fn fill(items: &[&str], p: u16, q: u16) -> Vec<String> {
    items
        .iter()
        .map(|item| {
            item.replace("{P1}", &(p + 1).to_string())
                .replace("{Px}", &format!("{p:#x}"))
                .replace("{Po}", &format!("0{p:o}"))
                .replace("{P}", &p.to_string())
                .replace("{Q1}", &(q + 1).to_string())
                .replace("{Q}", &q.to_string())
        })
        .collect()
}

/// The strings of `v`, borrowed.
pub fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "autossh-test-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The fake ssh. Each run appends its pid to `pids` and writes its argv
/// (NUL-separated) to `argv.PID`. Its folder is FAKE_DIR, or where the
/// script is (for an ssh started with an environment of its own, as
/// autossh-tunnels starts tunnels); it puts FAKE_DIR in its environment. What it
/// does comes from FAKE_PLAN in its environment, else the file `plan` of its
/// folder ([`Fake::plan`]): one word per run (the last word
/// repeats), each `exit:N`, `sleep:S:N` (sleep S seconds, exit N), `hang`,
/// `stubborn` (hang ignoring SIGTERM), `kill:SIG` (kill itself with SIG), `fds`
/// (list its open descriptors, as `ls` after exec, into `fds.PID`, and exit 0),
/// `stdio` (where its fds 0 and 2 lead into `stdio.PID`, and exit 0),
/// `env` (its environment into `env.PID`, then hang),
/// `sigs` (its blocked and ignored signal masks into `sigs.PID`, and exit 0),
/// `say:N` (a line on its stderr, then exit N), `chatty:N` (N lines and
/// `the last word` on its stderr, then exit 255), `long` (a line of 2,000
/// bytes on its stderr, then exit 255), `known` (ssh's routine warning about
/// a new known host on its stderr, then exit 0), `orphans` (leave three
/// short-lived orphans behind, then hang),
/// `fwd:MODE` (play the monitor forwards with socat: `loop`, `echo`, `swallow`,
/// `wrong`, `wrongloop`, `slowloop` (as loop, 0.3 s late), `record`,
/// `swallowrecord`).
const FAKE_SSH: &str = r#"#!/bin/bash
d="${FAKE_DIR:-${0%/*}}"
export FAKE_DIR="$d"
# The argv first: a pid in pids always has its argv.
printf '%s\0' "$@" > "$d/argv.$$"
echo $$ >> "$d/pids"
forward=$2
n=$(wc -l < "$d/pids")
[ -n "${FAKE_PLAN:-}" ] || FAKE_PLAN=$(cat "$d/plan" 2>/dev/null) || FAKE_PLAN=exit:0
set -- $FAKE_PLAN
while [ $# -gt 1 ] && [ $n -gt 1 ]; do shift; n=$((n - 1)); done
case "$1" in
exit:*) exit "${1#exit:}" ;;
sleep:*) s=${1#sleep:}; sleep "${s%%:*}"; exit "${s#*:}" ;;
hang) exec sleep 1000 ;;
stubborn) trap '' TERM; exec sleep 1000 ;;
kill:*) kill -s "${1#kill:}" $$; sleep 5; exit 99 ;;
fds) exec ls /proc/self/fd > "$d/fds.$$" ;;
env) env > "$d/env.$$"; exec sleep 1000 ;;
stdio) exec readlink /proc/self/fd/0 /proc/self/fd/2 > "$d/stdio.$$" ;;
sigs) exec grep -E '^Sig(Blk|Ign):' /proc/self/status > "$d/sigs.$$" ;;
say:*) echo "fake ssh $$ says goodbye" >&2; exit "${1#say:}" ;;
chatty:*) seq 1 "${1#chatty:}" | sed 's/^/chatter /' >&2; echo "the last word" >&2; exit 255 ;;
held:*)
    # The relay refused a remote forward, and ssh ran on for a while.
    echo "Warning: remote port forwarding failed for listen port 2200" >&2
    sleep "${1#held:}"; exit 255 ;;
known) echo "Warning: Permanently added '10.0.0.2' (ED25519) to the list of known hosts." >&2; exit 0 ;;
long) head -c 2000 /dev/zero | tr '\0' x >&2; echo >&2; exit 255 ;;
orphans) (sleep 0.3 &); (sleep 0.3 &); (sleep 0.3 &); exec sleep 1000 ;;
fwd:*)
    # Play the forwards with socat: the first -L is "P:127.0.0.1:X".
    P=${forward%%:*}; L="TCP-LISTEN:$P,bind=127.0.0.1,reuseaddr,fork"
    case "${1#fwd:}" in
    loop) exec socat $L TCP:127.0.0.1:$((P + 1)) ;;
    staleloop)
        # As loop, with two connections to the return port from ssh's own
        # family made first, left open and silent (late returns of earlier
        # tests, say).
        socat -u TCP:127.0.0.1:$((P + 1)) SYSTEM:'sleep 60' &
        socat -u TCP:127.0.0.1:$((P + 1)) SYSTEM:'sleep 60' &
        exec socat $L TCP:127.0.0.1:$((P + 1)) ;;
    echo) exec socat $L PIPE ;;
    swallow) exec socat $L SYSTEM:'cat >/dev/null' ;;
    wrong) exec socat $L SYSTEM:'head -c 5 >/dev/null; echo wrong' ;;
    wrongloop)
        # Back through the return port with a wrong line. The command is a
        # script of its own: socat would cut a SYSTEM command at its colons.
        # It stays connected a while, as ssh's own connection would (one
        # closed at once is no one's, and not listened to), and says more
        # than the test line, so that the answer is complete, and wrong.
        printf '#!/bin/sh\nhead -c 5 >/dev/null\n(for i in 1 2 3 4 5 6 7 8 9 10; do printf bogusbogus; done; sleep 2) | exec socat - TCP:127.0.0.1:%s\n' \
            $((P + 1)) > "$d/wrongloop.$$"
        chmod +x "$d/wrongloop.$$"
        exec socat $L EXEC:"$d/wrongloop.$$" ;;
    slowloop)
        # As loop, a third of a second late (a slow link).
        printf '#!/bin/sh\nsleep 0.3\nexec socat - TCP:127.0.0.1:%s\n' $((P + 1)) > "$d/slowloop.$$"
        chmod +x "$d/slowloop.$$"
        exec socat $L EXEC:"$d/slowloop.$$" ;;
    record) exec socat $L SYSTEM:"tee -a $d/received" ;;
    swallowrecord) exec socat $L SYSTEM:"cat >> $d/received" ;;
    esac ;;
esac
exit 98
"#;

pub struct Fake {
    pub dir: TempDir,
}

impl Drop for Fake {
    /// Whatever ran with this fake's FAKE_DIR (autossh, its ssh, anything an
    /// original left behind) is killed, also when the test failed half-way.
    fn drop(&mut self) {
        let marker = format!("FAKE_DIR={}", self.dir.0.display());
        let Ok(procs) = fs::read_dir("/proc") else {
            return;
        };
        for entry in procs.filter_map(|e| e.ok()) {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let environ = fs::read(entry.path().join("environ")).unwrap_or_default();
            if environ.split(|&b| b == 0).any(|v| v == marker.as_bytes()) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// Makes `path` a program with `content`, without this process ever holding
/// it open for writing. Tests run in threads: one that forks while another
/// writes a program hands its child the write descriptor, and until that
/// child execs, running the program fails with ETXTBSY ("Text file busy").
/// So the content goes to a data file, and `cp`, another process, makes the
/// program.
pub fn write_executable(path: &Path, content: &[u8]) {
    let mut name = path.as_os_str().to_owned();
    name.push(".text");
    let text = PathBuf::from(name);
    fs::write(&text, content).unwrap();
    copy_executable(&text, path);
    fs::remove_file(&text).unwrap();
}

/// Copies the program `from` to `to` by `cp` (see [`write_executable`]);
/// a program already at `to` is replaced, not written over.
pub fn copy_executable(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("--remove-destination")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp {} {}", from.display(), to.display());
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
}

impl Fake {
    pub fn new(tag: &str) -> Fake {
        let dir = TempDir::new(tag);
        write_executable(&dir.path("ssh"), FAKE_SSH.as_bytes());
        Fake { dir }
    }

    pub fn ssh(&self) -> PathBuf {
        self.dir.path("ssh")
    }

    /// What the fake does when FAKE_PLAN does not reach it.
    pub fn plan(&self, plan: &str) {
        fs::write(self.dir.path("plan"), plan).unwrap();
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path("log")
    }

    /// A command for `program` with a clean AUTOSSH_* environment pointing at the
    /// fake ssh, the log file, and a gate time of 0 unless set otherwise.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args);
        for (k, _) in std::env::vars_os() {
            if k.as_bytes().starts_with(b"AUTOSSH_") || k.as_bytes().starts_with(b"FAKE_") {
                c.env_remove(k);
            }
        }
        c.env("AUTOSSH_PATH", self.ssh())
            .env("AUTOSSH_LOGFILE", self.log_path())
            .env("FAKE_DIR", &self.dir.0)
            .stdin(Stdio::null());
        default_signals(&mut c);
        c
    }

    pub fn autossh(&self, args: &[&str]) -> Command {
        self.command(autossh_bin(), args)
    }

    /// Pids of every ssh run so far, in order.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.path("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    pub fn runs(&self) -> usize {
        self.pids().len()
    }

    /// The argv (without argv[0]) of the ssh run with `pid`.
    pub fn argv_of(&self, pid: i32) -> Vec<String> {
        let raw = fs::read(self.dir.path(&format!("argv.{pid}"))).unwrap_or_default();
        let mut v: Vec<String> = raw
            .split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        v.pop();
        v
    }

    /// The argv of the last ssh run.
    pub fn last_argv(&self) -> Vec<String> {
        self.pids()
            .last()
            .map(|&p| self.argv_of(p))
            .unwrap_or_default()
    }

    /// Asserts that the last ssh run held no descriptor but 0–2 (and 3,
    /// which `ls` itself holds for reading the directory): plan `fds`.
    pub fn assert_ssh_got_only_stdio(&self) {
        let fds = self.fds_of(*self.pids().last().expect("an ssh ran"));
        assert!(!fds.is_empty());
        for fd in &fds {
            assert!(
                ["0", "1", "2", "3"].contains(&fd.as_str()),
                "leaked: {fds:?}"
            );
        }
    }

    pub fn fds_of(&self, pid: i32) -> Vec<String> {
        fs::read_to_string(self.dir.path(&format!("fds.{pid}")))
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// The log's messages, without the time stamp and `name[pid]: ` prefix.
    pub fn messages(&self) -> Vec<String> {
        messages_of(&fs::read_to_string(self.log_path()).unwrap_or_default())
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits (bounded) until the log has a line containing `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.log_text().contains(needle))
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.messages()
            .iter()
            .filter(|m| m.contains(needle))
            .count()
    }
}

/// The messages of a log file's text.
pub fn messages_of(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| match l.find("]: ") {
            Some(i) => l[i + 3..].to_string(),
            None => l.to_string(),
        })
        .collect()
}

/// Starts `command` with every signal at its default and none blocked,
/// whatever the test runner was left with: under `nohup`, or as a shell's
/// background job, HUP, INT and QUIT are ignored, and a program rightly
/// keeps them so (tests/start.rs). A test that wants them otherwise sets
/// them in a `pre_exec` of its own, which runs after this one.
pub fn default_signals(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2), sigemptyset(3) and sigprocmask(2) are
    // async-signal-safe, on a set of the child's own stack.
    unsafe {
        command.pre_exec(|| {
            for s in 1..32 {
                if s != libc::SIGKILL && s != libc::SIGSTOP {
                    libc::signal(s, libc::SIG_DFL);
                }
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Makes `command` run as user and group nobody (65534), with no other
/// group: another local user, for the tests of what one can do.
pub fn as_nobody(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn alive(pid: i32) -> bool {
    // A zombie counts as gone for these checks only if reaped; report it apart.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, sig) };
}

/// A running autossh, killed (SIGKILL) if the test ends before it does.
pub struct Running {
    pub child: Option<Child>,
    pub pid: i32,
}

impl Running {
    pub fn start(mut command: Command) -> Running {
        let child = command.spawn().expect("start autossh");
        let pid = child.id() as i32;
        Running {
            child: Some(child),
            pid,
        }
    }

    /// Waits at most `limit` for the exit status; None if still running.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                use std::os::unix::process::ExitStatusExt;
                return Some(status.code().unwrap_or(128 + status.signal().unwrap_or(0)));
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, sig: i32) {
        signal(self.pid, sig);
    }

    /// Ends a running autossh as a user would, with SIGTERM: it must exit 1.
    pub fn stop(mut self) {
        self.signal(libc::SIGTERM);
        assert_eq!(self.wait(LIMIT), Some(1), "autossh did not end on SIGTERM");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a command to completion, killing it if it outlives `limit`.
pub fn run_bounded(mut command: Command, limit: Duration) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    run_bounded_child(command.spawn().expect("spawn"), limit)
}

/// Waits for a started child's output, killing it if it outlives `limit`.
pub fn run_bounded_child(mut child: Child, limit: Duration) -> Output {
    let end = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "command did not finish within {limit:?}: {:?}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// How long a bounded wait in a test lasts at most.
pub const LIMIT: Duration = Duration::from_secs(20);
/// The same, for what starts real servers or builds packages.
pub const SLOW_LIMIT: Duration = Duration::from_secs(40);

/// True in CI, where tests that need the reference or root must not skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Whether a test can run: when `present` is false it says `skipped: WHY`
/// (on the real stderr, past the harness's capture) and returns false, and
/// in CI, where nothing may skip, it fails.
pub fn requires(present: bool, why: &str) -> bool {
    if present {
        return true;
    }
    assert!(!in_ci(), "cannot skip in CI: {why}");
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
    false
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The release binaries of both programs for `arches` are in TOP/dist/ (CI
/// builds them first with packaging/build-release).
pub fn have_release_builds(top: &str, arches: &[&str]) -> bool {
    let version = env!("CARGO_PKG_VERSION");
    let found = arches.iter().all(|a| {
        ["autossh", "autossh-tunnels"]
            .iter()
            .all(|p| Path::new(&format!("{top}/dist/{p}-{version}-{a}")).exists())
    });
    requires(
        found,
        "no release binaries in dist/ (.ci/run runs packaging/build-release first)",
    )
}

/// For tests that need root (mounts, namespaces, other users).
pub fn need_root() -> bool {
    requires(is_root(), "needs root")
}

pub fn have_reference() -> bool {
    requires(
        Path::new(REFERENCE).exists(),
        "the original (/usr/lib/autossh/autossh, Debian's autossh package) is missing",
    )
}

/// A port P with P and P+1 free on 127.0.0.1 now, different for each caller in
/// this process. The pairs lie below the kernel's ephemeral range, so that no
/// connection (of this test or another running beside it) is given P or P+1
/// as its local port between this check and the test's use of them.
pub fn free_pair() -> u16 {
    use std::net::TcpListener;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = (10_000, ephemeral_start().clamp(12_002, 65_535) - 2);
    let span = high - low;
    let base = (std::process::id() % 200) * 97;
    for _ in 0..2000 {
        let n = NEXT.fetch_add(2, Ordering::Relaxed);
        let port = (low + (base + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port pair");
}

/// The first port of the kernel's ephemeral range (32768 by default).
fn ephemeral_start() -> u32 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// socat plays the forwards in the probe tests.
pub fn have_socat() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("socat").exists()));
    requires(found, "socat is missing (.ci/run installs it)")
}

/// Whether a program is installed at `path`; `package` names what installs it.
pub fn have_tool(path: &str, package: &str) -> bool {
    requires(
        Path::new(path).exists(),
        &format!("{path} is missing (.ci/run installs {package})"),
    )
}

/// The parent pid and state letter of a process, from /proc.
fn parent_and_state(pid: i32) -> Option<(i32, char)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = stat.rsplit(')').next()?.split_whitespace();
    let state = f.next()?.chars().next()?;
    Some((f.next()?.parse().ok()?, state))
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Live (not zombie) children of `parent`, and zombie ones.
pub fn children_of(parent: i32) -> (Vec<i32>, Vec<i32>) {
    let mut live = Vec::new();
    let mut zombies = Vec::new();
    for pid in all_pids() {
        if let Some((ppid, state)) = parent_and_state(pid) {
            if ppid == parent {
                if state == 'Z' {
                    zombies.push(pid);
                } else {
                    live.push(pid);
                }
            }
        }
    }
    (live, zombies)
}

/// Every process below `root`.
pub fn descendants(root: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = all_pids()
        .into_iter()
        .filter_map(|pid| Some((pid, parent_and_state(pid)?.0)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// Asserts that process `pid` makes no system call for three seconds, as
/// strace sees it (`what` is shown if it does). The three seconds begin once
/// it waits in poll (seen three times in a row, 100 ms apart), so that the
/// work that follows a test, which a busy machine can spread out, is not
/// taken for idling.
pub fn assert_idle(pid: i32, what: &dyn std::fmt::Debug) {
    let in_poll = || {
        let call = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        let number = call
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<i64>().ok());
        // A 32-bit binary (the i686 build) shows i386's numbers: poll 168,
        // ppoll 309 and ppoll_time64 414. On x86_64 those are swapoff,
        // getcpu and none, where an idle autossh never waits.
        #[cfg(target_arch = "x86_64")]
        let polls = [libc::SYS_poll, libc::SYS_ppoll, 168, 309, 414];
        #[cfg(not(target_arch = "x86_64"))]
        let polls = [libc::SYS_ppoll];
        number.is_some_and(|n| polls.contains(&n))
    };
    let mut seen = 0;
    assert!(
        wait_until(LIMIT, || {
            seen = if in_poll() { seen + 1 } else { 0 };
            std::thread::sleep(Duration::from_millis(80));
            seen >= 3
        }),
        "never waiting in poll: {what:?}"
    );
    let mut s = Command::new("timeout");
    s.args(["-s", "INT", "3", "strace", "-c", "-p", &pid.to_string()]);
    let out = run_bounded(s, LIMIT);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("attached"),
        "strace did not watch: {report}"
    );
    // strace -c prints a table only when it saw a call.
    assert!(
        !report.contains("% time"),
        "system calls while idle:\n{report}\n{what:?}"
    );
}

/// The socket inodes that process `pid` holds.
pub fn socket_inodes(pid: i32) -> Vec<u64> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| {
                let target = fs::read_link(e.ok()?.path()).ok()?;
                let t = target.to_str()?;
                t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Whether process `pid` holds a TCP connection to 127.0.0.1:`port`.
pub fn connected_to(pid: i32, port: u16) -> bool {
    let ours = socket_inodes(pid);
    let table = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let remote_port = f
            .get(2)
            .and_then(|r| r.split_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        let inode = f.get(9).and_then(|i| i.parse::<u64>().ok());
        remote_port == Some(port) && inode.is_some_and(|i| i != 0 && ours.contains(&i))
    })
}

/// Returns once a test of the running autossh `r` is under way: it holds a
/// connection to the monitor port `port`, and no test has failed yet.
pub fn in_a_test(r: &Running, fake: &Fake, port: u16) {
    assert!(
        wait_until(LIMIT, || connected_to(r.pid, port)),
        "no test began: {:?}",
        fake.messages()
    );
    assert_eq!(fake.count_log("port down"), 0, "{:?}", fake.messages());
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The figure for bench/compare, which sets AUTOSSH_BENCH, with the
/// original's beside it (run only then: the tests are about ours).
pub fn bench_line(what: &str, ours: Duration, theirs: impl FnOnce() -> Duration) {
    if std::env::var_os("AUTOSSH_BENCH").is_none() {
        return;
    }
    let theirs = if Path::new(REFERENCE).exists() {
        format!("{:.3}s", theirs().as_secs_f64())
    } else {
        "not run".to_string()
    };
    println!(
        "bench: {what}: ours {:.3}s, original {theirs}",
        ours.as_secs_f64()
    );
}
