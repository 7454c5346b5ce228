//! The live server end to end, over real HTTP on a random loopback port.

mod common;

use segflow_runtime::Clock;
use segflow_server::{Server, ServerConfig};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Starts a server in the background; it stops when the test process ends.
fn start(model: &str, clock: Clock, tick_ms: u64, max_body_bytes: usize) -> SocketAddr {
    start_with(model, ServerConfig { clock, tick_ms, max_body_bytes, ..ServerConfig::default() })
}

/// `start`, with any configuration (its address is a random loopback port).
fn start_with(model: &str, config: ServerConfig) -> SocketAddr {
    start_on_threads(model, config, 2)
}

/// `start_with`, on a runtime of `http_threads` threads (`serve`'s default is 1).
fn start_on_threads(model: &str, config: ServerConfig, http_threads: usize) -> SocketAddr {
    let compiled = common::compile(model);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(http_threads).enable_all().build().unwrap();
        runtime.block_on(async move {
            let config = ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), ..config };
            let server = Server::bind(compiled.plan, config).await.unwrap();
            tx.send(server.addr).unwrap();
            server.run(std::future::pending()).await;
        });
    });
    rx.recv_timeout(Duration::from_secs(30)).expect("server starts")
}

/// One HTTP/1.1 request; returns (status, body as JSON or a string).
fn request(addr: SocketAddr, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status: u16 = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string())))
}

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    request(addr, "GET", path, None, b"")
}

fn post(addr: SocketAddr, lines: &[String]) -> (u16, Value) {
    request(addr, "POST", "/v1/records", Some("application/x-ndjson"), lines.join("\n").as_bytes())
}

/// Checks that the server, at `time`, serves `profile` (a batch run's dump line).
fn assert_served(addr: SocketAddr, profile: &Value, time: i64) {
    let (entity, id) = (profile["entity"].as_str().unwrap(), profile["id"].as_str().unwrap());
    let (status, mut got) = get(addr, &format!("/v1/entities/{entity}/{id}?min_time={time}"));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["time"], json!(time));
    got.as_object_mut().unwrap().remove("time");
    assert_eq!(&got, profile);
}

const T0: i64 = 1_795_132_800_000;

fn retail_lines(users: u64, events: u64, seed: u64) -> Vec<String> {
    let config = segflow_gen::GenConfig { users, events, seed, ..Default::default() };
    let mut data = Vec::new();
    segflow_gen::generate(&config, &mut data).unwrap();
    String::from_utf8(data).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn posted_batches_give_the_same_profiles_members_and_change_streams_as_a_batch_run() {
    let model = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/retail/retail.eql")).unwrap();
    let addr = start(&model, Clock::Event, 1000, 16 << 20);
    let hv = common::follow(addr, "/v1/segments/high_value/changes", None);
    let lines = retail_lines(300, 5000, 3);
    let mut last_time = 0;
    for chunk in lines.chunks(700) {
        let (status, answer) = post(addr, chunk);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], json!(chunk.len()));
        last_time = answer["time"].as_i64().unwrap();
    }
    // The same records through the engine in one process: the reference for every read.
    let compiled = common::compile(&model);
    let mut engine = common::engine(&compiled, 1, Clock::Event);
    engine.apply(&common::decode(&compiled, &lines));
    let expected = common::dump(&engine);
    for profile in expected.iter().step_by(7) {
        assert_served(addr, profile, last_time);
    }
    // Every member of high_value, paged 10 at a time.
    let want: Vec<Value> = expected
        .iter()
        .filter(|p| p["entity"] == "user" && p["segments"].as_array().unwrap().contains(&json!("high_value")))
        .map(|p| p["id"].clone())
        .collect();
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/segments/high_value/members?limit=10&after={a}"),
            None => "/v1/segments/high_value/members?limit=10".to_string(),
        };
        let (status, page) = get(addr, &path);
        assert_eq!(status, 200);
        got.extend(page["members"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert!(!want.is_empty());
    assert_eq!(got, want);
    let (_, one) = get(addr, &format!("/v1/segments/high_value/members/{}", want[0].as_str().unwrap()));
    assert_eq!(one["member"], json!(true));
    let (_, list) = get(addr, "/v1/segments");
    let size = list["segments"].as_array().unwrap().iter().find(|s| s["name"] == "high_value").unwrap()["size"].clone();
    assert_eq!(size, json!(want.len()));
    // Replaying the change stream reconstructs exactly the final membership.
    let mut members = BTreeSet::new();
    let mut last_id = 0;
    while members.len() != want.len() || last_id == 0 {
        let (id, change) = hv.recv_timeout(Duration::from_secs(10)).expect("change events arrive");
        last_id = id.expect("every change has an id");
        let key = change["key"].as_str().unwrap().to_string();
        match change["change"].as_str() {
            Some("enter") => assert!(members.insert(key)),
            _ => assert!(members.remove(&key)),
        }
    }
    while let Ok((id, change)) = hv.recv_timeout(Duration::from_millis(300)) {
        last_id = id.unwrap();
        let key = change["key"].as_str().unwrap().to_string();
        if change["change"] == "enter" {
            members.insert(key)
        } else {
            members.remove(&key)
        };
    }
    let want_set: BTreeSet<String> = want.iter().map(|k| k.as_str().unwrap().to_string()).collect();
    assert_eq!(members, want_set);
    // A new order enters a user; a client resuming from the last id sees exactly that.
    let resumed = common::follow(addr, "/v1/segments/high_value/changes", Some(last_id));
    let outsider = expected.iter().find(|p| p["entity"] == "user" && !want.contains(&p["id"])).unwrap()["id"].clone();
    let orders: Vec<String> = (0..3)
        .map(|i| format!(r#"{{"event":"order","id":"rw-{i}","at":{},"user":{outsider},"product":"p000001","amount":"2000","quantity":1}}"#, T0 + i))
        .collect();
    let (status, answer) = post(addr, &orders);
    assert_eq!(status, 200);
    let t = answer["time"].as_i64().unwrap();
    let (_, m) = get(addr, &format!("/v1/segments/high_value/members/{}?min_time={t}", outsider.as_str().unwrap()));
    assert_eq!(m["member"], json!(true), "read-your-writes");
    let (id, change) = resumed.recv_timeout(Duration::from_secs(10)).unwrap();
    // Ids are positions in the log of every segment's changes: the next one for
    // this segment is the first after the resumed id, with nothing skipped before it.
    assert!(id.unwrap() > last_id, "resumes after the last id");
    assert_eq!((change["key"].clone(), change["change"].clone()), (outsider.clone(), json!("enter")));
    // ?from=snapshot starts with the current members.
    let snap = common::follow(addr, "/v1/segments/high_value/changes?from=snapshot", None);
    let mut snapshot = BTreeSet::new();
    while snapshot.len() < want.len() + 1 {
        let (_, c) = snap.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(c["snapshot"], json!(true));
        snapshot.insert(c["key"].as_str().unwrap().to_string());
    }
    assert!(snapshot.contains(outsider.as_str().unwrap()));
}

#[test]
fn concurrent_writers_read_their_writes_and_end_where_a_batch_run_does() {
    let model = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/retail/retail.eql")).unwrap();
    let addr = start(&model, Clock::Event, 1000, 16 << 20);
    // Attribute records first, in order (the last write of a key wins, so
    // their order matters); then the events, whose effect does not depend on
    // their order, from four writers at once: requests queue, and the engine
    // sends a batch on while the one before is computed.
    let (entities, events): (Vec<String>, Vec<String>) =
        retail_lines(200, 4000, 5).into_iter().partition(|l| l.starts_with(r#"{"entity""#));
    for chunk in entities.chunks(500) {
        assert_eq!(post(addr, chunk).0, 200);
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mine: Vec<String> = events.iter().skip(w).step_by(4).cloned().collect();
            std::thread::spawn(move || {
                let mut written = Vec::new();
                for (n, chunk) in mine.chunks(40).enumerate() {
                    // A store of its own per request: read back at once, with no
                    // `min_time`, it must be there (an answer means visible).
                    let store = format!(r#"{{"entity":"store","id":"w{w}-{n}","set":{{"city":"Testville"}}}}"#);
                    let body: Vec<String> = chunk.iter().cloned().chain([store.clone()]).collect();
                    let (status, answer) = post(addr, &body);
                    assert_eq!(status, 200, "{answer}");
                    let (status, got) = get(addr, &format!("/v1/entities/store/w{w}-{n}"));
                    assert_eq!(status, 200, "writer {w} does not read its write {n}: {got}");
                    written.extend(body);
                }
                written
            })
        })
        .collect();
    let mut all = entities.clone();
    for writer in writers {
        all.extend(writer.join().expect("writer"));
    }
    let compiled = common::compile(&model);
    let mut engine = common::engine(&compiled, 1, Clock::Event);
    engine.apply(&common::decode(&compiled, &all));
    let (_, list) = get(addr, "/v1/segments");
    let time = list["time"].as_i64().unwrap();
    for profile in common::dump(&engine) {
        assert_served(addr, &profile, time);
    }
}

/// A server keeps its newest changes (`--keep-changes`): a stream resumed
/// from a forgotten one is told so, then gets every change kept, with the
/// ids they always had.
#[test]
fn a_stream_resumed_from_a_forgotten_change_is_told_and_goes_on_from_the_oldest_kept() {
    let model = r#"
        entity user { key id: string; }
        event ping { user: user; }
        segment pinged on user = exists(ping);
        segment quiet on user = not exists(ping);
    "#;
    let addr = start_with(model, ServerConfig { clock: Clock::Event, keep_changes: 3, ..ServerConfig::default() });
    // Five users enter, a batch each: changes with ids 1 to 5, of which 3 to 5 are kept.
    for u in 1..=5 {
        let (status, answer) = post(addr, &[format!(r#"{{"event":"ping","id":"p{u}","at":{u}000,"user":"u{u}"}}"#)]);
        assert_eq!(status, 200, "{answer}");
    }
    let entered = |from: u64, n: usize| -> Vec<(Option<u64>, Value)> {
        let stream = common::follow(addr, "/v1/segments/pinged/changes", Some(from));
        (0..n).map(|_| stream.recv_timeout(Duration::from_secs(10)).expect("an event")).collect()
    };
    let kept = |events: &[(Option<u64>, Value)]| -> Vec<(u64, String)> {
        events.iter().filter_map(|(id, e)| Some(((*id)?, e["key"].as_str()?.to_string()))).collect()
    };
    let expected: Vec<(u64, String)> = (3..=5).map(|u| (u, format!("u{u}"))).collect();
    let events = entered(1, 4);
    assert_eq!(events[0].0, None, "{events:?}");
    assert_eq!(events[0].1["code"], json!("changes_forgotten"), "{events:?}");
    assert!(events[0].1["message"].as_str().unwrap().contains("event ids 2 to 2"), "{events:?}");
    assert_eq!(kept(&events[1..]), expected);
    // From the last one forgotten, or a kept one: no error.
    assert_eq!(kept(&entered(2, 3)), expected);
    assert_eq!(kept(&entered(4, 1)), expected[2..]);
    let (_, metrics) = get(addr, "/metrics");
    assert!(metrics.as_str().unwrap().contains("segflow_changes_retained 3"), "{metrics}");
    // A `?from=snapshot` stream (as a browser resumes one) gets the members again.
    let resumed = common::follow(addr, "/v1/segments/pinged/changes?from=snapshot", Some(1));
    let events = common::next_events(&resumed, 6);
    assert!(events[0].1["message"].as_str().unwrap().contains("the current members follow"), "{events:?}");
    let members: Vec<(Option<u64>, &str, bool)> =
        events[1..].iter().map(|(id, e)| (*id, e["key"].as_str().unwrap(), e["snapshot"] == json!(true))).collect();
    let keys = ["u1", "u2", "u3", "u4", "u5"];
    let expected: Vec<(Option<u64>, &str, bool)> =
        keys.iter().enumerate().map(|(i, k)| ((i == 4).then_some(5), *k, true)).collect();
    assert_eq!(members, expected);
    // An id the log never had: the same, with the code saying so; and for a
    // segment without members the error carries the id to resume from.
    let events = common::next_events(&common::follow(addr, "/v1/segments/pinged/changes?from=snapshot", Some(99)), 6);
    assert_eq!(events[0].1["code"], json!("unknown_event_id"), "{events:?}");
    assert_eq!((events[5].0, events[5].1["key"].clone()), (Some(5), json!("u5")));
    let events = common::next_events(&common::follow(addr, "/v1/segments/quiet/changes?from=snapshot", Some(1)), 1);
    assert_eq!((events[0].0, events[0].1["code"].clone()), (Some(5), json!("changes_forgotten")), "{events:?}");
    // A stream that falls behind as it goes: one batch of more changes than kept.
    let live = common::follow(addr, "/v1/segments/pinged/changes", None);
    std::thread::sleep(Duration::from_millis(200));
    let batch: Vec<String> =
        (6..=10).map(|u| format!(r#"{{"event":"ping","id":"p{u}","at":{u}000,"user":"u{u}"}}"#)).collect();
    assert_eq!(post(addr, &batch).0, 200);
    let events = common::next_events(&live, 4);
    assert!(events[0].1["message"].as_str().unwrap().contains("event ids 6 to 7"), "{events:?}");
    assert_eq!(kept(&events[1..]), (8..=10).map(|u| (u, format!("u{u}"))).collect::<Vec<_>>());
}

#[test]
fn wall_clock_windows_expire_with_no_new_events() {
    let model = r#"
        entity user { key id: string; }
        event ping { user: user; }
        tag user.recent = count(ping within 2s);
        segment active on user = recent >= 1;
    "#;
    let addr = start(model, Clock::Wall, 100, 1 << 20);
    let changes = common::follow(addr, "/v1/segments/active/changes", None);
    let now = segflow_runtime::engine::wall_ms();
    let (status, answer) = post(addr, &[format!(r#"{{"event":"ping","id":"p1","at":{now},"user":"u1"}}"#)]);
    assert_eq!(status, 200, "{answer}");
    let (_, m) = get(addr, "/v1/segments/active/members/u1");
    assert_eq!(m["member"], json!(true));
    let (_, enter) = changes.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(enter["change"], json!("enter"));
    // No more records: the clock alone moves u1 out after 2 s.
    let (_, exit) = changes.recv_timeout(Duration::from_secs(10)).expect("an exit arrives with no new events");
    assert_eq!(exit["change"], json!("exit"));
    let exit_time = exit["time"].as_i64().unwrap();
    assert!(exit_time >= now + 2000 && exit_time <= now + 2000 + 1500, "exit at {exit_time}, event at {now}");
    let (_, m) = get(addr, "/v1/segments/active/members/u1");
    assert_eq!(m["member"], json!(false));
    let (_, p) = get(addr, "/v1/entities/user/u1");
    assert_eq!(p["tags"]["recent"], json!(0));
}

/// The index of the line a body of `lines` is split before, as the server
/// splits a large body into halves: after the first line end past its
/// middle byte.
fn split_line(lines: &[String]) -> usize {
    let text = lines.join("\n");
    let half = text.len() / 2;
    let at = half + text[half..].find('\n').unwrap() + 1;
    text[..at].matches('\n').count()
}

#[test]
fn a_large_bodys_errors_and_warnings_keep_their_lines_and_order() {
    // Errors and warnings name each record's line (blank lines counted), in
    // order, however far into a body they are: past 64 KB a body is decoded
    // in two halves at once, past 1 MB both on other threads than HTTP's.
    // Two errors sit either side of where it is split, and each half has a
    // blank line.
    let model = "entity user { key id: string; } event ping { user: user; n: int; } tag user.c = count(ping);";
    let addr = start(model, Clock::Event, 1000, 4 << 20);
    let ping = |i: usize| format!(r#"{{"event":"ping","at":1795132800000,"user":"u{}","n":{i}}}"#, i % 7);
    let bad = |i: usize| format!(r#"{{"event":"ping","at":1795132800000,"user":"u1","n":"bad{i}"}}"#);
    let mut u1 = 0;
    for n in [1200, 20_000] {
        let mut good: Vec<String> = (0..n).map(ping).collect();
        good.insert(n * 3 / 4, String::new()); // a blank line is skipped, and still counted
        good.insert(n / 4, String::new());
        // Where the bad lines go moves the split a little: place them until
        // they straddle it.
        let (mut lines, mut split) = (good.clone(), split_line(&good));
        let mut wrong = [3, split - 1, split, n - 2];
        for _ in 0..4 {
            lines = good.clone();
            for i in wrong {
                lines[i] = bad(i);
            }
            split = split_line(&lines);
            if wrong[1..3] == [split - 1, split] {
                break;
            }
            wrong = [3, split - 1, split, n - 2];
        }
        assert_eq!(wrong[1..3], [split - 1, split], "the bad lines straddle the split");
        assert!(lines.join("\n").len() > if n == 1200 { 64 << 10 } else { 1 << 20 });
        let (status, v) = post(addr, &lines);
        assert_eq!(status, 400, "{v}");
        let errors: Vec<(Value, String)> = v["error"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["line"].clone(), e["message"].as_str().unwrap().to_string()))
            .collect();
        let want = wrong.map(|i| (i + 1, format!("bad{i}")));
        assert_eq!(errors.len(), want.len(), "{errors:?}");
        for ((line, message), (want_line, want_text)) in errors.iter().zip(want) {
            assert_eq!(line, &json!(want_line));
            assert!(message.contains(&want_text), "{message}");
        }
        let mut lines: Vec<String> = (0..n).map(ping).collect();
        let extra = [10, n - 10];
        for i in extra {
            lines[i] = format!(r#"{{"event":"ping","at":1795132800000,"user":"u1","n":{i},"x{i}":1}}"#);
        }
        let (status, v) = post(addr, &lines);
        assert_eq!(status, 200, "{v}");
        let warnings: Vec<&str> = v["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        for (warning, i) in warnings.iter().zip(extra) {
            assert!(
                warning.starts_with(&format!("line {}:", i + 1)) && warning.contains(&format!("x{i}")),
                "{warnings:?}"
            );
        }
        u1 += (0..n).filter(|i| i % 7 == 1 || extra.contains(i)).count();
        assert_eq!(get(addr, "/v1/entities/user/u1").1["tags"]["c"], json!(u1), "every record applied once");
    }
}

/// A large JSON array is decoded off the HTTP thread, its items numbered
/// as in a small one.
#[test]
fn a_large_json_arrays_errors_name_their_items() {
    let model = "entity user { key id: string; } event ping { user: user; n: int; } tag user.c = count(ping);";
    let addr = start(model, Clock::Event, 1000, 4 << 20);
    for n in [10, 12_000] {
        let mut items: Vec<String> =
            (0..n).map(|i| format!(r#"{{"event":"ping","at":1795132800000,"user":"u{n}","n":{i}}}"#)).collect();
        items[n - 3] = format!(r#"{{"event":"ping","at":1795132800000,"user":"u{n}","n":"bad"}}"#);
        let body = format!("[{}]", items.join(","));
        assert!(n == 10 || body.len() > 512 << 10);
        let (status, v) = request(addr, "POST", "/v1/records", Some("application/json"), body.as_bytes());
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["errors"][0]["line"], json!(n - 2), "{v}");
        items[n - 3] = format!(r#"{{"event":"ping","at":1795132800000,"user":"u{n}","n":0}}"#);
        let body = format!("[{}]", items.join(","));
        let (status, v) = request(addr, "POST", "/v1/records", Some("application/json"), body.as_bytes());
        assert_eq!((status, &v["accepted"]), (200, &json!(n)), "{v}");
        assert_eq!(get(addr, &format!("/v1/entities/user/u{n}")).1["tags"]["c"], json!(n));
    }
    let (status, v) = request(addr, "POST", "/v1/records", Some("application/json"), b"{\"not\": \"an array\"}");
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("bad_json")), "{v}");
}

/// A large segment's members are sent to a `?from=snapshot` stream whole
/// and in key order, then its live changes; a client far behind gets every
/// change, and one from an id the log never had the members again. These
/// renders run with the runtime's other tasks handed to another thread:
/// here on a runtime of one thread, as `serve`'s is.
#[test]
fn a_large_segments_snapshot_stream_sends_every_member_then_its_changes() {
    let model = "entity user { key id: string; } event ping { user: user; } segment pinged on user = exists(ping);";
    let config = ServerConfig { clock: Clock::Event, max_body_bytes: 8 << 20, ..ServerConfig::default() };
    let addr = start_on_threads(model, config, 1);
    let n = 25_000;
    let ping = |u: usize| format!(r#"{{"event":"ping","at":1795132800000,"user":"u{u:06}"}}"#);
    assert_eq!(post(addr, &(0..n).map(ping).collect::<Vec<_>>()).0, 200);
    let snapshot = common::follow(addr, "/v1/segments/pinged/changes?from=snapshot", None);
    let events = common::next_events(&snapshot, n);
    for (u, (id, e)) in events.iter().enumerate() {
        assert_eq!((e["key"].as_str(), &e["snapshot"]), (Some(format!("u{u:06}").as_str()), &json!(true)));
        assert_eq!(*id, (u + 1 == n).then_some(n as u64), "only the last member carries the log's position");
    }
    assert_eq!(post(addr, &[ping(n)]).0, 200);
    let (id, e) = &common::next_events(&snapshot, 1)[0];
    assert_eq!(
        (*id, e["key"].as_str(), &e["change"]),
        (Some(n as u64 + 1), Some(format!("u{n:06}").as_str()), &json!("enter"))
    );
    // From the start of the log: every change since, in order.
    let behind = common::next_events(&common::follow(addr, "/v1/segments/pinged/changes", Some(0)), n + 1);
    assert!(behind.iter().enumerate().all(|(i, (id, _))| *id == Some(i as u64 + 1)));
    assert_eq!(get(addr, "/v1/segments/pinged/members/u000007").1["member"], json!(true));
    // From an id the log never had: the error, then every member again, the
    // last carrying the log's position.
    let resumed = common::follow(addr, "/v1/segments/pinged/changes?from=snapshot", Some(10 * n as u64));
    let events = common::next_events(&resumed, n + 2);
    assert_eq!((events[0].0, &events[0].1["code"]), (None, &json!("unknown_event_id")), "{:?}", events[0]);
    assert_eq!(events[1].1["key"], json!("u000000"));
    assert_eq!((events[n + 1].0, &events[n + 1].1["key"]), (Some(n as u64 + 1), &json!(format!("u{n:06}"))));
}

/// Keys with spaces, slashes, `+`, `%` and non-ASCII characters are read
/// back through percent-encoded paths and query strings.
#[test]
fn percent_encoded_keys_name_the_instances_they_encode() {
    let model = "entity user { key id: string; } event ping { user: user; } segment pinged on user = exists(ping);";
    let addr = start(model, Clock::Event, 1000, 1 << 20);
    let keys = ["a b/用户", "x+y%z", "plain"];
    let lines: Vec<String> = keys
        .iter()
        .map(|k| format!(r#"{{"event":"ping","at":1795132800000,"user":{}}}"#, serde_json::to_string(k).unwrap()))
        .collect();
    assert_eq!(post(addr, &lines).0, 200);
    let encode = |k: &str| k.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    for key in keys {
        let (status, profile) = get(addr, &format!("/v1/entities/user/{}", encode(key)));
        assert_eq!(status, 200, "{key}: {profile}");
        assert_eq!(profile["id"], json!(key));
        let (_, m) = get(addr, &format!("/v1/segments/pinged/members/{}", encode(key)));
        assert_eq!(m["member"], json!(true), "{key}");
    }
    // Unencoded where a path allows it; `+` is itself in a path, a space in a query.
    assert_eq!(get(addr, "/v1/entities/user/x+y%25z").1["id"], json!("x+y%z"));
    assert_eq!(get(addr, "/v1/entities/user/plain").1["id"], json!("plain"));
    let (_, page) = get(addr, "/v1/segments/pinged/members?after=a+b%2F%E7%94%A8%E6%88%B7&limit=1");
    assert_eq!(page["members"], json!(["plain"]), "{page}");
}

#[test]
fn bad_requests_get_json_errors_with_the_right_status() {
    let model =
        "entity user { key id: string; city: string?; } event ping { user: user; n: int; } tag user.c = count(ping);";
    let addr = start(model, Clock::Event, 1000, 2048);
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("").to_string();
    // Invalid records: every error listed, nothing applied.
    let (status, v) = post(
        addr,
        &[
            r#"{"event":"ping","at":1795132800000,"user":"u1","n":1}"#.to_string(),
            r#"{"event":"ping","at":1795132800000,"user":"u2","n":"one"}"#.to_string(),
            r#"{"event":"pong","at":1}"#.to_string(),
        ],
    );
    assert_eq!((status, code(&v)), (400, "invalid_records".to_string()), "{v}");
    let errors = v["error"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!((errors[0]["line"].clone(), errors[0]["field"].clone()), (json!(2), json!("n")));
    assert_eq!(get(addr, "/v1/entities/user/u1").0, 404, "nothing was applied");
    // A JSON array works too, and is all-or-nothing.
    let (status, v) = request(
        addr,
        "POST",
        "/v1/records",
        Some("application/json"),
        br#"[{"event":"ping","at":1795132800000,"user":"u1","n":1},{"entity":"user","id":"u1","set":{"city":"Shanghai","zip":1}}]"#,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "unknown attribute is a warning");
    assert_eq!(get(addr, "/v1/entities/user/u1").1["attributes"]["city"], json!("Shanghai"));
    assert_eq!(code(&request(addr, "POST", "/v1/records", Some("text/plain"), b"{}").1), "unsupported_media_type");
    assert_eq!(request(addr, "POST", "/v1/records", Some("text/plain"), b"{}").0, 415);
    let big = vec![b' '; 4096];
    assert_eq!(request(addr, "POST", "/v1/records", Some("application/x-ndjson"), &big).0, 413);
    assert_eq!(get(addr, "/v1/entities/store/s1").0, 404);
    assert_eq!(get(addr, "/v1/nothing").0, 404);
    assert_eq!(get(addr, "/v1/segments/nope/members").0, 404);
    assert_eq!(request(addr, "DELETE", "/v1/segments", None, b"").0, 405);
    assert_eq!(get(addr, "/v1/records").0, 405);
    assert_eq!(get(addr, "/v1/entities/user/u1?min_time=abc").0, 400);
    let (status, v) = get(addr, "/v1/entities/user/u1?min_time=9999999999999&timeout_ms=200");
    assert_eq!((status, code(&v)), (503, "not_yet".to_string()));
    assert_eq!(request(addr, "POST", "/v1/records", Some("application/json"), b"[1, 2").0, 400);
    let (status, health) = get(addr, "/healthz");
    assert_eq!((status, health), (200, json!("ok\n")));
    let (status, metrics) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(metrics.contains("segflow_records_rejected_total 2"), "{metrics}");
    assert!(metrics.contains("segflow_records_accepted_total 2"), "{metrics}");
    // Garbage never takes the server down.
    for junk in [&b"\x00\xff\xfe"[..], b"{\"event\":", b"[[[[[[[[", b"null"] {
        let (status, _) = request(addr, "POST", "/v1/records", Some("application/x-ndjson"), junk);
        assert_eq!(status, 400);
    }
    assert_eq!(get(addr, "/healthz").0, 200);
}
