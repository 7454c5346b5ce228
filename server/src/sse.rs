//! `GET /v1/segments/{name}/changes`: membership changes as Server-Sent Events.
//!
//! Every change in the serving state's log has a position; an event's `id:` is
//! that position + 1, so a client that reconnects with `Last-Event-ID: n`
//! receives exactly the changes after the n-th, with no gap and no duplicate.
//! `?from=snapshot` first sends the current members as `enter` events (marked
//! `"snapshot": true`), then follows the log from that point.
//!
//! The log keeps the newest changes only (`--keep-changes`). A client
//! resuming from one already forgotten, or from an id the log never had (a
//! restart without durability), gets an `error` event first; then a
//! `?from=snapshot` stream (which a browser's `EventSource` resumes with
//! `Last-Event-ID` on the same URL) gets the current members again, to
//! replace the ones it held (a member that left meanwhile gets no `exit`),
//! and any other the oldest change kept. A stream task per client reads the log
//! under the read lock after each published batch.

use crate::http::{error, Body};
use crate::routes::read;
use crate::Shared;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use segflow_compiler::hir::Def;
use segflow_compiler::value::Value;
use serde_json::json;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// A response body fed from a channel: one frame per message.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

pub fn changes(shared: Arc<Shared>, request: &Request<Incoming>, name: &str) -> Response<Body> {
    let state = read(&shared);
    let Some(output) = state.plan.outputs.iter().position(|o| o.name == name && matches!(o.def, Def::Segment(_)))
    else {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no segment `{name}`"));
    };
    let last_id = request.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::trim);
    let snapshot = crate::http::query(request).iter().any(|(k, v)| k == "from" && v == "snapshot");
    let newest = state.changes.end();
    // What to send first, copied under the lock and rendered after it: a
    // render of many members under the lock held up the engine's publish,
    // and, as the lock lets a waiting writer go first, every read after it.
    let (cursor, first) = match last_id {
        Some(id) => match id.parse::<usize>() {
            Ok(n) if n <= newest => (n, None),
            Ok(n) => {
                let why = format!("event id {n} is beyond the change log, whose newest is {newest}");
                let members = snapshot.then(|| state.members_in_order(output, None, None));
                (newest, Some(Resync { error: Some(("unknown_event_id", why)), members }))
            }
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_last_event_id",
                    "Last-Event-ID must be a number from this stream",
                )
            }
        },
        None => (
            newest,
            snapshot.then(|| Resync { error: None, members: Some(state.members_in_order(output, None, None)) }),
        ),
    };
    drop(state);
    let first = first.map_or_else(Vec::new, |f| {
        let work = f.members.as_ref().map_or(0, Vec::len);
        with_runtime_aside(work, || f.render(snapshot, cursor))
    });
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(stream(shared, output, cursor, snapshot, first, tx));
    let mut response = Response::new(ChannelBody(rx).boxed());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A render of at least this many events (~1 ms) runs with the runtime's
/// other tasks handed to another thread (`block_in_place`): on a server with
/// one HTTP thread every lookup waited for it (34k members: ~22 ms).
const RENDER_ASIDE_EVENTS: usize = 2_000;

/// Runs `render` of `events` events here, having the runtime's other tasks
/// moved to another thread meanwhile if there are many (where the runtime
/// can: not a current-thread one).
fn with_runtime_aside(events: usize, render: impl FnOnce() -> Vec<Bytes>) -> Vec<Bytes> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if events >= RENDER_ASIDE_EVENTS && multi_thread {
        tokio::task::block_in_place(render)
    } else {
        render()
    }
}

/// What a stream sends before the log's changes: the current members (a
/// `?from=snapshot` stream's start), or an `error` event saying why it cannot
/// go on from where its client was, then, on a `?from=snapshot` stream, the
/// current members.
struct Resync {
    /// The error's code and why, unless this is a plain snapshot.
    error: Option<(&'static str, String)>,
    /// The members in key order with their times, when they are sent.
    members: Option<Vec<(Value, i64)>>,
}

impl Resync {
    /// The events, as of log position `cursor`. Whichever comes last carries
    /// `cursor` as its id (the error itself, for a segment without members),
    /// so that a reconnect resumes from there.
    fn render(self, snapshot: bool, cursor: usize) -> Vec<Bytes> {
        let members = self.members.unwrap_or_default();
        let mut events = Vec::with_capacity(members.len() + 1);
        if let Some((code, why)) = self.error {
            let message = if snapshot {
                format!("{why}; the current members follow, to replace those held")
            } else {
                format!("{why}; reconnect without Last-Event-ID, with ?from=snapshot, for the current members")
            };
            let id = (snapshot && members.is_empty()).then_some(cursor);
            events.push(event(id, "error", &json!({"code": code, "message": message})));
        }
        // The members as `enter` events marked `"snapshot": true`.
        let n = members.len();
        events.extend(members.iter().enumerate().map(|(i, (key, since))| {
            let data = json!({"key": key_json(key), "change": "enter", "time": since, "snapshot": true});
            event((i + 1 == n).then_some(cursor), "change", &data)
        }));
        events
    }
}

/// A key as JSON (EQL keys are strings or ints: `ServingState::json_value`
/// without the state).
fn key_json(key: &Value) -> serde_json::Value {
    match key {
        Value::Str(s) => json!(s.as_ref()),
        Value::Int(i) => json!(i),
        _ => serde_json::Value::Null, // (no other key type compiles)
    }
}

fn event(id: Option<usize>, kind: &str, data: &serde_json::Value) -> Bytes {
    let mut text = String::new();
    if let Some(id) = id {
        text.push_str(&format!("id: {id}\n"));
    }
    text.push_str(&format!("event: {kind}\ndata: {data}\n\n"));
    Bytes::from(text)
}

async fn stream(
    shared: Arc<Shared>,
    output: usize,
    mut cursor: usize,
    snapshot: bool,
    first: Vec<Bytes>,
    tx: mpsc::Sender<Bytes>,
) {
    for b in first {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    let mut published = shared.ingest.published.clone();
    loop {
        // Copied under the lock, rendered after it (see `changes`).
        let (resync, changes) = {
            let state = read(&shared);
            // The log keeps only its newest changes (`--keep-changes`): a
            // client behind them is told what it missed (see the module's doc).
            let start = state.changes.start();
            let mut resync = None;
            if cursor < start {
                let why = format!(
                    "the changes with event ids {} to {start} are no longer kept (the log keeps the newest {})",
                    cursor + 1,
                    state.changes_kept_at_most()
                );
                cursor = if snapshot { state.changes.end() } else { start };
                let members = snapshot.then(|| state.members_in_order(output, None, None));
                resync = Some((Resync { error: Some(("changes_forgotten", why)), members }, cursor));
            }
            let changes: Vec<(usize, Value, bool, i64)> = state
                .changes
                .iter_from(cursor)
                .enumerate()
                .filter(|(_, c)| c.output == output)
                .map(|(i, c)| (cursor + i + 1, c.key.clone(), c.enter, c.time))
                .collect();
            cursor = state.changes.end();
            (resync, changes)
        };
        let work = changes.len() + resync.as_ref().and_then(|(r, _)| r.members.as_ref()).map_or(0, Vec::len);
        let batch = with_runtime_aside(work, || {
            let mut out = resync.map_or_else(Vec::new, |(r, at)| r.render(snapshot, at));
            out.extend(changes.iter().map(|(id, key, enter, time)| {
                let data = json!({"key": key_json(key), "change": if *enter { "enter" } else { "exit" }, "time": time});
                event(Some(*id), "change", &data)
            }));
            out
        });
        for b in batch {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        // Wait for the next batch; a comment every 15 s notices a client that left.
        match tokio::time::timeout(Duration::from_secs(15), published.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                    return;
                }
            }
        }
    }
}
