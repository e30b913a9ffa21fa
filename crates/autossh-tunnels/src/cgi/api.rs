//! The app's actions, once the session is checked: the list with every
//! tunnel's state and form, the package's public key, and the changes.
//! A change answers what became of the tunnel it touched; when anything
//! failed the answer is an HTTP error whose `error` says what.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::Answer;
use crate::commands::{Edit, Refused};
use crate::files::{read_file, FILE_MAX};
use crate::form::{Form, Forward};
use crate::list::{self, Tunnel};
use crate::report;
use crate::run_dir::Runner;
use crate::status::when;

/// `?action=list`: `status --json`'s report, and each listed tunnel's form
/// (null for one written by hand) and arguments.
pub fn list(runner: &Runner) -> Answer {
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
        &when,
    );
    let mut forms = Map::new();
    if let Ok(l) = &list {
        for (t, enabled) in l
            .tunnels
            .iter()
            .map(|t| (t, true))
            .chain(l.off.iter().map(|t| (t, false)))
        {
            let (words, shown) = args_text(t);
            let form = Form::from_args(&t.name, &words, enabled).map(|f| form_json(&f));
            forms.insert(t.name.clone(), json!({"form": form, "args": shown}));
        }
    }
    Answer::json(200, json!({"status": status, "tunnels": forms}))
}

/// `?action=key`: the package's public key, for the relay's
/// `authorized_keys`.
pub fn key(public_key: Option<&Path>) -> Answer {
    let key = public_key
        .and_then(|p| read_file(p, FILE_MAX, true).ok())
        .and_then(|k| String::from_utf8(k).ok())
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    match key {
        Some(key) => Answer::json(200, json!({ "key": key })),
        None => Answer::error(404, "the package has no public key yet"),
    }
}

fn form_json(f: &Form) -> Value {
    let forwards = |v: &[Forward]| -> Vec<Value> {
        v.iter()
            .map(|f| json!({"listen": f.listen, "host": f.host, "port": f.port}))
            .collect()
    };
    json!({
        "name": f.name,
        "host": f.host,
        "port": f.port,
        "user": f.user,
        "remote": forwards(&f.remote),
        "local": forwards(&f.local),
        "enabled": f.enabled,
    })
}

/// A tunnel's words, and the line of them as the page shows it.
fn args_text(t: &Tunnel) -> (Vec<String>, String) {
    let words: Vec<String> = t
        .args
        .iter()
        .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned())
        .collect();
    let shown = list::shown(words.join(" ").as_bytes(), 400);
    (words, shown)
}

/// `save` (the form, with `"create": true` for a new tunnel), `delete` and
/// `restart` (`{"name": NAME}`).
pub fn change(runner: &Runner, action: &str, value: Value) -> Answer {
    let Value::Object(mut fields) = value else {
        return Answer::error(400, "the body is not a JSON object");
    };
    let create = matches!(fields.remove("create"), Some(Value::Bool(true)));
    let value = Value::Object(fields);
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if list::check_name(name.as_bytes()).is_err() {
        return Answer::error(400, "not a tunnel name");
    }
    let done = if action == "save" {
        match Form::from_json(&value) {
            Ok(form) if create => runner.edit(&name, Edit::Create(form)),
            Ok(form) => runner.edit(&name, Edit::Update(form)),
            Err(errors) => {
                let fields: Map<String, Value> = errors
                    .into_iter()
                    .map(|(f, why)| (f, Value::String(why)))
                    .collect();
                return Answer::json(
                    400,
                    json!({"error": "some fields are not valid", "fields": fields}),
                );
            }
        }
    } else if value.as_object().is_some_and(|o| o.len() == 1) {
        match action {
            "delete" => runner.edit(&name, Edit::Delete),
            _ => runner.restart_in_app(&name),
        }
    } else {
        return Answer::error(400, "the body is {\"name\": NAME}");
    };
    match done {
        Err(Refused::Conflict(why)) => Answer::error(409, &why),
        Err(Refused::Missing(why)) => Answer::error(404, &why),
        Err(Refused::Failed(why)) => Answer::error(500, &why),
        Ok(report) => {
            let status = if report.failed() { 500 } else { 200 };
            Answer::json(status, report.json())
        }
    }
}
