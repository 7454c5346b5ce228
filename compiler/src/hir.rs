//! The typed IR: a resolved, type-checked program.
//!
//! Every name is an index here, every expression carries its type, and every
//! aggregate is lifted out of the expression it appeared in into the program's
//! aggregate table (written inline in a segment, it becomes an anonymous tag).
//! Definitions (tags and segments) are listed in dependency order, so a
//! consumer can evaluate them front to back. The plan is lowered from this.

use crate::value::{EntityId, Type, Value};
use segflow_grammar::Span;
use serde::Serialize;

pub type EventId = usize;
pub type TagId = usize;
pub type SegmentId = usize;
pub type AggId = usize;

#[derive(Clone, Debug, Serialize)]
pub struct Program {
    pub entities: Vec<Entity>,
    pub events: Vec<Event>,
    pub tags: Vec<Tag>,
    pub segments: Vec<Segment>,
    pub aggregates: Vec<Aggregate>,
    pub queries: Vec<Query>,
    /// Tags and segments in an order where every definition comes after those it reads.
    pub order: Vec<Def>,
}

/// A tag or a segment: the definitions that are kept live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Def {
    Tag(TagId),
    Segment(SegmentId),
}

#[derive(Clone, Debug, Serialize)]
pub struct Field {
    pub name: String,
    pub ty: Type,
    pub nullable: bool,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Entity {
    pub name: String,
    /// All fields in declaration order, the key among them.
    pub fields: Vec<Field>,
    pub key: usize,
    #[serde(skip)]
    pub span: Span,
}

/// Implicit event fields come first: `id` (0) and `at` (1).
pub const EVENT_ID: usize = 0;
pub const EVENT_AT: usize = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub name: String,
    pub fields: Vec<Field>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Tag {
    pub entity: EntityId,
    pub name: String,
    pub ty: Type,
    /// Lifted from an inline aggregate; not shown in profiles.
    pub anonymous: bool,
    pub expr: Expr,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Segment {
    pub entity: EntityId,
    pub name: String,
    pub expr: Expr,
    #[serde(skip)]
    pub span: Span,
}

/// A column readable from an entity instance's row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Column {
    /// A declared field (the key included).
    Field(usize),
    Tag(TagId),
    Segment(SegmentId),
    /// Follow the reference held in `via` (a column of reference type) and read
    /// `target`, a column of the referenced entity. A null reference reads null.
    Follow {
        via: Box<Column>,
        entity: EntityId,
        target: Box<Column>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum AggFunc {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    CountDistinct,
    First,
    Last,
    Mode,
    Exists,
}

impl AggFunc {
    pub const ALL: [AggFunc; 10] = [
        AggFunc::Count,
        AggFunc::Sum,
        AggFunc::Avg,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::CountDistinct,
        AggFunc::First,
        AggFunc::Last,
        AggFunc::Mode,
        AggFunc::Exists,
    ];

    pub fn from_name(name: &str) -> Option<AggFunc> {
        AggFunc::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::CountDistinct => "count_distinct",
            AggFunc::First => "first",
            AggFunc::Last => "last",
            AggFunc::Mode => "mode",
            AggFunc::Exists => "exists",
        }
    }
    /// The value an aggregate has over no input (EQL.md §5).
    pub fn empty_value(self, ty: Type) -> Value {
        match (self, ty) {
            (AggFunc::Count | AggFunc::CountDistinct, _) => Value::Int(0),
            (AggFunc::Exists, _) => Value::Bool(false),
            (AggFunc::Sum, Type::Int) => Value::Int(0),
            (AggFunc::Sum, Type::Decimal) => Value::Decimal(crate::value::Decimal::ZERO),
            (AggFunc::Sum, Type::Float) => Value::Float(crate::value::F64(0.0)),
            _ => Value::Null,
        }
    }
}

/// `func(event[.value] by group where filter within window)` grouped into the
/// entity whose reference sits in event field `group`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Aggregate {
    pub entity: EntityId,
    pub event: EventId,
    pub group: usize,
    pub func: AggFunc,
    /// The aggregated value: a column of the event row (fields, or followed references).
    pub value: Option<Column>,
    pub filter: Option<Expr>,
    pub window_ms: Option<u64>,
    /// The result type.
    pub ty: Type,
    /// The type of the aggregated value, if any.
    pub value_ty: Option<Type>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Type,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum UnaryOp {
    Not,
    Neg,
}

pub use segflow_grammar::ast::BinaryOp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Function {
    Coalesce,
    Lower,
    Upper,
    StartsWith,
    Contains,
    Abs,
    Round,
}

impl Function {
    pub const ALL: [Function; 7] = [
        Function::Coalesce,
        Function::Lower,
        Function::Upper,
        Function::StartsWith,
        Function::Contains,
        Function::Abs,
        Function::Round,
    ];

    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name))
    }
    pub fn name(self) -> &'static str {
        match self {
            Function::Coalesce => "coalesce",
            Function::Lower => "lower",
            Function::Upper => "upper",
            Function::StartsWith => "starts_with",
            Function::Contains => "contains",
            Function::Abs => "abs",
            Function::Round => "round",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ExprKind {
    Literal(Value),
    Column(Column),
    /// The value of an aggregate for this instance (its empty-input value when it has no input).
    Aggregate(AggId),
    /// Convert an int to a decimal or a float (widening).
    Widen(Box<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// Membership of the referenced instance in a segment (`home_store in hot_stores`).
    /// Lowered as a followed segment column; kept for printing.
    Case {
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Call(Function, Vec<Expr>),
}

impl Expr {
    pub fn literal(value: Value, ty: Type) -> Expr {
        Expr { kind: ExprKind::Literal(value), ty }
    }

    /// Calls `f` on every column this expression reads directly (not inside aggregates).
    pub fn visit_columns(&self, f: &mut impl FnMut(&Column)) {
        self.visit(&mut |e| {
            if let ExprKind::Column(c) = &e.kind {
                f(c)
            }
        });
    }

    /// Calls `f` on every sub-expression, this one first.
    pub fn visit(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match &self.kind {
            ExprKind::Literal(_) | ExprKind::Column(_) | ExprKind::Aggregate(_) => {}
            ExprKind::Widen(e) | ExprKind::Unary(_, e) => e.visit(f),
            ExprKind::IsNull { expr, .. } => expr.visit(f),
            ExprKind::Binary(_, l, r) => {
                l.visit(f);
                r.visit(f);
            }
            ExprKind::InList { expr, list, .. } => {
                expr.visit(f);
                list.iter().for_each(|e| e.visit(f));
            }
            ExprKind::Case { whens, otherwise } => {
                for (c, v) in whens {
                    c.visit(f);
                    v.visit(f);
                }
                if let Some(o) = otherwise {
                    o.visit(f);
                }
            }
            ExprKind::Call(_, args) => args.iter().for_each(|e| e.visit(f)),
        }
    }
}

/// An ad-hoc `select`, checked against the model (run by the server's query API).
#[derive(Clone, Debug, Serialize)]
pub struct Query {
    pub entity: EntityId,
    pub items: Vec<QueryItem>,
    pub filter: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub order_by: Vec<(Expr, bool)>,
    pub limit: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryItem {
    pub name: String,
    pub kind: QueryItemKind,
}

#[derive(Clone, Debug, Serialize)]
pub enum QueryItemKind {
    Expr(Expr),
    /// `count(*)`, `sum(expr)`, ... over the selected rows.
    Aggregate {
        func: AggFunc,
        arg: Option<Expr>,
        ty: Type,
    },
}

impl Program {
    pub fn entity_by_name(&self, name: &str) -> Option<EntityId> {
        self.entities.iter().position(|e| e.name == name)
    }
    pub fn event_by_name(&self, name: &str) -> Option<EventId> {
        self.events.iter().position(|e| e.name == name)
    }
    /// The readable name of a column of `entity`: `spend_90d`, `home_store.revenue_7d`.
    pub fn column_name(&self, entity: EntityId, column: &Column) -> String {
        match column {
            Column::Field(i) => self.entities[entity].fields[*i].name.clone(),
            Column::Tag(t) => self.tags[*t].name.clone(),
            Column::Segment(s) => self.segments[*s].name.clone(),
            Column::Follow { via, entity: target_entity, target } => {
                format!("{}.{}", self.column_name(entity, via), self.column_name(*target_entity, target))
            }
        }
    }
    /// The readable name of a column of an event row.
    pub fn event_column_name(&self, event: EventId, column: &Column) -> String {
        match column {
            Column::Field(i) => self.events[event].fields[*i].name.clone(),
            Column::Follow { via, entity, target } => {
                format!("{}.{}", self.event_column_name(event, via), self.column_name(*entity, target))
            }
            other => format!("{other:?}"),
        }
    }
    pub fn def_name(&self, def: Def) -> String {
        match def {
            Def::Tag(t) => format!("{}.{}", self.entities[self.tags[t].entity].name, self.tags[t].name),
            Def::Segment(s) => self.segments[s].name.clone(),
        }
    }
}
