//! The command line.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::list;

pub const USAGE: &str = "usage: autossh-tunnels start | stop | restart [NAME] | reload | status [NAME] [--json] | check | metrics | add NAME SSH-ARGS... | openwrt procd|status [SECTION]\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Start,
    Stop,
    Restart(Option<String>),
    Reload,
    Status {
        name: Option<String>,
        json: bool,
    },
    Check,
    Metrics,
    /// Adds a tunnel the app could edit to the list (the install wizard's).
    Add {
        name: String,
        args: Vec<String>,
    },
    /// The DSM app's server side, one CGI request (`cgi`).
    Cgi,
    /// OpenWrt's init script's: the procd calls of `/etc/config/autossh`'s
    /// tunnels (`procd`), or their state (`status`); all, or one section.
    OpenWrt {
        status: bool,
        section: Option<String>,
    },
    Version,
    Help,
}

/// The command line (without argv[0]).
pub fn parse_args(args: &[OsString]) -> Result<Request, String> {
    let words: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let name = |w: &[u8]| list::check_name(w).map(String::from);
    let request = match words.as_slice() {
        [b"start"] => Request::Start,
        [b"stop"] => Request::Stop,
        [b"restart"] => Request::Restart(None),
        [b"restart", n] => Request::Restart(Some(name(n)?)),
        [b"reload"] => Request::Reload,
        [b"check"] => Request::Check,
        [b"metrics"] => Request::Metrics,
        [b"cgi"] => Request::Cgi,
        [b"add", n, rest @ ..] if !rest.is_empty() => Request::Add {
            name: name(n)?,
            args: rest
                .iter()
                .map(|w| {
                    std::str::from_utf8(w)
                        .map(String::from)
                        .map_err(|_| "the arguments of add are not UTF-8 text".to_string())
                })
                .collect::<Result<_, _>>()?,
        },
        [b"openwrt", what @ (b"procd" | b"status")] => Request::OpenWrt {
            status: *what == b"status",
            section: None,
        },
        [b"openwrt", what @ (b"procd" | b"status"), n] => Request::OpenWrt {
            status: *what == b"status",
            section: Some(
                std::str::from_utf8(n)
                    .ok()
                    .filter(|n| !n.is_empty() && n.len() <= 64)
                    .ok_or("a section is named by at most 64 characters of text")?
                    .to_string(),
            ),
        },
        [b"-V" | b"--version"] => Request::Version,
        [b"-h" | b"--help"] => Request::Help,
        [b"status", rest @ ..] if rest.len() <= 2 => {
            let json = rest.contains(&&b"--json"[..]);
            let names: Vec<&&[u8]> = rest.iter().filter(|w| **w != b"--json").collect();
            match names.as_slice() {
                [] => Request::Status { name: None, json },
                [n] if rest.len() == 1 || json => Request::Status {
                    name: Some(name(n)?),
                    json,
                },
                _ => return Err(USAGE.trim_end().to_string()),
            }
        }
        _ => return Err(USAGE.trim_end().to_string()),
    };
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Request, String> {
        parse_args(&v.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn command_lines() {
        assert_eq!(args(&["start"]), Ok(Request::Start));
        assert_eq!(
            args(&["restart", "relay"]),
            Ok(Request::Restart(Some("relay".into())))
        );
        assert_eq!(
            args(&["status", "--json"]),
            Ok(Request::Status {
                name: None,
                json: true
            })
        );
        assert_eq!(
            args(&["status", "--json", "x"]),
            Ok(Request::Status {
                name: Some("x".into()),
                json: true
            })
        );
        assert_eq!(
            args(&["status", "x"]),
            Ok(Request::Status {
                name: Some("x".into()),
                json: false
            })
        );
        for bad in [
            &[][..],
            &["strat"],
            &["status", "a", "b"],
            &["start", "x"],
            &["restart", "a", "b"],
            &["status", "--json", "--json", "x"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            args(&["add", "first", "-N", "u@h"]),
            Ok(Request::Add {
                name: "first".into(),
                args: vec!["-N".into(), "u@h".into()]
            })
        );
        assert!(args(&["add", "first"]).is_err());
        assert!(args(&["add", "a b", "-N"]).is_err());
        assert!(args(&["restart", ".x"])
            .unwrap_err()
            .contains("not a tunnel name"));
    }
}
