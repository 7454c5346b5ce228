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
//! growth points together (the engine's 64 id tables all grew within ~200
//! ms of one another at 1.6M ids, which put p99 at 60–80 ms). So the shares
//! are unequal: shard `i` takes a share in proportion to 2^(i/SHARDS), the
//! largest twice the smallest. Every shard doubles once as the whole
//! doubles, and their doublings are spread evenly over that time, each
//! copying about a `SHARDS`th of the whole.

use hashbrown::hash_table::{Entry, HashTable};
use std::hash::{BuildHasher, Hash};

/// How many tables a sharded table has.
pub(crate) const SHARDS: usize = 64;

/// The shard of a hash: bits 32 to 43 of it, through `STAGGER`. (Not the
/// lowest bits, which place an entry in its table, nor the highest, which
/// hashbrown keeps as a tag.)
pub(crate) fn shard(hash: u64) -> usize {
    STAGGER[(hash >> 32) as usize % STAGGER_STEPS] as usize
}

const STAGGER_STEPS: usize = 4096;

// `stagger`'s constants (2^(1/64), the shift of a step, shards in a byte)
// are for these.
const _: () = assert!(SHARDS == 64 && STAGGER_STEPS == 4096);

/// Per step `j` of a hash's 12 bits, its shard: the `i` with 2^(i/64) - 1 <=
/// (j + 1/2) / 4096 < 2^((i+1)/64) - 1, so shard `i` takes steps in
/// proportion to 2^(i/64) (from 45 steps to 88).
static STAGGER: [u8; STAGGER_STEPS] = stagger();

const fn stagger() -> [u8; STAGGER_STEPS] {
    // 2^(i/64) in 32-bit fixed point, by repeated multiplication by
    // 2^(1/64) (4341736423 / 2^32); `bounds[i]` is where shard i begins.
    const ROOT: u128 = 4_341_736_423;
    let mut bounds = [0u64; SHARDS];
    let mut power: u128 = 1 << 32;
    let mut i = 0;
    while i < SHARDS {
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

/// A hash map in `SHARDS` tables that grow one at a time.
pub struct ShardedMap<K, V> {
    tables: Vec<HashTable<(K, V)>>,
    // Seeded per process: keys hold clients' values, and with a known seed
    // they could pick values that collide, or that all go to one table.
    hasher: foldhash::fast::SeedableRandomState,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap::with_hasher(Default::default())
    }
}

impl<K, V> ShardedMap<K, V> {
    fn with_hasher(hasher: foldhash::fast::SeedableRandomState) -> Self {
        ShardedMap { tables: (0..SHARDS).map(|_| HashTable::new()).collect(), hasher }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// The entry of `key`, vacant or occupied, holding (key, value). A
    /// vacant one must be filled with `key` (or one equal to it): another
    /// key would sit in a table its hash does not lead to.
    pub fn entry(&mut self, key: &K) -> Entry<'_, (K, V)> {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(key);
        self.tables[shard(hash)].entry(hash, |(k, _)| k == key, |(k, _)| hasher.hash_one(k))
    }
}

#[cfg(test)]
impl<K: Hash + Eq, V> ShardedMap<K, V> {
    fn get(&self, key: &K) -> Option<&V> {
        let hash = self.hasher.hash_one(key);
        self.tables[shard(hash)].find(hash, |(k, _)| k == key).map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.tables.iter().map(HashTable::len).sum()
    }

    fn is_empty(&self) -> bool {
        self.tables.iter().all(HashTable::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::{shard, ShardedMap, SHARDS, STAGGER, STAGGER_STEPS};
    use foldhash::fast::SeedableRandomState;
    use foldhash::SharedSeed;
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

    /// The shard is read from bits 32 to 43 alone: the low bits place an
    /// entry within its table (had the shard taken them, every table's
    /// entries would crowd into a 64th of its buckets), and hashbrown tags
    /// an entry with the highest.
    #[test]
    fn the_shard_is_read_from_bits_32_to_43() {
        let mut h = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..10_000 {
            h = h.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            assert_eq!(shard(h), shard(h & (0xFFF << 32)), "{h:#x}");
        }
        let mut seen = [false; SHARDS];
        for step in 0..STAGGER_STEPS as u64 {
            seen[shard(step << 32)] = true;
        }
        assert!(seen.iter().all(|&s| s), "every shard is some hash's");
    }

    /// The point of the shares: as the whole doubles, the tables grow one
    /// at a time. (With equal shares, 54 grew within 445 insertions of one
    /// another at 28,480.)
    #[test]
    fn the_tables_grow_one_at_a_time() {
        for seed in 0..4 {
            let hasher = SeedableRandomState::with_seed(seed, SharedSeed::global_fixed());
            let mut map: ShardedMap<u64, ()> = ShardedMap::with_hasher(hasher);
            let capacities = |map: &ShardedMap<u64, ()>| map.tables.iter().map(|t| t.capacity()).collect::<Vec<_>>();
            let mut before = capacities(&map);
            // (insertions so far, table) of each growth from 20,000 entries on.
            let mut growths = Vec::new();
            for key in 0..300_000u64 {
                if let Entry::Vacant(e) = map.entry(&key) {
                    e.insert((key, ()));
                }
                if key % 64 == 0 {
                    let now = capacities(&map);
                    let grown = (0..SHARDS).filter(|&t| before[t] != now[t]);
                    growths.extend(grown.filter(|_| key >= 20_000).map(|t| (key, t)));
                    before = now;
                }
            }
            // From 20,000 to 300,000 entries every table doubles about four times.
            for t in 0..SHARDS {
                let n = growths.iter().filter(|&&(_, grown)| grown == t).count();
                assert!(n >= 3, "seed {seed}: table {t} grew {n} times");
            }
            // As the whole doubles from k entries each table grows once, so
            // one grows every k/64 insertions on average: at most 6 within
            // any k/64.
            for (i, &(at, _)) in growths.iter().enumerate() {
                let within = growths[i..].iter().take_while(|&&(k, _)| k < at + at / 64).count();
                assert!(within <= 6, "seed {seed}: {within} tables grew within {} insertions of {at}", at / 64);
            }
        }
    }

    proptest! {
        /// Adding to and removing from the map keeps what a `HashMap` does,
        /// through the growth of every table.
        #[test]
        fn holds_what_a_hash_map_does(ops in prop::collection::vec((0u64..2_000, -2i64..3), 0..5_000)) {
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
