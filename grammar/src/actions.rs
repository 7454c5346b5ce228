//! What the grammar's actions do beyond building nodes, kept out of the grammar
//! file so it stays a grammar.
//!
//! - Recovered syntax errors are collected for `parser.rs` to diagnose.
//! - Unary minus folds into number literals (`-7` is `Int(-7)`), which is also how
//!   `-9223372036854775808` gets an int although `9223372036854775808` has none.
//! - Expression depth is bounded: a deeper node becomes `null` plus an error, so no
//!   later recursive walk of the tree (dropping it included) can overflow the stack.
//!   The parser itself is table-driven and does not recurse.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lexer::{LexError, Tok};
use lalrpop_util::ErrorRecovery;
use std::collections::HashMap;

/// How deeply expressions may nest; deeper ones are replaced by `null` and reported.
pub const MAX_EXPR_DEPTH: u32 = 512;

/// The arguments of a call before its name is attached.
#[derive(Default)]
pub(crate) struct CallArgs {
    pub star: bool,
    pub args: Vec<Expr>,
    pub by: Option<Ident>,
    pub filter: Option<Box<Expr>>,
    pub within: Option<Duration>,
}

pub(crate) type Recovery = ErrorRecovery<usize, Tok, LexError>;

/// What the grammar's actions share: recovered errors, diagnostics that are not
/// syntax errors, and the bookkeeping for folding `-` and limiting depth.
#[derive(Default)]
pub(crate) struct Sink {
    recovered: Vec<Recovery>,
    diagnostics: Vec<Diagnostic>,
    /// `9223372036854775808` literals not (yet) folded into `-9223372036854775808`.
    overflowing: Vec<Span>,
    /// Nesting depth of each expression and list literal built so far, by span. A
    /// node's span differs from its children's, so the span identifies it.
    depths: HashMap<Span, u32>,
    /// Expressions cut off for depth; a later cut that contains one replaces it.
    too_deep: Vec<Span>,
}

impl Sink {
    pub fn recover(&mut self, error: Recovery) {
        self.recovered.push(error);
    }

    /// The recovered syntax errors, and the other diagnostics found while parsing.
    pub fn finish(mut self) -> (Vec<Recovery>, Vec<Diagnostic>) {
        for span in self.overflowing {
            self.diagnostics.push(
                Diagnostic::error("integer literal is too large", span)
                    .with_label("does not fit in an int")
                    .with_note("The largest int is 9223372036854775807."),
            );
        }
        for span in self.too_deep {
            self.diagnostics.push(
                Diagnostic::error("expression is nested too deeply", span)
                    .with_label(format!("more than {MAX_EXPR_DEPTH} levels"))
                    .with_help("split it into several tags"),
            );
        }
        (self.recovered, self.diagnostics)
    }

    /// `key` marks the identity of an entity; events have none.
    pub fn check_event_fields(&mut self, fields: &[FieldDecl]) {
        for field in fields.iter().filter(|f| f.is_key) {
            let start = field.span.start;
            self.diagnostics.push(
                Diagnostic::error("`key` is only allowed in an entity", Span::new(start, start + 3))
                    .with_help("remove `key`: an event is identified by its implicit `id` field"),
            );
        }
    }

    fn depth(&self, span: Span) -> u32 {
        self.depths.get(&span).copied().unwrap_or(1)
    }

    /// Records a node of the given children's depth; `false` if it is too deep.
    fn record_depth(&mut self, span: Span, children: impl IntoIterator<Item = Span>) -> bool {
        let depth = 1 + children.into_iter().map(|c| self.depth(c)).max().unwrap_or(0);
        if depth <= MAX_EXPR_DEPTH {
            self.depths.insert(span, depth);
            return true;
        }
        match self.too_deep.last_mut() {
            Some(last) if span.start <= last.start && last.end <= span.end => *last = span,
            _ => self.too_deep.push(span),
        }
        false
    }

    pub fn expr(&mut self, kind: ExprKind, l: usize, r: usize) -> Expr {
        let span = Span::new(l, r);
        if self.record_depth(span, child_spans(&kind)) {
            Expr { kind, span }
        } else {
            let null = Literal { kind: LiteralKind::Null, span };
            Expr { kind: ExprKind::Literal(null), span }
        }
    }

    pub fn binary(&mut self, op: BinaryOp, a: Expr, b: Expr, l: usize, r: usize) -> Expr {
        self.expr(ExprKind::Binary(op, Box::new(a), Box::new(b)), l, r)
    }

    pub fn call(&mut self, name: Ident, args: CallArgs, l: usize, r: usize) -> Expr {
        let CallArgs { star, args, by, filter, within } = args;
        let call = Call { name, star, args, by, filter, within };
        self.expr(ExprKind::Call(call), l, r)
    }

    /// There is no parenthesis node: the expression's span grows to cover them.
    pub fn parenthesized(&mut self, e: Expr, l: usize, r: usize) -> Expr {
        let span = Span::new(l, r);
        self.depths.insert(span, self.depth(e.span));
        Expr { span, ..e }
    }

    /// A digits-only literal. 2^63 is accepted for now as `i64::MIN`, on the
    /// promise that a `-` will fold it; `finish` reports it if none did.
    pub fn int(&mut self, value: u64, l: usize, r: usize) -> Literal {
        let span = Span::new(l, r);
        let value = i64::try_from(value).unwrap_or_else(|_| {
            self.overflowing.push(span);
            i64::MIN
        });
        Literal { kind: LiteralKind::Int(value), span }
    }

    /// Unary minus. On a number literal it folds into the literal (`-7` is
    /// `Int(-7)`, `-7.5` is `Number("-7.5")`), as a SQL user reads it; otherwise
    /// (and for `-(-9223372036854775808)`, which has no int) it stays `Neg`.
    pub fn negate(&mut self, e: Expr, l: usize, r: usize) -> Expr {
        let span = Span::new(l, r);
        if let ExprKind::Literal(literal) = &e.kind {
            if let Some(kind) = self.negated(literal) {
                return Expr { kind: ExprKind::Literal(Literal { kind, span }), span };
            }
        }
        self.expr(ExprKind::Unary(UnaryOp::Neg, Box::new(e)), l, r)
    }

    /// `-1` inside a list literal.
    pub fn negate_literal(&mut self, literal: Literal, l: usize, r: usize) -> Literal {
        match self.negated(&literal) {
            Some(kind) => Literal { kind, span: Span::new(l, r) },
            None => literal,
        }
    }

    fn negated(&mut self, literal: &Literal) -> Option<LiteralKind> {
        match &literal.kind {
            LiteralKind::Int(value) => {
                if let Some(i) = self.overflowing.iter().position(|s| *s == literal.span) {
                    self.overflowing.swap_remove(i);
                    return Some(LiteralKind::Int(i64::MIN));
                }
                value.checked_neg().map(LiteralKind::Int)
            }
            LiteralKind::Number(text) => Some(LiteralKind::Number(match text.strip_prefix('-') {
                Some(positive) => positive.to_string(),
                None => format!("-{text}"),
            })),
            _ => None,
        }
    }

    pub fn list(&mut self, items: Vec<Literal>, l: usize, r: usize) -> Literal {
        let span = Span::new(l, r);
        let kind = if self.record_depth(span, items.iter().map(|i| i.span)) {
            LiteralKind::List(items)
        } else {
            LiteralKind::Null
        };
        Literal { kind, span }
    }
}

fn child_spans(kind: &ExprKind) -> Vec<Span> {
    match kind {
        ExprKind::Literal(literal) => vec![literal.span],
        ExprKind::Path(_) => Vec::new(),
        ExprKind::Unary(_, e) | ExprKind::IsNull { expr: e, .. } | ExprKind::InSegment { expr: e, .. } => {
            vec![e.span]
        }
        ExprKind::Binary(_, a, b) => vec![a.span, b.span],
        ExprKind::InList { expr, list, .. } => std::iter::once(expr.span).chain(list.iter().map(|e| e.span)).collect(),
        ExprKind::Case { whens, otherwise } => {
            whens.iter().flat_map(|(c, v)| [c.span, v.span]).chain(otherwise.iter().map(|e| e.span)).collect()
        }
        ExprKind::Call(call) => call.args.iter().map(|e| e.span).chain(call.filter.iter().map(|e| e.span)).collect(),
    }
}
