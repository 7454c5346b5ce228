//! The serving state: what reads see.
//!
//! The engine publishes into it once per batch, under one write lock, after
//! every worker has finished the batch: new instances, attribute changes, tag
//! and segment changes, and the batch's time. A reader therefore sees each
//! batch entirely or not at all, and never waits on the dataflow's compute:
//! reads take a read lock on plain maps.

use crate::chunked::{ById, Shared};
use crate::column::Column;
use crate::intern::{key_in, Interner};
use crate::members::Members;
use crate::render::{output_order, sum_equal_changes, OutputUpdate, SharedRow, Time};
use foldhash::HashMap;
use segflow_compiler::hir::Def;
use segflow_compiler::plan::{Plan, ReadInput};
use segflow_compiler::value::{format_timestamp, Rfc3339, Text, Type, Value};
use serde_json::json;
use std::sync::Arc;

/// One membership change of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Index into `plan.outputs`.
    pub output: usize,
    pub key: Value,
    pub enter: bool,
    /// Logical milliseconds.
    pub time: i64,
}

// What the server's `--keep-changes` default is documented to cost a change.
const _: () = assert!(std::mem::size_of::<Change>() == 48);

#[derive(Clone, Debug, Default)]
pub struct EntityTable {
    /// Key value of each interned id, and the id of each key (in chunks and
    /// shards: growing never copies or rehashes all of them at once).
    pub keys: Interner,
    /// Current attribute rows (all declared fields; the key field holds
    /// `Ref(id)`), shared with the engine.
    pub attributes: ById<SharedRow>,
}

/// A serving state's history as `ServingState::history` copies it for a
/// snapshot.
pub struct ServingCopy {
    time: i64,
    batches: u64,
    changes: crate::snapshot::ChangeLog,
    members: Vec<SegmentMembers>,
}

/// A segment's name, each member's id and when it entered, and the keys of
/// the segment's entity by id.
struct SegmentMembers {
    name: String,
    since: Vec<(u64, i64)>,
    keys: Shared<Value>,
}

impl ServingCopy {
    /// The snapshot's part of the serving state: each segment's members
    /// by key, as at the copy.
    pub fn snapshot(self) -> crate::snapshot::ServingSnapshot {
        crate::snapshot::ServingSnapshot {
            time: self.time,
            batches: self.batches,
            changes: self.changes,
            members: self
                .members
                .into_iter()
                .map(|SegmentMembers { name, since, keys }| {
                    (name, since.into_iter().map(|(id, t)| (key_in(&keys, id), t)).collect())
                })
                .collect(),
        }
    }
}

/// What a profile of one entity shows, with its names rendered as JSON once
/// (every profile of the entity writes the same ones): tags in declaration
/// order, segments by name.
struct Layout {
    /// `{"entity":"NAME","id":`
    head: Vec<u8>,
    /// Per field, `"NAME":`.
    fields: Vec<Vec<u8>>,
    /// (output, `"NAME":`) per tag.
    tags: Vec<(usize, Vec<u8>)>,
    /// (output, `"NAME"`) per segment.
    segments: Vec<(usize, Vec<u8>)>,
}

/// A batch's output changes as the workers sent them, one or more runs from
/// each (a backfill's, one an output; each sorted in `output_order`: by
/// time, output and instance, and a worker's concatenated too), cut into
/// stretches of one time and output. Tags' changes are published stretch by
/// stretch, each column on its own (see `apply_merged`); the segments' are
/// copied out in the order of their merge, by time, output and instance,
/// which the change log shows. Working that out is done before the serving
/// state's lock is taken, so readers do not wait for it; the tags' changes
/// are not copied into one vector (a backfill's are a million, 55 MB, at the
/// peak of its memory). Each instance's changes of an output come from one
/// worker (the one its operator keeps it on), so no two runs hold equal ones,
/// and an instance's changes of a tag are in time order within its run.
pub struct MergedRuns {
    runs: Vec<Vec<OutputUpdate>>,
    /// Per run, (output, end) of each of its stretches, in order.
    stretches: Vec<Vec<(usize, usize)>>,
    /// The segments' changes, in the order they are published.
    segments: Vec<OutputUpdate>,
}

impl MergedRuns {
    /// Runs each sorted and summed (`OutputChunks::sorted` leaves a
    /// worker's so). With a `stamp`, every change takes that time instead
    /// of its own. A run of one time stays sorted, and takes it only where
    /// a change is published with its time (the segments'), not by a pass
    /// over a backfill's million. A run of more times (a stamped batch is
    /// computed at one time, so none is sent) is stamped, sorted and summed
    /// again, as the engine always did.
    pub fn new(plan: &Plan, mut runs: Vec<Vec<OutputUpdate>>, stamp: Option<Time>) -> MergedRuns {
        for run in &mut runs {
            if let (Some(stamp), Some(first), Some(last)) = (stamp, run.first(), run.last()) {
                if first.3 != last.3 {
                    run.iter_mut().for_each(|u| u.3 = stamp);
                    run.sort_unstable_by(output_order);
                    sum_equal_changes(run);
                }
            }
            debug_assert!(run.is_sorted_by(|a, b| output_order(a, b).is_le()), "a run out of order");
        }
        let stretches: Vec<Vec<(usize, usize)>> = runs
            .iter()
            .map(|run| {
                let mut ends = Vec::new();
                let mut start = 0;
                while start < run.len() {
                    let end = stretch_end(run, start);
                    ends.push((run[start].0, end));
                    start = end;
                }
                ends
            })
            .collect();
        let is_segment = |output: usize| matches!(plan.outputs[output].def, Def::Segment(_));
        // Each run's segment changes, merged by (time, output, instance).
        let mut heads: Vec<_> = stretches
            .iter()
            .map(|ends| {
                let starts = std::iter::once(0).chain(ends.iter().map(|&(_, end)| end));
                starts
                    .zip(ends)
                    .filter(|(_, &(o, _))| is_segment(o))
                    .flat_map(|(start, &(_, end))| start..end)
                    .peekable()
            })
            .collect();
        let mut segments = Vec::new();
        loop {
            let key = |r: usize, at: usize| {
                let u = &runs[r][at];
                (stamp.unwrap_or(u.3), u.0, u.1)
            };
            let next = (0..heads.len()).filter_map(|r| Some((key(r, *heads[r].peek()?), r))).min_by(|a, b| {
                debug_assert!(a.0 != b.0, "two workers changed one instance of an output");
                a.cmp(b)
            });
            let Some((_, r)) = next else { break };
            let at = heads[r].next().unwrap_or_default();
            let mut change = runs[r][at].clone();
            change.3 = stamp.unwrap_or(change.3);
            segments.push(change);
        }
        MergedRuns { runs, stretches, segments }
    }

    /// How many changes there are.
    pub fn len(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn into_first_run(self) -> Vec<OutputUpdate> {
        self.runs.into_iter().next().unwrap_or_default()
    }
}

/// Where the stretch of `run` (sorted) that starts at `start` ends: its
/// changes of one time and output. Found by doubling steps and then halving
/// them, so a short stretch costs a few comparisons and a backfill's long
/// ones a few dozen.
fn stretch_end(run: &[OutputUpdate], start: usize) -> usize {
    let first = (run[start].3, run[start].0);
    let within = |u: &OutputUpdate| (u.3, u.0) <= first;
    // run[start..low] is within the stretch.
    let (mut low, mut step) = (start + 1, 1);
    while low + step <= run.len() && within(&run[low + step - 1]) {
        low += step;
        step *= 2;
    }
    let high = (low + step - 1).min(run.len());
    low + run[low..high].partition_point(within)
}

pub struct ServingState {
    pub plan: Arc<Plan>,
    /// Logical milliseconds that the state reflects (`now` of the last batch).
    pub time: i64,
    /// Number of batches applied.
    pub batches: u64,
    pub entities: Vec<EntityTable>,
    /// Per output: tag values by instance (absent = the output's default).
    /// A tag computed on read (`OnRead`) has an empty column: read tags
    /// through `value`.
    pub columns: Vec<Column>,
    /// Per segment output: members by instance id, with the time they
    /// entered (read them by key through `member_since` and
    /// `members_in_order`).
    pub members: Vec<Members>,
    /// Membership changes in time order, the newest `keep_changes` of them
    /// (chunked, so a snapshot shares it). A change's position counts from
    /// the first ever made, so it stays the same as older ones are
    /// forgotten, and across a restart.
    pub changes: Shared<Change>,
    /// The most changes `changes` holds.
    keep_changes: usize,
    /// Per entity, what its profiles show: made from `plan` by `new`
    /// (nothing replaces the plan of a serving state).
    layouts: Vec<Layout>,
    /// The output of each definition.
    def_outputs: HashMap<Def, usize>,
}

impl ServingState {
    pub fn new(plan: Arc<Plan>) -> ServingState {
        let n = plan.outputs.len();
        ServingState {
            entities: vec![EntityTable::default(); plan.entities.len()],
            columns: vec![Column::sparse(); n],
            members: vec![Members::default(); n],
            changes: Shared::default(),
            keep_changes: usize::MAX,
            time: 0,
            batches: 0,
            layouts: (0..plan.entities.len()).map(|e| layout(&plan, e)).collect(),
            def_outputs: plan.outputs.iter().enumerate().map(|(o, output)| (output.def, o)).collect(),
            plan,
        }
    }

    /// Keeps only the newest `keep` membership changes from now on (at
    /// least one).
    pub fn keep_changes(&mut self, keep: usize) {
        self.keep_changes = keep.max(1);
        self.forget_old_changes();
    }

    /// The most membership changes kept (`keep_changes`).
    pub fn changes_kept_at_most(&self) -> usize {
        self.keep_changes
    }

    fn forget_old_changes(&mut self) {
        while self.changes.len() > self.keep_changes {
            self.changes.pop_front();
        }
    }

    /// The history part of the state, for a snapshot, copied as ids and
    /// numbers: `ServingCopy::snapshot` gives the members keys on the writer's
    /// thread, not the engine's while ingest waits (and `snapshot::write`
    /// puts them in key order there).
    pub fn history(&self) -> ServingCopy {
        ServingCopy {
            time: self.time,
            batches: self.batches,
            changes: crate::snapshot::ChangeLog {
                names: self.plan.outputs.iter().map(|o| o.name.clone()).collect(),
                changes: self.changes.clone(),
            },
            members: self
                .members
                .iter()
                .enumerate()
                .filter(|(o, _)| matches!(self.plan.outputs[*o].def, Def::Segment(_)))
                .map(|(o, m)| {
                    let output = &self.plan.outputs[o];
                    let keys = self.entities[output.entity].keys.shared_keys();
                    SegmentMembers { name: output.name.clone(), since: m.since_by_id(), keys }
                })
                .collect(),
        }
    }

    /// Puts back the change log and membership times of a snapshot taken under
    /// the same definitions (the rest of the state is recomputed from inputs).
    pub fn restore_history(&mut self, history: crate::snapshot::ServingSnapshot) {
        let plan = self.plan.clone();
        let index = |name: &str| plan.outputs.iter().position(|o| o.name == name && matches!(o.def, Def::Segment(_)));
        let crate::snapshot::ServingSnapshot { time, batches, changes: log, members } = history;
        let outputs: Vec<Option<usize>> = log.names.iter().map(|name| index(name)).collect();
        let mut changes = log.changes;
        // One pass: each change names this state's output and holds the key
        // as the entity's table does (a long key's text is then shared, not
        // held again by every change), unless a segment is gone.
        let mut carried = true;
        let entities = &self.entities;
        changes.for_each_mut(|c| match outputs[c.output] {
            Some(output) => {
                c.output = output;
                let keys = &entities[plan.outputs[output].entity].keys;
                if let Some(id) = keys.get(&c.key) {
                    c.key = keys.key(id).clone();
                }
            }
            None => carried = false,
        });
        if carried {
            self.changes = changes;
        } else {
            // A segment since dropped or renamed (the definitions changed):
            // the log does not carry over, but its ids are not reused.
            self.continue_changes_after(changes.end());
        }
        self.forget_old_changes();
        for (name, members) in &members {
            if let Some(o) = index(name) {
                let keys = &self.entities[self.plan.outputs[o].entity].keys;
                for (key, since) in members {
                    if let Some(t) = keys.get(key).and_then(|id| self.members[o].since_mut(id)) {
                        *t = *since;
                    }
                }
            }
        }
        self.time = time;
        self.batches = batches;
    }

    /// Numbers the changes held from `end` on, if they started before: a
    /// log recomputed under changed definitions follows the positions of the
    /// one it replaces, so a client's id from before names no new change.
    pub fn continue_changes_after(&mut self, end: usize) {
        if self.changes.start() < end {
            let mut renumbered = Shared::starting_at(end);
            self.changes.iter().for_each(|c| renumbered.push_back(c.clone()));
            self.changes = renumbered;
        }
    }

    /// Applies the output updates of one batch: consolidated, in time order,
    /// and within one time segment exits before entries (the order change
    /// streams show; see `apply_merged`).
    /// `updates` is left empty, its capacity kept for the next batch.
    pub fn apply_outputs(&mut self, updates: &mut Vec<OutputUpdate>) {
        updates.sort_by(output_order);
        sum_equal_changes(updates);
        let mut merged = MergedRuns::new(&self.plan, vec![std::mem::take(updates)], None);
        self.apply_merged(&mut merged);
        *updates = merged.into_first_run();
        updates.clear();
    }

    /// Applies a batch's output changes: each tag's column takes its
    /// stretches (a large batch's columns are shared among threads, see
    /// `PUBLISH_ON_THREADS`), and the segments' changes are applied in their
    /// merged order, one time at a time, exits first.
    pub fn apply_merged(&mut self, merged: &mut MergedRuns) {
        let tag_changes = merged.len() - merged.segments.len();
        let threads = match tag_changes < PUBLISH_ON_THREADS {
            true => 1,
            false => std::thread::available_parallelism().map_or(1, |n| n.get()).min(8),
        };
        self.apply_merged_on(merged, threads);
    }

    /// `apply_merged` with the tags' columns shared among `threads` threads.
    fn apply_merged_on(&mut self, merged: &mut MergedRuns, threads: usize) {
        let MergedRuns { runs, stretches, segments } = merged;
        let outputs = &self.plan.outputs;
        // Each tag's stretches, a run's in its order (so an instance's changes
        // stay in time order).
        let mut by_tag: Vec<Vec<&mut [OutputUpdate]>> = outputs.iter().map(|_| Vec::new()).collect();
        // (Which run each tag instance's changes came from: all from one,
        // or a column could take them out of time order.)
        #[cfg(debug_assertions)]
        let mut run_of: Vec<HashMap<u64, usize>> = outputs.iter().map(|_| HashMap::default()).collect();
        for (_r, (run, ends)) in runs.iter_mut().zip(stretches.iter()).enumerate() {
            let (mut rest, mut start) = (run.as_mut_slice(), 0);
            for &(output, end) in ends {
                let (stretch, after) = std::mem::take(&mut rest).split_at_mut(end - start);
                if matches!(outputs[output].def, Def::Tag(_)) {
                    #[cfg(debug_assertions)]
                    for u in stretch.iter() {
                        let from = *run_of[output].entry(u.1).or_insert(_r);
                        debug_assert_eq!(from, _r, "two workers changed one instance of a tag");
                    }
                    by_tag[output].push(stretch);
                }
                (rest, start) = (after, end);
            }
        }
        let ServingState { plan, entities, columns, members, changes, .. } = self;
        let mut segment_columns: Vec<Option<&mut Column>> = Vec::with_capacity(columns.len());
        let mut tags = Vec::new();
        for ((column, stretches), output) in columns.iter_mut().zip(by_tag).zip(&plan.outputs) {
            if matches!(output.def, Def::Tag(_)) {
                // A tag computed on read holds nothing.
                let instances = output.on_read.is_none().then(|| entities[output.entity].keys.len());
                tags.push(TagChanges { column, instances, stretches });
                segment_columns.push(None);
            } else {
                segment_columns.push(Some(column));
            }
        }
        let publish_segments = || {
            let mut segment_columns = segment_columns;
            let mut start = 0;
            while start < segments.len() {
                let time = segments[start].3;
                let end = start + segments[start..].iter().take_while(|u| u.3 == time).count();
                // Exits first: the order change streams show.
                for retractions in [true, false] {
                    for (output, id, _, time, diff) in &segments[start..end] {
                        if (*diff < 0) != retractions {
                            continue;
                        }
                        let (Some(column), out) = (&mut segment_columns[*output], &plan.outputs[*output]) else {
                            continue;
                        };
                        let key = entities[out.entity].keys.key(*id).clone();
                        let (logical, enter) = ((*time >> 16) as i64, *diff > 0);
                        if enter {
                            column.insert(*id, Value::Bool(true));
                            members[*output].insert(*id, logical);
                        } else {
                            column.remove(*id);
                            members[*output].remove(*id);
                        }
                        changes.push_back(Change { output: *output, key, enter, time: logical });
                    }
                }
                start = end;
            }
        };
        if threads < 2 {
            tags.into_iter().for_each(TagChanges::publish);
            publish_segments();
        } else {
            // The largest columns first, each to the group with the least so
            // far; the segments go with the first group.
            tags.sort_by_key(|t| std::cmp::Reverse(t.len()));
            let mut groups: Vec<(usize, Vec<TagChanges<'_>>)> = (0..threads).map(|_| (0, Vec::new())).collect();
            groups[0].0 = segments.len();
            for tag in tags {
                let least = (0..groups.len()).min_by_key(|&g| groups[g].0).unwrap_or(0);
                groups[least].0 += tag.len();
                groups[least].1.push(tag);
            }
            let mut groups = groups.into_iter().map(|(_, group)| group);
            let first = groups.next().unwrap_or_default();
            std::thread::scope(|scope| {
                for group in groups.filter(|g| !g.is_empty()) {
                    scope.spawn(move || group.into_iter().for_each(TagChanges::publish));
                }
                first.into_iter().for_each(TagChanges::publish);
                publish_segments();
            });
        }
        self.forget_old_changes();
    }

    /// When the instance keyed `key` entered segment `output`, if it is a member.
    pub fn member_since(&self, output: usize, key: &Value) -> Option<i64> {
        let id = self.entities[self.plan.outputs[output].entity].keys.get(key)?;
        self.members[output].since(id)
    }

    /// Up to `limit` members of segment `output` (all, for `None`) in key
    /// order, from the first whose key orders after `after`, with the time
    /// each entered.
    pub fn members_in_order(&self, output: usize, after: Option<&Value>, limit: Option<usize>) -> Vec<(Value, i64)> {
        let keys = &self.entities[self.plan.outputs[output].entity].keys;
        self.members[output].in_order(keys, after, limit)
    }

    /// The value of output `output` for instance `id`.
    pub fn value(&self, output: usize, id: u64) -> Value {
        let out = &self.plan.outputs[output];
        match &out.on_read {
            Some(on_read) => {
                let row: Vec<Value> = on_read.inputs.iter().map(|i| self.read_input(out.entity, id, i)).collect();
                on_read.expr.eval(&row)
            }
            None => self.columns[output].get(id).cloned().unwrap_or_else(|| out.default.clone()),
        }
    }

    /// What a tag computed on read (`OnRead`) reads of instance `id` of `entity`.
    fn read_input(&self, entity: usize, id: u64, input: &ReadInput) -> Value {
        match input {
            ReadInput::Key => self.entities[entity].keys.key_of(id).cloned().unwrap_or(Value::Null),
            ReadInput::Attribute(i) => {
                self.entities[entity].attributes.get(id).map_or(Value::Null, |row| row[*i].clone())
            }
            ReadInput::Def(def) => self.value(self.def_outputs[def], id),
            ReadInput::Follow { via, entity: target_entity, target } => match self.read_input(entity, id, via) {
                Value::Ref(target_id) => self.read_input(*target_entity, target_id, target),
                _ => Value::Null,
            },
        }
    }

    /// How many instances hold a value of output `output` other than its
    /// default; `None` for a tag computed on read, which holds none (counting
    /// its values would read every instance under the lock that publishing
    /// waits for).
    pub fn column_entries(&self, output: usize) -> Option<usize> {
        self.plan.outputs[output].on_read.is_none().then(|| self.columns[output].len())
    }

    /// An instance's profile (EQL.md §11) as a JSON object, or `None` if no
    /// record named it.
    pub fn profile(&self, entity: usize, key: &Value) -> Option<Vec<u8>> {
        let id = self.entities[entity].keys.get(key)?;
        let mut line = Vec::with_capacity(512);
        self.write_profile(&mut line, entity, id);
        Some(line)
    }

    /// Appends one profile (EQL.md §11) as a JSON object: the one renderer of
    /// profiles, for the dump and the API alike.
    fn write_profile(&self, line: &mut Vec<u8>, entity: usize, id: u64) {
        self.write_profile_with(line, entity, id, None);
    }

    /// `write_profile`, with each of the entity's segments' members as a
    /// set of ids (`Membership`) if the caller has them.
    fn write_profile_with(&self, line: &mut Vec<u8>, entity: usize, id: u64, members: Option<&[Membership]>) {
        let (ent, table, layout) = (&self.plan.entities[entity], &self.entities[entity], &self.layouts[entity]);
        line.extend_from_slice(&layout.head);
        self.write_value(line, table.keys.key(id), ent.fields[ent.key].ty);
        line.extend_from_slice(b",\"attributes\":{");
        let mut first = true;
        if let Some(row) = table.attributes.get(id) {
            for (i, f) in ent.fields.iter().enumerate() {
                if i != ent.key && !row[i].is_null() {
                    if !first {
                        line.push(b',');
                    }
                    first = false;
                    line.extend_from_slice(&layout.fields[i]);
                    self.write_value(line, &row[i], f.ty);
                }
            }
        }
        line.extend_from_slice(b"},\"tags\":{");
        for (n, (o, name)) in layout.tags.iter().enumerate() {
            if n > 0 {
                line.push(b',');
            }
            line.extend_from_slice(name);
            let output = &self.plan.outputs[*o];
            match output.on_read {
                Some(_) => self.write_value(line, &self.value(*o, id), output.ty),
                None => self.write_value(line, self.columns[*o].get(id).unwrap_or(&output.default), output.ty),
            }
        }
        line.extend_from_slice(b"},\"segments\":[");
        let mut first = true;
        for (s, (o, name)) in layout.segments.iter().enumerate() {
            let member = match members {
                Some(sets) => sets[s].contains(id),
                None => self.columns[*o].get(id).is_some(),
            };
            if member {
                if !first {
                    line.push(b',');
                }
                first = false;
                line.extend_from_slice(name);
            }
        }
        line.extend_from_slice(b"]}");
    }

    /// A value as JSON (EQL.md §11): exact numbers, RFC 3339 times, references by key.
    pub fn json_value(&self, v: &Value, ty: Type) -> serde_json::Value {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => json!(b),
            Value::Int(i) => json!(i),
            Value::Float(f) => {
                serde_json::Number::from_f64(f.0).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
            Value::Decimal(d) => exact_number(&d.to_string()),
            Value::Str(s) => json!(s.as_ref()),
            Value::Timestamp(t) => json!(format_timestamp(*t)),
            Value::Ref(id) => match ty {
                Type::Ref(e) => self.entities[e]
                    .keys
                    .key_of(*id)
                    .map_or(serde_json::Value::Null, |k| self.json_value(k, Type::String)),
                _ => json!(id),
            },
        }
    }

    /// Every membership change, one JSON line each, in time order:
    /// `{"segment":"high_value","key":"u1","change":"enter","time":"..."}`.
    pub fn write_changes(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        for c in self.changes.iter() {
            let out_def = &self.plan.outputs[c.output];
            let e = &self.plan.entities[out_def.entity];
            let line = json!({
                "segment": out_def.name,
                "key": self.json_value(&c.key, e.fields[e.key].ty),
                "change": if c.enter { "enter" } else { "exit" },
                "time": format_timestamp(c.time),
            });
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Every instance of every entity, sorted by entity name then key, one JSON line each.
    pub fn dump(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut entities: Vec<usize> = (0..self.plan.entities.len()).collect();
        entities.sort_by(|a, b| self.plan.entities[*a].name.cmp(&self.plan.entities[*b].name));
        for e in entities {
            let table = &self.entities[e];
            let keys: Vec<&Value> = table.keys.keys_from(0).collect();
            let ids = ids_in_key_order(&keys);
            // Profiles go in key order, which visits ids, and so every
            // column's slots, at random: each segment's members are made a
            // set of ids first (a bit an instance, in the cache), where a
            // lookup in each segment's table was a miss a profile; the tags'
            // slots, the key and the attributes' row of a profile a few
            // ahead are asked for meanwhile.
            let members: Vec<Membership> =
                self.layouts[e].segments.iter().map(|(o, _)| Membership::of(&self.members[*o], ids.len())).collect();
            let tags: Vec<usize> = self.layouts[e].tags.iter().map(|(o, _)| *o).collect();
            // Rendering is most of a dump's time: threads render runs of
            // profiles, each into its own buffer, and this thread writes
            // the buffers in order as they come, while later runs render.
            let runs: Vec<&[u64]> = ids.chunks(DUMP_RUN).collect();
            // A render that panics panics here: a dump is never silently short.
            crate::threads::map_in_order(
                &runs,
                threads,
                |run| {
                    let mut buffer = Vec::with_capacity(run.len() * 512);
                    for (k, &id) in run.iter().enumerate() {
                        if let Some(&ahead) = run.get(k + SLOTS_AHEAD) {
                            crate::instances::prefetch(table.keys.key(ahead));
                            table.attributes.prefetch(ahead);
                        }
                        if let Some(&ahead) = run.get(k + DUMP_AHEAD) {
                            for &o in &tags {
                                self.columns[o].prefetch(ahead);
                            }
                            // A key in a string of its own (a UUID), and the row's values.
                            if let Value::Str(key) = table.keys.key(ahead) {
                                crate::instances::prefetch_text(key);
                            }
                            if let Some(row) = table.attributes.get(ahead) {
                                crate::instances::prefetch_lines(&row[..], ROW_LINES);
                            }
                        }
                        self.write_profile_with(&mut buffer, e, id, Some(&members));
                        buffer.push(b'\n');
                    }
                    buffer
                },
                |buffer| out.write_all(&buffer),
            )?;
        }
        Ok(())
    }

    /// Appends a value as JSON, exactly as `json_value` renders it.
    fn write_value(&self, out: &mut Vec<u8>, v: &Value, ty: Type) {
        match v {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Value::Decimal(d) => d.write_to(out),
            Value::Str(s) => write_json_text(out, s),
            // Digits, dashes, colons and a dot: nothing to escape.
            Value::Timestamp(t) => {
                out.push(b'"');
                Rfc3339(*t).write_to(out);
                out.push(b'"');
            }
            // A reference as its key, as `json_value` shows it.
            Value::Ref(id) => match ty {
                Type::Ref(e) => match self.entities.get(e).and_then(|table| table.keys.key_of(*id)) {
                    Some(key) => self.write_value(out, key, Type::String),
                    None => out.extend_from_slice(b"null"),
                },
                _ => out.extend_from_slice(itoa::Buffer::new().format(*id).as_bytes()),
            },
            // As `json_value` shows it (a number, or null if not finite),
            // without making a `serde_json::Value` of it.
            Value::Float(f) if f.0.is_finite() => {
                let _ = serde_json::to_writer(&mut *out, &f.0);
            }
            Value::Float(_) => out.extend_from_slice(b"null"),
        }
    }
}

/// What a profile of `entity` shows, in the order it shows them (`Layout`).
fn layout(plan: &Plan, entity: usize) -> Layout {
    let outputs = &plan.outputs;
    let named = |name: &str, colon: bool| {
        let mut text = Vec::new();
        write_json_str(&mut text, name);
        if colon {
            text.push(b':');
        }
        text
    };
    let of = |segment: bool| {
        (0..outputs.len()).filter(move |&o| {
            let out = &outputs[o];
            out.entity == entity && !out.anonymous && matches!(out.def, Def::Segment(_)) == segment
        })
    };
    let mut segments: Vec<usize> = of(true).collect();
    segments.sort_by(|a, b| outputs[*a].name.cmp(&outputs[*b].name));
    let mut head = b"{\"entity\":".to_vec();
    head.extend(named(&plan.entities[entity].name, false));
    head.extend_from_slice(b",\"id\":");
    Layout {
        head,
        fields: plan.entities[entity].fields.iter().map(|f| named(&f.name, true)).collect(),
        tags: of(false).map(|o| (o, named(&outputs[o].name, true))).collect(),
        segments: segments.into_iter().map(|o| (o, named(&outputs[o].name, false))).collect(),
    }
}

/// Tag changes at least this many in a batch: its columns are published on
/// one thread a core (at most eight). A 1M-event backfill's ~900k took
/// 35 ms on the engine thread alone, while the cores' other threads had
/// nothing to do; a refresh's thousands take well under a millisecond, less
/// than starting a thread.
const PUBLISH_ON_THREADS: usize = 1 << 16;

/// One tag's column and its changes in a batch.
struct TagChanges<'a> {
    column: &'a mut Column,
    /// The entity's instances, to size the column (none for a tag computed
    /// on read, which holds nothing).
    instances: Option<usize>,
    /// Its stretches of changes, each in instance order; an instance's in
    /// time order.
    stretches: Vec<&'a mut [OutputUpdate]>,
}

impl TagChanges<'_> {
    fn len(&self) -> usize {
        self.stretches.iter().map(|s| s.len()).sum()
    }

    /// An instance's retraction and insertion at one time leave its slot as
    /// they would in either order (a retraction clears only the value it
    /// names). The slot PUBLISH_AHEAD changes on is asked for meanwhile, so
    /// the cache misses of scattered ids overlap with the work between. (A
    /// pass of retractions and then one of insertions had only prefetches to
    /// overlap in the first, and found the slots evicted again in the second.)
    fn publish(self) {
        let TagChanges { column, instances, stretches } = self;
        if let Some(instances) = instances {
            let incoming = stretches.iter().flat_map(|s| s.iter()).filter(|u| u.4 > 0).count();
            column.fit(instances, incoming);
        }
        for stretch in stretches {
            // A tag instance holds one value: a time inserts at most one.
            debug_assert!(
                stretch.chunk_by(|a, b| a.1 == b.1).all(|group| group.iter().filter(|u| u.4 > 0).count() <= 1),
                "a tag instance was given two values at one time"
            );
            for k in 0..stretch.len() {
                if let Some(ahead) = stretch.get(k + PUBLISH_AHEAD) {
                    column.prefetch(ahead.1);
                }
                let (_, id, value, _, diff) = &mut stretch[k];
                if *diff > 0 {
                    column.insert(*id, std::mem::take(value));
                } else if column.get(*id) == Some(value) {
                    column.remove(*id);
                }
            }
        }
    }
}

/// How many updates ahead publishing asks for a value's memory: enough to
/// cover a miss's latency with the work of the updates between.
const PUBLISH_AHEAD: usize = 8;

/// Profiles a dump thread renders at a time: the writer waits for the whole
/// first run before it writes anything, and small runs keep both threads
/// busy to the end. With in-order writing, runs of 8,192 took a 1M-event
/// dump 0.08–0.13 s against 0.07–0.09 s for 2,048 (BENCHMARKS.md,
/// thirty-eighth session).
const DUMP_RUN: usize = 2048;

/// The ids of `keys` (each key an id's, all different) in key order. Keys
/// are radix-sorted by their first eight bytes (`key_prefix`), and only ids
/// whose prefixes agree are compared whole: comparing 100k UUID keys took a
/// dump ~23 ms on one thread before its threads could start rendering.
fn ids_in_key_order(keys: &[&Value]) -> Vec<u64> {
    // Keys that came in order (generated ones do) are in order already: a
    // pass that stops at the first that is not costs less than the radix
    // sort's (0.3 against 1.7 ms for 100k).
    if keys.is_sorted() {
        return (0..keys.len() as u64).collect();
    }
    // Values of different kinds order by kind first: such keys all tie.
    let one_kind = keys.iter().all(|key| std::mem::discriminant(*key) == std::mem::discriminant(keys[0]));
    let order = crate::radix::order_by_key(keys.iter().map(|key| if one_kind { key_prefix(key) } else { 0 }));
    let mut ids: Vec<u64> = order.iter().map(|&(_, id)| id as u64).collect();
    let mut start = 0;
    for tied in order.chunk_by(|a, b| a.0 == b.0).map(<[_]>::len) {
        if tied > 1 {
            ids[start..start + tied].sort_by(|a, b| keys[*a as usize].cmp(keys[*b as usize]));
        }
        start += tied;
    }
    ids
}

/// A number that orders as `key` does among keys of its type, or ties: a
/// string's first eight bytes, zero-padded, read big-endian (a string that
/// pads to another's bytes is a prefix of it, so orders first or ties), an
/// integer with its sign bit flipped; zero for other keys, which all tie.
fn key_prefix(key: &Value) -> u64 {
    match key {
        Value::Str(s) => {
            let (bytes, mut prefix) = (s.as_bytes(), [0; 8]);
            let n = bytes.len().min(8);
            prefix[..n].copy_from_slice(&bytes[..n]);
            u64::from_be_bytes(prefix)
        }
        Value::Int(i) => (*i as u64) ^ (1 << 63),
        _ => 0,
    }
}

/// How many profiles ahead a dump asks for the tags' slots, a key's bytes
/// and an attribute row's values.
const DUMP_AHEAD: usize = 4;
/// How many profiles ahead a dump asks for the key's and the attribute
/// row's slots: each must be read, earlier, to find the memory it points to
/// (asked for `DUMP_AHEAD` ahead).
const SLOTS_AHEAD: usize = 2 * DUMP_AHEAD;
/// Cache lines of an attribute row's values asked for: the retail user's
/// seven fill three (two were measured, BENCHMARKS.md, fortieth session).
const ROW_LINES: usize = 2;

/// A segment's members as a set of instance ids, a bit each.
struct Membership(Vec<u64>);

impl Membership {
    fn of(members: &Members, instances: usize) -> Membership {
        let mut bits = vec![0u64; instances.div_ceil(64)];
        for id in members.ids() {
            if let Some(word) = bits.get_mut((id / 64) as usize) {
                *word |= 1 << (id % 64);
            }
        }
        Membership(bits)
    }

    fn contains(&self, id: u64) -> bool {
        self.0.get((id / 64) as usize).is_some_and(|word| word & (1 << (id % 64)) != 0)
    }
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A string value as `write_json_str` writes it. Most need no escape (ids,
/// names, channels): those are copied between quotes, from the bytes, where
/// the string itself (a short one's bytes checked again) and serde's writer
/// took twice as long.
fn write_json_text(out: &mut Vec<u8>, text: &Text) {
    let bytes = text.as_bytes();
    if crate::json::string_end(bytes).is_some() {
        return write_json_str(out, text);
    }
    out.push(b'"');
    out.extend_from_slice(bytes);
    out.push(b'"');
}

/// A JSON number written exactly as `text`, a valid decimal literal
/// (serde_json's `arbitrary_precision` keeps the digits, never an `f64`).
fn exact_number(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;
    use segflow_compiler::value::Decimal;

    proptest::proptest! {
        /// A string value is written as serde writes it, short or long,
        /// with escapes or without (quotes, backslashes, controls, DEL,
        /// characters of several bytes).
        #[test]
        fn strings_are_written_as_serde_writes_them(s in "[a-z\"\\\\\u{0}-\u{1f}\u{7f}é中😀 ]{0,40}") {
            let mut written = Vec::new();
            write_json_text(&mut written, &Text::new(&s));
            proptest::prop_assert_eq!(String::from_utf8(written).unwrap(), serde_json::to_string(&s).unwrap());
        }

        /// A float is written as `json_value` shows it: any bits (half the
        /// cases), and NaN, the infinities (null), -0.0, the least
        /// subnormal, 1e21 and 0.1 + 0.2 by name.
        #[test]
        fn floats_are_written_as_json_value_shows_them(bits in proptest::prelude::any::<u64>(), pick in 0usize..14) {
            let special = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e21, 5e-324, 0.1 + 0.2];
            let f = special.get(pick).copied().unwrap_or(f64::from_bits(bits));
            let (state, v) = (state(), Value::Float(segflow_compiler::value::F64(f)));
            let mut written = Vec::new();
            state.write_value(&mut written, &v, Type::Float);
            proptest::prop_assert_eq!(written, serde_json::to_vec(&state.json_value(&v, Type::Float)).unwrap());
        }
    }

    const MODEL: &str = "entity user { key id: string; }\n\
        event visit { user: user; }\n\
        tag user.visits = count(visit);\n\
        tag user.visits_again = count(visit);\n\
        segment regular on user = visits >= 2;\n";

    fn state() -> ServingState {
        let plan = segflow_compiler::compile_str("test.eql", MODEL).map_err(|(_, d)| format!("{d:?}")).unwrap().plan;
        let mut state = ServingState::new(Arc::new(plan));
        let users = &mut state.entities[0];
        for (id, key) in ["a", "b"].into_iter().enumerate() {
            assert_eq!(users.keys.intern(&Value::str(key)), (id as u64, true));
        }
        state
    }

    fn output(state: &ServingState, name: &str) -> usize {
        state.plan.outputs.iter().position(|o| o.name == name).unwrap()
    }

    /// The tags' values, the segment's members and the change log.
    type Published = (Vec<Vec<Option<Value>>>, Vec<(Value, i64)>, Vec<(usize, Value, bool, i64)>);

    fn published(state: &ServingState) -> Published {
        let regular = output(state, "regular");
        let ids = 0..state.entities[0].keys.len() as u64;
        let tags = ["visits", "visits_again"]
            .map(|tag| ids.clone().map(|id| state.columns[output(state, tag)].get(id).cloned()).collect())
            .into();
        let members = state.members_in_order(regular, None, None);
        let changes = state.changes.iter().map(|c| (c.output, c.key.clone(), c.enter, c.time)).collect();
        (tags, members, changes)
    }

    /// The log keeps the newest changes it is told to; positions stay where
    /// they were, and a snapshot's log, read back, starts where it did.
    #[test]
    fn the_change_log_keeps_its_newest_changes_at_their_positions() {
        let mut state = state();
        state.keep_changes(3);
        let regular = output(&state, "regular");
        // a enters, b enters, a leaves, b leaves, a enters: five changes.
        for (t, id, diff) in [(1u64, 0u64, 1isize), (2, 1, 1), (3, 0, -1), (4, 1, -1), (5, 0, 1)] {
            state.apply_outputs(&mut vec![(regular, id, Value::Bool(true), t << 16, diff)]);
        }
        let held = |state: &ServingState| -> Vec<(usize, Value, bool)> {
            let at = state.changes.start();
            state.changes.iter().enumerate().map(|(i, c)| (at + i, c.key.clone(), c.enter)).collect()
        };
        let (a, b) = (Value::str("a"), Value::str("b"));
        let expected = [(2, a.clone(), false), (3, b, false), (4, a.clone(), true)];
        assert_eq!(held(&state), expected);
        assert_eq!(state.changes.end(), 5);
        // Read back, the log starts at position 2; a state that keeps fewer
        // forgets the oldest as it restores them.
        let bytes = bincode::serialize(&state.history().snapshot()).unwrap();
        let mut restored = super::tests::state();
        restored.restore_history(bincode::deserialize(&bytes).unwrap());
        assert_eq!(held(&restored), expected);
        let mut fewer = super::tests::state();
        fewer.keep_changes(1);
        fewer.restore_history(bincode::deserialize(&bytes).unwrap());
        assert_eq!(held(&fewer), [(4, a.clone(), true)]);
        // A log recomputed under changed definitions goes on from the old end.
        fewer.continue_changes_after(9);
        assert_eq!(held(&fewer), [(9, a, true)]);
    }

    /// What publishing `updates` must do, written plainly: all of them
    /// sorted and summed, then time by time, retractions and then insertions.
    fn publish_plainly(state: &mut ServingState, mut updates: Vec<OutputUpdate>) {
        updates.sort_by(output_order);
        sum_equal_changes(&mut updates);
        for one_time in updates.chunk_by(|a, b| a.3 == b.3) {
            for retractions in [true, false] {
                for (output, id, value, time, diff) in one_time.iter().cloned() {
                    if (diff < 0) != retractions {
                        continue;
                    }
                    let out = &state.plan.outputs[output];
                    let (logical, enter) = ((time >> 16) as i64, diff > 0);
                    match (out.def, enter) {
                        (Def::Tag(_), true) => state.columns[output].insert(id, value),
                        (Def::Tag(_), false) if state.columns[output].get(id) == Some(&value) => {
                            state.columns[output].remove(id)
                        }
                        (Def::Tag(_), false) => {}
                        (Def::Segment(_), _) => {
                            let key = state.entities[out.entity].keys.key(id).clone();
                            if enter {
                                state.columns[output].insert(id, Value::Bool(true));
                                state.members[output].insert(id, logical);
                            } else {
                                state.columns[output].remove(id);
                                state.members[output].remove(id);
                            }
                            state.changes.push_back(Change { output, key, enter, time: logical });
                        }
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// Keys radix-sorted by their prefixes, ties compared whole, are in
        /// the order a plain sort gives: strings that share bytes, pad to
        /// each other or hold zero bytes, integers of either sign, and keys
        /// of two kinds at once.
        #[test]
        fn ids_in_key_order_are_the_keys_sorted(
            keys in proptest::collection::btree_set(
                proptest::prop_oneof![
                    proptest::collection::vec(proptest::sample::select(vec![0u8, b'a', b'b', 0xff]), 0..12)
                        .prop_map(|b| Value::str(&String::from_utf8_lossy(&b))),
                    proptest::num::i64::ANY.prop_map(Value::Int),
                ],
                0..200,
            ),
            kinds in 0..3,
            in_order in proptest::bool::ANY,
        ) {
            let mut keys: Vec<Value> = keys.into_iter().collect();
            // Both kinds, strings only, or integers only.
            keys.retain(|k| kinds == 0 || matches!(k, Value::Str(_)) == (kinds == 1));
            // In an order of their own, as ids give them, or in key order.
            keys.sort_by_key(|k| format!("{k:?}").len() * 7 % 13);
            if in_order {
                keys.sort();
            }
            let refs: Vec<&Value> = keys.iter().collect();
            let mut plain: Vec<u64> = (0..keys.len() as u64).collect();
            plain.sort_by(|a, b| keys[*a as usize].cmp(&keys[*b as usize]));
            proptest::prop_assert_eq!(super::ids_in_key_order(&refs), plain);
        }

        /// A sorted run's stretches end where a plain walk finds the
        /// (time, output) change, whatever their lengths.
        #[test]
        fn a_stretch_ends_where_its_time_and_output_do(lengths in proptest::collection::vec(1usize..70, 1..8)) {
            let mut run: Vec<OutputUpdate> = Vec::new();
            for (k, &length) in lengths.iter().enumerate() {
                let (time, output) = ((k / 3) as u64, k % 3);
                run.extend((0..length as u64).map(|id| (output, id, Value::Int(1), time, 1)));
            }
            let mut start = 0;
            for &length in &lengths {
                proptest::prop_assert_eq!(super::stretch_end(&run, start), start + length);
                start += length;
            }
        }

        /// Batches of changes to six users' two tags and segment, each
        /// instance's on one of up to three workers (by id), each worker's
        /// run sorted and summed as `OutputChunks::sorted` leaves it:
        /// published as merged runs, the tags' columns shared among up to
        /// three threads, they leave what publishing them plainly leaves,
        /// change log and its order included, stamped with one time or
        /// not. Tags change value, or lose it.
        #[test]
        fn merged_runs_publish_what_publishing_plainly_does(
            batches in proptest::collection::vec(
                (1usize..4, proptest::collection::vec((0u64..6, 0i64..5, 0u64..3, 0usize..3), 0..30)),
                1..5,
            ),
            threads in 1usize..4,
            stamped in proptest::bool::ANY,
        ) {
            let (mut by_runs, mut plainly) = (state(), state());
            for s in [&mut by_runs, &mut plainly] {
                for key in ["c", "d", "e", "f"] {
                    s.entities[0].keys.intern(&Value::str(key));
                }
            }
            let tags = [output(&by_runs, "visits"), output(&by_runs, "visits_again")];
            let regular = output(&by_runs, "regular");
            // What each instance holds now, to retract.
            let mut held: std::collections::BTreeMap<(usize, u64), Value> = Default::default();
            for (b, (workers, mut changes)) in batches.into_iter().enumerate() {
                // A batch's times in order: each change retracts what the one before left.
                changes.sort_by_key(|c| c.2);
                let mut runs = vec![Vec::new(); workers];
                for (id, v, t, which) in changes {
                    // A stamped batch is computed at one time (the engine
                    // stamps a batch on the event clock, which is).
                    let t = if stamped { 0 } else { t };
                    let time = ((b as u64) << 20) | (t << 16);
                    let segment = which == 2;
                    let (o, value) = if segment { (regular, Value::Bool(true)) } else { (tags[which], Value::Int(v)) };
                    if let Some(old) = held.remove(&(o, id)) {
                        runs[id as usize % workers].push((o, id, old, time, -1));
                    }
                    // 4 leaves the tag without a value; an odd one takes the segment's away.
                    if (!segment && v != 4) || (segment && v % 2 == 0) {
                        held.insert((o, id), value.clone());
                        runs[id as usize % workers].push((o, id, value, time, 1));
                    }
                }
                let overwrites: Vec<bool> = (0..by_runs.plan.outputs.len()).map(|o| tags.contains(&o)).collect();
                let runs: Vec<Vec<OutputUpdate>> =
                    runs.into_iter().flat_map(|run| crate::render::OutputChunks(vec![run]).sorted(&overwrites)).collect();
                // A stamp gives every change the batch's one time.
                let stamp = stamped.then_some(((b as u64) << 20) | (7 << 16));
                let plain = runs.iter().flatten().map(|u| (u.0, u.1, u.2.clone(), stamp.unwrap_or(u.3), u.4));
                publish_plainly(&mut plainly, plain.collect());
                by_runs.apply_merged_on(&mut MergedRuns::new(&by_runs.plan.clone(), runs, stamp), threads);
                proptest::prop_assert_eq!(published(&by_runs), published(&plainly));
            }
        }
    }

    /// A backfill's outputs, too many at one time for one sort (each
    /// worker's sorted into a run per output, `OutputChunks::by_output`),
    /// retractions of overwritten values among them, publish what
    /// publishing them plainly does, change log included.
    #[test]
    fn a_backfills_runs_of_one_output_each_publish_what_publishing_plainly_does() {
        let (mut by_runs, mut plainly) = (state(), state());
        let users = 40_000u64;
        for s in [&mut by_runs, &mut plainly] {
            for id in 2..users {
                s.entities[0].keys.intern(&Value::str(&format!("u{id}")));
            }
        }
        let (visits, again, regular) =
            (output(&by_runs, "visits"), output(&by_runs, "visits_again"), output(&by_runs, "regular"));
        let time = 3 << 16;
        let overwrites: Vec<bool> = (0..by_runs.plan.outputs.len()).map(|o| o != regular).collect();
        let mut chunks = vec![crate::render::OutputChunks::default(), crate::render::OutputChunks::default()];
        let mut plain = Vec::new();
        // Instances in no order, outputs interleaved, chunks of uneven sizes.
        for k in 0..users {
            let id = k * 7_919 % users;
            let mut changes = vec![(visits, id, Value::Int((id % 5) as i64), time, 1)];
            if id.is_multiple_of(5) {
                // A retraction beside the insertion, which the run drops.
                changes.push((visits, id, Value::Int(9), time, -1));
            }
            if !id.is_multiple_of(3) {
                changes.push((again, id, Value::Int((id % 7) as i64), time, 1));
            }
            if id.is_multiple_of(4) {
                changes.push((regular, id, Value::Bool(true), time, 1));
            }
            for change in changes {
                plain.push(change.clone());
                let chunks = &mut chunks[usize::from(id % 10 < 5)].0;
                if chunks.last().is_none_or(|c| c.len() >= 1_000 + (id as usize % 9_000)) {
                    chunks.push(Vec::new());
                }
                chunks.last_mut().unwrap().push(change);
            }
        }
        let runs: Vec<Vec<OutputUpdate>> = chunks.into_iter().flat_map(|c| c.sorted(&overwrites)).collect();
        assert_eq!(runs.len(), 6, "each worker's changes as a run per output");
        publish_plainly(&mut plainly, plain);
        by_runs.apply_merged_on(&mut MergedRuns::new(&by_runs.plan.clone(), runs, None), 2);
        assert_eq!(published(&by_runs), published(&plainly));
        assert_eq!(by_runs.changes.iter().count(), users.div_ceil(4) as usize);
    }

    /// A tag's column takes each run's changes in turn, which keeps an
    /// instance's changes in time order only if one worker sent them all.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "two workers changed one instance of a tag")]
    fn a_tag_instance_changed_by_two_workers_is_caught() {
        let mut state = state();
        let visits = output(&state, "visits");
        let runs = vec![vec![(visits, 0, Value::Int(1), 1 << 16, 1)], vec![(visits, 0, Value::Int(2), 2 << 16, 1)]];
        state.apply_merged_on(&mut MergedRuns::new(&state.plan.clone(), runs, None), 1);
    }

    #[test]
    fn a_tag_computed_on_read_follows_the_values_served_now() {
        let text = "entity store { key id: string; region: string?; }\n\
            entity user { key id: string; home: store?; }\n\
            event order { store: store; amount: decimal; }\n\
            tag store.revenue = sum(order.amount);\n\
            tag user.home_revenue = home.revenue;\n\
            tag user.home_region = coalesce(home.region, id);\n";
        let plan = segflow_compiler::compile_str("m.eql", text).map_err(|(_, d)| format!("{d:?}")).unwrap().plan;
        let mut state = ServingState::new(Arc::new(plan));
        for (e, keys) in [(0, ["s1", "s2"]), (1, ["a", "b"])] {
            for (id, key) in keys.into_iter().enumerate() {
                assert_eq!(state.entities[e].keys.intern(&Value::str(key)), (id as u64, true));
            }
        }
        // a's home is s2 (with a region), b has none.
        state.entities[0].attributes.insert(1, vec![Value::Ref(1), Value::str("east")].into());
        state.entities[1].attributes.insert(0, vec![Value::Ref(0), Value::Ref(1)].into());
        let (revenue, home_revenue, home_region) =
            (output(&state, "revenue"), output(&state, "home_revenue"), output(&state, "home_region"));
        // A store without revenue has the tag's default.
        assert_eq!(state.value(home_revenue, 0), Value::Decimal(Decimal::from_int(0)));
        state.apply_outputs(&mut vec![(revenue, 1, Value::Decimal(Decimal::from_int(7)), 1 << 16, 1)]);
        assert_eq!(state.value(home_revenue, 0), Value::Decimal(Decimal::from_int(7)));
        assert_eq!(state.value(home_revenue, 1), Value::Null, "no home");
        assert_eq!(state.value(home_region, 0), Value::str("east"));
        assert_eq!(state.value(home_region, 1), Value::str("b"), "the key");
        assert_eq!((state.column_entries(revenue), state.column_entries(home_revenue)), (Some(1), None));
        let profile = String::from_utf8(state.profile(1, &Value::str("a")).unwrap()).unwrap();
        assert!(profile.contains(r#""home_revenue":7,"#) && profile.contains(r#""home_region":"east""#), "{profile}");
    }

    /// The dump reads segments from bitsets of their members, the API from
    /// their columns: every dumped profile is the one the API gives, over
    /// more instances than a bitset word holds.
    #[test]
    fn a_dumps_profiles_are_the_apis() {
        let mut state = state();
        let (visits, regular) = (output(&state, "visits"), output(&state, "regular"));
        let keys: Vec<Value> = (0..200).map(|i| Value::str(&format!("u{i:03}"))).collect();
        let mut updates = Vec::new();
        for key in &keys {
            let (id, _) = state.entities[0].keys.intern(key);
            let count = (id * 7 % 5) as i64;
            updates.push((visits, id, Value::Int(count), 1 << 16, 1));
            if count >= 2 {
                updates.push((regular, id, Value::Bool(true), 1 << 16, 1));
            }
        }
        state.apply_outputs(&mut updates);
        let mut dump = Vec::new();
        state.dump(&mut dump).unwrap();
        let lines: Vec<&[u8]> = dump.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        let mut all: Vec<Value> = keys.clone();
        all.extend(["a", "b"].map(Value::str));
        all.sort();
        assert_eq!(lines.len(), all.len());
        for (line, key) in lines.iter().zip(&all) {
            assert_eq!(*line, state.profile(0, key).unwrap().as_slice(), "{key:?}");
        }
        assert!(dump.windows(9).any(|w| w == b"\"regular\""), "some are members");
    }

    #[test]
    fn outputs_consolidate_and_exits_come_first_within_a_time() {
        let mut state = state();
        let (visits, regular) = (output(&state, "visits"), output(&state, "regular"));
        let t = 5 << 16;
        state.apply_outputs(&mut vec![
            (visits, 0, Value::Int(2), t, 1),
            (regular, 0, Value::Bool(true), t, 1),
            (regular, 1, Value::Bool(true), t, 1),
        ]);
        // At the next time, a's count moves (its old value retracted after the
        // new one arrives), b leaves and a's membership is said twice and
        // taken back once: it stays.
        let t2 = 6 << 16;
        state.apply_outputs(&mut vec![
            (regular, 0, Value::Bool(true), t2, 1),
            (visits, 0, Value::Int(3), t2, 1),
            (regular, 1, Value::Bool(true), t2, -1),
            (regular, 0, Value::Bool(true), t2, -1),
            (visits, 0, Value::Int(2), t2, -1),
        ]);
        assert_eq!(state.value(visits, 0), Value::Int(3));
        assert_eq!(state.value(regular, 0), Value::Bool(true));
        assert_eq!(state.value(regular, 1), Value::Bool(false));
        let changes: Vec<(Value, bool, i64)> = state.changes.iter().map(|c| (c.key.clone(), c.enter, c.time)).collect();
        assert_eq!(changes, vec![(Value::str("a"), true, 5), (Value::str("b"), true, 5), (Value::str("b"), false, 6)]);
        // Exits before entries within one time, whatever the keys' order.
        let (t3, t4) = (7 << 16, 8 << 16);
        state.apply_outputs(&mut vec![(regular, 1, Value::Bool(true), t3, 1), (regular, 0, Value::Bool(true), t3, -1)]);
        state.apply_outputs(&mut vec![(regular, 0, Value::Bool(true), t4, 1), (regular, 1, Value::Bool(true), t4, -1)]);
        let last: Vec<(Value, bool)> = state.changes.iter().skip(3).map(|c| (c.key.clone(), c.enter)).collect();
        assert_eq!(
            last,
            vec![(Value::str("a"), false), (Value::str("b"), true), (Value::str("b"), false), (Value::str("a"), true)]
        );
        // A tag's new value that orders before its old one comes first in a
        // time's changes (by value): the old one's retraction, after it,
        // leaves the new one in place.
        let t5 = 9 << 16;
        state.apply_outputs(&mut vec![(visits, 0, Value::Int(3), t5, -1), (visits, 0, Value::Int(1), t5, 1)]);
        assert_eq!(state.value(visits, 0), Value::Int(1));
    }
}
