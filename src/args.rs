//! The command line (SPEC §1) and the ssh command line built from it (SPEC §2).
//!
//! Arguments are scanned with ssh's own grammar: options, the destination, options
//! again, and from the first later non-option on, the remote command, verbatim.

use crate::{cnum, messages};

/// ssh options that take no argument (OpenSSH 9.x), less those autossh owns.
const SSH_FLAGS: &[u8] = b"1246AaCGgKkNnqsTtvXxYy";
/// ssh options that take an argument (OpenSSH 9.x).
const SSH_WITH_ARGUMENT: &[u8] = b"BbcDEeFIiJLlmOoPpQRSWw";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `-V`: print the version and stop.
    Version,
    Run(Scanned),
}

/// A command line that names a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// The argument of the last `-M`, unparsed (SPEC §1: checked after scanning).
    pub monitor: Option<Vec<u8>>,
    /// `-f` was given.
    pub background: bool,
    /// Everything that goes to ssh, in order.
    pub ssh_args: Vec<Vec<u8>>,
    /// ssh is told where to connect from (`-b`, `-B`, `-o BindAddress`,
    /// `-o BindInterface`): knocks go from where its connection did.
    pub binds: bool,
}

/// A command line getopt would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageError {
    InvalidOption(u8),
    MissingArgument(u8),
    NoDestination,
}

enum Letter {
    Flag,
    WithArgument,
    Background,
    Version,
    Monitor,
    Unknown,
}

fn classify(c: u8) -> Letter {
    match c {
        b'f' => Letter::Background,
        b'V' => Letter::Version,
        b'M' => Letter::Monitor,
        _ if SSH_FLAGS.contains(&c) => Letter::Flag,
        _ if SSH_WITH_ARGUMENT.contains(&c) => Letter::WithArgument,
        _ => Letter::Unknown,
    }
}

/// Scans the arguments after argv[0]. Options act as they are reached, so `-V`
/// wins over anything after it and loses to an error before it.
pub fn scan(args: &[Vec<u8>]) -> Result<Request, UsageError> {
    let mut out = Scanned {
        monitor: None,
        background: false,
        ssh_args: Vec::with_capacity(args.len()),
        binds: false,
    };
    let mut destination = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_slice();
        i += 1;
        if arg == b"--" {
            // Option scanning ends; the rest is the destination (if not yet seen)
            // and the command, passed as they are.
            out.ssh_args.extend_from_slice(&args[i..]);
            destination |= i < args.len();
            break;
        }
        if arg.len() < 2 || arg[0] != b'-' {
            out.ssh_args.push(args[i - 1].clone());
            if destination {
                // The first non-option after the destination starts the command.
                out.ssh_args.extend_from_slice(&args[i..]);
                break;
            }
            destination = true;
            continue;
        }
        // An option cluster such as `-NTf` or `-NM20000` or `-L8080:h:80`.
        let mut kept = vec![b'-'];
        let mut separate_argument = None;
        let mut j = 1;
        while j < arg.len() {
            let c = arg[j];
            j += 1;
            match classify(c) {
                Letter::Flag => kept.push(c),
                Letter::Background => out.background = true,
                Letter::Version => return Ok(Request::Version),
                Letter::Unknown => return Err(UsageError::InvalidOption(c)),
                Letter::Monitor | Letter::WithArgument => {
                    let value = if j < arg.len() {
                        arg[j..].to_vec()
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].clone()
                    } else {
                        return Err(UsageError::MissingArgument(c));
                    };
                    out.binds |= matches!(c, b'b' | b'B') || c == b'o' && binds(&value);
                    if c == b'M' {
                        out.monitor = Some(value);
                    } else {
                        kept.push(c);
                        if j < arg.len() {
                            kept.extend_from_slice(&arg[j..]);
                        } else {
                            separate_argument = Some(value);
                        }
                    }
                    break;
                }
            }
        }
        if kept.len() > 1 {
            out.ssh_args.push(kept);
        }
        out.ssh_args.extend(separate_argument);
    }
    if destination {
        Ok(Request::Run(out))
    } else {
        Err(UsageError::NoDestination)
    }
}

/// Whether an `-o` option names where ssh connects from (`BindAddress`,
/// `BindInterface`; ssh's keywords are case-insensitive, then `=` or a
/// space).
fn binds(option: &[u8]) -> bool {
    let key = option
        .split(|&b| b == b'=' || b == b' ' || b == b'\t')
        .find(|word| !word.is_empty())
        .unwrap_or_default();
    key.eq_ignore_ascii_case(b"BindAddress") || key.eq_ignore_ascii_case(b"BindInterface")
}

/// How the connection is watched (SPEC §1 `-M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorSpec {
    /// Port 0: only ssh's death is watched.
    Off,
    /// A loop of forwards: out on `port`, back on `port + 1`.
    Loop { port: u16 },
    /// A remote echo service on `echo`, reached through `port`.
    Echo { port: u16, echo: u16 },
}

/// Parses `port[:echo_port]`; the error is the message of SPEC §1.
pub fn parse_monitor(spec: &[u8]) -> Result<MonitorSpec, String> {
    let (port_text, echo_text) = match spec.iter().position(|&b| b == b':') {
        Some(colon) => (&spec[..colon], Some(&spec[colon + 1..])),
        None => (spec, None),
    };
    // The echo port is checked first, even when the port turns out to be 0.
    let echo = match echo_text {
        None => None,
        Some(text) => match cnum::parse_ulong(text) {
            Some(e) if (1..=65535).contains(&e) => Some(e as u16),
            _ => return Err(messages::invalid_echo_port(text)),
        },
    };
    let port = match cnum::parse_ulong(port_text) {
        Some(p) => p,
        None => return Err(messages::invalid_port(port_text)),
    };
    if port >= 65535 {
        // Shown as C shows an int holding the value.
        return Err(messages::port_out_of_range(port as u32 as i32));
    }
    let port = port as u16;
    Ok(match (port, echo) {
        (0, _) => MonitorSpec::Off,
        (port, None) => MonitorSpec::Loop { port },
        (port, Some(echo)) => MonitorSpec::Echo { port, echo },
    })
}

/// The full argv of ssh (SPEC §2): the program, the monitor forwards, then the
/// user's arguments in their order.
pub fn ssh_command(program: &[u8], monitor: MonitorSpec, user_args: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut argv = vec![program.to_owned()];
    match monitor {
        MonitorSpec::Off => {}
        MonitorSpec::Loop { port } => {
            let back = u32::from(port) + 1;
            argv.push("-L".into());
            argv.push(format!("{port}:127.0.0.1:{port}").into());
            argv.push("-R".into());
            argv.push(format!("{port}:127.0.0.1:{back}").into());
        }
        MonitorSpec::Echo { port, echo } => {
            argv.push("-L".into());
            argv.push(format!("{port}:127.0.0.1:{echo}").into());
        }
    }
    argv.extend_from_slice(user_args);
    argv
}

/// The usage text (SPEC §1), for `name` as the program calls itself.
pub fn usage(name: &str) -> String {
    format!(
        "usage: {name} [-V] [-M monitor_port[:echo_port]] [-f] [SSH_OPTIONS]
       destination [command [argument ...]]

    -M port[:echo_port]
        watch the connection through this local port. With only a port, ssh
        gets a loop of forwards: test data goes out on port and comes back
        on port+1. With an echo port, the data goes through port to that
        port on the remote side's loopback, where an echo service answers.
        0 turns the watching off; ssh is then restarted only when it exits.
        AUTOSSH_PORT, when set, wins over -M. Without either, a free random
        port pair is taken.
    -f  go to the background before starting ssh (not passed to ssh); the
        gate time is then 0, and ssh cannot ask for a password.
    -V  print the version and exit.

Every other option, the destination and the command go to ssh unchanged.

Environment:
    AUTOSSH_GATETIME    seconds the first ssh must live to count as started
                        (default 30; 0 turns off the start-up exits; -f sets 0)
    AUTOSSH_POLL        seconds between connection tests (default 600)
    AUTOSSH_FIRST_POLL  seconds to the first test after each start
                        (default: the poll time)
    AUTOSSH_MAXSTART    how many times to start ssh (default -1: no limit)
    AUTOSSH_MAXLIFETIME seconds to run before stopping ssh and exiting
                        (default 0: no limit)
    AUTOSSH_MESSAGE     text added to the test data (at most 64 bytes)
    AUTOSSH_PORT        monitor port, as -M
    AUTOSSH_PATH        the ssh program (default /usr/bin/ssh)
    AUTOSSH_PIDFILE     write the pid of {name} to this file
    AUTOSSH_LOGFILE     append the log to this file instead of syslog
    AUTOSSH_LOGLEVEL    syslog level 0-7 of the most verbose messages
                        (default 6)
    AUTOSSH_DEBUG       when set: log everything, and copy it to stderr
    AUTOSSH_NETWATCH    0 stops testing the connection as soon as the
                        network changes (default 1, with monitoring on)
    AUTOSSH_KNOCK       0 stops knocking on the relay while waiting to
                        start ssh again (default 1)
    AUTOSSH_STATEFILE   keep the tunnel's state (up, down, why) in this file
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    fn run(v: &[&str]) -> Scanned {
        match scan(&os(v)) {
            Ok(Request::Run(s)) => s,
            other => panic!("{v:?}: {other:?}"),
        }
    }

    #[test]
    fn consumes_f_and_m_in_clusters() {
        let s = run(&["-M", "20000", "-fN", "-R", "2200:localhost:22", "me@nas"]);
        assert_eq!(s.monitor, Some("20000".into()));
        assert!(s.background);
        assert_eq!(s.ssh_args, os(&["-N", "-R", "2200:localhost:22", "me@nas"]));
        let s = run(&["-NTf", "host"]);
        assert_eq!(s.ssh_args, os(&["-NT", "host"]));
        let s = run(&["-NM20000", "host"]);
        assert_eq!(s.monitor, Some("20000".into()));
        assert_eq!(s.ssh_args, os(&["-N", "host"]));
        let s = run(&["-NM", "0", "host"]);
        assert_eq!(s.monitor, Some("0".into()));
        assert_eq!(s.ssh_args, os(&["-N", "host"]));
        let s = run(&["-f", "host"]);
        assert_eq!(s.ssh_args, os(&["host"]));
    }

    #[test]
    fn option_arguments_are_untouched() {
        let s = run(&["-L8808:foo:80", "-ofoo=f", "-fp", "2222", "host"]);
        assert!(s.background);
        assert_eq!(
            s.ssh_args,
            os(&["-L8808:foo:80", "-ofoo=f", "-p", "2222", "host"])
        );
        let s = run(&["-NL", "8080:h:80", "host"]);
        assert_eq!(s.ssh_args, os(&["-NL", "8080:h:80", "host"]));
        let s = run(&["-o", "", "host"]);
        assert_eq!(s.ssh_args, os(&["-o", "", "host"]));
    }

    #[test]
    fn where_ssh_connects_from() {
        for v in [
            &["-b", "10.0.0.5", "host"][..],
            &["-Nb10.0.0.5", "host"],
            &["-B", "eth1", "host"],
            &["-o", "BindAddress=10.0.0.5", "host"],
            &["-obindinterface eth1", "host"],
            &["-o", " BindAddress=10.0.0.5", "host"],
            &["-o", "BINDADDRESS\t10.0.0.5", "host"],
            // (Options after the destination are options, for ssh too.)
            &["host", "-b", "10.0.0.5"],
        ] {
            assert!(run(v).binds, "{v:?}");
        }
        for v in [
            &["host"][..],
            &["-o", "BindAddressX=1", "host"],
            &["-L", "BindAddress=1", "host"],
            &["host", "echo", "-b", "10.0.0.5"],
            &["-o", "", "host"],
        ] {
            assert!(!run(v).binds, "{v:?}");
        }
    }

    #[test]
    fn command_is_verbatim() {
        let s = run(&["host", "-N", "echo", "-v", "-f", "-M", "5", "--", "x"]);
        assert_eq!(s.monitor, None);
        assert!(!s.background);
        assert_eq!(
            s.ssh_args,
            os(&["host", "-N", "echo", "-v", "-f", "-M", "5", "--", "x"])
        );
        let s = run(&["-M0", "host", "--", "ls", "--", "-l"]);
        assert_eq!(s.ssh_args, os(&["host", "ls", "--", "-l"]));
        let s = run(&["--", "host", "-v"]);
        assert_eq!(s.ssh_args, os(&["host", "-v"]));
        let s = run(&["-", "cmd"]);
        assert_eq!(s.ssh_args, os(&["-", "cmd"]));
    }

    #[test]
    fn last_monitor_wins() {
        let s = run(&["-M", "abc", "-M", "0", "host"]);
        assert_eq!(s.monitor, Some("0".into()));
    }

    #[test]
    fn options_act_in_order() {
        assert_eq!(scan(&os(&["-V", "-Z"])), Ok(Request::Version));
        assert_eq!(
            scan(&os(&["-Z", "-V"])),
            Err(UsageError::InvalidOption(b'Z'))
        );
        assert_eq!(scan(&os(&["host", "-V"])), Ok(Request::Version));
        assert_eq!(scan(&os(&["-NV"])), Ok(Request::Version));
        let s = run(&["-M", "-V", "host"]);
        assert_eq!(s.monitor, Some("-V".into()));
        assert_eq!(
            scan(&os(&["host", "-M"])),
            Err(UsageError::MissingArgument(b'M'))
        );
        assert_eq!(scan(&os(&["-M", "0"])), Err(UsageError::NoDestination));
        assert_eq!(scan(&os(&[])), Err(UsageError::NoDestination));
        assert_eq!(scan(&os(&["--"])), Err(UsageError::NoDestination));
        assert_eq!(scan(&os(&["-B"])), Err(UsageError::MissingArgument(b'B')));
    }

    #[test]
    fn monitor_specs() {
        let p = |s: &str| parse_monitor(s.as_bytes());
        assert_eq!(p("20000"), Ok(MonitorSpec::Loop { port: 20000 }));
        assert_eq!(p("0x4e20"), Ok(MonitorSpec::Loop { port: 20000 }));
        assert_eq!(p("047040"), Ok(MonitorSpec::Loop { port: 20000 }));
        assert_eq!(p("0"), Ok(MonitorSpec::Off));
        assert_eq!(p("0:7"), Ok(MonitorSpec::Off));
        assert_eq!(
            p("20000:0x7"),
            Ok(MonitorSpec::Echo {
                port: 20000,
                echo: 7
            })
        );
        assert_eq!(p("65534"), Ok(MonitorSpec::Loop { port: 65534 }));
        assert_eq!(p("abc"), Err("invalid port \"abc\"".into()));
        assert_eq!(p(":7"), Err("invalid port \"\"".into()));
        assert_eq!(p("65535"), Err("monitor port (65535) out of range".into()));
        assert_eq!(
            p("0x11170"),
            Err("monitor port (70000) out of range".into())
        );
        assert_eq!(p("-1"), Err("monitor port (-1) out of range".into()));
        assert_eq!(p("abc:0"), Err("invalid echo port  \"0\"".into()));
        assert_eq!(p("0:x"), Err("invalid echo port  \"x\"".into()));
        assert_eq!(p("20000:"), Err("invalid echo port  \"\"".into()));
        assert_eq!(p("20000:70000"), Err("invalid echo port  \"70000\"".into()));
        assert_eq!(p("20000:-7"), Err("invalid echo port  \"-7\"".into()));
    }

    #[test]
    fn ssh_command_lines() {
        let args = os(&["-N", "host"]);
        let argv = ssh_command(b"/usr/bin/ssh", MonitorSpec::Loop { port: 20000 }, &args);
        assert_eq!(
            argv,
            os(&[
                "/usr/bin/ssh",
                "-L",
                "20000:127.0.0.1:20000",
                "-R",
                "20000:127.0.0.1:20001",
                "-N",
                "host"
            ])
        );
        let argv = ssh_command(
            b"ssh",
            MonitorSpec::Echo {
                port: 20000,
                echo: 7,
            },
            &args,
        );
        assert_eq!(argv, os(&["ssh", "-L", "20000:127.0.0.1:7", "-N", "host"]));
        let argv = ssh_command(b"ssh", MonitorSpec::Off, &args);
        assert_eq!(argv, os(&["ssh", "-N", "host"]));
    }
}
