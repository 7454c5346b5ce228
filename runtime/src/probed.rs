//! A hash table whose slot for a hash is known before the lookup, so a run of
//! lookups can ask for all their memory first and then find it in the cache.
//!
//! The engine thread looks up every event's id (`ids`) and every reference
//! (`intern`) in tables far larger than the cache: one miss each, and with
//! hashbrown two in a row (its control bytes, then the slot), taken one
//! lookup at a time. Here a slot holds its hash (whole, or its low bits
//! packed with the value, see `Slot`) beside the value, in one array probed
//! linearly from `hash`'s position: `prefetch` asks for that cache line
//! without waiting, so a caller that prefetches a run of hashes before
//! looking them up overlaps the misses of the whole run.
//!
//! Ids and keys stay for the engine's life; a worker's `count_distinct`
//! pairs (`distinct`) come and go, and a removal shifts the entries after
//! it back (no tombstones, so a lookup still stops at the first vacant
//! slot). The callers split their entries over several tables by hash, in
//! unequal shares so that the tables grow one at a time (see `sharded`): no
//! growth copies everything at once.

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

/// What a table slot holds: an entry, and the lowest `HASH_BITS` bits of
/// its hash, which place it again when the table grows (so a table holds at
/// most 2^`HASH_BITS` slots) and tell most other entries from it without
/// reading them.
pub(crate) trait Slot: Vacant {
    const HASH_BITS: u32;
    /// The hash bits it keeps.
    fn hash(&self) -> u64;
}

/// An entry beside its whole hash.
impl<T: Vacant> Vacant for (u64, T) {
    fn vacant() -> Self {
        (0, T::vacant())
    }
    fn is_vacant(&self) -> bool {
        self.1.is_vacant()
    }
}

impl<T: Vacant> Slot for (u64, T) {
    const HASH_BITS: u32 = u64::BITS;
    fn hash(&self) -> u64 {
        self.0
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Probed<S> {
    /// The length is a power of two, or zero.
    slots: Vec<S>,
    len: usize,
}

impl<S> Default for Probed<S> {
    fn default() -> Self {
        Probed { slots: Vec::new(), len: 0 }
    }
}

/// Slots of a table when it first holds anything.
const FIRST_SLOTS: usize = 16;

/// The bits of `hash` a slot of `S` keeps.
fn kept<S: Slot>(hash: u64) -> u64 {
    hash & (u64::MAX >> (u64::BITS - S::HASH_BITS))
}

impl<S: Slot> Probed<S> {
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

    /// The slot of an entry of `hash` that `is` accepts.
    pub fn find(&self, hash: u64, is: impl FnMut(&S) -> bool) -> Option<&S> {
        self.position(hash, is).map(|at| &self.slots[at])
    }

    /// Where the entry of `hash` that `is` accepts is, for `at_mut` or
    /// `remove_at` (until the table next changes).
    pub fn position(&self, hash: u64, mut is: impl FnMut(&S) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let kept = kept::<S>(hash);
        let mut at = self.home(hash);
        loop {
            let slot = &self.slots[at];
            if slot.is_vacant() {
                return None;
            }
            if slot.hash() == kept && is(slot) {
                return Some(at);
            }
            at = (at + 1) & (self.slots.len() - 1);
        }
    }

    /// The entry at `position`, to change in place (its hash stays).
    pub fn at_mut(&mut self, position: usize) -> &mut S {
        &mut self.slots[position]
    }

    /// Takes out the entry at `position`. Each entry after it in its run
    /// moves back into the gap if its home is at or before the gap, so that
    /// every entry stays reachable from its home without crossing a vacant
    /// slot.
    pub fn remove_at(&mut self, position: usize) -> S {
        let mut gap = position;
        let removed = std::mem::replace(&mut self.slots[gap], S::vacant());
        let mask = self.slots.len() - 1;
        let mut at = (gap + 1) & mask;
        while !self.slots[at].is_vacant() {
            // Kept bits cover the mask (`grow` asserts it), so this is its home.
            let home = self.slots[at].hash() as usize & mask;
            // Steps from its home to it, and from the gap to it: the gap lies
            // on its way from home if the first is no shorter.
            if at.wrapping_sub(home) & mask >= at.wrapping_sub(gap) & mask {
                self.slots.swap(gap, at);
                gap = at;
            }
            at = (at + 1) & mask;
        }
        self.len -= 1;
        removed
    }

    /// Stores `slot`, whose entry's hash is `hash`; the caller has found no
    /// equal one.
    pub fn insert_new(&mut self, hash: u64, slot: S) {
        debug_assert_eq!(slot.hash(), kept::<S>(hash), "a slot keeps its entry's hash");
        // At most three quarters full: a miss then probes a few slots, most
        // in the cache line it started in.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        place(&mut self.slots, hash, slot);
        self.len += 1;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// How many slots the table has (entries and vacant ones).
    #[cfg(test)]
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Doubles the slots, placing each again by its kept hash bits.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(FIRST_SLOTS);
        assert!(
            size.trailing_zeros() <= S::HASH_BITS,
            "a table of {size} slots would need more of its entries' hashes than they keep"
        );
        let old = std::mem::replace(&mut self.slots, (0..size).map(|_| S::vacant()).collect());
        for slot in old {
            if !slot.is_vacant() {
                let hash = slot.hash();
                place(&mut self.slots, hash, slot);
            }
        }
    }
}

/// Puts `slot` in the first vacant slot from `hash`'s position (`slots` is
/// a power of two long, and has one).
fn place<S: Vacant>(slots: &mut [S], hash: u64, slot: S) {
    let mask = slots.len() - 1;
    let mut at = hash as usize & mask;
    while !slots[at].is_vacant() {
        at = (at + 1) & mask;
    }
    slots[at] = slot;
}

#[cfg(test)]
mod tests {
    use super::{Probed, Slot, Vacant};
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
            let mut table: Probed<(u64, u64)> = Probed::default();
            let mut map: HashMap<u64, u64> = HashMap::new();
            for &key in &keys {
                let found = table.find(hash(key), |&(_, v)| v == key).map(|&(_, v)| v);
                prop_assert_eq!(found, map.get(&key).copied());
                if found.is_none() {
                    table.prefetch(hash(key));
                    table.insert_new(hash(key), (hash(key), key));
                    map.insert(key, key);
                }
                prop_assert_eq!(table.len(), map.len());
            }
            for key in 0..200 {
                prop_assert_eq!(table.find(hash(key), |&(_, v)| v == key).map(|&(_, v)| v), map.get(&key).copied());
            }
        }

        /// Entries added, changed in place and removed in any order, with
        /// few distinct hashes (long runs that wrap past the last slot, so
        /// a removal shifts entries back across the end), are found exactly
        /// as a map finds them, and every one is still found afterwards.
        #[test]
        fn removes_and_changes_as_a_map_does(ops in proptest::collection::vec((0u64..60, 0u8..3), 0..600)) {
            let hash = |key: u64| (key % 5).wrapping_sub(2) ^ ((key % 3) << 40);
            let mut table: Probed<(u64, (u64, u64))> = Probed::default();
            let mut map: HashMap<u64, u64> = HashMap::new();
            let is = |key: u64| move |&(_, (k, _)): &(u64, (u64, u64))| k == key;
            for (step, &(key, op)) in ops.iter().enumerate() {
                let value = step as u64;
                match op {
                    0 => {
                        let at = table.position(hash(key), is(key));
                        let removed = at.map(|at| table.remove_at(at)).map(|(_, (_, v))| v);
                        prop_assert_eq!(removed, map.remove(&key));
                    }
                    1 => {
                        let at = table.position(hash(key), is(key));
                        let changed = at.map(|at| table.at_mut(at).1 .1 = value);
                        prop_assert_eq!(changed.is_some(), map.get_mut(&key).map(|v| *v = value).is_some());
                    }
                    _ => {
                        if table.find(hash(key), is(key)).is_none() {
                            table.insert_new(hash(key), (hash(key), (key, value)));
                            map.insert(key, value);
                        }
                    }
                }
                prop_assert_eq!(table.len(), map.len());
            }
            for key in 0..60 {
                let found = table.find(hash(key), is(key)).map(|&(_, (_, v))| v);
                prop_assert_eq!(found, map.get(&key).copied());
            }
        }

        /// A slot that keeps only a few bits of its hash finds the same,
        /// though entries whose hashes differ above those bits share them.
        #[test]
        fn a_slot_keeping_part_of_its_hash_finds_what_a_map_finds(keys in proptest::collection::vec(0u64..700, 0..1000)) {
            // Hashes that differ mostly above the 10 bits a slot keeps.
            let hash = |key: u64| (key % 5) | (key / 5) << 10;
            let mut table: Probed<Narrow> = Probed::default();
            let mut map: HashMap<u64, u64> = HashMap::new();
            for &key in &keys {
                let found = table.find(hash(key), |slot| slot.key() == key).map(Narrow::key);
                prop_assert_eq!(found, map.get(&key).copied());
                if found.is_none() {
                    table.insert_new(hash(key), Narrow::new(hash(key), key));
                    map.insert(key, key);
                }
            }
            for key in 0..700 {
                prop_assert_eq!(table.find(hash(key), |slot| slot.key() == key).map(Narrow::key), map.get(&key).copied());
            }
        }

        /// Removals from slots that keep a few bits of their hashes (homes
        /// read from those bits, as `pairs` reads them) leave what a map
        /// leaves, through growth and runs that wrap past the last slot.
        #[test]
        fn a_slot_keeping_part_of_its_hash_removes_as_a_map_does(
            ops in proptest::collection::vec((0u64..300, proptest::bool::ANY), 0..1500),
        ) {
            // Homes near the end of the slots (runs wrap), and hashes that
            // differ above the 10 bits kept.
            let hash = |key: u64| (key % 7).wrapping_sub(3) & 0x3ff | (key / 7) << 10;
            let mut table: Probed<Narrow> = Probed::default();
            let mut map: HashMap<u64, u64> = HashMap::new();
            for &(key, insert) in &ops {
                let at = table.position(hash(key), |slot| slot.key() == key);
                match (insert, at) {
                    (true, None) => {
                        table.insert_new(hash(key), Narrow::new(hash(key), key));
                        map.insert(key, key);
                    }
                    (false, Some(at)) => {
                        prop_assert_eq!(table.remove_at(at).key(), key);
                        prop_assert_eq!(map.remove(&key), Some(key));
                    }
                    (_, at) => prop_assert_eq!(at.is_some(), map.contains_key(&key)),
                }
                prop_assert_eq!(table.len(), map.len());
            }
            for key in 0..300 {
                prop_assert_eq!(table.find(hash(key), |slot| slot.key() == key).map(Narrow::key), map.get(&key).copied());
            }
        }
    }

    /// A key beside the lowest 10 bits of its hash.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Narrow(u64);

    impl Narrow {
        fn new(hash: u64, key: u64) -> Narrow {
            Narrow(key << 10 | hash & 0x3ff)
        }
        fn key(&self) -> u64 {
            self.0 >> 10
        }
    }

    impl Vacant for Narrow {
        fn vacant() -> Narrow {
            Narrow(u64::MAX)
        }
        fn is_vacant(&self) -> bool {
            self.0 == u64::MAX
        }
    }

    impl Slot for Narrow {
        const HASH_BITS: u32 = 10;
        fn hash(&self) -> u64 {
            self.0 & 0x3ff
        }
    }

    #[test]
    fn an_empty_table_finds_nothing() {
        let table: Probed<(u64, u64)> = Probed::default();
        table.prefetch(3);
        assert_eq!(table.find(3, |_| true), None);
        assert_eq!(table.len(), 0);
    }

    #[test]
    #[should_panic(expected = "more of its entries' hashes than they keep")]
    fn a_table_does_not_outgrow_the_hash_its_slots_keep() {
        let mut table: Probed<Narrow> = Probed::default();
        for key in 0..1000 {
            table.insert_new(key, Narrow::new(key, key));
        }
    }
}
