//! OpenWrt's init script (deploy/openwrt/autossh.init) driven as procd
//! drives it, through a stand-in for rc.common of our own that records what
//! the script tells procd (tests/openwrt/rc.common): for OpenWrt's sample
//! configuration, and for one with two tunnels, a disabled one and broken
//! ones. The test then plays procd: it starts each instance with its
//! command and its environment alone, against the fake ssh, and asks the
//! init script for the tunnels' status.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::*;

const TOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// An init script of the package's, run by the rc.common stand-in, with
/// this build's autossh-tunnels in place of /usr/sbin's.
struct Router {
    fake: Fake,
    config: PathBuf,
    run: PathBuf,
    init: PathBuf,
    children: Vec<Child>,
}

impl Drop for Router {
    fn drop(&mut self) {
        for c in &mut self.children {
            // Only a child not yet reaped is still ours, with its own.
            if !matches!(c.try_wait(), Ok(None)) {
                continue;
            }
            for pid in descendants(c.id() as i32) {
                signal(pid, libc::SIGKILL);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What one `procd_open_instance` … `procd_close_instance` said.
#[derive(Debug, Default, PartialEq, Eq)]
struct Instance {
    name: String,
    command: Vec<String>,
    env: Vec<String>,
    respawn: Vec<String>,
}

/// A recorded call: its words (each followed by the unit separator).
fn call(line: &str) -> Vec<String> {
    let mut words: Vec<String> = line.split('\x1f').map(str::to_string).collect();
    assert_eq!(words.pop().as_deref(), Some(""), "{line:?}");
    words
}

impl Router {
    fn new(tag: &str, config: &str) -> Router {
        let fake = Fake::new(tag);
        fake.plan("hang");
        let init = fake.dir.path("autossh.init");
        let script = fs::read_to_string(format!("{TOP}/deploy/openwrt/autossh.init")).unwrap();
        let ours = "TUNNELS=/usr/sbin/autossh-tunnels";
        assert!(script.contains(ours));
        let script = script.replace(
            ours,
            &format!("TUNNELS={}", env!("CARGO_BIN_EXE_autossh-tunnels")),
        );
        write_executable(&init, script.as_bytes());
        let path = fake.dir.path("autossh");
        let config = config
            .replace("FAKE_SSH", fake.ssh().to_str().unwrap())
            .replace("LOG", fake.log_path().to_str().unwrap());
        fs::write(&path, config).unwrap();
        let run = fake.dir.path("run");
        Router {
            config: path,
            run,
            init,
            fake,
            children: Vec::new(),
        }
    }

    /// `/etc/init.d/autossh ACTION ARGS`, as rc.common runs it.
    fn init(&self, action: &str, args: &[&str]) -> (i32, String, String) {
        let mut c = Command::new("sh");
        c.arg(format!(
            "{TOP}/crates/autossh-tunnels/tests/openwrt/rc.common"
        ))
        .arg(&self.init)
        .arg(action)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("PROCD_LOG", self.fake.dir.path("procd"))
        .env("AUTOSSH_UCI_CONFIG", &self.config)
        .env("AUTOSSH_RUN_DIR", &self.run)
        .stdin(Stdio::null());
        let o = run_bounded(c, SLOW_LIMIT);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// The instances procd was given since the last time, and other calls.
    fn told(&self) -> (Vec<Instance>, Vec<String>) {
        let log = self.fake.dir.path("procd");
        let text = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        let (mut instances, mut other) = (Vec::new(), Vec::new());
        let mut open: Option<Instance> = None;
        for line in text.lines() {
            let words = call(line);
            let args = &words[1..];
            match (words[0].as_str(), open.as_mut()) {
                ("open", None) => {
                    open = Some(Instance {
                        name: args.concat(),
                        ..Instance::default()
                    })
                }
                ("set", Some(i)) => match args[0].as_str() {
                    "command" => i.command = args[1..].to_vec(),
                    "env" => i.env = args[1..].to_vec(),
                    "respawn" => i.respawn = args[1..].to_vec(),
                    what => panic!("procd was told {what}: {line}"),
                },
                ("close", Some(_)) => instances.push(open.take().unwrap()),
                (_, None) => other.push(words.join(" ")),
                _ => panic!("out of order: {line}\n{text}"),
            }
        }
        assert!(open.is_none(), "an instance left open: {text}");
        (instances, other)
    }

    /// Starts `i` as procd would: its command, with its environment alone
    /// (and the fake's marker, so that the fake's guard finds it), the
    /// package's /usr/sbin/autossh being this build's.
    fn start(&mut self, i: &Instance) {
        assert_eq!(i.command[0], "/usr/sbin/autossh");
        let mut c = Command::new(autossh_bin());
        c.args(&i.command[1..])
            .env_clear()
            .env("FAKE_DIR", &self.fake.dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for kv in &i.env {
            let (k, v) = kv.split_once('=').unwrap();
            c.env(k, v);
        }
        default_signals(&mut c);
        self.children.push(c.spawn().unwrap());
    }
}

/// A configuration of the shape of the sample OpenWrt's package installs:
/// one section without a name, disabled.
const OPENWRTS_SHAPE: &str = "\
config autossh
\toption ssh\t'-i /etc/dropbear/id_rsa -N -T -R 2222:localhost:22 user@host'
\toption gatetime\t'0'
\toption monitorport\t'20000'
\toption poll\t'600'
\toption enabled\t'0'
";

#[test]
fn openwrts_sample_configuration_starts_nothing_and_says_so() {
    // The package's own sample: one disabled tunnel, with a name.
    let ours = fs::read_to_string(format!("{TOP}/deploy/openwrt/autossh.config")).unwrap();
    let r = Router::new("owours", &ours);
    let (code, out, err) = r.init("start", &[]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    assert!(r.told().0.is_empty());
    let (code, out, _) = r.init("status", &[]);
    assert_eq!((code, out.as_str()), (3, "relay: disabled\n"));
    drop(r);

    let sample = OPENWRTS_SHAPE;
    let r = Router::new("owsample", sample);
    let (code, out, err) = r.init("start", &[]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    let (instances, other) = r.told();
    assert!(instances.is_empty(), "{instances:?}");
    assert_eq!(other, ["trigger autossh"]);
    let (code, out, err) = r.init("status", &[]);
    assert_eq!(out, "@autossh[0]: disabled\n", "{err}");
    assert_eq!(code, 3);

    // Enabled, it is the instance OpenWrt's own script makes, but for the
    // state file and a procd that never gives up.
    let enabled = sample.replace("enabled\t'0'", "enabled\t'1'");
    assert_ne!(enabled, sample);
    fs::write(&r.config, enabled).unwrap();
    r.init("start", &[]);
    let (instances, _) = r.told();
    let run = r.run.display();
    assert_eq!(
        instances,
        [Instance {
            name: "@autossh[0]".into(),
            command: strings(&[
                "/usr/sbin/autossh",
                "-i",
                "/etc/dropbear/id_rsa",
                "-N",
                "-T",
                "-R",
                "2222:localhost:22",
                "user@host"
            ]),
            env: vec![
                "AUTOSSH_PORT=20000".to_string(),
                "AUTOSSH_POLL=600".into(),
                "AUTOSSH_GATETIME=0".into(),
                format!("AUTOSSH_STATEFILE={run}/@autossh[0].state"),
            ],
            respawn: strings(&["3600", "5", "0"]),
        }]
    );
}

const TWO_AND_OTHERS: &str = "\
config autossh 'relay'
\toption ssh\t'-N -o \"ServerAliveInterval 30\" me@relay'
\toption monitorport 0
\toption path 'FAKE_SSH'
\toption logfile 'LOG'

# the second, without a name
config autossh
\toption ssh '-N me@second'
\toption monitorport 0
\toption path 'FAKE_SSH'
\toption logfile 'LOG'

config autossh off
\toption ssh 'me@off'
\toption enabled '0'

config autossh half
\toption ssh 'me@there'
\toption localport 22

config autossh garbled
\toption ssh 'me@there
";

#[test]
fn two_tunnels_run_and_the_broken_ones_are_named() {
    let mut r = Router::new("owtwo", TWO_AND_OTHERS);
    let (code, out, err) = r.init("start", &[]);
    assert_eq!(out, "");
    let file = r.config.display();
    assert_eq!(
        err,
        format!(
            "autossh-tunnels: {file}: tunnel half (line 18) is not started: \
             localport and remoteport go together: both or neither\n\
             autossh-tunnels: {file}: tunnel garbled (line 22) is not started: \
             line 23: a ' quote is not closed\n"
        )
    );
    // rc.common goes on: the exit status of eval is that of the calls.
    assert_eq!(code, 0);
    let (instances, _) = r.told();
    let names: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["relay", "@autossh[1]"]);
    assert_eq!(
        instances[0].command,
        strings(&[
            "/usr/sbin/autossh",
            "-N",
            "-o",
            "ServerAliveInterval 30",
            "me@relay"
        ])
    );

    // procd starts them: each runs its ssh, as written.
    for i in &instances {
        r.start(i);
    }
    assert!(
        wait_until(SLOW_LIMIT, || r.fake.runs() == 2),
        "{:?}",
        r.fake.messages()
    );
    let mut argvs: Vec<Vec<String>> = r.fake.pids().iter().map(|&p| r.fake.argv_of(p)).collect();
    argvs.sort();
    assert_eq!(
        argvs,
        [
            strings(&["-N", "-o", "ServerAliveInterval 30", "me@relay"]),
            strings(&["-N", "me@second"])
        ]
    );
    // status: each tunnel's state from its state file, and why the others
    // do not run; not all run, so 1.
    let up = || {
        let (_, out, _) = r.init("status", &[]);
        out.lines().filter(|l| l.contains(": up")).count() == 2
    };
    assert!(wait_until(SLOW_LIMIT, up), "{:?}", r.init("status", &[]));
    let (code, out, _) = r.init("status", &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0].starts_with("relay: up since "), "{out}");
    assert!(lines[1].starts_with("@autossh[1]: up since "), "{out}");
    assert_eq!(lines[2], "off: disabled");
    assert_eq!(
        lines[3],
        "half: not started: localport and remoteport go together: both or neither"
    );
    assert_eq!(
        lines[4],
        "garbled: not started: line 23: a ' quote is not closed"
    );
    assert_eq!(code, 1);
    // One tunnel, by its name.
    let (code, out, _) = r.init("status", &["relay"]);
    assert!(out.starts_with("relay: up since "), "{out}");
    assert_eq!(code, 0);
    let (code, _, err) = r.init("status", &["nothere"]);
    assert_eq!(code, 1);
    assert!(err.ends_with(": no tunnel nothere\n"), "{err}");
    // Starting one section gives procd that one alone.
    r.init("start", &["@autossh[1]"]);
    let (instances, _) = r.told();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].name, "@autossh[1]");

    // Stopped (procd kills them): stopped, and exited with a status.
    for c in &mut r.children {
        signal(c.id() as i32, libc::SIGTERM);
        let _ = c.wait();
    }
    let (code, out, _) = r.init("status", &[]);
    assert!(
        out.lines().next().unwrap().starts_with("relay: exited"),
        "{out}"
    );
    assert_eq!(code, 3);
}

#[test]
fn a_missing_or_unreadable_configuration_is_told() {
    let r = Router::new("owmissing", "");
    let file = r.config.display().to_string();
    fs::remove_file(&r.config).unwrap();
    for unreadable in [false, true] {
        if unreadable {
            // A folder where the file should be.
            fs::create_dir(&r.config).unwrap();
        }
        let (code, out, err) = r.init("start", &[]);
        // The init script's eval runs nothing; procd is told of no instance.
        assert_eq!(code, 0);
        assert_eq!(out, "");
        assert!(
            err.starts_with(&format!("autossh-tunnels: {file}: ")),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(r.told().0.is_empty());
        let (code, out, err2) = r.init("status", &[]);
        assert_eq!((code, out.as_str(), err2.as_str()), (1, "", err.as_str()));
    }
}
