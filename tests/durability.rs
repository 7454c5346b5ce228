//! Acknowledged means durable: crash the server with SIGKILL under load and
//! check every acknowledged record is there after restart, none twice; damage
//! the log in the ways a crash or a disk can, and check recovery's answer.

mod common;

use segflow_runtime::wal::{recover, Entry, WalWriter};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MODEL: &str = r#"
entity user { key id: string; }
entity item { key id: string; v: int?; }
event ping { user: user; n: int; }
tag user.pings = count(ping);
tag user.distinct_pings = count_distinct(ping.n);
"#;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("segflow-durability-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `segflow serve` on a free port; returns the child and its address.
fn start(model: &Path, data: &Path) -> (Served, SocketAddr) {
    start_with(model, data, "1")
}

/// As `start`, snapshotting every `snapshot_secs` seconds while records arrive.
fn start_with(model: &Path, data: &Path, snapshot_secs: &str) -> (Served, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_segflow"))
        .args(["serve", &model.display().to_string(), "--clock", "event", "--listen", "127.0.0.1:0"])
        .args(["--snapshot-secs", snapshot_secs, "--data-dir"])
        .arg(data)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("segflow serve starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("server prints its address").expect("stderr");
        if let Some(rest) = line.split("on http://").nth(1) {
            break rest.trim().parse().expect("address");
        }
        assert!(!line.contains("error"), "server failed: {line}");
    };
    // Keep draining stderr so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (Served(child), addr)
}

/// A server process that is killed when it goes out of scope: a test that
/// fails midway leaves no server running (each still stops its servers as
/// the test says, a kill or a clean stop).
struct Served(Child);

impl std::ops::Deref for Served {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Already stopped: both are harmless.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request's whole answer, status line and headers included.
fn exchange(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    let out = exchange(addr, method, path, body)?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// A fresh temp directory holding `model` as `model.eql`: (directory, model path).
fn with_model(name: &str, model: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let path = dir.join("model.eql");
    std::fs::write(&path, model).unwrap();
    (dir, path)
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_record_and_applies_none_twice() {
    let (dir, model) = with_model("kill", MODEL);
    let data = dir.join("data");
    let next = Arc::new(AtomicU64::new(0));
    // Acknowledged: (request number, per-user ping counts) of every 200 answer.
    let acked: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let mut seed = 0x9e3779b97f4a7c15u64;
    for cycle in 0..4 {
        let (mut child, addr) = start(&model, &data);
        let stop = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let (next, acked, stop) = (next.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    while stop.load(Ordering::Relaxed) == 0 {
                        let r = next.fetch_add(1, Ordering::Relaxed);
                        let body: String = (0..4)
                            .map(|k| {
                                format!(
                                    r#"{{"event":"ping","at":{},"user":"u{}","n":{}}}"#,
                                    1_795_132_800_000u64 + r,
                                    k % 3,
                                    r * 4 + k
                                )
                            })
                            .chain(std::iter::once(format!(r#"{{"entity":"item","id":"i{r}","set":{{"v":{r}}}}}"#)))
                            .collect::<Vec<_>>()
                            .join("\n");
                        match http(addr, "POST", "/v1/records", &body) {
                            Some((200, _)) => acked.lock().unwrap().push(r),
                            Some((status, v)) => panic!("unexpected answer {status}: {v}"),
                            None => return, // the server is gone
                        }
                    }
                })
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Up to ~2 s: past the 1 s snapshot interval, so some kills land while or
        // after a snapshot is written beside the appending log.
        std::thread::sleep(Duration::from_millis(150 + seed % 1800));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        stop.store(1, Ordering::Relaxed);
        for c in clients {
            c.join().expect("client");
        }
        assert!(!acked.lock().unwrap().is_empty(), "cycle {cycle}: no request was acknowledged");
    }
    let (mut child, addr) = start(&model, &data);
    let acked = acked.lock().unwrap().clone();
    let mut per_user = [0u64; 3];
    for r in &acked {
        let (status, item) = http(addr, "GET", &format!("/v1/entities/item/i{r}"), "").unwrap();
        assert_eq!(status, 200, "acknowledged request {r} is missing after restart");
        assert_eq!(item["attributes"]["v"], Value::from(*r));
        for k in 0..4 {
            per_user[k % 3] += 1;
        }
    }
    for (u, acked_pings) in per_user.iter().enumerate() {
        let (_, p) = http(addr, "GET", &format!("/v1/entities/user/u{u}"), "").unwrap();
        let pings = p["tags"]["pings"].as_u64().unwrap();
        let distinct = p["tags"]["distinct_pings"].as_u64().unwrap();
        assert_eq!(pings, distinct, "user u{u}: some ping was applied twice");
        assert!(pings >= *acked_pings, "user u{u}: {pings} pings applied, {acked_pings} acknowledged");
    }
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checks that the item of every acknowledged request `r` (`i{r}`, `v` = r)
/// is served.
fn assert_items_acknowledged(addr: SocketAddr, acked: &[u64]) {
    for r in acked {
        let (status, item) = http(addr, "GET", &format!("/v1/entities/item/i{r}"), "").unwrap();
        assert_eq!(status, 200, "acknowledged request {r} is missing after the restart");
        assert_eq!(item["attributes"]["v"], Value::from(*r));
    }
}

fn batch(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!(r#"{{"event":"ping","at":{},"user":"u{}","n":{i}}}"#, 1_795_132_800_000u64 + i as u64, i % 3))
        .collect()
}

#[test]
fn unsynced_writes_are_lost_but_every_synced_entry_survives() {
    let dir = temp_dir("fault");
    let mut w = WalWriter::open(&dir, 0).unwrap();
    for i in 0..10 {
        w.append_batch(i, batch(3)).unwrap();
    }
    w.sync().unwrap();
    let synced = w.synced_len();
    for i in 10..15 {
        w.append_batch(i, batch(3)).unwrap();
    }
    drop(w);
    // The crash: the file keeps only what was fsync'd, plus part of a later write.
    let file = segflow_runtime::wal::segments(&dir).unwrap()[0].1.clone();
    let bytes = std::fs::read(&file).unwrap();
    for partial in [0usize, 1, 5, 9, 40] {
        let mut torn = bytes[..synced as usize].to_vec();
        torn.extend_from_slice(&bytes[synced as usize..synced as usize + partial]);
        std::fs::write(&file, &torn).unwrap();
        let r = recover(&dir, 0).unwrap();
        assert_eq!(r.entries.len(), 10, "partial write of {partial} bytes");
        assert_eq!(r.torn_bytes, partial as u64);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), synced, "the torn tail is cut off");
        // And appending continues cleanly after recovery.
        let mut w = WalWriter::open(&dir, 10).unwrap();
        w.append_tick(99).unwrap();
        w.sync().unwrap();
        let again = recover(&dir, 0).unwrap();
        assert_eq!(again.entries.last(), Some(&Entry::Tick { seq: 11, now: 99 }));
        std::fs::write(&file, &bytes[..synced as usize]).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damage_in_the_middle_stops_recovery_naming_file_and_offset() {
    let dir = temp_dir("bitflip");
    let mut w = WalWriter::open(&dir, 0).unwrap();
    for i in 0..5 {
        w.append_batch(i, batch(4)).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let file = segflow_runtime::wal::segments(&dir).unwrap()[0].1.clone();
    let bytes = std::fs::read(&file).unwrap();
    let entry_len = bytes.len() / 5;
    let mut flipped = bytes.clone();
    flipped[entry_len + 20] ^= 0x10; // inside the second entry's payload
    std::fs::write(&file, &flipped).unwrap();
    let err = recover(&dir, 0).unwrap_err();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains(&format!("offset {entry_len}")), "{err}");
    assert!(err.contains("checksum"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), flipped, "nothing is cut off on real damage");
    // An empty segment and a missing directory are simply empty logs.
    std::fs::write(&file, b"").unwrap();
    assert!(recover(&dir, 0).unwrap().entries.is_empty());
    assert!(recover(&dir.join("nowhere"), 0).unwrap().entries.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_tail_is_cut_on_restart_and_the_server_starts() {
    let (dir, model) = with_model("torn-server", MODEL);
    let data = dir.join("data");
    let (mut child, addr) = start(&model, &data);
    let (status, _) = http(addr, "POST", "/v1/records", &batch(5).join("\n")).unwrap();
    assert_eq!(status, 200);
    child.kill().unwrap();
    let _ = child.wait();
    let file = segflow_runtime::wal::segments(&data.join("wal")).unwrap()[0].1.clone();
    let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(&[200, 1, 0, 0, 1, 2, 3]).unwrap(); // half a header of a write that never finished
    drop(f);
    let (mut child, addr) = start(&model, &data);
    let (_, p) = http(addr, "GET", "/v1/entities/user/u1", "").unwrap();
    assert_eq!(p["tags"]["pings"], Value::from(2));
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn decoding_random_bytes_never_panics() {
    let dir = temp_dir("fuzz");
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut rand = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut w = WalWriter::open(&dir, 0).unwrap();
    w.append_batch(1, batch(2)).unwrap();
    w.sync().unwrap();
    drop(w);
    let file = segflow_runtime::wal::segments(&dir).unwrap()[0].1.clone();
    let good = std::fs::read(&file).unwrap();
    for round in 0..2000 {
        let len = (rand() % 200) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rand() as u8).collect();
        if round % 2 == 0 {
            // Mutate a valid log instead of pure noise, to get past the checksum sometimes.
            bytes = good.clone();
            for _ in 0..1 + rand() % 4 {
                let i = (rand() as usize) % bytes.len();
                bytes[i] = rand() as u8;
            }
        }
        let _ = Entry::decode(&bytes);
        std::fs::write(&file, &bytes).unwrap();
        let _ = recover(&dir, 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every profile of the test model, and every segment list, from one server.
fn everything(addr: SocketAddr, users: usize, items: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for u in 0..users {
        out.push(http(addr, "GET", &format!("/v1/entities/user/u{u}"), "").unwrap().1);
        // When each entered `busy`: history a snapshot carries, not recomputed.
        out.push(http(addr, "GET", &format!("/v1/segments/busy/members/u{u}"), "").unwrap().1);
    }
    for i in 0..items {
        out.push(http(addr, "GET", &format!("/v1/entities/item/i{i}"), "").unwrap().1);
    }
    out.push(http(addr, "GET", "/v1/segments/busy/members?limit=1000", "").unwrap().1);
    out
}

const SEGMENT_MODEL: &str = r#"
entity user { key id: string; }
entity item { key id: string; v: int?; }
event ping { user: user; n: int; }
tag user.pings = count(ping);
tag user.recent = count(ping within 5s);
tag user.distinct_pings = count_distinct(ping.n);
segment busy on user = recent >= 2;
"#;

fn pings(from: u64, to: u64) -> String {
    (from..to)
        .map(|r| {
            format!(
                r#"{{"event":"ping","id":"p{r}","at":{},"user":"u{}","n":{r}}}"#,
                1_795_132_800_000u64 + r * 700,
                r % 4
            )
        })
        .chain((from..to).map(|r| format!(r#"{{"entity":"item","id":"i{}","set":{{"v":{r}}}}}"#, r % 10)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn snapshot_plus_log_recovers_exactly_what_the_log_alone_does() {
    let (dir, model) = with_model("snapshot", SEGMENT_MODEL);
    let (with_snap, log_only) = (dir.join("with-snapshot"), dir.join("log-only"));
    for (data, secs) in [(&with_snap, "1"), (&log_only, "100000")] {
        let (mut child, addr) = start_with(&model, data, secs);
        // The earlier ten come late: the snapshot holds events that came in
        // time order and ones that did not.
        assert_eq!(http(addr, "POST", "/v1/records", &pings(10, 30)).unwrap().0, 200);
        assert_eq!(http(addr, "POST", "/v1/records", &pings(0, 10)).unwrap().0, 200);
        std::thread::sleep(Duration::from_millis(2300)); // a snapshot is due
        assert_eq!(http(addr, "POST", "/v1/records", &pings(20, 45)).unwrap().0, 200, "redeliveries included");
        child.kill().unwrap();
        let _ = child.wait();
    }
    let snapshots = segflow_runtime::snapshot::list(&with_snap).unwrap();
    assert_eq!(snapshots.len(), 1, "one snapshot, older ones removed");
    assert!(segflow_runtime::snapshot::list(&log_only).unwrap().is_empty());
    let (mut a, addr_a) = start_with(&model, &with_snap, "100000");
    let (mut b, addr_b) = start_with(&model, &log_only, "100000");
    let (got, want) = (everything(addr_a, 4, 10), everything(addr_b, 4, 10));
    assert_eq!(got, want);
    assert_eq!(got[0]["tags"]["pings"], Value::from(12), "45 distinct pings over 4 users, deduplicated");
    // The change history survives too: the same log of enter/exit positions.
    let (_, sa) = http(addr_a, "GET", "/v1/segments", "").unwrap();
    let (_, sb) = http(addr_b, "GET", "/v1/segments", "").unwrap();
    assert_eq!(sa["segments"], sb["segments"]);
    for c in [&mut a, &mut b] {
        c.kill().unwrap();
        let _ = c.wait();
    }
    // A snapshot without its log (the log directory lost) still starts, with the snapshot's state.
    std::fs::remove_dir_all(with_snap.join("wal")).unwrap();
    let (mut c, addr_c) = start_with(&model, &with_snap, "100000");
    let (_, p) = http(addr_c, "GET", "/v1/entities/user/u0", "").unwrap();
    assert!(p["tags"]["pings"].as_u64().unwrap() >= 8, "{p}");
    c.kill().unwrap();
    let _ = c.wait();
    // A damaged snapshot stops the start with an error naming the file.
    let (_, snap) = &segflow_runtime::snapshot::list(&with_snap).unwrap()[0];
    let mut bytes = std::fs::read(snap).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(snap, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_segflow"))
        .args(["serve", &model.display().to_string(), "--clock", "event", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&with_snap)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&snap.display().to_string()) && stderr.contains("checksum"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_redelivery_with_a_later_time_moves_neither_the_clock_nor_a_replay_of_the_log() {
    // The server takes a batch's time where it registers the batch's ids,
    // and logs that time: the two must agree that a redelivery does not count.
    let (dir, model) = with_model("redelivery-clock", SEGMENT_MODEL);
    let data = dir.join("data");
    // No snapshot: the restart must replay the log.
    let (mut child, addr) = start_with(&model, &data, "100000");
    let (status, first) = http(addr, "POST", "/v1/records", &pings(0, 3)).unwrap();
    assert_eq!(status, 200, "{first}");
    let time = first["time"].as_i64().unwrap();
    assert_eq!(time, 1_795_132_800_000 + 2 * 700, "the latest accepted ping");
    // p0 again, an hour later: were it counted, every 5 s window would empty.
    let late = format!(r#"{{"event":"ping","id":"p0","at":{},"user":"u0","n":0}}"#, time + 3_600_000);
    let (status, again) = http(addr, "POST", "/v1/records", &late).unwrap();
    assert_eq!((status, again["time"].as_i64()), (200, Some(time)), "{again}");
    let before = everything(addr, 3, 3);
    assert_eq!(before[2]["tags"]["recent"], Value::from(1), "{}", before[2]);
    child.kill().unwrap();
    let _ = child.wait();
    let (mut child, addr) = start_with(&model, &data, "100000");
    assert_eq!(everything(addr, 3, 3), before, "the log replays the same times");
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn snapshot_decoding_never_panics_on_random_bytes() {
    let mut snap = segflow_runtime::snapshot::Snapshot::default();
    let dir = temp_dir("snapfuzz");
    let path = segflow_runtime::snapshot::write(&dir, &mut snap).unwrap();
    let good = std::fs::read(&path).unwrap();
    assert!(segflow_runtime::snapshot::decode(&good).is_ok());
    let mut state = 0x9E3779B97F4A7C15u64;
    for round in 0..3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = good.clone();
        if round % 3 == 0 {
            bytes.truncate((state as usize) % bytes.len());
        } else {
            let i = (state as usize) % bytes.len();
            bytes[i] = (state >> 32) as u8;
        }
        let _ = segflow_runtime::snapshot::decode(&bytes);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn changed_definitions_are_recomputed_from_the_retained_data() {
    let (dir, model) = with_model("redefine", SEGMENT_MODEL);
    let data = dir.join("data");
    let (mut child, addr) = start_with(&model, &data, "100000");
    assert_eq!(http(addr, "POST", "/v1/records", &pings(0, 20)).unwrap().0, 200);
    // A clean stop (SIGTERM) takes a snapshot; the log it covers is deleted.
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let _ = child.wait();
    assert_eq!(segflow_runtime::snapshot::list(&data).unwrap().len(), 1);
    // New definitions: a new tag over the same events, and a changed segment.
    let changed = SEGMENT_MODEL.replace("segment busy on user = recent >= 2;", "segment busy on user = pings >= 5;")
        + "tag user.max_n = max(ping.n);\n";
    std::fs::write(&model, changed).unwrap();
    let (mut child, addr, said) = start_args(&model, &data, &["--clock", "event"]);
    assert!(said.contains("definitions changed"), "{said}");
    let (_, p) = http(addr, "GET", "/v1/entities/user/u0", "").unwrap();
    assert_eq!(p["tags"]["max_n"], Value::from(16), "computed over events from before the change");
    assert_eq!(p["segments"], serde_json::json!(["busy"]), "{p}");
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retained_values_that_no_longer_fit_a_changed_model_are_dropped_and_reported() {
    let (dir, model) = with_model("retype", SEGMENT_MODEL);
    let data = dir.join("data");
    let (child, addr) = start_with(&model, &data, "100000");
    assert_eq!(http(addr, "POST", "/v1/records", &pings(0, 12)).unwrap().0, 200);
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let mut child = child;
    let _ = child.wait();
    // `item.v` becomes a string: the snapshot's int values must not be restored as
    // ints into a string field. Pings keep their shape and come back.
    std::fs::write(&model, SEGMENT_MODEL.replace("v: int?", "v: string?")).unwrap();
    let (mut child, addr, said) = start_args(&model, &data, &["--clock", "event"]);
    assert!(said.contains("10 retained values or events in the snapshot do not fit"), "{said}");
    let (status, item) = http(addr, "GET", "/v1/entities/item/i3", "").unwrap();
    assert_eq!(status, 200, "the instance itself is kept");
    assert_eq!(item["attributes"], serde_json::json!({}));
    let (_, user) = http(addr, "GET", "/v1/entities/user/u0", "").unwrap();
    assert_eq!(user["tags"]["pings"], Value::from(3));
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `segflow serve` with extra arguments; returns the child, its address
/// and everything it said on stderr before serving.
fn start_args(model: &Path, data: &Path, extra: &[&str]) -> (Served, SocketAddr, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_segflow"));
    command
        .args(["serve", &model.display().to_string(), "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra);
    start_command(command)
}

/// Starts a server by `command`; returns the child, its address and what it
/// said on stderr before serving.
fn start_command(mut command: Command) -> (Served, SocketAddr, String) {
    let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = String::new();
    let addr = loop {
        let line = lines.next().expect("server prints its address").unwrap();
        said.push_str(&line);
        said.push('\n');
        if let Some(rest) = line.split("on http://").nth(1) {
            break rest.trim().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Served(child), addr, said)
}

/// Runs `segflow serve` expecting it not to start; returns what it said.
fn start_fails(model: &Path, data: &Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_segflow"))
        .args(["serve", &model.display().to_string(), "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn load_files_go_into_a_fresh_data_directory_once_and_bad_ones_name_file_and_line() {
    let (dir, model) = with_model("load", SEGMENT_MODEL);
    let file = dir.join("seed.ndjson");
    std::fs::write(&file, pings(0, 8)).unwrap();
    let load = file.display().to_string();
    let data = dir.join("data");
    let (mut child, addr, _) = start_args(&model, &data, &["--clock", "event", "--load", &load]);
    let (_, p) = http(addr, "GET", "/v1/entities/user/u0", "").unwrap();
    assert_eq!(p["tags"]["pings"], Value::from(2));
    child.kill().unwrap();
    let _ = child.wait();
    // The same --load on the next start is not applied again (nor even read).
    let (mut child, addr, said) = start_args(&model, &data, &["--clock", "event", "--load", &load]);
    assert!(said.contains("not applied again"), "{said}");
    let (_, p) = http(addr, "GET", "/v1/entities/user/u0", "").unwrap();
    assert_eq!(p["tags"]["pings"], Value::from(2));
    child.kill().unwrap();
    let _ = child.wait();
    // A bad record: the start fails naming the file and its own line number.
    let bad = dir.join("bad.ndjson");
    std::fs::write(
        &bad,
        format!(
            "{}\n{}\n",
            r#"{"event":"ping","at":1,"user":"u1","n":1}"#, r#"{"event":"ping","at":1,"user":"u1","n":"x"}"#
        ),
    )
    .unwrap();
    let stderr = start_fails(&model, &dir.join("fresh"), &["--load", &load, "--load", &bad.display().to_string()]);
    assert!(stderr.contains(&format!("{}: line 2: field `n`", bad.display())), "{stderr}");
    assert!(stderr.contains("nothing was loaded"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unfinished_initial_load_is_loaded_again_not_served_as_whole() {
    let (dir, model) = with_model("unfinished", SEGMENT_MODEL);
    // A log holding part of a load, as a stop during the load leaves it
    // (records the whole load does not have, to tell what survives).
    let part = dir.join("part.ndjson");
    std::fs::write(&part, pings(100, 104)).unwrap();
    let data = dir.join("data");
    let (mut child, _, _) = start_args(&model, &data, &["--clock", "event", "--load", &part.display().to_string()]);
    child.kill().unwrap();
    let _ = child.wait();
    let marker = data.join("initial-load.unfinished");
    std::fs::write(&marker, "").unwrap();
    let file = dir.join("seed.ndjson");
    std::fs::write(&file, pings(0, 8)).unwrap();
    let load = file.display().to_string();
    let (mut child, addr, said) = start_args(&model, &data, &["--clock", "event", "--load", &load]);
    assert!(said.contains("did not finish; loading it again from the start"), "{said}");
    let (_, p) = http(addr, "GET", "/v1/entities/user/u0", "").unwrap();
    assert_eq!(p["tags"]["pings"], Value::from(2), "the whole load alone (p0, p4), nothing of the part");
    assert!(!marker.exists());
    child.kill().unwrap();
    let _ = child.wait();
    // Without the load to redo it, such a directory is not served at all.
    std::fs::write(&marker, "").unwrap();
    let stderr = start_fails(&model, &data, &[]);
    assert!(stderr.contains("holds an initial load that did not finish"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stop_under_load_ends_promptly_keeping_every_acknowledged_record() {
    let (dir, model) = with_model("stop", SEGMENT_MODEL);
    let data = dir.join("data");
    let (mut child, addr) = start(&model, &data);
    let (next, acked, stop) =
        (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (next, acked, stop) = (next.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                while stop.load(Ordering::Relaxed) == 0 {
                    let r = next.fetch_add(1, Ordering::Relaxed);
                    let body = format!(r#"{{"entity":"item","id":"i{r}","set":{{"v":{r}}}}}"#);
                    match http(addr, "POST", "/v1/records", &body) {
                        Some((200, _)) => acked.lock().unwrap().push(r),
                        // Refused while stopping, or the server is gone.
                        _ => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the server did not stop within 20 s of SIGTERM under load");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(1, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    let (mut child, addr) = start(&model, &data);
    assert_items_acknowledged(addr, &acked);
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let (dir, model) = with_model("locked", SEGMENT_MODEL);
    let data = dir.join("data");
    let (mut first, addr) = start(&model, &data);
    assert_eq!(http(addr, "POST", "/v1/records", &pings(0, 3)).unwrap().0, 200);
    let mut second = Command::new(env!("CARGO_BIN_EXE_segflow"))
        .args(["serve", &model.display().to_string(), "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while second.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second server started on a data directory in use");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stderr = String::new();
    second.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains(&format!("{} is in use by another segflow server", data.display())), "{stderr}");
    // The first is untouched, and once it is gone (however it ends) the
    // directory is free again, with what it acknowledged.
    assert_eq!(http(addr, "POST", "/v1/records", &pings(3, 6)).unwrap().0, 200);
    first.kill().unwrap();
    let _ = first.wait();
    let (mut third, addr) = start(&model, &data);
    let (status, user) = http(addr, "GET", "/v1/entities/user/u0", "").unwrap();
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["tags"]["pings"], serde_json::json!(2), "u0 had pings 0 and 4");
    third.kill().unwrap();
    let _ = third.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_log_recovered_at_start_is_snapshotted_at_the_next_clean_stop() {
    let (dir, model) = with_model("resnap", SEGMENT_MODEL);
    let data = dir.join("data");
    let (mut child, addr) = start_with(&model, &data, "100000");
    assert_eq!(http(addr, "POST", "/v1/records", &pings(0, 6)).unwrap().0, 200);
    child.kill().unwrap();
    let _ = child.wait();
    let (child, _) = start_with(&model, &data, "100000");
    // SIGTERM at once: the handler is in place by the time the address is printed.
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let mut child = child;
    assert!(child.wait().unwrap().success(), "a SIGTERM right after start is a clean stop");
    assert_eq!(
        segflow_runtime::snapshot::list(&data).unwrap().len(),
        1,
        "no new records, but the replayed log is covered"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wall_clock_expiries_are_logged_so_a_replay_keeps_their_times() {
    let (dir, model) = with_model("tick", &SEGMENT_MODEL.replace("within 5s", "within 1s"));
    let data = dir.join("data");
    let (mut child, addr, _) = start_args(&model, &data, &["--clock", "wall", "--snapshot-secs", "100000"]);
    let now = segflow_runtime::engine::wall_ms();
    // Slightly in the past, so both are inside the 1 s window when the batch lands.
    let body =
        (0..2).map(|i| format!(r#"{{"event":"ping","at":{},"user":"u1","n":{i}}}"#, now - 100 + i)).collect::<Vec<_>>();
    assert_eq!(http(addr, "POST", "/v1/records", &body.join("\n")).unwrap().0, 200);
    std::thread::sleep(Duration::from_millis(2600)); // the window runs out; a tick expires it
    child.kill().unwrap();
    let _ = child.wait();
    let restarted_at = segflow_runtime::engine::wall_ms();
    let (mut child, addr, _) = start_args(&model, &data, &["--clock", "wall", "--snapshot-secs", "100000"]);
    // Read the whole change log of `busy` from the start.
    let changes: Vec<Value> = common::next_events(&common::follow(addr, "/v1/segments/busy/changes", Some(0)), 2)
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[1]["change"], Value::from("exit"));
    let exit = changes[1]["time"].as_i64().unwrap();
    assert!(exit < restarted_at, "the exit keeps its original time ({exit}), not the restart's ({restarted_at})");
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts a server whose files may not grow past 64 KB (a soft `ulimit -f`),
/// the signal that limit sends ignored: a write past it fails, as on a full
/// disk.
#[cfg(target_os = "linux")]
fn start_with_a_full_disk(model: &Path, data: &Path) -> (Served, SocketAddr) {
    let mut limited = Command::new("bash");
    limited.args(["-c", r#"trap '' XFSZ; ulimit -S -f 64 && exec "$@""#, "bash", env!("CARGO_BIN_EXE_segflow")]);
    limited.args(["serve", &model.display().to_string(), "--clock", "event", "--listen", "127.0.0.1:0"]);
    limited.args(["--snapshot-secs", "100000", "--data-dir"]).arg(data);
    let (child, addr, _) = start_command(limited);
    (child, addr)
}

/// A log write that fails stops writes until a restart, even once the disk
/// has room again: after a torn entry, the next start would stop at the
/// damage. Reads go on meanwhile, no snapshot is taken (not even at a clean
/// shutdown: the engine holds a batch the log does not), and a restart
/// recovers exactly what was acknowledged.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_log_write_stops_writes_until_a_restart_and_loses_nothing_acknowledged() {
    let (dir, model) = with_model("logfull", MODEL);
    let data = dir.join("data");
    let (mut child, addr) = start_with_a_full_disk(&model, &data);
    let mut acknowledged = 0;
    let refused = loop {
        let (status, answer) = http(addr, "POST", "/v1/records", &pings(acknowledged, acknowledged + 20)).unwrap();
        if status != 200 {
            break (status, answer);
        }
        acknowledged += 20;
        assert!(acknowledged < 20_000, "the log never filled");
    };
    assert_eq!(refused.0, 503);
    assert!(refused.1.to_string().contains("write-ahead log failed"), "{}", refused.1);
    // The disk has room again; writes stay stopped, reads go on.
    // Only the soft limit, up to the hard one (unchanged, as any user may).
    let raised = Command::new("prlimit").arg(format!("--pid={}", child.id())).arg("--fsize=unlimited:").status();
    assert!(raised.expect("prlimit (util-linux) runs").success());
    let (status, answer) = http(addr, "POST", "/v1/records", &pings(acknowledged, acknowledged + 1)).unwrap();
    assert_eq!(status, 503, "{answer}");
    assert!(answer.to_string().contains("restarts"), "{answer}");
    let health = exchange(addr, "GET", "/healthz", "").unwrap();
    assert!(health.starts_with("HTTP/1.1 503") && health.contains("write-ahead log failed"), "{health}");
    let before = everything(addr, 4, 10);
    let (_, u0) = http(addr, "GET", "/v1/entities/user/u0", "").unwrap();
    assert_eq!(u0["tags"]["pings"], Value::from(acknowledged / 4), "{u0}");
    // A clean stop: its snapshot would hold the refused batch, so there is none.
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let _ = child.wait();
    assert!(segflow_runtime::snapshot::list(&data).unwrap().is_empty());
    // A restart recovers every acknowledged batch (cutting the torn entry)
    // and takes writes again.
    let (mut child, addr) = start(&model, &data);
    assert_eq!(everything(addr, 4, 10), before);
    assert_eq!(http(addr, "POST", "/v1/records", &pings(acknowledged, acknowledged + 4)).unwrap().0, 200);
    let (_, u0) = http(addr, "GET", "/v1/entities/user/u0", "").unwrap();
    assert_eq!(u0["tags"]["pings"], Value::from(acknowledged / 4 + 1), "{u0}");
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// As above with four writers at once, so that batches are in flight (sent
/// on while the one before is computed) when the log fails: whatever was
/// acknowledged is there after a restart, once, and nothing refused is.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_log_write_under_concurrent_writers_loses_nothing_acknowledged() {
    let (dir, model) = with_model("logfull-concurrent", MODEL);
    let data = dir.join("data");
    let (mut child, addr) = start_with_a_full_disk(&model, &data);
    let next = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let (mut acked, mut refused) = (Vec::new(), Vec::new());
                loop {
                    let r = next.fetch_add(1, Ordering::Relaxed);
                    assert!(r < 20_000, "the log never filled");
                    let body = format!(r#"{{"entity":"item","id":"i{r}","set":{{"v":{r}}}}}"#);
                    match http(addr, "POST", "/v1/records", &body) {
                        Some((200, _)) => acked.push(r),
                        Some((503, _)) => {
                            refused.push(r);
                            return (acked, refused);
                        }
                        other => panic!("unexpected answer to request {r}: {other:?}"),
                    }
                }
            })
        })
        .collect();
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for writer in writers {
        let (a, r) = writer.join().expect("writer");
        acked.extend(a);
        refused.extend(r);
    }
    assert!(!acked.is_empty() && !refused.is_empty());
    child.kill().unwrap();
    let _ = child.wait();
    let (mut child, addr) = start(&model, &data);
    assert_items_acknowledged(addr, &acked);
    for r in &refused {
        let (status, _) = http(addr, "GET", &format!("/v1/entities/item/i{r}"), "").unwrap();
        assert_eq!(status, 404, "refused request {r} was applied after the restart");
    }
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first `n` events of a change stream resumed after `last_id`: (id, data).
fn stream_events(addr: SocketAddr, segment: &str, last_id: u64, n: usize) -> Vec<(Option<u64>, Value)> {
    common::next_events(&common::follow(addr, &format!("/v1/segments/{segment}/changes"), Some(last_id)), n)
}

/// With old changes forgotten (`--keep-changes`), a restart keeps every
/// kept change, with its id and time, whether it starts from a snapshot or
/// replays the log after one, and a client behind the kept ones is still
/// told so. Under changed definitions the log is recomputed, but its ids
/// go on from the old ones, never naming a different change.
#[test]
fn a_restart_keeps_the_change_ids_of_a_log_that_forgets_its_oldest() {
    let model = "entity user { key id: string; }\nevent ping { user: user; }\nsegment pinged on user = exists(ping);\n";
    let (dir, model_path) = with_model("forget", model);
    let data = dir.join("data");
    for bad in ["0", "lots"] {
        let said = start_fails(&model_path, &data, &["--keep-changes", bad]);
        assert!(said.contains(&format!("--keep-changes takes a positive number of changes, not `{bad}`")), "{said}");
    }
    let flags = ["--clock", "event", "--snapshot-secs", "100000", "--keep-changes", "3"];
    let ping = |addr, u: u64| {
        let body = format!(r#"{{"event":"ping","id":"p{u}","at":{u}000,"user":"u{u}"}}"#);
        assert_eq!(http(addr, "POST", "/v1/records", &body).unwrap().0, 200);
    };
    // (id, key, time) of each change; u<n> entered at n s.
    let changes = |events: &[(Option<u64>, Value)]| -> Vec<(Option<u64>, String, i64)> {
        events
            .iter()
            .map(|(id, e)| (*id, e["key"].as_str().unwrap_or("").to_string(), e["time"].as_i64().unwrap_or(-1)))
            .collect()
    };
    let entered = |ids: std::ops::RangeInclusive<u64>| -> Vec<(Option<u64>, String, i64)> {
        ids.map(|u| (Some(u), format!("u{u}"), u as i64 * 1000)).collect()
    };
    let (child, addr, _) = start_args(&model_path, &data, &flags);
    for u in 1..=5 {
        ping(addr, u);
    }
    // A clean stop: the restart starts from its snapshot (a recomputation
    // would stamp the entries with the restart's time).
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let mut child = child;
    assert!(child.wait().unwrap().success());
    let (mut child, addr, _) = start_args(&model_path, &data, &flags);
    assert_eq!(changes(&stream_events(addr, "pinged", 3, 2)), entered(4..=5));
    let behind = stream_events(addr, "pinged", 1, 2);
    assert_eq!(behind[0].1["code"], "changes_forgotten", "{behind:?}");
    assert_eq!(changes(&behind[1..]), entered(3..=3));
    // One more, then a crash: the restart replays the log after the snapshot.
    ping(addr, 6);
    child.kill().unwrap();
    let _ = child.wait();
    let (child, addr, _) = start_args(&model_path, &data, &flags);
    assert_eq!(changes(&stream_events(addr, "pinged", 4, 2)), entered(5..=6));
    assert_eq!(stream_events(addr, "pinged", 2, 1)[0].1["code"], "changes_forgotten");
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let mut child = child;
    assert!(child.wait().unwrap().success());
    // Changed definitions: the recomputed entries come after id 6.
    std::fs::write(&model_path, format!("{model}tag user.pings = count(ping);\n")).unwrap();
    let (mut child, addr, _) = start_args(&model_path, &data, &flags);
    let events = stream_events(addr, "pinged", 3, 4);
    assert_eq!(events[0].1["code"], "changes_forgotten", "{events:?}");
    let ids: Vec<Option<u64>> = events[1..].iter().map(|e| e.0).collect();
    assert_eq!(ids, [Some(7), Some(8), Some(9)], "{events:?}");
    child.kill().unwrap();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
