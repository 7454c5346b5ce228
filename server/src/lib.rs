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
mod metrics;
mod routes;
mod sse;

use segflow_compiler::plan::Plan;
use segflow_runtime::load::load_files;
use segflow_runtime::{Clock, Decoder, Engine, EngineConfig, ServingState};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;

pub use ingest::IngestHandle;

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
}

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
    /// Starts the engine, applies `config.load`, and binds the listener.
    pub async fn bind(plan: Plan, config: ServerConfig) -> Result<Server, String> {
        let decoder = Decoder::new(&plan);
        let mut engine = Engine::start(plan, EngineConfig { workers: config.workers, clock: config.clock })?;
        if !config.load.is_empty() {
            let loaded = load_files(&decoder, &config.load).map_err(|e| e.to_string())?;
            if !loaded.errors.is_empty() {
                let shown: Vec<String> = loaded.errors.iter().take(20).map(|e| e.to_string()).collect();
                return Err(format!(
                    "{} invalid records in --load files; nothing was loaded:\n{}",
                    loaded.errors.len(),
                    shown.join("\n")
                ));
            }
            for chunk in loaded.records.chunks(100_000) {
                engine.apply(chunk);
            }
            tracing::info!(records = loaded.records.len(), "loaded");
        }
        if !config.preload.is_empty() {
            let mut warnings = Vec::new();
            let mut records = Vec::with_capacity(config.preload.len());
            for (i, line) in config.preload.iter().enumerate() {
                let record = decoder.decode_line(line, i + 1, &mut warnings).map_err(|e| {
                    format!("the demo data does not fit this model ({e}); it is for examples/retail/retail.eql")
                })?;
                records.push(record);
            }
            for chunk in records.chunks(100_000) {
                engine.apply(chunk);
            }
        }
        let state = engine.state();
        let metrics = metrics::Metrics::default();
        let ingest = ingest::spawn(engine, config.clock, config.tick_ms);
        let listener =
            TcpListener::bind(config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared { decoder, state, ingest, metrics, config });
        Ok(Server { addr, shared, listener })
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        http::accept_loop(self.listener, self.shared, shutdown).await;
    }
}
