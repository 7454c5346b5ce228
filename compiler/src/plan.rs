//! The dataflow plan: what the runtime builds, as plain data.
//!
//! A plan is a list of inputs, a list of nodes in dependency order (each node
//! reads only nodes before it), the arrangements (joins' indexed sides) that
//! nodes name, and the outputs (tags and segments) with the node that
//! computes each. It names no timely type: the runtime renders it by walking
//! `nodes` front to back.
//!
//! Three collection shapes flow between nodes:
//! - *rows*: `Row` values (events, attribute rows, enriched rows);
//! - *columns*: `(key, Value)` per entity instance, sparse: an instance that is
//!   absent has the column's default (0 for a count, null for a max, false for
//!   a segment);
//! - *dense rows*: `(key, Row)` for every instance of an entity (a gather).
//!
//! Keys are interned entity keys (`u64`); a row holds a reference as `Ref(id)`.

use crate::eval::ScalarExpr;
use crate::hir::{self, AggFunc, Def};
use crate::value::{EntityId, Type, Value};
use serde::Serialize;

pub type InputId = usize;
pub type NodeId = usize;
pub type ArrangementId = usize;

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The model the inputs are decoded against.
    pub entities: Vec<hir::Entity>,
    pub events: Vec<hir::Event>,
    pub inputs: Vec<Input>,
    pub arrangements: Vec<Arrangement>,
    pub nodes: Vec<Node>,
    pub outputs: Vec<Output>,
    /// A fingerprint of the resolved definitions (not of this plan): what a
    /// server's saved history depends on. A new way of planning the same
    /// definitions keeps it; changing a definition changes it.
    #[serde(skip)]
    pub definitions: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Input {
    /// Each instance of an entity, inserted once when a record first names it.
    /// Rows `[Ref(key), key value]`. Memory: one row per instance.
    Instances { entity: EntityId },
    /// The current attributes of each instance that has any: rows of all declared
    /// fields, the key field holding `Ref(key)`. An upsert retracts the old row
    /// and inserts the new one. Memory: one row per instance with attributes.
    Attributes { entity: EntityId },
    /// Events of one type. With a window of `W` ms, an event at `t` is inserted
    /// at `max(t, now)` and retracted at `t + W`, so it is present exactly while
    /// `now - W < t <= now`. Rows hold only `fields` (indexes into the event's
    /// `[id, at, declared...]`): what any reader of the event needs, the same
    /// for each of its windows, so the engine shares one row among them.
    /// Memory: one such row per event inside its longest window (per event
    /// ever, without a window), pointed to by each window holding it.
    Events { event: hir::EventId, window_ms: Option<u64>, fields: Vec<usize> },
}

/// A collection arranged (indexed) by a key field: a side of a join. Memory:
/// the rows of `node`, indexed, once for each join that names it (the runtime
/// keeps a join's two sides in the join's own operator).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Arrangement {
    pub node: NodeId,
    /// Which field of the rows is the key; `None` for dense rows, already keyed.
    pub key_field: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Node {
    /// The rows of an input.
    Input { input: InputId },
    /// Rows extended with the lookup row of the instance referenced in field
    /// `via` (a join on the two arrangements); a null reference extends with
    /// `width` nulls. The lookup is live: when the referenced instance's values
    /// change, every row joined to it changes. Memory: its rows and the lookup
    /// rows, which the runtime keeps per referenced instance in the join's own
    /// operator (two joins share them only by being one node).
    Enrich { source: NodeId, via: usize, lookup: NodeId, width: usize, left: ArrangementId, right: ArrangementId },
    /// Rows for which the predicate is true (null counts as false).
    Filter { source: NodeId, predicate: ScalarExpr },
    /// An aggregate of rows grouped by the instance referenced in field `group`;
    /// a sparse column. `value` is the aggregated field (rows where it is null are
    /// skipped); `First`/`Last` order by (`at`, `id`).
    Aggregate {
        source: NodeId,
        group: usize,
        func: AggFunc,
        value: Option<usize>,
        /// For `first` and `last`, and the `Expiring` strategy: the row fields
        /// holding `at` and `id`.
        order_by: Option<(usize, usize)>,
        ty: Type,
        strategy: Strategy,
    },
    /// Dense rows for every instance of `entity`: slot 0 is the key value, then
    /// one slot per input (its default where the instance has none), then one per
    /// expression, evaluated in order (an expression may read earlier slots).
    /// Memory: per instance, its input values and what it produced last.
    Gather { entity: EntityId, instances: NodeId, inputs: Vec<GatherInput>, exprs: Vec<NamedExpr> },
    /// One slot of a gather as a sparse column: values that are not null (`keep`
    /// = NonNull) or instances where the slot is true (`keep` = True, segments).
    Project { source: NodeId, slot: usize, keep: Keep },
    /// A sparse column as rows `[Ref(key), value]`, so a reference held in a tag
    /// can be followed like one held in an attribute.
    ColumnRows { source: NodeId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Keep {
    NonNull,
    True,
}

/// How an aggregate is maintained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Strategy {
    /// Count, sum, avg and exists: each row adds (its value, 1) when it enters
    /// and takes it away when it leaves, so the state is one running total per
    /// instance, not per event (the runtime's `totals`).
    Diff,
    /// Per instance, the multiset of its values (distinct values with counts);
    /// for mode, a large instance's counts in a hash table with the most
    /// frequent value remembered (the runtime's `keyed::mode`).
    Values,
    /// `count_distinct`: how many rows hold each (instance, value) pair, and
    /// per instance how many pairs are held (the runtime's `distinct`). A
    /// change costs a look at its own pair, not at every value of the instance.
    Distinct,
    /// Per instance, its (at, id, value) entries sorted: one entry per event.
    Ordered,
    /// Last, min or max over windowed rows that follow no reference: rows
    /// then leave only by expiring, oldest first, so an entry that a later
    /// one at least as good will outlast can never be the answer again. Per
    /// instance, the (at, id, value) entries that nothing kept outlasts: one
    /// for last, a few for min and max.
    Expiring,
    /// Min, max, first or last over rows that are only ever inserted (events
    /// without a window, following no reference): per instance, the best
    /// value so far (with its `at` and `id` for first and last).
    Running,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum GatherInput {
    /// A sparse column and the value of instances that are absent from it.
    Column { node: NodeId, default: Value },
    /// One row per instance (at most), keyed by `key_field`; `field` is copied
    /// (null where the instance has no row).
    Rows { node: NodeId, key_field: usize, field: usize },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct NamedExpr {
    pub name: String,
    pub expr: ScalarExpr,
}

/// A tag or segment kept live, and the sparse column that holds it (or, for
/// a tag computed on read, how to compute it).
#[derive(Clone, Debug, Serialize)]
pub struct Output {
    pub def: Def,
    pub entity: EntityId,
    pub name: String,
    /// The node computing the column; `None` for a tag computed on read.
    pub node: Option<NodeId>,
    pub on_read: Option<OnRead>,
    pub ty: Type,
    /// The value of instances absent from the column.
    pub default: Value,
    /// Lifted inline aggregates are computed but not shown in profiles.
    pub anonymous: bool,
    /// The inputs whose records can change this output (lineage).
    pub inputs: Vec<InputId>,
}

/// A tag that the serving state computes when it is read, from what it
/// holds, instead of the dataflow keeping it: an expression tag (not an
/// aggregate) that follows a reference and that reads no inline aggregate
/// (the serving state holds none). Kept live, it would change for every
/// instance referring to a followed value whenever that value changes (all
/// the users of a store, each time the store's revenue moves), where a read
/// costs a lookup or two. Definitions of the dataflow that read it have it
/// evaluated there (an expression of their gather, or a column of its own
/// for a reader elsewhere), but it is not published.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct OnRead {
    /// What slot `i` of the expression's row holds, for the instance read.
    pub inputs: Vec<ReadInput>,
    pub expr: ScalarExpr,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ReadInput {
    /// The instance's key value.
    Key,
    /// One of the instance's attributes (null without one).
    Attribute(usize),
    /// A tag or segment of the instance, as served (its default where absent).
    Def(Def),
    /// `target` of the instance that `via` refers to (null where it is null).
    Follow { via: Box<ReadInput>, entity: EntityId, target: Box<ReadInput> },
}

impl Node {
    /// The nodes this node reads.
    pub fn sources(&self) -> Vec<NodeId> {
        match self {
            Node::Input { .. } => vec![],
            Node::Enrich { source, lookup, .. } => vec![*source, *lookup],
            Node::Filter { source, .. } | Node::Aggregate { source, .. } => vec![*source],
            Node::Project { source, .. } | Node::ColumnRows { source } => vec![*source],
            Node::Gather { instances, inputs, .. } => {
                let mut v = vec![*instances];
                v.extend(inputs.iter().map(|i| match i {
                    GatherInput::Column { node, .. } | GatherInput::Rows { node, .. } => *node,
                }));
                v
            }
        }
    }
}

impl Plan {
    /// The inputs feeding a node, transitively.
    pub fn inputs_of(&self, node: NodeId) -> Vec<InputId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![node];
        let mut inputs = Vec::new();
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            if let Node::Input { input } = &self.nodes[n] {
                inputs.push(*input);
            }
            stack.extend(self.nodes[n].sources());
        }
        inputs.sort();
        inputs.dedup();
        inputs
    }

    pub fn input_name(&self, input: InputId) -> String {
        match &self.inputs[input] {
            Input::Instances { entity } => format!("{} instances", self.entities[*entity].name),
            Input::Attributes { entity } => format!("{} attributes", self.entities[*entity].name),
            Input::Events { event, window_ms: None, .. } => format!("{} events", self.events[*event].name),
            Input::Events { event, window_ms: Some(w), .. } => {
                format!("{} events within {}", self.events[*event].name, format_duration(*w))
            }
        }
    }
}

/// `2592000000` -> `30d`; the largest unit that divides the duration.
pub fn format_duration(ms: u64) -> String {
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}
