//! The start-up choices that depend on more than one thing: made once, as a
//! pure function of the configuration, the scanned command line and the
//! facts of the host, so that `lib::run` only gathers those and wires the
//! result.

use crate::args::Scanned;
use crate::config::Config;
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
}

/// The choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The gate time (SPEC §5): 0 after `-f`.
    pub gate_time: u32,
    /// Where ssh's stderr goes when autossh reads it; None: ssh writes to
    /// autossh's own (a terminal is left to ssh, and under a tight limit the
    /// pipe's descriptors are kept for ssh's forwards and the tests).
    pub words: Option<Sink>,
    /// Whether the relay is knocked on (a knock holds a socket a moment).
    pub knock: bool,
    /// Whether knocks go from where ssh's connection went from (ssh is told
    /// where to connect from).
    pub knock_from_ssh: bool,
}

pub fn plan(config: &Config, scanned: &Scanned, host: Host) -> Plan {
    let words = if host.stderr_tty || host.few_descriptors {
        None
    } else if scanned.background || host.stderr_null {
        // In the background stderr is /dev/null: the log hears ssh.
        Some(Sink::Log)
    } else {
        Some(Sink::Stderr)
    };
    Plan {
        gate_time: if scanned.background {
            0
        } else {
            config.gate_time
        },
        words,
        knock: config.knock && !host.few_descriptors,
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
        let p = plan(&c, &scanned(&["host"]), plain);
        assert_eq!(
            (p.gate_time, p.words, p.knock),
            (30, Some(Sink::Stderr), true)
        );
        // -f: gate time 0, ssh heard in the log.
        let p = plan(&c, &scanned(&["-f", "host"]), plain);
        assert_eq!((p.gate_time, p.words), (0, Some(Sink::Log)));
        // stderr /dev/null: the log; a terminal: ssh's own.
        let null = Host {
            stderr_null: true,
            ..plain
        };
        assert_eq!(plan(&c, &scanned(&["host"]), null).words, Some(Sink::Log));
        let tty = Host {
            stderr_tty: true,
            ..plain
        };
        assert_eq!(plan(&c, &scanned(&["-f", "host"]), tty).words, None);
        // A tight descriptor limit: no pipe, no knock.
        let tight = Host {
            few_descriptors: true,
            ..plain
        };
        let p = plan(&c, &scanned(&["host"]), tight);
        assert_eq!((p.words, p.knock), (None, false));
        // Knocking off; a bind option.
        let off = Config {
            knock: false,
            ..config()
        };
        assert!(!plan(&off, &scanned(&["host"]), plain).knock);
        assert!(plan(&c, &scanned(&["-b", "10.0.0.5", "host"]), plain).knock_from_ssh);
    }
}
