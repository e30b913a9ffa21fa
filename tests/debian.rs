//! The Debian packages (cargo-deb, through packaging/debian/build-deb), built
//! from the release binaries in dist/: for every architecture the same bytes
//! from the same inputs, the fields, files and maintainer scripts Debian's
//! autossh users rely on, and lintian's verdict; and the amd64 package in a
//! fresh Debian 12 root (made by `.ci/run` with mmdebstrap from Debian's
//! archive, so that this test needs no network) where Debian's autossh is
//! installed: the previous version replaces it, the package upgrades it,
//! runs a tunnel through the test remote host's sshd, and is removed and
//! purged without a trace; at each step its maintainer scripts call what
//! they should of a `systemctl` stand-in. `AUTOSSH_DEBIAN_ROOT` and
//! `AUTOSSH_DEBIAN_ARCH` name another root and its architecture (arm64 under
//! qemu-user). Needs root.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::remote::{self, echo_through, Remote};
use common::*;

const TOP: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const ARCHES: [(&str, &str); 4] = [
    ("amd64", "x86_64"),
    ("arm64", "aarch64"),
    ("armhf", "armv7"),
    ("i386", "i686"),
];

fn have_release_binaries() -> bool {
    have_release_builds(TOP, &ARCHES.map(|(_, a)| a))
}

/// Builds the packages of `arches` into `out`; returns their paths.
fn build(out: &Path, arches: &[&str]) -> Vec<PathBuf> {
    build_version(out, None, arches)
}

/// The same, as another version than Cargo's if `version` says so.
fn build_version(out: &Path, version: Option<&str>, arches: &[&str]) -> Vec<PathBuf> {
    build_from(Path::new(TOP), ("022", &[]), out, version, arches)
}

/// The same with the build-deb of the tree at `top`, under a umask and with
/// variables of its own.
fn build_from(
    top: &Path,
    (umask, vars): (&str, &[(&str, &str)]),
    out: &Path,
    version: Option<&str>,
    arches: &[&str],
) -> Vec<PathBuf> {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(top.join("packaging/debian/build-deb"))
        .envs(vars.iter().copied());
    c.arg("--out").arg(out);
    if let Some(v) = version {
        c.args(["--deb-version", v]);
    }
    c.args(arches);
    let o = run_bounded(c, SLOW_LIMIT * 4);
    assert!(o.status.success(), "build-deb: {}", text(&o.stderr));
    let paths: Vec<PathBuf> = text(&o.stdout).lines().map(PathBuf::from).collect();
    assert_eq!(paths.len(), arches.len(), "{}", text(&o.stdout));
    paths
}

/// Copies the repository's files (tracked, or new and not ignored) and the
/// release binaries of this version to `to`.
fn copy_tree(to: &Path) {
    let o = run(
        "git",
        &[
            "-C",
            TOP,
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    );
    assert!(o.status.success(), "git ls-files: {}", text(&o.stderr));
    let mut names: Vec<String> = text(&o.stdout)
        .split('\0')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    for (_, release) in ARCHES {
        for program in ["autossh", "autossh-tunnels"] {
            names.push(format!("dist/{program}-{VERSION}-{release}"));
        }
    }
    // A tracked file deleted in the work tree is not part of it.
    names.retain(|n| fs::symlink_metadata(Path::new(TOP).join(n)).is_ok());
    // By cp, another process: no descriptor of a program being written
    // here can reach a child forked meanwhile by another test (ETXTBSY).
    let mut c = Command::new("cp");
    c.args(["--parents", "--no-dereference", "--preserve=mode"])
        .arg("--target-directory")
        .arg(to)
        .arg("--")
        .args(&names)
        .current_dir(TOP);
    let o = run_bounded(c, SLOW_LIMIT * 4);
    assert!(o.status.success(), "cp: {}", text(&o.stderr));
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(program: &str, args: &[&str]) -> Output {
    let mut c = Command::new(program);
    c.args(args);
    run_bounded(c, SLOW_LIMIT * 4)
}

/// The package's files and links (not folders), as absolute paths.
fn contents(deb: &Path) -> BTreeSet<String> {
    let o = run("dpkg-deb", &["--contents", deb.to_str().unwrap()]);
    assert!(o.status.success());
    text(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let name = l.split_whitespace().nth(5).unwrap();
            name.trim_start_matches('.').to_string()
        })
        .collect()
}

fn field(deb: &Path, name: &str) -> String {
    let o = run("dpkg-deb", &["--field", deb.to_str().unwrap(), name]);
    assert!(o.status.success(), "{name}: {}", text(&o.stderr));
    text(&o.stdout).trim().to_string()
}

/// What Debian's autossh users call, and what this package adds.
const EXPECTED: [&str; 22] = [
    "/etc/logcheck/ignore.d.workstation/autossh",
    "/lib/systemd/system/autossh@.service",
    "/usr/bin/autossh",
    "/usr/bin/autossh-argv0",
    "/usr/bin/autossh-tunnels",
    "/usr/bin/rscreen",
    "/usr/bin/rtmux",
    "/usr/bin/ruscreen",
    "/usr/lib/autossh/autossh",
    "/usr/share/doc/autossh-rs/changelog.gz",
    "/usr/share/doc/autossh-rs/copyright",
    "/usr/share/doc/autossh-rs/examples/autossh-tunnels.rc",
    "/usr/share/doc/autossh-rs/examples/autossh.host",
    "/usr/share/doc/autossh-rs/examples/relay.conf",
    "/usr/share/doc/autossh-rs/examples/tunnels.conf",
    "/usr/share/lintian/overrides/autossh-rs",
    "/usr/share/man/man1/autossh-argv0.1.gz",
    "/usr/share/man/man1/autossh-tunnels.1.gz",
    "/usr/share/man/man1/autossh.1.gz",
    "/usr/share/man/man1/rscreen.1.gz",
    "/usr/share/man/man1/rtmux.1.gz",
    "/usr/share/man/man1/ruscreen.1.gz",
];

/// The control archive: no md5sums (cargo-deb writes none; dpkg computes
/// them when it unpacks, checked in the root below).
const CONTROL: [&str; 5] = ["conffiles", "control", "postinst", "postrm", "prerm"];

#[test]
fn packages_are_reproducible_complete_and_lintian_clean() {
    if !have_release_binaries()
        || !have_tool("/usr/bin/dpkg-deb", "dpkg")
        || !have_tool("/usr/bin/lintian", "lintian")
    {
        return;
    }
    let arches: Vec<&str> = ARCHES.iter().map(|(d, _)| *d).collect();
    let (one, two) = (TempDir::new("deb1"), TempDir::new("deb2"));
    let first = build(&one.0, &arches);
    // Again from a copy of the tree elsewhere, every file newer, with
    // another umask, locale and time zone: the same bytes.
    std::thread::sleep(Duration::from_millis(1100));
    let copy = TempDir::new("debtree");
    copy_tree(&copy.0);
    let vars = [("LC_ALL", "C.UTF-8"), ("TZ", "Asia/Kathmandu")];
    let second = build_from(&copy.0, ("077", &vars), &two.0, None, &arches);
    for ((deb, again), (arch, release)) in first.iter().zip(&second).zip(ARCHES) {
        assert_eq!(
            deb.file_name().unwrap().to_str().unwrap(),
            format!("autossh-rs_{VERSION}_{arch}.deb")
        );
        assert!(
            fs::read(deb).unwrap() == fs::read(again).unwrap(),
            "{arch}: two builds differ"
        );
        assert_eq!(field(deb, "Package"), "autossh-rs");
        assert_eq!(field(deb, "Version"), VERSION);
        assert_eq!(field(deb, "Architecture"), arch);
        for name in ["Provides", "Conflicts", "Replaces"] {
            assert_eq!(field(deb, name), "autossh", "{arch} {name}");
        }
        assert_eq!(field(deb, "Depends"), "openssh-client");
        assert_eq!(
            field(deb, "Description").lines().next().unwrap(),
            "keep ssh sessions and tunnels up (autossh in Rust)"
        );
        assert!(field(deb, "Description").ends_with("autossh@.service, that is not enabled."));

        let files = contents(deb);
        let want: BTreeSet<String> = EXPECTED.iter().map(|s| s.to_string()).collect();
        assert_eq!(files, want, "{arch}");

        // The binaries are the release binaries, byte for byte.
        let x = TempDir::new("debx");
        let o = run(
            "dpkg-deb",
            &["--extract", deb.to_str().unwrap(), x.0.to_str().unwrap()],
        );
        assert!(o.status.success());
        for (inside, release_name) in [
            ("usr/bin/autossh", "autossh"),
            ("usr/bin/autossh-tunnels", "autossh-tunnels"),
        ] {
            assert!(
                fs::read(x.path(inside)).unwrap()
                    == fs::read(format!("{TOP}/dist/{release_name}-{VERSION}-{release}")).unwrap(),
                "{arch}: {inside}"
            );
        }
        assert_eq!(
            fs::read_link(x.path("usr/lib/autossh/autossh")).unwrap(),
            Path::new("../../bin/autossh")
        );
        // Man pages compressed; the unit shipped, enabled nowhere.
        let page = fs::read(x.path("usr/share/man/man1/autossh.1.gz")).unwrap();
        assert_eq!(&page[..2], b"\x1f\x8b");
        assert!(!x.path("etc/systemd").exists());
        let copyright = fs::read_to_string(x.path("usr/share/doc/autossh-rs/copyright")).unwrap();
        assert!(copyright.contains("BSD-2-Clause"));
        assert!(copyright.contains("GNU C Library"));

        let control = TempDir::new("debc");
        let o = run(
            "dpkg-deb",
            &[
                "--control",
                deb.to_str().unwrap(),
                control.0.to_str().unwrap(),
            ],
        );
        assert!(o.status.success());
        let mut names: Vec<String> = fs::read_dir(&control.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, CONTROL, "{arch}");
        assert_eq!(
            fs::read_to_string(control.path("conffiles"))
                .unwrap()
                .trim_end(),
            "/etc/logcheck/ignore.d.workstation/autossh"
        );
        // The maintainer scripts, as written, executable.
        for script in ["postinst", "postrm", "prerm"] {
            assert_eq!(
                fs::read(control.path(script)).unwrap(),
                fs::read(format!(
                    "{TOP}/packaging/debian/maintainer-scripts/{script}"
                ))
                .unwrap(),
                "{arch} {script}"
            );
            let mode = fs::metadata(control.path(script)).unwrap().permissions();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
                0o755
            );
        }

        // lintian: no error, no warning, not even a pedantic remark (its
        // overrides are explained in docs/debian.md), nothing it cannot read.
        let o = run(
            "lintian",
            &[
                "--fail-on",
                "none",
                "--info",
                "--pedantic",
                deb.to_str().unwrap(),
            ],
        );
        let said = text(&o.stdout) + &text(&o.stderr);
        let problems: Vec<&str> = said
            .lines()
            .filter(|l| ["E:", "W:", "I:", "P:"].iter().any(|t| l.starts_with(t)))
            .collect();
        assert!(problems.is_empty(), "{arch}: lintian: {said}");
        assert!(o.status.success(), "{arch}: lintian: {said}");
    }
}

/// What `script` printed; it must have succeeded.
fn succeeded(script: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{script}: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// A fresh Debian 12 root, unpacked from the tarball `.ci/run` made; removed
/// on drop, with its /proc and anything still running from it.
struct Root {
    dir: TempDir,
}

impl Root {
    fn new() -> Option<Root> {
        let tar = std::env::var("AUTOSSH_DEBIAN_ROOT")
            .unwrap_or_else(|_| format!("{TOP}/target/debian12-root.tar"));
        if !requires(
            Path::new(&tar).exists(),
            &format!("no Debian root at {tar} (.ci/run makes it with mmdebstrap)"),
        ) {
            return None;
        }
        let dir = TempDir::new("debroot");
        let o = run("tar", &["-xf", &tar, "-C", dir.0.to_str().unwrap()]);
        assert!(o.status.success(), "tar: {}", text(&o.stderr));
        Some(Root { dir })
    }

    /// Runs `script` with sh inside the root, in a mount namespace of its
    /// own with its own /proc and /dev/pts: nothing is left mounted.
    fn sh(&self, script: &str) -> Output {
        self.run_sh(script, false)
    }

    /// The same, in a network namespace of its own too, with no network at
    /// all: apt gets its packages from the root or not at all.
    fn offline(&self, script: &str) -> String {
        succeeded(script, self.run_sh(script, true))
    }

    fn run_sh(&self, script: &str, offline: bool) -> Output {
        let root = self.dir.0.to_str().unwrap();
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private"]);
        if offline {
            c.arg("--net");
        }
        c.args(["sh", "-c"])
            .arg(
                r#"mount -t proc proc "$1/proc" &&
                mount -t devpts -o newinstance,ptmxmode=0666 devpts "$1/dev/pts" &&
                exec chroot "$1" /bin/sh -c "$2""#,
            )
            .args(["sh", root, script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C");
        run_bounded(c, SLOW_LIMIT * 6)
    }

    /// `script` must succeed; what it printed.
    fn ok(&self, script: &str) -> String {
        succeeded(script, self.sh(script))
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.dir.0.join(inside.trim_start_matches('/'))
    }

    /// Processes whose root is this one: only they are ever signalled.
    fn processes(&self) -> Vec<i32> {
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|r| r == self.dir.0) {
                found.push(pid);
            }
        }
        found
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        for _ in 0..50 {
            let left = self.processes();
            if left.is_empty() {
                break;
            }
            for pid in left {
                signal(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What maintainer scripts call: stand-ins for `systemctl` and `systemd-run`
/// that record each call with the script that made it (`systemd-run` then
/// runs its command at once), in a root where systemd seems to run
/// (`/run/systemd/system`). The root's real systemctl stays, as
/// `systemctl.real`, for what an administrator does offline (`--root`).
struct Systemctl<'a> {
    root: &'a Root,
}

impl<'a> Systemctl<'a> {
    const LOG: &'static str = "/tmp/systemctl.calls";

    fn new(root: &'a Root) -> Systemctl<'a> {
        let real = root.path("/usr/bin/systemctl");
        assert!(
            real.exists(),
            "the root has no systemctl: make it again (`.ci/run` includes systemd)"
        );
        fs::rename(&real, root.path("/usr/bin/systemctl.real")).unwrap();
        let record = format!(
            "#!/bin/sh\necho \"$DPKG_MAINTSCRIPT_PACKAGE $DPKG_MAINTSCRIPT_NAME: ${{0##*/}} $*\" >> {}\n",
            Self::LOG
        );
        write_executable(&real, record.as_bytes());
        let run = root.path("/usr/bin/systemd-run");
        assert!(run.exists());
        write_executable(
            &run,
            format!("{record}while [ \"${{1#--}}\" != \"$1\" ]; do shift; done\nexec \"$@\"\n")
                .as_bytes(),
        );
        // No policy-rc.d that would stop deb-systemd-invoke.
        assert!(!root.path("/usr/sbin/policy-rc.d").exists());
        let me = Systemctl { root };
        me.running(true);
        me
    }

    /// Whether systemd seems to run: the maintainer scripts' test.
    fn running(&self, yes: bool) {
        let flag = self.root.path("/run/systemd/system");
        if yes {
            fs::create_dir_all(flag).unwrap();
        } else {
            fs::remove_dir(flag).unwrap();
        }
    }

    /// The calls since the last time, and forgets them.
    fn calls(&self) -> Vec<String> {
        let log = self.root.path(Self::LOG);
        let said = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        said.lines().map(str::to_string).collect()
    }
}

/// The links that enable units under /etc/systemd/system, with their targets.
fn enabled(root: &Root) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let top = root.path("/etc/systemd/system");
    for dir in fs::read_dir(&top).unwrap().flatten() {
        let name = dir.file_name().into_string().unwrap();
        if !(name.ends_with(".wants") || name.ends_with(".requires")) {
            continue;
        }
        for link in fs::read_dir(dir.path()).unwrap().flatten() {
            let unit = link.file_name().into_string().unwrap();
            if unit.starts_with("autossh") {
                found.push((
                    format!("{name}/{unit}"),
                    fs::read_link(link.path()).unwrap(),
                ));
            }
        }
    }
    found.sort();
    found
}

/// The previous version, and the commit whose build-deb made it (with
/// dpkg-deb: no maintainer scripts, an md5sums file).
const PREVIOUS: (&str, &str) = ("1.4.7", "fea69e4");

/// The previous version's package for `arch`, built into `out` by its own
/// build-deb, taken from the repository's history, around this version's
/// release binaries (what is tested is the upgrade, not the old binaries).
fn previous_package(out: &Path, arch: &str) -> PathBuf {
    let (version, commit) = PREVIOUS;
    let release = ARCHES.iter().find(|(a, _)| *a == arch).unwrap().1;
    let tree = TempDir::new("debprev");
    let mut c = Command::new("sh");
    c.args(["-c", "git -C \"$0\" archive \"$1\" | tar -x -C \"$2\""])
        .args([TOP, commit, tree.0.to_str().unwrap()]);
    let o = run_bounded(c, SLOW_LIMIT * 4);
    assert!(
        o.status.success(),
        "commit {commit} of the history is needed (a full clone): {}",
        text(&o.stderr)
    );
    fs::create_dir_all(tree.path("dist")).unwrap();
    for program in ["autossh", "autossh-tunnels"] {
        copy_executable(
            Path::new(&format!("{TOP}/dist/{program}-{VERSION}-{release}")),
            &tree.path(&format!("dist/{program}-{version}-{release}")),
        );
    }
    let mut c = Command::new(tree.path("packaging/debian/build-deb"));
    c.arg("--out").arg(out).arg(arch);
    let o = run_bounded(c, SLOW_LIMIT * 4);
    assert!(
        o.status.success(),
        "{version}'s build-deb: {}",
        text(&o.stderr)
    );
    let deb = PathBuf::from(text(&o.stdout).trim());
    assert_eq!(field(&deb, "Version"), version);
    deb
}

#[test]
fn replaces_debians_autossh_runs_and_purges_cleanly() {
    if !have_release_binaries()
        || !remote::can_run()
        || !have_tool("/usr/bin/unshare", "util-linux")
        || !have_tool("/usr/bin/git", "git")
    {
        return;
    }
    let Some(root) = Root::new() else { return };
    // Another architecture's package in a root of that architecture
    // (`.ci/run` does arm64 under qemu-user).
    let arch = std::env::var("AUTOSSH_DEBIAN_ARCH").unwrap_or_else(|_| "amd64".into());
    assert!(ARCHES.iter().any(|(a, _)| *a == arch), "{arch}");
    let native = root.ok("dpkg --print-architecture");
    assert_eq!(native.trim(), arch, "the root's architecture");
    let out = TempDir::new("debpkg");
    let deb = build(&out.0, &[&arch]).remove(0);
    let previous = previous_package(&out.0, &arch);
    let ours = contents(&deb);
    let systemctl = Systemctl::new(&root);
    let scripts = |calls: &[&str]| -> Vec<String> {
        calls.iter().map(|c| format!("autossh-rs {c}")).collect()
    };
    let version = |v: &str| {
        assert_eq!(
            root.ok("dpkg-query -W -f '${Status} ${Version}' autossh-rs"),
            format!("install ok installed {v}")
        );
    };

    // Debian's autossh first: its wrapper script is /usr/bin/autossh.
    assert!(root
        .ok("dpkg-query -W -f '${Status}' autossh")
        .contains("install ok installed"));
    assert!(fs::read(root.path("/usr/bin/autossh"))
        .unwrap()
        .starts_with(b"#!"));

    for package in [&deb, &previous] {
        let name = package.file_name().unwrap().to_str().unwrap();
        fs::copy(package, root.path(&format!("/tmp/{name}"))).unwrap();
    }
    let install = |package: &Path| {
        let name = package.file_name().unwrap().to_str().unwrap();
        root.offline(&format!("apt-get install -y /tmp/{name} 2>&1"));
    };

    // The previous version, which had no maintainer scripts, replaces
    // Debian's.
    install(&previous);
    version(PREVIOUS.0);
    let theirs = root.sh("dpkg-query -W -f '${Status}' autossh");
    assert!(
        !text(&theirs.stdout).contains("install ok installed"),
        "Debian's autossh is still installed"
    );
    assert_eq!(systemctl.calls(), Vec::<String>::new());
    assert!(enabled(&root).is_empty(), "{:?}", enabled(&root));

    // Tunnels enabled as the administrator does: with systemd's own
    // systemctl (offline), by hand to the unit's other path and relatively;
    // and a link of theirs to a unit of their own.
    root.ok("systemctl.real --quiet --root=/ enable autossh@relay.service");
    let link = |name: &str, to: &str| (name.to_string(), PathBuf::from(to));
    let relay = link(
        "multi-user.target.wants/autossh@relay.service",
        "/lib/systemd/system/autossh@.service",
    );
    assert_eq!(enabled(&root), vec![relay.clone()]);
    let by_hand = [
        link(
            "multi-user.target.wants/autossh@usr.service",
            "/usr/lib/systemd/system/autossh@.service",
        ),
        link(
            "network-online.target.wants/autossh@rel.service",
            "../../../../lib/systemd/system/autossh@.service",
        ),
    ];
    let theirs = link(
        "multi-user.target.wants/autossh@mine.service",
        "/etc/systemd/system/autossh@.service",
    );
    for (name, to) in by_hand.iter().chain([&theirs]) {
        let at = root.path("/etc/systemd/system").join(name);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(to, at).unwrap();
    }
    let mut all = vec![relay, theirs.clone()];
    all.extend(by_hand);
    all.sort();
    assert_eq!(enabled(&root), all);

    // The upgrade: systemd reloads, and the running instances restart, in a
    // unit of their own a few seconds later (here at once).
    install(&deb);
    version(VERSION);
    assert_eq!(
        systemctl.calls(),
        scripts(&[
            "postinst: systemctl --system daemon-reload",
            "postinst: systemd-run --quiet --no-block --collect --on-active=5 \
             --description=restart of the autossh@ tunnels after an upgrade \
             deb-systemd-invoke try-restart autossh@*.service",
            "postinst: systemctl try-restart autossh@*.service",
        ])
    );
    // dpkg computed the md5sums the package does not carry, and they hold.
    assert!(root.path("/var/lib/dpkg/info/autossh-rs.md5sums").exists());
    assert_eq!(root.ok("dpkg --verify autossh-rs"), "");
    // Into another root (DPKG_ROOT), the scripts leave this system alone.
    for script in ["postinst configure 1.4.7", "prerm remove", "postrm remove"] {
        root.ok(&format!(
            "DPKG_ROOT=/nonexistent /var/lib/dpkg/info/autossh-rs.{script}"
        ));
    }
    assert_eq!(systemctl.calls(), Vec::<String>::new());

    assert_eq!(root.ok("autossh -V"), "autossh 1.4g\n");
    assert_eq!(root.ok("/usr/lib/autossh/autossh -V"), "autossh 1.4g\n");
    assert_eq!(
        root.ok("man -w autossh"),
        "/usr/share/man/man1/autossh.1.gz\n"
    );
    assert_eq!(
        root.ok("man -w autossh-tunnels"),
        "/usr/share/man/man1/autossh-tunnels.1.gz\n"
    );
    assert!(root.path("/lib/systemd/system/autossh@.service").exists());
    // autossh-tunnels runs there too: a list with a wrong line.
    fs::write(root.path("/tmp/t.conf"), "tunnel a -N host\nbogus line\n").unwrap();
    let o = root.sh("AUTOSSH_TUNNELS=/tmp/t.conf autossh-tunnels check");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).starts_with("/tmp/t.conf:2: "), "{o:?}");

    // A tunnel from inside the root (it shares this host's network) through
    // the test remote host's sshd, with Debian's ssh: the key where ssh_args
    // says it is.
    let remote = Remote::new();
    let user = free_pair();
    let args = remote.ssh_args(user);
    let key = &args[args.iter().position(|a| a == "-i").unwrap() + 1];
    let inside_key = root.path(key);
    fs::create_dir_all(inside_key.parent().unwrap()).unwrap();
    fs::copy(key, &inside_key).unwrap();
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    root.ok(&format!(
        "AUTOSSH_PIDFILE=/tmp/autossh.pid AUTOSSH_GATETIME=0 autossh -f -M 0 {}",
        quoted.join(" ")
    ));
    assert!(
        wait_until(SLOW_LIMIT, || echo_through(user)),
        "no tunnel from the root: {:?}",
        root.processes()
    );
    let pid: i32 = fs::read_to_string(root.path("/tmp/autossh.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(root.processes().contains(&pid));
    signal(pid, libc::SIGTERM);
    assert!(
        wait_until(SLOW_LIMIT, || root.processes().is_empty()),
        "left running: {:?}",
        root.processes()
    );

    // Removed: the instances are stopped, systemd forgets the unit; the
    // conffile stays, and so do the tunnels' links, as configuration does.
    root.offline("apt-get remove -y autossh-rs 2>&1");
    assert_eq!(
        systemctl.calls(),
        scripts(&[
            "prerm: systemctl stop autossh@*.service",
            "postrm: systemctl --system daemon-reload"
        ])
    );
    let left: Vec<&String> = ours.iter().filter(|f| root.path(f).exists()).collect();
    assert_eq!(
        left,
        vec!["/etc/logcheck/ignore.d.workstation/autossh"],
        "after remove"
    );
    assert_eq!(enabled(&root), all);

    // Purged, with systemd not running this time: no call, and nothing of
    // ours, the links to our unit included; the administrator's link stays.
    systemctl.running(false);
    root.offline("apt-get purge -y autossh-rs 2>&1");
    assert_eq!(systemctl.calls(), Vec::<String>::new());
    let left: Vec<&String> = ours
        .iter()
        .filter(|f| fs::symlink_metadata(root.path(f)).is_ok())
        .collect();
    assert!(left.is_empty(), "after purge: {left:?}");
    for folder in ["/usr/lib/autossh", "/usr/share/doc/autossh-rs"] {
        assert!(!root.path(folder).exists(), "{folder} left");
    }
    assert_eq!(enabled(&root), vec![theirs.clone()]);
    let status = root.sh("dpkg-query -W -f '${Status}' autossh-rs 2>&1");
    assert!(!text(&status.stdout).contains("installed"), "{status:?}");

    // A first install of this version: systemd reloads, and that is all.
    systemctl.running(true);
    install(&deb);
    version(VERSION);
    assert_eq!(
        systemctl.calls(),
        scripts(&["postinst: systemctl --system daemon-reload"])
    );
    assert_eq!(enabled(&root), vec![theirs]);
    root.offline("apt-get purge -y autossh-rs 2>&1");
}
