//! The state file's format (AUTOSSH_STATEFILE, `statefile`): how a value
//! is kept on one line, and the file read back into its fields. Pure: the
//! tunnel-list program reads state files through it without the rest of
//! autossh.

/// A value on one line: `\\` for a backslash, `\xNN` for a control byte.
pub fn escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

/// A state file as read back (by the tunnel-list program): every key's
/// value, unescaped, `None` where it is empty or missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub state: Option<String>,
    pub since: Option<i64>,
    pub pid: Option<u32>,
    pub ssh_pid: Option<u32>,
    pub starts: Option<u64>,
    /// Unix time, and whether it passed.
    pub last_test: Option<(i64, bool)>,
    pub reason: Option<Vec<u8>>,
    pub message: Option<Vec<u8>>,
    pub next_start: Option<i64>,
    pub exit_status: Option<i32>,
}

/// The value as it was before [`escape`]; a broken escape is kept as it
/// stands.
pub fn unescape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if b == b'\\' && value.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
            continue;
        }
        if b == b'\\' && value.get(i + 1) == Some(&b'x') {
            let hex = value
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Reads a state file's text; unknown keys and lines without `=` are
/// passed over, so that a newer autossh's file still reads.
pub fn parse(text: &[u8]) -> Record {
    let mut record = Record::default();
    for line in text.split(|&b| b == b'\n') {
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            continue;
        };
        let value = unescape(&line[eq + 1..]);
        if value.is_empty() {
            continue;
        }
        let text = std::str::from_utf8(&value).ok().map(str::trim);
        let number = |t: Option<&str>| t.and_then(|t| t.parse::<i64>().ok());
        match &line[..eq] {
            b"state" => record.state = text.map(String::from),
            b"since" => record.since = number(text),
            b"pid" => record.pid = text.and_then(|t| t.parse().ok()),
            b"ssh_pid" => record.ssh_pid = text.and_then(|t| t.parse().ok()),
            b"starts" => record.starts = text.and_then(|t| t.parse().ok()),
            b"last_test" => {
                record.last_test = text.and_then(|t| {
                    let (at, outcome) = t.split_once(' ')?;
                    Some((at.parse().ok()?, outcome == "passed"))
                })
            }
            b"reason" => record.reason = Some(value),
            b"message" => record.message = Some(value),
            b"next_start" => record.next_start = number(text),
            b"exit_status" => record.exit_status = text.and_then(|t| t.parse().ok()),
            _ => {}
        }
    }
    record
}
