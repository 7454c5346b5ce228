//! The reference evaluator: EQL semantics computed from scratch, the obvious way.
//!
//! Given every record applied so far (in order) and the logical time `now`, it
//! recomputes every tag and segment of every instance by scanning the events
//! directly: no incremental state, no arrangements, no interning. The dataflow
//! must agree with it after every batch. Scalar operators are shared with the
//! engine (`ScalarExpr::eval`); everything else — windows, deduplication,
//! attribute upserts, references, aggregates and their defaults — is written
//! again here as plainly as possible.

use segflow_compiler::eval::ScalarExpr;
use segflow_compiler::hir::{AggFunc, Column, Def, Expr, ExprKind, Program, EVENT_AT, EVENT_ID};
use segflow_compiler::lower::lower_expr;
use segflow_compiler::value::{format_timestamp, Decimal, EntityId, Type, Value, F64};
use segflow_runtime::Record;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub struct World<'p> {
    program: &'p Program,
    /// Per entity: key -> attribute row (references hold key values).
    attributes: Vec<BTreeMap<Value, Vec<Value>>>,
    instances: Vec<BTreeSet<Value>>,
    /// Per event type: accepted rows (references hold key values).
    events: Vec<Vec<Vec<Value>>>,
    seen: HashSet<(usize, Value)>,
    now: i64,
}

impl<'p> World<'p> {
    pub fn new(program: &'p Program) -> Self {
        World {
            program,
            attributes: vec![BTreeMap::new(); program.entities.len()],
            instances: vec![BTreeSet::new(); program.entities.len()],
            events: vec![Vec::new(); program.events.len()],
            seen: HashSet::new(),
            now: 0,
        }
    }

    fn name(&mut self, entity: EntityId, key: &Value) {
        self.instances[entity].insert(key.clone());
    }

    /// Applies a batch; `fixed_now` overrides the event clock.
    pub fn apply(&mut self, records: &[Record], fixed_now: Option<i64>) {
        for r in records {
            match r {
                Record::Event { event, row } => {
                    if !row[EVENT_ID].is_null() && !self.seen.insert((*event, row[EVENT_ID].clone())) {
                        continue;
                    }
                    let fields = &self.program.events[*event].fields;
                    for (f, v) in fields.iter().zip(row) {
                        if let (Type::Ref(e), false) = (f.ty, v.is_null()) {
                            self.name(e, v);
                        }
                    }
                    if let Value::Timestamp(t) = row[EVENT_AT] {
                        self.now = self.now.max(t);
                    }
                    self.events[*event].push(row.clone());
                }
                Record::Upsert { entity, key, set, unset } => {
                    self.name(*entity, key);
                    let e = &self.program.entities[*entity];
                    let mut row =
                        self.attributes[*entity].get(key).cloned().unwrap_or_else(|| vec![Value::Null; e.fields.len()]);
                    for (i, v) in set {
                        if let (Type::Ref(target), false) = (e.fields[*i].ty, v.is_null()) {
                            self.instances[target].insert(v.clone());
                        }
                        row[*i] = v.clone();
                    }
                    for i in unset {
                        row[*i] = Value::Null;
                    }
                    if row.iter().all(Value::is_null) {
                        self.attributes[*entity].remove(key);
                    } else {
                        self.attributes[*entity].insert(key.clone(), row);
                    }
                }
                Record::Delete { entity, key } => {
                    self.name(*entity, key);
                    self.attributes[*entity].remove(key);
                }
            }
        }
        if let Some(t) = fixed_now {
            self.now = t;
        }
    }

    pub fn now(&self) -> i64 {
        self.now
    }

    /// The value of `column` for instance `key` of `entity`.
    fn column(
        &self,
        entity: EntityId,
        key: &Value,
        column: &Column,
        memo: &mut HashMap<(EntityId, Value, Column), Value>,
    ) -> Value {
        let memo_key = (entity, key.clone(), column.clone());
        if let Some(v) = memo.get(&memo_key) {
            return v.clone();
        }
        let e = &self.program.entities[entity];
        let v = match column {
            Column::Field(i) if *i == e.key => key.clone(),
            Column::Field(i) => self.attributes[entity].get(key).map_or(Value::Null, |r| r[*i].clone()),
            Column::Tag(t) => {
                let tag = &self.program.tags[*t];
                match &tag.expr.kind {
                    ExprKind::Aggregate(a) => self.aggregate(*a, key, memo),
                    _ => self.eval(entity, key, &tag.expr, memo),
                }
            }
            Column::Segment(s) => {
                Value::Bool(self.eval(entity, key, &self.program.segments[*s].expr, memo) == Value::Bool(true))
            }
            Column::Follow { via, entity: target, target: column } => match self.column(entity, key, via, memo) {
                Value::Null => Value::Null,
                r => self.column(*target, &r, column, memo),
            },
        };
        memo.insert(memo_key, v.clone());
        v
    }

    fn eval(
        &self,
        entity: EntityId,
        key: &Value,
        e: &Expr,
        memo: &mut HashMap<(EntityId, Value, Column), Value>,
    ) -> Value {
        let mut columns = Vec::new();
        e.visit_columns(&mut |c| columns.push(c.clone()));
        let row: Vec<Value> = columns.iter().map(|c| self.column(entity, key, c, memo)).collect();
        let scalar: ScalarExpr = lower_expr(e, &|c| columns.iter().position(|x| x == c));
        scalar.eval(&row)
    }

    /// Evaluates an expression over an event row.
    fn eval_event(&self, row: &[Value], e: &Expr, memo: &mut HashMap<(EntityId, Value, Column), Value>) -> Value {
        let mut columns = Vec::new();
        e.visit_columns(&mut |c| columns.push(c.clone()));
        let values: Vec<Value> = columns.iter().map(|c| self.event_column(row, c, memo)).collect();
        lower_expr(e, &|c| columns.iter().position(|x| x == c)).eval(&values)
    }

    fn event_column(&self, row: &[Value], c: &Column, memo: &mut HashMap<(EntityId, Value, Column), Value>) -> Value {
        match c {
            Column::Field(i) => row[*i].clone(),
            Column::Follow { via, entity, target } => match self.event_column(row, via, memo) {
                Value::Null => Value::Null,
                r => self.column(*entity, &r, target, memo),
            },
            _ => Value::Null,
        }
    }

    fn aggregate(&self, a: usize, key: &Value, memo: &mut HashMap<(EntityId, Value, Column), Value>) -> Value {
        let agg = &self.program.aggregates[a];
        let mut values: Vec<(Value, Value, Value)> = Vec::new(); // (at, id, value)
        for row in &self.events[agg.event] {
            if &row[agg.group] != key {
                continue;
            }
            let Value::Timestamp(t) = row[EVENT_AT] else { continue };
            if let Some(w) = agg.window_ms {
                if !(self.now - (w as i64) < t && t <= self.now) {
                    continue;
                }
            }
            if let Some(f) = &agg.filter {
                if self.eval_event(row, f, memo) != Value::Bool(true) {
                    continue;
                }
            }
            let v = match &agg.value {
                Some(c) => self.event_column(row, c, memo),
                None => Value::Bool(true),
            };
            if v.is_null() {
                continue;
            }
            values.push((row[EVENT_AT].clone(), row[EVENT_ID].clone(), v));
        }
        let empty = agg.func.empty_value(agg.ty);
        if values.is_empty() {
            return empty;
        }
        let units = |v: &Value| match v {
            Value::Int(i) => *i as i128 * 1_000_000,
            Value::Decimal(d) => d.0,
            _ => 0,
        };
        let vals: Vec<Value> = values.iter().map(|(_, _, v)| v.clone()).collect();
        match agg.func {
            AggFunc::Count => Value::Int(values.len() as i64),
            AggFunc::Exists => Value::Bool(true),
            AggFunc::CountDistinct => Value::Int(vals.iter().collect::<BTreeSet<_>>().len() as i64),
            AggFunc::Sum | AggFunc::Avg => match agg.value_ty {
                Some(Type::Float) => {
                    // Sum in value order, as a multiset, so float rounding matches any evaluation order.
                    let mut sorted = vals.clone();
                    sorted.sort();
                    let mut counts: Vec<(Value, i64)> = Vec::new();
                    for v in sorted {
                        match counts.last_mut() {
                            Some((last, n)) if *last == v => *n += 1,
                            _ => counts.push((v, 1)),
                        }
                    }
                    let sum: f64 =
                        counts.iter().map(|(v, n)| if let Value::Float(f) = v { f.0 * *n as f64 } else { 0.0 }).sum();
                    if agg.func == AggFunc::Sum {
                        Value::Float(F64(sum))
                    } else {
                        Value::Float(F64(sum / vals.len() as f64))
                    }
                }
                _ => {
                    let total: i128 = vals.iter().map(units).sum();
                    match (agg.func, agg.ty) {
                        (AggFunc::Sum, Type::Int) => i64::try_from(total / 1_000_000).map_or(Value::Null, Value::Int),
                        (AggFunc::Sum, _) => Value::Decimal(Decimal(total)),
                        _ => Decimal::average(total, vals.len() as i64).map_or(Value::Null, Value::Decimal),
                    }
                }
            },
            AggFunc::Min => vals.iter().min().cloned().unwrap_or(empty),
            AggFunc::Max => vals.iter().max().cloned().unwrap_or(empty),
            AggFunc::Mode => {
                let mut counts: BTreeMap<Value, usize> = BTreeMap::new();
                for v in vals {
                    *counts.entry(v).or_default() += 1;
                }
                let best = counts.values().max().copied().unwrap_or(0);
                counts.into_iter().find(|(_, n)| *n == best).map(|(v, _)| v).unwrap_or(empty)
            }
            AggFunc::First => values.iter().min().map(|(_, _, v)| v.clone()).unwrap_or(empty),
            AggFunc::Last => values.iter().max().map(|(_, _, v)| v.clone()).unwrap_or(empty),
        }
    }

    /// The profile dump (EQL.md §11), as the engine prints it.
    pub fn dump(&self) -> Vec<serde_json::Value> {
        let p = self.program;
        let mut memo = HashMap::new();
        let mut order: Vec<EntityId> = (0..p.entities.len()).collect();
        order.sort_by(|a, b| p.entities[*a].name.cmp(&p.entities[*b].name));
        let mut out = Vec::new();
        for entity in order {
            let e = &p.entities[entity];
            for key in &self.instances[entity] {
                let mut attributes = serde_json::Map::new();
                if let Some(row) = self.attributes[entity].get(key) {
                    for (i, f) in e.fields.iter().enumerate() {
                        if i != e.key && !row[i].is_null() {
                            attributes.insert(f.name.clone(), to_json(&row[i]));
                        }
                    }
                }
                let mut tags = serde_json::Map::new();
                let mut segments = Vec::new();
                for &def in &p.order {
                    match def {
                        Def::Tag(t) if p.tags[t].entity == entity && !p.tags[t].anonymous => {
                            let v = self.column(entity, key, &Column::Tag(t), &mut memo);
                            tags.insert(p.tags[t].name.clone(), to_json(&v));
                        }
                        Def::Segment(s)
                            if p.segments[s].entity == entity
                                && self.column(entity, key, &Column::Segment(s), &mut memo) == Value::Bool(true) =>
                        {
                            segments.push(p.segments[s].name.clone());
                        }
                        _ => {}
                    }
                }
                segments.sort();
                // Tags in declaration order, as the engine prints them.
                let mut ordered = serde_json::Map::new();
                for t in p.tags.iter().filter(|t| t.entity == entity && !t.anonymous) {
                    if let Some(v) = tags.get(&t.name) {
                        ordered.insert(t.name.clone(), v.clone());
                    }
                }
                out.push(json!({
                    "entity": e.name,
                    "id": to_json(key),
                    "attributes": attributes,
                    "tags": ordered,
                    "segments": segments,
                }));
            }
        }
        out
    }

    /// Members of every segment: (segment name, key).
    pub fn memberships(&self) -> BTreeSet<(String, String)> {
        let mut set = BTreeSet::new();
        for line in self.dump() {
            for s in line["segments"].as_array().into_iter().flatten() {
                set.insert((s.as_str().unwrap_or_default().to_string(), line["id"].to_string()));
            }
        }
        set
    }
}

pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => serde_json::Number::from_f64(f.0).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Decimal(d) => serde_json::from_str(&d.to_string()).unwrap_or(serde_json::Value::Null),
        Value::Str(s) => json!(s.as_ref()),
        Value::Timestamp(t) => json!(format_timestamp(*t)),
        Value::Ref(r) => json!(r),
    }
}
