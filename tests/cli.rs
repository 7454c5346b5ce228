//! The command line, as a user meets it: golden files of rendered diagnostics
//! and `explain` output, and `check` on valid files.
//!
//! Golden files sit beside their inputs; run with `UPDATE_GOLDEN=1` to rewrite
//! them after an intended change, and review the diff.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn segflow(args: &[&str]) -> (i32, String, String) {
    segflow_with(args, None, None)
}

/// `segflow ARGS` reading the file `stdin` (if given) through a pipe, as
/// `cat FILE | segflow ...` would (a pipe can be read only once), with
/// `RUST_LOG` set to `log` (unset if none): its exit code, standard output
/// and standard error.
fn segflow_with(args: &[&str], stdin: Option<&Path>, log: Option<&str>) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_segflow"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("RUST_LOG").env_remove("NO_COLOR");
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(log) = log {
        command.env("RUST_LOG", log);
    }
    let mut child = command.spawn().expect("segflow runs");
    let writer = stdin.map(|path| {
        let text = std::fs::read(path).expect("stdin file");
        let mut pipe = child.stdin.take().expect("piped stdin");
        // segflow may stop reading early (an error): a broken pipe is its answer.
        std::thread::spawn(move || drop(pipe.write_all(&text)))
    });
    let out = child.wait_with_output().expect("segflow runs");
    if let Some(writer) = writer {
        writer.join().expect("stdin writer");
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .expect("test directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Compares `actual` with the golden file, or rewrites it under UPDATE_GOLDEN.
fn golden(path: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{} differs (UPDATE_GOLDEN=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ))
    }
}

fn relative(p: &Path) -> String {
    p.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(p).display().to_string()
}

#[test]
fn every_error_file_gives_its_golden_diagnostics() {
    let mut failures = Vec::new();
    let inputs = files("tests/eql/errors", "eql");
    assert!(inputs.len() >= 12, "the error corpus is missing files");
    for input in inputs {
        let (code, stdout, stderr) = segflow(&["check", &relative(&input)]);
        assert_eq!(code, 1, "{}: check must fail\n{stderr}", input.display());
        assert!(stdout.is_empty());
        assert!(stderr.contains(&format!("{}:", relative(&input))), "errors name file:line:col");
        if let Err(e) = golden(&input.with_extension("stderr"), &stderr) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_files_check_clean() {
    for input in files("tests/eql/valid", "eql") {
        let (code, stdout, stderr) = segflow(&["check", &relative(&input)]);
        assert_eq!(code, 0, "{}:\n{stderr}", input.display());
        assert!(stdout.starts_with("ok: "), "{stdout}");
    }
    let (code, stdout, stderr) = segflow(&["check", "examples/retail/retail.eql", "examples/retail/queries.eql"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("3 entities, 4 events"), "{stdout}");
}

#[test]
fn several_files_compile_as_one_program_and_errors_name_their_file() {
    let (code, _, stderr) = segflow(&["check", "examples/retail/retail.eql", "tests/eql/errors/unknown_field.eql"]);
    assert_eq!(code, 1);
    // The second file redeclares the model: duplicates are reported in that file.
    assert!(stderr.contains("tests/eql/errors/unknown_field.eql:1:8"), "{stderr}");
}

#[test]
fn explain_output_is_golden() {
    let mut failures = Vec::new();
    for (args, file) in [
        (vec!["explain", "examples/retail/retail.eql"], "tests/golden/retail.plan.txt"),
        (vec!["explain", "examples/retail/retail.eql", "--stage", "hir"], "tests/golden/retail.hir.txt"),
        (vec!["explain", "examples/retail/retail.eql", "--format", "dot"], "tests/golden/retail.plan.dot"),
        (
            vec!["explain", "tests/eql/valid/eql_md_examples.eql", "--stage", "ast"],
            "tests/golden/eql_md_examples.ast.txt",
        ),
    ] {
        let (code, stdout, stderr) = segflow(&args);
        assert_eq!(code, 0, "{stderr}");
        if let Err(e) = golden(&Path::new(env!("CARGO_MANIFEST_DIR")).join(file), &stdout) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn explain_shows_lineage_shared_nodes_and_arrangements() {
    let (_, stdout, _) = segflow(&["explain", "examples/retail/retail.eql"]);
    assert!(stdout.contains("lineage:"));
    assert!(stdout.contains("user.shoe_spend_90d <- "));
    assert!(stdout.contains("(shared, see above)"));
    assert!(stdout.contains("ArrangeBy"));
}

#[test]
fn bad_usage_is_explained() {
    let (code, _, stderr) = segflow(&["explain", "examples/retail/retail.eql", "--stag", "hir"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("did you mean --stage?"), "{stderr}");
    let (code, _, stderr) = segflow(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown command"));
}

#[test]
fn run_refuses_invalid_records_and_lists_them_all() {
    let dir = std::env::temp_dir().join(format!("segflow-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("bad.ndjson");
    std::fs::write(
        &data,
        concat!(
            r#"{"event":"order","id":"o1","at":"2026-11-20T10:00:00Z","user":"u1","store":null,"product":"p1","amount":"9.99","quantity":1}"#, "\n",
            r#"{"event":"order","id":"o2","at":"yesterday","user":"u1","store":null,"product":"p1","amount":1,"quantity":1}"#, "\n",
            r#"{"event":"order","id":"o3","at":1795132800000,"user":"u1","product":"p1","amount":true,"quantity":1}"#, "\n",
            r#"{"event":"orders","id":"o4"}"#, "\n",
            r#"{"entity":"user","id":"u1","set":{"city":"Shanghai","shoe_size":42}}"#, "\n",
        ),
    )
    .unwrap();
    let data = data.display().to_string();
    let (code, stdout, stderr) = segflow(&["run", "examples/retail/retail.eql", "--events", &data]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "nothing applied, nothing printed");
    assert!(stderr.contains("bad.ndjson: line 2: field `at`"), "{stderr}");
    assert!(stderr.contains("line 3: field `amount`: expected a decimal"), "{stderr}");
    assert!(stderr.contains("line 4: field `event`: unknown event `orders`"), "{stderr}");
    assert!(stderr.contains("3 invalid records; nothing was applied"), "{stderr}");
    assert!(stderr.contains("unknown attribute `shoe_size`"), "{stderr}");
    let (code, stdout, stderr) = segflow(&["run", "examples/retail/retail.eql", "--events", &data, "--skip-invalid"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(r#""id":"u1","attributes":{"city":"Shanghai"}"#), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_with_one_or_two_workers_and_any_batch_size_prints_byte_identical_dumps() {
    let dir = std::env::temp_dir().join(format!("segflow-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("retail.ndjson").display().to_string();
    // Enough events that one batch's updates reach the workers in several
    // pieces, and enough users that the dump renders them in several runs.
    let (code, _, stderr) = segflow(&["gen", "--users", "20000", "--events", "60000", "--seed", "5", "--out", &data]);
    assert_eq!(code, 0, "{stderr}");
    let mut dumps = Vec::new();
    for workers in ["1", "2"] {
        let (code, stdout, stderr) = segflow(&[
            "run",
            "examples/retail/retail.eql",
            "--events",
            &data,
            "--workers",
            workers,
            "--batch-size",
            "6000",
        ]);
        assert_eq!(code, 0, "{stderr}");
        dumps.push(stdout);
    }
    // The default applies everything as one batch; the final state is the same.
    let (code, one_batch, stderr) =
        segflow(&["run", "examples/retail/retail.eql", "--events", &data, "--workers", "2"]);
    assert_eq!(code, 0, "{stderr}");
    // Every instance once, ordered by entity, then key.
    let order: Vec<(String, String)> = dumps[0]
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["entity"].as_str().unwrap().to_string(), v["id"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(order.len() > 20_000, "{} profiles", order.len());
    assert!(order.windows(2).all(|w| w[0] < w[1]), "the dump is not in (entity, key) order");
    assert!(dumps[0] == dumps[1], "--workers 1 and --workers 2 differ");
    assert!(dumps[0] == one_batch, "batches of 6000 and one batch differ");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `segflow gen` data for 2,000 users in a fresh temporary directory `name`:
/// (the directory, the file `file` in it, its text).
fn generated(name: &str, file: &str, events: &str, seed: &str) -> (PathBuf, PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("segflow-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    let data = path.display().to_string();
    let (code, _, stderr) = segflow(&["gen", "--users", "2000", "--events", events, "--seed", seed, "--out", &data]);
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    (dir, path, text)
}

#[test]
fn a_large_file_decoded_in_parallel_names_the_right_lines() {
    let (dir, path, text) = generated("parallel", "big.ndjson", "40000", "2");
    let data = path.display().to_string();
    assert!(text.len() > 4 << 20, "the file must be large enough to be split ({} bytes)", text.len());
    // One bad record in the middle (in a later piece than the first) and one at the end.
    let lines: Vec<&str> = text.lines().collect();
    let middle = lines.len() * 3 / 4;
    let bad = r#"{"event":"order","id":"bad","at":"never"}"#;
    let mut edited: Vec<&str> = lines[..middle].to_vec();
    edited.push(bad);
    edited.extend_from_slice(&lines[middle..]);
    edited.push(bad);
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();
    let (code, stdout, stderr) = segflow(&["run", "examples/retail/retail.eql", "--events", &data]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "nothing applied, nothing printed");
    assert!(stderr.contains(&format!("big.ndjson: line {}: field `at`", middle + 1)), "{stderr}");
    assert!(stderr.contains(&format!("big.ndjson: line {}: field `at`", edited.len())), "{stderr}");
    assert!(stderr.contains("2 invalid records; nothing was applied"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_shows_the_first_twenty_warnings_and_counts_them_all() {
    // Undeclared fields on a few order lines early in the file and on many
    // from two thirds of it on: the first 20 warnings in file order are
    // shown, and every one is counted, whether the file is streamed in
    // runs or (with --batch-size) loaded whole in pieces decoded in
    // parallel, the later piece's warnings after the earlier one's.
    let (dir, path, text) = generated("warned", "warned.ndjson", "40000", "3");
    let data = path.display().to_string();
    assert!(text.len() > 4 << 20, "the file must be large enough to be split ({} bytes)", text.len());
    let total = text.lines().count();
    let (mut warned, mut early) = (Vec::new(), 0);
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, line)| match line.strip_prefix("{\"event\":\"order\",") {
            Some(rest) if (i > total / 5 && early < 5) || (i > total * 2 / 3 && i % 3 == 0) => {
                early += usize::from(i < total * 2 / 3);
                warned.push(i + 1);
                format!("{{\"event\":\"order\",\"source\":\"sdk\",{rest}")
            }
            _ => line.to_string(),
        })
        .collect();
    assert!(warned.len() > 500, "{} lines warned of", warned.len());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    for extra in [&[][..], &["--batch-size", "1000000"][..]] {
        let mut args = vec!["run", "examples/retail/retail.eql", "--events", &data, "--out", "-"];
        args.extend_from_slice(extra);
        let (code, _, stderr) = segflow(&args);
        assert_eq!(code, 0, "{stderr}");
        let shown: Vec<&str> = stderr.lines().filter(|l| l.contains("unknown field `source`")).collect();
        assert_eq!(shown.len(), 20, "{extra:?}: {stderr}");
        for (line, number) in shown.iter().zip(&warned) {
            assert!(line.contains(&format!("warned.ndjson: line {number}: ")), "{extra:?}: {line}, not line {number}");
        }
        assert!(stderr.contains(&format!("… and {} more warnings", warned.len() - 20)), "{extra:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `segflow run` of the retail example over `data` (info logs on), read from
/// standard input (`--events -`) when `stdin` is set.
fn run_events(data: &Path, stdin: bool, extra: &[&str]) -> (i32, String, String) {
    let path = data.display().to_string();
    let mut args = vec!["run", "examples/retail/retail.eql", "--events", if stdin { "-" } else { &path }];
    args.extend_from_slice(extra);
    segflow_with(&args, Some(data), Some("info"))
}

#[test]
fn logs_to_a_file_or_pipe_have_no_colour_codes() {
    let (dir, path, _) = generated("plain-logs", "data.ndjson", "2000", "1");
    let path = path.display().to_string();
    let args = ["run", "examples/retail/retail.eql", "--events", &path, "--out", "/dev/null"];
    let (code, _, stderr) = segflow_with(&args, None, Some("debug"));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("batch applied"), "a debug log line is written: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_streamed_run_gives_what_its_records_decoded_whole_give() {
    // One batch is decoded and fed in runs of 16,384 lines, in one pass: its
    // `now` is settled by its last record, and guessed meanwhile from the
    // file's last lines. With --batch-size every record is decoded first and
    // the clock reads the decoded batch. The file has several runs and a
    // redelivery in a later run than its first delivery. Some files end with
    // a record whose time the clock must not take (a redelivery's later time,
    // an invalid event's: a guess too late), one with an event whose `at`
    // follows fields named and valued "at" (the guess, read as any record).
    // Two give a guess too early: one has its events newest first (the clock
    // passes the guess at once), one ends with over 64 KB of events older
    // than the rest (the clock passes it run by run: rows sent on it are
    // taken back as it goes).
    let (dir, path, text) = generated("stream", "data.ndjson", "70000", "3");
    let first_order = text.lines().find(|l| l.starts_with(r#"{"event":"order""#)).unwrap();
    let mut redelivery: serde_json::Value = serde_json::from_str(first_order).unwrap();
    redelivery["at"] = "2030-01-01T00:00:00Z".into();
    let invalid = r#"{"event":"order","id":"broken","at":"2031-01-01T00:00:00Z","user":"u0000001","product":"p000001","quantity":1,"amount":"lots"}"#;
    let tricky =
        r#"{"event":"page_view","id":"tricky","url":"/at","channel":"at","user":"u0000002","at" : 1795200000000}"#;
    let (entities, events): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.starts_with(r#"{"entity""#));
    let newest_first = [entities, events.iter().rev().copied().collect()].concat().join("\n") + "\n";
    let late: Vec<String> = events[..1000].iter().map(|l| l.replacen(r#""id":""#, r#""id":"late-"#, 1)).collect();
    let old_tail = format!("{text}{}\n", late.join("\n"));
    assert!(late.join("\n").len() > 64 << 10, "the tail read for the guess holds only old events");
    let whole = ["--batch-size", "1000000000"];
    // (content, extra arguments)
    let cases = [
        (format!("{text}{tricky}\n"), vec![]),
        (format!("{text}{redelivery}\n"), vec![]),
        (format!("{text}{invalid}\n"), vec!["--skip-invalid"]),
        (format!("{text}{redelivery}\n"), vec!["--now", "2026-11-01T00:00:00Z"]),
        (newest_first, vec![]),
        (old_tail, vec![]),
    ];
    for (content, extra) in cases {
        std::fs::write(&path, &content).unwrap();
        assert!(content.lines().count() > 4 * 16_384, "the file must take several runs");
        let (code, streamed, stderr) = run_events(&path, false, &extra);
        assert_eq!(code, 0, "{extra:?}: {stderr}");
        let summary =
            |e: &str| e.lines().find(|l| l.starts_with("segflow: ")).unwrap().split(" in ").next().unwrap().to_string();
        let now = |e: &str| {
            e.lines().find(|l| l.starts_with("segflow: ")).unwrap().split("now = ").nth(1).unwrap().to_string()
        };
        let (code, loaded, loaded_stderr) = run_events(&path, false, &[&extra[..], &whole].concat());
        assert_eq!(code, 0, "{extra:?}: {loaded_stderr}");
        assert!(streamed == loaded, "{extra:?}: the streamed run differs from the run decoded whole");
        assert_eq!(summary(&stderr), summary(&loaded_stderr), "{extra:?}");
        assert_eq!(now(&stderr), now(&loaded_stderr), "{extra:?}");
        // Said once.
        let said = |e: &str| e.lines().filter(|l| l.contains("field `amount`") || l.contains("skipped")).count();
        assert_eq!(said(&stderr), said(&loaded_stderr), "{extra:?}: {stderr}");
        if extra.is_empty() {
            let (code, piped, _) = run_events(&path, true, &extra);
            assert_eq!(code, 0);
            assert!(piped == streamed, "standard input streams like a file");
        }
    }
    // Without --skip-invalid an invalid record in a later run stops the run,
    // named by its line, and nothing is written.
    std::fs::write(&path, format!("{text}{invalid}\n")).unwrap();
    let (code, stdout, stderr) = run_events(&path, false, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "nothing applied, nothing printed");
    let line = text.lines().count() + 1;
    assert_eq!(stderr.matches(&format!("data.ndjson: line {line}: field `amount`")).count(), 1, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn operator_profile_names_plan_nodes() {
    let data = std::env::temp_dir().join(format!("segflow-profile-{}.ndjson", std::process::id()));
    let data = data.display().to_string();
    let (code, _, stderr) = segflow(&["gen", "--users", "100", "--events", "1000", "--out", &data]);
    assert_eq!(code, 0, "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_segflow"))
        .args(["run", "examples/retail/retail.eql", "--events", &data, "--out", "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SEGFLOW_PROFILE", "operators")
        .output()
        .expect("segflow runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("worker 0:") && stderr.contains("in operators"), "{stderr}");
    // Rows name an operator and the plan node that made it.
    assert!(stderr.lines().any(|l| l.contains(" op ") && l.contains(" %") && l.contains("Gather")), "{stderr}");
    let _ = std::fs::remove_file(&data);
}

/// A server's workers print their profiles as it stops: the process must
/// not end (once its shutdown is acknowledged) before they have.
#[test]
fn a_profiled_server_prints_every_workers_operators_when_stopped() {
    use std::io::{BufRead, BufReader, Read};
    // Its own data directory: `serve` keeps its log and snapshots in
    // ./segflow-data by default, which would be the checkout's.
    let dir = std::env::temp_dir().join(format!("segflow-profiled-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.eql");
    std::fs::write(
        &model,
        "entity user { key id: string; }\nevent ping { user: user; }\ntag user.pings = count(ping);\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_segflow"))
        .args(["serve", &model.display().to_string(), "--listen", "127.0.0.1:0", "--workers", "2", "--data-dir"])
        .arg(dir.join("data"))
        .env("SEGFLOW_PROFILE", "operators")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("segflow serve starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("on http://") {
        line.clear();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "the server stopped before serving");
    }
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    for worker in ["worker 0:", "worker 1:"] {
        assert!(rest.lines().any(|l| l.contains(worker) && l.contains("in operators")), "{rest}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_program() {
    let path = std::env::temp_dir().join(format!("segflow-bom-{}.eql", std::process::id()));
    std::fs::write(&path, "\u{feff}entity user { key id: string; }\nsegment all on user = id is not null;\n").unwrap();
    let (code, stdout, stderr) = segflow(&["check", &path.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok: 1 entities"), "{stdout}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn run_piped_into_a_reader_that_stops_early_is_not_an_error() {
    let dir = std::env::temp_dir().join(format!("segflow-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("retail.ndjson").display().to_string();
    assert_eq!(segflow(&["gen", "--users", "300", "--events", "2000", "--out", &data]).0, 0);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' run examples/retail/retail.eql --events '{data}' | head -n 1",
            env!("CARGO_BIN_EXE_segflow")
        ))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(!stderr.contains("error"), "a closed pipe is not reported as an error: {stderr}");
    assert!(stderr.contains("segflow: "), "the summary is still printed: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `look` at a `segflow serve` of the retail model, started with `flags` and
/// the environment variables `env`, once it serves (its process id).
#[cfg(target_os = "linux")]
fn with_server<T>(name: &str, flags: &[&str], env: &[(&str, &str)], look: impl FnOnce(u32) -> T) -> T {
    use std::io::{BufRead, BufReader};
    let data = std::env::temp_dir().join(format!("segflow-{name}-{}", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_segflow"));
    command.args(["serve", "examples/retail/retail.eql", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data);
    command.args(flags).envs(env.iter().copied());
    command.current_dir(env!("CARGO_MANIFEST_DIR")).stdout(Stdio::null()).stderr(Stdio::piped());
    /// Stops the server and removes its data, even when `look` panics.
    struct Started(std::process::Child, PathBuf);
    impl Drop for Started {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let mut started = Started(command.spawn().expect("segflow serve starts"), data);
    // Once it serves, `main` is long past its first lines.
    let serving = BufReader::new(started.0.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("on http://"));
    assert!(serving, "the server did not start");
    look(started.0.id())
}

/// Whether the kernel may back a started `segflow serve` with 2 MB pages
/// (`THP_enabled` of /proc/PID/status: the process's own setting), with
/// `SEGFLOW_HUGE_PAGES` set to `huge_pages` if given; None on a kernel
/// that does not say.
#[cfg(target_os = "linux")]
fn huge_pages_allowed(huge_pages: Option<&str>) -> Option<bool> {
    let env: Vec<(&str, &str)> = huge_pages.map(|v| ("SEGFLOW_HUGE_PAGES", v)).into_iter().collect();
    let status = with_server(&format!("pages-{}", huge_pages.is_some()), &[], &env, |pid| {
        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap()
    });
    let field = status.lines().find_map(|l| l.strip_prefix("THP_enabled:"))?;
    Some(field.trim() == "1")
}

/// One HTTP thread unless told otherwise: two, beside a client's two
/// threads on a 2-core machine, took turns with them, and the p99 of
/// lookups was a scheduler tick (BENCHMARKS.md, forty-first session).
#[cfg(target_os = "linux")]
#[test]
fn a_server_answers_on_as_many_http_threads_as_asked() {
    let http_threads = |flags: &[&str]| {
        with_server("http-threads", flags, &[], |pid| {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
            let names = tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok());
            names.filter(|name| name.trim() == "segflow-http").count()
        })
    };
    assert_eq!(http_threads(&[]), 1);
    assert_eq!(http_threads(&["--http-threads", "3"]), 3);
    for bad in ["0", "65", "many"] {
        let (code, _, stderr) = segflow(&["serve", "examples/retail/retail.eql", "--http-threads", bad]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("--http-threads takes a number from 1 to 64"), "{stderr}");
    }
}

/// 4 KB pages unless asked otherwise (BENCHMARKS.md, eighth session: first
/// touches of 2 MB pages cost five times as much on the VM measured).
#[cfg(target_os = "linux")]
#[test]
fn the_process_asks_for_small_pages_unless_told_not_to() {
    let Some(default) = huge_pages_allowed(None) else {
        eprintln!("skipped: this kernel's /proc/PID/status has no THP_enabled");
        return;
    };
    assert!(!default, "2 MB pages were left on");
    assert_eq!(huge_pages_allowed(Some("1")), Some(true), "SEGFLOW_HUGE_PAGES=1 is not honoured");
}

/// `segflow gen --model` data for `model` (its files, in order) in the
/// temporary directory `dir`; then `segflow run` of that model over it:
/// the dump. Every record must be accepted without a warning.
fn generated_for_model(dir: &Path, model: &[&str], users: &str, events: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let data = dir.join("data.ndjson").display().to_string();
    let mut args = vec!["gen"];
    for file in model {
        args.extend(["--model", file]);
    }
    args.extend(["--users", users, "--events", events, "--seed", "3", "--out", &data]);
    let (code, _, stderr) = segflow(&args);
    assert_eq!(code, 0, "{model:?}: {stderr}");
    assert!(stderr.contains("segflow gen: instances: "), "{stderr}");
    let mut args: Vec<&str> = vec!["run"];
    args.extend(model);
    args.extend(["--events", &data]);
    let (code, dump, stderr) = segflow(&args);
    assert_eq!(code, 0, "{model:?}: {stderr}");
    assert!(!stderr.contains("warning"), "{model:?}: {stderr}");
    dump
}

#[test]
fn gen_writes_data_every_model_of_the_repository_accepts_and_its_segments_find_members() {
    let dir = std::env::temp_dir().join(format!("segflow-gen-models-{}", std::process::id()));
    let retail = "examples/retail/retail.eql";
    // These add definitions to the retail example, and compile only after it.
    let additions = ["many_segments.eql", "store_fans.eql", "store_tests.eql"];
    let mut models = vec![vec![retail.to_string()]];
    for path in files("bench/models", "eql") {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let path = path.display().to_string();
        models.push(if additions.contains(&name.as_str()) { vec![retail.to_string(), path] } else { vec![path] });
    }
    assert!(models.len() >= 8, "{models:?}");
    let dumps: Vec<String> = models
        .iter()
        .map(|model| {
            let model: Vec<&str> = model.iter().map(String::as_str).collect();
            let dump = generated_for_model(&dir, &model, "400", "6000");
            assert!(dump.contains(r#""segments":[""#), "{model:?}: no instance is in any segment");
            dump
        })
        .collect();
    // The retail model (the first) compares the channel with "app" and a
    // product's category with "shoes": both are common values, so the tags
    // that count them are not all zero.
    let dump = &dumps[0];
    for tag in ["app_views_7d", "shoe_spend_90d"] {
        let zero = format!("\"{tag}\":0,");
        let nonzero = dump.lines().filter(|l| l.contains(&format!("\"{tag}\":")) && !l.contains(&zero)).count();
        assert!(nonzero > 10, "{tag}: {nonzero} users");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A random model: entities with a string or int key and attributes of
/// every type (references to any entity among them), and events whose
/// fields are likewise random, each counted by a tag where it refers to an
/// entity.
fn random_schema(seed: u64) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut below = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let entities = 1 + below(3);
    let ty = |below: &mut dyn FnMut(u64) -> u64| {
        let nullable = if below(2) == 0 { "?" } else { "" };
        match below(7) {
            0 => format!("bool{nullable}"),
            1 => format!("int{nullable}"),
            2 => format!("float{nullable}"),
            3 => format!("decimal{nullable}"),
            4 => format!("timestamp{nullable}"),
            5 => format!("e{}{nullable}", below(entities)),
            _ => format!("string{nullable}"),
        }
    };
    let mut text = String::new();
    for e in 0..entities {
        let key = if below(2) == 0 { "string" } else { "int" };
        text.push_str(&format!("entity e{e} {{ key k: {key};"));
        for a in 0..below(5) {
            text.push_str(&format!(" a{a}: {};", ty(&mut below)));
        }
        text.push_str(" }\n");
    }
    let mut tags = String::new();
    for v in 0..below(4) {
        text.push_str(&format!("event v{v} {{"));
        for f in 0..below(5) {
            let t = ty(&mut below);
            if let Some(entity) = t.strip_prefix('e') {
                tags.push_str(&format!("tag e{}.v{v}_f{f} = count(v{v} by f{f});\n", entity.trim_end_matches('?')));
            }
            text.push_str(&format!(" f{f}: {t};"));
        }
        text.push_str(" }\n");
    }
    text + &tags
}

#[test]
fn gen_writes_data_that_random_models_accept() {
    let dir = std::env::temp_dir().join(format!("segflow-gen-random-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.eql");
    for seed in 0..24 {
        let text = random_schema(seed);
        std::fs::write(&model, &text).unwrap();
        let model = model.display().to_string();
        let (code, _, stderr) = segflow(&["check", &model]);
        assert_eq!(code, 0, "seed {seed}: the model does not compile:\n{text}\n{stderr}");
        let dump = generated_for_model(&dir, &[&model], "50", "800");
        assert!(dump.lines().count() >= 50, "seed {seed}:\n{text}\n{dump}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
