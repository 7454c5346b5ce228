//! Incremental results equal a from-scratch recomputation, after every batch.
//!
//! Random models (tags, segments, windows, filters, references drawn from a
//! catalogue over a fixed schema) and random data (upserts, unsets, deletes,
//! events with late arrivals, duplicate ids and nulls) are split into random
//! batches and fed to the engine with 1 or 2 workers. After every batch the
//! engine's profile dump must equal the reference evaluator's, and the
//! membership changes it reported for the batch must be exactly the difference
//! between the reference's memberships before and after.

mod common;

use common::reference::World;
use proptest::prelude::*;
use segflow_runtime::Clock;
use std::collections::BTreeSet;

const SCHEMA: &str = r#"
entity user { key id: string; city: string?; level: int?; home_store: store?; vip: bool?; }
entity store { key id: string; region: string?; }
entity product { key sku: string; category: string?; price: decimal?; }
event order { user: user; store: store?; product: product; amount: decimal; quantity: int; channel: string?; }
event view { user: user; product: product?; channel: string; score: float?; }
event transfer { sender: user; receiver: user; amount: decimal; }
"#;

/// A small deterministic generator (xorshift), so a failing seed replays exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// (text of an aggregate, its type) for a tag on `user`.
fn user_aggregate(rng: &mut Rng) -> (String, &'static str) {
    let windows = ["", " within 5s", " within 20s", " within 1m", " within 500ms"];
    let order_filters = [
        "",
        " where channel = \"app\"",
        " where amount > 50",
        " where quantity >= 2",
        " where product.category = \"shoes\"",
        " where product.category is null",
        " where user.vip",
        " where store is null",
        " where not (channel in [\"web\", \"app\"])",
        " where product.price >= 20.5",
        // Parts that read only the order's own fields run before the join.
        " where amount > 50 and product.category = \"shoes\" and quantity >= 2",
        " where (quantity >= 2 or product.price >= 20.5) and channel is not null",
    ];
    // A view with no product is joined to nulls: `is null` keeps it.
    let view_filters = [
        "",
        " where channel = \"app\"",
        " where score > 0.5",
        " where product.category = \"toys\"",
        " where product.category is null",
    ];
    let w = rng.pick(&windows).to_string();
    match rng.below(21) {
        0 => (format!("count(order{}{w})", rng.pick(&order_filters)), "int"),
        1 => (format!("sum(order.amount{}{w})", rng.pick(&order_filters)), "decimal"),
        2 => (format!("sum(order.quantity{}{w})", rng.pick(&order_filters)), "int"),
        3 => (format!("avg(order.amount{}{w})", rng.pick(&order_filters)), "decimal"),
        4 => (format!("max(order.at{w})"), "timestamp"),
        5 => (format!("min(order.amount{}{w})", rng.pick(&order_filters)), "decimal"),
        6 => (format!("count_distinct(order.product{w})"), "int"),
        7 => (format!("mode(view.channel{}{w})", rng.pick(&view_filters)), "string"),
        8 => (format!("first(view.channel{w})"), "string"),
        9 => (format!("last(order.product.category{w})"), "string"),
        10 => (format!("exists(view{}{w})", rng.pick(&view_filters)), "bool"),
        11 => (format!("sum(view.score{}{w})", rng.pick(&view_filters)), "float"),
        12 => (format!("avg(view.score{w})"), "float"),
        13 => (format!("count(transfer by receiver{w})"), "int"),
        14 => (format!("sum(transfer.amount by sender{w})"), "decimal"),
        15 => (format!("last(order.channel{}{w})", rng.pick(&order_filters)), "string"),
        // References are ordered by their keys, whatever order they arrive in.
        16 => (format!("mode(order.product{}{w})", rng.pick(&order_filters)), "product"),
        17 => (format!("max(order.store{w})"), "store"),
        18 => (format!("min(view.product{}{w})", rng.pick(&view_filters)), "product"),
        19 => (format!("count_distinct(order.store{w})"), "int"),
        _ => (format!("count_distinct(order.store.id{w})"), "int"),
    }
}

/// A random model over the schema: text that must compile.
fn random_model(rng: &mut Rng) -> String {
    let mut text = SCHEMA.to_string();
    let mut ints = Vec::new();
    let mut decimals = Vec::new();
    let mut others = Vec::new();
    let n = 2 + rng.below(5);
    for i in 0..n {
        let (agg, ty) = user_aggregate(rng);
        let name = format!("a{i}");
        text.push_str(&format!("tag user.{name} = {agg};\n"));
        match ty {
            "int" => ints.push(name),
            "decimal" => decimals.push(name),
            _ => others.push(name),
        }
    }
    text.push_str("tag store.revenue = sum(order.amount within 20s);\n");
    // Windowed max and last of the events' own fields: each instance keeps
    // only the entries that no later one outlasts (values that repeat, too).
    text.push_str("tag store.top_order = max(order.amount within 20s);\n");
    text.push_str("tag store.most_units = max(order.quantity within 1m);\n");
    text.push_str("tag product.last_buyer = last(order.user within 1m);\n");
    // Grouped by an optional reference and following another: orders with
    // no store, and those the own-field part of the filter drops, never
    // reach the join.
    text.push_str("tag store.priciest = max(order.product.price where quantity >= 2 within 20s);\n");
    // Mode over few values (references, ordered by key, and strings) and over
    // many (times and amounts, mostly once each: ties everywhere), which
    // instances keep counted in a hash table past a handful.
    text.push_str("tag store.top_buyer = mode(order.user within 1m);\n");
    text.push_str("tag store.top_channel = mode(order.channel);\n");
    text.push_str("tag store.usual_time = mode(order.at within 20s);\n");
    text.push_str("tag user.usual_transfer = mode(transfer.amount by sender within 1m);\n");
    text.push_str("tag store.buyers = count_distinct(order.user);\n");
    text.push_str("segment busy_stores on store = revenue > 100 or buyers >= 3;\n");
    text.push_str("tag product.buyers = count_distinct(order.user within 1m);\n");
    text.push_str("segment popular on product = buyers >= 2 and category is not null;\n");
    // Segments that follow a reference to the other entity's segment, and
    // a store segment over a product one that reads the stores': gathers
    // that read one another, which the compiler keeps from forming a cycle
    // (see `lower::merge_groups`; a one-column gather of each kind is a
    // runtime case of its own).
    text.push_str("tag product.busy_store_orders = count(order where store.busy_stores within 30s);\n");
    text.push_str("segment hot_products on product = busy_store_orders >= 2;\n");
    text.push_str("tag store.popular_orders = count(order where product.popular within 1m);\n");
    text.push_str("segment quiet_stores on store = popular_orders < 2;\n");
    text.push_str("tag store.hot_product_orders = count(order where product.hot_products within 1m);\n");
    // A join narrowed to a lookup value behind a filter on another, and to
    // the fields `last` orders by.
    text.push_str(
        "tag store.priciest_shoes = max(order.product.price where product.category = \"shoes\" within 25s);\n",
    );
    text.push_str(
        "tag user.last_untyped_price = last(order.product.price where product.category is null within 50s);\n",
    );
    text.push_str("segment cold_stores on store = hot_product_orders < 1;\n");
    // Expression tags and segments on user.
    let int = |rng: &mut Rng| if ints.is_empty() { "coalesce(level, 0)".to_string() } else { rng.pick(&ints).clone() };
    let dec = |rng: &mut Rng| if decimals.is_empty() { "0.5".to_string() } else { rng.pick(&decimals).clone() };
    let exprs = [
        format!(
            "tag user.band = case when {} >= 2 then \"hi\" when {} > 100 then \"mid\" else \"lo\" end;",
            int(rng),
            dec(rng)
        ),
        "tag user.place = coalesce(city, home_store.region, \"none\");".to_string(),
        "tag user.store_revenue = home_store.revenue;".to_string(),
        // Computed on read (they follow a reference, and nothing reads them):
        // a followed segment and attribute, the key, and a reference held in a tag.
        "tag user.home_note = case when home_store in busy_stores then coalesce(home_store.region, city) else id end;"
            .to_string(),
        "tag product.last_buyer_city = last_buyer.city;".to_string(),
        // A followed key, on read and in the dataflow.
        "tag user.home_id = home_store.id;".to_string(),
        format!("tag user.score = {} * 2 + coalesce(level, 1) % 3;", int(rng)),
        format!("tag user.ratio = {} / ({} + 1);", dec(rng), int(rng)),
    ];
    for e in &exprs {
        if rng.chance(70) {
            text.push_str(e);
            text.push('\n');
        }
    }
    let segments = [
        format!("segment s_int on user = {} >= 2;", int(rng)),
        format!("segment s_dec on user = {} > 60;", dec(rng)),
        "segment s_home on user = home_store in busy_stores;".to_string(),
        "segment s_home_s1 on user = home_store.id = \"s1\" or coalesce(home_store.id, \"\") = \"s2\";".to_string(),
        "segment s_inline on user = count(view where channel = \"app\" within 20s) >= 2 and city = \"Shanghai\";"
            .to_string(),
        "segment s_lapsed on user = exists(order) and not exists(order within 5s);".to_string(),
        format!(
            "segment s_both on user = s_int and not ({} is null);",
            rng.pick(
                &others
                    .iter()
                    .chain(ints.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .into_iter()
                    .chain(["city".to_string()])
                    .collect::<Vec<_>>()
            )
        ),
        "segment s_vip on user = vip or lower(coalesce(city, \"\")) in [\"beijing\", \"shenzhen\"];".to_string(),
        "segment s_level on user = level between_placeholder;".to_string(),
    ];
    for s in &segments {
        if s.contains("between_placeholder") {
            if rng.chance(50) {
                text.push_str("segment s_level on user = level >= 2 and level <= 4;\n");
            }
            continue;
        }
        if rng.chance(75) || s.starts_with("segment s_int") {
            text.push_str(s);
            text.push('\n');
        }
    }
    // In every model, drawing nothing (the seeds on record replay as they
    // did): a store's tag that most batches change, read by every user of
    // the store through a join whose rows carry only what the gather reads,
    // in a tag computed on read that a segment reads too.
    text.push_str("tag user.store_rev = coalesce(home_store.revenue, 0);\n");
    text.push_str("segment s_store_busy on user = store_rev > 40 and coalesce(level, 0) >= 1;\n");
    // Computed on read and read only by another computed on read; and read
    // by an aggregate's filter, through the order's user.
    text.push_str("tag user.store_rev_twice = store_rev + coalesce(home_store.revenue, 0);\n");
    text.push_str("tag user.twice_plus = store_rev_twice + coalesce(home_store.top_order, 0);\n");
    text.push_str("tag store.fan_orders = count(order where user.store_rev > 40 within 1m);\n");
    // Tests of a referenced instance's tags, which the compiler moves into
    // tags of that instance (`pushdown`): one that is true of a store with
    // no records (moved whole); one inside a choice that also reads the
    // reference itself, through a tag computed on read; one through a
    // reference held in a tag, true over a null reference; and a tag whose
    // value over a null reference is null, not false, unless said.
    text.push_str("segment s_store_calm on user = not (home_store.revenue > 50) or home_store.region = \"east\";\n");
    text.push_str(
        "tag user.store_band = case when home_store.revenue > 60 then \"big\" when home_store is null then \"none\" \
         else \"small\" end;\n",
    );
    text.push_str("segment s_band on user = store_band = \"big\" and coalesce(level, 0) < 3;\n");
    text.push_str("segment s_calm_buyer on product = not coalesce(last_buyer.store_rev > 40, false);\n");
    text.push_str("tag user.rich_or_recent = coalesce(home_store.revenue, 0) > 40 or exists(order within 1m);\n");
    // The same in aggregates' filters: through an order's optional store
    // (true over a null one), through its user to a tag computed on read,
    // and through a transfer's receiver, a user as its sender is.
    text.push_str(
        "tag user.calm_store_orders = count(order where not coalesce(store.revenue > 30, false) within 1m);\n",
    );
    text.push_str("tag product.rich_fan_units = sum(order.quantity where user.store_rev > 20 within 1m);\n");
    text.push_str("tag user.sent_to_fans = count(transfer by sender where receiver.store_rev > 40 within 1m);\n");
    text
}

/// Random records: attribute changes and events over a few keys, mostly in time order.
fn random_records(rng: &mut Rng, n: usize) -> Vec<String> {
    let base: i64 = 1_795_132_800_000;
    let users = ["u1", "u2", "u3", "u4", "u5"];
    let stores = ["s1", "s2", "s3"];
    let products = ["p1", "p2", "p3", "p4"];
    let cities = ["\"Shanghai\"", "\"Beijing\"", "\"Shenzhen\"", "null"];
    let categories = ["\"shoes\"", "\"toys\"", "\"food\"", "null"];
    let channels = ["\"app\"", "\"web\"", "\"store\"", "null"];
    let mut clock: i64 = 0;
    let mut lines = Vec::new();
    let mut sent: Vec<String> = Vec::new();
    for i in 0..n {
        // A coarse grid of times (and windows that are multiples of it), so that
        // events land exactly on window boundaries often.
        clock += 500 * rng.below(4) as i64 + if rng.chance(10) { 1 } else { 0 };
        let t = if rng.chance(8) { clock - 500 * rng.below(60) as i64 } else { clock };
        let at = if rng.chance(50) {
            (base + t).to_string()
        } else {
            format!("\"{}\"", segflow_compiler::value::format_timestamp(base + t))
        };
        let u = rng.pick(&users);
        let line = match rng.below(20) {
            0 => format!(
                r#"{{"entity":"user","id":"{u}","set":{{"city":{},"level":{},"vip":{}}}}}"#,
                rng.pick(&cities),
                rng.pick(&["1", "2", "3", "5", "null"]),
                rng.pick(&["true", "false", "null"])
            ),
            1 => format!(
                r#"{{"entity":"user","id":"{u}","set":{{"home_store":{}}}}}"#,
                rng.pick(&["\"s1\"", "\"s2\"", "\"s3\"", "null"])
            ),
            2 if rng.chance(30) => format!(r#"{{"entity":"user","id":"{u}","delete":true}}"#),
            2 => format!(r#"{{"entity":"user","id":"{u}","unset":["city"]}}"#),
            3 => format!(
                r#"{{"entity":"product","id":"{}","set":{{"category":{},"price":{}}}}}"#,
                rng.pick(&products),
                rng.pick(&categories),
                rng.pick(&["10", "\"20.50\"", "99.99", "null"])
            ),
            4 => format!(
                r#"{{"entity":"store","id":"{}","set":{{"region":{}}}}}"#,
                rng.pick(&stores),
                rng.pick(&["\"east\"", "\"west\"", "null"])
            ),
            5 if !sent.is_empty() => rng.pick(&sent).clone(),
            6..=11 => format!(
                r#"{{"event":"order","id":"o{i}","at":{at},"user":"{u}","store":{},"product":"{}","amount":{},"quantity":{},"channel":{}}}"#,
                rng.pick(&["\"s1\"", "\"s2\"", "\"s3\"", "null"]),
                rng.pick(&products),
                rng.pick(&["12.50", "\"75.25\"", "30", "250.00", "0.01"]),
                1 + rng.below(4),
                rng.pick(&channels)
            ),
            12..=17 => format!(
                r#"{{"event":"view","id":"v{i}","at":{at},"user":"{u}","product":{},"channel":{},"score":{}}}"#,
                rng.pick(&["\"p1\"", "\"p2\"", "\"p3\"", "null"]),
                rng.pick(&channels[..3]),
                rng.pick(&["0.25", "0.75", "1.5", "null"])
            ),
            _ => format!(
                r#"{{"event":"transfer","id":"t{i}","at":{at},"sender":"{u}","receiver":"{}","amount":"{}.5"}}"#,
                rng.pick(&users),
                rng.below(100)
            ),
        };
        if line.starts_with("{\"event\"") {
            sent.push(line.clone());
        }
        lines.push(line);
        // Halfway, drawing nothing: a store loses its attributes (it stays
        // an instance, which references and the store's tags still name).
        if i == n / 2 {
            lines.push(r#"{"entity":"store","id":"s2","delete":true}"#.to_string());
        }
    }
    lines
}

/// A random case: its model, records (as lines and decoded) and workers,
/// and the generator, to draw the rest of the case from.
struct Case {
    rng: Rng,
    model: String,
    compiled: segflow_compiler::Compiled,
    lines: Vec<String>,
    records: Vec<segflow_runtime::Record>,
    workers: usize,
}

fn random_case(seed: u64) -> Case {
    let mut rng = Rng(seed | 1);
    let model = random_model(&mut rng);
    let compiled = common::compile(&model);
    let n = 20 + rng.below(120);
    let lines = random_records(&mut rng, n);
    let records = common::decode(&compiled, &lines);
    let workers = 1 + rng.below(2);
    Case { rng, model, compiled, lines, records, workers }
}

fn check_case(seed: u64) {
    let Case { mut rng, model, compiled, lines, records, workers } = random_case(seed);
    let fixed_now = if rng.chance(20) { Some(1_795_132_800_000 + rng.below(200_000) as i64) } else { None };
    let clock = fixed_now.map_or(Clock::Event, Clock::Fixed);
    let mut engine = common::engine(&compiled, workers, clock);
    let mut world = World::new(&compiled.program);
    let mut before = BTreeSet::new();
    let mut seen_changes = 0;
    let mut at = 0;
    let mut batch_no = 0;
    while at < records.len() {
        let size = 1 + rng.below(25);
        let batch = &records[at..(at + size).min(records.len())];
        at += batch.len();
        batch_no += 1;
        engine.apply(batch);
        world.apply(batch, fixed_now);
        let got = common::dump(&engine);
        let want = world.dump();
        if got != want {
            let diff: Vec<String> = got
                .iter()
                .zip(&want)
                .filter(|(g, w)| g != w)
                .take(3)
                .map(|(g, w)| format!("  engine:    {g}\n  reference: {w}"))
                .collect();
            panic!(
                "seed {seed}: batch {batch_no} (now {}): dumps differ ({} vs {} lines)\n{}\nmodel:\n{model}\nrecords so far:\n{}",
                world.now(),
                got.len(),
                want.len(),
                diff.join("\n"),
                lines[..at].join("\n")
            );
        }
        // Changes reported for this batch = membership difference.
        let after = world.memberships();
        let state = engine.state();
        let state = state.read().unwrap();
        let mut net: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for c in state.changes.iter_from(seen_changes) {
            let name = state.plan.outputs[c.output].name.clone();
            let key = common::reference::to_json(&c.key).to_string();
            *net.entry((name, key)).or_default() += if c.enter { 1 } else { -1 };
            assert!(c.time <= world.now() || fixed_now.is_some(), "seed {seed}: change after now");
        }
        seen_changes = state.changes.end();
        net.retain(|_, v| *v != 0);
        let mut expected: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for m in after.difference(&before) {
            expected.insert(m.clone(), 1);
        }
        for m in before.difference(&after) {
            expected.insert(m.clone(), -1);
        }
        assert_eq!(
            net, expected,
            "seed {seed}: batch {batch_no}: enter/exit changes differ from the membership difference\nmodel:\n{model}"
        );
        before = after;
    }
}

/// A batch run's one streamed batch (`Engine::begin_on_event_clock`), fed in
/// random pieces after some ordinary batches, must equal the reference given
/// the same batches: its windowed rows wait for a `now` that only its last
/// record settles, and its changes are stamped with that `now`.
fn check_event_clock_case(seed: u64) {
    let Case { mut rng, model, compiled, lines, records, workers } = random_case(seed);
    let mut engine = common::engine(&compiled, workers, Clock::Event);
    let mut world = World::new(&compiled.program);
    // What the ordinary batches queue (expiries, late inserts) falls due in the last.
    let ordinary = rng.below(records.len() / 2 + 1);
    let mut at = 0;
    while at < ordinary {
        let batch = &records[at..(at + 1 + rng.below(25)).min(ordinary)];
        at += batch.len();
        engine.apply(batch);
        world.apply(batch, None);
    }
    let changes_before = engine.state().read().unwrap().changes.end();
    let last = &records[at..];
    // No guess, a guess from the records, or one too early or too late.
    let times: Vec<i64> = last.iter().filter_map(|r| r.event_time()).collect();
    let guess = match rng.below(4) {
        0 => None,
        1 => times.iter().max().copied(),
        _ => times.get(rng.below(times.len() + 1)).map(|t| t + 2000 * rng.below(3) as i64 - 2000),
    };
    let mut batch = engine.begin_on_event_clock(guess);
    let mut fed = 0;
    while fed < last.len() {
        let piece = &last[fed..(fed + 1 + rng.below(10)).min(last.len())];
        engine.feed(&mut batch, piece);
        fed += piece.len();
    }
    let submitted = engine.finish(batch);
    engine.complete(submitted);
    world.apply(last, None);
    let (got, want) = (common::dump(&engine), world.dump());
    assert!(
        got == want,
        "seed {seed}: the last batch ({} records after {ordinary}) differs from the reference\nmodel:\n{model}\nrecords:\n{}",
        last.len(),
        lines.join("\n")
    );
    let state = engine.state();
    let state = state.read().unwrap();
    assert_eq!(state.time, world.now(), "seed {seed}");
    let stamps: BTreeSet<i64> = state.changes.iter_from(changes_before).map(|c| c.time).collect();
    assert!(stamps.iter().all(|&t| t == world.now()), "seed {seed}: changes stamped {stamps:?}, now {}", world.now());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn dataflow_equals_reference_after_every_batch(seed in any::<u64>()) {
        check_case(seed);
    }

    #[test]
    fn a_batch_on_its_own_event_clock_equals_reference(seed in any::<u64>()) {
        check_event_clock_case(seed);
    }
}

/// Seeds that once found bugs, kept as regression tests.
#[test]
fn known_seeds() {
    for seed in [1, 2, 3, 42, 1234567] {
        check_case(seed);
    }
}
