//! How long adding event ids to the dedup set takes, in total and at worst:
//! the worst single insert is the pause a resize gives the engine thread.
//!
//!     cargo run --release -p segflow-runtime --example id_inserts [IDS]

use segflow_runtime::ids::IdSet;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(4_000_000);
    let ids: Vec<String> = (0..n).map(|i| format!("o{i:08}-{}", i % 7)).collect();
    for round in 1..=3 {
        let mut set = IdSet::default();
        let (mut worst, started) = (0u128, Instant::now());
        for id in &ids {
            let t = Instant::now();
            set.insert(id.as_bytes());
            worst = worst.max(t.elapsed().as_nanos());
        }
        println!(
            "round {round}: {n} ids in {:.0} ms, worst insert {:.2} ms",
            started.elapsed().as_secs_f64() * 1e3,
            worst as f64 / 1e6
        );
    }
}
