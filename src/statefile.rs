//! AUTOSSH_STATEFILE: what autossh knows of its tunnel, kept in a file at
//! every change and at no other time (a change of state, of its reason, and
//! the outcome of each test), for scripts, the tunnel-list program and the
//! NAS's user interface to read.
//!
//! The format is an interface: one `key=value` per line, every key always
//! present, in this order: `state` (`starting`, `up`, `down`, `waiting`,
//! `stopping`, `exited`), `since` (Unix time it came to this state), `pid`,
//! `ssh_pid`, `starts`, `last_test` (Unix time, a space, `passed` or
//! `failed`), `reason` (why it is not up: ssh's last line where ssh's end is
//! the reason and it said something, else autossh's own log line), `message`
//! (the last line ssh wrote on its stderr), `next_start` (Unix time, while
//! waiting), `exit_status` (once exited). A value that is not known is empty.
//! Values are one line: a backslash is written `\\`, a control byte (and
//! DEL) `\xNN`.
//!
//! The file is replaced whole: written to a temporary file in the same
//! folder (created new, never through a symlink), then renamed over the old
//! one, so a reader sees the old state or the new, never part of one. The
//! temporary's name is drawn anew at every write (`NAME.RANDOM.tmp`), so
//! that another user of a folder others can write (a sticky `/tmp`) cannot
//! take it first; a name that is taken is passed over for another.
//! Readable by others, like a pid file.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::attempt::Failure;
use crate::machine::{State, Status};
use crate::messages::{self, Note};
use crate::staterecord::escape;

/// The file, replaced through a temporary sibling.
pub struct StateFile {
    path: PathBuf,
}

/// What the event loop knows besides the decisions' [`Status`], in the
/// file's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Unix time of the change.
    pub since: i64,
    pub pid: u32,
    /// Unix time and outcome of the last test.
    pub last_test: Option<(i64, bool)>,
    /// The last line ssh wrote on its stderr.
    pub message: Option<Vec<u8>>,
    /// Whether the ssh whose end is the reason said something at its end.
    pub ssh_said_why: bool,
    /// Unix time of the next start, while waiting.
    pub next_start: Option<i64>,
    /// What failed in the last test that failed.
    pub failure: Option<Failure>,
}

fn ended_note(note: Note) -> bool {
    matches!(
        note,
        Note::EndedBySignal(_)
            | Note::EndedRestarting(_)
            | Note::EndedExiting(_)
            | Note::EndedPrematurely(_)
    )
}

/// The file's text for `status` and `facts`; `name` and `program` are for
/// the words of autossh's own lines.
pub fn render(status: &Status, facts: &Facts, name: &str, program: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut line = |key: &str, value: &[u8]| {
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(&escape(value));
        out.push(b'\n');
    };
    line("state", status.state.word().as_bytes());
    line("since", facts.since.to_string().as_bytes());
    line("pid", facts.pid.to_string().as_bytes());
    let ssh_pid = status.ssh_pid.map(|p| p.to_string()).unwrap_or_default();
    line("ssh_pid", ssh_pid.as_bytes());
    line("starts", status.starts.to_string().as_bytes());
    let last_test = facts
        .last_test
        .map(|(at, passed)| format!("{at} {}", if passed { "passed" } else { "failed" }))
        .unwrap_or_default();
    line("last_test", last_test.as_bytes());
    let reason = match (status.reason, &facts.message) {
        (Some(note), Some(said)) if ended_note(note) && facts.ssh_said_why => said.clone(),
        // A test's failure says what failed.
        (Some(Note::PortDown), _) if facts.failure.is_some() => {
            let failure = facts
                .failure
                .as_ref()
                .map(messages::failure)
                .unwrap_or_default();
            messages::raw(&format!(
                "{}: {failure}",
                Note::PortDown.text(name, program)
            ))
        }
        (Some(note), _) => messages::raw(&note.text(name, program)),
        (None, _) => Vec::new(),
    };
    line("reason", &reason);
    line("message", facts.message.as_deref().unwrap_or_default());
    let next = facts.next_start.map(|t| t.to_string()).unwrap_or_default();
    line("next_start", next.as_bytes());
    let exit = match (status.state, status.exit_code) {
        (State::Exited, Some(code)) => code.to_string(),
        _ => String::new(),
    };
    line("exit_status", exit.as_bytes());
    out
}

/// The text before anything has happened: starting, nothing known yet.
pub fn starting(since: i64, pid: u32) -> Vec<u8> {
    let status = Status {
        state: State::Starting,
        reason: None,
        ssh_pid: None,
        starts: 0,
        next_start: None,
        exit_code: None,
    };
    let facts = Facts {
        since,
        pid,
        ..Facts::default()
    };
    render(&status, &facts, "", b"")
}

impl StateFile {
    /// For the file at `path` (made absolute by the caller).
    pub fn new(path: PathBuf) -> StateFile {
        StateFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with `text`, whole.
    pub fn write(&self, text: &[u8]) -> io::Result<()> {
        let mut taken = None;
        // A name taken eight times running is no accident: the error says so.
        for _ in 0..8 {
            let mut name = self.path.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".{:016x}.tmp", crate::random::u64()));
            let temporary = self.path.with_file_name(name);
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&temporary);
            let mut file = match file {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    taken = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let written = file
                .write_all(text)
                .and_then(|()| std::fs::rename(&temporary, &self.path));
            if written.is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
            return written;
        }
        Err(taken.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
    }
}

/// The message of SPEC §3's kind for a state file that cannot be written.
pub fn cannot_write(path: &Path) -> String {
    format!(
        "cannot write state file \"{}\"",
        messages::shown(OsStr::as_bytes(path.as_os_str()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staterecord::{parse, unescape, Record};
    use std::time::Duration;

    #[test]
    fn read_back_as_written() {
        let status = Status {
            state: State::Waiting,
            reason: Some(Note::EndedRestarting(255)),
            ssh_pid: Some(9),
            starts: 7,
            next_start: None,
            exit_code: None,
        };
        let facts = Facts {
            since: 1_764_580_000,
            pid: 42,
            last_test: Some((1_764_579_990, true)),
            message: Some(b"a\\b\nc\xff".to_vec()),
            ssh_said_why: true,
            next_start: Some(1_764_580_008),
            failure: None,
        };
        let record = parse(&render(&status, &facts, "autossh", b"ssh"));
        assert_eq!(
            record,
            Record {
                state: Some("waiting".into()),
                since: Some(1_764_580_000),
                pid: Some(42),
                ssh_pid: Some(9),
                starts: Some(7),
                last_test: Some((1_764_579_990, true)),
                reason: Some(b"a\\b\nc\xff".to_vec()),
                message: Some(b"a\\b\nc\xff".to_vec()),
                next_start: Some(1_764_580_008),
                exit_status: None,
            }
        );
        assert_eq!(unescape(b"\\x4\\xzz\\"), b"\\x4\\xzz\\");
        assert_eq!(parse(b"junk\nstate\n=x\nstarts=-1\n"), Record::default());
    }

    #[test]
    fn values_stay_on_one_line() {
        assert_eq!(escape(b"a\\b\nc\r\x7f\xff"), b"a\\\\b\\x0ac\\x0d\\x7f\xff");
    }

    #[test]
    fn the_format() {
        let status = Status {
            state: State::Waiting,
            reason: Some(Note::EndedRestarting(255)),
            ssh_pid: None,
            starts: 7,
            next_start: Some(Duration::from_secs(5)),
            exit_code: None,
        };
        let facts = Facts {
            since: 1_764_580_000,
            pid: 42,
            last_test: Some((1_764_579_990, false)),
            message: Some(b"me@relay: Permission denied (publickey).".to_vec()),
            ssh_said_why: true,
            next_start: Some(1_764_580_008),
            failure: None,
        };
        let text = render(&status, &facts, "autossh", b"/usr/bin/ssh");
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "state=waiting\nsince=1764580000\npid=42\nssh_pid=\nstarts=7\n\
             last_test=1764579990 failed\nreason=me@relay: Permission denied (publickey).\n\
             message=me@relay: Permission denied (publickey).\nnext_start=1764580008\nexit_status=\n"
        );
        // Our own words where ssh said nothing, or the reason is not its end.
        let quiet = Facts {
            ssh_said_why: false,
            ..facts.clone()
        };
        let text = String::from_utf8(render(&status, &quiet, "autossh", b"ssh")).unwrap();
        assert!(text.contains("\nreason=ssh exited with error status 255; restarting ssh\n"));
        let down = Status {
            state: State::Down,
            reason: Some(Note::PortDown),
            ..status
        };
        let text = String::from_utf8(render(&down, &facts, "autossh", b"ssh")).unwrap();
        assert!(text.contains("\nreason=port down, restarting ssh\n"));
        // With what failed, where the test said.
        let refused = Facts {
            failure: Some(Failure::Connect {
                port: 20000,
                error: nix::errno::Errno::ECONNREFUSED,
            }),
            ..facts.clone()
        };
        let text = String::from_utf8(render(&down, &refused, "autossh", b"ssh")).unwrap();
        assert!(
            text.contains(
                "\nreason=port down, restarting ssh: 127.0.0.1:20000: Connection refused\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn written_whole_never_through_a_symlink() {
        let dir = std::env::temp_dir().join(format!("autossh-statefile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = StateFile::new(dir.join("t.state"));
        file.write(b"state=up\n").unwrap();
        assert_eq!(std::fs::read(dir.join("t.state")).unwrap(), b"state=up\n");
        // A symlink in the way is replaced, not followed.
        std::fs::write(dir.join("target"), "keep").unwrap();
        std::fs::remove_file(dir.join("t.state")).unwrap();
        std::os::unix::fs::symlink(dir.join("target"), dir.join("t.state")).unwrap();
        file.write(b"state=down\n").unwrap();
        assert_eq!(std::fs::read(dir.join("target")).unwrap(), b"keep");
        assert_eq!(std::fs::read(dir.join("t.state")).unwrap(), b"state=down\n");
        // Nothing is left beside it.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
