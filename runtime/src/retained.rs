//! The events of one type that a restart (or a changed model) may still
//! need, in (time, arrival) order, for snapshots.

use crate::chunked::Shared;
use crate::render::SharedRow;
use segflow_compiler::hir::EVENT_AT;
use segflow_compiler::value::Value;
use std::collections::BTreeMap;

/// Events mostly arrive in time order, so each is appended to a log whose
/// front is forgotten as windows pass: sequential memory, where a tree by
/// time allocated and walked nodes for every event. One that comes after a
/// later one (a late event) goes to a tree instead. The log is chunked, so
/// a snapshot's copy (a clone) shares its chunks instead of copying every
/// event, and growing it never copies them either.
///
/// In a snapshot, the events are a list of rows in (time, arrival) order; read
/// back, each is kept at the time its row holds, in that order.
#[derive(Clone, Debug, Default)]
pub struct Retained {
    in_order: Shared<((i64, u64), SharedRow)>,
    late: BTreeMap<(i64, u64), SharedRow>,
}

impl Retained {
    /// Keeps the event at time `t`, the `arrival`-th to come.
    pub fn insert(&mut self, t: i64, arrival: u64, row: SharedRow) {
        let key = (t, arrival);
        if self.in_order.back().is_none_or(|(last, _)| *last <= key) {
            self.in_order.push_back((key, row));
        } else {
            self.late.insert(key, row);
        }
    }

    /// Forgets the events at `horizon` or before.
    pub fn forget_until(&mut self, horizon: i64) {
        while self.in_order.front().is_some_and(|((t, _), _)| *t <= horizon) {
            self.in_order.pop_front();
        }
        if self.late.first_key_value().is_some_and(|((t, _), _)| *t <= horizon) {
            self.late = self.late.split_off(&(horizon + 1, 0));
        }
    }

    pub fn len(&self) -> usize {
        self.in_order.len() + self.late.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The events kept, in (time, arrival) order.
    pub fn rows(&self) -> impl Iterator<Item = &SharedRow> {
        let (mut in_order, mut late) = (self.in_order.iter().peekable(), self.late.iter().peekable());
        std::iter::from_fn(move || match (in_order.peek(), late.peek()) {
            (Some((a, _)), Some((b, _))) if *b < a => late.next().map(|(_, row)| row),
            (Some(_), _) => in_order.next().map(|(_, row)| row),
            (None, _) => late.next().map(|(_, row)| row),
        })
    }
}

impl serde::Serialize for Retained {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for row in self.rows() {
            seq.serialize_element(row)?;
        }
        seq.end()
    }
}

impl<'de> serde::Deserialize<'de> for Retained {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Retained, D::Error> {
        let mut retained = Retained::default();
        for (arrival, row) in Vec::<SharedRow>::deserialize(deserializer)?.into_iter().enumerate() {
            let t = match row.get(EVENT_AT) {
                Some(Value::Timestamp(t)) => *t,
                _ => i64::MIN,
            };
            retained.insert(t, arrival as u64, row);
        }
        Ok(retained)
    }
}

#[cfg(test)]
mod tests {
    use super::Retained;
    use crate::render::SharedRow;
    use segflow_compiler::value::Value;

    #[test]
    fn events_are_kept_in_time_and_arrival_order_and_the_oldest_forgotten() {
        let row = |n: i64| -> SharedRow { vec![Value::Int(n)].into() };
        let mut retained = Retained::default();
        // (time, arrival): 10, 20, a late 15, 20 again, a late 5.
        for (arrival, t) in [10, 20, 15, 20, 5].into_iter().enumerate() {
            retained.insert(t, arrival as u64, row(t * 10 + arrival as i64));
        }
        let kept = |r: &Retained| r.rows().map(|row| row[0].clone()).collect::<Vec<_>>();
        assert_eq!(kept(&retained), [54, 100, 152, 201, 203].map(Value::Int));
        retained.forget_until(15);
        assert_eq!(kept(&retained), [201, 203].map(Value::Int));
        retained.insert(17, 5, row(175));
        assert_eq!(kept(&retained), [175, 201, 203].map(Value::Int), "late after the front moved");
        retained.forget_until(20);
        assert!(kept(&retained).is_empty());
    }

    #[test]
    fn a_snapshot_lists_the_events_in_order_however_many_chunks_they_span() {
        // As events are kept: `[id, at, ...]`.
        let row = |t: i64| -> SharedRow { vec![Value::Int(t), Value::Timestamp(t)].into() };
        let mut retained = Retained::default();
        // Every tenth event is late by 25; times over several chunks.
        let times: Vec<i64> = (0..5_000).map(|i| if i % 10 == 9 { i - 25 } else { i }).collect();
        for (arrival, &t) in times.iter().enumerate() {
            retained.insert(t, arrival as u64, row(t));
        }
        let copy = retained.clone();
        retained.forget_until(2_000);
        let mut expected = times.clone();
        expected.sort();
        let kept = |r: &Retained| r.rows().map(|row| row[0].clone()).collect::<Vec<_>>();
        assert_eq!(kept(&copy), expected.iter().map(|&t| Value::Int(t)).collect::<Vec<_>>(), "a copy keeps all");
        let after: Vec<Value> = expected.iter().filter(|&&t| t > 2_000).map(|&t| Value::Int(t)).collect();
        assert_eq!(kept(&retained), after);
        assert_eq!(retained.len(), after.len());
        let written = bincode::serialize(&retained).unwrap();
        let rows: Vec<SharedRow> = retained.rows().cloned().collect();
        assert_eq!(written, bincode::serialize(&rows).unwrap(), "written as the list of rows it was");
        let mut read: Retained = bincode::deserialize(&written).unwrap();
        assert_eq!(kept(&read), after);
        read.forget_until(3_000);
        let later: Vec<Value> = expected.iter().filter(|&&t| t > 3_000).map(|&t| Value::Int(t)).collect();
        assert_eq!(kept(&read), later, "read back, the events keep their times");
    }
}
