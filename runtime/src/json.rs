//! The fast path of reading a record's fields: one pass over a JSON object
//! that finds each field's name and raw value text, validating as it goes.
//!
//! serde_json into raw values drives a visitor per field and scans each value
//! twice: about a third of decoding a record here (perf, the 1M retail
//! file), and decoding is most of a small model's backfill. Records are flat
//! objects of short strings, numbers and literals, so this reads them
//! directly. It declines (returns `None`) anything it does not handle in
//! full — an escape anywhere, deep nesting, and any text that is not valid
//! JSON — and the caller then asks serde_json, which reads it or says what
//! is wrong. So what it accepts, serde_json
//! accepts too, with the same fields, and errors read as they always did
//! (the property test below holds it to that).

/// Nesting deeper than this is left to serde_json (whose limit is 128).
const MAX_DEPTH: u32 = 16;

/// The fields of the JSON object `text`, in order: each given to `field`
/// as it is read, (name, the value's text); `None` if serde_json is to read
/// `text`, whose fields must then be taken from it instead.
pub fn each_field<'a>(text: &'a str, mut field: impl FnMut(&'a str, &'a str)) -> Option<()> {
    let mut cursor = Cursor::new(text, 0);
    cursor.whitespace();
    cursor.object(0, |name, value| field(&text[name.0..name.1], &text[value.0..value.1]))?;
    cursor.whitespace();
    (cursor.at == text.len()).then_some(())
}

/// A position in a JSON text, read forward. The decoder's one-pass readings
/// of events and entities walk a line with it too, so all read JSON by one
/// grammar.
pub(crate) struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// At byte `at` of `text`.
    pub(crate) fn new(text: &'a str, at: usize) -> Cursor<'a> {
        Cursor { text: text.as_bytes(), at }
    }

    /// The byte offset read up to.
    pub(crate) fn offset(&self) -> usize {
        self.at
    }

    pub(crate) fn at_end(&self) -> bool {
        self.at >= self.text.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    pub(crate) fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    /// Steps over `bytes` if the text goes on with them.
    #[inline(always)]
    pub(crate) fn eat_all(&mut self, bytes: &[u8]) -> bool {
        let found = self.text[self.at..].starts_with(bytes);
        if found {
            self.at += bytes.len();
        }
        found
    }

    /// A string without escapes (at its opening quote), as the byte range
    /// of its contents.
    #[inline(always)]
    pub(crate) fn string_contents(&mut self) -> Option<(usize, usize)> {
        let start = self.at + 1;
        self.string()?;
        Some((start, self.at - 1))
    }

    /// A string (at its opening quote), escapes and all: the byte range of
    /// its contents and `false`, or, if it has escapes, of its whole text,
    /// quotes included, and `true` (serde_json reads those, and says if one
    /// is wrong). Control characters are no JSON string's.
    #[inline(always)]
    pub(crate) fn any_string(&mut self) -> Option<(usize, usize, bool)> {
        let start = self.at;
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            let rest = self.text.get(self.at..)?;
            let end = string_end(rest)?;
            match rest[end] {
                b'"' => {
                    self.at += end + 1;
                    break;
                }
                // Whatever byte it escapes is stepped over: a quote ends no
                // string there. (A backslash last is no string's end.)
                b'\\' if self.at + end + 2 <= self.text.len() => {
                    escaped = true;
                    self.at += end + 2;
                }
                _ => return None,
            }
        }
        Some(if escaped { (start, self.at, true) } else { (start + 1, self.at - 1, false) })
    }

    /// Any value, nested at most `MAX_DEPTH` deep below it, strings in it
    /// without escapes (`None` otherwise).
    pub(crate) fn skip_value(&mut self) -> Option<()> {
        self.value(0)
    }

    /// A number, `true`, `false` or `null`.
    pub(crate) fn scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => None,
        }
    }

    pub(crate) fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// An object (at its `{`), calling `member` with each member's name
    /// (without quotes) and value, as byte ranges.
    fn object(&mut self, depth: u32, mut member: impl FnMut((usize, usize), (usize, usize))) -> Option<()> {
        self.eat(b'{')?;
        self.whitespace();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let start = self.at;
            self.string()?;
            let name = (start + 1, self.at - 1);
            self.whitespace();
            self.eat(b':')?;
            self.whitespace();
            let start = self.at;
            self.value(depth)?;
            member(name, (start, self.at));
            if !self.more_before(b'}')? {
                return Some(());
            }
        }
    }

    fn list(&mut self, depth: u32) -> Option<()> {
        self.eat(b'[')?;
        self.whitespace();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(depth)?;
            if !self.more_before(b']')? {
                return Some(());
            }
        }
    }

    /// After a member or an element: a comma (more follow: true) or the
    /// `close` that ends them (false).
    pub(crate) fn more_before(&mut self, close: u8) -> Option<bool> {
        self.whitespace();
        let next = self.peek()?;
        self.at += 1;
        if next == b',' {
            self.whitespace();
            Some(true)
        } else {
            (next == close).then_some(false)
        }
    }

    /// A value of an object or list at nesting `depth`.
    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' if depth < MAX_DEPTH => self.object(depth + 1, |_, _| {}),
            b'[' if depth < MAX_DEPTH => self.list(depth + 1),
            _ => self.scalar(),
        }
    }

    /// A string without escapes (at its opening quote; ends past the closing
    /// one). JSON forbids control characters in strings.
    #[inline(always)]
    fn string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        let rest = &self.text[self.at..];
        let end = string_end(rest)?;
        (rest[end] == b'"').then(|| self.at += end + 1)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    fn word(&mut self, word: &[u8]) -> Option<()> {
        self.text[self.at..].starts_with(word).then(|| self.at += word.len())
    }
}

/// Where the first `"`, `\` or control character is in `bytes`, looked for
/// eight bytes at a time. In each word, a byte's high bit is set in `found`
/// if it is zero after xor with a quote or a backslash, or below 0x20; a
/// borrow can also set bits above a match, never below the first, so the
/// lowest set bit is the first match.
pub(crate) fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().ok()?);
        let quote = zero_bytes(x ^ (ONES * u64::from(b'"')));
        let backslash = zero_bytes(x ^ (ONES * u64::from(b'\\')));
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let found = (quote | backslash | control) & HIGH_BITS;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = words.remainder().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(at + rest)
}

#[cfg(test)]
mod tests {
    use super::{each_field, string_end};

    /// The fields `each_field` reads, collected.
    fn object_fields(text: &str) -> Option<Vec<(&str, &str)>> {
        let mut fields = Vec::new();
        each_field(text, |name, value| fields.push((name, value)))?;
        Some(fields)
    }
    use proptest::prelude::*;

    /// What serde_json reads `text` as: its fields' names and raw values.
    fn serde_fields(text: &str) -> Option<Vec<(String, String)>> {
        // The raw values, in order, as the decoder's own serde path reads them.
        struct Raw(Vec<(String, String)>);
        impl<'de> serde::Deserialize<'de> for Raw {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Raw;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<Raw, M::Error> {
                        let mut fields = Vec::new();
                        while let Some(k) = m.next_key::<String>()? {
                            let v: &serde_json::value::RawValue = m.next_value()?;
                            fields.push((k, v.get().to_string()));
                        }
                        Ok(Raw(fields))
                    }
                }
                d.deserialize_map(V)
            }
        }
        serde_json::from_str::<Raw>(text).ok().map(|r| r.0)
    }

    fn owned(fields: Vec<(&str, &str)>) -> Vec<(String, String)> {
        fields.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn records_are_read_in_one_pass() {
        let line = r#"{"event":"order","id":"o-1","at":"2026-09-29T09:01:17.187Z","amount":348.00,"n":-1e+3,"ok":true,"x":null}"#;
        let fields = object_fields(line).unwrap();
        assert_eq!(fields[0], ("event", r#""order""#));
        assert_eq!(fields[3], ("amount", "348.00"));
        assert_eq!(fields[4], ("n", "-1e+3"));
        assert_eq!(owned(fields), serde_fields(line).unwrap());
        let entity = " {\"entity\" : \"store\",\t\"id\":\"s1\", \"set\":{\"city\":\"Xi'an\",\"tags\":[1,[],{}]}}\r\n";
        let fields = object_fields(entity).unwrap();
        assert_eq!(fields[2], ("set", r#"{"city":"Xi'an","tags":[1,[],{}]}"#));
        assert_eq!(owned(fields), serde_fields(entity).unwrap());
    }

    #[test]
    fn a_string_with_escapes_is_found_whole() {
        fn read(text: &str) -> Option<(&str, bool, usize)> {
            let mut cursor = super::Cursor::new(text, 0);
            let (start, end, escaped) = cursor.any_string()?;
            Some((&text[start..end], escaped, cursor.offset()))
        }
        assert_eq!(read(r#""abc","#), Some(("abc", false, 5)));
        assert_eq!(read(r#""a\"b","#), Some((r#""a\"b""#, true, 6)));
        assert_eq!(read(r#""a\\","#), Some((r#""a\\""#, true, 5)));
        assert_eq!(read(r#""\\\"","#), Some((r#""\\\"""#, true, 6)));
        assert_eq!(read(r#""\u00e9日""#), Some((r#""\u00e9日""#, true, 11)));
        for unfinished in [r#""a\"#, r#""a\""#, r#""a"#, "\"a\tb\"", "x"] {
            assert_eq!(read(unfinished), None, "{unfinished}");
        }
    }

    #[test]
    fn anything_unusual_is_left_to_serde_json() {
        for text in [
            r#"{"a":"tab\there"}"#,
            r#"{"a\"b":1}"#,
            r#"{"a":"\u00e9"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":1}x"#,
            r#"{"a":[1,]}"#,
            r#"[1]"#,
            r#""a""#,
            r#"{"a":1"#,
            "{\"a\":\"line\nbreak\"}",
            "",
        ] {
            assert_eq!(object_fields(text), None, "{text}");
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(20), "]".repeat(20));
        assert_eq!(object_fields(&deep), None);
        assert!(serde_fields(&deep).is_some(), "serde_json reads it instead");
    }

    /// Short texts built from JSON's pieces, most of them near-valid.
    fn json_ish() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\"a\"",
            "\"b\"",
            "\"x y\"",
            "\"\\n\"",
            "0",
            "12",
            "-3",
            "1.5",
            "2e9",
            "-0.0E-1",
            "01",
            "1.",
            "true",
            "false",
            "null",
            "nul",
            "\"",
            "\t",
            "\u{e9}",
            "\"\u{e9}\"",
        ]);
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    /// A valid object of a few fields, some of them nested.
    fn object() -> impl Strategy<Value = String> {
        let value = prop::sample::select(vec![
            "\"v\"",
            "\"\"",
            "-12.5e3",
            "0",
            "true",
            "null",
            "[]",
            "[1, \"a\", {\"k\": false}]",
            "{\"n\":{}}",
        ]);
        prop::collection::vec((prop::sample::select(vec!["a", "id", "at", "a"]), value), 0..6).prop_map(|fields| {
            let members: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
            format!(" {{{}}} ", members.join(","))
        })
    }

    proptest! {
        #[test]
        fn string_end_is_the_first_quote_backslash_or_control_byte(
            bytes in prop::collection::vec(prop_oneof![6 => Just(b'a'), 1 => any::<u8>()], 0..40)
        ) {
            let first = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(string_end(&bytes), first);
        }

        #[test]
        fn accepts_only_what_serde_json_reads_the_same(text in json_ish()) {
            if let Some(fields) = object_fields(&text) {
                prop_assert_eq!(Some(owned(fields)), serde_fields(&text));
            }
        }

        #[test]
        fn reads_every_valid_object_without_escapes(text in object()) {
            let fields = object_fields(&text);
            prop_assert!(fields.is_some(), "declined {}", text);
            prop_assert_eq!(fields.map(owned), serde_fields(&text));
        }
    }
}
