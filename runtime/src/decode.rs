//! Decoding NDJSON records (EQL.md §10) against the model.
//!
//! Decoding is pure: it checks every field of a record against the declared
//! types and produces a [`Record`] with typed values, or an error naming the
//! line, the field and what was expected. Nothing is interned or applied here,
//! so a batch can be validated whole before any of it takes effect.
//!
//! Values are read from the raw JSON text of each field (found by
//! [`crate::json`], or as serde_json's `RawValue` where that declines), so a
//! decimal such as `99.50` is parsed from its digits, never through `f64`.

use crate::json;
use segflow_compiler::hir::{self, EVENT_AT, EVENT_ID};
use segflow_compiler::plan::Plan;
use segflow_compiler::value::{parse_timestamp, Decimal, EntityId, Type, Value, F64};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// The fields of one JSON object in input order, each value as its JSON
/// text, borrowed from the input where possible (records are small: a linear
/// scan beats a hash map, and no field name is copied unless it has escapes).
pub struct Fields<'a>(Vec<(Cow<'a, str>, &'a str)>);

impl<'a> Fields<'a> {
    /// The fields of the JSON object `text`: read by `json::each_field`,
    /// or by serde_json when that declines (which also says what is wrong).
    pub fn parse(text: &'a str) -> Result<Fields<'a>, serde_json::Error> {
        let mut fields = Vec::with_capacity(8);
        match crate::json::each_field(text, |name, value| fields.push((Cow::Borrowed(name), value))) {
            Some(()) => Ok(Fields(fields)),
            None => serde_json::from_str(text),
        }
    }

    /// The value of `name` (the last one, if a name repeats, as JSON parsers do).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// The values of two names at once (as `get` gives each), in one pass.
    pub fn get_two(&self, first: &str, second: &str) -> (Option<&'a str>, Option<&'a str>) {
        let (mut a, mut b) = (None, None);
        for (k, v) in self.0.iter().rev() {
            if a.is_none() && k == first {
                a = Some(*v);
            } else if b.is_none() && k == second {
                b = Some(*v);
            }
        }
        (a, b)
    }
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }
    /// (name, value text) of each field, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), *v))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    fields.push((key.0, map.next_value::<&'de RawValue>()?.get()));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A field name: borrowed unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A decoded record. References hold the referenced instance's key *value*;
/// the engine interns them when it applies the record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// `row` is `[id, at, fields...]` as in the event's declaration.
    Event { event: hir::EventId, row: Vec<Value> },
    /// Set some attributes, unset others (`unset` applied after `set`).
    Upsert { entity: EntityId, key: Value, set: Vec<(usize, Value)>, unset: Vec<usize> },
    /// Remove all attributes of the instance.
    Delete { entity: EntityId, key: Value },
}

impl Record {
    /// The event time, for events.
    pub fn event_time(&self) -> Option<i64> {
        match self {
            Record::Event { row, .. } => match row[EVENT_AT] {
                Value::Timestamp(t) => Some(t),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A record that cannot be accepted: where, which field, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// 1-based line in its source (file or request body).
    pub line: usize,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}: field `{}`: {}", self.line, field, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// An accepted record with something odd about it (an unknown extra field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Decodes records against one plan's model.
pub struct Decoder {
    // Looked up by every record, by the model's own names: a fast hasher
    // (no client picks these keys).
    entities: Names<EntityId>,
    events: Names<hir::EventId>,
    model_entities: Vec<hir::Entity>,
    model_events: Vec<hir::Event>,
    /// The same names listed, for the one-pass readings (see `named`).
    entity_list: Vec<(Box<str>, EntityId)>,
    event_list: Vec<(Box<str>, hir::EventId)>,
    /// Each event's field names in quotes, as a line gives them.
    quoted_field_names: Vec<Vec<Box<[u8]>>>,
    /// Each entity's attribute names in quotes, and each one's place among
    /// them in the order of their names (the order of a record's `set`).
    quoted_attribute_names: Vec<Vec<Box<[u8]>>>,
    attribute_name_ranks: Vec<Vec<usize>>,
}

type Names<T> = HashMap<String, T, foldhash::fast::FixedState>;

/// A `set` object read in one pass: its attributes (position, value) in
/// the order of their names, as `decode_entity` gives them, and the names
/// in it that are none of the entity's, sorted and each once, as it warns
/// of them.
#[derive(Default)]
struct PlainSet<'t> {
    attributes: Vec<(usize, Value)>,
    unknown: Vec<&'t str>,
}

/// The members of an entity record; any other is warned of and ignored.
const ENTITY_MEMBERS: [&str; 5] = ["entity", "id", "set", "unset", "delete"];

/// Events before 1970 or after year 10000 are rejected: times are kept as
/// unsigned milliseconds in the dataflow.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

impl Decoder {
    pub fn new(plan: &Plan) -> Decoder {
        Decoder {
            entities: plan.entities.iter().enumerate().map(|(i, e)| (e.name.clone(), i)).collect(),
            events: plan.events.iter().enumerate().map(|(i, e)| (e.name.clone(), i)).collect(),
            model_entities: plan.entities.clone(),
            model_events: plan.events.clone(),
            entity_list: plan.entities.iter().enumerate().map(|(i, e)| (e.name.as_str().into(), i)).collect(),
            event_list: plan.events.iter().enumerate().map(|(i, e)| (e.name.as_str().into(), i)).collect(),
            quoted_field_names: plan.events.iter().map(|e| quoted_names(&e.fields)).collect(),
            quoted_attribute_names: plan.entities.iter().map(|e| quoted_names(&e.fields)).collect(),
            attribute_name_ranks: plan.entities.iter().map(|e| name_ranks(&e.fields)).collect(),
        }
    }

    /// Decodes one NDJSON line (`line` numbers the errors).
    pub fn decode_line(&self, text: &str, line: usize, warnings: &mut Vec<Warning>) -> Result<Record, DecodeError> {
        match self.plain_event(text, line, warnings).or_else(|| self.plain_entity(text, line, warnings)) {
            Some(record) => Ok(record),
            None => self.decode_line_in_full(text, line, warnings),
        }
    }

    /// An event line of the common kind, read in one pass straight into its
    /// row: `{"event":` first (no space in it), then declared fields, each
    /// at most once, every value valid, with or without spaces between
    /// them, and fields the event does not declare (each a warning, as the
    /// full reading gives it). Anything else (an entity, a repeated field,
    /// an escape in a name, a wrong value) is `None`, and
    /// `decode_line_in_full` reads it again and says what is wrong. Whatever
    /// this accepts, the full reading accepts as the same record with the
    /// same warnings (a test holds them to it), which are added to
    /// `warnings` only then. Collecting the fields first, then finding the
    /// kind, then matching each field was a third of a small model's
    /// backfill.
    ///
    /// Each field's name is first expected to be the next one declared, and
    /// each value is read by its field's type as it is met. Scanning each
    /// name and then finding it, and each value and then reading it again,
    /// `decode_line` took 945 M instructions of a 200k-event run; this way
    /// 701 M (callgrind).
    fn plain_event(&self, text: &str, line: usize, warnings: &mut Vec<Warning>) -> Option<Record> {
        let (event, mut cursor) = plain_kind(text, "{\"event\":", &self.event_list, &self.events)?;
        let ev = &self.model_events[event];
        let quoted = &self.quoted_field_names[event];
        // Fields given so far, by declared position (at most 64: more go the long way).
        if ev.fields.len() > 64 {
            return None;
        }
        let mut row: Vec<Value> = Vec::with_capacity(ev.fields.len());
        let (mut given, mut next, mut unknown) = (0u64, 0, Vec::new());
        while cursor.more_before(b'}')? {
            let i = match member_name(&mut cursor, text, &ev.fields, quoted, next)? {
                Ok(i) if given & (1 << i) == 0 => i,
                Ok(_) => return None,
                // A repeated "event", or "entity", makes it another record
                // (both are keywords, no field's name).
                Err(name) => {
                    skip_unknown(&mut cursor, name, &["event", "entity"], &mut unknown)?;
                    continue;
                }
            };
            let f = &ev.fields[i];
            place(&mut row, i, self.plain_value(&mut cursor, text, f.ty, f.nullable)?);
            given |= 1 << i;
            next = i + 1;
        }
        cursor.whitespace();
        if !cursor.at_end() {
            return None;
        }
        row.resize(ev.fields.len(), Value::Null);
        if !is_whole_event(ev, &row, given) {
            return None;
        }
        warnings.extend(unknown.into_iter().map(|name| unknown_field_of_event(line, name, ev)));
        Some(Record::Event { event, row })
    }

    /// An entity line of the common kind, read in one pass as `plain_event`
    /// reads an event: `{"entity":` first, then `id` and `set` (an object
    /// of declared attributes other than the key, each at most once), every
    /// value valid, and members and attributes not declared (warnings, as
    /// for events). Anything else (`unset`, `delete`, a repeated name, an
    /// escape in a name, a wrong value) is `None`, for `decode_line_in_full`.
    /// Whatever this accepts, the full reading accepts as the same record
    /// with the same warnings (a test holds them to it). Read the long way,
    /// each entity line took the instructions of two events.
    fn plain_entity(&self, text: &str, line: usize, warnings: &mut Vec<Warning>) -> Option<Record> {
        let (entity, mut cursor) = plain_kind(text, "{\"entity\":", &self.entity_list, &self.entities)?;
        let e = &self.model_entities[entity];
        let (mut key, mut set, mut unknown) = (None, None, Vec::new());
        while cursor.more_before(b'}')? {
            let (start, end) = cursor.string_contents()?;
            colon(&mut cursor)?;
            match text.get(start..end)? {
                "id" if key.is_none() => {
                    key = Some(self.plain_value(&mut cursor, text, self.key_type(entity), false)?)
                }
                "set" if set.is_none() => set = Some(self.plain_set(&mut cursor, text, entity)?),
                // Any other of an entity record's own (repeated, or read
                // the long way), or an event's kind.
                name if ENTITY_MEMBERS.contains(&name) || name == "event" => return None,
                name => skip_unknown(&mut cursor, name, &[], &mut unknown)?,
            }
        }
        cursor.whitespace();
        if !cursor.at_end() {
            return None;
        }
        let key = key?;
        let set = set.unwrap_or_default();
        warnings.extend(unknown.into_iter().map(|name| unknown_field_of_entity(line, name)));
        warnings.extend(set.unknown.into_iter().map(|name| unknown_attribute(line, name, e)));
        Some(Record::Upsert { entity, key, set: set.attributes, unset: Vec::new() })
    }

    /// A `set` object of `entity`'s attributes (at its `{`), read in one
    /// pass (see `PlainSet`).
    fn plain_set<'t>(&self, cursor: &mut json::Cursor<'_>, text: &'t str, entity: EntityId) -> Option<PlainSet<'t>> {
        let e = &self.model_entities[entity];
        let quoted = &self.quoted_attribute_names[entity];
        if e.fields.len() > 64 {
            return None;
        }
        cursor.eat(b'{')?;
        let mut attributes = Vec::with_capacity(e.fields.len());
        let (mut given, mut next, mut unknown) = (0u64, 0, Vec::new());
        cursor.whitespace();
        let mut more = cursor.eat(b'}').is_none();
        while more {
            match member_name(cursor, text, &e.fields, quoted, next)? {
                Ok(i) if i == e.key || given & (1 << i) != 0 => return None,
                Ok(i) => {
                    let f = &e.fields[i];
                    attributes.push((i, self.plain_value(cursor, text, f.ty, f.nullable)?));
                    given |= 1 << i;
                    next = i + 1;
                }
                Err(name) => skip_unknown(cursor, name, &[], &mut unknown)?,
            }
            more = cursor.more_before(b'}')?;
        }
        let ranks = &self.attribute_name_ranks[entity];
        attributes.sort_unstable_by_key(|&(i, _)| ranks[i]);
        unknown.sort_unstable();
        unknown.dedup();
        Some(PlainSet { attributes, unknown })
    }

    /// The value at the cursor of a field of type `ty`, read as
    /// `value_text` reads it; `None` where that says it is wrong. A string
    /// without escapes is read in place: the cursor has found its end. One
    /// with escapes (`json.dumps` writes every character past ASCII as one)
    /// is read by `value_text` from its text.
    // (Inlined: it runs for every field of every line.)
    #[inline(always)]
    fn plain_value(&self, cursor: &mut json::Cursor<'_>, text: &str, ty: Type, nullable: bool) -> Option<Value> {
        if cursor.peek() == Some(b'"') {
            let (start, end, escaped) = cursor.any_string()?;
            if escaped {
                return self.value_text(text.get(start..end)?, ty, nullable).ok();
            }
            let contents = text.get(start..end)?;
            let ty = match ty {
                Type::Ref(e) => self.key_type(e),
                ty => ty,
            };
            return match ty {
                Type::String => Some(Value::str(contents)),
                Type::Timestamp => parse_timestamp(contents).ok().map(Value::Timestamp),
                Type::Decimal => Decimal::parse(contents).ok().map(Value::Decimal),
                _ => None,
            };
        }
        let start = cursor.offset();
        cursor.scalar()?;
        self.value_text(text.get(start..cursor.offset())?, ty, nullable).ok()
    }

    /// `decode_line` without the one-pass readings.
    fn decode_line_in_full(&self, text: &str, line: usize, warnings: &mut Vec<Warning>) -> Result<Record, DecodeError> {
        let err =
            |field: Option<&str>, message: String| DecodeError { line, field: field.map(str::to_string), message };
        let object = Fields::parse(text).map_err(|e| err(None, format!("not a JSON object: {e}")))?;
        self.decode_object(&object, line, warnings)
    }

    /// Decodes a record given as a JSON object's fields.
    pub fn decode_object(
        &self,
        object: &Fields<'_>,
        line: usize,
        warnings: &mut Vec<Warning>,
    ) -> Result<Record, DecodeError> {
        let err =
            |field: Option<&str>, message: String| DecodeError { line, field: field.map(str::to_string), message };
        match object.get_two("event", "entity") {
            (Some(_), Some(_)) => Err(err(None, "a record has either \"event\" or \"entity\", not both".into())),
            (None, None) => {
                Err(err(None, "expected \"event\" (an event record) or \"entity\" (an entity record)".into()))
            }
            (Some(name), None) => {
                let name = string(name).map_err(|m| err(Some("event"), m))?;
                let Some(&event) = self.events.get(name.as_ref()) else {
                    let mut known: Vec<&str> = self.events.keys().map(String::as_str).collect();
                    known.sort();
                    return Err(err(
                        Some("event"),
                        format!("unknown event `{name}`; the model has: {}", known.join(", ")),
                    ));
                };
                self.decode_event(event, object, line, warnings)
            }
            (None, Some(name)) => {
                let name = string(name).map_err(|m| err(Some("entity"), m))?;
                let Some(&entity) = self.entities.get(name.as_ref()) else {
                    let mut known: Vec<&str> = self.entities.keys().map(String::as_str).collect();
                    known.sort();
                    return Err(err(
                        Some("entity"),
                        format!("unknown entity `{name}`; the model has: {}", known.join(", ")),
                    ));
                };
                self.decode_entity(entity, object, line, warnings)
            }
        }
    }

    fn decode_event(
        &self,
        event: hir::EventId,
        object: &Fields<'_>,
        line: usize,
        warnings: &mut Vec<Warning>,
    ) -> Result<Record, DecodeError> {
        let ev = &self.model_events[event];
        let err = |field: &str, message: String| DecodeError { line, field: Some(field.to_string()), message };
        // Each declared field's value (the last one given, as JSON parsers
        // do), found in one pass over the record. Its fields mostly come in
        // declaration order, so each name is looked for first after the last
        // one found.
        let n = ev.fields.len();
        let (mut few, mut many) = ([None; 16], Vec::new());
        let given: &mut [Option<&str>] = if n <= few.len() {
            &mut few[..n]
        } else {
            many.resize(n, None);
            &mut many
        };
        let mut unknown = Vec::new();
        let mut next = 0;
        for (name, raw) in object.iter() {
            if name == "event" {
                continue;
            }
            match field_position(&ev.fields, name, next) {
                Some(i) => {
                    given[i] = Some(raw);
                    next = i + 1;
                }
                None => unknown.push(name),
            }
        }
        let mut row = Vec::with_capacity(n);
        for (i, (f, raw)) in ev.fields.iter().zip(given.iter()).enumerate() {
            let value = match *raw {
                None if i == EVENT_AT => {
                    return Err(err(
                        "at",
                        "missing; every event needs its time (RFC 3339 or epoch milliseconds)".into(),
                    ))
                }
                None if f.nullable => Value::Null,
                None => return Err(err(&f.name, format!("missing; expected {}", self.expectation(f.ty)))),
                Some(raw) => self.value_text(raw, f.ty, f.nullable).map_err(|m| err(&f.name, m))?,
            };
            if i == EVENT_ID {
                if let Value::Str(s) = &value {
                    if s.is_empty() {
                        return Err(err("id", "must not be empty".into()));
                    }
                }
            }
            if i == EVENT_AT {
                if let Value::Timestamp(t) = value {
                    if !(0..=MAX_TIME_MS).contains(&t) {
                        return Err(err("at", "event times must lie between 1970 and 9999".into()));
                    }
                }
            }
            row.push(value);
        }
        for name in unknown {
            warnings.push(unknown_field_of_event(line, name, ev));
        }
        Ok(Record::Event { event, row })
    }

    fn decode_entity(
        &self,
        entity: EntityId,
        object: &Fields<'_>,
        line: usize,
        warnings: &mut Vec<Warning>,
    ) -> Result<Record, DecodeError> {
        let e = &self.model_entities[entity];
        let err = |field: &str, message: String| DecodeError { line, field: Some(field.to_string()), message };
        let key_field = &e.fields[e.key];
        let key = match object.get("id") {
            None => {
                return Err(err(
                    "id",
                    format!("missing; expected the key of the {} ({})", e.name, self.expectation(key_field.ty)),
                ))
            }
            Some(raw) => self.value_text(raw, key_field.ty, false).map_err(|m| err("id", m))?,
        };
        for name in object.keys() {
            if !ENTITY_MEMBERS.contains(&name) {
                warnings.push(unknown_field_of_entity(line, name));
            }
        }
        let delete = match object.get("delete") {
            None => false,
            Some(raw) => match raw {
                "true" => true,
                "false" => false,
                _ => return Err(err("delete", "expected true or false".into())),
            },
        };
        if delete {
            if object.contains_key("set") || object.contains_key("unset") {
                return Err(err("delete", "a delete cannot be combined with \"set\" or \"unset\"".into()));
            }
            return Ok(Record::Delete { entity, key });
        }
        let mut set = Vec::new();
        if let Some(raw) = object.get("set") {
            let fields = Fields::parse(raw).map_err(|_| err("set", "expected an object of attribute values".into()))?;
            let mut names: Vec<&str> = fields.keys().collect();
            names.sort();
            names.dedup();
            for name in names {
                let Some(raw) = fields.get(name) else { continue };
                // Formatted only for an error.
                let path = || format!("set.{name}");
                match e.fields.iter().position(|f| f.name == name) {
                    None => warnings.push(unknown_attribute(line, name, e)),
                    Some(i) if i == e.key => {
                        let v = self.value_text(raw, key_field.ty, false).map_err(|m| err(&path(), m))?;
                        if v != key {
                            return Err(err(&path(), "the key of an instance cannot be changed".into()));
                        }
                    }
                    Some(i) => {
                        let f = &e.fields[i];
                        let v = self.value_text(raw, f.ty, f.nullable).map_err(|m| err(&path(), m))?;
                        set.push((i, v));
                    }
                }
            }
        }
        let mut unset = Vec::new();
        if let Some(raw) = object.get("unset") {
            let names: Vec<String> =
                serde_json::from_str(raw).map_err(|_| err("unset", "expected a list of attribute names".into()))?;
            for name in names {
                match e.fields.iter().position(|f| f.name == name) {
                    None => warnings.push(Warning {
                        line,
                        message: format!("unknown attribute `{name}` of entity `{}` in \"unset\" ignored", e.name),
                    }),
                    Some(i) if i == e.key => return Err(err("unset", "the key cannot be unset".into())),
                    Some(i) if !e.fields[i].nullable => {
                        return Err(err(
                            "unset",
                            format!("`{name}` is required (declared without `?`) and cannot be unset"),
                        ))
                    }
                    Some(i) => {
                        if set.iter().any(|(j, _)| *j == i) {
                            return Err(err("unset", format!("`{name}` is both set and unset")));
                        }
                        unset.push(i);
                    }
                }
            }
        }
        Ok(Record::Upsert { entity, key, set, unset })
    }

    /// The type of the key of `entity`: what a reference to it is given as.
    fn key_type(&self, entity: EntityId) -> Type {
        let e = &self.model_entities[entity];
        e.fields[e.key].ty
    }

    fn expectation(&self, ty: Type) -> String {
        match ty {
            Type::Bool => "true or false".into(),
            Type::Int => "an integer".into(),
            Type::Float => "a number".into(),
            Type::Decimal => "a decimal (a JSON number or a string such as \"99.50\")".into(),
            Type::String => "a string".into(),
            Type::Timestamp => "a timestamp (RFC 3339 string or integer epoch milliseconds)".into(),
            Type::Ref(e) => {
                let ent = &self.model_entities[e];
                format!("the key of a {} ({})", ent.name, self.expectation(self.key_type(e)))
            }
            Type::Null => "null".into(),
        }
    }

    /// Decodes one field's raw JSON text as `ty`.
    fn value_text(&self, text: &str, ty: Type, nullable: bool) -> Result<Value, String> {
        let got = || describe(text);
        if text == "null" {
            return if nullable {
                Ok(Value::Null)
            } else {
                Err(format!("must not be null; expected {}", self.expectation(ty)))
            };
        }
        let expected = || format!("expected {}, got {}", self.expectation(ty), got());
        match ty {
            Type::Bool => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(expected()),
            },
            Type::Int => {
                if is_json_number(text) {
                    text.parse::<i64>()
                        .map(Value::Int)
                        .map_err(|_| format!("expected an integer, got {} (no fraction; at most 19 digits)", got()))
                } else {
                    Err(expected())
                }
            }
            Type::Float => {
                if is_json_number(text) {
                    text.parse::<f64>().map(|f| Value::Float(F64(f))).map_err(|_| expected())
                } else {
                    Err(expected())
                }
            }
            Type::Decimal => {
                let digits = if is_json_number(text) {
                    Cow::Borrowed(text)
                } else if text.starts_with('"') {
                    json_string(text).ok_or_else(expected)?
                } else {
                    return Err(expected());
                };
                Decimal::parse(&digits).map(Value::Decimal)
            }
            Type::String => json_string(text).map(|s| Value::str(&s)).ok_or_else(expected),
            Type::Timestamp => {
                if text.starts_with('"') {
                    let s = json_string(text).ok_or_else(expected)?;
                    parse_timestamp(&s).map(Value::Timestamp)
                } else if is_json_number(text) {
                    text.parse::<i64>().map(Value::Timestamp).map_err(|_| {
                        format!("expected {}, got {} (epoch milliseconds are an integer)", self.expectation(ty), got())
                    })
                } else {
                    Err(expected())
                }
            }
            Type::Ref(e) => {
                let key_ty = self.key_type(e);
                self.value_text(text, key_ty, false).map_err(|_| expected())
            }
            Type::Null => Err(expected()),
        }
    }
}

/// The position of the field `name` among `fields`, looked for from
/// position `next` on first: a record's fields mostly come in declaration
/// order.
fn field_position(fields: &[hir::Field], name: &str, next: usize) -> Option<usize> {
    let n = fields.len();
    (0..n).map(|k| (next + k) % n).find(|&i| fields[i].name == name)
}

/// Each field's name in quotes, as JSON gives it.
fn quoted_names(fields: &[hir::Field]) -> Vec<Box<[u8]>> {
    fields.iter().map(|f| format!("\"{}\"", f.name).into_bytes().into_boxed_slice()).collect()
}

/// Each field's place in the order of their names.
fn name_ranks(fields: &[hir::Field]) -> Vec<usize> {
    let mut by_name: Vec<usize> = (0..fields.len()).collect();
    by_name.sort_by(|&a, &b| fields[a].name.cmp(&fields[b].name));
    let mut ranks = vec![0; fields.len()];
    for (rank, &i) in by_name.iter().enumerate() {
        ranks[i] = rank;
    }
    ranks
}

/// The kind a line of the common form names first (`{"event":"order"`)
/// and the cursor after its name; `None` unless the line starts with
/// `prefix` (no space in it): a line of the other kind is not read further.
fn plain_kind<'t, T: Copy>(
    text: &'t str,
    prefix: &str,
    listed: &[(Box<str>, T)],
    names: &Names<T>,
) -> Option<(T, json::Cursor<'t>)> {
    if !text.starts_with(prefix) {
        return None;
    }
    let mut cursor = json::Cursor::new(text, prefix.len());
    cursor.whitespace();
    let (start, end) = cursor.string_contents()?;
    Some((named(listed, names, text.get(start..end)?)?, cursor))
}

/// Puts `value` at position `i` of a row being read, whose fields mostly
/// come in declared order: each pushed after the last (nulls for those
/// left out between), an earlier one put in its place.
fn place(row: &mut Vec<Value>, i: usize, value: Value) {
    if i < row.len() {
        row[i] = value;
    } else {
        if i > row.len() {
            row.resize(i, Value::Null);
        }
        row.push(value);
    }
}

/// Whether an event's row read in one pass is one the full reading
/// accepts: every field not nullable given (the time always), an id that
/// is not empty, a time between 1970 and 9999.
fn is_whole_event(ev: &hir::Event, row: &[Value], given: u64) -> bool {
    let required = ev.fields.iter().enumerate().all(|(i, f)| (f.nullable && i != EVENT_AT) || given & (1 << i) != 0);
    let id_ok = !matches!(&row[EVENT_ID], Value::Str(s) if s.is_empty());
    let at_ok = matches!(row[EVENT_AT], Value::Timestamp(t) if (0..=MAX_TIME_MS).contains(&t));
    required && id_ok && at_ok
}

/// The name of a member (at its opening quote) and the colon after it:
/// which of `fields` it is, or the name if it is none of them (`None` for
/// a name with escapes). `quoted[next]`, the one declared after the last,
/// is tried first, as one comparison; any other is read and looked up.
// (Inlined: it runs for every field of every line.)
#[inline(always)]
fn member_name<'t>(
    cursor: &mut json::Cursor<'_>,
    text: &'t str,
    fields: &[hir::Field],
    quoted: &[Box<[u8]>],
    next: usize,
) -> Option<Result<usize, &'t str>> {
    let member = match quoted.get(next) {
        Some(name) if cursor.eat_all(name) => Ok(next),
        _ => {
            let (start, end) = cursor.string_contents()?;
            let name = text.get(start..end)?;
            field_position(fields, name, next).ok_or(name)
        }
    };
    colon(cursor)?;
    Some(member)
}

/// The entity or event of a model named `name`: among a few, by comparing
/// names (mostly only their lengths differ); among many, by hashing. (A
/// hash map's lookup was a call of its own on every line.)
#[inline(always)]
fn named<T: Copy>(listed: &[(Box<str>, T)], names: &Names<T>, name: &str) -> Option<T> {
    if listed.len() <= 16 {
        listed.iter().find(|(listed, _)| **listed == *name).map(|&(_, kind)| kind)
    } else {
        names.get(name).copied()
    }
}

/// Steps over the value of a member the model does not declare, `name`,
/// kept for its warning; `None` if it is one of `refused` (which the full
/// reading takes otherwise) or its value is not read here. (Out of line:
/// declared members are the common case.)
#[cold]
fn skip_unknown<'t>(
    cursor: &mut json::Cursor<'_>,
    name: &'t str,
    refused: &[&str],
    unknown: &mut Vec<&'t str>,
) -> Option<()> {
    if refused.contains(&name) {
        return None;
    }
    cursor.skip_value()?;
    unknown.push(name);
    Some(())
}

/// The warnings of fields and attributes a record gives that the model
/// does not declare (both readings give them, from here). Their messages
/// are joined pieces, not `format!`s: a file whose every line has an
/// undeclared field makes one per line.
fn unknown_field_of_event(line: usize, name: &str, ev: &hir::Event) -> Warning {
    Warning { line, message: ["unknown field `", name, "` of event `", &ev.name, "` ignored"].concat() }
}

fn unknown_field_of_entity(line: usize, name: &str) -> Warning {
    Warning { line, message: ["unknown field `", name, "` of an entity record ignored"].concat() }
}

fn unknown_attribute(line: usize, name: &str, e: &hir::Entity) -> Warning {
    Warning { line, message: ["unknown attribute `", name, "` of entity `", &e.name, "` ignored"].concat() }
}

/// The `:` after a member's name, and any whitespace around it.
fn colon(cursor: &mut json::Cursor<'_>) -> Option<()> {
    cursor.whitespace();
    cursor.eat(b':')?;
    cursor.whitespace();
    Some(())
}

fn string(raw: &str) -> Result<Cow<'_, str>, String> {
    json_string(raw).ok_or_else(|| format!("expected a string, got {}", describe(raw)))
}

/// The contents of a JSON string given as its text, quotes included. Text
/// without escapes is its own contents, borrowed: only escapes need a JSON
/// parser (one per value was ~7% of a backfill's CPU). Raw values come from
/// the parser, which has already refused control characters.
fn json_string(text: &str) -> Option<Cow<'_, str>> {
    let contents = text.strip_prefix('"')?.strip_suffix('"')?;
    // A byte at a time: `str::contains` took ~90 instructions a string (of
    // a few bytes), and the `memchr` crate and `json::string_end` were
    // slower than this loop too.
    if contents.bytes().any(|b| b == b'\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(contents))
    }
}

fn is_json_number(text: &str) -> bool {
    text.starts_with(|c: char| c == '-' || c.is_ascii_digit())
}

/// A short description of a JSON value for messages: `true`, `"abc"`, `an object`.
fn describe(text: &str) -> String {
    match text.chars().next() {
        Some('{') => "an object".into(),
        Some('[') => "a list".into(),
        _ if text.chars().count() > 40 => format!("{}…", text.chars().take(40).collect::<String>()),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Decoder, Record, Warning};
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    const MODEL: &str = "
        entity user { key id: string; }
        entity shop { key n: int; city: string?; since: timestamp?; rating: decimal?; open: bool; owner: user?; floors: int?; }
        event buy { user: user; shop: shop?; amount: decimal; qty: int; w: float?; ok: bool?; note: string?; seen: timestamp?; }
    ";

    fn decoder() -> Decoder {
        let compiled =
            segflow_compiler::compile_str("test.eql", MODEL).unwrap_or_else(|_| panic!("the model compiles"));
        Decoder::new(&compiled.plan)
    }

    /// Values for each name, valid and not (a wrong type, an escape, null,
    /// out of range), and names that are not fields.
    fn field() -> impl Strategy<Value = (&'static str, &'static str)> {
        let pick = |name: &'static str, raws: &'static [&'static str]| {
            proptest::sample::select(raws).prop_map(move |raw| (name, raw))
        };
        prop_oneof![
            pick("event", &[r#""buy""#, r#""nope""#, "1"]),
            pick("entity", &[r#""user""#]),
            pick("id", &[r#""o-1""#, r#""o-2""#, r#""""#, "null", "5", r#""o\u002d3""#]),
            pick("at", &["1795132800000", r#""2026-11-20T00:00:00Z""#, r#""soon""#, "-5", "null", "1.5"]),
            pick("user", &[r#""u1""#, "null", "3", r#""u\"1""#]),
            pick("shop", &["7", "null", r#""x""#, "1.5", "-0"]),
            pick("amount", &[r#""2.50""#, "2.5", r#""x""#, "null", "1e2"]),
            pick("qty", &["3", "1.0", "99999999999999999999", "null", "-2"]),
            pick("w", &["0.5", r#""a""#, "null", "1e-3"]),
            pick("ok", &["true", "false", "1", "null"]),
            pick("note", &[r#""hi""#, r#""a\"b""#, "null", r#""日本""#, "[1]", "{}"]),
            pick("seen", &[r#""2026-11-20T00:00:00.123Z""#, "0", r#""2026-02-30T00:00:00Z""#]),
            pick("x", &["1", r#""y""#, r#"{"k":[1,"v"]}"#]),
        ]
    }

    /// The fields of a valid event, in any order: the required ones, and
    /// some of the others.
    fn valid_fields() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
        let one = |name: &'static str, raws: &'static [&'static str]| {
            proptest::sample::select(raws).prop_map(move |raw| (name, raw))
        };
        let maybe = |name: &'static str, raws: &'static [&'static str]| proptest::option::of(one(name, raws));
        (
            (one("at", &["1795132800000", r#""2026-11-20T00:00:00Z""#]), one("user", &[r#""u1""#, r#""u\u0032""#])),
            (one("amount", &[r#""2.50""#, "2.5", "-1"]), one("qty", &["3", "-2", "0"])),
            (maybe("id", &[r#""o-1""#, "null"]), maybe("shop", &["7", "null"]), maybe("w", &["0.5", "null"])),
            (
                maybe("ok", &["true", "null"]),
                maybe("note", &[r#""hi""#, r#""日本""#, r#""\u65e5\"\\""#]),
                maybe("seen", &["0", r#""2026-11-20T00:00:00\u005a""#]),
            ),
        )
            .prop_map(|((a, b), (c, d), (e, f, g), (h, i, j))| {
                [Some(a), Some(b), Some(c), Some(d), e, f, g, h, i, j].into_iter().flatten().collect::<Vec<_>>()
            })
            .prop_shuffle()
    }

    /// Reads `text` with the one-pass reader `plain` and in full: what the
    /// one pass accepts must be the full reading's record, with its
    /// warnings, and it must push none when it declines; `decode_line`
    /// must give what the full reading gives. Whether the one pass took the
    /// line, and whether the full reading accepted it.
    fn both_readings(
        decoder: &Decoder,
        text: &str,
        plain: fn(&Decoder, &str, usize, &mut Vec<Warning>) -> Option<Record>,
    ) -> Result<(bool, bool), TestCaseError> {
        let (mut plain_warnings, mut warnings, mut full_warnings) = (Vec::new(), Vec::new(), Vec::new());
        let full = decoder.decode_line_in_full(text, 1, &mut full_warnings);
        let took = match plain(decoder, text, 1, &mut plain_warnings) {
            Some(record) => {
                prop_assert_eq!(&full, &Ok(record), "{}", text);
                prop_assert_eq!(&plain_warnings, &full_warnings, "{}", text);
                true
            }
            None => {
                prop_assert!(plain_warnings.is_empty(), "{}", text);
                false
            }
        };
        prop_assert_eq!(decoder.decode_line(text, 1, &mut warnings), full.clone(), "{}", text);
        prop_assert_eq!(warnings, full_warnings, "{}", text);
        Ok((took, full.is_ok()))
    }

    /// Separators between members and around names, as producers write
    /// them: none, Python's `json.dumps`, and any whitespace JSON allows.
    const SPACINGS: [(&str, &str, &str); 3] = [(",", ":", ""), (", ", ": ", ""), (" ,\t", " :\n", " \r\n")];

    fn spaced_line(fields: &[(&str, &str)], (comma, colon, end): (&str, &str, &str)) -> String {
        let members: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\"{colon}{v}")).collect();
        format!("{{{}}}{end}", members.join(comma))
    }

    proptest! {
        /// What the one-pass reading accepts, the full reading accepts as
        /// the same record, with the same warnings (none pushed when it
        /// declines); a valid event with its kind first and nothing but
        /// undeclared fields besides takes the one pass; and `decode_line`
        /// gives what the full reading gives, warnings and errors alike.
        #[test]
        fn a_plain_event_is_what_the_full_reading_gives(
            kind_first in any::<bool>(),
            valid in valid_fields(),
            others in proptest::collection::vec((field(), 0..12usize), 0..3),
            spacing in proptest::sample::select(&SPACINGS[..]),
        ) {
            let decoder = decoder();
            // Fields the event does not declare, all valid JSON.
            let only_unknown = others.iter().all(|((name, _), _)| *name == "x");
            let mut all = valid;
            // Any field at all, valid or not, anywhere.
            for (other, at) in others {
                all.insert(at.min(all.len()), other);
            }
            if kind_first {
                all.insert(0, ("event", r#""buy""#));
            }
            let text = spaced_line(&all, spacing);
            let (plain, _) = both_readings(&decoder, &text, Decoder::plain_event)?;
            let kind_plainly_first = kind_first && text.starts_with("{\"event\":");
            prop_assert!(plain || !(kind_plainly_first && only_unknown), "a plain event went the long way: {}", text);
        }
    }

    /// Members of an entity line, valid and not.
    fn entity_member() -> impl Strategy<Value = (&'static str, String)> {
        let pick = |name: &'static str, raws: &'static [&'static str]| {
            proptest::sample::select(raws).prop_map(move |raw| (name, raw.to_string()))
        };
        prop_oneof![
            pick("entity", &[r#""shop""#, r#""user""#]),
            pick("event", &[r#""buy""#]),
            pick("id", &["7", r#""7""#, "null", "1.5"]),
            pick("set", &["{}", "5", r#"{"city":"x"}"#, r#"{"n":7}"#, r#"{"n":8}"#]),
            pick("unset", &[r#"["city"]"#, r#"["n"]"#, "[]"]),
            pick("delete", &["true", "false", "1"]),
            pick("x", &["1", r#"[{"k":null}]"#]),
        ]
    }

    /// Attributes of a shop's `set`, valid and not, and names that are none.
    fn attribute() -> impl Strategy<Value = (&'static str, &'static str)> {
        let pick = |name: &'static str, raws: &'static [&'static str]| {
            proptest::sample::select(raws).prop_map(move |raw| (name, raw))
        };
        prop_oneof![
            3 => pick("city", &[r#""Xi'an""#, r#""日本""#, "null", r#""a\"b""#, "3", r#""""#]),
            3 => pick("since", &[r#""2026-11-20T00:00:00Z""#, "1795132800000", r#""2026-02-30T00:00:00Z""#, "null", "-1"]),
            3 => pick("rating", &["4.5", r#""4.50""#, "null", r#""x""#, "1e2"]),
            3 => pick("open", &["true", "false", "null", "0"]),
            3 => pick("owner", &[r#""u1""#, "null", "1", "[]"]),
            3 => pick("floors", &["2", "-0", "2.5", "null", "{}"]),
            1 => pick("n", &["7", "8"]),
            1 => pick("nope", &["1", r#"{"k":[1,"v"]}"#]),
        ]
    }

    proptest! {
        /// As for events: what the one-pass reading of an entity line
        /// accepts, the full reading accepts as the same record with the
        /// same warnings; a valid line of `entity`, `id`, `set` and
        /// undeclared members takes the one pass; and `decode_line` gives
        /// what the full reading gives.
        #[test]
        fn a_plain_entity_is_what_the_full_reading_gives(
            set_first in any::<bool>(),
            with_id in prop_oneof![9 => Just(true), 1 => Just(false)],
            attributes in proptest::collection::vec(attribute(), 0..7),
            others in proptest::collection::vec((entity_member(), 0..4usize), 0..2),
            spacing in proptest::sample::select(&SPACINGS[..]),
        ) {
            let decoder = decoder();
            let (comma, colon, _) = spacing;
            let members: Vec<String> = attributes.iter().map(|(k, v)| format!("\"{k}\"{colon}{v}")).collect();
            let set = format!("{{{}}}", members.join(comma));
            let mut all = vec![("id", "7".to_string()), ("set", set)];
            if set_first {
                all.swap(0, 1);
            }
            if !with_id {
                all.retain(|(name, _)| *name != "id");
            }
            let only_unknown = others.iter().all(|((name, _), _)| *name == "x");
            for (other, at) in others {
                all.insert(at.min(all.len()), other);
            }
            all.insert(0, ("entity", r#""shop""#.to_string()));
            let fields: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let text = spaced_line(&fields, spacing);
            let (plain, valid) = both_readings(&decoder, &text, Decoder::plain_entity)?;
            let mut names: Vec<&str> = attributes.iter().map(|(k, _)| *k).collect();
            names.sort();
            let distinct = names.windows(2).all(|w| w[0] != w[1]) && !names.contains(&"n");
            prop_assert!(
                plain || !(valid && distinct && only_unknown && text.starts_with("{\"entity\":")),
                "a plain entity went the long way: {}", text
            );
        }
    }

    #[test]
    fn undeclared_members_and_attributes_of_entities_are_warned_of_as_the_full_reading_warns() {
        let decoder = decoder();
        let text = r#"{"entity":"shop","y":1,"id":7,"set":{"nope":1,"city":"a","nope":{"k":2},"aaa":true},"x":[]}"#;
        let (mut plain, mut full) = (Vec::new(), Vec::new());
        let record = decoder.plain_entity(text, 3, &mut plain).expect("read in one pass");
        assert_eq!(decoder.decode_line_in_full(text, 3, &mut full), Ok(record));
        assert_eq!(plain, full);
        let messages: Vec<String> = plain.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            messages,
            [
                "line 3: unknown field `y` of an entity record ignored",
                "line 3: unknown field `x` of an entity record ignored",
                "line 3: unknown attribute `aaa` of entity `shop` ignored",
                "line 3: unknown attribute `nope` of entity `shop` ignored",
            ]
        );
    }

    /// A model of more than 16 events (their names found by hashing) and
    /// an event of more than 64 fields (read the long way).
    #[test]
    fn many_kinds_and_many_fields_read_as_the_full_reading_reads_them() {
        let mut model = String::from("entity user { key id: string; }\n");
        for k in 0..17 {
            model.push_str(&format!("event e{k} {{ user: user; n: int; }}\n"));
        }
        let fields: Vec<String> = (0..64).map(|k| format!("f{k}: int?;")).collect();
        model.push_str(&format!("event wide {{ user: user; {} }}\n", fields.join(" ")));
        let compiled =
            segflow_compiler::compile_str("many.eql", &model).unwrap_or_else(|_| panic!("the model compiles"));
        let decoder = Decoder::new(&compiled.plan);
        for (text, plain) in [
            (r#"{"event":"e16","at":0,"user":"u1","n":2,"x":1}"#, true),
            (r#"{"event":"e0","at":0,"user":"u1","n":2}"#, true),
            (r#"{"event":"e17","at":0,"user":"u1","n":2}"#, false),
            (r#"{"event":"wide","at":0,"user":"u1","f63":5}"#, false),
        ] {
            let (took, _) = both_readings(&decoder, text, Decoder::plain_event).unwrap();
            assert_eq!(took, plain, "{text}");
        }
    }

    #[test]
    fn plain_events_take_the_one_pass_and_the_rest_the_full_reading() {
        let decoder = decoder();
        let plain = r#"{"event":"buy","id":"o-1","at":1795132800000,"user":"u1","shop":7,"amount":"2.50","qty":3,"w":0.5,"ok":true,"note":"hi","seen":"2026-11-20T00:00:00Z"}"#;
        let record = decoder.plain_event(plain, 1, &mut Vec::new()).expect("a plain event");
        let mut warnings = Vec::new();
        assert_eq!(decoder.decode_line_in_full(plain, 1, &mut warnings), Ok(record));
        let few = r#"{"event":"buy","at":"2026-11-20T00:00:00Z","amount":2.5,"qty":1,"user":"u1"}"#;
        assert!(
            matches!(decoder.plain_event(few, 1, &mut Vec::new()), Some(Record::Event { .. })),
            "fields in any order, nullable ones left out"
        );
        let python = r#"{"event": "buy", "at": "2026-11-20T00:00:00Z", "user": "u\u4e00", "amount": 2.5, "qty": 1}"#;
        let Some(Record::Event { row, .. }) = decoder.plain_event(python, 1, &mut Vec::new()) else {
            panic!("Python's json.dumps spacing and escapes take the one pass")
        };
        assert_eq!(row[2], segflow_compiler::value::Value::str("u一"));
        let extra = r#"{"event":"buy","at":0,"source":{"sdk":[2,1]},"user":"u1","amount":1,"qty":1,"x":1}"#;
        let mut warnings = Vec::new();
        assert!(decoder.plain_event(extra, 7, &mut warnings).is_some(), "undeclared fields take the one pass");
        let messages: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            messages,
            [
                "line 7: unknown field `source` of event `buy` ignored",
                "line 7: unknown field `x` of event `buy` ignored"
            ]
        );
        for other in [
            r#"{"id":"o-1","event":"buy","at":0,"user":"u1","amount":1,"qty":1}"#,
            r#"{"event":"buy","at":0,"user":"u1","amount":1,"qty":1,"qty":2}"#,
            r#"{"event":"buy","at":0,"user":"u1","amount":1,"qty":1,"event":"buy"}"#,
            r#"{"event":"buy","at":0,"user":"u1","amount":1,"qty":1,"entity":"user"}"#,
            r#"{"event":"buy","at":0,"user":"u1","amount":1}"#,
            r#"{"event":"buy","at":0,"user":"u1","amount":1,"qty":1.5}"#,
            r#"{"event":"buy","id":"","at":0,"user":"u1","amount":1,"qty":1}"#,
            r#"{"event":"buy","at":-1,"user":"u1","amount":1,"qty":1}"#,
            r#"{"event":"buy","at":0,"user":"u\u0031\x","amount":1,"qty":1}"#,
            r#"{"event":"buy","at":0,"user":"u\ud800","amount":1,"qty":1}"#,
            r#"{"event":"buy","at":0,"user":"u1\"#,
            r#"{"event":"buy","at":0,"user":"u1\\"#,
            r#"{"event":"buy","at":0,"user":"u1","amount":1,"qty":1,"\u0078":1}"#,
            r#"{"event":"buy","at":0,"us\u0065r":"u1","amount":1,"qty":1}"#,
            r#"{"entity":"user","id":"u1"}"#,
            r#"{ "event":"buy","at":0,"user":"u1","amount":1,"qty":1}"#,
        ] {
            assert_eq!(decoder.plain_event(other, 1, &mut Vec::new()), None, "{other}");
            let (mut warnings, mut full_warnings) = (Vec::new(), Vec::new());
            let full = decoder.decode_line_in_full(other, 1, &mut full_warnings);
            assert_eq!(decoder.decode_line(other, 1, &mut warnings), full, "{other}");
            assert_eq!(warnings, full_warnings, "{other}");
        }
        assert!(
            decoder
                .decode_line(r#"{"id":"o-1","event":"buy","at":0,"user":"u1","amount":1,"qty":1}"#, 1, &mut Vec::new())
                .is_ok(),
            "kind not first: valid all the same"
        );
    }
}
