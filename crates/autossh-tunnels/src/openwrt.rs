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
/// order (a `list` adds one value per line) and the first problem found in
/// its lines, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub name: Option<String>,
    pub line: usize,
    pub options: Vec<(String, String)>,
    pub problem: Option<String>,
}

impl Section {
    /// The last value of option `name` (UCI's `config_get`).
    fn get(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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

/// The words of one line as UCI reads them: separated by blanks, each made
/// of unquoted text (where `\` takes the next character as it is),
/// `'single'` (as written) and `"double"` quoted parts (where `\` takes the
/// next character) run together; `#` at the start of a word begins a
/// comment.
fn uci_words(line: &str) -> Result<Vec<String>, String> {
    shell_words(line, true)
}

/// The same grammar for a value that holds a command line (`ssh`), where
/// `#` is text.
pub fn split_command(text: &str) -> Result<Vec<String>, String> {
    shell_words(text, false)
}

fn shell_words(text: &str, comments: bool) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None => return Ok(words),
            Some('#') if comments => return Ok(words),
            _ => {}
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
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
                            Some(c) => word.push(c),
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

/// Reads a UCI file's text. A wrong line is reported with its number; in a
/// section it marks that section (its tunnel is not started), outside one
/// it stops nothing.
pub fn parse(text: &str) -> Uci {
    let mut uci = Uci::default();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let problem = |why: String| format!("line {n}: {why}");
        let words = match uci_words(line) {
            Ok(w) => w,
            Err(why) => {
                fail(&mut uci, problem(why));
                continue;
            }
        };
        let Some(keyword) = words.first() else {
            continue;
        };
        let shape = match (keyword.as_str(), words.len()) {
            ("package", 2) => Ok(None),
            ("config", 2 | 3) => {
                // A wrong section is a section all the same, so that its
                // options are not taken for the one before.
                let name = words.get(2).cloned();
                let why = if !is_name(&words[1]) {
                    Some(format!("{:?} is not a section type", words[1]))
                } else if name.as_deref().is_some_and(|s| !is_name(s)) {
                    Some(format!(
                        "{:?} is not a section name (letters, digits, _)",
                        name.as_deref().unwrap_or_default()
                    ))
                } else {
                    None
                };
                uci.sections.push(Section {
                    kind: words[1].clone(),
                    name,
                    line: n,
                    options: Vec::new(),
                    problem: why.map(problem),
                });
                Ok(None)
            }
            ("option" | "list", 3) if !is_name(&words[1]) => {
                Err(format!("{:?} is not an option name", words[1]))
            }
            ("option" | "list", 3) => Ok(Some((words[1].clone(), words[2].clone()))),
            ("package" | "config" | "option" | "list", _) => {
                Err(format!("{keyword} with {} words", words.len() - 1))
            }
            _ => Err(format!("{keyword:?} is not a UCI keyword")),
        };
        match shape {
            Ok(None) => {}
            Ok(Some(option)) => match uci.sections.last_mut() {
                Some(s) => s.options.push(option),
                None => uci
                    .problems
                    .push(problem("an option before any section".into())),
            },
            Err(why) => fail(&mut uci, problem(why)),
        }
    }
    uci
}

/// Marks the section being read with `why` (its first problem), or notes
/// `why` for the file when no section has begun.
fn fail(uci: &mut Uci, why: String) {
    match uci.sections.last_mut() {
        Some(s) => {
            s.problem.get_or_insert(why);
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

/// UCI's booleans (`config_get_bool`).
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
    match s.get("enabled").map(|v| (v, boolean(v))) {
        None | Some((_, Some(true))) => {}
        Some((_, Some(false))) => return Plan::Disabled,
        Some((v, None)) => return Plan::Broken(format!("enabled is {v:?}, not 0 or 1")),
    }
    match instance(t, run_dir) {
        Ok(i) => Plan::Run(i),
        Err(why) => Plan::Broken(why),
    }
}

/// Option `name` of `s`, which must be one word if it is there.
fn one_word<'a>(s: &'a Section, name: &str) -> Result<Option<&'a str>, String> {
    match s.get(name) {
        Some(v) if v.is_empty() || v.chars().any(char::is_whitespace) => {
            Err(format!("{name} is {v:?}, not one word"))
        }
        other => Ok(other),
    }
}

fn instance(t: &Tunnel, run_dir: &Path) -> Result<Instance, String> {
    let s = t.section;
    let ssh =
        split_command(s.get("ssh").unwrap_or_default()).map_err(|why| format!("ssh: {why}"))?;
    if ssh.is_empty() {
        return Err("the ssh option is needed (ssh's arguments)".into());
    }
    let mut command = vec![AUTOSSH.to_string()];
    let localhost = one_word(s, "localhost")?.unwrap_or("localhost");
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
    if let Some(proxy) = s.get("dropbearproxy").filter(|v| !v.is_empty()) {
        command.extend(["-J".into(), proxy.to_string()]);
    }
    command.extend(ssh);

    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: &str| env.push((key.to_string(), value.to_string()));
    let monitor = s.get("monitorport").unwrap_or("20000");
    if !number(monitor, 65534, false) {
        return Err(format!(
            "monitorport is {monitor:?}, not a port (0 for none)"
        ));
    }
    set("AUTOSSH_PORT", monitor);
    // (option, variable, default, largest, may be negative)
    let numbers: [(&str, &str, Option<&str>, u64, bool); 6] = [
        ("poll", "AUTOSSH_POLL", Some("600"), u32::MAX as u64, false),
        (
            "gatetime",
            "AUTOSSH_GATETIME",
            Some("0"),
            u32::MAX as u64,
            false,
        ),
        (
            "first_poll",
            "AUTOSSH_FIRST_POLL",
            None,
            u32::MAX as u64,
            false,
        ),
        ("loglevel", "AUTOSSH_LOGLEVEL", None, 7, false),
        (
            "maxlifetime",
            "AUTOSSH_MAXLIFETIME",
            None,
            u32::MAX as u64,
            false,
        ),
        ("maxstart", "AUTOSSH_MAXSTART", None, i32::MAX as u64, true),
    ];
    for (option, var, default, max, negative) in numbers {
        let Some(value) = s.get(option).filter(|v| !v.is_empty()).or(default) else {
            continue;
        };
        if !number(value, max, negative) {
            return Err(format!("{option} is {value:?}, not a number"));
        }
        set(var, value);
    }
    for (option, var) in [
        ("logfile", "AUTOSSH_LOGFILE"),
        ("message", "AUTOSSH_MESSAGE"),
        ("path", "AUTOSSH_PATH"),
        ("pidfile", "AUTOSSH_PIDFILE"),
    ] {
        if let Some(value) = s.get(option).filter(|v| !v.is_empty()) {
            set(var, value);
        }
    }
    match s.get("ntservice").map(|v| (v, boolean(v))) {
        Some((_, Some(true))) => set("AUTOSSH_NTSERVICE", "yes"),
        None | Some((_, Some(false))) => {}
        Some((v, None)) => return Err(format!("ntservice is {v:?}, not 0 or 1")),
    }
    let state = run_dir.join(format!("{}.state", t.name));
    set("AUTOSSH_STATEFILE", &state.to_string_lossy());
    Ok(Instance {
        name: t.name.clone(),
        command,
        env,
        pidfile: s
            .get("pidfile")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
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
    let uci = match read(file) {
        Ok(u) => u,
        Err(why) => {
            eprintln!("autossh-tunnels: {why}");
            return 1;
        }
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
    if let Some(name) = only.filter(|_| plans.is_empty()) {
        eprintln!("autossh-tunnels: {}: no tunnel {name}", file.display());
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

fn read(file: &Path) -> Result<Uci, String> {
    let text = crate::files::read_file(file, crate::files::FILE_MAX, true)
        .map_err(|e| format!("{}: {e}", crate::files::shown_path(file)))?;
    Ok(parse(&String::from_utf8_lossy(&text)))
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
    let uci = match read(file) {
        Ok(u) => u,
        Err(why) => {
            eprintln!("autossh-tunnels: {why}");
            return 1;
        }
    };
    let plans = plans(&uci, run_dir, only);
    if let Some(name) = only.filter(|_| plans.is_empty()) {
        eprintln!("autossh-tunnels: {}: no tunnel {name}", file.display());
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
        assert_eq!(w("option a b#c").unwrap(), ["option", "a", "b#c"]);
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
        let uci = parse(SAMPLE);
        assert!(uci.problems.is_empty());
        let p = plans(&uci, Path::new("/run"), None);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0.name, "@autossh[0]");
        assert_eq!(p[0].1, Plan::Disabled);
        // Enabled, it runs as OpenWrt's script runs it, and keeps state.
        let uci = parse(&SAMPLE.replace("enabled\t'0'", "enabled\t'1'"));
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
            "package autossh\n\
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
        let uci = parse(text);
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
        let uci = parse("option ssh x\nconfig autossh\noption ssh u@h\n");
        assert_eq!(uci.problems, ["line 1: an option before any section"]);
        assert!(matches!(
            plans(&uci, Path::new("/r"), None)[0].1,
            Plan::Run(_)
        ));
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
