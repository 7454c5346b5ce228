//! The frame of an operator that keeps its own state per instance
//! (`totals`, `distinct`): changes exchanged by instance, each time's
//! changes folded (or listed: `Listed`) as they arrive, and handed over
//! whole, in time order, once no change at that time can come any more.
//! The changes can be rows, with the instance read from each to route it
//! and the fold taking what it needs of it: no map before the operator
//! (see `totals::totals_of`).

use crate::render::Time;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use foldhash::HashMap;
use std::collections::BTreeMap;
use std::hash::Hash;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

/// A time's folded changes, emptied and used again for a later time: a
/// map starting empty at every time grew through each doubling again,
/// rehashing all it held (in a refresh of retail orders, 1.5 % of the
/// workers' time), where an emptied one keeps its table.
pub trait Folded: Default {
    /// How many changes it has room for.
    fn capacity(&self) -> usize;
    /// Empties it, keeping its room.
    fn clear(&mut self);
}

/// The most changes an emptied `Folded`, or a list of a time's changes that
/// an operator keeps for the next time, may have room for (16k; a
/// backfill's one time grows them far past what a refresh needs).
const KEEP_CHANGES: usize = 1 << 14;

/// Drops `list`'s buffer if a large time grew it past `KEEP_CHANGES`, so
/// that what a backfill needed is not held for every refresh after it.
pub fn release_if_large<T>(list: &mut Vec<T>) {
    if list.capacity() > KEEP_CHANGES {
        *list = Vec::new();
    }
}

/// The most changes a time lists as they come (`totals`, `distinct`)
/// before it folds them into a table, one entry an instance or pair: a
/// refresh's are listed, a backfill's folded. Debug builds (the tests)
/// fold past a handful, so that the randomized reference tests cover both
/// and the switch.
pub const LISTED_MOST: usize = if cfg!(debug_assertions) { 4 } else { 1 << 14 };

/// A change that adds up with the others of its key: a total's sum and
/// count, a pair's multiplicity.
pub trait Adds: Default {
    fn merge(&mut self, other: &Self);
    fn is_zero(&self) -> bool;
}

impl Adds for isize {
    fn merge(&mut self, other: &isize) {
        *self += other;
    }
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

/// A time's changes, listed as they come, for the operator to sum up per
/// key when the time completes (`totals`, `distinct`). Folded into a hash
/// table as they came, each change of a refresh was a lookup at a
/// scattered slot, the slowest line of a refresh's totals; a list takes a
/// push, and its sort a few passes over it (`radix`). A time with more
/// than `LISTED_MOST` changes (a backfill's one time) folds all of them
/// into a table, one entry a key: a few stores' totals over a million
/// orders would otherwise be a million-long list to sort.
pub struct Listed<K, C> {
    listed: Vec<(K, C)>,
    folded: HashMap<K, C>,
}

impl<K, C> Default for Listed<K, C> {
    fn default() -> Self {
        Listed { listed: Vec::new(), folded: HashMap::default() }
    }
}

impl<K, C> Folded for Listed<K, C> {
    fn capacity(&self) -> usize {
        self.listed.capacity().max(self.folded.capacity())
    }
    fn clear(&mut self) {
        self.listed.clear();
        self.folded.clear();
    }
}

impl<K: Hash + Eq, C: Adds> Listed<K, C> {
    pub fn push(&mut self, key: K, change: C) {
        if self.listed.len() < LISTED_MOST && self.folded.is_empty() {
            self.listed.push((key, change));
            return;
        }
        for (key, change) in self.listed.drain(..).chain([(key, change)]) {
            self.folded.entry(key).or_default().merge(&change);
        }
    }

    /// Empties the time: its listed changes as they came, to be summed up
    /// (none once it has folded them), and its folded ones, one a key,
    /// none zero.
    pub fn drain(&mut self) -> (std::vec::Drain<'_, (K, C)>, impl Iterator<Item = (K, C)> + '_) {
        debug_assert!(self.listed.is_empty() || self.folded.is_empty(), "a time's changes both listed and folded");
        (self.listed.drain(..), self.folded.drain().filter(|(_, change)| !change.is_zero()))
    }
}

/// Sums each run of adjacent changes of one key (`same`) into its first
/// with `add`, and drops those that come to zero: the last step of an
/// operator's sum-up of a time's changes, once they are sorted by key.
pub fn sum_runs<T>(
    changes: &mut Vec<T>,
    same: impl Fn(&T, &T) -> bool,
    add: impl Fn(&mut T, &T),
    is_zero: impl Fn(&T) -> bool,
) {
    changes.dedup_by(|later, kept| {
        let one_key = same(later, kept);
        if one_key {
            add(kept, later);
        }
        one_key
    });
    changes.retain(|change| !is_zero(change));
}

/// How many changes ahead of the one it works on an operator asks for the
/// state that a change updates: a time's changes are listed first, so that
/// the cache misses of scattered instances overlap (`totals`, `distinct`).
pub const PREFETCH_AHEAD: usize = 8;

/// `instance` says which instance a change is of (the worker that keeps
/// it gets it); `fold` adds one change of that instance, with its
/// multiplicity, to its time's folded changes `F`; `complete` takes a
/// completed time's `F` (emptied after) and appends what the operator
/// emits at that time.
pub fn folded_by_time<'s, I, F, O>(
    changes: VecCollection<'s, Time, I, isize>,
    name: &str,
    instance: impl Fn(&I) -> u64 + Clone + 'static,
    fold: impl Fn(&mut F, u64, I, isize) + 'static,
    mut complete: impl FnMut(&mut F, &mut Vec<(O, isize)>) + 'static,
) -> VecCollection<'s, Time, O, isize>
where
    I: ExchangeData,
    F: Folded + 'static,
    O: ExchangeData,
{
    let route = instance.clone();
    let exchange = Exchange::new(move |(item, _, _): &(I, Time, isize)| route(item));
    changes
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<(O, Time, isize)>>, _, _, _>(
            exchange,
            name,
            move |_capability, _info| {
                let mut waiting: BTreeMap<Time, (Capability<Time>, F)> = BTreeMap::new();
                let mut spare: Option<F> = None;
                let mut emitted = Vec::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|stamp, containers| {
                        let Some(cap) = stamp.retain_least(0) else { return };
                        for container in containers {
                            for (item, time, diff) in container.drain(..) {
                                let entry = waiting
                                    .entry(time)
                                    .or_insert_with(|| (cap.delayed(&time), spare.take().unwrap_or_default()));
                                fold(&mut entry.1, instance(&item), item, diff);
                            }
                        }
                    });
                    while let Some(entry) = waiting.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (time, (cap, mut folded)) = entry.remove_entry();
                        complete(&mut folded, &mut emitted);
                        if folded.capacity() <= KEEP_CHANGES {
                            folded.clear();
                            spare = Some(folded);
                        }
                        let mut session = output.session(&cap);
                        for (data, diff) in emitted.drain(..) {
                            session.give((data, time, diff));
                        }
                        // A backfill's time emits a change an instance: its
                        // room is not kept for the refreshes after it.
                        release_if_large(&mut emitted);
                    }
                }
            },
        )
        .as_collection()
}

#[cfg(test)]
mod tests {
    use super::{folded_by_time, Folded};
    use foldhash::HashMap;

    // The operators fold into a `Listed`; a plain map is the simplest
    // `Folded` to check the frame with.
    impl<K, V, S: Default> Folded for std::collections::HashMap<K, V, S> {
        fn capacity(&self) -> usize {
            std::collections::HashMap::capacity(self)
        }
        fn clear(&mut self) {
            std::collections::HashMap::clear(self)
        }
    }

    /// A map handed over for one time and used again for the next holds
    /// only that time's changes, though `complete` leaves it as it was.
    #[test]
    fn a_reused_map_holds_only_its_own_times_changes() {
        let emitted = crate::testing::emitted(
            vec![vec![(1u64, 1), (2, 1)], vec![(3, 1)], vec![], vec![(1, 1), (1, 1)]],
            |changes| {
                let fold = |folded: &mut HashMap<u64, isize>, instance, _, diff| {
                    *folded.entry(instance).or_default() += diff;
                };
                // Emits each instance's folded change, reading the map without emptying it.
                folded_by_time(
                    changes,
                    "Test",
                    |&instance: &u64| instance,
                    fold,
                    |folded, out| {
                        out.extend(folded.iter().map(|(&instance, &diff)| ((instance, diff), 1)));
                    },
                )
            },
        );
        let expected: [Vec<((u64, isize), isize)>; 4] =
            [vec![((1, 1), 1), ((2, 1), 1)], vec![((3, 1), 1)], vec![], vec![((1, 2), 1)]];
        assert_eq!(emitted, expected);
    }
}
