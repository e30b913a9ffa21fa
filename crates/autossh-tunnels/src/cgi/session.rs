//! The DSM session of a request: DSM's own `authenticate.cgi` says whose
//! it is, and the user must be a member of `administrators`.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AUTH_WAIT: Duration = Duration::from_secs(10);

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

/// A SynoToken as DSM makes them: letters, digits, `. _ -`.
pub fn token_ok(t: &str) -> bool {
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
pub fn session_user(
    dsm: &Dsm,
    env: &dyn Fn(&str) -> Option<OsString>,
    token: &str,
) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_groups() {
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
}
