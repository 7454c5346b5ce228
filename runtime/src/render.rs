//! Rendering a plan into one worker's differential dataflow.
//!
//! A straightforward walk over `plan.nodes` (already in dependency order): each
//! node becomes a few differential operators over the collections of the nodes
//! it reads. A join (`Enrich`) keeps the two sides the plan arranges per
//! referenced instance, in one operator of its own (`enriched`), which also
//! applies a filter that is its only reader (see `join_filters`). Outputs
//! (tag and segment columns) go into one sink operator that fills a buffer
//! the engine drains after each step; its (empty) output is probed, so the
//! engine knows when every output reflects a time.
//!
//! Times are `u64`: a logical millisecond shifted left by 16 bits, with the low
//! bits numbering batches within the same millisecond (see `engine`).

use crate::distinct::distinct_counts;
use crate::enriched::{enriched, Logic};
use crate::gathered::{self, kept, Projections};
use crate::intern::KeyOrder;
use crate::keyed::{by_key, by_key_of_slots, expiring, mode, running};
use crate::radix;
use crate::totals::{totals_of, SumCount};
use crate::unbeaten::Unbeaten;
use crate::values::Values;
use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::{AsCollection, VecCollection};
use segflow_compiler::eval::ScalarExpr;
use segflow_compiler::hir::AggFunc;
use segflow_compiler::plan::{GatherInput, Keep, NamedExpr, Node, Plan, Strategy};
use segflow_compiler::value::{Decimal, Type, Value, F64};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::rc::Rc;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::{Partition, Probe};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::progress::operate::FrontierInterest;
use timely::worker::Worker;

pub type Time = u64;
/// A row as the driver builds it (attributes, snapshots).
pub type Row = Vec<Value>;
/// A row inside the dataflow: shared, so the operators that keep rows and the
/// driver's pending expiries clone a pointer, not every value.
pub type SharedRow = std::sync::Arc<[Value]>;

/// One change of an output column: (output index, instance, value, time, diff).
pub type OutputUpdate = (usize, u64, Value, Time, isize);

/// A worker's output changes since the engine last took them, in pieces of
/// at most `OUTPUT_CHUNK`: one vector would be copied at every doubling and
/// could leave half of itself unused (a backfill's outputs are ~60 MB a
/// million changes).
#[derive(Default)]
pub struct OutputChunks(pub Vec<Vec<OutputUpdate>>);

const OUTPUT_CHUNK: usize = 1 << 16;

impl OutputChunks {
    /// Empty, with its first chunk's room for `changes` (at most a chunk's):
    /// a worker's next batch starts with room for as many as its last one
    /// emitted, instead of growing from 64 through every doubling.
    pub fn with_room(changes: usize) -> OutputChunks {
        match changes.min(OUTPUT_CHUNK) {
            0 => OutputChunks::default(),
            room => OutputChunks(vec![Vec::with_capacity(room)]),
        }
    }

    /// How many changes it holds.
    pub fn count(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }

    fn push(&mut self, update: OutputUpdate) {
        match self.0.last_mut() {
            Some(chunk) if chunk.len() < OUTPUT_CHUNK => chunk.push(update),
            _ => {
                let mut chunk = Vec::with_capacity(if self.0.is_empty() { 64 } else { OUTPUT_CHUNK });
                chunk.push(update);
                self.0.push(chunk);
            }
        }
    }

    /// All the changes, in runs each in `output_order` whose concatenation
    /// is too: each worker sorts its own, in parallel, so that the engine
    /// thread, which publishes, only walks them in their merged order
    /// (`state::MergedRuns`). Equal changes are summed; and of an output
    /// that `overwrites` marks (a tag column: one value per instance, which a
    /// new value replaces), an instance's retractions are dropped where a
    /// time inserts a value: a refresh changes a few tags of each instance
    /// it touches, each a retraction and an insertion, and publishing the
    /// insertion alone leaves the column as both would, for half the engine
    /// thread's work. (Each instance's changes of an output come from one
    /// worker, the one its operator keeps it on, so its retraction and
    /// insertion meet here.)
    pub fn sorted(mut self, overwrites: &[bool]) -> Vec<Vec<OutputUpdate>> {
        let mut runs = self.by_output().unwrap_or_else(|| {
            // A refresh's changes fit the first chunk: taken, not copied.
            vec![match self.0.len() {
                1 => self.0.pop().unwrap_or_default(),
                n => {
                    let mut all = Vec::with_capacity(self.0.iter().map(Vec::len).sum());
                    all.extend(self.0.drain(..n).flatten());
                    all
                }
            }]
        });
        for run in &mut runs {
            sort_in_output_order(run);
            net_output_changes(run, overwrites);
        }
        runs.retain(|run| !run.is_empty());
        runs
    }

    /// If there are many changes and all are at one time (a backfill's),
    /// takes them all, a run per output in output order. Sorting each
    /// output's changes apart is sorting all of them by output first, for a
    /// count per output and the copy out of the chunks that is made anyway:
    /// a backfill's ~450k changes a worker come as a few dozen runs, one an
    /// output, of instances in no order, and a comparison sort of all of
    /// them took 45–75 ms of each worker at the end of the run, when nothing
    /// else is left to run. One vector of all the changes, filled with
    /// placeholders before the copy, was a second copy of them, all of it
    /// resident at once, at the backfill's peak (~56 MB a million changes;
    /// BENCHMARKS.md). Now a run takes memory only as it fills, from its
    /// first change on (with the room it will need), and each chunk is
    /// freed once copied, so the chunks freed early can serve runs begun
    /// later.
    fn by_output(&mut self) -> Option<Vec<Vec<OutputUpdate>>> {
        let time = self.0.iter().flatten().next()?.3;
        let mut counts: Vec<usize> = Vec::new();
        for u in self.0.iter().flatten() {
            if u.3 != time {
                return None;
            }
            if counts.len() <= u.0 {
                counts.resize(u.0 + 1, 0);
            }
            counts[u.0] += 1;
        }
        if counts.iter().sum::<usize>() <= RADIX_MOST {
            return None;
        }
        let mut runs: Vec<Vec<OutputUpdate>> = std::iter::repeat_with(Vec::new).take(counts.len()).collect();
        while let Some(chunk) = self.0.pop() {
            for u in chunk {
                let run = &mut runs[u.0];
                if run.capacity() == 0 {
                    run.reserve_exact(counts[u.0]);
                }
                run.push(u);
            }
        }
        Some(runs)
    }
}

/// Sorts `updates` in `output_order`. A refresh's worker sorted ~7k
/// changes of 56 bytes, comparing tuples and moving the changes as it went:
/// 0.3-0.4 ms of each worker's batch, on the path the batch waits for. A
/// batch's changes are usually all at one time, and then (output, instance)
/// packs into one integer whose changing bytes (those of a few outputs' and
/// 100k instances' numbers) are radix sorted with each change's position
/// (`radix::sort_by_key`; a few are compared), and the changes are swapped
/// into that order. Only the runs of one instance's changes of an output
/// are then compared, by value. The output goes just above the greatest
/// instance's bits, not at bit 48: 100k instances and a few dozen outputs
/// then vary in three bytes, three radix passes where they took four.
/// (Changes at several times, whose output or instance does not fit the
/// packing, or too many for the cache, see `RADIX_MOST`, are sorted as
/// they are.)
pub fn sort_in_output_order(updates: &mut [OutputUpdate]) {
    let same_time = |u: &OutputUpdate| u.3 == updates[0].3;
    let greatest = updates.iter().map(|u| u.1).max().unwrap_or(0);
    let shift = u64::BITS - greatest.leading_zeros();
    let packs = |u: &OutputUpdate| (u.0 as u64).checked_shl(shift).is_some_and(|o| o >> shift == u.0 as u64);
    if updates.len() > RADIX_MOST || !updates.iter().all(|u| same_time(u) && packs(u)) {
        updates.sort_unstable_by(output_order);
        return;
    }
    let key = |u: &OutputUpdate| (u.0 as u64).checked_shl(shift).unwrap_or(0) | u.1;
    radix::sort_by_key(updates, key);
    for run in updates.chunk_by_mut(|a, b| key(a) == key(b)) {
        if run.len() > 1 {
            run.sort_unstable_by(|a, b| a.2.cmp(&b.2));
        }
    }
}

/// The most changes `sort_in_output_order` radix sorts: swapping changes into
/// place is a random access each, cheap while they fit in the cache (a
/// refresh's ~7k a worker, 0.4 MB) and dearer than a comparison sort's
/// sequential passes beyond (a backfill's ~500k a worker, 28 MB: 4.4 % of its
/// samples against ~2.5 %).
const RADIX_MOST: usize = 1 << 15;

/// The order the serving state applies a batch's changes in: by time, then
/// output and instance, then value, so that equal changes are adjacent.
/// Values are compared only within one instance's few changes (comparing
/// strings reads their allocations).
pub fn output_order(a: &OutputUpdate, b: &OutputUpdate) -> std::cmp::Ordering {
    (a.3, a.0, a.1).cmp(&(b.3, b.0, b.1)).then_with(|| a.2.cmp(&b.2))
}

/// Sums equal changes in `sorted` (in `output_order`, so equal ones are
/// adjacent) and drops those that cancel.
pub fn sum_equal_changes(sorted: &mut Vec<OutputUpdate>) {
    sorted.dedup_by(|later, kept| {
        let same = kept.0 == later.0 && kept.1 == later.1 && kept.3 == later.3 && kept.2 == later.2;
        if same {
            kept.4 += later.4;
        }
        same
    });
    sorted.retain(|u| u.4 != 0);
}

/// Sums equal changes in `sorted` and drops the retractions of an
/// overwritten output's instance at a time that inserts one of its values
/// (see `OutputChunks::sorted`).
fn net_output_changes(sorted: &mut Vec<OutputUpdate>, overwrites: &[bool]) {
    sum_equal_changes(sorted);
    let mut kept = 0;
    let mut start = 0;
    while start < sorted.len() {
        let group = |u: &OutputUpdate| (u.3, u.0, u.1);
        let end = start + sorted[start..].iter().take_while(|u| group(u) == group(&sorted[start])).count();
        let overwritten =
            overwrites.get(sorted[start].0).copied().unwrap_or(false) && sorted[start..end].iter().any(|u| u.4 > 0);
        for i in start..end {
            if !(overwritten && sorted[i].4 < 0) {
                sorted.swap(kept, i);
                kept += 1;
            }
        }
        start = end;
    }
    sorted.truncate(kept);
}

/// What the engine holds of one worker's dataflow.
pub struct WorkerDataflow {
    /// One session per plan input, in plan order.
    pub inputs: Vec<InputSession<Time, SharedRow, isize>>,
    pub probe: ProbeHandle<Time>,
    /// Output changes seen since the last drain.
    pub outputs: Rc<RefCell<OutputChunks>>,
    /// (first operator id, plan node) for each node, in order; the outputs'
    /// operators come last, under `plan.nodes.len()` (see `profile`).
    pub node_operators: Vec<(usize, usize)>,
}

type Rows<'s> = VecCollection<'s, Time, SharedRow, isize>;
type Column<'s> = VecCollection<'s, Time, (u64, Value), isize>;
type Dense<'s> = VecCollection<'s, Time, (u64, SharedRow), isize>;

/// A gather's projected slots: `(projection, value)` per instance, only the
/// values its projections keep (see `Node::Gather` in `build`).
type Slots<'s> = VecCollection<'s, Time, (u64, (u32, Value)), isize>;

/// Splits a gather's slots into one column per projection. Every change goes
/// to the one projection it is for: reading the slots once per projection
/// would copy every change to each of them (25 for the retail user gather).
fn split_slots<'s>(slots: Slots<'s>, projections: usize) -> Vec<Column<'s>> {
    slots
        .inner
        .partition::<CapacityContainerBuilder<Vec<_>>, _, _>(projections as u64, |((k, (p, v)), t, d)| {
            (p as u64, ((k, v), t, d))
        })
        .into_iter()
        .map(|stream| stream.as_collection())
        .collect()
}

#[derive(Clone)]
enum Rendered<'s> {
    Rows(Rows<'s>),
    Column(Column<'s>),
    Dense(Dense<'s>),
    /// A gather's columns, one per projection reading it, in `projections` order.
    Projected(Vec<Column<'s>>),
}

impl<'s> Rendered<'s> {
    fn rows(&self) -> Rows<'s> {
        match self {
            Rendered::Rows(r) => r.clone(),
            _ => unreachable!("plan node is not row-shaped"),
        }
    }
    fn column(&self) -> Column<'s> {
        match self {
            Rendered::Column(c) => c.clone(),
            _ => unreachable!("plan node is not a column"),
        }
    }
    fn dense(&self) -> Dense<'s> {
        match self {
            Rendered::Dense(d) => d.clone(),
            _ => unreachable!("plan node is not a gather"),
        }
    }
}

/// Whether a filter keeps `row`: its predicate is true (null counts as false).
pub(crate) fn kept_by(predicate: &ScalarExpr, row: &[Value]) -> bool {
    predicate.truth(row) == Some(true)
}

/// The row of `values` if `predicate` (if any) keeps it, made only then:
/// tested in `scratch` (left empty, its room kept for the next), then moved
/// into its one allocation.
pub(crate) fn filtered_row(
    predicate: Option<&ScalarExpr>,
    scratch: &mut Row,
    values: impl Iterator<Item = Value>,
) -> Option<SharedRow> {
    let Some(predicate) = predicate else { return Some(values.collect()) };
    scratch.clear();
    scratch.extend(values);
    if kept_by(predicate, scratch) {
        Some(scratch.drain(..).collect())
    } else {
        scratch.clear();
        None
    }
}

/// Filters that their joins apply (`enriched`'s predicate): a filter whose
/// source is a join that nothing else reads. The joined rows it would drop
/// (most of `order.product.category = "shoes"`'s) are then never made, and
/// the filter is no operator of its own.
struct JoinFilters {
    /// Per node: for a join, the predicate of the filter it applies.
    of_join: Vec<Option<ScalarExpr>>,
    /// Per node: whether it is a filter its join applies.
    fused: Vec<bool>,
}

impl JoinFilters {
    /// The node whose rows `n` passes on: its join's if it is a filter
    /// that the join applies, its own otherwise.
    fn rows_of(&self, plan: &Plan, n: usize) -> usize {
        match &plan.nodes[n] {
            Node::Filter { source, .. } if self.fused[n] => *source,
            _ => n,
        }
    }
}

fn join_filters(plan: &Plan) -> JoinFilters {
    let mut readers = vec![0usize; plan.nodes.len()];
    for node in &plan.nodes {
        for source in node.sources() {
            readers[source] += 1;
        }
    }
    for output in &plan.outputs {
        if let Some(node) = output.node {
            readers[node] += 1;
        }
    }
    let mut filters = JoinFilters { of_join: vec![None; plan.nodes.len()], fused: vec![false; plan.nodes.len()] };
    for (n, node) in plan.nodes.iter().enumerate() {
        if let Node::Filter { source, predicate } = node {
            if matches!(plan.nodes[*source], Node::Enrich { .. }) && readers[*source] == 1 {
                filters.of_join[*source] = Some(predicate.clone());
                filters.fused[n] = true;
            }
        }
    }
    filters
}

/// Per node: for a join whose rows are read only by gathers (a key and a
/// value of each row: a tag that follows a reference, `home_store.region`)
/// and by aggregates (their group, value and order fields), directly or
/// through the filter the join applies (see `join_filters`), the columns
/// they read, sorted; `None` for every other node. Such a join makes rows
/// of those columns alone (`enriched::Logic`), and its readers read them at
/// their places among those columns (`narrowed`): an order joined to its
/// product for `max(order.product.weight_kg)` is the user and the weight,
/// not the order's seven fields and the product's two, cloned into a row
/// of nine that the aggregate reads two of.
fn read_columns(plan: &Plan, join_filters: &JoinFilters) -> Vec<Option<Vec<usize>>> {
    let mut columns: Vec<Option<Vec<usize>>> =
        plan.nodes.iter().map(|node| matches!(node, Node::Enrich { .. }).then(Vec::new)).collect();
    let rows_of = |n: usize| join_filters.rows_of(plan, n);
    for (n, node) in plan.nodes.iter().enumerate() {
        let reads: Vec<(usize, Vec<usize>)> = match node {
            Node::Gather { instances, inputs, .. } => {
                columns[*instances] = None;
                inputs
                    .iter()
                    .filter_map(|input| match input {
                        // (A filter between reads nothing itself: the join
                        // tests its predicate on the whole row.)
                        GatherInput::Rows { node, key_field, field } => {
                            Some((rows_of(*node), vec![*key_field, *field]))
                        }
                        GatherInput::Column { node, .. } => {
                            columns[*node] = None;
                            None
                        }
                    })
                    .collect()
            }
            Node::Aggregate { source, group, value, order_by, .. } => {
                let fields = [Some(*group), *value, order_by.map(|o| o.0), order_by.map(|o| o.1)];
                vec![(rows_of(*source), fields.into_iter().flatten().collect())]
            }
            // Its predicate is tested on the whole joined row, before it is narrowed.
            Node::Filter { .. } if join_filters.fused[n] => Vec::new(),
            other => {
                for source in other.sources() {
                    columns[rows_of(source)] = None;
                }
                Vec::new()
            }
        };
        for (rows, read) in reads {
            if let Some(columns) = &mut columns[rows] {
                columns.extend(read);
            }
        }
    }
    for node in plan.outputs.iter().filter_map(|o| o.node).chain(plan.arrangements.iter().map(|a| a.node)) {
        columns[rows_of(node)] = None;
    }
    for read in columns.iter_mut().flatten() {
        read.sort_unstable();
        read.dedup();
    }
    columns
}

/// Where column `c` of a join's whole rows is in its narrowed rows.
fn narrowed(columns: &Option<Vec<usize>>, c: usize) -> usize {
    columns.as_ref().map_or(c, |read| read.binary_search(&c).expect("a narrowed join keeps what its readers read"))
}

/// Builds the dataflow of `plan` in `worker`.
pub fn build(worker: &mut Worker, plan: &Plan, keys: &KeyOrder) -> WorkerDataflow {
    let outputs: Rc<RefCell<OutputChunks>> = Rc::default();
    let probe = ProbeHandle::new();
    let sink = outputs.clone();
    let mut node_operators = Vec::with_capacity(plan.nodes.len() + 1);
    let inputs = worker.dataflow::<Time, _, _>(|scope| {
        let mut sessions = Vec::new();
        let mut input_collections = Vec::new();
        for _ in &plan.inputs {
            let (session, collection) = scope.new_collection::<SharedRow, isize>();
            sessions.push(session);
            input_collections.push(collection);
        }
        let mut rendered: Vec<Rendered<'_>> = Vec::with_capacity(plan.nodes.len());
        // Per node: the projections reading it, as (project node, slot, keep).
        let mut projections: Vec<Vec<(usize, usize, Keep)>> = vec![Vec::new(); plan.nodes.len()];
        for (n, node) in plan.nodes.iter().enumerate() {
            if let Node::Project { source, slot, keep } = node {
                projections[*source].push((n, *slot, *keep));
            }
        }
        let join_filters = join_filters(plan);
        let read = read_columns(plan, &join_filters);
        // The columns read of the rows `node` passes on, if its join narrows them.
        let read_of = |node: usize| &read[join_filters.rows_of(plan, node)];
        for (n, node) in plan.nodes.iter().enumerate() {
            node_operators.push((scope.worker().peek_identifier(), n));
            let r = match node {
                Node::Input { input } => Rendered::Rows(input_collections[*input].clone()),
                Node::Enrich { source, via, lookup, width, .. } => {
                    let (via, width) = (*via, *width);
                    let logic = || Logic::new(join_filters.of_join[n].clone(), read[n].clone());
                    let rows = rendered[*source].rows();
                    let referencing =
                        flat_map_rows(rows.clone(), move |row| row[via].as_ref_id().map(|instance| (instance, row)));
                    let unreferenced = logic();
                    let nulls = flat_map_rows(rows, move |row| {
                        if !row[via].is_null() {
                            return None;
                        }
                        unreferenced.unreferenced(&row, width)
                    });
                    Rendered::Rows(enriched(referencing, rendered[*lookup].dense(), logic()).concat(nulls))
                }
                // Applied by the join it reads (see `join_filters`).
                Node::Filter { source, .. } if join_filters.fused[n] => Rendered::Rows(rendered[*source].rows()),
                Node::Filter { source, predicate } => {
                    let predicate = predicate.clone();
                    Rendered::Rows(flat_map_rows(rendered[*source].rows(), move |row| {
                        kept_by(&predicate, &row).then_some(row)
                    }))
                }
                Node::Aggregate { source, group, func, value, order_by, ty, strategy } => {
                    let at = |c: usize| narrowed(read_of(*source), c);
                    Rendered::Column(aggregate(
                        rendered[*source].rows(),
                        keys,
                        at(*group),
                        *func,
                        value.map(at),
                        order_by.map(|(t, id)| (at(t), at(id))),
                        *ty,
                        *strategy,
                    ))
                }
                Node::Gather { inputs, exprs, .. } if stateless_gather(plan, n, inputs, exprs, &projections[n]) => {
                    let GatherInput::Column { node, .. } = &inputs[0] else { unreachable!("checked") };
                    let exprs: Vec<ScalarExpr> = exprs.iter().map(|e| e.expr.clone()).collect();
                    let kept_slots: Vec<(usize, Keep)> = projections[n].iter().map(|p| (p.1, p.2)).collect();
                    let count = kept_slots.len();
                    // One row buffer, reused for every change.
                    let mut row = Row::new();
                    let slots = rendered[*node].column().flat_map(move |(key, value): (u64, Value)| {
                        derive_row(&mut row, [Value::Null, value], &exprs);
                        kept_slots
                            .iter()
                            .enumerate()
                            .filter_map(|(j, &(slot, keep))| {
                                let v = row.get(slot).unwrap_or(&Value::Null);
                                kept(keep, v).then(|| (key, (j as u32, v.clone())))
                            })
                            .collect::<Vec<_>>()
                    });
                    Rendered::Projected(split_slots(slots, count))
                }
                Node::Gather { instances, inputs, exprs, .. } => {
                    // Slot `i` comes from input `i` of the gather's operator.
                    let mut slots = Vec::with_capacity(inputs.len() + 1);
                    slots.push(flat_map_rows(rendered[*instances].rows(), |row| {
                        let key = row[0].as_ref_id()?;
                        Some((key, row[1].clone()))
                    }));
                    let mut defaults = vec![Value::Null];
                    for input in inputs {
                        match input {
                            GatherInput::Column { node, default } => {
                                defaults.push(default.clone());
                                slots.push(rendered[*node].column());
                            }
                            GatherInput::Rows { node, key_field, field } => {
                                defaults.push(Value::Null);
                                let read = read_of(*node);
                                let (kf, f) = (narrowed(read, *key_field), narrowed(read, *field));
                                slots.push(flat_map_rows(rendered[*node].rows(), move |row| {
                                    let key = row[kf].as_ref_id()?;
                                    let v = row[f].clone();
                                    (!v.is_null()).then_some((key, v))
                                }));
                            }
                        }
                    }
                    let exprs: Vec<_> = exprs.iter().map(|e| e.expr.clone()).collect();
                    // A gather read only by projections (tags and segments, not a
                    // lookup of a join) outputs just the values they keep, one per
                    // (instance, projection): a change then carries the slots that
                    // changed, not a retraction and re-insertion of the whole row.
                    let dense_needed = plan.arrangements.iter().any(|a| a.node == n && a.key_field.is_none());
                    if dense_needed {
                        // One row buffer per gather, reused for every instance it recomputes.
                        let buffer = RefCell::new(Row::new());
                        Rendered::Dense(by_key_of_slots(slots, "Gather", move |input, output: &mut Vec<SharedRow>| {
                            let mut row = buffer.borrow_mut();
                            if gather_row(&defaults, &exprs, input, &mut row) {
                                output.push(SharedRow::from(row.as_slice()));
                            }
                        }))
                    } else {
                        let reads: Vec<(usize, Keep)> = projections[n].iter().map(|p| (p.1, p.2)).collect();
                        let count = reads.len();
                        let projected = gathered::projected(slots, "Gather", Projections::new(defaults, exprs, reads));
                        Rendered::Projected(split_slots(projected, count))
                    }
                }
                Node::Project { source, slot, keep } => {
                    let (slot, keep) = (*slot, *keep);
                    match &rendered[*source] {
                        Rendered::Projected(columns) => {
                            let j = projections[*source].iter().position(|p| p.0 == n).unwrap_or(0);
                            Rendered::Column(columns[j].clone())
                        }
                        _ => Rendered::Column(rendered[*source].dense().flat_map(move |(k, row): (u64, SharedRow)| {
                            let v = row.get(slot).cloned().unwrap_or(Value::Null);
                            kept(keep, &v).then_some((k, v))
                        })),
                    }
                }
                Node::ColumnRows { source } => {
                    Rendered::Rows(rendered[*source].column().map(|(k, v)| SharedRow::from(vec![Value::Ref(k), v])))
                }
            };
            rendered.push(r);
        }
        node_operators.push((scope.worker().peek_identifier(), plan.nodes.len()));
        let columns: Vec<(Option<usize>, Column<'_>)> = plan
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(index, output)| Some(((!output.anonymous).then_some(index), rendered[output.node?].column())))
            .collect();
        if columns.is_empty() {
            for c in &input_collections {
                c.clone().probe_with(&probe);
            }
        } else {
            sink_outputs(scope, columns, sink).probe_with(&probe);
        }
        sessions
    });
    WorkerDataflow { inputs, probe, outputs, node_operators }
}

/// One operator that takes every output column's changes into `sink`
/// (`Some(index)`; anonymous outputs are only waited for) and whose output,
/// which carries nothing, is complete for a time once every column is: the
/// engine probes it. (An inspect and a probe per column, as before, were
/// two operators per column, each scheduled and tracked at every batch.)
fn sink_outputs<'s>(
    scope: timely::dataflow::Scope<'s, Time>,
    columns: Vec<(Option<usize>, Column<'s>)>,
    sink: Rc<RefCell<OutputChunks>>,
) -> timely::dataflow::Stream<'s, Time, Vec<()>> {
    let mut builder = OperatorBuilder::new("Outputs".to_string(), scope);
    let mut inputs: Vec<_> =
        columns.into_iter().map(|(index, column)| (index, builder.new_input(column.inner, Pipeline))).collect();
    // It holds no capability and reads no frontier: scheduled only for data.
    for i in 0..inputs.len() {
        builder.set_notify_for(i, FrontierInterest::Never);
    }
    let (_output, done) = builder.new_output::<Vec<()>>();
    builder.build(move |_capabilities| {
        move |_frontiers| {
            let mut sink = sink.borrow_mut();
            for (index, input) in inputs.iter_mut() {
                input.for_each(|_time, updates| match *index {
                    Some(index) => {
                        for ((key, value), time, diff) in updates.drain(..) {
                            sink.push((index, key, value, time, diff));
                        }
                    }
                    None => updates.clear(),
                });
            }
        }
    });
    done
}

/// Writes into `row` a gather's row for one instance from its `(slot, value)`
/// inputs: slot 0 is the instance itself (it sorts first; without it there is
/// no instance, and the answer is false), the inputs' slots hold their values
/// or defaults, then each expression in turn.
pub(crate) fn gather_row(
    defaults: &[Value],
    exprs: &[ScalarExpr],
    input: &Values<(u32, Value)>,
    row: &mut Row,
) -> bool {
    if input.first().is_none_or(|first| first.0 .0 != 0) {
        return false;
    }
    row.clear();
    row.extend_from_slice(defaults);
    for ((slot, value), count) in input.iter() {
        if count > 0 {
            row[*slot as usize] = value.clone();
        }
    }
    push_exprs(row, exprs);
    true
}

/// Whether gather `n` can be computed without state: its one input is a
/// column, its expressions do not read the instance's key, it is read only by
/// projections, and those keep nothing for an instance without a value (the
/// column's default). Then each change of the column maps to changes of the
/// projections, and no instance's row is kept: every instance in a column is
/// an instance (its instance row was sent when it was interned, no later
/// than the first value any column has for it), and one without a value has nothing kept.
/// `segment big_spenders on user = spend_30d > 500` is one.
fn stateless_gather(
    plan: &Plan,
    n: usize,
    inputs: &[GatherInput],
    exprs: &[NamedExpr],
    projections: &[(usize, usize, Keep)],
) -> bool {
    let [GatherInput::Column { default, .. }] = inputs else { return false };
    let exprs: Vec<ScalarExpr> = exprs.iter().map(|e| e.expr.clone()).collect();
    let mut reads_key = false;
    exprs.iter().for_each(|e| e.visit_slots(&mut |slot| reads_key |= slot == 0));
    let mut row = Row::new();
    derive_row(&mut row, [Value::Null, default.clone()], &exprs);
    let keeps_default = projections.iter().any(|&(_, slot, keep)| kept(keep, row.get(slot).unwrap_or(&Value::Null)));
    let read_whole = plan.arrangements.iter().any(|a| a.node == n);
    !reads_key && !keeps_default && !read_whole && !projections.is_empty()
}

/// Makes `row` the `slots` followed by each expression's value in turn.
fn derive_row(row: &mut Row, slots: [Value; 2], exprs: &[ScalarExpr]) {
    row.clear();
    row.extend(slots);
    push_exprs(row, exprs);
}

/// Appends each expression's value to `row`, each reading the ones before.
pub(crate) fn push_exprs(row: &mut Row, exprs: &[ScalarExpr]) {
    for e in exprs {
        let v = e.eval(row);
        row.push(v);
    }
}

/// Decimal units (10^-6) of a numeric value, for running totals (`totals`).
fn units(v: &Value) -> i128 {
    match v {
        Value::Int(i) => *i as i128 * 1_000_000,
        Value::Decimal(d) => d.0,
        _ => 0,
    }
}

/// The entities whose references some aggregate orders by value, by entity.
pub fn ordered_references(plan: &Plan) -> Vec<bool> {
    let mut ordered = vec![false; plan.entities.len()];
    for node in &plan.nodes {
        if let Node::Aggregate { func, ty, strategy, .. } = node {
            if let Some(e) = ordered_reference(*func, *ty, *strategy) {
                ordered[e] = true;
            }
        }
    }
    ordered
}

/// The entity of the references an aggregate picks one of by their order
/// (min, max, and mode's ties), which is their keys' order, not their ids'.
fn ordered_reference(func: AggFunc, ty: Type, strategy: Strategy) -> Option<usize> {
    match (func, ty, strategy) {
        (AggFunc::Min | AggFunc::Max | AggFunc::Mode, Type::Ref(e), Strategy::Values | Strategy::Running) => Some(e),
        _ => None,
    }
}

/// An aggregate's input: the rows whose group reference and aggregated value
/// are not null (the others do not count).
struct Counted<'s> {
    rows: Rows<'s>,
    group: usize,
    value: Option<usize>,
}

/// Whether `row` counts for an aggregate grouped by `group` over `value`:
/// neither is null.
fn counts(row: &SharedRow, group: usize, value: Option<usize>) -> bool {
    !row[group].is_null() && value.is_none_or(|v| !row[v].is_null())
}

impl<'s> Counted<'s> {
    /// `count`, `sum`, `avg` or `exists` of the rows that count, each read
    /// by the totals operator itself (`totals_of`): no map before it.
    fn totals(self, func: AggFunc, ty: Type) -> Column<'s> {
        let Counted { rows, group, value } = self;
        let instance = move |row: &SharedRow| match &row[group] {
            // A row that counts for no one is dropped where it lands: those
            // are spread by their address, not all sent to one worker (45 %
            // of page views name no product).
            Value::Null => (std::sync::Arc::as_ptr(row) as *const Value as usize >> 4) as u64,
            group => group.as_ref_id().unwrap_or(0),
        };
        let counted = move |row: SharedRow| {
            counts(&row, group, value).then(|| SumCount { sum: value.map_or(0, |v| units(&row[v])), count: 1 })
        };
        totals_of(rows, instance, counted, move |acc: SumCount| {
            let v = match func {
                AggFunc::Count => Value::Int(acc.count),
                AggFunc::Exists => Value::Bool(acc.count > 0),
                // An int sum that does not fit an int is null (overflow never wraps).
                AggFunc::Sum if ty == Type::Int => i64::try_from(acc.sum / 1_000_000).map_or(Value::Null, Value::Int),
                AggFunc::Sum => Value::Decimal(Decimal(acc.sum)),
                AggFunc::Avg => Decimal::average(acc.sum, acc.count).map_or(Value::Null, Value::Decimal),
                _ => Value::Null,
            };
            (acc.count > 0).then_some(v)
        })
    }

    /// `f` of each row that counts: one operator, the check and `f` together.
    fn map<D: differential_dataflow::Data>(
        self,
        f: impl Fn(SharedRow) -> D + 'static,
    ) -> VecCollection<'s, Time, D, isize> {
        let (group, value) = (self.group, self.value);
        flat_map_rows(self.rows, move |row| counts(&row, group, value).then(|| f(row)))
    }

    /// `map`, and only of rows that the worker cannot tell are beaten by
    /// their integer rank in `rank_field` (`greatest` or least wins): one
    /// operator, the check, the drop and `f` together (see `unbeaten`). Only
    /// ranks of one variant are compared, a timestamp's or an int's: within
    /// one, values order as their integers (every timestamp orders after
    /// every int, so ranking both together would not), and a value of the
    /// other variant passes.
    fn map_unbeaten<D: differential_dataflow::Data>(
        self,
        (rank_field, timestamp, greatest): (usize, bool, bool),
        f: impl Fn(SharedRow) -> D + 'static,
    ) -> VecCollection<'s, Time, D, isize> {
        let (group, value) = (self.group, self.value);
        let instance = move |row: &SharedRow| row[group].as_ref_id().unwrap_or(0);
        // The best rank of a row's instance is asked for a few rows ahead,
        // as its row is (a table of a word an instance: 800 KB for 100k users).
        let peek = move |unbeaten: &Unbeaten, row: &SharedRow| unbeaten.prefetch(instance(row));
        let admit = move |unbeaten: &mut Unbeaten, (row, time, diff): (SharedRow, Time, isize)| {
            let counts = counts(&row, group, value);
            let rank = match row[rank_field] {
                Value::Int(i) if !timestamp => Some(i),
                Value::Timestamp(t) if timestamp => Some(t),
                _ => None,
            };
            // (An insert-only input has no retraction; one would pass.)
            let admitted = counts && (diff <= 0 || unbeaten.admits(instance(&row), rank, time));
            admitted.then(|| (f(row), time, diff))
        };
        map_updates_ahead(self.rows, Unbeaten::new(greatest), peek, admit)
    }
}

/// `flat_map` of rows (each to at most one item, at its time and
/// multiplicity), each row asked for a few rows ahead (`map_updates_ahead`).
fn flat_map_rows<'s, D: differential_dataflow::Data>(
    rows: Rows<'s>,
    f: impl Fn(SharedRow) -> Option<D> + 'static,
) -> VecCollection<'s, Time, D, isize> {
    let f = move |_: &mut (), (row, time, diff): (SharedRow, Time, isize)| f(row).map(|d| (d, time, diff));
    map_updates_ahead(rows, (), |_, _| {}, f)
}

/// A flat map of rows that asks for each row's memory `ROWS_AHEAD` rows
/// before `f` reads it (a container's first ones before the first), and
/// shows `peek` the row `PEEK_AHEAD` on (asked for earlier), for `f`'s
/// state of its own to be asked for too. A row
/// was made by the engine thread, on another core, and the first read of
/// each was a cache miss of its own (`as_ref_id` and `Unbeaten::admits`,
/// 3-5 % of the workers' samples in a backfill).
fn map_updates_ahead<'s, S: 'static, D: differential_dataflow::Data>(
    rows: Rows<'s>,
    mut state: S,
    peek: impl Fn(&S, &SharedRow) + 'static,
    mut f: impl FnMut(&mut S, (SharedRow, Time, isize)) -> Option<(D, Time, isize)> + 'static,
) -> VecCollection<'s, Time, D, isize> {
    use timely::dataflow::operators::generic::Operator;
    rows.inner
        .unary::<CapacityContainerBuilder<Vec<(D, Time, isize)>>, _, _, _>(Pipeline, "MapRows", move |_, _| {
            move |input, output| {
                input.for_each_stamp(|cap, containers| {
                    let mut session = output.session(&cap);
                    for container in containers {
                        for (row, _, _) in container.iter().take(ROWS_AHEAD) {
                            ask_for_row(row);
                        }
                        let mut updates = container.drain(..);
                        while let Some(update) = updates.next() {
                            // What is left starts at the next update.
                            let rest = updates.as_slice();
                            if let Some((ahead, _, _)) = rest.get(ROWS_AHEAD - 1) {
                                ask_for_row(ahead);
                            }
                            if let Some((near, _, _)) = rest.get(PEEK_AHEAD - 1) {
                                peek(&state, near);
                            }
                            if let Some(out) = f(&mut state, update) {
                                session.give(out);
                            }
                        }
                    }
                });
            }
        })
        .as_collection()
}

/// How many rows ahead of the one `f` takes `map_updates_ahead` asks for one.
const ROWS_AHEAD: usize = 12;
/// How many rows ahead of the one `f` takes `map_updates_ahead` shows one
/// to `peek` (asked for `ROWS_AHEAD - PEEK_AHEAD` rows before).
const PEEK_AHEAD: usize = 6;
/// Cache lines of a row's values asked for: an order's seven fill three.
const ROW_LINES: usize = 3;

/// Asks for a row's counts and its first values (see `map_updates_ahead`).
fn ask_for_row(row: &SharedRow) {
    crate::instances::prefetch_arc(row);
    crate::instances::prefetch_lines(&row[..], ROW_LINES);
}

/// An aggregate that orders references (`ordered_reference`) orders them as
/// (key, reference), the keys read from `keys`.
// One argument per field of the plan's aggregate node, and the keys.
#[allow(clippy::too_many_arguments)]
fn aggregate<'s>(
    rows: Rows<'s>,
    keys: &KeyOrder,
    group: usize,
    func: AggFunc,
    value: Option<usize>,
    order_by: Option<(usize, usize)>,
    ty: Type,
    strategy: Strategy,
) -> Column<'s> {
    let rows = Counted { rows, group, value };
    let references = ordered_reference(func, ty, strategy).map(|entity| (entity, keys.clone()));
    match strategy {
        Strategy::Diff => rows.totals(func, ty),
        Strategy::Distinct => {
            let v = value.unwrap_or(group);
            distinct_counts(rows.map(move |row: SharedRow| (row[group].as_ref_id().unwrap_or(0), row[v].clone())))
        }
        // Mode keeps a large instance's values ranked by multiplicity too.
        Strategy::Values if func == AggFunc::Mode => {
            let v = value.unwrap_or(group);
            let key = move |row: &SharedRow| row[group].as_ref_id().unwrap_or(0);
            match references {
                Some((entity, keys)) => {
                    let values = rows.map(move |row| (key(&row), (keys.key_of(entity, &row[v]), row[v].clone())));
                    mode(values, "Aggregate", |(_, reference): &(Value, Value)| reference.clone())
                }
                None => mode(rows.map(move |row| (key(&row), row[v].clone())), "Aggregate", Value::clone),
            }
        }
        Strategy::Values if references.is_some() => {
            let v = value.unwrap_or(group);
            let (entity, keys) = references.unwrap_or_default();
            let values = rows.map(move |row: SharedRow| {
                let reference = row[v].clone();
                (row[group].as_ref_id().unwrap_or(0), (keys.key_of(entity, &reference), reference))
            });
            by_key(values, "Aggregate", move |input: &Values<(Value, Value)>, output: &mut Vec<Value>| {
                output.extend(chosen(func, input).map(|(_, reference)| reference.clone()));
            })
        }
        Strategy::Values => {
            let v = value.unwrap_or(group);
            let values = rows.map(move |row: SharedRow| (row[group].as_ref_id().unwrap_or(0), row[v].clone()));
            by_key(values, "Aggregate", move |input: &Values<Value>, output: &mut Vec<Value>| {
                output.extend(values_aggregate(func, input));
            })
        }
        Strategy::Running => {
            let v = value.unwrap_or(group);
            let key = move |row: &SharedRow| row[group].as_ref_id().unwrap_or(0);
            let (at, id) = order_by.unwrap_or((group, group));
            let entry = move |row: &SharedRow| (row[at].clone(), row[id].clone(), row[v].clone());
            // The operator keeps the greatest value: min and first keep the greatest reversed.
            if let Some((entity, keys)) = references {
                // References, ordered by (key, reference).
                let ordered = move |row: &SharedRow| (keys.key_of(entity, &row[v]), row[v].clone());
                return match func {
                    AggFunc::Min => {
                        running(rows.map(move |row| (key(&row), Reverse(ordered(&row)))), "Aggregate", |m| {
                            m.0 .1.clone()
                        })
                    }
                    _ => running(rows.map(move |row| (key(&row), ordered(&row))), "Aggregate", |m| m.1.clone()),
                };
            }
            // Rows another row of the worker beats are dropped before the
            // exchange, ranked as the operator orders them: by `at` for first
            // and last, by the value itself for min and max.
            let greatest = matches!(func, AggFunc::Max | AggFunc::Last);
            let by_value = (v, ty == Type::Timestamp, greatest);
            let by_at = (at, true, greatest);
            match func {
                AggFunc::Min => {
                    let values = rows.map_unbeaten(by_value, move |row| (key(&row), Reverse(row[v].clone())));
                    running(values, "Aggregate", |m| m.0.clone())
                }
                AggFunc::First => {
                    let values = rows.map_unbeaten(by_at, move |row| (key(&row), Reverse(entry(&row))));
                    running(values, "Aggregate", |e| e.0 .2.clone())
                }
                AggFunc::Last => {
                    let values = rows.map_unbeaten(by_at, move |row| (key(&row), entry(&row)));
                    running(values, "Aggregate", |e| e.2.clone())
                }
                // Max (the compiler chooses Running only for min, max, first and last).
                _ => {
                    let values = rows.map_unbeaten(by_value, move |row| (key(&row), row[v].clone()));
                    running(values, "Aggregate", Value::clone)
                }
            }
        }
        Strategy::Expiring => {
            let v = value.unwrap_or(group);
            let (at, id) = order_by.unwrap_or((group, group));
            let entries = rows.map(move |row: SharedRow| {
                (row[group].as_ref_id().unwrap_or(0), (row[at].clone(), row[id].clone(), row[v].clone()))
            });
            // Entries in (at, id) order: a later one outlasts an earlier one
            // at most as good (for last, any earlier one).
            expiring(entries, "Aggregate", move |entries: &mut Values<(Value, Value, Value)>| {
                match func {
                    AggFunc::Max => entries.retain_unoutlasted(|later, earlier| later.2 >= earlier.2),
                    AggFunc::Min => entries.retain_unoutlasted(|later, earlier| later.2 <= earlier.2),
                    _ => entries.retain_unoutlasted(|_, _| true),
                }
                // What is left is ordered by value the other way round: the
                // earliest is the greatest (max) or least (min), the latest is last.
                let answer = if func == AggFunc::Last { entries.last() } else { entries.first() };
                answer.map(|((_, _, v), _)| v.clone())
            })
        }
        Strategy::Ordered => {
            let v = value.unwrap_or(group);
            let (at, id) = order_by.unwrap_or((group, group));
            let values = rows.map(move |row: SharedRow| {
                (row[group].as_ref_id().unwrap_or(0), (row[at].clone(), row[id].clone(), row[v].clone()))
            });
            by_key(values, "Aggregate", move |input: &Values<(Value, Value, Value)>, output: &mut Vec<Value>| {
                let chosen = if func == AggFunc::First { input.first() } else { input.last() };
                if let Some(((_, _, v), _)) = chosen {
                    output.push(v.clone());
                }
            })
        }
    }
}

/// Which of a group's distinct values min, max or mode picks: the least,
/// the greatest, or the least of the most frequent.
fn chosen<T: Ord>(func: AggFunc, input: &Values<T>) -> Option<&T> {
    match func {
        AggFunc::Min => input.first().map(|(v, _)| v),
        AggFunc::Max => input.last().map(|(v, _)| v),
        AggFunc::Mode => input.most_frequent(),
        _ => None,
    }
}

/// Aggregates over the distinct values of a group with their multiplicities
/// (sorted by value).
pub fn values_aggregate(func: AggFunc, input: &Values<Value>) -> Option<Value> {
    match func {
        AggFunc::Min | AggFunc::Max | AggFunc::Mode => chosen(func, input).cloned(),
        AggFunc::CountDistinct => Some(Value::Int(input.len() as i64)),
        AggFunc::Sum | AggFunc::Avg => {
            let mut sum = 0.0;
            let mut count = 0isize;
            for (v, n) in input.iter() {
                if let Value::Float(f) = v {
                    sum += f.0 * n as f64;
                    count += n;
                }
            }
            if func == AggFunc::Sum {
                Some(Value::Float(F64(sum)))
            } else if count > 0 {
                Some(Value::Float(F64(sum / count as f64)))
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{
        flat_map_rows, join_filters, map_updates_ahead, net_output_changes, output_order, read_columns, OutputChunks,
        OutputUpdate, SharedRow, Time, PEEK_AHEAD, RADIX_MOST, ROWS_AHEAD,
    };
    use differential_dataflow::VecCollection;
    use proptest::prelude::*;
    use segflow_compiler::plan::{GatherInput, Node};
    use segflow_compiler::value::Value;

    fn row(i: i64) -> SharedRow {
        SharedRow::from(vec![Value::Int(i), Value::str("x")])
    }

    /// Rows of several times, more than a prefetch distance each, and with
    /// retractions: each is mapped once, at its time and multiplicity.
    #[test]
    fn rows_mapped_ahead_are_each_mapped_once_at_their_time() {
        fn odd_doubled(rows: VecCollection<'_, Time, SharedRow, isize>) -> VecCollection<'_, Time, i64, isize> {
            flat_map_rows(rows, |row| match row[0] {
                Value::Int(i) if i % 2 == 1 => Some(2 * i),
                _ => None,
            })
        }
        let n = 3 * ROWS_AHEAD as i64;
        let times = vec![
            (0..n).map(|i| (row(i), 1)).collect(),
            vec![(row(1), -1), (row(2), 1), (row(3), 2)],
            (0..n).map(|i| (row(i), -1)).collect(),
        ];
        let emitted = crate::testing::emitted(times, odd_doubled);
        assert_eq!(emitted[0], (0..n).filter(|i| i % 2 == 1).map(|i| (2 * i, 1)).collect::<Vec<_>>());
        assert_eq!(emitted[1], [(2, -1), (6, 2)]);
        assert_eq!(emitted[2], (0..n).filter(|i| i % 2 == 1).map(|i| (2 * i, -1)).collect::<Vec<_>>());
    }

    /// `peek` sees the row `PEEK_AHEAD` on from the one `f` takes next, and
    /// the state that `f` changes; the last few rows have none that far on.
    #[test]
    fn a_peek_sees_the_row_peek_ahead_on() {
        type Seen = (i64, std::cell::Cell<Option<i64>>);
        fn checked(rows: VecCollection<'_, Time, SharedRow, isize>) -> VecCollection<'_, Time, (i64, bool), isize> {
            // The state: the last row taken, and the row peeked since.
            let peek = |(last, peeked): &Seen, row: &SharedRow| {
                let Value::Int(i) = row[0] else { panic!("rows of ints") };
                assert_eq!(i, last + 1 + PEEK_AHEAD as i64, "the row PEEK_AHEAD on from the next");
                assert_eq!(peeked.replace(Some(i)), None, "one peek a row");
            };
            let take = |(last, peeked): &mut Seen, (row, time, diff): (SharedRow, Time, isize)| {
                let Value::Int(i) = row[0] else { return None };
                assert_eq!(i, *last + 1, "rows are taken in order");
                *last = i;
                Some(((i, peeked.take().is_some()), time, diff))
            };
            map_updates_ahead(rows, (-1, std::cell::Cell::new(None)), peek, take)
        }
        let n = 4 * ROWS_AHEAD as i64;
        let emitted = crate::testing::emitted(vec![(0..n).map(|i| (row(i), 1)).collect()], checked);
        let peeked_before = |i: i64| i + (PEEK_AHEAD as i64) < n;
        assert_eq!(emitted[0], (0..n).map(|i| ((i, peeked_before(i)), 1)).collect::<Vec<_>>());
    }

    #[test]
    fn joins_make_rows_of_what_their_readers_read() {
        let model = r#"
            entity user { key id: string; city: string?; home_store: store?; }
            entity store { key id: string; region: string?; }
            entity product { key sku: string; category: string?; weight: float?; }
            event order { user: user; store: store?; product: product; amount: decimal; quantity: int; }
            event view { user: user; product: product; }
            tag store.avg_basket = avg(order.amount within 30d);
            tag user.shoe_spend = sum(order.amount where product.category = "shoes" within 30d);
            tag user.last_category = last(order.product.category);
            tag user.heaviest = max(order.product.weight within 7d);
            tag user.shoe_views = count(view where product.category = "shoes");
            tag user.bag_views = count(view where product.category = "bags");
            segment above_store on user = shoe_spend > coalesce(home_store.avg_basket, 0)
              and coalesce(home_store.region, city) = "East";
        "#;
        let plan = segflow_compiler::compile_str("t.eql", model).map_err(|(_, d)| d).expect("compiles").plan;
        let filters = join_filters(&plan);
        let read = read_columns(&plan, &filters);
        let rows_of = |n: usize| filters.rows_of(&plan, n);
        // What the gathers and aggregates read of each join's rows, and
        // whether anything else reads them.
        let mut expected: Vec<Vec<usize>> = vec![Vec::new(); plan.nodes.len()];
        let mut whole = vec![false; plan.nodes.len()];
        for (m, node) in plan.nodes.iter().enumerate() {
            match node {
                Node::Gather { inputs, .. } => {
                    for input in inputs {
                        if let GatherInput::Rows { node, key_field, field } = input {
                            expected[*node].extend([*key_field, *field]);
                        }
                    }
                }
                Node::Aggregate { source, group, value, order_by, .. } => {
                    expected[rows_of(*source)].push(*group);
                    expected[rows_of(*source)].extend(value);
                    expected[rows_of(*source)].extend(order_by.iter().flat_map(|&(t, id)| [t, id]));
                }
                Node::Filter { source, .. } if filters.fused[m] => {}
                other => other.sources().into_iter().for_each(|s| whole[s] = true),
            }
        }
        let (mut narrowed, mut kept_whole) = (0, 0);
        for (n, node) in plan.nodes.iter().enumerate() {
            let Node::Enrich { .. } = node else {
                assert_eq!(read[n], None, "only joins are narrowed");
                continue;
            };
            if whole[n] {
                // The views joined to their products feed two filters: whole rows.
                assert_eq!(read[n], None);
                kept_whole += 1;
                continue;
            }
            let mut expected = std::mem::take(&mut expected[n]);
            expected.sort_unstable();
            expected.dedup();
            assert!(!expected.is_empty());
            assert_eq!(read[n].as_deref(), Some(expected.as_slice()));
            narrowed += 1;
        }
        // The home store's (read by the user gather), and the orders' with
        // their products: through the shoe filter the join applies (30
        // days), by `last` (no window), by `max` (7 days).
        assert!(narrowed >= 4, "{narrowed} joins narrowed");
        assert_eq!(kept_whole, 1);
        // By hand: `max(order.product.weight within 7d)` reads the user and
        // the weight, the first and second of its join's two columns.
        let heaviest = plan.outputs.iter().find(|o| o.name == "heaviest").and_then(|o| o.node).expect("kept live");
        let Node::Aggregate { source, group, value: Some(value), .. } = &plan.nodes[heaviest] else { panic!() };
        let read = &read[rows_of(*source)];
        assert_eq!(read.as_ref().map(Vec::len), Some(2));
        assert_eq!((super::narrowed(read, *group), super::narrowed(read, *value)), (0, 1));
    }

    #[test]
    fn a_new_tag_value_goes_without_the_old_ones_retraction() {
        let v = Value::Int;
        // Output 0 a tag column (overwritten), output 1 a segment.
        let run = vec![
            (0, 7, v(1), 5, -1),
            (0, 7, v(2), 5, 1),
            (0, 8, v(3), 5, -1),
            (1, 7, v(1), 5, -1),
            (1, 8, v(1), 5, 1),
            (0, 9, v(4), 5, 1),
            (0, 9, v(4), 5, -1),
        ];
        assert_eq!(
            OutputChunks(vec![run]).sorted(&[true, false]).concat(),
            [
                // 7's old value goes with its new one; 8's, alone, stays; 9's cancel.
                (0, 7, v(2), 5, 1),
                (0, 8, v(3), 5, -1),
                (1, 7, v(1), 5, -1),
                (1, 8, v(1), 5, 1),
            ]
        );
    }

    /// A backfill's many changes at one time, sorted output by output, come
    /// out as one sort of all of them gives them: in `output_order`, equal
    /// ones summed, an overwritten instance's retractions dropped. Outputs
    /// interleaved across chunks of uneven sizes, instances past the
    /// packing's 48 bits in one output, and a second time (which sorts all
    /// together) are among them.
    #[test]
    fn many_changes_at_one_time_sort_as_one_sort_of_all() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for (count, times) in [(RADIX_MOST + 1, 1), (90_000, 1), (50_000, 2)] {
            // (An empty chunk first: the time is the first change's.)
            let mut chunks: Vec<Vec<OutputUpdate>> = vec![Vec::new(), Vec::new()];
            for _ in 0..count {
                let output = next(7) as usize;
                let instance = if output == 3 && next(50) == 0 { u64::MAX - next(4) } else { next(3_000) };
                let update =
                    (output, instance, Value::Int(next(3) as i64), 10 + next(times), [-1, 1, 2][next(3) as usize]);
                if next(5_000) == 0 {
                    chunks.push(Vec::new());
                }
                chunks.last_mut().unwrap().push(update);
            }
            let overwrites = [true, false, true, true, false, true, false];
            let by_output = OutputChunks(chunks.clone()).by_output().is_some();
            assert_eq!(by_output, times == 1, "sorted output by output only when all are at one time");
            let mut expected: Vec<OutputUpdate> = chunks.concat();
            expected.sort_unstable_by(output_order);
            net_output_changes(&mut expected, &overwrites);
            assert!(expected.len() > 1_000);
            assert_eq!(OutputChunks(chunks).sorted(&overwrites).concat(), expected, "{count} changes at {times} times");
        }
    }

    /// Chunks made with room for a batch (none, fewer than come, more)
    /// count and sort what chunks grown from nothing do; one chunk is
    /// taken whole.
    #[test]
    fn output_chunks_made_with_room_sort_as_ones_grown_from_nothing() {
        for room in [0, 3, 100] {
            let (mut roomy, mut plain) = (OutputChunks::with_room(room), OutputChunks::default());
            for i in 0..50u64 {
                let update = ((i % 3) as usize, 50 - i % 7, Value::Int((i % 4) as i64), 7, [1, -1][i as usize % 2]);
                roomy.push(update.clone());
                plain.push(update);
            }
            assert_eq!((roomy.count(), roomy.0.len()), (50, 1), "room {room}");
            let overwrites = [true, false, true];
            let mut expected: Vec<OutputUpdate> = plain.0.concat();
            expected.sort_unstable_by(output_order);
            net_output_changes(&mut expected, &overwrites);
            assert_eq!(roomy.sorted(&overwrites).concat(), expected, "room {room}");
        }
    }

    /// A tag column as the serving state keeps it (`ServingState::apply_output`),
    /// written plainly: within a time retractions first, each removing its
    /// value if it is the one held, then insertions, each setting its value.
    /// (The serving state takes a time's tag changes in one pass, which
    /// leaves each slot the same.)
    fn apply(column: &mut std::collections::BTreeMap<(usize, u64), Value>, changes: &[OutputUpdate]) {
        for retractions in [true, false] {
            for (output, id, value, _, diff) in changes {
                if (*diff < 0) != retractions {
                    continue;
                }
                if *diff > 0 {
                    column.insert((*output, *id), value.clone());
                } else if column.get(&(*output, *id)) == Some(value) {
                    column.remove(&(*output, *id));
                }
            }
        }
    }

    proptest! {
        /// Changes sorted through their packed keys (at one time) are in
        /// `output_order`, the same changes, and equal to a plain sort's
        /// once equal ones are summed; changes at several times, and
        /// outputs and instances past the packing, are sorted plainly.
        #[test]
        fn the_keyed_sort_is_output_order(
            updates in prop::collection::vec(
                (
                    prop_oneof![0..3usize, 0..700usize],
                    prop_oneof![0..6u64, 0..1u64 << 20, Just(1u64 << 48)],
                    0..3i64,
                    0..3u64,
                    prop_oneof![Just(-1isize), Just(1isize)],
                ),
                0..300,
            ),
            large_ids in any::<bool>(),
            large_output in any::<bool>(),
            one_time in any::<bool>(),
        ) {
            let mut updates: Vec<OutputUpdate> = updates
                .into_iter()
                .map(|(o, id, v, t, d)| (o, id, Value::Int(v), if one_time { 7 } else { t }, d))
                .filter(|u| u.1 < 1 << 48 || large_ids)
                .collect();
            if large_output {
                updates.push((1 << 16, 0, Value::Int(0), 0, 1));
            }
            let mut plain = updates.clone();
            plain.sort_by(output_order);
            super::sort_in_output_order(&mut updates);
            prop_assert!(updates.is_sorted_by(|a, b| output_order(a, b).is_le()));
            let mut summed = updates.clone();
            super::sum_equal_changes(&mut summed);
            super::sum_equal_changes(&mut plain);
            prop_assert_eq!(summed, plain);
        }

        /// Columns changing over times (a value set, changed, cleared), each
        /// time's changes a retraction of the old value and an insertion of
        /// the new, as operators emit them, several times to a batch; output
        /// 0 a tag (overwritten), output 1 not. Applied with the retractions
        /// that a new value makes needless dropped, the columns are those
        /// that all the changes give, time by time; and no tag instance keeps
        /// a retraction beside an insertion.
        #[test]
        fn dropped_retractions_leave_the_columns_as_they_were(
            batches in prop::collection::vec(
                prop::collection::vec(prop::collection::vec((0..2usize, 0..4u64, prop::option::of(0..3i64)), 0..8), 1..4),
                1..5,
            ),
        ) {
            let (mut all, mut net) = (std::collections::BTreeMap::new(), std::collections::BTreeMap::new());
            let mut t = 0u64;
            for batch in batches {
                let mut changes: Vec<OutputUpdate> = Vec::new();
                let mut expected = Vec::new();
                let mut current = all.clone();
                for step in batch {
                    let mut next = current.clone();
                    for (output, id, value) in step {
                        match value {
                            Some(v) => next.insert((output, id), Value::Int(v)),
                            None => next.remove(&(output, id)),
                        };
                    }
                    for (&(o, i), v) in &current {
                        if next.get(&(o, i)) != Some(v) {
                            changes.push((o, i, v.clone(), t, -1));
                        }
                    }
                    for (&(o, i), v) in &next {
                        if current.get(&(o, i)) != Some(v) {
                            changes.push((o, i, v.clone(), t, 1));
                        }
                    }
                    expected.push((t, next.clone()));
                    current = next;
                    t += 1;
                }
                let netted = OutputChunks(vec![changes.clone()]).sorted(&[true, false]).concat();
                for group in netted.chunk_by(|a, b| (a.3, a.0, a.1) == (b.3, b.0, b.1)) {
                    let inserts = group.iter().any(|u| u.4 > 0);
                    prop_assert!(group[0].0 != 0 || !inserts || group.iter().all(|u| u.4 > 0), "{:?}", group);
                }
                for (time, next) in expected {
                    let at = |c: &[OutputUpdate]| c.iter().filter(|u| u.3 == time).cloned().collect::<Vec<_>>();
                    apply(&mut all, &at(&changes));
                    apply(&mut net, &at(&netted));
                    prop_assert_eq!(&all, &next);
                    prop_assert_eq!(&net, &next);
                }
            }
        }
    }
}
