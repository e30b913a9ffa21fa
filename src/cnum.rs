//! Numbers read the way C's `strtol` and `strtoul` read them with base 0
//! (SPEC §1 port parsing, §3 variables): leading blanks, an optional sign,
//! then `0x` for hexadecimal, a leading `0` for octal, decimal otherwise.

/// The result of scanning a number prefix: its value and how many bytes it used.
/// `used == 0` means no digits were found (C's `endptr == nptr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scanned {
    negative: bool,
    magnitude: u128,
    overflow: bool,
    used: usize,
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn digit_value(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// Scans like `strto*(s, &end, 0)`; the magnitude saturates once it no longer fits
/// 64 bits (the `overflow` flag records that).
fn scan(s: &[u8]) -> Scanned {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let mut base = 10;
    if i < s.len() && s[i] == b'0' {
        let hex_prefix = i + 1 < s.len()
            && (s[i + 1] == b'x' || s[i + 1] == b'X')
            && i + 2 < s.len()
            && digit_value(s[i + 2]).is_some();
        if hex_prefix {
            base = 16;
            i += 2;
        } else {
            base = 8;
        }
    }
    let start = i;
    let mut magnitude: u128 = 0;
    let mut overflow = false;
    while i < s.len() {
        match digit_value(s[i]) {
            Some(d) if d < base => {
                magnitude = magnitude * u128::from(base) + u128::from(d);
                if magnitude > u128::from(u64::MAX) {
                    overflow = true;
                    magnitude = u128::from(u64::MAX) + 1;
                }
                i += 1;
            }
            _ => break,
        }
    }
    let used = if i == start { 0 } else { i };
    Scanned {
        negative,
        magnitude,
        overflow,
        used,
    }
}

/// A whole string read as a C `int` through `strtol`: `None` for an empty string,
/// trailing junk, or a value outside 32 bits (SPEC §3, §9.10).
pub fn parse_int(s: &[u8]) -> Option<i32> {
    let n = scan(s);
    if n.used == 0 || n.used != s.len() || n.overflow {
        return None;
    }
    let value = if n.negative {
        -(n.magnitude as i128)
    } else {
        n.magnitude as i128
    };
    i32::try_from(value).ok()
}

/// A whole string read through `strtoul` (SPEC §1): `None` for no digits or trailing
/// junk; otherwise the `unsigned long` C would return (a minus sign wraps, overflow
/// gives the maximum).
pub fn parse_ulong(s: &[u8]) -> Option<u64> {
    let n = scan(s);
    if n.used == 0 || n.used != s.len() {
        return None;
    }
    if n.overflow {
        return Some(u64::MAX);
    }
    let m = n.magnitude as u64;
    Some(if n.negative { m.wrapping_neg() } else { m })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_bases_and_signs() {
        assert_eq!(parse_int(b"600"), Some(600));
        assert_eq!(parse_int(b"0x1e"), Some(30));
        assert_eq!(parse_int(b"0X1E"), Some(30));
        assert_eq!(parse_int(b"010"), Some(8));
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b" +5"), Some(5));
        assert_eq!(parse_int(b"\t-5"), Some(-5));
        assert_eq!(parse_int(b"-0"), Some(0));
    }

    #[test]
    fn int_rejects_junk_and_range() {
        for bad in [
            &b""[..],
            b" ",
            b"+",
            b"-",
            b"08",
            b"0x",
            b"0xg",
            b"5 ",
            b"5s",
            b"abc",
            b"2147483648",
            b"-2147483649",
            b"4294967301",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_int(b"2147483647"), Some(i32::MAX));
        assert_eq!(parse_int(b"-2147483648"), Some(i32::MIN));
    }

    #[test]
    fn ulong_like_strtoul() {
        assert_eq!(parse_ulong(b"20000"), Some(20000));
        assert_eq!(parse_ulong(b"0x4e20"), Some(20000));
        assert_eq!(parse_ulong(b"047040"), Some(20000));
        assert_eq!(parse_ulong(b" 20000"), Some(20000));
        assert_eq!(parse_ulong(b"+20000"), Some(20000));
        assert_eq!(parse_ulong(b"-1"), Some(u64::MAX));
        assert_eq!(parse_ulong(b"99999999999999999999"), Some(u64::MAX));
        assert_eq!(parse_ulong(b"20000 "), None);
        assert_eq!(parse_ulong(b""), None);
        assert_eq!(parse_ulong(b"abc"), None);
    }
}
