//! Stage 1 of the segflow pipeline: EQL source text -> AST.
//!
//! ```text
//! EQL text --lexer--> tokens --lalrpop--> AST (every node with its byte span)
//! ```
//!
//! [`parse`] is the only entry point. It never panics and never stops at the first
//! error: the lexer carries on past bad characters and strings, and the grammar
//! recovers at field and statement boundaries, so one call returns every lexical
//! and syntax error of a file as [`Diagnostic`]s together with whatever items
//! parsed. No lalrpop type leaves this crate. There are no semantics here: names are
//! resolved and types checked by the compiler crate.
//!
//! ```
//! let parsed = segflow_grammar::parse(
//!     "entity user { key id: string; city: string?; }\n\
//!      segment shanghai on user = city = \"Shanghai\";",
//! );
//! assert!(parsed.diagnostics.is_empty());
//! assert_eq!(parsed.file.items.len(), 2);
//! ```
//!
//! The AST prints back as canonical EQL (`Display`), and re-parsing that text gives
//! the same tree up to spans ([`ast::File::without_spans`]).

mod actions;
pub mod ast;
pub mod diagnostic;
mod lexer;
mod parser;
mod print;
mod spanless;
mod syntax_error;

pub use actions::MAX_EXPR_DEPTH;
pub use ast::Span;
pub use diagnostic::{did_you_mean, Diagnostic, Severity};
pub use parser::{parse, Parsed};
