//! The ids of accepted events, kept to skip redeliveries.
//!
//! Every accepted event's id stays for the life of the engine, so this is
//! memory per event: a set of shared strings took ~86 bytes an id (a
//! reference-counted allocation each, plus the table). Here the ids' bytes
//! sit one after another in chunks and the tables hold where each starts
//! and its hash (16 bytes a slot, three quarters of them used at most), so
//! ~30–50 bytes an id for the retail example's. The chunks also keep the
//! order the ids came in, which a snapshot lists them in. A batch's ids are
//! looked up a run at a time, their slots prefetched first (see `probed`).
//!
//! Nothing here grows by copying everything at once, which paused the
//! engine thread for up to 0.4 s at a million ids: the ids are split over
//! `SHARDS` tables by hash, which grow one at a time (see `sharded`), and
//! the bytes fill chunks that are never moved. A full chunk is shared, so
//! a snapshot's list of the ids (`IdList`) copies pointers, not bytes.

use crate::probed::Probed;
use crate::sharded::{shard, SHARDS};
use segflow_compiler::value::Value;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Bytes per chunk (a longer id gets a chunk of its own length).
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct IdSet {
    /// Per shard, where each id is (chunk index in the high 32 bits, offset
    /// in it in the low 32, of its length (4 bytes, little-endian), which its
    /// bytes follow), beside its hash: a growth then moves entries without
    /// reading every id again, a cache miss each.
    tables: Vec<Probed<u64>>,
    bytes: IdList,
    // Seeded per process: ids come from clients, who should not be able to
    // pick ids that collide.
    hasher: foldhash::fast::RandomState,
}

impl Default for IdSet {
    fn default() -> Self {
        IdSet {
            tables: (0..SHARDS).map(|_| Probed::default()).collect(),
            bytes: IdList::default(),
            hasher: Default::default(),
        }
    }
}

impl IdSet {
    /// Adds `id`, a string's bytes (UTF-8: `iter` gives them back as
    /// strings); whether it was new.
    pub fn insert(&mut self, id: &[u8]) -> bool {
        self.insert_hashed(self.hash(id), id)
    }

    /// The hash `insert_hashed` takes for `id`.
    pub fn hash(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Asks for the memory that looking up an id of `hash` reads first,
    /// without waiting for it: a caller adding many ids prefetches a run of
    /// them first, so their cache misses overlap.
    pub fn prefetch(&self, hash: u64) {
        self.tables[shard(hash)].prefetch(hash);
    }

    /// `insert`, given `id`'s hash (`hash`).
    pub fn insert_hashed(&mut self, hash: u64, id: &[u8]) -> bool {
        debug_assert!(std::str::from_utf8(id).is_ok(), "an id is a string");
        if self.find(hash, id) {
            return false;
        }
        let at = self.bytes.push(id);
        self.tables[shard(hash)].insert_new(hash, at);
        true
    }

    fn find(&self, hash: u64, id: &[u8]) -> bool {
        self.tables[shard(hash)].find(hash, |&at| self.bytes.id_at(at) == id).is_some()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.find(self.hasher.hash_one(id.as_bytes()), id.as_bytes())
    }

    pub fn len(&self) -> usize {
        self.bytes.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.bytes.iter()
    }

    /// The ids in the order they were added, for a snapshot: shares the
    /// full chunks with the set.
    pub fn list(&self) -> IdList {
        self.bytes.clone()
    }
}

/// Ids in order, each its length (4 bytes, little-endian) then its bytes,
/// in chunks; a clone shares the full ones. In a snapshot, a list of string
/// values, as the ids were before they had a set of their own.
#[derive(Clone, Debug, Default)]
pub struct IdList {
    full: Vec<Arc<[u8]>>,
    tail: Vec<u8>,
    len: usize,
}

impl IdList {
    /// Appends `id`; where it is (see `IdSet::tables`).
    fn push(&mut self, id: &[u8]) -> u64 {
        let need = 4 + id.len();
        if self.tail.len() + need > self.tail.capacity() {
            if !self.tail.is_empty() {
                let full = std::mem::take(&mut self.tail);
                self.full.push(full.into());
            }
            self.tail = Vec::with_capacity(need.max(CHUNK_BYTES));
        }
        let at = (self.full.len() as u64) << 32 | self.tail.len() as u64;
        // An id longer than 4 GB cannot come from a line of a record.
        self.tail.extend_from_slice(&(id.len() as u32).to_le_bytes());
        self.tail.extend_from_slice(id);
        self.len += 1;
        at
    }

    fn chunk(&self, index: usize) -> &[u8] {
        self.full.get(index).map_or(&self.tail[..], |c| &c[..])
    }

    /// The id at `at` (as `push` returned it).
    fn id_at(&self, at: u64) -> &[u8] {
        id_in(self.chunk((at >> 32) as usize), (at & u32::MAX as u64) as usize)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.full.iter().map(|c| &c[..]).chain(std::iter::once(&self.tail[..])).flat_map(|chunk| {
            let mut at = 0;
            std::iter::from_fn(move || {
                let id = (at < chunk.len()).then(|| id_in(chunk, at))?;
                at += 4 + id.len();
                // The bytes came from a `&str`.
                Some(std::str::from_utf8(id).unwrap_or_default())
            })
        })
    }
}

/// The id whose length is at `at` in `chunk`.
fn id_in(chunk: &[u8], at: usize) -> &[u8] {
    let len = u32::from_le_bytes([chunk[at], chunk[at + 1], chunk[at + 2], chunk[at + 3]]) as usize;
    &chunk[at + 4..at + 4 + len]
}

impl serde::Serialize for IdList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for id in self.iter() {
            seq.serialize_element(&Value::str(id))?;
        }
        seq.end()
    }
}

impl<'de> serde::Deserialize<'de> for IdList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<IdList, D::Error> {
        let mut ids = IdList::default();
        for id in Vec::<Value>::deserialize(deserializer)? {
            // A snapshot only ever held the string ids the decoder gives.
            if let Value::Str(id) = id {
                ids.push(id.as_bytes());
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::{IdList, IdSet, CHUNK_BYTES};
    use segflow_compiler::value::Value;

    #[test]
    fn ids_are_added_once_and_listed_in_order() {
        let mut ids = IdSet::default();
        // Over several chunks, one id longer than a chunk among them.
        let mut names: Vec<String> = (0..10_000).map(|i| format!("ev-{}", i * 7919 % 10_007)).collect();
        names.insert(5_000, "x".repeat(CHUNK_BYTES + 1));
        for name in &names {
            assert!(ids.insert(name.as_bytes()), "{name}");
        }
        assert!(ids.insert(b""), "the empty id is an id");
        for name in &names {
            assert!(!ids.insert(name.as_bytes()), "{name} again");
            assert!(ids.contains(name));
        }
        assert!(!ids.contains("ev-10007") && !ids.contains("ev") && ids.contains(""));
        assert_eq!(ids.len(), names.len() + 1);
        let listed: Vec<&str> = ids.iter().collect();
        let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
        expected.push("");
        assert_eq!(listed, expected);
        assert_eq!(IdSet::default().iter().count(), 0);
    }

    #[test]
    fn a_snapshot_holds_the_ids_as_the_string_values_it_always_held() {
        let mut ids = IdSet::default();
        for id in ["o-1", "", "pv-ü"] {
            ids.insert(id.as_bytes());
        }
        let values: Vec<Value> = ids.iter().map(Value::str).collect();
        let list = ids.list();
        ids.insert(b"o-2");
        let written = bincode::serialize(&list).unwrap();
        assert_eq!(written, bincode::serialize(&values).unwrap(), "the list is the set when it was taken");
        let read: IdList = bincode::deserialize(&written).unwrap();
        assert_eq!(read.iter().collect::<Vec<_>>(), ["o-1", "", "pv-ü"]);
        assert_eq!(read.len(), 3);
    }
}
