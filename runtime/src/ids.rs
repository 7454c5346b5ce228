//! The ids of accepted events, kept to skip redeliveries.
//!
//! Every accepted event's id stays for the life of the engine, so this is
//! memory per event: a set of shared strings took ~86 bytes an id (a
//! reference-counted allocation each, plus the table). Here the ids' bytes
//! sit one after another in chunks, each after its length, and the tables
//! hold where each starts beside the low bits of its hash, 8 bytes a slot
//! (three quarters of them used at most): ~26 bytes an id for the retail
//! example's, where a slot of the whole hash beside the place took 16 bytes
//! and ids took ~44 bytes each. The chunks also keep the order the ids came in,
//! which a snapshot lists them in. A batch's ids are looked up a run at a
//! time, their slots prefetched first (see `probed`).
//!
//! Nothing here grows by copying everything at once, which paused the
//! engine thread for up to 0.4 s at a million ids: the ids are split over
//! `SHARDS` tables by hash, which grow one at a time (see `sharded`), and
//! the bytes fill chunks that are never moved. A full chunk is shared, so
//! a snapshot's list of the ids (`IdList`) copies pointers, not bytes.

use crate::probed::{self, Probed, Vacant};
use crate::sharded::{shard, SHARDS};
use segflow_compiler::value::Value;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Bytes per chunk (a longer id gets a chunk of its own length, where it
/// starts at 0): an id's offset in its chunk takes `OFFSET_BITS`.
const CHUNK_BYTES: usize = 1 << OFFSET_BITS;
const OFFSET_BITS: u32 = 16;
/// Where an id is: its chunk's index, then its offset in the chunk.
const PLACE_BITS: u32 = 36;
/// Chunks a set holds at most: 64 GB of ids, ~6 billion of the retail
/// example's (its slots then take ~90 GB more), before a table of a shard
/// could reach the 2^28 slots its kept hash bits place (~9 billion ids).
/// The highest chunk index is never used, so no slot is all ones.
const MOST_CHUNKS: usize = (1 << (PLACE_BITS - OFFSET_BITS)) - 1;

/// Where an id is (`IdList::push`, see `place`) under the lowest bits of
/// its hash (the rest of the word): finding an id compares those bits
/// before reading it.
#[derive(Clone, Copy, Debug)]
struct IdSlot(u64);

impl IdSlot {
    /// (The shift keeps the hash's lowest bits.)
    fn new(hash: u64, place: u64) -> IdSlot {
        IdSlot(hash << PLACE_BITS | place)
    }

    fn place(self) -> u64 {
        self.0 & ((1 << PLACE_BITS) - 1)
    }
}

impl Vacant for IdSlot {
    fn vacant() -> IdSlot {
        IdSlot(u64::vacant())
    }
    fn is_vacant(&self) -> bool {
        self.0.is_vacant()
    }
}

impl probed::Slot for IdSlot {
    const HASH_BITS: u32 = u64::BITS - PLACE_BITS;
    fn hash(&self) -> u64 {
        self.0 >> PLACE_BITS
    }
}

/// An id's place: its chunk's index, then its offset in the chunk in the
/// lowest `OFFSET_BITS`.
fn place(chunk: usize, offset: usize) -> u64 {
    (chunk as u64) << OFFSET_BITS | offset as u64
}

/// The chunk and the offset of a place.
fn chunk_and_offset(place: u64) -> (usize, usize) {
    ((place >> OFFSET_BITS) as usize, (place & (CHUNK_BYTES as u64 - 1)) as usize)
}

#[derive(Clone, Debug)]
pub struct IdSet {
    /// Per shard, where each id is, beside the low bits of its hash: a
    /// growth then moves entries without reading every id again, a cache
    /// miss each.
    tables: Vec<Probed<IdSlot>>,
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
        self.tables[shard(hash)].insert_new(hash, IdSlot::new(hash, at));
        true
    }

    fn find(&self, hash: u64, id: &[u8]) -> bool {
        self.tables[shard(hash)].find(hash, |slot| self.bytes.id_at(slot.place()) == id).is_some()
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

/// Ids in order, each its length then its bytes, in chunks; a clone shares
/// the full ones. A length below 255 is one byte; a longer one is 255 and
/// then the length in 4 bytes, little-endian. In a snapshot, a list of string
/// values, as the ids were before they had a set of their own.
#[derive(Clone, Debug, Default)]
pub struct IdList {
    full: Vec<Arc<[u8]>>,
    tail: Vec<u8>,
    len: usize,
}

impl IdList {
    /// Appends `id`; where it is (see `place`).
    fn push(&mut self, id: &[u8]) -> u64 {
        let need = if id.len() < LONG as usize { 1 } else { 5 } + id.len();
        // By `CHUNK_BYTES`, not the chunk's capacity, which may be more: an
        // offset must fit its bits. An id starts a chunk, whatever its length.
        if !self.tail.is_empty() && self.tail.len() + need > CHUNK_BYTES {
            let full = std::mem::take(&mut self.tail);
            self.full.push(full.into());
            assert!(
                self.full.len() < MOST_CHUNKS,
                "more ids than an engine can hold ({} GB)",
                (CHUNK_BYTES * MOST_CHUNKS) >> 30
            );
        }
        if self.tail.capacity() == 0 {
            self.tail.reserve_exact(need.max(CHUNK_BYTES));
        }
        debug_assert!(self.tail.len() < CHUNK_BYTES, "an offset fits its bits");
        let at = place(self.full.len(), self.tail.len());
        write_id(&mut self.tail, id);
        self.len += 1;
        at
    }

    fn chunk(&self, index: usize) -> &[u8] {
        self.full.get(index).map_or(&self.tail[..], |c| &c[..])
    }

    /// The id at `place` (as `push` returned it).
    fn id_at(&self, place: u64) -> &[u8] {
        let (chunk, offset) = chunk_and_offset(place);
        id_in(self.chunk(chunk), offset).0
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
                let (id, end) = (at < chunk.len()).then(|| id_in(chunk, at))?;
                at = end;
                // The bytes came from a `&str`.
                Some(std::str::from_utf8(id).unwrap_or_default())
            })
        })
    }
}

/// The length byte of an id of 255 bytes or more, which 4 more follow.
const LONG: u8 = u8::MAX;

/// Appends `id` to `chunk`, after its length (read back by `id_in`).
fn write_id(chunk: &mut Vec<u8>, id: &[u8]) {
    if id.len() < LONG as usize {
        chunk.push(id.len() as u8);
    } else {
        // An id longer than 4 GB cannot come from a line of a record.
        chunk.push(LONG);
        chunk.extend_from_slice(&(id.len() as u32).to_le_bytes());
    }
    chunk.extend_from_slice(id);
}

/// The id whose length is at `at` in `chunk`, and where it ends.
fn id_in(chunk: &[u8], at: usize) -> (&[u8], usize) {
    let (start, len) = match chunk[at] {
        LONG => (at + 5, u32::from_le_bytes([chunk[at + 1], chunk[at + 2], chunk[at + 3], chunk[at + 4]]) as usize),
        short => (at + 1, short as usize),
    };
    (&chunk[start..start + len], start + len)
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
    use super::{chunk_and_offset, place, IdList, IdSet, IdSlot, Vacant, CHUNK_BYTES, MOST_CHUNKS, PLACE_BITS};
    use segflow_compiler::value::Value;

    #[test]
    fn ids_whose_kept_hash_bits_agree_are_told_apart_by_their_bytes() {
        let mut ids = IdSet::default();
        // The same lowest bits and the same shard (bits 32 to 43); the first
        // two differ above both, the third has the same hash as the first.
        let h = 0x0123_4567_89ab_cdef;
        assert!(ids.insert_hashed(h, b"first"));
        assert!(ids.insert_hashed(h ^ 1 << 50, b"second"));
        assert!(ids.insert_hashed(h, b"third"));
        assert!(!ids.insert_hashed(h, b"first"));
        assert!(!ids.insert_hashed(h ^ 1 << 50, b"second"));
        assert!(!ids.insert_hashed(h, b"third"));
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn an_id_fills_a_chunk_to_its_last_byte_and_the_next_starts_another() {
        let mut list = IdList::default();
        // 256 ids of 254 bytes after a length byte each: 65,280 bytes.
        let filler = vec![b'f'; 254];
        for _ in 0..256 {
            list.push(&filler);
        }
        let before_last = vec![b'l'; 254];
        let at = list.push(&before_last);
        assert_eq!(chunk_and_offset(at), (0, 65_280));
        // An empty id is its length byte alone: the chunk's last.
        let last = list.push(b"");
        assert_eq!(chunk_and_offset(last), (0, CHUNK_BYTES - 1));
        let next = list.push(b"x");
        assert_eq!(chunk_and_offset(next), (1, 0), "the chunk of 65,536 bytes is full");
        assert_eq!((list.id_at(at), list.id_at(last), list.id_at(next)), (&before_last[..], &b""[..], &b"x"[..]));
        assert_eq!(list.iter().count(), 259);
        assert_eq!(list.iter().nth(257), Some(""));
    }

    #[test]
    fn no_slot_is_vacant() {
        let highest = place(MOST_CHUNKS - 1, CHUNK_BYTES - 1);
        assert!(highest < 1 << PLACE_BITS);
        assert!(!IdSlot::new(u64::MAX, highest).is_vacant());
        assert_eq!(IdSlot::new(u64::MAX, highest).place(), highest);
    }

    #[test]
    fn ids_are_added_once_and_listed_in_order() {
        let mut ids = IdSet::default();
        // Over several chunks, one id longer than a chunk among them, and
        // ids about as long as a length kept in one byte.
        let mut names: Vec<String> = (0..10_000).map(|i| format!("ev-{}", i * 7919 % 10_007)).collect();
        names.insert(5_000, "x".repeat(CHUNK_BYTES + 1));
        for (at, len) in [(10, 254), (11, 255), (12, 256), (7_000, 1_000), (7_001, 253)] {
            names.insert(at, format!("{len}-").repeat(len)[..len].to_string());
        }
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
