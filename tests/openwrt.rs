//! The OpenWrt packages (packaging/openwrt/build-ipk), built from the
//! release binaries in dist/: the same bytes from the same inputs, the
//! format opkg reads (a gzipped tar of debian-binary, data.tar.gz and
//! control.tar.gz), the control fields that make them take the place of
//! OpenWrt's autossh, and the files: the release binaries, byte for byte,
//! the init script, the configuration as a conffile, the hotplug hook and
//! the maintainer scripts. (The init script itself is driven as procd
//! drives it in crates/autossh-tunnels/tests/openwrt.rs.)

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const TOP: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Each package and the release binary it carries.
const ARCHES: [(&str, &str); 11] = [
    ("x86_64", "x86_64"),
    ("i386_pentium4", "i686"),
    ("aarch64_generic", "aarch64"),
    ("aarch64_cortex-a53", "aarch64"),
    ("aarch64_cortex-a72", "aarch64"),
    ("arm_cortex-a7_neon-vfpv4", "armv7"),
    ("arm_cortex-a9_vfpv3-d16", "armv7"),
    ("arm_cortex-a15_neon-vfpv4", "armv7"),
    ("mips_24kc", "mips"),
    ("mipsel_24kc", "mipsel"),
    ("mipsel_74kc", "mipsel"),
];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn build(out: &Path, arches: &[&str]) -> Vec<PathBuf> {
    let mut c = Command::new(format!("{TOP}/packaging/openwrt/build-ipk"));
    c.arg("--out").arg(out).args(arches);
    let o = run_bounded(c, SLOW_LIMIT * 4);
    assert!(o.status.success(), "build-ipk: {}", text(&o.stderr));
    text(&o.stdout).lines().map(PathBuf::from).collect()
}

/// Unpacks the tar.gz `file` into `into`; the names it held, in order.
fn untar(file: &Path, into: &Path) -> Vec<String> {
    fs::create_dir_all(into).unwrap();
    let mut c = Command::new("tar");
    c.arg("-xzvf").arg(file).arg("-C").arg(into);
    let o = run_bounded(c, SLOW_LIMIT);
    assert!(o.status.success(), "tar: {}", text(&o.stderr));
    text(&o.stdout).lines().map(str::to_string).collect()
}

/// The owners and modes of the tar.gz `file`, by name.
fn modes(file: &Path) -> BTreeMap<String, String> {
    let mut c = Command::new("tar");
    c.arg("-tzvf").arg(file).arg("--numeric-owner");
    let o = run_bounded(c, SLOW_LIMIT);
    assert!(o.status.success());
    text(&o.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[5].to_string(), format!("{} {}", f[0], f[1]))
        })
        .collect()
}

#[test]
fn packages_are_reproducible_and_take_openwrts_autossh_place() {
    let releases: Vec<&str> = ARCHES.iter().map(|(_, r)| *r).collect();
    if !have_release_builds(TOP, &releases) {
        return;
    }
    let (one, two) = (TempDir::new("ipk1"), TempDir::new("ipk2"));
    let first = build(&one.0, &[]);
    assert_eq!(first.len(), ARCHES.len());
    std::thread::sleep(Duration::from_millis(1100));
    let second = build(&two.0, &[]);
    for ((ipk, again), (arch, release)) in first.iter().zip(&second).zip(ARCHES) {
        assert_eq!(
            ipk.file_name().unwrap().to_str().unwrap(),
            format!("autossh-rs_{VERSION}-r1_{arch}.ipk")
        );
        assert!(
            fs::read(ipk).unwrap() == fs::read(again).unwrap(),
            "{arch}: two builds differ"
        );
        let x = TempDir::new("ipkx");
        assert_eq!(
            untar(ipk, &x.0),
            ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
        );
        assert_eq!(
            fs::read_to_string(x.path("debian-binary")).unwrap(),
            "2.0\n"
        );

        let control = x.path("control");
        let names = untar(&x.path("control.tar.gz"), &control);
        assert_eq!(
            names,
            ["./conffiles", "./control", "./postinst", "./prerm"],
            "{arch}"
        );
        let fields: BTreeMap<String, String> = fs::read_to_string(control.join("control"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in [
            ("Package", "autossh-rs"),
            ("Version", &format!("{VERSION}-r1")),
            ("Architecture", arch),
            ("Provides", "autossh"),
            ("Conflicts", "autossh"),
            ("Replaces", "autossh"),
            ("Section", "net"),
            ("License", "BSD-2-Clause"),
        ] {
            assert_eq!(fields.get(k).map(String::as_str), Some(v), "{arch} {k}");
        }
        assert_eq!(
            fs::read_to_string(control.join("conffiles")).unwrap(),
            "/etc/config/autossh\n"
        );
        for script in ["postinst", "prerm"] {
            assert_eq!(
                fs::read(control.join(script)).unwrap(),
                fs::read(format!("{TOP}/packaging/openwrt/{script}")).unwrap()
            );
        }
        let cmodes = modes(&x.path("control.tar.gz"));
        assert_eq!(cmodes["./postinst"], "-rwxr-xr-x 0/0");
        assert_eq!(cmodes["./control"], "-rw-r--r-- 0/0");

        let data = x.path("data");
        let mut files = untar(&x.path("data.tar.gz"), &data);
        files.retain(|f| !f.ends_with('/'));
        assert_eq!(
            files,
            [
                "./etc/config/autossh",
                "./etc/hotplug.d/iface/20-autossh",
                "./etc/init.d/autossh",
                "./usr/sbin/autossh",
                "./usr/sbin/autossh-tunnels"
            ],
            "{arch}"
        );
        for (inside, from) in [
            (
                "usr/sbin/autossh",
                format!("dist/autossh-{VERSION}-{release}"),
            ),
            (
                "usr/sbin/autossh-tunnels",
                format!("dist/autossh-tunnels-{VERSION}-{release}"),
            ),
            ("etc/init.d/autossh", "deploy/openwrt/autossh.init".into()),
            ("etc/config/autossh", "deploy/openwrt/autossh.config".into()),
            (
                "etc/hotplug.d/iface/20-autossh",
                "deploy/openwrt/autossh.hotplug".into(),
            ),
        ] {
            assert!(
                fs::read(data.join(inside)).unwrap() == fs::read(format!("{TOP}/{from}")).unwrap(),
                "{arch}: {inside}"
            );
        }
        let dmodes = modes(&x.path("data.tar.gz"));
        assert_eq!(dmodes["./usr/sbin/autossh"], "-rwxr-xr-x 0/0");
        assert_eq!(dmodes["./etc/init.d/autossh"], "-rwxr-xr-x 0/0");
        assert_eq!(dmodes["./etc/config/autossh"], "-rw-r--r-- 0/0");
        let size: u64 = files
            .iter()
            .map(|f| fs::metadata(data.join(f)).unwrap().len())
            .sum();
        assert_eq!(fields["Installed-Size"], size.to_string());
    }
    // A name opkg would not know is refused, with the list.
    let mut c = Command::new(format!("{TOP}/packaging/openwrt/build-ipk"));
    c.arg("--out").arg(&one.0).arg("arm_cortex-a9");
    let o = run_bounded(c, SLOW_LIMIT);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("unknown OpenWrt architecture: arm_cortex-a9"));
}
