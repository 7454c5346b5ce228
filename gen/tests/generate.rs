//! End-to-end checks of `generate`: every line is a valid record of the retail
//! model, the statistics count exactly what was written, and output is
//! deterministic.

use std::collections::{HashMap, HashSet};

use segflow_gen::{generate, GenConfig, GenStats};
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;

fn run(config: &GenConfig) -> (Vec<u8>, GenStats) {
    let mut out = Vec::new();
    let stats = generate(config, &mut out).expect("generate");
    (out, stats)
}

fn small() -> GenConfig {
    GenConfig { users: 3_000, events: 60_000, seed: 7, days: 30, ..GenConfig::default() }
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SS[.mmm]Z` to epoch ms, counting days naively
/// (independent of the crate's closed-form calendar arithmetic).
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let millis = match b.len() {
        20 if b[19] == b'Z' => 0,
        24 if b[19] == b'.' && b[23] == b'Z' => num(20..23)?,
        _ => return None,
    };
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_len = |y: i64, m: i64| match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&month) || day < 1 || day > month_len(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut days = 0;
    for y in 1970..year {
        days += if leap(y) { 366 } else { 365 };
    }
    for y in year..1970 {
        days -= if leap(y) { 366 } else { 365 };
    }
    for m in 1..month {
        days += month_len(year, m);
    }
    days += day - 1;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// The raw JSON text of a top-level scalar field (our values hold no commas).
fn raw<'a>(line: &'a str, key: &str) -> &'a str {
    let pattern = format!("\"{key}\":");
    let start = line.find(&pattern).expect("field") + pattern.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

fn is_decimal_2(raw: &str) -> bool {
    let text = raw.trim_matches('"');
    let Some((int, frac)) = text.split_once('.') else {
        return false;
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.len() == 2
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn cents(raw: &str) -> u64 {
    raw.trim_matches('"').replace('.', "").parse().unwrap()
}

fn key_index(v: &Value, prefix: char, width: usize) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("expected a key string, got {v}"));
    assert!(s.starts_with(prefix) && s.len() > width, "bad key {s}");
    s[1..].parse::<u64>().unwrap()
}

fn timestamp(v: &Value) -> i64 {
    match v {
        Value::String(s) => parse_rfc3339(s).unwrap_or_else(|| panic!("bad timestamp {s}")),
        Value::Number(n) => n.as_i64().expect("integer epoch ms"),
        _ => panic!("bad timestamp {v}"),
    }
}

#[derive(Default, Debug)]
struct Observed {
    stats: GenStats,
    by_event: HashMap<String, u64>,
    online_orders: u64,
    amount_strings: u64,
    amount_numbers: u64,
    at_strings: u64,
    at_numbers: u64,
    unsets: u64,
    deletes: u64,
    events_per_user: HashMap<u64, u64>,
    null_product_views: u64,
}

/// Parses and checks every line against the retail model; counts what it sees.
fn check(out: &[u8], config: &GenConfig) -> Observed {
    let text = std::str::from_utf8(out).expect("utf-8");
    assert!(text.is_empty() || text.ends_with('\n'));
    let users = config.users;
    let stores = (users / 2000).max(5);
    let products = (users / 100).max(50);
    let start = config.end_ms - i64::from(config.days) * DAY_MS;

    let mut seen = Observed::default();
    let mut first_lines: HashMap<(String, String), &str> = HashMap::new();
    let mut watermark = i64::MIN;
    let mut in_events = false;
    let mut initial: HashSet<(String, u64)> = HashSet::new();

    for (n, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {n}: {e}: {line}"));
        let obj = v.as_object().expect("object");
        if let Some(entity) = obj.get("entity") {
            let entity = entity.as_str().unwrap();
            let (prefix, width, count) = match entity {
                "user" => ('u', 7, users),
                "store" => ('s', 4, stores),
                "product" => ('p', 6, products),
                other => panic!("unknown entity {other}"),
            };
            let id = key_index(&obj["id"], prefix, width);
            assert!((1..=count).contains(&id), "line {n}: {line}");
            let ops = ["set", "unset", "delete"].iter().filter(|k| obj.contains_key(**k)).count();
            assert_eq!(ops, 1, "line {n}: {line}");
            if in_events {
                seen.stats.attribute_updates += 1;
            } else {
                seen.stats.entity_records += 1;
                assert!(initial.insert((entity.to_string(), id)), "entity listed twice: {line}");
                assert!(obj.contains_key("set"));
            }
            if let Some(fields) = obj.get("unset") {
                assert_eq!(fields, &serde_json::json!(["city"]));
                assert_eq!(entity, "user");
                seen.unsets += 1;
            }
            if let Some(delete) = obj.get("delete") {
                assert_eq!(delete, &Value::Bool(true));
                assert_eq!(entity, "user");
                seen.deletes += 1;
            }
            let Some(set) = obj.get("set") else { continue };
            let set = set.as_object().unwrap();
            assert!(!set.is_empty());
            for (field, value) in set {
                let ok = match (entity, field.as_str()) {
                    ("user", "name") => value.is_string(),
                    ("user", "city") | ("store", "region") => value.is_string() || value.is_null(),
                    ("user", "signup_at") => {
                        let t = timestamp(value);
                        t < start && t > start - 4 * 366 * DAY_MS
                    }
                    ("user", "home_store") => value.is_null() || (1..=stores).contains(&key_index(value, 's', 4)),
                    ("user", "birth_year") => value.as_i64().is_some_and(|y| (1950..=2010).contains(&y)),
                    ("user", "vip") => value.is_boolean(),
                    ("store", "city") | ("product", "category") => value.is_string(),
                    ("product", "price") => {
                        value.is_null() || {
                            let r = raw(line, "price");
                            is_decimal_2(r) && (1_500..=299_900).contains(&cents(r))
                        }
                    }
                    ("product", "weight_kg") => value.as_f64().is_some_and(|w| w > 0.0 && w < 20.0),
                    _ => false,
                };
                assert!(ok, "line {n}: bad {entity}.{field}: {line}");
            }
            if !in_events && entity == "store" {
                assert!(set.contains_key("city"), "store without city: {line}");
            }
            if !in_events && entity == "product" {
                assert!(set.contains_key("category"), "product without category: {line}");
            }
            continue;
        }

        in_events = true;
        let event = obj["event"].as_str().expect("event name").to_string();
        let id = obj["id"].as_str().expect("event id").to_string();
        if let Some(first) = first_lines.get(&(event.clone(), id.clone())) {
            assert_eq!(*first, line, "same id, different event");
            seen.stats.duplicates += 1;
            continue;
        }
        first_lines.insert((event.clone(), id.clone()), line);
        seen.stats.events += 1;
        *seen.by_event.entry(event.clone()).or_default() += 1;

        let at = timestamp(&obj["at"]);
        if obj["at"].is_string() {
            seen.at_strings += 1;
        } else {
            seen.at_numbers += 1;
        }
        assert!(at < config.end_ms && at >= start - 3 * DAY_MS, "line {n}: at out of range: {line}");
        if at < watermark {
            seen.stats.late += 1;
            assert!(watermark - at <= 3 * DAY_MS, "too late: {line}");
        } else {
            watermark = at;
        }

        let user_key = |field: &str| {
            let u = key_index(&obj[field], 'u', 7);
            assert!((1..=users).contains(&u), "line {n}: {line}");
            u
        };
        let product_key = |value: &Value| {
            let p = key_index(value, 'p', 6);
            assert!((1..=products).contains(&p), "line {n}: {line}");
        };
        let expected_fields: &[&str] = match event.as_str() {
            "page_view" => {
                *seen.events_per_user.entry(user_key("user")).or_default() += 1;
                assert!(obj["url"].as_str().is_some_and(|u| u.starts_with('/')));
                let channel = obj["channel"].as_str().unwrap();
                assert!(["app", "web", "mini_program", "store_kiosk"].contains(&channel));
                match &obj["product"] {
                    Value::Null => seen.null_product_views += 1,
                    p => product_key(p),
                }
                &["user", "url", "channel", "product"]
            }
            "add_to_cart" => {
                *seen.events_per_user.entry(user_key("user")).or_default() += 1;
                product_key(&obj["product"]);
                assert!(obj["quantity"].as_i64().is_some_and(|q| (1..=5).contains(&q)));
                &["user", "product", "quantity"]
            }
            "order" => {
                *seen.events_per_user.entry(user_key("user")).or_default() += 1;
                product_key(&obj["product"]);
                match &obj["store"] {
                    Value::Null => seen.online_orders += 1,
                    s => assert!((1..=stores).contains(&key_index(s, 's', 4))),
                }
                let amount = raw(line, "amount");
                assert!(is_decimal_2(amount), "amount {amount}");
                assert!((1_000..=300_000).contains(&cents(amount)), "amount {amount}");
                if amount.starts_with('"') {
                    seen.amount_strings += 1;
                } else {
                    seen.amount_numbers += 1;
                }
                assert!(obj["quantity"].as_i64().is_some_and(|q| (1..=5).contains(&q)));
                &["user", "store", "product", "amount", "quantity"]
            }
            "referral" => {
                let referrer = user_key("referrer");
                assert_ne!(referrer, user_key("referee"), "self-referral: {line}");
                *seen.events_per_user.entry(referrer).or_default() += 1;
                &["referrer", "referee"]
            }
            other => panic!("unknown event {other}"),
        };
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected: Vec<&str> = ["event", "id", "at"].iter().chain(expected_fields).copied().collect();
        expected.sort_unstable();
        assert_eq!(keys, expected, "line {n}: {line}");
    }
    seen.stats.bytes = out.len() as u64;
    seen
}

#[test]
fn same_config_same_bytes() {
    let config = small();
    let (a, stats_a) = run(&config);
    let (b, stats_b) = run(&config);
    assert!(a == b, "two runs differ");
    assert_eq!(stats_a, stats_b);

    let (c, _) = run(&GenConfig { seed: 8, ..config.clone() });
    assert!(a != c, "the seed changes nothing");
}

#[test]
fn entity_block_does_not_depend_on_the_number_of_events() {
    let (a, sa) = run(&small());
    let (b, sb) = run(&GenConfig { events: 10, ..small() });
    assert_eq!(sa.entity_records, sb.entity_records);
    let block = |out: &[u8], lines: u64| {
        let text = std::str::from_utf8(out).unwrap();
        text.lines().take(lines as usize).collect::<Vec<_>>().join("\n")
    };
    assert!(block(&a, sa.entity_records) == block(&b, sb.entity_records));
}

/// A fingerprint of the default configuration's output, the same on every
/// platform. If a change to the generator alters it, benchmark figures before and
/// after are not comparable: say so in the commit, then update the numbers here.
#[test]
fn default_output_is_stable() {
    let (out, stats) = run(&GenConfig::default());
    let fnv1a =
        out.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    let expected = GenStats {
        entity_records: 10_105,
        events: 100_000,
        attribute_updates: 486,
        duplicates: 97,
        late: 995,
        bytes: 15_699_751,
    };
    assert_eq!(stats, expected);
    assert_eq!(fnv1a, 0x0ee6_035f_b512_ec16, "got {fnv1a:#018x}");
}

#[test]
fn every_line_is_a_valid_record_and_stats_match() {
    let config = small();
    let (out, stats) = run(&config);
    let seen = check(&out, &config);
    assert_eq!(seen.stats, stats);
    assert_eq!(stats.entity_records, 5 + 50 + 3_000);
    assert_eq!(stats.events, config.events);
    assert_eq!(stats.lines(), out.iter().filter(|&&b| b == b'\n').count() as u64);
}

#[test]
fn mix_and_untidiness_are_roughly_as_documented() {
    let config = GenConfig { events: 200_000, ..GenConfig::default() };
    let (out, stats) = run(&config);
    let seen = check(&out, &config);
    assert_eq!(seen.stats, stats);

    let share = |n: u64| n as f64 / stats.events as f64;
    let near = |what: &str, n: u64, expected: f64, tolerance: f64| {
        let got = share(n);
        assert!((got - expected).abs() <= tolerance, "{what}: {got:.4}, expected ~{expected}");
    };
    near("page_view", seen.by_event["page_view"], 0.70, 0.01);
    near("add_to_cart", seen.by_event["add_to_cart"], 0.15, 0.01);
    near("order", seen.by_event["order"], 0.13, 0.01);
    near("referral", seen.by_event["referral"], 0.02, 0.005);
    near("late", stats.late, 0.01, 0.002);
    near("duplicates", stats.duplicates, 0.001, 0.0004);
    let lines = stats.lines() - stats.entity_records;
    let updates = stats.attribute_updates as f64 / lines as f64;
    assert!((0.003..0.007).contains(&updates), "updates {updates}");
    assert!(seen.unsets > 0 && seen.deletes > 0, "{seen:?}");

    let online = seen.online_orders as f64 / seen.by_event["order"] as f64;
    assert!((0.57..0.63).contains(&online), "online orders {online}");
    assert!(seen.amount_strings > 0 && seen.amount_numbers > seen.amount_strings);
    assert!(seen.at_numbers > 0 && seen.at_strings > 5 * seen.at_numbers);
    assert!(seen.null_product_views > 0);

    // Skew: the busiest 1% of users do far more than 1% of the events, and
    // most users do something.
    let mut per_user: Vec<u64> = seen.events_per_user.values().copied().collect();
    per_user.sort_unstable_by(|a, b| b.cmp(a));
    let top: u64 = per_user[..(config.users / 100) as usize].iter().sum();
    let active: u64 = per_user.iter().sum();
    assert!(top as f64 > 0.15 * active as f64, "top 1% share {top}/{active}");
    assert!(per_user.len() as u64 > config.users / 2, "{} active users", per_user.len());
}

#[test]
fn tiny_and_empty_runs() {
    for config in [
        GenConfig { users: 2, events: 0, days: 1, ..GenConfig::default() },
        GenConfig { users: 2, events: 500, days: 1, ..GenConfig::default() },
        GenConfig { users: 10, events: 3, days: 365, seed: 0, end_ms: 0 },
    ] {
        let (out, stats) = run(&config);
        assert_eq!(check(&out, &config).stats, stats, "{config:?}");
    }
}

#[test]
fn bad_configs_are_rejected() {
    let mut out = Vec::new();
    for config in [
        GenConfig { users: 1, ..GenConfig::default() },
        GenConfig { days: 0, ..GenConfig::default() },
        GenConfig { end_ms: i64::MIN, ..GenConfig::default() },
        GenConfig { end_ms: i64::MAX, ..GenConfig::default() },
    ] {
        let err = generate(&config, &mut out).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{config:?}");
    }
    assert!(out.is_empty());
}

#[test]
fn write_errors_are_returned() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let err = generate(&small(), &mut Full).unwrap_err();
    assert_eq!(err.to_string(), "disk full");
}

#[test]
fn independent_timestamp_parser_agrees_on_known_dates() {
    assert_eq!(parse_rfc3339("2026-11-20T00:00:00.000Z"), Some(1_795_132_800_000));
    assert_eq!(parse_rfc3339("2026-11-20T00:00:00Z"), Some(1_795_132_800_000));
    assert_eq!(parse_rfc3339("2024-02-29T12:34:56.789Z"), Some(1_709_210_096_789));
    assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Some(-1));
    assert_eq!(parse_rfc3339("1968-02-29T00:00:00Z"), Some(-58_060_800_000));
}
