//! Synthetic data for any model, from its [`Schema`]: what `segflow gen
//! --model FILE.eql` writes for a model that is not the retail example.
//!
//! It knows only the declared types, so it follows simple rules, each the
//! retail data's in spirit:
//! - the entity block first: every instance of every entity, in declaration
//!   order, with all its attributes set (a nullable one is null or absent
//!   one time in ten); a string key is the entity's first letter and the
//!   instance's number, zero-padded (`u000017`), an int key the number;
//! - then the events, over `days` days in increasing time (busy hours get
//!   more), with the retail data's untidiness: ~1% late, ~0.1% re-sent
//!   duplicates, ~0.5% attribute changes in between (`set`, `unset`, rarely a
//!   `delete`); an event's id is its name's initials, the seed and a
//!   number (`pv42-17`, see `id_prefixes`), so that data of two seeds can
//!   be loaded together; a model with no events gets its entities
//!   only;
//! - an event type's share halves down the declaration order (four events:
//!   53%, 27%, 13%, 7%), never below 1/32 of the first's;
//! - references pick their instance with a power-law skew, so a few
//!   instances of the main entity (see [`Schema::main_entity`]) are very
//!   active and the rest are a long tail;
//! - a string is drawn from the field's vocabulary: first the literals the
//!   model compares the field with, then `{field}_{k}` (12 values, or one per
//!   ten main instances, at least 50, for a field whose name says it is free
//!   text such as `url` or `email`), earlier values more often;
//! - ints lean small, from 1 (events: up to 5; attributes: up to 100), and
//!   decimals too, with two places (from 0.01 up to 500.00 or 1000.00);
//!   floats are uniform from 0 to 100, with three places. A number the model
//!   compares the field with moves the top to twice it (at least 10), and
//!   one that is zero or less makes ints and decimals start at 0 (numbers
//!   are never negative);
//! - an event's timestamp fields lie up to 30 days before its `at`, an
//!   entity's up to three years before the data starts (or, in an update,
//!   before the update); booleans are true one time in four.

use std::io::{self, Write};

use crate::clock::Clock;
use crate::json::{push_cents, push_i64, push_str, push_thousandths, push_u64};
use crate::rng::{PowerLaw, Rng};
use crate::schema::{FieldSchema, FieldType, Schema};
use crate::stream::{Stream, UPDATE_PPM};
use crate::time::{push_padded, MS_PER_DAY};
use crate::{GenConfig, GenStats};

/// Words in a field's name that make it free text, with many values.
const FREE_TEXT: [&str; 12] =
    ["name", "email", "url", "path", "title", "query", "address", "phone", "comment", "text", "description", "agent"];
/// Synthetic values of a string field that is not free text.
const FEW_VALUES: u64 = 12;

/// How one field's values are drawn.
enum Values {
    /// An entity's key, which is never drawn.
    Key,
    Bool,
    /// `least + pick`.
    Int {
        pick: PowerLaw,
        least: u64,
    },
    /// `least + pick` hundredths.
    Decimal {
        pick: PowerLaw,
        least: u64,
    },
    /// Thousandths, uniform in `0..=max`.
    Float(u64),
    /// The model's literals, then `{field}_1` to `{field}_{synthetic}`
    /// (written as drawn: a free-text field has many).
    String {
        literals: Vec<String>,
        field: String,
        pick: PowerLaw,
    },
    /// Up to this many ms before the record's reference time.
    Timestamp(u64),
    Ref(usize),
}

impl Values {
    fn of(field: &FieldSchema, on_event: bool, main_instances: u64) -> Values {
        let top = |default: u64| field.largest_number.map_or(default, |n| n.saturating_mul(2).clamp(10, 1 << 40));
        // From 0 when the model asks whether a value is 0 or less.
        let least = u64::from(!field.down_to_zero);
        match field.ty {
            FieldType::Bool => Values::Bool,
            FieldType::Int => {
                let top = top(if on_event { 5 } else { 100 });
                Values::Int { pick: PowerLaw::new(top + 1 - least, 3, 0, false), least }
            }
            FieldType::Decimal => {
                let top = top(if on_event { 500 } else { 1000 }) * 100;
                Values::Decimal { pick: PowerLaw::new(top + 1 - least, 2, 0, false), least }
            }
            FieldType::Float => Values::Float(top(100) * 1000),
            FieldType::String => {
                let lower = field.name.to_lowercase();
                let synthetic = if FREE_TEXT.iter().any(|word| lower.contains(word)) {
                    (main_instances / 10).max(50)
                } else {
                    FEW_VALUES
                };
                let mut literals: Vec<String> = Vec::new();
                for literal in &field.literals {
                    if !literals.contains(literal) {
                        literals.push(literal.clone());
                    }
                }
                let pick = PowerLaw::new(literals.len() as u64 + synthetic, 2, 100_000, false);
                Values::String { literals, field: field.name.clone(), pick }
            }
            FieldType::Timestamp => Values::Timestamp(if on_event { 30 } else { 3 * 365 } * MS_PER_DAY as u64),
            FieldType::Ref(entity) => Values::Ref(entity),
        }
    }
}

/// How an entity's instances are written (its name and key are the schema's).
struct EntityPlan {
    int_key: bool,
    /// Digits of a string key's number.
    width: usize,
    /// A string key's prefix: the entity name's first character.
    prefix: String,
    instances: u64,
    pick: PowerLaw,
    /// Per attribute, the key's slot included (never drawn).
    values: Vec<Values>,
}

/// How an event's records are written (its name is the schema's).
struct EventPlan {
    /// Its ids' prefix (see `id_prefixes`).
    id_prefix: String,
    values: Vec<Values>,
    next_id: u64,
}

/// Each event's ids' prefix: the initials of its name's words (`page_view`:
/// `pv`), and its place among the events after them where two events'
/// initials agree. An id is the prefix, the seed and a number (`pv42-17`),
/// 15 bytes or fewer for most data, which a value holds in place: a longer
/// one is a string on the heap, which cost the engine and the workers
/// (BENCHMARKS.md, fortieth session).
fn id_prefixes(schema: &Schema) -> Vec<String> {
    let initials: Vec<String> = (schema.events.iter())
        .map(|event| event.name.split('_').filter_map(|word| word.chars().next()).collect())
        .collect();
    (initials.iter().enumerate())
        .map(|(k, own)| {
            let shared = initials.iter().filter(|other| *other == own).count() > 1;
            if shared || own.is_empty() {
                format!("{own}{k}_")
            } else {
                own.clone()
            }
        })
        .collect()
}

pub(crate) struct ModelGenerator<'s> {
    schema: &'s Schema,
    seed: u64,
    rng: Rng,
    out: Stream,
    entities: Vec<EntityPlan>,
    events: Vec<EventPlan>,
    event_weights: Vec<u32>,
    /// Entities with an attribute besides the key, which updates can change.
    updatable: Vec<usize>,
}

impl<'s> ModelGenerator<'s> {
    pub(crate) fn new(schema: &'s Schema, config: &GenConfig) -> Self {
        let counts = schema.instance_counts(config.users);
        let main_instances = config.users;
        let main = schema.main_entity();
        let entities: Vec<EntityPlan> = schema
            .entities
            .iter()
            .zip(&counts)
            .enumerate()
            .map(|(e, (entity, &instances))| EntityPlan {
                int_key: entity.fields[entity.key].ty == FieldType::Int,
                width: instances.to_string().len(),
                prefix: entity.name.chars().next().map(String::from).unwrap_or_default(),
                instances,
                // As the retail data's users: ~85% of picks follow the power
                // law; the other entities' are a little flatter.
                pick: if Some(e) == main {
                    PowerLaw::new(instances, 3, 150_000, true)
                } else {
                    PowerLaw::new(instances, 2, 50_000, true)
                },
                values: (entity.fields.iter().enumerate())
                    .map(|(i, f)| if i == entity.key { Values::Key } else { Values::of(f, false, main_instances) })
                    .collect(),
            })
            .collect();
        let events = (schema.events.iter().zip(id_prefixes(schema)))
            .map(|(event, id_prefix)| EventPlan {
                id_prefix,
                values: event.fields.iter().map(|f| Values::of(f, true, main_instances)).collect(),
                next_id: 1,
            })
            .collect();
        let event_weights = (0..schema.events.len()).map(|i| (64u32 >> i.min(31)).max(2)).collect();
        let updatable = (0..schema.entities.len()).filter(|&e| schema.entities[e].fields.len() > 1).collect();
        ModelGenerator {
            schema,
            seed: config.seed,
            rng: Rng::new(config.seed, 11),
            out: Stream::new(),
            entities,
            events,
            event_weights,
            updatable,
        }
    }

    pub(crate) fn run(mut self, config: &GenConfig, out: &mut impl Write) -> io::Result<GenStats> {
        let mut clock = Clock::new(config.end_ms, config.days, config.events);
        let start_ms = clock.start_ms();
        for e in 0..self.entities.len() {
            for n in 0..self.entities[e].instances {
                self.entity_record(e, n, start_ms);
                self.out.stats.entity_records += 1;
                self.out.end_line(out)?;
            }
        }
        // Events draw from their own stream: the entity block does not change
        // with the number of events.
        self.rng = Rng::new(config.seed, 12);
        if self.events.is_empty() {
            return self.out.finish(out);
        }
        for i in 0..config.events {
            self.out.resend_due(i, out)?;
            let t = clock.time_of(i, &mut self.rng);
            self.event(t);
            self.out.end_line(out)?;
            if !self.updatable.is_empty() && self.rng.chance_ppm(UPDATE_PPM) {
                self.attribute_update(t);
                self.out.stats.attribute_updates += 1;
                self.out.end_line(out)?;
            }
        }
        self.out.finish(out)
    }

    fn entity_record(&mut self, e: usize, n: u64, start_ms: i64) {
        self.entity_head(e, n);
        self.out.buf.extend_from_slice(b",\"set\":{");
        let mut first = true;
        for i in 0..self.entities[e].values.len() {
            let field = &self.schema.entities[e].fields[i];
            // A nullable attribute is left out one time in twenty.
            if i == self.schema.entities[e].key || (field.nullable && self.rng.percent(5)) {
                continue;
            }
            if !first {
                self.out.buf.push(b',');
            }
            first = false;
            push_str(&mut self.out.buf, &field.name);
            self.out.buf.push(b':');
            self.value(Owner::Entity(e), i, start_ms);
        }
        self.out.buf.extend_from_slice(b"}}");
    }

    fn entity_head(&mut self, e: usize, n: u64) {
        self.out.buf.extend_from_slice(b"{\"entity\":");
        push_str(&mut self.out.buf, &self.schema.entities[e].name);
        self.out.buf.extend_from_slice(b",\"id\":");
        self.push_key(e, n);
    }

    fn event(&mut self, t: i64) {
        let start = self.out.buf.len();
        let kind = self.rng.weighted(&self.event_weights);
        let (at, form) = self.out.event_time(t, &mut self.rng);
        self.out.buf.extend_from_slice(b"{\"event\":");
        push_str(&mut self.out.buf, &self.schema.events[kind].name);
        self.out.buf.extend_from_slice(b",\"id\":\"");
        // An event's name is an identifier: its initials need no escape.
        self.out.buf.extend_from_slice(self.events[kind].id_prefix.as_bytes());
        push_u64(&mut self.out.buf, self.seed);
        self.out.buf.push(b'-');
        push_u64(&mut self.out.buf, self.events[kind].next_id);
        self.out.buf.push(b'"');
        self.events[kind].next_id += 1;
        self.out.buf.extend_from_slice(b",\"at\":");
        self.out.push_at(at, form);
        for i in 0..self.events[kind].values.len() {
            let field = &self.schema.events[kind].fields[i];
            // A nullable field is absent one time in twenty.
            if field.nullable && self.rng.percent(5) {
                continue;
            }
            self.out.buf.push(b',');
            push_str(&mut self.out.buf, &field.name);
            self.out.buf.push(b':');
            self.value(Owner::Event(kind), i, at);
        }
        self.out.buf.push(b'}');
        self.out.event_written(start, &mut self.rng);
    }

    /// One attribute of an instance set to a new value, or unset, or (one
    /// update in a hundred) the instance deleted.
    fn attribute_update(&mut self, now: i64) {
        let e = self.updatable[self.rng.below(self.updatable.len() as u64) as usize];
        let n = self.entities[e].pick.sample(&mut self.rng);
        self.entity_head(e, n);
        if self.rng.percent(1) {
            self.out.buf.extend_from_slice(b",\"delete\":true}");
            return;
        }
        let fields = &self.schema.entities[e].fields;
        let mut i = self.rng.below(fields.len() as u64 - 1) as usize;
        if i >= self.schema.entities[e].key {
            i += 1;
        }
        if fields[i].nullable && self.rng.percent(20) {
            self.out.buf.extend_from_slice(b",\"unset\":[");
            push_str(&mut self.out.buf, &fields[i].name);
            self.out.buf.extend_from_slice(b"]}");
            return;
        }
        self.out.buf.extend_from_slice(b",\"set\":{");
        push_str(&mut self.out.buf, &fields[i].name);
        self.out.buf.push(b':');
        self.value(Owner::Entity(e), i, now);
        self.out.buf.extend_from_slice(b"}}");
    }

    /// Appends a value of field `i` of `owner`; `time` is what its
    /// timestamps lie before.
    fn value(&mut self, owner: Owner, i: usize, time: i64) {
        let (field, values) = match owner {
            Owner::Entity(e) => (&self.schema.entities[e].fields[i], &self.entities[e].values[i]),
            Owner::Event(k) => (&self.schema.events[k].fields[i], &self.events[k].values[i]),
        };
        if field.nullable && self.rng.percent(5) {
            self.out.buf.extend_from_slice(b"null");
            return;
        }
        let buf = &mut self.out.buf;
        match values {
            Values::Key => unreachable!("an entity's key is written as its id"),
            Values::Bool => buf.extend_from_slice(if self.rng.percent(25) { b"true" } else { b"false" }),
            Values::Int { pick, least } => push_u64(buf, least + pick.sample(&mut self.rng)),
            Values::Decimal { pick, least } => push_cents(buf, least + pick.sample(&mut self.rng), false),
            Values::Float(max) => push_thousandths(buf, self.rng.below(max + 1)),
            Values::String { literals, field, pick } => match pick.sample(&mut self.rng) as usize {
                k if k < literals.len() => push_str(buf, &literals[k]),
                // A field's name is an identifier: nothing to escape.
                k => {
                    buf.push(b'"');
                    buf.extend_from_slice(field.as_bytes());
                    buf.push(b'_');
                    push_u64(buf, (k - literals.len() + 1) as u64);
                    buf.push(b'"');
                }
            },
            Values::Timestamp(before) => {
                let ms = time - 1 - self.rng.below(*before) as i64;
                self.out.push_timestamp(ms, true);
            }
            &Values::Ref(target) => {
                let n = self.entities[target].pick.sample(&mut self.rng);
                self.push_key(target, n);
            }
        }
    }

    /// Appends instance `n`'s key (0-based): `n + 1`, or a string of the
    /// entity's first letter and `n + 1` zero-padded.
    fn push_key(&mut self, e: usize, n: u64) {
        let entity = &self.entities[e];
        if entity.int_key {
            push_i64(&mut self.out.buf, (n + 1) as i64);
            return;
        }
        // An entity's name is an identifier: its first letter needs no escape.
        self.out.buf.push(b'"');
        self.out.buf.extend_from_slice(entity.prefix.as_bytes());
        push_padded(&mut self.out.buf, n + 1, entity.width);
        self.out.buf.push(b'"');
    }
}

#[derive(Clone, Copy)]
enum Owner {
    Entity(usize),
    Event(usize),
}

#[cfg(test)]
mod tests {
    use super::id_prefixes;
    use crate::schema::{EventSchema, Schema};

    #[test]
    fn id_prefixes_are_initials_made_distinct() {
        let event = |name: &str| EventSchema { name: name.into(), fields: vec![] };
        let schema = Schema {
            entities: vec![],
            events: ["page_view", "order", "purchase_vote", "add_to_cart", "_x"].map(event).to_vec(),
        };
        assert_eq!(id_prefixes(&schema), ["pv0_", "o", "pv2_", "atc", "x"]);
    }
}
