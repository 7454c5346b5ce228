//! Helpers shared by the test modules.

use segflow_grammar::ast::File;
use segflow_grammar::{parse, Diagnostic};

/// Parses `source`, failing the test with the diagnostics if there are any.
pub fn parse_clean(source: &str) -> File {
    let parsed = parse(source);
    assert!(
        parsed.diagnostics.is_empty(),
        "unexpected diagnostics for {source:?}:\n{}",
        render(source, &parsed.diagnostics)
    );
    parsed.file
}

/// Asserts that printing the parsed file and parsing that again gives the same tree,
/// and that printing is idempotent.
pub fn assert_round_trip(source: &str) {
    let file = parse_clean(source);
    let printed = file.to_string();
    let reparsed = parse_clean(&printed);
    assert_eq!(
        reparsed.without_spans(),
        file.without_spans(),
        "round trip changed the tree of {source:?}; printed as:\n{printed}"
    );
    assert_eq!(reparsed.to_string(), printed, "printing is not idempotent");
}

/// A diagnostic as `line:col: message` plus its label, help and the text under the
/// caret — compact enough to write expected values by hand.
pub fn render(source: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let (line, col) = line_col(source, d.span.start);
        out.push_str(&format!("{line}:{col}: {}", d.message));
        out.push_str(&format!(" @ {:?}", &source[d.span.start..d.span.end]));
        if let Some(label) = &d.label {
            out.push_str(&format!(" [{label}]"));
        }
        if let Some(help) = &d.help {
            out.push_str(&format!(" (help: {help})"));
        }
        out.push('\n');
    }
    out
}

/// Renders the diagnostics of `source`.
pub fn errors(source: &str) -> String {
    render(source, &parse(source).diagnostics)
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
