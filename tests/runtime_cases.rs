//! Incremental behaviour as step scripts: records in, then the expected state
//! and changes out. Each test names the rule of EQL.md it pins down.

mod common;

use segflow_runtime::{Clock, Decoder};
use serde_json::{json, Value};

const MODEL: &str = r#"
entity user { key id: string; city: string?; home_store: store?; }
entity store { key id: string; region: string?; }
entity product { key sku: string; category: string?; }
event order { user: user; store: store?; product: product; amount: decimal; }
tag user.orders_10s = count(order within 10s);
tag user.spend_10s = sum(order.amount within 10s);
tag user.spend = sum(order.amount);
tag user.last_at = max(order.at);
tag user.shoe_orders = count(order where product.category = "shoes");
tag store.revenue = sum(order.amount within 10s);
segment active on user = orders_10s >= 1;
segment shanghai_big on user = city = "Shanghai" and spend >= 100;
segment hot on store = revenue >= 50;
segment near_hot on user = home_store in hot;
"#;

const T0: i64 = 1_795_132_800_000; // 2026-11-20T00:00:00Z

fn order(id: &str, at_offset_ms: i64, user: &str, amount: &str) -> String {
    format!(
        r#"{{"event":"order","id":"{id}","at":{},"user":"{user}","store":"s1","product":"p1","amount":{amount}}}"#,
        T0 + at_offset_ms
    )
}

struct Script {
    compiled: segflow_compiler::Compiled,
    engine: segflow_runtime::Engine,
}

impl Script {
    fn new(model: &str, workers: usize, clock: Clock) -> Script {
        let compiled = common::compile(model);
        let engine = common::engine(&compiled, workers, clock);
        Script { compiled, engine }
    }
    fn apply(&mut self, lines: &[String]) -> i64 {
        let records = common::decode(&self.compiled, lines);
        self.engine.apply(&records).time
    }
    fn profile(&self, entity: &str, key: &str) -> Value {
        common::dump(&self.engine)
            .into_iter()
            .find(|p| p["entity"] == entity && p["id"] == key)
            .unwrap_or_else(|| panic!("no profile {entity}/{key}"))
    }
    fn tag(&self, entity: &str, key: &str, tag: &str) -> Value {
        self.profile(entity, key)["tags"][tag].clone()
    }
    fn segments(&self, entity: &str, key: &str) -> Vec<String> {
        serde_json::from_value(self.profile(entity, key)["segments"].clone()).unwrap()
    }
    /// (segment, key, enter?) of every change so far.
    fn changes(&self) -> Vec<(String, String, bool, i64)> {
        let state = self.engine.state();
        let state = state.read().unwrap();
        state
            .changes
            .iter()
            .map(|c| (state.plan.outputs[c.output].name.clone(), format!("{:?}", c.key), c.enter, c.time))
            .collect()
    }
}

#[test]
fn window_includes_now_minus_w_plus_1ms_and_excludes_now_minus_w() {
    // Inside `within W` at `now` iff now - W < t <= now (EQL.md §9).
    let mut s = Script::new(MODEL, 1, Clock::Fixed(T0 + 10_000));
    s.apply(&[order("a", 0, "u1", "5"), order("b", 1, "u1", "7"), order("c", 10_000, "u1", "11")]);
    // At now = T0 + 10s: `a` (t = now - 10s) is out, `b` (now - 10s + 1ms) and `c` are in.
    assert_eq!(s.tag("user", "u1", "orders_10s"), json!(2));
    assert_eq!(s.tag("user", "u1", "spend_10s"), json!(18));
    assert_eq!(s.tag("user", "u1", "spend"), json!(23));
}

#[test]
fn windows_expire_as_the_event_clock_advances() {
    let mut s = Script::new(MODEL, 1, Clock::Event);
    s.apply(&[order("a", 0, "u1", "5")]);
    assert_eq!(s.segments("user", "u1"), vec!["active"]);
    // Another user's event moves the clock to exactly t + W: `a` leaves the window.
    s.apply(&[order("b", 10_000, "u2", "1")]);
    assert_eq!(s.tag("user", "u1", "orders_10s"), json!(0));
    assert!(s.segments("user", "u1").is_empty());
    assert_eq!(s.tag("user", "u1", "spend"), json!(5), "unwindowed sums keep it");
    let changes = s.changes();
    assert!(changes.contains(&("active".into(), "Str(\"u1\")".into(), true, T0)));
    assert!(changes.contains(&("active".into(), "Str(\"u1\")".into(), false, T0 + 10_000)));
}

#[test]
fn late_events_count_only_where_their_window_still_covers_them() {
    let mut s = Script::new(MODEL, 1, Clock::Event);
    s.apply(&[order("a", 60_000, "u1", "5")]);
    // 20s late: outside the 10s window, but it counts for unwindowed aggregates.
    s.apply(&[order("late", 40_000, "u1", "100")]);
    assert_eq!(s.tag("user", "u1", "orders_10s"), json!(1));
    assert_eq!(s.tag("user", "u1", "spend"), json!(105));
    assert_eq!(s.tag("user", "u1", "last_at"), json!("2026-11-20T00:01:00.000Z"));
    // 3s late: inside the window until its own t + W.
    s.apply(&[order("late2", 57_000, "u1", "1")]);
    assert_eq!(s.tag("user", "u1", "orders_10s"), json!(2));
    s.apply(&[order("tick", 67_000, "u9", "1")]);
    assert_eq!(s.tag("user", "u1", "orders_10s"), json!(1), "late2 expired at 57s + 10s");
}

#[test]
fn a_redelivered_event_is_applied_once() {
    let mut s = Script::new(MODEL, 2, Clock::Event);
    let a = order("o-1", 0, "u1", "10.50");
    s.apply(&[a.clone(), a.clone()]);
    s.apply(std::slice::from_ref(&a));
    assert_eq!(s.tag("user", "u1", "spend"), json!(10.5));
    assert_eq!(s.tag("user", "u1", "orders_10s"), json!(1));
    // Events without an id are never deduplicated.
    let no_id = format!(r#"{{"event":"order","at":{T0},"user":"u2","product":"p1","amount":1}}"#);
    s.apply(&[no_id.clone(), no_id]);
    assert_eq!(s.tag("user", "u2", "spend"), json!(2));
}

/// The serving state finds every key by its id and every id by its key,
/// whether the key came in the first batch of its entity (which hands the
/// state the engine's whole table) or in a later one (which lists only the
/// new keys), and a batch that names no new key leaves them be.
#[test]
fn keys_first_named_in_a_first_or_a_later_batch_are_served_alike() {
    let mut s = Script::new(MODEL, 2, Clock::Event);
    let orders = |batch: usize, users: std::ops::Range<usize>| -> Vec<String> {
        users.map(|n| order(&format!("o-{batch}-{n}"), n as i64, &format!("u{n}"), "1")).collect()
    };
    s.apply(&orders(1, 0..50));
    s.apply(&orders(2, 40..60));
    s.apply(&orders(3, 55..58));
    let state = s.engine.state();
    let state = state.read().unwrap();
    let user = state.plan.entities.iter().position(|e| e.name == "user").unwrap();
    let keys = &state.entities[user].keys;
    assert_eq!(keys.len(), 60);
    for n in 0..60 {
        let key = segflow_compiler::value::Value::str(&format!("u{n}"));
        let id = keys.get(&key).unwrap_or_else(|| panic!("u{n} has no id"));
        assert_eq!(keys.key(id), &key);
    }
    assert_eq!(keys.get(&segflow_compiler::value::Value::str("u60")), None);
    drop(state);
    assert_eq!(s.tag("user", "u45", "spend"), json!(2));
    assert_eq!(s.tag("user", "u56", "spend"), json!(2));
    assert_eq!(s.tag("user", "u59", "spend"), json!(1));
}

/// The engine looks a batch's ids up a run at a time (their slots
/// prefetched first): a redelivery in the same run, the next run or a later
/// batch is skipped all the same, and its amount, which differs, never counts.
#[test]
fn redeliveries_within_and_across_runs_of_a_batch_are_applied_once() {
    let mut s = Script::new(MODEL, 2, Clock::Event);
    let mut first_amount = std::collections::BTreeMap::new();
    let mut batch = Vec::new();
    for i in 0..600u64 {
        // Ids repeat at uneven distances, from the next record (inside a
        // run of 128, across the boundary of two) to hundreds later.
        let id = format!("o-{}", (i * i) % 251);
        let amount = i % 13 + 1;
        first_amount.entry(id.clone()).or_insert(amount);
        batch.push(order(&id, i as i64, "u1", &amount.to_string()));
    }
    let (head, tail) = batch.split_at(450);
    s.apply(head);
    s.apply(tail);
    let spend: u64 = first_amount.values().sum();
    assert_eq!(s.tag("user", "u1", "spend"), json!(spend));
}

#[test]
fn attribute_changes_move_instances_in_and_out_of_segments() {
    let mut s = Script::new(MODEL, 1, Clock::Event);
    s.apply(&[
        r#"{"entity":"user","id":"u1","set":{"city":"Shanghai","home_store":"s1"}}"#.into(),
        order("a", 0, "u1", "150"),
    ]);
    assert!(s.segments("user", "u1").contains(&"shanghai_big".to_string()));
    s.apply(&[r#"{"entity":"user","id":"u1","set":{"city":"Beijing"}}"#.into()]);
    assert!(!s.segments("user", "u1").contains(&"shanghai_big".to_string()));
    s.apply(&[r#"{"entity":"user","id":"u1","set":{"city":"Shanghai"}}"#.into()]);
    assert!(s.segments("user", "u1").contains(&"shanghai_big".to_string()));
    s.apply(&[r#"{"entity":"user","id":"u1","unset":["city"]}"#.into()]);
    assert!(!s.segments("user", "u1").contains(&"shanghai_big".to_string()));
    assert_eq!(s.profile("user", "u1")["attributes"], json!({"home_store": "s1"}));
    s.apply(&[r#"{"entity":"user","id":"u1","delete":true}"#.into()]);
    assert_eq!(s.profile("user", "u1")["attributes"], json!({}));
    assert_eq!(s.tag("user", "u1", "spend"), json!(150), "tags from events survive a delete");
}

#[test]
fn references_follow_changes_on_either_side() {
    let mut s = Script::new(MODEL, 2, Clock::Event);
    s.apply(&[
        r#"{"entity":"user","id":"u1","set":{"home_store":"s1"}}"#.into(),
        r#"{"entity":"product","id":"p1","set":{"category":"hats"}}"#.into(),
        order("a", 0, "u2", "60"),
    ]);
    // s1 is hot (revenue 60 >= 50), so u1 (home store s1) is near_hot.
    assert_eq!(s.segments("store", "s1"), vec!["hot"]);
    assert_eq!(s.segments("user", "u1"), vec!["near_hot"]);
    assert_eq!(s.tag("user", "u2", "shoe_orders"), json!(0));
    // The product's category changes: every tag reading it follows.
    s.apply(&[r#"{"entity":"product","id":"p1","set":{"category":"shoes"}}"#.into()]);
    assert_eq!(s.tag("user", "u2", "shoe_orders"), json!(1));
    // The user's reference moves: membership follows.
    s.apply(&[r#"{"entity":"user","id":"u1","set":{"home_store":"s2"}}"#.into()]);
    assert!(s.segments("user", "u1").is_empty());
    // The store cools down as the window passes.
    s.apply(&[r#"{"entity":"user","id":"u1","set":{"home_store":"s1"}}"#.into()]);
    assert_eq!(s.segments("user", "u1"), vec!["near_hot"]);
    s.apply(&[order("b", 10_000, "u3", "1")]);
    assert!(s.segments("user", "u1").is_empty());
    assert_eq!(s.tag("user", "u1", "spend"), json!(0), "empty sum is 0");
    assert_eq!(s.tag("user", "u1", "last_at"), Value::Null, "empty max is null");
}

/// Decodes valid `lines`, numbered from 1.
fn decode_all(
    decoder: &Decoder,
    lines: &[String],
    warnings: &mut Vec<segflow_runtime::Warning>,
) -> Vec<segflow_runtime::Record> {
    lines.iter().enumerate().map(|(i, l)| decoder.decode_line(l, i + 1, warnings).unwrap()).collect()
}

#[test]
fn an_events_fields_decode_in_any_order_and_a_repeated_name_takes_its_last_value() {
    let compiled = common::compile(MODEL);
    let decoder = Decoder::new(&compiled.plan);
    let mut warnings = Vec::new();
    let in_order = format!(r#"{{"event":"order","id":"1","at":{T0},"user":"u1","product":"p1","amount":"2.5"}}"#);
    let shuffled = format!(
        r#"{{"amount":"2.5","product":"p1","x":1,"user":"u0","at":{T0},"user":"u1","id":"1","event":"order","x":2}}"#
    );
    let a = decoder.decode_line(&in_order, 1, &mut warnings).unwrap();
    let b = decoder.decode_line(&shuffled, 2, &mut warnings).unwrap();
    assert_eq!(a, b);
    assert_eq!(warnings.len(), 2, "one per unknown field met: {warnings:?}");
    // A record with an error gives its error, not its warnings.
    warnings.clear();
    let bad = r#"{"event":"order","x":1,"at":"soon","user":"u1","product":"p1","amount":1}"#;
    assert!(decoder.decode_line(bad, 3, &mut warnings).is_err());
    assert!(warnings.is_empty(), "{warnings:?}");
    // The record's kind, too, is its last "event" or "entity"; never both.
    let renamed =
        format!(r#"{{"event":"nope","user":"u1","event":"order","id":"1","at":{T0},"product":"p1","amount":"2.5"}}"#);
    assert_eq!(decoder.decode_line(&renamed, 4, &mut warnings).unwrap(), a);
    let entity = r#"{"entity":"nope","id":"u1","entity":"user"}"#;
    assert!(matches!(decoder.decode_line(entity, 5, &mut warnings), Ok(segflow_runtime::Record::Upsert { .. })));
    let both =
        format!(r#"{{"entity":"user","event":"order","id":"1","at":{T0},"user":"u1","product":"p1","amount":1}}"#);
    let e = decoder.decode_line(&both, 6, &mut warnings).unwrap_err();
    assert!(e.message.contains("not both"), "{e}");
}

#[test]
fn decimals_and_times_decode_exactly_in_every_accepted_form() {
    let compiled = common::compile(MODEL);
    let decoder = Decoder::new(&compiled.plan);
    let mut warnings = Vec::new();
    let lines = [
        r#"{"event":"order","id":"1","at":"2026-11-20T08:00:00.123+08:00","user":"u1","product":"p1","amount":0.1}"#
            .to_string(),
        format!(
            r#"{{"event":"order","id":"2","at":{},"user":"u1","product":"p1","amount":"0.2","extra":1}}"#,
            T0 + 123
        ),
        r#"{"event":"order","id":"3","at":"2026-11-20T00:00:00.123Z","user":"u1","store":null,"product":"p1","amount":123456789012.000001}"#.to_string(),
    ];
    let records = decode_all(&decoder, &lines, &mut warnings);
    assert_eq!(warnings.len(), 1, "the unknown field is a warning");
    assert!(warnings[0].to_string().contains("unknown field `extra`"));
    assert!(records.iter().all(|r| r.event_time() == Some(T0 + 123)));
    let mut engine = common::engine(&compiled, 1, Clock::Event);
    engine.apply(&records);
    let text = common::dump_text(&engine);
    assert!(text.contains(r#""spend":123456789012.300001"#), "{text}");
    // Errors name the line, the field and the expectation.
    for (line, want) in [
        (r#"{"event":"order","at":1,"user":"u1","product":"p1","amount":1e400}"#, "field `amount`"),
        (
            r#"{"event":"order","at":"soon","user":"u1","product":"p1","amount":1}"#,
            "field `at`: `soon` is not an RFC 3339",
        ),
        (r#"{"event":"order","at":1,"user":7,"product":"p1","amount":1}"#, "field `user`: expected the key of a user"),
        (r#"{"event":"order","at":1,"user":"u1","product":"p1"}"#, "field `amount`: missing"),
        (r#"{"event":"order","at":1,"user":"u1","product":"p1","amount":"1.0000001"}"#, "more than 6 digits"),
        (r#"{"entity":"store","id":"s1","set":{"region":5}}"#, "field `set.region`: expected a string, got 5"),
        (r#"[1,2]"#, "not a JSON object"),
    ] {
        let e = decoder.decode_line(line, 7, &mut warnings).unwrap_err().to_string();
        assert!(e.starts_with("line 7: "), "{e}");
        assert!(e.contains(want), "{e} should contain {want}");
    }
}

#[test]
fn strings_decode_to_their_contents_with_or_without_escapes() {
    // Strings without escapes are read straight from the text; with them,
    // by the JSON parser. Both spellings of a key name the same instance.
    let compiled = common::compile(MODEL);
    let decoder = Decoder::new(&compiled.plan);
    let mut warnings = Vec::new();
    let lines = [
        format!(
            r#"{{"event":"ord\u0065r","id":"a\"1","at":{T0},"user":"u\u00e9","product":"p1","amount":"1\u002e5"}}"#
        ),
        r#"{"event":"order","id":"a\\1","at":"2026-11-20T00:00:00\u005a","user":"ué","product":"p1","amount":"1"}"#
            .to_string(),
        r#"{"entity":"user","id":"ué","set":{"city":"Sh\u0061nghai"}}"#.to_string(),
    ];
    let records = decode_all(&decoder, &lines, &mut warnings);
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut engine = common::engine(&compiled, 1, Clock::Event);
    let outcome = engine.apply(&records);
    assert_eq!((outcome.applied, outcome.duplicates), (3, 0), "two distinct ids");
    let text = common::dump_text(&engine);
    let user = text.lines().find(|l| l.contains(r#""id":"ué""#)).unwrap_or_else(|| panic!("{text}"));
    assert!(user.contains(r#""spend":2.5"#) && user.contains(r#""city":"Shanghai""#), "{user}");
    // A raw control character is not JSON, escaped or not elsewhere on the line.
    let tab =
        format!("{{\"event\":\"order\",\"id\":\"x\ty\",\"at\":{T0},\"user\":\"u1\",\"product\":\"p1\",\"amount\":1}}");
    let e = decoder.decode_line(&tab, 4, &mut warnings).unwrap_err().to_string();
    assert!(e.contains("not a JSON object"), "{e}");
}

#[test]
fn one_and_two_workers_give_byte_identical_dumps() {
    let model = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/retail/retail.eql")).unwrap();
    let config = segflow_gen::GenConfig { users: 300, events: 6_000, seed: 7, ..Default::default() };
    let mut data = Vec::new();
    segflow_gen::generate(&config, &mut data).unwrap();
    let lines: Vec<String> = String::from_utf8(data).unwrap().lines().map(str::to_string).collect();
    let compiled = common::compile(&model);
    let records = common::decode(&compiled, &lines);
    let mut dumps = Vec::new();
    for (workers, batch) in [(1, 1000), (2, 1000), (2, 777)] {
        let mut engine = common::engine(&compiled, workers, Clock::Event);
        for chunk in records.chunks(batch) {
            engine.apply(chunk);
        }
        dumps.push(common::dump_text(&engine));
    }
    // Pipelined: each batch submitted before the previous one is completed;
    // the last one as `segflow run` submits it (nothing queued past it).
    for workers in [1, 2] {
        let mut engine = common::engine(&compiled, workers, Clock::Event);
        let mut in_flight = None;
        let chunks: Vec<_> = records.chunks(500).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let submitted = if i + 1 == chunks.len() { engine.submit_last(chunk) } else { engine.submit(chunk) };
            if let Some(previous) = in_flight.replace(submitted) {
                engine.complete(previous);
            }
        }
        if let Some(last) = in_flight {
            engine.complete(last);
        }
        dumps.push(common::dump_text(&engine));
    }
    assert!(dumps[0].lines().count() > 300);
    assert_eq!(dumps[0], dumps[1], "1 vs 2 workers");
    assert_eq!(dumps[1], dumps[2], "batch boundaries do not change the final state");
    assert_eq!(dumps[0], dumps[3], "pipelined batches, 1 worker");
    assert_eq!(dumps[0], dumps[4], "pipelined batches, 2 workers");
}

#[test]
fn retail_example_matches_the_reference_evaluator() {
    let model = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/retail/retail.eql")).unwrap();
    let config = segflow_gen::GenConfig { users: 200, events: 4_000, seed: 11, ..Default::default() };
    let mut data = Vec::new();
    segflow_gen::generate(&config, &mut data).unwrap();
    let lines: Vec<String> = String::from_utf8(data).unwrap().lines().map(str::to_string).collect();
    let compiled = common::compile(&model);
    let records = common::decode(&compiled, &lines);
    let mut engine = common::engine(&compiled, 2, Clock::Event);
    let mut world = common::reference::World::new(&compiled.program);
    for chunk in records.chunks(1500) {
        engine.apply(chunk);
        world.apply(chunk, None);
        let got = common::dump(&engine);
        let want = world.dump();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w);
        }
        assert_eq!(got.len(), want.len());
    }
}

/// A segment whose gather reads one column: one that an instance without
/// a value is not a member of is computed without state, one that such an
/// instance is a member of keeps every instance (`render::stateless_gather`).
#[test]
fn a_one_column_segment_holds_instances_without_a_value_exactly_when_its_default_does() {
    let model = |segment: &str| {
        format!(
            "entity user {{ key id: string; }}\nentity store {{ key id: string; }}\n\
             entity product {{ key sku: string; }}\n\
             event order {{ user: user; store: store?; product: product; amount: decimal; }}\n\
             tag user.spend = sum(order.amount within 10s);\n{segment}\n"
        )
    };
    let one_column_gather = |s: &Script| {
        s.compiled.plan.nodes.iter().any(|n| {
            matches!(n, segflow_compiler::plan::Node::Gather { inputs, exprs, .. } if inputs.len() == 1 && !exprs.is_empty())
        })
    };
    let mut heavy = Script::new(&model("segment heavy on user = spend >= 10;"), 2, Clock::Event);
    assert!(one_column_gather(&heavy));
    heavy.apply(&[r#"{"entity":"user","id":"u2"}"#.into(), order("a", 0, "u1", "15")]);
    assert_eq!(heavy.segments("user", "u1"), ["heavy"]);
    assert!(heavy.segments("user", "u2").is_empty());
    // u1's order leaves its window as u2's comes.
    heavy.apply(&[order("b", 20_000, "u2", "12")]);
    assert!(heavy.segments("user", "u1").is_empty());
    assert_eq!(heavy.segments("user", "u2"), ["heavy"]);
    let mut light = Script::new(&model("segment light on user = spend < 10;"), 2, Clock::Event);
    assert!(one_column_gather(&light));
    light.apply(&[r#"{"entity":"user","id":"u2"}"#.into(), order("a", 0, "u1", "15")]);
    assert!(light.segments("user", "u1").is_empty());
    assert_eq!(light.segments("user", "u2"), ["light"], "no orders: spend is 0");
    light.apply(&[order("b", 20_000, "u2", "12")]);
    assert_eq!(light.segments("user", "u1"), ["light"]);
    assert!(light.segments("user", "u2").is_empty());
}

/// EQL.md §5: a written type is checked, and an int widens to decimal or
/// float. A bare aggregate so widened was left inside an expression that
/// nothing computed: the tag was always null.
#[test]
fn a_tag_written_wider_than_its_aggregate_holds_the_aggregate_widened() {
    let model = r#"
entity user { key id: string; }
entity store { key id: string; }
event order { user: user; store: store?; product: product; amount: decimal; }
entity product { key sku: string; category: string?; }
tag user.orders_dec: decimal = count(order within 10s);
tag user.orders_float: float = count(order within 10s);
tag user.orders = count(order within 10s);
segment counted on user = orders_dec >= 2;
"#;
    let mut s = Script::new(model, 2, Clock::Event);
    s.apply(&[r#"{"entity":"user","id":"u2"}"#.into(), order("a", 0, "u1", "5"), order("b", 1, "u1", "7")]);
    assert_eq!(s.tag("user", "u1", "orders_dec"), json!(2));
    assert_eq!(s.tag("user", "u1", "orders_float"), json!(2.0));
    assert_eq!(s.segments("user", "u1"), ["counted"]);
    // No orders: the aggregate's 0, widened; out of the window likewise.
    assert_eq!(s.tag("user", "u2", "orders_dec"), json!(0));
    assert_eq!(s.tag("user", "u2", "orders_float"), json!(0.0));
    s.apply(&[order("c", 20_000, "u2", "1")]);
    assert_eq!(s.tag("user", "u1", "orders_dec"), json!(0));
    assert_eq!(s.tag("user", "u2", "orders_float"), json!(1.0));
    assert!(s.segments("user", "u1").is_empty());
}

#[test]
fn a_segment_read_two_references_away_follows_both_hops() {
    // Regression: `shop.city in big_cities` crashed the lowering.
    let model = r#"
        entity city { key name: string; pop: int?; }
        entity shop { key id: string; city: city?; }
        entity member { key id: string; shop: shop?; }
        segment big_cities on city = pop > 1000000;
        segment big_city_members on member = shop.city in big_cities;
        tag member.city_is_big = shop.city in big_cities;
    "#;
    let mut s = Script::new(model, 2, Clock::Event);
    s.apply(&[
        r#"{"entity":"city","id":"Shanghai","set":{"pop":24000000}}"#.into(),
        r#"{"entity":"city","id":"Lhasa","set":{"pop":900000}}"#.into(),
        r#"{"entity":"shop","id":"s1","set":{"city":"Shanghai"}}"#.into(),
        r#"{"entity":"member","id":"m1","set":{"shop":"s1"}}"#.into(),
        r#"{"entity":"member","id":"m2"}"#.into(),
    ]);
    assert_eq!(s.segments("member", "m1"), vec!["big_city_members"]);
    assert_eq!(s.tag("member", "m2", "city_is_big"), Value::Null, "no shop: null, not false");
    s.apply(&[r#"{"entity":"shop","id":"s1","set":{"city":"Lhasa"}}"#.into()]);
    assert!(s.segments("member", "m1").is_empty());
    assert_eq!(s.tag("member", "m1", "city_is_big"), json!(false));
    s.apply(&[r#"{"entity":"city","id":"Lhasa","set":{"pop":1000001}}"#.into()]);
    assert_eq!(s.segments("member", "m1"), vec!["big_city_members"]);
}

#[test]
fn a_redelivery_with_another_time_does_not_move_the_event_clock() {
    // Regression (review): a skipped duplicate used to advance `now` and empty windows.
    let mut s = Script::new(MODEL, 1, Clock::Event);
    s.apply(&[order("x", 0, "u1", "100"), order("x", 3_600_000, "u1", "100")]);
    assert_eq!(s.tag("user", "u1", "orders_10s"), json!(1));
    let t = s.apply(&[order("x", 7_200_000, "u1", "100")]);
    assert_eq!(t, T0, "the clock stays at the accepted event");
    assert_eq!(s.tag("user", "u1", "orders_10s"), json!(1));
}

#[test]
fn an_int_sum_that_overflows_is_null_not_wrapped() {
    // Regression (review): sums of ints wrapped around i64.
    let model = r#"
        entity user { key id: string; }
        event cart { user: user; quantity: int; }
        tag user.units = sum(cart.quantity);
        segment positive on user = units > 0;
    "#;
    let mut s = Script::new(model, 1, Clock::Event);
    let line = |id: &str, user: &str, q: i64| {
        format!(r#"{{"event":"cart","id":"{id}","at":{T0},"user":"{user}","quantity":{q}}}"#)
    };
    s.apply(&[
        line("a", "u1", i64::MIN),
        line("b", "u1", -1),
        line("c", "u2", i64::MAX),
        line("d", "u2", 1),
        line("e", "u3", i64::MAX),
    ]);
    assert_eq!(s.tag("user", "u1", "units"), Value::Null);
    assert_eq!(s.tag("user", "u2", "units"), Value::Null);
    assert!(s.segments("user", "u1").is_empty());
    assert_eq!(s.tag("user", "u3", "units"), json!(i64::MAX));
    // Back in range once the sum comes down.
    s.apply(&[line("f", "u2", -1)]);
    assert_eq!(s.tag("user", "u2", "units"), json!(i64::MAX));
}

#[test]
fn loading_in_runs_gives_the_records_and_line_numbers_of_loading_at_once() {
    use segflow_runtime::load::{for_each_run, for_each_run_again, for_each_run_noting, load_files, Input};
    let compiled = common::compile(MODEL);
    let decoder = Decoder::new(&compiled.plan);
    let dir = std::env::temp_dir().join(format!("segflow-runs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Two files, a blank line, a bad record in the middle of a run and one at
    // the end of the second file (no newline after it).
    let mut first: Vec<String> = (0..10).map(|i| order(&format!("a{i}"), i, "u1", "1.5")).collect();
    first.insert(4, String::new());
    first.insert(7, r#"{"event":"order","id":"bad1","at":"never"}"#.into());
    let second = [order("b0", 20, "u2", "2"), order("b1", 21, "u3", "3"), r#"{"event":"nope"}"#.to_string()].join("\n");
    let paths = [dir.join("one.ndjson"), dir.join("two.ndjson")];
    std::fs::write(&paths[0], first.join("\n") + "\n").unwrap();
    std::fs::write(&paths[1], second).unwrap();
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let whole = load_files(&decoder, &paths, true).unwrap();
    for lines in [1, 3, 5, 100] {
        let (mut records, mut texts, mut errors, mut runs) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for_each_run(&decoder, &Input::open_all(&paths).unwrap(), true, lines, |run| {
            runs += 1;
            records.extend(run.records);
            texts.extend(run.lines);
            errors.extend(run.errors.iter().map(|e| e.to_string()));
            Ok(())
        })
        .unwrap();
        assert_eq!(records, whole.records, "runs of {lines} lines");
        assert_eq!(texts, whole.lines, "runs of {lines} lines");
        assert_eq!(errors, whole.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(), "runs of {lines}");
        assert!(runs >= 15 / lines, "{runs} runs of {lines} lines");
    }
    assert_eq!(whole.records.len(), 12);
    let errors: Vec<String> = whole.errors.iter().map(|e| e.to_string()).collect();
    assert!(errors[0].contains("one.ndjson: line 8: field `at`"), "{errors:?}");
    assert!(errors[1].contains("two.ndjson: line 3:"), "{errors:?}");
    // A checksum of each run's text lets a second pass over an input tell
    // whether it reads what the first one did (`serve --load`).
    let inputs = Input::open_all(&paths).unwrap();
    let checksums = |inputs: &[Input]| {
        let mut sums = Vec::new();
        for_each_run_noting(&decoder, inputs, false, 3, &mut sums, |_| Ok(())).unwrap();
        sums
    };
    let before = checksums(&inputs);
    assert_eq!(checksums(&inputs), before);
    let mut changed = first.join("\n") + "\n";
    changed.replace_range(changed.find("a3").unwrap()..changed.find("a3").unwrap() + 2, "a9");
    std::fs::write(&paths[0], changed).unwrap();
    let after = checksums(&inputs);
    assert_eq!(after.len(), before.len());
    let differing: Vec<usize> = (0..after.len()).filter(|&i| after[i] != before[i]).collect();
    assert_eq!(differing, vec![1], "only the run of lines 4-6 changed");
    // Read again against the first checksums: the run before the change
    // applies, the changed one stops the pass, named by file and line.
    let mut applied = 0;
    let e = for_each_run_again(&decoder, &inputs, false, 3, &before, |_| {
        applied += 1;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(applied, 1);
    assert!(e.contains("one.ndjson: changed since it was read before, from line 4 on"), "{e}");
    // Runs that are gone are a change too.
    let after = checksums(&inputs);
    std::fs::write(&paths[1], "").unwrap();
    let e = for_each_run_again(&decoder, &inputs, false, 3, &after, |_| Ok(())).unwrap_err();
    assert!(e.contains("two.ndjson: shorter than when read before"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn references_order_by_their_keys_not_by_when_they_were_first_seen() {
    // EQL.md §5: mode breaks ties by the smallest value, and min and max of
    // references are those of their keys. The engine numbers instances in
    // the order it first meets them; s2 is met before s1 here.
    let model = r#"
        entity user { key id: string; }
        entity store { key id: string; }
        event visit { user: user; store: store; }
        tag user.favourite = mode(visit.store);
        tag user.favourite_30d = mode(visit.store within 30d);
        tag user.lowest = min(visit.store);
        tag user.highest = max(visit.store);
        tag user.highest_30d = max(visit.store within 30d);
        tag user.lowest_30d = min(visit.store within 30d);
    "#;
    let visit = |id: &str, store: &str, at: i64| {
        format!(r#"{{"event":"visit","id":"{id}","at":{},"user":"u1","store":"{store}"}}"#, T0 + at)
    };
    for workers in [1, 2] {
        let mut s = Script::new(model, workers, Clock::Event);
        s.apply(&[r#"{"entity":"store","id":"s2"}"#.into(), r#"{"entity":"store","id":"s3"}"#.into()]);
        s.apply(&[visit("a", "s3", 0), visit("b", "s1", 1), visit("c", "s2", 2)]);
        for (tag, want) in [
            ("favourite", "s1"),
            ("favourite_30d", "s1"),
            ("lowest", "s1"),
            ("lowest_30d", "s1"),
            ("highest", "s3"),
            ("highest_30d", "s3"),
        ] {
            assert_eq!(s.tag("user", "u1", tag), json!(want), "{tag}, {workers} workers");
        }
    }
}

#[test]
fn hot_instances_take_one_change_at_a_time_exactly() {
    // A store holds hundreds of values in its windows and gets a change or two
    // a batch: the engine keeps such an instance's values in another form
    // than a small one's (see runtime/src/values.rs), and switches as it
    // grows and shrinks. Every aggregate that reads an instance's values is
    // checked against the reference evaluator after every batch.
    let model = r#"
        entity user { key id: string; }
        entity store { key id: string; }
        event order { user: user; store: store; amount: decimal; weight: float?; }
        tag store.top_buyer = mode(order.user within 20s);
        tag store.biggest = max(order.amount within 20s);
        tag store.smallest = min(order.amount within 20s);
        tag store.last_buyer = last(order.user within 20s);
        tag store.first_buyer = first(order.user within 20s);
        tag store.lowest_buyer = min(order.user within 20s);
        tag store.weight = sum(order.weight within 20s);
        tag store.weights = count_distinct(order.weight within 20s);
    "#;
    let compiled = common::compile(model);
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut clock = 0;
    let mut lines = Vec::new();
    for i in 0..1_500 {
        // Busy stretches grow the windows past a few hundred values, and quiet
        // ones (a long step) let them shrink again.
        clock += if i % 500 < 450 { next(40) as i64 } else { 400 + next(400) as i64 };
        let at = if next(10) == 0 { clock - next(5_000) as i64 } else { clock };
        let weight = ["0.5", "1.25", "2.0", "null"][next(4) as usize];
        lines.push(format!(
            r#"{{"event":"order","id":"o{i}","at":{},"user":"u{}","store":"s{}","amount":{}.{:02},"weight":{weight}}}"#,
            T0 + at,
            next(12),
            next(2),
            next(500),
            next(100)
        ));
    }
    let records = common::decode(&compiled, &lines);
    for workers in [1, 2] {
        let mut engine = common::engine(&compiled, workers, Clock::Event);
        let mut world = common::reference::World::new(&compiled.program);
        let mut at = 0;
        while at < records.len() {
            // Mostly one or two records a batch, now and then a large one.
            let size = if next(20) == 0 { 100 } else { 1 + next(2) as usize };
            let batch = &records[at..(at + size).min(records.len())];
            at += batch.len();
            engine.apply(batch);
            world.apply(batch, None);
            assert_eq!(common::dump(&engine), world.dump(), "{workers} workers, after record {at}");
        }
    }
}

#[test]
fn the_guess_at_now_is_the_latest_valid_event_in_the_files_last_lines() {
    use segflow_runtime::load::{latest_event_time_in_tails, Input};
    let compiled = common::compile(MODEL);
    let decoder = Decoder::new(&compiled.plan);
    let dir = std::env::temp_dir().join(format!("segflow-tails-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A file longer than the tail read: its latest event early on is not
    // seen; in the tail, an invalid event's later time and an entity record
    // are passed over.
    let mut long: Vec<String> = vec![order("early", 90_000, "u1", "1")];
    long.extend((0..2000).map(|i| order(&format!("o{i}"), i % 50, "u1", "1")));
    long.push(order("latest", 60, "u2", "2"));
    long.push(r#"{"event":"order","id":"bad","at":"2031-01-01T00:00:00Z","user":"u1","amount":"lots"}"#.into());
    long.push(r#"{"entity":"user","id":"u1","set":{"city":"Shanghai"}}"#.into());
    // A short file is read whole, its first line included.
    let short = [order("first", 70, "u3", "3"), order("second", 5, "u3", "3")];
    let paths = [dir.join("long.ndjson"), dir.join("short.ndjson"), dir.join("entities.ndjson")];
    std::fs::write(&paths[0], long.join("\n") + "\n").unwrap();
    std::fs::write(&paths[1], short.join("\n")).unwrap();
    std::fs::write(&paths[2], r#"{"entity":"user","id":"u9","set":{}}"#).unwrap();
    let guess = |paths: &[std::path::PathBuf]| {
        let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        latest_event_time_in_tails(&decoder, &Input::open_all(&paths).unwrap())
    };
    assert!(std::fs::metadata(&paths[0]).unwrap().len() > 64 << 10, "the early event is outside the tail");
    assert_eq!(guess(&paths[..1]), Some(T0 + 60));
    assert_eq!(guess(&paths[1..2]), Some(T0 + 70));
    assert_eq!(guess(&paths), Some(T0 + 70));
    assert_eq!(guess(&paths[2..]), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn runs_decoded_ahead_come_in_order_and_an_error_stops_them_all() {
    use segflow_runtime::load::{for_each_run, for_each_run_decoded_ahead, Input};
    let compiled = common::compile(MODEL);
    let decoder = Decoder::new(&compiled.plan);
    let dir = std::env::temp_dir().join(format!("segflow-ahead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lines: Vec<String> = (0..200).map(|i| order(&format!("o{i}"), i, "u1", "1.5")).collect();
    lines.insert(50, r#"{"event":"order","id":"bad","at":"never"}"#.into());
    let paths = [dir.join("one.ndjson"), dir.join("two.ndjson")];
    std::fs::write(&paths[0], lines[..120].join("\n") + "\n").unwrap();
    std::fs::write(&paths[1], lines[120..].join("\n")).unwrap();
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let inputs = Input::open_all(&paths).unwrap();
    let mut one_by_one = (Vec::new(), Vec::new());
    for_each_run(&decoder, &inputs, false, 7, |run| {
        one_by_one.0.extend(run.records);
        one_by_one.1.extend(run.errors.iter().map(|e| e.to_string()));
        Ok(())
    })
    .unwrap();
    for lines in [1, 7, 1000] {
        let mut ahead = (Vec::new(), Vec::new());
        for_each_run_decoded_ahead(&decoder, &inputs, lines, |run| {
            ahead.0.extend(run.records.iter().cloned());
            ahead.1.extend(run.errors.iter().map(|e| e.to_string()));
            Ok(())
        })
        .unwrap();
        assert_eq!(ahead, one_by_one, "runs of {lines} lines");
    }
    assert_eq!(one_by_one.0.len(), 200);
    assert!(one_by_one.1[0].contains("one.ndjson: line 51: field `at`"), "{:?}", one_by_one.1);
    // The caller's error, and a file's, stop every thread (no hang) and are returned.
    let mut applied = 0;
    let e = for_each_run_decoded_ahead(&decoder, &inputs, 2, |_| {
        applied += 1;
        if applied == 3 {
            return Err("stop here".into());
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!((e.as_str(), applied), ("stop here", 3));
    let mut text = lines[..120].join("\n").into_bytes();
    text.extend_from_slice(b"\n\xff\xfe\n");
    std::fs::write(&paths[0], text).unwrap();
    let inputs = Input::open_all(&paths).unwrap();
    let e = for_each_run_decoded_ahead(&decoder, &inputs, 2, |_| Ok(())).unwrap_err();
    assert!(e.contains("one.ndjson:121: stream did not contain valid UTF-8"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn first_and_last_of_events_at_the_same_time_go_by_id_whatever_came_before() {
    // EQL.md §9: first and last order by (at, id). Rows that a worker can
    // tell are beaten are dropped before the exchange (`unbeaten`), which
    // must never drop one that ties on `at` and wins on its id, nor one that
    // only an earlier time's row beats.
    let model = r#"
entity user { key id: string; }
event view { user: user; channel: string; }
tag user.first_channel = first(view.channel);
tag user.last_channel = last(view.channel);
tag user.first_at = min(view.at);
"#;
    let view = |id: &str, at: i64, channel: &str| {
        format!(r#"{{"event":"view","id":"{id}","at":{},"user":"u1","channel":"{channel}"}}"#, T0 + at)
    };
    for workers in [1, 2] {
        let mut s = Script::new(model, workers, Clock::Event);
        // Ids later in order arrive first, all at one `at`, then an earlier view.
        s.apply(&[view("v5", 100, "e"), view("v4", 100, "d"), view("v3", 100, "c")]);
        assert_eq!(s.tag("user", "u1", "first_channel"), json!("c"), "{workers} workers");
        assert_eq!(s.tag("user", "u1", "last_channel"), json!("e"));
        s.apply(&[view("v9", 100, "z"), view("v1", 100, "a"), view("v6", 200, "f")]);
        assert_eq!(s.tag("user", "u1", "first_channel"), json!("a"));
        assert_eq!(s.tag("user", "u1", "last_channel"), json!("f"));
        s.apply(&[view("v0", 50, "0"), view("v7", 200, "g")]);
        assert_eq!(s.tag("user", "u1", "first_channel"), json!("0"));
        assert_eq!(s.tag("user", "u1", "last_channel"), json!("g"));
        assert_eq!(s.tag("user", "u1", "first_at"), json!("2026-11-20T00:00:00.050Z"));
    }
}

#[test]
fn a_constant_tag_and_segment_hold_for_every_instance_from_its_first_record() {
    // A gather evaluates only what its changed inputs can change; a constant
    // reads none, and still changes when its instance comes.
    let model = r#"
entity user { key id: string; city: string?; }
event order { user: user; amount: decimal; }
tag user.three = 1 + 2;
tag user.orders = count(order);
segment everyone on user = true;
segment from_shanghai on user = city = "Shanghai";
"#;
    let order =
        |id: &str, user: &str| format!(r#"{{"event":"order","id":"{id}","at":{},"user":"{user}","amount":5}}"#, T0);
    for workers in [1, 2] {
        let mut s = Script::new(model, workers, Clock::Event);
        s.apply(&[order("o1", "u1")]);
        s.apply(&[order("o2", "u1"), order("o3", "u2")]);
        s.apply(&[r#"{"entity":"user","id":"u3","set":{"city":"Shanghai"}}"#.to_string()]);
        for user in ["u1", "u2", "u3"] {
            assert_eq!(s.tag("user", user, "three"), json!(3), "{user}, {workers} workers");
            assert!(s.segments("user", user).contains(&"everyone".to_string()), "{user}");
        }
        assert_eq!(s.tag("user", "u1", "orders"), json!(2));
        assert_eq!(s.segments("user", "u3"), ["everyone", "from_shanghai"]);
    }
}

#[test]
fn sums_counts_averages_and_exists_skip_null_values_and_groups() {
    // A row whose group reference is null counts for no one; one whose
    // value is null counts for `count` and `exists` (which read no value)
    // but not for `sum`, `avg` or `count_distinct` (EQL.md §9).
    let model = r#"
        entity user { key id: string; }
        event tip { user: user?; amount: decimal?; }
        tag user.tips = count(tip);
        tag user.tipped = sum(tip.amount);
        tag user.avg_tip = avg(tip.amount);
        tag user.any_tip = exists(tip);
        tag user.amounts = count_distinct(tip.amount);
    "#;
    let tip = |id: &str, user: &str, amount: &str| {
        format!(r#"{{"event":"tip","id":"{id}","at":{T0},"user":{user},"amount":{amount}}}"#)
    };
    for workers in [1, 2] {
        let mut s = Script::new(model, workers, Clock::Event);
        s.apply(&[
            tip("a", r#""u1""#, "4"),
            tip("b", r#""u1""#, "null"),
            tip("c", r#""u1""#, "6"),
            tip("d", r#""u2""#, "null"),
            tip("e", "null", "100"),
        ]);
        assert_eq!(s.tag("user", "u1", "tips"), json!(3), "{workers} workers");
        assert_eq!(s.tag("user", "u1", "tipped"), json!(10));
        assert_eq!(s.tag("user", "u1", "avg_tip"), json!(5));
        assert_eq!(s.tag("user", "u1", "any_tip"), json!(true));
        assert_eq!(s.tag("user", "u2", "tips"), json!(1));
        assert_eq!(s.tag("user", "u2", "tipped"), json!(0));
        assert_eq!(s.tag("user", "u2", "avg_tip"), json!(null), "an average of no values");
        assert_eq!(s.tag("user", "u2", "any_tip"), json!(true));
        assert_eq!((s.tag("user", "u1", "amounts"), s.tag("user", "u2", "amounts")), (json!(2), json!(0)));
        // The tip with no user went to no one, whatever worker it landed on.
        let users = common::dump(&s.engine);
        let all_tips: i64 = users.iter().map(|p| p["tags"]["tips"].as_i64().unwrap_or(0)).sum();
        assert_eq!((users.len(), all_tips), (2, 4));
    }
}

/// A snapshot is made from a copy taken on the engine thread, on another
/// thread, while records go on arriving: it holds the instances and
/// attribute rows as they were at the copy, in interning order, references
/// given by key; and an engine restored from it serves what one given only
/// the records before the copy does.
#[test]
fn a_snapshot_made_from_a_copy_holds_the_state_at_the_copy() {
    let model = r#"
        entity store { key id: string; city: string?; }
        entity user { key id: string; home: store?; }
        event ping { user: user; }
        tag user.pings = count(ping);
        tag user.home_city = home.city;
    "#;
    let compiled = common::compile(model);
    let before = [
        r#"{"entity":"user","id":"u2","set":{"home":"s9"}}"#,
        r#"{"event":"ping","id":"p1","at":1000,"user":"u1"}"#,
        r#"{"entity":"store","id":"s1","set":{"city":"Shanghai"}}"#,
        r#"{"entity":"user","id":"u1","set":{"home":"s1"}}"#,
    ]
    .map(String::from);
    let after = [
        r#"{"entity":"user","id":"u3","set":{"home":"s9"}}"#,
        r#"{"entity":"user","id":"u2","set":{"home":"s1"}}"#,
        r#"{"entity":"user","id":"u1","delete":true}"#,
    ]
    .map(String::from);
    let mut engine = common::engine(&compiled, 2, Clock::Event);
    engine.apply(&common::decode(&compiled, &before));
    let copy = engine.copy();
    engine.apply(&common::decode(&compiled, &after));
    let snapshot = copy.snapshot();
    let index = |name: &str| snapshot.entity_schema.iter().position(|(n, _)| n == name).unwrap();
    let (stores, users) = (&snapshot.entities[index("store")], &snapshot.entities[index("user")]);
    let keys = |instances: &Vec<(segflow_compiler::value::Value, Option<Vec<segflow_compiler::value::Value>>)>| {
        instances.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    };
    let s = segflow_compiler::value::Value::str;
    assert_eq!(keys(stores), [s("s9"), s("s1")], "interning order");
    assert_eq!(keys(users), [s("u2"), s("u1")], "u3 came after the copy");
    let home = |i: usize| {
        let fields = &snapshot.entity_schema[index("user")].1;
        users[i].1.as_ref().map(|row| row[fields.iter().position(|f| f == "home").unwrap()].clone())
    };
    assert_eq!((home(0), home(1)), (Some(s("s9")), Some(s("s1"))), "references by key, as at the copy");
    let mut restored = common::engine(&compiled, 2, Clock::Event);
    restored.restore(&snapshot);
    let mut expected = common::engine(&compiled, 2, Clock::Event);
    expected.apply(&common::decode(&compiled, &before));
    assert_eq!(common::dump(&restored), common::dump(&expected));
}

/// A snapshot's attribute row leaves its key field empty (the key is given
/// beside it), so definitions that rename the key field restore every
/// attribute and count nothing as dropped; a row of an earlier snapshot,
/// which held the instance's internal id there, restores the same.
#[test]
fn a_renamed_key_field_restores_every_attribute() {
    let before = common::compile("entity user { key id: string; name: string?; }\nevent ping { user: user; }\n");
    let after = common::compile("entity user { key uid: string; name: string?; }\nevent ping { user: user; }\n");
    let mut engine = common::engine(&before, 1, Clock::Event);
    let records = [r#"{"entity":"user","id":"u1","set":{"name":"Ann"}}"#.to_string()];
    engine.apply(&common::decode(&before, &records));
    let mut snapshot = engine.copy().snapshot();
    let row = snapshot.entities[0][0].1.clone().unwrap();
    assert_eq!(row[0], segflow_compiler::value::Value::Null, "the key field of {row:?}");
    for earlier in [false, true] {
        if earlier {
            snapshot.entities[0][0].1.as_mut().unwrap()[0] = segflow_compiler::value::Value::Ref(0);
        }
        let mut restored = common::engine(&after, 1, Clock::Event);
        assert_eq!(restored.restore(&snapshot), 0, "nothing dropped (earlier snapshot: {earlier})");
        let dump = common::dump(&restored);
        assert_eq!(dump[0]["attributes"]["name"], json!("Ann"), "{dump:?}");
    }
}
