//! The schema `segflow gen --model` writes data for: a compiled model's
//! entities and events, with the literals its definitions compare each field
//! with (see `segflow_gen::schema`).

use segflow_compiler::hir::{self, BinaryOp::*, Column, EventId, Expr, ExprKind, Function, Program};
use segflow_compiler::value::{Type, Value, DECIMAL_SCALE};
use segflow_gen::schema::{EntitySchema, EventSchema, FieldSchema, FieldType, Schema};

/// The model's schema; every string and number a definition compares a
/// field with directly (`channel = "app"`, `amount > 100`, `city in [..]`,
/// `starts_with(url, "/p/")`, and through a followed reference,
/// `product.category = "shoes"`) is noted on that field.
pub fn schema_of(program: &Program) -> Schema {
    let mut schema = Schema {
        entities: program
            .entities
            .iter()
            .map(|e| EntitySchema { name: e.name.clone(), key: e.key, fields: e.fields.iter().map(field).collect() })
            .collect(),
        events: program
            .events
            .iter()
            .map(|e| EventSchema {
                name: e.name.clone(),
                // Without the implicit `id` and `at`, which the generator writes itself.
                fields: e.fields.iter().skip(FIRST_DECLARED).map(field).collect(),
            })
            .collect(),
    };
    for tag in &program.tags {
        note_literals(&mut schema, Row::Entity(tag.entity), &tag.expr);
    }
    for segment in &program.segments {
        note_literals(&mut schema, Row::Entity(segment.entity), &segment.expr);
    }
    for aggregate in &program.aggregates {
        if let Some(filter) = &aggregate.filter {
            note_literals(&mut schema, Row::Event(aggregate.event), filter);
        }
    }
    schema
}

fn field(f: &hir::Field) -> FieldSchema {
    let ty = match f.ty {
        Type::Bool => FieldType::Bool,
        Type::Int => FieldType::Int,
        Type::Float => FieldType::Float,
        Type::Decimal => FieldType::Decimal,
        Type::Timestamp => FieldType::Timestamp,
        Type::Ref(entity) => FieldType::Ref(entity),
        // A declared field is never of the null type; a string is the safe reading.
        Type::String | Type::Null => FieldType::String,
    };
    FieldSchema::new(&f.name, ty, f.nullable)
}

/// The row an expression's columns are read from.
#[derive(Clone, Copy)]
enum Row {
    Entity(usize),
    Event(EventId),
}

/// Notes on its field each literal that `expr` compares a column with.
fn note_literals(schema: &mut Schema, row: Row, expr: &Expr) {
    expr.visit(&mut |e| {
        let compared: Vec<(&Expr, &Expr)> = match &e.kind {
            ExprKind::Binary(Eq | Ne | Lt | Le | Gt | Ge, left, right) => {
                vec![(&**left, &**right), (&**right, &**left)]
            }
            ExprKind::InList { expr, list, .. } => list.iter().map(|item| (&**expr, item)).collect(),
            ExprKind::Call(Function::StartsWith | Function::Contains, args) if args.len() == 2 => {
                vec![(&args[0], &args[1])]
            }
            _ => Vec::new(),
        };
        for (column, literal) in compared {
            // An int compared with a decimal or a float is widened, and so
            // is an int column compared with a fraction.
            if let (ExprKind::Column(column), ExprKind::Literal(value)) =
                (&unwidened(column).kind, &unwidened(literal).kind)
            {
                if let Some(field) = field_of(schema, row, column) {
                    note(field, value);
                }
            }
        }
    });
}

/// `expr` without the widenings around it.
fn unwidened(mut expr: &Expr) -> &Expr {
    while let ExprKind::Widen(inner) = &expr.kind {
        expr = inner;
    }
    expr
}

/// The first of an event's declared fields, after the implicit `id` and `at`.
const FIRST_DECLARED: usize = hir::EVENT_AT + 1;

/// The declared field `column` reads, following references.
fn field_of<'s>(schema: &'s mut Schema, row: Row, column: &Column) -> Option<&'s mut FieldSchema> {
    match (column, row) {
        (Column::Field(i), Row::Entity(e)) => schema.entities.get_mut(e)?.fields.get_mut(*i),
        // Event columns count the implicit `id` and `at`, which the schema leaves out.
        (Column::Field(i), Row::Event(k)) => schema.events.get_mut(k)?.fields.get_mut(i.checked_sub(FIRST_DECLARED)?),
        (Column::Follow { entity, target, .. }, _) => field_of(schema, Row::Entity(*entity), target),
        (Column::Tag(_) | Column::Segment(_), _) => None,
    }
}

fn note(field: &mut FieldSchema, value: &Value) {
    let (magnitude, down_to_zero) = match value {
        Value::Str(s) => {
            let s = s.as_str().to_string();
            if field.ty == FieldType::String && !field.literals.contains(&s) {
                field.literals.push(s);
            }
            return;
        }
        Value::Int(n) => (n.unsigned_abs(), *n <= 0),
        // A fraction's magnitude is rounded up to a whole number.
        Value::Decimal(d) => {
            let one = 10u128.pow(DECIMAL_SCALE);
            ((d.0.unsigned_abs().div_ceil(one)).min(u128::from(u64::MAX)) as u64, d.0 <= 0)
        }
        Value::Float(f) => (f.0.abs().ceil().min(1e15) as u64, f.0 <= 0.0),
        _ => return,
    };
    field.largest_number = Some(field.largest_number.map_or(magnitude, |n| n.max(magnitude)));
    field.down_to_zero |= down_to_zero;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of_text(text: &str) -> Schema {
        let mut sources = segflow_compiler::SourceMap::new();
        sources.add("m.eql", text);
        let compiled = segflow_compiler::compile(&sources).unwrap_or_else(|e| panic!("{}", sources.render(&e)));
        schema_of(&compiled.program)
    }

    #[test]
    fn literals_are_noted_on_the_fields_they_are_compared_with() {
        let schema = schema_of_text(
            r#"
            entity shop { key id: string; kind: string; rating: float?; }
            entity user { key id: int; city: string?; level: int?; }
            event buy { user: user; shop: shop; amount: decimal; units: int; }
            tag user.big = count(buy where amount > 100 and units >= 2 within 7d);
            tag user.cheap = count(buy where amount in [10, 20.5] and shop.kind = "outlet" within 7d);
            tag user.rated = count(buy where shop.rating > 4 and units > 0.5);
            segment locals on user = city in ["Lyon", "Nice"] or starts_with(city, "Par") or level > 0;
            tag user.sum = coalesce(level, 0) + 2026;
            "#,
        );
        let field = |entity: Option<usize>, name: &str| {
            let fields = match entity {
                Some(e) => &schema.entities[e].fields,
                None => &schema.events[0].fields,
            };
            fields.iter().find(|f| f.name == name).unwrap().clone()
        };
        // An int compared with a decimal, a decimal list, a fraction: widened.
        let amount = field(None, "amount");
        assert_eq!((amount.largest_number, amount.down_to_zero), (Some(100), false));
        // 2 and, widened to a decimal, 0.5 (rounded up to 1).
        assert_eq!(field(None, "units").largest_number, Some(2));
        assert_eq!(field(Some(0), "rating").largest_number, Some(4), "through a followed reference, widened");
        assert_eq!(field(Some(0), "kind").literals, ["outlet"]);
        assert_eq!(field(Some(1), "city").literals, ["Lyon", "Nice", "Par"]);
        let level = field(Some(1), "level");
        assert_eq!((level.largest_number, level.down_to_zero), (Some(0), true), "not 2026: only comparisons");
        assert!(field(Some(1), "id").literals.is_empty());
    }
}
