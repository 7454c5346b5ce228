//! Moving what an expression reads of one referenced instance into a tag of
//! that instance, before lowering.
//!
//! `segment store_fans on user = home_store.revenue_7d > 20000 and ...` reads
//! a store's revenue through every user's `home_store`. Lowered as written,
//! each change to a store's revenue flows to every user of the store and
//! re-evaluates each of them, although the comparison moves only when the
//! revenue crosses 20,000. Here the part of the expression that reads
//! nothing but one reference's target (`home_store.revenue_7d > 20000`)
//! becomes an anonymous tag of the store (`revenue_7d > 20000`), and the
//! user reads that tag through the reference: a user changes only when its
//! store's answer does.
//!
//! The rewrite keeps every value. With the reference set, the anonymous tag
//! is the part evaluated over the same columns of the same instance (every
//! named instance is one, whatever its records: see `Input::Instances`).
//! With the reference null, every column the part reads is null, and so is
//! the tag read through it; where the part over nulls is not null
//! (`coalesce(home_store.revenue_7d, 0) > 40` is false), the rewrite says so:
//! `case when home_store is null then false else home_store.<tag> end`.
//!
//! Tags computed on read (`tag user.home_revenue = home_store.revenue_7d`)
//! are read inside the definitions that read them, so that the part that
//! goes through them moves too; a tag that nothing else in the dataflow
//! reads is then computed only on read. They themselves are not rewritten
//! (their values are not kept: the serving state would have to keep the
//! anonymous tag's). A moved part's new tag is rewritten in turn, with its
//! own entity's tags computed on read written out: a filter's
//! `user.store_rev > 20`, where `store_rev` is `coalesce(home_store.revenue,
//! 0)`, becomes a user tag that reads a store tag `coalesce(revenue, 0) >
//! 20`, so no user is evaluated when a store's revenue moves.
//!
//! An aggregate's filter is rewritten the same way: `count(order where
//! store.revenue_7d > 20000 within 30d)` joins each order to its store, and
//! the join is live, so every move of a store's revenue changed every order
//! row of the store; the join now carries the store's answer instead.

use crate::hir::{AggId, Column, Def, Expr, ExprKind, Program, SegmentId, Tag, TagId};
use crate::lower::{computed_on_read, lower_over_columns};
use crate::value::{EntityId, Type, Value};
use std::collections::{HashMap, HashSet};

/// The program with each evaluated definition's parts over one referenced
/// instance moved into anonymous tags of that instance's entity (see the
/// module's comment). A definition with no such part is left as it is.
pub fn push_down(program: &Program) -> Program {
    let (on_read, _) = computed_on_read(program);
    let mut out = program.clone();
    let mut order = Vec::with_capacity(program.order.len());
    let mut filtered = HashSet::new();
    for &def in &program.order {
        // The expression to rewrite and where it goes: an aggregate's filter
        // (an event's row, whose references a live join follows; an
        // aggregate that two tags share, once), or an evaluated definition,
        // with the tags computed on read that it reads written out.
        let target = match def {
            Def::Tag(t) => match program.tags[t].expr.kind {
                ExprKind::Aggregate(a) => {
                    let first = filtered.insert(a);
                    program.aggregates[a].filter.clone().filter(|_| first).map(|f| (f, Place::Filter(a)))
                }
                _ if on_read.contains(&def) => None,
                _ => Some((inline_on_read(program, &on_read, &program.tags[t].expr), Place::Tag(t))),
            },
            Def::Segment(s) => Some((inline_on_read(program, &on_read, &program.segments[s].expr), Place::Segment(s))),
        };
        if let Some((expr, place)) = target {
            let mut pushing = Pushing {
                out: &mut out,
                on_read: &on_read,
                owner: program.def_name(def),
                added: Vec::new(),
                any_moved: false,
            };
            let rewritten = pushing.rewrite(expr);
            let (added, any_moved) = (pushing.added, pushing.any_moved);
            if any_moved {
                *place.expr_in(&mut out) = rewritten;
            }
            order.extend(added.into_iter().map(Def::Tag));
        }
        order.push(def);
    }
    out.order = order;
    out
}

/// Where a rewritten expression goes.
enum Place {
    Filter(AggId),
    Tag(TagId),
    Segment(SegmentId),
}

impl Place {
    fn expr_in(self, program: &mut Program) -> &mut Expr {
        match self {
            Place::Filter(a) => program.aggregates[a].filter.as_mut().expect("only a filter is rewritten"),
            Place::Tag(t) => &mut program.tags[t].expr,
            Place::Segment(s) => &mut program.segments[s].expr,
        }
    }
}

/// How large an expression with tags computed on read written out may grow:
/// each read of such a tag copies it, so a chain of tags that each read the
/// one before twice would double at every link. Past this, the expression
/// is rewritten as written (its tags computed on read are then evaluated in
/// its gather, as before this pass).
const INLINED_NODES: usize = 256;

/// `expr` with each tag computed on read replaced by its expression (which
/// reads columns of the same instance, or follows its references), unless
/// that would make it larger than `INLINED_NODES`.
fn inline_on_read(program: &Program, on_read: &HashSet<Def>, expr: &Expr) -> Expr {
    if inlined_nodes(program, on_read, expr, &mut HashMap::new()) > INLINED_NODES {
        return expr.clone();
    }
    inline_tags(program, on_read, expr)
}

fn inline_tags(program: &Program, on_read: &HashSet<Def>, expr: &Expr) -> Expr {
    map_expr(expr.clone(), &mut |e| match &e.kind {
        ExprKind::Column(Column::Tag(t)) if on_read.contains(&Def::Tag(*t)) => {
            inline_tags(program, on_read, &program.tags[*t].expr)
        }
        _ => e,
    })
}

/// The number of nodes `inline_tags` would make, counted without making
/// them (each tag's count once, in `counted`).
fn inlined_nodes(program: &Program, on_read: &HashSet<Def>, expr: &Expr, counted: &mut HashMap<TagId, usize>) -> usize {
    let mut nodes = 0usize;
    expr.visit(&mut |e| {
        nodes = nodes.saturating_add(match &e.kind {
            ExprKind::Column(Column::Tag(t)) if on_read.contains(&Def::Tag(*t)) => match counted.get(t) {
                Some(&n) => n,
                None => {
                    let n = inlined_nodes(program, on_read, &program.tags[*t].expr, counted);
                    counted.insert(*t, n);
                    n
                }
            },
            _ => 1,
        })
    });
    nodes
}

/// What a sub-expression reads.
#[derive(Clone, PartialEq)]
enum Reads {
    /// Literals only.
    Nothing,
    /// Only columns of the instance that `via` refers to, an instance of
    /// `entity`: `via` is a column of the definition's entity, or a field
    /// of the event a filter reads.
    Through { via: Column, entity: EntityId },
    /// Anything else: the definition's own columns, aggregates, or two references.
    Other,
}

fn reads(e: &Expr) -> Reads {
    let mut acc = Reads::Nothing;
    e.visit(&mut |part| {
        let read = match &part.kind {
            ExprKind::Column(Column::Follow { via, entity, .. }) => {
                Reads::Through { via: (**via).clone(), entity: *entity }
            }
            ExprKind::Column(_) | ExprKind::Aggregate(_) => Reads::Other,
            _ => return,
        };
        acc = match (std::mem::replace(&mut acc, Reads::Other), read) {
            (Reads::Nothing, r) => r,
            (a, b) if a == b => a,
            _ => Reads::Other,
        };
    });
    acc
}

/// `f` applied bottom-up to every sub-expression of `e`.
fn map_expr(e: Expr, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
    let e = map_parts(e, &mut |part| map_expr(part, f));
    f(e)
}

/// `e` with `f` applied to each of its direct sub-expressions, in order.
fn map_parts(e: Expr, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
    let Expr { kind, ty } = e;
    let mut go = |x: Box<Expr>| Box::new(f(*x));
    let kind = match kind {
        k @ (ExprKind::Literal(_) | ExprKind::Column(_) | ExprKind::Aggregate(_)) => k,
        ExprKind::Widen(x) => ExprKind::Widen(go(x)),
        ExprKind::Unary(op, x) => ExprKind::Unary(op, go(x)),
        ExprKind::Binary(op, l, r) => {
            let l = go(l);
            ExprKind::Binary(op, l, go(r))
        }
        ExprKind::IsNull { expr, negated } => ExprKind::IsNull { expr: go(expr), negated },
        ExprKind::InList { expr, list, negated } => {
            let expr = go(expr);
            ExprKind::InList { expr, list: list.into_iter().map(|x| *go(Box::new(x))).collect(), negated }
        }
        ExprKind::Case { whens, otherwise } => ExprKind::Case {
            whens: whens.into_iter().map(|(c, v)| (*go(Box::new(c)), *go(Box::new(v)))).collect(),
            otherwise: otherwise.map(go),
        },
        ExprKind::Call(func, args) => ExprKind::Call(func, args.into_iter().map(|x| *go(Box::new(x))).collect()),
    };
    Expr { kind, ty }
}

struct Pushing<'a> {
    out: &'a mut Program,
    /// The tags computed on read, which a moved part's new tag writes out.
    on_read: &'a HashSet<Def>,
    /// The definition being rewritten, whose name the new tags carry.
    owner: String,
    /// The tags added for this definition, which it reads directly or
    /// through one another.
    added: Vec<TagId>,
    /// Whether a part moved (into a new tag or one an earlier definition made).
    any_moved: bool,
}

impl Pushing<'_> {
    /// `e` with every largest part that reads through one reference, and
    /// answers a question about what it reads, read from a tag instead.
    fn rewrite(&mut self, e: Expr) -> Expr {
        match reads(&e) {
            Reads::Through { via, entity } if worth_moving(&e) => self.move_part(e, via, entity),
            Reads::Nothing => e,
            _ => map_parts(e, &mut |part| self.rewrite(part)),
        }
    }

    /// A read through `via` of a tag of `entity` computing `part`, which
    /// reads only through `via`; the same tag if an earlier part made it.
    fn move_part(&mut self, part: Expr, via: Column, entity: EntityId) -> Expr {
        let ty = part.ty;
        let over_nulls = value_over_nulls(&part);
        let target = map_expr(part, &mut |e| match e.kind {
            ExprKind::Column(Column::Follow { target, .. }) => Expr { kind: ExprKind::Column(*target), ty: e.ty },
            kind => Expr { kind, ty: e.ty },
        });
        // The new tag is rewritten in turn, with the tags computed on read
        // of its own entity written out: a filter's `user.home_rev > 20`
        // moves into a user tag `home_rev > 20`, and that, where `home_rev`
        // is `coalesce(home_store.revenue, 0)`, into a store tag (the tags it
        // adds come first in `added`, so before the one reading them). If
        // nothing moves on, the tag keeps the target as written.
        let inlined = inline_on_read(self.out, self.on_read, &target);
        self.any_moved = false;
        let rewritten = self.rewrite(inlined);
        let target = if self.any_moved { rewritten } else { target };
        self.any_moved = true;
        let existing = self.out.tags.iter().position(|t| t.anonymous && t.entity == entity && t.expr == target);
        let tag = match existing {
            Some(t) => t,
            None => {
                let name = format!("{}^{}", self.owner, self.added.len() + 1);
                self.out.tags.push(Tag { entity, name, ty, anonymous: true, expr: target, span: Default::default() });
                self.added.push(self.out.tags.len() - 1);
                self.out.tags.len() - 1
            }
        };
        let read = Expr {
            kind: ExprKind::Column(Column::Follow {
                via: Box::new(via.clone()),
                entity,
                target: Box::new(Column::Tag(tag)),
            }),
            ty,
        };
        if over_nulls.is_null() {
            return read;
        }
        let null_via = Expr {
            kind: ExprKind::IsNull {
                expr: Box::new(Expr { kind: ExprKind::Column(via), ty: Type::Ref(entity) }),
                negated: false,
            },
            ty: Type::Bool,
        };
        Expr {
            kind: ExprKind::Case {
                whens: vec![(null_via, Expr::literal(over_nulls, ty))],
                otherwise: Some(Box::new(read)),
            },
            ty,
        }
    }
}

/// Whether moving `part` saves work: a test (`revenue_7d > 20000`) or a
/// choice among cases (a band) of a tag or segment changes less often than
/// what it reads, so fewer changes cross the reference. Arithmetic
/// (`revenue_7d * 2`) moves as often as its inputs and stays where it is;
/// so does a bare column, and a part that reads only attributes (`region =
/// "east"`), which change only when a record sets them.
fn worth_moving(part: &Expr) -> bool {
    let answers = match part.kind {
        ExprKind::Column(_) => false,
        ExprKind::Case { .. } => true,
        _ => part.ty == Type::Bool,
    };
    let mut computed = false;
    part.visit_columns(&mut |c| computed |= reads_computed(c));
    answers && computed
}

/// Whether a column is a tag or a segment, or follows a reference to one.
fn reads_computed(column: &Column) -> bool {
    match column {
        Column::Field(_) => false,
        Column::Tag(_) | Column::Segment(_) => true,
        Column::Follow { target, .. } => reads_computed(target),
    }
}

/// The value of `part` when every column it reads is null.
fn value_over_nulls(part: &Expr) -> Value {
    let (columns, scalar) = lower_over_columns(part);
    scalar.eval(&vec![Value::Null; columns.len()])
}

#[cfg(test)]
mod tests {
    use super::push_down;
    use crate::explain::hir_text;

    const SCHEMA: &str = "entity store { key id: string; region: string?; }\n\
        entity user { key id: string; home: store?; city: string?; }\n\
        event order { user: user; store: store?; amount: decimal; }\n\
        tag store.revenue = sum(order.amount within 7d);\n";

    /// The program's definitions after the rewrite, as `explain --stage hir` prints them.
    fn pushed(definitions: &str) -> String {
        let compiled =
            crate::compile_str("m.eql", &format!("{SCHEMA}{definitions}")).map_err(|(_, d)| format!("{d:?}")).unwrap();
        let text = hir_text(&push_down(&compiled.program));
        text.split_once("definitions (in dependency order):\n").unwrap().1.to_string()
    }

    #[test]
    fn a_test_of_the_referenced_instance_becomes_its_tag() {
        let text = pushed("segment fans on user = home.revenue > 100 and city = \"x\";\n");
        assert!(text.contains("tag store.fans^1: bool (lifted) = revenue > 100::decimal\n"), "{text}");
        assert!(text.contains("segment fans on user = home.fans^1 and (city = \"x\")"), "{text}");
        // The new tag comes before the segment that reads it.
        assert!(text.find("store.fans^1").unwrap() < text.find("segment fans").unwrap(), "{text}");
    }

    #[test]
    fn a_part_with_a_value_over_a_null_reference_keeps_it() {
        let text = pushed("segment fans on user = coalesce(home.revenue, 0) > 40 and city = \"x\";\n");
        assert!(text.contains("(lifted) = coalesce(revenue, 0::decimal) > 40::decimal\n"), "{text}");
        assert!(
            text.contains("segment fans on user = case when home is null then false else home.fans^1 end and"),
            "{text}"
        );
    }

    #[test]
    fn a_tag_computed_on_read_moves_with_the_part_that_reads_it() {
        let text = pushed(
            "tag user.home_revenue = home.revenue;\n\
             tag user.band = case when home.revenue > 50 then \"big\" else \"small\" end;\n\
             segment fans on user = home_revenue > 100 and city = \"x\";\n\
             segment big on user = band = \"big\" or city is null;\n",
        );
        // The tags themselves are still computed on read, as written.
        assert!(text.contains("tag user.home_revenue: decimal = home.revenue\n"), "{text}");
        assert!(text.contains("segment fans on user = home.fans^1 and"), "{text}");
        // The whole test moves, band and all: over a null reference the
        // band is "small", so the test is false there.
        assert!(text.contains("tag store.big^1: bool (lifted) = case when revenue > 50::decimal then"), "{text}");
        assert!(
            text.contains("segment big on user = case when home is null then false else home.big^1 end or"),
            "{text}"
        );
    }

    #[test]
    fn arithmetic_and_mixed_parts_stay() {
        let text = pushed(
            "tag user.twice = home.revenue * 2 + count(order within 1d);\n\
             segment mixed on user = home.revenue > count(order within 1d);\n\
             segment own on user = city = \"x\";\n\
             segment attribute on user = home.region = \"x\" and city = \"y\";\n\
             tag user.east_orders = count(order where store.region = \"east\" within 1d);\n",
        );
        assert!(!text.contains('^'), "{text}");
    }

    #[test]
    fn a_filter_carries_the_answer_of_the_instance_its_event_names() {
        let text = pushed(
            "tag user.hot_orders = count(order where store.revenue > 100 within 1d);\n\
             tag user.calm_orders = count(order where not coalesce(store.revenue > 100, false) within 1d);\n",
        );
        // The filters are in the aggregates, which the text prints in their tags.
        assert!(text.contains("tag store.user.hot_orders^1: bool (lifted) = revenue > 100::decimal\n"), "{text}");
        assert!(text.contains("count(order by user where store.user.hot_orders^1 within 1d)"), "{text}");
        assert!(
            text.contains(
                "count(order by user where case when store is null then true else store.user.calm_orders^1 end"
            ),
            "{text}"
        );
        assert!(text.find("store.user.hot_orders^1").unwrap() < text.find("tag user.hot_orders").unwrap(), "{text}");
    }

    #[test]
    fn a_moved_part_moves_again_through_a_tag_computed_on_read() {
        let text = pushed(
            "tag user.home_revenue = coalesce(home.revenue, 0);\n\
             tag store.fan_orders = count(order where user.home_revenue > 100 within 1d);\n",
        );
        // The order's user's test, then the user's store's.
        assert!(
            text.contains(
                "tag store.store.fan_orders^1: bool (lifted) = coalesce(revenue, 0::decimal) > 100::decimal\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("tag user.store.fan_orders^2: bool (lifted) = case when home is null then false else home.store.fan_orders^1 end\n"),
            "{text}"
        );
        assert!(text.contains("count(order by store where user.store.fan_orders^2 within 1d)"), "{text}");
    }

    #[test]
    fn a_moved_part_that_moves_no_further_keeps_its_tags_computed_on_read() {
        let text = pushed(
            "tag user.orders_1d = count(order within 1d);\n\
             tag user.net = home.revenue - orders_1d;\n\
             tag user.home_revenue = home.revenue;\n\
             tag store.net_orders = count(order where user.net > 3 within 1d);\n\
             tag store.a = count(order where user.home_revenue > 100 within 1d);\n\
             tag store.b = count(order where user.home_revenue > 100 within 2d);\n",
        );
        // `net` also reads the user's own count, so written out its test
        // cannot move on to the store: the user's tag reads `net` as written.
        assert!(text.contains("tag user.store.net_orders^1: bool (lifted) = net > 3::decimal\n"), "{text}");
        // Two filters with one test share the user's tag and the store's.
        assert_eq!(text.matches("(lifted) = revenue > 100::decimal").count(), 1, "{text}");
        assert_eq!(text.matches("(lifted) = home.store.a^1").count(), 1, "{text}");
        assert!(text.contains("count(order by store where user.store.a^2 within 2d)"), "{text}");
    }

    #[test]
    fn parts_of_two_entities_tags_of_one_name_stay_apart() {
        let text = pushed(
            "entity product { key sku: string; }\n\
             event sale { product: product; store: store; }\n\
             tag user.hot = count(order where store.revenue > 100 within 1d);\n\
             tag product.hot = count(sale where store.revenue > 200 within 1d);\n",
        );
        assert!(text.contains("tag store.user.hot^1: bool (lifted) = revenue > 100::decimal\n"), "{text}");
        assert!(text.contains("tag store.product.hot^1: bool (lifted) = revenue > 200::decimal\n"), "{text}");
    }

    #[test]
    fn a_chain_of_tags_computed_on_read_is_not_written_out_past_a_bound() {
        // Each link follows the reference (so it is computed on read) and
        // reads the one before twice: written out, 2^12 copies of `t0`.
        let mut chain = "tag user.t0 = home.revenue;\n".to_string();
        for i in 1..=12 {
            chain.push_str(&format!("tag user.t{i} = t{} + t{} + home.revenue;\n", i - 1, i - 1));
        }
        let text = pushed(&format!("{chain}segment big on user = t12 > 100 and city = \"x\";\n"));
        assert!(text.contains("segment big on user = (t12 > 100::decimal) and"), "{text}");
        let short = pushed(&format!("{chain}segment big on user = t2 > 100 and city = \"x\";\n"));
        assert!(short.contains("segment big on user = home.big^1 and"), "{short}");
    }

    #[test]
    fn equal_parts_share_one_tag() {
        let text = pushed(
            "segment a on user = home.revenue > 100 and city = \"x\";\n\
             segment b on user = home.revenue > 100 and city = \"y\";\n",
        );
        assert_eq!(text.matches("(lifted) = revenue > 100::decimal").count(), 1, "{text}");
        assert!(text.contains("segment b on user = home.a^1 and"), "{text}");
    }
}
