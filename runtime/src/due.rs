//! Updates queued for later times: window retractions, and rows whose time
//! is ahead of the batch's. A served history holds one per event, millions
//! of them.

use crate::chunked::Shared;
use crate::input_groups::{retraction, InputGroups};
use crate::render::{SharedRow, Time};
use std::collections::BinaryHeap;

/// An update queued for a later time: 32 bytes.
pub struct Due {
    pub time: Time,
    pub row: SharedRow,
    pub input: u32,
    pub diff: i32,
}

impl Due {
    pub fn new(time: Time, input: usize, row: SharedRow, diff: i32) -> Due {
        Due { time, row, input: input as u32, diff }
    }
}

// Ordered by time alone, reversed: `BinaryHeap` pops its greatest first.
// Updates due at the same time go to the workers together, in any order.
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.time.cmp(&self.time)
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.time == other.time
    }
}

impl Eq for Due {}

/// The queued updates, by time.
///
/// A row of an input group goes to up to 32 windowed inputs, and leaves
/// each at its event's time plus that input's window. Events mostly come in
/// time order, so each window's retractions do too: each group keeps its
/// rows once, in time order, with the windowed inputs each went to (a
/// mask), and each of its windowed inputs a position in that list, the next
/// row it retracts. A push appends one entry for all of a row's windows
/// (there was a queued update per window: seven for a retail order, 224
/// bytes against 32 now), and a row is forgotten once every window has
/// passed it. A row that would break its group's order (a late event) has
/// an update per window in a heap instead, and so do a row ahead of the
/// clock's insertion and retraction (`push_out_of_order`). (A heap of all of
/// them read a random parent at every push: a cache miss per event and
/// window.) The lists grow in chunks: a doubling one copied millions of
/// rows in the middle of a batch.
pub struct Schedule {
    /// Per input group (see `input_groups`).
    groups: Vec<Queued>,
    out_of_order: BinaryHeap<Due>,
}

/// A group's rows in time order, and where each windowed input is in them.
#[derive(Default)]
struct Queued {
    rows: Shared<QueuedRow>,
    windows: Vec<Cursor>,
}

/// A row queued for retraction: its event's time (epoch ms), and the bits
/// (in its group's mask) of the windowed inputs it was inserted into.
struct QueuedRow {
    at: i64,
    inputs: u32,
    row: SharedRow,
}

/// A windowed input of a group, and the position of the next row it
/// retracts: one it was inserted into, or the end of the list.
struct Cursor {
    bit: u32,
    input: u32,
    window: u64,
    next: usize,
}

impl Cursor {
    fn retraction(&self, row: &QueuedRow) -> Time {
        retraction(row.at, self.window)
    }

    /// Moves past rows this input does not hold.
    fn skip_others(&mut self, rows: &Shared<QueuedRow>) {
        while rows.get(self.next).is_some_and(|r| r.inputs & (1 << self.bit) == 0) {
            self.next += 1;
        }
    }
}

impl Schedule {
    pub fn new(groups: &InputGroups) -> Schedule {
        // Events go to the groups `of_event` lists (the inputs one by one,
        // the first groups, take none): only those need their windows'
        // places, which `next_time` reads.
        let fed: std::collections::HashSet<u32> = groups.of_event.iter().flatten().copied().collect();
        let cursors = |group: &crate::input_groups::InputGroup| {
            (group.inputs.iter().zip(&group.windows).enumerate())
                .filter_map(|(bit, (&input, window))| {
                    Some(Cursor { bit: bit as u32, input: input as u32, window: (*window)?, next: 0 })
                })
                .collect()
        };
        let groups = (groups.groups.iter().enumerate())
            .map(|(g, group)| Queued {
                rows: Shared::default(),
                windows: if fed.contains(&(g as u32)) { cursors(group) } else { Vec::new() },
            })
            .collect();
        Schedule { groups, out_of_order: BinaryHeap::new() }
    }

    /// Queues the retractions of `row`, an event's at `at` (epoch ms) fed to
    /// group `group`, from the windowed inputs whose bits `inputs` holds.
    pub fn push_retractions(&mut self, group: usize, at: i64, inputs: u32, row: SharedRow) {
        let queued = &mut self.groups[group];
        debug_assert!(!queued.windows.is_empty(), "a row queued to a group no event feeds");
        if queued.rows.back().is_some_and(|last| last.at > at) {
            for cursor in queued.windows.iter().filter(|c| inputs & (1 << c.bit) != 0) {
                let due = Due::new(retraction(at, cursor.window), cursor.input as usize, row.clone(), -1);
                self.out_of_order.push(due);
            }
            return;
        }
        queued.rows.push_back(QueuedRow { at, inputs, row });
        for cursor in &mut queued.windows {
            cursor.skip_others(&queued.rows);
        }
    }

    pub fn push_out_of_order(&mut self, due: Due) {
        self.out_of_order.push(due);
    }

    /// The earliest time an update is due at.
    pub fn next_time(&self) -> Option<Time> {
        let fronts = self.groups.iter().flat_map(|queued| {
            let rows = &queued.rows;
            queued.windows.iter().filter_map(|c| rows.get(c.next).map(|row| c.retraction(row)))
        });
        fronts.chain(self.out_of_order.peek().map(|due| due.time)).min()
    }

    /// Takes every update due by `upto` (inclusive).
    pub fn take_until(&mut self, upto: Time, mut f: impl FnMut(Due)) {
        for queued in &mut self.groups {
            let rows = &queued.rows;
            for cursor in &mut queued.windows {
                while let Some((row, due)) =
                    rows.get(cursor.next).map(|row| (row, cursor.retraction(row))).filter(|&(_, due)| due <= upto)
                {
                    f(Due::new(due, cursor.input as usize, row.row.clone(), -1));
                    cursor.next += 1;
                    cursor.skip_others(rows);
                }
            }
            // A row every window has passed is done with.
            let passed = queued.windows.iter().map(|c| c.next).min().unwrap_or(0);
            while queued.rows.start() < passed {
                queued.rows.pop_front();
            }
        }
        while self.out_of_order.peek().is_some_and(|due| due.time <= upto) {
            f(self.out_of_order.pop().expect("a top was seen"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Due, Schedule};
    use crate::input_groups::{retraction, InputGroup, InputGroups};
    use crate::render::{SharedRow, Time};
    use proptest::prelude::*;
    use segflow_compiler::value::Value;

    /// One group of inputs 0, 1 and 2, windowed 10 ms, not, and 3 ms.
    fn groups() -> InputGroups {
        let group = InputGroup { inputs: vec![0, 1, 2], windows: vec![Some(10), None, Some(3)], fields: vec![0] };
        InputGroups { groups: vec![group], of_event: vec![vec![0]] }
    }

    fn row(id: i64) -> SharedRow {
        vec![Value::Int(id)].into()
    }

    fn take(schedule: &mut Schedule, upto: Time) -> Vec<(Time, u32, SharedRow)> {
        let mut taken = Vec::new();
        schedule.take_until(upto, |due| taken.push((due.time, due.input, due.row)));
        taken.sort();
        taken
    }

    #[test]
    fn updates_come_out_once_each_by_their_time_in_or_out_of_order() {
        let mut schedule = Schedule::new(&groups());
        // Bits 0 and 2 are the windowed inputs 0 (10 ms) and 2 (3 ms).
        schedule.push_retractions(0, 1, 0b101, row(1));
        schedule.push_retractions(0, 4, 0b001, row(2));
        schedule.push_retractions(0, 2, 0b101, row(3)); // late: to the heap
        schedule.push_out_of_order(Due::new(retraction(0, 1), 1, row(4), 1));
        let at = |ms: i64| retraction(ms, 0);
        assert_eq!(schedule.next_time(), Some(at(1)));
        assert_eq!(take(&mut schedule, at(4)), [(at(1), 1, row(4)), (at(4), 2, row(1))]);
        assert_eq!(schedule.next_time(), Some(at(5)));
        assert_eq!(take(&mut schedule, at(11)), [(at(5), 2, row(3)), (at(11), 0, row(1))]);
        assert_eq!(take(&mut schedule, at(14)), [(at(12), 0, row(3)), (at(14), 0, row(2))]);
        assert_eq!((schedule.next_time(), take(&mut schedule, Time::MAX)), (None, vec![]));
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// A row at a time (ms), to the windowed inputs of a mask of bits 0 and 2.
        Push(i64, u32),
        Take(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0i64..40, prop::sample::select(vec![0b001u32, 0b100, 0b101])).prop_map(|(at, m)| Step::Push(at, m)),
            1 => (0i64..60).prop_map(Step::Take),
        ]
    }

    proptest! {
        /// Whatever the rows' times and windows, every retraction comes out
        /// once, at the first take at or after its time, and `next_time` is
        /// the earliest one queued.
        #[test]
        fn retractions_come_out_when_due(steps in prop::collection::vec(step(), 0..80)) {
            let groups = groups();
            let mut schedule = Schedule::new(&groups);
            let mut queued: Vec<(Time, u32, SharedRow)> = Vec::new();
            let mut id = 0;
            for step in steps {
                match step {
                    Step::Push(at, mask) => {
                        id += 1;
                        schedule.push_retractions(0, at, mask, row(id));
                        for (bit, window) in [(0, 10), (2, 3)] {
                            if mask & (1 << bit) != 0 {
                                queued.push((retraction(at, window), bit, row(id)));
                            }
                        }
                    }
                    Step::Take(ms) => {
                        let upto = retraction(ms, 0);
                        let mut due: Vec<_> = queued.iter().filter(|q| q.0 <= upto).cloned().collect();
                        due.sort();
                        queued.retain(|q| q.0 > upto);
                        prop_assert_eq!(take(&mut schedule, upto), due);
                    }
                }
                prop_assert_eq!(schedule.next_time(), queued.iter().map(|q| q.0).min());
            }
        }
    }
}
