//! `parse` never panics, and what it returns is well-formed, for any input: random
//! bytes, random soups of EQL tokens, and random damage to a real file.

use crate::examples::RETAIL;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use segflow_grammar::{parse, Span};

fn check_span(source: &str, span: Span) -> Result<(), TestCaseError> {
    prop_assert!(span.start <= span.end && span.end <= source.len(), "span {:?} outside 0..{}", span, source.len());
    prop_assert!(
        source.is_char_boundary(span.start) && source.is_char_boundary(span.end),
        "span {:?} splits a char",
        span
    );
    Ok(())
}

fn check(source: &str) -> Result<(), TestCaseError> {
    let parsed = parse(source);
    for d in &parsed.diagnostics {
        prop_assert!(!d.message.is_empty());
        check_span(source, d.span)?;
        for label in &d.secondary {
            check_span(source, label.span)?;
        }
    }
    prop_assert!(parsed.diagnostics.windows(2).all(|w| w[0].span.start <= w[1].span.start), "diagnostics out of order");
    for item in &parsed.file.items {
        check_span(source, item.span())?;
    }
    // A clean parse prints back to text that parses to the same tree.
    let printed = parsed.file.to_string();
    if parsed.diagnostics.is_empty() {
        let reparsed = parse(&printed);
        prop_assert!(
            reparsed.diagnostics.is_empty(),
            "printed text {:?} has errors: {:?}",
            printed,
            reparsed.diagnostics
        );
        prop_assert_eq!(reparsed.file.without_spans(), parsed.file.without_spans());
    }
    Ok(())
}

const TOKENS: &[&str] = &[
    // keywords, in several cases
    "entity",
    "event",
    "key",
    "tag",
    "segment",
    "on",
    "select",
    "from",
    "where",
    "group",
    "by",
    "order",
    "asc",
    "desc",
    "limit",
    "within",
    "and",
    "or",
    "not",
    "in",
    "is",
    "null",
    "true",
    "false",
    "case",
    "when",
    "then",
    "else",
    "end",
    "as",
    "ENTITY",
    "Select",
    "oRdEr",
    // names and literals
    "user",
    "a",
    "x_1",
    "count",
    "42",
    "0",
    "-7",
    "3.14",
    "9223372036854775808",
    "99999999999999999999",
    "\"str\"",
    "'it\\'s'",
    "\"\\u{e9}\"",
    "30d",
    "500ms",
    "2w",
    "[",
    "]",
    // punctuation
    ";",
    ":",
    ",",
    ".",
    "(",
    ")",
    "{",
    "}",
    "?",
    "*",
    "+",
    "-",
    "/",
    "%",
    "=",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    // mistakes
    "\"open",
    "'open",
    "30x",
    "1.5d",
    "@",
    "#",
    "!",
    "==",
    "//",
    "/*",
    "*/",
    "--",
    "\\",
    "é",
    "\u{201C}",
    "\"\\q\"",
    "\"\\u{zz}\"",
    "\r\n",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(TOKENS), prop::sample::select(vec![" ", "\n", ""])), 0..60)
        .prop_map(|parts| parts.into_iter().flat_map(|(t, sep)| [t, sep]).collect())
}

/// A statement-shaped soup: more likely to get deep into the grammar.
fn statement_soup() -> impl Strategy<Value = String> {
    let head =
        prop::sample::select(vec!["tag user.x = ", "segment s on user = ", "select ", "entity e { ", "event e { "]);
    prop::collection::vec((head, soup(), prop::sample::select(vec![";", "}", ""])), 1..5)
        .prop_map(|items| items.into_iter().map(|(h, body, end)| format!("{h}{body}{end}\n")).collect())
}

/// The retail example with a random range removed and a random token put in.
fn damaged_retail() -> impl Strategy<Value = String> {
    (0..RETAIL.len(), 0usize..40, prop::sample::select(TOKENS)).prop_map(|(at, len, token)| {
        let floor = |mut i: usize| {
            while !RETAIL.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let start = floor(at);
        let end = floor((at + len).min(RETAIL.len()));
        format!("{}{token}{}", &RETAIL[..start], &RETAIL[end..])
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn random_text(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn token_soup(source in soup()) {
        check(&source)?;
    }

    #[test]
    fn statement_shaped_soup(source in statement_soup()) {
        check(&source)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn damaged_example(source in damaged_retail()) {
        check(&source)?;
    }
}
