//! A simulated DSM web front for the Tunnels app, and a WebDriver client for
//! Debian's headless Chromium.
//!
//! The front serves `/webman/3rdparty/autossh/` from a package's `ui/`
//! (files as they are, `*.cgi` run as CGI programs as the package user),
//! `/webman/login.cgi` (the session's SynoToken as JSON) and `/login?user=`
//! (a cookie per user, as a DSM login leaves one). Its stand-in for DSM's
//! `authenticate.cgi` maps the cookie to a user when the request carries
//! the session's token. Only loopback.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// The SynoToken of every session of the simulated DSM.
pub const TOKEN: &str = "Tok3n-of-the-session";

/// A request as read off the socket.
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn respond(mut stream: &TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// What the front needs of the simulated DSM.
#[derive(Clone)]
pub struct Site {
    /// The package's ui/ folder.
    pub ui: PathBuf,
    /// Extra variables for the CGI (where the package is, DSM's stand-ins).
    pub env: Vec<(String, String)>,
    /// The uid and gid the CGI runs as (the package user).
    pub user: u32,
}

/// The web front: a listener on 127.0.0.1 served by a thread per request.
pub struct Front {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// The stand-in of DSM's authenticate.cgi, written into `dir`: the user of
/// the cookie's session (`id=USER-session`), when the token is given.
pub fn write_authenticate(dir: &Path) -> PathBuf {
    let path = dir.join("authenticate.cgi");
    super::write_executable(
        &path,
        format!(
            "#!/bin/sh\n\
             case \"$QUERY_STRING\" in *SynoToken={TOKEN}*) ;; *) exit 0 ;; esac\n\
             case \"$HTTP_COOKIE\" in *id=admin-session*) echo admin ;; *id=alice-session*) echo alice ;; esac\n"
        )
        .as_bytes(),
    );
    path
}

impl Front {
    pub fn start(site: Site, host: [u8; 4]) -> Front {
        let listener = TcpListener::bind(SocketAddr::from((host, 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let site = site.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                    if let Some(req) = read_request(&stream) {
                        serve(&site, &stream, req);
                    }
                });
            }
        });
        Front { addr, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn cookie_user(req: &Request) -> Option<String> {
    let cookie = req.headers.get("cookie")?;
    cookie.split(';').find_map(|c| {
        c.trim()
            .strip_prefix("id=")
            .and_then(|v| v.strip_suffix("-session"))
            .map(String::from)
    })
}

fn serve(site: &Site, stream: &TcpStream, req: Request) {
    if req.path == "/login" {
        let user = req.query.strip_prefix("user=").unwrap_or("");
        return respond(
            stream,
            "302 Found",
            &[
                (
                    "Set-Cookie",
                    format!("id={user}-session; Path=/; SameSite=Lax"),
                ),
                ("Location", "/webman/3rdparty/autossh/index.cgi".into()),
            ],
            b"",
        );
    }
    if req.path == "/webman/login.cgi" {
        let body = match cookie_user(&req) {
            Some(_) => format!(
                "{{ \"SynoToken\" : \"{TOKEN}\", \"result\" : \"success\", \"success\" : true }}"
            ),
            None => "{ \"result\" : \"error\", \"success\" : false }".into(),
        };
        return respond(
            stream,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
        );
    }
    let Some(file) = req.path.strip_prefix("/webman/3rdparty/autossh/") else {
        return respond(stream, "404 Not Found", &[], b"not here");
    };
    if file.contains("..") || file.starts_with('/') {
        return respond(stream, "404 Not Found", &[], b"not here");
    }
    let path = site
        .ui
        .join(if file.is_empty() { "index.cgi" } else { file });
    if path.extension().is_some_and(|e| e == "cgi") {
        return cgi(site, stream, &path, &req);
    }
    match fs::read(&path) {
        Ok(bytes) => {
            let kind = match path.extension().and_then(|e| e.to_str()) {
                Some("js") => "application/javascript",
                Some("png") => "image/png",
                Some("html") => "text/html",
                _ => "application/octet-stream",
            };
            respond(stream, "200 OK", &[("Content-Type", kind.into())], &bytes)
        }
        Err(_) => respond(stream, "404 Not Found", &[], b"no such file"),
    }
}

/// Runs a CGI as DSM's web server does, as the package user.
fn cgi(site: &Site, stream: &TcpStream, path: &Path, req: &Request) {
    let mut c = Command::new(path);
    c.env_clear()
        .current_dir(site.ui.clone())
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", &req.method)
        .env("QUERY_STRING", &req.query)
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("SERVER_ADDR", "127.0.0.1")
        .env("SERVER_NAME", "nas");
    for (h, v) in [
        ("cookie", "HTTP_COOKIE"),
        ("x-syno-token", "HTTP_X_SYNO_TOKEN"),
        ("content-type", "CONTENT_TYPE"),
        ("host", "HTTP_HOST"),
    ] {
        if let Some(value) = req.headers.get(h) {
            c.env(v, value);
        }
    }
    for (k, v) in &site.env {
        c.env(k, v);
    }
    let user = site.user;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(user) != 0
                || libc::setuid(user) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let Ok(mut child) = c.spawn() else {
        return respond(
            stream,
            "500 Internal Server Error",
            &[],
            b"cannot run the CGI",
        );
    };
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(&req.body);
    drop(stdin);
    let out = run_bounded_child(child, SLOW_LIMIT);
    let text = out.stdout;
    let split = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| text.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, gap)) = split else {
        return respond(stream, "500 Internal Server Error", &[], b"no CGI headers");
    };
    let head = String::from_utf8_lossy(&text[..at]).into_owned();
    let mut status = "200 OK".to_string();
    let mut headers = Vec::new();
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("status") {
                status = v.trim().to_string();
            } else {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    let headers: Vec<(&str, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    respond(stream, &status, &headers, &text[at + gap..]);
}

/// One HTTP/1.1 exchange with `addr` (Connection: close): status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, Vec::new());
    };
    let _ = s.set_read_timeout(Some(SLOW_LIMIT));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    // Up to the end of the headers, then as many bytes as they announce
    // (a server may keep the connection open whatever we asked).
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let want = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .and_then(|at| {
                let head = String::from_utf8_lossy(&all[..at]).to_ascii_lowercase();
                head.lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .map(|l| at + 4 + l)
            });
        if want.is_some_and(|w| all.len() >= w) {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    let at = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(all.len());
    let status = String::from_utf8_lossy(&all[..at.min(all.len())])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, all.get(at + 4..).unwrap_or_default().to_vec())
}

/// Headless Chromium under chromedriver, spoken to over WebDriver.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            b"",
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Chromium's own processes, should any outlive the session.
        kill_marked(&self._profile.0.display().to_string());
    }
}

/// Kills the processes whose command line names `marker` (a test's own
/// profile folder): a Chromium that outlived its driver.
fn kill_marked(marker: &str) {
    for pid in descendants(1) {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            signal(pid, libc::SIGKILL);
        }
    }
}

pub fn have_browser() -> bool {
    requires(
        Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists(),
        "chromium or chromium-driver is missing (.ci/run installs them)",
    )
}

impl Browser {
    /// A headless Chromium under chromedriver. A start that fails (under a
    /// loaded machine Chromium may not come up, or chromedriver may lose its
    /// port to another test) is tried once more, and then reported with
    /// what chromedriver said.
    pub fn start() -> Browser {
        let mut said = Vec::new();
        for _ in 0..2 {
            match Browser::try_start() {
                Ok(browser) => return browser,
                Err(why) => said.push(why),
            }
        }
        panic!("no browser session: {said:#?}");
    }

    fn try_start() -> Result<Browser, String> {
        let port = free_pair();
        let profile = TempDir::new("chromium");
        let log = profile.path("chromedriver.log");
        let mut driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let fail = |driver: &mut Child, what: &str| {
            let _ = driver.kill();
            let _ = driver.wait();
            Err(format!(
                "{what}; chromedriver said: {}",
                fs::read_to_string(&log).unwrap_or_default()
            ))
        };
        if !wait_until(LIMIT, || {
            driver.try_wait().ok().flatten().is_none()
                && http(addr, "GET", "/status", &[], b"").0 == 200
        }) {
            return fail(&mut driver, "chromedriver did not come up");
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-default-apps",
                    "--disable-extensions", "--metrics-recording-only", "--window-size=1000,760",
                    // No name is ever looked up: everything but loopback fails.
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE 127.0.0.2",
                    format!("--user-data-dir={}", profile.0.display()),
                ]
            }
        }}});
        let (status, body) = http(
            addr,
            "POST",
            "/session",
            &[("Content-Type", "application/json")],
            caps.to_string().as_bytes(),
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let Some(session) = v["value"]["sessionId"].as_str().filter(|_| status == 200) else {
            let marker = profile.0.display().to_string();
            kill_marked(&marker);
            return fail(&mut driver, &format!("no session ({status}): {v}"));
        };
        Ok(Browser {
            driver,
            addr,
            session: session.to_string(),
            _profile: profile,
        })
    }

    fn call(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let body = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let (_, out) = http(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        v["value"].clone()
    }

    pub fn go(&self, url: &str) {
        self.call("POST", "/url", serde_json::json!({ "url": url }));
    }

    /// Runs `script` in the page; its return value.
    pub fn js(&self, script: &str) -> serde_json::Value {
        self.call(
            "POST",
            "/execute/sync",
            serde_json::json!({ "script": script, "args": [] }),
        )
    }

    pub fn element(&self, css: &str) -> Option<String> {
        let v = self.call(
            "POST",
            "/element",
            serde_json::json!({ "using": "css selector", "value": css }),
        );
        v.as_object()?
            .iter()
            .find(|(k, _)| k.starts_with("element-"))
            .and_then(|(_, id)| id.as_str().map(String::from))
    }

    pub fn click(&self, css: &str) {
        let id = self.element(css).unwrap_or_else(|| panic!("no {css}"));
        self.call(
            "POST",
            &format!("/element/{id}/click"),
            serde_json::json!({}),
        );
    }

    /// Replaces an input's text, as typed.
    pub fn fill(&self, css: &str, text: &str) {
        let id = self.element(css).unwrap_or_else(|| panic!("no {css}"));
        self.call(
            "POST",
            &format!("/element/{id}/clear"),
            serde_json::json!({}),
        );
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            serde_json::json!({ "text": text }),
        );
    }

    /// Makes the window `width` by `height` CSS pixels (a phone's, say).
    pub fn size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            serde_json::json!({ "width": width, "height": height }),
        );
    }

    pub fn accept_alert(&self) {
        self.call("POST", "/alert/accept", serde_json::json!({}));
    }

    pub fn text(&self) -> String {
        self.js("return document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn screenshot(&self, path: &Path) {
        use std::io::Write as _;
        let v = self.call("GET", "/screenshot", serde_json::Value::Null);
        let data = v.as_str().unwrap_or_default();
        let png = base64(data);
        assert!(png.starts_with(b"\x89PNG"), "no screenshot: {v}");
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let _ = fs::File::create(path).and_then(|mut f| f.write_all(&png));
    }
}

fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
