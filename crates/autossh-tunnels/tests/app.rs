//! The DSM app's server side, `autossh-tunnels cgi`, driven as a web server
//! drives a CGI: a stand-in for DSM's authenticate.cgi that knows two
//! sessions (an administrator's and a plain user's), a group file of the
//! test's own, the fake ssh. Every refusal leaves the list as it was.

// The black-box helpers are the workspace's, shared with autossh's tests.
#[path = "../../../tests/common/mod.rs"]
mod common;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use common::*;

const TOKEN: &str = "Tok3n-good";

/// A package's var folder, DSM's stand-ins, and a list with a comment and
/// a tunnel written by hand.
struct App {
    fake: Fake,
    list: PathBuf,
    run: PathBuf,
}

impl Drop for App {
    fn drop(&mut self) {
        let marker = format!("AUTOSSH_PIDFILE={}/", self.run.display());
        for pid in descendants(1) {
            let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if environ
                .split(|&b| b == 0)
                .any(|v| v.starts_with(marker.as_bytes()))
            {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

const LIST: &str = "# my tunnels\n\
                    tunnel hand -M 0 -N -o ServerAliveInterval=30 me@hand.example\n\
                    env hand FAKE_PLAN=hang\n";

struct Ran {
    code: i32,
    stdout: String,
}

impl Ran {
    fn ok(&self) -> bool {
        self.code == 0
    }
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl App {
    fn new(tag: &str) -> App {
        let fake = Fake::new(tag);
        let auth = fake.dir.path("authenticate.cgi");
        // DSM's: the user of the session the cookie names, when the token is
        // that session's; nothing otherwise.
        write_executable(
            &auth,
            format!(
                "#!/bin/sh\n\
                 [ \"$REQUEST_METHOD\" = GET ] || exit 1\n\
                 case \"$QUERY_STRING\" in *SynoToken={TOKEN}*) ;; *) exit 0 ;; esac\n\
                 case \"$HTTP_COOKIE\" in\n\
                 *id=admin-session*) echo admin ;;\n\
                 *id=user-session*) echo alice ;;\n\
                 esac\n"
            )
            .as_bytes(),
        );
        fs::write(
            fake.dir.path("group"),
            "users:x:100:alice,admin\nadministrators:x:101:admin\n",
        )
        .unwrap();
        fs::write(
            fake.dir.path("id.pub"),
            "ssh-ed25519 AAAAC3Nz autossh@nas\n",
        )
        .unwrap();
        let list = fake.dir.path("tunnels.conf");
        fs::write(&list, LIST).unwrap();
        let run = fake.dir.path("run");
        // The tunnels' ssh gets no FAKE_PLAN: autossh-tunnels starts them
        // with an environment of its own.
        fake.plan("hang");
        App { fake, list, run }
    }

    fn request(
        &self,
        method: &str,
        query: &str,
        cookie: &str,
        header: Option<&str>,
        body: &[u8],
        kind: &str,
    ) -> Reply {
        let text = self.raw_request(method, query, cookie, header, body, kind, &[]);
        let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = headers
            .strip_prefix("Status: ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Reply {
            status,
            headers: headers.to_string(),
            body: body.to_string(),
        }
    }

    /// An administrator's POST with the package's settings and `extra`
    /// variables over them: all the CGI wrote.
    fn raw_post(&self, action: &str, body: &str, extra: &[(&str, &str)]) -> String {
        let query = format!("action={action}");
        let b = body.as_bytes();
        self.raw_request(
            "POST",
            &query,
            "id=admin-session",
            Some(TOKEN),
            b,
            "application/json",
            extra,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn raw_request(
        &self,
        method: &str,
        query: &str,
        cookie: &str,
        header: Option<&str>,
        body: &[u8],
        kind: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut c = self
            .fake
            .command(env!("CARGO_BIN_EXE_autossh-tunnels"), &["cgi"]);
        c.env("AUTOSSH", autossh_bin())
            .env("AUTOSSH_TUNNELS", &self.list)
            .env("AUTOSSH_RUN_DIR", &self.run)
            .env(
                "AUTOSSH_DSM_AUTHENTICATE",
                self.fake.dir.path("authenticate.cgi"),
            )
            .env("AUTOSSH_DSM_GROUPS", self.fake.dir.path("group"))
            .env("AUTOSSH_PUBLIC_KEY", self.fake.dir.path("id.pub"))
            .env("AUTOSSH_SSH_OPTIONS", "-M 0")
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("REQUEST_METHOD", method)
            .env("QUERY_STRING", query)
            .env("HTTP_COOKIE", cookie)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("CONTENT_TYPE", kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(h) = header {
            c.env("HTTP_X_SYNO_TOKEN", h);
        }
        for (k, v) in extra {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(body);
        drop(stdin);
        let out = run_bounded_child(child, SLOW_LIMIT);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn get(&self, action: &str) -> Reply {
        self.request(
            "GET",
            &format!("action={action}&SynoToken={TOKEN}"),
            "id=admin-session",
            None,
            b"",
            "",
        )
    }

    fn post(&self, action: &str, body: &str) -> Reply {
        self.request(
            "POST",
            &format!("action={action}"),
            "id=admin-session",
            Some(TOKEN),
            body.as_bytes(),
            "application/json",
        )
    }

    fn text(&self) -> String {
        fs::read_to_string(&self.list).unwrap()
    }

    fn pid(&self, name: &str) -> i32 {
        fs::read_to_string(self.run.join(format!("{name}.pid")))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// The tunnel-list program with the package's settings, as the
    /// package's start and stop run it.
    fn tunnels(&self, args: &[&str]) -> Ran {
        let mut c = self
            .fake
            .command(env!("CARGO_BIN_EXE_autossh-tunnels"), args);
        c.env("AUTOSSH", autossh_bin())
            .env("AUTOSSH_TUNNELS", &self.list)
            .env("AUTOSSH_RUN_DIR", &self.run)
            .env("AUTOSSH_SSH_OPTIONS", "-M 0");
        let out = run_bounded(c, SLOW_LIMIT);
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    }

    fn json(&self) -> serde_json::Value {
        let r = self.get("list");
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }
}

const FORM: &str = r#"{"create":true,"name":"web","host":"relay.example.net","port":2222,"user":"tunnel",
  "remote":[{"listen":5001,"host":"localhost","port":5001}],"local":[],"enabled":true}"#;

#[test]
fn only_an_administrator_with_the_token_is_served() {
    let app = App::new("app-auth");
    // No token: the page that fetches it, and no data.
    let r = app.request("GET", "", "id=admin-session", None, b"", "");
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("/webman/login.cgi") && !r.body.contains("hand"),
        "{}",
        r.body
    );
    let r = app.request("GET", "action=list", "id=admin-session", None, b"", "");
    assert_eq!(r.status, 401, "{}", r.body);
    // A token, but no session, or a wrong token.
    for (query, cookie) in [
        (format!("action=list&SynoToken={TOKEN}"), "id=nobody"),
        (
            "action=list&SynoToken=other".to_string(),
            "id=admin-session",
        ),
        (format!("SynoToken={TOKEN}"), ""),
    ] {
        let r = app.request("GET", &query, cookie, None, b"", "");
        assert_eq!(r.status, 401, "{query} {cookie}: {}", r.body);
        assert!(!r.body.contains("hand"));
    }
    // A session of a user who is no administrator.
    let r = app.request(
        "GET",
        &format!("action=list&SynoToken={TOKEN}"),
        "id=user-session",
        None,
        b"",
        "",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!r.body.contains("hand"));
    let r = app.request(
        "POST",
        "action=save",
        "id=user-session",
        Some(TOKEN),
        FORM.as_bytes(),
        "application/json",
    );
    assert_eq!(r.status, 403);
    // The administrator: the page, the list, the key; none cached.
    let r = app.request(
        "GET",
        &format!("SynoToken={TOKEN}"),
        "id=admin-session",
        None,
        b"",
        "",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<title>Tunnels</title>"));
    let r = app.get("list");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers.contains("Cache-Control: no-store"),
        "{}",
        r.headers
    );
    assert!(r.headers.contains("Content-Type: application/json"));
    let j: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(j["status"]["tunnels"][0]["name"], "hand");
    assert_eq!(
        j["tunnels"]["hand"]["form"],
        serde_json::Value::Null,
        "written by hand"
    );
    let r = app.get("key");
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("ssh-ed25519 AAAAC3Nz autossh@nas"),
        "{}",
        r.body
    );
    assert_eq!(app.text(), LIST);
    assert!(!app.run.join("web.pid").exists());
}

#[test]
fn refused_writes_change_nothing() {
    let app = App::new("app-refuse");
    let before = app.text();
    // The token only in the query (what a cross-site form could send), no
    // JSON type, a body too large, not JSON, a GET for a write.
    let cases: Vec<(u16, Reply)> = vec![
        (
            403,
            app.request(
                "POST",
                &format!("action=save&SynoToken={TOKEN}"),
                "id=admin-session",
                None,
                FORM.as_bytes(),
                "application/json",
            ),
        ),
        (
            415,
            app.request(
                "POST",
                "action=save",
                "id=admin-session",
                Some(TOKEN),
                FORM.as_bytes(),
                "application/x-www-form-urlencoded",
            ),
        ),
        (
            413,
            app.request(
                "POST",
                "action=save",
                "id=admin-session",
                Some(TOKEN),
                &vec![b' '; 70_000],
                "application/json",
            ),
        ),
        (400, app.post("save", "{\"name\": ")),
        (
            405,
            app.request(
                "GET",
                &format!("action=delete&SynoToken={TOKEN}"),
                "id=admin-session",
                None,
                b"",
                "",
            ),
        ),
        (404, app.post("delete", r#"{"name":"nosuch"}"#)),
        (
            409,
            app.post(
                "save",
                r#"{"create":true,"name":"hand","host":"h","remote":[{"listen":1,"port":2}]}"#,
            ),
        ),
        (
            409,
            app.post(
                "save",
                r#"{"name":"hand","host":"h","remote":[{"listen":1,"port":2}]}"#,
            ),
        ),
    ];
    for (status, r) in cases {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(app.text(), before);
    }
    // Hostile values in every field: quotes, newlines, $(...), a leading -,
    // 10 kB.
    let long = "x".repeat(10_000);
    for (field, value) in [
        ("name", "\"a'b\""),
        ("name", "\"a\\nb\""),
        ("host", "\"$(reboot)\""),
        ("host", "\"-oProxyCommand=id\""),
        ("host", "\"relay\\ntunnel evil -N x@y\""),
        ("user", "\"me' -o 'x\""),
        ("user", "\"-l\""),
        ("port", "\"22 -v\""),
        ("port", "0"),
        ("remote", "[{\"listen\":2200,\"host\":\"a b\",\"port\":22}]"),
        (
            "remote",
            "[{\"listen\":\"$(id)\",\"host\":\"h\",\"port\":22}]",
        ),
        ("local", "[{\"listen\":1,\"host\":\"#x\",\"port\":2}]"),
        ("enabled", "\"yes\""),
        ("host", &format!("\"{long}\"")),
        ("user", &format!("\"{long}\"")),
    ] {
        let mut form: serde_json::Value = serde_json::from_str(FORM).unwrap();
        form[field] = serde_json::from_str(value).unwrap();
        let r = app.post("save", &form.to_string());
        assert_eq!(r.status, 400, "{field}={value}: {}", r.body);
        let j: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let fields = j["fields"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>());
        assert!(
            j["error"].is_string()
                && (field == "name"
                    || fields.is_some_and(|f| f.iter().any(|k| k.starts_with(field)))),
            "{field}: {}",
            r.body
        );
        assert_eq!(app.text(), before, "{field}={value}");
    }
    assert!(!app.run.join("web.pid").exists());
}

#[test]
fn add_edit_restart_delete() {
    let app = App::new("app-edit");
    // The hand-written tunnel runs, and must not be touched by what follows.
    assert_eq!(app.tunnels(&["start"]).code, 0);
    let hand = app.pid("hand");
    assert!(hand > 0 && alive(hand));

    let r = app.post("save", FORM);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("web: started"), "{}", r.body);
    let text = app.text();
    assert!(text.starts_with(LIST), "{text}");
    assert!(
        text.ends_with("tunnel web -N -p 2222 -R 5001:localhost:5001 tunnel@relay.example.net\n"),
        "{text}"
    );
    let web = app.pid("web");
    assert!(web > 0 && alive(web));
    assert_eq!(app.pid("hand"), hand);
    let j = app.json();
    assert_eq!(j["tunnels"]["web"]["form"]["port"], 2222);
    assert_eq!(j["tunnels"]["web"]["form"]["remote"][0]["listen"], 5001);

    // Edited: the relay's name fixed; only web restarts.
    let edited = FORM
        .replace("\"create\":true,", "")
        .replace("relay.example.net", "relay2.example.net");
    let r = app.post("save", &edited);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("web: restarted"), "{}", r.body);
    assert!(app.text().contains("tunnel@relay2.example.net\n"));
    assert!(!alive(web));
    let web2 = app.pid("web");
    assert!(alive(web2));
    assert_eq!(app.pid("hand"), hand);

    // Restarted: a new autossh (and ssh) for it alone.
    let r = app.post("restart", r#"{"name":"web"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(wait_until(LIMIT, || !alive(web2)));
    let web3 = app.pid("web");
    assert!(web3 != web2 && alive(web3));
    assert_eq!(app.pid("hand"), hand);

    // Disabled: kept in the list, stopped.
    let off = edited.replace("\"enabled\":true", "\"enabled\":false");
    let r = app.post("save", &off);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(app.text().contains("\ndisabled web -N -p 2222 "));
    assert!(!alive(web3));
    let j = app.json();
    let web_status = j["status"]["tunnels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "web")
        .unwrap()
        .clone();
    assert_eq!(web_status["state"], "disabled");

    // Deleted: gone from the list, nothing of it left.
    let r = app.post("delete", r#"{"name":"web"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.text(), LIST);
    assert_eq!(app.pid("hand"), hand);
    let r = app.post("delete", r#"{"name":"hand"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.text(), "# my tunnels\n");
    assert!(wait_until(LIMIT, || !alive(hand)));
}

/// A tunnel started by the app carries nothing of the request: not DSM's
/// session cookie, not its token, not the request's variables; neither its
/// autossh nor its ssh (nor what ssh would run).
#[test]
fn a_tunnel_started_by_the_app_carries_nothing_of_the_request() {
    let app = App::new("app-env");
    app.fake.plan("env");
    assert_eq!(app.tunnels(&["start"]).code, 0);
    let r = app.post("save", FORM);
    assert_eq!(r.status, 200, "{}", r.body);
    let web = app.pid("web");
    assert!(web > 0 && alive(web), "{}", r.body);
    let mut ssh = Vec::new();
    assert!(wait_until(LIMIT, || {
        ssh = children_of(web).0;
        ssh.len() == 1 && app.fake.dir.path(&format!("env.{}", ssh[0])).exists()
    }));
    let autossh_env = String::from_utf8_lossy(&fs::read(format!("/proc/{web}/environ")).unwrap())
        .replace('\0', "\n");
    let mut ssh_env = String::new();
    assert!(wait_until(LIMIT, || {
        ssh_env =
            fs::read_to_string(app.fake.dir.path(&format!("env.{}", ssh[0]))).unwrap_or_default();
        ssh_env.contains("\nPATH=") || ssh_env.starts_with("PATH=")
    }));
    for (who, env) in [("autossh", &autossh_env), ("ssh", &ssh_env)] {
        for secret in [
            "HTTP_COOKIE",
            "HTTP_X_SYNO_TOKEN",
            "QUERY_STRING",
            "REQUEST_METHOD",
            "GATEWAY_INTERFACE",
            "CONTENT_TYPE",
            "REMOTE_ADDR",
            "AUTOSSH_DSM_AUTHENTICATE",
            "AUTOSSH_SSH_OPTIONS",
        ] {
            assert!(
                !env.lines().any(|l| l.starts_with(&format!("{secret}="))),
                "{who} has {secret}:\n{env}"
            );
        }
        assert!(!env.contains("admin-session"), "{who}:\n{env}");
        assert!(!env.contains(TOKEN), "{who}:\n{env}");
    }
    // What it does get: its own files, and autossh's settings.
    assert!(autossh_env.contains("\nAUTOSSH_PIDFILE="), "{autossh_env}");
    assert!(autossh_env.contains("\nAUTOSSH_PATH="), "{autossh_env}");
}

/// A list that is a symlink (into a shared folder edited over the network)
/// stays one: a save writes its target, and what is written at the target
/// later is what the app shows.
#[test]
fn a_list_that_is_a_symlink_stays_one() {
    let app = App::new("app-link");
    let shared = app.fake.dir.path("shared");
    fs::create_dir(&shared).unwrap();
    let target = shared.join("tunnels.conf");
    fs::rename(&app.list, &target).unwrap();
    std::os::unix::fs::symlink(&target, &app.list).unwrap();
    let r = app.post("save", FORM);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(fs::symlink_metadata(&app.list)
        .unwrap()
        .file_type()
        .is_symlink());
    let text = fs::read_to_string(&target).unwrap();
    assert!(text.starts_with(LIST), "{text}");
    assert!(text.contains("\ntunnel web "), "{text}");
    fs::write(&target, format!("{text}tunnel later -M 0 -N me@later\n")).unwrap();
    let j = app.json();
    assert!(j["tunnels"]["later"].is_object(), "{j}");
    assert_eq!(fs::read_dir(&shared).unwrap().count(), 1);
}

/// DSM's authenticate.cgi names the session's user and says so with its
/// exit status: a name with a failure status is no session.
#[test]
fn an_authentication_that_failed_is_not_a_session() {
    let app = App::new("app-authfail");
    let auth = app.fake.dir.path("authenticate.cgi");
    write_executable(&auth, b"#!/bin/sh\necho admin\nexit 1\n");
    let r = app.get("list");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(!r.body.contains("hand"), "{}", r.body);
    let r = app.post("save", FORM);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(app.text(), LIST);
}

/// With the tunnels stopped (the package stopped), a save starts nothing:
/// not the tunnel saved, not the others. Started, a save touches only its
/// own tunnel; every answer says what became of it.
#[test]
fn a_save_touches_only_its_tunnel_and_starts_nothing_while_stopped() {
    let app = App::new("app-stopped");
    let r = app.post("save", FORM);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.pid("web"), 0, "{}", r.body);
    assert_eq!(app.pid("hand"), 0, "the hand-written tunnel stays stopped");
    let j: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(j["ok"], true);
    assert_eq!(j["saved"], true);
    assert_eq!(j["tunnels"][0]["name"], "web");
    assert_eq!(j["tunnels"][0]["outcome"], "not started");
    assert_eq!(j["tunnels"].as_array().unwrap().len(), 1, "{}", r.body);
    assert!(app.text().contains("tunnel web -N "));
    assert_eq!(app.pid("web"), 0);
    assert_eq!(app.pid("hand"), 0, "the hand-written tunnel stays stopped");
    let r = app.post("delete", r#"{"name":"web"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.pid("hand"), 0);
    // The app's restart of a tunnel that does not run waits for the package.
    let r = app.post("restart", r#"{"name":"hand"}"#);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("the tunnels are stopped"), "{}", r.body);
    assert_eq!(app.pid("hand"), 0);

    // Started, then one tunnel stopped by hand: a save of another starts
    // that other alone.
    let started = app.tunnels(&["start"]);
    assert!(started.ok(), "{}", started.stdout);
    assert!(
        started.stdout.starts_with("hand: started (pid "),
        "{}",
        started.stdout
    );
    let hand = app.pid("hand");
    assert!(hand > 0 && alive(hand));
    let r = app.post("save", FORM);
    assert_eq!(r.status, 200, "{}", r.body);
    let j: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(j["tunnels"][0]["outcome"], "started");
    let web = app.pid("web");
    assert_eq!(j["tunnels"][0]["pid"], web);
    assert_eq!(app.pid("hand"), hand);
    // Saved unchanged: left as it runs.
    let same = FORM.replace("\"create\":true,", "");
    let r = app.post("save", &same);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"outcome\":\"unchanged\""), "{}", r.body);
    assert_eq!(app.pid("web"), web);
    // Stopped by the package: everything stops, and a save starts nothing.
    assert_eq!(app.tunnels(&["stop"]).code, 0);
    let edited = same.replace("relay.example.net", "relay2.example.net");
    let r = app.post("save", &edited);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"outcome\":\"not started\""), "{}", r.body);
    assert_eq!(app.pid("web"), 0);
    assert_eq!(app.pid("hand"), 0);
    // A mark left from before a reboot (the Synology package's run folder
    // outlives one) is no sign that the package runs now.
    fs::write(
        app.run.join(".on"),
        "00000000-0000-0000-0000-000000000000\n",
    )
    .unwrap();
    let r = app.post("save", &same);
    assert!(r.body.contains("\"outcome\":\"not started\""), "{}", r.body);
    assert_eq!(app.pid("web"), 0);
    // This boot's mark, as start writes it, is.
    assert_eq!(app.tunnels(&["start"]).code, 0);
    assert_eq!(
        fs::read(app.run.join(".on")).unwrap(),
        fs::read("/proc/sys/kernel/random/boot_id").unwrap()
    );
    assert!(alive(app.pid("web")));
}

/// Nothing answers success that did not happen: a run folder that cannot
/// be made, a lock held by another command, a tunnel that fails to start.
/// The answer is an HTTP error that says why; the page shows it.
#[test]
fn failures_are_http_errors_with_their_reason() {
    let app = App::new("app-fail");
    assert_eq!(app.tunnels(&["start"]).code, 0);
    // A tunnel whose autossh refuses to start: saved, and said so.
    let r = app.post("save", FORM);
    assert_eq!(r.status, 200, "{}", r.body);
    let web = app.pid("web");
    let mut list = app.text();
    list.push_str("env web AUTOSSH_PORT=70000\n");
    fs::write(&app.list, &list).unwrap();
    let edited = FORM
        .replace("\"create\":true,", "")
        .replace("relay.example.net", "relay2.example.net");
    let r = app.post("save", &edited);
    assert_eq!(r.status, 500, "{}", r.body);
    let j: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(j["saved"], true);
    assert_eq!(j["tunnels"][0]["outcome"], "failed");
    let why = j["error"].as_str().unwrap();
    assert!(
        why.starts_with("the list was saved, but web: failed to start: ") && why.contains("70000"),
        "{why}"
    );
    assert!(app.text().contains("tunnel@relay2.example.net\n"));
    assert!(!alive(web));
    assert_eq!(app.pid("web"), 0);

    // A lock that cannot be taken (something else in its place): an
    // error, the list unchanged.
    fs::remove_file(app.run.join(".lock")).unwrap();
    fs::create_dir(app.run.join(".lock")).unwrap();
    let before = app.text();
    let r = app.post("delete", r#"{"name":"web"}"#);
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.contains("cannot open the lock"), "{}", r.body);
    assert_eq!(app.text(), before);
    let r = app.post("restart", r#"{"name":"hand"}"#);
    assert_eq!(r.status, 500, "{}", r.body);
    fs::remove_dir(app.run.join(".lock")).unwrap();

    // A run folder that cannot be made: an error, the list unchanged.
    let blocked = app.fake.dir.path("file-not-folder");
    fs::write(&blocked, "").unwrap();
    let before = app.text();
    let run = blocked.join("run");
    let text = app.raw_post(
        "delete",
        r#"{"name":"web"}"#,
        &[("AUTOSSH_RUN_DIR", run.to_str().unwrap())],
    );
    assert!(
        text.starts_with("Status: 500 "),
        "the answer is the first thing written: {text}"
    );
    assert!(text.contains("cannot make the run folder"), "{text}");
    assert_eq!(app.text(), before);
}

/// The answer is all the CGI writes: with no temporary file to be had (a
/// read-only TMPDIR, none at all) no runner's line comes before the
/// `Status:` header.
#[test]
fn the_answer_comes_first_whatever_the_temporary_folder() {
    let app = App::new("app-tmp");
    assert_eq!(app.tunnels(&["start"]).code, 0);
    for tmp in ["/nonexistent/tmp", "/proc"] {
        let text = app.raw_post("restart", r#"{"name":"hand"}"#, &[("TMPDIR", tmp)]);
        assert!(text.starts_with("Status: 200 OK\r\n"), "{tmp}: {text}");
        let body = text.split_once("\r\n\r\n").unwrap().1;
        let j: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(j["tunnels"][0]["outcome"], "restarted", "{body}");
    }
}

/// Two saves at once take turns: both tunnels are in the list, both run.
#[test]
fn two_saves_at_once() {
    let app = App::new("app-two");
    assert_eq!(app.tunnels(&["start"]).code, 0);
    let second = FORM
        .replace("\"web\"", "\"web2\"")
        .replace("5001,\"host\"", "5003,\"host\"");
    let replies = std::thread::scope(|s| {
        let a = s.spawn(|| app.post("save", FORM));
        let b = s.spawn(|| app.post("save", &second));
        [a.join().unwrap(), b.join().unwrap()]
    });
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("\"outcome\":\"started\""), "{}", r.body);
    }
    let text = app.text();
    assert!(text.contains("\ntunnel web -N "), "{text}");
    assert!(text.contains("\ntunnel web2 -N "), "{text}");
    assert!(text.starts_with(LIST), "{text}");
    for name in ["web", "web2", "hand"] {
        let pid = app.pid(name);
        assert!(pid > 0 && alive(pid), "{name}");
    }
}
