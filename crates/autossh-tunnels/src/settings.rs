//! The program's settings: the environment it runs in (the rc script's or
//! the package's), and what of it every tunnel's autossh gets.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::list;

/// What a tunnel's autossh gets of the environment this program runs in,
/// whoever started it (a shell, the package's scripts, the DSM app's CGI
/// request): these variables. The rest (a CGI request's `HTTP_COOKIE` and
/// `QUERY_STRING`, a service manager's `NOTIFY_SOCKET`, this program's own
/// settings) stays here. Of autossh's own variables, those that make sense
/// for every tunnel pass; a monitor port (`AUTOSSH_PORT`) is a tunnel's own
/// (`env NAME AUTOSSH_PORT=...`), but 0, monitoring off for all, passes;
/// the pid file, state file and gate time are set per tunnel.
pub const PASSED: [&str; 33] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_COLLATE",
    "LC_MONETARY",
    "LC_MESSAGES",
    "LC_PAPER",
    "LC_NAME",
    "LC_ADDRESS",
    "LC_TELEPHONE",
    "LC_MEASUREMENT",
    "LC_IDENTIFICATION",
    "TZ",
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "AUTOSSH_PATH",
    "AUTOSSH_POLL",
    "AUTOSSH_FIRST_POLL",
    "AUTOSSH_MAXSTART",
    "AUTOSSH_MAXLIFETIME",
    "AUTOSSH_MESSAGE",
    "AUTOSSH_LOGFILE",
    "AUTOSSH_LOGLEVEL",
    "AUTOSSH_DEBUG",
    "AUTOSSH_NETWATCH",
    "AUTOSSH_KNOCK",
];

/// The part of `vars` (this program's environment) that every tunnel's
/// autossh starts with ([`PASSED`]), in their order.
pub fn passed_environment(vars: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    vars.iter()
        .filter(|(k, v)| {
            let k = k.as_bytes();
            PASSED.iter().any(|p| p.as_bytes() == k)
                || (k == b"AUTOSSH_PORT" && v.as_bytes() == b"0")
        })
        .cloned()
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub autossh: PathBuf,
    pub list: PathBuf,
    pub run_dir: PathBuf,
    pub stop_wait: Duration,
    pub ssh_options: Vec<OsString>,
    /// What every tunnel's autossh starts with ([`passed_environment`]).
    pub environment: Vec<(OsString, OsString)>,
}

impl Settings {
    /// The settings from `env`; `beside` is where this program lives, whose
    /// `autossh` is the default.
    pub fn from_lookup(
        env: &dyn Fn(&str) -> Option<OsString>,
        beside: Option<&Path>,
    ) -> Result<Settings, String> {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        let autossh = set("AUTOSSH").map(PathBuf::from).unwrap_or_else(|| {
            beside
                .map(|dir| dir.join("autossh"))
                .filter(|p| p.exists())
                .unwrap_or_else(|| PathBuf::from("autossh"))
        });
        let stop_wait = match set("AUTOSSH_STOP_WAIT") {
            None => 15,
            Some(v) => v
                .to_str()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&v| v <= 3600)
                .ok_or_else(|| {
                    format!(
                        "AUTOSSH_STOP_WAIT must be a number of seconds from 0 to 3600, not {}",
                        list::shown(v.as_bytes(), 40)
                    )
                })?,
        };
        let ssh_options = match set("AUTOSSH_SSH_OPTIONS") {
            None => Vec::new(),
            Some(v) => list::words(v.as_bytes())
                .map_err(|why| format!("AUTOSSH_SSH_OPTIONS: {why}"))?
                .into_iter()
                .map(OsString::from_vec)
                .collect(),
        };
        Ok(Settings {
            autossh,
            list: set("AUTOSSH_TUNNELS").map_or_else(
                || "/usr/local/etc/autossh/tunnels.conf".into(),
                PathBuf::from,
            ),
            run_dir: set("AUTOSSH_RUN_DIR")
                .map_or_else(|| "/var/run/autossh".into(), PathBuf::from),
            stop_wait: Duration::from_secs(stop_wait),
            ssh_options,
            environment: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allowed_environment_is_passed() {
        let vars: Vec<(OsString, OsString)> = [
            ("HTTP_COOKIE", "id=secret"),
            ("PATH", "/bin"),
            ("LC_TIME", "C"),
            ("QUERY_STRING", "a=b"),
            ("AUTOSSH_POLL", "30"),
            ("AUTOSSH_PORT", "20000"),
            ("LC_FOO", "x"),
            ("AUTOSSH_PIDFILE", "/tmp/x"),
            ("AUTOSSH_SSH_OPTIONS", "-i key"),
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
            ("LC", "x"),
            ("TZ", "UTC"),
        ]
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
        let passed: Vec<String> = passed_environment(&vars)
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        assert_eq!(
            passed,
            ["PATH=/bin", "LC_TIME=C", "AUTOSSH_POLL=30", "TZ=UTC"]
        );
        // Monitoring off passes: it is the same for every tunnel.
        let off = [(OsString::from("AUTOSSH_PORT"), OsString::from("0"))];
        assert_eq!(passed_environment(&off).len(), 1);
    }

    #[test]
    fn settings() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let s = Settings::from_lookup(&env(&[]), None).unwrap();
        assert_eq!(s.autossh, PathBuf::from("autossh"));
        assert_eq!(s.list, PathBuf::from("/usr/local/etc/autossh/tunnels.conf"));
        assert_eq!(s.run_dir, PathBuf::from("/var/run/autossh"));
        assert_eq!(s.stop_wait, Duration::from_secs(15));
        let s = Settings::from_lookup(
            &env(&[
                ("AUTOSSH_SSH_OPTIONS", "-i '/my key' -o A=*"),
                ("AUTOSSH_STOP_WAIT", "0"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.ssh_options, ["-i", "/my key", "-o", "A=*"]);
        assert_eq!(s.stop_wait, Duration::ZERO);
        for bad in [
            &[("AUTOSSH_STOP_WAIT", "x")][..],
            &[("AUTOSSH_STOP_WAIT", "3601")],
            &[("AUTOSSH_STOP_WAIT", "-1")],
            &[("AUTOSSH_SSH_OPTIONS", "-o 'x")],
        ] {
            assert!(Settings::from_lookup(&env(bad), None).is_err(), "{bad:?}");
        }
    }
}
