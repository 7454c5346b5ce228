//! Text forms of the IR and the plan, for `segflow explain`.
//!
//! The plan is printed as one tree per output (tag or segment), one operator per
//! line with `key=value` attributes, children indented under the operator that
//! reads them. A node shared by several outputs is printed in full the first
//! time and as `%N (shared, see above)` after that, so sharing is visible.

use crate::eval::ScalarExpr;
use crate::hir::{self, Column, Def, Expr, ExprKind, Program};
use crate::plan::*;
use crate::value::{EntityId, Type};
use std::fmt::Write;

pub fn type_name(entities: &[hir::Entity], t: Type) -> String {
    match t {
        Type::Bool => "bool".into(),
        Type::Int => "int".into(),
        Type::Float => "float".into(),
        Type::Decimal => "decimal".into(),
        Type::String => "string".into(),
        Type::Timestamp => "timestamp".into(),
        Type::Ref(e) => entities[e].name.clone(),
        Type::Null => "null".into(),
    }
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hir_text(self))
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&plan_text(self))
    }
}

// ---------- HIR ----------

pub fn hir_text(p: &Program) -> String {
    let mut out = String::new();
    for e in &p.entities {
        let _ = writeln!(out, "entity {}", e.name);
        for (i, f) in e.fields.iter().enumerate() {
            let key = if i == e.key { "key " } else { "" };
            let _ = writeln!(
                out,
                "  {key}{}: {}{}",
                f.name,
                type_name(&p.entities, f.ty),
                if f.nullable { "?" } else { "" }
            );
        }
    }
    for ev in &p.events {
        let _ = writeln!(out, "event {}", ev.name);
        for f in &ev.fields {
            let _ =
                writeln!(out, "  {}: {}{}", f.name, type_name(&p.entities, f.ty), if f.nullable { "?" } else { "" });
        }
    }
    let _ = writeln!(out, "definitions (in dependency order):");
    for &def in &p.order {
        match def {
            Def::Tag(t) => {
                let tag = &p.tags[t];
                let anon = if tag.anonymous { " (lifted)" } else { "" };
                let _ = writeln!(
                    out,
                    "  tag {}.{}: {}{anon} = {}",
                    p.entities[tag.entity].name,
                    tag.name,
                    type_name(&p.entities, tag.ty),
                    expr_text(p, Scope::Entity(tag.entity), &tag.expr)
                );
            }
            Def::Segment(s) => {
                let seg = &p.segments[s];
                let _ = writeln!(
                    out,
                    "  segment {} on {} = {}",
                    seg.name,
                    p.entities[seg.entity].name,
                    expr_text(p, Scope::Entity(seg.entity), &seg.expr)
                );
            }
        }
    }
    for q in &p.queries {
        let items: Vec<String> = q.items.iter().map(|i| i.name.clone()).collect();
        let _ = writeln!(out, "query from {}: {}", p.entities[q.entity].name, items.join(", "));
    }
    out
}

#[derive(Clone, Copy)]
enum Scope {
    Entity(EntityId),
    Event(hir::EventId),
}

fn column_text(p: &Program, scope: Scope, c: &Column) -> String {
    match scope {
        Scope::Entity(e) => p.column_name(e, c),
        Scope::Event(ev) => p.event_column_name(ev, c),
    }
}

fn expr_text(p: &Program, scope: Scope, e: &Expr) -> String {
    let go = |x: &Expr| expr_text(p, scope, x);
    let nested = |x: &Expr| match x.kind {
        ExprKind::Binary(..) | ExprKind::IsNull { .. } | ExprKind::InList { .. } => format!("({})", go(x)),
        _ => go(x),
    };
    match &e.kind {
        ExprKind::Literal(v) => ScalarExpr::Literal(v.clone()).display(&|_| String::new()),
        ExprKind::Column(c) => column_text(p, scope, c),
        ExprKind::Aggregate(a) => aggregate_text(p, &p.aggregates[*a]),
        ExprKind::Widen(x) => format!("{}::{}", nested(x), type_name(&p.entities, e.ty)),
        ExprKind::Unary(hir::UnaryOp::Not, x) => format!("not {}", nested(x)),
        ExprKind::Unary(hir::UnaryOp::Neg, x) => format!("-{}", nested(x)),
        ExprKind::Binary(op, l, r) => format!("{} {} {}", nested(l), op.symbol(), nested(r)),
        ExprKind::IsNull { expr, negated } => format!("{} is {}null", nested(expr), if *negated { "not " } else { "" }),
        ExprKind::InList { expr, list, negated } => format!(
            "{} {}in [{}]",
            nested(expr),
            if *negated { "not " } else { "" },
            list.iter().map(go).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Case { whens, otherwise } => {
            let mut s = "case".to_string();
            for (c, v) in whens {
                let _ = write!(s, " when {} then {}", go(c), go(v));
            }
            if let Some(o) = otherwise {
                let _ = write!(s, " else {}", go(o));
            }
            s + " end"
        }
        ExprKind::Call(f, args) => format!("{}({})", f.name(), args.iter().map(go).collect::<Vec<_>>().join(", ")),
    }
}

pub fn aggregate_text(p: &Program, a: &hir::Aggregate) -> String {
    let ev = &p.events[a.event];
    let mut s = format!("{}({}", a.func.name(), ev.name);
    if let Some(v) = &a.value {
        let _ = write!(s, ".{}", p.event_column_name(a.event, v));
    }
    let _ = write!(s, " by {}", ev.fields[a.group].name);
    if let Some(f) = &a.filter {
        let _ = write!(s, " where {}", expr_text(p, Scope::Event(a.event), f));
    }
    if let Some(w) = a.window_ms {
        let _ = write!(s, " within {}", format_duration(w));
    }
    s + ")"
}

// ---------- plan ----------

pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan: {} inputs, {} arrangements, {} nodes, {} outputs",
        plan.inputs.len(),
        plan.arrangements.len(),
        plan.nodes.len(),
        plan.outputs.len()
    );
    let _ = writeln!(out, "inputs:");
    for (i, _) in plan.inputs.iter().enumerate() {
        let _ = writeln!(out, "  I{i} {}", input_text(plan, i));
    }
    let _ = writeln!(out, "arrangements:");
    for (i, a) in plan.arrangements.iter().enumerate() {
        let key = match a.key_field {
            Some(f) => format!("field={}", field_name(plan, a.node, f)),
            None => "key".to_string(),
        };
        let users = plan.nodes.iter().filter(|n| node_uses_arrangement(n, i)).count();
        let _ = writeln!(out, "  A{i} ArrangeBy source=%{} {key} readers={users}", a.node);
    }
    let _ = writeln!(out, "outputs:");
    let mut printed = vec![false; plan.nodes.len()];
    for o in &plan.outputs {
        let kind = match o.def {
            Def::Tag(_) if o.anonymous => "tag (lifted)",
            Def::Tag(_) => "tag",
            Def::Segment(_) => "segment",
        };
        let _ = writeln!(
            out,
            "  {kind} {}.{} type={} default={}",
            plan.entities[o.entity].name,
            o.name,
            type_name(&plan.entities, o.ty),
            ScalarExpr::Literal(o.default.clone()).display(&|_| String::new())
        );
        match (&o.on_read, o.node) {
            (Some(on_read), _) => {
                let names: Vec<String> = on_read.inputs.iter().map(|i| read_input_name(plan, o.entity, i)).collect();
                let _ = writeln!(out, "    computed on read: `{}`", on_read.expr.display(&|i| names[i].clone()));
            }
            (None, Some(node)) => node_tree(plan, node, 2, &mut printed, &mut out),
            (None, None) => {}
        }
    }
    let _ = writeln!(out, "lineage:");
    for o in plan.outputs.iter().filter(|o| !o.anonymous) {
        let inputs: Vec<String> = o.inputs.iter().map(|&i| plan.input_name(i)).collect();
        let _ = writeln!(out, "  {}.{} <- {}", plan.entities[o.entity].name, o.name, inputs.join(", "));
    }
    out
}

fn node_uses_arrangement(n: &Node, a: ArrangementId) -> bool {
    match n {
        Node::Enrich { left, right, .. } => *left == a || *right == a,
        _ => false,
    }
}

fn input_text(plan: &Plan, i: InputId) -> String {
    match &plan.inputs[i] {
        Input::Instances { entity } => format!("Instances entity={}", plan.entities[*entity].name),
        Input::Attributes { entity } => format!("Attributes entity={}", plan.entities[*entity].name),
        Input::Events { event, window_ms, fields } => {
            let w = window_ms.map_or("none".to_string(), format_duration);
            let names: Vec<&str> = fields.iter().map(|&f| plan.events[*event].fields[f].name.as_str()).collect();
            format!("Events event={} window={w} fields=[{}]", plan.events[*event].name, names.join(", "))
        }
    }
}

/// How a tag computed on read names what it reads (`home_store.revenue_7d`).
fn read_input_name(plan: &Plan, entity: EntityId, input: &ReadInput) -> String {
    let e = &plan.entities[entity];
    match input {
        ReadInput::Key => e.fields[e.key].name.clone(),
        ReadInput::Attribute(i) => e.fields[*i].name.clone(),
        ReadInput::Def(def) => match plan.outputs.iter().find(|o| o.def == *def) {
            Some(o) => o.name.clone(),
            None => format!("{def:?}"),
        },
        ReadInput::Follow { via, entity: target_entity, target } => {
            format!("{}.{}", read_input_name(plan, entity, via), read_input_name(plan, *target_entity, target))
        }
    }
}

/// The name of field `f` of the rows a node produces.
pub fn field_name(plan: &Plan, node: NodeId, f: usize) -> String {
    row_names(plan, node).get(f).cloned().unwrap_or_else(|| format!("#{f}"))
}

/// Names of the fields of the rows a node produces (for row-shaped nodes).
pub fn row_names(plan: &Plan, node: NodeId) -> Vec<String> {
    match &plan.nodes[node] {
        Node::Input { input } => match &plan.inputs[*input] {
            Input::Instances { entity } => {
                vec!["key".into(), plan.entities[*entity].fields[plan.entities[*entity].key].name.clone()]
            }
            Input::Attributes { entity } => plan.entities[*entity].fields.iter().map(|f| f.name.clone()).collect(),
            Input::Events { event, fields, .. } => {
                fields.iter().map(|&f| plan.events[*event].fields[f].name.clone()).collect()
            }
        },
        Node::Enrich { source, via, lookup, .. } => {
            let mut names = row_names(plan, *source);
            let via_name = names.get(*via).cloned().unwrap_or_default();
            for n in row_names(plan, *lookup) {
                names.push(format!("{via_name}.{n}"));
            }
            names
        }
        Node::Filter { source, .. } => row_names(plan, *source),
        Node::Gather { entity, inputs, exprs, .. } => {
            let e = &plan.entities[*entity];
            let mut names = vec![e.fields[e.key].name.clone()];
            for i in inputs {
                names.push(match i {
                    GatherInput::Column { node, .. } => column_node_name(plan, *node),
                    GatherInput::Rows { node, field, .. } => field_name(plan, *node, *field),
                });
            }
            names.extend(exprs.iter().map(|e| e.name.rsplit('.').next().unwrap_or(&e.name).to_string()));
            names
        }
        Node::ColumnRows { source } => vec!["key".into(), column_node_name(plan, *source)],
        Node::Aggregate { .. } | Node::Project { .. } => vec![],
    }
}

fn column_node_name(plan: &Plan, node: NodeId) -> String {
    match plan.outputs.iter().find(|o| o.node == Some(node)) {
        Some(o) => o.name.clone(),
        None => match &plan.nodes[node] {
            Node::Project { source, slot, .. } => field_name(plan, *source, *slot),
            _ => format!("%{node}"),
        },
    }
}

fn node_tree(plan: &Plan, id: NodeId, depth: usize, printed: &mut [bool], out: &mut String) {
    let pad = "  ".repeat(depth);
    if printed[id] {
        let _ = writeln!(out, "{pad}%{id} (shared, see above)");
        return;
    }
    printed[id] = true;
    let line = node_line(plan, id);
    let _ = writeln!(out, "{pad}%{id} {line}");
    for s in plan.nodes[id].sources() {
        node_tree(plan, s, depth + 1, printed, out);
    }
}

fn node_line(plan: &Plan, id: NodeId) -> String {
    match &plan.nodes[id] {
        Node::Input { input } => format!("Input I{input} {}", input_text(plan, *input)),
        Node::Enrich { source, via, lookup, width, left, right } => format!(
            "Join via={} lookup=%{lookup} width={width} left=A{left} right=A{right} (rows of %{source}, left outer)",
            field_name(plan, *source, *via)
        ),
        Node::Filter { source, predicate } => {
            let names = row_names(plan, *source);
            format!(
                "Filter predicate=`{}`",
                predicate.display(&|i| names.get(i).cloned().unwrap_or_else(|| format!("#{i}")))
            )
        }
        Node::Aggregate { source, group, func, value, ty, strategy, .. } => {
            let names = row_names(plan, *source);
            let v = value.map_or("-".to_string(), |v| names.get(v).cloned().unwrap_or_default());
            format!(
                "Reduce func={} group={} value={v} type={} strategy={strategy:?}",
                func.name(),
                names.get(*group).cloned().unwrap_or_default(),
                type_name(&plan.entities, *ty)
            )
        }
        Node::Gather { entity, exprs, .. } => {
            let names = row_names(plan, id);
            let mut s = format!("Gather entity={} slots=[{}]", plan.entities[*entity].name, names.join(", "));
            for e in exprs {
                let _ = write!(
                    s,
                    " {}=`{}`",
                    e.name.rsplit('.').next().unwrap_or(&e.name),
                    e.expr.display(&|i| names.get(i).cloned().unwrap_or_default())
                );
            }
            s
        }
        Node::Project { source, slot, keep } => {
            format!("Project slot={} keep={keep:?}", field_name(plan, *source, *slot))
        }
        Node::ColumnRows { .. } => "ColumnRows".to_string(),
    }
}

/// The plan as a Graphviz graph: inputs, operators and outputs.
pub fn plan_dot(plan: &Plan) -> String {
    let mut out = String::from("digraph plan {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n");
    for i in 0..plan.inputs.len() {
        let _ = writeln!(out, "  I{i} [shape=cylinder, label=\"{}\"];", escape(&input_text(plan, i)));
    }
    for (id, node) in plan.nodes.iter().enumerate() {
        if let Node::Input { input } = node {
            let _ = writeln!(out, "  I{input} -> n{id};");
        }
        let label = node_line(plan, id);
        let short: String = label.split_whitespace().next().unwrap_or("").to_string();
        let _ =
            writeln!(out, "  n{id} [shape=box, label=\"%{id} {}\", tooltip=\"{}\"];", escape(&short), escape(&label));
        for s in node.sources() {
            let _ = writeln!(out, "  n{s} -> n{id};");
        }
    }
    for (k, o) in plan.outputs.iter().enumerate().filter(|(_, o)| !o.anonymous) {
        let kind = if matches!(o.def, Def::Segment(_)) { "segment" } else { "tag" };
        let on_read = if o.on_read.is_some() { " (computed on read)" } else { "" };
        let (entity, name) = (&plan.entities[o.entity].name, &o.name);
        let _ = writeln!(out, "  o{k} [shape=ellipse, label=\"{kind} {entity}.{name}{on_read}\"];");
        if let Some(node) = o.node {
            let _ = writeln!(out, "  n{node} -> o{k};");
        }
    }
    out.push_str("}\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
