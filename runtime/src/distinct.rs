//! `count_distinct` per instance, kept in hash tables and by id (the plan's `Distinct`
//! strategy).
//!
//! Differential's way is two operators: `distinct_total` keeps an
//! arrangement of the (instance, value) pairs, and `count_total` another of
//! the distinct pairs' instances, each sorted, merged and compacted at every
//! batch. Here each worker keeps, for its share of instances, how many rows
//! hold each (instance, value) pair and how many distinct values each
//! instance has. A time's changes are folded per pair as they arrive; when the
//! time completes, a pair whose multiplicity starts or stops being positive
//! moves its instance's count, and each instance whose count moved emits the
//! old count's retraction and the new one's insertion: the collection
//! `distinct_total` then `count_total` give (an instance with no values has
//! none, and reads as 0).

use crate::folded::{folded_by_time, release_if_large, PREFETCH_AHEAD};
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
    // Each pair's change in a time, folded.
    let instance = |(key, _): &(u64, Value)| *key;
    let fold = |changes: &mut HashMap<(u64, Value), isize>, _, pair, diff| {
        *changes.entry(pair).or_default() += diff;
    };
    // A completed time's changes with their pairs' hashes, so that a pair a
    // few ahead can be asked for while this one is worked on.
    let mut listed: Vec<(u64, u64, Value, i64)> = Vec::new();
    folded_by_time(pairs, "DistinctCounts", instance, fold, move |changes, out| {
        listed.clear();
        listed.extend(
            changes
                .drain()
                .filter(|(_, diff)| *diff != 0)
                .map(|((key, value), diff)| (held.hash(key, &value), key, value, diff as i64)),
        );
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

#[cfg(test)]
mod tests {
    use super::distinct_counts;
    use segflow_compiler::value::Value;

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
}
