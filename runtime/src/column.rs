//! One output's current values by instance id, as the serving state holds
//! them for reads.
//!
//! Instance ids are dense per entity (see `intern`), so a tag's values sit in
//! a vector indexed by id: 24 bytes an instance, against 40 to 75 for a hash
//! map entry, and publishing writes a slot instead of hashing (and now and
//! then rehashing the whole map into fresh memory). A segment's column holds
//! only its members, usually a small part of the entity: a map.

use crate::chunked::Slots;
use foldhash::HashMap;
use segflow_compiler::value::Value;

#[derive(Clone, Debug)]
pub enum Column {
    /// By id; `None` is absent (the output's default). `present` counts the rest.
    Dense {
        /// In chunks: growing never copies the column.
        values: Slots<Option<Value>>,
        present: usize,
    },
    Sparse(HashMap<u64, Value>),
}

// An absent slot costs no more than a value.
const _: () = assert!(std::mem::size_of::<Option<Value>>() == std::mem::size_of::<Value>());

impl Column {
    pub fn sparse() -> Column {
        Column::Sparse(HashMap::default())
    }

    /// Suits the column to an entity of `instances`, before a batch that
    /// brings it up to `incoming` values: a tag column is a vector while at
    /// least a quarter of the instances have a value (a backfill's column is
    /// sized once), and a map while fewer than one in sixteen do, so a tag
    /// few instances have costs what they have, not 24 B an instance.
    pub fn fit(&mut self, instances: usize, incoming: usize) {
        match self {
            Column::Sparse(map) if (map.len() + incoming) * 4 >= instances => {
                let map = std::mem::take(map);
                *self = Column::Dense { values: Slots::with_len(instances), present: 0 };
                for (id, value) in map {
                    self.insert(id, value);
                }
            }
            Column::Dense { values, present } if *present * 16 < values.len() && incoming * 16 < values.len() => {
                let map = values.iter_mut().enumerate().filter_map(|(id, v)| Some((id as u64, v.take()?))).collect();
                *self = Column::Sparse(map);
            }
            Column::Dense { values, .. } if values.len() < instances => values.grow_to(instances),
            _ => {}
        }
    }

    pub fn get(&self, id: u64) -> Option<&Value> {
        match self {
            Column::Dense { values, .. } => values.get(id as usize)?.as_ref(),
            Column::Sparse(map) => map.get(&id),
        }
    }

    /// Asks for the memory of `id`'s value without waiting for it: a batch
    /// publishes values of instances scattered over columns far larger than
    /// the cache (a map's slot is not known ahead).
    pub fn prefetch(&self, id: u64) {
        if let Column::Dense { values, .. } = self {
            if let Some(slot) = values.get(id as usize) {
                crate::instances::prefetch(slot);
            }
        }
    }

    pub fn insert(&mut self, id: u64, value: Value) {
        match self {
            Column::Dense { values, present } => {
                let i = id as usize;
                values.grow_to(i + 1);
                if values[i].replace(value).is_none() {
                    *present += 1;
                }
            }
            Column::Sparse(map) => {
                map.insert(id, value);
            }
        }
    }

    pub fn remove(&mut self, id: u64) {
        match self {
            Column::Dense { values, present } => {
                if values.get_mut(id as usize).and_then(Option::take).is_some() {
                    *present -= 1;
                }
            }
            Column::Sparse(map) => {
                map.remove(&id);
            }
        }
    }

    /// Instances with a value (not the default).
    pub fn len(&self) -> usize {
        match self {
            Column::Dense { present, .. } => *present,
            Column::Sparse(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Column;
    use crate::chunked::Slots;
    use segflow_compiler::value::Value;

    #[test]
    fn both_forms_hold_the_same_values() {
        for mut column in [Column::Dense { values: Slots::default(), present: 0 }, Column::sparse()] {
            assert_eq!(column.get(3), None);
            column.insert(3, Value::Int(7));
            column.insert(0, Value::Null);
            column.insert(3, Value::Int(8));
            assert_eq!(
                (column.get(3), column.get(0), column.get(1), column.get(99)),
                (Some(&Value::Int(8)), Some(&Value::Null), None, None)
            );
            assert_eq!(column.len(), 2);
            column.remove(3);
            column.remove(3);
            column.remove(42);
            assert_eq!((column.get(3), column.len()), (None, 1));
        }
    }

    #[test]
    fn a_column_is_a_vector_while_most_instances_have_a_value() {
        let dense = |c: &Column| matches!(c, Column::Dense { .. });
        let mut column = Column::sparse();
        column.insert(5, Value::Int(5));
        column.fit(100, 10);
        assert!(!dense(&column), "11 of 100 may have a value: a map");
        column.fit(100, 24);
        assert!(dense(&column), "25 of 100: a vector");
        assert_eq!((column.get(5), column.len()), (Some(&Value::Int(5)), 1));
        for id in 0..40 {
            column.insert(id, Value::Int(id as i64));
        }
        column.fit(1000, 0);
        assert!(dense(&column), "40 of 1000 is not below one in sixteen");
        for id in 1..40 {
            column.remove(id);
        }
        column.fit(1000, 0);
        assert!(!dense(&column), "1 of 1000: a map again");
        assert_eq!((column.get(0), column.get(5), column.len()), (Some(&Value::Int(0)), None, 1));
    }
}
