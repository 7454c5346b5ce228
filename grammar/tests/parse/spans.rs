//! Spans map back to exactly the source text of their node.

use crate::common::parse_clean;
use crate::examples::ALL;
use segflow_grammar::ast::*;
use segflow_grammar::Span;

fn text(source: &str, span: Span) -> &str {
    &source[span.start..span.end]
}

#[test]
fn spans_of_a_tag() {
    let source = "tag  user.spend: decimal? = sum(order.amount where ch = \"ü\" within 90d) * (1 + -2);";
    let file = parse_clean(source);
    let Item::Tag(tag) = &file.items[0] else { panic!("not a tag") };
    // Item spans run from the keyword to the last token before `;`.
    assert_eq!(text(source, tag.span), &source[..source.len() - 1]);
    assert_eq!(text(source, tag.entity.span), "user");
    assert_eq!(text(source, tag.name.span), "spend");
    assert_eq!(text(source, tag.ty.as_ref().unwrap().span), "decimal?");
    assert_eq!(text(source, tag.ty.as_ref().unwrap().name.span), "decimal");

    let ExprKind::Binary(BinaryOp::Mul, call, sum) = &tag.expr.kind else { panic!("not *") };
    assert_eq!(text(source, tag.expr.span), "sum(order.amount where ch = \"ü\" within 90d) * (1 + -2)");
    assert_eq!(text(source, call.span), "sum(order.amount where ch = \"ü\" within 90d)");
    // A parenthesised expression's span includes the parentheses.
    assert_eq!(text(source, sum.span), "(1 + -2)");
    let ExprKind::Binary(BinaryOp::Add, _, minus_two) = &sum.kind else { panic!("not +") };
    assert_eq!(minus_two.kind, ExprKind::Literal(Literal { kind: LiteralKind::Int(-2), span: minus_two.span }));
    assert_eq!(text(source, minus_two.span), "-2");

    let ExprKind::Call(call) = &call.kind else { panic!("not a call") };
    assert_eq!(text(source, call.name.span), "sum");
    let ExprKind::Path(path) = &call.args[0].kind else { panic!("not a path") };
    assert_eq!(text(source, call.args[0].span), "order.amount");
    assert_eq!(text(source, path[1].span), "amount");
    let filter = call.filter.as_ref().unwrap();
    assert_eq!(text(source, filter.span), "ch = \"ü\"");
    let ExprKind::Binary(BinaryOp::Eq, _, string) = &filter.kind else { panic!("not =") };
    assert_eq!(text(source, string.span), "\"ü\"");
    assert_eq!(text(source, call.within.as_ref().unwrap().span), "90d");
}

#[test]
fn spans_of_declarations_and_queries() {
    let source =
        "entity user {\n  key id: string;\n  city: string?;\n}\nselect *, city as c from user order by c desc limit 3;";
    let file = parse_clean(source);
    let Item::Entity(user) = &file.items[0] else { panic!("not an entity") };
    assert_eq!(text(source, user.span), "entity user {\n  key id: string;\n  city: string?;\n}");
    assert_eq!(text(source, user.fields[0].span), "key id: string");
    assert_eq!(text(source, user.fields[1].ty.span), "string?");

    let Item::Query(query) = &file.items[1] else { panic!("not a query") };
    assert_eq!(text(source, query.span), "select *, city as c from user order by c desc limit 3");
    let SelectItem::Star(star) = &query.items[0] else { panic!("not *") };
    assert_eq!(text(source, *star), "*");
    let SelectItem::Expr { alias: Some(alias), .. } = &query.items[1] else { panic!("no alias") };
    assert_eq!(text(source, alias.span), "c");
    assert_eq!(text(source, query.limit.as_ref().unwrap().span), "3");
}

/// Every expression node, depth first.
fn exprs_of(expr: &Expr, out: &mut Vec<Expr>) {
    out.push(expr.clone());
    match &expr.kind {
        ExprKind::Literal(_) | ExprKind::Path(_) => {}
        ExprKind::Unary(_, e) | ExprKind::IsNull { expr: e, .. } | ExprKind::InSegment { expr: e, .. } => {
            exprs_of(e, out)
        }
        ExprKind::Binary(_, a, b) => {
            exprs_of(a, out);
            exprs_of(b, out);
        }
        ExprKind::InList { expr, list, .. } => {
            exprs_of(expr, out);
            list.iter().for_each(|e| exprs_of(e, out));
        }
        ExprKind::Case { whens, otherwise } => {
            for (c, v) in whens {
                exprs_of(c, out);
                exprs_of(v, out);
            }
            otherwise.iter().for_each(|e| exprs_of(e, out));
        }
        ExprKind::Call(call) => {
            call.args.iter().for_each(|e| exprs_of(e, out));
            call.filter.iter().for_each(|e| exprs_of(e, out));
        }
    }
}

fn top_exprs(item: &Item) -> Vec<&Expr> {
    match item {
        Item::Tag(t) => vec![&t.expr],
        Item::Segment(s) => vec![&s.expr],
        Item::Query(q) => q
            .items
            .iter()
            .filter_map(|i| match i {
                SelectItem::Expr { expr, .. } => Some(expr),
                SelectItem::Star(_) => None,
            })
            .chain(&q.filter)
            .chain(&q.group_by)
            .chain(q.order_by.iter().map(|o| &o.expr))
            .collect(),
        Item::Entity(_) | Item::Event(_) => Vec::new(),
    }
}

#[test]
fn every_expression_span_reparses_to_the_same_expression() {
    for source in ALL {
        let file = parse_clean(source);
        let mut all = Vec::new();
        for item in &file.items {
            top_exprs(item).into_iter().for_each(|e| exprs_of(e, &mut all));
        }
        assert!(!all.is_empty() || !source.contains("tag"));
        for expr in all {
            let snippet = text(source, expr.span);
            let wrapped = format!("tag a.b = {snippet};");
            let reparsed = parse_clean(&wrapped);
            let Item::Tag(tag) = &reparsed.items[0] else { panic!("not a tag") };
            assert_eq!(tag.expr.without_spans(), expr.without_spans(), "span text {snippet:?}");
        }
    }
}

#[test]
fn every_item_span_starts_with_its_keyword() {
    for source in ALL {
        for item in parse_clean(source).items {
            let keyword = match item {
                Item::Entity(_) => "entity",
                Item::Event(_) => "event",
                Item::Tag(_) => "tag",
                Item::Segment(_) => "segment",
                Item::Query(_) => "select",
            };
            let snippet = text(source, item.span());
            assert!(snippet.starts_with(keyword), "{snippet:?}");
            assert!(!snippet.ends_with(';'), "{snippet:?}");
        }
    }
}
