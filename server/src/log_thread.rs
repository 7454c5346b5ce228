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
//! fsync. After a failure nothing more is written: every later entry is
//! answered with the first error (the log's end is no longer known).

use segflow_runtime::wal::WalWriter;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub struct LogThread {
    jobs: Option<Sender<Job>>,
    wal: Arc<Mutex<WalWriter>>,
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
    pub fn spawn(wal: WalWriter) -> LogThread {
        let wal = Arc::new(Mutex::new(wal));
        let (jobs, queue) = channel::<Job>();
        let writer = wal.clone();
        let thread = std::thread::Builder::new()
            .name("segflow-log".into())
            .spawn(move || write_entries(&writer, &queue))
            .expect("spawn the log thread");
        LogThread { jobs: Some(jobs), wal, thread: Some(thread) }
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
            // A thread that is gone drops the job, and `wait` says so.
            let _ = jobs.send(Job { entry, done });
        }
        Logged(answer)
    }

    /// The log itself, for a snapshot to rotate it. Every entry appended is
    /// durable by then (each `Logged` waited for), so this does not wait
    /// behind an fsync.
    pub fn writer(&self) -> MutexGuard<'_, WalWriter> {
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

fn write_entries(wal: &Mutex<WalWriter>, queue: &Receiver<Job>) {
    let mut failed: Option<String> = None;
    while let Ok(first) = queue.recv() {
        let started = Instant::now();
        let mut jobs = vec![first];
        jobs.extend(queue.try_iter());
        let result = match &failed {
            Some(why) => Err(why.clone()),
            None => {
                let mut wal = wal.lock().unwrap_or_else(|e| e.into_inner());
                jobs.iter_mut()
                    .try_for_each(|job| match &mut job.entry {
                        Entry::Batch { now, lines } => wal.append_batch(*now, std::mem::take(lines)).map(drop),
                        Entry::Tick { now } => wal.append_tick(*now).map(drop),
                    })
                    .and_then(|()| wal.sync())
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(why) = &result {
            failed.get_or_insert_with(|| why.clone());
        }
        tracing::trace!(entries = jobs.len(), wal_us = started.elapsed().as_micros() as u64, "batch logged");
        for job in jobs {
            let _ = job.done.send(result.clone());
        }
    }
}
