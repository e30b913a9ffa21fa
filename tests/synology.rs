//! The Synology packages (packaging/synology/build-spk), built from the
//! release binaries in dist/ (packaging/build-release): their structure for
//! every processor family and DSM version, and the whole lifecycle of the
//! x86_64 DSM 7 package (or another family's, under emulation) in a simulated
//! DSM layout, every script run as an
//! unprivileged package user as DSM 7 runs them, against the real sshd of the
//! test remote host.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::remote::{self, Remote};
use common::*;

const TOP: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The package user of the simulated DSM: nobody.
const PACKAGE_USER: u32 = 65534;

/// The release binaries are there (CI builds them first); without them the
/// packages cannot be built.
fn have_release_binaries() -> bool {
    have_release_builds(TOP, &["x86_64", "aarch64", "armv7"])
}

/// Builds the packages of `families` into `out`; returns their paths.
fn build(out: &Path, families: &[&str]) -> Vec<PathBuf> {
    let mut c = Command::new(format!("{TOP}/packaging/synology/build-spk"));
    c.arg("--out").arg(out).args(families);
    let o = run_bounded(c, SLOW_LIMIT);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// One package of `family` for DSM `dsm` (6 or 7), built into a folder of
/// its own (kept while the first is alive).
fn one_package(tag: &str, family: &str, dsm: u8) -> (TempDir, PathBuf) {
    let out = TempDir::new(tag);
    let spk = build(&out.0, &[family])
        .into_iter()
        .find(|p| p.to_str().unwrap().ends_with(&format!("-dsm{dsm}.spk")))
        .unwrap();
    (out, spk)
}

fn sh(args: &[&str]) -> Vec<u8> {
    let o = run_bounded(
        {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        },
        SLOW_LIMIT,
    );
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// The INFO fields of a package.
fn info(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| {
            let (k, v) = line.split_once('=').expect("key=value");
            assert!(
                v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                "{line}"
            );
            let v = &v[1..v.len() - 1];
            assert!(!v.contains(['"', '$', '`', '\\']), "not shell-safe: {line}");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let n = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    (n(16), n(20))
}

#[test]
fn packages_are_well_formed() {
    if !have_release_binaries() {
        return;
    }
    let dir = TempDir::new("spk");
    let built = build(&dir.0, &[]);
    assert_eq!(built.len(), 6, "{built:?}");
    // The same inputs give the same bytes.
    let again = TempDir::new("spk2");
    build(&again.0, &["armv7"]);
    let name = format!("autossh-{VERSION}-0001-armv7-dsm7.spk");
    assert_eq!(
        fs::read(dir.0.join(&name)).unwrap(),
        fs::read(again.0.join(&name)).unwrap()
    );

    for spk in &built {
        let file = spk.file_name().unwrap().to_str().unwrap().to_string();
        let dsm7 = file.ends_with("-dsm7.spk");
        let family = file.split('-').nth(3).unwrap().to_string();
        let x = TempDir::new("spkx");
        let at = x.0.to_str().unwrap();
        sh(&["tar", "xf", spk.to_str().unwrap(), "-C", at]);
        let mut members: Vec<String> = String::from_utf8(sh(&["tar", "tf", spk.to_str().unwrap()]))
            .unwrap()
            .lines()
            .filter(|m| !m.ends_with('/'))
            .map(String::from)
            .collect();
        members.sort();
        let scripts = [
            "common",
            "postinst",
            "postuninst",
            "postupgrade",
            "preinst",
            "preuninst",
            "preupgrade",
            "start-stop-status",
        ];
        let mut expected: Vec<String> = [
            "INFO",
            "LICENSE",
            "PACKAGE_ICON.PNG",
            "PACKAGE_ICON_256.PNG",
            "WIZARD_UIFILES/install_uifile",
            "WIZARD_UIFILES/uninstall_uifile",
            "conf/privilege",
            "conf/resource",
            "package.tgz",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(scripts.iter().map(|s| format!("scripts/{s}")))
        .collect();
        expected.sort();
        assert_eq!(members, expected, "{file}");

        // INFO: the required fields, a valid version, the DSM it is for.
        let fields = info(&fs::read_to_string(x.0.join("INFO")).unwrap());
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{file}: no {k}"))
        };
        for required in [
            "package",
            "version",
            "os_min_ver",
            "description",
            "arch",
            "maintainer",
        ] {
            assert!(!get(required).is_empty(), "{file}: {required}");
        }
        assert_eq!(get("package"), "autossh");
        let version = get("version");
        let (feature, build_number) = version.split_once('-').unwrap();
        assert!(
            feature.split('.').all(|p| p.parse::<u32>().is_ok()),
            "{version}"
        );
        assert!(build_number.parse::<u32>().is_ok(), "{version}");
        assert_eq!(
            get("os_min_ver"),
            if dsm7 { "7.0-40000" } else { "6.2-25556" }
        );
        let arch = get("arch");
        assert!(arch.split(' ').next() == Some(family.as_str()), "{arch}");
        if family == "armv7" {
            assert!(arch.contains("armada38x"), "{arch}");
        }
        let md5 =
            String::from_utf8(sh(&["md5sum", x.0.join("package.tgz").to_str().unwrap()])).unwrap();
        assert_eq!(get("checksum"), md5.split(' ').next().unwrap());

        // The binary: static, for the family's processor.
        sh(&[
            "tar",
            "xzf",
            x.0.join("package.tgz").to_str().unwrap(),
            "-C",
            at,
        ]);
        // Both programs: static, for the family's processor.
        let machine = match family.as_str() {
            "x86_64" => "x86-64",
            "armv8" => "ARM aarch64",
            _ => "ARM, EABI5",
        };
        for program in ["bin/autossh", "bin/autossh-tunnels"] {
            let kind = String::from_utf8(sh(&["file", "-b", x.0.join(program).to_str().unwrap()]))
                .unwrap();
            assert!(kind.contains(machine), "{file}: {program}: {kind}");
            assert!(
                kind.contains("statically linked") || kind.contains("static-pie linked"),
                "{program}: {kind}"
            );
        }

        // The Tunnels app: DSM links /webman/3rdparty/autossh to target/ui.
        assert_eq!(get("dsmuidir"), "ui");
        let app = get("dsmappname");
        let ui = x.0.join("ui");
        let config: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(ui.join("config")).unwrap()).unwrap();
        let entry = if dsm7 {
            assert!(ui.join("tunnels.js").exists(), "{file}");
            config["tunnels.js"][&app].clone()
        } else {
            assert!(!ui.join("tunnels.js").exists(), "{file}");
            let entry = config[".url"][&app].clone();
            assert_eq!(entry["url"], "/webman/3rdparty/autossh/index.cgi");
            entry
        };
        assert_eq!(entry["type"], if dsm7 { "app" } else { "legacy" }, "{file}");
        assert_eq!(entry["allUsers"], false);
        let icon = entry["icon"].as_str().unwrap();
        for size in [16, 24, 32, 48, 64, 72, 256] {
            let png = fs::read(ui.join(icon.replace("{0}", &size.to_string()))).unwrap();
            assert_eq!(png_size(&png), (size, size), "{file}: icon {size}");
        }
        let cgi = fs::metadata(ui.join("index.cgi")).unwrap();
        assert_eq!(cgi.permissions().mode() & 0o777, 0o755);
        sh(&["sh", "-n", ui.join("index.cgi").to_str().unwrap()]);
        // Nothing of the package's data is under the web-served folder.
        let served = String::from_utf8(sh(&["find", ui.to_str().unwrap()])).unwrap();
        assert!(
            !served.contains("tunnels.conf") && !served.contains("id_ed25519"),
            "{served}"
        );

        for script in scripts {
            sh(&[
                "sh",
                "-n",
                x.0.join("scripts").join(script).to_str().unwrap(),
            ]);
        }
        let json = |p: &str| -> serde_json::Value {
            serde_json::from_str(&fs::read_to_string(x.0.join(p)).unwrap())
                .unwrap_or_else(|e| panic!("{file}: {p}: {e}"))
        };
        assert_eq!(json("conf/privilege")["defaults"]["run-as"], "package");
        json("conf/resource");
        let wizard = json("WIZARD_UIFILES/install_uifile");
        let keys: Vec<&str> = wizard[0]["items"][0]["subitems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "wizard_host",
                "wizard_port",
                "wizard_user",
                "wizard_remote_port",
                "wizard_local_port"
            ]
        );
        json("WIZARD_UIFILES/uninstall_uifile");
        let small = if dsm7 { 64 } else { 72 };
        assert_eq!(
            png_size(&fs::read(x.0.join("PACKAGE_ICON.PNG")).unwrap()),
            (small, small)
        );
        assert_eq!(
            png_size(&fs::read(x.0.join("PACKAGE_ICON_256.PNG")).unwrap()),
            (256, 256)
        );
    }
}

/// A simulated DSM 7 with the package installed in it: /var/packages/autossh
/// with target/, var/ and scripts/, owned by the package user.
struct Dsm {
    root: TempDir,
    spk: TempDir,
    /// DSM 6.2: no SYNOPKG_PKGVAR, the permanent folder in the target.
    dsm6: bool,
}

impl Dsm {
    fn new(spk: &Path) -> Dsm {
        let root = TempDir::new("dsm");
        let dsm = Dsm {
            root,
            spk: TempDir::new("dsmspk"),
            dsm6: spk.to_str().unwrap().ends_with("-dsm6.spk"),
        };
        sh(&[
            "tar",
            "xf",
            spk.to_str().unwrap(),
            "-C",
            dsm.spk.0.to_str().unwrap(),
        ]);
        dsm.extract();
        fs::create_dir_all(dsm.var()).unwrap();
        dsm.give_to_package_user();
        dsm
    }

    fn package(&self) -> PathBuf {
        self.root.0.join("var/packages/autossh")
    }
    fn target(&self) -> PathBuf {
        self.package().join("target")
    }
    fn var(&self) -> PathBuf {
        if self.dsm6 {
            self.target().join("var")
        } else {
            self.package().join("var")
        }
    }
    fn log(&self) -> PathBuf {
        self.root.0.join("synopkg-message")
    }

    /// What DSM does with the package's files: target from package.tgz, the
    /// scripts beside it.
    fn extract(&self) {
        let _ = fs::remove_dir_all(self.target());
        fs::create_dir_all(self.target()).unwrap();
        let tgz = self.spk.0.join("package.tgz");
        sh(&[
            "tar",
            "xzf",
            tgz.to_str().unwrap(),
            "-C",
            self.target().to_str().unwrap(),
        ]);
        let scripts = self.package().join("scripts");
        let _ = fs::remove_dir_all(&scripts);
        sh(&[
            "cp",
            "-r",
            self.spk.0.join("scripts").to_str().unwrap(),
            scripts.to_str().unwrap(),
        ]);
    }

    fn give_to_package_user(&self) {
        let owner = format!("{PACKAGE_USER}:{PACKAGE_USER}");
        sh(&["chown", "-R", &owner, self.root.0.to_str().unwrap()]);
    }

    /// Runs a script as DSM 7 does: as the package user, with the SYNOPKG_*
    /// variables and the wizard's answers.
    fn run(
        &self,
        script: &str,
        args: &[&str],
        status: &str,
        wizard: &[(&str, &str)],
    ) -> (i32, String) {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={PACKAGE_USER}"),
            &format!("--regid={PACKAGE_USER}"),
            "--clear-groups",
            "--",
        ])
        .arg(self.package().join("scripts").join(script))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SYNOPKG_PKGNAME", "autossh")
        .env("SYNOPKG_PKGVER", format!("{VERSION}-0001"))
        .env("SYNOPKG_PKGDEST", self.target())
        .env("SYNOPKG_TEMP_LOGFILE", self.log())
        .env("SYNOPKG_PKG_STATUS", status)
        .env(
            "SYNOPKG_DSM_VERSION_MAJOR",
            if self.dsm6 { "6" } else { "7" },
        );
        if !self.dsm6 {
            c.env("SYNOPKG_PKGVAR", self.var());
        }
        for (k, v) in wizard {
            c.env(k, v);
        }
        let o = run_bounded(c, SLOW_LIMIT);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    }

    /// The autossh processes of the package, by their pid files.
    fn tunnels(&self) -> Vec<i32> {
        let run = self.var().join("run");
        fs::read_dir(run)
            .map(|d| {
                d.filter_map(|e| fs::read_to_string(e.ok()?.path()).ok()?.trim().parse().ok())
                    .filter(|&p| alive(p))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Dsm {
    fn drop(&mut self) {
        for pid in self.tunnels() {
            for child in descendants(pid) {
                signal(child, libc::SIGKILL);
            }
            signal(pid, libc::SIGKILL);
        }
    }
}

/// A line sent into the relay's end of the tunnel comes back from the echo
/// service on this side.
fn through_tunnel(remote: &Remote, relay_port: u16) -> bool {
    let out = remote.run_inside(
        &[
            "socat",
            "-T",
            "2",
            "-",
            &format!("TCP:127.0.0.1:{relay_port},connect-timeout=1"),
        ],
        b"through the tunnel\n",
    );
    out == b"through the tunnel\n"
}

/// An echo service on this side's loopback `port`: what a tunnel makes
/// reachable.
fn echo_service(port: u16) -> Running {
    let mut echo = Command::new("socat");
    echo.args([
        &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
        "PIPE",
    ]);
    Running::start(echo)
}

#[test]
fn package_lifecycle_with_a_real_sshd() {
    if !have_release_binaries() || !remote::can_run() {
        return;
    }
    // AUTOSSH_SPK_FAMILY picks another family's package (CI runs armv8's
    // under emulation).
    let family = std::env::var("AUTOSSH_SPK_FAMILY").unwrap_or_else(|_| "x86_64".into());
    let (_out, spk) = one_package("spklife", &family, 7);
    let mut remote = Remote::new();
    // The service the tunnel makes reachable: an echo on this side.
    let local = free_pair();
    let relay = free_pair();
    let _echo = echo_service(local);
    let dsm = Dsm::new(&spk);
    let wizard = [
        ("wizard_host", remote.addr.to_string()),
        ("wizard_port", "22".to_string()),
        ("wizard_user", "root".to_string()),
        ("wizard_remote_port", relay.to_string()),
        ("wizard_local_port", local.to_string()),
    ];
    let wizard: Vec<(&str, &str)> = wizard.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Install: the key is made and shown, the first tunnel written.
    assert_eq!(dsm.run("preinst", &[], "INSTALL", &wizard).0, 0);
    let (code, said) = dsm.run("postinst", &[], "INSTALL", &wizard);
    assert_eq!(code, 0, "{said}");
    let public = fs::read_to_string(dsm.var().join("id_ed25519.pub")).unwrap();
    assert!(public.starts_with("ssh-ed25519 "));
    let shown = fs::read_to_string(dsm.log()).unwrap();
    assert!(shown.contains(public.trim()), "{shown}");
    let list = fs::read_to_string(dsm.var().join("tunnels.conf")).unwrap();
    let first = format!(
        "tunnel first -N -R {relay}:localhost:{local} root@{}\n",
        remote.addr
    );
    assert!(list.ends_with(&first), "{list}");
    remote.authorize(&public);

    // Start returns at once; the tunnel carries traffic.
    let began = Instant::now();
    let (code, said) = dsm.run("start-stop-status", &["start"], "START", &[]);
    assert_eq!(code, 0, "{said}");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    assert!(
        wait_until(SLOW_LIMIT, || through_tunnel(&remote, relay)),
        "the tunnel never carried traffic"
    );
    let (code, said) = dsm.run("start-stop-status", &["status"], "", &[]);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.starts_with("first: starting since ") || said.starts_with("first: up since "),
        "{said}"
    );

    // ssh killed: the tunnel comes back.
    let autossh = dsm.tunnels();
    assert_eq!(autossh.len(), 1);
    let (ssh, _) = children_of(autossh[0]);
    assert_eq!(ssh.len(), 1);
    signal(ssh[0], libc::SIGKILL);
    assert!(wait_until(SLOW_LIMIT, || children_of(autossh[0])
        .0
        .iter()
        .any(|p| !ssh.contains(p))));
    assert!(
        wait_until(SLOW_LIMIT, || through_tunnel(&remote, relay)),
        "the tunnel did not come back"
    );

    // Stop: nothing of the package is left running.
    let everything: Vec<i32> = descendants(autossh[0])
        .into_iter()
        .chain(autossh.clone())
        .collect();
    let (code, said) = dsm.run("start-stop-status", &["stop"], "STOP", &[]);
    assert_eq!(code, 0, "{said}");
    for pid in &everything {
        assert!(!alive(*pid), "{pid} left running");
    }
    assert_eq!(dsm.run("start-stop-status", &["status"], "", &[]).0, 3);

    // Upgrade (DSM 7's order): the list, the key and the known hosts stay.
    let kept = [
        "tunnels.conf",
        "id_ed25519",
        "id_ed25519.pub",
        "known_hosts",
    ]
    .map(|f| fs::read(dsm.var().join(f)).unwrap());
    assert!(!kept[3].is_empty(), "ssh recorded the relay's host key");
    for (script, status) in [
        ("preupgrade", "UPGRADE"),
        ("preuninst", "UPGRADE"),
        ("postuninst", "UPGRADE"),
    ] {
        assert_eq!(dsm.run(script, &[], status, &[]).0, 0, "{script}");
    }
    dsm.extract();
    dsm.give_to_package_user();
    for (script, status) in [
        ("preinst", "UPGRADE"),
        ("postinst", "UPGRADE"),
        ("postupgrade", "UPGRADE"),
    ] {
        let (code, said) = dsm.run(script, &[], status, &wizard);
        assert_eq!(code, 0, "{script}: {said}");
    }
    let now = [
        "tunnels.conf",
        "id_ed25519",
        "id_ed25519.pub",
        "known_hosts",
    ]
    .map(|f| fs::read(dsm.var().join(f)).unwrap());
    assert_eq!(now, kept);
    let (code, said) = dsm.run("start-stop-status", &["start"], "START", &[]);
    assert_eq!(code, 0, "{said}");
    assert!(
        wait_until(SLOW_LIMIT, || through_tunnel(&remote, relay)),
        "no tunnel after the upgrade"
    );

    // Uninstall, asked to delete the data: nothing of the package is left.
    let running = dsm.tunnels();
    let everything: Vec<i32> = running
        .iter()
        .flat_map(|&p| descendants(p))
        .chain(running.clone())
        .collect();
    assert_eq!(dsm.run("preuninst", &[], "UNINSTALL", &[]).0, 0);
    assert_eq!(
        dsm.run(
            "postuninst",
            &[],
            "UNINSTALL",
            &[("wizard_delete_data", "true")]
        )
        .0,
        0
    );
    for pid in &everything {
        assert!(!alive(*pid), "{pid} left running");
    }
    assert!(!dsm.var().exists());
    assert!(!through_tunnel(&remote, relay));
    remote.stop_sshd(true);
}

/// DSM 6.2 has no SYNOPKG_PKGVAR: the permanent folder lives in the target,
/// which an upgrade replaces; preupgrade and postupgrade carry it over.
#[test]
fn dsm6_upgrade_keeps_the_tunnel_list_and_the_key() {
    if !have_release_binaries() {
        return;
    }
    let (_out, spk) = one_package("spk6", "x86_64", 6);
    let x = TempDir::new("dsm6");
    sh(&[
        "tar",
        "xf",
        spk.to_str().unwrap(),
        "-C",
        x.0.to_str().unwrap(),
    ]);
    let target = x.0.join("target");
    let upgrade = x.0.join("upgrade");
    fs::create_dir_all(&upgrade).unwrap();
    let extract = || {
        let _ = fs::remove_dir_all(&target);
        fs::create_dir_all(&target).unwrap();
        sh(&[
            "tar",
            "xzf",
            x.0.join("package.tgz").to_str().unwrap(),
            "-C",
            target.to_str().unwrap(),
        ]);
    };
    let run = |script: &str| {
        let mut c = Command::new(x.0.join("scripts").join(script));
        c.env_remove("SYNOPKG_PKGVAR")
            .env("SYNOPKG_PKGDEST", &target)
            .env("SYNOPKG_TEMP_UPGRADE_FOLDER", &upgrade)
            .env("SYNOPKG_TEMP_LOGFILE", x.0.join("message"))
            .env("wizard_host", "relay.example.net")
            .env("wizard_user", "tunnel");
        let o = run_bounded(c, SLOW_LIMIT);
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    extract();
    run("postinst");
    let var = target.join("var");
    let list = fs::read_to_string(var.join("tunnels.conf")).unwrap();
    assert!(
        list.ends_with("tunnel first -N -R 2200:localhost:22 tunnel@relay.example.net\n"),
        "{list}"
    );
    let key = fs::read(var.join("id_ed25519")).unwrap();
    run("preupgrade");
    extract();
    assert!(!var.exists());
    run("postinst");
    run("postupgrade");
    assert_eq!(fs::read_to_string(var.join("tunnels.conf")).unwrap(), list);
    assert_eq!(fs::read(var.join("id_ed25519")).unwrap(), key);
}

/// The install wizard's answers are checked by the program, as the app
/// checks its form: a host the app would refuse is not written (and the
/// user is told why), so the first tunnel is never one the app calls
/// "written by hand".
#[test]
fn the_wizard_adds_only_what_the_app_accepts() {
    if !have_release_binaries() {
        return;
    }
    let (_out, spk) = one_package("spkwiz", "x86_64", 6);
    for (host, port, written) in [
        ("relay_1", "22", None),
        ("relay.", "22", None),
        ("relay.example.net", "x", None),
        (
            "relay.example.net",
            "2222",
            Some("tunnel first -N -p 2222 -R 2200:localhost:22 tunnel@relay.example.net\n"),
        ),
    ] {
        let x = TempDir::new("wizard");
        sh(&[
            "tar",
            "xf",
            spk.to_str().unwrap(),
            "-C",
            x.0.to_str().unwrap(),
        ]);
        let target = x.0.join("target");
        fs::create_dir_all(&target).unwrap();
        sh(&[
            "tar",
            "xzf",
            x.0.join("package.tgz").to_str().unwrap(),
            "-C",
            target.to_str().unwrap(),
        ]);
        let mut c = Command::new(x.0.join("scripts").join("postinst"));
        c.env_remove("SYNOPKG_PKGVAR")
            .env("SYNOPKG_PKGDEST", &target)
            .env("SYNOPKG_TEMP_LOGFILE", x.0.join("message"))
            .env("wizard_host", host)
            .env("wizard_port", port)
            .env("wizard_user", "tunnel");
        let o = run_bounded(c, SLOW_LIMIT);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let list = fs::read_to_string(target.join("var/tunnels.conf")).unwrap();
        let told = fs::read_to_string(x.0.join("message")).unwrap_or_default();
        match written {
            Some(line) => {
                assert!(list.ends_with(line), "{list}");
                assert!(!told.contains("not added"), "{told}");
            }
            None => {
                assert!(!list.contains("tunnel first"), "{host} {port}: {list}");
                let why = if port == "x" {
                    "port: a port is a number"
                } else {
                    "host: not a host name or address"
                };
                assert!(
                    told.contains(&format!("The first tunnel was not added: {why}")),
                    "{host} {port}: {told}"
                );
            }
        }
    }
}

/// The Tunnels app in a real browser: headless Chromium, the simulated DSM's
/// web front serving the package's ui/ (DSM 7's and DSM 6.2's), the real
/// sshd of the test remote host as the relay. An administrator sees the wizard's tunnel up,
/// adds one, changes it, restarts it, deletes it, and sees ssh's reason for
/// a refused key; a plain user gets 403; what a cross-site page or hostile
/// values send changes nothing.
#[test]
fn the_app_in_a_browser() {
    app_in_a_browser(7);
}

#[test]
fn the_dsm6_app_in_a_browser() {
    app_in_a_browser(6);
}

fn app_in_a_browser(version: u8) {
    if !have_release_binaries() || !remote::can_run() || !common::web::have_browser() {
        return;
    }
    use common::web::{http, write_authenticate, Browser, Front, Site, TOKEN};
    let (_out, spk) = one_package(&format!("spkapp{version}"), "x86_64", version);
    let mut remote = Remote::new();
    let local = free_pair();
    let _echo = echo_service(local);
    let dsm = Dsm::new(&spk);
    let relay = free_pair();
    let wizard = [
        ("wizard_host", remote.addr.to_string()),
        ("wizard_user", "root".to_string()),
        ("wizard_remote_port", relay.to_string()),
        ("wizard_local_port", local.to_string()),
    ];
    let wizard: Vec<(&str, &str)> = wizard.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(dsm.run("postinst", &[], "INSTALL", &wizard).0, 0);
    let public = fs::read_to_string(dsm.var().join("id_ed25519.pub")).unwrap();
    remote.authorize(&public);
    // Tested 2 s after each start, so that "up" comes soon.
    let soon = [("AUTOSSH_FIRST_POLL", "2")];
    let (code, said) = dsm.run("start-stop-status", &["start"], "START", &soon);
    assert_eq!(code, 0, "{said}");

    let stand_ins = TempDir::new("dsmweb");
    let authenticate = write_authenticate(&stand_ins.0);
    let groups = stand_ins.path("group");
    fs::write(
        &groups,
        "users:x:100:admin,alice\nadministrators:x:101:admin\n",
    )
    .unwrap();
    let site = Site {
        ui: dsm.target().join("ui"),
        env: vec![
            (
                "AUTOSSH_PACKAGE".into(),
                dsm.package().display().to_string(),
            ),
            (
                "AUTOSSH_DSM_AUTHENTICATE".into(),
                authenticate.display().to_string(),
            ),
            ("AUTOSSH_DSM_GROUPS".into(), groups.display().to_string()),
            ("AUTOSSH_FIRST_POLL".into(), "2".into()),
        ],
        user: PACKAGE_USER,
    };
    let front = Front::start(site.clone(), [127, 0, 0, 1]);
    let list = || fs::read_to_string(dsm.var().join("tunnels.conf")).unwrap();
    let shots = Path::new(TOP).join(format!("target/screenshots/dsm{version}"));
    let b = Browser::start();
    let row_state = |name: &str| {
        b.js(&format!(
            "var r = document.querySelector('tr[data-name=\"{name}\"]'); return r ? r.getAttribute('data-state') + ' ' + r.innerText : '';"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    };

    // The administrator logs in and opens the app: the wizard's tunnel is up.
    b.go(&front.url("/login?user=admin"));
    let mut seen = String::new();
    assert!(
        wait_until(SLOW_LIMIT, || {
            seen = row_state("first");
            seen.starts_with("up ")
        }),
        "first: {seen}: {}",
        b.text()
    );
    assert!(seen.contains("since"), "{seen}");
    assert!(b.text().contains(public.trim()), "the key is shown");
    b.screenshot(&shots.join("app-list.png"));

    // Adds a second tunnel through the form; it comes up.
    let second = free_pair();
    b.click("#add");
    b.fill("#f-name", "second");
    b.fill("#f-host", &remote.addr.to_string());
    b.fill("#f-user", "root");
    b.fill("#remote input[name=listen]", &second.to_string());
    b.fill("#remote input[name=port]", &local.to_string());
    b.screenshot(&shots.join("app-form.png"));
    b.click("#form button[type=submit]");
    assert!(
        wait_until(SLOW_LIMIT, || row_state("second").starts_with("up ")),
        "second: {}",
        b.text()
    );
    assert!(list().contains(&format!(
        "tunnel second -N -R {second}:localhost:{local} root@{}\n",
        remote.addr
    )));
    assert!(wait_until(SLOW_LIMIT, || through_tunnel(&remote, second)));

    // Changes it: another port of the relay.
    let third = free_pair();
    b.js("document.querySelector('tr[data-name=\"second\"] button[data-act=edit]').click()");
    b.fill("#remote input[name=listen]", &third.to_string());
    b.click("#form button[type=submit]");
    assert!(
        wait_until(SLOW_LIMIT, || list()
            .contains(&format!("-R {third}:localhost:{local} "))),
        "{}",
        b.text()
    );
    assert!(wait_until(SLOW_LIMIT, || through_tunnel(&remote, third)));
    assert!(!through_tunnel(&remote, second));

    // Restarts it: a new ssh.
    let pid_of = |name: &str| -> i32 {
        fs::read_to_string(dsm.var().join(format!("run/{name}.pid")))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0)
    };
    assert!(wait_until(SLOW_LIMIT, || children_of(pid_of("second"))
        .0
        .len()
        == 1));
    let old_ssh = children_of(pid_of("second")).0[0];
    let first_autossh = pid_of("first");
    b.js("document.querySelector('tr[data-name=\"second\"] button[data-act=restart]').click()");
    assert!(
        wait_until(SLOW_LIMIT, || !alive(old_ssh)
            && children_of(pid_of("second")).0.len() == 1),
        "{}",
        b.text()
    );
    assert_eq!(
        pid_of("first"),
        first_autossh,
        "the other tunnel was touched"
    );
    assert!(wait_until(SLOW_LIMIT, || through_tunnel(&remote, third)));

    // A key the relay refuses (a user it does not know): ssh's reason shows.
    b.click("#add");
    b.fill("#f-name", "refused");
    b.fill("#f-host", &remote.addr.to_string());
    b.fill("#f-user", "nosuchuser");
    b.fill("#remote input[name=listen]", &free_pair().to_string());
    b.fill("#remote input[name=port]", &local.to_string());
    b.click("#form button[type=submit]");
    assert!(
        wait_until(SLOW_LIMIT, || row_state("refused")
            .contains("Permission denied (publickey")),
        "refused: {}",
        b.text()
    );

    // A change whose tunnel then fails to start (a setting added by hand
    // that autossh refuses): saved, and the page says why it did not start.
    let hand_set = "env refused AUTOSSH_PORT=70000\n";
    fs::OpenOptions::new()
        .append(true)
        .open(dsm.var().join("tunnels.conf"))
        .unwrap()
        .write_all(hand_set.as_bytes())
        .unwrap();
    b.js("document.querySelector('tr[data-name=\"refused\"] button[data-act=edit]').click()");
    b.fill("#remote input[name=listen]", &free_pair().to_string());
    b.click("#form button[type=submit]");
    let failed = "the list was saved, but refused: failed to start: ";
    assert!(
        wait_until(SLOW_LIMIT, || b.text().contains(failed)
            && b.text().contains("70000")),
        "{}",
        b.text()
    );
    assert!(
        wait_until(LIMIT, || row_state("refused").starts_with("stopped")),
        "{}",
        row_state("refused")
    );
    b.screenshot(&shots.join("app-failed.png"));
    // The setting taken out again, and the tunnel restarted from the app.
    fs::write(dsm.var().join("tunnels.conf"), list().replace(hand_set, "")).unwrap();
    b.js("document.querySelector('tr[data-name=\"refused\"] button[data-act=restart]').click()");
    assert!(
        wait_until(SLOW_LIMIT, || row_state("refused")
            .contains("Permission denied (publickey")),
        "refused again: {}",
        b.text()
    );

    // Hostile values in the form: refused with the field's reason, nothing
    // written.
    let before = list();
    b.click("#add");
    b.fill("#f-name", "evil");
    b.fill("#f-host", "$(reboot)");
    b.fill("#f-user", "-oProxyCommand=id");
    b.click("#form button[type=submit]");
    assert!(
        wait_until(LIMIT, || b.text().contains("not a host name")),
        "{}",
        b.text()
    );
    b.click("#cancel");
    assert_eq!(list(), before);

    // Deletes the second: stopped, gone from the list.
    let second_autossh = pid_of("second");
    b.js("window.confirm = function () { return true; }; document.querySelector('tr[data-name=\"second\"] button[data-act=delete]').click()");
    assert!(
        wait_until(SLOW_LIMIT, || row_state("second").is_empty()
            && !alive(second_autossh)),
        "{}",
        b.text()
    );
    assert!(!list().contains("tunnel second "));
    assert!(!through_tunnel(&remote, third));

    // Without the token, or from a page of another site: nothing changes.
    let before = list();
    let form = format!(
        r#"{{"create":true,"name":"sneaky","host":"{}","remote":[{{"listen":9,"port":9}}]}}"#,
        remote.addr
    );
    let path = "/webman/3rdparty/autossh/index.cgi?action=save";
    let cookie = "id=admin-session";
    let (status, _) = http(
        front.addr,
        "POST",
        path,
        &[("Cookie", cookie), ("Content-Type", "application/json")],
        form.as_bytes(),
    );
    assert_eq!(status, 401);
    let with_query = format!("{path}&SynoToken={TOKEN}");
    let (status, _) = http(
        front.addr,
        "POST",
        &with_query,
        &[("Cookie", cookie), ("Content-Type", "application/json")],
        form.as_bytes(),
    );
    assert_eq!(status, 403);
    let evil_dir = TempDir::new("evil");
    fs::write(
        evil_dir.path("index.html"),
        format!(
            "<form id=f method=POST enctype=text/plain action=\"{}\"><input name='{{\"create\":true,\"name\":\"x\",\"host\":\"h\",\"remote\":[{{\"listen\":9,\"port\":9}}],\"a\":\"' value='\"}}'></form><script>document.getElementById('f').submit()</script>",
            front.url(&with_query)
        ),
    )
    .unwrap();
    let evil = Front::start(
        Site {
            ui: evil_dir.0.clone(),
            ..site.clone()
        },
        [127, 0, 0, 2],
    );
    b.go(&evil.url("/webman/3rdparty/autossh/index.html"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(list(), before, "a cross-site form changed the list");

    // On a phone's screen: nothing wider than the screen, every button there.
    b.go(&front.url("/login?user=admin"));
    b.size(390, 800);
    assert!(
        wait_until(LIMIT, || row_state("first").starts_with("up ")),
        "{}",
        b.text()
    );
    let fits = b.js(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1 && \
         Array.from(document.querySelectorAll('button')).every(function (e) { \
           var r = e.getBoundingClientRect(); return r.width === 0 || r.right <= window.innerWidth + 1; })",
    );
    assert_eq!(fits, serde_json::Value::Bool(true), "wider than a phone");
    b.screenshot(&shots.join("app-phone.png"));

    // A plain user's session: 403, and nothing of the list.
    b.js("document.cookie = 'id=; Max-Age=0; path=/'");
    b.go(&front.url("/login?user=alice"));
    assert!(
        wait_until(LIMIT, || b
            .text()
            .contains("only members of administrators")),
        "{}",
        b.text()
    );
    assert!(!b.text().contains("first"));

    drop(b);
    let (code, said) = dsm.run("start-stop-status", &["stop"], "STOP", &[]);
    assert_eq!(code, 0, "{said}");
    remote.stop_sshd(true);
}
