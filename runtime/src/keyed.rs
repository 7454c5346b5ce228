//! Per-instance state held in memory: the operator behind gathers and the
//! aggregates that need an instance's values (min, max, mode, first, last,
//! float sums).
//!
//! Differential's `reduce` recomputes a changed instance by re-reading its
//! whole input history from the batches of an arrangement. Here each worker
//! keeps, per instance of its share, the consolidated multiset of its values
//! (sorted), applies a time's changes once the time is complete (one merge per
//! instance), recomputes the touched instances and emits only the differences
//! from what they produced before. The engine's times are totally ordered and
//! applied in order, so the output is exactly the collection `reduce` gives.

use crate::render::Time;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use foldhash::HashMap;
use std::collections::BTreeMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

struct Instance<D, V> {
    /// Consolidated values, sorted; none has multiplicity 0.
    values: Vec<(D, isize)>,
    /// What `logic` produced from them last, sorted.
    produced: Vec<V>,
}

/// Changes of one time, waiting for it to complete: (instance, value, diff).
type Waiting<D> = (Capability<Time>, Vec<(u64, D, isize)>);

/// For every instance that has values, what `logic` produces from its
/// consolidated values (sorted, with multiplicities); kept up to date.
pub fn by_key<'s, D, V, L>(
    values: VecCollection<'s, Time, (u64, D), isize>,
    name: &str,
    logic: L,
) -> VecCollection<'s, Time, (u64, V), isize>
where
    D: ExchangeData + Ord,
    V: ExchangeData + Ord,
    L: Fn(&[(D, isize)], &mut Vec<V>) + 'static,
{
    let exchange = Exchange::new(|((key, _), _, _): &((u64, D), Time, isize)| *key);
    values
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<((u64, V), Time, isize)>>, _, _, _>(
            exchange,
            name,
            move |_capability, _info| {
                let mut instances: HashMap<u64, Instance<D, V>> = HashMap::default();
                let mut waiting: BTreeMap<Time, Waiting<D>> = BTreeMap::new();
                let mut produced = Vec::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|stamp, containers| {
                        let Some(cap) = stamp.retain_least(0) else { return };
                        for container in containers {
                            for ((key, value), time, diff) in container.drain(..) {
                                let entry = waiting.entry(time).or_insert_with(|| (cap.delayed(&time), Vec::new()));
                                entry.1.push((key, value, diff));
                            }
                        }
                    });
                    while let Some(entry) = waiting.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (time, (cap, mut changes)) = entry.remove_entry();
                        changes.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                        let mut session = output.session(&cap);
                        let mut changes = changes.into_iter().peekable();
                        let mut batch = Vec::new();
                        while let Some((key, value, diff)) = changes.next() {
                            batch.clear();
                            batch.push((value, diff));
                            while let Some((_, value, diff)) = changes.next_if(|c| c.0 == key) {
                                batch.push((value, diff));
                            }
                            let instance = instances
                                .entry(key)
                                .or_insert_with(|| Instance { values: Vec::new(), produced: Vec::new() });
                            instance.values = merge(std::mem::take(&mut instance.values), batch.drain(..));
                            produced.clear();
                            if !instance.values.is_empty() {
                                logic(&instance.values, &mut produced);
                                produced.sort_unstable();
                            }
                            for (v, d) in differences(&instance.produced, &produced) {
                                session.give(((key, v), time, d));
                            }
                            if instance.values.is_empty() {
                                instances.remove(&key);
                            } else {
                                std::mem::swap(&mut instance.produced, &mut produced);
                            }
                        }
                    }
                }
            },
        )
        .as_collection()
}

/// Sorted, consolidated `values` with sorted `changes` added: one pass over both.
fn merge<D: Ord>(values: Vec<(D, isize)>, changes: impl Iterator<Item = (D, isize)>) -> Vec<(D, isize)> {
    let mut out: Vec<(D, isize)> = Vec::with_capacity(values.len() + 1);
    let mut values = values.into_iter().peekable();
    let push = |out: &mut Vec<(D, isize)>, (d, n): (D, isize)| match out.last_mut() {
        Some(last) if last.0 == d => last.1 += n,
        _ => out.push((d, n)),
    };
    for change in changes {
        while let Some(v) = values.next_if(|v| v.0 < change.0) {
            push(&mut out, v);
        }
        if let Some(v) = values.next_if(|v| v.0 == change.0) {
            push(&mut out, v);
        }
        push(&mut out, change);
    }
    out.extend(values);
    out.retain(|(_, n)| *n != 0);
    out
}

/// What turns sorted `old` into sorted `new`: retractions and insertions.
fn differences<V: Ord + Clone>(old: &[V], new: &[V]) -> Vec<(V, isize)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    loop {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                out.push((a.clone(), -1));
                i += 1;
            }
            (Some(a), None) => {
                out.push((a.clone(), -1));
                i += 1;
            }
            (_, Some(b)) => {
                out.push((b.clone(), 1));
                j += 1;
            }
            (None, None) => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_retract_what_went_and_insert_what_came() {
        assert_eq!(differences(&[1, 3, 5], &[1, 4, 5, 6]), vec![(3, -1), (4, 1), (6, 1)]);
        assert_eq!(differences::<i32>(&[], &[]), vec![]);
        assert_eq!(differences(&[2], &[]), vec![(2, -1)]);
    }

    #[test]
    fn merged_values_stay_sorted_and_consolidated() {
        let values = vec![(1, 1), (3, 2), (5, 1)];
        let changes = vec![(0, 1), (3, -2), (3, 1), (4, 1), (5, -1), (9, 0)];
        assert_eq!(merge(values, changes.into_iter()), vec![(0, 1), (1, 1), (3, 1), (4, 1)]);
        assert_eq!(merge(Vec::<(i32, isize)>::new(), vec![(2, 1), (2, 1)].into_iter()), vec![(2, 2)]);
    }
}
