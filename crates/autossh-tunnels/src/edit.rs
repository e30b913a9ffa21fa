//! Changes to the list's text that keep everything else as it is: the
//! comments, the blank lines, the lines of other tunnels, their line ends.

use crate::list;

/// The lines of `text`, each with its own end.
fn lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|&b| b == b'\n').collect()
}

/// Whether `line` is the `tunnel`/`disabled` line of `name`, or (with
/// `settings`) one of its `env` lines.
fn names(line: &[u8], name: &str, settings: bool) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(words) = list::words(line) else {
        return false;
    };
    match (words.first().map(Vec::as_slice), words.get(1)) {
        (Some(b"tunnel" | b"disabled"), Some(n)) => n == name.as_bytes(),
        (Some(b"env"), Some(n)) => settings && n == name.as_bytes(),
        _ => false,
    }
}

/// The text with `name`'s line replaced by `line`, or `line` added at the
/// end where there is none.
pub fn put(text: &[u8], name: &str, line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + line.len() + 1);
    let mut done = false;
    for l in lines(text) {
        if !done && names(l, name, false) {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(if l.ends_with(b"\r\n") { b"\r\n" } else { b"\n" });
            done = true;
        } else {
            out.extend_from_slice(l);
        }
    }
    if !done {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The text without `name`'s lines (its tunnel line and its settings).
pub fn remove(text: &[u8], name: &str) -> Vec<u8> {
    lines(text)
        .into_iter()
        .filter(|l| !names(l, name, true))
        .flatten()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"# mine\r\ntunnel a -N x@y\r\nenv a AUTOSSH_POLL=9\n\n#tunnel b -N old\ntunnel b -o 'A B' z@w\nodd line\ntunnel c -N q@r";

    #[test]
    fn replaced_in_place_or_added() {
        let t = put(TEXT, "a", "disabled a -N -R 1:h:2 x@y");
        assert_eq!(
            t,
            b"# mine\r\ndisabled a -N -R 1:h:2 x@y\r\nenv a AUTOSSH_POLL=9\n\n#tunnel b -N old\ntunnel b -o 'A B' z@w\nodd line\ntunnel c -N q@r"
        );
        let t = put(TEXT, "c", "tunnel c -N -L 1:h:2 q@r");
        assert!(t.ends_with(b"odd line\ntunnel c -N -L 1:h:2 q@r\n"));
        let t = put(TEXT, "new", "tunnel new -N -L 1:h:2 n@m");
        assert!(t.starts_with(TEXT));
        assert!(t.ends_with(b"q@r\ntunnel new -N -L 1:h:2 n@m\n"));
        assert_eq!(put(b"", "n", "tunnel n x"), b"tunnel n x\n");
    }

    #[test]
    fn removed_with_its_settings() {
        assert_eq!(
            remove(TEXT, "a"),
            b"# mine\r\n\n#tunnel b -N old\ntunnel b -o 'A B' z@w\nodd line\ntunnel c -N q@r"
        );
        assert_eq!(
            remove(TEXT, "b").len(),
            TEXT.len() - "tunnel b -o 'A B' z@w\n".len()
        );
        assert_eq!(remove(TEXT, "nosuch"), TEXT);
    }
}
