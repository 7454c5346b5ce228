//! Hand-written JSON output: strings (escaped), integers, and exact decimals.
//!
//! No serde and no float formatting: every number we write is an integer or a
//! fixed-point value held as an integer (cents, thousandths), so the text is the
//! same on every platform and is what a reader should parse back exactly.

use crate::time::{push_padded, push_two};

/// Appends `s` as a JSON string literal, escaping what JSON requires
/// (`"`, `\` and control characters). Non-ASCII text is written as UTF-8.
pub(crate) fn push_str(buf: &mut Vec<u8>, s: &str) {
    push_utf8(buf, s.as_bytes());
}

/// [`push_str`] for text already held as bytes; `bytes` must be valid UTF-8.
pub(crate) fn push_utf8(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    buf.push(b'"');
    let mut clean_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[clean_from..i]);
        if short.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        } else {
            buf.extend_from_slice(short);
        }
        clean_from = i + 1;
    }
    buf.extend_from_slice(&bytes[clean_from..]);
    buf.push(b'"');
}

/// Appends an entity key such as `"u0000042"`: an ASCII prefix and a zero-padded
/// number, which never need escaping.
pub(crate) fn push_key(buf: &mut Vec<u8>, prefix: &str, n: u64, width: usize) {
    debug_assert!(prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    buf.push(b'"');
    buf.extend_from_slice(prefix.as_bytes());
    push_padded(buf, n, width);
    buf.push(b'"');
}

pub(crate) fn push_u64(buf: &mut Vec<u8>, v: u64) {
    push_padded(buf, v, 1);
}

pub(crate) fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_padded(buf, v.unsigned_abs(), 1);
}

/// Appends a non-negative amount held in hundredths with exactly two decimals:
/// `12345` -> `123.45`. With `as_string` it is a JSON string (`"123.45"`), else a
/// JSON number; EQL accepts both for decimals.
pub(crate) fn push_cents(buf: &mut Vec<u8>, cents: u64, as_string: bool) {
    if as_string {
        buf.push(b'"');
    }
    push_u64(buf, cents / 100);
    buf.push(b'.');
    push_two(buf, (cents % 100) as u32);
    if as_string {
        buf.push(b'"');
    }
}

/// Appends a float held in thousandths as a JSON number with at least one and at
/// most three decimals: `850` -> `0.85`, `12000` -> `12.0`, `1234` -> `1.234`.
pub(crate) fn push_thousandths(buf: &mut Vec<u8>, thousandths: u64) {
    push_u64(buf, thousandths / 1000);
    buf.push(b'.');
    let mut frac = thousandths % 1000;
    let mut digits = 3;
    while digits > 1 && frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    push_padded(buf, frac, digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut buf = Vec::new();
        f(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(s(|b| push_str(b, "Shanghai")), r#""Shanghai""#);
        assert_eq!(s(|b| push_str(b, "")), r#""""#);
        assert_eq!(s(|b| push_str(b, "a\"b\\c\nd\te\u{1}f\u{1f}")), r#""a\"b\\c\nd\te\u0001f\u001f""#);
        assert_eq!(s(|b| push_str(b, "王芳 Xi'an /p?x=1")), "\"王芳 Xi'an /p?x=1\"");
    }

    #[test]
    fn numbers() {
        assert_eq!(s(|b| push_i64(b, -1_795_132_800_000)), "-1795132800000");
        assert_eq!(s(|b| push_i64(b, 0)), "0");
        assert_eq!(s(|b| push_u64(b, u64::MAX)), "18446744073709551615");
        assert_eq!(s(|b| push_cents(b, 9950, false)), "99.50");
        assert_eq!(s(|b| push_cents(b, 5, true)), "\"0.05\"");
        assert_eq!(s(|b| push_thousandths(b, 850)), "0.85");
        assert_eq!(s(|b| push_thousandths(b, 12_000)), "12.0");
        assert_eq!(s(|b| push_thousandths(b, 1_234)), "1.234");
        assert_eq!(s(|b| push_thousandths(b, 5)), "0.005");
        assert_eq!(s(|b| push_key(b, "u", 42, 7)), "\"u0000042\"");
    }
}
