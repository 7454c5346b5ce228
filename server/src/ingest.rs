//! The engine thread and the queue in front of it.
//!
//! Requests wait in a queue; the thread takes everything queued as one
//! batch. With durability on it hands the batch's lines, as soon as the
//! batch's time is known, to the log's thread (`log_thread`), which appends
//! them to the write-ahead log as one entry and fsyncs (group commit:
//! concurrent writers share the fsync, and so do batches logged back to
//! back) while the engine thread builds the batch and the workers compute
//! it. Once both are done it
//! publishes the batch, answers each request with the batch's time, and
//! announces the new time on a watch channel that `min_time` readers and
//! change streams wait on. A request is acknowledged only after its records
//! are durable and visible, and no change is visible that is not durable.
//!
//! Under load, requests queue while a batch is computed. The thread then
//! sends them to the workers as the next batch before publishing the one in
//! flight, so the workers take it up as soon as they finish, and publishing
//! one batch and building the next overlap their computing instead of
//! waiting for it. Batches are still published in order, each after an
//! fsync that covers it; a snapshot or a stop first publishes the batch in flight (a
//! snapshot holds the engine's inputs and the published change log, which
//! must cover the same batches).
//!
//! If the log fails, writes stop until a restart: the engine holds a batch
//! the log does not, and the log's end is no longer known (a write may be
//! torn, and after a failed fsync the kernel may have dropped pages), so
//! nothing more is applied, logged or snapshotted: not the snapshot of a
//! clean shutdown, nor a wall-clock tick. Reads go on from the last
//! acknowledged state, `/healthz` answers 503 with the reason, and a restart
//! recovers the log, cutting a torn tail.
//! With the wall clock the thread also ticks when idle, so windows expire with
//! no new records; a tick that expires anything is logged too, so a replay
//! reproduces the same changes at the same times.

use crate::log_thread::{LogThread, Logged};
use segflow_runtime::engine::{BatchOutcome, Submitted};
use segflow_runtime::snapshot::{self, Snapshot};
use segflow_runtime::wal;
use segflow_runtime::{Clock, Engine, Record};
use std::path::PathBuf;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::{oneshot, watch};

enum Message {
    Apply(Request),
    /// Take a final snapshot and stop.
    Shutdown(oneshot::Sender<()>),
}

struct Request {
    records: Vec<Record>,
    /// The records' JSON text, as logged.
    lines: Vec<String>,
    reply: oneshot::Sender<Result<BatchOutcome, String>>,
}

/// A batch sent to the workers and to the log, waiting to be published.
struct InFlight {
    submitted: Submitted,
    requests: Vec<Request>,
    /// The log's answer, with durability on and something logged.
    logged: Option<Logged>,
}

impl InFlight {
    /// Waits for the log and the workers, publishes the batch and answers
    /// its requests. If the log failed, nothing is published (see the
    /// module's doc), the requests are refused and writes stop.
    fn finish(self, engine: &mut Engine, publish: &watch::Sender<(i64, u64)>, stopped: &OnceLock<String>) {
        if let Err(e) = self.logged.map_or(Ok(()), Logged::wait) {
            let why = format!("the write-ahead log failed ({e}); writes are stopped until the server restarts");
            if stopped.get().is_none() {
                tracing::error!(error = %e, "write-ahead log failed; writes stop until a restart");
            }
            // Before a failed fsync the entry may have reached the disk
            // whole, so a restart may serve it.
            let this = format!(
                "{why}; this request is not served now, and may be after the restart \
                 (resending it then is safe for events with ids, which are deduplicated)"
            );
            for r in self.requests {
                let _ = r.reply.send(Err(this.clone()));
            }
            let _ = stopped.set(why);
            return;
        }
        let outcome = engine.complete(self.submitted);
        let batches = engine.state().read().map(|s| s.batches).unwrap_or(0);
        publish.send_replace((outcome.time, batches));
        for r in self.requests {
            let _ = r.reply.send(Ok(outcome.clone()));
        }
    }
}

#[derive(Clone)]
pub struct IngestHandle {
    queue: Sender<Message>,
    /// (logical time, batches applied) of the serving state.
    pub published: watch::Receiver<(i64, u64)>,
    /// Why writes stopped, once the log failed.
    pub writes_stopped: Arc<OnceLock<String>>,
}

impl IngestHandle {
    /// Logs and applies `records` (already validated); returns once they are
    /// durable and visible, or why they could not be.
    pub async fn apply(&self, records: Vec<Record>, lines: Vec<String>) -> Result<BatchOutcome, String> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Message::Apply(Request { records, lines, reply })).map_err(|_| NOT_RUNNING.to_string())?;
        answer.await.map_err(|_| NOT_RUNNING.to_string())?
    }

    /// Snapshots (with durability on) and stops the engine thread.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.queue.send(Message::Shutdown(reply)).is_ok() {
            let _ = done.await;
        }
    }
}

const NOT_RUNNING: &str = "the engine is not running; nothing was applied";
const STOPPING: &str = "the server is stopping; nothing was applied";

/// Most records applied as one batch; the rest waits for the next.
const MAX_BATCH_RECORDS: usize = 200_000;

/// Where and how often the engine thread persists.
pub struct Durability {
    pub dir: PathBuf,
    pub wal: LogThread,
    pub model: String,
    pub snapshot_every: Duration,
    /// The last log entry the newest snapshot covers.
    pub covered: u64,
    /// The thread writing the latest snapshot, if it may still be running.
    pub writer: Option<std::thread::JoinHandle<()>>,
    /// The data directory's lock (`lock_data_dir`): dropped last, after the
    /// snapshot writer is joined, so no other server takes the directory
    /// while this one may still write to it.
    pub _lock: Option<std::fs::File>,
}

impl Durability {
    /// Takes a snapshot covering the whole log so far. The engine thread only
    /// copies the state (shared chunks and plain numbers: `Engine::copy`,
    /// `ServingState::history`) and starts a new log segment; another thread
    /// makes the snapshot from the copy (keys for ids), encodes and writes
    /// it, then deletes the segments and snapshots it covers, so ingest
    /// pauses for the copy, not for the write. One snapshot is written at a
    /// time.
    fn snapshot(&mut self, engine: &Engine) -> Result<(), String> {
        self.finish_snapshot();
        let started = Instant::now();
        // Every batch logged is published by now (see `spawn`), so nothing
        // is appended between reading the log's end and rotating it.
        let seq = self.wal.writer().next_seq() - 1;
        let serving = engine.state().read().map(|s| s.history()).map_err(|_| "serving state poisoned".to_string())?;
        let engine = engine.copy();
        // Entries after the snapshot go to a new segment, so the covered ones
        // can be deleted whole once the snapshot is durable.
        let mut log = self.wal.writer();
        log.rotate().map_err(|e| e.to_string())?;
        let wal_dir = log.dir().to_path_buf();
        drop(log);
        let copied_ms = started.elapsed().as_millis() as u64;
        let dir = self.dir.clone();
        let model = self.model.clone();
        let write = move || -> Result<(std::path::PathBuf, usize), String> {
            let mut snap = Snapshot { seq, model, engine: engine.snapshot(), serving: serving.snapshot() };
            let path = snapshot::write(&dir, &mut snap).map_err(|e| format!("cannot write a snapshot: {e}"))?;
            let removed = wal::remove_covered(&wal_dir, seq).map_err(|e| e.to_string())?;
            snapshot::remove_older(&dir, seq).map_err(|e| e.to_string())?;
            Ok((path, removed))
        };
        let writer = std::thread::Builder::new()
            .name("segflow-snapshot".into())
            .spawn(move || match run_in_background(write) {
                Ok((path, removed)) => tracing::info!(path = %path.display(), seq, removed_segments = removed, copied_ms, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot written"),
                Err(e) => tracing::error!(error = %e, "snapshot failed; the log is kept"),
            })
            .map_err(|e| format!("cannot start the snapshot writer: {e}"))?;
        self.writer = Some(writer);
        Ok(())
    }

    /// Waits until the snapshot being written (if any) is on disk.
    fn finish_snapshot(&mut self) {
        if let Some(writer) = self.writer.take() {
            let waited = Instant::now();
            let _ = writer.join();
            // The writer runs at a low priority (`run_in_background`): one
            // still writing when the next snapshot is due holds ingest here.
            let waited_ms = waited.elapsed().as_millis() as u64;
            if waited_ms >= 100 {
                tracing::info!(waited_ms, "waited for the last snapshot to be written");
            }
        }
    }
}

impl Drop for Durability {
    fn drop(&mut self) {
        self.finish_snapshot();
    }
}

/// Runs `f` with the calling thread's scheduling priority lowered by 10
/// nice steps (to at most 19): a snapshot's writer takes half a second or
/// more of a core to encode and write a large state, and on a machine whose
/// cores the workers and the engine keep busy under load it took that from
/// them, holding up acknowledged batches. At a lower priority it runs on
/// what they leave; under load it takes longer, and the next snapshot, or a
/// shutdown, waits for it (`finish_snapshot`). (On Linux a thread's nice
/// value is its own; elsewhere this only runs `f`.)
fn run_in_background<T>(f: impl FnOnce() -> T) -> T {
    segflow_runtime::priority::lower_this_thread(10);
    f()
}

pub fn spawn(mut engine: Engine, clock: Clock, tick_ms: u64, mut durability: Option<Durability>) -> IngestHandle {
    let (queue, requests) = channel::<Message>();
    let initial = engine.state().read().map(|s| (s.time, s.batches)).unwrap_or((0, 0));
    let (publish, published) = watch::channel(initial);
    let writes_stopped: Arc<OnceLock<String>> = Arc::default();
    let stopped = writes_stopped.clone();
    std::thread::Builder::new()
        .name("segflow-engine".into())
        .spawn(move || {
            let tick = Duration::from_millis(tick_ms.max(1));
            let mut last_snapshot = Instant::now();
            // Log entries past the newest snapshot (recovered or loaded at start) are
            // worth a snapshot too, so the next start does not replay them again.
            let mut dirty = durability.as_ref().is_some_and(|d| d.wal.writer().next_seq() > d.covered + 1);
            let mut stopping = None;
            let mut acknowledge = None;
            // The batch the workers compute while the next is gathered and
            // sent: handed to the log (perhaps not durable yet), not yet
            // published (see the module's doc).
            let mut computing: Option<InFlight> = None;
            loop {
                // Block for work only when no batch is in flight; with one, a
                // request already queued is sent on, or else it is finished.
                let first = if computing.is_some() || stopping.is_some() {
                    requests.try_recv().ok()
                } else {
                    match requests.recv_timeout(tick) {
                        Ok(message) => Some(message),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                };
                let mut batch = match first {
                    // Sent after the stop: not applied (each would otherwise be
                    // a batch and a snapshot of its own).
                    Some(Message::Apply(r)) if stopping.is_some() => {
                        let _ = r.reply.send(Err(STOPPING.to_string()));
                        continue;
                    }
                    Some(Message::Apply(r)) => vec![r],
                    Some(Message::Shutdown(done)) => {
                        stopping = Some(done);
                        Vec::new()
                    }
                    None => match computing.take() {
                        Some(in_flight) => {
                            in_flight.finish(&mut engine, &publish, &stopped);
                            continue;
                        }
                        None => Vec::new(),
                    },
                };
                let mut size: usize = batch.iter().map(|r| r.records.len()).sum();
                while size < MAX_BATCH_RECORDS && stopping.is_none() {
                    match requests.try_recv() {
                        Ok(Message::Apply(r)) => {
                            size += r.records.len();
                            batch.push(r);
                        }
                        Ok(Message::Shutdown(done)) => stopping = Some(done),
                        Err(_) => break,
                    }
                }
                let snapshot_due = durability
                    .as_ref()
                    .is_some_and(|d| stopping.is_some() || last_snapshot.elapsed() >= d.snapshot_every);
                if snapshot_due || stopping.is_some() {
                    // See the module's doc.
                    if let Some(in_flight) = computing.take() {
                        in_flight.finish(&mut engine, &publish, &stopped);
                    }
                }
                if let Some(d) = durability.as_mut() {
                    // Before this batch is logged, so the snapshot covers exactly the log so far.
                    // Never after a log failure: the engine then holds a batch the log has not.
                    if snapshot_due && dirty && stopped.get().is_none() {
                        if let Err(e) = d.snapshot(&engine) {
                            tracing::error!(error = %e, "snapshot failed; the log is kept");
                        }
                        last_snapshot = Instant::now();
                        dirty = false;
                    }
                }
                if let Some(done) = stopping.take() {
                    if batch.is_empty() {
                        if let Some(d) = durability.as_mut() {
                            d.finish_snapshot();
                        }
                        acknowledge = Some(done);
                        break;
                    }
                    stopping = Some(done);
                }
                if let Some(why) = stopped.get() {
                    for r in batch {
                        let _ = r.reply.send(Err(why.clone()));
                    }
                    continue;
                }
                if batch.is_empty() && clock != Clock::Wall {
                    continue;
                }
                let records: Vec<Record> = batch.iter_mut().flat_map(|r| std::mem::take(&mut r.records)).collect();
                // The log's thread writes the batch while the workers compute
                // it (and, for records, while it is built); it is published,
                // and acknowledged, once both are done.
                let log = durability.as_ref().map(|d| &d.wal);
                let mut logged = None;
                let (submitted, expires) = if batch.is_empty() {
                    let now = engine.tick_time();
                    let expires = engine.has_due(now);
                    if expires {
                        logged = log.map(|log| log.append_tick(now));
                    }
                    (engine.submit_at(&[], now), expires)
                } else {
                    // Logged and worth a snapshot whatever it expires.
                    let lines: Vec<String> = batch.iter_mut().flat_map(|r| std::mem::take(&mut r.lines)).collect();
                    let submitted = engine.submit_logged(&records, |now| {
                        logged = log.map(|log| log.append_batch(now, lines));
                    });
                    (submitted, false)
                };
                // The workers take this batch after the one in flight, which
                // is published meanwhile.
                if let Some(in_flight) = computing.take() {
                    in_flight.finish(&mut engine, &publish, &stopped);
                }
                dirty |= !batch.is_empty() || expires;
                computing = Some(InFlight { submitted, requests: batch, logged });
            }
            if let Some(in_flight) = computing.take() {
                in_flight.finish(&mut engine, &publish, &stopped);
            }
            // Profiled workers print their operators' times as they stop,
            // which the process's exit would cut short once acknowledged.
            if segflow_runtime::profile::enabled() {
                drop(engine);
            }
            if let Some(done) = acknowledge {
                let _ = done.send(());
            }
        })
        .expect("spawn the engine thread");
    IngestHandle { queue, published, writes_stopped }
}
