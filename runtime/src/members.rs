//! A segment's members, by instance id, with the time each entered: what
//! membership lookups, member lists (paged by key) and change streams read.
//!
//! Publishing a refresh batch moves hundreds of instances in or out of
//! segments. Kept in an ordered map by key, each move walked the tree, a
//! cache miss a level: 10–17 % of the engine thread in a retail refresh,
//! on the path every batch waits for. Here a move is one entry of a table by
//! id. The key order, which only listing members in order needs (pages of
//! a member list, a change stream's snapshot of the members), is worked out
//! when such a read comes: the members sorted as of the last ordered read,
//! with those that entered or left since put in or taken out, each found by
//! a binary search (see `Order`). Until the first such read, publishing
//! keeps no order at all.

use crate::intern::Interner;
use foldhash::HashMap;
use segflow_compiler::value::Value;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Members {
    /// When each member entered, by id.
    since: HashMap<u64, i64>,
    /// The members in key order, brought up to date by ordered reads, which
    /// hold only a shared borrow of the state (hence the lock).
    order: Mutex<Order>,
}

/// The members in key order as of the last ordered read, and what changed
/// since.
#[derive(Debug, Default)]
struct Order {
    /// Ids in their keys' order; some may have left since.
    sorted: Vec<u64>,
    /// Ids that entered since `sorted` was made (some may have left again,
    /// or be in `sorted` too, having left and come back).
    entered: Vec<u64>,
    /// Ids that left since `sorted` was made (some may have come back).
    left: Vec<u64>,
    /// Whether `sorted` is kept up to date with `entered` and `left` at all:
    /// not before the first ordered read, nor once more changed than
    /// catching up would save over sorting all the members afresh.
    kept: bool,
}

/// Catching up with a change costs a binary search of the members, and
/// sorting them afresh a few comparisons each: past changes of half as many
/// as the members the order is let go (keeping at least this many whatever
/// the members' number).
const MIN_HELD: usize = 1024;

impl Clone for Members {
    fn clone(&self) -> Members {
        // The copy works out its order when it is first read in order.
        Members { since: self.since.clone(), order: Mutex::default() }
    }
}

impl Members {
    pub fn len(&self) -> usize {
        self.since.len()
    }

    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }

    /// When instance `id` entered, if it is a member.
    pub fn since(&self, id: u64) -> Option<i64> {
        self.since.get(&id).copied()
    }

    pub fn since_mut(&mut self, id: u64) -> Option<&mut i64> {
        self.since.get_mut(&id)
    }

    pub fn insert(&mut self, id: u64, since: i64) {
        self.since.insert(id, since);
        self.order.get_mut().unwrap_or_else(|e| e.into_inner()).note(id, true);
    }

    pub fn remove(&mut self, id: u64) {
        if self.since.remove(&id).is_some() {
            self.order.get_mut().unwrap_or_else(|e| e.into_inner()).note(id, false);
        }
    }

    /// The members' ids, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.since.keys().copied()
    }

    /// Each member's id and when it entered, in no particular order (a
    /// copy of plain numbers, quick to take while ingest waits).
    pub fn since_by_id(&self) -> Vec<(u64, i64)> {
        self.since.iter().map(|(&id, &since)| (id, since)).collect()
    }

    /// Up to `limit` members (all, for `None`) in the order of their keys
    /// (`keys`, the entity's), from the first whose key orders after `after`,
    /// with the time each entered.
    pub fn in_order(&self, keys: &Interner, after: Option<&Value>, limit: Option<usize>) -> Vec<(Value, i64)> {
        let mut order = self.order.lock().unwrap_or_else(|e| {
            // A panic while sorting may have left the order half made.
            self.order.clear_poison();
            let mut order = e.into_inner();
            *order = Order::default();
            order
        });
        order.bring_up_to_date(&self.since, keys);
        let start = after.map_or(0, |after| order.sorted.partition_point(|&id| keys.key(id) <= after));
        let ids = &order.sorted[start..];
        ids.iter().take(limit.unwrap_or(ids.len())).map(|&id| (keys.key(id).clone(), self.since[&id])).collect()
    }
}

impl Order {
    /// Notes that `id` entered (or left), if an order is kept.
    fn note(&mut self, id: u64, entered: bool) {
        if !self.kept {
            return;
        }
        if entered {
            self.entered.push(id);
        } else {
            self.left.push(id);
        }
        if self.entered.len() + self.left.len() > (self.sorted.len() / 2).max(MIN_HELD) {
            *self = Order::default();
        }
    }

    /// Makes `sorted` hold exactly the members of `since`, in key order.
    fn bring_up_to_date(&mut self, since: &HashMap<u64, i64>, keys: &Interner) {
        let by_key = |a: &u64, b: &u64| keys.key(*a).cmp(keys.key(*b));
        if !self.kept {
            let mut sorted: Vec<u64> = since.keys().copied().collect();
            sorted.sort_unstable_by(by_key);
            *self = Order { sorted, kept: true, ..Order::default() };
            return;
        }
        if self.entered.is_empty() && self.left.is_empty() {
            return;
        }
        let sorted = &self.sorted;
        let find = |id: u64| sorted.binary_search_by(|x| by_key(x, &id));
        // Positions of the ids that left and did not come back; ids that
        // entered and stayed, with the positions they go before.
        let mut gone: Vec<usize> =
            self.left.iter().filter(|id| !since.contains_key(id)).filter_map(|&id| find(id).ok()).collect();
        gone.sort_unstable();
        gone.dedup();
        let mut new: Vec<u64> = self.entered.iter().copied().filter(|id| since.contains_key(id)).collect();
        new.sort_unstable_by(by_key);
        new.dedup();
        let new: Vec<(usize, u64)> = new.into_iter().filter_map(|id| find(id).err().map(|at| (at, id))).collect();
        let mut merged = Vec::with_capacity(sorted.len() + new.len() - gone.len());
        let (mut gone, mut new) = (gone.into_iter().peekable(), new.into_iter().peekable());
        let mut from = 0;
        loop {
            let next = match (gone.peek(), new.peek()) {
                (Some(&g), Some(&(n, _))) => g.min(n),
                (Some(&g), None) => g,
                (None, Some(&(n, _))) => n,
                (None, None) => break,
            };
            merged.extend_from_slice(&sorted[from..next]);
            from = next;
            while let Some((_, id)) = new.next_if(|&(at, _)| at == from) {
                merged.push(id);
            }
            if gone.next_if_eq(&from).is_some() {
                from += 1;
            }
        }
        merged.extend_from_slice(&sorted[from..]);
        *self = Order { sorted: merged, kept: true, ..Order::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::Members;
    use crate::intern::Interner;
    use proptest::prelude::*;
    use segflow_compiler::value::Value;
    use std::collections::BTreeMap;

    fn key() -> impl Strategy<Value = Value> {
        // Strings sharing long prefixes, of all lengths up to past eight
        // bytes, with bytes above ASCII; and integers of both signs.
        prop_oneof![
            "[ab\u{e9}\u{0}]{0,12}".prop_map(|s| Value::str(&s)),
            any::<i64>().prop_map(Value::Int),
            (-3i64..3).prop_map(Value::Int),
        ]
    }

    /// A step: a key enters (at a time) or leaves, or the members are read
    /// in order (which keeps an order to merge later steps into).
    #[derive(Clone, Debug)]
    enum Step {
        Enter(Value, i64),
        Leave(Value),
        Read,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (key(), 0i64..100).prop_map(|(k, t)| Step::Enter(k, t)),
            3 => key().prop_map(Step::Leave),
            1 => Just(Step::Read),
        ]
    }

    fn expected_after(expected: &BTreeMap<Value, i64>, after: Option<&Value>) -> Vec<(Value, i64)> {
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        expected.range((from, std::ops::Bound::Unbounded)).map(|(k, t)| (k.clone(), *t)).collect()
    }

    proptest! {
        /// Whatever entered and left, and whenever the members were read in
        /// order, they are what an ordered map by the keys holds, in its
        /// order, and a page after any key starts where the map's would.
        #[test]
        fn members_keep_the_keys_order(
            strings in any::<bool>(),
            steps in prop::collection::vec(step(), 0..80),
            probe in key(),
            limit in 0usize..5,
        ) {
            let is_string = |k: &Value| matches!(k, Value::Str(_));
            let mut keys = Interner::default();
            let mut members = Members::default();
            let mut expected: BTreeMap<Value, i64> = BTreeMap::new();
            for step in steps {
                match step {
                    Step::Enter(key, since) if is_string(&key) == strings => {
                        let (id, _) = keys.intern(&key);
                        members.insert(id, since);
                        expected.insert(key, since);
                    }
                    Step::Leave(key) if is_string(&key) == strings => {
                        let (id, _) = keys.intern(&key);
                        members.remove(id);
                        expected.remove(&key);
                    }
                    Step::Read => prop_assert_eq!(members.in_order(&keys, None, None), expected_after(&expected, None)),
                    _ => {}
                }
            }
            prop_assert_eq!(members.in_order(&keys, None, None), expected_after(&expected, None));
            prop_assert_eq!(members.len(), expected.len());
            prop_assert_eq!(members.clone().in_order(&keys, None, None), expected_after(&expected, None));
            if is_string(&probe) == strings {
                let id = keys.get(&probe);
                prop_assert_eq!(id.and_then(|id| members.since(id)), expected.get(&probe).copied());
                let mut want = expected_after(&expected, Some(&probe));
                prop_assert_eq!(members.in_order(&keys, Some(&probe), None), want.clone());
                want.truncate(limit);
                prop_assert_eq!(members.in_order(&keys, Some(&probe), Some(limit)), want);
            }
        }
    }

    /// More changes between two ordered reads than catching up is worth:
    /// the order is made afresh, and still right.
    #[test]
    fn many_entering_between_reads_sorts_afresh() {
        let mut keys = Interner::default();
        let mut members = Members::default();
        let key = |i: u64| Value::str(&format!("k{:05}", (i * 7919) % 5000));
        for i in 0..10 {
            let (id, _) = keys.intern(&key(i));
            members.insert(id, i as i64);
        }
        assert_eq!(members.in_order(&keys, None, None).len(), 10);
        for i in 10..5000 {
            let (id, _) = keys.intern(&key(i));
            members.insert(id, i as i64);
            if i % 3 == 0 {
                members.remove(id);
            }
        }
        assert!(!members.order.lock().unwrap().kept, "past as many changes as members, the order was let go");
        let got: Vec<Value> = members.in_order(&keys, None, None).into_iter().map(|(k, _)| k).collect();
        let mut want: Vec<Value> = (0..5000).filter(|i| *i < 10 || i % 3 != 0).map(key).collect();
        want.sort();
        assert_eq!(got, want);
        // A few changes after an ordered read are caught up with, not sorted afresh.
        let (id, _) = keys.intern(&Value::str("k00000a"));
        members.insert(id, 1);
        members.remove(keys.get(&key(1)).unwrap());
        assert!(members.order.lock().unwrap().kept);
        let got: Vec<Value> = members.in_order(&keys, None, None).into_iter().map(|(k, _)| k).collect();
        want.retain(|k| *k != key(1));
        want.insert(1, Value::str("k00000a"));
        assert_eq!(got, want);
    }
}
