//! Every example of EQL.md §3–§8 and the retail example parse without a diagnostic.

use crate::common::{assert_round_trip, parse_clean};
use segflow_grammar::ast::*;

pub const ENTITIES: &str = r#"
entity user {
  key id: string;
  name: string?;
  city: string?;
  signup_at: timestamp?;
  home_store: store?;        -- a relation to another entity
}
entity store   { key id: string; city: string; region: string?; }
entity product { key sku: string; category: string; price: decimal?; }
"#;

pub const EVENTS: &str = r#"
event page_view { user: user; url: string; channel: string; }
event add_to_cart { user: user; product: product; quantity: int; }
event order {
  user: user;
  store: store?;             -- offline purchase in a store; null for online
  product: product;
  amount: decimal;
  quantity: int;
}
"#;

pub const TAGS: &str = r#"
tag user.orders_30d = count(order within 30d);
tag user.spend_90d  = sum(order.amount within 90d);
tag user.app_views_7d = count(page_view where channel = "app" within 7d);
tag user.shoe_spend_90d = sum(order.amount where product.category = "shoes" within 90d);
tag user.last_order_at = max(order.at);
tag user.stores_visited = count_distinct(order.store within 180d);
tag user.top_channel = mode(page_view.channel within 30d);
tag store.revenue_7d = sum(order.amount within 7d);
tag product.buyers_30d = count_distinct(order.user within 30d);
tag user.tier: string = case
  when spend_90d >= 5000 then "gold"
  when spend_90d >= 1000 then "silver"
  else "bronze" end;
"#;

/// Shapes named in the prose of §5–§7 rather than in its code blocks.
pub const PROSE: &str = r#"
tag user.received = count(transfer by receiver);
tag user.recent = exists(order within 7d);
tag user.via_home = home_store.revenue_7d;
tag user.misc = coalesce(a, b, 1) + abs(-7) + round(x, 2) + lower(s) + upper(s);
segment s on user = starts_with(s, "p") and contains(s, 'q') and x in ["a", "b"]
  and y is null and z is not null and not w;
"#;

pub const SEGMENTS: &str = r#"
segment high_value on user = spend_90d >= 1000 and orders_30d >= 3;
segment lapsed_gold on user = tier = "gold" and not exists(order within 60d);
segment hot_stores on store = revenue_7d > 100000;
segment hot_store_regulars on user = home_store in hot_stores and orders_30d >= 2;
segment app_shanghai on user = city = "Shanghai" and count(page_view where channel = "app" within 7d) >= 5;
"#;

pub const QUERIES: &str = r#"
select id, city, spend_90d from user where high_value and city = "Shanghai"
  order by spend_90d desc limit 20;
select city, count(*) from user where high_value group by city;
select count(*) from store where hot_stores;
"#;

pub const RETAIL: &str = include_str!("../../../examples/retail/retail.eql");
pub const RETAIL_QUERIES: &str = include_str!("../../../examples/retail/queries.eql");

pub const ALL: &[&str] = &[ENTITIES, EVENTS, TAGS, PROSE, SEGMENTS, QUERIES, RETAIL, RETAIL_QUERIES];

#[test]
fn every_example_parses_cleanly_and_round_trips() {
    for source in ALL {
        assert_round_trip(source);
    }
}

#[test]
fn item_counts() {
    let count = |s| parse_clean(s).items.len();
    assert_eq!(count(ENTITIES), 3);
    assert_eq!(count(EVENTS), 3);
    assert_eq!(count(TAGS), 10);
    assert_eq!(count(SEGMENTS), 5);
    assert_eq!(count(QUERIES), 3);
    assert_eq!(count(RETAIL), 45);
    assert_eq!(count(RETAIL_QUERIES), 4);
}

#[test]
fn entity_fields() {
    let file = parse_clean(ENTITIES);
    let Item::Entity(user) = &file.items[0] else { panic!("not an entity") };
    assert_eq!(user.name.name, "user");
    let fields: Vec<_> =
        user.fields.iter().map(|f| (f.is_key, f.name.name.as_str(), f.ty.name.name.as_str(), f.ty.nullable)).collect();
    assert_eq!(
        fields,
        vec![
            (true, "id", "string", false),
            (false, "name", "string", true),
            (false, "city", "string", true),
            (false, "signup_at", "timestamp", true),
            (false, "home_store", "store", true),
        ]
    );
}

#[test]
fn order_is_a_name_as_well_as_a_keyword() {
    let file = parse_clean(EVENTS);
    let Item::Event(order) = &file.items[2] else { panic!("not an event") };
    assert_eq!(order.name.name, "order");
    assert_eq!(order.fields.len(), 5);
}

#[test]
fn aggregate_clauses() {
    let file = parse_clean(TAGS);
    let Item::Tag(shoes) = &file.items[3] else { panic!("not a tag") };
    let ExprKind::Call(call) = &shoes.expr.kind else { panic!("not a call") };
    assert_eq!(call.name.name, "sum");
    assert!(!call.star);
    assert_eq!(call.args.len(), 1);
    assert_eq!(call.args[0].to_string(), "order.amount");
    assert_eq!(call.filter.as_ref().unwrap().to_string(), "product.category = \"shoes\"");
    let within = call.within.as_ref().unwrap();
    assert_eq!((within.millis, within.text.as_str()), (90 * 86_400_000, "90d"));

    let file = parse_clean(PROSE);
    let Item::Tag(received) = &file.items[0] else { panic!("not a tag") };
    let ExprKind::Call(call) = &received.expr.kind else { panic!("not a call") };
    assert_eq!(call.by.as_ref().unwrap().name, "receiver");
}

#[test]
fn typed_tag_with_case() {
    let file = parse_clean(TAGS);
    let Item::Tag(tier) = &file.items[9] else { panic!("not a tag") };
    assert_eq!(tier.ty.as_ref().unwrap().name.name, "string");
    let ExprKind::Case { whens, otherwise } = &tier.expr.kind else { panic!("not a case") };
    assert_eq!(whens.len(), 2);
    assert_eq!(otherwise.as_ref().unwrap().to_string(), "\"bronze\"");
}

#[test]
fn segment_membership_tests() {
    let file = parse_clean(SEGMENTS);
    let Item::Segment(regulars) = &file.items[3] else { panic!("not a segment") };
    assert_eq!((regulars.name.name.as_str(), regulars.entity.name.as_str()), ("hot_store_regulars", "user"));
    let ExprKind::Binary(BinaryOp::And, left, _) = &regulars.expr.kind else { panic!("not and") };
    let ExprKind::InSegment { segment, negated, .. } = &left.kind else { panic!("not in segment") };
    assert_eq!((segment.name.as_str(), *negated), ("hot_stores", false));
}

#[test]
fn query_clauses() {
    let file = parse_clean(QUERIES);
    let Item::Query(first) = &file.items[0] else { panic!("not a query") };
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.from.name, "user");
    assert_eq!(first.filter.as_ref().unwrap().to_string(), "high_value and city = \"Shanghai\"");
    assert_eq!(first.order_by.len(), 1);
    assert!(first.order_by[0].descending);
    assert_eq!(first.limit.as_ref().unwrap().kind, LiteralKind::Int(20));

    let Item::Query(second) = &file.items[1] else { panic!("not a query") };
    let SelectItem::Expr { expr, alias: None } = &second.items[1] else { panic!("not an expr") };
    let ExprKind::Call(count) = &expr.kind else { panic!("not a call") };
    assert!(count.star && count.args.is_empty());
    assert_eq!(second.group_by.len(), 1);

    let file = parse_clean(RETAIL_QUERIES);
    let Item::Query(star) = &file.items[3] else { panic!("not a query") };
    assert!(matches!(star.items[..], [SelectItem::Star(_)]));
}

#[test]
fn keywords_ignore_case() {
    let file = parse_clean("SELECT Id AS x FROM User WHERE A AND NOT b ORDER BY x DESC LIMIT 1;");
    assert_eq!(file.to_string(), "select Id as x from User where A and not b order by x desc limit 1;\n");
}
