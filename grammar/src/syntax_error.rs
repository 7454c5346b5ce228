//! Turns lalrpop's parse errors into [`Diagnostic`]s a person can act on.
//!
//! lalrpop reports the unexpected token and the terminals the grammar would have
//! accepted, by their grammar names (`"\"entity\""`, `"\"identifier\""`). From that:
//!
//! - a missing `;` is recognised when `;` was expected and the unexpected token
//!   starts a new item, closes a body, ends the file or sits on a later line: the
//!   caret goes where the `;` belongs, the end of the previous token;
//! - an item keyword where a field or `}` was expected is a missing `}`;
//! - an identifier where keywords were expected gets a did-you-mean over them;
//! - otherwise the expected terminals are listed, with the long alternatives
//!   folded into "an expression" and "an operator".

use crate::ast::Span;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::lexer::{LexError, Spanned, Tok};
use lalrpop_util::ParseError;

/// Terminals that begin an expression; listed as "an expression" when all of the
/// distinctive ones are expected.
const EXPRESSION_START: &[&str] =
    &["identifier", "integer", "number", "string", "duration", "true", "false", "null", "case", "not", "(", "[", "-"];
const OPERATORS: &[&str] = &["and", "or", "not", "in", "is", "=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"];
/// Keywords that are also names (see the grammar); noise in a list that has "identifier".
const SOFT_KEYWORDS: &[&str] = &["order", "key", "group", "limit", "asc", "desc"];
const LITERAL_TERMINALS: &[&str] = &["identifier", "integer", "number", "string", "duration"];

pub(crate) struct SyntaxErrors<'a> {
    source: &'a str,
    tokens: &'a [Spanned],
}

impl<'a> SyntaxErrors<'a> {
    pub fn new(source: &'a str, tokens: &'a [Spanned]) -> Self {
        SyntaxErrors { source, tokens }
    }

    /// The diagnostic, and the span of the offending token (or end of input) plus
    /// the token before it: a lexical error in that range is the likely cause.
    pub fn diagnose(&self, error: &ParseError<usize, Tok, LexError>) -> (Diagnostic, Span) {
        match error {
            ParseError::UnrecognizedToken { token: (start, tok, end), expected } => {
                let span = Span::new(*start, *end);
                (self.unexpected(Some((tok, span)), expected), self.blame_range(span))
            }
            ParseError::UnrecognizedEof { expected, .. } => {
                let end = Span::new(self.source.len(), self.source.len());
                (self.unexpected(None, expected), self.blame_range(end))
            }
            ParseError::ExtraToken { token: (start, tok, end) } => {
                let span = Span::new(*start, *end);
                let message = format!("unexpected {}", self.describe(tok, span));
                (Diagnostic::error(message, span), self.blame_range(span))
            }
            ParseError::InvalidToken { location } => {
                let span = Span::new(*location, *location);
                (Diagnostic::error("invalid token", span), self.blame_range(span))
            }
            ParseError::User { error } => (error.to_diagnostic(), error.span),
        }
    }

    fn blame_range(&self, at: Span) -> Span {
        let previous_start = self.previous_token(at.start).map_or(0, |(s, _, _)| *s);
        Span::new(previous_start, at.end)
    }

    /// The index of the token starting at `offset`, if one does.
    pub fn token_index(&self, offset: usize) -> Option<usize> {
        self.tokens.binary_search_by_key(&offset, |(start, _, _)| *start).ok()
    }

    /// The last token that ends at or before `offset`.
    fn previous_token(&self, offset: usize) -> Option<&Spanned> {
        let count = self.tokens.partition_point(|(_, _, end)| *end <= offset);
        count.checked_sub(1).map(|i| &self.tokens[i])
    }

    fn unexpected(&self, token: Option<(&Tok, Span)>, expected: &[String]) -> Diagnostic {
        let expected: Vec<&str> = expected.iter().map(|e| terminal_name(e)).collect();
        let at = token.map_or(self.source.len(), |(_, span)| span.start);
        let previous = self.previous_token(at);
        if expected.contains(&";") {
            if let Some((_, _, end)) = previous {
                let starts_anew = match token {
                    None => true,
                    Some((tok, _)) => starts_item(tok) || *tok == Tok::RBrace,
                };
                let on_later_line = self.source[*end..at].contains('\n');
                if starts_anew || on_later_line {
                    return self.missing_semicolon(*end);
                }
            }
        }

        if let (Some((tok, _)), Some((_, _, end))) = (token, previous) {
            if starts_item(tok) && expected.contains(&"}") {
                return Diagnostic::error("expected \"}\" after the last field", Span::new(*end, *end))
                    .with_label("`}` missing here")
                    .with_help("entity and event bodies end with `}`");
            }
        }

        let (message, span) = match token {
            Some((tok, span)) => (format!("unexpected {}", self.describe(tok, span)), span),
            None => {
                let end = previous.map_or(0, |(_, _, end)| *end);
                ("unexpected end of file".to_string(), Span::new(end, end))
            }
        };
        let mut diagnostic = Diagnostic::error(message, span);
        if let Some(label) = expected_label(&expected) {
            diagnostic = diagnostic.with_label(label);
        }
        if let Some((tok, _)) = token {
            let after_body = previous.is_some_and(|(_, previous, _)| *previous == Tok::RBrace);
            if *tok == Tok::Semi && after_body && expected.contains(&"entity") {
                diagnostic = diagnostic.with_help("remove this `;`: an entity or event body ends with `}` alone");
            } else if let Some(help) = help_for(tok, &expected) {
                diagnostic = diagnostic.with_help(help);
            }
        }
        diagnostic
    }

    fn missing_semicolon(&self, after: usize) -> Diagnostic {
        let message = match self.enclosing(after) {
            Some(Tok::Tag) => "expected \";\" after the tag definition",
            Some(Tok::Segment) => "expected \";\" after the segment definition",
            Some(Tok::Select) => "expected \";\" after the query",
            Some(Tok::LBrace) => "expected \";\" after the field",
            _ => "expected \";\"",
        };
        Diagnostic::error(message, Span::new(after, after))
            .with_label("`;` missing here")
            .with_help("statements end with `;`")
    }

    /// What the text before `offset` is part of: the nearest item keyword or brace.
    fn enclosing(&self, offset: usize) -> Option<Tok> {
        let count = self.tokens.partition_point(|(_, _, end)| *end <= offset);
        self.tokens[..count].iter().rev().find_map(|(_, tok, _)| match tok {
            Tok::Tag | Tok::Segment | Tok::Select | Tok::Entity | Tok::Event | Tok::LBrace | Tok::RBrace => {
                Some(tok.clone())
            }
            _ => None,
        })
    }

    /// "identifier `x`", "integer `42`", "keyword `end`", "`;`".
    fn describe(&self, tok: &Tok, span: Span) -> String {
        let text = self.source.get(span.start..span.end).unwrap_or("");
        let text = shorten(text);
        match tok {
            Tok::Ident(_) => format!("identifier `{text}`"),
            Tok::Int(_) => format!("integer `{text}`"),
            Tok::Number(_) => format!("number `{text}`"),
            Tok::Str(_) => format!("string `{text}`"),
            Tok::Duration(_) => format!("duration `{text}`"),
            _ if tok.is_keyword() => format!("keyword `{text}`"),
            _ => format!("`{text}`"),
        }
    }
}

fn starts_item(tok: &Tok) -> bool {
    matches!(tok, Tok::Entity | Tok::Event | Tok::Tag | Tok::Segment | Tok::Select)
}

/// `"\"entity\""` -> `entity`.
fn terminal_name(terminal: &str) -> &str {
    terminal.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(terminal)
}

fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// "did you mean `entity`?" for a near-miss keyword; a note on reserved words.
fn help_for(tok: &Tok, expected: &[&str]) -> Option<String> {
    match tok {
        Tok::Ident(name) => {
            let keywords = expected.iter().copied().filter(|e| e.chars().all(|c| c.is_ascii_lowercase()));
            did_you_mean(name, keywords).map(|k| format!("did you mean `{k}`?"))
        }
        Tok::By | Tok::Where | Tok::Within if expected.contains(&")") => {
            Some("in a call, `by`, `where` and `within` follow the first argument, in that order".to_string())
        }
        _ if tok.is_keyword() && expected.contains(&"identifier") => {
            Some("this keyword is reserved and cannot be used as a name".to_string())
        }
        Tok::Eq | Tok::Ne | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge if expected.contains(&"and") => {
            Some("comparisons do not chain; combine them with `and`".to_string())
        }
        _ => None,
    }
}

/// "expected `;`", "expected `)` or `,`", "expected one of: an expression, `*`, `)`".
fn expected_label(expected: &[&str]) -> Option<String> {
    let items = readable_expected(expected);
    match items.as_slice() {
        [] => None,
        [one] => Some(format!("expected {one}")),
        [a, b] => Some(format!("expected {a} or {b}")),
        _ => Some(format!("expected one of: {}", items.join(", "))),
    }
}

fn readable_expected(expected: &[&str]) -> Vec<String> {
    let has = |t: &str| expected.contains(&t);
    let expression = has("identifier") && has("(") && has("case");
    let operator = has("+") && has("and");
    let mut items: Vec<String> = Vec::new();
    let mut push = |item: String| {
        if !items.contains(&item) {
            items.push(item);
        }
    };
    for &terminal in expected {
        if expression && (EXPRESSION_START.contains(&terminal) || SOFT_KEYWORDS.contains(&terminal)) {
            push("an expression".into());
        } else if operator && OPERATORS.contains(&terminal) {
            push("an operator".into());
        } else if SOFT_KEYWORDS.contains(&terminal) && has("identifier") && !(terminal == "key" && has("}")) {
            // a name, already covered by "identifier"
        } else if LITERAL_TERMINALS.contains(&terminal) {
            push(terminal.into());
        } else {
            push(format!("`{terminal}`"));
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_lists_read_as_words() {
        assert_eq!(expected_label(&[";"]).as_deref(), Some("expected `;`"));
        assert_eq!(
            expected_label(&["where", "group", "order", "limit", ";"]).as_deref(),
            Some("expected one of: `where`, `group`, `order`, `limit`, `;`")
        );
        assert_eq!(
            expected_label(&["case", "not", "identifier", "integer", "string", "(", "*", ")"]).as_deref(),
            Some("expected one of: an expression, `*`, `)`")
        );
        assert_eq!(
            expected_label(&["key", "order", "identifier", "}"]).as_deref(),
            Some("expected one of: `key`, identifier, `}`")
        );
    }
}
