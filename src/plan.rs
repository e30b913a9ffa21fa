//! The start-up choices: made once, as a pure function of the configuration,
//! the scanned command line and the facts of the host, so that `lib::run`
//! only gathers those and wires the result. The machine's [`Rules`] come
//! from here, and from nowhere else.

use std::time::Duration;

use crate::args::Scanned;
use crate::config::Config;
use crate::machine::Rules;
use crate::words::Sink;

/// What the host is like at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Host {
    /// autossh's stderr is a terminal.
    pub stderr_tty: bool,
    /// autossh's stderr is /dev/null.
    pub stderr_null: bool,
    /// Fewer than 16 descriptors are allowed: none is opened that can be
    /// done without.
    pub few_descriptors: bool,
    /// A service manager listens (NOTIFY_SOCKET), and how often it wants to
    /// hear that we are alive.
    pub manager: bool,
    pub watchdog: Option<Duration>,
}

/// The choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The machine's rules (the gate time is 0 after `-f`, SPEC §5).
    pub rules: Rules,
    /// Where ssh's stderr goes when autossh reads it; None: ssh writes to
    /// autossh's own (a terminal is left to ssh, and under a tight limit the
    /// pipe's descriptors are kept for ssh's forwards and the tests).
    pub words: Option<Sink>,
    /// Whether knocks go from where ssh's connection went from (ssh is told
    /// where to connect from).
    pub knock_from_ssh: bool,
}

/// `monitored`: a connection test runs (`-M` other than 0).
pub fn plan(config: &Config, scanned: &Scanned, monitored: bool, host: Host) -> Plan {
    let words = if host.stderr_tty || host.few_descriptors {
        None
    } else if scanned.background || host.stderr_null {
        // In the background stderr is /dev/null: the log hears ssh.
        Some(Sink::Log)
    } else {
        Some(Sink::Stderr)
    };
    let rules = Rules {
        gate_time: if scanned.background {
            0
        } else {
            config.gate_time
        },
        poll: config.poll,
        first_poll: config.first_poll,
        monitored,
        max_start: config.max_start,
        max_lifetime: config.max_lifetime,
        watchdog: host.watchdog,
        notify: host.manager,
        publish: config.state_file.is_some(),
        // A knock holds a socket a moment: none where few are allowed.
        knock: config.knock && !host.few_descriptors,
    };
    Plan {
        rules,
        words,
        knock_from_ssh: scanned.binds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{scan, Request};

    fn scanned(args: &[&str]) -> Scanned {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        match scan(&args) {
            Ok(Request::Run(s)) => s,
            _ => panic!("{args:?}"),
        }
    }

    fn config() -> Config {
        Config::from_lookup(&|_: &str| None).unwrap()
    }

    #[test]
    fn the_choices() {
        let c = config();
        let plain = Host::default();
        let p = plan(&c, &scanned(&["host"]), true, plain);
        assert_eq!(
            (p.rules.gate_time, p.words, p.rules.knock),
            (30, Some(Sink::Stderr), true)
        );
        assert_eq!(
            (p.rules.poll, p.rules.monitored, p.rules.publish),
            (600, true, false)
        );
        // -f: gate time 0, ssh heard in the log.
        let p = plan(&c, &scanned(&["-f", "host"]), false, plain);
        assert_eq!((p.rules.gate_time, p.words), (0, Some(Sink::Log)));
        assert!(!p.rules.monitored);
        // A manager, its watchdog; a state file.
        let managed = Host {
            manager: true,
            watchdog: Some(Duration::from_secs(5)),
            ..plain
        };
        let kept = Config {
            state_file: Some(b"/run/t.state".to_vec()),
            ..config()
        };
        let p = plan(&kept, &scanned(&["host"]), true, managed);
        assert_eq!(
            (p.rules.notify, p.rules.watchdog, p.rules.publish),
            (true, Some(Duration::from_secs(5)), true)
        );
        // stderr /dev/null: the log; a terminal: ssh's own.
        let null = Host {
            stderr_null: true,
            ..plain
        };
        let words = |host, args: &[&str]| plan(&c, &scanned(args), true, host).words;
        assert_eq!(words(null, &["host"]), Some(Sink::Log));
        let tty = Host {
            stderr_tty: true,
            ..plain
        };
        assert_eq!(words(tty, &["-f", "host"]), None);
        // A tight descriptor limit: no pipe, no knock.
        let tight = Host {
            few_descriptors: true,
            ..plain
        };
        let p = plan(&c, &scanned(&["host"]), true, tight);
        assert_eq!((p.words, p.rules.knock), (None, false));
        // Knocking off; a bind option.
        let off = Config {
            knock: false,
            ..config()
        };
        assert!(!plan(&off, &scanned(&["host"]), true, plain).rules.knock);
        let bound = plan(&c, &scanned(&["-b", "10.0.0.5", "host"]), true, plain);
        assert!(bound.knock_from_ssh);
    }
}
