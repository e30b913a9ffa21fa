//! OpenWrt: the tunnels of `/etc/config/autossh`, the UCI file that
//! OpenWrt's own autossh package reads, as procd instances.
//!
//! `autossh-tunnels openwrt procd [SECTION]` prints the procd calls that the
//! init script (`deploy/openwrt/autossh.init`) evaluates: one instance per
//! enabled `config autossh` section, with the options OpenWrt's script
//! reads, in the same meaning, every word quoted for the shell. A section
//! that cannot run is reported by name on stderr and left out; the others
//! start. `autossh-tunnels openwrt status [SECTION]` prints a line per
//! section, from its state file.
//!
//! What differs from OpenWrt's script, on purpose: procd never gives up on
//! a tunnel (respawn retries without end), the gate time is 0 unless the
//! section sets one (so that a relay unreachable at boot is retried rather
//! than the service crash-looping), `ssh` is split as a shell would split
//! it (quotes kept together), each instance keeps a state file, and two
//! enabled sections on one monitor port are refused by name.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use autossh::staterecord::Record;

use crate::report::Seen;

/// Where OpenWrt keeps the file, and where the instances' state files go.
pub const CONFIG: &str = "/etc/config/autossh";
pub const RUN_DIR: &str = "/var/run/autossh";
/// Where the package puts autossh, as OpenWrt's own package does.
pub const AUTOSSH: &str = "/usr/sbin/autossh";

/// One `config TYPE [NAME]` section of a UCI file, with its options in
/// order (`list` marks a list's items) and the first problem found in its
/// lines, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub name: Option<String>,
    pub line: usize,
    pub options: Vec<(String, String, bool)>,
    pub problem: Option<String>,
}

impl Section {
    /// Option `name` as OpenWrt's `config_get` gives it, as uci builds it
    /// line by line: `option` sets the value (`''` deletes it), `list` adds
    /// an item (to the value there was); the items joined by blanks.
    fn get(&self, name: &str) -> Option<String> {
        let mut items: Vec<&str> = Vec::new();
        for (k, v, list) in &self.options {
            if k != name {
                continue;
            }
            if !list {
                items.clear();
            }
            if !v.is_empty() {
                items.push(v);
            }
        }
        Some(items.join(" ")).filter(|v| !v.is_empty())
    }
}

/// A UCI file: its sections, and the problems of lines outside any section
/// (which stop nothing).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Uci {
    pub sections: Vec<Section>,
    pub problems: Vec<String>,
}

/// A UCI name: letters, digits and `_`.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// How a line of text is cut into words.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grammar {
    /// A line of a UCI file: `#` outside quotes begins a comment, and in
    /// double quotes `\` takes the next character, whatever it is.
    Uci,
    /// A command line (`ssh`) as a shell splits an option's value: `#` is
    /// text, and in double quotes `\` is kept before anything but `$`,
    /// `` ` ``, `"` and `\`.
    Shell,
}

/// The words of one line as UCI reads them: separated by blanks, each made
/// of unquoted text (where `\` takes the next character as it is),
/// `'single'` (as written) and `"double"` quoted parts run together.
fn uci_words(line: &str) -> Result<Vec<String>, String> {
    words(line, Grammar::Uci)
}

/// The words of a value that holds a command line (`ssh`), split as a
/// shell splits them (nothing is expanded).
pub fn split_command(text: &str) -> Result<Vec<String>, String> {
    words(text, Grammar::Shell)
}

fn words(text: &str, grammar: Grammar) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(char::is_ascii_whitespace).is_some() {}
        match chars.peek() {
            None => return Ok(words),
            Some('#') if grammar == Grammar::Uci => return Ok(words),
            _ => {}
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_whitespace() {
                break;
            }
            chars.next();
            match c {
                '#' if grammar == Grammar::Uci => {
                    words.push(word);
                    return Ok(words);
                }
                '\'' => loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a ' quote is not closed".into()),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => {
                                if grammar == Grammar::Shell && !matches!(c, '$' | '`' | '"' | '\\')
                                {
                                    word.push('\\');
                                }
                                word.push(c)
                            }
                            None => return Err("a \" quote is not closed".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a \" quote is not closed".into()),
                    }
                },
                '\\' => match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("a \\ ends the line".into()),
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
}

/// Reads a UCI file. A wrong line is reported with its number; in a
/// section it marks that section (its tunnel is not started), outside one
/// it stops nothing. A `config` line always begins a section, even a wrong
/// one, so that its options are never taken for the one before; a section
/// named again continues the first of that name, as uci does.
pub fn parse(bytes: &[u8]) -> Uci {
    let mut uci = Uci::default();
    // The section the lines belong to.
    let mut current: Option<usize> = None;
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = n + 1;
        let problem = |why: String| format!("line {n}: {why}");
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line);
        let raw: Vec<&[u8]> = line
            .split(u8::is_ascii_whitespace)
            .filter(|w| !w.is_empty())
            .collect();
        if raw.first() == Some(&&b"config"[..]) {
            // The type and name as written, for a section that cannot be read.
            let plain = |w: Option<&&[u8]>| {
                w.map(|w| {
                    String::from_utf8_lossy(w)
                        .trim_matches(|c| c == '\'' || c == '"')
                        .to_string()
                })
            };
            let (kind, name, why) = match text
                .map_err(|_| "not UTF-8 text".to_string())
                .and_then(uci_words)
            {
                Ok(w) if (2..=3).contains(&w.len()) => {
                    let name = w.get(2).cloned();
                    let why = if !is_name(&w[1]) {
                        Some(format!("{:?} is not a section type", w[1]))
                    } else if name.as_deref().is_some_and(|s| !is_name(s)) {
                        Some(format!(
                            "{:?} is not a section name (letters, digits, _)",
                            name.as_deref().unwrap_or_default()
                        ))
                    } else {
                        None
                    };
                    (w[1].clone(), name, why)
                }
                Ok(w) => (
                    plain(raw.get(1)).unwrap_or_default(),
                    plain(raw.get(2)),
                    Some(format!("config with {} words", w.len() - 1)),
                ),
                Err(why) => (
                    plain(raw.get(1)).unwrap_or_default(),
                    plain(raw.get(2)),
                    Some(why),
                ),
            };
            let again = why.is_none()
                && name.is_some()
                && uci
                    .sections
                    .iter()
                    .position(|s| s.name == name && s.kind == kind)
                    .inspect(|&i| current = Some(i))
                    .is_some();
            if !again {
                uci.sections.push(Section {
                    kind,
                    name,
                    line: n,
                    options: Vec::new(),
                    problem: why.map(problem),
                });
                current = Some(uci.sections.len() - 1);
            }
            continue;
        }
        let words = match text
            .map_err(|_| "not UTF-8 text".to_string())
            .and_then(uci_words)
        {
            Ok(w) => w,
            Err(why) => {
                fail(&mut uci, current, problem(why));
                continue;
            }
        };
        let Some(keyword) = words.first() else {
            continue;
        };
        let shape = match (keyword.as_str(), words.len()) {
            ("package", 2) => Ok(None),
            ("option" | "list", 3) if !is_name(&words[1]) => {
                Err(format!("{:?} is not an option name", words[1]))
            }
            ("option" | "list", 3) => Ok(Some((
                words[1].clone(),
                words[2].clone(),
                keyword == "list",
            ))),
            ("package" | "option" | "list", _) => {
                Err(format!("{keyword} with {} words", words.len() - 1))
            }
            _ => Err(format!("{keyword:?} is not a UCI keyword")),
        };
        match shape {
            Ok(None) => {}
            Ok(Some(option)) => match current {
                Some(i) => uci.sections[i].options.push(option),
                None => uci
                    .problems
                    .push(problem("an option before any section".into())),
            },
            Err(why) => fail(&mut uci, current, problem(why)),
        }
    }
    uci
}

/// Marks the section being read with `why` (its first problem), or notes
/// `why` for the file when no section has begun.
fn fail(uci: &mut Uci, current: Option<usize>, why: String) {
    match current {
        Some(i) => {
            uci.sections[i].problem.get_or_insert(why);
        }
        None => uci.problems.push(why),
    }
}

/// A `config autossh` section, named as procd and `status` call it: its
/// own name, or `@autossh[N]` (its place among them, as `uci show` says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel<'a> {
    pub name: String,
    pub section: &'a Section,
}

pub fn tunnels(uci: &Uci) -> Vec<Tunnel<'_>> {
    uci.sections
        .iter()
        .filter(|s| s.kind == "autossh")
        .enumerate()
        .map(|(i, s)| Tunnel {
            name: s.name.clone().unwrap_or_else(|| format!("@autossh[{i}]")),
            section: s,
        })
        .collect()
}

/// What to run for a tunnel: autossh's arguments and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub pidfile: Option<String>,
    /// The monitor port, 0 for none.
    pub port: u32,
}

/// What becomes of a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Run(Instance),
    Disabled,
    Broken(String),
}

/// UCI's booleans (`config_get_bool`); anything else is neither, and the
/// option's default counts.
fn boolean(value: &str) -> Option<bool> {
    match value {
        "1" | "on" | "true" | "yes" | "enabled" => Some(true),
        "0" | "off" | "false" | "no" | "disabled" => Some(false),
        _ => None,
    }
}

/// A whole number no greater than `max`, as written (digits only, and a
/// leading `-` where `negative` allows it).
fn number(value: &str, max: u64, negative: bool) -> bool {
    let digits = if negative {
        value.strip_prefix('-').unwrap_or(value)
    } else {
        value
    };
    !digits.is_empty()
        && digits.len() <= 10
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n <= max)
}

/// The plan of one tunnel, from its section alone; `run_dir` is where its
/// state file goes.
pub fn plan(t: &Tunnel, run_dir: &Path) -> Plan {
    let s = t.section;
    if let Some(why) = &s.problem {
        return Plan::Broken(why.clone());
    }
    // As `config_get_bool enabled 1`: on unless it says off.
    if s.get("enabled").and_then(|v| boolean(&v)) == Some(false) {
        return Plan::Disabled;
    }
    match instance(t, run_dir) {
        Ok(i) => Plan::Run(i),
        Err(why) => Plan::Broken(why),
    }
}

/// Option `name` of `s`, which must be one word if it is there.
fn one_word(s: &Section, name: &str) -> Result<Option<String>, String> {
    match s.get(name) {
        Some(v) if v.chars().any(|c| c.is_ascii_whitespace()) => {
            Err(format!("{name} is {v:?}, not one word"))
        }
        other => Ok(other),
    }
}

fn instance(t: &Tunnel, run_dir: &Path) -> Result<Instance, String> {
    let s = t.section;
    let ssh =
        split_command(&s.get("ssh").unwrap_or_default()).map_err(|why| format!("ssh: {why}"))?;
    if ssh.is_empty() {
        return Err("the ssh option is needed (ssh's arguments)".into());
    }
    let mut command = vec![AUTOSSH.to_string()];
    let localhost = one_word(s, "localhost")?.unwrap_or_else(|| "localhost".into());
    match (
        one_word(s, "localport")?,
        one_word(s, "remoteport")?,
        one_word(s, "remotehost")?,
    ) {
        (Some(local), Some(remote), Some(host)) => {
            command.extend(["-L".into(), format!("{local}:{host}:{remote}")])
        }
        (Some(local), Some(remote), None) => {
            command.extend(["-R".into(), format!("{remote}:{localhost}:{local}")])
        }
        (Some(_), None, _) | (None, Some(_), _) => {
            return Err("localport and remoteport go together: both or neither".into())
        }
        (None, None, _) => {}
    }
    if let Some(proxy) = s.get("dropbearproxy") {
        command.extend(["-J".into(), proxy]);
    }
    command.extend(ssh);

    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: &str| env.push((key.to_string(), value.to_string()));
    let monitor = s.get("monitorport").unwrap_or_else(|| "20000".into());
    if !number(&monitor, 65534, false) {
        return Err(format!(
            "monitorport is {monitor:?}, not a port (0 for none)"
        ));
    }
    set("AUTOSSH_PORT", &monitor);
    let most = u64::from(u32::MAX);
    // (option, variable, default, largest, may be negative)
    let numbers: [(&str, &str, Option<&str>, u64, bool); 6] = [
        ("poll", "AUTOSSH_POLL", Some("600"), most, false),
        ("gatetime", "AUTOSSH_GATETIME", Some("0"), most, false),
        ("first_poll", "AUTOSSH_FIRST_POLL", None, most, false),
        ("loglevel", "AUTOSSH_LOGLEVEL", None, 7, false),
        ("maxlifetime", "AUTOSSH_MAXLIFETIME", None, most, false),
        (
            "maxstart",
            "AUTOSSH_MAXSTART",
            None,
            u64::from(i32::MAX.unsigned_abs()),
            true,
        ),
    ];
    for (option, var, default, max, negative) in numbers {
        let Some(value) = s.get(option).or(default.map(String::from)) else {
            continue;
        };
        if !number(&value, max, negative) {
            return Err(format!("{option} is {value:?}, not a number"));
        }
        set(var, &value);
    }
    for (option, var) in [
        ("logfile", "AUTOSSH_LOGFILE"),
        ("message", "AUTOSSH_MESSAGE"),
        ("path", "AUTOSSH_PATH"),
        ("pidfile", "AUTOSSH_PIDFILE"),
    ] {
        if let Some(value) = s.get(option) {
            set(var, &value);
        }
    }
    // As `config_get_bool ntservice 0`.
    if s.get("ntservice").and_then(|v| boolean(&v)) == Some(true) {
        set("AUTOSSH_NTSERVICE", "yes");
    }
    let state = run_dir.join(format!("{}.state", t.name));
    set("AUTOSSH_STATEFILE", &state.to_string_lossy());
    Ok(Instance {
        name: t.name.clone(),
        command,
        env,
        pidfile: s.get("pidfile"),
        port: monitor.parse().unwrap_or(0),
    })
}

/// Every tunnel's plan (or only `only`'s), with a second enabled tunnel on
/// a monitor port already taken (a port and the next one) refused.
pub fn plans<'a>(uci: &'a Uci, run_dir: &Path, only: Option<&str>) -> Vec<(Tunnel<'a>, Plan)> {
    let mut taken: Vec<(u32, String)> = Vec::new();
    let mut out = Vec::new();
    for t in tunnels(uci) {
        let mut plan = plan(&t, run_dir);
        if let Plan::Run(i) = &plan {
            if i.port != 0 {
                if let Some((_, other)) = taken.iter().find(|(p, _)| p.abs_diff(i.port) <= 1) {
                    plan = Plan::Broken(format!(
                        "monitorport {} and the next port are {other}'s too",
                        i.port
                    ));
                } else {
                    taken.push((i.port, t.name.clone()));
                }
            }
        }
        if only.is_none_or(|n| n == t.name) {
            out.push((t, plan));
        }
    }
    out
}

/// A word as the shell reads it back: in single quotes.
pub fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The procd calls that start `i` (rc.common's procd functions).
pub fn procd_calls(i: &Instance) -> String {
    let words = |w: &mut dyn Iterator<Item = String>| w.collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    let _ = writeln!(out, "procd_open_instance {}", quoted(&i.name));
    let _ = writeln!(
        out,
        "procd_set_param command {}",
        words(&mut i.command.iter().map(|w| quoted(w)))
    );
    // Never given up on: procd starts it again 5 s after every exit.
    let _ = writeln!(out, "procd_set_param respawn 3600 5 0");
    let _ = writeln!(
        out,
        "procd_set_param env {}",
        words(&mut i.env.iter().map(|(k, v)| quoted(&format!("{k}={v}"))))
    );
    if let Some(p) = &i.pidfile {
        let _ = writeln!(out, "procd_set_param pidfile {}", quoted(p));
    }
    let _ = writeln!(out, "procd_close_instance");
    out
}

/// The problems of `uci` and its plans, one line each, for stderr.
pub fn problems(file: &Path, uci: &Uci, plans: &[(Tunnel, Plan)]) -> Vec<String> {
    let file = file.display();
    let mut out: Vec<String> = uci
        .problems
        .iter()
        .map(|p| format!("{file}: {p}"))
        .collect();
    for (t, plan) in plans {
        if let Plan::Broken(why) = plan {
            out.push(format!(
                "{file}: tunnel {} (line {}) is not started: {why}",
                t.name, t.section.line
            ));
        }
    }
    out
}

/// `openwrt procd [SECTION]`: the calls on stdout, the problems on stderr;
/// 1 if there was one (or SECTION is not a tunnel of the file).
pub fn procd(file: &Path, run_dir: &Path, only: Option<&str>) -> i32 {
    let Some(uci) = read(file) else {
        return 1;
    };
    let plans = plans(&uci, run_dir, only);
    let mut status = 0;
    // Where the instances keep their state files.
    if let Err(e) = std::fs::create_dir_all(run_dir) {
        eprintln!(
            "autossh-tunnels: {}: {e}",
            crate::files::shown_path(run_dir)
        );
        status = 1;
    }
    if missing(file, only, &plans) {
        status = 1;
    }
    let mut out = String::new();
    for (_, plan) in &plans {
        if let Plan::Run(i) = plan {
            out.push_str(&procd_calls(i));
        }
    }
    print!("{out}");
    for p in problems(file, &uci, &plans) {
        eprintln!("autossh-tunnels: {p}");
        status = 1;
    }
    status
}

/// The file, read; or None, once why not is told.
fn read(file: &Path) -> Option<Uci> {
    match crate::files::read_file(file, crate::files::FILE_MAX, true) {
        Ok(text) => Some(parse(&text)),
        Err(e) => {
            eprintln!("autossh-tunnels: {}: {e}", crate::files::shown_path(file));
            None
        }
    }
}

/// Whether `only` names no tunnel of the file (`plans` being its), told
/// if so.
fn missing(file: &Path, only: Option<&str>, plans: &[(Tunnel, Plan)]) -> bool {
    let Some(name) = only.filter(|_| plans.is_empty()) else {
        return false;
    };
    eprintln!("autossh-tunnels: {}: no tunnel {name}", file.display());
    true
}

/// Whether `pid` is an autossh that runs now.
fn autossh_runs(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    let comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
    comm.strip_suffix(b"\n").unwrap_or(&comm) == b"autossh"
}

/// `openwrt status [SECTION]`: a line per tunnel. Exits as `status` does:
/// 0 when every enabled tunnel runs, 3 when none does, else 1 (a tunnel
/// that cannot start is one that does not run).
pub fn status(file: &Path, run_dir: &Path, only: Option<&str>) -> i32 {
    let Some(uci) = read(file) else {
        return 1;
    };
    let plans = plans(&uci, run_dir, only);
    if missing(file, only, &plans) {
        return 1;
    }
    let (mut enabled, mut running) = (0, 0);
    for (t, plan) in &plans {
        let line = match plan {
            Plan::Broken(why) => {
                enabled += 1;
                format!("{}: not started: {why}", t.name)
            }
            Plan::Disabled => format!("{}: disabled", t.name),
            Plan::Run(_) => {
                enabled += 1;
                let record: Option<Record> = crate::files::read_file(
                    &state_file(run_dir, &t.name),
                    crate::files::FILE_MAX,
                    false,
                )
                .ok()
                .map(|text| autossh::staterecord::parse(&text));
                let pid = record
                    .as_ref()
                    .and_then(|r| r.pid)
                    .filter(|p| autossh_runs(*p));
                if pid.is_some() {
                    running += 1;
                }
                let seen = Seen {
                    name: t.name.clone(),
                    listed: true,
                    disabled: false,
                    pid: pid.and_then(|p| i32::try_from(p).ok()),
                    unknown: None,
                    record,
                };
                seen.line(&crate::status::when)
            }
        };
        println!("{line}");
    }
    if enabled > 0 && running == enabled {
        0
    } else if running == 0 {
        3
    } else {
        1
    }
}

fn state_file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.state"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_as_uci_reads_them() {
        let w = |s: &str| uci_words(s);
        assert_eq!(
            w("\toption ssh\t'-i /k -N user@host'").unwrap(),
            ["option", "ssh", "-i /k -N user@host"]
        );
        assert_eq!(
            w(r#"option a "x \"y\" z""#).unwrap(),
            ["option", "a", r#"x "y" z"#]
        );
        assert_eq!(w("option a 'it'\\''s'").unwrap(), ["option", "a", "it's"]);
        assert_eq!(w("option a ''").unwrap(), ["option", "a", ""]);
        assert_eq!(w("option a b # c").unwrap(), ["option", "a", "b"]);
        assert_eq!(w("option a b#c").unwrap(), ["option", "a", "b"]);
        assert_eq!(w("option a 'b#c'").unwrap(), ["option", "a", "b#c"]);
        assert_eq!(w(r#"option a "\q""#).unwrap(), ["option", "a", "q"]);
        assert_eq!(split_command(r#"-o "a\qb\$""#).unwrap(), ["-o", "a\\qb$"]);
        assert_eq!(w("  # all of it").unwrap(), Vec::<String>::new());
        assert!(w("option a 'open").is_err());
        assert!(w("option a \"open").is_err());
        assert!(w("option a b\\").is_err());
        assert_eq!(
            split_command("-o 'ProxyCommand=nc -x 1.2.3.4 %h %p' -N u@h # x").unwrap(),
            [
                "-o",
                "ProxyCommand=nc -x 1.2.3.4 %h %p",
                "-N",
                "u@h",
                "#",
                "x"
            ]
        );
    }

    const SAMPLE: &str = "\
config autossh
\toption ssh\t'-i /etc/dropbear/id_rsa -N -T -R 2222:localhost:22 user@host'
\toption gatetime\t'0'
\toption monitorport\t'20000'
\toption poll\t'600'
\toption enabled\t'0'
";

    #[test]
    fn openwrts_sample_is_one_disabled_tunnel() {
        let uci = parse(SAMPLE.as_bytes());
        assert!(uci.problems.is_empty());
        let p = plans(&uci, Path::new("/run"), None);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0.name, "@autossh[0]");
        assert_eq!(p[0].1, Plan::Disabled);
        // Enabled, it runs as OpenWrt's script runs it, and keeps state.
        let uci = parse(SAMPLE.replace("enabled\t'0'", "enabled\t'1'").as_bytes());
        let p = plans(&uci, Path::new("/run"), None);
        let Plan::Run(i) = &p[0].1 else {
            panic!("{p:?}")
        };
        assert_eq!(
            i.command,
            [
                "/usr/sbin/autossh",
                "-i",
                "/etc/dropbear/id_rsa",
                "-N",
                "-T",
                "-R",
                "2222:localhost:22",
                "user@host"
            ]
        );
        let env: Vec<String> = i.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            [
                "AUTOSSH_PORT=20000",
                "AUTOSSH_POLL=600",
                "AUTOSSH_GATETIME=0",
                "AUTOSSH_STATEFILE=/run/@autossh[0].state"
            ]
        );
    }

    #[test]
    fn every_option_in_its_meaning() {
        let uci = parse(
            b"package autossh\n\
             config autossh relay\n\
             option ssh \"-p 2200 'u@h'\"\n\
             option localport 22\n\
             option remoteport 2222\n\
             option localhost 10.0.0.5\n\
             option monitorport 0\n\
             option first_poll 30\n\
             option loglevel 7\n\
             option logfile /tmp/a.log\n\
             option maxlifetime 3600\n\
             option maxstart -1\n\
             option message hi\n\
             option ntservice 1\n\
             option path /usr/bin/dbclient\n\
             option pidfile /var/run/relay.pid\n\
             option enabled yes\n\
             config autossh local\n\
             option ssh 'u@h'\n\
             option localport 8080\n\
             option remotehost 192.168.1.2\n\
             option remoteport 80\n\
             option dropbearproxy 'jump@j'\n\
             option monitorport 20010\n",
        );
        let p = plans(&uci, Path::new("/r"), None);
        let Plan::Run(relay) = &p[0].1 else {
            panic!("{p:?}")
        };
        assert_eq!(
            relay.command,
            [
                "/usr/sbin/autossh",
                "-R",
                "2222:10.0.0.5:22",
                "-p",
                "2200",
                "u@h"
            ]
        );
        let env: Vec<String> = relay.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            [
                "AUTOSSH_PORT=0",
                "AUTOSSH_POLL=600",
                "AUTOSSH_GATETIME=0",
                "AUTOSSH_FIRST_POLL=30",
                "AUTOSSH_LOGLEVEL=7",
                "AUTOSSH_MAXLIFETIME=3600",
                "AUTOSSH_MAXSTART=-1",
                "AUTOSSH_LOGFILE=/tmp/a.log",
                "AUTOSSH_MESSAGE=hi",
                "AUTOSSH_PATH=/usr/bin/dbclient",
                "AUTOSSH_PIDFILE=/var/run/relay.pid",
                "AUTOSSH_NTSERVICE=yes",
                "AUTOSSH_STATEFILE=/r/relay.state"
            ]
        );
        assert_eq!(relay.pidfile.as_deref(), Some("/var/run/relay.pid"));
        let Plan::Run(local) = &p[1].1 else {
            panic!("{p:?}")
        };
        assert_eq!(
            local.command,
            [
                "/usr/sbin/autossh",
                "-L",
                "8080:192.168.1.2:80",
                "-J",
                "jump@j",
                "u@h"
            ]
        );
    }

    #[test]
    fn a_broken_section_is_told_by_name_and_stops_no_other() {
        let text = "\
config autossh good
\toption ssh 'u@h'
config autossh 'bad-name'
\toption ssh 'u@h'
config autossh noport
\toption ssh 'u@h'
\toption localport 22
config autossh quote
\toption ssh \"u@h
\toption monitorport 20100
config autossh nossh
\toption monitorport 20200
config autossh poll
\toption ssh 'u@h'
\toption poll soon
\toption monitorport 20300
config autossh same
\toption ssh 'u@h'
\toption monitorport 20001
config autossh off
\toption ssh 'u@h'
\toption enabled maybe
bogus line here
config autossh after
\toption ssh 'v@h'
\toption monitorport 20400
";
        let uci = parse(text.as_bytes());
        let shown: Vec<(String, String)> = plans(&uci, Path::new("/r"), None)
            .iter()
            .map(|(t, p)| {
                let p = match p {
                    Plan::Run(_) => "run".to_string(),
                    Plan::Disabled => "disabled".to_string(),
                    Plan::Broken(why) => why.clone(),
                };
                (t.name.clone(), p)
            })
            .collect();
        let want = [
            ("good", "run"),
            (
                "bad-name",
                "line 3: \"bad-name\" is not a section name (letters, digits, _)",
            ),
            (
                "noport",
                "localport and remoteport go together: both or neither",
            ),
            ("quote", "line 9: a \" quote is not closed"),
            ("nossh", "the ssh option is needed (ssh's arguments)"),
            ("poll", "poll is \"soon\", not a number"),
            ("same", "monitorport 20001 and the next port are good's too"),
            ("off", "line 23: \"bogus\" is not a UCI keyword"),
            ("after", "run"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(shown, want);
        assert!(uci.problems.is_empty());
        // A line before any section is the file's problem.
        let uci = parse(b"option ssh x\nconfig autossh\noption ssh u@h\n");
        assert_eq!(uci.problems, ["line 1: an option before any section"]);
        assert!(matches!(
            plans(&uci, Path::new("/r"), None)[0].1,
            Plan::Run(_)
        ));
    }

    #[test]
    fn odd_lines_as_uci_takes_them() {
        let text = b"config autossh one\r
\toption ssh 'a@h' # a comment\r
\tlist ssh '-N'\r
\tlist ssh '-T'\r
\toption enabled 'True'\r
\toption localport ''\r
\toption monitorport ''\r
config autossh my tunnel
\toption ssh 'b@h'
config autossh 'open
\toption ssh 'c@h'
config autossh one
\toption poll 30
config autossh bytes
\toption message '\xff'
config autossh off
\toption ssh 'd@h'
\toption enabled off
";
        let uci = parse(text);
        let p = plans(&uci, Path::new("/r"), None);
        let shown: Vec<String> = p
            .iter()
            .map(|(t, p)| match p {
                Plan::Run(i) => format!("{}: {} / {}", t.name, i.command[1..].join(" "), {
                    let env: Vec<String> = i.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    env.join(" ")
                }),
                Plan::Disabled => format!("{}: off", t.name),
                Plan::Broken(why) => format!("{}: {why}", t.name),
            })
            .collect();
        assert_eq!(
            shown,
            [
                // A list is its items joined; an empty value is none; a
                // boolean uci does not know is the default; the section
                // named again goes on.
                "one: a@h -N -T / AUTOSSH_PORT=20000 AUTOSSH_POLL=30 AUTOSSH_GATETIME=0 AUTOSSH_STATEFILE=/r/one.state",
                "my: line 8: config with 3 words",
                "open: line 10: a ' quote is not closed",
                "bytes: line 15: not UTF-8 text",
                "off: off",
            ]
        );
    }

    #[test]
    fn what_procd_is_told_reads_back_as_written() {
        let i = Instance {
            name: "it's".into(),
            command: vec![
                "/usr/sbin/autossh".into(),
                "-o".into(),
                "A='b c'; $(x)".into(),
            ],
            env: vec![("AUTOSSH_MESSAGE".into(), "`x` \"y\"".into())],
            pidfile: None,
            port: 0,
        };
        assert_eq!(
            procd_calls(&i),
            "procd_open_instance 'it'\\''s'\n\
             procd_set_param command '/usr/sbin/autossh' '-o' 'A='\\''b c'\\''; $(x)'\n\
             procd_set_param respawn 3600 5 0\n\
             procd_set_param env 'AUTOSSH_MESSAGE=`x` \"y\"'\n\
             procd_close_instance\n"
        );
    }
}
