//! Entity keys, interned.
//!
//! The dataflow keys every instance by a dense `u64` id instead of its key
//! string: hashing, comparing and cloning ids is cheap, and a reference inside
//! a row is one word. Ids are assigned in the order keys are first seen, which
//! is deterministic for a given input, so results do not depend on the number
//! of workers. Anything that orders by key (dumps, paging) maps ids back first.
//!
//! Every reference of every event is looked up here, in a table too large for
//! the cache, so a string key of up to 47 bytes (a UUID's 36 among them) is
//! kept in its table slot too: finding it reads the slot and not also
//! `keys`, and, for a key longer than a value holds inline, the key's own
//! allocation behind it. A caller with many keys to look up can `prefetch`
//! each first (see `probed`).

use crate::chunked::Shared;
use crate::probed::{Probed, Vacant};
use crate::sharded::{shard, SHARDS};
use segflow_compiler::value::Value;
use std::hash::BuildHasher;

#[derive(Clone, Debug)]
pub struct Interner {
    /// Keys by id, in chunks: the engine thread never copies them all to grow.
    keys: Shared<Value>,
    /// Slots split over tables by hash, which grow one at a time (see `sharded`).
    tables: Vec<Probed<(u64, Slot)>>,
    // Seeded per process: keys come from clients, who should not be able to
    // pick keys that collide.
    hasher: foldhash::fast::RandomState,
}

/// 56 bytes: the id and, for a string key of up to `IN_SLOT` bytes, the key
/// itself. A table keeps each beside its hash, 64 bytes a slot (a cache
/// line's size; the table is not aligned to lines, see `probed`), at most
/// three quarters of them used: ~85 bytes a key, ~8.5 MB for 100k users,
/// ~3 MB more than with 23 bytes in a slot. With those (40 with the
/// hash) a UUID key was compared through `keys` and then its text's
/// allocation, two misses in a row on every reference: 1M events of the
/// retail example with UUIDs for users and event ids took 1.81 s against
/// 1.55 s with them in the slot, and short keys the same either way (1.27 /
/// 1.28 s; BENCHMARKS.md, thirty-seventh session). (Its own bytes, not a
/// `Text`: a slot holds longer keys than a value does.)
#[derive(Clone, Debug)]
struct Slot {
    id: u64,
    /// The key's length, or `NOT_IN_SLOT` for a longer string or another
    /// value, whose key is `keys[id]`.
    len: u8,
    bytes: [u8; IN_SLOT],
}

const IN_SLOT: usize = 47;
const NOT_IN_SLOT: u8 = u8::MAX;

const _: () = assert!(std::mem::size_of::<Slot>() == 56);

impl Slot {
    fn new(id: u64, key: &Value) -> Slot {
        let mut slot = Slot { id, len: NOT_IN_SLOT, bytes: [0; IN_SLOT] };
        if let Value::Str(s) = key {
            if s.len() <= IN_SLOT {
                slot.len = s.len() as u8;
                slot.bytes[..s.len()].copy_from_slice(s.as_bytes());
            }
        }
        slot
    }

    /// The key, if it is held here.
    fn short(&self) -> Option<&[u8]> {
        self.bytes.get(..self.len as usize)
    }
}

impl Vacant for Slot {
    fn vacant() -> Slot {
        Slot::new(u64::MAX, &Value::Null)
    }
    fn is_vacant(&self) -> bool {
        self.id == u64::MAX
    }
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            keys: Shared::default(),
            tables: (0..SHARDS).map(|_| Probed::default()).collect(),
            hasher: Default::default(),
        }
    }
}

impl Interner {
    /// The id of `key`, and whether it was new.
    pub fn intern(&mut self, key: &Value) -> (u64, bool) {
        let hash = hash_of(&self.hasher, key);
        if let Some(id) = self.find(hash, key) {
            return (id, false);
        }
        let id = self.keys.end() as u64;
        self.tables[shard(hash)].insert_new(hash, (hash, Slot::new(id, key)));
        self.keys.push_back(key.clone());
        (id, true)
    }

    pub fn get(&self, key: &Value) -> Option<u64> {
        self.find(hash_of(&self.hasher, key), key)
    }

    fn find(&self, hash: u64, key: &Value) -> Option<u64> {
        self.tables[shard(hash)].find(hash, |(_, slot)| matches(&self.keys, slot, key)).map(|(_, slot)| slot.id)
    }

    /// Asks for the memory that looking `key` up reads first, without
    /// waiting for it: a run of prefetches overlaps the lookups' misses.
    pub fn prefetch(&self, key: &Value) {
        let hash = hash_of(&self.hasher, key);
        self.tables[shard(hash)].prefetch(hash);
    }

    pub fn key(&self, id: u64) -> &Value {
        &self.keys[id as usize]
    }

    /// The key of `id`, if it is one.
    pub fn key_of(&self, id: u64) -> Option<&Value> {
        self.keys.get(id as usize)
    }
    pub fn len(&self) -> usize {
        self.keys.end()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys by id, sharing their chunks (a snapshot's copy; read an id's
    /// key in it with `key_in`).
    pub fn shared_keys(&self) -> Shared<Value> {
        self.keys.clone()
    }

    /// Keys from id `from` on, in id order (for publishing new keys).
    pub fn keys_from(&self, from: usize) -> impl Iterator<Item = &Value> {
        self.keys.iter_from(from)
    }
}

/// A string key hashes as its bytes, whether it is held in a slot or not.
// (Asked to inline: after an unrelated change to the decoder, LTO made it
// a call of its own for every key interned: 13 M instructions, 0.5 %, of a
// 200k-event backfill.)
#[inline]
fn hash_of(hasher: &foldhash::fast::RandomState, key: &Value) -> u64 {
    match key {
        Value::Str(s) => hasher.hash_one(s.as_bytes()),
        other => hasher.hash_one(other),
    }
}

fn matches(keys: &Shared<Value>, slot: &Slot, key: &Value) -> bool {
    match (slot.short(), key) {
        (Some(short), Value::Str(s)) => short == s.as_bytes(),
        (Some(_), _) => false,
        (None, key) => &keys[slot.id as usize] == key,
    }
}

/// The key of `id` in `keys` (`Interner::shared_keys`), which holds it: a
/// copy is taken after every id it is asked about (null, were it not).
pub fn key_in(keys: &Shared<Value>, id: u64) -> Value {
    let key = keys.get(id as usize);
    debug_assert!(key.is_some(), "an id not in the copy of the keys");
    key.cloned().unwrap_or(Value::Null)
}

/// The keys of the entities whose references the dataflow orders by value
/// (min, max and mode of a reference: EQL.md orders references by their
/// keys), for the workers to read. Ids follow the order keys were first seen,
/// not the keys' order, and the workers have only ids. The engine adds each
/// new key here before it sends anything that names it. A copy of the
/// `Interner`'s keys, kept only for those entities: the interner is the engine
/// thread's own, unlocked on the path every reference of every event takes.
/// In chunks: a vector doubling at a million keys copied them all under the
/// lock the workers read through.
#[derive(Clone, Default)]
pub struct KeyOrder(std::sync::Arc<Vec<Option<std::sync::RwLock<Shared<Value>>>>>);

impl KeyOrder {
    /// Keys kept for the entities marked in `ordered`, none for the rest.
    pub fn new(ordered: &[bool]) -> KeyOrder {
        KeyOrder(std::sync::Arc::new(
            ordered.iter().map(|&kept| kept.then(|| std::sync::RwLock::new(Shared::default()))).collect(),
        ))
    }

    /// Adds the key of `entity`'s next id, if its keys are kept.
    pub fn push(&self, entity: usize, key: &Value) {
        if let Some(Some(keys)) = self.0.get(entity) {
            keys.write().unwrap_or_else(|e| e.into_inner()).push_back(key.clone());
        }
    }

    /// What a reference to `entity` sorts by: its key (the reference itself
    /// where the key is not kept, which `new` rules out for the entities asked).
    pub fn key_of(&self, entity: usize, reference: &Value) -> Value {
        let (Some(Some(keys)), Some(id)) = (self.0.get(entity), reference.as_ref_id()) else {
            return reference.clone();
        };
        let keys = keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(id as usize).cloned().unwrap_or_else(|| reference.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::{Interner, KeyOrder, IN_SLOT};
    use segflow_compiler::value::{Value, INLINE as SHORT};

    #[test]
    fn keys_of_every_kind_get_stable_ids_in_order_of_arrival() {
        let long = "k".repeat(SHORT + 1);
        let keys = [
            Value::str(""),
            Value::str("u0000001"),
            Value::str(&"s".repeat(SHORT)),
            Value::str(&long),
            // Held in the slot though not in the value, and the first that is neither.
            Value::str(&"k".repeat(IN_SLOT)),
            Value::str(&"k".repeat(IN_SLOT + 1)),
            Value::Int(7),
            Value::str("7"),
            Value::str("用户-42"),
        ];
        let mut interner = Interner::default();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(interner.intern(key), (i as u64, true), "{key:?}");
        }
        // Enough new keys to make the table grow (and rehash every slot) several times.
        for i in 0..10_000 {
            interner.intern(&Value::str(&format!("extra-{i}")));
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(interner.intern(key), (i as u64, false), "{key:?}");
            assert_eq!(interner.get(key), Some(i as u64));
            assert_eq!(interner.key(i as u64), key);
        }
        assert_eq!(interner.get(&Value::str(&"k".repeat(SHORT + 2))), None);
        assert_eq!(interner.get(&Value::str(&"k".repeat(IN_SLOT - 1))), None);
        assert_eq!(interner.get(&Value::str(&"k".repeat(IN_SLOT + 2))), None);
        assert_eq!(interner.get(&Value::str("u000000")), None, "a prefix of a held key");
        assert_eq!(interner.get(&Value::Int(8)), None);
        assert_eq!(interner.len(), keys.len() + 10_000);
        assert!(interner.keys_from(keys.len() + 9_999).eq(&[Value::str("extra-9999")]));
    }

    #[test]
    fn key_order_gives_each_id_its_key_across_chunks() {
        // Entity 0's keys are kept, entity 1's are not.
        let order = KeyOrder::new(&[true, false]);
        let n = 3 * crate::chunked::CHUNK + 5;
        for i in 0..n {
            order.push(0, &Value::str(&format!("k{i}")));
            order.push(1, &Value::str(&format!("other{i}")));
        }
        for id in [0, 1, crate::chunked::CHUNK - 1, crate::chunked::CHUNK, 2 * crate::chunked::CHUNK + 7, n - 1] {
            assert_eq!(order.key_of(0, &Value::Ref(id as u64)), Value::str(&format!("k{id}")));
        }
        // An id not pushed yet, an entity whose keys are not kept, and a
        // value that is no reference: the value itself.
        assert_eq!(order.key_of(0, &Value::Ref(n as u64)), Value::Ref(n as u64));
        assert_eq!(order.key_of(1, &Value::Ref(3)), Value::Ref(3));
        assert_eq!(order.key_of(0, &Value::Null), Value::Null);
    }
}
