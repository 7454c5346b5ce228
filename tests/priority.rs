//! A batch run's side threads yield the cores to the engine thread: the
//! decoding and reading threads always, the dataflow workers when the
//! engine is asked to (`EngineConfig::workers_below_engine`, which `segflow
//! run` sets). Alone in its own test binary: it reads the nice value of
//! every thread of the process by name.
#![cfg(target_os = "linux")]

mod common;

use segflow_runtime::load::{for_each_run_decoded_ahead, Input, SIDE_STAGE_STEPS};
use segflow_runtime::{Clock, Decoder, Engine, EngineConfig};

const MODEL: &str = "entity user { key id: string; }\n\
    event visit { user: user; }\n\
    tag user.visits = count(visit);\n";

/// A thread's nice value, from its /proc stat (field 19).
fn nice_in(stat: &str) -> i64 {
    let after_name = &stat[stat.rfind(')').expect("the name's end") + 1..];
    after_name.split_whitespace().nth(16).and_then(|f| f.parse().ok()).expect("the nice field")
}

/// The nice value of each of the process's threads whose name starts with `prefix`.
fn nice_of(prefix: &str) -> Vec<i64> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("the process's threads").flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if name.starts_with(prefix) {
            if let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) {
                found.push(nice_in(&stat));
            }
        }
    }
    found
}

fn lowered(nice: i64) -> i64 {
    (nice + i64::from(SIDE_STAGE_STEPS)).min(19)
}

/// The workers' nice values once they have computed a batch.
fn workers_nice(below_engine: bool) -> Vec<i64> {
    let compiled = common::compile(MODEL);
    let config = EngineConfig {
        workers: 2,
        clock: Clock::Fixed(0),
        retain_events: false,
        keep_changes: 10,
        workers_below_engine: below_engine,
    };
    let mut engine = Engine::start(compiled.plan.clone(), config).expect("engine starts");
    let records = common::decode(&compiled, &[r#"{"event":"visit","id":"v1","at":0,"user":"u1"}"#.to_string()]);
    assert_eq!(engine.apply(&records).applied, 1);
    let nice = nice_of("timely:work");
    drop(engine); // its workers stop and are joined
    nice
}

#[test]
fn side_threads_run_below_the_engine_thread() {
    let own = nice_in(&std::fs::read_to_string("/proc/thread-self/stat").expect("this thread's stat"));
    assert_eq!(workers_nice(false), [own, own], "a server's workers keep the engine thread's priority");
    assert_eq!(workers_nice(true), [lowered(own); 2], "a batch run's workers yield to the engine thread");

    let compiled = common::compile(MODEL);
    let decoder = Decoder::new(&compiled.plan);
    let path = std::env::temp_dir().join(format!("segflow-priority-{}.ndjson", std::process::id()));
    let lines: Vec<String> =
        (0..5000).map(|i| format!(r#"{{"event":"visit","id":"v{i}","at":{i},"user":"u1"}}"#)).collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let inputs = Input::open_all(&[path.display().to_string()]).unwrap();
    let mut seen = Vec::new();
    for_each_run_decoded_ahead(&decoder, &inputs, 10, |_| {
        seen.push((nice_of("segflow-decode"), nice_of("segflow-read")));
        Ok(())
    })
    .unwrap();
    std::fs::remove_file(&path).ok();
    // The first run is applied while the reader still has hundreds to hand out.
    let (decoders, readers) = &seen[0];
    assert!(!decoders.is_empty() && decoders.iter().all(|&n| n == lowered(own)), "decoders at {decoders:?}");
    assert_eq!(readers, &[lowered(own)], "the reader");
}
