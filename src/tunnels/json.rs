//! A small JSON reader for the bodies the tunnel app posts: objects,
//! arrays, strings, numbers, booleans and null, nested at most 8 deep. It
//! needs no crate; what it does not read is an error, never a panic.

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

const DEPTH: usize = 8;

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

/// Reads `text` as one JSON value.
pub fn parse(text: &[u8]) -> Result<Value, String> {
    let mut r = Reader { text, at: 0 };
    let value = r.value(0)?;
    r.blanks();
    if r.at != text.len() {
        return Err(format!("unexpected text at byte {}", r.at));
    }
    Ok(value)
}

impl Reader<'_> {
    fn blanks(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|b| b" \t\r\n".contains(b))
        {
            self.at += 1;
        }
    }

    fn expect(&mut self, word: &[u8]) -> Result<(), String> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(format!("unexpected text at byte {}", self.at))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > DEPTH {
            return Err("nested too deep".into());
        }
        self.blanks();
        match self.text.get(self.at) {
            None => Err("the text ends too early".into()),
            Some(b'{') => {
                self.at += 1;
                let mut pairs: Vec<(String, Value)> = Vec::new();
                self.blanks();
                if self.text.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(Value::Object(pairs));
                }
                loop {
                    self.blanks();
                    let key = self.string()?;
                    self.blanks();
                    self.expect(b":")?;
                    let value = self.value(depth + 1)?;
                    if pairs.iter().any(|(k, _)| *k == key) {
                        return Err(format!("\"{key}\" is given twice"));
                    }
                    pairs.push((key, value));
                    self.blanks();
                    match self.text.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Value::Object(pairs));
                        }
                        _ => return Err(format!("unexpected text at byte {}", self.at)),
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.blanks();
                if self.text.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.blanks();
                    match self.text.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err(format!("unexpected text at byte {}", self.at)),
                    }
                }
            }
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.expect(b"true").map(|()| Value::Bool(true)),
            Some(b'f') => self.expect(b"false").map(|()| Value::Bool(false)),
            Some(b'n') => self.expect(b"null").map(|()| Value::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                while self
                    .text
                    .get(self.at)
                    .is_some_and(|b| b"+-.eE0123456789".contains(b))
                {
                    self.at += 1;
                }
                std::str::from_utf8(&self.text[start..self.at])
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                    .filter(|n| n.is_finite())
                    .map(Value::Number)
                    .ok_or_else(|| format!("not a number at byte {start}"))
            }
            Some(_) => Err(format!("unexpected text at byte {}", self.at)),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("a bad \\u escape at byte {}", self.at))?;
        self.at += 4;
        Ok(digits)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b"\"")?;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.text.get(self.at) else {
                return Err("a string is not closed".into());
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.text.get(self.at) else {
                        return Err("a string is not closed".into());
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let first = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&first) {
                                self.expect(b"\\u")?;
                                let second = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&second) {
                                    return Err("a bad surrogate pair".into());
                                }
                                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
                            } else {
                                first
                            };
                            char::from_u32(code).ok_or("a bad \\u escape")?
                        }
                        _ => return Err(format!("a bad escape at byte {}", self.at - 1)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err("a control character in a string".into()),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| "a string is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let v = parse(br#" {"a": [1, -2.5e1, true, false, null], "b": "x\"\\\n\u00e9\ud83d\ude00", "c": {}} "#)
            .unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Value::Array(vec![
                Value::Number(1.0),
                Value::Number(-25.0),
                Value::Bool(true),
                Value::Bool(false),
                Value::Null
            ]))
        );
        assert_eq!(v.get("b").and_then(Value::as_str), Some("x\"\\\né😀"));
        assert_eq!(v.get("c"), Some(&Value::Object(vec![])));
    }

    #[test]
    fn what_is_refused() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"[1 2]",
            b"\"open",
            b"\"\x01\"",
            b"\"\\x\"",
            b"\"\\ud800\"",
            b"1e999",
            b"tru",
            b"{\"a\":1,\"a\":2}",
            b"\"\xff\"",
            b"{} x",
            b"[[[[[[[[[[1]]]]]]]]]]",
            b"--1",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
