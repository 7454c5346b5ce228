//! The write-ahead log's own thread.
//!
//! The engine thread hands each batch's lines to this thread as soon as the
//! batch's time is known, then builds the batch and sends it to the workers
//! while the entry is encoded, written and fsynced here. It waits for the
//! log's answer only before it publishes the batch. Appending on the engine
//! thread itself, after the batch was sent, put the fsync (and the wait for
//! a core to return to once it was done, with two workers computing) on
//! the path of every small batch: for the second benchmark model it was
//! longer than the workers' computing.
//!
//! Entries queued together are written one after another and share one
//! fsync. If writing one fails, those before it are still answered durable
//! if the fsync then succeeds (as when each had its own fsync); it and every
//! later entry are answered with the error, and nothing more is written
//! (the log's end is no longer known). After a failed fsync nothing is
//! answered durable again (`WalWriter` refuses to sync).

use segflow_runtime::wal::WalWriter;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub struct LogThread {
    jobs: Option<Sender<Job>>,
    wal: Arc<Mutex<WalWriter>>,
    /// Entries handed over and not yet answered.
    pending: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The log's answer for one entry: durable, or why not.
pub struct Logged(Receiver<Result<(), String>>);

impl Logged {
    /// Waits until the entry is durable (or has failed).
    pub fn wait(self) -> Result<(), String> {
        self.0.recv().unwrap_or_else(|_| Err("the write-ahead log's thread stopped".into()))
    }
}

enum Entry {
    Batch { now: i64, lines: Vec<String> },
    Tick { now: i64 },
}

struct Job {
    entry: Entry,
    done: Sender<Result<(), String>>,
}

impl LogThread {
    pub fn spawn(wal: WalWriter) -> std::io::Result<LogThread> {
        let wal = Arc::new(Mutex::new(wal));
        let pending = Arc::new(AtomicUsize::new(0));
        let (jobs, queue) = channel::<Job>();
        let (writer, answered) = (wal.clone(), pending.clone());
        let thread = std::thread::Builder::new()
            .name("segflow-log".into())
            .spawn(move || write_entries(&writer, &queue, &answered))?;
        Ok(LogThread { jobs: Some(jobs), wal, pending, thread: Some(thread) })
    }

    /// Appends a batch of record lines at logical time `now`, and makes it durable.
    pub fn append_batch(&self, now: i64, lines: Vec<String>) -> Logged {
        self.send(Entry::Batch { now, lines })
    }

    /// Appends a tick at logical time `now` (see `ingest`), and makes it durable.
    pub fn append_tick(&self, now: i64) -> Logged {
        self.send(Entry::Tick { now })
    }

    fn send(&self, entry: Entry) -> Logged {
        let (done, answer) = channel();
        if let Some(jobs) = &self.jobs {
            self.pending.fetch_add(1, Ordering::SeqCst);
            // A thread that is gone drops the job, and `wait` says so.
            if jobs.send(Job { entry, done }).is_err() {
                self.pending.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Logged(answer)
    }

    /// The log itself, for a snapshot to rotate it. Every entry appended is
    /// durable by then (each `Logged` waited for), so this does not wait
    /// behind an fsync.
    pub fn writer(&self) -> MutexGuard<'_, WalWriter> {
        debug_assert_eq!(self.pending.load(Ordering::SeqCst), 0, "the log was read with entries not yet answered");
        self.wal.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for LogThread {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_entries(wal: &Mutex<WalWriter>, queue: &Receiver<Job>, pending: &AtomicUsize) {
    let mut failed: Option<String> = None;
    while let Ok(first) = queue.recv() {
        let started = Instant::now();
        let mut jobs = vec![first];
        jobs.extend(queue.try_iter());
        let (durable, error) = match &failed {
            Some(why) => (0, Some(why.clone())),
            None => append_all(&mut *wal.lock().unwrap_or_else(|e| e.into_inner()), &mut jobs),
        };
        if let Some(why) = &error {
            failed.get_or_insert_with(|| why.clone());
        }
        tracing::trace!(entries = jobs.len(), wal_us = started.elapsed().as_micros() as u64, "batch logged");
        for (k, job) in jobs.into_iter().enumerate() {
            let answer = match &error {
                Some(why) if k >= durable => Err(why.clone()),
                _ => Ok(()),
            };
            pending.fetch_sub(1, Ordering::SeqCst);
            let _ = job.done.send(answer);
        }
    }
}

/// What `append_all` needs of a log (a `WalWriter`, or a test's).
trait EntryLog {
    fn append(&mut self, entry: &mut Entry) -> std::io::Result<()>;
    fn sync(&mut self) -> std::io::Result<()>;
}

impl EntryLog for WalWriter {
    fn append(&mut self, entry: &mut Entry) -> std::io::Result<()> {
        match entry {
            Entry::Batch { now, lines } => self.append_batch(*now, std::mem::take(lines)).map(drop),
            Entry::Tick { now } => self.append_tick(*now).map(drop),
        }
    }
    fn sync(&mut self) -> std::io::Result<()> {
        WalWriter::sync(self)
    }
}

/// Appends the jobs' entries in order, then fsyncs: how many of them are
/// durable, and the error that stopped the rest.
fn append_all(wal: &mut impl EntryLog, jobs: &mut [Job]) -> (usize, Option<String>) {
    let mut appended = 0;
    let mut error = None;
    for job in jobs.iter_mut() {
        if let Err(e) = wal.append(&mut job.entry) {
            error = Some(e.to_string());
            break;
        }
        appended += 1;
    }
    match wal.sync() {
        Ok(()) => (appended, error),
        Err(e) => (0, Some(error.unwrap_or_else(|| e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::{append_all, Entry, EntryLog, Job};
    use std::io;

    /// A log whose `fail_at`-th append fails, and whose fsync fails if asked.
    struct Flaky {
        appended: usize,
        fail_at: Option<usize>,
        sync_fails: bool,
    }

    impl EntryLog for Flaky {
        fn append(&mut self, _: &mut Entry) -> io::Result<()> {
            if self.fail_at == Some(self.appended) {
                return Err(io::Error::other("disk full"));
            }
            self.appended += 1;
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            if self.sync_fails {
                return Err(io::Error::other("fsync failed"));
            }
            Ok(())
        }
    }

    fn jobs(n: usize) -> Vec<Job> {
        (0..n).map(|i| Job { entry: Entry::Tick { now: i as i64 }, done: std::sync::mpsc::channel().0 }).collect()
    }

    #[test]
    fn entries_before_a_failed_one_are_durable_only_if_the_fsync_succeeds() {
        let all = append_all(&mut Flaky { appended: 0, fail_at: None, sync_fails: false }, &mut jobs(3));
        assert_eq!(all, (3, None));
        let partway = append_all(&mut Flaky { appended: 0, fail_at: Some(2), sync_fails: false }, &mut jobs(4));
        assert_eq!(partway, (2, Some("disk full".into())), "the two before it, not it nor the one after");
        let first = append_all(&mut Flaky { appended: 0, fail_at: Some(0), sync_fails: false }, &mut jobs(2));
        assert_eq!(first, (0, Some("disk full".into())));
        let unsynced = append_all(&mut Flaky { appended: 0, fail_at: Some(1), sync_fails: true }, &mut jobs(3));
        assert_eq!(unsynced, (0, Some("disk full".into())), "no fsync, nothing durable; the first error said");
        let lost = append_all(&mut Flaky { appended: 0, fail_at: None, sync_fails: true }, &mut jobs(2));
        assert_eq!(lost, (0, Some("fsync failed".into())));
    }
}
