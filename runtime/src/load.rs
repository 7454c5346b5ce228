//! Reading NDJSON files of records, validating all of them before any applies.

use crate::decode::{DecodeError, Decoder, Record, Warning};
use std::io::Read;

/// An error or warning with the file it came from.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub file: String,
    pub item: T,
}

impl<T: std::fmt::Display> std::fmt::Display for Located<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.item)
    }
}

/// Everything decoded from a set of files.
#[derive(Default)]
pub struct Loaded {
    pub records: Vec<Record>,
    /// The accepted records' text, in order, when asked for (to log them).
    pub lines: Vec<String>,
    pub errors: Vec<Located<DecodeError>>,
    pub warnings: Vec<Located<Warning>>,
}

impl Loaded {
    /// Adds what a later part of the input decoded (taken whole, not copied,
    /// when nothing came before it).
    fn append(&mut self, later: Loaded) {
        if self.records.is_empty() && self.lines.is_empty() && self.errors.is_empty() && self.warnings.is_empty() {
            *self = later;
            return;
        }
        self.records.extend(later.records);
        self.lines.extend(later.lines);
        self.errors.extend(later.errors);
        self.warnings.extend(later.warnings);
    }

    /// Decodes line `number` of `source` (a blank line is skipped); an invalid
    /// record is kept as an error naming the source, the line and the field.
    pub fn decode(&mut self, decoder: &Decoder, source: &str, number: usize, line: &str, keep_text: bool) {
        if line.trim().is_empty() {
            return;
        }
        let mut warnings = Vec::new();
        match decoder.decode_line(line, number, &mut warnings) {
            Ok(r) => {
                self.records.push(r);
                if keep_text {
                    self.lines.push(line.to_string());
                }
            }
            Err(e) => self.errors.push(Located { file: source.to_string(), item: e }),
        }
        self.warnings.extend(warnings.into_iter().map(|w| Located { file: source.to_string(), item: w }));
    }
}

/// Decodes every line of every file. Errors do not stop the reading: every
/// invalid record is reported. `keep_text` also keeps each accepted line.
/// A large file is decoded by several threads, each taking a run of whole
/// lines; the results are joined in file order, so nothing else can tell.
pub fn load_files(decoder: &Decoder, paths: &[String], keep_text: bool) -> std::io::Result<Loaded> {
    let mut loaded = Loaded::default();
    for path in paths {
        let bytes = read(path)?;
        loaded.append(decode_run(decoder, path, 1, &bytes, keep_text)?);
    }
    Ok(loaded)
}

/// Decodes the files in order, in runs of `lines` lines, and hands each
/// run's records to `apply` before decoding the next: only one run is held
/// decoded at a time (a 10M-event history decodes to about 6 GB), and one
/// file's text (a third of that). Stops at the first error, of reading or of
/// `apply`.
pub fn for_each_run(
    decoder: &Decoder,
    paths: &[String],
    keep_text: bool,
    lines: usize,
    mut apply: impl FnMut(Loaded) -> Result<(), String>,
) -> Result<(), String> {
    for path in paths {
        let text = read(path).map_err(|e| e.to_string())?;
        runs_of(decoder, path, &text, keep_text, lines, &mut apply)?;
    }
    Ok(())
}

/// Reads whole files: (path, text).
pub fn read_files(paths: &[String]) -> Result<Vec<(String, Vec<u8>)>, String> {
    paths.iter().map(|p| Ok((p.clone(), read(p).map_err(|e| e.to_string())?))).collect()
}

/// The latest event time in the texts, as `Decoder::event_time_hint` reads
/// it (one thread per core): the `now` a streamed run of them guesses before
/// decoding anything.
pub fn latest_event_time(decoder: &Decoder, texts: &[(String, Vec<u8>)]) -> Option<i64> {
    let mut latest = None;
    for (_, text) in texts {
        let found = in_parallel(text, |_, piece| {
            piece
                .split(|&b| b == b'\n')
                .filter_map(|line| decoder.event_time_hint(std::str::from_utf8(line).ok()?))
                .max()
        });
        latest = found.into_iter().flatten().chain(latest).max();
    }
    latest
}

/// `for_each_run` over texts already read.
pub fn for_each_run_in(
    decoder: &Decoder,
    texts: &[(String, Vec<u8>)],
    keep_text: bool,
    lines: usize,
    mut apply: impl FnMut(Loaded) -> Result<(), String>,
) -> Result<(), String> {
    for (path, text) in texts {
        runs_of(decoder, path, text, keep_text, lines, &mut apply)?;
    }
    Ok(())
}

/// Decodes `text` (of `path`) in runs of `lines` lines, handing each to `apply`.
fn runs_of(
    decoder: &Decoder,
    path: &str,
    text: &[u8],
    keep_text: bool,
    lines: usize,
    apply: &mut impl FnMut(Loaded) -> Result<(), String>,
) -> Result<(), String> {
    let lines = lines.max(1);
    let (mut start, mut first_line) = (0, 1);
    while start < text.len() {
        let end = memchr::memchr_iter(b'\n', &text[start..]).nth(lines - 1).map_or(text.len(), |i| start + i + 1);
        apply(decode_run(decoder, path, first_line, &text[start..end], keep_text).map_err(|e| e.to_string())?)?;
        first_line += lines;
        start = end;
    }
    Ok(())
}

fn read(path: &str) -> std::io::Result<Vec<u8>> {
    let mut file =
        std::fs::File::open(path).map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {path}: {e}")))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))?;
    Ok(bytes)
}

/// Decodes whole lines (the first is line `first_line` of `path`), large runs
/// on one thread per core; the results are joined in order.
fn decode_run(
    decoder: &Decoder,
    path: &str,
    first_line: usize,
    bytes: &[u8],
    keep_text: bool,
) -> std::io::Result<Loaded> {
    let parts = in_parallel(bytes, |line, piece| decode_piece(decoder, path, first_line + line - 1, piece, keep_text));
    let mut loaded = Loaded::default();
    for part in parts {
        loaded.append(part?);
    }
    Ok(loaded)
}

/// Below this size a text is read by one thread.
const PARALLEL_BYTES: usize = 4 << 20;

/// `f` of each of a few runs of whole lines of `bytes` (one per core, or one
/// for a small text), run on their own threads: (number of the run's first
/// line within `bytes`, the run). The answers are in order.
fn in_parallel<T: Send>(bytes: &[u8], f: impl Fn(usize, &[u8]) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let pieces = split_lines(bytes, if bytes.len() < PARALLEL_BYTES { 1 } else { threads });
    crate::threads::map_on_threads(&pieces, |&(line, piece)| f(line, piece))
}

/// Splits `bytes` into at most `n` runs of whole lines: (number of the first
/// line, the run).
fn split_lines(bytes: &[u8], n: usize) -> Vec<(usize, &[u8])> {
    let mut pieces = Vec::with_capacity(n);
    let (mut start, mut line) = (0, 1);
    for i in 1..=n {
        let mut end = if i == n { bytes.len() } else { (bytes.len() * i / n).max(start) };
        if end > 0 && end < bytes.len() && bytes[end - 1] != b'\n' {
            end = memchr::memchr(b'\n', &bytes[end..]).map_or(bytes.len(), |i| end + i + 1);
        }
        if end > start {
            pieces.push((line, &bytes[start..end]));
            line += memchr::memchr_iter(b'\n', &bytes[start..end]).count();
        }
        start = end;
    }
    pieces
}

/// Decodes a run of lines starting at line `first_line` of `path`.
fn decode_piece(
    decoder: &Decoder,
    path: &str,
    first_line: usize,
    piece: &[u8],
    keep_text: bool,
) -> std::io::Result<Loaded> {
    let mut loaded = Loaded::default();
    let mut lines = piece.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        // The piece ends with a newline (or the file does not): no line after it.
        if lines.peek().is_none() && line.is_empty() {
            break;
        }
        let number = first_line + i;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = std::str::from_utf8(line).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{path}:{number}: stream did not contain valid UTF-8"),
            )
        })?;
        loaded.decode(decoder, path, number, line, keep_text);
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::split_lines;

    #[test]
    fn pieces_are_whole_lines_numbered_from_their_first() {
        let text = b"a\nbb\n\nccc\r\ndddd\ne";
        for n in 1..=8 {
            let pieces = split_lines(text, n);
            let joined: Vec<u8> = pieces.iter().flat_map(|p| p.1.iter().copied()).collect();
            assert_eq!(joined, text.to_vec(), "{n} pieces");
            for (i, (first_line, piece)) in pieces.iter().enumerate() {
                let before: usize = pieces[..i].iter().map(|p| p.1.iter().filter(|&&b| b == b'\n').count()).sum();
                assert_eq!(*first_line, before + 1);
                if i + 1 < pieces.len() {
                    assert!(piece.ends_with(b"\n"), "{n} pieces: {piece:?}");
                }
            }
        }
    }
}
