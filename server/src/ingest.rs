//! The engine thread and the queue in front of it.
//!
//! Requests wait in a queue; the thread takes everything queued, applies it as
//! one batch (group commit), answers each request with the batch's time, and
//! announces the new time on a watch channel that `min_time` readers and change
//! streams wait on. With the wall clock it also ticks when idle, so windows
//! expire with no new records.

use segflow_runtime::{engine::BatchOutcome, Clock, Engine, Record};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

struct Request {
    records: Vec<Record>,
    reply: oneshot::Sender<BatchOutcome>,
}

#[derive(Clone)]
pub struct IngestHandle {
    queue: Sender<Request>,
    /// (logical time, batches applied) of the serving state.
    pub published: watch::Receiver<(i64, u64)>,
}

impl IngestHandle {
    /// Applies `records` (already validated) and returns once they are visible.
    pub async fn apply(&self, records: Vec<Record>) -> Option<BatchOutcome> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Request { records, reply }).ok()?;
        answer.await.ok()
    }
}

/// Most records applied as one batch; the rest waits for the next.
const MAX_BATCH_RECORDS: usize = 200_000;

pub fn spawn(mut engine: Engine, clock: Clock, tick_ms: u64) -> IngestHandle {
    let (queue, requests) = channel::<Request>();
    let initial = engine.state().read().map(|s| (s.time, s.batches)).unwrap_or((0, 0));
    let (publish, published) = watch::channel(initial);
    std::thread::Builder::new()
        .name("segflow-engine".into())
        .spawn(move || {
            let tick = Duration::from_millis(tick_ms.max(1));
            loop {
                let mut batch = match requests.recv_timeout(tick) {
                    Ok(r) => vec![r],
                    Err(RecvTimeoutError::Timeout) => Vec::new(),
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                let mut size: usize = batch.iter().map(|r| r.records.len()).sum();
                while size < MAX_BATCH_RECORDS {
                    match requests.try_recv() {
                        Ok(r) => {
                            size += r.records.len();
                            batch.push(r);
                        }
                        Err(_) => break,
                    }
                }
                if batch.is_empty() && clock != Clock::Wall {
                    continue;
                }
                let records: Vec<Record> = batch.iter_mut().flat_map(|r| std::mem::take(&mut r.records)).collect();
                let outcome = engine.apply(&records);
                let batches = engine.state().read().map(|s| s.batches).unwrap_or(0);
                publish.send_replace((outcome.time, batches));
                for r in batch {
                    let _ = r.reply.send(outcome.clone());
                }
            }
        })
        .expect("spawn the engine thread");
    IngestHandle { queue, published }
}
