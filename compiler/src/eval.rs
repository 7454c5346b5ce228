//! Scalar expressions over a row of values, and their evaluation.
//!
//! This is the one place that defines what `+`, `=`, `and`, `case`, `round`...
//! do to values, with SQL's three-valued logic: an operation on null is null,
//! `null and false` is false, `null or true` is true. Arithmetic that cannot
//! produce a value (division by zero, overflow) yields null rather than failing,
//! because a live engine must not stop on one odd record. Integer division
//! truncates toward zero; decimal results are rounded half away from zero to six
//! places.

use crate::hir::{BinaryOp, Function, UnaryOp};
use crate::value::{Decimal, Type, Value, F64};
use serde::Serialize;
use std::borrow::Cow;
use std::cmp::Ordering;

/// An expression whose inputs are positions in a row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ScalarExpr {
    Slot(usize),
    Literal(Value),
    /// int -> decimal or float
    Widen(Box<ScalarExpr>, Type),
    Unary(UnaryOp, Box<ScalarExpr>),
    Binary(BinaryOp, Box<ScalarExpr>, Box<ScalarExpr>),
    IsNull(Box<ScalarExpr>, bool),
    InList(Box<ScalarExpr>, Vec<ScalarExpr>, bool),
    Case(Vec<(ScalarExpr, ScalarExpr)>, Option<Box<ScalarExpr>>),
    Call(Function, Vec<ScalarExpr>),
}

/// What a slot past the row's end reads.
static NULL: Value = Value::Null;

impl ScalarExpr {
    /// The value of this expression over `row`: a slot's or a literal's
    /// borrowed, any other computed. Comparisons and tests read their
    /// operands through this, so a slot is not cloned (for a string, a
    /// reference count up and down again) only to be looked at.
    #[inline]
    fn value<'a>(&'a self, row: &'a [Value]) -> Cow<'a, Value> {
        match self {
            ScalarExpr::Slot(i) => Cow::Borrowed(slot(row, *i)),
            ScalarExpr::Literal(v) => Cow::Borrowed(v),
            _ => Cow::Owned(self.eval(row)),
        }
    }

    pub fn eval(&self, row: &[Value]) -> Value {
        match self {
            ScalarExpr::Slot(_) | ScalarExpr::Literal(_) => self.value(row).into_owned(),
            ScalarExpr::Widen(e, ty) => widen(e.eval(row), *ty),
            ScalarExpr::Unary(UnaryOp::Neg, e) => match e.eval(row) {
                Value::Int(i) => i.checked_neg().map_or(Value::Null, Value::Int),
                Value::Decimal(d) => Value::Decimal(Decimal(-d.0)),
                Value::Float(f) => Value::Float(F64(-f.0)),
                _ => Value::Null,
            },
            ScalarExpr::Binary(
                op @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem),
                l,
                r,
            ) => arithmetic(*op, l.eval(row), r.eval(row)),
            // `truth` reads each of these itself (never through `eval`).
            ScalarExpr::Unary(UnaryOp::Not, _)
            | ScalarExpr::Binary(..)
            | ScalarExpr::IsNull(..)
            | ScalarExpr::InList(..) => self.truth(row).map_or(Value::Null, Value::Bool),
            ScalarExpr::Case(whens, otherwise) => {
                chosen_branch(whens, otherwise, row).map_or(Value::Null, |b| b.eval(row))
            }
            ScalarExpr::Call(f, args) => call(*f, args, row),
        }
    }

    /// The value of this expression as a truth value of SQL's three-valued
    /// logic: `None` for null (and for anything that is not a boolean, which
    /// `and`, `or` and `not` treat as null). Tests, `and`, `or`, `not` and
    /// `case`'s conditions are read through this, so a condition such as
    /// `spend_90d >= 1000 and orders_30d >= 3` builds no value on its way,
    /// and a column tested against a constant is read where it is (with the
    /// constant widened once, by `lower_expr`): a gather's segments took
    /// about half the time of building and dropping a value at every step.
    pub fn truth(&self, row: &[Value]) -> Option<bool> {
        match self {
            ScalarExpr::Slot(i) => as_truth(slot(row, *i)),
            ScalarExpr::Literal(v) => as_truth(v),
            ScalarExpr::Unary(UnaryOp::Not, e) => e.truth(row).map(|b| !b),
            ScalarExpr::Binary(op @ (BinaryOp::And | BinaryOp::Or), l, r) => {
                // One operand false decides an `and`, one true an `or`
                // (the right one is not read then); two of the other value
                // give the other value; anything else is null.
                let decides = *op == BinaryOp::Or;
                match l.truth(row) {
                    Some(b) if b == decides => Some(decides),
                    a => match (a, r.truth(row)) {
                        (_, Some(b)) if b == decides => Some(decides),
                        (Some(_), Some(_)) => Some(!decides),
                        _ => None,
                    },
                }
            }
            ScalarExpr::Binary(
                op @ (BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge),
                l,
                r,
            ) => {
                let holds = |a: &Value, b: &Value| compare(a, b).map(|o| comparison_holds(*op, o));
                match (&**l, &**r) {
                    // The common test of a column against a constant, read
                    // without `value`'s two matches and copy-on-write
                    // wrappers (a fifth of a segment's time, measured).
                    (ScalarExpr::Slot(i), ScalarExpr::Literal(v)) => holds(slot(row, *i), v),
                    _ => holds(&l.value(row), &r.value(row)),
                }
            }
            ScalarExpr::IsNull(e, negated) => Some(e.value(row).is_null() != *negated),
            ScalarExpr::InList(e, list, negated) => {
                let x = e.value(row);
                if x.is_null() {
                    return None;
                }
                let mut saw_null = false;
                for item in list {
                    let v = item.value(row);
                    if v.is_null() {
                        saw_null = true;
                    } else if compare(&x, &v) == Some(Ordering::Equal) {
                        return Some(!negated);
                    }
                }
                if saw_null {
                    None
                } else {
                    Some(*negated)
                }
            }
            ScalarExpr::Case(whens, otherwise) => chosen_branch(whens, otherwise, row).and_then(|b| b.truth(row)),
            // Values that are not tests: computed, then read.
            ScalarExpr::Widen(..)
            | ScalarExpr::Unary(UnaryOp::Neg, _)
            | ScalarExpr::Binary(BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem, ..)
            | ScalarExpr::Call(..) => as_truth(&self.eval(row)),
        }
    }

    /// Calls `f` on every slot read.
    pub fn visit_slots(&self, f: &mut impl FnMut(usize)) {
        match self {
            ScalarExpr::Slot(i) => f(*i),
            ScalarExpr::Literal(_) => {}
            ScalarExpr::Widen(e, _) | ScalarExpr::Unary(_, e) | ScalarExpr::IsNull(e, _) => e.visit_slots(f),
            ScalarExpr::Binary(_, l, r) => {
                l.visit_slots(f);
                r.visit_slots(f);
            }
            ScalarExpr::InList(e, list, _) => {
                e.visit_slots(f);
                list.iter().for_each(|x| x.visit_slots(f));
            }
            ScalarExpr::Case(whens, o) => {
                for (c, v) in whens {
                    c.visit_slots(f);
                    v.visit_slots(f);
                }
                if let Some(o) = o {
                    o.visit_slots(f);
                }
            }
            ScalarExpr::Call(_, args) => args.iter().for_each(|x| x.visit_slots(f)),
        }
    }

    /// Readable text with slot names, for `explain`.
    pub fn display(&self, names: &dyn Fn(usize) -> String) -> String {
        match self {
            ScalarExpr::Slot(i) => names(*i),
            ScalarExpr::Literal(v) => literal_text(v),
            ScalarExpr::Widen(e, _) => e.display(names),
            ScalarExpr::Unary(UnaryOp::Not, e) => format!("not {}", e.display_nested(names)),
            ScalarExpr::Unary(UnaryOp::Neg, e) => format!("-{}", e.display_nested(names)),
            ScalarExpr::Binary(op, l, r) => {
                format!("{} {} {}", l.display_nested(names), op.symbol(), r.display_nested(names))
            }
            ScalarExpr::IsNull(e, n) => {
                format!("{} is {}null", e.display_nested(names), if *n { "not " } else { "" })
            }
            ScalarExpr::InList(e, list, n) => format!(
                "{} {}in [{}]",
                e.display_nested(names),
                if *n { "not " } else { "" },
                list.iter().map(|x| x.display(names)).collect::<Vec<_>>().join(", ")
            ),
            ScalarExpr::Case(whens, o) => {
                let mut s = "case".to_string();
                for (c, v) in whens {
                    s.push_str(&format!(" when {} then {}", c.display(names), v.display(names)));
                }
                if let Some(o) = o {
                    s.push_str(&format!(" else {}", o.display(names)));
                }
                s + " end"
            }
            ScalarExpr::Call(f, args) => {
                format!("{}({})", f.name(), args.iter().map(|x| x.display(names)).collect::<Vec<_>>().join(", "))
            }
        }
    }

    fn display_nested(&self, names: &dyn Fn(usize) -> String) -> String {
        match self {
            ScalarExpr::Binary(..) | ScalarExpr::IsNull(..) | ScalarExpr::InList(..) => {
                format!("({})", self.display(names))
            }
            _ => self.display(names),
        }
    }
}

fn literal_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{:?}", f.0),
        Value::Decimal(d) => d.to_string(),
        Value::Str(s) => format!("{:?}", s.as_ref()),
        Value::Timestamp(t) => crate::value::format_timestamp(*t),
        Value::Ref(r) => format!("ref#{r}"),
    }
}

pub fn widen(v: Value, ty: Type) -> Value {
    match (v, ty) {
        (Value::Int(i), Type::Decimal) => Value::Decimal(Decimal::from_int(i)),
        (Value::Int(i), Type::Float) => Value::Float(F64(i as f64)),
        (Value::Decimal(d), Type::Float) => Value::Float(F64(d.to_f64())),
        (v, _) => v,
    }
}

/// SQL comparison of two non-null values of compatible types (after widening).
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Int(x), Value::Decimal(y)) => Some(Decimal::from_int(*x).cmp(y)),
        (Value::Decimal(x), Value::Int(y)) => Some(x.cmp(&Decimal::from_int(*y))),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(&y.0),
        (Value::Float(x), Value::Int(y)) => x.0.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.0.partial_cmp(&y.0),
        _ => Some(a.cmp(b)),
    }
}

/// The branch of a `case` that `row` takes: the first whose condition is
/// true, else the `else` branch, if any (none: the case is null).
fn chosen_branch<'e>(
    whens: &'e [(ScalarExpr, ScalarExpr)],
    otherwise: &'e Option<Box<ScalarExpr>>,
    row: &[Value],
) -> Option<&'e ScalarExpr> {
    match whens.iter().find(|(c, _)| c.truth(row) == Some(true)) {
        Some((_, v)) => Some(v),
        None => otherwise.as_deref(),
    }
}

/// A boolean as a truth value; any other value (null) as none.
fn as_truth(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

/// Row position `i`'s value; null past the row's end.
fn slot(row: &[Value], i: usize) -> &Value {
    row.get(i).unwrap_or(&NULL)
}

/// Whether comparison `op` holds of two values ordered `o` (`truth` passes
/// comparisons only).
fn comparison_holds(op: BinaryOp, o: Ordering) -> bool {
    match op {
        BinaryOp::Eq => o.is_eq(),
        BinaryOp::Ne => o.is_ne(),
        BinaryOp::Lt => o.is_lt(),
        BinaryOp::Le => o.is_le(),
        BinaryOp::Gt => o.is_gt(),
        BinaryOp::Ge => o.is_ge(),
        _ => unreachable!("`{}` is not a comparison", op.symbol()),
    }
}

pub fn arithmetic(op: BinaryOp, a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let r = match op {
                BinaryOp::Add => x.checked_add(y),
                BinaryOp::Sub => x.checked_sub(y),
                BinaryOp::Mul => x.checked_mul(y),
                BinaryOp::Div => x.checked_div(y),
                BinaryOp::Rem => x.checked_rem(y),
                _ => None,
            };
            r.map_or(Value::Null, Value::Int)
        }
        (Value::Decimal(x), Value::Decimal(y)) => {
            let r = match op {
                BinaryOp::Add => x.checked_add(y),
                BinaryOp::Sub => x.checked_sub(y),
                BinaryOp::Mul => x.checked_mul(y),
                BinaryOp::Div => x.checked_div(y),
                BinaryOp::Rem => x.checked_rem(y),
                _ => None,
            };
            r.map_or(Value::Null, Value::Decimal)
        }
        (Value::Float(x), Value::Float(y)) => {
            let r = match op {
                BinaryOp::Add => x.0 + y.0,
                BinaryOp::Sub => x.0 - y.0,
                BinaryOp::Mul => x.0 * y.0,
                BinaryOp::Div if y.0 != 0.0 => x.0 / y.0,
                BinaryOp::Rem if y.0 != 0.0 => x.0 % y.0,
                _ => return Value::Null,
            };
            if r.is_finite() {
                Value::Float(F64(r))
            } else {
                Value::Null
            }
        }
        // Mixed int operands reach here only from untyped callers; widen and retry.
        (Value::Int(x), y @ (Value::Decimal(_) | Value::Float(_))) => {
            let ty = if matches!(y, Value::Decimal(_)) { Type::Decimal } else { Type::Float };
            arithmetic(op, widen(Value::Int(x), ty), y)
        }
        (x @ (Value::Decimal(_) | Value::Float(_)), Value::Int(y)) => {
            let ty = if matches!(x, Value::Decimal(_)) { Type::Decimal } else { Type::Float };
            arithmetic(op, x, widen(Value::Int(y), ty))
        }
        _ => Value::Null,
    }
}

fn call(f: Function, args: &[ScalarExpr], row: &[Value]) -> Value {
    match f {
        Function::Coalesce => args.iter().map(|a| a.eval(row)).find(|v| !v.is_null()).unwrap_or(Value::Null),
        Function::Lower | Function::Upper => match &*args[0].value(row) {
            Value::Str(s) => Value::str(&if f == Function::Lower { s.to_lowercase() } else { s.to_uppercase() }),
            _ => Value::Null,
        },
        Function::StartsWith | Function::Contains => match (&*args[0].value(row), &*args[1].value(row)) {
            (Value::Str(s), Value::Str(p)) => {
                Value::Bool(if f == Function::StartsWith { s.starts_with(&**p) } else { s.contains(&**p) })
            }
            _ => Value::Null,
        },
        Function::Abs => match args[0].eval(row) {
            Value::Int(i) => i.checked_abs().map_or(Value::Null, Value::Int),
            Value::Decimal(d) => Value::Decimal(Decimal(d.0.abs())),
            Value::Float(x) => Value::Float(F64(x.0.abs())),
            _ => Value::Null,
        },
        Function::Round => {
            let digits = match args.get(1).map(|a| a.eval(row)) {
                None => 0,
                Some(Value::Int(d)) => d,
                Some(_) => return Value::Null,
            };
            match args[0].eval(row) {
                Value::Int(i) if digits >= 0 => Value::Int(i),
                Value::Int(i) => {
                    let rounded = Decimal::from_int(i).round(digits).0 / 1_000_000;
                    i64::try_from(rounded).map_or(Value::Null, Value::Int)
                }
                Value::Decimal(d) => Value::Decimal(d.round(digits)),
                Value::Float(x) => {
                    let scale = 10f64.powi(digits.clamp(-300, 300) as i32);
                    let r = (x.0 * scale).round() / scale;
                    if r.is_finite() {
                        Value::Float(F64(r))
                    } else {
                        Value::Null
                    }
                }
                _ => Value::Null,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The plain reading of every node, each operand evaluated to a value
    /// first: what `eval` and `truth` must agree with.
    fn reference(e: &ScalarExpr, row: &[Value]) -> Value {
        let truth = |v: Value| match v {
            Value::Bool(b) => Some(b),
            _ => None,
        };
        let boolean = |t: Option<bool>| t.map_or(Value::Null, Value::Bool);
        match e {
            ScalarExpr::Slot(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            ScalarExpr::Literal(v) => v.clone(),
            ScalarExpr::Widen(x, ty) => widen(reference(x, row), *ty),
            ScalarExpr::Unary(UnaryOp::Not, x) => boolean(truth(reference(x, row)).map(|b| !b)),
            ScalarExpr::Unary(UnaryOp::Neg, x) => match reference(x, row) {
                Value::Int(i) => i.checked_neg().map_or(Value::Null, Value::Int),
                Value::Decimal(d) => Value::Decimal(Decimal(-d.0)),
                Value::Float(f) => Value::Float(F64(-f.0)),
                _ => Value::Null,
            },
            ScalarExpr::Binary(op, l, r) => {
                let (a, b) = (reference(l, row), reference(r, row));
                match op {
                    BinaryOp::And => match (truth(a), truth(b)) {
                        (Some(false), _) | (_, Some(false)) => Value::Bool(false),
                        (Some(true), Some(true)) => Value::Bool(true),
                        _ => Value::Null,
                    },
                    BinaryOp::Or => match (truth(a), truth(b)) {
                        (Some(true), _) | (_, Some(true)) => Value::Bool(true),
                        (Some(false), Some(false)) => Value::Bool(false),
                        _ => Value::Null,
                    },
                    BinaryOp::Eq => boolean(compare(&a, &b).map(|o| o == Ordering::Equal)),
                    BinaryOp::Ne => boolean(compare(&a, &b).map(|o| o != Ordering::Equal)),
                    BinaryOp::Lt => boolean(compare(&a, &b).map(|o| o == Ordering::Less)),
                    BinaryOp::Le => boolean(compare(&a, &b).map(|o| o != Ordering::Greater)),
                    BinaryOp::Gt => boolean(compare(&a, &b).map(|o| o == Ordering::Greater)),
                    BinaryOp::Ge => boolean(compare(&a, &b).map(|o| o != Ordering::Less)),
                    BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                        arithmetic(*op, a, b)
                    }
                }
            }
            ScalarExpr::IsNull(x, negated) => Value::Bool(reference(x, row).is_null() != *negated),
            ScalarExpr::InList(x, list, negated) => {
                let x = reference(x, row);
                if x.is_null() {
                    return Value::Null;
                }
                let items: Vec<Value> = list.iter().map(|i| reference(i, row)).collect();
                if items.iter().any(|v| compare(&x, v) == Some(Ordering::Equal)) {
                    Value::Bool(!negated)
                } else if items.iter().any(Value::is_null) {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                }
            }
            ScalarExpr::Case(whens, otherwise) => whens
                .iter()
                .find(|(c, _)| reference(c, row) == Value::Bool(true))
                .map(|(_, v)| reference(v, row))
                .unwrap_or_else(|| otherwise.as_ref().map_or(Value::Null, |o| reference(o, row))),
            // The functions' own meaning is `call`'s: here it reads
            // arguments already evaluated.
            ScalarExpr::Call(f, args) => {
                let args: Vec<ScalarExpr> = args.iter().map(|a| ScalarExpr::Literal(reference(a, row))).collect();
                call(*f, &args, &[])
            }
        }
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            1 => Just(Value::Null),
            // Booleans as often as all the rest: `and`, `or`, `not` and
            // `case` mostly meet them.
            6 => any::<bool>().prop_map(Value::Bool),
            1 => (-3i64..4).prop_map(Value::Int),
            1 => (-3i128..4).prop_map(|d| Value::Decimal(Decimal(d * 500_000))),
            1 => (-2i32..3).prop_map(|f| Value::Float(F64(f as f64 / 2.0))),
            1 => prop::sample::select(vec!["", "a", "ab", "Shanghai", "MINI shop"]).prop_map(Value::str),
            1 => (0i64..3).prop_map(Value::Timestamp),
        ]
    }

    fn any_expr() -> impl Strategy<Value = ScalarExpr> {
        // Slots 5 and 6 are past the row's end.
        let leaf = prop_oneof![(0usize..7).prop_map(ScalarExpr::Slot), any_value().prop_map(ScalarExpr::Literal)];
        leaf.prop_recursive(4, 40, 4, |e| {
            let op = prop::sample::select(BinaryOp::ALL.to_vec());
            let ty = prop::sample::select(vec![Type::Decimal, Type::Float, Type::Int]);
            prop_oneof![
                (e.clone(), ty).prop_map(|(x, t)| ScalarExpr::Widen(Box::new(x), t)),
                e.clone().prop_map(|x| ScalarExpr::Unary(UnaryOp::Not, Box::new(x))),
                e.clone().prop_map(|x| ScalarExpr::Unary(UnaryOp::Neg, Box::new(x))),
                (op, e.clone(), e.clone()).prop_map(|(op, l, r)| ScalarExpr::Binary(op, Box::new(l), Box::new(r))),
                (e.clone(), any::<bool>()).prop_map(|(x, n)| ScalarExpr::IsNull(Box::new(x), n)),
                (e.clone(), prop::collection::vec(e.clone(), 0..3), any::<bool>())
                    .prop_map(|(x, l, n)| ScalarExpr::InList(Box::new(x), l, n)),
                (prop::collection::vec((e.clone(), e.clone()), 1..3), prop::option::of(e.clone()))
                    .prop_map(|(w, o)| ScalarExpr::Case(w, o.map(Box::new))),
                (prop::sample::select(Function::ALL.to_vec()), prop::collection::vec(e.clone(), 1..3)).prop_filter_map(
                    "arity",
                    |(f, mut args)| {
                        let arity = match f {
                            Function::Coalesce => args.len(),
                            Function::Lower | Function::Upper | Function::Abs => 1,
                            Function::StartsWith | Function::Contains => 2,
                            Function::Round => args.len().min(2),
                        };
                        (args.len() >= arity).then(|| {
                            args.truncate(arity);
                            ScalarExpr::Call(f, args)
                        })
                    }
                ),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// `eval` and `truth` read tests and conditions without building
        /// values on the way; over any expression, of any types, they give
        /// what the plain reading gives.
        #[test]
        fn eval_and_truth_agree_with_the_plain_reading(
            e in any_expr(),
            row in prop::collection::vec(any_value(), 5),
        ) {
            let expected = reference(&e, &row);
            prop_assert_eq!(e.eval(&row), expected.clone());
            let truth = match expected {
                Value::Bool(b) => Some(b),
                _ => None,
            };
            prop_assert_eq!(e.truth(&row), truth);
        }
    }

    fn lit(v: Value) -> ScalarExpr {
        ScalarExpr::Literal(v)
    }

    #[test]
    fn three_valued_logic() {
        let t = lit(Value::Bool(true));
        let f = lit(Value::Bool(false));
        let n = lit(Value::Null);
        let and = |a: &ScalarExpr, b: &ScalarExpr| {
            ScalarExpr::Binary(BinaryOp::And, Box::new(a.clone()), Box::new(b.clone())).eval(&[])
        };
        let or = |a: &ScalarExpr, b: &ScalarExpr| {
            ScalarExpr::Binary(BinaryOp::Or, Box::new(a.clone()), Box::new(b.clone())).eval(&[])
        };
        assert_eq!(and(&n, &f), Value::Bool(false));
        assert_eq!(and(&n, &t), Value::Null);
        assert_eq!(or(&n, &t), Value::Bool(true));
        assert_eq!(or(&n, &f), Value::Null);
        assert_eq!(and(&t, &t), Value::Bool(true));
        assert_eq!(or(&f, &f), Value::Bool(false));
        let in_list = ScalarExpr::InList(Box::new(lit(Value::Int(3))), vec![lit(Value::Int(1)), n.clone()], false);
        assert_eq!(in_list.eval(&[]), Value::Null);
    }

    #[test]
    fn arithmetic_never_fails() {
        assert_eq!(arithmetic(BinaryOp::Div, Value::Int(7), Value::Int(2)), Value::Int(3));
        assert_eq!(arithmetic(BinaryOp::Div, Value::Int(-7), Value::Int(2)), Value::Int(-3));
        assert_eq!(arithmetic(BinaryOp::Div, Value::Int(1), Value::Int(0)), Value::Null);
        assert_eq!(arithmetic(BinaryOp::Add, Value::Int(i64::MAX), Value::Int(1)), Value::Null);
        assert_eq!(arithmetic(BinaryOp::Mul, Value::Null, Value::Int(1)), Value::Null);
    }
}
