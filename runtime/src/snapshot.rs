//! Snapshots: what a restart needs, so that recovery time is bounded by the
//! live state rather than by history.
//!
//! A snapshot holds the engine's inputs in record form (instances, current
//! attributes, the events some window or unwindowed aggregate can still read,
//! the event ids seen) plus the serving state's change log and membership
//! times, and the sequence number of the last log entry it covers. Recovery
//! loads the newest snapshot and replays only the log after it.
//!
//! File: `snapshot-<seq>.bin` = magic line, u64 body length, u32 CRC32C of the
//! body, body (bincode), written atomically (`wal::write_atomically`), so a
//! crash leaves either the old or the new snapshot, never half of one.

use crate::chunked::Shared;
use crate::engine::EngineSnapshot;
use crate::state::Change;
use segflow_compiler::value::Value;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"SEGFLOW-SNAPSHOT-1\n";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last log entry this snapshot includes.
    pub seq: u64,
    /// Fingerprint of the definitions it was taken under.
    pub model: String,
    pub engine: EngineSnapshot,
    pub serving: ServingSnapshot,
}

/// The parts of the serving state that are history, not a function of the inputs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServingSnapshot {
    pub time: i64,
    pub batches: u64,
    pub changes: ChangeLog,
    /// Per segment: members and the time each entered.
    pub members: Vec<(String, Vec<(Value, i64)>)>,
}

/// The segment change log: in a snapshot, (segment, key, enter, time) in log
/// order. Taken from a serving state, it shares the state's log (its full
/// chunks) and names segments when written; read back, `names` are the
/// segments the snapshot named, which `Change::output` indexes.
#[derive(Clone, Debug, Default)]
pub struct ChangeLog {
    pub names: Vec<String>,
    pub changes: Shared<Change>,
}

impl Serialize for ChangeLog {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.changes.len()))?;
        for c in self.changes.iter() {
            seq.serialize_element(&(&self.names[c.output], &c.key, c.enter, c.time))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ChangeLog {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ChangeLog, D::Error> {
        let mut log = ChangeLog::default();
        for (name, key, enter, time) in Vec::<(String, Value, bool, i64)>::deserialize(deserializer)? {
            let output = match log.names.iter().position(|n| *n == name) {
                Some(o) => o,
                None => {
                    log.names.push(name);
                    log.names.len() - 1
                }
            };
            log.changes.push_back(Change { output, key, enter, time });
        }
        Ok(log)
    }
}

pub fn file_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.bin")
}

/// Snapshot files in `dir`, oldest first.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    crate::wal::numbered_files(dir, "snapshot-", ".bin")
}

/// Writes `snapshot` atomically into `dir`, each segment's members in key
/// order; returns its path.
pub fn write(dir: &Path, snapshot: &mut Snapshot) -> std::io::Result<PathBuf> {
    for (_, members) in &mut snapshot.serving.members {
        members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    let body = bincode::serialize(snapshot).map_err(std::io::Error::other)?;
    let path = dir.join(file_name(snapshot.seq));
    let len = (body.len() as u64).to_le_bytes();
    let crc = crc32c::crc32c(&body).to_le_bytes();
    crate::wal::write_atomically(&path, &[MAGIC, &len, &crc, &body])?;
    Ok(path)
}

/// Reads one snapshot file, checking its framing and checksum. Never panics.
pub fn read(path: &Path) -> Result<Snapshot, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    let rest = bytes.strip_prefix(MAGIC).ok_or("not a segflow snapshot (bad header)")?;
    if rest.len() < 12 {
        return Err("the snapshot is cut short".into());
    }
    let len = u64::from_le_bytes(rest[0..8].try_into().map_err(|_| "short")?) as usize;
    let crc = u32::from_le_bytes(rest[8..12].try_into().map_err(|_| "short")?);
    let body = &rest[12..];
    if body.len() != len {
        return Err(format!("the snapshot body is {} bytes, its header says {len}", body.len()));
    }
    if crc32c::crc32c(body) != crc {
        return Err("checksum mismatch".into());
    }
    // Bounded so a forged length inside the body cannot make bincode allocate wildly.
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(len as u64 + 1024)
        .deserialize(body)
        .map_err(|e| format!("cannot decode the snapshot: {e}"))
}

/// The newest snapshot, if any. A damaged newest snapshot is an error naming
/// the file: an older one cannot stand in, because the log it needs is gone.
pub fn latest(dir: &Path) -> Result<Option<Snapshot>, String> {
    let files = list(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    match files.last() {
        None => Ok(None),
        Some((_, path)) => read(path).map(Some),
    }
}

/// Deletes snapshots older than `keep_seq` (and leftover temporary files).
pub fn remove_older(dir: &Path, keep_seq: u64) -> std::io::Result<()> {
    for (seq, path) in list(dir)? {
        if seq < keep_seq {
            std::fs::remove_file(path)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ChangeLog;
    use crate::state::Change;
    use segflow_compiler::value::Value;

    /// A serving state's history lists members in no order; a snapshot file
    /// has them in key order, whatever order they came in (so the same
    /// state writes the same bytes).
    #[test]
    fn a_snapshot_is_written_with_members_in_key_order() {
        let dir = std::env::temp_dir().join(format!("segflow-snapshot-order-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let members = |keys: &[&str]| keys.iter().map(|k| (Value::str(k), k.as_bytes()[0] as i64)).collect();
        let mut written = Vec::new();
        for order in [["b", "c", "a"], ["c", "a", "b"]] {
            let mut snapshot = super::Snapshot::default();
            snapshot.serving.members = vec![("s".to_string(), members(&order))];
            let path = super::write(&dir, &mut snapshot).unwrap();
            let read = super::read(&path).unwrap();
            let keys: Vec<Value> = read.serving.members[0].1.iter().map(|(k, _)| k.clone()).collect();
            assert_eq!(keys, ["a", "b", "c"].map(Value::str));
            written.push(std::fs::read(&path).unwrap());
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(written[0], written[1]);
    }

    #[test]
    fn a_change_log_is_written_as_named_changes_and_read_back() {
        let names: Vec<String> = ["spend", "vip", "lapsed"].map(String::from).into();
        let changes = (0..3_000)
            .map(|i| Change {
                output: [1, 2][i % 2],
                key: Value::str(&format!("u{i}")),
                enter: i % 3 > 0,
                time: i as i64,
            })
            .collect();
        let log = ChangeLog { names: names.clone(), changes };
        let tuples: Vec<(String, Value, bool, i64)> =
            log.changes.iter().map(|c| (names[c.output].clone(), c.key.clone(), c.enter, c.time)).collect();
        let written = bincode::serialize(&log).unwrap();
        assert_eq!(written, bincode::serialize(&tuples).unwrap());
        let read: ChangeLog = bincode::deserialize(&written).unwrap();
        assert_eq!(read.names, ["vip", "lapsed"], "the segments it names, in order of first change");
        let read_tuples: Vec<(String, Value, bool, i64)> =
            read.changes.iter().map(|c| (read.names[c.output].clone(), c.key.clone(), c.enter, c.time)).collect();
        assert_eq!(read_tuples, tuples);
    }
}
