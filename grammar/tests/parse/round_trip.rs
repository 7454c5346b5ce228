//! `parse(print(tree)) == tree`: for hand-picked tricky text, and for random trees.

use crate::common::{assert_round_trip, parse_clean};
use proptest::prelude::*;
use segflow_grammar::ast::*;

#[test]
fn tricky_text_round_trips() {
    for source in [
        "tag a.b = - -x - -1 - (-(-2)) - -(-9223372036854775808) - -9223372036854775808;",
        "tag a.b = -7.5 + -(-7.5) + 0.25 * -(1.0);",
        "tag a.b = (a or b) and (c or d) and not (e and f) or not not g;",
        "tag a.b = (a = b) = (c < d) and (x is null) is not null;",
        "tag a.b = a - (b - c) - d + (e + f) * (g / h) % i / -j;",
        "tag a.b = x not in [1, -2, [3.5, 'x'], []] and y not in seg and (not z) in [a + 1, f(x)];",
        r#"tag a.b = "quote \" back \\ nl \n tab \t cr \r nul \0 \u{1F600} \u{7}" = 'it\'s';"#,
        "tag a.b = case when a then case when b then 1 end else -1 end;",
        "tag a.b = f() + f(*) + f(x by y) + f(x by y where z or w within 500ms, 2, 3) + f(a, b);",
        "tag a.b = [true, false, null, 1w, 2d, 3h, 4m, 5s, 6ms, -9223372036854775808, -0.5];",
        "entity order { key key: string; order: order?; group: int; }",
        "select *, order.key as limit, count(*) from order where key group by asc, desc order by desc desc, asc limit 0;",
    ] {
        assert_round_trip(source);
    }
}

#[test]
fn minus_folds_into_number_literals() {
    let file = parse_clean("tag a.b = -7 + - 7.5 + -(8) + -9223372036854775808 + -(-9223372036854775808);");
    assert_eq!(file.to_string(), "tag a.b = -7 + -7.5 + -8 + -9223372036854775808 + -(-9223372036854775808);\n");
}

const RESERVED: &[&str] = &[
    "entity", "event", "tag", "segment", "on", "select", "from", "where", "by", "within", "and", "or", "not", "in",
    "is", "null", "true", "false", "case", "when", "then", "else", "end", "as",
];

fn ident() -> impl Strategy<Value = Ident> {
    prop_oneof![
        prop::sample::select(vec!["order", "key", "group", "limit", "asc", "desc", "Order", "KEY", "_", "x1"])
            .prop_map(String::from),
        "[a-zA-Z_][a-zA-Z0-9_]{0,5}"
            .prop_filter("a reserved keyword", |s| { !RESERVED.iter().any(|k| k.eq_ignore_ascii_case(s)) }),
    ]
    .prop_map(|name| Ident { name, span: Span::default() })
}

fn literal(kind: LiteralKind) -> Literal {
    Literal { kind, span: Span::default() }
}

fn duration() -> impl Strategy<Value = Duration> {
    (
        0u64..100_000,
        prop::sample::select(vec![
            ("ms", 1),
            ("s", 1_000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
            ("w", 604_800_000),
        ]),
    )
        .prop_map(|(n, (unit, per))| Duration {
            millis: n * per,
            text: format!("{n}{unit}"),
            span: Span::default(),
        })
}

fn scalar_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<i64>().prop_map(LiteralKind::Int),
        ("-?", "[0-9]{1,6}", "[0-9]{1,4}")
            .prop_map(|(sign, int, frac)| LiteralKind::Number(format!("{sign}{int}.{frac}"))),
        any::<String>().prop_map(LiteralKind::String),
        any::<bool>().prop_map(LiteralKind::Bool),
        Just(LiteralKind::Null),
        duration().prop_map(LiteralKind::Duration),
    ]
    .prop_map(literal)
}

fn any_literal() -> impl Strategy<Value = Literal> {
    scalar_literal().prop_recursive(3, 12, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(|items| literal(LiteralKind::List(items)))
    })
}

fn expr(kind: ExprKind) -> Expr {
    Expr { kind, span: Span::default() }
}

/// `-` on a number literal parses as a negative literal, so build it that way.
fn negate(e: Expr) -> Expr {
    if let ExprKind::Literal(Literal { kind, .. }) = &e.kind {
        match kind {
            LiteralKind::Int(i) if *i != i64::MIN => return expr(ExprKind::Literal(literal(LiteralKind::Int(-i)))),
            LiteralKind::Number(text) => {
                let negated = text.strip_prefix('-').map_or_else(|| format!("-{text}"), str::to_string);
                return expr(ExprKind::Literal(literal(LiteralKind::Number(negated))));
            }
            _ => {}
        }
    }
    expr(ExprKind::Unary(UnaryOp::Neg, Box::new(e)))
}

const OPS: &[BinaryOp] = &BinaryOp::ALL;

fn any_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        any_literal().prop_map(|l| expr(ExprKind::Literal(l))),
        prop::collection::vec(ident(), 1..4).prop_map(|p| expr(ExprKind::Path(p))),
    ];
    leaf.prop_recursive(5, 40, 4, |inner| {
        let boxed = inner.clone().prop_map(Box::new);
        prop_oneof![
            inner.clone().prop_map(|e| expr(ExprKind::Unary(UnaryOp::Not, Box::new(e)))),
            inner.clone().prop_map(negate),
            (prop::sample::select(OPS), boxed.clone(), boxed.clone())
                .prop_map(|(op, a, b)| expr(ExprKind::Binary(op, a, b))),
            (boxed.clone(), any::<bool>()).prop_map(|(expr_, negated)| expr(ExprKind::IsNull { expr: expr_, negated })),
            (boxed.clone(), prop::collection::vec(inner.clone(), 0..3), any::<bool>())
                .prop_map(|(e, list, negated)| expr(ExprKind::InList { expr: e, list, negated })),
            (boxed.clone(), ident(), any::<bool>()).prop_map(|(e, segment, negated)| expr(ExprKind::InSegment {
                expr: e,
                segment,
                negated
            })),
            (prop::collection::vec((inner.clone(), inner.clone()), 1..3), prop::option::of(boxed.clone()))
                .prop_map(|(whens, otherwise)| expr(ExprKind::Case { whens, otherwise })),
            call(inner),
        ]
    })
}

fn call(inner: impl Strategy<Value = Expr> + Clone + 'static) -> impl Strategy<Value = Expr> {
    let clauses =
        (prop::option::of(ident()), prop::option::of(inner.clone().prop_map(Box::new)), prop::option::of(duration()));
    (ident(), any::<bool>(), prop::collection::vec(inner, 0..3), clauses).prop_map(
        |(name, star, args, (by, filter, within))| {
            let call = if star || args.is_empty() {
                Call { name, star, args: Vec::new(), by: None, filter: None, within: None }
            } else {
                Call { name, star: false, args, by, filter, within }
            };
            expr(ExprKind::Call(call))
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn random_expressions_round_trip(e in any_expr()) {
        let source = format!("tag a.b = {e};");
        let file = parse_clean(&source);
        let Item::Tag(tag) = &file.items[0] else { panic!("not a tag") };
        prop_assert_eq!(tag.expr.without_spans(), e.without_spans(), "printed as {}", source);
    }
}
