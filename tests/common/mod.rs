//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod reference;

use segflow_compiler::Compiled;
use segflow_runtime::{Clock, Decoder, Engine, EngineConfig, Record};

pub fn compile(text: &str) -> Compiled {
    match segflow_compiler::compile_str("test.eql", text) {
        Ok(c) => c,
        Err((sources, diagnostics)) => panic!("model does not compile:\n{}\n{text}", sources.render(&diagnostics)),
    }
}

pub fn decode(compiled: &Compiled, lines: &[String]) -> Vec<Record> {
    let decoder = Decoder::new(&compiled.plan);
    let mut warnings = Vec::new();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| decoder.decode_line(l, i + 1, &mut warnings).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

pub fn engine(compiled: &Compiled, workers: usize, clock: Clock) -> Engine {
    Engine::start(compiled.plan.clone(), EngineConfig { workers, clock, retain_events: true, keep_changes: usize::MAX })
        .expect("engine starts")
}

/// The engine's profile dump as JSON values.
pub fn dump(engine: &Engine) -> Vec<serde_json::Value> {
    let state = engine.state();
    let state = state.read().unwrap();
    let mut out = Vec::new();
    state.dump(&mut out).unwrap();
    String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The engine's dump as text, byte for byte.
pub fn dump_text(engine: &Engine) -> String {
    let state = engine.state();
    let state = state.read().unwrap();
    let mut out = Vec::new();
    state.dump(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}
