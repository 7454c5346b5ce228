//! The segment change log as a snapshot holds it: the position of its first
//! change (older ones may be forgotten), then (segment, key, enter, time) in
//! log order.
//!
//! Taken from a serving state, a `ChangeLog` shares the state's log (its
//! full chunks) and names segments as it is written. Read back, `names` are
//! the segments the snapshot named, which `Change::output` indexes; the
//! changes go straight into the log, so ten million of them are not first
//! held as a list of named tuples (read from bytes in memory: the names are
//! borrowed from them).

use crate::chunked::Shared;
use crate::state::Change;
use segflow_compiler::value::Value;
use serde::de::{DeserializeSeed, Error, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Clone, Debug, Default)]
pub struct ChangeLog {
    pub names: Vec<String>,
    pub changes: Shared<Change>,
}

struct Listing<'a>(&'a ChangeLog);

impl Serialize for Listing<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let log = self.0;
        let mut seq = serializer.serialize_seq(Some(log.changes.len()))?;
        for c in log.changes.iter() {
            seq.serialize_element(&(&log.names[c.output], &c.key, c.enter, c.time))?;
        }
        seq.end()
    }
}

impl Serialize for ChangeLog {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.changes.start() as u64, Listing(self)).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ChangeLog {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ChangeLog, D::Error> {
        deserializer.deserialize_tuple(2, StartThenListed)
    }
}

/// The first position, then the listed changes from it.
struct StartThenListed;

impl<'de> Visitor<'de> for StartThenListed {
    type Value = ChangeLog;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a change log's first position and its changes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ChangeLog, A::Error> {
        let start: u64 = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let start = usize::try_from(start).map_err(A::Error::custom)?;
        seq.next_element_seed(Listed { start })?.ok_or_else(|| A::Error::invalid_length(1, &self))
    }
}

/// Listed changes read into a log whose first is at `start`.
pub(super) struct Listed {
    pub start: usize,
}

impl<'de> DeserializeSeed<'de> for Listed {
    type Value = ChangeLog;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ChangeLog, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Listed {
    type Value = ChangeLog;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of (segment, key, enter, time)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ChangeLog, A::Error> {
        let mut log = ChangeLog { names: Vec::new(), changes: Shared::starting_at(self.start) };
        // Names are borrowed from the snapshot's bytes: a segment's is kept
        // once, not allocated for each of its changes.
        while let Some((name, key, enter, time)) = seq.next_element::<(&'de str, Value, bool, i64)>()? {
            // A damaged or forged position must not overflow the log's count.
            if log.changes.end() == usize::MAX {
                return Err(A::Error::custom("the change log's positions overflow"));
            }
            let output = match log.names.iter().position(|n| n == name) {
                Some(o) => o,
                None => {
                    log.names.push(name.to_string());
                    log.names.len() - 1
                }
            };
            log.changes.push_back(Change { output, key, enter, time });
        }
        Ok(log)
    }
}
