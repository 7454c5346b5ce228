//! Rows an insert-only aggregate can pass over before its exchange.
//!
//! Min, max, first and last over events without a window (the plan's
//! `Running` strategy) only ever improve: once a row with a better value has
//! been sent on, a worse one of the same instance can never be the answer
//! again. A backfill of `first(page_view.channel)` sent all 700k page views
//! across the exchange to find 100k users' first; the worker each row is fed
//! to can tell that almost all of them are beaten and drop them there,
//! remembering, per instance it has sent a row of, the best rank so far: a
//! word an instance id, up to the largest id the worker has seen (ids are
//! dense). Rows are dealt to workers before the exchange, so each worker's
//! table covers every instance: 800 KB a worker for 100k users, 8 bytes an
//! instance a worker, where the operator keeps ~80 bytes an instance.
//!
//! Ranks are the integers that order the rows: an event's `at` for first and
//! last (ordered by `at`, then `id`: a later `at` never comes first), the
//! value itself for min and max of an int or a timestamp column. Other rows
//! pass.

use crate::render::Time;

/// Instance ids past this pass without a look: the table grows with the
/// largest id (ids are dense), so this caps it at 2^26 entries of 8 bytes.
const MAX_ID: u64 = 1 << 26;

/// One worker's best rank per instance, among the rows it let pass.
pub struct Unbeaten {
    /// Max and last keep the greatest rank; min and first the least.
    greatest: bool,
    /// By instance id; `none()` where no row has passed.
    best: Vec<i64>,
    /// The latest time of a row that set a best: a row at an earlier time
    /// passes (at its time, the better row may not have counted yet), and
    /// sets nothing.
    latest: Time,
}

impl Unbeaten {
    pub fn new(greatest: bool) -> Unbeaten {
        Unbeaten { greatest, best: Vec::new(), latest: 0 }
    }

    fn none(&self) -> i64 {
        if self.greatest {
            i64::MIN
        } else {
            i64::MAX
        }
    }

    /// Asks for `instance`'s best rank, for an `admits` soon after.
    pub fn prefetch(&self, instance: u64) {
        if let Some(best) = self.best.get(instance as usize) {
            crate::instances::prefetch(best);
        }
    }

    /// Whether a row of `instance` with `rank` at `time` may still change
    /// the answer: false only if a row that ranked strictly better passed
    /// at a time no later.
    pub fn admits(&mut self, instance: u64, rank: Option<i64>, time: Time) -> bool {
        let (Some(rank), true) = (rank, instance < MAX_ID) else { return true };
        if time < self.latest {
            return true;
        }
        let at = instance as usize;
        if self.best.len() <= at {
            let none = self.none();
            self.best.resize(at + 1, none);
        }
        let best = self.best[at];
        let (beaten, better) = if self.greatest { (rank < best, rank > best) } else { (rank > best, rank < best) };
        if beaten {
            return false;
        }
        if better {
            self.best[at] = rank;
            self.latest = time;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Unbeaten;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_row_beaten_at_an_earlier_time_is_dropped_and_ties_pass() {
        let mut first = Unbeaten::new(false);
        assert!(first.admits(3, Some(10), 1));
        assert!(!first.admits(3, Some(11), 1), "later than the first, same time");
        assert!(!first.admits(3, Some(12), 2), "later than the first, later time");
        assert!(first.admits(3, Some(10), 2), "a tie may win on its id");
        assert!(first.admits(3, Some(9), 2), "earlier: the new first");
        assert!(!first.admits(3, Some(10), 2));
        assert!(first.admits(4, Some(100), 2), "another instance");
        assert!(first.admits(5, None, 2), "no rank: passes");
        assert!(first.admits(3, Some(50), 1), "an earlier time than a best: passes");
        let mut max = Unbeaten::new(true);
        assert!(max.admits(0, Some(5), 7));
        assert!(!max.admits(0, Some(4), 7));
        assert!(max.admits(0, Some(6), 8));
        assert!(max.admits(1 << 40, Some(1), 8), "an id past the guard passes");
    }

    proptest! {
        /// Rows of a few instances, at times mostly in order: the best of
        /// the rows let pass is, at every time, the best of all rows up to
        /// that time (the answer never depends on a dropped row).
        #[test]
        fn the_best_at_each_time_is_among_the_rows_let_pass(
            greatest in any::<bool>(),
            rows in prop::collection::vec((0u64..4, -5i64..5, 0u64..6), 1..60),
        ) {
            let mut unbeaten = Unbeaten::new(greatest);
            let mut passed = Vec::new();
            for &(instance, rank, time) in &rows {
                if unbeaten.admits(instance, Some(rank), time) {
                    passed.push((instance, rank, time));
                }
            }
            let best_upto = |rows: &[(u64, i64, u64)], t: u64| {
                let mut best: BTreeMap<u64, i64> = BTreeMap::new();
                for &(instance, rank, _) in rows.iter().filter(|r| r.2 <= t) {
                    let b = best.entry(instance).or_insert(rank);
                    *b = if greatest { (*b).max(rank) } else { (*b).min(rank) };
                }
                best
            };
            for t in 0..6 {
                prop_assert_eq!(best_upto(&passed, t), best_upto(&rows, t), "at time {}", t);
            }
        }
    }
}
