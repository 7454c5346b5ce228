//! Updates queued for later times: window retractions, and rows whose time
//! is ahead of the batch's. A served history holds one per event and window,
//! millions of them.

use crate::chunked::Queue;
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

/// The queued updates, by time. An input's retractions come at its events'
/// times plus its one window, so they arrive in time order as its events
/// mostly do: each input has a queue in time order, where a push appends and
/// a pop takes the front, both in sequential memory. An update that would
/// break its queue's order (a late event's retraction) goes to a heap
/// instead, and so do a row ahead of the clock's insertion and retraction
/// (`push_out_of_order`). (A heap of all of them read a random parent at
/// every push: a cache miss per event and window, seven per retail order.)
/// The queues grow in chunks: a doubling one copied millions of updates in
/// the middle of a batch.
pub struct Schedule {
    queues: Vec<Queue<Due>>,
    out_of_order: BinaryHeap<Due>,
}

impl Schedule {
    /// For a dataflow of `inputs` inputs.
    pub fn new(inputs: usize) -> Schedule {
        Schedule { queues: (0..inputs).map(|_| Queue::default()).collect(), out_of_order: BinaryHeap::new() }
    }

    pub fn push(&mut self, due: Due) {
        let queue = &mut self.queues[due.input as usize];
        if queue.back().is_none_or(|last| last.time <= due.time) {
            queue.push_back(due);
        } else {
            self.out_of_order.push(due);
        }
    }

    /// Queues `due` where it cannot hold its input's queue out of order (a
    /// row ahead of the clock: its retraction is later than the ones the
    /// input's next events bring).
    pub fn push_out_of_order(&mut self, due: Due) {
        self.out_of_order.push(due);
    }

    /// The time of the earliest update queued.
    pub fn next_time(&self) -> Option<Time> {
        let fronts = self.queues.iter().filter_map(|q| q.front().map(|due| due.time));
        fronts.chain(self.out_of_order.peek().map(|due| due.time)).min()
    }

    /// Hands `f` every update due by `upto`, taking them out (in no
    /// particular order).
    pub fn take_until(&mut self, upto: Time, mut f: impl FnMut(Due)) {
        for queue in &mut self.queues {
            while queue.front().is_some_and(|due| due.time <= upto) {
                f(queue.pop_front().expect("a front was seen"));
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
    use crate::render::SharedRow;

    #[test]
    fn updates_come_out_once_each_by_their_time_in_or_out_of_order() {
        let row: SharedRow = Vec::new().into();
        let mut schedule = Schedule::new(2);
        // Input 0 in order, input 1 with two out of order.
        for (time, input) in [(5, 0), (9, 0), (3, 1), (7, 1), (4, 1), (2, 1), (9, 1)] {
            schedule.push(Due::new(time, input, row.clone(), 1));
        }
        assert_eq!(schedule.next_time(), Some(2));
        let take = |schedule: &mut Schedule, upto| {
            let mut taken = Vec::new();
            schedule.take_until(upto, |due| taken.push((due.time, due.input)));
            taken.sort();
            taken
        };
        assert_eq!(take(&mut schedule, 4), [(2, 1), (3, 1), (4, 1)]);
        assert_eq!(schedule.next_time(), Some(5));
        assert_eq!(take(&mut schedule, 8), [(5, 0), (7, 1)]);
        assert_eq!(take(&mut schedule, 9), [(9, 0), (9, 1)]);
        assert_eq!((schedule.next_time(), take(&mut schedule, u64::MAX)), (None, vec![]));
    }
}
