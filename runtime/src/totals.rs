//! Sums and counts per instance, kept as running totals: `count`, `sum`,
//! `avg` and `exists` (the plan's `Diff` strategy).
//!
//! Each needs one total per instance: an event adds `(its value, 1)` when it
//! enters and `(-value, -1)` when it leaves. Differential's `count_total`
//! keeps those totals in an arrangement of its input, which it sorts, merges
//! and compacts at every batch and reads back with a cursor. Here each worker
//! keeps its instances' totals by id (`instances`), lists a time's changes
//! as they arrive (`Listed`), sums them up per instance when the time
//! completes, and emits, for each instance whose total moved, the retraction
//! of the old total's value (the count, sum, average or existence it
//! stands for) and the insertion of the new one's, unless they are equal:
//! the collection `count_total` and a map give. Sums are in decimal units
//! (10^-6), so decimal money and integer quantities are exact.

use crate::folded::{folded_by_time, release_if_large, sum_runs, Adds, Listed, PREFETCH_AHEAD};
use crate::instances::Instances;
use crate::render::Time;
use differential_dataflow::{ExchangeData, VecCollection};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SumCount {
    /// Sum of the values, in units of 10^-6.
    pub sum: i128,
    /// Number of values.
    pub count: i64,
}

impl SumCount {
    fn is_zero(&self) -> bool {
        self.sum == 0 && self.count == 0
    }

    /// Adds `other` taken `times` times (negative: taken away).
    fn add(&mut self, other: SumCount, times: isize) {
        self.sum += other.sum * times as i128;
        self.count += other.count * times as i64;
    }
}

/// A total as a table keeps it: 24 bytes, where `SumCount`'s `i128` would
/// align it to 32 (and 48 with its key). One per instance.
#[derive(Clone, Copy, Default)]
struct Total {
    sum_low: u64,
    sum_high: i64,
    count: i64,
}

impl From<SumCount> for Total {
    fn from(t: SumCount) -> Total {
        Total { sum_low: t.sum as u64, sum_high: (t.sum >> 64) as i64, count: t.count }
    }
}

impl From<Total> for SumCount {
    fn from(t: Total) -> SumCount {
        SumCount { sum: ((t.sum_high as i128) << 64) | t.sum_low as i128, count: t.count }
    }
}

impl Adds for Total {
    fn merge(&mut self, other: &Total) {
        let mut sum = SumCount::from(*self);
        sum.add(SumCount::from(*other), 1);
        *self = Total::from(sum);
    }
    fn is_zero(&self) -> bool {
        SumCount::from(*self).is_zero()
    }
}

/// Replaces `out` with a time's `changes` (emptied), one per instance, in
/// instance order, none zero (see `Listed`).
fn sum_up(changes: &mut Listed<u64, Total>, out: &mut Vec<(u64, Total)>) {
    let (listed, folded) = changes.drain();
    out.clear();
    out.extend(listed);
    out.extend(folded);
    crate::radix::sort_by_key(out, |&(instance, _)| instance);
    sum_runs(out, |a, b| a.0 == b.0, |kept, later| kept.1.merge(&later.1), |(_, total)| total.is_zero());
}

/// Per instance, `finish` of the total of its values (with their
/// multiplicities): an instance whose total is zero has none, and neither
/// does one whose total `finish` takes to `None`. A change emits the
/// retraction of the old value and the insertion of the new, or nothing if
/// they are equal: an `exists` that stays true, or a sum that a change of
/// zero left where it was, changes nothing downstream (before, a separate
/// map turned totals into values, and each such change went on as a
/// retraction and an insertion that cancelled only in the gather).
pub fn totals<'s, V>(
    values: VecCollection<'s, Time, (u64, SumCount), isize>,
    finish: impl Fn(SumCount) -> Option<V> + 'static,
) -> VecCollection<'s, Time, (u64, V), isize>
where
    V: ExchangeData + PartialEq,
{
    totals_of(values, |(key, _): &(u64, SumCount)| *key, |(_, value)| Some(value), finish)
}

/// `totals` of items (an aggregate's rows), each of instance `instance` of
/// it and counting as `value` of it if that is not `None` (a row whose
/// group or value is null counts for nothing): read in the operator itself,
/// where a map before it made a `(u64, SumCount)` of every row, one
/// operator more for every sum or count.
pub fn totals_of<'s, I, V>(
    items: VecCollection<'s, Time, I, isize>,
    instance: impl Fn(&I) -> u64 + Clone + 'static,
    value: impl Fn(I) -> Option<SumCount> + 'static,
    finish: impl Fn(SumCount) -> Option<V> + 'static,
) -> VecCollection<'s, Time, (u64, V), isize>
where
    I: ExchangeData,
    V: ExchangeData + PartialEq,
{
    // A zero total is an instance with none.
    let scope = items.inner.scope();
    let mut totals = Instances::<Total>::new(scope.index(), scope.peers(), |t| SumCount::from(*t).is_zero());
    // Each instance's changes in a time, listed.
    let fold = move |changes: &mut Listed<u64, Total>, key, item, diff| {
        if let Some(value) = value(item) {
            let mut change = SumCount::default();
            change.add(value, diff);
            changes.push(key, Total::from(change));
        }
    };
    let value_of = move |total: SumCount| if total.is_zero() { None } else { finish(total) };
    // A completed time's changes summed up, in instance order, so that the
    // total a few changes ahead can be asked for while this one is worked on.
    let mut summed: Vec<(u64, Total)> = Vec::new();
    folded_by_time(items, "Totals", instance, fold, move |changes: &mut Listed<u64, Total>, out| {
        sum_up(changes, &mut summed);
        let changes = &summed;
        for (i, &(key, change)) in changes.iter().enumerate() {
            if let Some(&(ahead, _)) = changes.get(i + PREFETCH_AHEAD) {
                totals.prefetch(ahead);
            }
            let total = totals.entry(key);
            let old = SumCount::from(*total);
            let mut new = old;
            new.add(SumCount::from(change), 1);
            *total = Total::from(new);
            if new.is_zero() {
                totals.remove(key);
            }
            let (old, new) = (value_of(old), value_of(new));
            if old != new {
                out.extend(old.map(|v| ((key, v), -1)));
                out.extend(new.map(|v| ((key, v), 1)));
            }
        }
        release_if_large(&mut summed);
    })
}

#[cfg(test)]
mod tests {
    use super::{sum_up, totals, SumCount, Total};
    use crate::folded::{Folded, Listed, LISTED_MOST};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn sc(sum: i128, count: i64) -> SumCount {
        SumCount { sum, count }
    }

    /// Each time's changes; what the operator emits at each time, sorted.
    fn run(times: Vec<Vec<((u64, SumCount), isize)>>) -> Vec<Vec<((u64, SumCount), isize)>> {
        crate::testing::emitted(times, |values| totals(values, Some))
    }

    #[test]
    fn a_moved_total_goes_out_and_comes_in_and_a_zero_total_is_none() {
        let emitted = run(vec![
            // Two values of instance 1, one of 2, and one of 3 that leaves within the time.
            vec![((1, sc(5, 1)), 1), ((1, sc(3, 1)), 1), ((2, sc(2, 1)), 1), ((3, sc(1, 1)), 1), ((3, sc(1, 1)), -1)],
            // 1 loses a value; 2 loses its only one (its total is zero: none).
            vec![((1, sc(5, 1)), -1), ((2, sc(2, 1)), -1)],
            // 2 again; a change that moves nothing (1 gains and loses) emits nothing.
            vec![((2, sc(2, 1)), 1), ((1, sc(4, 1)), 1), ((1, sc(4, 1)), -1)],
        ]);
        assert_eq!(emitted[0], [((1, sc(8, 2)), 1), ((2, sc(2, 1)), 1)]);
        assert_eq!(emitted[1], [((1, sc(3, 1)), 1), ((1, sc(8, 2)), -1), ((2, sc(2, 1)), -1)]);
        assert_eq!(emitted[2], [((2, sc(2, 1)), 1)]);
    }

    #[test]
    fn a_change_that_leaves_the_finished_value_where_it_was_emits_nothing() {
        // An `exists`: true while the instance has values.
        let emitted = crate::testing::emitted(
            vec![
                vec![((1, sc(5, 1)), 1)],
                // More values: still true, nothing emitted.
                vec![((1, sc(3, 1)), 1), ((1, sc(2, 1)), 1)],
                // All but one leave: still true.
                vec![((1, sc(5, 1)), -1), ((1, sc(3, 1)), -1)],
                // The last leaves.
                vec![((1, sc(2, 1)), -1)],
            ],
            |values| totals(values, |t: SumCount| (t.count > 0).then_some(true)),
        );
        assert_eq!(emitted, [vec![((1, true), 1)], vec![], vec![], vec![((1, true), -1)]]);
    }

    #[test]
    fn totals_of_instances_far_apart_are_kept_as_well() {
        // Ids a thousand apart: few slots of many are used (a hash table;
        // see `instances`), then most of a range (a vector), then few again.
        let far = |k: u64| k * 1000;
        let mut times = vec![(0..20).map(|k| ((far(k), sc(k as i128, 1)), 1)).collect::<Vec<_>>()];
        times.push((0..20_000).filter(|id| id % 1000 != 0).map(|id| ((id, sc(1, 1)), 1)).collect());
        times.push((0..20_000).filter(|id| id % 1000 != 0).map(|id| ((id, sc(1, 1)), -1)).collect());
        times.push(vec![((far(3), sc(4, 1)), 1)]);
        let emitted = run(times);
        assert_eq!(emitted[0].len(), 20);
        assert_eq!(emitted[1].len(), 20_000 - 20);
        assert_eq!(emitted[2].len(), 20_000 - 20, "each gone, none with a total left");
        assert_eq!(emitted[3], [((far(3), sc(3, 1)), -1), ((far(3), sc(7, 2)), 1)]);
    }

    /// Items that count for nothing (`value` is `None`) move no total,
    /// wherever they are routed.
    #[test]
    fn items_that_count_for_nothing_move_no_total() {
        let emitted = crate::testing::emitted(
            vec![
                vec![((1, Some(5)), 1), ((1, None), 1), ((2, None), 1)],
                vec![((1, None), -1), ((2, None), -1), ((1, Some(2)), 1)],
            ],
            |items| {
                super::totals_of(
                    items,
                    |(instance, _): &(u64, Option<i128>)| *instance,
                    |(_, sum): (u64, Option<i128>)| sum.map(|sum| sc(sum, 1)),
                    Some,
                )
            },
        );
        assert_eq!(emitted, [vec![((1, sc(5, 1)), 1)], vec![((1, sc(5, 1)), -1), ((1, sc(7, 2)), 1)]]);
    }

    #[test]
    fn a_total_keeps_every_sum_in_fewer_bytes() {
        assert_eq!(std::mem::size_of::<Total>(), 24);
        for sum in [0, 1, -1, i64::MAX as i128 + 7, i64::MIN as i128 - 7, i128::MAX, i128::MIN, 1 << 100, -(1 << 100)] {
            let t = SumCount { sum, count: -3 };
            assert_eq!(SumCount::from(Total::from(t)), t, "{sum}");
        }
    }

    proptest! {
        /// However many changes a time has (listed, or past `LISTED_MOST`
        /// all folded into a table), they sum up to what a map of
        /// instances to totals holds, without the zero ones, in instance
        /// order; and an emptied list holds nothing of them.
        #[test]
        fn a_times_changes_sum_up_per_instance(
            changes in proptest::collection::vec((0u64..6, -3i128..4, prop_oneof![Just(1isize), Just(-1)]), 0..3 * LISTED_MOST),
        ) {
            let mut listed = Listed::default();
            let mut out = Vec::new();
            let mut expected: BTreeMap<u64, SumCount> = BTreeMap::new();
            for &(instance, sum, diff) in &changes {
                let mut change = SumCount::default();
                change.add(sc(sum, 1), diff);
                listed.push(instance, Total::from(change));
                expected.entry(instance).or_default().add(sc(sum, 1), diff);
            }
            let expected: Vec<(u64, SumCount)> = expected.into_iter().filter(|(_, t)| !t.is_zero()).collect();
            sum_up(&mut listed, &mut out);
            let summed: Vec<(u64, SumCount)> = out.iter().map(|&(i, t)| (i, SumCount::from(t))).collect();
            prop_assert_eq!(summed, expected);
            // Emptied for the next time, whether listed or folded.
            for &(instance, sum, diff) in &changes {
                let mut change = SumCount::default();
                change.add(sc(sum, 1), diff);
                listed.push(instance, Total::from(change));
            }
            listed.clear();
            sum_up(&mut listed, &mut out);
            prop_assert!(out.is_empty());
        }
    }
}
