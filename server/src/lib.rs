//! Stage 4 of the segflow pipeline: the live service (hyper 1.x on tokio).
//!
//! ```text
//!  POST /v1/records ─decode+validate─> ingest queue ─> engine thread ─> dataflow workers
//!                                                          │ publishes each batch whole
//!  GET /v1/... <── ServingState (read lock) <──────────────┘
//!        └─ ?min_time=T waits on a watch channel until the state reflects T
//! ```
//!
//! The engine is synchronous and owns the timely workers, so it runs on its own
//! thread; requests reach it through a queue and concurrent requests are applied
//! together as one batch (each request is validated whole first, so it is still
//! all-or-nothing). Reads never touch the engine: they take a read lock on the
//! serving state, which the engine swaps one batch at a time.

mod http;
mod ingest;
mod log_thread;
mod metrics;
mod routes;
mod sse;

use segflow_compiler::plan::Plan;
use segflow_runtime::load::{for_each_run_again, for_each_run_noting, Input, Loaded};
use segflow_runtime::retained::Retained;
use segflow_runtime::wal::{Entry, WalWriter};
use segflow_runtime::{Clock, Decoder, Engine, EngineConfig, ServingState};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;

pub use ingest::IngestHandle;

/// Records per batch when loading files at start (`--load`).
const LOAD_RUN: usize = 100_000;

/// Present in a data directory while its initial load (`--load`,
/// `--demo-data`) is being applied: a log that holds part of a load (the
/// process stopped, or the files changed under it) is not served as if whole.
const LOAD_MARKER: &str = "initial-load.unfinished";

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub clock: Clock,
    /// NDJSON files applied before serving.
    pub load: Vec<String>,
    /// NDJSON records (already in memory) applied before serving, after `load`.
    pub preload: Vec<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How often the wall clock advances the state with no new records.
    pub tick_ms: u64,
    /// Where the write-ahead log and snapshots live; `None` keeps state in memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// How often a snapshot is taken while records arrive (and always at shutdown).
    pub snapshot_every: std::time::Duration,
    /// The most segment changes kept for change streams to resume from.
    pub keep_changes: usize,
}

/// Segment changes a server keeps for change streams unless told otherwise:
/// 48 bytes each (a long key's text is shared with the entity's key table),
/// so ~480 MB, and 80 minutes of changes at 2,000 a second. (A batch adds
/// all its changes before the oldest are forgotten, and a snapshot being
/// written holds on to the chunks it shares.)
pub const DEFAULT_KEEP_CHANGES: usize = 10_000_000;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: ([127, 0, 0, 1], 7878).into(),
            workers: 1,
            clock: Clock::Wall,
            load: Vec::new(),
            preload: Vec::new(),
            max_body_bytes: 16 << 20,
            tick_ms: 1000,
            data_dir: None,
            snapshot_every: std::time::Duration::from_secs(60),
            keep_changes: DEFAULT_KEEP_CHANGES,
        }
    }
}

/// What every request handler shares.
pub(crate) struct Shared {
    pub decoder: Decoder,
    pub state: Arc<RwLock<ServingState>>,
    pub ingest: IngestHandle,
    pub metrics: metrics::Metrics,
    pub config: ServerConfig,
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl Server {
    /// Starts the engine, recovers the data directory (or applies `config.load`
    /// to a fresh one), and binds the listener.
    pub async fn bind(plan: Plan, config: ServerConfig) -> Result<Server, String> {
        let mut data_dir_lock = config.data_dir.as_deref().map(lock_data_dir).transpose()?;
        let decoder = Decoder::new(&plan);
        let model_hash = model_fingerprint(&plan);
        let mut engine = Engine::start(
            plan,
            EngineConfig {
                workers: config.workers,
                clock: config.clock,
                retain_events: true,
                keep_changes: config.keep_changes,
                workers_below_engine: false,
            },
        )?;
        let mut wal = None;
        let mut fresh = true;
        let has_initial = !config.load.is_empty() || !config.preload.is_empty();
        if let Some(dir) = &config.data_dir {
            let wal_dir = dir.join("wal");
            if dir.join(LOAD_MARKER).exists() {
                if !has_initial {
                    return Err(format!(
                        "{} holds an initial load that did not finish; start again with the same --load (or --demo-data) to load it again from the start, or remove the directory",
                        dir.display()
                    ));
                }
                // Nothing of an unfinished load was served or acknowledged: start over.
                eprintln!(
                    "segflow: the initial load into {} did not finish; loading it again from the start",
                    dir.display()
                );
                discard_unfinished_load(dir, &wal_dir)?;
            }
            let started = std::time::Instant::now();
            let snapshot = segflow_runtime::snapshot::latest(dir)?;
            let covered = snapshot.as_ref().map_or(0, |s| s.seq);
            let had_snapshot = snapshot.is_some();
            // Taken whole: its change log becomes the state's, not a copy of it.
            if let Some(snap) = snapshot {
                let dropped = engine.restore(&snap.engine);
                if dropped > 0 {
                    eprintln!(
                        "segflow: {dropped} retained values or events in the snapshot do not fit the changed definitions and were not restored"
                    );
                }
                let retained = snap.engine.events.iter().map(Retained::len).sum::<usize>();
                let serving = engine.state();
                let mut state = serving.write().map_err(|_| "serving state poisoned")?;
                if snap.model == model_hash {
                    state.restore_history(snap.serving);
                } else {
                    state.continue_changes_after(snap.serving.changes.changes.end());
                }
                drop(state);
                eprintln!(
                    "segflow: restored the snapshot of log entry {} ({retained} retained events) in {:.2}s",
                    snap.seq,
                    started.elapsed().as_secs_f64()
                );
            }
            let recovered = segflow_runtime::wal::recover(&wal_dir, covered)?;
            let last_seq = recovered.entries.last().map_or(covered, |e| e.seq());
            fresh = recovered.entries.is_empty() && !had_snapshot;
            let previous = std::fs::read_to_string(dir.join("model.fingerprint")).ok();
            if !fresh && previous.as_deref() != Some(model_hash.as_str()) {
                tracing::warn!(dir = %dir.display(), "the definitions changed since this data was written; recomputing every tag and segment from the retained log");
                eprintln!("segflow: definitions changed since the last run; recomputing every tag and segment from the retained log");
            }
            let (batches, records, skipped) = replay(&mut engine, &decoder, recovered.entries);
            if !fresh {
                eprintln!(
                    "segflow: recovered {batches} batches ({records} records{}) from {} in {:.2}s",
                    if skipped > 0 {
                        format!(", {skipped} that no longer fit the model skipped")
                    } else {
                        String::new()
                    },
                    wal_dir.display(),
                    started.elapsed().as_secs_f64()
                );
            }
            if recovered.torn_bytes > 0 {
                eprintln!(
                    "segflow: cut a torn last entry ({} bytes, never acknowledged) off the log",
                    recovered.torn_bytes
                );
            }
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            segflow_runtime::wal::write_atomically(&dir.join("model.fingerprint"), &[model_hash.as_bytes()])
                .map_err(|e| format!("cannot write to {}: {e}", dir.display()))?;
            let writer = WalWriter::open(&wal_dir, last_seq)
                .map_err(|e| format!("cannot open the log in {}: {e}", wal_dir.display()))?;
            wal = Some(ingest::Durability {
                dir: dir.clone(),
                wal: log_thread::LogThread::spawn(writer).map_err(|e| format!("cannot start the log's thread: {e}"))?,
                model: model_hash.clone(),
                snapshot_every: config.snapshot_every,
                covered,
                writer: None,
                _lock: data_dir_lock.take(),
            });
        }
        if has_initial && !fresh {
            eprintln!("segflow: the data directory already holds data; --load/--demo-data not applied again");
        } else if has_initial {
            // Two passes over the files: every record is validated before any
            // applies, and only one run of records is held decoded at a time.
            let keep_text = wal.is_some();
            let mut demo = Loaded::default();
            for (i, line) in config.preload.iter().enumerate() {
                demo.decode(&decoder, "demo data", i + 1, line, keep_text);
            }
            let (mut invalid, mut shown) = (0, Vec::new());
            let mut count = |run: &Loaded| {
                invalid += run.errors.len();
                shown.extend(run.errors.iter().take(20 - shown.len()).map(|e| e.to_string()));
            };
            let inputs = Input::open_all(&config.load)?;
            let mut checksums = Vec::new();
            for_each_run_noting(&decoder, &inputs, false, LOAD_RUN, &mut checksums, |run| {
                count(&run);
                Ok(())
            })?;
            count(&demo);
            if invalid > 0 {
                return Err(format!(
                    "{invalid} invalid records in the data to load; nothing was loaded:\n{}",
                    shown.join("\n")
                ));
            }
            let marker = config.data_dir.as_ref().map(|dir| dir.join(LOAD_MARKER));
            if let Some(marker) = &marker {
                segflow_runtime::wal::write_atomically(marker, &[b"an initial load is being applied\n"])
                    .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
            }
            let mut loaded = 0;
            let mut apply = |run: Loaded| -> Result<(), String> {
                // Built and computed while it is logged; a failed log ends the
                // load (and the process).
                let mut logged = None;
                let lines = run.lines;
                let submitted = engine.submit_logged(&run.records, |now| {
                    logged = wal.as_ref().map(|d| d.wal.append_batch(now, lines));
                });
                if let Some(logged) = logged {
                    logged.wait()?;
                }
                engine.complete(submitted);
                loaded += run.records.len();
                Ok(())
            };
            // The files are read again: each run must be the one validated.
            for_each_run_again(&decoder, &inputs, keep_text, LOAD_RUN, &checksums, &mut apply)
                .and_then(|()| if demo.records.is_empty() { Ok(()) } else { apply(demo) })
                .map_err(|e| {
                    format!(
                        "the load stopped partway: {e} (none of it is served; start again to load it from the start)"
                    )
                })?;
            if let (Some(marker), Some(dir)) = (&marker, &config.data_dir) {
                std::fs::remove_file(marker)
                    .and_then(|_| segflow_runtime::wal::sync_dir(dir))
                    .map_err(|e| format!("cannot remove {}: {e}", marker.display()))?;
            }
            tracing::info!(records = loaded, "loaded");
        }
        let state = engine.state();
        let metrics = metrics::Metrics::default();
        let ingest = ingest::spawn(engine, config.clock, config.tick_ms, wal);
        let listener =
            TcpListener::bind(config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared { decoder, state, ingest, metrics, config });
        Ok(Server { addr, shared, listener })
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        http::accept_loop(self.listener, self.shared.clone(), shutdown).await;
        // A clean stop: the engine takes a final snapshot, so the next start is quick.
        self.shared.ingest.shutdown().await;
    }
}

/// Takes the data directory for this process: two servers appending to one
/// log would interleave their entries and each recover the other's. The
/// lock is the kernel's (`flock`), so it goes with the process, however the
/// process ends; the file itself stays.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "{} is in use by another segflow server; stop that one first, or give this one another --data-dir",
            dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Removes the log and snapshots of a load that did not finish.
fn discard_unfinished_load(dir: &std::path::Path, wal_dir: &std::path::Path) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot clear the unfinished load from {}: {e}", dir.display());
    if wal_dir.exists() {
        std::fs::remove_dir_all(wal_dir).map_err(failed)?;
    }
    for (_, path) in segflow_runtime::snapshot::list(dir).map_err(failed)? {
        std::fs::remove_file(path).map_err(failed)?;
    }
    segflow_runtime::wal::sync_dir(dir).map_err(failed)
}

/// Re-applies logged entries, each at the time it had: (batches, records, records skipped).
fn replay(engine: &mut Engine, decoder: &Decoder, entries: Vec<Entry>) -> (usize, usize, usize) {
    let (mut batches, mut applied, mut skipped) = (0, 0, 0);
    let mut warnings = Vec::new();
    for entry in entries {
        match entry {
            Entry::Batch { now, records, .. } => {
                let mut decoded = Vec::with_capacity(records.len());
                for (i, line) in records.iter().enumerate() {
                    match decoder.decode_line(line, i + 1, &mut warnings) {
                        Ok(r) => decoded.push(r),
                        // Accepted under an earlier model, invalid under this one.
                        Err(_) => skipped += 1,
                    }
                }
                applied += decoded.len();
                batches += 1;
                engine.apply_at(&decoded, now);
            }
            Entry::Tick { now, .. } => {
                engine.apply_at(&[], now);
            }
        }
    }
    (batches, applied, skipped)
}

/// Identifies the definitions a data directory was last run with: those as
/// resolved, not the plan made of them, so a build that plans the same model
/// differently keeps the saved history.
fn model_fingerprint(plan: &Plan) -> String {
    format!("{:016x}\n", plan.definitions)
}
