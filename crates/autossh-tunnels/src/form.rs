//! The tunnel app's form: a tunnel as a relay, a user, ports and forwards,
//! checked field by field, and the list line it stands for. A line the
//! form did not write (any other ssh arguments) is not the form's: the app
//! shows it and can restart or delete it, and leaves its words alone.

use std::net::IpAddr;

use serde_json::Value;

use crate::list;

/// At most this many forwards each way.
pub const FORWARDS_MAX: usize = 20;

/// `listen:host:port`: a port that listens (on the relay for a remote
/// forward, here for a local one) and where its connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub listen: u16,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// `-R`: a port of the relay to a host and port reached from here.
    pub remote: Vec<Forward>,
    /// `-L`: a port here to a host and port reached from the relay.
    pub local: Vec<Forward>,
    pub enabled: bool,
}

/// A host name (labels of letters, digits and `-`, not at either end of
/// a label) or an IPv4 or IPv6 address.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() {
        Err("a host is needed".into())
    } else if host.len() > 253 || !host.split('.').all(label) {
        Err("not a host name or address (letters, digits, - and ., or an IP address)".into())
    } else {
        Ok(())
    }
}

/// A user name on the relay: letters, digits, `. _ -`, not `-` first.
pub fn check_user(user: &str) -> Result<(), String> {
    let good = user.len() <= 32
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if good {
        Ok(())
    } else {
        Err("not a user name (at most 32 letters, digits, . _ and -, not - first)".into())
    }
}

/// A port: 1 to 65535, as a number or a string of digits.
fn port_of(value: Option<&Value>) -> Result<u16, String> {
    let why = || "a port is a number from 1 to 65535".to_string();
    let n = match value {
        Some(Value::Number(n)) => n.as_f64().filter(|n| n.fract() == 0.0).ok_or_else(why)?,
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<f64>().map_err(|_| why())?
        }
        _ => return Err(why()),
    };
    if (1.0..=65535.0).contains(&n) {
        Ok(n as u16)
    } else {
        Err(why())
    }
}

fn text_of<'a>(value: Option<&'a Value>, default: &'a str) -> Result<&'a str, String> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err("must be text".into()),
    }
}

/// Where a host goes in a forward: an IPv6 address in brackets.
fn forward_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl Form {
    /// The form from the app's JSON; every wrong field with why.
    pub fn from_json(v: &Value) -> Result<Form, Vec<(String, String)>> {
        let mut errors: Vec<(String, String)> = Vec::new();
        let Value::Object(pairs) = v else {
            return Err(vec![("".into(), "the body is not a JSON object".into())]);
        };
        const FIELDS: [&str; 7] = ["name", "host", "port", "user", "remote", "local", "enabled"];
        for k in pairs.keys() {
            if !FIELDS.contains(&k.as_str()) {
                errors.push((list::shown(k.as_bytes(), 40), "no such field".into()));
            }
        }
        let mut field = |name: &str, r: Result<(), String>| {
            if let Err(why) = r {
                errors.push((name.to_string(), why));
            }
        };
        let name = text_of(v.get("name"), "").unwrap_or_default().to_string();
        field("name", list::check_name(name.as_bytes()).map(|_| ()));
        let host = text_of(v.get("host"), "").unwrap_or_default().to_string();
        field("host", check_host(&host));
        let port = match v.get("port") {
            None | Some(Value::Null) => Ok(22),
            some => port_of(some),
        };
        field("port", port.clone().map(|_| ()));
        let user = text_of(v.get("user"), "");
        field("user", user.clone().map(|_| ()));
        let user = user.unwrap_or_default().to_string();
        field("user", check_user(&user));
        let enabled = match v.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                field("enabled", Err("must be true or false".into()));
                true
            }
        };
        let forwards = |key: &str, field: &mut dyn FnMut(&str, Result<(), String>)| {
            let items = match v.get(key) {
                None | Some(Value::Null) => return Vec::new(),
                Some(Value::Array(items)) if items.len() <= FORWARDS_MAX => items,
                Some(_) => {
                    field(
                        key,
                        Err(format!("a list of at most {FORWARDS_MAX} forwards")),
                    );
                    return Vec::new();
                }
            };
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}.{i}");
                let listen = port_of(item.get("listen"));
                let port = port_of(item.get("port"));
                let host = text_of(item.get("host"), "localhost");
                let keys_ok = matches!(item, Value::Object(p) if p.keys().all(|k| ["listen", "host", "port"].contains(&k.as_str())));
                if !keys_ok {
                    field(&at, Err("a forward is {listen, host, port}".into()));
                }
                field(&format!("{at}.listen"), listen.clone().map(|_| ()));
                field(&format!("{at}.port"), port.clone().map(|_| ()));
                let host = match host {
                    Ok(h) => {
                        let h = if h.is_empty() { "localhost" } else { h };
                        field(&format!("{at}.host"), check_host(h));
                        h.to_string()
                    }
                    Err(why) => {
                        field(&format!("{at}.host"), Err(why));
                        String::new()
                    }
                };
                if let (Ok(listen), Ok(port)) = (listen, port) {
                    out.push(Forward { listen, host, port });
                }
            }
            out
        };
        let remote = forwards("remote", &mut field);
        let local = forwards("local", &mut field);
        if errors.is_empty() && remote.is_empty() && local.is_empty() {
            errors.push((
                "remote".into(),
                "a tunnel needs at least one forward".into(),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Form {
            name,
            host,
            port: port.unwrap_or(22),
            user,
            remote,
            local,
            enabled,
        })
    }

    /// The form of `add`'s words, `-N [-p PORT] (-R|-L LISTEN:HOST:PORT)...
    /// [USER@]HOST` (what the form writes), checked field by field as the
    /// app checks its form.
    pub fn from_words(name: &str, args: &[String]) -> Result<Form, Vec<(String, String)>> {
        let shape = || {
            vec![(
                "arguments".to_string(),
                "the app's tunnels are -N [-p PORT] (-R|-L LISTEN:HOST:PORT)... [USER@]HOST"
                    .to_string(),
            )]
        };
        let (destination, rest) = args.split_last().ok_or_else(shape)?;
        let mut rest = rest.iter();
        if rest.next().map(String::as_str) != Some("-N") {
            return Err(shape());
        }
        let mut fields = serde_json::Map::new();
        fields.insert("name".into(), name.into());
        let (mut remote, mut local) = (Vec::new(), Vec::new());
        let mut first = true;
        while let Some(flag) = rest.next() {
            let value = rest.next().ok_or_else(shape)?;
            match flag.as_str() {
                "-p" if first => {
                    fields.insert("port".into(), value.as_str().into());
                }
                "-R" | "-L" => {
                    let (listen, to) = value.split_once(':').ok_or_else(shape)?;
                    let (host, port) = to.rsplit_once(':').ok_or_else(shape)?;
                    let host = host
                        .strip_prefix('[')
                        .and_then(|h| h.strip_suffix(']'))
                        .unwrap_or(host);
                    let forward = serde_json::json!({"listen": listen, "host": host, "port": port});
                    match flag.as_str() {
                        "-R" => remote.push(forward),
                        _ => local.push(forward),
                    }
                }
                _ => return Err(shape()),
            }
            first = false;
        }
        let (user, host) = destination
            .rsplit_once('@')
            .unwrap_or(("", destination.as_str()));
        fields.insert("host".into(), host.into());
        fields.insert("user".into(), user.into());
        fields.insert("remote".into(), remote.into());
        fields.insert("local".into(), local.into());
        Form::from_json(&Value::Object(fields))
    }

    /// The ssh arguments of the list line.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["-N".to_string()];
        if self.port != 22 {
            args.extend(["-p".to_string(), self.port.to_string()]);
        }
        for (flag, forwards) in [("-R", &self.remote), ("-L", &self.local)] {
            for f in forwards {
                args.push(flag.to_string());
                args.push(format!("{}:{}:{}", f.listen, forward_host(&f.host), f.port));
            }
        }
        args.push(if self.user.is_empty() {
            self.host.clone()
        } else {
            format!("{}@{}", self.user, self.host)
        });
        args
    }

    /// The list line, without its newline. Every word was checked to hold
    /// no blank, quote or `#`, so none needs quoting.
    pub fn line(&self) -> String {
        let kind = if self.enabled { "tunnel" } else { "disabled" };
        format!("{kind} {} {}", self.name, self.args().join(" "))
    }

    /// The form of a list line's arguments, where the form wrote them.
    pub fn from_args(name: &str, args: &[String], enabled: bool) -> Option<Form> {
        let (destination, rest) = args.split_last()?;
        let mut rest = rest.iter();
        if rest.next().map(String::as_str) != Some("-N") {
            return None;
        }
        let mut form = Form {
            name: name.to_string(),
            host: String::new(),
            port: 22,
            user: String::new(),
            remote: Vec::new(),
            local: Vec::new(),
            enabled,
        };
        let mut first = true;
        while let Some(flag) = rest.next() {
            let value = rest.next()?;
            match flag.as_str() {
                "-p" if first => form.port = value.parse().ok().filter(|&p| p > 0)?,
                "-R" | "-L" => {
                    let f = parse_forward(value)?;
                    if flag == "-R" {
                        form.remote.push(f);
                    } else {
                        form.local.push(f);
                    }
                }
                _ => return None,
            }
            first = false;
        }
        let (user, host) = match destination.rsplit_once('@') {
            Some((u, h)) => (u, h),
            None => ("", destination.as_str()),
        };
        (check_host(host).is_ok() && check_user(user).is_ok()).then_some(())?;
        form.user = user.to_string();
        form.host = host.to_string();
        (!form.remote.is_empty() || !form.local.is_empty()).then_some(form)
    }
}

fn parse_forward(spec: &str) -> Option<Forward> {
    let (listen, rest) = spec.split_once(':')?;
    let (host, port) = rest.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    check_host(host).ok()?;
    let port = port.parse().ok().filter(|&p| p > 0)?;
    let listen = listen.parse().ok().filter(|&p| p > 0)?;
    Some(Forward {
        listen,
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(json: &str) -> Result<Form, Vec<(String, String)>> {
        Form::from_json(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn a_good_form_and_its_line() {
        let f = form(
            r#"{"name":"home","host":"relay.example.net","port":2222,"user":"tunnel",
                "remote":[{"listen":2200,"host":"localhost","port":22}],
                "local":[{"listen":8080,"host":"::1","port":"80"}],"enabled":true}"#,
        )
        .unwrap();
        assert_eq!(
            f.line(),
            "tunnel home -N -p 2222 -R 2200:localhost:22 -L 8080:[::1]:80 tunnel@relay.example.net"
        );
        let args: Vec<String> = f.args();
        assert_eq!(Form::from_args("home", &args, true), Some(f.clone()));
        // The line reads back as the same words.
        let listed = list::parse(f.line().as_bytes());
        assert_eq!(listed.tunnels[0].args.len(), args.len());
        let off = Form {
            enabled: false,
            port: 22,
            user: String::new(),
            ..f
        };
        assert!(off.line().starts_with("disabled home -N -R "));
        assert!(off.line().ends_with(" relay.example.net"));
    }

    #[test]
    fn hostile_fields_are_refused_one_by_one() {
        let long = "a".repeat(10_000);
        for (json, field) in [
            (
                r#"{"name":"a b","host":"h","remote":[{"listen":1,"port":2}]}"#,
                "name",
            ),
            (
                r#"{"name":"-x","host":"$(id)","remote":[{"listen":1,"port":2}]}"#,
                "host",
            ),
            (
                r#"{"name":"x","host":"-oProxyCommand=id","remote":[{"listen":1,"port":2}]}"#,
                "host",
            ),
            (
                r#"{"name":"x","host":"h\nx","remote":[{"listen":1,"port":2}]}"#,
                "host",
            ),
            (
                r#"{"name":"x","host":"h","user":"'q'","remote":[{"listen":1,"port":2}]}"#,
                "user",
            ),
            (
                r#"{"name":"x","host":"h","user":"-l","remote":[{"listen":1,"port":2}]}"#,
                "user",
            ),
            (
                r#"{"name":"x","host":"h","port":0,"remote":[{"listen":1,"port":2}]}"#,
                "port",
            ),
            (
                r#"{"name":"x","host":"h","port":65536,"remote":[{"listen":1,"port":2}]}"#,
                "port",
            ),
            (
                r#"{"name":"x","host":"h","port":"22 -v","remote":[{"listen":1,"port":2}]}"#,
                "port",
            ),
            (
                r#"{"name":"x","host":"h","port":2.5,"remote":[{"listen":1,"port":2}]}"#,
                "port",
            ),
            (
                r#"{"name":"x","host":"h","remote":[{"listen":1,"host":"a#b","port":2}]}"#,
                "remote.0.host",
            ),
            (
                r#"{"name":"x","host":"h","remote":[{"listen":-1,"port":2}]}"#,
                "remote.0.listen",
            ),
            (r#"{"name":"x","host":"h","remote":"2200:x:22"}"#, "remote"),
            (r#"{"name":"x","host":"h"}"#, "remote"),
            (
                r#"{"name":"x","host":"h","remote":[{"listen":1,"port":2}],"extra":1}"#,
                "extra",
            ),
            (
                r#"{"name":"x","host":"h","remote":[{"listen":1,"port":2}],"enabled":"yes"}"#,
                "enabled",
            ),
        ] {
            let errors = form(json).unwrap_err();
            assert!(errors.iter().any(|(f, _)| f == field), "{json}: {errors:?}");
        }
        let errors = form(&format!(
            r#"{{"name":"x","host":"{long}","remote":[{{"listen":1,"port":2}}]}}"#
        ))
        .unwrap_err();
        assert_eq!(errors[0].0, "host");
        assert!(Form::from_json(&Value::Null).is_err());
    }

    #[test]
    fn add_words_are_checked_as_the_form_is() {
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let f = Form::from_words(
            "first",
            &words("-N -p 2222 -R 2200:localhost:22 u@relay.example.net"),
        )
        .unwrap();
        assert_eq!(
            f.line(),
            "tunnel first -N -p 2222 -R 2200:localhost:22 u@relay.example.net"
        );
        let f = Form::from_words("first", &words("-N -p 22 -L 8080:[::1]:80 relay")).unwrap();
        assert_eq!(f.line(), "tunnel first -N -L 8080:[::1]:80 relay");
        // What the shell check let through: refused with the form's words.
        for (args, field) in [
            ("-N -p 22 -R 2200:localhost:22 u@relay_1", "host"),
            ("-N -p 22 -R 2200:localhost:22 u@relay.", "host"),
            ("-N -p 22 -R 2200:localhost:22 -u@relay", "user"),
            ("-N -p 0 -R 2200:localhost:22 relay", "port"),
            ("-N -p 22 -R x:localhost:22 relay", "remote.0.listen"),
            ("-N -p 22 relay", "remote"),
            ("-N -o ProxyCommand=x -R 1:h:2 relay", "arguments"),
            ("-R 1:h:2 relay", "arguments"),
            ("-N -R 1:h relay", "arguments"),
        ] {
            let errors = Form::from_words("first", &words(args)).unwrap_err();
            assert!(errors.iter().any(|(f, _)| f == field), "{args}: {errors:?}");
        }
        assert!(Form::from_words("a b", &words("-N -R 1:h:2 relay")).is_err());
        assert!(Form::from_words("x", &[]).is_err());
    }

    #[test]
    fn lines_the_form_did_not_write() {
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        for args in [
            "-N -o ProxyCommand=nc -R 1:h:2 u@h",
            "-M 0 -N -R 1:h:2 u@h",
            "-N u@h",
            "-N -R 1:h:2 -p 22 u@h",
            "-N -R 1:h u@h",
            "-N -R 1:h:2 -v u@h",
        ] {
            assert_eq!(Form::from_args("t", &words(args), true), None, "{args}");
        }
        assert!(Form::from_args("t", &words("-N -R 2200:localhost:22 u@relay"), true).is_some());
    }
}
