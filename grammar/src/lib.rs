//! Stage 1 of the segflow pipeline: EQL source text -> AST.
//!
//! ```text
//! EQL text --lexer--> tokens --lalrpop--> AST (every node with its byte span)
//! ```
//!
//! [`parse`] is the only entry point. It never panics and never stops at the first
//! error: the grammar recovers at statement boundaries, so one call returns every
//! syntax error of a file as [`Diagnostic`]s together with whatever items parsed.
//! No lalrpop type leaves this crate. There are no semantics here: names are
//! resolved and types checked by the compiler crate.

pub mod ast;
pub mod diagnostic;

pub use ast::Span;
pub use diagnostic::{did_you_mean, Diagnostic, Severity};
