//! `autossh-tunnels cgi`: the server side of the DSM app, one request per
//! run, as a CGI program (the package's `ui/index.cgi` only sets the
//! package's settings and runs it: no shell reads the request).
//!
//! Every request is checked: the DSM session through DSM's own
//! `authenticate.cgi` (run with the request's cookie and SynoToken), and the
//! user must be a member of `administrators` (401 and 403 otherwise, with
//! nothing done). Without a SynoToken the page is a small one that fetches
//! the session's token from `/webman/login.cgi` and loads again with it.
//! Reads are GETs (`?action=list`, `?action=key`); writes are POSTs with a
//! JSON body and the token in the `X-Syno-Token` header, which a cross-site
//! form cannot send (`?action=save`, `delete`, `restart`). Changes are made
//! under the run folder's lock, the list is replaced atomically, and the
//! program's own `reload` (or `restart NAME`) applies them, touching only
//! the tunnel that changed. JSON answers are not cached.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::edit;
use super::form::Form;
use super::json::{self, Value};
use super::list;
use super::report::{self, json_string};
use super::{Runner, Settings};

/// The largest body read.
pub const BODY_MAX: usize = 64 * 1024;
const AUTH_WAIT: Duration = Duration::from_secs(10);
const PAGE: &str = include_str!("page.html");

/// Where DSM's pieces are; the tests put stand-ins there.
#[derive(Debug, Clone)]
pub struct Dsm {
    pub authenticate: PathBuf,
    pub groups: PathBuf,
    pub public_key: Option<PathBuf>,
}

impl Dsm {
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<OsString>) -> Dsm {
        let path = |k: &str, default: &str| {
            env(k)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Dsm {
            authenticate: path(
                "AUTOSSH_DSM_AUTHENTICATE",
                "/usr/syno/synoman/webman/modules/authenticate.cgi",
            ),
            groups: path("AUTOSSH_DSM_GROUPS", "/etc/group"),
            public_key: env("AUTOSSH_PUBLIC_KEY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// An answer: status, type, body.
pub struct Answer {
    pub status: u16,
    pub kind: &'static str,
    pub body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, body: String) -> Answer {
        Answer {
            status,
            kind: "application/json",
            body: body.into_bytes(),
        }
    }

    fn error(status: u16, why: &str) -> Answer {
        Answer::json(
            status,
            format!("{{\"error\":{}}}\n", json_string(why.as_bytes())),
        )
    }

    /// The CGI response: header lines, a blank line, the body.
    pub fn bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            413 => "Payload Too Large",
            415 => "Unsupported Media Type",
            _ => "Internal Server Error",
        };
        let mut out = format!(
            "Status: {} {reason}\r\nContent-Type: {}; charset=utf-8\r\nCache-Control: no-store\r\n\
             X-Content-Type-Options: nosniff\r\nX-Frame-Options: SAMEORIGIN\r\n\r\n",
            self.status, self.kind
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// `%XX` and `+` of a query string.
fn unquote(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn query(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (unquote(k), unquote(v)),
            None => (unquote(p), String::new()),
        })
        .collect()
}

/// A SynoToken as DSM makes them: letters, digits, `. _ -`.
fn token_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Whether `user` is a member of `administrators` in a group file's text.
pub fn is_admin(groups: &str, user: &str) -> bool {
    groups.lines().any(|line| {
        let f: Vec<&str> = line.split(':').collect();
        f.len() >= 4 && f[0] == "administrators" && f[3].split(',').any(|m| m.trim() == user)
    })
}

/// The DSM user of the request's session, by DSM's authenticate.cgi: run
/// as a GET with stdin from /dev/null, the token in its query.
fn session_user(dsm: &Dsm, env: &dyn Fn(&str) -> Option<OsString>, token: &str) -> Option<String> {
    let mut c = Command::new(&dsm.authenticate);
    c.env("REQUEST_METHOD", "GET")
        .env("QUERY_STRING", format!("SynoToken={token}"))
        .env("HTTP_X_SYNO_TOKEN", token)
        .env_remove("CONTENT_LENGTH")
        .env_remove("CONTENT_TYPE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // The request's own variables, as DSM's CGI environment has them.
    for k in [
        "HTTP_COOKIE",
        "REMOTE_ADDR",
        "SERVER_ADDR",
        "SERVER_NAME",
        "HTTP_HOST",
    ] {
        match env(k) {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let mut child = c.spawn().ok()?;
    let mut out = child.stdout.take()?;
    let began = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if began.elapsed() < AUTH_WAIT => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    // DSM's answer counts only when it says so with its status too.
    if !status.success() {
        return None;
    }
    let mut said = Vec::new();
    let _ = (&mut out).take(4096).read_to_end(&mut said);
    let user = String::from_utf8(said).ok()?.trim().to_string();
    let good = !user.is_empty()
        && user.len() <= 128
        && !user.chars().any(|c| c.is_control() || c == ':' || c == ',');
    good.then_some(user)
}

/// Runs `work` with our stdout going into a buffer (what the runner tells,
/// which is not the HTTP answer), and gives back what it wrote.
fn captured(dir: &Path, work: impl FnOnce() -> i32) -> (i32, String) {
    let path = dir.join(format!(".cgi.{}.out", std::process::id()));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    let Ok(mut file) = file else {
        return (work(), String::new());
    };
    let _ = fs::remove_file(&path);
    let _ = std::io::stdout().flush();
    // Close-on-exec: no autossh started meanwhile may hold the answer's
    // pipe open (the web server would wait for its end).
    let saved =
        nix::fcntl::fcntl(std::io::stdout(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).map(|fd| {
            // SAFETY: fcntl just returned this new descriptor, owned by no one.
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        });
    let _ = nix::unistd::dup2_stdout(&file);
    let code = work();
    let _ = std::io::stdout().flush();
    if let Ok(saved) = saved {
        let _ = nix::unistd::dup2_stdout(&saved);
    }
    let mut text = String::new();
    use std::io::Seek;
    let _ = file.seek(std::io::SeekFrom::Start(0));
    let _ = (&mut file).take(64 * 1024).read_to_string(&mut text);
    (code, text)
}

/// Replaces the list with `text`, whole: through a temporary in its folder
/// (its name drawn anew, so that no one can take it first), renamed over
/// it, with the old one's permissions. A list that is a symlink (into a
/// shared folder edited over the network) stays one: its target is what is
/// replaced, in the target's folder.
fn write_list(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let target;
    let path = if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        target = fs::canonicalize(path)?;
        target.as_path()
    } else {
        path
    };
    let mode = fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o777);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{:016x}.tmp", crate::random::u64()));
    let temporary = path.with_file_name(name);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)
        .and_then(|mut f| {
            f.write_all(text)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

fn form_json(f: &Form) -> String {
    let forwards = |v: &[super::form::Forward]| {
        v.iter()
            .map(|f| {
                format!(
                    "{{\"listen\":{},\"host\":{},\"port\":{}}}",
                    f.listen,
                    json_string(f.host.as_bytes()),
                    f.port
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{{\"name\":{},\"host\":{},\"port\":{},\"user\":{},\"remote\":[{}],\"local\":[{}],\"enabled\":{}}}",
        json_string(f.name.as_bytes()),
        json_string(f.host.as_bytes()),
        f.port,
        json_string(f.user.as_bytes()),
        forwards(&f.remote),
        forwards(&f.local),
        f.enabled
    )
}

fn args_text(t: &list::Tunnel) -> (Vec<String>, String) {
    let words: Vec<String> = t
        .args
        .iter()
        .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned())
        .collect();
    let shown = list::shown(words.join(" ").as_bytes(), 400);
    (words, shown)
}

/// Answers one request. `body` is what was read from stdin (at most
/// BODY_MAX, or None when it was longer).
pub fn answer(
    settings: &Settings,
    dsm: &Dsm,
    env: &dyn Fn(&str) -> Option<OsString>,
    body: Option<Vec<u8>>,
) -> Answer {
    let var = |k: &str| env(k).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let method = var("REQUEST_METHOD").unwrap_or_default();
    let q = query(&var("QUERY_STRING").unwrap_or_default());
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let action = get("action").unwrap_or_default();
    let header_token = var("HTTP_X_SYNO_TOKEN").filter(|t| token_ok(t));
    let token = header_token
        .clone()
        .or_else(|| get("SynoToken").filter(|t| token_ok(t)));
    let page = action.is_empty() && method == "GET";

    let Some(token) = token else {
        if page {
            return Answer {
                status: 200,
                kind: "text/html",
                body: BOOTSTRAP.as_bytes().to_vec(),
            };
        }
        return Answer::error(401, "no SynoToken: open the app from DSM");
    };
    let Some(user) = session_user(dsm, env, &token) else {
        return Answer::error(401, "not logged in to DSM");
    };
    let groups = fs::read_to_string(&dsm.groups).unwrap_or_default();
    if !is_admin(&groups, &user) {
        return Answer::error(403, "only members of administrators may use this app");
    }
    if page {
        return Answer {
            status: 200,
            kind: "text/html",
            body: PAGE.as_bytes().to_vec(),
        };
    }
    let runner = Runner::new(settings.clone());
    match (method.as_str(), action.as_str()) {
        ("GET", "list") => list_answer(&runner),
        ("GET", "key") => {
            let key = dsm
                .public_key
                .as_ref()
                .and_then(|p| fs::read_to_string(p).ok())
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty() && k.len() < 16 * 1024);
            match key {
                Some(key) => Answer::json(
                    200,
                    format!("{{\"key\":{}}}\n", json_string(key.as_bytes())),
                ),
                None => Answer::error(404, "the package has no public key yet"),
            }
        }
        ("POST", "save" | "delete" | "restart") => {
            if header_token.is_none() {
                return Answer::error(403, "a change needs the X-Syno-Token header");
            }
            let json_type = var("CONTENT_TYPE").is_some_and(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == "application/json")
            });
            if !json_type {
                return Answer::error(415, "a change is a JSON body (application/json)");
            }
            let Some(body) = body else {
                return Answer::error(413, "the body is too large");
            };
            let value = match json::parse(&body) {
                Ok(v) => v,
                Err(why) => return Answer::error(400, &format!("not JSON: {why}")),
            };
            change(runner, &action, value)
        }
        (_, "list" | "key" | "save" | "delete" | "restart") => Answer::error(405, "wrong method"),
        _ => Answer::error(404, "no such action"),
    }
}

fn list_answer(runner: &Runner) -> Answer {
    let list = runner.read_list();
    let seen = runner.seen(list.as_ref().ok());
    let (error, problems) = match &list {
        Ok(l) => (None, l.problems.as_slice()),
        Err(why) => (Some(why.as_str()), &[][..]),
    };
    let status = report::json(
        runner.s.list.as_os_str().as_bytes(),
        error,
        problems,
        &seen,
        &super::when,
    );
    let mut forms = Vec::new();
    if let Ok(l) = &list {
        for (t, enabled) in l
            .tunnels
            .iter()
            .map(|t| (t, true))
            .chain(l.off.iter().map(|t| (t, false)))
        {
            let (words, shown) = args_text(t);
            let form = Form::from_args(&t.name, &words, enabled)
                .map_or_else(|| "null".to_string(), |f| form_json(&f));
            forms.push(format!(
                "{}:{{\"form\":{form},\"args\":{}}}",
                json_string(t.name.as_bytes()),
                json_string(shown.as_bytes())
            ));
        }
    }
    Answer::json(
        200,
        format!(
            "{{\"status\":{},\"tunnels\":{{{}}}}}\n",
            status.trim_end(),
            forms.join(",")
        ),
    )
}

fn change(runner: Runner, action: &str, value: Value) -> Answer {
    let Value::Object(mut pairs) = value else {
        return Answer::error(400, "the body is not a JSON object");
    };
    let create = match pairs.iter().position(|(k, _)| k == "create") {
        Some(i) => matches!(pairs.remove(i).1, Value::Bool(true)),
        None => false,
    };
    let value = Value::Object(pairs);
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if list::check_name(name.as_bytes()).is_err() {
        return Answer::error(400, "not a tunnel name");
    }
    let form = if action == "save" {
        match Form::from_json(&value) {
            Ok(f) => Some(f),
            Err(errors) => {
                let fields: Vec<String> = errors
                    .iter()
                    .map(|(f, why)| {
                        format!(
                            "{}:{}",
                            json_string(f.as_bytes()),
                            json_string(why.as_bytes())
                        )
                    })
                    .collect();
                return Answer::json(
                    400,
                    format!(
                        "{{\"error\":\"some fields are not valid\",\"fields\":{{{}}}}}\n",
                        fields.join(",")
                    ),
                );
            }
        }
    } else if value.get("name").is_some() && matches!(&value, Value::Object(p) if p.len() == 1) {
        None
    } else {
        return Answer::error(400, "the body is {\"name\": NAME}");
    };
    let list_path = runner.s.list.clone();
    let mut result: Result<(), (u16, String)> = Ok(());
    let (_, told) = captured(&std::env::temp_dir(), || {
        runner.locked(|r| {
            let text = match super::read_file(&list_path, super::LIST_MAX, true) {
                Ok(t) => t,
                Err(e) => {
                    result = Err((500, format!("cannot read the tunnel list: {}", super::os_error(&e))));
                    return 1;
                }
            };
            let listed = list::parse(&text);
            let exists = listed.get(&name).or_else(|| listed.disabled(&name));
            let new_text = match (action, &form) {
                ("save", Some(form)) => {
                    match (create, exists) {
                        (true, Some(_)) => {
                            result = Err((409, format!("a tunnel {name} is already in the list")));
                            return 1;
                        }
                        (false, None) => {
                            result = Err((404, format!("no tunnel {name} in the list")));
                            return 1;
                        }
                        (false, Some(t)) => {
                            let (words, _) = args_text(t);
                            if Form::from_args(&t.name, &words, true).is_none() {
                                result = Err((409, format!(
                                    "tunnel {name} was written by hand; change it in the tunnel list"
                                )));
                                return 1;
                            }
                        }
                        (true, None) => {}
                    }
                    edit::put(&text, &name, &form.line())
                }
                ("delete", _) => {
                    if exists.is_none() {
                        result = Err((404, format!("no tunnel {name} in the list")));
                        return 1;
                    }
                    edit::remove(&text, &name)
                }
                _ => {
                    if listed.get(&name).is_none() {
                        result = Err((404, format!("no running tunnel {name} in the list")));
                        return 1;
                    }
                    return r.restart(&name);
                }
            };
            if let Err(e) = write_list(&list_path, &new_text) {
                result = Err((500, format!("cannot write the tunnel list: {}", super::os_error(&e))));
                return 1;
            }
            r.reload()
        })
    });
    match result {
        Ok(()) => Answer::json(
            200,
            format!(
                "{{\"ok\":true,\"told\":{}}}\n",
                json_string(told.as_bytes())
            ),
        ),
        Err((status, why)) => Answer::error(status, &why),
    }
}

/// The page without a token: it asks DSM for the session's SynoToken
/// (same origin) and loads again with it.
const BOOTSTRAP: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Tunnels</title></head>
<body><p id="m">Opening Tunnels...</p>
<script>
fetch('/webman/login.cgi', {credentials: 'same-origin'}).then(function (r) { return r.json(); }).then(function (j) {
  if (!j.SynoToken) { throw new Error('no token'); }
  location.replace(location.pathname + '?SynoToken=' + encodeURIComponent(j.SynoToken));
}).catch(function () {
  document.getElementById('m').textContent = 'Log in to DSM first, then open Tunnels from its main menu.';
});
</script></body></html>
"#;

/// Runs the CGI: reads the request from `env` and stdin, writes the answer
/// on stdout.
pub fn main(settings: Settings, env: &dyn Fn(&str) -> Option<OsString>) -> i32 {
    let dsm = Dsm::from_lookup(env);
    let length = env("CONTENT_LENGTH")
        .and_then(|v| v.to_str().and_then(|v| v.trim().parse::<usize>().ok()))
        .unwrap_or(0);
    let body = if length > BODY_MAX {
        None
    } else {
        let mut body = Vec::with_capacity(length);
        let _ = std::io::stdin().take(length as u64).read_to_end(&mut body);
        Some(body)
    };
    let answer = answer(&settings, &dsm, env, body);
    let mut out = std::io::stdout();
    let _ = out.write_all(&answer.bytes());
    let _ = out.flush();
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_tokens_and_groups() {
        assert_eq!(
            query("action=list&SynoToken=a%2Bb&x&y=1+2"),
            [
                ("action".to_string(), "list".to_string()),
                ("SynoToken".into(), "a+b".into()),
                ("x".into(), "".into()),
                ("y".into(), "1 2".into())
            ]
        );
        assert_eq!(unquote("%zz%4"), "%zz%4");
        assert!(token_ok("Xy_9.-a"));
        for bad in ["", "a b", "a;b", "$(id)", &"t".repeat(129)] {
            assert!(!token_ok(bad), "{bad}");
        }
        let groups = "users:x:100:\nadministrators:x:101:admin,alice\nadmins2:x:102:bob\n";
        assert!(is_admin(groups, "alice"));
        assert!(is_admin(groups, "admin"));
        assert!(!is_admin(groups, "bob"));
        assert!(!is_admin(groups, "ali"));
        assert!(!is_admin(groups, ""));
        assert!(!is_admin("administrators:x:101\n", "x"));
    }

    #[test]
    fn answers_have_no_cache_headers() {
        let a = Answer::error(403, "no");
        let text = String::from_utf8(a.bytes()).unwrap();
        assert!(text.starts_with("Status: 403 Forbidden\r\n"));
        assert!(text.contains("\r\nCache-Control: no-store\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"error\":\"no\"}\n"));
    }
}
