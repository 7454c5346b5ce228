//! The whole front end (parse, resolve, type check, lower) never panics on any
//! input: random token soups and damaged copies of real models give
//! diagnostics, and every diagnostic renders.

use proptest::prelude::*;
use segflow_compiler::{compile, SourceMap};

const RETAIL: &str = include_str!("../examples/retail/retail.eql");

const TOKENS: &[&str] = &[
    "entity",
    "event",
    "tag",
    "segment",
    "select",
    "from",
    "where",
    "group",
    "by",
    "order",
    "limit",
    "within",
    "on",
    "key",
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
    "user",
    "store",
    "order",
    "amount",
    "city",
    "home_store",
    "spend_90d",
    "hot_stores",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "count_distinct",
    "first",
    "last",
    "mode",
    "exists",
    "coalesce",
    "lower",
    "round",
    "string",
    "int",
    "decimal",
    "float",
    "bool",
    "timestamp",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    ":",
    ",",
    ".",
    "?",
    "*",
    "+",
    "-",
    "/",
    "%",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "7d",
    "30d",
    "500ms",
    "42",
    "-7",
    "3.14",
    "\"Shanghai\"",
    "'x'",
    "--c\n",
    "/* b */",
];

fn compile_text(text: &str) {
    let mut sources = SourceMap::new();
    sources.add("fuzz.eql", text);
    match compile(&sources) {
        Ok(compiled) => {
            let _ = compiled.plan.to_string();
            let _ = compiled.program.to_string();
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty());
            let rendered = sources.render(&diagnostics);
            assert!(rendered.contains("fuzz.eql:"), "{rendered}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn token_soups_never_panic(tokens in prop::collection::vec(0..TOKENS.len(), 0..80)) {
        let text: Vec<&str> = tokens.iter().map(|&i| TOKENS[i]).collect();
        compile_text(&text.join(" "));
    }

    #[test]
    fn damaged_models_never_panic(cuts in prop::collection::vec((0..RETAIL.len(), 0usize..40), 1..4),
                                  inserts in prop::collection::vec((0..RETAIL.len(), 0..TOKENS.len()), 0..4)) {
        let mut text = RETAIL.to_string();
        for (at, len) in cuts {
            let start = floor(&text, at);
            let end = floor(&text, (start + len).min(text.len()));
            text.replace_range(start..end, "");
        }
        for (at, token) in inserts {
            let at = floor(&text, at);
            text.insert_str(at, &format!(" {} ", TOKENS[token]));
        }
        compile_text(&text);
    }
}

fn floor(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}
