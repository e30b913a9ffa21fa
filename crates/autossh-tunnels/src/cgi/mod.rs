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
//! under the run folder's lock, the list is replaced atomically, and only
//! the tunnel that changed is touched (`commands::Runner::edit`); the answer
//! says what became of it, and is an HTTP error when anything failed. JSON
//! answers are not cached.
//!
//! Split by concern: the request and its answer here, the DSM session in
//! `session`, the actions in `api`, the page in `page`.

mod api;
mod page;
mod session;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;

use serde_json::{json, Value};

use crate::files::{read_file, LIST_MAX};
use crate::run_dir::Runner;
use crate::settings::Settings;
use session::{is_admin, session_user, token_ok, Dsm};

/// The largest body read.
pub const BODY_MAX: usize = 64 * 1024;

/// An answer: status, type, body.
pub struct Answer {
    pub status: u16,
    pub kind: &'static str,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            kind: "application/json",
            body: format!("{body}\n").into_bytes(),
        }
    }

    pub fn error(status: u16, why: &str) -> Answer {
        Answer::json(status, json!({ "error": why }))
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

fn query(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (unquote(k), unquote(v)),
            None => (unquote(p), String::new()),
        })
        .collect()
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
                body: page::BOOTSTRAP.as_bytes().to_vec(),
            };
        }
        return Answer::error(401, "no SynoToken: open the app from DSM");
    };
    let Some(user) = session_user(dsm, env, &token) else {
        return Answer::error(401, "not logged in to DSM");
    };
    let groups = read_file(&dsm.groups, LIST_MAX, true).unwrap_or_default();
    let groups = String::from_utf8_lossy(&groups);
    if !is_admin(&groups, &user) {
        return Answer::error(403, "only members of administrators may use this app");
    }
    if page {
        return Answer {
            status: 200,
            kind: "text/html",
            body: page::PAGE.as_bytes().to_vec(),
        };
    }
    let runner = Runner::new(settings.clone());
    match (method.as_str(), action.as_str()) {
        ("GET", "list") => api::list(&runner),
        ("GET", "key") => api::key(dsm.public_key.as_deref()),
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
            let value = match serde_json::from_slice::<Value>(&body) {
                Ok(v) => v,
                Err(why) => return Answer::error(400, &format!("not JSON: {why}")),
            };
            api::change(&runner, &action, value)
        }
        (_, "list" | "key" | "save" | "delete" | "restart") => Answer::error(405, "wrong method"),
        _ => Answer::error(404, "no such action"),
    }
}

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
    fn queries() {
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
