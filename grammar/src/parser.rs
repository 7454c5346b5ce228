//! The one entry point, [`parse`]: lex, parse, and turn every error into a diagnostic.
//!
//! ```text
//! source --tokenize--> tokens + lexical errors
//!        --eql.lalrpop (with `!` recovery)--> File + recovered syntax errors
//!        --syntax_error--> diagnostics, sorted by position
//! ```
//!
//! The lexer never hands an error to lalrpop (lalrpop cannot recover from those);
//! it reports it on the side and substitutes a stand-in token. The grammar's actions
//! share state through [`Sink`] (`actions.rs`).

use crate::actions::{Recovery, Sink};
use crate::ast::File;
use crate::diagnostic::Diagnostic;
use crate::lexer::{self, LexError, Spanned, Tok};
use crate::syntax_error::SyntaxErrors;
use lalrpop_util::{ErrorRecovery, ParseError};

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, clippy::pedantic, unused, rust_2018_idioms)]
    eql
);

/// The result of [`parse`]: every item that parsed, and every problem found.
///
/// An item with a syntax error is left out of `file` (except for a missing `;`,
/// which is reported but keeps the item), so `file` is usable for best-effort tooling
/// even when `diagnostics` is not empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub file: File,
    /// Sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses EQL source text. Never panics; reports all lexical and syntax errors.
///
/// ```
/// let parsed = segflow_grammar::parse("tag user.orders_30d = count(order within 30d);");
/// assert!(parsed.diagnostics.is_empty());
/// assert_eq!(parsed.file.to_string(), "tag user.orders_30d = count(order within 30d);\n");
///
/// let parsed = segflow_grammar::parse("entty user { key id: string; }");
/// assert_eq!(parsed.diagnostics[0].message, "unexpected identifier `entty`");
/// assert_eq!(parsed.diagnostics[0].help.as_deref(), Some("did you mean `entity`?"));
/// ```
pub fn parse(source: &str) -> Parsed {
    let (tokens, lex_errors) = lexer::tokenize(source);
    let mut sink = Sink::default();
    let input = tokens.iter().cloned().map(Ok::<_, LexError>);
    let file = match eql::FileParser::new().parse(source, &mut sink, input) {
        Ok(file) => file,
        // Unreachable in practice: the file level recovers from any error, even at
        // the end of input. Should it happen, report it rather than panic.
        Err(error) => {
            sink.recover(ErrorRecovery { error, dropped_tokens: Vec::new() });
            File { items: Vec::new() }
        }
    };
    let (recovered, mut diagnostics) = sink.finish();
    diagnostics.extend(syntax_diagnostics(source, &tokens, &lex_errors, &recovered));
    diagnostics.extend(lex_errors.iter().map(LexError::to_diagnostic));
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    Parsed { file, diagnostics }
}

/// Diagnostics for the recovered syntax errors (which come in source order), less
/// the echoes: an error right after a lexical error is most likely caused by it, and
/// junk such as `}}};;` would otherwise give one error per token, so an error at the
/// token right after the previous error's is left out, unless it is an identifier
/// (that may be the next misspelled keyword).
fn syntax_diagnostics(
    source: &str,
    tokens: &[Spanned],
    lex_errors: &[LexError],
    recovered: &[Recovery],
) -> Vec<Diagnostic> {
    let syntax = SyntaxErrors::new(source, tokens);
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    // The index of the last token an error was reported at or skipped over.
    let mut last_error_token: Option<usize> = None;
    for recovery in recovered {
        let (diagnostic, blame) = syntax.diagnose(&recovery.error);
        let token = error_token(&recovery.error);
        let index = token.and_then(|(start, _)| syntax.token_index(start));
        let is_identifier = matches!(token, Some((_, Tok::Ident(_))));
        let follows_error = matches!((index, last_error_token), (Some(i), Some(last)) if i <= last + 1);
        let follows_lex_error = lex_errors.iter().any(|e| blame.start <= e.span.start && e.span.start <= blame.end);
        let echo = follows_lex_error || (follows_error && !is_identifier);
        if !echo && !diagnostics.contains(&diagnostic) {
            diagnostics.push(diagnostic);
        }
        let last_dropped = recovery.dropped_tokens.last().and_then(|(start, _, _)| syntax.token_index(*start));
        last_error_token = index.max(last_dropped).or(last_error_token);
    }
    diagnostics
}

/// The unexpected token of a syntax error, if it was a token and not the end of input.
fn error_token(error: &ParseError<usize, Tok, LexError>) -> Option<(usize, &Tok)> {
    match error {
        ParseError::UnrecognizedToken { token: (start, tok, _), .. }
        | ParseError::ExtraToken { token: (start, tok, _) } => Some((*start, tok)),
        _ => None,
    }
}
