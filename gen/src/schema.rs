//! What [`crate::generate_for`] needs to know of a model: its entities and
//! events with their fields' types, and the literals its definitions compare
//! fields with. The `segflow` binary fills it in from a compiled EQL model;
//! this crate does not depend on the compiler.

/// A model's data contract (EQL.md §3–4) as the generator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub entities: Vec<EntitySchema>,
    pub events: Vec<EventSchema>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySchema {
    pub name: String,
    /// All attributes in declaration order, the key among them.
    pub fields: Vec<FieldSchema>,
    /// The key's index in `fields` (a `String` or `Int`).
    pub key: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSchema {
    pub name: String,
    /// The declared fields, without the implicit `id` and `at`.
    pub fields: Vec<FieldSchema>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSchema {
    pub name: String,
    pub ty: FieldType,
    pub nullable: bool,
    /// Strings the model compares this field with (`channel = "app"`,
    /// `category in ["shoes", "toys"]`, `starts_with(url, "/p/")`): the
    /// generator makes them this field's most common values, so that the
    /// filters and segments written against them find something.
    pub literals: Vec<String>,
    /// The largest magnitude of a number the model compares this field with
    /// (`amount > 100` gives 100, `amount > 99.5` gives 100): the field's
    /// values then reach twice it, spreading over both sides of it.
    pub largest_number: Option<u64>,
    /// Whether the model compares this field with zero or a negative
    /// number (`stock > 0`): its numbers then start at 0, not 1 (they are
    /// never negative).
    pub down_to_zero: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Bool,
    Int,
    Float,
    Decimal,
    String,
    Timestamp,
    /// A reference to an instance of `entities[i]`, written as its key.
    Ref(usize),
}

impl FieldSchema {
    /// A field with no literals compared against it.
    pub fn new(name: &str, ty: FieldType, nullable: bool) -> FieldSchema {
        FieldSchema {
            name: name.to_string(),
            ty,
            nullable,
            literals: Vec::new(),
            largest_number: None,
            down_to_zero: false,
        }
    }
}

impl Schema {
    /// The entity the events reference most (the first declared of those
    /// that tie; the first entity when no event references one): the one
    /// `GenConfig::users` counts, like the retail data's users.
    pub fn main_entity(&self) -> Option<usize> {
        let mut references = vec![0usize; self.entities.len()];
        for field in self.events.iter().flat_map(|e| &e.fields) {
            if let FieldType::Ref(entity) = field.ty {
                // (A reference to no entity, which `check` refuses, counts for none.)
                if let Some(count) = references.get_mut(entity) {
                    *count += 1;
                }
            }
        }
        // `max_by_key` keeps the last of equal counts; the first declared wins.
        (0..self.entities.len()).rev().max_by_key(|&e| references[e])
    }

    /// Why `generate_for` cannot write data for this schema, if it cannot:
    /// a key that is not a non-null string or int, or a reference to no entity.
    pub fn check(&self) -> Result<(), String> {
        let entities = self.entities.len();
        for entity in &self.entities {
            match entity.fields.get(entity.key) {
                Some(key) if matches!(key.ty, FieldType::String | FieldType::Int) && !key.nullable => {}
                _ => return Err(format!("entity `{}`: its key must be a non-null string or int", entity.name)),
            }
        }
        let fields = self.entities.iter().flat_map(|e| &e.fields).chain(self.events.iter().flat_map(|e| &e.fields));
        for field in fields {
            if let FieldType::Ref(entity) = field.ty {
                if entity >= entities {
                    return Err(format!("field `{}` refers to entity {entity}, of {entities}", field.name));
                }
            }
        }
        Ok(())
    }

    /// How many instances of each entity the generator writes for `users`:
    /// `users` of the main entity and `max(10, users / 100)` of each other.
    pub fn instance_counts(&self, users: u64) -> Vec<u64> {
        let main = self.main_entity();
        (0..self.entities.len()).map(|e| if Some(e) == main { users } else { (users / 100).max(10) }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(name: &str) -> EntitySchema {
        EntitySchema { name: name.into(), fields: vec![FieldSchema::new("id", FieldType::String, false)], key: 0 }
    }

    #[test]
    fn the_main_entity_is_the_most_referenced_and_the_first_of_a_tie() {
        let event = |refs: &[usize]| EventSchema {
            name: "e".into(),
            fields: refs.iter().map(|&r| FieldSchema::new("r", FieldType::Ref(r), false)).collect(),
        };
        let mut schema = Schema { entities: vec![entity("a"), entity("b"), entity("c")], events: vec![] };
        assert_eq!(schema.main_entity(), Some(0));
        schema.events = vec![event(&[2, 1]), event(&[2, 1])];
        assert_eq!(schema.main_entity(), Some(1));
        schema.events.push(event(&[2]));
        assert_eq!(schema.main_entity(), Some(2));
        assert_eq!(schema.instance_counts(5_000), vec![50, 50, 5_000]);
        assert_eq!(schema.instance_counts(200), vec![10, 10, 200]);
        assert_eq!(Schema { entities: vec![], events: vec![] }.main_entity(), None);
    }
}
