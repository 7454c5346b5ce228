//! The EQL lexer: source text -> `(start, Tok, end)` triples for the lalrpop parser.
//!
//! Hand-written rather than lalrpop's built-in lexer for three reasons: keywords are
//! case-insensitive while identifiers are not, string escapes and duration units need
//! checking with precise spans, and one file must report *every* lexical error.
//!
//! Recovery: after an error the lexer carries on. Where the intended token is obvious
//! (an unterminated string, a bad escape, an unknown duration unit, an oversized
//! integer, `==`) it yields the error *and then* a stand-in token, so the parser sees a
//! well-formed statement and does not pile a syntax error on top. Characters that start
//! no token are skipped as one run. A string ends on its line, so an unterminated one
//! spoils that line only.
//!
//! [`LexError`] is the grammar's declared error type, but `parser.rs` collects the
//! errors itself and feeds lalrpop only tokens: lalrpop cannot recover from a lexer
//! error.

use crate::ast::Span;
use crate::diagnostic::Diagnostic;
use std::collections::VecDeque;

/// A token. Keywords carry no text: the parser slices the source when it needs the
/// spelling (a soft keyword such as `order` used as a name keeps its case).
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    // Keywords, matched case-insensitively.
    Entity,
    Event,
    Key,
    Tag,
    Segment,
    On,
    Select,
    From,
    Where,
    Group,
    By,
    Order,
    Asc,
    Desc,
    Limit,
    Within,
    And,
    Or,
    Not,
    In,
    Is,
    Null,
    True,
    False,
    Case,
    When,
    Then,
    Else,
    End,
    As,
    // Names and literals.
    Ident(String),
    /// Digits without a fraction. Up to 2^63 so that `-9223372036854775808` can be
    /// folded into `i64::MIN`; the parser rejects 2^63 when it is not negated.
    Int(u64),
    /// Digits with a fraction, as written (`3.14`).
    Number(String),
    /// A string literal with its escapes resolved.
    Str(String),
    /// A duration in milliseconds (`30d`).
    Duration(u64),
    // Punctuation.
    Semi,
    Colon,
    Comma,
    Dot,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Question,
    Star,
    Plus,
    Minus,
    Slash,
    Percent,
    Eq,
    /// `!=` or `<>`
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Tok {
    pub fn is_keyword(&self) -> bool {
        KEYWORDS.iter().any(|(_, keyword)| keyword == self)
    }
}

/// The keywords, lowercase, with their tokens.
const KEYWORDS: &[(&str, Tok)] = &[
    ("entity", Tok::Entity),
    ("event", Tok::Event),
    ("key", Tok::Key),
    ("tag", Tok::Tag),
    ("segment", Tok::Segment),
    ("on", Tok::On),
    ("select", Tok::Select),
    ("from", Tok::From),
    ("where", Tok::Where),
    ("group", Tok::Group),
    ("by", Tok::By),
    ("order", Tok::Order),
    ("asc", Tok::Asc),
    ("desc", Tok::Desc),
    ("limit", Tok::Limit),
    ("within", Tok::Within),
    ("and", Tok::And),
    ("or", Tok::Or),
    ("not", Tok::Not),
    ("in", Tok::In),
    ("is", Tok::Is),
    ("null", Tok::Null),
    ("true", Tok::True),
    ("false", Tok::False),
    ("case", Tok::Case),
    ("when", Tok::When),
    ("then", Tok::Then),
    ("else", Tok::Else),
    ("end", Tok::End),
    ("as", Tok::As),
];

/// Duration units and their length in milliseconds.
const DURATION_UNITS: &[(&str, u64)] =
    &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000)];

const UNITS_HELP: &str = "duration units are `ms`, `s`, `m`, `h`, `d` and `w`, as in `30d`";

pub type Spanned = (usize, Tok, usize);

/// What went wrong while lexing, with the span it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    pub kind: LexErrorKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexErrorKind {
    /// A run of characters that start no token.
    UnexpectedChars(String),
    /// `==`, which SQL users may type for `=`.
    DoubleEquals,
    /// `//`, which users may type for a comment.
    SlashComment,
    /// The span is the opening quote.
    UnterminatedString,
    /// The span is the `/*`.
    UnterminatedComment,
    UnknownEscape(String),
    InvalidUnicodeEscape,
    IntTooLarge,
    UnknownDurationUnit(String),
    DurationTooLarge,
    /// A number with a fraction directly followed by letters (`1.5d`).
    NumberSuffix(String),
}

impl LexError {
    fn new(kind: LexErrorKind, start: usize, end: usize) -> Self {
        LexError { kind, span: Span::new(start, end) }
    }

    pub fn to_diagnostic(&self) -> Diagnostic {
        use LexErrorKind::*;
        let d = |message: String| Diagnostic::error(message, self.span);
        match &self.kind {
            UnexpectedChars(text) => {
                let noun = if text.chars().count() == 1 { "character" } else { "characters" };
                let diagnostic = d(format!("unexpected {noun} `{text}`"));
                match unexpected_char_help(text) {
                    Some(help) => diagnostic.with_help(help),
                    None => diagnostic,
                }
            }
            DoubleEquals => d("`==` is not an operator".into()).with_help("compare with a single `=`"),
            SlashComment => d("`//` does not start a comment".into())
                .with_help("comments start with `--` or are written `/* .. */`"),
            UnterminatedString => d("unterminated string".into())
                .with_label("this string is never closed")
                .with_help("close the string with a matching quote")
                .with_note("A string ends on the line it starts on; write `\\n` for a line break."),
            UnterminatedComment => d("unterminated block comment".into())
                .with_label("this comment is never closed")
                .with_help("close the comment with `*/`"),
            UnknownEscape(text) => d(format!("unknown escape `{text}`"))
                .with_help("the escapes are `\\n`, `\\t`, `\\r`, `\\0`, `\\\\`, `\\\"`, `\\'` and `\\u{..}`"),
            InvalidUnicodeEscape => {
                d("invalid unicode escape".into()).with_help("write one to six hex digits, as in `\\u{e9}`")
            }
            IntTooLarge => d("integer literal is too large".into())
                .with_label("does not fit in an int")
                .with_note("The largest int is 9223372036854775807."),
            UnknownDurationUnit(unit) => {
                d(format!("unknown duration unit `{unit}`")).with_label("not a duration unit").with_help(UNITS_HELP)
            }
            DurationTooLarge => {
                d("duration is too large".into()).with_note("A duration must fit in 9223372036854775807 milliseconds.")
            }
            NumberSuffix(suffix) => {
                let diagnostic = d(format!("unexpected `{suffix}` after a number"));
                if DURATION_UNITS.iter().any(|(u, _)| u == suffix) {
                    diagnostic.with_help("a duration is a whole number of a unit, as in `36h`")
                } else {
                    diagnostic
                }
            }
        }
    }
}

fn unexpected_char_help(text: &str) -> Option<&'static str> {
    match text {
        "!" => Some("use `not` to negate, or `!=` to compare"),
        "&" | "&&" => Some("use `and`"),
        "|" | "||" => Some("use `or`"),
        "#" => Some("comments start with `--`"),
        "`" => Some("names are written without quotes; strings use `\"` or `'`"),
        _ if text.chars().any(|c| matches!(c, '\u{2018}' | '\u{2019}' | '\u{201C}' | '\u{201D}')) => {
            Some("use a straight quote (`\"` or `'`) instead of a typographic one")
        }
        _ => None,
    }
}

/// The lexer, an iterator in the shape lalrpop's external-lexer interface expects.
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// Items already produced but not yet handed out (errors followed by a stand-in).
    queue: VecDeque<Result<Spanned, LexError>>,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0, queue: VecDeque::new() }
    }

    fn peek_byte(&self, offset: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + offset).copied()
    }

    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn eat_while(&mut self, pred: impl Fn(u8) -> bool) {
        while self.peek_byte(0).is_some_and(&pred) {
            self.pos += 1;
        }
    }

    /// Skips whitespace (any Unicode space: pasted text brings no-break spaces) and
    /// comments; an unterminated block comment is an error.
    fn skip_trivia(&mut self) -> Option<LexError> {
        loop {
            while let Some(c) = self.peek_char().filter(|c| c.is_whitespace()) {
                self.pos += c.len_utf8();
            }
            match (self.peek_byte(0), self.peek_byte(1)) {
                (Some(b'-'), Some(b'-')) => self.skip_line(),
                (Some(b'/'), Some(b'*')) => {
                    let start = self.pos;
                    match self.src[start + 2..].find("*/") {
                        Some(i) => self.pos = start + 2 + i + 2,
                        None => {
                            self.pos = self.src.len();
                            return Some(LexError::new(LexErrorKind::UnterminatedComment, start, start + 2));
                        }
                    }
                }
                _ => return None,
            }
        }
    }

    fn skip_line(&mut self) {
        self.eat_while(|b| b != b'\n');
    }

    fn lex_token(&mut self) {
        let start = self.pos;
        let Some(c) = self.peek_char() else { return };
        if c.is_ascii_alphabetic() || c == '_' {
            return self.lex_word(start);
        }
        if c.is_ascii_digit() {
            return self.lex_number(start);
        }
        if c == '"' || c == '\'' {
            return self.lex_string(start, c);
        }
        if let Some((tok, len)) = self.punctuation() {
            self.pos += len;
            return self.push_tok(start, tok);
        }
        match (c, self.peek_byte(1)) {
            ('=', Some(b'=')) => {
                self.pos += 2;
                self.push_err(LexErrorKind::DoubleEquals, start);
                self.push_tok(start, Tok::Eq);
            }
            ('/', Some(b'/')) => {
                self.skip_line();
                let end = start + 2;
                self.queue.push_back(Err(LexError::new(LexErrorKind::SlashComment, start, end)));
            }
            _ => self.lex_unexpected(start),
        }
    }

    fn punctuation(&self) -> Option<(Tok, usize)> {
        let two = |second: u8| self.peek_byte(1) == Some(second);
        let tok = match self.peek_byte(0)? {
            b';' => Tok::Semi,
            b':' => Tok::Colon,
            b',' => Tok::Comma,
            b'.' => Tok::Dot,
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'{' => Tok::LBrace,
            b'}' => Tok::RBrace,
            b'[' => Tok::LBracket,
            b']' => Tok::RBracket,
            b'?' => Tok::Question,
            b'*' => Tok::Star,
            b'+' => Tok::Plus,
            b'-' => Tok::Minus,
            b'%' => Tok::Percent,
            b'/' if !two(b'/') => Tok::Slash,
            b'=' if !two(b'=') => Tok::Eq,
            b'!' if two(b'=') => return Some((Tok::Ne, 2)),
            b'<' if two(b'=') => return Some((Tok::Le, 2)),
            b'<' if two(b'>') => return Some((Tok::Ne, 2)),
            b'<' => Tok::Lt,
            b'>' if two(b'=') => return Some((Tok::Ge, 2)),
            b'>' => Tok::Gt,
            _ => return None,
        };
        Some((tok, 1))
    }

    fn lex_word(&mut self, start: usize) {
        self.eat_while(|b| b.is_ascii_alphanumeric() || b == b'_');
        let word = &self.src[start..self.pos];
        let tok = KEYWORDS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(word))
            .map(|(_, tok)| tok.clone())
            .unwrap_or_else(|| Tok::Ident(word.to_string()));
        self.push_tok(start, tok);
    }

    fn lex_number(&mut self, start: usize) {
        self.eat_while(|b| b.is_ascii_digit());
        let digits_end = self.pos;
        let fraction = self.peek_byte(0) == Some(b'.') && self.peek_byte(1).is_some_and(|b| b.is_ascii_digit());
        if fraction {
            self.pos += 1;
            self.eat_while(|b| b.is_ascii_digit());
            let number_end = self.pos;
            if let Some(suffix) = self.word_suffix() {
                self.push_err(LexErrorKind::NumberSuffix(suffix), number_end);
            }
            return self.push_tok_to(start, number_end, Tok::Number(self.src[start..number_end].to_string()));
        }
        let digits = &self.src[start..digits_end];
        match self.word_suffix() {
            Some(unit) => self.finish_duration(start, digits, unit),
            None => {
                let value = digits.parse::<u64>().ok().filter(|&v| v <= 1 << 63);
                if value.is_none() {
                    self.push_err(LexErrorKind::IntTooLarge, start);
                }
                self.push_tok(start, Tok::Int(value.unwrap_or(0)));
            }
        }
    }

    /// Letters, digits and `_` directly after a number (a duration unit, normally).
    fn word_suffix(&mut self) -> Option<String> {
        let start = self.pos;
        if !self.peek_byte(0).is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') {
            return None;
        }
        self.eat_while(|b| b.is_ascii_alphanumeric() || b == b'_');
        Some(self.src[start..self.pos].to_string())
    }

    fn finish_duration(&mut self, start: usize, digits: &str, unit: String) {
        let millis = match DURATION_UNITS.iter().find(|(u, _)| *u == unit) {
            None => {
                let unit_start = start + digits.len();
                self.queue.push_back(Err(LexError::new(LexErrorKind::UnknownDurationUnit(unit), unit_start, self.pos)));
                0
            }
            Some((_, per_unit)) => {
                let millis = digits
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(*per_unit))
                    .filter(|&ms| i64::try_from(ms).is_ok());
                if millis.is_none() {
                    self.push_err(LexErrorKind::DurationTooLarge, start);
                }
                millis.unwrap_or(0)
            }
        };
        self.push_tok(start, Tok::Duration(millis));
    }

    fn lex_string(&mut self, start: usize, quote: char) {
        self.pos += 1;
        let mut value = String::new();
        // A string ends on its line: an unterminated one then spoils one line only.
        while let Some(c) = self.peek_char().filter(|c| *c != '\n' && *c != '\r') {
            self.pos += c.len_utf8();
            if c == quote {
                return self.push_tok(start, Tok::Str(value));
            }
            if c == '\\' {
                self.lex_escape(&mut value);
            } else {
                value.push(c);
            }
        }
        // Unterminated: the stand-in string is what the line held.
        self.queue.push_back(Err(LexError::new(LexErrorKind::UnterminatedString, start, start + 1)));
        self.push_tok(start, Tok::Str(value));
    }

    /// Reads the escape after a backslash (already consumed) into `value`.
    fn lex_escape(&mut self, value: &mut String) {
        let start = self.pos - 1;
        let Some(c) = self.peek_char() else { return };
        if c == '\n' || c == '\r' {
            return; // the string is unterminated; the caller reports that
        }
        self.pos += c.len_utf8();
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            '0' => Some('\0'),
            '\\' | '"' | '\'' => Some(c),
            _ => None,
        };
        if let Some(resolved) = simple {
            return value.push(resolved);
        }
        if c == 'u' {
            match self.unicode_escape() {
                Some(resolved) => value.push(resolved),
                None => self.push_err(LexErrorKind::InvalidUnicodeEscape, start),
            }
            return;
        }
        value.push(c);
        let text = self.src[start..self.pos].to_string();
        self.push_err(LexErrorKind::UnknownEscape(text), start);
    }

    /// `{hex}` after `\u`; consumes what looks like the escape even when invalid.
    fn unicode_escape(&mut self) -> Option<char> {
        if self.peek_byte(0) != Some(b'{') {
            return None;
        }
        self.pos += 1;
        let digits_start = self.pos;
        self.eat_while(|b| b.is_ascii_hexdigit());
        let digits = &self.src[digits_start..self.pos];
        if self.peek_byte(0) != Some(b'}') {
            return None;
        }
        self.pos += 1;
        if digits.is_empty() || digits.len() > 6 {
            return None;
        }
        u32::from_str_radix(digits, 16).ok().and_then(char::from_u32)
    }

    /// Skips a run of characters that start no token: the one at `start`, and those
    /// after it up to the next one that does.
    fn lex_unexpected(&mut self, start: usize) {
        while let Some(c) = self.peek_char() {
            let starts_token = c.is_ascii_alphanumeric()
                || c.is_whitespace()
                || matches!(c, '_' | '"' | '\'')
                || self.punctuation().is_some();
            if self.pos > start && starts_token {
                break;
            }
            self.pos += c.len_utf8();
        }
        let text = self.src[start..self.pos].to_string();
        self.push_err(LexErrorKind::UnexpectedChars(text), start);
    }

    /// Queues an error spanning `start..self.pos`.
    fn push_err(&mut self, kind: LexErrorKind, start: usize) {
        self.queue.push_back(Err(LexError::new(kind, start, self.pos)));
    }

    fn push_tok(&mut self, start: usize, tok: Tok) {
        self.push_tok_to(start, self.pos, tok);
    }

    fn push_tok_to(&mut self, start: usize, end: usize, tok: Tok) {
        self.queue.push_back(Ok((start, tok, end)));
    }
}

impl Iterator for Lexer<'_> {
    type Item = Result<Spanned, LexError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.queue.is_empty() {
            if let Some(error) = self.skip_trivia() {
                return Some(Err(error));
            }
            if self.pos >= self.src.len() {
                return None;
            }
            self.lex_token();
        }
        self.queue.pop_front()
    }
}

/// Lexes all of `src`: the tokens, and the errors met on the way.
pub fn tokenize(src: &str) -> (Vec<Spanned>, Vec<LexError>) {
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    for item in Lexer::new(src) {
        match item {
            Ok(token) => tokens.push(token),
            Err(error) => errors.push(error),
        }
    }
    (tokens, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let (tokens, errors) = tokenize(src);
        assert!(errors.is_empty(), "unexpected errors: {errors:?}");
        tokens.into_iter().map(|(_, t, _)| t).collect()
    }

    fn errs(src: &str) -> Vec<(LexErrorKind, &str)> {
        let (_, errors) = tokenize(src);
        errors.into_iter().map(|e| (e.kind, &src[e.span.start..e.span.end])).collect()
    }

    #[test]
    fn keywords_are_case_insensitive_and_identifiers_are_not() {
        assert_eq!(
            toks("SELECT Select sElEcT userId _x1"),
            vec![Tok::Select, Tok::Select, Tok::Select, Tok::Ident("userId".into()), Tok::Ident("_x1".into())]
        );
    }

    #[test]
    fn literals() {
        assert_eq!(
            toks(r#"42 3.14 "a\"b" 'it\'s' "\u{e9}\n" 500ms 90s 15m 24h 30d 2w"#),
            vec![
                Tok::Int(42),
                Tok::Number("3.14".into()),
                Tok::Str("a\"b".into()),
                Tok::Str("it's".into()),
                Tok::Str("é\n".into()),
                Tok::Duration(500),
                Tok::Duration(90_000),
                Tok::Duration(900_000),
                Tok::Duration(86_400_000),
                Tok::Duration(2_592_000_000),
                Tok::Duration(1_209_600_000),
            ]
        );
    }

    #[test]
    fn punctuation_and_comments() {
        assert_eq!(
            toks("a.b -- comment\n /* block\n */ != <> <= >= < > = ; : , ( ) { } [ ] ? * + - / %"),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::Ne,
                Tok::Ne,
                Tok::Le,
                Tok::Ge,
                Tok::Lt,
                Tok::Gt,
                Tok::Eq,
                Tok::Semi,
                Tok::Colon,
                Tok::Comma,
                Tok::LParen,
                Tok::RParen,
                Tok::LBrace,
                Tok::RBrace,
                Tok::LBracket,
                Tok::RBracket,
                Tok::Question,
                Tok::Star,
                Tok::Plus,
                Tok::Minus,
                Tok::Slash,
                Tok::Percent,
            ]
        );
    }

    #[test]
    fn spans_are_byte_ranges() {
        let (tokens, _) = tokenize("é x  \"ü\"");
        let spans: Vec<_> = tokens.iter().map(|(s, _, e)| (*s, *e)).collect();
        assert_eq!(spans, vec![(3, 4), (6, 10)]);
    }

    #[test]
    fn integers_up_to_two_to_the_63() {
        assert_eq!(toks("9223372036854775808"), vec![Tok::Int(1 << 63)]);
        assert_eq!(
            errs("9223372036854775809 99999999999999999999999"),
            vec![
                (LexErrorKind::IntTooLarge, "9223372036854775809"),
                (LexErrorKind::IntTooLarge, "99999999999999999999999")
            ]
        );
    }

    #[test]
    fn several_errors_are_reported_and_lexing_goes_on() {
        let src = "a @ \"open\nb 30x 'bad \\q' /* never closed";
        assert_eq!(
            errs(src),
            vec![
                (LexErrorKind::UnexpectedChars("@".into()), "@"),
                (LexErrorKind::UnterminatedString, "\""),
                (LexErrorKind::UnknownDurationUnit("x".into()), "x"),
                (LexErrorKind::UnknownEscape("\\q".into()), "\\q"),
                (LexErrorKind::UnterminatedComment, "/*"),
            ]
        );
        let (tokens, _) = tokenize(src);
        let toks: Vec<_> = tokens.into_iter().map(|(_, t, _)| t).collect();
        assert_eq!(
            toks,
            vec![
                Tok::Ident("a".into()),
                Tok::Str("open".into()),
                Tok::Ident("b".into()),
                Tok::Duration(0),
                Tok::Str("bad q".into()),
            ]
        );
    }

    #[test]
    fn duration_overflow_is_an_error() {
        assert_eq!(errs("99999999999999w"), vec![(LexErrorKind::DurationTooLarge, "99999999999999w")]);
    }

    #[test]
    fn unicode_spaces_are_whitespace_and_other_characters_errors() {
        assert_eq!(toks("a\u{a0}\u{2028}b"), vec![Tok::Ident("a".into()), Tok::Ident("b".into())]);
        assert_eq!(
            errs("a é€ b ∑"),
            vec![(LexErrorKind::UnexpectedChars("é€".into()), "é€"), (LexErrorKind::UnexpectedChars("∑".into()), "∑")]
        );
    }

    #[test]
    fn double_equals_stands_in_for_equals() {
        let (tokens, errors) = tokenize("a == b");
        assert_eq!(errors.len(), 1);
        assert_eq!(tokens[1].1, Tok::Eq);
    }
}
