//! `count_distinct` per instance, kept in hash tables and by id (the plan's `Distinct`
//! strategy).
//!
//! Differential's way is two operators: `distinct_total` keeps an
//! arrangement of the (instance, value) pairs, and `count_total` another of
//! the distinct pairs' instances, each sorted, merged and compacted at every
//! batch. Here each worker keeps, for its share of instances, how many rows
//! hold each (instance, value) pair and how many distinct values each
//! instance has. A time's changes are listed as they arrive and summed up
//! per pair when the time completes; then a pair whose multiplicity starts
//! or stops being positive moves its instance's count, and each instance
//! whose count moved emits the old count's retraction and the new one's
//! insertion: the collection `distinct_total` then `count_total` give (an
//! instance with no values has none, and reads as 0).

use crate::folded::{folded_by_time, release_if_large, sum_runs, Listed, PREFETCH_AHEAD};
use crate::instances::Instances;
use crate::pairs::HeldPairs;
use crate::render::Time;
use differential_dataflow::VecCollection;
use foldhash::HashMap;
use segflow_compiler::value::Value;

/// Per instance, the number of distinct values among its rows' `(instance,
/// value)` pairs, as `Value::Int`; instances with none are absent.
pub fn distinct_counts<'s>(
    pairs: VecCollection<'s, Time, (u64, Value), isize>,
) -> VecCollection<'s, Time, (u64, Value), isize> {
    // How many rows hold each pair: one entry per distinct (instance,
    // value) in the windows, so it grows with the events.
    let mut held = HeldPairs::default();
    // Distinct values per instance.
    let scope = pairs.inner.scope();
    let mut counts = Instances::<i64>::new(scope.index(), scope.peers(), |n| *n == 0);
    // How far a completed time moved each instance's count.
    let mut moved: HashMap<u64, i64> = HashMap::default();
    // Each pair's changes in a time, listed.
    let instance = |(key, _): &(u64, Value)| *key;
    let fold = |changes: &mut Listed<(u64, Value), isize>, _, pair, diff| changes.push(pair, diff);
    // A completed time's changes with their pairs' hashes, summed up per
    // pair, so that a pair a few ahead can be asked for while this one is
    // worked on.
    let mut listed: Vec<(u64, u64, Value, i64)> = Vec::new();
    folded_by_time(pairs, "DistinctCounts", instance, fold, move |changes: &mut Listed<(u64, Value), isize>, out| {
        sum_up(changes, |key, value| held.hash(key, value), &mut listed);
        for i in 0..listed.len() {
            if let Some(&(ahead, ..)) = listed.get(i + PREFETCH_AHEAD) {
                held.prefetch(ahead);
            }
            let (hash, key, ref mut value, diff) = listed[i];
            let (before, after) = held.add(hash, key, std::mem::take(value), diff);
            match (before > 0, after > 0) {
                (false, true) => *moved.entry(key).or_default() += 1,
                (true, false) => *moved.entry(key).or_default() -= 1,
                _ => {}
            }
        }
        release_if_large(&mut listed);
        for (key, by) in moved.drain() {
            if by == 0 {
                continue;
            }
            let count = counts.entry(key);
            if *count > 0 {
                out.push(((key, Value::Int(*count)), -1));
            }
            *count += by;
            if *count > 0 {
                out.push(((key, Value::Int(*count)), 1));
            } else {
                counts.remove(key);
            }
        }
    })
}

/// Replaces `out` with a time's `changes` (emptied), one per pair that
/// changed, each as (`hash` of the pair, instance, value, change) (see
/// `Listed`). Listed changes are summed up (`sum_up_pairs`); a table holds
/// one per pair already, taken unsorted, as before the list.
fn sum_up(
    changes: &mut Listed<(u64, Value), isize>,
    hash: impl Fn(u64, &Value) -> u64,
    out: &mut Vec<(u64, u64, Value, i64)>,
) {
    let (listed, folded) = changes.drain();
    let hashed = |((key, value), diff): ((u64, Value), isize)| (hash(key, &value), key, value, diff as i64);
    out.clear();
    out.extend(listed.map(hashed));
    sum_up_pairs(out);
    out.extend(folded.map(hashed));
}

/// Sums up `changes` (hash, instance, value, change) per pair, dropping
/// those that come to zero: sorted by hash, a pair's changes lie side by
/// side, unless two pairs share a hash, which a sort of the few with
/// that hash puts right.
fn sum_up_pairs(changes: &mut Vec<(u64, u64, Value, i64)>) {
    crate::radix::sort_by_key(changes, |&(hash, ..)| hash);
    for run in changes.chunk_by_mut(|a, b| a.0 == b.0).filter(|run| run.len() > 2) {
        run.sort_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
    }
    sum_runs(changes, |a, b| (a.0, a.1, &a.2) == (b.0, b.1, &b.2), |kept, later| kept.3 += later.3, |c| c.3 == 0);
}

#[cfg(test)]
mod tests {
    use super::{distinct_counts, sum_up, sum_up_pairs};
    use crate::folded::{Folded, Listed, LISTED_MOST};
    use proptest::prelude::*;
    use segflow_compiler::value::Value;
    use std::collections::BTreeMap;

    /// Each time's changes of (instance, value) pairs; what the operator
    /// emits at each time, sorted.
    fn run(times: Vec<Vec<((u64, &str), isize)>>) -> Vec<Vec<((u64, i64), isize)>> {
        let times = times.into_iter().map(|t| t.into_iter().map(|((k, v), d)| ((k, Value::str(v)), d)).collect());
        let emitted = crate::testing::emitted(times.collect(), distinct_counts);
        let count = |v: &Value| match v {
            Value::Int(n) => *n,
            other => panic!("a count that is not an int: {other:?}"),
        };
        emitted.into_iter().map(|t| t.into_iter().map(|((k, v), d)| ((k, count(&v)), d)).collect()).collect()
    }

    #[test]
    fn a_count_moves_only_when_a_value_comes_or_goes_entirely() {
        let emitted = run(vec![
            // Instance 1: "a" twice and "b"; 2: "a", which also leaves within the time.
            vec![((1, "a"), 1), ((1, "a"), 1), ((1, "b"), 1), ((2, "a"), 1), ((2, "a"), -1)],
            // One of 1's two "a" rows leaves: still two values, nothing emitted.
            vec![((1, "a"), -1)],
            // The other leaves, and "b": 1 has none (absent, not 0).
            vec![((1, "a"), -1), ((1, "b"), -1)],
            // 1 comes back with "c"; 3 gains "x" and "y".
            vec![((1, "c"), 1), ((3, "x"), 1), ((3, "y"), 1)],
        ]);
        assert_eq!(emitted[0], [((1, 2), 1)]);
        assert_eq!(emitted[1], []);
        assert_eq!(emitted[2], [((1, 2), -1)]);
        assert_eq!(emitted[3], [((1, 1), 1), ((3, 2), 1)]);
    }

    /// Summed-up changes given as (hash, instance, value, change), as
    /// pairs and their sums, sorted.
    fn as_pairs(summed: Vec<(u64, u64, Value, i64)>) -> Vec<((u64, Value), i64)> {
        let mut pairs: Vec<((u64, Value), i64)> = summed.into_iter().map(|(_, i, v, d)| ((i, v), d)).collect();
        pairs.sort();
        pairs
    }

    /// What a map of pairs sums `changes` up to, without the zero ones.
    fn expected(changes: &[(u64, Value, isize)]) -> Vec<((u64, Value), i64)> {
        let mut sums: BTreeMap<(u64, Value), i64> = BTreeMap::new();
        for (instance, value, diff) in changes {
            *sums.entry((*instance, value.clone())).or_default() += *diff as i64;
        }
        sums.into_iter().filter(|(_, d)| *d != 0).collect()
    }

    proptest! {
        /// However many changes a time has (listed, or past `LISTED_MOST`
        /// all folded into a table), and however many pairs share a hash
        /// (here one bit of the instance), they sum up to what a map of
        /// pairs holds, without the zero ones; an emptied time has none.
        #[test]
        fn a_times_changes_sum_up_per_pair(
            changes in proptest::collection::vec((0u64..4, 0u8..4, prop_oneof![Just(1isize), Just(-1)]), 0..64),
        ) {
            let changes: Vec<(u64, Value, isize)> =
                changes.into_iter().map(|(i, v, d)| (i, Value::str(&format!("v{v}")), d)).collect();
            // As they came, in one list.
            let mut listed: Vec<_> = changes.iter().map(|(i, v, d)| (i % 2, *i, v.clone(), *d as i64)).collect();
            sum_up_pairs(&mut listed);
            prop_assert_eq!(as_pairs(listed), expected(&changes));
            // Through a time's changes, as the operator takes them.
            let first = &changes[..changes.len().min(3 * LISTED_MOST)];
            let mut pairs = Listed::default();
            for (instance, value, diff) in first.iter().cloned() {
                pairs.push((instance, value), diff);
            }
            let mut out = Vec::new();
            sum_up(&mut pairs, |instance, _| instance % 2, &mut out);
            prop_assert_eq!(as_pairs(out.clone()), expected(first));
            // Emptied for the next time.
            for (instance, value, diff) in first.iter().cloned() {
                pairs.push((instance, value), diff);
            }
            pairs.clear();
            sum_up(&mut pairs, |instance, _| instance % 2, &mut out);
            prop_assert!(out.is_empty());
        }
    }
}
