//! `Display` for the AST: canonical EQL text.
//!
//! One item per line (entity and event bodies one field per line), keywords in
//! lowercase, single spaces around binary operators. Parentheses are written exactly
//! where the tree differs from what precedence and left associativity would build,
//! so re-parsing the output gives the same tree (up to spans).

use crate::ast::*;
use std::fmt::{self, Display, Formatter, Write};

/// Binding strength, loosest first; a child binding looser than its slot needs
/// parentheses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Or,
    And,
    Not,
    Comparison,
    Sum,
    Product,
    Negation,
    Primary,
}

fn binary_prec(op: BinaryOp) -> Prec {
    match op {
        BinaryOp::Or => Prec::Or,
        BinaryOp::And => Prec::And,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => Prec::Comparison,
        BinaryOp::Add | BinaryOp::Sub => Prec::Sum,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => Prec::Product,
    }
}

impl Expr {
    fn prec(&self) -> Prec {
        match &self.kind {
            ExprKind::Binary(op, _, _) => binary_prec(*op),
            ExprKind::Unary(UnaryOp::Not, _) => Prec::Not,
            ExprKind::Unary(UnaryOp::Neg, _) => Prec::Negation,
            ExprKind::IsNull { .. } | ExprKind::InList { .. } | ExprKind::InSegment { .. } => Prec::Comparison,
            ExprKind::Literal(_) | ExprKind::Path(_) | ExprKind::Case { .. } | ExprKind::Call(_) => Prec::Primary,
        }
    }

    /// Text starting with `-`, which must not follow another `-` (`--` is a comment).
    fn starts_with_minus(&self) -> bool {
        match &self.kind {
            ExprKind::Unary(UnaryOp::Neg, _) => true,
            ExprKind::Literal(literal) => match &literal.kind {
                LiteralKind::Int(i) => *i < 0,
                LiteralKind::Number(text) => text.starts_with('-'),
                _ => false,
            },
            _ => false,
        }
    }
}

/// Writes `expr`, in parentheses if it binds looser than `min`.
fn child(f: &mut Formatter<'_>, expr: &Expr, min: Prec) -> fmt::Result {
    if expr.prec() < min {
        write!(f, "({expr})")
    } else {
        write!(f, "{expr}")
    }
}

fn comma_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(literal) => write!(f, "{literal}"),
            ExprKind::Path(path) => {
                for (i, name) in path.iter().enumerate() {
                    if i > 0 {
                        f.write_char('.')?;
                    }
                    write!(f, "{name}")?;
                }
                Ok(())
            }
            ExprKind::Unary(UnaryOp::Not, e) => {
                f.write_str("not ")?;
                child(f, e, Prec::Not)
            }
            ExprKind::Unary(UnaryOp::Neg, e) => {
                f.write_char('-')?;
                if e.starts_with_minus() {
                    write!(f, "({e})")
                } else {
                    child(f, e, Prec::Negation)
                }
            }
            ExprKind::Binary(op, left, right) => {
                // Left-associative (comparisons not at all): the left operand may bind
                // as loosely as the operator, the right one must bind tighter.
                let prec = binary_prec(*op);
                let left_min = if prec == Prec::Comparison { Prec::Sum } else { prec };
                child(f, left, left_min)?;
                write!(f, " {} ", op.symbol())?;
                child(f, right, next(prec))
            }
            ExprKind::IsNull { expr, negated } => {
                child(f, expr, Prec::Sum)?;
                f.write_str(if *negated { " is not null" } else { " is null" })
            }
            ExprKind::InList { expr, list, negated } => {
                child(f, expr, Prec::Sum)?;
                f.write_str(if *negated { " not in [" } else { " in [" })?;
                comma_list(f, list)?;
                f.write_char(']')
            }
            ExprKind::InSegment { expr, segment, negated } => {
                child(f, expr, Prec::Sum)?;
                write!(f, "{}{segment}", if *negated { " not in " } else { " in " })
            }
            ExprKind::Case { whens, otherwise } => {
                f.write_str("case")?;
                for (condition, value) in whens {
                    write!(f, " when {condition} then {value}")?;
                }
                if let Some(otherwise) = otherwise {
                    write!(f, " else {otherwise}")?;
                }
                f.write_str(" end")
            }
            ExprKind::Call(call) => write!(f, "{call}"),
        }
    }
}

fn next(prec: Prec) -> Prec {
    match prec {
        Prec::Or => Prec::And,
        Prec::And => Prec::Not,
        Prec::Not => Prec::Comparison,
        Prec::Comparison => Prec::Sum,
        Prec::Sum => Prec::Product,
        Prec::Product => Prec::Negation,
        Prec::Negation | Prec::Primary => Prec::Primary,
    }
}

impl Display for Call {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.name)?;
        if self.star {
            f.write_char('*')?;
        }
        if let Some((first, rest)) = self.args.split_first() {
            write!(f, "{first}")?;
            if let Some(by) = &self.by {
                write!(f, " by {by}")?;
            }
            if let Some(filter) = &self.filter {
                write!(f, " where {filter}")?;
            }
            if let Some(within) = &self.within {
                write!(f, " within {within}")?;
            }
            for arg in rest {
                write!(f, ", {arg}")?;
            }
        }
        f.write_char(')')
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            LiteralKind::Int(i) => write!(f, "{i}"),
            LiteralKind::Number(text) => f.write_str(text),
            LiteralKind::String(s) => write_string(f, s),
            LiteralKind::Bool(b) => write!(f, "{b}"),
            LiteralKind::Null => f.write_str("null"),
            LiteralKind::Duration(d) => write!(f, "{d}"),
            LiteralKind::List(items) => {
                f.write_char('[')?;
                comma_list(f, items)?;
                f.write_char(']')
            }
        }
    }
}

/// A double-quoted string with the escapes the lexer reads back.
fn write_string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            '\0' => f.write_str("\\0")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl Display for Duration {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() {
            write!(f, "{}ms", self.millis)
        } else {
            f.write_str(&self.text)
        }
    }
}

impl Display for TypeExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name, if self.nullable { "?" } else { "" })
    }
}

impl Display for FieldDecl {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let key = if self.is_key { "key " } else { "" };
        write!(f, "{key}{}: {};", self.name, self.ty)
    }
}

fn write_body(f: &mut Formatter<'_>, keyword: &str, name: &Ident, fields: &[FieldDecl]) -> fmt::Result {
    writeln!(f, "{keyword} {name} {{")?;
    for field in fields {
        writeln!(f, "  {field}")?;
    }
    f.write_char('}')
}

impl Display for EntityDecl {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_body(f, "entity", &self.name, &self.fields)
    }
}

impl Display for EventDecl {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_body(f, "event", &self.name, &self.fields)
    }
}

impl Display for TagDecl {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "tag {}.{}", self.entity, self.name)?;
        if let Some(ty) = &self.ty {
            write!(f, ": {ty}")?;
        }
        write!(f, " = {};", self.expr)
    }
}

impl Display for SegmentDecl {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "segment {} on {} = {};", self.name, self.entity, self.expr)
    }
}

impl Display for SelectItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SelectItem::Star(_) => f.write_char('*'),
            SelectItem::Expr { expr, alias: None } => write!(f, "{expr}"),
            SelectItem::Expr { expr, alias: Some(alias) } => write!(f, "{expr} as {alias}"),
        }
    }
}

impl Display for OrderItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.expr, if self.descending { " desc" } else { "" })
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("select ")?;
        comma_list(f, &self.items)?;
        write!(f, " from {}", self.from)?;
        if let Some(filter) = &self.filter {
            write!(f, " where {filter}")?;
        }
        if !self.group_by.is_empty() {
            f.write_str(" group by ")?;
            comma_list(f, &self.group_by)?;
        }
        if !self.order_by.is_empty() {
            f.write_str(" order by ")?;
            comma_list(f, &self.order_by)?;
        }
        if let Some(limit) = &self.limit {
            write!(f, " limit {limit}")?;
        }
        f.write_char(';')
    }
}

impl Display for Item {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Item::Entity(d) => write!(f, "{d}"),
            Item::Event(d) => write!(f, "{d}"),
            Item::Tag(d) => write!(f, "{d}"),
            Item::Segment(d) => write!(f, "{d}"),
            Item::Query(d) => write!(f, "{d}"),
        }
    }
}

/// Items one per line; each line ends with a newline.
impl Display for File {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            writeln!(f, "{item}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::parse;

    fn canonical(src: &str) -> String {
        let parsed = parse(src);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        parsed.file.to_string()
    }

    #[test]
    fn prints_minimal_parentheses() {
        assert_eq!(
            canonical("tag a.b = ((1 + 2)) * (3 - (4 - 5)) - (6 - 7) - 8;"),
            "tag a.b = (1 + 2) * (3 - (4 - 5)) - (6 - 7) - 8;\n"
        );
        assert_eq!(
            canonical("segment s on u = (a or b) and not (c and d) or (x = 1) = true;"),
            "segment s on u = (a or b) and not (c and d) or (x = 1) = true;\n"
        );
        assert_eq!(canonical("tag a.b = (not x) is null;"), "tag a.b = (not x) is null;\n");
    }

    #[test]
    fn never_prints_a_comment_marker() {
        assert_eq!(canonical("tag a.b = - -x - -1 - (-(-2));"), "tag a.b = -(-x) - -1 - 2;\n");
        assert_eq!(canonical("tag a.b = -(-9223372036854775808);"), "tag a.b = -(-9223372036854775808);\n");
    }

    #[test]
    fn prints_bodies_one_field_per_line() {
        assert_eq!(
            canonical("ENTITY user{KEY id:string;city:string?;}"),
            "entity user {\n  key id: string;\n  city: string?;\n}\n"
        );
    }

    #[test]
    fn prints_strings_with_escapes() {
        assert_eq!(canonical(r#"tag a.b = 'say "hi"\n\u{1}';"#), "tag a.b = \"say \\\"hi\\\"\\n\\u{1}\";\n");
    }
}
