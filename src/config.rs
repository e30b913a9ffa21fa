//! The AUTOSSH_* variables (SPEC §3), read through a lookup function so that
//! every rule can be tested from a table.

use crate::{cnum, messages};

/// Reads one environment variable.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

/// The ssh program when AUTOSSH_PATH is unset; a build may name another with
/// `AUTOSSH_DEFAULT_SSH=/path cargo build`.
pub const DEFAULT_SSH: &str = match option_env!("AUTOSSH_DEFAULT_SSH") {
    Some(path) => path,
    None => "/usr/bin/ssh",
};

/// The network timeout when the poll time leaves room for it (SPEC §3).
const NET_TIMEOUT_MS: u32 = 15_000;
const MAX_MESSAGE: usize = 64;

/// Where and how much to log (SPEC §4). Read before everything else so that
/// every later error reaches the configured log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub file: Option<Vec<u8>>,
    pub level: u8,
    /// AUTOSSH_DEBUG: level 7, and a copy of each line on stderr.
    pub debug: bool,
}

/// Everything else the environment sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub gate_time: u32,
    pub poll: u32,
    pub first_poll: u32,
    /// `None`: no limit.
    pub max_start: Option<u32>,
    /// 0: no limit.
    pub max_lifetime: u32,
    pub message: Vec<u8>,
    /// AUTOSSH_PORT, raw: parsed with `-M`'s rules after the command line.
    pub port: Option<Vec<u8>>,
    pub ssh_path: Vec<u8>,
    pub pid_file: Option<Vec<u8>>,
    /// AUTOSSH_STATEFILE: where the tunnel's state is kept.
    pub state_file: Option<Vec<u8>>,
    pub net_timeout_ms: u32,
    /// Whether a network change is tested at once (AUTOSSH_NETWATCH).
    pub netwatch: bool,
    /// Whether the relay is knocked on while waiting (AUTOSSH_KNOCK).
    pub knock: bool,
    /// INFO lines that explain adjustments made here (SPEC §3).
    pub notes: Vec<String>,
}

/// A variable that is unset or empty counts as unset where SPEC §3 says so.
fn non_empty(lookup: Lookup, name: &str) -> Option<Vec<u8>> {
    lookup(name).filter(|v| !v.is_empty())
}

/// Reads a number variable: `Ok(None)` when unset; the error names the variable as
/// the message of SPEC §3 does.
fn number(
    lookup: Lookup,
    name: &str,
    what: &str,
    valid: impl Fn(i32) -> bool,
) -> Result<Option<i32>, String> {
    let Some(raw) = lookup(name) else {
        return Ok(None);
    };
    match cnum::parse_int(&raw) {
        Some(n) if valid(n) => Ok(Some(n)),
        _ => Err(messages::invalid_variable(what, &raw)),
    }
}

impl LogSettings {
    pub fn from_lookup(lookup: Lookup) -> Result<Self, (Self, String)> {
        let debug = lookup("AUTOSSH_DEBUG").is_some();
        let mut settings = LogSettings {
            file: non_empty(lookup, "AUTOSSH_LOGFILE"),
            level: if debug { 7 } else { 6 },
            debug,
        };
        if !debug {
            match number(lookup, "AUTOSSH_LOGLEVEL", "log level", |n| {
                (0..=7).contains(&n)
            }) {
                Ok(Some(level)) => settings.level = level as u8,
                Ok(None) => {}
                Err(message) => return Err((settings, message)),
            }
        }
        Ok(settings)
    }
}

impl Config {
    pub fn from_lookup(lookup: Lookup) -> Result<Self, String> {
        // Checked in upstream's order, so that of two bad values the same one is
        // reported (SPEC §3; LOGLEVEL comes first, in LogSettings).
        let mut poll = number(lookup, "AUTOSSH_POLL", "poll time", |n| n > 0)?.unwrap_or(600);
        let mut first_poll =
            number(lookup, "AUTOSSH_FIRST_POLL", "first poll time", |n| n > 0)?.unwrap_or(poll);
        let gate_time = number(lookup, "AUTOSSH_GATETIME", "gate time", |n| n >= 0)?.unwrap_or(30);
        let max_start =
            number(lookup, "AUTOSSH_MAXSTART", "max start number", |n| n >= -1)?.unwrap_or(-1);
        let message = lookup("AUTOSSH_MESSAGE").unwrap_or_default();
        if message.len() > MAX_MESSAGE {
            return Err(messages::message_too_long(MAX_MESSAGE));
        }
        let max_lifetime =
            number(lookup, "AUTOSSH_MAXLIFETIME", "max lifetime", |n| n >= 0)?.unwrap_or(0);
        // Ours, after upstream's: 0 stops watching for network changes.
        let netwatch = number(lookup, "AUTOSSH_NETWATCH", "network watch", |n| {
            (0..=1).contains(&n)
        })?
        .unwrap_or(1)
            == 1;
        // Ours too: 0 stops knocking on the relay while waiting.
        let knock =
            number(lookup, "AUTOSSH_KNOCK", "knock", |n| (0..=1).contains(&n))?.unwrap_or(1) == 1;

        let mut notes = Vec::new();
        if max_lifetime > 0 {
            if poll > max_lifetime {
                poll = max_lifetime;
                notes.push(format!(
                    "poll time is greater than lifetime, dropping poll time to {poll}"
                ));
            }
            if first_poll > max_lifetime {
                first_poll = max_lifetime;
                notes.push(format!(
                    "first poll time is greater than lifetime, dropping first poll time to {first_poll}"
                ));
            }
        }
        let poll = poll as u32;
        let mut net_timeout_ms = NET_TIMEOUT_MS;
        if u64::from(poll) * 1000 / 2 < u64::from(NET_TIMEOUT_MS) {
            net_timeout_ms = poll * 500;
            notes.push(format!(
                "short poll time: adjusting net timeouts to {net_timeout_ms}"
            ));
        }

        Ok(Config {
            gate_time: gate_time as u32,
            poll,
            first_poll: first_poll as u32,
            max_start: u32::try_from(max_start).ok(),
            max_lifetime: max_lifetime as u32,
            message,
            port: non_empty(lookup, "AUTOSSH_PORT"),
            ssh_path: non_empty(lookup, "AUTOSSH_PATH")
                .unwrap_or_else(|| DEFAULT_SSH.as_bytes().to_vec()),
            pid_file: non_empty(lookup, "AUTOSSH_PIDFILE"),
            state_file: non_empty(lookup, "AUTOSSH_STATEFILE"),
            net_timeout_ms,
            netwatch,
            knock,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<Vec<u8>> {
        let map: HashMap<String, Vec<u8>> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_lookup(&env(pairs))
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.gate_time, 30);
        assert_eq!(c.poll, 600);
        assert_eq!(c.first_poll, 600);
        assert_eq!(c.max_start, None);
        assert_eq!(c.max_lifetime, 0);
        assert_eq!(c.ssh_path, DEFAULT_SSH.as_bytes().to_vec());
        assert_eq!(c.net_timeout_ms, 15_000);
        assert!(c.notes.is_empty());
        let l = LogSettings::from_lookup(&env(&[])).unwrap();
        assert_eq!((l.level, l.debug, l.file), (6, false, None));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            ("AUTOSSH_GATETIME", "-1", "invalid gate time \"-1\""),
            ("AUTOSSH_GATETIME", "", "invalid gate time \"\""),
            ("AUTOSSH_POLL", "0", "invalid poll time \"0\""),
            ("AUTOSSH_POLL", "-5", "invalid poll time \"-5\""),
            (
                "AUTOSSH_POLL",
                "4294967301",
                "invalid poll time \"4294967301\"",
            ),
            ("AUTOSSH_POLL", "08", "invalid poll time \"08\""),
            ("AUTOSSH_FIRST_POLL", "0", "invalid first poll time \"0\""),
            ("AUTOSSH_MAXSTART", "-2", "invalid max start number \"-2\""),
            ("AUTOSSH_MAXLIFETIME", "-2", "invalid max lifetime \"-2\""),
            ("AUTOSSH_MAXLIFETIME", "1x", "invalid max lifetime \"1x\""),
        ];
        for (k, v, msg) in cases {
            assert_eq!(config(&[(k, v)]), Err(msg.to_string()), "{k}={v}");
        }
        let long = "x".repeat(65);
        assert_eq!(
            config(&[("AUTOSSH_MESSAGE", &long)]),
            Err("echo message may only be 64 bytes long".into())
        );
        assert!(config(&[("AUTOSSH_MESSAGE", &long[..64])]).is_ok());
        let bad = LogSettings::from_lookup(&env(&[("AUTOSSH_LOGLEVEL", "8")]));
        assert_eq!(bad.unwrap_err().1, "invalid log level \"8\"");
    }

    #[test]
    fn first_bad_value_in_upstreams_order_is_reported() {
        let long = "m".repeat(65);
        let order = [
            ("AUTOSSH_POLL", "x", "invalid poll time \"x\""),
            ("AUTOSSH_FIRST_POLL", "x", "invalid first poll time \"x\""),
            ("AUTOSSH_GATETIME", "x", "invalid gate time \"x\""),
            ("AUTOSSH_MAXSTART", "x", "invalid max start number \"x\""),
            (
                "AUTOSSH_MESSAGE",
                &long,
                "echo message may only be 64 bytes long",
            ),
            ("AUTOSSH_MAXLIFETIME", "x", "invalid max lifetime \"x\""),
        ];
        for (i, (_, _, message)) in order.iter().enumerate() {
            // Every value from this one on is bad; the table's order is not the
            // lookup's (it is a map).
            let pairs: Vec<(&str, &str)> =
                order[i..].iter().rev().map(|(k, v, _)| (*k, *v)).collect();
            assert_eq!(config(&pairs), Err(message.to_string()), "{pairs:?}");
        }
    }

    #[test]
    fn numbers_read_like_c() {
        let c = config(&[
            ("AUTOSSH_POLL", " +0x1e"),
            ("AUTOSSH_GATETIME", "010"),
            ("AUTOSSH_MAXSTART", "-1"),
        ])
        .unwrap();
        assert_eq!(
            (c.poll, c.first_poll, c.gate_time, c.max_start),
            (30, 30, 8, None)
        );
        let c = config(&[("AUTOSSH_MAXSTART", "3"), ("AUTOSSH_FIRST_POLL", "5")]).unwrap();
        assert_eq!((c.max_start, c.first_poll), (Some(3), 5));
    }

    #[test]
    fn lifetime_lowers_polls_and_short_poll_lowers_timeouts() {
        let c = config(&[("AUTOSSH_MAXLIFETIME", "2")]).unwrap();
        assert_eq!((c.poll, c.first_poll, c.net_timeout_ms), (2, 2, 1000));
        assert_eq!(
            c.notes,
            vec![
                "poll time is greater than lifetime, dropping poll time to 2".to_string(),
                "first poll time is greater than lifetime, dropping first poll time to 2".into(),
                "short poll time: adjusting net timeouts to 1000".into(),
            ]
        );
        let c = config(&[("AUTOSSH_POLL", "29")]).unwrap();
        assert_eq!(c.net_timeout_ms, 14_500);
        let c = config(&[("AUTOSSH_POLL", "30")]).unwrap();
        assert_eq!(c.net_timeout_ms, 15_000);
        assert!(c.notes.is_empty());
    }

    #[test]
    fn empty_means_unset() {
        let c = config(&[
            ("AUTOSSH_PATH", ""),
            ("AUTOSSH_PIDFILE", ""),
            ("AUTOSSH_PORT", ""),
        ])
        .unwrap();
        assert_eq!(c.ssh_path, DEFAULT_SSH.as_bytes().to_vec());
        assert_eq!((c.pid_file, c.port), (None, None));
        let l = LogSettings::from_lookup(&env(&[("AUTOSSH_LOGFILE", "")])).unwrap();
        assert_eq!(l.file, None);
    }

    #[test]
    fn debug_overrides_level() {
        let l = LogSettings::from_lookup(&env(&[("AUTOSSH_DEBUG", ""), ("AUTOSSH_LOGLEVEL", "x")]))
            .unwrap();
        assert_eq!((l.level, l.debug), (7, true));
        let l = LogSettings::from_lookup(&env(&[("AUTOSSH_LOGLEVEL", "0x3")])).unwrap();
        assert_eq!(l.level, 3);
    }
}
