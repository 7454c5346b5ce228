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
//! Version 2 gives the change log's first position (older changes may be
//! forgotten); a version 1 file, whose log started at the first change ever
//! made, is still read.

use crate::engine::EngineSnapshot;
use segflow_compiler::value::Value;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"SEGFLOW-SNAPSHOT-2\n";
const MAGIC_V1: &[u8] = b"SEGFLOW-SNAPSHOT-1\n";

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

mod change_log;
mod v1;

pub use change_log::ChangeLog;

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
    let (rest, v1) = match (bytes.strip_prefix(MAGIC), bytes.strip_prefix(MAGIC_V1)) {
        (Some(rest), _) => (rest, false),
        (None, Some(rest)) => (rest, true),
        (None, None) if bytes.starts_with(b"SEGFLOW-SNAPSHOT-") => {
            let header = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
            let header = &header[..header.len().min(40)];
            return Err(format!(
                "a snapshot of another format ({}), written by another version of segflow; this one reads formats 1 and 2",
                String::from_utf8_lossy(header)
            ));
        }
        (None, None) => return Err("not a segflow snapshot (bad header)".into()),
    };
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
    let options =
        bincode::DefaultOptions::new().with_fixint_encoding().allow_trailing_bytes().with_limit(len as u64 + 1024);
    let decoded =
        if v1 { options.deserialize::<v1::Snapshot>(body).map(Snapshot::from) } else { options.deserialize(body) };
    decoded.map_err(|e| format!("cannot decode the snapshot: {e}"))
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

    /// A version 1 file (no first position: its log started at the first
    /// change) reads as it did; a version 2 file keeps the first position.
    #[test]
    fn a_version_1_snapshot_is_read_and_version_2_keeps_the_logs_first_position() {
        let listed = vec![("s".to_string(), Value::str("a"), true, 5i64), ("s".to_string(), Value::str("a"), false, 9)];
        let members: Vec<(String, Vec<(Value, i64)>)> = vec![("s".to_string(), vec![(Value::str("b"), 7)])];
        let engine = crate::engine::EngineSnapshot { now: 11, ..Default::default() };
        // Version 1's body: the same fields, the log only its list.
        let body = bincode::serialize(&(3u64, "m", &engine, (12i64, 4u64, &listed, &members))).unwrap();
        let framed = |magic: &[u8], body: &[u8]| {
            let mut bytes = magic.to_vec();
            bytes.extend((body.len() as u64).to_le_bytes());
            bytes.extend(crc32c::crc32c(body).to_le_bytes());
            bytes.extend(body);
            bytes
        };
        let v1 = super::decode(&framed(super::MAGIC_V1, &body)).unwrap();
        assert_eq!((v1.seq, v1.model.as_str(), v1.engine.now), (3, "m", 11));
        assert_eq!((v1.serving.time, v1.serving.batches, &v1.serving.members), (12, 4, &members));
        let log = &v1.serving.changes;
        assert_eq!((log.changes.start(), log.changes.end(), &log.names[..]), (0, 2, &["s".to_string()][..]));
        // A log whose front was forgotten: written and read back as version 2.
        let mut forgetful = v1.clone();
        forgetful.serving.changes.changes.pop_front();
        let body = bincode::serialize(&forgetful).unwrap();
        let v2 = super::decode(&framed(super::MAGIC, &body)).unwrap();
        let log = &v2.serving.changes;
        assert_eq!((log.changes.start(), log.changes.end()), (1, 2));
        assert_eq!(log.changes.get(1).map(|c| (c.enter, c.time)), Some((false, 9)));
        // Version 1's body under version 2's header is refused, not misread.
        assert!(super::decode(&framed(
            super::MAGIC,
            &bincode::serialize(&(3u64, "m", &engine, (12i64, 4u64, &listed, &members))).unwrap()
        ))
        .is_err());
    }

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
        let mut log = ChangeLog { names: names.clone(), changes };
        // The first 1,100 forgotten (more than a chunk).
        for _ in 0..1_100 {
            log.changes.pop_front();
        }
        let tuples: Vec<(String, Value, bool, i64)> =
            log.changes.iter().map(|c| (names[c.output].clone(), c.key.clone(), c.enter, c.time)).collect();
        let written = bincode::serialize(&log).unwrap();
        assert_eq!(written, bincode::serialize(&(1_100u64, &tuples)).unwrap());
        let read: ChangeLog = bincode::deserialize(&written).unwrap();
        assert_eq!((read.changes.start(), read.changes.end()), (1_100, 3_000));
        assert_eq!(read.names, ["vip", "lapsed"], "the segments it names, in order of first change");
        let read_tuples: Vec<(String, Value, bool, i64)> =
            read.changes.iter().map(|c| (read.names[c.output].clone(), c.key.clone(), c.enter, c.time)).collect();
        assert_eq!(read_tuples, tuples);
    }
}
