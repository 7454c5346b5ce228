//! Stage 2 of the segflow pipeline: AST -> typed IR -> dataflow plan.
//!
//! ```text
//!  grammar::parse ──> ast::File
//!        resolve ──> hir::Program   names resolved, types checked, aggregates lifted,
//!                                   definitions in dependency order (cycles rejected)
//!          lower ──> plan::Plan     inputs, arrangements, nodes, outputs (after
//!                                   `pushdown` moves the tests of a referenced
//!                                   instance into tags of that instance)
//! ```
//!
//! The compiler knows nothing of timely: the plan is plain data (serde and
//! `Display`), which the runtime renders into a differential dataflow. Every
//! stage is visible with `segflow explain --stage ast|hir|plan`. Errors from all
//! stages are [`Diagnostic`]s, rendered only at the edge ([`SourceMap::render`]).

pub mod eval;
pub mod explain;
pub mod hir;
pub mod lower;
pub mod plan;
mod pushdown;
pub mod render;
pub mod resolve;
pub mod value;

pub use render::SourceMap;
pub use segflow_grammar::{Diagnostic, Severity, Span};

/// A compiled program: the typed IR and its plan.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub ast: segflow_grammar::ast::File,
    /// The definitions as written (what `explain --stage hir` prints).
    pub program: hir::Program,
    /// Lowered from `program` after `pushdown` added anonymous tags to it:
    /// an output's `def` may name a tag past `program.tags`.
    pub plan: plan::Plan,
    /// Warnings (there were no errors).
    pub warnings: Vec<Diagnostic>,
}

/// Parses, resolves and lowers the files of `sources`. On any error, returns every
/// diagnostic found (syntax errors and the semantic errors of what did parse).
pub fn compile(sources: &SourceMap) -> Result<Compiled, Vec<Diagnostic>> {
    let parsed = segflow_grammar::parse(sources.text());
    let mut diagnostics = parsed.diagnostics;
    let (program, semantic) = resolve::resolve(&parsed.file);
    diagnostics.extend(semantic);
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    let has_error = diagnostics.iter().any(Diagnostic::is_error);
    match program {
        Some(program) if !has_error => {
            let plan = lower::lower(&program);
            Ok(Compiled { ast: parsed.file, program, plan, warnings: diagnostics })
        }
        _ => Err(diagnostics),
    }
}

/// Compiles one source text (for tests and embedded models).
pub fn compile_str(name: &str, text: &str) -> Result<Compiled, (SourceMap, Vec<Diagnostic>)> {
    let mut sources = SourceMap::new();
    sources.add(name, text);
    compile(&sources).map_err(|d| (sources, d))
}
