//! A hash table whose slot for a hash is known before the lookup, so a run of
//! lookups can ask for all their memory first and then find it in the cache.
//!
//! The engine thread looks up every event's id (`ids`) and every reference
//! (`intern`) in tables far larger than the cache: one miss each, and with
//! hashbrown two in a row (its control bytes, then the slot), taken one
//! lookup at a time. Here a slot holds its full hash beside the value, in
//! one array probed linearly from `hash`'s position: `prefetch` asks for that
//! cache line without waiting, so a caller that prefetches a run of hashes
//! before looking them up overlaps the misses of the whole run.
//!
//! Nothing is ever removed (ids and keys stay for the engine's life). The
//! callers split their keys over several tables by hash, in unequal shares
//! so that the tables grow one at a time (see `sharded`): no growth copies
//! everything at once.

/// A value that has a vacant form, which marks an empty slot.
pub(crate) trait Vacant {
    fn vacant() -> Self;
    fn is_vacant(&self) -> bool;
}

/// A position or an id: `u64::MAX` is never one.
impl Vacant for u64 {
    fn vacant() -> u64 {
        u64::MAX
    }
    fn is_vacant(&self) -> bool {
        *self == u64::MAX
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Probed<T> {
    /// (hash, value); the length is a power of two, or zero.
    slots: Vec<(u64, T)>,
    len: usize,
}

impl<T> Default for Probed<T> {
    fn default() -> Self {
        Probed { slots: Vec::new(), len: 0 }
    }
}

/// Slots of a table when it first holds anything.
const FIRST_SLOTS: usize = 16;

impl<T: Vacant> Probed<T> {
    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.slots.len() - 1)
    }

    /// Asks for the memory where `hash` is looked up first, without waiting
    /// (the whole slot: one may lie across two cache lines).
    pub fn prefetch(&self, hash: u64) {
        if !self.slots.is_empty() {
            crate::instances::prefetch_whole(&self.slots[self.home(hash)]);
        }
    }

    /// The value stored under `hash` that `is` accepts.
    pub fn find(&self, hash: u64, mut is: impl FnMut(&T) -> bool) -> Option<&T> {
        if self.slots.is_empty() {
            return None;
        }
        let mut at = self.home(hash);
        loop {
            let (h, value) = &self.slots[at];
            if value.is_vacant() {
                return None;
            }
            if *h == hash && is(value) {
                return Some(value);
            }
            at = (at + 1) & (self.slots.len() - 1);
        }
    }

    /// Stores `value` under `hash`; the caller has found no equal one.
    pub fn insert_new(&mut self, hash: u64, value: T) {
        // At most three quarters full: a miss then probes a few slots, most
        // in the cache line it started in.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        place(&mut self.slots, hash, value);
        self.len += 1;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Doubles the slots, placing each value again by its stored hash.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(FIRST_SLOTS);
        let old = std::mem::replace(&mut self.slots, (0..size).map(|_| (0, T::vacant())).collect());
        for (hash, value) in old {
            if !value.is_vacant() {
                place(&mut self.slots, hash, value);
            }
        }
    }
}

/// Puts `value` in the first vacant slot from `hash`'s position (`slots`
/// is a power of two long, and has one).
fn place<T: Vacant>(slots: &mut [(u64, T)], hash: u64, value: T) {
    let mask = slots.len() - 1;
    let mut at = hash as usize & mask;
    while !slots[at].1.is_vacant() {
        at = (at + 1) & mask;
    }
    slots[at] = (hash, value);
}

#[cfg(test)]
mod tests {
    use super::Probed;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Keys with few distinct hashes (long probe runs, equal hashes of
        /// different keys, wrapping past the last slot) are found exactly as
        /// a map finds them, through every growth.
        #[test]
        fn finds_what_a_map_finds(keys in proptest::collection::vec(0u64..200, 0..400)) {
            // 21 hashes for 200 keys; homes just below the end of the slots,
            // so runs wrap past the last one.
            let hash = |key: u64| (key % 7).wrapping_sub(3) ^ ((key % 3) << 40);
            let mut table: Probed<u64> = Probed::default();
            let mut map: HashMap<u64, u64> = HashMap::new();
            for key in keys {
                let found = table.find(hash(key), |&v| v == key).copied();
                prop_assert_eq!(found, map.get(&key).copied());
                if found.is_none() {
                    table.prefetch(hash(key));
                    table.insert_new(hash(key), key);
                    map.insert(key, key);
                }
                prop_assert_eq!(table.len(), map.len());
            }
            for key in 0..200 {
                prop_assert_eq!(table.find(hash(key), |&v| v == key).copied(), map.get(&key).copied());
            }
        }
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let table: Probed<u64> = Probed::default();
        table.prefetch(3);
        assert_eq!(table.find(3, |_| true), None);
        assert_eq!(table.len(), 0);
    }
}
