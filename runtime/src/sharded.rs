//! A hash map split over tables by hash, each growing alone, for a worker's
//! state that grows with the events (not with the instances).
//!
//! A single table doubles all at once: at a million entries it allocates
//! tens of megabytes, faults each page in and rehashes every entry, in the
//! middle of one batch. Under a steady 100k events/s the `count_distinct`
//! pairs of the retail example grew through such doublings every few
//! seconds, each holding its batch (and those queued behind it) for
//! 100–200 ms. Split by hash, the tables are filled evenly but not equally,
//! so they cross their growth points over many batches, each copying a
//! `SHARDS`th of the whole.

use crate::ids::{shard, SHARDS};
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::{BuildHasher, Hash};

pub struct ShardedMap<K, V> {
    tables: Vec<HashTable<(K, V)>>,
    hasher: foldhash::fast::FixedState,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap { tables: (0..SHARDS).map(|_| HashTable::new()).collect(), hasher: Default::default() }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// The entry of `key`, vacant or occupied, holding (key, value).
    pub fn entry(&mut self, key: &K) -> Entry<'_, (K, V)> {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(key);
        self.tables[shard(hash)].entry(hash, |(k, _)| k == key, |(k, _)| hasher.hash_one(k))
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        let hash = self.hasher.hash_one(key);
        self.tables[shard(hash)].find(hash, |(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.tables.iter().map(HashTable::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(HashTable::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::ShardedMap;
    use hashbrown::hash_table::Entry;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn add(map: &mut ShardedMap<u64, i64>, key: u64, by: i64) {
        if by == 0 {
            return;
        }
        match map.entry(&key) {
            Entry::Occupied(mut e) => {
                e.get_mut().1 += by;
                if e.get().1 == 0 {
                    e.remove();
                }
            }
            Entry::Vacant(e) => {
                e.insert((key, by));
            }
        }
    }

    proptest! {
        /// Adding to and removing from the map keeps what a `HashMap` does,
        /// through the growth of every table.
        #[test]
        fn holds_what_a_hash_map_does(ops in prop::collection::vec((0u64..5_000, -2i64..3), 0..20_000)) {
            let mut sharded = ShardedMap::default();
            let mut plain: HashMap<u64, i64> = HashMap::new();
            for (key, by) in ops {
                add(&mut sharded, key, by);
                let n = plain.entry(key).or_default();
                *n += by;
                if *n == 0 {
                    plain.remove(&key);
                }
            }
            prop_assert_eq!(sharded.len(), plain.len());
            prop_assert_eq!(sharded.is_empty(), plain.is_empty());
            for (key, n) in &plain {
                prop_assert_eq!(sharded.get(key), Some(n));
            }
        }
    }
}
