//! Name resolution and type checking: AST -> typed IR ([`crate::hir`]).
//!
//! Declarations are entered first (entities and events, then their fields, then
//! the names of tags and segments), so definitions may appear in any order in a
//! file. Definitions are then resolved on demand, depth first: resolving a tag
//! that reads another tag resolves that one first, which yields its type and,
//! through the stack of definitions in progress, names any cycle exactly.
//! Every error is collected; resolution goes on past it with an error type so
//! that one run reports everything wrong with a file.

use crate::hir::{self, AggFunc, Column, Def, Expr, ExprKind, Function, Program, UnaryOp};
use crate::value::{Decimal, EntityId, Type, Value, F64};
use segflow_grammar::ast::{self, BinaryOp, Ident, LiteralKind};
use segflow_grammar::{did_you_mean, Diagnostic, Span};
use std::collections::HashMap;

/// Resolves a parsed file. Returns the program when there was no error.
pub fn resolve(file: &ast::File) -> (Option<Program>, Vec<Diagnostic>) {
    let mut r = Resolver::default();
    r.declare(file);
    r.resolve_definitions();
    r.resolve_queries(file);
    let has_error = r.diags.iter().any(Diagnostic::is_error);
    let order = r.order.clone();
    let program = Program {
        entities: r.entities,
        events: r.events,
        tags: r.tags.into_iter().map(|t| t.expect("every tag resolved")).collect(),
        segments: r.segments.into_iter().map(|s| s.expect("every segment resolved")).collect(),
        aggregates: r.aggregates,
        queries: r.queries,
        order,
    };
    (if has_error { None } else { Some(program) }, r.diags)
}

/// A definition as written, waiting to be resolved.
struct Pending<'a> {
    entity: Option<EntityId>,
    name: Ident,
    written_ty: Option<&'a ast::TypeExpr>,
    expr: &'a ast::Expr,
    span: Span,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Pending,
    InProgress,
    Done,
}

/// Where a name is looked up.
#[derive(Clone, Copy)]
enum Scope {
    /// Columns of an entity instance (tags, segments, queries).
    Entity(EntityId),
    /// Fields of one event (inside an aggregate).
    Event(hir::EventId),
}

#[derive(Default)]
struct Resolver<'a> {
    diags: Vec<Diagnostic>,
    entities: Vec<hir::Entity>,
    events: Vec<hir::Event>,
    entity_names: HashMap<String, EntityId>,
    event_names: HashMap<String, hir::EventId>,
    /// (entity, tag name) -> tag id
    tag_names: HashMap<(EntityId, String), hir::TagId>,
    segment_names: HashMap<String, hir::SegmentId>,
    pending_tags: Vec<Pending<'a>>,
    pending_segments: Vec<Pending<'a>>,
    tag_state: Vec<State>,
    segment_state: Vec<State>,
    tags: Vec<Option<hir::Tag>>,
    segments: Vec<Option<hir::Segment>>,
    /// Declared (or, once resolved, inferred) tag types.
    tag_types: Vec<Option<Type>>,
    aggregates: Vec<hir::Aggregate>,
    /// Lifted aggregate -> its anonymous tag, so equal inline aggregates share one.
    lifted: HashMap<hir::AggId, hir::TagId>,
    stack: Vec<(Def, Span)>,
    order: Vec<Def>,
    queries: Vec<hir::Query>,
    /// The definition whose expression is being resolved, for lifting names.
    current: Option<(Def, usize)>,
}

const BUILTIN_TYPES: [&str; 6] = ["bool", "int", "float", "decimal", "string", "timestamp"];

impl<'a> Resolver<'a> {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    // ---------- declarations ----------

    fn declare(&mut self, file: &'a ast::File) {
        for item in &file.items {
            match item {
                ast::Item::Entity(e) => self.declare_name(&e.name, true),
                ast::Item::Event(e) => self.declare_name(&e.name, false),
                _ => {}
            }
        }
        for item in &file.items {
            match item {
                ast::Item::Entity(e) => {
                    let fields = self.fields(&e.fields, &e.name);
                    let keys: Vec<usize> =
                        e.fields.iter().enumerate().filter(|(_, f)| f.is_key).map(|(i, _)| i).collect();
                    let key = match keys.as_slice() {
                        [k] => *k,
                        [] => {
                            self.error(
                                Diagnostic::error(format!("entity `{}` has no key", e.name), e.name.span)
                                    .with_help("mark exactly one attribute with `key`, e.g. `key id: string;`"),
                            );
                            0
                        }
                        [_, second, ..] => {
                            self.error(
                                Diagnostic::error(
                                    format!("entity `{}` has more than one key", e.name),
                                    e.fields[*second].span,
                                )
                                .with_help("an entity has exactly one `key` attribute"),
                            );
                            keys[0]
                        }
                    };
                    if let Some(f) = fields.get(key) {
                        if f.nullable || !matches!(f.ty, Type::String | Type::Int) {
                            self.error(
                                Diagnostic::error("a key must be a non-null `string` or `int`", f.span)
                                    .with_label("key declared here"),
                            );
                        }
                    }
                    if self.entity_names.get(&e.name.name) == Some(&self.entities.len()) {
                        self.entities.push(hir::Entity { name: e.name.name.clone(), fields, key, span: e.name.span });
                    } else {
                        // a duplicate: keep indexes aligned with the first declaration only
                    }
                }
                ast::Item::Event(e) => {
                    let mut fields = vec![
                        hir::Field { name: "id".into(), ty: Type::String, nullable: true, span: e.name.span },
                        hir::Field { name: "at".into(), ty: Type::Timestamp, nullable: false, span: e.name.span },
                    ];
                    for f in &e.fields {
                        if f.is_key {
                            self.error(
                                Diagnostic::error(format!("event `{}` cannot have a key", e.name), f.span)
                                    .with_note("Events are immutable facts; their optional idempotency key is the implicit `id` field.")
                                    .with_help("remove `key`"),
                            );
                        }
                        if f.name.name == "id" || f.name.name == "at" {
                            self.error(
                                Diagnostic::error(
                                    format!("`{}` is an implicit field of every event", f.name),
                                    f.name.span,
                                )
                                .with_help(
                                    "remove this line; every event already has `id: string?` and `at: timestamp`",
                                ),
                            );
                        }
                    }
                    fields.extend(self.fields(&e.fields, &e.name));
                    if self.event_names.get(&e.name.name) == Some(&self.events.len()) {
                        self.events.push(hir::Event { name: e.name.name.clone(), fields, span: e.name.span });
                    }
                }
                _ => {}
            }
        }
        // Tags and segments: names first, so any definition can read any other.
        for item in &file.items {
            match item {
                ast::Item::Tag(t) => self.declare_tag(t),
                ast::Item::Segment(s) => self.declare_segment(s),
                _ => {}
            }
        }
    }

    fn declare_name(&mut self, name: &Ident, entity: bool) {
        if self.entity_names.contains_key(&name.name) || self.event_names.contains_key(&name.name) {
            self.error(
                Diagnostic::error(format!("`{}` is defined more than once", name), name.span)
                    .with_label("duplicate definition")
                    .with_help("entities and events share one namespace; rename one of them"),
            );
            return;
        }
        if entity {
            let id = self.entity_names.len();
            self.entity_names.insert(name.name.clone(), id);
        } else {
            let id = self.event_names.len();
            self.event_names.insert(name.name.clone(), id);
        }
    }

    fn fields(&mut self, decls: &[ast::FieldDecl], owner: &Ident) -> Vec<hir::Field> {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut out = Vec::new();
        for f in decls {
            if let Some(first) = seen.get(f.name.name.as_str()) {
                self.error(
                    Diagnostic::error(format!("field `{}` is declared twice in `{}`", f.name, owner), f.name.span)
                        .with_secondary(*first, "first declared here"),
                );
            }
            seen.insert(&f.name.name, f.name.span);
            let ty = self.type_expr(&f.ty);
            out.push(hir::Field { name: f.name.name.clone(), ty, nullable: f.ty.nullable, span: f.span });
        }
        out
    }

    fn type_expr(&mut self, t: &ast::TypeExpr) -> Type {
        let name = t.name.name.as_str();
        match name.to_ascii_lowercase().as_str() {
            "bool" | "boolean" => return Type::Bool,
            "int" => return Type::Int,
            "float" => return Type::Float,
            "decimal" => return Type::Decimal,
            "string" => return Type::String,
            "timestamp" => return Type::Timestamp,
            _ => {}
        }
        if let Some(&e) = self.entity_names.get(name) {
            return Type::Ref(e);
        }
        let candidates: Vec<&str> =
            BUILTIN_TYPES.iter().copied().chain(self.entity_names.keys().map(String::as_str)).collect();
        let mut d =
            Diagnostic::error(format!("unknown type `{name}`"), t.name.span).with_label("not a type or an entity");
        d = match did_you_mean(name, candidates.iter().copied()) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help("types are bool, int, float, decimal, string, timestamp, or an entity name"),
        };
        self.error(d);
        Type::Null
    }

    fn declare_tag(&mut self, t: &'a ast::TagDecl) {
        let Some(&entity) = self.entity_names.get(&t.entity.name) else {
            self.unknown_entity(&t.entity);
            return;
        };
        let e = &self.entities[entity];
        if let Some(f) = e.fields.iter().find(|f| f.name == t.name.name) {
            let span = f.span;
            self.error(
                Diagnostic::error(format!("`{}.{}` is already an attribute", t.entity, t.name), t.name.span)
                    .with_secondary(span, "attribute declared here")
                    .with_help("give the tag a different name"),
            );
            return;
        }
        let key = (entity, t.name.name.clone());
        if let Some(&first) = self.tag_names.get(&key) {
            let span = self.pending_tags[first].name.span;
            self.error(
                Diagnostic::error(format!("tag `{}.{}` is defined more than once", t.entity, t.name), t.name.span)
                    .with_label("duplicate definition")
                    .with_secondary(span, "first defined here"),
            );
            return;
        }
        let written_ty = t.ty.as_ref();
        let declared = written_ty.map(|ty| self.type_expr(ty));
        self.tag_names.insert(key, self.pending_tags.len());
        self.pending_tags.push(Pending {
            entity: Some(entity),
            name: t.name.clone(),
            written_ty,
            expr: &t.expr,
            span: t.span,
        });
        self.tag_state.push(State::Pending);
        self.tags.push(None);
        self.tag_types.push(declared);
    }

    fn declare_segment(&mut self, s: &'a ast::SegmentDecl) {
        let entity = match self.entity_names.get(&s.entity.name) {
            Some(&e) => Some(e),
            None => {
                self.unknown_entity(&s.entity);
                None
            }
        };
        if let Some(&first) = self.segment_names.get(&s.name.name) {
            let span = self.pending_segments[first].name.span;
            self.error(
                Diagnostic::error(format!("segment `{}` is defined more than once", s.name), s.name.span)
                    .with_label("duplicate definition")
                    .with_secondary(span, "first defined here"),
            );
            return;
        }
        if let Some(e) = entity {
            let clash = self.entities[e].fields.iter().any(|f| f.name == s.name.name)
                || self.tag_names.contains_key(&(e, s.name.name.clone()));
            if clash {
                self.error(
                    Diagnostic::error(
                        format!("segment `{}` has the name of a column of `{}`", s.name, s.entity),
                        s.name.span,
                    )
                    .with_help("segments are read by name like columns; give it a different name"),
                );
                return;
            }
        }
        self.segment_names.insert(s.name.name.clone(), self.pending_segments.len());
        self.pending_segments.push(Pending {
            entity,
            name: s.name.clone(),
            written_ty: None,
            expr: &s.expr,
            span: s.span,
        });
        self.segment_state.push(State::Pending);
        self.segments.push(None);
    }

    fn unknown_entity(&mut self, name: &Ident) {
        let mut d =
            Diagnostic::error(format!("unknown entity `{name}`"), name.span).with_label("no entity of this name");
        let names: Vec<String> = self.entity_names.keys().cloned().collect();
        if let Some(s) = did_you_mean(&name.name, names.iter().map(String::as_str)) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if self.event_names.contains_key(&name.name) {
            d = d.with_help(format!("`{name}` is an event; tags and segments belong to entities"));
        } else if !names.is_empty() {
            let mut names = names;
            names.sort();
            d = d.with_help(format!("declared entities: {}", names.join(", ")));
        }
        self.error(d);
    }

    // ---------- definitions ----------

    fn resolve_definitions(&mut self) {
        for t in 0..self.pending_tags.len() {
            self.ensure(Def::Tag(t), Span::default());
        }
        for s in 0..self.pending_segments.len() {
            self.ensure(Def::Segment(s), Span::default());
        }
    }

    /// Resolves `def` if not yet done; reports a cycle if it is in progress.
    fn ensure(&mut self, def: Def, used_at: Span) {
        let state = match def {
            Def::Tag(t) => self.tag_state[t],
            Def::Segment(s) => self.segment_state[s],
        };
        match state {
            State::Done => return,
            State::InProgress => {
                self.report_cycle(def, used_at);
                return;
            }
            State::Pending => {}
        }
        self.set_state(def, State::InProgress);
        self.stack.push((def, used_at));
        let saved = self.current.take();
        self.current = Some((def, 0));
        match def {
            Def::Tag(t) => self.resolve_tag(t),
            Def::Segment(s) => self.resolve_segment(s),
        }
        self.current = saved;
        self.stack.pop();
        self.set_state(def, State::Done);
        self.order.push(def);
    }

    fn set_state(&mut self, def: Def, state: State) {
        match def {
            Def::Tag(t) => self.tag_state[t] = state,
            Def::Segment(s) => self.segment_state[s] = state,
        }
    }

    fn pending_name(&self, def: Def) -> String {
        match def {
            Def::Tag(t) => {
                let p = &self.pending_tags[t];
                let e = p.entity.map(|e| self.entities[e].name.as_str()).unwrap_or("?");
                format!("{e}.{}", p.name)
            }
            Def::Segment(s) => format!("segment {}", self.pending_segments[s].name),
        }
    }

    fn report_cycle(&mut self, def: Def, used_at: Span) {
        let start = self.stack.iter().position(|(d, _)| *d == def).unwrap_or(0);
        let mut names: Vec<String> = self.stack[start..].iter().map(|(d, _)| self.pending_name(*d)).collect();
        names.push(self.pending_name(def));
        let mut d = Diagnostic::error(format!("cycle between definitions: {}", names.join(" -> ")), used_at)
            .with_label(format!("`{}` is read here, but it depends on this definition", self.pending_name(def)))
            .with_note("Tags and segments must not depend on themselves, directly or through others.");
        for (step, span) in &self.stack[start + 1..] {
            d = d.with_secondary(*span, format!("`{}` is read here", self.pending_name(*step)));
        }
        self.error(d.with_help("break the cycle by computing one of these from inputs only"));
    }

    fn resolve_tag(&mut self, t: usize) {
        let p = &self.pending_tags[t];
        let (entity, name, expr_ast, span, written) = (p.entity.unwrap(), p.name.clone(), p.expr, p.span, p.written_ty);
        let mut expr = self.top_expr(Scope::Entity(entity), expr_ast);
        let mut ty = expr.ty;
        if let (Some(written), Some(declared)) = (written, self.tag_types[t]) {
            if declared != Type::Null && expr.ty != Type::Null && declared != expr.ty {
                // A bare aggregate widened is an expression over it: the
                // aggregate is lifted into a tag of its own, which the
                // expression reads (left inside, it was computed nowhere, and
                // `tag n: decimal = count(...)` was always null).
                if let (ExprKind::Aggregate(agg), Some(_)) = (&expr.kind, widen(expr.clone(), declared)) {
                    expr = self.lift(entity, *agg);
                }
                if let Some(widened) = widen(expr.clone(), declared) {
                    expr = widened;
                } else {
                    self.error(
                        Diagnostic::error(
                            format!(
                                "type mismatch: tag `{}` is declared {} but its expression is {}",
                                name,
                                self.type_name(declared),
                                self.type_name(expr.ty)
                            ),
                            expr_ast.span,
                        )
                        .with_label(format!("this is {}", self.type_name(expr.ty)))
                        .with_secondary(written.span, "declared here"),
                    );
                }
            }
            ty = declared;
        }
        let null_literal =
            matches!(expr_ast.kind, ast::ExprKind::Literal(ast::Literal { kind: LiteralKind::Null, .. }));
        if ty == Type::Null && null_literal {
            // `tag x = null`: a string column of nulls is the least surprising reading.
            // An expression that failed to resolve keeps the error type instead, so
            // it causes no second error where it is read.
            ty = Type::String;
        }
        self.tag_types[t] = Some(ty);
        self.tags[t] = Some(hir::Tag { entity, name: name.name, ty, anonymous: false, expr, span });
    }

    fn resolve_segment(&mut self, s: usize) {
        let p = &self.pending_segments[s];
        let (entity, name, expr_ast, span) = (p.entity, p.name.clone(), p.expr, p.span);
        let Some(entity) = entity else {
            self.segments[s] =
                Some(hir::Segment { entity: 0, name: name.name, expr: Expr::literal(Value::Null, Type::Null), span });
            return;
        };
        let expr = self.top_expr(Scope::Entity(entity), expr_ast);
        if !matches!(expr.ty, Type::Bool | Type::Null) {
            self.error(
                Diagnostic::error(format!("segment `{}` needs a boolean condition", name), expr_ast.span)
                    .with_label(format!("this is {}, not bool", self.type_name(expr.ty)))
                    .with_help("compare it, e.g. `spend_90d >= 1000`"),
            );
        }
        self.segments[s] = Some(hir::Segment { entity, name: name.name, expr, span });
    }

    /// A definition's whole expression: a bare aggregate stays in place (the tag is
    /// the aggregate); aggregates nested deeper are lifted into anonymous tags.
    fn top_expr(&mut self, scope: Scope, e: &ast::Expr) -> Expr {
        if let (Scope::Entity(entity), ast::ExprKind::Call(call)) = (scope, &e.kind) {
            if AggFunc::from_name(&call.name.name).is_some() && matches!(self.current, Some((Def::Tag(_), _))) {
                if let Some(id) = self.aggregate(entity, call, e.span) {
                    let ty = self.aggregates[id].ty;
                    return Expr { kind: ExprKind::Aggregate(id), ty };
                }
                return error_expr();
            }
        }
        self.expr(scope, e)
    }

    // ---------- expressions ----------

    fn expr(&mut self, scope: Scope, e: &ast::Expr) -> Expr {
        match &e.kind {
            ast::ExprKind::Literal(l) => self.literal(l),
            ast::ExprKind::Path(path) => self.path(scope, path),
            ast::ExprKind::Unary(op, inner) => {
                let inner_e = self.expr(scope, inner);
                match op {
                    ast::UnaryOp::Not => {
                        self.expect_bool(&inner_e, inner, "`not`");
                        Expr { kind: ExprKind::Unary(UnaryOp::Not, Box::new(inner_e)), ty: Type::Bool }
                    }
                    ast::UnaryOp::Neg => {
                        if !inner_e.ty.is_numeric() && inner_e.ty != Type::Null {
                            self.mismatch(
                                inner.span,
                                format!("cannot negate {}", self.type_name(inner_e.ty)),
                                "a number is needed here",
                            );
                        }
                        let ty = inner_e.ty;
                        Expr { kind: ExprKind::Unary(UnaryOp::Neg, Box::new(inner_e)), ty }
                    }
                }
            }
            ast::ExprKind::Binary(op, l, r) => self.binary(scope, *op, l, r, e.span),
            ast::ExprKind::IsNull { expr, negated } => {
                let inner = self.expr(scope, expr);
                Expr { kind: ExprKind::IsNull { expr: Box::new(inner), negated: *negated }, ty: Type::Bool }
            }
            ast::ExprKind::InList { expr, list, negated } => {
                let mut x = self.expr(scope, expr);
                let mut items = Vec::new();
                for item in list {
                    let mut v = self.expr(scope, item);
                    match self.unify(x.clone(), v.clone()) {
                        Ok((nx, nv, _)) => {
                            x = nx;
                            v = nv;
                        }
                        Err(msg) => self.mismatch(item.span, msg, "list items must have the type of the tested value"),
                    }
                    items.push(v);
                }
                // Widening decided late applies to every item.
                let target = x.ty;
                let items = items.into_iter().map(|v| widen(v.clone(), target).unwrap_or(v)).collect();
                Expr { kind: ExprKind::InList { expr: Box::new(x), list: items, negated: *negated }, ty: Type::Bool }
            }
            ast::ExprKind::InSegment { expr, segment, negated } => self.in_segment(scope, expr, segment, *negated),
            ast::ExprKind::Case { whens, otherwise } => {
                let mut arms = Vec::new();
                let mut ty = Type::Null;
                for (c, v) in whens {
                    let ce = self.expr(scope, c);
                    self.expect_bool(&ce, c, "`when`");
                    let ve = self.expr(scope, v);
                    ty = self.merge_type(ty, &ve, v.span);
                    arms.push((ce, ve));
                }
                let other = otherwise.as_ref().map(|o| {
                    let oe = self.expr(scope, o);
                    ty = self.merge_type(ty, &oe, o.span);
                    oe
                });
                let arms = arms.into_iter().map(|(c, v)| (c, widen(v.clone(), ty).unwrap_or(v))).collect();
                let other = other.map(|o| Box::new(widen(o.clone(), ty).unwrap_or(o)));
                Expr { kind: ExprKind::Case { whens: arms, otherwise: other }, ty }
            }
            ast::ExprKind::Call(call) => self.call(scope, call, e.span),
        }
    }

    fn literal(&mut self, l: &ast::Literal) -> Expr {
        match &l.kind {
            LiteralKind::Int(i) => Expr::literal(Value::Int(*i), Type::Int),
            LiteralKind::Number(text) => match Decimal::parse(text) {
                Ok(d) => Expr::literal(Value::Decimal(d), Type::Decimal),
                // Finer than a decimal can hold: it can only be meant as a float.
                Err(_) if text.parse::<f64>().is_ok_and(f64::is_finite) && !text.contains(['e', 'E']) => {
                    Expr::literal(Value::Float(F64(text.parse().unwrap_or_default())), Type::Float)
                }
                Err(msg) => {
                    self.error(Diagnostic::error(format!("invalid number: {msg}"), l.span));
                    error_expr()
                }
            },
            LiteralKind::String(s) => Expr::literal(Value::str(s), Type::String),
            LiteralKind::Bool(b) => Expr::literal(Value::Bool(*b), Type::Bool),
            LiteralKind::Null => Expr::literal(Value::Null, Type::Null),
            LiteralKind::Duration(d) => {
                self.error(
                    Diagnostic::error(format!("a duration (`{}`) is not a value", d.text), l.span)
                        .with_note("Time enters EQL only through windows: `count(order within 7d)`.")
                        .with_help("use the duration in an aggregate's `within` clause"),
                );
                error_expr()
            }
            LiteralKind::List(_) => {
                self.error(
                    Diagnostic::error("a list is only allowed after `in`", l.span)
                        .with_help("write `x in [\"a\", \"b\"]`"),
                );
                error_expr()
            }
        }
    }

    fn path(&mut self, scope: Scope, path: &[Ident]) -> Expr {
        let Some((first, rest)) = path.split_first() else { return error_expr() };
        let (column, ty) = match scope {
            Scope::Entity(entity) => match self.entity_column(entity, first) {
                Some(c) => c,
                None => return error_expr(),
            },
            Scope::Event(event) => match self.event_field(event, first) {
                Some(c) => c,
                None => return error_expr(),
            },
        };
        match self.follow(column, ty, rest, first) {
            Some((column, ty)) => Expr { kind: ExprKind::Column(column), ty },
            None => error_expr(),
        }
    }

    /// Follows `rest` of a path from a column of reference type.
    fn follow(&mut self, column: Column, ty: Type, rest: &[Ident], previous: &Ident) -> Option<(Column, Type)> {
        let Some((next, rest)) = rest.split_first() else { return Some((column, ty)) };
        let Type::Ref(target) = ty else {
            if ty != Type::Null {
                self.error(
                    Diagnostic::error(format!("`{}` is not a reference", previous), next.span)
                        .with_label(format!("cannot read `.{}` of a {} value", next, self.type_name(ty)))
                        .with_help("only attributes whose type is an entity can be followed with `.`"),
                );
            }
            return None;
        };
        let (inner, inner_ty) = self.entity_column(target, next)?;
        let (inner, inner_ty) = self.follow(inner, inner_ty, rest, next)?;
        Some((Column::Follow { via: Box::new(column), entity: target, target: Box::new(inner) }, inner_ty))
    }

    /// A bare name in an entity's scope: a field, a tag or a segment of it.
    fn entity_column(&mut self, entity: EntityId, name: &Ident) -> Option<(Column, Type)> {
        let e = &self.entities[entity];
        if let Some(i) = e.fields.iter().position(|f| f.name == name.name) {
            return Some((Column::Field(i), e.fields[i].ty));
        }
        if let Some(&t) = self.tag_names.get(&(entity, name.name.clone())) {
            self.ensure(Def::Tag(t), name.span);
            let ty = self.tag_types[t].unwrap_or(Type::Null);
            return Some((Column::Tag(t), ty));
        }
        if let Some(&s) = self.segment_names.get(&name.name) {
            if self.pending_segments[s].entity == Some(entity) {
                self.ensure(Def::Segment(s), name.span);
                return Some((Column::Segment(s), Type::Bool));
            }
            let other = self.pending_segments[s].entity.map(|e| self.entities[e].name.clone()).unwrap_or_default();
            let here = self.entities[entity].name.clone();
            self.error(
                Diagnostic::error(format!("segment `{}` is on `{}`, not `{}`", name, other, here), name.span)
                    .with_help(format!("test a reference to a {other} instead, e.g. `home_{other} in {name}`")),
            );
            return None;
        }
        let e = &self.entities[entity];
        let mut candidates: Vec<&str> = e.fields.iter().map(|f| f.name.as_str()).collect();
        candidates.extend(self.tag_names.keys().filter(|(en, _)| *en == entity).map(|(_, n)| n.as_str()));
        candidates.extend(
            self.segment_names
                .iter()
                .filter(|(_, &s)| self.pending_segments[s].entity == Some(entity))
                .map(|(n, _)| n.as_str()),
        );
        let kind = if self.event_names.contains_key(&name.name) {
            Some(format!("`{name}` is an event; aggregate it, e.g. `count({name} within 30d)`"))
        } else {
            None
        };
        let mut d = Diagnostic::error(format!("unknown name `{}` in entity `{}`", name, e.name), name.span)
            .with_label(format!("`{}` has no attribute, tag or segment of this name", e.name));
        if let Some(s) = did_you_mean(&name.name, candidates.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if let Some(k) = kind {
            d = d.with_help(k);
        }
        self.error(d);
        None
    }

    fn event_field(&mut self, event: hir::EventId, name: &Ident) -> Option<(Column, Type)> {
        let ev = &self.events[event];
        if let Some(i) = ev.fields.iter().position(|f| f.name == name.name) {
            return Some((Column::Field(i), ev.fields[i].ty));
        }
        let mut d = Diagnostic::error(format!("unknown field `{}` on event `{}`", name, ev.name), name.span)
            .with_label(format!("`{}` has no field of this name", ev.name))
            .with_note("Inside an aggregate, bare names are the event's fields; follow a reference with `.` (e.g. `product.category`).");
        if let Some(s) = did_you_mean(&name.name, ev.fields.iter().map(|f| f.name.as_str())) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        self.error(d);
        None
    }

    fn in_segment(&mut self, scope: Scope, expr: &ast::Expr, segment: &Ident, negated: bool) -> Expr {
        let x = self.expr(scope, expr);
        let Some(&s) = self.segment_names.get(&segment.name) else {
            let mut d = Diagnostic::error(format!("unknown segment `{}`", segment), segment.span);
            if let Some(c) = did_you_mean(&segment.name, self.segment_names.keys().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{c}`?"));
            } else {
                d = d.with_help("to test a value against literals write a list: `x in [\"a\", \"b\"]`");
            }
            self.error(d);
            return error_expr();
        };
        self.ensure(Def::Segment(s), segment.span);
        let seg_entity = self.pending_segments[s].entity;
        let membership = match (&x.kind, x.ty) {
            (ExprKind::Column(c), Type::Ref(target)) if Some(target) == seg_entity => {
                append_follow(c.clone(), target, Column::Segment(s))
            }
            (_, Type::Null) => return error_expr(),
            _ => {
                let seg_name = seg_entity.map(|e| self.entities[e].name.clone()).unwrap_or_default();
                self.error(
                    Diagnostic::error(
                        format!("`in {}` needs a reference to a {}", segment, seg_name),
                        expr.span,
                    )
                    .with_label(format!("this is {}", self.type_name(x.ty)))
                    .with_help(format!("segment `{segment}` groups `{seg_name}` instances; test an attribute whose type is `{seg_name}`")),
                );
                return error_expr();
            }
        };
        let read = Expr { kind: ExprKind::Column(membership), ty: Type::Bool };
        if negated {
            Expr { kind: ExprKind::Unary(UnaryOp::Not, Box::new(read)), ty: Type::Bool }
        } else {
            read
        }
    }

    fn binary(&mut self, scope: Scope, op: BinaryOp, l: &ast::Expr, r: &ast::Expr, span: Span) -> Expr {
        let le = self.expr(scope, l);
        let re = self.expr(scope, r);
        match op {
            BinaryOp::And | BinaryOp::Or => {
                self.expect_bool(&le, l, op.symbol());
                self.expect_bool(&re, r, op.symbol());
                Expr { kind: ExprKind::Binary(op, Box::new(le), Box::new(re)), ty: Type::Bool }
            }
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                match self.unify(le.clone(), re.clone()) {
                    Ok((a, b, _)) => Expr { kind: ExprKind::Binary(op, Box::new(a), Box::new(b)), ty: Type::Bool },
                    Err(msg) => {
                        let mut d = Diagnostic::error(format!("type mismatch: {msg}"), span).with_label(format!(
                            "cannot compare {} with {}",
                            self.type_name(le.ty),
                            self.type_name(re.ty)
                        ));
                        if let Some(help) = self.compare_help(&le, &re) {
                            d = d.with_help(help);
                        }
                        self.error(d);
                        error_expr()
                    }
                }
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                let numeric = |t: Type| t.is_numeric() || t == Type::Null;
                if !numeric(le.ty) || !numeric(re.ty) {
                    let (bad, bad_ast) = if !numeric(le.ty) { (&le, l) } else { (&re, r) };
                    let msg = format!("`{}` needs numbers, but this is {}", op.symbol(), self.type_name(bad.ty));
                    self.mismatch(bad_ast.span, msg, "arithmetic works on int, decimal and float");
                    return error_expr();
                }
                let label = format!("{} {} {}", self.type_name(le.ty), op.symbol(), self.type_name(re.ty));
                match self.unify(le, re) {
                    Ok((a, b, ty)) => Expr { kind: ExprKind::Binary(op, Box::new(a), Box::new(b)), ty },
                    Err(msg) => {
                        self.error(
                            Diagnostic::error(format!("type mismatch: {msg}"), span)
                                .with_label(label)
                                .with_note("Decimals are exact and floats are not, so EQL does not mix them silently.")
                                .with_help("declare the fields involved with one type: both decimal (exact money) or both float"),
                        );
                        error_expr()
                    }
                }
            }
        }
    }

    fn compare_help(&self, l: &Expr, r: &Expr) -> Option<String> {
        for (a, b) in [(l, r), (r, l)] {
            if let (Type::Ref(e), Type::String | Type::Int) = (a.ty, b.ty) {
                let ent = &self.entities[e];
                return Some(format!("a reference is compared by its key: read `.{}` of it", ent.fields[ent.key].name));
            }
            if let (Type::String, Type::Int | Type::Decimal | Type::Float) = (a.ty, b.ty) {
                return Some(if matches!(b.kind, ExprKind::Literal(_)) {
                    "the other side is a string: compare it with a string literal, e.g. `city = \"Shanghai\"`".into()
                } else {
                    "a string and a number are never equal; compare values of one type".into()
                });
            }
        }
        None
    }

    /// Brings two operands to one type (int widens to decimal and float; a decimal
    /// literal may stand for a float). Returns the converted operands and the type.
    fn unify(&self, a: Expr, b: Expr) -> Result<(Expr, Expr, Type), String> {
        use Type::*;
        let (ta, tb) = (a.ty, b.ty);
        match (ta, tb) {
            _ if ta == tb => Ok((a, b, ta)),
            (Null, t) | (t, Null) => Ok((a, b, t)),
            (Int, Decimal) | (Int, Float) => Ok((widen(a, tb).unwrap(), b, tb)),
            (Decimal, Int) | (Float, Int) => Ok((a, widen(b, ta).unwrap(), ta)),
            (Decimal, Float) if is_decimal_literal(&a) => Ok((decimal_literal_to_float(a), b, Float)),
            (Float, Decimal) if is_decimal_literal(&b) => Ok((a, decimal_literal_to_float(b), Float)),
            _ => Err(format!("{} and {} do not mix", self.type_name(ta), self.type_name(tb))),
        }
    }

    fn merge_type(&mut self, current: Type, next: &Expr, span: Span) -> Type {
        match self.unify(Expr::literal(Value::Null, current), next.clone()) {
            Ok((_, _, t)) => t,
            Err(msg) => {
                self.mismatch(
                    span,
                    format!("the values have different types: {msg}"),
                    "every branch must have one type",
                );
                current
            }
        }
    }

    fn expect_bool(&mut self, e: &Expr, ast: &ast::Expr, context: &str) {
        if !matches!(e.ty, Type::Bool | Type::Null) {
            self.mismatch(
                ast.span,
                format!("{context} needs a boolean, but this is {}", self.type_name(e.ty)),
                "compare it to get a boolean",
            );
        }
    }

    fn mismatch(&mut self, span: Span, message: String, label: &str) {
        let message = if message.starts_with("type mismatch") { message } else { format!("type mismatch: {message}") };
        self.error(Diagnostic::error(message, span).with_label(label.to_string()));
    }

    fn type_name(&self, t: Type) -> String {
        match t {
            Type::Ref(e) => format!("a reference to `{}`", self.entities[e].name),
            _ => crate::explain::type_name(&self.entities, t),
        }
    }

    // ---------- calls and aggregates ----------

    fn call(&mut self, scope: Scope, call: &ast::Call, span: Span) -> Expr {
        let name = call.name.name.as_str();
        if AggFunc::from_name(name).is_some() {
            let Scope::Entity(entity) = scope else {
                self.error(
                    Diagnostic::error("aggregates cannot be nested", span)
                        .with_note("Inside an aggregate, expressions are evaluated per event.")
                        .with_help("define the inner aggregate as a tag and read it through a reference"),
                );
                return error_expr();
            };
            if self.current.is_none() {
                self.error(
                    Diagnostic::error("event aggregates cannot be computed ad hoc in a query", span)
                        .with_note("Queries read the live state; an aggregate over events must be kept live as a tag.")
                        .with_help("define the aggregate as a tag, then use the tag in the query"),
                );
                return error_expr();
            }
            let Some(id) = self.aggregate(entity, call, span) else { return error_expr() };
            return self.lift(entity, id);
        }
        let Some(func) = Function::from_name(name) else {
            let known: Vec<&str> =
                AggFunc::ALL.iter().map(|a| a.name()).chain(Function::ALL.iter().map(|f| f.name())).collect();
            let mut d = Diagnostic::error(format!("unknown function `{name}`"), call.name.span)
                .with_label("not an aggregate or a function of EQL");
            d = if name.eq_ignore_ascii_case("now") {
                d.with_note("EQL has no `now()`: everything stays incrementally maintainable.")
                    .with_help("write recency with a window, e.g. `exists(order within 7d)`")
            } else if let Some(s) = did_you_mean(name, known.iter().copied()) {
                d.with_help(format!("did you mean `{s}`?"))
            } else {
                d.with_help(format!("the functions are: {}", known.join(", ")))
            };
            self.error(d);
            return error_expr();
        };
        if let Some(w) = &call.within {
            self.error(
                Diagnostic::error(format!("`within` on `{}`, which is not an aggregate", func.name()), w.span)
                    .with_label("a window applies only to aggregates over events")
                    .with_help("windows select events by time: `count(order within 7d)`"),
            );
        }
        if let Some(f) = &call.filter {
            self.error(
                Diagnostic::error(format!("`where` on `{}`, which is not an aggregate", func.name()), f.span)
                    .with_help("filter events inside an aggregate: `count(order where amount > 10)`"),
            );
        }
        if let Some(b) = &call.by {
            self.error(Diagnostic::error(format!("`by` on `{}`, which is not an aggregate", func.name()), b.span));
        }
        if call.star {
            self.error(Diagnostic::error(format!("`{}(*)` is not valid", func.name()), span));
            return error_expr();
        }
        let args: Vec<Expr> = call.args.iter().map(|a| self.expr(scope, a)).collect();
        self.function(func, args, &call.args, span)
    }

    fn function(&mut self, func: Function, args: Vec<Expr>, asts: &[ast::Expr], span: Span) -> Expr {
        let arity_error = |s: &mut Self, expected: &str| {
            s.error(
                Diagnostic::error(format!("`{}` takes {expected}", func.name()), span)
                    .with_help(format!("the form is `{}`", signature(func)))
                    .with_label(format!("called with {} argument(s)", args.len())),
            );
            error_expr()
        };
        let string_arg = |s: &mut Self, e: &Expr, a: &ast::Expr| {
            if !matches!(e.ty, Type::String | Type::Null) {
                s.mismatch(
                    a.span,
                    format!("`{}` needs a string, but this is {}", func.name(), s.type_name(e.ty)),
                    "a string is needed here",
                );
            }
        };
        match func {
            Function::Coalesce => {
                if args.is_empty() {
                    return arity_error(self, "one or more arguments");
                }
                let mut ty = Type::Null;
                for (e, a) in args.iter().zip(asts) {
                    ty = self.merge_type(ty, e, a.span);
                }
                let args = args.into_iter().map(|e| widen(e.clone(), ty).unwrap_or(e)).collect();
                Expr { kind: ExprKind::Call(func, args), ty }
            }
            Function::Lower | Function::Upper => {
                if args.len() != 1 {
                    return arity_error(self, "one argument");
                }
                string_arg(self, &args[0], &asts[0]);
                Expr { kind: ExprKind::Call(func, args), ty: Type::String }
            }
            Function::StartsWith | Function::Contains => {
                if args.len() != 2 {
                    return arity_error(self, "two arguments");
                }
                string_arg(self, &args[0], &asts[0]);
                string_arg(self, &args[1], &asts[1]);
                Expr { kind: ExprKind::Call(func, args), ty: Type::Bool }
            }
            Function::Abs => {
                if args.len() != 1 {
                    return arity_error(self, "one argument");
                }
                if !args[0].ty.is_numeric() && args[0].ty != Type::Null {
                    self.mismatch(
                        asts[0].span,
                        format!("`abs` needs a number, but this is {}", self.type_name(args[0].ty)),
                        "a number is needed here",
                    );
                }
                let ty = args[0].ty;
                Expr { kind: ExprKind::Call(func, args), ty }
            }
            Function::Round => {
                if args.is_empty() || args.len() > 2 {
                    return arity_error(self, "one or two arguments: `round(x)` or `round(x, digits)`");
                }
                if !args[0].ty.is_numeric() && args[0].ty != Type::Null {
                    self.mismatch(
                        asts[0].span,
                        format!("`round` needs a number, but this is {}", self.type_name(args[0].ty)),
                        "a number is needed here",
                    );
                }
                if let Some(d) = args.get(1) {
                    if !matches!(d.ty, Type::Int | Type::Null) {
                        self.mismatch(
                            asts[1].span,
                            "the number of digits must be an int".into(),
                            "an int is needed here",
                        );
                    }
                }
                let ty = args[0].ty;
                Expr { kind: ExprKind::Call(func, args), ty }
            }
        }
    }

    /// Replaces an inline aggregate by a read of its anonymous tag.
    fn lift(&mut self, entity: EntityId, agg: hir::AggId) -> Expr {
        let ty = self.aggregates[agg].ty;
        let tag = match self.lifted.get(&agg) {
            Some(&t) => t,
            None => {
                let (owner, n) = self.current.unwrap_or((Def::Tag(0), 0));
                let owner_name = match owner {
                    Def::Tag(t) => self.pending_tags.get(t).map(|p| p.name.name.clone()).unwrap_or_default(),
                    Def::Segment(s) => self.pending_segments.get(s).map(|p| p.name.name.clone()).unwrap_or_default(),
                };
                self.current = Some((owner, n + 1));
                let name = format!("{owner_name}#{}", n + 1);
                let id = self.tags.len();
                self.tags.push(Some(hir::Tag {
                    entity,
                    name: name.clone(),
                    ty,
                    anonymous: true,
                    expr: Expr { kind: ExprKind::Aggregate(agg), ty },
                    span: Span::default(),
                }));
                self.tag_state.push(State::Done);
                self.tag_types.push(Some(ty));
                self.pending_tags.push(Pending {
                    entity: Some(entity),
                    name: Ident { name, span: Span::default() },
                    written_ty: None,
                    expr: &LIFTED_PLACEHOLDER,
                    span: Span::default(),
                });
                self.order.push(Def::Tag(id));
                self.lifted.insert(agg, id);
                id
            }
        };
        Expr { kind: ExprKind::Column(Column::Tag(tag)), ty }
    }

    /// Resolves `func(event[.path] [by f] [where c] [within w])` grouped into `entity`.
    fn aggregate(&mut self, entity: EntityId, call: &ast::Call, span: Span) -> Option<hir::AggId> {
        let func = AggFunc::from_name(&call.name.name)?;
        if call.star {
            self.error(
                Diagnostic::error(format!("`{}(*)` is only for queries", func.name()), span)
                    .with_help("in a tag or segment, aggregate an event: `count(order within 30d)`"),
            );
            return None;
        }
        let [arg] = call.args.as_slice() else {
            self.error(
                Diagnostic::error(format!("`{}` takes one event or event field", func.name()), span)
                    .with_help(format!("e.g. `{}(order.amount within 30d)`", func.name())),
            );
            return None;
        };
        let ast::ExprKind::Path(path) = &arg.kind else {
            self.error(
                Diagnostic::error(format!("`{}` aggregates an event or an event field", func.name()), arg.span)
                    .with_label("expected `event` or `event.field`")
                    .with_help(format!("e.g. `{}(order.amount within 30d)`", func.name())),
            );
            return None;
        };
        let event_name = &path[0];
        let Some(&event) = self.event_names.get(&event_name.name) else {
            let mut d = Diagnostic::error(format!("unknown event `{}`", event_name), event_name.span)
                .with_label("aggregates range over events");
            if let Some(s) = did_you_mean(&event_name.name, self.event_names.keys().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else if self.entity_names.contains_key(&event_name.name)
                || self.entities[entity].fields.iter().any(|f| f.name == event_name.name)
                || self.tag_names.contains_key(&(entity, event_name.name.clone()))
            {
                d = d
                    .with_note("Only events have a time, so only events can be aggregated or windowed.")
                    .with_help(format!("`{event_name}` is not an event; aggregate an event that references it"));
            }
            self.error(d);
            return None;
        };
        // The aggregated value. On an error the `where` clause is still checked, so
        // every mistake in the aggregate is reported at once.
        let value_result = if path.len() > 1 {
            self.event_field(event, &path[1])
                .and_then(|(c, t)| self.follow(c, t, &path[2..], &path[1]))
                .map(|(c, t)| (Some(c), Some(t)))
        } else {
            Some((None, None))
        };
        let Some((value, value_ty)) = value_result else {
            if let Some(f) = &call.filter {
                self.expr(Scope::Event(event), f);
            }
            return None;
        };
        if value.is_none() && !matches!(func, AggFunc::Count | AggFunc::Exists) {
            self.error(
                Diagnostic::error(format!("`{}` needs an event field", func.name()), arg.span)
                    .with_label(format!("this is the whole event `{event_name}`"))
                    .with_help(format!(
                        "name the field, e.g. `{}({}.{})`",
                        func.name(),
                        event_name,
                        self.sample_field(event, func)
                    )),
            );
            return None;
        }
        // Grouping.
        let group = self.grouping(entity, event, call.by.as_ref(), span)?;
        let filter = call.filter.as_ref().map(|f| {
            let e = self.expr(Scope::Event(event), f);
            self.expect_bool(&e, f, "`where`");
            e
        });
        let window_ms = match &call.within {
            // A duration the lexer rejected arrives as 0ms with its text; it was reported there.
            Some(d) if d.millis == 0 && d.text.starts_with('0') => {
                self.error(Diagnostic::error("a window must be longer than zero", d.span));
                return None;
            }
            Some(d) => Some(d.millis),
            None => None,
        };
        let ty = match (func, value_ty) {
            (AggFunc::Count | AggFunc::CountDistinct, _) => Type::Int,
            (AggFunc::Exists, _) => Type::Bool,
            (AggFunc::Sum, Some(t @ (Type::Int | Type::Decimal | Type::Float))) => t,
            (AggFunc::Avg, Some(Type::Int | Type::Decimal)) => Type::Decimal,
            (AggFunc::Avg, Some(Type::Float)) => Type::Float,
            (AggFunc::Sum | AggFunc::Avg, Some(t)) => {
                self.mismatch(
                    arg.span,
                    format!("`{}` needs a numeric field, but this is {}", func.name(), self.type_name(t)),
                    "not a number",
                );
                return None;
            }
            (AggFunc::Min | AggFunc::Max | AggFunc::First | AggFunc::Last | AggFunc::Mode, Some(t)) => t,
            (_, None) => Type::Int,
        };
        let agg = hir::Aggregate { entity, event, group, func, value, filter, window_ms, ty, value_ty };
        if let Some(existing) = self.aggregates.iter().position(|a| *a == agg) {
            return Some(existing);
        }
        self.aggregates.push(agg);
        Some(self.aggregates.len() - 1)
    }

    /// A field to show in an example for `func`: numeric for sum/avg.
    fn sample_field(&self, event: hir::EventId, func: AggFunc) -> String {
        let fields = &self.events[event].fields;
        let numeric = matches!(func, AggFunc::Sum | AggFunc::Avg);
        fields
            .iter()
            .skip(2)
            .find(|f| !numeric || f.ty.is_numeric())
            .map(|f| f.name.clone())
            .unwrap_or_else(|| "at".into())
    }

    /// The event field that says which `entity` instance an event belongs to.
    fn grouping(&mut self, entity: EntityId, event: hir::EventId, by: Option<&Ident>, span: Span) -> Option<usize> {
        let ev = &self.events[event];
        let entity_name = self.entities[entity].name.clone();
        let candidates: Vec<usize> =
            ev.fields.iter().enumerate().filter(|(_, f)| f.ty == Type::Ref(entity)).map(|(i, _)| i).collect();
        if let Some(by) = by {
            let Some(i) = ev.fields.iter().position(|f| f.name == by.name) else {
                let mut d = Diagnostic::error(format!("unknown field `{}` on event `{}`", by, ev.name), by.span);
                if let Some(s) = did_you_mean(&by.name, candidates.iter().map(|&i| ev.fields[i].name.as_str())) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                self.error(d);
                return None;
            };
            if ev.fields[i].ty != Type::Ref(entity) {
                let msg = format!("`by {}` must name a field of type `{}`", by, entity_name);
                let ty = self.type_name(ev.fields[i].ty);
                self.error(Diagnostic::error(msg, by.span).with_label(format!("this field is {ty}")));
                return None;
            }
            return Some(i);
        }
        match candidates.as_slice() {
            [one] => Some(*one),
            [] => {
                self.error(
                    Diagnostic::error(format!("event `{}` has no field referring to `{}`", ev.name, entity_name), span)
                        .with_label(format!("cannot group `{}` by `{}`", ev.name, entity_name))
                        .with_note(format!(
                        "An aggregate in a tag of `{entity_name}` groups events by their field of type `{entity_name}`."
                    )),
                );
                None
            }
            many => {
                let names: Vec<String> = many.iter().map(|&i| format!("`{}`", ev.fields[i].name)).collect();
                self.error(
                    Diagnostic::error(
                        format!(
                            "ambiguous grouping: event `{}` refers to `{}` through {}",
                            ev.name,
                            entity_name,
                            names.join(" and ")
                        ),
                        span,
                    )
                    .with_label("which field says whose event this is?")
                    .with_help(format!(
                        "add `by FIELD`, e.g. `{}({} by {})`; candidates: {}",
                        "count",
                        ev.name,
                        ev.fields[many[0]].name,
                        names.join(", ")
                    )),
                );
                None
            }
        }
    }

    // ---------- queries ----------

    fn resolve_queries(&mut self, file: &ast::File) {
        for item in &file.items {
            if let ast::Item::Query(q) = item {
                if let Some(q) = self.query(q) {
                    self.queries.push(q);
                }
            }
        }
    }

    fn query(&mut self, q: &ast::Query) -> Option<hir::Query> {
        let Some(&entity) = self.entity_names.get(&q.from.name) else {
            self.unknown_entity(&q.from);
            return None;
        };
        let scope = Scope::Entity(entity);
        self.current = None;
        let mut items = Vec::new();
        for item in &q.items {
            match item {
                ast::SelectItem::Star(_) => {
                    let e = &self.entities[entity];
                    for (i, f) in e.fields.iter().enumerate() {
                        items.push(hir::QueryItem {
                            name: f.name.clone(),
                            kind: hir::QueryItemKind::Expr(Expr { kind: ExprKind::Column(Column::Field(i)), ty: f.ty }),
                        });
                    }
                }
                ast::SelectItem::Expr { expr, alias } => {
                    let name = alias.as_ref().map(|a| a.name.clone()).unwrap_or_else(|| display_name(expr));
                    let kind = match &expr.kind {
                        ast::ExprKind::Call(call) if AggFunc::from_name(&call.name.name).is_some() => {
                            self.query_aggregate(scope, call, expr.span)?
                        }
                        _ => hir::QueryItemKind::Expr(self.expr(scope, expr)),
                    };
                    items.push(hir::QueryItem { name, kind });
                }
            }
        }
        let filter = q.filter.as_ref().map(|f| {
            let e = self.expr(scope, f);
            self.expect_bool(&e, f, "`where`");
            e
        });
        let group_by = q.group_by.iter().map(|g| self.expr(scope, g)).collect();
        let order_by = q.order_by.iter().map(|o| (self.expr(scope, &o.expr), o.descending)).collect();
        let limit = match &q.limit {
            Some(ast::Literal { kind: LiteralKind::Int(n), .. }) if *n >= 0 => Some(*n as u64),
            Some(l) => {
                self.error(Diagnostic::error("`limit` needs a non-negative integer", l.span));
                None
            }
            None => None,
        };
        Some(hir::Query { entity, items, filter, group_by, order_by, limit })
    }

    fn query_aggregate(&mut self, scope: Scope, call: &ast::Call, span: Span) -> Option<hir::QueryItemKind> {
        let func = AggFunc::from_name(&call.name.name)?;
        if let Some(w) = &call.within {
            self.error(
                Diagnostic::error("`within` in a query aggregate", w.span)
                    .with_label("queries aggregate the selected rows, which have no time")
                    .with_help("define a windowed tag and select it"),
            );
            return None;
        }
        if call.star {
            if func != AggFunc::Count {
                self.error(Diagnostic::error(format!("`{}(*)` is not valid; only `count(*)`", func.name()), span));
                return None;
            }
            return Some(hir::QueryItemKind::Aggregate { func, arg: None, ty: Type::Int });
        }
        let [arg] = call.args.as_slice() else {
            self.error(Diagnostic::error(format!("`{}` takes one argument", func.name()), span));
            return None;
        };
        if let ast::ExprKind::Path(p) = &arg.kind {
            if self.event_names.contains_key(&p[0].name) {
                self.error(
                    Diagnostic::error("event aggregates cannot be computed ad hoc in a query", arg.span)
                        .with_help("define the aggregate as a tag, then select the tag"),
                );
                return None;
            }
        }
        let e = self.expr(scope, arg);
        let ty = match func {
            AggFunc::Count | AggFunc::CountDistinct => Type::Int,
            AggFunc::Exists => Type::Bool,
            AggFunc::Avg if e.ty == Type::Float => Type::Float,
            AggFunc::Avg => Type::Decimal,
            _ => e.ty,
        };
        Some(hir::QueryItemKind::Aggregate { func, arg: Some(e), ty })
    }
}

/// A stand-in expression for lifted tags, which have no source text of their own.
static LIFTED_PLACEHOLDER: ast::Expr = ast::Expr {
    kind: ast::ExprKind::Literal(ast::Literal { kind: LiteralKind::Null, span: Span { start: 0, end: 0 } }),
    span: Span { start: 0, end: 0 },
};

fn display_name(e: &ast::Expr) -> String {
    match &e.kind {
        ast::ExprKind::Path(p) => p.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join("."),
        ast::ExprKind::Call(c) => c.name.name.clone(),
        _ => "expr".into(),
    }
}

fn signature(f: Function) -> &'static str {
    match f {
        Function::Coalesce => "coalesce(a, b, ...)",
        Function::Lower => "lower(s)",
        Function::Upper => "upper(s)",
        Function::StartsWith => "starts_with(s, prefix)",
        Function::Contains => "contains(s, part)",
        Function::Abs => "abs(x)",
        Function::Round => "round(x, digits) or round(x)",
    }
}

/// Reads `last` of the instance that `column` refers to, following any hops
/// already in `column` first (`shop.city in big_cities`: shop, then city).
fn append_follow(column: Column, entity: EntityId, last: Column) -> Column {
    match column {
        Column::Follow { via, entity: hop, target } => {
            Column::Follow { via, entity: hop, target: Box::new(append_follow(*target, entity, last)) }
        }
        other => Column::Follow { via: Box::new(other), entity, target: Box::new(last) },
    }
}

/// An expression of the error type: fits anywhere, so one mistake is reported once.
fn error_expr() -> Expr {
    Expr::literal(Value::Null, Type::Null)
}

fn is_decimal_literal(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Literal(Value::Decimal(_)))
}

fn decimal_literal_to_float(e: Expr) -> Expr {
    match e.kind {
        ExprKind::Literal(Value::Decimal(d)) => Expr::literal(Value::Float(F64(d.to_f64())), Type::Float),
        _ => e,
    }
}

/// Converts `e` to `target` if that is a widening (int -> decimal or float).
fn widen(e: Expr, target: Type) -> Option<Expr> {
    if e.ty == target || e.ty == Type::Null || target == Type::Null {
        return Some(e);
    }
    match (e.ty, target) {
        (Type::Int, Type::Decimal | Type::Float) => Some(Expr { kind: ExprKind::Widen(Box::new(e)), ty: target }),
        (Type::Decimal, Type::Float) if is_decimal_literal(&e) => Some(decimal_literal_to_float(e)),
        _ => None,
    }
}
