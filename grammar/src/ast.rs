//! The EQL abstract syntax tree.
//!
//! Every node carries the byte [`Span`] of the source text it came from, so that
//! the compiler can point at exactly the text a diagnostic is about. The tree is
//! purely syntactic: names are not resolved and nothing is typed. Aggregates and
//! scalar functions share one node ([`ExprKind::Call`]) because the grammar cannot
//! tell `count(order within 7d)` from `lower(city)`; the compiler decides by name.

use serde::Serialize;
use std::fmt;

/// A half-open byte range `[start, end)` into the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// An identifier with its position.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A whole `.eql` file: its items in source order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Item {
    Entity(EntityDecl),
    Event(EventDecl),
    Tag(TagDecl),
    Segment(SegmentDecl),
    Query(Query),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Entity(d) => d.span,
            Item::Event(d) => d.span,
            Item::Tag(d) => d.span,
            Item::Segment(d) => d.span,
            Item::Query(d) => d.span,
        }
    }
}

/// `entity user { key id: string; city: string?; }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EntityDecl {
    pub name: Ident,
    pub fields: Vec<FieldDecl>,
    pub span: Span,
}

/// `event order { user: user; amount: decimal; }`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventDecl {
    pub name: Ident,
    pub fields: Vec<FieldDecl>,
    pub span: Span,
}

/// One `[key] name: type;` line of an entity or event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldDecl {
    pub is_key: bool,
    pub name: Ident,
    pub ty: TypeExpr,
    pub span: Span,
}

/// A written type: a name (`string`, `decimal`, or an entity name) and `?` for nullable.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeExpr {
    pub name: Ident,
    pub nullable: bool,
    pub span: Span,
}

/// `tag user.spend_90d [: decimal] = expr;`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TagDecl {
    pub entity: Ident,
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub expr: Expr,
    pub span: Span,
}

/// `segment high_value on user = expr;`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentDecl {
    pub name: Ident,
    pub entity: Ident,
    pub expr: Expr,
    pub span: Span,
}

/// `select items from entity [where ..] [group by ..] [order by ..] [limit n];`
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Query {
    pub items: Vec<SelectItem>,
    pub from: Ident,
    pub filter: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<Literal>,
    pub span: Span,
}

// A query has a handful of select items; boxing the expression would cost every
// consumer a deref for no measurable saving.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum SelectItem {
    /// `*`: every attribute, tag and segment of the entity.
    Star(Span),
    /// `expr [as name]`
    Expr { expr: Expr, alias: Option<Ident> },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderItem {
    pub expr: Expr,
    pub descending: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ExprKind {
    Literal(Literal),
    /// `a`, `a.b`, `a.b.c`: a name and the references followed from it.
    Path(Vec<Ident>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `x is null` (`negated` for `is not null`).
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// `x [not] in [a, b]`
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `x [not] in segment_name`
    InSegment {
        expr: Box<Expr>,
        segment: Ident,
        negated: bool,
    },
    /// `case when c then v .. [else e] end`
    Case {
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// `name(args [by field] [where cond] [within duration])`, and `count(*)`.
    Call(Call),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Call {
    pub name: Ident,
    /// `count(*)`
    pub star: bool,
    pub args: Vec<Expr>,
    pub by: Option<Ident>,
    pub filter: Option<Box<Expr>>,
    pub within: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    /// Every operator, in declaration order (for tests that generate them).
    pub const ALL: [BinaryOp; 13] = [
        BinaryOp::Or,
        BinaryOp::And,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
    ];

    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "=",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Literal {
    pub kind: LiteralKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum LiteralKind {
    /// Digits without a fraction, as written (sign folded in by the parser for `-7`).
    Int(i64),
    /// A number with a fraction, kept as written so it can be read exactly (`3.14`).
    Number(String),
    String(String),
    Bool(bool),
    Null,
    Duration(Duration),
    List(Vec<Literal>),
}

/// A duration literal such as `30d`, kept in milliseconds with its written form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Duration {
    pub millis: u64,
    pub text: String,
    pub span: Span,
}
