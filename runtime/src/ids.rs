//! The ids of accepted events, kept to skip redeliveries.
//!
//! Every accepted event's id stays for the life of the engine, so this is
//! memory per event: a set of shared strings took ~86 bytes an id (a
//! reference-counted allocation each, plus the table). Here the ids' bytes
//! sit one after another in one buffer and the table holds their offsets,
//! ~25 bytes an id for the retail example's. The buffer also keeps the order
//! they came in, which a snapshot lists them in.

use hashbrown::hash_table::{Entry, HashTable};
use segflow_compiler::value::Value;
use std::hash::BuildHasher;

#[derive(Clone, Debug, Default)]
pub struct IdSet {
    /// Offsets into `bytes` of each id's length (4 bytes, little-endian),
    /// which its bytes follow.
    table: HashTable<usize>,
    bytes: Vec<u8>,
    // Seeded per process: ids come from clients, who should not be able to
    // pick ids that collide.
    hasher: foldhash::fast::RandomState,
}

impl IdSet {
    /// Adds `id`, a string's bytes (UTF-8: `iter` gives them back as
    /// strings); whether it was new.
    pub fn insert(&mut self, id: &[u8]) -> bool {
        debug_assert!(std::str::from_utf8(id).is_ok(), "an id is a string");
        let hash = self.hasher.hash_one(id);
        let (bytes, hasher) = (&self.bytes, &self.hasher);
        match self.table.entry(hash, |&at| id_at(bytes, at) == id, |&at| hasher.hash_one(id_at(bytes, at))) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                let at = self.bytes.len();
                // An id longer than 4 GB cannot come from a line of a record.
                self.bytes.extend_from_slice(&(id.len() as u32).to_le_bytes());
                self.bytes.extend_from_slice(id);
                slot.insert(at);
                true
            }
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        let hash = self.hasher.hash_one(id.as_bytes());
        self.table.find(hash, |&at| id_at(&self.bytes, at) == id.as_bytes()).is_some()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The ids in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let id = (at < self.bytes.len()).then(|| id_at(&self.bytes, at))?;
            at += 4 + id.len();
            // The bytes came from a `&str`.
            Some(std::str::from_utf8(id).unwrap_or_default())
        })
    }
}

/// In a snapshot, a list of string values, as the ids were before they had a
/// set of their own: the engine copies its sets (two buffers each) and the
/// snapshot's writer spells them out.
impl serde::Serialize for IdSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for id in self.iter() {
            seq.serialize_element(&Value::str(id))?;
        }
        seq.end()
    }
}

impl<'de> serde::Deserialize<'de> for IdSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<IdSet, D::Error> {
        let mut ids = IdSet::default();
        for id in Vec::<Value>::deserialize(deserializer)? {
            // A snapshot only ever held the string ids the decoder gives.
            if let Value::Str(id) = id {
                ids.insert(id.as_bytes());
            }
        }
        Ok(ids)
    }
}

/// The id whose length is at `at` in `bytes` (an offset `insert` wrote).
fn id_at(bytes: &[u8], at: usize) -> &[u8] {
    let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
    &bytes[at + 4..at + 4 + len]
}

#[cfg(test)]
mod tests {
    use super::IdSet;
    use segflow_compiler::value::Value;

    #[test]
    fn ids_are_added_once_and_listed_in_order() {
        let mut ids = IdSet::default();
        let names: Vec<String> = (0..10_000).map(|i| format!("ev-{}", i * 7919 % 10_007)).collect();
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
        let written = bincode::serialize(&ids).unwrap();
        assert_eq!(written, bincode::serialize(&values).unwrap());
        let read: IdSet = bincode::deserialize(&written).unwrap();
        assert_eq!(read.iter().collect::<Vec<_>>(), ["o-1", "", "pv-ü"]);
        assert!(read.contains("pv-ü") && !read.contains("o-2"));
    }
}
