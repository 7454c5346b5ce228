//! `segflow`: the command line. Argument parsing and wiring only; the work is
//! done by the grammar, compiler, runtime and gen crates.

mod gen_schema;

use segflow_compiler::{compile, explain, Compiled, SourceMap};
use segflow_runtime::load::{load_files, Loaded, KEPT_WARNINGS};
use segflow_runtime::{Clock, Decoder, Engine, EngineConfig};
use std::io::Write;
use std::process::ExitCode;

// Rows, batches and decoded records are many small, short-lived allocations
// spread over several threads; mimalloc serves those with less locking and
// fewer page faults than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
segflow — live segmentation: EQL compiled to differential dataflow

usage:
  segflow check FILE.eql...                     check definitions; print every error
  segflow explain FILE.eql... [--stage ast|hir|plan] [--format text|dot|json]
                                                show a compiler stage (default: the plan)
  segflow run FILE.eql... --events DATA.ndjson... [--now T] [--workers N]
              [--out PATH] [--skip-invalid] [--batch-size N] [--changes PATH]
                                                run records through the dataflow and print
                                                the profile dump (EQL.md §11)
  segflow serve FILE.eql... [--listen 127.0.0.1:7878] [--workers N] [--clock wall|event]
              [--http-threads N] [--load DATA.ndjson...] [--demo-data] [--data-dir DIR]
              [--snapshot-secs N] [--keep-changes N]
                                                serve the v1 HTTP API (profiles, segments,
                                                change streams, metrics) until Ctrl-C
  segflow gen [--model FILE.eql...] [--users N] [--events M] [--seed S] [--days D] [--out FILE]
                                                synthetic data for examples/retail/retail.eql,
                                                or for any model

Set RUST_LOG=debug for structured logs on standard error.";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal (in a log file they are noise),
        // and not there either under NO_COLOR (no-color.org), which an
        // explicit `with_ansi` would override.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    small_pages_only();
    no_heap_teardown_at_exit();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "check" => check(rest),
        "explain" => explain_cmd(rest),
        "run" => run(rest),
        "gen" => gen(rest),
        "serve" => serve(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        "--version" | "version" => {
            println!("segflow {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Flags with values and positional arguments, in the simple form every command uses.
struct Args {
    positional: Vec<String>,
    flags: Vec<(String, Vec<String>)>,
}

impl Args {
    /// `multi` flags take every following non-flag argument.
    fn parse(args: &[String], valued: &[&str], multi: &[&str], switches: &[&str]) -> Result<Args, String> {
        let mut out = Args { positional: Vec::new(), flags: Vec::new() };
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if let Some(name) = a.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (name, None),
                };
                if switches.contains(&name) {
                    out.flags.push((name.to_string(), vec![]));
                } else if valued.contains(&name) {
                    let v = match inline {
                        Some(v) => v,
                        None => {
                            i += 1;
                            args.get(i).cloned().ok_or_else(|| format!("--{name} needs a value"))?
                        }
                    };
                    out.flags.push((name.to_string(), vec![v]));
                } else if multi.contains(&name) {
                    let mut values: Vec<String> = inline.into_iter().collect();
                    while i + 1 < args.len() && (!args[i + 1].starts_with("--") || args[i + 1] == "-") {
                        i += 1;
                        values.push(args[i].clone());
                    }
                    if values.is_empty() {
                        return Err(format!("--{name} needs at least one file"));
                    }
                    out.flags.push((name.to_string(), values));
                } else {
                    let all: Vec<&str> = valued.iter().chain(multi).chain(switches).copied().collect();
                    let hint = segflow_grammar::did_you_mean(name, all.iter().copied())
                        .map(|s| format!(" (did you mean --{s}?)"))
                        .unwrap_or_default();
                    return Err(format!("unknown flag --{name}{hint}"));
                }
            } else {
                out.positional.push(a.clone());
            }
            i += 1;
        }
        Ok(out)
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.first().map(String::as_str))
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.flags.iter().filter(|(n, _)| n == name).flat_map(|(_, v)| v.clone()).collect()
    }
    fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }
}

/// Reads and compiles EQL files; on errors prints them all and returns `Err(exit code)`.
fn compile_files(files: &[String]) -> Result<Result<(SourceMap, Compiled), ExitCode>, String> {
    if files.is_empty() {
        return Err("no EQL file given".into());
    }
    let mut sources = SourceMap::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("cannot read {f}: {e}"))?;
        sources.add(f.clone(), text);
    }
    match compile(&sources) {
        Ok(compiled) => {
            if !compiled.warnings.is_empty() {
                eprint!("{}", sources.render(&compiled.warnings));
            }
            Ok(Ok((sources, compiled)))
        }
        Err(diagnostics) => {
            eprint!("{}", sources.render(&diagnostics));
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            eprintln!("error: {} found {errors} error{}", files.join(", "), if errors == 1 { "" } else { "s" });
            Ok(Err(ExitCode::FAILURE))
        }
    }
}

fn check(args: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(args, &[], &[], &[])?;
    let (_, compiled) = match compile_files(&args.positional)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let p = &compiled.program;
    let tags = p.tags.iter().filter(|t| !t.anonymous).count();
    let lifted = p.tags.len() - tags;
    println!(
        "ok: {} entities, {} events, {} tags ({} lifted aggregates), {} segments, {} queries in {}",
        p.entities.len(),
        p.events.len(),
        tags,
        lifted,
        p.segments.len(),
        p.queries.len(),
        args.positional.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn explain_cmd(args: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(args, &["stage", "format"], &[], &[])?;
    let stage = args.get("stage").unwrap_or("plan");
    let format = args.get("format").unwrap_or("text");
    let (_, compiled) = match compile_files(&args.positional)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let text = match (stage, format) {
        ("ast", "text") => format!("{}\n", compiled.ast),
        ("ast", "json") => json(&compiled.ast)?,
        ("hir", "text") => explain::hir_text(&compiled.program),
        ("hir", "json") => json(&compiled.program)?,
        ("plan", "text") => explain::plan_text(&compiled.plan),
        ("plan", "dot") => explain::plan_dot(&compiled.plan),
        ("plan", "json") => json(&compiled.plan)?,
        ("ast" | "hir" | "plan", f) => {
            return Err(format!("--format {f} is not available for --stage {stage} (text, json; dot for the plan)"))
        }
        (s, _) => return Err(format!("unknown stage `{s}`: expected ast, hir or plan")),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Stops the kernel backing this process with 2 MB pages (mimalloc asks for
/// them), unless `SEGFLOW_HUGE_PAGES=1`. On a VM like ours a 2 MB page comes
/// from blocks the host has taken back (free-page reporting works in 2 MB
/// blocks) and costs ~2 ms a MB to touch the first time, 4 KB pages ~0.4 ms:
/// a batch run, which touches most of its memory once, is ~18 % faster, and a
/// server, whose history grows every batch, no longer has a batch now and
/// then wait milliseconds for a fresh 2 MB page (BENCHMARKS.md, eighth
/// session). Where the kernel refuses, nothing changes but the speed.
#[cfg(target_os = "linux")]
fn small_pages_only() {
    if std::env::var_os("SEGFLOW_HUGE_PAGES").is_some_and(|v| v == "1") {
        return;
    }
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages stay on");
    }
}

#[cfg(not(target_os = "linux"))]
fn small_pages_only() {}

/// Tells mimalloc not to walk its heap when the process exits. Linked into
/// the program (not a library loaded and unloaded), it otherwise visits
/// every page and hands each back to the kernel at exit: ~16 ms after a
/// 1M-event `run` (~700 MB; perf), for memory the kernel takes back anyway.
/// (`destroy_on_exit` above 1 skips the allocator's exit routine; 1 would
/// destroy every arena, 0 is the default.) That routine also prints
/// mimalloc's statistics, so `MIMALLOC_SHOW_STATS` no longer does, and a
/// `MIMALLOC_DESTROY_ON_EXIT` given in the environment is overridden.
#[allow(unsafe_code)]
fn no_heap_teardown_at_exit() {
    // SAFETY: `mi_option_set` is a plain, unsynchronized write; this runs
    // at the start of `main`, before any other thread exists, and the
    // option is read only by the exit routine.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_DESTROY_ON_EXIT, 2) }
}

/// `mi_option_destroy_on_exit` in the vendored mimalloc.h's `mi_option_t`
/// (the crate names only some of the options). The enum's length is
/// checked, so that a version of the crate whose options moved fails to
/// build instead of setting another option.
const MI_OPTION_DESTROY_ON_EXIT: libmimalloc_sys::mi_option_t = 22;
const _: () =
    assert!(libmimalloc_sys::_mi_option_last == 47, "mimalloc's options moved: check MI_OPTION_DESTROY_ON_EXIT");

fn json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map(|s| s + "\n").map_err(|e| e.to_string())
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(args, &["now", "workers", "out", "batch-size", "changes"], &["events"], &["skip-invalid"])?;
    let events = args.all("events");
    if events.is_empty() {
        return Err("`segflow run` needs --events DATA.ndjson (one or more files; - for standard input)".into());
    }
    let workers = workers(&args)?;
    // By default every record is one batch: the dump depends only on the final
    // state, and each batch costs a pass over every instance it touches (with
    // batches of 100k records a 1M-event backfill took 2.4x as long).
    let batch_size: Option<usize> = match args.get("batch-size") {
        Some(b) => Some(b.parse().ok().filter(|n| *n > 0).ok_or("--batch-size takes a positive number")?),
        None => None,
    };
    let clock = match args.get("now") {
        None => Clock::Event,
        Some(t) => Clock::Fixed(parse_now(t)?),
    };
    let (_, compiled) = match compile_files(&args.positional)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let decoder = Decoder::new(&compiled.plan);
    let started = std::time::Instant::now();
    let config =
        EngineConfig { workers, clock, retain_events: false, keep_changes: usize::MAX, workers_below_engine: true };
    let files: Vec<String> =
        events.iter().map(|f| if f == "-" { "/dev/stdin".to_string() } else { f.clone() }).collect();
    // One batch streams: its records are decoded a run at a time and fed as they
    // are decoded, so they are never all held decoded. Batches of --batch-size
    // each take their own clock, so those records are decoded whole first.
    let applied = match batch_size {
        None => run_streamed(&compiled.plan, &decoder, config, &files, args.has("skip-invalid"))?,
        Some(size) => run_loaded(&compiled.plan, &decoder, config, &files, size, args.has("skip-invalid"))?,
    };
    let Applied { engine, records: events_applied, duplicates, before: (before_label, before_time) } = match applied {
        Ok(applied) => applied,
        Err(code) => return Ok(code),
    };
    let elapsed = started.elapsed();
    let state = engine.state();
    let state = state.read().map_err(|_| "serving state poisoned")?;
    let write = |path: Option<&str>, f: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| -> Result<(), String> {
        match path {
            None | Some("-") => {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                match f(&mut out).and_then(|_| out.flush()) {
                    // `segflow run ... | head` closes the pipe early: not an error.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                    other => other.map_err(|e| e.to_string()),
                }
            }
            Some(p) => {
                let file = std::fs::File::create(p).map_err(|e| format!("{p}: {e}"))?;
                let mut out = std::io::BufWriter::new(file);
                f(&mut out).and_then(|_| out.flush()).map_err(|e| format!("{p}: {e}"))
            }
        }
    };
    let dump_started = std::time::Instant::now();
    write(args.get("out"), &|out| state.dump(&mut DynWrite(out)))?;
    let dumped_in = dump_started.elapsed();
    if let Some(path) = args.get("changes") {
        write(Some(path), &|out| state.write_changes(&mut DynWrite(out)))?;
    }
    eprintln!(
        "segflow: {events_applied} records ({duplicates} duplicate events skipped) in {:.2}s ({:.0} records/s; {before_label} {:.2}s; dump {:.2}s), now = {}, {} workers",
        elapsed.as_secs_f64(),
        events_applied as f64 / elapsed.as_secs_f64().max(1e-9),
        before_time.as_secs_f64(),
        dumped_in.as_secs_f64(),
        segflow_compiler::value::format_timestamp(state.time),
        workers
    );
    // The process ends here: freeing millions of rows and arrangements one by
    // one, and joining the workers, would take most of a second for nothing.
    drop(state);
    if segflow_runtime::profile::enabled() {
        drop(engine); // the workers print their operator profiles as they stop
    } else {
        std::mem::forget(engine);
    }
    Ok(ExitCode::SUCCESS)
}

/// A batch run's engine, once every record is applied.
struct Applied {
    engine: Engine,
    /// Records applied (or skipped as duplicates).
    records: usize,
    duplicates: usize,
    /// What was done before any record was fed, and how long it took:
    /// decoding everything, or opening the files and starting the workers.
    before: (&'static str, std::time::Duration),
}

/// Lines decoded (and fed) at a time by a streamed run: a few runs are held
/// at once (see `for_each_run_decoded_ahead`), about 4 MB of text each.
const STREAM_RUN_LINES: usize = 1 << 14;

/// The warnings and invalid records of a run's input: the first ones kept to
/// show, all counted.
#[derive(Default)]
struct Diagnostics {
    warnings: Vec<String>,
    warning_count: usize,
    errors: Vec<String>,
    error_count: usize,
}

impl Diagnostics {
    fn add(&mut self, loaded: &Loaded) {
        self.warnings.extend(loaded.warnings.iter().take(KEPT_WARNINGS - self.warnings.len()).map(|w| w.to_string()));
        self.warning_count += loaded.warnings.len() + loaded.more_warnings;
        self.errors.extend(loaded.errors.iter().take(1000 - self.errors.len()).map(|e| e.to_string()));
        self.error_count += loaded.errors.len();
    }

    /// Prints them; whether the run goes on (no invalid record, or
    /// --skip-invalid).
    fn report(&self, skip_invalid: bool) -> bool {
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        if self.warning_count > self.warnings.len() {
            eprintln!("warning: … and {} more warnings", self.warning_count - self.warnings.len());
        }
        for e in &self.errors {
            eprintln!("error: {e}");
        }
        if self.error_count > self.errors.len() {
            eprintln!("error: … and {} more invalid records", self.error_count - self.errors.len());
        }
        let n = self.error_count;
        if n > 0 && !skip_invalid {
            eprintln!(
                "error: {n} invalid record{}; nothing was applied (use --skip-invalid to skip them)",
                if n == 1 { "" } else { "s" }
            );
            return false;
        }
        if n > 0 {
            eprintln!("warning: skipped {n} invalid records");
        }
        true
    }
}

/// Runs the files as one batch, streamed: a run of lines at a time is read,
/// decoded and fed, in one pass. With the event clock the batch's `now` is
/// its latest accepted event time, which the engine settles at the last
/// record (`Engine::begin_on_event_clock`), guessing it from the files' last
/// lines meanwhile. Every invalid record is reported; without --skip-invalid
/// nothing is written.
fn run_streamed(
    plan: &segflow_compiler::plan::Plan,
    decoder: &Decoder,
    config: EngineConfig,
    files: &[String],
    skip_invalid: bool,
) -> Result<Result<Applied, ExitCode>, String> {
    let opened = std::time::Instant::now();
    let inputs = files.iter().map(|f| segflow_runtime::load::Input::open_once(f)).collect::<Result<Vec<_>, _>>()?;
    let clock = config.clock;
    let mut engine = Engine::start(plan.clone(), config)?;
    let mut batch = match clock {
        Clock::Fixed(now) => engine.begin(now, true),
        _ => engine.begin_on_event_clock(segflow_runtime::load::latest_event_time_in_tails(decoder, &inputs)),
    };
    let started = opened.elapsed();
    let mut diagnostics = Diagnostics::default();
    segflow_runtime::load::for_each_run_decoded_ahead(decoder, &inputs, STREAM_RUN_LINES, |run| {
        diagnostics.add(run);
        engine.feed(&mut batch, &run.records);
        Ok(())
    })?;
    if !diagnostics.report(skip_invalid) {
        return Ok(Err(ExitCode::FAILURE));
    }
    let submitted = engine.finish(batch);
    let records = submitted.records();
    let duplicates = engine.complete(submitted).duplicates;
    Ok(Ok(Applied { engine, records, duplicates, before: ("start", started) }))
}

/// Runs the files decoded whole first, in batches of `batch_size` records,
/// each taking its own time.
fn run_loaded(
    plan: &segflow_compiler::plan::Plan,
    decoder: &Decoder,
    config: EngineConfig,
    files: &[String],
    batch_size: usize,
    skip_invalid: bool,
) -> Result<Result<Applied, ExitCode>, String> {
    let started = std::time::Instant::now();
    let loaded = load_files(decoder, files, false).map_err(|e| e.to_string())?;
    let mut diagnostics = Diagnostics::default();
    diagnostics.add(&loaded);
    if !diagnostics.report(skip_invalid) {
        return Ok(Err(ExitCode::FAILURE));
    }
    let decode = started.elapsed();
    let mut engine = Engine::start(plan.clone(), config)?;
    let mut duplicates = 0;
    // Prepare batch k+1 while the workers compute batch k.
    let mut in_flight = None;
    let chunks: Vec<&[segflow_runtime::decode::Record]> = loaded.records.chunks(batch_size.max(1)).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        // Nothing reads past the last batch: its future expiries are not queued.
        let submitted = if i + 1 == chunks.len() { engine.submit_last(chunk) } else { engine.submit(chunk) };
        if let Some(previous) = in_flight.replace(submitted) {
            duplicates += engine.complete(previous).duplicates;
        }
    }
    if let Some(last) = in_flight {
        duplicates += engine.complete(last).duplicates;
    }
    let records = loaded.records.len();
    // Freeing millions of records one by one would take a while for nothing.
    std::mem::forget(loaded);
    Ok(Ok(Applied { engine, records, duplicates, before: ("decode", decode) }))
}

/// Adapts `&mut dyn Write` to `impl Write`.
struct DynWrite<'a>(&'a mut dyn Write);

impl Write for DynWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `--workers N`, or one dataflow worker per core (results are the same for any N).
fn workers(args: &Args) -> Result<usize, String> {
    match args.get("workers") {
        Some(w) => {
            w.parse().ok().filter(|n| (1..=64).contains(n)).ok_or("--workers takes a number from 1 to 64".into())
        }
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get()).min(64)),
    }
}

fn parse_now(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    segflow_compiler::value::parse_timestamp(text).map_err(|e| format!("--now: {e}"))
}

fn serve(args: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(
        args,
        &["listen", "workers", "http-threads", "clock", "data-dir", "max-body-bytes", "snapshot-secs", "keep-changes"],
        &["load"],
        &["demo-data"],
    )?;
    let mut config = segflow_server::ServerConfig::default();
    if let Some(listen) = args.get("listen") {
        config.listen =
            listen.parse().map_err(|_| format!("--listen takes an address like 127.0.0.1:7878, not `{listen}`"))?;
    }
    config.workers = workers(&args)?;
    // One thread answered 100-128k membership lookups a second on 2 cores
    // (BENCHMARKS.md, forty-first session). With two, beside a client's two
    // threads on the same cores, more threads were busy than there were
    // cores, and the p99 became the scheduler's turns (4 ms ticks). Where
    // clients are remote or cores spare, more threads serve more.
    let http_threads = match args.get("http-threads") {
        Some(n) => {
            n.parse().ok().filter(|n| (1..=64).contains(n)).ok_or("--http-threads takes a number from 1 to 64")?
        }
        None => 1,
    };
    config.clock = match args.get("clock").unwrap_or("wall") {
        "wall" => Clock::Wall,
        "event" => Clock::Event,
        other => return Err(format!("--clock takes `wall` or `event`, not `{other}`")),
    };
    if let Some(b) = args.get("max-body-bytes") {
        config.max_body_bytes = b.parse().ok().filter(|n| *n > 0).ok_or("--max-body-bytes takes a positive number")?;
    }
    config.data_dir = Some(args.get("data-dir").unwrap_or("./segflow-data").into());
    if let Some(s) = args.get("snapshot-secs") {
        let secs: u64 =
            s.parse().ok().filter(|n| *n > 0).ok_or("--snapshot-secs takes a positive number of seconds")?;
        config.snapshot_every = std::time::Duration::from_secs(secs);
    }
    if let Some(n) = args.get("keep-changes") {
        config.keep_changes = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("--keep-changes takes a positive number of changes, not `{n}`"))?;
    }
    config.load = args.all("load");
    if args.has("demo-data") {
        // The retail example's synthetic data (`segflow gen` defaults), made in memory.
        let mut data = Vec::new();
        segflow_gen::generate(&segflow_gen::GenConfig::default(), &mut data).map_err(|e| e.to_string())?;
        config.preload = String::from_utf8_lossy(&data).lines().map(str::to_string).collect();
    }
    let (_, compiled) = match compile_files(&args.positional)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(http_threads)
        .thread_name("segflow-http")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let server = segflow_server::Server::bind(compiled.plan, config).await?;
        // Handlers first: a stop requested as soon as the address is printed is
        // still a clean stop (before, SIGTERM's default action could win the race).
        let shutdown = shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
        eprintln!("segflow: serving {} on http://{}", args.positional.join(", "), server.addr);
        server.run(shutdown).await;
        eprintln!("segflow: shut down");
        Ok::<_, String>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A future that completes on Ctrl-C or SIGTERM; the handlers are installed
/// when this returns, not when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

/// A future that completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn gen(args: &[String]) -> Result<ExitCode, String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", segflow_gen::USAGE);
        return Ok(ExitCode::SUCCESS);
    }
    let segflow_gen::GenArgs { config, out, models } = segflow_gen::parse_args(args)?;
    let schema = if models.is_empty() {
        None
    } else {
        let files: Vec<String> = models.iter().map(|m| m.display().to_string()).collect();
        match compile_files(&files)? {
            Ok((_, compiled)) => {
                if compiled.program.events.is_empty() {
                    eprintln!("segflow gen: the model declares no events: writing its entities only");
                }
                Some(gen_schema::schema_of(&compiled.program))
            }
            Err(code) => return Ok(code),
        }
    };
    let generate = |mut out: &mut dyn Write| match &schema {
        Some(schema) => segflow_gen::generate_for(schema, &config, &mut out),
        None => segflow_gen::generate(&config, &mut out),
    };
    let started = std::time::Instant::now();
    let stats = match &out {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            generate(&mut std::io::BufWriter::new(file))
        }
        None => generate(&mut std::io::stdout().lock()),
    }
    .map_err(|e| e.to_string())?;
    if out.is_some() {
        eprintln!(
            "segflow gen: {} lines ({} events, {} entity records, {} attribute updates, {} duplicates, {} late) in {:.2}s",
            stats.lines(),
            stats.events,
            stats.entity_records,
            stats.attribute_updates,
            stats.duplicates,
            stats.late,
            started.elapsed().as_secs_f64()
        );
        if let Some(schema) = &schema {
            let counts = schema.instance_counts(config.users);
            let instances: Vec<String> =
                schema.entities.iter().zip(counts).map(|(e, n)| format!("{n} {}", e.name)).collect();
            eprintln!("segflow gen: instances: {}", instances.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
