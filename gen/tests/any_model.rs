//! `generate_for`: data for any model's schema. Every line is a record of
//! that schema (each field of its declared type, references to instances
//! that exist), the statistics count what was written, the output is
//! deterministic, and the literals a model compares with are common values.

use std::collections::{HashMap, HashSet};

use segflow_gen::schema::{EntitySchema, EventSchema, FieldSchema, FieldType, Schema};
use segflow_gen::{generate_for, GenConfig, GenStats};
use serde_json::Value;

fn field(name: &str, ty: FieldType, nullable: bool) -> FieldSchema {
    FieldSchema::new(name, ty, nullable)
}

/// A member (int key), a shop (string key) that members point at, and
/// three events with a field of every type.
fn schema() -> Schema {
    let mut channel = field("channel", FieldType::String, false);
    channel.literals = vec!["app".into(), "web".into()];
    let mut amount = field("amount", FieldType::Decimal, false);
    amount.largest_number = Some(1000);
    let mut units = field("units", FieldType::Int, false);
    units.down_to_zero = true;
    Schema {
        entities: vec![
            EntitySchema {
                name: "member".into(),
                key: 1,
                fields: vec![
                    field("email", FieldType::String, true),
                    field("no", FieldType::Int, false),
                    field("joined", FieldType::Timestamp, true),
                    field("shop", FieldType::Ref(1), true),
                    field("score", FieldType::Float, false),
                    field("vip", FieldType::Bool, true),
                ],
            },
            EntitySchema {
                name: "shop".into(),
                key: 0,
                fields: vec![field("code", FieldType::String, false), field("city", FieldType::String, false)],
            },
        ],
        events: vec![
            EventSchema {
                name: "visit".into(),
                fields: vec![
                    field("member", FieldType::Ref(0), false),
                    channel,
                    field("shop", FieldType::Ref(1), true),
                ],
            },
            EventSchema {
                name: "purchase".into(),
                fields: vec![
                    field("member", FieldType::Ref(0), false),
                    amount,
                    units,
                    field("weight", FieldType::Float, true),
                    field("paid_at", FieldType::Timestamp, true),
                    field("gift", FieldType::Bool, false),
                ],
            },
            EventSchema { name: "ping".into(), fields: vec![] },
        ],
    }
}

fn config() -> GenConfig {
    GenConfig { users: 3_000, events: 40_000, seed: 9, days: 30, ..GenConfig::default() }
}

fn run(schema: &Schema, config: &GenConfig) -> (Vec<u8>, GenStats) {
    let mut out = Vec::new();
    let stats = generate_for(schema, config, &mut out).expect("generate_for");
    (out, stats)
}

/// Whether `v` is a valid JSON value of a field of type `ty`, given the keys
/// of each entity's instances.
fn fits(v: &Value, f: &FieldSchema, keys: &[HashSet<String>]) -> bool {
    if v.is_null() {
        return f.nullable;
    }
    match f.ty {
        FieldType::Bool => v.is_boolean(),
        FieldType::Int => v.is_i64(),
        FieldType::Float => v.is_number(),
        // Two decimal places, written as a number.
        FieldType::Decimal => v.is_number() && v.to_string().split('.').nth(1).is_some_and(|f| f.len() == 2),
        FieldType::String => v.is_string(),
        FieldType::Timestamp => v.as_str().is_some_and(|s| s.len() == 24 && s.ends_with('Z')),
        FieldType::Ref(e) => keys[e].contains(&v.to_string()),
    }
}

#[test]
fn every_line_is_a_record_of_the_schema_and_the_stats_count_them() {
    let schema = schema();
    let (out, stats) = run(&schema, &config());
    let text = String::from_utf8(out).expect("UTF-8");
    assert_eq!(stats.bytes, text.len() as u64);
    assert_eq!(stats.lines(), text.lines().count() as u64);
    assert_eq!(stats.entity_records, 3_000 + 30);
    assert_eq!(stats.events, 40_000);
    assert!(stats.duplicates > 10 && stats.late > 200 && stats.attribute_updates > 100, "{stats:?}");

    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    // Keys as JSON text, per entity, from the entity block.
    let mut keys = vec![HashSet::new(); schema.entities.len()];
    for line in &lines[..stats.entity_records as usize] {
        let e = schema.entities.iter().position(|e| e.name == line["entity"]).expect("a declared entity");
        assert!(keys[e].insert(line["id"].to_string()), "{line} is written twice");
    }
    assert_eq!(keys[0].len(), 3_000);
    assert!(keys[0].contains("1") && keys[0].contains("3000"), "member keys are ints from 1");
    assert!(keys[1].contains("\"s01\"") && keys[1].contains("\"s30\""), "{:?}", keys[1]);

    let (mut ids, mut events, mut updates) = (HashSet::new(), 0, 0);
    for line in &lines {
        if let Some(name) = line["event"].as_str() {
            let event = schema.events.iter().find(|e| e.name == name).expect("a declared event");
            let object = line.as_object().unwrap();
            assert!(object["at"].is_string() || object["at"].is_i64(), "{line}");
            for f in &event.fields {
                match object.get(&f.name) {
                    Some(v) => assert!(fits(v, f, &keys), "{line}: field {}", f.name),
                    None => assert!(f.nullable, "{line} lacks {}", f.name),
                }
            }
            assert_eq!(object.len(), 3 + event.fields.iter().filter(|f| object.contains_key(&f.name)).count());
            if ids.insert(line["id"].as_str().unwrap().to_string()) {
                events += 1;
            }
            continue;
        }
        let e = schema.entities.iter().position(|e| e.name == line["entity"]).expect("a declared entity");
        let entity = &schema.entities[e];
        assert!(keys[e].contains(&line["id"].to_string()), "{line}: an instance not in the entity block");
        let object = line.as_object().unwrap();
        if let Some(set) = object.get("set") {
            for (name, v) in set.as_object().unwrap() {
                let f = entity.fields.iter().find(|f| &f.name == name).expect("a declared attribute");
                assert_ne!(f.name, entity.fields[entity.key].name, "the key is not set");
                assert!(fits(v, f, &keys), "{line}: attribute {name}");
            }
        } else if let Some(unset) = object.get("unset") {
            let name = unset[0].as_str().unwrap();
            assert!(entity.fields.iter().any(|f| f.name == name && f.nullable), "{line}");
            updates += 1;
        } else {
            assert_eq!(object.get("delete"), Some(&Value::Bool(true)), "{line}");
            updates += 1;
        }
    }
    assert_eq!(events, 40_000, "distinct event ids");
    assert!(updates > 0, "some updates unset or delete");
}

#[test]
fn values_follow_the_model_s_literals_and_thresholds_and_the_events_halve() {
    let (out, _) = run(&schema(), &config());
    let (mut channels, mut kinds) = (HashMap::<String, u32>::new(), HashMap::<String, u32>::new());
    let (mut amounts_over, mut amounts, mut no_units) = (0, 0, 0);
    for line in String::from_utf8(out).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(kind) = v["event"].as_str() {
            *kinds.entry(kind.to_string()).or_default() += 1;
        }
        if let Some(channel) = v["channel"].as_str() {
            *channels.entry(channel.to_string()).or_default() += 1;
        }
        no_units += u32::from(v["units"].as_i64() == Some(0));
        if let Some(amount) = v["amount"].as_f64() {
            amounts += 1;
            amounts_over += u32::from(amount > 1000.0);
        }
    }
    let mut by_count: Vec<(u32, String)> = channels.into_iter().map(|(c, n)| (n, c)).collect();
    by_count.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(by_count[0].1, "app", "{by_count:?}");
    assert_eq!(by_count[1].1, "web", "{by_count:?}");
    assert_eq!(by_count.len(), 2 + 12, "the literals, then channel_1..channel_12: {by_count:?}");
    // The amounts reach past the threshold the model compares with, to twice it.
    assert!(amounts_over * 20 > amounts && amounts_over * 2 < amounts, "{amounts_over} of {amounts}");
    // A model that asks whether `units` is 0 or less gets some at 0.
    assert!(no_units > 100, "{no_units} purchases of no units");
    // Shares 64 : 32 : 16.
    let (visit, purchase, ping) = (kinds["visit"], kinds["purchase"], kinds["ping"]);
    assert!(visit > purchase * 3 / 2 && purchase > ping * 3 / 2, "{kinds:?}");
}

#[test]
fn same_config_same_bytes_and_the_seed_changes_them() {
    let schema = schema();
    let config = GenConfig { users: 500, events: 5_000, ..config() };
    assert!(run(&schema, &config).0 == run(&schema, &config).0);
    let other = run(&schema, &GenConfig { seed: 10, ..config.clone() }).0;
    assert!(run(&schema, &config).0 != other);
    // Event ids carry the seed: data of two seeds can be loaded together.
    assert!(String::from_utf8(other).unwrap().contains("\"id\":\"v10-1\""));
}

#[test]
fn a_schema_with_no_events_writes_its_entities_only() {
    let mut schema = schema();
    schema.events.clear();
    let (out, stats) = run(&schema, &config());
    assert_eq!((stats.events, stats.entity_records), (0, 3_030));
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 3_030);
}

#[test]
fn schemas_eql_does_not_allow_are_refused() {
    let mut float_key = schema();
    float_key.entities[1].fields[0].ty = FieldType::Float;
    let mut dangling = schema();
    dangling.events[0].fields[0].ty = FieldType::Ref(7);
    for (schema, says) in
        [(float_key, "entity `shop`: its key must be"), (dangling, "field `member` refers to entity 7")]
    {
        let err = generate_for(&schema, &config(), &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains(says), "{err}");
    }
}
