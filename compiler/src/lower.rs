//! Lowering the typed IR to a dataflow plan.
//!
//! - An aggregate becomes: its event input (one per event type and window), one
//!   `Enrich` per reference its filter or value follows, a `Filter`, and an
//!   `Aggregate` node. Identical nodes are built once (the plan is hash-consed),
//!   so two tags with the same `count(page_view where channel = "app" within 7d)`
//!   share everything.
//! - Expression definitions (tags that are not a bare aggregate, and segments)
//!   are evaluated in `Gather` nodes: one per entity and *layer* that
//!   assembles a dense row per instance from the columns the expressions read,
//!   then evaluates them in dependency order. Definitions are layered so
//!   that no gather reads what it computes (see `layer_def`), and each then
//!   moves into the lowest gather of its entity that leaves no cycle among
//!   the gathers (`merge_groups`): a model needs a handful of gathers, often
//!   one per entity, not one per definition.
//! - Following a reference (`home_store.revenue_7d`) joins the rows holding the
//!   reference with a `Gather` of the referenced entity that has the target
//!   column: a live join, so a change on either side flows through.

use crate::eval::{widen, ScalarExpr};
use crate::hir::{self, AggFunc, Column, Def, Expr, ExprKind, Program};
use crate::plan::*;
use crate::value::{EntityId, Type, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

pub fn lower(written: &Program) -> Plan {
    // Snapshots compare the definitions as written: the rewrite below keeps
    // every value, and a change to it alone leaves a snapshot's history valid.
    let definitions = fnv1a(serde_json::to_string(written).unwrap_or_default().as_bytes());
    let program = &crate::pushdown::push_down(written);
    let mut l = Lowerer {
        program,
        plan: Plan {
            entities: program.entities.clone(),
            events: program.events.clone(),
            inputs: Vec::new(),
            arrangements: Vec::new(),
            nodes: Vec::new(),
            outputs: Vec::new(),
            definitions,
        },
        nodes: HashMap::new(),
        layers: HashMap::new(),
        group_of: HashMap::new(),
        def_columns: HashMap::new(),
        gathers: HashMap::new(),
        groups: BTreeMap::new(),
        on_read: HashSet::new(),
        read: HashSet::new(),
        unsplit_joins: HashSet::new(),
    };
    (l.on_read, l.read) = computed_on_read(program);
    l.unsplit_joins = unsplit_joins(program);
    for &def in &program.order {
        if l.is_gathered(def) {
            let layer = l.layer_def(def);
            l.group_of.insert(def, layer);
        }
    }
    l.merge_groups();
    for &def in &program.order {
        if let Some(&layer) = l.group_of.get(&def) {
            l.groups.entry((l.def_entity(def), layer)).or_default().push(def);
        }
    }
    for &def in &program.order {
        let (node, on_read) =
            if l.on_read.contains(&def) { (None, Some(l.read_plan(def))) } else { (Some(l.def_column(def)), None) };
        let (entity, name, ty, anonymous) = match def {
            Def::Tag(t) => {
                let tag = &program.tags[t];
                (tag.entity, tag.name.clone(), tag.ty, tag.anonymous)
            }
            Def::Segment(s) => (program.segments[s].entity, program.segments[s].name.clone(), Type::Bool, false),
        };
        let default = l.def_default(def);
        let inputs = Vec::new();
        l.plan.outputs.push(Output { def, entity, name, node, on_read, ty, default, anonymous, inputs });
    }
    // Lineage names inputs, so it waits until every output has made its own.
    for o in 0..l.plan.outputs.len() {
        let mut lineage = std::collections::BTreeSet::new();
        l.def_lineage(l.plan.outputs[o].def, &mut lineage);
        l.plan.outputs[o].inputs = lineage.into_iter().collect();
    }
    // Outputs in declaration order (tags, then segments): the order profiles print in.
    l.plan.outputs.sort_by_key(|o| o.def);
    l.plan
}

struct Lowerer<'a> {
    program: &'a Program,
    plan: Plan,
    nodes: HashMap<Node, NodeId>,
    /// Each expression definition's layer (see `layer_def`).
    layers: HashMap<Def, u32>,
    /// Each expression definition's gather, as the layer it is keyed by
    /// (its own, or a lower one it was merged into: see `merge_groups`).
    group_of: HashMap<Def, u32>,
    def_columns: HashMap<Def, NodeId>,
    /// (entity, layer) -> the gather node and the slot of each definition in it.
    gathers: HashMap<(EntityId, u32), (NodeId, HashMap<Def, usize>)>,
    groups: BTreeMap<(EntityId, u32), Vec<Def>>,
    /// The tags the serving state computes on read (see `OnRead`).
    on_read: HashSet<Def>,
    /// The definitions other definitions or aggregates read.
    read: HashSet<Def>,
    /// Joins whose rows are not filtered before them (see `unsplit_joins`).
    unsplit_joins: HashSet<JoinKey>,
}

/// The first join of an aggregate that follows references: its event, its
/// window and the field holding the reference it follows first. Aggregates
/// with one key share the join's arrangement of their rows, if their rows
/// are the same. (The runtime keeps a join's rows in the join's own
/// operator: aggregates share them where they share the join node.)
type JoinKey = (hir::EventId, Option<u64>, usize);

impl Lowerer<'_> {
    fn add(&mut self, node: Node) -> NodeId {
        if let Some(&id) = self.nodes.get(&node) {
            return id;
        }
        let id = self.plan.nodes.len();
        self.plan.nodes.push(node.clone());
        self.nodes.insert(node, id);
        id
    }

    fn input(&mut self, input: Input) -> NodeId {
        let id = match self.plan.inputs.iter().position(|i| *i == input) {
            Some(id) => id,
            None => {
                self.plan.inputs.push(input);
                self.plan.inputs.len() - 1
            }
        };
        self.add(Node::Input { input: id })
    }

    fn arrangement(&mut self, node: NodeId, key_field: Option<usize>) -> ArrangementId {
        let a = Arrangement { node, key_field };
        match self.plan.arrangements.iter().position(|x| *x == a) {
            Some(id) => id,
            None => {
                self.plan.arrangements.push(a);
                self.plan.arrangements.len() - 1
            }
        }
    }

    fn def_entity(&self, def: Def) -> EntityId {
        match def {
            Def::Tag(t) => self.program.tags[t].entity,
            Def::Segment(s) => self.program.segments[s].entity,
        }
    }

    fn def_expr(&self, def: Def) -> &Expr {
        match def {
            Def::Tag(t) => &self.program.tags[t].expr,
            Def::Segment(s) => &self.program.segments[s].expr,
        }
    }

    fn is_bare_aggregate(&self, def: Def) -> bool {
        matches!(def, Def::Tag(t) if matches!(self.program.tags[t].expr.kind, ExprKind::Aggregate(_)))
    }

    fn def_default(&self, def: Def) -> Value {
        match def {
            Def::Segment(_) => Value::Bool(false),
            Def::Tag(t) => match self.program.tags[t].expr.kind {
                ExprKind::Aggregate(a) => {
                    let agg = &self.program.aggregates[a];
                    agg.func.empty_value(agg.ty)
                }
                _ => Value::Null,
            },
        }
    }

    // ---------- tags computed on read ----------

    /// How the serving state computes `def` (one of `on_read`) from what it holds.
    fn read_plan(&mut self, def: Def) -> OnRead {
        let entity = self.def_entity(def);
        let (columns, expr) = lower_over_columns(self.def_expr(def));
        let inputs = columns.iter().map(|c| self.read_input(entity, c)).collect();
        OnRead { inputs, expr }
    }

    fn read_input(&mut self, entity: EntityId, column: &Column) -> ReadInput {
        match column {
            Column::Field(i) if *i == self.program.entities[entity].key => ReadInput::Key,
            Column::Field(i) => {
                // No node reads it, but lineage names it: records of these
                // attributes change the tag.
                self.input(Input::Attributes { entity });
                ReadInput::Attribute(*i)
            }
            Column::Tag(t) => ReadInput::Def(Def::Tag(*t)),
            Column::Segment(s) => ReadInput::Def(Def::Segment(*s)),
            Column::Follow { via, entity: target_entity, target } => ReadInput::Follow {
                via: Box::new(self.read_input(entity, via)),
                entity: *target_entity,
                target: Box::new(self.read_input(*target_entity, target)),
            },
        }
    }

    // ---------- lineage ----------

    /// The inputs whose records can change `def`: the event inputs of the
    /// aggregates it reads and the attributes of the entities it reads, through
    /// every definition and reference it follows. (Computed from the IR, not the
    /// plan, because a gather evaluates many definitions at once.)
    fn def_lineage(&self, def: Def, acc: &mut std::collections::BTreeSet<InputId>) {
        let entity = self.def_entity(def);
        match &self.def_expr(def).kind {
            ExprKind::Aggregate(a) => self.aggregate_lineage(*a, acc),
            _ => {
                let mut columns = Vec::new();
                self.def_expr(def).visit_columns(&mut |c| columns.push(c.clone()));
                for c in columns {
                    self.column_lineage(entity, &c, acc);
                }
            }
        }
    }

    fn column_lineage(&self, entity: EntityId, column: &Column, acc: &mut std::collections::BTreeSet<InputId>) {
        match column {
            Column::Field(i) if *i == self.program.entities[entity].key => {}
            Column::Field(_) => {
                if let Some(i) = self.plan.inputs.iter().position(|x| *x == Input::Attributes { entity }) {
                    acc.insert(i);
                }
            }
            Column::Tag(t) => self.def_lineage(Def::Tag(*t), acc),
            Column::Segment(s) => self.def_lineage(Def::Segment(*s), acc),
            Column::Follow { via, entity: target_entity, target } => {
                self.column_lineage(entity, via, acc);
                self.column_lineage(*target_entity, target, acc);
            }
        }
    }

    fn aggregate_lineage(&self, a: hir::AggId, acc: &mut std::collections::BTreeSet<InputId>) {
        let agg = &self.program.aggregates[a];
        for (i, input) in self.plan.inputs.iter().enumerate() {
            if matches!(input, Input::Events { event, window_ms, .. } if *event == agg.event && *window_ms == agg.window_ms)
            {
                acc.insert(i);
            }
        }
        let columns = aggregate_columns(agg);
        for c in columns {
            if let Column::Follow { entity, target, .. } = c {
                self.column_lineage(entity, &target, acc);
            }
        }
    }

    // ---------- layers ----------

    /// Whether a definition is an expression a gather evaluates (not a bare
    /// aggregate, and not computed on read unless other definitions read it:
    /// their gathers evaluate it, though its own values are not kept).
    fn is_gathered(&self, def: Def) -> bool {
        !self.is_bare_aggregate(def) && (!self.on_read.contains(&def) || self.read.contains(&def))
    }

    /// The layer of an expression definition: a definition of its entity
    /// that it reads directly can be an expression of the same gather (its
    /// layer or above); one that it depends on through something outside
    /// the gather (an aggregate whose filter follows a reference to it, a
    /// join, another entity's definition) must be in a layer below. Every
    /// gather then reads only gathers of lower layers: no cycle.
    /// (`merge_groups` then moves definitions into lower gathers where no
    /// cycle follows.)
    fn layer_def(&mut self, def: Def) -> u32 {
        if let Some(&l) = self.layers.get(&def) {
            return l;
        }
        let layer =
            self.gathered_reads(def).into_iter().map(|(x, outside)| self.layer_def(x) + u32::from(outside)).max();
        let layer = layer.unwrap_or(0);
        self.layers.insert(def, layer);
        layer
    }

    /// The columns a definition reads: an aggregate's value and filter, or
    /// an expression's.
    fn columns_read(&self, def: Def) -> Vec<Column> {
        match self.def_expr(def).kind {
            ExprKind::Aggregate(a) => aggregate_columns(&self.program.aggregates[a]),
            _ => {
                let mut columns = Vec::new();
                self.def_expr(def).visit_columns(&mut |c| columns.push(c.clone()));
                columns
            }
        }
    }

    /// The expression definitions that expression definition `def` reads,
    /// each with whether through something outside a gather (`true`) or as a
    /// column of its own entity (`false`), looking through aggregates and
    /// joins.
    fn gathered_reads(&self, def: Def) -> Vec<(Def, bool)> {
        fn walk(l: &Lowerer<'_>, column: &Column, outside: bool, out: &mut Vec<(Def, bool)>) {
            let def = match column {
                Column::Field(_) => return,
                Column::Tag(t) => Def::Tag(*t),
                Column::Segment(s) => Def::Segment(*s),
                Column::Follow { via, target, .. } => {
                    walk(l, via, true, out);
                    walk(l, target, true, out);
                    return;
                }
            };
            if l.is_gathered(def) {
                out.push((def, outside));
            } else {
                for c in l.columns_read(def) {
                    walk(l, &c, true, out);
                }
            }
        }
        let mut out = Vec::new();
        for c in self.columns_read(def) {
            walk(self, &c, false, &mut out);
        }
        out
    }

    /// Moves each expression definition, in dependency order, into the
    /// lowest gather of its entity below its layer where that leaves no
    /// cycle among the gathers (a definition of a gather read, through
    /// something outside, by one it holds; or gathers that read each
    /// other): fewer gathers keep fewer rows per instance, and an event that
    /// moves several of an instance's columns updates one. A user's
    /// `home_store in hot_stores` goes beside `tier`, since the stores'
    /// segment reads nothing of the users; `shop in hot_stores`, where
    /// `shop` is a user's tag, stays a layer above `shop`. Where two
    /// entities' definitions read each other's (a store segment reading a
    /// product segment, a product segment reading a store one), the one
    /// tried first (the first in dependency order) moves and the other stays.
    fn merge_groups(&mut self) {
        let defs: Vec<Def> = self.program.order.iter().copied().filter(|d| self.group_of.contains_key(d)).collect();
        let reads: Vec<Vec<(Def, bool)>> = defs.iter().map(|&d| self.gathered_reads(d)).collect();
        for &def in &defs {
            let (entity, layer) = (self.def_entity(def), self.group_of[&def]);
            let mut lower: Vec<u32> = defs
                .iter()
                .filter(|d| self.def_entity(**d) == entity && self.group_of[*d] < layer)
                .map(|d| self.group_of[d])
                .collect();
            lower.sort_unstable();
            lower.dedup();
            for target in lower {
                self.group_of.insert(def, target);
                if self.groups_acyclic(&defs, &reads) {
                    break;
                }
                self.group_of.insert(def, layer);
            }
        }
    }

    /// Whether the gathers, as `group_of` has them, read one another in no cycle.
    fn groups_acyclic(&self, defs: &[Def], reads: &[Vec<(Def, bool)>]) -> bool {
        let group = |d: &Def| (self.def_entity(*d), self.group_of[d]);
        let mut edges: BTreeMap<(EntityId, u32), Vec<(EntityId, u32)>> = BTreeMap::new();
        for (d, reads) in defs.iter().zip(reads) {
            for (x, outside) in reads {
                let (from, to) = (group(x), group(d));
                if from == to {
                    if *outside {
                        return false;
                    }
                } else {
                    edges.entry(from).or_default().push(to);
                }
            }
        }
        // Depth-first, marking gathers on the path (1) and done (2).
        fn cyclic(
            at: (EntityId, u32),
            edges: &BTreeMap<(EntityId, u32), Vec<(EntityId, u32)>>,
            mark: &mut HashMap<(EntityId, u32), u8>,
        ) -> bool {
            match mark.get(&at) {
                Some(1) => return true,
                Some(_) => return false,
                None => {}
            }
            mark.insert(at, 1);
            let found = edges.get(&at).into_iter().flatten().any(|&next| cyclic(next, edges, mark));
            mark.insert(at, 2);
            found
        }
        let mut mark = HashMap::new();
        !edges.keys().any(|&g| cyclic(g, &edges, &mut mark))
    }

    // ---------- columns ----------

    /// The sparse column holding a tag or segment.
    fn def_column(&mut self, def: Def) -> NodeId {
        if let Some(&n) = self.def_columns.get(&def) {
            return n;
        }
        let node = if let (Def::Tag(_), ExprKind::Aggregate(a)) = (def, &self.def_expr(def).kind) {
            self.aggregate(*a)
        } else {
            let entity = self.def_entity(def);
            let layer = self.group_of[&def];
            let (gather, slots) = self.gather(entity, layer);
            let keep = if matches!(def, Def::Segment(_)) { Keep::True } else { Keep::NonNull };
            self.add(Node::Project { source: gather, slot: slots[&def], keep })
        };
        self.def_columns.insert(def, node);
        node
    }

    /// The gather evaluating every expression definition of `entity` at `layer`.
    fn gather(&mut self, entity: EntityId, layer: u32) -> (NodeId, HashMap<Def, usize>) {
        if let Some(g) = self.gathers.get(&(entity, layer)) {
            return g.clone();
        }
        let defs = self.groups.get(&(entity, layer)).cloned().unwrap_or_default();
        let key = self.program.entities[entity].key;
        let mut external: Vec<Column> = Vec::new();
        for &def in &defs {
            self.def_expr(def).visit_columns(&mut |c| {
                let in_group = match c {
                    Column::Tag(t) => defs.contains(&Def::Tag(*t)),
                    Column::Segment(s) => defs.contains(&Def::Segment(*s)),
                    Column::Field(i) => *i == key,
                    Column::Follow { .. } => false,
                };
                if !in_group && !external.contains(c) {
                    external.push(c.clone());
                }
            });
        }
        let inputs: Vec<GatherInput> = external.iter().map(|c| self.gather_input(entity, c)).collect();
        let mut slot_of: HashMap<Column, usize> =
            external.iter().enumerate().map(|(i, c)| (c.clone(), 1 + i)).collect();
        slot_of.insert(Column::Field(key), 0);
        let mut def_slots = HashMap::new();
        let mut exprs = Vec::new();
        for (i, &def) in defs.iter().enumerate() {
            let slot = 1 + inputs.len() + i;
            def_slots.insert(def, slot);
            let expr = lower_expr(self.def_expr(def), &|c| slot_of.get(c).copied());
            exprs.push(NamedExpr { name: self.program.def_name(def), expr });
            match def {
                Def::Tag(t) => slot_of.insert(Column::Tag(t), slot),
                Def::Segment(s) => slot_of.insert(Column::Segment(s), slot),
            };
        }
        let instances = self.input(Input::Instances { entity });
        let node = self.add(Node::Gather { entity, instances, inputs, exprs });
        self.gathers.insert((entity, layer), (node, def_slots.clone()));
        (node, def_slots)
    }

    /// Dense rows of `entity` holding `columns` in slots 1.. (slot 0 is the key).
    fn lookup(&mut self, entity: EntityId, columns: &[Column]) -> NodeId {
        let inputs = columns.iter().map(|c| self.gather_input(entity, c)).collect();
        let instances = self.input(Input::Instances { entity });
        self.add(Node::Gather { entity, instances, inputs, exprs: Vec::new() })
    }

    /// Where a gather of `entity` reads `column` from.
    fn gather_input(&mut self, entity: EntityId, column: &Column) -> GatherInput {
        match column {
            // The key of an instance (followed: `home_store.id`) is in its
            // instance row, which every instance has; its attribute row holds
            // `Ref(key)` there, and an instance may have none.
            Column::Field(i) if *i == self.program.entities[entity].key => {
                let node = self.input(Input::Instances { entity });
                GatherInput::Rows { node, key_field: 0, field: 1 }
            }
            Column::Field(i) => {
                let node = self.input(Input::Attributes { entity });
                let key_field = self.program.entities[entity].key;
                GatherInput::Rows { node, key_field, field: *i }
            }
            Column::Tag(t) => {
                let node = self.def_column(Def::Tag(*t));
                GatherInput::Column { node, default: self.def_default(Def::Tag(*t)) }
            }
            Column::Segment(s) => {
                let node = self.def_column(Def::Segment(*s));
                GatherInput::Column { node, default: Value::Bool(false) }
            }
            Column::Follow { via, entity: target_entity, target } => {
                let (node, key_field, field) = self.follow(entity, via, *target_entity, target);
                GatherInput::Rows { node, key_field, field }
            }
        }
    }

    /// Rows of `entity` instances extended with `target` of the instance their
    /// `via` column refers to: (rows node, key field, target field).
    fn follow(
        &mut self,
        entity: EntityId,
        via: &Column,
        target_entity: EntityId,
        target: &Column,
    ) -> (NodeId, usize, usize) {
        let (source, key_field, via_field, width) = match via {
            Column::Field(i) => {
                let e = &self.program.entities[entity];
                let (key, width) = (e.key, e.fields.len());
                (self.input(Input::Attributes { entity }), key, *i, width)
            }
            other => {
                let column = match self.gather_input(entity, other) {
                    GatherInput::Column { node, .. } => node,
                    GatherInput::Rows { .. } => unreachable!("a followed reference is an attribute or a tag"),
                };
                (self.add(Node::ColumnRows { source: column }), 0, 1, 2)
            }
        };
        let lookup = self.lookup(target_entity, std::slice::from_ref(target));
        let left = self.arrangement(source, Some(via_field));
        let right = self.arrangement(lookup, None);
        let node = self.add(Node::Enrich { source, via: via_field, lookup, width: 2, left, right });
        (node, key_field, width + 1)
    }

    // ---------- aggregates ----------

    fn aggregate(&mut self, a: hir::AggId) -> NodeId {
        let agg = self.program.aggregates[a].clone();
        let fields = self.event_fields(agg.event);
        let mut node = self.input(Input::Events { event: agg.event, window_ms: agg.window_ms, fields: fields.clone() });
        let mut width = fields.len();
        let mut slot_of: HashMap<Column, usize> =
            fields.iter().enumerate().map(|(slot, &f)| (Column::Field(f), slot)).collect();
        // Followed references, grouped by the event field that holds the reference.
        let columns = aggregate_columns(&agg);
        let mut follows: BTreeMap<usize, (EntityId, Vec<Column>)> = BTreeMap::new();
        for c in &columns {
            if let Column::Follow { via, entity, target } = c {
                if let Column::Field(i) = **via {
                    let entry = follows.entry(i).or_insert((*entity, Vec::new()));
                    if !entry.1.contains(target) {
                        entry.1.push((**target).clone());
                    }
                }
            }
        }
        // A join carries every row into its arrangement: rows that the
        // aggregate would drop after it are dropped before it (see
        // `split_for_join`), unless that would keep this join from sharing its
        // arrangement with another aggregate's (see `unsplit_joins`).
        let mut filter = agg.filter.clone();
        if let Some(via) = first_via(&agg) {
            if !self.unsplit_joins.contains(&(agg.event, agg.window_ms, via)) {
                let (before, after) = split_for_join(self.program, &agg);
                if let Some(predicate) = before {
                    let predicate = lower_expr(&predicate, &|c| slot_of.get(c).copied());
                    node = self.add(Node::Filter { source: node, predicate });
                }
                filter = after;
            }
        }
        for (via, (entity, mut targets)) in follows {
            targets.sort();
            let appended = targets.len();
            let lookup = self.lookup(entity, &targets);
            let via_slot = slot_of[&Column::Field(via)];
            let left = self.arrangement(node, Some(via_slot));
            let right = self.arrangement(lookup, None);
            node =
                self.add(Node::Enrich { source: node, via: via_slot, lookup, width: 1 + targets.len(), left, right });
            for (j, t) in targets.into_iter().enumerate() {
                let column = Column::Follow { via: Box::new(Column::Field(via)), entity, target: Box::new(t) };
                slot_of.insert(column, width + 1 + j);
            }
            width += 1 + appended;
        }
        if let Some(f) = &filter {
            let predicate = lower_expr(f, &|c| slot_of.get(c).copied());
            node = self.add(Node::Filter { source: node, predicate });
        }
        let value = agg.value.as_ref().and_then(|c| slot_of.get(c).copied());
        let strategy = strategy(&agg);
        let ordered = orders_by_time(&agg);
        let order_by =
            ordered.then(|| (slot_of[&Column::Field(hir::EVENT_AT)], slot_of[&Column::Field(hir::EVENT_ID)]));
        let group = slot_of[&Column::Field(agg.group)];
        self.add(Node::Aggregate { source: node, group, func: agg.func, value, order_by, ty: agg.ty, strategy })
    }

    /// The fields an event's inputs carry: everything any aggregate over the
    /// event needs, whatever its window. Every input of one event then has
    /// the same fields, so the engine builds one row per event and shares it
    /// among the inputs (one allocation instead of one per window), while
    /// fields nothing reads stay out of the rows.
    fn event_fields(&self, event: hir::EventId) -> Vec<usize> {
        let mut fields = std::collections::BTreeSet::new();
        for agg in &self.program.aggregates {
            if agg.event != event {
                continue;
            }
            fields.insert(agg.group);
            if orders_by_time(agg) {
                fields.insert(hir::EVENT_AT);
                fields.insert(hir::EVENT_ID);
            }
            let columns = aggregate_columns(agg);
            for c in columns {
                match c {
                    Column::Field(i) => fields.insert(i),
                    Column::Follow { via, .. } => match *via {
                        Column::Field(i) => fields.insert(i),
                        _ => false,
                    },
                    _ => false,
                };
            }
        }
        // `at` first: where rows are compared whole, a time decides nearly
        // every comparison without reading a string (the id, otherwise
        // first, sits in its own allocation).
        let mut fields: Vec<usize> = fields.into_iter().collect();
        if let Some(at) = fields.iter().position(|&f| f == hir::EVENT_AT) {
            fields[..=at].rotate_right(1);
        }
        fields
    }
}

/// Lowers an expression, reading each column from the slot `slot_of` gives it.
pub fn lower_expr(e: &Expr, slot_of: &dyn Fn(&Column) -> Option<usize>) -> ScalarExpr {
    let go = |x: &Expr| Box::new(lower_expr(x, slot_of));
    match &e.kind {
        ExprKind::Literal(v) => ScalarExpr::Literal(v.clone()),
        ExprKind::Column(c) => match slot_of(c) {
            Some(s) => ScalarExpr::Slot(s),
            None => ScalarExpr::Literal(Value::Null),
        },
        ExprKind::Aggregate(_) => ScalarExpr::Literal(Value::Null),
        // A widened literal is widened once, here, not at every evaluation.
        ExprKind::Widen(x) => match *go(x) {
            ScalarExpr::Literal(v) => ScalarExpr::Literal(widen(v, e.ty)),
            inner => ScalarExpr::Widen(Box::new(inner), e.ty),
        },
        ExprKind::Unary(op, x) => ScalarExpr::Unary(*op, go(x)),
        ExprKind::Binary(op, l, r) => ScalarExpr::Binary(*op, go(l), go(r)),
        ExprKind::IsNull { expr, negated } => ScalarExpr::IsNull(go(expr), *negated),
        ExprKind::InList { expr, list, negated } => {
            ScalarExpr::InList(go(expr), list.iter().map(|x| lower_expr(x, slot_of)).collect(), *negated)
        }
        ExprKind::Case { whens, otherwise } => ScalarExpr::Case(
            whens.iter().map(|(c, v)| (lower_expr(c, slot_of), lower_expr(v, slot_of))).collect(),
            otherwise.as_ref().map(|o| go(o)),
        ),
        ExprKind::Call(f, args) => ScalarExpr::Call(*f, args.iter().map(|x| lower_expr(x, slot_of)).collect()),
    }
}

/// The distinct columns `e` reads, in order of first reading, and `e`
/// lowered over a row holding them in that order.
pub(crate) fn lower_over_columns(e: &Expr) -> (Vec<Column>, ScalarExpr) {
    let mut columns: Vec<Column> = Vec::new();
    e.visit_columns(&mut |c| {
        if !columns.contains(c) {
            columns.push(c.clone());
        }
    });
    let expr = lower_expr(e, &|c| columns.iter().position(|x| x == c));
    (columns, expr)
}

/// FNV-1a: a stable, dependency-free fingerprint (not a security measure).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

/// How an aggregate is maintained (see `Strategy`).
fn strategy(agg: &hir::Aggregate) -> Strategy {
    let follows = follows_a_reference(agg);
    // Events without a window are never retracted, and a row that follows no
    // reference never changes: over such rows, the best value so far is all
    // that min, max, first and last need.
    let insert_only = agg.window_ms.is_none() && !follows;
    // Windowed rows that follow no reference leave only by expiring, in the
    // order of their `at` (a filter over them reads only their own fields,
    // which never change). A reference orders by its key, which rows lack.
    let expire_in_order = agg.window_ms.is_some() && !follows;
    match (agg.func, agg.value_ty) {
        (AggFunc::Min | AggFunc::Max | AggFunc::First | AggFunc::Last, _) if insert_only => Strategy::Running,
        (AggFunc::Last, _) if expire_in_order => Strategy::Expiring,
        (AggFunc::Min | AggFunc::Max, Some(ty)) if expire_in_order && !matches!(ty, Type::Ref(_)) => Strategy::Expiring,
        (AggFunc::Count | AggFunc::Exists, _) => Strategy::Diff,
        (AggFunc::Sum | AggFunc::Avg, Some(Type::Int | Type::Decimal)) => Strategy::Diff,
        (AggFunc::First | AggFunc::Last, _) => Strategy::Ordered,
        (AggFunc::CountDistinct, _) => Strategy::Distinct,
        _ => Strategy::Values,
    }
}

/// The field holding the first reference an aggregate follows (the least),
/// if it follows any.
fn first_via(agg: &hir::Aggregate) -> Option<usize> {
    let mut first: Option<usize> = None;
    let mut visit = |c: &Column| {
        if let Column::Follow { via, .. } = c {
            if let Column::Field(i) = **via {
                first = Some(first.map_or(i, |f| f.min(i)));
            }
        }
    };
    agg.value.iter().for_each(&mut visit);
    if let Some(f) = &agg.filter {
        f.visit_columns(&mut visit);
    }
    first
}

/// An aggregate's filter split around its joins: rows with no group (an
/// optional reference left null) and rows failing a part of the filter that
/// reads only the event's own fields would be carried through the joins
/// only to be dropped after them. (`a and b` keeps a row exactly when
/// filtering by `a`, then by `b`, does.) (before the joins, after them)
fn split_for_join(program: &Program, agg: &hir::Aggregate) -> (Option<Expr>, Option<Expr>) {
    let mut before = Vec::new();
    let field = &program.events[agg.event].fields[agg.group];
    if field.nullable {
        let group = Expr { kind: ExprKind::Column(Column::Field(agg.group)), ty: field.ty };
        before.push(Expr { kind: ExprKind::IsNull { expr: Box::new(group), negated: true }, ty: Type::Bool });
    }
    let mut after = Vec::new();
    for part in agg.filter.clone().map(conjuncts).unwrap_or_default() {
        let mut own = true;
        part.visit_columns(&mut |c| own &= matches!(c, Column::Field(_)));
        if own {
            before.push(part)
        } else {
            after.push(part)
        }
    }
    (conjunction(before), conjunction(after))
}

/// The joins whose rows are left unfiltered before them: those where
/// aggregates would drop different rows, and so would each arrange their own
/// rows, where unfiltered they share one arrangement of them all. (The
/// runtime keeps a join's rows in the join's own operator, so joins share
/// them when they are one node: the same rows looking up the same row.)
fn unsplit_joins(program: &Program) -> HashSet<JoinKey> {
    let mut before_of: HashMap<JoinKey, Option<Expr>> = HashMap::new();
    let mut unsplit = HashSet::new();
    for agg in &program.aggregates {
        let Some(via) = first_via(agg) else { continue };
        let key = (agg.event, agg.window_ms, via);
        let before = split_for_join(program, agg).0;
        match before_of.get(&key) {
            Some(other) if *other != before => {
                unsplit.insert(key);
            }
            Some(_) => {}
            None => {
                before_of.insert(key, before);
            }
        }
    }
    unsplit
}

/// The tags computed on read (see `OnRead`): expression tags that follow a
/// reference and that read only what the serving state holds (not a lifted
/// inline aggregate, which it does not); and the definitions the dataflow
/// reads. A tag computed on read that the dataflow reads is evaluated there
/// too, but the serving state keeps none of its values: a segment on
/// `home_store.revenue_7d * 2 > spend_90d` re-evaluates every user of a
/// store whose revenue moved, but the tag itself is not published for each
/// of them. (A segment that only tests the store's revenue reads a tag of
/// the store instead: see `pushdown`.)
pub(crate) fn computed_on_read(program: &Program) -> (HashSet<Def>, HashSet<Def>) {
    fn defs_in(column: &Column, acc: &mut HashSet<Def>) {
        match column {
            Column::Field(_) => {}
            Column::Tag(t) => {
                acc.insert(Def::Tag(*t));
            }
            Column::Segment(s) => {
                acc.insert(Def::Segment(*s));
            }
            Column::Follow { via, target, .. } => {
                defs_in(via, acc);
                defs_in(target, acc);
            }
        }
    }
    let expr_of = |def: Def| match def {
        Def::Tag(t) => &program.tags[t].expr,
        Def::Segment(s) => &program.segments[s].expr,
    };
    let mut on_read = HashSet::new();
    for &def in &program.order {
        let Def::Tag(t) = def else { continue };
        let expr = &program.tags[t].expr;
        if program.tags[t].anonymous || matches!(expr.kind, ExprKind::Aggregate(_)) {
            continue;
        }
        let (mut follows, mut lifted) = (false, false);
        expr.visit_columns(&mut |c| {
            follows |= matches!(c, Column::Follow { .. });
            let mut defs = HashSet::new();
            defs_in(c, &mut defs);
            // The serving state holds no anonymous tag: neither a lifted
            // aggregate nor a part `pushdown` moved (so a definition it
            // rewrote, which reads one, is never computed on read).
            lifted |= defs.iter().any(|d| matches!(d, Def::Tag(t) if program.tags[*t].anonymous));
        });
        if follows && !lifted {
            on_read.insert(def);
        }
    }
    // What the dataflow reads: every aggregate's value and filter, every
    // definition it keeps, and every tag computed on read that one of those
    // reads (so evaluated in the dataflow too), until nothing is added. A
    // tag computed on read that only others computed on read read is left
    // to the serving state, which reads it through them.
    let mut read = HashSet::new();
    for agg in &program.aggregates {
        agg.value.iter().for_each(|c| defs_in(c, &mut read));
        if let Some(f) = &agg.filter {
            f.visit_columns(&mut |c| defs_in(c, &mut read));
        }
    }
    for &def in program.order.iter().filter(|d| !on_read.contains(*d)) {
        expr_of(def).visit_columns(&mut |c| defs_in(c, &mut read));
    }
    let mut visited: HashSet<Def> = HashSet::new();
    loop {
        let next: Vec<Def> = read.iter().copied().filter(|d| on_read.contains(d) && !visited.contains(d)).collect();
        if next.is_empty() {
            break;
        }
        for def in next {
            visited.insert(def);
            expr_of(def).visit_columns(&mut |c| defs_in(c, &mut read));
        }
    }
    (on_read, read)
}

/// The parts of `a and b and ...`, in order.
fn conjuncts(e: Expr) -> Vec<Expr> {
    match e.kind {
        ExprKind::Binary(hir::BinaryOp::And, l, r) => {
            let mut parts = conjuncts(*l);
            parts.extend(conjuncts(*r));
            parts
        }
        kind => vec![Expr { kind, ty: e.ty }],
    }
}

/// `a and b and ...` of `parts`; none when there are no parts.
fn conjunction(parts: Vec<Expr>) -> Option<Expr> {
    parts
        .into_iter()
        .reduce(|l, r| Expr { kind: ExprKind::Binary(hir::BinaryOp::And, Box::new(l), Box::new(r)), ty: Type::Bool })
}

/// Whether an aggregate's rows carry `at` and `id` to be ordered by.
fn orders_by_time(agg: &hir::Aggregate) -> bool {
    matches!(agg.func, AggFunc::First | AggFunc::Last) || strategy(agg) == Strategy::Expiring
}

/// The columns an aggregate reads: its value's and its filter's.
fn aggregate_columns(agg: &hir::Aggregate) -> Vec<Column> {
    let mut columns: Vec<Column> = agg.value.iter().cloned().collect();
    if let Some(f) = &agg.filter {
        f.visit_columns(&mut |c| columns.push(c.clone()));
    }
    columns
}

/// Whether an aggregate's value or filter reads a column of an instance an
/// event field refers to (its rows are then joined with that instance's, and
/// change when it does).
fn follows_a_reference(agg: &hir::Aggregate) -> bool {
    let follows = |c: &Column| matches!(c, Column::Follow { via, .. } if matches!(**via, Column::Field(_)));
    let mut any = agg.value.as_ref().is_some_and(follows);
    if let Some(f) = &agg.filter {
        f.visit_columns(&mut |c| any |= follows(c));
    }
    any
}

#[cfg(test)]
mod tests {
    use crate::plan::Node;

    #[test]
    fn a_widened_constant_is_widened_once_when_lowered() {
        use super::lower_expr;
        use crate::eval::ScalarExpr;
        use crate::hir::{Expr, ExprKind};
        use crate::value::{Decimal, Type, Value, F64};
        let five = || Box::new(Expr { kind: ExprKind::Literal(Value::Int(5)), ty: Type::Int });
        let widened = |ty| lower_expr(&Expr { kind: ExprKind::Widen(five()), ty }, &|_| None);
        assert_eq!(widened(Type::Float), ScalarExpr::Literal(Value::Float(F64(5.0))));
        assert_eq!(widened(Type::Decimal), ScalarExpr::Literal(Value::Decimal(Decimal::from_int(5))));
    }

    const MODEL: &str =
        "entity user { key id: string; }\nevent visit { user: user; }\ntag user.visits = count(visit within 7d);\n";

    fn definitions(text: &str) -> u64 {
        crate::compile_str("m.eql", text).map_err(|(_, d)| format!("{d:?}")).unwrap().plan.definitions
    }

    #[test]
    fn the_definitions_fingerprint_follows_definitions_not_layout() {
        let base = definitions(MODEL);
        assert_eq!(
            base,
            definitions(&format!("-- a comment\n\n{MODEL}")),
            "comments and blank lines are not definitions"
        );
        assert_ne!(base, definitions(&MODEL.replace("7d", "30d")), "a changed window is a changed definition");
    }

    /// The expressions each gather of `entity` evaluates (lookup gathers,
    /// which evaluate none, left out), in plan order.
    fn gathers(text: &str, entity: &str) -> Vec<Vec<String>> {
        use crate::plan::Node;
        let plan = crate::compile_str("m.eql", text).map_err(|(_, d)| format!("{d:?}")).unwrap().plan;
        let e = plan.entities.iter().position(|x| x.name == entity).unwrap();
        plan.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Gather { entity, exprs, .. } if *entity == e && !exprs.is_empty() => {
                    Some(exprs.iter().map(|x| x.name.clone()).collect())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_entitys_expressions_share_a_gather_unless_that_makes_a_cycle() {
        let schema = "entity store { key id: string; }\n\
            entity product { key sku: string; }\n\
            entity user { key id: string; home: store?; birth_year: int?; }\n\
            event order { user: user; store: store?; product: product; amount: decimal; }\n\
            tag store.revenue = sum(order.amount within 7d);\n\
            segment hot on store = revenue > 100;\n\
            tag user.orders = count(order within 30d);\n";
        // Fields only, an aggregate, and a segment of the user's store that
        // reads nothing of the users: one gather.
        let text = format!(
            "{schema}tag user.age = 2026 - birth_year;\n\
             segment frequent on user = orders >= 3;\n\
             segment regulars on user = home in hot and frequent;\n"
        );
        assert_eq!(gathers(&text, "user"), [["user.age", "frequent", "regulars"]]);
        // A user segment that a store tag counts, read back by users: the
        // second can only follow the store's gather, which follows the first.
        let text = format!(
            "{schema}segment frequent on user = orders >= 3;\n\
             tag store.frequent_buyers = count(order where user.frequent within 30d);\n\
             segment loyal on store = frequent_buyers > 5;\n\
             segment loyal_home on user = home in loyal;\n"
        );
        assert_eq!(gathers(&text, "user"), [["frequent"], ["loyal_home"]]);
        // Stores' and products' segments that read each other's: the stores'
        // (first in dependency order) merge into one gather; then the
        // products' cannot (their gather would read the stores', which
        // reads it).
        let text = format!(
            "{schema}tag product.buyers = count_distinct(order.user within 30d);\n\
             segment popular on product = buyers >= 2;\n\
             tag store.popular_orders = count(order where product.popular within 30d);\n\
             segment quiet on store = popular_orders < 2;\n\
             tag product.hot_store_orders = count(order where store.hot within 30d);\n\
             segment hot_products on product = hot_store_orders >= 2;\n"
        );
        assert_eq!(gathers(&text, "store"), [["hot", "quiet"]]);
        assert_eq!(gathers(&text, "product"), [["popular"], ["hot_products"]]);
        // A user segment counted over transfers to users of another: in one
        // gather with it, the gather would read what it computes.
        let text = format!(
            "{schema}event transfer {{ sender: user; receiver: user; }}\n\
             segment frequent on user = orders >= 3;\n\
             tag user.sent_to_frequent = count(transfer by sender where receiver.frequent within 30d);\n\
             segment generous on user = sent_to_frequent >= 2;\n"
        );
        assert_eq!(gathers(&text, "user"), [["frequent"], ["generous"]]);
    }

    #[test]
    fn a_definition_joins_a_lower_gather_alone_when_others_of_its_layer_cannot() {
        // `shop in hot` reads the user's own tag `shop` through a join: it
        // stays a layer above it. The rest of that layer joins the first
        // gather: a segment of the tag-followed store (`fav_store in hot`),
        // and one two hops away (`home.region in busy_region`).
        let text = "entity region { key id: string; }\n\
            entity store { key id: string; region: region?; }\n\
            entity user { key id: string; home: store?; }\n\
            event order { user: user; store: store?; amount: decimal; }\n\
            event visit { user: user; region: region; }\n\
            tag store.revenue = sum(order.amount within 7d);\n\
            segment hot on store = revenue > 100;\n\
            tag region.visits = count(visit within 7d);\n\
            segment busy_region on region = visits > 10;\n\
            tag user.orders = count(order within 30d);\n\
            segment frequent on user = orders >= 3;\n\
            tag user.fav_store = mode(order.store within 30d);\n\
            segment fav_is_hot on user = fav_store in hot and frequent;\n\
            tag user.shop = coalesce(fav_store, home);\n\
            segment shop_hot on user = shop in hot;\n\
            segment home_region_busy on user = home.region in busy_region and frequent;\n";
        assert_eq!(
            gathers(text, "user"),
            [vec!["user.shop", "frequent", "fav_is_hot", "home_region_busy"], vec!["shop_hot"]]
        );
    }

    #[test]
    fn leaf_tags_that_follow_a_reference_are_computed_on_read() {
        let text = "entity store { key id: string; region: string?; }\n\
            entity user { key id: string; home: store?; city: string?; }\n\
            event order { user: user; store: store?; amount: decimal; }\n\
            tag store.revenue = sum(order.amount within 7d);\n\
            segment busy on store = revenue > 100;\n\
            tag user.home_revenue = home.revenue;\n\
            tag user.note = case when home in busy then coalesce(home.region, city) else id end;\n\
            tag user.read_by_segment = home.revenue * 2;\n\
            segment rich_home on user = read_by_segment > count(order within 1d);\n\
            tag user.own_only = coalesce(city, id);\n\
            tag user.with_inline = home.revenue + count(order within 1d);\n\
            tag user.doubled = home.revenue * 2;\n\
            tag user.doubled_again = doubled + home.revenue;\n\
            tag user.filtered = home.revenue - 1;\n\
            tag store.filtered_orders = count(order where user.filtered > amount within 1d);\n";
        let plan = crate::compile_str("m.eql", text).map_err(|(_, d)| format!("{d:?}")).unwrap().plan;
        let on_read: Vec<&str> = plan.outputs.iter().filter(|o| o.on_read.is_some()).map(|o| o.name.as_str()).collect();
        // A tag a segment reads too (its gather evaluates it for the
        // segment), one another computed on read reads, one an aggregate's
        // filter reads; not one that follows nothing, nor one reading a
        // lifted aggregate.
        assert_eq!(on_read, ["home_revenue", "note", "read_by_segment", "doubled", "doubled_again", "filtered"]);
        let evaluated: Vec<&str> = plan
            .nodes
            .iter()
            .flat_map(|n| match n {
                Node::Gather { exprs, .. } => exprs.iter().map(|e| e.name.as_str()).collect(),
                _ => Vec::new(),
            })
            .collect();
        // Read by the dataflow: evaluated there. Read only on read: not.
        assert!(evaluated.contains(&"user.filtered"), "{evaluated:?}");
        assert!(!evaluated.contains(&"user.doubled") && !evaluated.contains(&"user.doubled_again"), "{evaluated:?}");
        assert!(plan.outputs.iter().all(|o| o.on_read.is_some() != o.node.is_some()));
        let text = crate::explain::plan_text(&plan);
        assert!(text.contains("computed on read: `home.revenue`"), "{text}");
        let rich_home = plan.outputs.iter().find(|o| o.name == "rich_home").expect("the segment");
        let Some(Node::Project { source, .. }) = rich_home.node.map(|n| &plan.nodes[n]) else {
            panic!("the segment is kept by the dataflow: {text}")
        };
        let Node::Gather { exprs, .. } = &plan.nodes[*source] else { panic!("a gather: {text}") };
        assert!(exprs.iter().any(|e| e.name == "user.read_by_segment"), "{text}");
    }

    #[test]
    fn a_tag_computed_on_read_names_the_attributes_it_reads_in_its_lineage() {
        // No dataflow node reads either entity's attributes.
        let text = "entity store { key id: string; region: string?; }\n\
            entity user { key id: string; home: store?; }\n\
            tag user.home_region = home.region;\n";
        let plan = crate::compile_str("m.eql", text).map_err(|(_, d)| format!("{d:?}")).unwrap().plan;
        let lineage: Vec<String> = plan.outputs[0].inputs.iter().map(|&i| plan.input_name(i)).collect();
        assert_eq!(lineage, ["user attributes", "store attributes"]);
    }

    #[test]
    fn aggregates_sharing_a_join_keep_its_rows_unfiltered() {
        use crate::plan::Node;
        let model = |tags: &str| {
            format!(
                "entity store {{ key id: string; }}\nentity product {{ key sku: string; kind: string?; }}\n\
                 entity user {{ key id: string; }}\n\
                 event order {{ user: user; store: store?; product: product; amount: decimal; }}\n{tags}"
            )
        };
        let joins_and_filters = |tags: &str| {
            let plan = crate::compile_str("m.eql", &model(tags)).map_err(|(_, d)| format!("{d:?}")).unwrap().plan;
            let filters = plan.nodes.iter().filter(|n| matches!(n, Node::Filter { .. })).count();
            (plan.arrangements.len(), filters)
        };
        // By store and by user: filtered, each would arrange its own rows;
        // unfiltered, they share one arrangement (and the product lookup's).
        let two_groups = "tag store.kinds = count(order where product.kind = \"a\" within 7d);\n\
                          tag user.kinds = count(order where product.kind = \"a\" within 7d);\n";
        assert_eq!(joins_and_filters(two_groups), (2, 1));
        // The same rows dropped before the join (those with no store): one
        // filter before it, still one arrangement, and a filter after it each.
        let one_group = "tag store.kinds = count(order where product.kind = \"a\" within 7d);\n\
                         tag store.other = count(order where product.kind = \"b\" within 7d);\n";
        assert_eq!(joins_and_filters(one_group), (2, 3));
    }

    #[test]
    fn rows_a_join_would_carry_to_no_avail_are_dropped_before_it() {
        let model = |tag: &str| {
            format!(
                "entity store {{ key id: string; }}\nentity product {{ key sku: string; kind: string?; }}\n\
                 event order {{ store: store?; product: product; amount: decimal; }}\ntag store.t = {tag};\n"
            )
        };
        // (tag, the filter before the join, the filter after it)
        for (tag, before, after) in [
            ("max(order.product.kind within 7d)", Some("store is not null"), None),
            (
                "count(order where amount > 1 and product.kind = \"x\" and amount < 9)",
                Some("((store is not null) and (amount > 1)) and (amount < 9)"),
                Some("product.kind = \"x\""),
            ),
            // An `or` is one part: it reads a followed column, so it waits for the join.
            (
                "count(order where amount > 1 or product.kind = \"x\")",
                Some("store is not null"),
                Some("(amount > 1) or (product.kind = \"x\")"),
            ),
            // Without a join, nothing moves.
            ("count(order where amount > 1)", Some("amount > 1"), None),
        ] {
            let plan = crate::compile_str("m.eql", &model(tag)).map_err(|(_, d)| format!("{d:?}")).unwrap().plan;
            let text = crate::explain::plan_text(&plan);
            // The plan prints as a tree, each node above its sources: a
            // filter indented deeper than the join runs before it.
            let depth = |line: &str| line.len() - line.trim_start().len();
            let join = text.lines().find(|l| l.contains(" Join ")).map_or(0, depth);
            let (mut found_before, mut found_after) = (None, None);
            for line in text.lines() {
                if let Some((_, predicate)) = line.split_once("Filter predicate=`") {
                    let slot = if depth(line) > join { &mut found_before } else { &mut found_after };
                    assert!(slot.replace(predicate.trim_end_matches('`')).is_none(), "{tag}:\n{text}");
                }
            }
            assert_eq!((found_before, found_after), (before, after), "{tag}:\n{text}");
        }
    }

    #[test]
    fn only_windowed_rows_that_follow_no_reference_expire_in_order() {
        use crate::plan::{Node, Strategy};
        let model = |tag: &str| {
            format!(
                "entity user {{ key id: string; }}\nentity product {{ key sku: string; kind: string?; }}\n\
                 event order {{ user: user; product: product; amount: decimal; }}\ntag user.t = {tag};\n"
            )
        };
        for (tag, want) in [
            ("last(order.amount within 7d)", Strategy::Expiring),
            ("max(order.amount where amount > 1 within 7d)", Strategy::Expiring),
            ("min(order.amount within 7d)", Strategy::Expiring),
            ("first(order.amount within 7d)", Strategy::Ordered),
            ("last(order.amount)", Strategy::Running),
            ("last(order.product.kind within 7d)", Strategy::Ordered),
            ("last(order.amount where product.kind = \"x\" within 7d)", Strategy::Ordered),
            ("max(order.amount where product.kind = \"x\" within 7d)", Strategy::Values),
            // A reference orders by its key, which rows do not carry.
            ("max(order.product within 7d)", Strategy::Values),
        ] {
            let plan = crate::compile_str("m.eql", &model(tag)).map_err(|(_, d)| format!("{d:?}")).unwrap().plan;
            let strategies: Vec<Strategy> = plan
                .nodes
                .iter()
                .filter_map(|n| match n {
                    Node::Aggregate { strategy, .. } => Some(*strategy),
                    _ => None,
                })
                .collect();
            assert_eq!(strategies, [want], "{tag}");
        }
    }
}
