//! The write-ahead log: every accepted batch, durable before it is acknowledged.
//!
//! A log is a directory of segment files `wal-<first seq>.log`. Each entry is
//!
//! ```text
//!  u32 length of payload (LE) | u32 CRC32C of payload (LE) | payload
//!  payload = u8 kind | u64 seq | i64 now (ms) | body
//!    kind 1, a batch: u32 record count, then per record u32 length + the record's JSON
//!    kind 2, a clock tick: no body
//! ```
//!
//! Records are kept as the JSON text they arrived as, so replaying a log
//! through the decoder reproduces the batch exactly, even under a changed model.
//! Entries carry the batch's `now`, so a replay applies every batch (and every
//! wall-clock tick) at the time it had, giving the same changes at the same times.
//!
//! Recovery reads segments in order. A last entry that is cut short or fails its
//! checksum *at the end of the last segment* is a torn write from a crash: it was
//! never acknowledged, and is cut off. Any other damage stops recovery with an
//! error naming the file and offset: data is never skipped silently.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const HEADER: usize = 8;
const KIND_BATCH: u8 = 1;
const KIND_TICK: u8 = 2;
/// No entry is larger than this; a longer length field is corruption.
pub const MAX_ENTRY: usize = 1 << 30;
/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Batch { seq: u64, now: i64, records: Vec<String> },
    Tick { seq: u64, now: i64 },
}

impl Entry {
    pub fn seq(&self) -> u64 {
        match self {
            Entry::Batch { seq, .. } | Entry::Tick { seq, .. } => *seq,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Sized once and written in place (a batch's entry is its records'
        // text, ~150 KB for 1,000 orders): the header's length and checksum
        // are filled in after the payload.
        let records_len = match self {
            Entry::Batch { records, .. } => records.iter().map(|r| 4 + r.len()).sum::<usize>() + 4,
            Entry::Tick { .. } => 0,
        };
        let mut out = Vec::with_capacity(HEADER + 17 + records_len);
        out.resize(HEADER, 0);
        match self {
            Entry::Batch { seq, now, records } => {
                out.push(KIND_BATCH);
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&now.to_le_bytes());
                out.extend_from_slice(&(records.len() as u32).to_le_bytes());
                for r in records {
                    out.extend_from_slice(&(r.len() as u32).to_le_bytes());
                    out.extend_from_slice(r.as_bytes());
                }
            }
            Entry::Tick { seq, now } => {
                out.push(KIND_TICK);
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&now.to_le_bytes());
            }
        }
        let (length, crc) = ((out.len() - HEADER) as u32, crc32c::crc32c(&out[HEADER..]));
        out[..4].copy_from_slice(&length.to_le_bytes());
        out[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a payload whose checksum matched. Never panics.
    pub fn decode(payload: &[u8]) -> Result<Entry, String> {
        let mut r = Reader(payload);
        let kind = r.u8()?;
        let seq = r.u64()?;
        let now = r.u64()? as i64;
        let entry = match kind {
            KIND_BATCH => {
                let n = r.u32()? as usize;
                let mut records = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    let len = r.u32()? as usize;
                    let bytes = r.take(len)?;
                    records.push(String::from_utf8(bytes.to_vec()).map_err(|_| "a record is not UTF-8".to_string())?);
                }
                Entry::Batch { seq, now, records }
            }
            KIND_TICK => Entry::Tick { seq, now },
            k => return Err(format!("unknown entry kind {k}")),
        };
        if !r.0.is_empty() {
            return Err(format!("{} stray bytes after the entry", r.0.len()));
        }
        Ok(entry)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("entry ends early".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short")?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "short")?))
    }
}

/// The segment files of a log directory, in order.
pub fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    numbered_files(dir, "wal-", ".log")
}

/// Files named `<prefix><number><suffix>` in `dir`, by number.
pub(crate) fn numbered_files(dir: &Path, prefix: &str, suffix: &str) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(n) = name.strip_prefix(prefix).and_then(|n| n.strip_suffix(suffix)).and_then(|n| n.parse().ok()) {
            out.push((n, path));
        }
    }
    out.sort();
    Ok(out)
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    pub entries: Vec<Entry>,
    /// Bytes cut off a torn last entry, if any.
    pub torn_bytes: u64,
}

/// Reads every entry with `seq > after`; cuts a torn tail off the last segment.
pub fn recover(dir: &Path, after: u64) -> Result<Recovered, String> {
    let files = segments(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut recovered = Recovered::default();
    let last = files.len().saturating_sub(1);
    let mut expected_seq: Option<u64> = None;
    for (i, (_, path)) in files.iter().enumerate() {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut offset = 0usize;
        while offset < bytes.len() {
            let damaged = |why: &str| format!("{}: damaged entry at byte offset {offset}: {why}", path.display());
            let rest = &bytes[offset..];
            let torn_here = |payload_end: usize| i == last && payload_end >= bytes.len();
            if rest.len() < HEADER {
                if i == last {
                    recovered.torn_bytes = rest.len() as u64;
                    truncate(path, offset)?;
                    break;
                }
                return Err(damaged("the header is cut short"));
            }
            let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
            let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
            let end = offset + HEADER + len;
            if len > MAX_ENTRY || end > bytes.len() {
                if i == last && (end > bytes.len() || len > MAX_ENTRY) && no_valid_entry_after(&bytes, offset) {
                    recovered.torn_bytes = (bytes.len() - offset) as u64;
                    truncate(path, offset)?;
                    break;
                }
                return Err(damaged("its length runs past the end of the file"));
            }
            let payload = &bytes[offset + HEADER..end];
            if crc32c::crc32c(payload) != crc {
                if torn_here(end) {
                    recovered.torn_bytes = (bytes.len() - offset) as u64;
                    truncate(path, offset)?;
                    break;
                }
                return Err(damaged("checksum mismatch"));
            }
            let entry = Entry::decode(payload).map_err(|e| damaged(&e))?;
            if let Some(prev) = expected_seq {
                if entry.seq() <= prev {
                    return Err(damaged(&format!("sequence {} after {prev}", entry.seq())));
                }
            }
            expected_seq = Some(entry.seq());
            if entry.seq() > after {
                recovered.entries.push(entry);
            }
            offset = end;
        }
    }
    Ok(recovered)
}

/// True when nothing after `offset` parses as an entry (so the damage is a tail).
fn no_valid_entry_after(bytes: &[u8], offset: usize) -> bool {
    // Bounded: a torn write is at most one entry, and only candidates whose kind
    // byte is valid are checksummed.
    let mut at = offset + 1;
    let limit = bytes.len().min(offset.saturating_add(64 << 20));
    while at + HEADER < limit {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap_or_default());
        let plausible = len >= 17 && matches!(bytes[at + HEADER], KIND_BATCH | KIND_TICK);
        if plausible
            && at + HEADER + len <= bytes.len()
            && crc32c::crc32c(&bytes[at + HEADER..at + HEADER + len]) == crc
        {
            return false;
        }
        at += 1;
    }
    true
}

fn truncate(path: &Path, len: usize) -> Result<(), String> {
    let f = OpenOptions::new().write(true).open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    f.set_len(len as u64).and_then(|_| f.sync_all()).map_err(|e| format!("cannot truncate {}: {e}", path.display()))?;
    tracing::warn!(file = %path.display(), offset = len, "cut a torn last entry off the log");
    Ok(())
}

/// Appends entries; `sync` makes everything appended so far durable.
pub struct WalWriter {
    dir: PathBuf,
    file: File,
    written: u64,
    synced: u64,
    next_seq: u64,
    /// Set once an fsync failed: the kernel may have dropped the pages it
    /// could not write, and a later fsync could report success without
    /// them. Nothing more is written or reported durable.
    sync_failed: bool,
}

impl WalWriter {
    /// Opens the log for appending after `last_seq` (from recovery).
    pub fn open(dir: &Path, last_seq: u64) -> io::Result<WalWriter> {
        std::fs::create_dir_all(dir)?;
        let (file, written) = match segments(dir)?.last() {
            Some((_, path)) => {
                let file = OpenOptions::new().append(true).open(path)?;
                let len = file.metadata()?.len();
                (file, len)
            }
            None => (Self::create_segment(dir, last_seq + 1)?, 0),
        };
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            file,
            written,
            synced: written,
            next_seq: last_seq + 1,
            sync_failed: false,
        })
    }

    fn create_segment(dir: &Path, seq: u64) -> io::Result<File> {
        let path = dir.join(format!("wal-{seq:020}.log"));
        let file = OpenOptions::new().create_new(true).append(true).open(&path)?;
        sync_dir(dir)?;
        Ok(file)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends a batch (not yet durable: call `sync`). Returns its sequence number.
    pub fn append_batch(&mut self, now: i64, records: Vec<String>) -> io::Result<u64> {
        let seq = self.next_seq;
        self.append(&Entry::Batch { seq, now, records })?;
        Ok(seq)
    }

    pub fn append_tick(&mut self, now: i64) -> io::Result<u64> {
        let seq = self.next_seq;
        self.append(&Entry::Tick { seq, now })?;
        Ok(seq)
    }

    fn append(&mut self, entry: &Entry) -> io::Result<()> {
        self.check_synced()?;
        if self.written >= SEGMENT_BYTES {
            self.sync()?;
            self.file = Self::create_segment(&self.dir, self.next_seq)?;
            self.written = 0;
            self.synced = 0;
        }
        let bytes = entry.encode();
        if bytes.len() > MAX_ENTRY {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "batch too large for one log entry"));
        }
        if let Err(e) = self.file.write_all(&bytes) {
            // A part may have been written: cut it off, so the log ends
            // with its last whole entry (a restart would cut it too).
            let _ = self.file.set_len(self.written);
            return Err(e);
        }
        self.written += bytes.len() as u64;
        self.next_seq += 1;
        Ok(())
    }

    /// Makes every appended entry durable (one fsync for all of them).
    pub fn sync(&mut self) -> io::Result<()> {
        self.check_synced()?;
        if self.synced < self.written {
            if let Err(e) = self.file.sync_data() {
                self.sync_failed = true;
                return Err(e);
            }
            self.synced = self.written;
        }
        Ok(())
    }

    fn check_synced(&self) -> io::Result<()> {
        match self.sync_failed {
            true => Err(io::Error::other("an earlier fsync of the log failed")),
            false => Ok(()),
        }
    }

    /// Starts a new segment, so the current one can be deleted once covered.
    pub fn rotate(&mut self) -> io::Result<()> {
        if self.written == 0 {
            return Ok(());
        }
        self.sync()?;
        self.file = Self::create_segment(&self.dir, self.next_seq)?;
        self.written = 0;
        self.synced = 0;
        Ok(())
    }

    /// The directory of the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of the current segment known durable (for fault-injection tests).
    pub fn synced_len(&self) -> u64 {
        self.synced
    }
}

/// Deletes the whole segments in `dir` whose entries all have `seq <= covered`
/// (a snapshot has them). The segment being written is never one of them: it
/// is the last, and a segment goes only when a later one exists. So this can
/// run beside a writer that keeps appending.
pub fn remove_covered(dir: &Path, covered: u64) -> io::Result<usize> {
    let files = segments(dir)?;
    let mut removed = 0;
    // A segment is covered when the next segment starts at or before covered + 1.
    for pair in files.windows(2) {
        if pair[1].0 <= covered + 1 {
            std::fs::remove_file(&pair[0].1)?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Writes `parts` as the whole content of `path`, atomically: a temporary file,
/// fsync, rename over `path`, directory fsync. A crash leaves the old content or
/// the new, never a mix.
pub fn write_atomically(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    for part in parts {
        f.write_all(part)?;
    }
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("segflow-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn entries_round_trip() {
        let dir = temp("roundtrip");
        let mut w = WalWriter::open(&dir, 0).unwrap();
        w.append_batch(5, vec!["{\"a\":1}".into(), "{}".into()]).unwrap();
        w.append_tick(9).unwrap();
        w.sync().unwrap();
        let r = recover(&dir, 0).unwrap();
        assert_eq!(
            r.entries,
            vec![
                Entry::Batch { seq: 1, now: 5, records: vec!["{\"a\":1}".into(), "{}".into()] },
                Entry::Tick { seq: 2, now: 9 }
            ]
        );
        assert_eq!(recover(&dir, 1).unwrap().entries.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
