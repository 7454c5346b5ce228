//! Comparing trees while ignoring where they came from.
//!
//! Round-trip tests (`parse(print(parse(x)))`) and the compiler's tests want to
//! compare ASTs by structure only; [`File::without_spans`] gives the copy to compare.

use crate::ast::*;

impl File {
    /// A copy with every span set to `0..0`, for structural comparison.
    pub fn without_spans(&self) -> File {
        let mut file = self.clone();
        for item in &mut file.items {
            clear_item(item);
        }
        file
    }
}

impl Expr {
    /// A copy with every span set to `0..0`, for structural comparison.
    pub fn without_spans(&self) -> Expr {
        let mut expr = self.clone();
        clear_expr(&mut expr);
        expr
    }
}

fn clear_item(item: &mut Item) {
    match item {
        Item::Entity(d) => {
            d.span = Span::default();
            clear_ident(&mut d.name);
            d.fields.iter_mut().for_each(clear_field);
        }
        Item::Event(d) => {
            d.span = Span::default();
            clear_ident(&mut d.name);
            d.fields.iter_mut().for_each(clear_field);
        }
        Item::Tag(d) => {
            d.span = Span::default();
            clear_ident(&mut d.entity);
            clear_ident(&mut d.name);
            d.ty.iter_mut().for_each(clear_type);
            clear_expr(&mut d.expr);
        }
        Item::Segment(d) => {
            d.span = Span::default();
            clear_ident(&mut d.name);
            clear_ident(&mut d.entity);
            clear_expr(&mut d.expr);
        }
        Item::Query(q) => {
            q.span = Span::default();
            for select in &mut q.items {
                match select {
                    SelectItem::Star(span) => *span = Span::default(),
                    SelectItem::Expr { expr, alias } => {
                        clear_expr(expr);
                        alias.iter_mut().for_each(clear_ident);
                    }
                }
            }
            clear_ident(&mut q.from);
            q.filter.iter_mut().for_each(clear_expr);
            q.group_by.iter_mut().for_each(clear_expr);
            q.order_by.iter_mut().for_each(|o| clear_expr(&mut o.expr));
            q.limit.iter_mut().for_each(clear_literal);
        }
    }
}

fn clear_ident(ident: &mut Ident) {
    ident.span = Span::default();
}

fn clear_field(field: &mut FieldDecl) {
    field.span = Span::default();
    clear_ident(&mut field.name);
    clear_type(&mut field.ty);
}

fn clear_type(ty: &mut TypeExpr) {
    ty.span = Span::default();
    clear_ident(&mut ty.name);
}

fn clear_expr(expr: &mut Expr) {
    expr.span = Span::default();
    match &mut expr.kind {
        ExprKind::Literal(literal) => clear_literal(literal),
        ExprKind::Path(path) => path.iter_mut().for_each(clear_ident),
        ExprKind::Unary(_, e) => clear_expr(e),
        ExprKind::Binary(_, a, b) => {
            clear_expr(a);
            clear_expr(b);
        }
        ExprKind::IsNull { expr, .. } => clear_expr(expr),
        ExprKind::InList { expr, list, .. } => {
            clear_expr(expr);
            list.iter_mut().for_each(clear_expr);
        }
        ExprKind::InSegment { expr, segment, .. } => {
            clear_expr(expr);
            clear_ident(segment);
        }
        ExprKind::Case { whens, otherwise } => {
            for (condition, value) in whens {
                clear_expr(condition);
                clear_expr(value);
            }
            otherwise.iter_mut().for_each(|e| clear_expr(e));
        }
        ExprKind::Call(call) => {
            clear_ident(&mut call.name);
            call.args.iter_mut().for_each(clear_expr);
            call.by.iter_mut().for_each(clear_ident);
            call.filter.iter_mut().for_each(|e| clear_expr(e));
            call.within.iter_mut().for_each(clear_duration);
        }
    }
}

fn clear_literal(literal: &mut Literal) {
    literal.span = Span::default();
    match &mut literal.kind {
        LiteralKind::Duration(d) => clear_duration(d),
        LiteralKind::List(items) => items.iter_mut().for_each(clear_literal),
        _ => {}
    }
}

fn clear_duration(duration: &mut Duration) {
    duration.span = Span::default();
}
