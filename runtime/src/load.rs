//! Reading NDJSON files of records, validating all of them before any applies.

use crate::decode::{DecodeError, Decoder, Record, Warning};
use std::io::{Read, Seek};

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

/// Warnings a `Loaded` keeps; past them it counts. A run shows the first
/// 20, and a file whose every line has a field the model does not declare
/// gave one per line, each a copy of the file's name besides its message.
pub const KEPT_WARNINGS: usize = 20;

/// Everything decoded from a set of files.
#[derive(Default)]
pub struct Loaded {
    pub records: Vec<Record>,
    /// The accepted records' text, in order, when asked for (to log them).
    pub lines: Vec<String>,
    pub errors: Vec<Located<DecodeError>>,
    /// The first `KEPT_WARNINGS` warnings, in order, and how many followed.
    pub warnings: Vec<Located<Warning>>,
    pub more_warnings: usize,
}

impl Loaded {
    /// Adds what a later part of the input decoded (taken whole, not copied,
    /// when nothing came before it).
    fn append(&mut self, later: Loaded) {
        let nothing_yet = self.records.is_empty() && self.lines.is_empty() && self.errors.is_empty();
        if nothing_yet && self.warnings.is_empty() && self.more_warnings == 0 {
            *self = later;
            return;
        }
        self.records.extend(later.records);
        self.lines.extend(later.lines);
        self.errors.extend(later.errors);
        self.more_warnings += later.more_warnings;
        self.keep_warnings(later.warnings.into_iter());
    }

    /// Keeps `warnings` while there is room, and counts the rest (made
    /// only if kept: `warnings` can be a lazy map).
    fn keep_warnings(&mut self, warnings: impl ExactSizeIterator<Item = Located<Warning>>) {
        let room = KEPT_WARNINGS.saturating_sub(self.warnings.len());
        self.more_warnings += warnings.len().saturating_sub(room);
        self.warnings.extend(warnings.take(room));
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
        self.keep_warnings(warnings.into_iter().map(|w| Located { file: source.to_string(), item: w }));
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

fn read(path: &str) -> std::io::Result<Vec<u8>> {
    let mut file =
        std::fs::File::open(path).map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {path}: {e}")))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))?;
    Ok(bytes)
}

/// Decodes the files in order, in runs of `lines` lines, and hands each
/// run's records to `apply` before decoding the next. Only one run is held,
/// as text and decoded: a 10M-event history decodes to about 6 GB, and its
/// text alone is 1.6 GB. Stops at the first error, of reading or of `apply`.
/// (A batch run decodes ahead, `for_each_run_decoded_ahead`; this, the plain
/// form, is what the tests hold that to.)
pub fn for_each_run(
    decoder: &Decoder,
    inputs: &[Input],
    keep_text: bool,
    lines: usize,
    mut apply: impl FnMut(Loaded) -> Result<(), String>,
) -> Result<(), String> {
    each_run(decoder, inputs, keep_text, lines, |_, _, _, run| apply(run))
}

/// How many nice steps below the calling thread `for_each_run_decoded_ahead`
/// runs its reading and decoding threads. The caller applies every run in
/// order, one thread, while the others only keep ahead of it: when the cores
/// are contended they go first to the stage the others wait for. A 1M-event
/// retail `run` with these threads and the dataflow workers lowered took
/// 1.05 s against 1.09, 1.15 against 1.18 and 1.17 against 1.21 s (medians
/// of 8, 14 and 20 alternating runs; BENCHMARKS.md, thirty-ninth session).
pub const SIDE_STAGE_STEPS: i32 = 5;

/// `for_each_run` with the next runs decoded meanwhile: one thread reads the
/// runs and deals them in turn to one decoding thread per core, each
/// decoding whole runs, and `apply` takes them in order on the calling
/// thread. Each run goes back to the thread that decoded it to be freed
/// (freeing where it was allocated is the allocator's fast path). Splitting
/// each run among the cores instead left them idle while the slowest part
/// finished. About four runs per decoding thread are held at once: one
/// read and waiting for it, one being decoded, one decoded and waiting for
/// `apply`, one waiting to be freed. The reading and decoding threads run
/// `SIDE_STAGE_STEPS` below the calling thread.
pub fn for_each_run_decoded_ahead(
    decoder: &Decoder,
    inputs: &[Input],
    lines: usize,
    mut apply: impl FnMut(&Loaded) -> Result<(), String>,
) -> Result<(), String> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    // Set when the caller stops early: the reader then starts no further run
    // (one it is reading from a pipe still waits for its input).
    let stopped = AtomicBool::new(false);
    let stopped = &stopped;
    std::thread::scope(|scope| {
        let (text_back, texts_back) = channel::<Vec<u8>>();
        let mut jobs: Vec<SyncSender<(&str, usize, Vec<u8>)>> = Vec::new();
        let mut decoded: Vec<Receiver<std::io::Result<Loaded>>> = Vec::new();
        let mut spent: Vec<Sender<Loaded>> = Vec::new();
        for _ in 0..threads {
            let (job, to_decode) = sync_channel::<(&str, usize, Vec<u8>)>(1);
            let (done, finished) = sync_channel(1);
            let (free, to_free) = channel::<Loaded>();
            let text_back = text_back.clone();
            let decoding = std::thread::Builder::new().name("segflow-decode".into());
            let spawned = decoding.spawn_scoped(scope, move || {
                crate::priority::lower_this_thread(SIDE_STAGE_STEPS);
                for (path, first_line, text) in to_decode {
                    to_free.try_iter().for_each(drop);
                    let run = decode_piece(decoder, path, first_line, &text, false);
                    let _ = text_back.send(text);
                    if done.send(run).is_err() {
                        return;
                    }
                }
                drop(done);
                to_free.iter().for_each(drop);
            });
            spawned.map_err(|e| format!("cannot start a decoding thread: {e}"))?;
            jobs.push(job);
            decoded.push(finished);
            spent.push(free);
        }
        drop(text_back);
        let reading = std::thread::Builder::new().name("segflow-read".into());
        let reader = reading.spawn_scoped(scope, move || -> Result<(), String> {
            crate::priority::lower_this_thread(SIDE_STAGE_STEPS);
            let mut next = 0;
            for input in inputs.iter().take_while(|_| !stopped.load(Ordering::Relaxed)) {
                let mut runs = input.runs(lines)?;
                while !stopped.load(Ordering::Relaxed) {
                    let Some((first_line, text)) = runs.next_run()? else { break };
                    if jobs[next % jobs.len()].send((&input.path, first_line, text)).is_err() {
                        return Ok(()); // the caller stopped
                    }
                    next += 1;
                    // Later runs are read into these (a few are kept).
                    for text in texts_back.try_iter() {
                        runs.recycle(text);
                    }
                }
            }
            Ok(())
        });
        let reader = reader.map_err(|e| format!("cannot start the reading thread: {e}"))?;
        // Run k is dealt to thread k % threads: the first one missing ends the input.
        let mut next = 0;
        let mut applied = Ok(());
        while let Ok(run) = decoded[next % threads].recv() {
            applied = run.map_err(|e| e.to_string()).and_then(|run| {
                apply(&run)?;
                let _ = spent[next % threads].send(run);
                Ok(())
            });
            if applied.is_err() {
                stopped.store(true, Ordering::Relaxed);
                break;
            }
            next += 1;
        }
        // Dropping the channels stops every thread.
        drop((decoded, spent));
        let read = reader.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        applied.and(read)
    })
}

/// `for_each_run`, noting a CRC-32C of each run's text in `checksums`, for
/// `for_each_run_again` to read the same inputs again after.
pub fn for_each_run_noting(
    decoder: &Decoder,
    inputs: &[Input],
    keep_text: bool,
    lines: usize,
    checksums: &mut Vec<u32>,
    mut apply: impl FnMut(Loaded) -> Result<(), String>,
) -> Result<(), String> {
    each_run(decoder, inputs, keep_text, lines, |_, _, text, run| {
        checksums.push(crc32c::crc32c(text));
        apply(run)
    })
}

/// `for_each_run` over inputs read before by `for_each_run_noting` (with the
/// same `lines`): stops before applying a run whose text is not the one read
/// then, naming the file and the run's first line (a file changed between
/// the readings).
pub fn for_each_run_again(
    decoder: &Decoder,
    inputs: &[Input],
    keep_text: bool,
    lines: usize,
    checksums: &[u32],
    mut apply: impl FnMut(Loaded) -> Result<(), String>,
) -> Result<(), String> {
    let mut expected = checksums.iter();
    each_run(decoder, inputs, keep_text, lines, |path, first_line, text, run| {
        if expected.next() != Some(&crc32c::crc32c(text)) {
            return Err(format!("{path}: changed since it was read before, from line {first_line} on"));
        }
        apply(run)
    })?;
    match expected.next() {
        Some(_) => {
            let paths: Vec<&str> = inputs.iter().map(|i| i.path.as_str()).collect();
            Err(format!("{}: shorter than when read before", paths.join(", ")))
        }
        None => Ok(()),
    }
}

/// Decodes the inputs' runs in order and hands `f` each one with its file,
/// the number of its first line and its text.
fn each_run<'i>(
    decoder: &Decoder,
    inputs: &'i [Input],
    keep_text: bool,
    lines: usize,
    mut f: impl FnMut(&'i str, usize, &[u8], Loaded) -> Result<(), String>,
) -> Result<(), String> {
    for input in inputs {
        let mut runs = input.runs(lines)?;
        while let Some((first_line, text)) = runs.next_run()? {
            let run = decode_run(decoder, &input.path, first_line, &text, keep_text).map_err(|e| e.to_string())?;
            f(&input.path, first_line, &text, run)?;
            runs.recycle(text);
        }
    }
    Ok(())
}

/// A file of records, opened for one pass (`open_once`) or for several (a
/// validation first, then the records: `open`). A regular file is opened
/// once and read again from its start at each pass, a run at a time: a file
/// that is renamed or replaced meanwhile is still the same file, and standard
/// input redirected from a file is read from its start even where reopening
/// it would share its offset. Anything else (a pipe) can be read only once:
/// for several passes its text is read whole when opened and held.
pub struct Input {
    pub path: String,
    source: Source,
}

enum Source {
    File(std::fs::File),
    Held(Vec<u8>),
    /// A pipe read in one pass, as it comes.
    Once(std::fs::File),
}

impl Input {
    pub fn open(path: &str) -> Result<Input, String> {
        Input::open_for(path, false)
    }

    /// Opens `path` to be read in one pass: a pipe is not held.
    pub fn open_once(path: &str) -> Result<Input, String> {
        Input::open_for(path, true)
    }

    fn open_for(path: &str, once: bool) -> Result<Input, String> {
        let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
        let regular = file.metadata().map_err(|e| format!("cannot open {path}: {e}"))?.is_file();
        let source = if regular {
            Source::File(file)
        } else if once {
            Source::Once(file)
        } else {
            let mut text = Vec::new();
            file.read_to_end(&mut text).map_err(|e| format!("{path}: {e}"))?;
            Source::Held(text)
        };
        Ok(Input { path: path.to_string(), source })
    }

    pub fn open_all(paths: &[String]) -> Result<Vec<Input>, String> {
        paths.iter().map(|p| Input::open(p)).collect()
    }

    fn runs(&self, lines: usize) -> Result<LineRuns<Box<dyn Read + '_>>, String> {
        let source: Box<dyn Read + '_> = match &self.source {
            Source::Held(text) => Box::new(text.as_slice()),
            Source::Once(pipe) => Box::new(pipe),
            Source::File(file) => {
                let mut file = file;
                file.seek(std::io::SeekFrom::Start(0)).map_err(|e| format!("{}: {e}", self.path))?;
                Box::new(file)
            }
        };
        Ok(LineRuns::new(&self.path, source, lines))
    }
}

/// The latest event time in the last lines of the inputs that are regular
/// files: a guess at the `now` of a batch of them all, for nothing like a
/// pass over them (see `Engine::begin_on_event_clock`). The lines are decoded
/// whole and invalid ones passed over; a redelivery cannot be told, so this
/// is only a guess. `None` if no tail holds a valid event.
pub fn latest_event_time_in_tails(decoder: &Decoder, inputs: &[Input]) -> Option<i64> {
    let mut latest = None;
    for input in inputs {
        let Source::File(file) = &input.source else { continue };
        let Ok(len) = file.metadata().map(|m| m.len()) else { continue };
        let from = len.saturating_sub(TAIL_BYTES);
        let mut tail = vec![0; (len - from) as usize];
        // Each pass seeks to the file's start itself (`Input::runs`).
        let mut file = file;
        if file.seek(std::io::SeekFrom::Start(from)).and_then(|_| file.read_exact(&mut tail)).is_err() {
            continue;
        }
        // The first line may be cut: it is whole only if the tail is the whole file.
        let lines = tail.split(|&b| b == b'\n').skip(usize::from(from > 0));
        let mut warnings = Vec::new();
        for line in lines.filter_map(|l| std::str::from_utf8(l).ok()) {
            if let Ok(record) = decoder.decode_line(line, 0, &mut warnings) {
                latest = latest.max(record.event_time());
            }
        }
    }
    latest
}

/// Bytes at the end of a file `latest_event_time_in_tails` reads: a few hundred lines.
const TAIL_BYTES: u64 = 64 << 10;

/// Bytes read from a file at a time.
const READ_BYTES: usize = 1 << 20;

/// Runs handed back that a reader keeps for later ones: they come back in
/// bursts, as the decoding threads finish while the reader waits to hand
/// out the next run. Four bound what is kept to ~14 MB at the streaming
/// run size (each ~1.1 runs and a read).
const SPARE_RUNS: usize = 4;

/// A file read a run of `lines` whole lines at a time: what was read past
/// the run is kept for the next, and nothing else. A run handed back with
/// `recycle` holds a later one: a fresh buffer per run was mostly the kernel
/// zeroing new pages, as much time as reading the file. Each run starts
/// with room for the last run's size and a read more, so that reading it
/// never moves what it holds to a larger buffer.
struct LineRuns<R> {
    path: String,
    source: R,
    lines: usize,
    /// Bytes read at a time (`READ_BYTES`; small in tests).
    read_bytes: usize,
    /// Bytes read and not handed out yet, starting at line `first_line`.
    buffer: Vec<u8>,
    /// Runs handed back, to read into later ones (at most `SPARE_RUNS`).
    spare: Vec<Vec<u8>>,
    first_line: usize,
    /// How much of `buffer` was searched for newlines, and how many it held.
    searched: usize,
    newlines: usize,
    at_end: bool,
}

impl<R: Read> LineRuns<R> {
    fn new(path: &str, source: R, lines: usize) -> LineRuns<R> {
        LineRuns {
            path: path.to_string(),
            source,
            lines: lines.max(1),
            read_bytes: READ_BYTES,
            buffer: Vec::new(),
            spare: Vec::new(),
            first_line: 1,
            searched: 0,
            newlines: 0,
            at_end: false,
        }
    }

    /// The next run: (number of its first line, its text), or `None` after the last.
    fn next_run(&mut self) -> Result<Option<(usize, Vec<u8>)>, String> {
        loop {
            if let Some(end) = self.end_of_run() {
                return Ok(Some(self.take(end)));
            }
            if self.at_end {
                return Ok((!self.buffer.is_empty()).then(|| self.take(self.buffer.len())));
            }
            let read = (&mut self.source)
                .take(self.read_bytes as u64)
                .read_to_end(&mut self.buffer)
                .map_err(|e| format!("{}: {e}", self.path))?;
            self.at_end = read == 0;
        }
    }

    /// Hands back a run that is done with, for a later one to be read into.
    fn recycle(&mut self, run: Vec<u8>) {
        if self.spare.len() < SPARE_RUNS {
            self.spare.push(run);
        }
    }

    /// Where the run ends in `buffer`, if `buffer` holds all of its lines.
    fn end_of_run(&mut self) -> Option<usize> {
        let start = self.searched;
        for i in memchr::memchr_iter(b'\n', &self.buffer[start..]) {
            self.newlines += 1;
            if self.newlines == self.lines {
                return Some(start + i + 1);
            }
        }
        self.searched = self.buffer.len();
        None
    }

    /// Hands out `buffer[..end]`; the rest starts the next run.
    fn take(&mut self, end: usize) -> (usize, Vec<u8>) {
        let mut rest = self.spare.pop().unwrap_or_default();
        rest.clear();
        // Room for a run as long as this one, an eighth more, and the read
        // that finds its end (none after the file's last run).
        if !self.at_end {
            rest.reserve((self.buffer.len() - end).max(end + end / 8) + self.read_bytes);
        }
        rest.extend_from_slice(&self.buffer[end..]);
        let mut run = std::mem::replace(&mut self.buffer, rest);
        run.truncate(end);
        let first_line = self.first_line;
        self.first_line += self.lines;
        self.searched = 0;
        self.newlines = 0;
        (first_line, run)
    }
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
    // Sized once: growing it would copy a piece's tens of thousands of records over and over.
    loaded.records.reserve(memchr::memchr_iter(b'\n', piece).count() + 1);
    let ends = memchr::memchr_iter(b'\n', piece).chain([piece.len()]);
    let mut start = 0;
    for (i, end) in ends.enumerate() {
        let line = &piece[start..end];
        start = end + 1;
        // The piece ends with a newline (or the file does not): no line after it.
        if end == piece.len() && line.is_empty() {
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
    use super::{split_lines, Input, LineRuns, Loaded, Located, KEPT_WARNINGS};
    use crate::decode::Warning;

    /// A part that warned of `n` lines from line `first` on.
    fn warned(n: usize, first: usize) -> Loaded {
        let mut part = Loaded::default();
        let warnings: Vec<_> = (0..n)
            .map(|i| Located { file: "f".into(), item: Warning { line: first + i, message: "m".into() } })
            .collect();
        part.keep_warnings(warnings.into_iter());
        part
    }

    #[test]
    fn parts_keep_the_first_warnings_in_order_and_count_the_rest() {
        let mut all = Loaded::default();
        all.append(warned(15, 1));
        all.append(warned(30, 100));
        all.append(warned(25, 200));
        let lines: Vec<usize> = all.warnings.iter().map(|w| w.item.line).collect();
        assert_eq!(lines, (1..=15).chain(100..105).collect::<Vec<_>>());
        assert_eq!(all.warnings.len(), KEPT_WARNINGS);
        assert_eq!(all.warnings.len() + all.more_warnings, 15 + 30 + 25);
    }

    #[test]
    fn line_runs_hand_out_the_text_in_runs_of_whole_lines() {
        // Lines shorter and longer than a read, a blank one, and no newline at the end.
        let text = b"a\nbbbbbbbbbbbbbbbbbbbb\n\nccc\r\ndd\neeeeeeeeeeeeeeeeeeeeeeeeeeeee\nf\ng";
        for read_bytes in [1, 3, 7, 64, 1 << 20] {
            for lines in [1, 2, 3, 5, 100] {
                let mut runs = LineRuns::new("text", &text[..], lines);
                runs.read_bytes = read_bytes;
                let (mut joined, mut next_line) = (Vec::new(), 1);
                while let Some((first_line, run)) = runs.next_run().unwrap() {
                    let at = format!("runs of {lines} lines, reads of {read_bytes} bytes: {run:?}");
                    assert_eq!(first_line, next_line, "{at}");
                    let newlines = run.iter().filter(|&&b| b == b'\n').count();
                    let last = joined.len() + run.len() == text.len();
                    assert!(newlines == lines || last && newlines < lines, "{at}");
                    assert!(!run.is_empty(), "{at}");
                    next_line += newlines;
                    joined.extend_from_slice(&run);
                    // A run handed back is read into next: with the rest, never in its place.
                    if lines % 2 == 1 {
                        runs.recycle(run);
                    }
                }
                assert_eq!(joined, text.to_vec(), "runs of {lines} lines, reads of {read_bytes} bytes");
            }
        }
    }

    #[test]
    fn an_input_is_the_file_it_opened_at_every_pass() {
        let dir = std::env::temp_dir().join(format!("segflow-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, other) = (dir.join("data.ndjson"), dir.join("other.ndjson"));
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let input = Input::open(&path.display().to_string()).unwrap();
        let read = |input: &Input| {
            let mut runs = input.runs(1).unwrap();
            let mut text = Vec::new();
            while let Some((_, run)) = runs.next_run().unwrap() {
                text.extend(run);
            }
            text
        };
        assert_eq!(read(&input), b"one\ntwo\n");
        // Replaced between passes (as a rotated or rewritten-by-rename file is):
        // the second pass still reads the file the first one did, from its start.
        std::fs::write(&other, "three\n").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(read(&input), b"one\ntwo\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

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
