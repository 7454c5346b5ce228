//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod reference;

use segflow_compiler::Compiled;
use segflow_runtime::{Clock, Decoder, Engine, EngineConfig, Record};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};

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
    Engine::start(
        compiled.plan.clone(),
        EngineConfig { workers, clock, retain_events: true, keep_changes: usize::MAX, workers_below_engine: false },
    )
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

/// Follows a server's SSE stream at `path` in the background (resuming after
/// `last_event_id`, if given), sending the (id, data) of each event.
pub fn follow(
    addr: SocketAddr,
    path: &str,
    last_event_id: Option<u64>,
) -> std::sync::mpsc::Receiver<(Option<u64>, serde_json::Value)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n");
    if let Some(id) = last_event_id {
        head.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    std::thread::spawn(move || {
        let mut id = None;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.trim().parse().ok();
            } else if let Some(data) = line.strip_prefix("data: ") {
                if tx.send((id.take(), serde_json::from_str(data).unwrap())).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The next `n` events `follow` sends, waiting at most 10 s for each.
pub fn next_events(
    events: &std::sync::mpsc::Receiver<(Option<u64>, serde_json::Value)>,
    n: usize,
) -> Vec<(Option<u64>, serde_json::Value)> {
    (0..n).map(|_| events.recv_timeout(std::time::Duration::from_secs(10)).expect("an event")).collect()
}
