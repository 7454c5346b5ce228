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
                fields: e.fields.iter().skip(hir::EVENT_AT + 1).map(field).collect(),
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
            if let (ExprKind::Column(column), ExprKind::Literal(value)) = (&column.kind, &literal.kind) {
                if let Some(field) = field_of(schema, row, column) {
                    note(field, value);
                }
            }
        }
    });
}

/// The declared field `column` reads, following references.
fn field_of<'s>(schema: &'s mut Schema, row: Row, column: &Column) -> Option<&'s mut FieldSchema> {
    match (column, row) {
        (Column::Field(i), Row::Entity(e)) => schema.entities.get_mut(e)?.fields.get_mut(*i),
        // Event columns count the implicit `id` and `at`, which the schema leaves out.
        (Column::Field(i), Row::Event(k)) => {
            schema.events.get_mut(k)?.fields.get_mut(i.checked_sub(hir::EVENT_AT + 1)?)
        }
        (Column::Follow { entity, target, .. }, _) => field_of(schema, Row::Entity(*entity), target),
        (Column::Tag(_) | Column::Segment(_), _) => None,
    }
}

fn note(field: &mut FieldSchema, value: &Value) {
    let magnitude = match value {
        Value::Str(s) => {
            let s = s.as_str().to_string();
            if field.ty == FieldType::String && !field.literals.contains(&s) {
                field.literals.push(s);
            }
            return;
        }
        Value::Int(n) => n.unsigned_abs(),
        // Rounded up: the field's values then reach past it.
        Value::Decimal(d) => (d.0.unsigned_abs() / 10u128.pow(DECIMAL_SCALE)).min(u128::from(u64::MAX - 1)) as u64 + 1,
        Value::Float(f) => f.0.abs().min(1e15) as u64 + 1,
        _ => return,
    };
    field.largest_number = Some(field.largest_number.map_or(magnitude, |n| n.max(magnitude)));
}
