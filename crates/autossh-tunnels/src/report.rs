//! What `status`, `status --json` and `metrics` print: pure functions of
//! what was found (the list, the processes, the state files) and a clock.

use autossh::staterecord::Record;
use serde_json::{json, Value};

use crate::list::{shown, Problem};

/// One tunnel as found: listed, or running though no longer listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub listed: bool,
    /// Listed as `disabled`: kept, not run.
    pub disabled: bool,
    /// The autossh that runs it, believed (see `Runner::belief`).
    pub pid: Option<i32>,
    /// Why it cannot be told whether an autossh of it runs (another user,
    /// who cannot see enough of the process), where that is so.
    pub unknown: Option<String>,
    /// Its state file, where there is one.
    pub record: Option<Record>,
}

/// Every state a tunnel can be shown in: autossh's own, `running` for an
/// autossh that keeps no state file, `stopped`, `disabled`, and `unknown`
/// where this user cannot tell whether it runs.
pub const STATES: [&str; 10] = [
    "starting", "up", "down", "waiting", "stopping", "exited", "running", "stopped", "disabled",
    "unknown",
];

impl Seen {
    pub fn running(&self) -> bool {
        self.pid.is_some()
    }

    /// The state word: the state file's while autossh runs (`running` for
    /// one that keeps none), else `exited` where it said so, else `stopped`.
    pub fn state(&self) -> &str {
        let said = self.record.as_ref().and_then(|r| r.state.as_deref());
        if self.unknown.is_some() {
            return "unknown";
        }
        match (self.pid, said) {
            (Some(_), Some(state)) => state,
            (Some(_), None) => "running",
            (None, _) if self.disabled => "disabled",
            (None, Some("exited")) => "exited",
            (None, _) => "stopped",
        }
    }

    fn reason(&self) -> Option<String> {
        if let Some(why) = &self.unknown {
            return Some(why.clone());
        }
        let record = self.record.as_ref()?;
        record.reason.as_deref().map(|r| shown(r, 300))
    }

    /// The line of `status`; `when` shows a Unix time as the clock reads.
    pub fn line(&self, when: &dyn Fn(i64) -> String) -> String {
        let r = self.record.clone().unwrap_or_default();
        let since = r
            .since
            .map(|t| format!(" since {}", when(t)))
            .unwrap_or_default();
        let because = self.reason().map(|r| format!(": {r}")).unwrap_or_default();
        let mut line = match self.state() {
            "running" => format!("running (pid {})", self.pid.unwrap_or_default()),
            "stopped" => "stopped".to_string(),
            "disabled" => "disabled".to_string(),
            "up" => {
                let test = match r.last_test {
                    Some((at, true)) => format!(" (tested {})", when(at)),
                    Some((at, false)) => format!(" (test failed {})", when(at)),
                    None => String::new(),
                };
                format!("up{since}{test}")
            }
            "waiting" => {
                let retry = r
                    .next_start
                    .map(|t| format!(" (retry {})", when(t)))
                    .unwrap_or_default();
                format!("waiting{retry}{because}")
            }
            "exited" => {
                let status = r
                    .exit_status
                    .map(|s| format!(" (status {s})"))
                    .unwrap_or_default();
                let at = r
                    .since
                    .map(|t| format!(" at {}", when(t)))
                    .unwrap_or_default();
                format!("exited{status}{at}{because}")
            }
            "stopping" => "stopping".to_string(),
            "unknown" => format!("unknown{because}"),
            other => format!("{}{since}{because}", shown(other.as_bytes(), 20)),
        };
        if !self.listed {
            line.push_str(" (no longer in the list: reload stops it)");
        }
        format!("{}: {line}", self.name)
    }
}

/// `status`'s exit status over the listed tunnels that are not disabled
/// (DSM's codes): 0 when
/// every one runs, 3 when none does (or none is listed), else 1; 4 (the
/// LSB's "unknown") when this user cannot tell for one of them.
pub fn exit_status(seen: &[Seen]) -> i32 {
    let listed: Vec<&Seen> = seen.iter().filter(|s| s.listed && !s.disabled).collect();
    if listed.iter().any(|s| s.unknown.is_some()) {
        return 4;
    }
    let running = listed.iter().filter(|s| s.running()).count();
    if running == 0 {
        3
    } else if running == listed.len() {
        0
    } else {
        1
    }
}

/// `status --json`: the list's path, why it could not be read (or null), its
/// wrong lines, and every tunnel with its state file's fields. Text that is
/// not UTF-8 is shown with U+FFFD.
pub fn json(
    list: &[u8],
    error: Option<&str>,
    problems: &[Problem],
    seen: &[Seen],
    when: &dyn Fn(i64) -> String,
) -> Value {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let problems: Vec<Value> = problems
        .iter()
        .map(|p| json!({"line": p.line, "message": p.text}))
        .collect();
    let tunnels: Vec<Value> = seen
        .iter()
        .map(|s| {
            let r = s.record.clone().unwrap_or_default();
            json!({
                "name": s.name,
                "listed": s.listed,
                "enabled": !s.disabled,
                // Not known, where it cannot be told.
                "running": if s.unknown.is_some() { None } else { Some(s.running()) },
                "pid": s.pid,
                "state": s.state(),
                "since": r.since,
                "ssh_pid": r.ssh_pid.filter(|_| s.running()),
                "starts": r.starts.unwrap_or(0),
                "last_test": r.last_test.map(|t| t.0),
                "last_test_passed": r.last_test.map(|t| t.1),
                "reason": r.reason.as_deref().map(text),
                "message": r.message.as_deref().map(text),
                "next_start": r.next_start.filter(|_| s.running()),
                "exit_status": r.exit_status,
                "text": s.line(when),
            })
        })
        .collect();
    json!({
        "list": text(list),
        "error": error,
        "problems": problems,
        "tunnels": tunnels,
    })
}

/// A label value as the exposition format writes it: `\`, `"` and line
/// feeds escaped.
pub fn label_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Prometheus' text format, for node exporter's textfile collector.
pub fn metrics(problems: usize, seen: &[Seen]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
    };
    // A listed tunnel's name needs no escaping, but one that runs unlisted
    // is named after its pid file, which may hold anything.
    let label = |s: &Seen| format!("tunnel=\"{}\"", label_value(&s.name));
    family(
        "autossh_tunnel_up",
        "gauge",
        "1 while the tunnel is up: ssh runs and its last test passed.",
        seen.iter()
            .map(|s| (label(s), u8::from(s.state() == "up").to_string()))
            .collect(),
    );
    family(
        "autossh_tunnel_state",
        "gauge",
        "1 for the state the tunnel is in, 0 for the others.",
        seen.iter()
            .flat_map(|s| {
                STATES.iter().map(move |state| {
                    (
                        format!("{},state=\"{state}\"", label(s)),
                        u8::from(s.state() == *state).to_string(),
                    )
                })
            })
            .collect(),
    );
    family(
        "autossh_tunnel_listed",
        "gauge",
        "1 while the tunnel is in the tunnel list, 0 when it runs though no longer listed.",
        seen.iter()
            .map(|s| (label(s), u8::from(s.listed).to_string()))
            .collect(),
    );
    let record = |s: &Seen| s.record.clone().filter(|_| s.running()).unwrap_or_default();
    family(
        "autossh_tunnel_starts_total",
        "counter",
        "ssh starts by the tunnel's autossh since it started.",
        seen.iter()
            .map(|s| (label(s), record(s).starts.unwrap_or(0).to_string()))
            .collect(),
    );
    family(
        "autossh_tunnel_since_timestamp_seconds",
        "gauge",
        "Unix time the tunnel came into its state.",
        seen.iter()
            .filter_map(|s| Some((label(s), record(s).since?.to_string())))
            .collect(),
    );
    family(
        "autossh_tunnel_last_test_timestamp_seconds",
        "gauge",
        "Unix time of the tunnel's last connection test.",
        seen.iter()
            .filter_map(|s| Some((label(s), record(s).last_test?.0.to_string())))
            .collect(),
    );
    family(
        "autossh_tunnel_last_test_passed",
        "gauge",
        "1 when the tunnel's last connection test passed, 0 when it failed.",
        seen.iter()
            .filter_map(|s| Some((label(s), u8::from(record(s).last_test?.1).to_string())))
            .collect(),
    );
    out.push_str(&format!(
        "# HELP autossh_tunnels_list_problems Lines of the tunnel list that are wrong.\n\
         # TYPE autossh_tunnels_list_problems gauge\n\
         autossh_tunnels_list_problems {problems}\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("plain-name.1"), "plain-name.1");
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    fn when(t: i64) -> String {
        format!("@{t}")
    }

    fn seen(name: &str, pid: Option<i32>, text: &str) -> Seen {
        Seen {
            name: name.into(),
            listed: true,
            disabled: false,
            pid,
            unknown: None,
            record: (!text.is_empty()).then(|| autossh::staterecord::parse(text.as_bytes())),
        }
    }

    #[test]
    fn status_lines() {
        let up = seen(
            "relay",
            Some(10),
            "state=up\nsince=100\npid=10\nssh_pid=11\nstarts=1\nlast_test=160 passed\n",
        );
        assert_eq!(up.line(&when), "relay: up since @100 (tested @160)");
        let waiting = seen(
            "home",
            Some(12),
            "state=waiting\nsince=100\nreason=root@relay: Permission denied (publickey).\nnext_start=200\n",
        );
        assert_eq!(
            waiting.line(&when),
            "home: waiting (retry @200): root@relay: Permission denied (publickey)."
        );
        let down = seen(
            "d",
            Some(3),
            "state=down\nsince=5\nreason=port down\\x0a!\n",
        );
        assert_eq!(down.line(&when), "d: down since @5: port down\\x0a!");
        // A state file left behind by an autossh that is gone says nothing.
        let stale = seen("s", None, "state=up\nsince=5\n");
        assert_eq!(stale.line(&when), "s: stopped");
        let exited = seen(
            "e",
            None,
            "state=exited\nsince=9\nreason=bad\nexit_status=1\n",
        );
        assert_eq!(exited.line(&when), "e: exited (status 1) at @9: bad");
        assert_eq!(seen("o", Some(4), "").line(&when), "o: running (pid 4)");
        let gone = Seen {
            listed: false,
            ..up.clone()
        };
        assert!(gone
            .line(&when)
            .ends_with("(no longer in the list: reload stops it)"));
        assert_eq!(exit_status(&[up.clone(), waiting.clone()]), 0);
        assert_eq!(exit_status(&[up.clone(), stale.clone()]), 1);
        assert_eq!(exit_status(&[stale.clone(), exited]), 3);
        assert_eq!(exit_status(&[]), 3);
        let off = Seen {
            disabled: true,
            ..seen("off", None, "")
        };
        assert_eq!(off.line(&when), "off: disabled");
        assert_eq!(exit_status(&[up.clone(), off]), 0);
        assert_eq!(exit_status(&[stale, gone]), 3);
        let hidden = Seen {
            unknown: Some("this user cannot see its process".into()),
            ..seen("h", None, "state=up\nsince=5\n")
        };
        assert_eq!(hidden.state(), "unknown");
        assert_eq!(
            hidden.line(&when),
            "h: unknown: this user cannot see its process"
        );
        assert_eq!(exit_status(&[up.clone(), hidden.clone()]), 4);
        let j = json(b"l", None, &[], &[hidden], &when);
        assert_eq!(j["tunnels"][0]["running"], Value::Null);
        assert_eq!(j["tunnels"][0]["state"], "unknown");
    }

    #[test]
    fn json_and_metrics() {
        let up = seen(
            "relay",
            Some(10),
            "state=up\nsince=100\nssh_pid=11\nstarts=2\nlast_test=160 passed\n",
        );
        let problems = [Problem {
            line: 3,
            text: "x".into(),
        }];
        let j = json(b"/l", None, &problems, std::slice::from_ref(&up), &when);
        assert_eq!(
            j,
            json!({
                "list": "/l", "error": null, "problems": [{"line": 3, "message": "x"}],
                "tunnels": [{
                    "name": "relay", "listed": true, "enabled": true, "running": true,
                    "pid": 10, "state": "up", "since": 100, "ssh_pid": 11, "starts": 2,
                    "last_test": 160, "last_test_passed": true, "reason": null,
                    "message": null, "next_start": null, "exit_status": null,
                    "text": "relay: up since @100 (tested @160)"
                }]
            })
        );
        // Text that is not UTF-8, and any control byte, comes out as JSON.
        let odd = Seen {
            record: Some(autossh::staterecord::parse(
                b"state=down\nreason=a\"b\\\\c\\x01\xff\n",
            )),
            ..seen("o", Some(5), "")
        };
        let text = json(b"/\xff", None, &[], &[odd], &when).to_string();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["tunnels"][0]["reason"], "a\"b\\c\u{1}\u{fffd}");
        assert_eq!(back["list"], "/\u{fffd}");
        let m = metrics(1, &[up, seen("off", None, "")]);
        for line in [
            "autossh_tunnel_up{tunnel=\"relay\"} 1\n",
            "autossh_tunnel_up{tunnel=\"off\"} 0\n",
            "autossh_tunnel_state{tunnel=\"relay\",state=\"up\"} 1\n",
            "autossh_tunnel_state{tunnel=\"off\",state=\"stopped\"} 1\n",
            "autossh_tunnel_state{tunnel=\"off\",state=\"up\"} 0\n",
            "autossh_tunnel_starts_total{tunnel=\"relay\"} 2\n",
            "autossh_tunnel_last_test_timestamp_seconds{tunnel=\"relay\"} 160\n",
            "autossh_tunnel_last_test_passed{tunnel=\"relay\"} 1\n",
            "autossh_tunnels_list_problems 1\n",
        ] {
            assert!(m.contains(line), "{line} in {m}");
        }
        assert!(!m.contains("last_test_timestamp_seconds{tunnel=\"off\"}"));
    }
}
