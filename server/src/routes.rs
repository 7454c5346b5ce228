//! The v1 API: one function per route, all answering JSON.

use crate::http::{self, error, json, Body};
use crate::Shared;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use segflow_compiler::hir::Def;
use segflow_compiler::value::{Type, Value};
use segflow_runtime::{DecodeError, Decoder, Record, ServingState, Warning};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    shared.metrics.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // The URI's bytes are shared, not copied: the path outlives the request,
    // which a POST's handler takes.
    let uri = request.uri().clone();
    let path = uri.path();
    let segments: Vec<std::borrow::Cow<'_, str>> =
        path.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(|s| http::percent_decode(s, false)).collect();
    let parts: Vec<&str> = segments.iter().map(|s| s.as_ref()).collect();
    let method = request.method().clone();
    let allowed = |m: &[Method]| m.contains(&method);
    match parts.as_slice() {
        ["healthz"] if allowed(&[Method::GET]) => match shared.ingest.writes_stopped.get() {
            // Reads still work, but the server needs the restart that recovers its log.
            Some(why) => http::text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("{why}\n")),
            None => http::text(StatusCode::OK, "text/plain", "ok\n".into()),
        },
        ["metrics"] if allowed(&[Method::GET]) => {
            let state = read(&shared);
            let body = shared.metrics.render(&state, segflow_runtime::engine::wall_ms());
            http::text(StatusCode::OK, "text/plain; version=0.0.4", body)
        }
        ["v1", "records"] if allowed(&[Method::POST]) => post_records(shared, request).await,
        ["v1", "entities", entity, key] if allowed(&[Method::GET]) => {
            with_min_time(&shared, &request, |state| profile(state, entity, key)).await
        }
        ["v1", "segments"] if allowed(&[Method::GET]) => with_min_time(&shared, &request, segments_list).await,
        ["v1", "segments", name, "members"] if allowed(&[Method::GET]) => {
            let q = params(&request);
            with_min_time(&shared, &request, |state| members(state, name, &q)).await
        }
        ["v1", "segments", name, "members", key] if allowed(&[Method::GET]) => {
            with_min_time(&shared, &request, |state| membership(state, name, key)).await
        }
        ["v1", "segments", name, "changes"] if allowed(&[Method::GET]) => crate::sse::changes(shared, &request, name),
        ["healthz"]
        | ["metrics"]
        | ["v1", "records"]
        | ["v1", "entities", _, _]
        | ["v1", "segments"]
        | ["v1", "segments", _, "members"]
        | ["v1", "segments", _, "members", _]
        | ["v1", "segments", _, "changes"] => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not allowed on {path}"))
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", format!("no route {path}")),
    }
}

fn params(request: &Request<Incoming>) -> HashMap<String, String> {
    http::query(request).into_iter().collect()
}

pub fn read(shared: &Shared) -> std::sync::RwLockReadGuard<'_, ServingState> {
    shared.state.read().unwrap_or_else(|e| e.into_inner())
}

/// Waits (bounded by `timeout_ms`) until the state reflects `min_time`, then
/// answers from one consistent view of it, adding `"time"`.
async fn with_min_time(
    shared: &Arc<Shared>,
    request: &Request<Incoming>,
    answer: impl FnOnce(&ServingState) -> Result<Reply, Rejection>,
) -> Response<Body> {
    let q = params(request);
    let min_time = match q.get("min_time").map(|t| t.parse::<i64>()) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "bad_parameter", "min_time takes epoch milliseconds"),
    };
    let timeout = match q.get("timeout_ms").map(|t| t.parse::<u64>()) {
        None => Duration::from_millis(5000),
        Some(Ok(t)) => Duration::from_millis(t.min(60_000)),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "bad_parameter", "timeout_ms takes milliseconds"),
    };
    if let Some(min_time) = min_time {
        let mut published = shared.ingest.published.clone();
        let deadline = Instant::now() + timeout;
        while published.borrow_and_update().0 < min_time {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, published.changed()).await.is_err() {
                let now = read(shared).time;
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_yet",
                    format!("the state reflects time {now}, not yet {min_time}; retry or raise timeout_ms"),
                );
            }
        }
    }
    let state = read(shared);
    match answer(&state) {
        Ok(Reply::Json(mut value)) => {
            if let Some(o) = value.as_object_mut() {
                o.insert("time".into(), json!(state.time));
            }
            json(StatusCode::OK, &value)
        }
        Ok(Reply::Object(mut bytes)) => {
            // A rendered JSON object: add `"time"` before its closing brace.
            bytes.pop();
            let _ = writeln!(bytes, ",\"time\":{}}}", state.time); // (a Vec's writes do not fail)
            http::json_bytes(StatusCode::OK, bytes)
        }
        Err(response) => *response,
    }
}

/// What a read answers, before `"time"` is added.
enum Reply {
    Json(serde_json::Value),
    /// A JSON object already rendered (profiles: one renderer for dump and API).
    Object(Vec<u8>),
}

async fn post_records(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let received = Instant::now();
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ndjson = match content_type.as_str() {
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => true,
        "application/json" => false,
        other => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type `{other}`: send application/x-ndjson (one record per line) or application/json (an array)"),
            )
        }
    };
    let body = match http::read_body(request, shared.config.max_body_bytes).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let read = Instant::now();
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_body", "the body is not UTF-8");
    };
    let mut warnings = Vec::new();
    let mut records = Vec::new();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    if ndjson {
        // A large body's second half is decoded on a thread of tokio's
        // blocking pool meanwhile: the engine and the workers wait for the
        // records, so the other core is idle.
        let split = halves(text);
        let second = split.map(|(at, before)| {
            on_pool(&shared, &body, at..body.len(), move |decoder, text| decode_lines(decoder, text, before))
        });
        let first_end = split.map_or(text.len(), |(at, _)| at);
        let first = if first_end < BLOCKING_DECODE_BYTES {
            decode_lines(&shared.decoder, &text[..first_end], 0)
        } else {
            // The first half too would keep this thread from reads for long.
            // (Should this task fail, the request fails; the second half's
            // task then finishes for nothing, as a blocking task cannot be
            // stopped once it runs.)
            match on_pool(&shared, &body, 0..first_end, |decoder, text| decode_lines(decoder, text, 0)).await {
                Ok(Some(decoded)) => decoded,
                _ => return decoding_failed(),
            }
        };
        let second = match second {
            Some(task) => match task.await {
                Ok(Some(decoded)) => Some(decoded),
                _ => return decoding_failed(),
            },
            None => None,
        };
        for part in std::iter::once(first).chain(second) {
            records.extend(part.records);
            lines.extend(part.lines);
            errors.extend(part.errors);
            warnings.extend(part.warnings);
        }
    } else {
        let decoded = if text.len() < BLOCKING_DECODE_BYTES {
            decode_array(&shared.decoder, text)
        } else {
            match on_pool(&shared, &body, 0..body.len(), decode_array).await {
                Ok(Some(decoded)) => decoded,
                _ => return decoding_failed(),
            }
        };
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err(e) => {
                return error(StatusCode::BAD_REQUEST, "bad_json", format!("expected a JSON array of records: {e}"))
            }
        };
        (records, lines, errors, warnings) = (decoded.records, decoded.lines, decoded.errors, decoded.warnings);
    }
    let metrics = &shared.metrics;
    use std::sync::atomic::Ordering::Relaxed;
    if !errors.is_empty() {
        metrics.records_rejected.fetch_add(errors.len() as u64, Relaxed);
        let details: Vec<serde_json::Value> =
            errors.iter().take(1000).map(|e| json!({"line": e.line, "field": e.field, "message": e.message})).collect();
        let unit = if ndjson { "line" } else { "item" };
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"error": {
                "code": "invalid_records",
                "message": format!("{} invalid record(s); nothing was applied (each error names its {unit})", errors.len()),
                "errors": details,
            }}),
        );
    }
    let accepted = records.len();
    let decoded = Instant::now();
    let outcome = match shared.ingest.apply(records, lines).await {
        Ok(outcome) => outcome,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, "not_applied", e),
    };
    metrics.records_accepted.fetch_add(accepted as u64, Relaxed);
    metrics.ingest_batches.fetch_add(1, Relaxed);
    metrics.ingest_micros.fetch_add(received.elapsed().as_micros() as u64, Relaxed);
    tracing::debug!(
        records = accepted,
        read_us = read.duration_since(received).as_micros() as u64,
        decode_us = decoded.duration_since(read).as_micros() as u64,
        applied_us = decoded.elapsed().as_micros() as u64,
        "records posted"
    );
    let warnings: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    json(StatusCode::OK, &json!({"accepted": accepted, "warnings": warnings, "time": outcome.time}))
}

/// What some lines of an NDJSON body decode to.
#[derive(Default)]
struct Decoded {
    records: Vec<Record>,
    lines: Vec<String>,
    errors: Vec<DecodeError>,
    warnings: Vec<Warning>,
}

/// A body of at least this many bytes is decoded in two halves at once.
const PARALLEL_DECODE_BYTES: usize = 64 << 10;

/// A first half, or a JSON array, of at least this many bytes (~2 ms of
/// decoding) is decoded on tokio's blocking pool too: the server has one
/// HTTP thread by default, and every read waits while it decodes.
const BLOCKING_DECODE_BYTES: usize = 512 << 10;

/// Where a large body's second half starts (after a line's end), and how
/// many lines come before it; `None` for a small body.
fn halves(text: &str) -> Option<(usize, usize)> {
    if text.len() < PARALLEL_DECODE_BYTES {
        return None;
    }
    let half = text.len() / 2;
    let at = half + text.as_bytes()[half..].iter().position(|&b| b == b'\n')? + 1;
    // `lines` ends a line at each `\n`.
    Some((at, newlines(&text.as_bytes()[..at])))
}

/// How many `\n` bytes `bytes` has. Counted in a byte per 64-byte chunk,
/// which the compiler turns into vector compares: 5 µs for 75 KB, where
/// counting into a `usize` byte by byte took 41 (and `str::matches`, 14).
fn newlines(bytes: &[u8]) -> usize {
    bytes.chunks(64).map(|chunk| chunk.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n')) as usize).sum()
}

/// Decodes `text`'s lines, numbered from `before + 1`.
fn decode_lines(decoder: &Decoder, text: &str, before: usize) -> Decoded {
    let mut decoded = Decoded::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match decoder.decode_line(line, before + i + 1, &mut decoded.warnings) {
            Ok(r) => {
                decoded.records.push(r);
                decoded.lines.push(line.to_string());
            }
            Err(e) => decoded.errors.push(e),
        }
    }
    decoded
}

/// Runs `decode` over `body[range]` on tokio's blocking pool. `None` if the
/// range is not UTF-8: the callers' ranges end at a line's end or the body's,
/// so it is, as the whole was; were it not, the request fails whole rather
/// than losing a part.
fn on_pool<T: Send + 'static>(
    shared: &Arc<Shared>,
    body: &bytes::Bytes,
    range: std::ops::Range<usize>,
    decode: impl FnOnce(&Decoder, &str) -> T + Send + 'static,
) -> tokio::task::JoinHandle<Option<T>> {
    let (shared, body) = (shared.clone(), body.clone());
    tokio::task::spawn_blocking(move || {
        std::str::from_utf8(&body[range]).ok().map(|text| decode(&shared.decoder, text))
    })
}

fn decoding_failed() -> Response<Body> {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "decoding the records failed")
}

/// Decodes a JSON array's items, numbered from 1; the parser's error if
/// `text` is not an array.
fn decode_array(decoder: &Decoder, text: &str) -> Result<Decoded, serde_json::Error> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text)?;
    let mut decoded = Decoded::default();
    for (i, item) in items.iter().enumerate() {
        match decoder.decode_line(item.get(), i + 1, &mut decoded.warnings) {
            Ok(r) => {
                decoded.records.push(r);
                decoded.lines.push(item.get().to_string());
            }
            Err(e) => decoded.errors.push(e),
        }
    }
    Ok(decoded)
}

/// An error answer, boxed: it is large and rare.
type Rejection = Box<Response<Body>>;

fn not_found(what: &str) -> Rejection {
    Box::new(error(StatusCode::NOT_FOUND, "not_found", what.to_string()))
}

fn bad(code: &str, message: String) -> Rejection {
    Box::new(error(StatusCode::BAD_REQUEST, code, message))
}

fn entity_index(state: &ServingState, name: &str) -> Result<usize, Rejection> {
    state.plan.entities.iter().position(|e| e.name == name).ok_or_else(|| not_found(&format!("no entity `{name}`")))
}

/// A key from the URL, typed as the entity's key.
fn parse_key(state: &ServingState, entity: usize, key: &str) -> Result<Value, Rejection> {
    let e = &state.plan.entities[entity];
    match e.fields[e.key].ty {
        Type::Int => key
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| bad("bad_key", format!("the key of `{}` is an integer, not `{key}`", e.name))),
        _ => Ok(Value::str(key)),
    }
}

fn profile(state: &ServingState, entity: &str, key: &str) -> Result<Reply, Rejection> {
    let e = entity_index(state, entity)?;
    let key_value = parse_key(state, e, key)?;
    state.profile(e, &key_value).map(Reply::Object).ok_or_else(|| not_found(&format!("no {entity} `{key}`")))
}

fn segment_index(state: &ServingState, name: &str) -> Result<usize, Rejection> {
    state
        .plan
        .outputs
        .iter()
        .position(|o| o.name == name && matches!(o.def, Def::Segment(_)))
        .ok_or_else(|| not_found(&format!("no segment `{name}`")))
}

fn segments_list(state: &ServingState) -> Result<Reply, Rejection> {
    let list: Vec<serde_json::Value> = state
        .plan
        .outputs
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o.def, Def::Segment(_)))
        .map(|(i, o)| json!({"name": o.name, "entity": state.plan.entities[o.entity].name, "size": state.members[i].len()}))
        .collect();
    Ok(Reply::Json(json!({ "segments": list })))
}

fn members(state: &ServingState, name: &str, q: &HashMap<String, String>) -> Result<Reply, Rejection> {
    let s = segment_index(state, name)?;
    let entity = state.plan.outputs[s].entity;
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(l)) if (1..=10_000).contains(&l) => l,
        _ => return Err(bad("bad_parameter", "limit takes a number from 1 to 10000".into())),
    };
    let key_ty = state.plan.entities[entity].fields[state.plan.entities[entity].key].ty;
    let after = match q.get("after") {
        Some(after) => Some(parse_key(state, entity, after)?),
        None => None,
    };
    let page = state.members_in_order(s, after.as_ref(), Some(limit + 1));
    let more = page.len() > limit;
    let keys: Vec<serde_json::Value> = page.iter().take(limit).map(|(k, _)| state.json_value(k, key_ty)).collect();
    let next = if more { keys.last().cloned() } else { None };
    Ok(Reply::Json(json!({"segment": name, "members": keys, "next": next})))
}

fn membership(state: &ServingState, name: &str, key: &str) -> Result<Reply, Rejection> {
    let s = segment_index(state, name)?;
    let key = parse_key(state, state.plan.outputs[s].entity, key)?;
    let since = state.member_since(s, &key);
    Ok(Reply::Json(json!({"member": since.is_some(), "since": since})))
}

#[cfg(test)]
mod tests {
    use super::newlines;

    /// As a plain count, across chunk ends and in a chunk of nothing else.
    #[test]
    fn newlines_are_counted_as_a_plain_count_does() {
        for text in ["", "\n", "a\nb\n", &"x\n".repeat(100), &"\n".repeat(64 * 3 + 1), &"ab\nc".repeat(77)] {
            let plain = text.bytes().filter(|&b| b == b'\n').count();
            assert_eq!(newlines(text.as_bytes()), plain, "{text:?}");
        }
    }
}
