//! The tunnel list (`tunnels.conf`): one tunnel or setting per line.
//!
//! ```text
//! # a comment; blank lines are passed over
//! tunnel NAME SSH-ARGUMENTS...
//! env NAME VARIABLE=VALUE
//! ```
//!
//! A line is split into words at blanks (spaces and tabs). `'...'` and
//! `"..."` quote blanks into a word; inside either, every byte stands for
//! itself (the other quote, `\`, `$`, `*`), and quoted and unquoted parts
//! next to each other make one word (`-o'ProxyCommand=nc %h %p'`). Nothing
//! is ever expanded: no variables, no globs, no `~`, no escapes. A word
//! that begins with an unquoted `#` begins a comment. A CR at the end of a
//! line (a list saved on Windows) is dropped; any other control byte makes
//! the line wrong.
//!
//! `disabled NAME SSH-ARGUMENTS...` keeps a tunnel in the list without
//! running it (the app's "enabled" box).
//!
//! A tunnel's NAME is 1 to 64 letters, digits, `_`, `-` and `.`, not
//! beginning with `.`. A wrong line is reported with its number and passed
//! over; the other lines still count. A tunnel named twice runs as its
//! first line says.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// The longest tunnel name.
pub const NAME_MAX: usize = 64;

/// Variables the tunnel-list program sets for every tunnel itself.
pub const RESERVED: [&str; 3] = ["AUTOSSH_PIDFILE", "AUTOSSH_STATEFILE", "AUTOSSH_GATETIME"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub name: String,
    /// Its `tunnel` line.
    pub line: usize,
    pub args: Vec<OsString>,
    /// Its `env` lines' settings, in the list's order.
    pub env: Vec<(OsString, OsString)>,
}

/// A wrong line: its number and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List {
    /// The tunnels that run.
    pub tunnels: Vec<Tunnel>,
    /// `disabled NAME ...` lines: tunnels kept in the list that do not run.
    pub off: Vec<Tunnel>,
    pub problems: Vec<Problem>,
}

impl List {
    pub fn get(&self, name: &str) -> Option<&Tunnel> {
        self.tunnels.iter().find(|t| t.name == name)
    }

    pub fn disabled(&self, name: &str) -> Option<&Tunnel> {
        self.off.iter().find(|t| t.name == name)
    }
}

/// Bytes as a message shows them: control bytes as `\xNN`, not valid UTF-8
/// as U+FFFD, at most `max` characters (then `...`).
pub fn shown(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for (n, c) in String::from_utf8_lossy(bytes).chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits `line` into words by the rules above; the error says why not.
pub fn words(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if let Some(&c) = line
        .iter()
        .find(|&&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(format!("a control character (\\x{c:02x}) in the line"));
    }
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut quote: Option<u8> = None;
    for &b in line {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => word.get_or_insert_with(Vec::new).push(b),
            (None, b' ' | b'\t') => words.extend(word.take()),
            (None, b'#') if word.is_none() => break,
            (None, b'\'' | b'"') => {
                quote = Some(b);
                word.get_or_insert_with(Vec::new);
            }
            (None, _) => word.get_or_insert_with(Vec::new).push(b),
        }
    }
    if let Some(q) = quote {
        return Err(format!("a quote ({}) is not closed", q as char));
    }
    words.extend(word);
    Ok(words)
}

/// Whether `name` may name a tunnel; the error says why not.
pub fn check_name(name: &[u8]) -> Result<&str, String> {
    let good = !name.is_empty()
        && name.len() <= NAME_MAX
        && name[0] != b'.'
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    match std::str::from_utf8(name) {
        Ok(name) if good => Ok(name),
        _ => Err(format!(
            "not a tunnel name: {} (1 to {NAME_MAX} letters, digits, _ - and ., not . first)",
            shown(name, 70)
        )),
    }
}

fn variable_name(v: &[u8]) -> bool {
    v.first()
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
        && v.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Reads the list's text.
pub fn parse(text: &[u8]) -> List {
    let mut list = List::default();
    // env lines, kept until every tunnel is known: (line, name, var, value).
    let mut settings = Vec::new();
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for (i, raw) in lines.into_iter().enumerate() {
        let number = i + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        macro_rules! problem {
            ($text:expr) => {
                list.problems.push(Problem {
                    line: number,
                    text: $text,
                })
            };
        }
        let words = match words(line) {
            Ok(w) => w,
            Err(why) => {
                problem!(why);
                continue;
            }
        };
        let Some(first) = words.first() else {
            continue;
        };
        match first.as_slice() {
            kind @ (b"tunnel" | b"disabled") => {
                let enabled = kind == b"tunnel";
                if words.len() < 2 {
                    problem!(
                        "a tunnel needs a name and ssh arguments: tunnel NAME SSH-ARGUMENTS..."
                            .into()
                    );
                    continue;
                }
                let name = match check_name(&words[1]) {
                    Ok(name) => name.to_string(),
                    Err(why) => {
                        problem!(why);
                        continue;
                    }
                };
                if words.len() < 3 {
                    problem!(format!("tunnel {name} has no ssh arguments"));
                    continue;
                }
                if let Some(first) = list.get(&name).or_else(|| list.disabled(&name)) {
                    let text = format!("tunnel {name} is already on line {}", first.line);
                    problem!(text);
                    continue;
                }
                let tunnel = Tunnel {
                    name,
                    line: number,
                    args: words[2..]
                        .iter()
                        .map(|w| OsString::from_vec(w.clone()))
                        .collect(),
                    env: Vec::new(),
                };
                if enabled {
                    list.tunnels.push(tunnel);
                } else {
                    list.off.push(tunnel);
                }
            }
            b"env" => {
                let setting = words.get(2).and_then(|w| {
                    let eq = w.iter().position(|&b| b == b'=')?;
                    variable_name(&w[..eq]).then(|| (w[..eq].to_vec(), w[eq + 1..].to_vec()))
                });
                let (Some(name), Some((var, value)), 3) = (words.get(1), setting, words.len())
                else {
                    problem!(format!(
                        "a setting is env NAME VARIABLE=VALUE (quote a value with blanks): {}",
                        shown(line, 80)
                    ));
                    continue;
                };
                let name = match check_name(name) {
                    Ok(name) => name.to_string(),
                    Err(why) => {
                        problem!(why);
                        continue;
                    }
                };
                if let Some(reserved) = RESERVED.iter().find(|r| r.as_bytes() == var) {
                    problem!(format!(
                        "{reserved} is set for every tunnel by autossh-tunnels itself"
                    ));
                    continue;
                }
                settings.push((number, name, var, value));
            }
            _ => problem!(format!(
                "not a tunnel, a setting or a comment: {}",
                shown(line, 80)
            )),
        }
    }
    for (line, name, var, value) in settings {
        match list
            .tunnels
            .iter_mut()
            .chain(list.off.iter_mut())
            .find(|t| t.name == name)
        {
            Some(tunnel) => tunnel
                .env
                .push((OsString::from_vec(var), OsString::from_vec(value))),
            None => list.problems.push(Problem {
                line,
                text: format!("a setting for tunnel {name}, which is not in the list"),
            }),
        }
    }
    list.problems.sort_by_key(|p| p.line);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(line: &str) -> Vec<String> {
        words(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn words_quotes_and_no_expansion() {
        assert_eq!(w("  a\tb  c "), ["a", "b", "c"]);
        assert_eq!(
            w("-o SendEnv=LC_* -L 8080:[::1]:80 ~/x $HOME $(id)"),
            [
                "-o",
                "SendEnv=LC_*",
                "-L",
                "8080:[::1]:80",
                "~/x",
                "$HOME",
                "$(id)"
            ]
        );
        assert_eq!(
            w(r#"-o 'ProxyCommand=nc %h %p' "it's" 'say "hi"' a\ b"#),
            [
                "-o",
                "ProxyCommand=nc %h %p",
                "it's",
                "say \"hi\"",
                "a\\",
                "b"
            ]
        );
        assert_eq!(w("-o'A B'\"C\" '' x"), ["-oA BC", "", "x"]);
        assert_eq!(w("a #comment 'unclosed"), ["a"]);
        assert_eq!(w("a#b '#c'"), ["a#b", "#c"]);
        assert_eq!(w("# all"), Vec::<String>::new());
        assert!(words(b"a 'b").unwrap_err().contains("(') is not closed"));
        assert!(words(b"a \"b").unwrap_err().contains("(\") is not closed"));
        assert!(words(b"a\rb").unwrap_err().contains("\\x0d"));
        assert!(words(b"a\x00b").unwrap_err().contains("\\x00"));
    }

    #[test]
    fn names() {
        for good in ["a", "relay-1", "home_2.b", "A", &"x".repeat(64), "-x"] {
            assert_eq!(check_name(good.as_bytes()), Ok(good), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a b",
            "é",
            "..",
            &"x".repeat(65),
            "a*",
        ] {
            assert!(check_name(bad.as_bytes()).is_err(), "{bad}");
        }
        let long = check_name("y".repeat(250).as_bytes()).unwrap_err();
        assert!(long.len() < 200, "{long}");
    }

    #[test]
    fn a_list_with_every_kind_of_line() {
        let text = "# comment\n\
                    \n\
                    tunnel one -N -R 2200:localhost:22 me@relay\r\n\
                    tunnel\n\
                    \ttunnel two -N -o 'ProxyCommand=nc %h %p' me@gw # why\n\
                    tunnel one -N other@host\n\
                    tunel three -N me@typo\n\
                    env two POLL=a b\n\
                    env two AUTOSSH_POLL=30\r\n\
                    env two 'AUTOSSH_LOGFILE=/volume1/my logs/two.log'\n\
                    env nobody AUTOSSH_POLL=30\n\
                    env one AUTOSSH_PIDFILE=/tmp/x\n\
                    tunnel .dot -N me@relay\n\
                    tunnel lonely\n\
                    tunnel bad 'open\n\
                    tunnel last -N me@last";
        let list = parse(text.as_bytes());
        let names: Vec<_> = list.tunnels.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["one", "two", "last"]);
        let one = list.get("one").unwrap();
        assert_eq!(one.line, 3);
        assert_eq!(one.args, ["-N", "-R", "2200:localhost:22", "me@relay"]);
        assert!(one.env.is_empty());
        let two = list.get("two").unwrap();
        assert_eq!(two.args, ["-N", "-o", "ProxyCommand=nc %h %p", "me@gw"]);
        assert_eq!(
            two.env,
            [
                ("AUTOSSH_POLL".into(), "30".into()),
                ("AUTOSSH_LOGFILE".into(), "/volume1/my logs/two.log".into())
            ]
        );
        let problems: Vec<(usize, &str)> = list
            .problems
            .iter()
            .map(|p| (p.line, p.text.as_str()))
            .collect();
        assert_eq!(
            problems,
            [
                (4, "a tunnel needs a name and ssh arguments: tunnel NAME SSH-ARGUMENTS..."),
                (6, "tunnel one is already on line 3"),
                (7, "not a tunnel, a setting or a comment: tunel three -N me@typo"),
                (8, "a setting is env NAME VARIABLE=VALUE (quote a value with blanks): env two POLL=a b"),
                (11, "a setting for tunnel nobody, which is not in the list"),
                (12, "AUTOSSH_PIDFILE is set for every tunnel by autossh-tunnels itself"),
                (13, "not a tunnel name: .dot (1 to 64 letters, digits, _ - and ., not . first)"),
                (14, "tunnel lonely has no ssh arguments"),
                (15, "a quote (') is not closed"),
            ]
        );
    }

    #[test]
    fn disabled_tunnels() {
        let list =
            parse(b"disabled a -N x@y\nenv a AUTOSSH_POLL=9\ntunnel a -N z@w\ntunnel b -N q@r\n");
        assert_eq!(list.tunnels.len(), 1);
        assert_eq!(list.off[0].name, "a");
        assert_eq!(list.off[0].env.len(), 1);
        assert_eq!(list.problems[0].text, "tunnel a is already on line 1");
    }

    #[test]
    fn empty_and_odd_texts() {
        assert_eq!(parse(b""), List::default());
        assert_eq!(parse(b"\n\n\r\n"), List::default());
        let list = parse(b"tunnel a -N x\xff@y\n\x01\n");
        assert_eq!(
            list.tunnels[0].args[1],
            OsString::from_vec(b"x\xff@y".to_vec())
        );
        assert_eq!(list.problems[0].line, 2);
    }
}
