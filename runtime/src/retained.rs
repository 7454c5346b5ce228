//! The events of one type that a restart (or a changed model) may still
//! need, in (time, arrival) order, for snapshots.

use crate::render::SharedRow;
use std::collections::{BTreeMap, VecDeque};

/// Events mostly arrive in time order, so each is appended to a queue and
/// the oldest leave from its front: sequential memory, where a tree by time
/// allocated and walked nodes for every event. One that comes after a later
/// one (a late event) goes to a tree instead.
#[derive(Clone, Default)]
pub struct Retained {
    in_order: VecDeque<((i64, u64), SharedRow)>,
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

    /// The events kept, in (time, arrival) order.
    pub fn rows(&self) -> Vec<SharedRow> {
        let mut rows = Vec::with_capacity(self.in_order.len() + self.late.len());
        let (mut in_order, mut late) = (self.in_order.iter().peekable(), self.late.iter().peekable());
        while let (Some((a, _)), Some((b, _))) = (in_order.peek(), late.peek()) {
            let next = if a <= b { in_order.next().map(|(_, row)| row) } else { late.next().map(|(_, row)| row) };
            rows.extend(next.cloned());
        }
        rows.extend(in_order.map(|(_, row)| row.clone()));
        rows.extend(late.map(|(_, row)| row.clone()));
        rows
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
        let kept = |r: &Retained| r.rows().iter().map(|row| row[0].clone()).collect::<Vec<_>>();
        assert_eq!(kept(&retained), [54, 100, 152, 201, 203].map(Value::Int));
        retained.forget_until(15);
        assert_eq!(kept(&retained), [201, 203].map(Value::Int));
        retained.insert(17, 5, row(175));
        assert_eq!(kept(&retained), [175, 201, 203].map(Value::Int), "late after the front moved");
        retained.forget_until(20);
        assert!(kept(&retained).is_empty());
    }
}
