//! Counters for `GET /metrics` (Prometheus text format).

use segflow_runtime::ServingState;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Metrics {
    pub records_accepted: AtomicU64,
    pub records_rejected: AtomicU64,
    pub requests: AtomicU64,
    pub ingest_batches: AtomicU64,
    /// Sum of ingest latencies (request received -> visible), microseconds.
    pub ingest_micros: AtomicU64,
}

impl Metrics {
    pub fn render(&self, state: &ServingState, wall_ms: i64) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter("segflow_records_accepted_total", "Records accepted and applied.", self.records_accepted.load(Relaxed));
        counter("segflow_records_rejected_total", "Records rejected as invalid.", self.records_rejected.load(Relaxed));
        counter("segflow_http_requests_total", "HTTP requests served.", self.requests.load(Relaxed));
        let _ = writeln!(
            out,
            "# HELP segflow_ingest_latency_seconds Time from receiving a write to its effects being readable.\n\
             # TYPE segflow_ingest_latency_seconds summary\n\
             segflow_ingest_latency_seconds_sum {}\nsegflow_ingest_latency_seconds_count {}",
            self.ingest_micros.load(Relaxed) as f64 / 1e6,
            self.ingest_batches.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP segflow_state_time_ms Logical time (epoch ms) the serving state reflects.\n\
             # TYPE segflow_state_time_ms gauge\nsegflow_state_time_ms {}\n\
             # HELP segflow_dataflow_lag_ms Wall clock minus the state's logical time.\n\
             # TYPE segflow_dataflow_lag_ms gauge\nsegflow_dataflow_lag_ms {}\n\
             # HELP segflow_batches_total Batches (and clock ticks) applied.\n\
             # TYPE segflow_batches_total counter\nsegflow_batches_total {}",
            state.time,
            wall_ms - state.time,
            state.batches
        );
        let _ =
            writeln!(out, "# HELP segflow_segment_size Members of each segment.\n# TYPE segflow_segment_size gauge");
        for (o, output) in state.plan.outputs.iter().enumerate() {
            if matches!(output.def, segflow_compiler::hir::Def::Segment(_)) {
                let _ = writeln!(out, "segflow_segment_size{{segment=\"{}\"}} {}", output.name, state.members[o].len());
            }
        }
        let _ = writeln!(
            out,
            "# HELP segflow_column_entries Instances with a non-default value, per tag and segment (serving state; \
             tags computed on read hold no values and are not listed).\n\
             # TYPE segflow_column_entries gauge"
        );
        for (o, output) in state.plan.outputs.iter().enumerate().filter(|(_, o)| !o.anonymous) {
            let Some(entries) = state.column_entries(o) else { continue };
            let entity = &state.plan.entities[output.entity].name;
            let _ = writeln!(out, "segflow_column_entries{{column=\"{entity}.{}\"}} {entries}", output.name);
        }
        let _ = writeln!(out, "# HELP segflow_instances Known instances per entity.\n# TYPE segflow_instances gauge");
        for (e, table) in state.entities.iter().enumerate() {
            let _ =
                writeln!(out, "segflow_instances{{entity=\"{}\"}} {}", state.plan.entities[e].name, table.keys.len());
        }
        let _ = writeln!(
            out,
            "# HELP segflow_changes_retained Segment changes kept for change streams.\n\
             # TYPE segflow_changes_retained gauge\nsegflow_changes_retained {}",
            state.changes.len()
        );
        out
    }
}
