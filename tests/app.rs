//! The DSM app's server side, `autossh-tunnels cgi`, driven as a web server
//! drives a CGI: a stand-in for DSM's authenticate.cgi that knows two
//! sessions (an administrator's and a plain user's), a group file of the
//! test's own, the fake ssh. Every refusal leaves the list as it was.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
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
        fs::write(
            &auth,
            format!(
                "#!/bin/sh\n\
                 [ \"$REQUEST_METHOD\" = GET ] || exit 1\n\
                 case \"$QUERY_STRING\" in *SynoToken={TOKEN}*) ;; *) exit 0 ;; esac\n\
                 case \"$HTTP_COOKIE\" in\n\
                 *id=admin-session*) echo admin ;;\n\
                 *id=user-session*) echo alice ;;\n\
                 esac\n"
            ),
        )
        .unwrap();
        fs::set_permissions(&auth, fs::Permissions::from_mode(0o755)).unwrap();
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
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(body);
        drop(stdin);
        let out = run_bounded_child(child, SLOW_LIMIT);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
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
    let mut c = app
        .fake
        .command(env!("CARGO_BIN_EXE_autossh-tunnels"), &["start"]);
    c.env("AUTOSSH", autossh_bin())
        .env("AUTOSSH_TUNNELS", &app.list)
        .env("AUTOSSH_RUN_DIR", &app.run)
        .env("AUTOSSH_SSH_OPTIONS", "-M 0");
    assert!(run_bounded(c, SLOW_LIMIT).status.success());
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
    fs::write(&auth, "#!/bin/sh\necho admin\nexit 1\n").unwrap();
    let r = app.get("list");
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(!r.body.contains("hand"), "{}", r.body);
    let r = app.post("save", FORM);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(app.text(), LIST);
}
