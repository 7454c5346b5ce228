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
use segflow_runtime::state::ServingState;
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
    let mut first = Vec::new();
    let cursor = match last_id {
        Some(id) => match id.parse::<usize>() {
            Ok(n) if n <= newest => n,
            Ok(n) => {
                let why = format!("event id {n} is beyond the change log, whose newest is {newest}");
                let members = if snapshot { state.members[output].len() } else { 0 };
                first.extend(off_the_runtime(members, || {
                    resynced(&state, output, newest, snapshot, "unknown_event_id", why)
                }));
                newest
            }
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_last_event_id",
                    "Last-Event-ID must be a number from this stream",
                )
            }
        },
        None => {
            if snapshot {
                first.extend(off_the_runtime(state.members[output].len(), || members(&state, output, newest)));
            }
            newest
        }
    };
    drop(state);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(stream(shared, output, cursor, snapshot, first, tx));
    let mut response = Response::new(ChannelBody(rx).boxed());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Events for a stream of at least this many members or changes are
/// rendered with the HTTP thread's other work handed to another thread
/// meanwhile (`block_in_place`): ~10 ms of rendering, which every lookup
/// waited for on a server with one HTTP thread.
const RENDER_IN_PLACE_MEMBERS: usize = 20_000;

/// `render`s the events for `members` members or changes, many with the
/// runtime's other tasks moved to another thread while it does (where the
/// runtime can: not a current-thread one).
fn off_the_runtime(members: usize, render: impl FnOnce() -> Vec<Bytes>) -> Vec<Bytes> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if members >= RENDER_IN_PLACE_MEMBERS && multi_thread {
        tokio::task::block_in_place(render)
    } else {
        render()
    }
}

/// The segment's members as `enter` events marked `"snapshot": true`, the
/// last with id `cursor` (the log position they are as of).
fn members(state: &ServingState, output: usize, cursor: usize) -> Vec<Bytes> {
    let key_ty = key_type(state, output);
    let members = state.members_in_order(output, None, None);
    let n = members.len();
    members
        .iter()
        .enumerate()
        .map(|(i, (key, since))| {
            let id = (i + 1 == n).then_some(cursor);
            let data =
                json!({"key": state.json_value(key, key_ty), "change": "enter", "time": since, "snapshot": true});
            event(id, "change", &data)
        })
        .collect()
}

/// The type of the keys of a segment's entity.
fn key_type(state: &ServingState, output: usize) -> segflow_compiler::value::Type {
    let e = &state.plan.entities[state.plan.outputs[output].entity];
    e.fields[e.key].ty
}

/// An `error` event saying `why` a stream cannot go on from where its
/// client was, and what comes next: on a `?from=snapshot` stream, the
/// current members, as of log position `cursor`. Whichever event comes last
/// carries `cursor` as its id (the error itself, for a segment without
/// members), so that a reconnect resumes from there.
fn resynced(state: &ServingState, output: usize, cursor: usize, snapshot: bool, code: &str, why: String) -> Vec<Bytes> {
    let members = if snapshot { members(state, output, cursor) } else { Vec::new() };
    let message = if snapshot {
        format!("{why}; the current members follow, to replace those held")
    } else {
        format!("{why}; reconnect without Last-Event-ID, with ?from=snapshot, for the current members")
    };
    let id = (snapshot && members.is_empty()).then_some(cursor);
    let mut events = vec![event(id, "error", &json!({"code": code, "message": message}))];
    events.extend(members);
    events
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
        let batch: Vec<Bytes> = {
            let state = read(&shared);
            // A client far behind, or one given the members again, is a
            // large render: see `off_the_runtime`.
            let resyncing = snapshot && cursor < state.changes.start();
            let work =
                state.changes.end().saturating_sub(cursor) + if resyncing { state.members[output].len() } else { 0 };
            off_the_runtime(work, || {
                let key_ty = key_type(&state, output);
                // The log keeps only its newest changes (`--keep-changes`): a
                // client behind them is told what it missed (see the module's doc).
                let mut out = Vec::new();
                let start = state.changes.start();
                if cursor < start {
                    let why = format!(
                        "the changes with event ids {} to {start} are no longer kept (the log keeps the newest {})",
                        cursor + 1,
                        state.changes_kept_at_most()
                    );
                    cursor = if snapshot { state.changes.end() } else { start };
                    out.extend(resynced(&state, output, cursor, snapshot, "changes_forgotten", why));
                }
                out.extend(state.changes.iter_from(cursor).enumerate().filter(|(_, c)| c.output == output).map(
                    |(i, c)| {
                        let data = json!({
                            "key": state.json_value(&c.key, key_ty),
                            "change": if c.enter { "enter" } else { "exit" },
                            "time": c.time,
                        });
                        event(Some(cursor + i + 1), "change", &data)
                    },
                ));
                cursor = state.changes.end();
                out
            })
        };
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
