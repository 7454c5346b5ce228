//! Tables split by hash into shards that grow one at a time, for state that
//! grows with the events: the engine's event ids and keys (`ids`,
//! `intern`), and a worker's `count_distinct` pairs (`ShardedMap`).
//!
//! A single table doubles all at once: at a million entries it allocates
//! tens of megabytes, faults each page in and rehashes every entry, in the
//! middle of one batch. Under a steady 100k events/s the `count_distinct`
//! pairs of the retail example grew through such doublings every few
//! seconds, each holding its batch (and those queued behind it) for
//! 100–200 ms. Shards of equal shares do not help much: they reach their
//! growth points together, within a few hundred milliseconds of one
//! another (the engine's 64 id tables did, and held ingest for ~200 ms at
//! 1.6M ids). So the shares are unequal: shard `i` takes a share in
//! proportion to 2^(i/SHARDS), the largest twice the smallest. Every shard
//! doubles once as the whole doubles, and their doublings are spread
//! evenly over that time, each copying about a `SHARDS`th of the whole.

/// How many tables a sharded table has.
pub(crate) const SHARDS: usize = 64;

/// The shard of a hash: bits 32 to 43 of it, through `STAGGER`. (Not the
/// lowest bits, which place an entry in its table, nor the highest, which
/// hashbrown keeps as a tag.)
pub(crate) fn shard(hash: u64) -> usize {
    STAGGER[(hash >> 32) as usize % STAGGER_STEPS] as usize
}

const STAGGER_STEPS: usize = 4096;

/// Per step `j` of a hash's 12 bits, its shard: the `i` with 2^(i/64) - 1 <=
/// (j + 1/2) / 4096 < 2^((i+1)/64) - 1, so shard `i` takes steps in
/// proportion to 2^(i/64) (from 45 steps to 90).
static STAGGER: [u8; STAGGER_STEPS] = stagger();

const fn stagger() -> [u8; STAGGER_STEPS] {
    // 2^(i/64) in 32-bit fixed point, by repeated multiplication by
    // 2^(1/64) (4341736423 / 2^32); `bounds[i]` is where shard i begins.
    const ROOT: u128 = 4_341_736_423;
    let mut bounds = [0u64; SHARDS + 1];
    let mut power: u128 = 1 << 32;
    let mut i = 0;
    while i <= SHARDS {
        bounds[i] = (power - (1 << 32)) as u64;
        power = (power * ROOT) >> 32;
        i += 1;
    }
    let mut table = [0u8; STAGGER_STEPS];
    let mut j = 0;
    let mut at = 0;
    while j < STAGGER_STEPS {
        // The middle of step j, as a fraction of 2^32.
        let u = ((2 * j as u64) + 1) << 19;
        while at + 1 < SHARDS && bounds[at + 1] <= u {
            at += 1;
        }
        table[j] = at as u8;
        j += 1;
    }
    table
}
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
    use super::{ShardedMap, SHARDS, STAGGER, STAGGER_STEPS};
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

    #[test]
    fn shard_i_takes_a_share_in_proportion_to_2_to_the_i_over_64() {
        let mut steps = [0usize; SHARDS];
        for &shard in STAGGER.iter() {
            steps[shard as usize] += 1;
        }
        assert_eq!(steps.iter().sum::<usize>(), STAGGER_STEPS);
        for (i, &n) in steps.iter().enumerate() {
            let expected = STAGGER_STEPS as f64 * (((i + 1) as f64 / 64.0).exp2() - (i as f64 / 64.0).exp2());
            assert!((n as f64 - expected).abs() <= 1.0, "shard {i}: {n} steps, expected {expected:.1}");
        }
        assert!(STAGGER.windows(2).all(|w| w[0] <= w[1]), "shards in order of the steps");
    }

    /// The point of the shares: as the whole doubles, the tables grow one
    /// at a time. (With equal shares, 64 grew within ~5,000 insertions of
    /// one another at 100,000.)
    #[test]
    fn the_tables_grow_one_at_a_time() {
        let mut map: ShardedMap<u64, ()> = ShardedMap::default();
        let capacities = |map: &ShardedMap<u64, ()>| map.tables.iter().map(|t| t.capacity()).collect::<Vec<_>>();
        let mut before = capacities(&map);
        let mut growths = Vec::new();
        for key in 0..300_000u64 {
            if let hashbrown::hash_table::Entry::Vacant(e) = map.entry(&key) {
                e.insert((key, ()));
            }
            if key % 64 == 0 {
                let now = capacities(&map);
                let grown = before.iter().zip(&now).filter(|(b, n)| b != n).count();
                growths.extend(std::iter::repeat_n(key, grown));
                before = now;
            }
        }
        // As the whole doubles from k entries each table grows once, so one
        // grows every k/64 insertions on average: from 20,000 entries on, at
        // most 6 grow within any k/64.
        let late: Vec<u64> = growths.into_iter().filter(|&k| k >= 20_000).collect();
        assert!(late.len() >= 64, "every table grew at least once: {} growths", late.len());
        for (i, &at) in late.iter().enumerate() {
            let within = late[i..].iter().take_while(|&&k| k < at + at / 64).count();
            assert!(within <= 6, "{within} tables grew within {} insertions of {at}", at / 64);
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
