//! How many rows hold each (instance, value) pair of a worker's
//! `count_distinct` (`distinct`): one entry per distinct pair in the
//! windows, so it grows with the events and outgrows the cache.
//!
//! A refresh's pairs are scattered over the whole table, and a hash map
//! looked them up one at a time, each waiting for its miss (two with
//! hashbrown: its control bytes, then the entry): in a refresh of retail
//! orders those lookups were a fifteenth of the workers' time. Here the
//! entries sit in probed tables (`probed`), whose slot for a hash is known
//! before the lookup, so a completed time's pairs are hashed first and each
//! is asked for a few pairs ahead. The tables are the shares of `sharded`,
//! so that they grow one at a time.

use crate::probed::{Probed, Slot, Vacant};
use crate::sharded::{shard, SHARDS};
use segflow_compiler::value::Value;
use std::hash::BuildHasher;

/// Bits of a pair's hash an entry keeps beside its count. A table holds at
/// most 2^28 slots, three quarters of them used; the largest of the shares
/// is 2.15 % of the pairs, so a worker's operator holds ~9 billion pairs
/// (hundreds of GB) before one would outgrow it. A count stays within
/// ±2^35 rows.
const HASH_BITS: u32 = 28;
const COUNT_BITS: u32 = u64::BITS - HASH_BITS;
/// The most rows a pair's count can say, either way.
const MOST_ROWS: u64 = (1 << (COUNT_BITS - 1)) - 1;

/// A pair and how many rows hold it, in 40 bytes: the count (two's
/// complement in the low `COUNT_BITS`) shares a word with the low bits of
/// the pair's hash. An entry is never zero rows (the pair is taken out
/// then), so zero marks a vacant slot.
#[derive(Clone, Debug)]
struct Held {
    instance: u64,
    value: Value,
    hash_and_count: u64,
}

impl Held {
    fn new(hash: u64, instance: u64, value: Value, count: i64) -> Held {
        let mut held = Held { instance, value, hash_and_count: hash << COUNT_BITS };
        held.set_count(count);
        held
    }

    fn count(&self) -> i64 {
        // Shifted up and back down, the sign comes back.
        ((self.hash_and_count << HASH_BITS) as i64) >> HASH_BITS
    }

    fn set_count(&mut self, count: i64) {
        // Past it the count would wrap, or read as zero (a vacant slot
        // inside a run, which hides the entries after it).
        assert!(count.unsigned_abs() <= MOST_ROWS, "more than 2^35 rows hold one (instance, value) pair");
        let mask = (1u64 << COUNT_BITS) - 1;
        self.hash_and_count = (self.hash_and_count & !mask) | (count as u64 & mask);
    }

    fn is(&self, instance: u64, value: &Value) -> bool {
        self.instance == instance && self.value == *value
    }
}

impl Vacant for Held {
    fn vacant() -> Held {
        Held { instance: 0, value: Value::Null, hash_and_count: 0 }
    }
    fn is_vacant(&self) -> bool {
        self.count() == 0
    }
}

impl Slot for Held {
    const HASH_BITS: u32 = HASH_BITS;
    fn hash(&self) -> u64 {
        self.hash_and_count >> COUNT_BITS
    }
}

/// Per pair, how many rows hold it; pairs that none hold are absent.
pub struct HeldPairs {
    tables: Vec<Probed<Held>>,
    // Seeded at random: values come from clients, who should not be able
    // to pick values that collide.
    hasher: foldhash::fast::SeedableRandomState,
}

impl Default for HeldPairs {
    fn default() -> Self {
        HeldPairs::with_hasher(Default::default())
    }
}

impl HeldPairs {
    fn with_hasher(hasher: foldhash::fast::SeedableRandomState) -> Self {
        HeldPairs { tables: (0..SHARDS).map(|_| Probed::default()).collect(), hasher }
    }

    /// The hash `add` and `prefetch` take for a pair.
    pub fn hash(&self, instance: u64, value: &Value) -> u64 {
        self.hasher.hash_one((instance, value))
    }

    /// Asks for the memory that `add` of a pair of `hash` reads first,
    /// without waiting for it.
    pub fn prefetch(&self, hash: u64) {
        self.tables[shard(hash)].prefetch(hash);
    }

    /// Adds `diff` rows (negative: takes them away) to the pair of `hash`;
    /// its count before and after. A pair that no row holds any more is
    /// taken out.
    pub fn add(&mut self, hash: u64, instance: u64, value: Value, diff: i64) -> (i64, i64) {
        let table = &mut self.tables[shard(hash)];
        let Some(at) = table.position(hash, |h| h.is(instance, &value)) else {
            if diff != 0 {
                table.insert_new(hash, Held::new(hash, instance, value, diff));
            }
            return (0, diff);
        };
        let held = table.at_mut(at);
        let before = held.count();
        let after = before + diff;
        if after == 0 {
            table.remove_at(at);
        } else {
            held.set_count(after);
        }
        (before, after)
    }
}

#[cfg(test)]
impl HeldPairs {
    fn get(&self, instance: u64, value: &Value) -> Option<i64> {
        let hash = self.hash(instance, value);
        self.tables[shard(hash)].find(hash, |h| h.is(instance, value)).map(Held::count)
    }

    fn len(&self) -> usize {
        self.tables.iter().map(Probed::len).sum()
    }

    fn slot_counts(&self) -> Vec<usize> {
        self.tables.iter().map(Probed::slot_count).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Held, HeldPairs, MOST_ROWS};
    use crate::sharded::SHARDS;
    use foldhash::fast::SeedableRandomState;
    use foldhash::SharedSeed;
    use proptest::prelude::*;
    use segflow_compiler::value::Value;
    use std::collections::HashMap;

    #[test]
    fn an_entry_keeps_its_hash_bits_and_any_count_in_40_bytes() {
        assert_eq!(std::mem::size_of::<Held>(), 40);
        let limit = MOST_ROWS as i64;
        for count in [1, -1, 7, -7, limit, -limit] {
            let mut held = Held::new(0xABC_DEF1, 3, Value::Int(4), count);
            assert_eq!((held.count(), super::Slot::hash(&held)), (count, 0xABC_DEF1), "{count}");
            held.set_count(-count);
            assert_eq!((held.count(), super::Slot::hash(&held)), (-count, 0xABC_DEF1), "{count}");
        }
    }

    #[test]
    #[should_panic(expected = "more than 2^35 rows")]
    fn a_count_past_its_bits_stops_rather_than_wrap() {
        Held::new(1, 3, Value::Int(4), MOST_ROWS as i64 + 1);
    }

    /// The point of the shares: as the whole doubles, the tables grow one
    /// at a time. (With equal shares, 54 grew within 445 insertions of one
    /// another at 28,480.)
    #[test]
    fn the_tables_grow_one_at_a_time() {
        for seed in 0..4 {
            let mut pairs = HeldPairs::with_hasher(SeedableRandomState::with_seed(seed, SharedSeed::global_fixed()));
            let mut before = pairs.slot_counts();
            // (insertions so far, table) of each growth from 20,000 entries on.
            let mut growths = Vec::new();
            for key in 0..300_000u64 {
                let value = Value::Int(key as i64 % 7);
                pairs.add(pairs.hash(key, &value), key, value, 1);
                if key % 64 == 0 {
                    let now = pairs.slot_counts();
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
            // one grows every k/64 insertions on average: at most 8 within
            // any k/64 (5 to 7 for seeds 0 to 11).
            for (i, &(at, _)) in growths.iter().enumerate() {
                let within = growths[i..].iter().take_while(|&&(k, _)| k < at + at / 64).count();
                assert!(within <= 8, "seed {seed}: {within} tables grew within {} insertions of {at}", at / 64);
            }
        }
    }

    proptest! {
        /// Adding rows to pairs and taking them away keeps what a `HashMap`
        /// does (counts before and after, absent at zero), through the
        /// growth of every table, with pairs of one instance and different
        /// values and of one value and different instances.
        #[test]
        fn holds_what_a_hash_map_does(ops in prop::collection::vec((0u64..40, 0i64..50, -2i64..3), 0..5_000)) {
            // A fixed seed: a failing case replays with the same tables.
            let mut pairs = HeldPairs::with_hasher(SeedableRandomState::fixed());
            let mut plain: HashMap<(u64, i64), i64> = HashMap::new();
            for (instance, value, diff) in ops {
                let v = Value::Int(value);
                let counts = pairs.add(pairs.hash(instance, &v), instance, v, diff);
                let before = plain.get(&(instance, value)).copied().unwrap_or(0);
                prop_assert_eq!(counts, (before, before + diff));
                if before + diff == 0 {
                    plain.remove(&(instance, value));
                } else {
                    plain.insert((instance, value), before + diff);
                }
                prop_assert_eq!(pairs.len(), plain.len());
            }
            for instance in 0..40 {
                for value in 0..50 {
                    prop_assert_eq!(pairs.get(instance, &Value::Int(value)), plain.get(&(instance, value)).copied());
                }
            }
        }
    }
}
