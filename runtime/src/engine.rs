//! The engine: the driver of the dataflow workers.
//!
//! `Engine::apply` takes one batch of decoded records and makes it visible:
//!
//! 1. It picks the batch's logical time `now` (the clock: latest event time,
//!    a fixed `--now`, or the wall clock) and a dataflow time for it.
//! 2. It turns records into input updates: instances named for the first time,
//!    attribute rows (an upsert retracts the old row and inserts the new one),
//!    and events — deduplicated by `id` — into every window input of their
//!    type. A windowed event is inserted at `max(t, now)` and its retraction is
//!    queued for `t + W`; one already outside its window is not inserted.
//! 3. Queued updates that fall due by `now` are fed at their exact times, so an
//!    exit caused by a window expiring is stamped with the time it happened.
//! 4. Every worker feeds its share, advances its inputs past the batch time and
//!    steps until the probe shows all outputs complete; the output changes come
//!    back to the driver, which publishes them with the batch's instances and
//!    attributes into the serving state under one lock.
//!
//! Dataflow times are `logical_ms << 16 | n`: the low 16 bits number batches
//! that share a millisecond, so every batch gets a distinct time that still
//! orders exactly like its logical time.

use crate::chunked::{ById, Pieces, Shared};
use crate::decode::Record;
use crate::due::{Due, Schedule};
use crate::ids::{IdList, IdSet};
use crate::input_groups::{self, retraction, InputGroups, Target};
use crate::instances::prefetch_text;
use crate::intern::{key_in, Interner, KeyOrder};
use crate::profile::OperatorProfile;
use crate::render::{self, OutputUpdate, Row, SharedRow, Time};
use crate::retained::Retained;
use crate::state::{MergedRuns, ServingState};
use foldhash::HashSet;
use segflow_compiler::hir::{Def, EVENT_AT, EVENT_ID};
use segflow_compiler::plan::{Input, Plan};
use segflow_compiler::value::{Text, Type, Value};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

const SUB_BITS: u32 = 16;

/// Where `now` comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// `now` is the latest event time seen (batch runs, replays).
    Event,
    /// `now` is fixed (`segflow run --now`).
    Fixed(i64),
    /// `now` is the wall clock.
    Wall,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub workers: usize,
    pub clock: Clock,
    /// Keep the events a snapshot needs (`serve`); a batch run does not.
    pub retain_events: bool,
    /// The most segment changes the serving state keeps for change
    /// streams, the oldest forgotten first (`usize::MAX`: every one, which a
    /// batch run writes out).
    pub keep_changes: usize,
    /// Runs the dataflow workers `load::SIDE_STAGE_STEPS` nice steps below
    /// the engine thread (`segflow run`): while a backfill streams in, the
    /// engine thread, which interns and routes every record, is the stage
    /// the workers wait for. A server keeps them level: a refresh waits for
    /// its workers.
    pub workers_below_engine: bool,
}

/// An engine's state as a snapshot needs it (see `Engine::copy`).
pub struct EngineCopy {
    plan: Arc<Plan>,
    now: i64,
    keys: Vec<Shared<Value>>,
    attributes: Vec<ById<SharedRow>>,
    events: Vec<Retained>,
    seen_ids: Vec<IdList>,
}

impl EngineCopy {
    /// What a restart needs, in the form records arrive in (references by
    /// key), so it can be re-applied under the same or a changed model:
    /// every instance in interning order, with its attribute row.
    pub fn snapshot(self) -> EngineSnapshot {
        let EngineCopy { plan, now, keys, attributes, events, seen_ids } = self;
        // A row refers only to instances interned before it was written,
        // and so before the copy.
        let entities = (0..plan.entities.len())
            .map(|e| {
                let fields: Vec<Type> = plan.entities[e].fields.iter().map(|f| f.ty).collect();
                let key_field = plan.entities[e].key;
                (keys[e].iter().zip(0u64..))
                    .map(|(key, id)| {
                        let row = attributes[e].get(id).map(|row| {
                            row.iter()
                                .zip(&fields)
                                .enumerate()
                                .map(|(i, (v, ty))| match (ty, v) {
                                    // The instance's key is given beside the row; its
                                    // internal id in the row means nothing to a restart.
                                    _ if i == key_field => Value::Null,
                                    (Type::Ref(target), Value::Ref(r)) => key_in(&keys[*target], *r),
                                    _ => v.clone(),
                                })
                                .collect()
                        });
                        (key.clone(), row)
                    })
                    .collect()
            })
            .collect();
        let schema = |name: &String, fields: &[segflow_compiler::hir::Field]| {
            (name.clone(), fields.iter().map(|f| f.name.clone()).collect())
        };
        EngineSnapshot {
            now,
            entity_schema: plan.entities.iter().map(|e| schema(&e.name, &e.fields)).collect(),
            event_schema: plan.events.iter().map(|e| schema(&e.name, &e.fields)).collect(),
            entities,
            events,
            seen_ids,
        }
    }
}

/// The engine's inputs in record form: everything needed to rebuild it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct EngineSnapshot {
    pub now: i64,
    /// Per entity of the model it was taken under: its name and field names.
    pub entity_schema: Vec<(String, Vec<String>)>,
    /// Per event type likewise (`id` and `at` first).
    pub event_schema: Vec<(String, Vec<String>)>,
    /// Per entity, in interning order: (key, attribute row with references
    /// by key). The row's key field is null (snapshots before 62a5d8f held
    /// the instance's internal id there); the key is the pair's first.
    pub entities: Vec<Vec<(Value, Option<Row>)>>,
    /// Per event type: retained events as `[id, at, fields...]`, references by key
    /// (shared with the engine, so taking a snapshot copies pointers to chunks
    /// of rows, not rows).
    pub events: Vec<Retained>,
    pub seen_ids: Vec<IdList>,
}

/// Whether a (non-null) value restored from a snapshot has type `ty` here.
fn fits(plan: &Plan, v: &Value, ty: Type) -> bool {
    match (ty, v) {
        (Type::Bool, Value::Bool(_))
        | (Type::Int, Value::Int(_))
        | (Type::Float, Value::Float(_))
        | (Type::Decimal, Value::Decimal(_))
        | (Type::String, Value::Str(_))
        | (Type::Timestamp, Value::Timestamp(_)) => true,
        (Type::Ref(e), v) => fits(plan, v, plan.entities[e].fields[plan.entities[e].key].ty),
        _ => false,
    }
}

/// What happened to a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Logical time (ms) the results reflect.
    pub time: i64,
    pub applied: usize,
    /// Events skipped because their `id` was already accepted.
    pub duplicates: usize,
}

/// An input update: (the inputs it goes to, row, time, diff).
type Update = (Target, SharedRow, Time, isize);

enum Command {
    /// Updates of the batch being built, all at the batch's time `at`: workers
    /// start sorting them while the driver prepares the rest.
    Feed { updates: Vec<Update>, at: Time },
    /// The batch's last updates; the workers then compute it through `upto`.
    Step { updates: Vec<Update>, upto: Time },
}

/// Updates sent to the workers in pieces of this size while a batch is built
/// (an update goes to a group of inputs: see `input_groups`).
const FEED_CHUNK: usize = 1 << 16;

/// Records whose ids and references are prefetched ahead of looking them up
/// at a time (see `accept`, `warm_references`): what they touch stays in the
/// cache meanwhile.
const WARM_RECORDS: usize = 128;

/// How long a worker computing a batch steps without pause before it sleeps
/// between steps while it has nothing to do (a peer's message or an
/// operator's activation wakes it at once).
///
/// Waiting for the other workers by stepping in a loop kept a core busy
/// doing nothing: under sustained ingest the engine thread, the HTTP thread
/// and the other workers compete for the cores, and a spinning worker took
/// turns from them. A small batch is computed in a few dozen rounds of
/// messages between the workers, and waking a sleeping thread for each
/// costs microseconds (more when the cores are contended), so a worker
/// sleeps only once its batch has taken longer than this.
const SPIN_BEFORE_PARK: std::time::Duration = std::time::Duration::from_millis(1);
/// The longest a waiting worker sleeps: only a safety net, as wakes come at once.
const PARK_AT_MOST: std::time::Duration = std::time::Duration::from_millis(1);

/// Windowed rows (held and sent together) a batch on its event clock keeps
/// before it first drops the ones already out of their windows (see
/// `AwaitingNow`); few in debug builds, so that tests drop them.
const PRUNE_AWAITING: usize = if cfg!(debug_assertions) { 4 } else { 1 << 16 };

struct Ack {
    upto: Time,
    /// Runs each in `render::output_order`, and so is their concatenation.
    outputs: Vec<Vec<OutputUpdate>>,
}

/// A batch being fed in pieces (see `Engine::begin`).
pub struct Batch {
    batch_time: Time,
    new_now: i64,
    last: bool,
    /// The time `Clock::Event` gives the records fed so far.
    event_clock: i64,
    /// For a batch whose `now` is its own latest event time
    /// (`begin_on_event_clock`): its windowed rows until `now` is known.
    /// `None` when `now` was given at the start.
    awaiting_now: Option<AwaitingNow>,
    /// Updates not yet sent to the workers.
    updates: Vec<Update>,
    /// Per entity, the first id this batch interned.
    first_new_key: Vec<usize>,
    /// Per entity, the instances whose attributes this batch changed.
    touched: Vec<HashSet<u64>>,
    outcome: BatchOutcome,
    records: usize,
    started: Instant,
}

/// The windowed rows of a batch whose `now` is not known yet (see
/// `Engine::begin_on_event_clock`), each as (event time in ms, the inputs
/// it is held back from or was sent to, row): one entry for all the windows
/// of a group of inputs, each leaving at its own time (`InputGroup::closed`).
struct AwaitingNow {
    /// The dataflow time of the guessed `now` (`Time::MAX` for none).
    guess: Time,
    /// Rows that the guess puts outside their windows, held back.
    held: Pieces<(i64, Target, SharedRow)>,
    /// `held` and `sent` are rid of rows already out of their windows when
    /// together they grow this long.
    prune_at: usize,
    /// Rows inside their windows at the guess, sent: a later `now` may take
    /// some out again.
    sent: Pieces<(i64, Target, SharedRow)>,
}

impl AwaitingNow {
    /// Drops the rows that `out_before` (the clock fed so far, which `now`
    /// cannot be below) puts out of their windows, once there are enough to
    /// make it worth a pass: held ones are let go, sent ones retracted (they
    /// cancel at the batch's time), so neither list outgrows the windows.
    fn prune(&mut self, out_before: Time, batch_time: Time, updates: &mut Vec<Update>, groups: &InputGroups) {
        if self.held.len() + self.sent.len() < self.prune_at {
            return;
        }
        self.held.retain_mut(|(at, target, _)| {
            target.mask &= !groups.group(*target).closed(*at, out_before);
            target.mask != 0
        });
        self.sent.retain_mut(|(at, target, row)| {
            let out = target.mask & groups.group(*target).closed(*at, out_before);
            if out != 0 {
                updates.push((Target { mask: out, ..*target }, row.clone(), batch_time, -1));
                target.mask &= !out;
            }
            target.mask != 0
        });
        self.prune_at = ((self.held.len() + self.sent.len()) * 2).max(PRUNE_AWAITING);
    }

    /// With `now` known (as the dataflow time `out_before`): the held rows
    /// inside their windows are sent, and the sent ones outside retracted. A
    /// row is inside its window at `now` exactly when retracted after it.
    fn settle(self, out_before: Time, batch_time: Time, updates: &mut Vec<Update>, groups: &InputGroups) {
        for (at, target, row) in self.held {
            let inside = target.mask & !groups.group(target).closed(at, out_before);
            if inside != 0 {
                updates.push((Target { mask: inside, ..target }, row, batch_time, 1));
            }
        }
        // Sent rows are retracted after the guess: only a guess below `now` took any out.
        if out_before >= self.guess {
            for (at, target, row) in self.sent {
                let outside = target.mask & groups.group(target).closed(at, out_before);
                if outside != 0 {
                    updates.push((Target { mask: outside, ..target }, row, batch_time, -1));
                }
            }
        }
    }
}

/// The keys of an entity that a batch first named, for the serving state.
enum NewKeys {
    /// In id order.
    Listed(Vec<Value>),
    /// The engine's whole table, where the entity had no key before the
    /// batch and has some now (a backfill's first batch, say): the serving
    /// state takes it as it is. Interning a backfill's 100k users' keys
    /// again, one by one, was ~25 ms of the engine thread's publishing,
    /// when the workers have nothing to do.
    All(Interner),
}

/// A batch on its way through the workers (see `Engine::submit`).
pub struct Submitted {
    upto: Time,
    new_now: i64,
    /// The dataflow time the outputs are published at, when it is not the one
    /// they were computed at (a batch on its own event clock, `finish`).
    stamp: Option<Time>,
    /// Keys first named by this batch, per entity.
    new_keys: Vec<NewKeys>,
    /// Attribute rows this batch changed, per entity (None: removed).
    attributes: Vec<Vec<(u64, Option<SharedRow>)>>,
    outcome: BatchOutcome,
    records: usize,
    started: Instant,
    /// When the workers had the whole batch.
    sent: Instant,
}

impl Submitted {
    /// Records in the batch (duplicates included).
    pub fn records(&self) -> usize {
        self.records
    }

    /// The logical time (epoch ms) the batch applies at: what a log records
    /// for `apply_at` to give it again.
    pub fn time(&self) -> i64 {
        self.new_now
    }
}

pub struct Engine {
    plan: Arc<Plan>,
    config: EngineConfig,
    commands: Vec<Sender<Command>>,
    acks: Receiver<Ack>,
    /// Worker answers that arrived before their batch was waited for.
    early: Vec<Ack>,
    guards: Option<timely::communication::initialize::WorkerGuards<()>>,
    state: Arc<RwLock<ServingState>>,
    // Driver-side model state.
    keys: Vec<Interner>,
    /// The keys the workers order references by (see `KeyOrder`).
    key_order: KeyOrder,
    /// Per entity, each instance's attribute row, if it has one (shared
    /// with the serving state and the dataflow).
    attributes: Vec<ById<SharedRow>>,
    seen_ids: Vec<IdSet>,
    /// Events a restart (or a changed model) may still need, as they arrived:
    /// per event type, by (time, arrival). See `retention_ms`.
    retained: Vec<Retained>,
    /// Per event type: `None` keeps every event (an unwindowed aggregate reads
    /// it); `Some(W)` keeps events until `t + W <= now` (W the longest window).
    retention_ms: Vec<Option<u64>>,
    arrivals: u64,
    /// Updates due later (window expiries, rows ahead of the clock), by time.
    pending: Schedule,
    instances_input: Vec<Option<usize>>,
    attributes_input: Vec<Option<usize>>,
    /// The inputs each update goes to; per event type, the groups of its inputs.
    input_groups: InputGroups,
    /// Per event type: the types of its fields.
    event_types: Vec<Vec<Type>>,
    /// An event row with its references interned (reused per event).
    row_buffer: Row,
    /// Set by a batch begun as the last (`begin(_, true)`, so also
    /// `submit_last` and `begin_on_event_clock`): no batch may follow, and
    /// `finish` hands the interners over to the serving state.
    closed: bool,
    now: i64,
    next_time: Time,
    next_worker: usize,
}

impl Engine {
    /// Starts `config.workers` dataflow workers running `plan`.
    pub fn start(plan: Plan, config: EngineConfig) -> Result<Engine, String> {
        let plan = Arc::new(plan);
        let workers = config.workers.max(1);
        let (ack_tx, acks) = channel::<Ack>();
        let mut commands = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = channel::<Command>();
            commands.push(tx);
            receivers.push(Some(rx));
        }
        let receivers = Arc::new(Mutex::new(receivers));
        let ack_tx = Arc::new(Mutex::new(ack_tx));
        let worker_plan = plan.clone();
        let workers_below_engine = config.workers_below_engine;
        let input_groups = InputGroups::new(&plan);
        let worker_groups = input_groups.clone();
        // Tag columns: a new value replaces the old (see `OutputChunks::sorted`).
        let overwrites: Vec<bool> =
            plan.outputs.iter().map(|o| matches!(o.def, Def::Tag(_)) && o.on_read.is_none()).collect();
        let key_order = KeyOrder::new(&render::ordered_references(&plan));
        let worker_keys = key_order.clone();
        let timely_config = if workers == 1 { timely::Config::thread() } else { timely::Config::process(workers) };
        let guards = timely::execute(timely_config, move |worker| {
            // A worker that panics leaves its peers waiting for its progress and
            // the driver for its answer: the process would hang, holding acknowledged
            // writers and readers. Stop it instead (the panic has been printed;
            // the write-ahead log has every acknowledged batch).
            let worker_index = worker.index();
            if workers_below_engine {
                crate::priority::lower_this_thread(crate::load::SIDE_STAGE_STEPS);
            }
            let run = std::panic::AssertUnwindSafe(|| {
                let receiver = receivers.lock().ok().and_then(|mut r| r[worker_index].take());
                let Some(receiver) = receiver else { return };
                let ack = ack_tx.lock().map(|a| a.clone());
                let Ok(ack) = ack else { return };
                let profile = if crate::profile::enabled() { OperatorProfile::install(worker) } else { None };
                let mut dataflow = render::build(worker, &worker_plan, &worker_keys);
                while let Ok(command) = receiver.recv() {
                    let (updates, upto) = match command {
                        Command::Feed { updates, at } => {
                            // Inputs at the batch's time tell operators that no
                            // earlier change is coming (see `keyed`).
                            for session in dataflow.inputs.iter_mut() {
                                session.advance_to(at);
                            }
                            input_groups::apply_all(&worker_groups, updates, &mut dataflow.inputs);
                            for session in dataflow.inputs.iter_mut() {
                                session.flush();
                            }
                            worker.step();
                            continue;
                        }
                        Command::Step { updates, upto } => (updates, upto),
                    };
                    input_groups::apply_all(&worker_groups, updates, &mut dataflow.inputs);
                    for session in dataflow.inputs.iter_mut() {
                        session.advance_to(upto);
                        session.flush();
                    }
                    let waiting = Instant::now();
                    while dataflow.probe.less_than(&upto) {
                        if waiting.elapsed() < SPIN_BEFORE_PARK {
                            worker.step();
                        } else {
                            worker.step_or_park(Some(PARK_AT_MOST));
                        }
                    }
                    let outputs = {
                        let mut outputs = dataflow.outputs.borrow_mut();
                        let room = crate::keyed::with_slack(outputs.count());
                        std::mem::replace(&mut *outputs, render::OutputChunks::with_room(room))
                    };
                    let outputs = outputs.sorted(&overwrites);
                    if ack.send(Ack { upto, outputs }).is_err() {
                        break;
                    }
                }
                if let Some(profile) = profile {
                    profile.report(worker_index, &dataflow.node_operators);
                }
            });
            if std::panic::catch_unwind(run).is_err() {
                tracing::error!(worker = worker_index, "a dataflow worker panicked; stopping");
                std::process::exit(101);
            }
        })?;
        let mut instances_input = vec![None; plan.entities.len()];
        let mut attributes_input = vec![None; plan.entities.len()];
        for (i, input) in plan.inputs.iter().enumerate() {
            match input {
                Input::Instances { entity } => instances_input[*entity] = Some(i),
                Input::Attributes { entity } => attributes_input[*entity] = Some(i),
                Input::Events { .. } => {}
            }
        }
        // The wall clock starts at zero too, not at the current time: a recovery
        // replays logged batches at the (past) times they had, and the first
        // batch or tick after it brings `now` to the wall clock.
        let now = match config.clock {
            Clock::Fixed(t) => t,
            Clock::Wall | Clock::Event => 0,
        };
        let mut state = ServingState::new(plan.clone());
        state.keep_changes(config.keep_changes);
        Ok(Engine {
            state: Arc::new(RwLock::new(state)),
            keys: vec![Interner::default(); plan.entities.len()],
            key_order,
            attributes: vec![Default::default(); plan.entities.len()],
            seen_ids: vec![IdSet::default(); plan.events.len()],
            retained: vec![Retained::default(); plan.events.len()],
            retention_ms: (0..plan.events.len())
                .map(|e| {
                    let windows: Vec<Option<u64>> = input_groups.of_event[e]
                        .iter()
                        .flat_map(|&g| input_groups.groups[g as usize].windows.clone())
                        .collect();
                    if windows.contains(&None) {
                        None
                    } else {
                        Some(windows.into_iter().flatten().max().unwrap_or(0))
                    }
                })
                .collect(),
            arrivals: 0,
            pending: Schedule::new(&input_groups),
            instances_input,
            attributes_input,
            input_groups,
            event_types: plan.events.iter().map(|e| e.fields.iter().map(|f| f.ty).collect()).collect(),
            row_buffer: Row::new(),
            closed: false,
            now,
            next_time: 0,
            next_worker: 0,
            commands,
            acks,
            early: Vec::new(),
            guards: Some(guards),
            config: EngineConfig { workers, ..config },
            plan,
        })
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// The serving state, shared with readers.
    pub fn state(&self) -> Arc<RwLock<ServingState>> {
        self.state.clone()
    }

    /// Logical time (ms) of the last applied batch.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// Applies a batch of valid records atomically and waits until its effects
    /// are visible in the serving state.
    pub fn apply(&mut self, records: &[Record]) -> BatchOutcome {
        let submitted = self.submit(records);
        self.complete(submitted)
    }

    /// Registers the ids of a batch's events: per record, whether it applies
    /// (false for an event whose id was accepted before or earlier in the batch).
    fn accept(&mut self, records: &[Record]) -> Vec<bool> {
        // A long id (a UUID) is a string of its own on the heap, written by
        // a decoding thread on another core: its bytes are asked for
        // `BYTES_AHEAD` records before it is hashed.
        for id in records.iter().take(BYTES_AHEAD).filter_map(event_id) {
            prefetch_text(id.1);
        }
        let mut ahead = records.iter().skip(BYTES_AHEAD);
        // Per record: its event type, id and the id's hash, if it has an id.
        let ids: Vec<Option<(usize, &[u8], u64)>> = records
            .iter()
            .map(|record| {
                if let Some((_, id)) = ahead.next().and_then(event_id) {
                    prefetch_text(id);
                }
                event_id(record).map(|(event, id)| (event, id.as_bytes(), self.seen_ids[event].hash(id.as_bytes())))
            })
            .collect();
        // Each run's id slots are asked for a run ahead (see `probed`): their
        // cache misses overlap one another and the work on the run before.
        let mut runs = ids.chunks(WARM_RECORDS).peekable();
        if let Some(first) = runs.peek() {
            self.prefetch_ids(first);
        }
        let mut accepted = Vec::with_capacity(records.len());
        while let Some(run) = runs.next() {
            if let Some(next) = runs.peek() {
                self.prefetch_ids(next);
            }
            for id in run {
                accepted.push(match *id {
                    Some((event, id, hash)) => self.seen_ids[event].insert_hashed(hash, id),
                    None => true,
                });
            }
        }
        accepted
    }

    /// Prefetches the slots of `ids` (see `accept`).
    fn prefetch_ids(&self, ids: &[Option<(usize, &[u8], u64)>]) {
        for &(event, _, hash) in ids.iter().flatten() {
            self.seen_ids[event].prefetch(hash);
        }
    }

    /// The logical time the clock gives a tick (a batch without records) now.
    /// A batch with records takes its time in `submit`, which registers its
    /// event ids once (`Submitted::time` tells it).
    pub fn tick_time(&self) -> i64 {
        self.clock_time(&[], &[])
    }

    /// The clock's time for a batch whose applying records are marked in
    /// `applies`: only events that apply move the event clock (a redelivery
    /// with a later `at` does not).
    fn clock_time(&self, records: &[Record], applies: &[bool]) -> i64 {
        match self.config.clock {
            Clock::Event => records
                .iter()
                .zip(applies)
                .filter(|(_, a)| **a)
                .filter_map(|(r, _)| r.event_time())
                .fold(self.now, i64::max),
            Clock::Fixed(t) => t,
            Clock::Wall => wall_ms().max(self.now),
        }
    }

    /// Whether advancing to `now` would expire or insert anything queued.
    pub fn has_due(&self, now: i64) -> bool {
        self.pending.next_time().is_some_and(|time| time <= logical_to_time(now) | ((1 << SUB_BITS) - 1))
    }

    /// Applies a batch at a given logical time (a replay of the log gives each
    /// batch the time it had). Time never goes backwards: `now` is clamped.
    pub fn apply_at(&mut self, records: &[Record], now: i64) -> BatchOutcome {
        let submitted = self.submit_at(records, now);
        self.complete(submitted)
    }

    /// Sends a batch to the workers without waiting for it (the clock picks its
    /// time). The driver can prepare the next batch while the workers compute
    /// this one; `complete` each submitted batch, in order, to publish it.
    pub fn submit(&mut self, records: &[Record]) -> Submitted {
        self.submit_batch(records, None, false, |_| {})
    }

    /// `submit`, telling `log` the batch's time (`Submitted::time`) as soon
    /// as it is known, before the batch's updates are built: a write-ahead
    /// log can write the batch meanwhile.
    pub fn submit_logged(&mut self, records: &[Record], log: impl FnOnce(i64)) -> Submitted {
        let mut logged = None;
        let submitted = self.submit_batch(records, None, false, |now| {
            logged = Some(now);
            log(now)
        });
        debug_assert_eq!(logged, Some(submitted.time()), "a batch logged at another time than it applies at");
        submitted
    }

    /// `submit` at a given logical time.
    pub fn submit_at(&mut self, records: &[Record], now: i64) -> Submitted {
        self.submit_batch(records, Some(now), false, |_| {})
    }

    /// `submit` for a batch that no other follows (a batch run's last): what
    /// would fall due after it — window expiries, late inserts — is not queued,
    /// since nothing will read it. The engine takes no batch after this one.
    pub fn submit_last(&mut self, records: &[Record]) -> Submitted {
        self.submit_batch(records, None, true, |_| {})
    }

    /// Registers the batch's event ids, takes `now` (the clock's, unless
    /// given), tells `log` the batch's time and sends the batch's updates to
    /// the workers.
    fn submit_batch(&mut self, records: &[Record], now: Option<i64>, last: bool, log: impl FnOnce(i64)) -> Submitted {
        let started = Instant::now();
        let accepted = self.accept(records);
        let now = now.unwrap_or_else(|| self.clock_time(records, &accepted));
        let mut batch = self.begin(now, last);
        batch.started = started;
        log(batch.new_now);
        self.feed_warmed(&mut batch, records, &accepted);
        self.finish(batch)
    }

    /// Starts a batch at logical time `now` whose records are given in pieces
    /// (`feed`) and which `finish` sends on: a file too large to hold decoded
    /// at once streams through it. `last` is as for `submit_last`. Updates
    /// go to the workers as pieces come, so a begun batch must be finished
    /// before the engine takes another (or dropped with the engine).
    pub fn begin(&mut self, now: i64, last: bool) -> Batch {
        assert!(!self.closed, "a batch was submitted after the last one");
        self.closed = last;
        let new_now = now.max(self.now);
        let batch_time = self.next_time.max(logical_to_time(new_now));
        let mut updates: Vec<Update> = Vec::new();
        self.take_due(batch_time, batch_time, &mut updates);
        Batch {
            batch_time,
            new_now,
            last,
            event_clock: self.now,
            awaiting_now: None,
            updates,
            first_new_key: self.keys.iter().map(Interner::len).collect(),
            touched: vec![HashSet::default(); self.plan.entities.len()],
            outcome: BatchOutcome { time: new_now, ..Default::default() },
            records: 0,
            started: Instant::now(),
        }
    }

    /// Moves the queued updates due by `upto` into `updates`, at `batch_time`.
    /// They take effect at the batch's time: the state at every batch is
    /// exact, and a window's expiry is visible (and stamped) at the first
    /// batch or tick at or after it. Feeding each at its own millisecond would
    /// give every expiry a distinct time, which multiplies the work of every
    /// reduce downstream.
    fn take_due(&mut self, upto: Time, batch_time: Time, updates: &mut Vec<Update>) {
        self.pending.take_until(upto, |due| {
            updates.push((Target::single(due.input as usize), due.row, batch_time, due.diff as isize))
        });
    }

    /// Starts the last batch, like `begin(now, true)`, where `now` is the
    /// latest time of its accepted events, which only its last record can
    /// settle: a batch run streams its files once, with no scan for `now`
    /// first and nothing to redo when a redelivery or an invalid record holds
    /// the latest time. Updates are sent as they come, at a provisional
    /// dataflow time whose outputs are published at `now`'s.
    ///
    /// A windowed row is sent at once if it is inside its window at `guess`
    /// (the latest time in the input's tail, say), and held in the batch if
    /// not, unless the latest time fed so far already puts it out. Sent rows
    /// that the latest time fed puts out (the guess was too early) are
    /// retracted as it passes them; when `now` is known, the held rows inside
    /// their windows are sent, and the sent ones outside them retracted. A
    /// wrong guess costs rows held or sent in vain, never a wrong answer.
    pub fn begin_on_event_clock(&mut self, guess: Option<i64>) -> Batch {
        assert_eq!(self.config.clock, Clock::Event, "a batch on the event clock needs Clock::Event");
        let mut batch = self.begin(self.now, true);
        batch.awaiting_now = Some(AwaitingNow {
            guess: guess.map_or(Time::MAX, logical_to_time),
            held: Pieces::default(),
            prune_at: PRUNE_AWAITING,
            sent: Pieces::default(),
        });
        batch
    }

    /// Adds records to a batch begun with `begin`, in order: ids are
    /// registered as they come, so a redelivery within or across pieces is
    /// skipped as it would be in one piece.
    pub fn feed(&mut self, batch: &mut Batch, records: &[Record]) {
        let accepted = self.accept(records);
        batch.event_clock = self.clock_time(records, &accepted).max(batch.event_clock);
        self.feed_warmed(batch, records, &accepted);
        if let Some(awaiting) = &mut batch.awaiting_now {
            awaiting.prune(
                logical_to_time(batch.event_clock),
                batch.batch_time,
                &mut batch.updates,
                &self.input_groups,
            );
        }
    }

    /// `feed_accepted`, a few records at a time, the references of the next
    /// few prefetched meanwhile (`warm_references`).
    fn feed_warmed(&mut self, batch: &mut Batch, records: &[Record], accepted: &[bool]) {
        // Hashing a run's keys to find their slots reads each key: the keys'
        // bytes are asked for a run earlier (see `warm_reference_bytes`).
        let runs = records.chunks(WARM_RECORDS);
        for early in runs.clone().take(2) {
            warm_reference_bytes(early, &self.event_types);
        }
        if let Some(first) = runs.clone().next() {
            self.warm_references(first);
        }
        let (mut next, mut after_next) = (runs.clone().skip(1), runs.clone().skip(2));
        for (records, accepted) in runs.zip(accepted.chunks(WARM_RECORDS)) {
            if let Some(after_next) = after_next.next() {
                warm_reference_bytes(after_next, &self.event_types);
            }
            if let Some(next) = next.next() {
                self.warm_references(next);
            }
            self.feed_accepted(batch, records, accepted);
        }
    }

    /// Asks for the table slots of the references of events about to be
    /// interned, without waiting: the lookups are independent of one
    /// another, so their cache misses (the tables of keys outgrow the cache)
    /// overlap with one another and with the work on the records before,
    /// where interning one record at a time waits for each in turn.
    fn warm_references(&self, records: &[Record]) {
        for (entity, key) in references(records, &self.event_types) {
            self.keys[entity].prefetch(key);
        }
    }

    /// Turns records whose ids are registered (`accepted` says which apply)
    /// into the batch's updates, sending them on in pieces as they grow.
    fn feed_accepted(&mut self, batch: &mut Batch, records: &[Record], accepted: &[bool]) {
        let (batch_time, last) = (batch.batch_time, batch.last);
        let mut updates = std::mem::take(&mut batch.updates);
        let touched = &mut batch.touched;
        let outcome = &mut batch.outcome;
        // Rows retracted by then are outside their windows at any `now` the
        // batch can end at (see `begin_on_event_clock`).
        let out_before = logical_to_time(batch.event_clock);
        let mut awaiting_now = batch.awaiting_now.as_mut();
        batch.records += records.len();
        for (record, accepted) in records.iter().zip(accepted) {
            if updates.len() >= FEED_CHUNK {
                // A batch this large will fill more: the next piece starts at
                // full size instead of doubling up to it.
                let piece = std::mem::replace(&mut updates, Vec::with_capacity(FEED_CHUNK));
                self.send(piece, batch_time, false);
            }
            match record {
                Record::Event { event, row } => {
                    if !accepted {
                        outcome.duplicates += 1;
                        continue;
                    }
                    if let (true, Value::Timestamp(t)) = (self.config.retain_events, &row[EVENT_AT]) {
                        self.arrivals += 1;
                        self.retained[*event].insert(*t, self.arrivals, SharedRow::from(row.as_slice()));
                    }
                    let mut interned = std::mem::take(&mut self.row_buffer);
                    self.intern_row(*event, row, batch_time, &mut updates, &mut interned);
                    let row = &interned;
                    let t = match row[EVENT_AT] {
                        Value::Timestamp(t) => t,
                        _ => continue,
                    };
                    // The inputs of a group carry the same fields: one row, one
                    // update, for all of them that take it now.
                    for &g in &self.input_groups.of_event[*event] {
                        let group = &self.input_groups.groups[g as usize];
                        let shared: SharedRow = group.fields.iter().map(|&f| row[f].clone()).collect();
                        let (mut now, mut sent, mut held, mut queued) = (0u32, 0u32, 0u32, 0u32);
                        for (bit, (&input, window)) in group.inputs.iter().zip(&group.windows).enumerate() {
                            let Some(w) = *window else {
                                now |= 1 << bit;
                                continue;
                            };
                            let retract = retraction(t, w);
                            if let Some(awaiting) = &awaiting_now {
                                if retract <= out_before {
                                    // Out of its window at any `now` the batch can end at.
                                } else if retract > awaiting.guess {
                                    now |= 1 << bit;
                                    sent |= 1 << bit;
                                } else {
                                    held |= 1 << bit;
                                }
                                continue;
                            }
                            let insert = logical_to_time(t).max(batch_time);
                            if retract <= insert {
                                continue;
                            }
                            if insert == batch_time {
                                now |= 1 << bit;
                                if !last {
                                    queued |= 1 << bit;
                                }
                            } else if !last {
                                // A row ahead of the clock: its retraction, later than
                                // the rest of its input's, would hold them out of order.
                                self.pending.push_out_of_order(Due::new(insert, input, shared.clone(), 1));
                                self.pending.push_out_of_order(Due::new(retract, input, shared.clone(), -1));
                            }
                        }
                        if queued != 0 {
                            self.pending.push_retractions(g as usize, t, queued, shared.clone());
                        }
                        let target = |mask| Target { group: g, mask };
                        if let Some(awaiting) = &mut awaiting_now {
                            if sent != 0 {
                                awaiting.sent.push((t, target(sent), shared.clone()));
                            }
                            if held != 0 {
                                awaiting.held.push((t, target(held), shared.clone()));
                            }
                        }
                        if now != 0 {
                            updates.push((target(now), shared, batch_time, 1));
                        }
                    }
                    self.row_buffer = interned;
                    outcome.applied += 1;
                }
                Record::Upsert { entity, key, set, unset } => {
                    let id = self.intern_key(*entity, key, batch_time, &mut updates);
                    // The plan's own handle (a count, not a copy of its field
                    // types per upsert), as interning borrows the engine.
                    let plan = self.plan.clone();
                    let fields = &plan.entities[*entity].fields;
                    let key_field = plan.entities[*entity].key;
                    let old = self.attributes[*entity].get(id).cloned();
                    let mut row = old.as_deref().map_or_else(
                        || {
                            let mut r = vec![Value::Null; fields.len()];
                            r[key_field] = Value::Ref(id);
                            r
                        },
                        <[Value]>::to_vec,
                    );
                    for (i, v) in set {
                        row[*i] = match (fields[*i].ty, v) {
                            (Type::Ref(target), v) if !v.is_null() => {
                                Value::Ref(self.intern_key(target, v, batch_time, &mut updates))
                            }
                            (_, v) => v.clone(),
                        };
                    }
                    for i in unset {
                        row[*i] = Value::Null;
                    }
                    let empty = row.iter().enumerate().all(|(i, v)| i == key_field || v.is_null());
                    if old.as_deref() != Some(row.as_slice()) {
                        // One row shared by the engine, the dataflow and the
                        // serving state; none for a row left empty.
                        let row = (!empty).then(|| SharedRow::from(row));
                        if let Some(input) = self.attributes_input[*entity] {
                            if let Some(old) = &old {
                                updates.push((Target::single(input), old.clone(), batch_time, -1));
                            }
                            if let Some(row) = &row {
                                updates.push((Target::single(input), row.clone(), batch_time, 1));
                            }
                        }
                        match row {
                            Some(row) => self.attributes[*entity].insert(id, row),
                            None => self.attributes[*entity].remove(id),
                        };
                        touched[*entity].insert(id);
                    }
                    outcome.applied += 1;
                }
                Record::Delete { entity, key } => {
                    let id = self.intern_key(*entity, key, batch_time, &mut updates);
                    if let Some(old) = self.attributes[*entity].remove(id) {
                        if let Some(input) = self.attributes_input[*entity] {
                            updates.push((Target::single(input), old, batch_time, -1));
                        }
                        touched[*entity].insert(id);
                    }
                    outcome.applied += 1;
                }
            }
        }
        batch.updates = updates;
    }

    /// Sends a batch begun with `begin` to the workers, like `submit`.
    pub fn finish(&mut self, batch: Batch) -> Submitted {
        let Batch {
            batch_time,
            mut new_now,
            event_clock,
            awaiting_now,
            mut updates,
            first_new_key,
            touched,
            mut outcome,
            records,
            started,
            ..
        } = batch;
        let mut stamp = None;
        if let Some(awaiting) = awaiting_now {
            new_now = event_clock.max(self.now);
            outcome.time = new_now;
            stamp = Some(logical_to_time(new_now));
            // What was queued before falls due by `now`, as `begin` would have taken it.
            self.take_due(logical_to_time(new_now), batch_time, &mut updates);
            awaiting.settle(logical_to_time(new_now), batch_time, &mut updates, &self.input_groups);
        }
        self.send(updates, batch_time, true);
        let sent = Instant::now();
        self.now = new_now;
        // Forget events no window can read any more.
        for (e, retention) in self.retention_ms.iter().enumerate() {
            if let Some(w) = retention {
                let horizon = new_now.saturating_sub(*w as i64);
                self.retained[e].forget_until(horizon);
            }
        }
        self.next_time = batch_time + 1;
        // What this batch publishes, as of now (a later submit may change it).
        // After the last batch nothing interns again: a batch run's keys
        // are handed over, not copied (1.2 % of the engine thread's time in
        // a 1M-event run, while the workers compute).
        let closed = self.closed;
        let new_keys = (self.keys.iter_mut().zip(first_new_key))
            .map(|(keys, first)| match first {
                0 if !keys.is_empty() && closed => NewKeys::All(std::mem::take(keys)),
                0 if !keys.is_empty() => NewKeys::All(keys.clone()),
                _ => NewKeys::Listed(keys.keys_from(first).cloned().collect()),
            })
            .collect();
        let attributes = touched
            .iter()
            .enumerate()
            .map(|(e, ids)| ids.iter().map(|&id| (id, self.attributes[e].get(id).cloned())).collect())
            .collect();
        Submitted { upto: batch_time + 1, new_now, stamp, new_keys, attributes, outcome, records, started, sent }
    }

    /// Waits until the workers have finished a submitted batch, then publishes
    /// it whole: instances, attributes, tag and segment changes, time.
    pub fn complete(&mut self, submitted: Submitted) -> BatchOutcome {
        let runs = self.receive(submitted.upto);
        let computed = Instant::now();
        let mut merged = MergedRuns::new(&self.plan, runs, submitted.stamp);
        let changes = merged.len();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        for (e, keys) in submitted.new_keys.into_iter().enumerate() {
            let table = &mut state.entities[e];
            match keys {
                NewKeys::All(keys) => {
                    debug_assert!(table.keys.is_empty(), "published keys out of step with the engine's");
                    table.keys = keys;
                }
                NewKeys::Listed(keys) => {
                    for key in keys {
                        // New keys come in id order, each once.
                        let next = table.keys.len() as u64;
                        let interned = table.keys.intern(&key);
                        debug_assert_eq!(interned, (next, true), "published keys out of step with the engine's");
                    }
                }
            }
        }
        for (e, rows) in submitted.attributes.into_iter().enumerate() {
            let table = &mut state.entities[e];
            for (id, row) in rows {
                match row {
                    Some(row) => table.attributes.insert(id, row),
                    None => table.attributes.remove(id),
                };
            }
        }
        state.apply_merged(&mut merged);
        state.time = submitted.new_now;
        state.batches += 1;
        drop(state);
        let outcome = submitted.outcome;
        tracing::debug!(
            records = submitted.records,
            applied = outcome.applied,
            duplicates = outcome.duplicates,
            now = submitted.new_now,
            changes,
            elapsed_ms = submitted.started.elapsed().as_millis() as u64,
            // Where the time went: building and sending the updates, the
            // workers' computation (after the last piece), publishing.
            build_us = submitted.sent.duration_since(submitted.started).as_micros() as u64,
            compute_us = computed.duration_since(submitted.sent).as_micros() as u64,
            publish_us = computed.elapsed().as_micros() as u64,
            "batch applied"
        );
        outcome
    }

    /// What a snapshot of the engine needs, taken without converting
    /// anything: the key tables, retained events and event ids are shared
    /// with the engine (their chunks), and so are the attribute rows (the
    /// slots by id are copied, 16 bytes an id). `EngineCopy::snapshot`
    /// makes the snapshot from it on another thread while ingest goes on
    /// (on the engine thread, turning every attribute row's references into
    /// keys held ingest ~30 ms at 100k instances). Not after the last batch,
    /// whose keys `finish` handed over (a server's engine has none).
    pub fn copy(&self) -> EngineCopy {
        debug_assert!(!self.closed, "a snapshot of an engine whose keys were handed over");
        EngineCopy {
            plan: self.plan.clone(),
            now: self.now,
            keys: self.keys.iter().map(Interner::shared_keys).collect(),
            attributes: self.attributes.clone(),
            events: self.retained.clone(),
            seen_ids: self.seen_ids.iter().map(IdSet::list).collect(),
        }
    }

    /// Rebuilds from a snapshot taken by the same or an earlier model:
    /// instances in their original order, then attributes and retained events,
    /// applied as one batch at the snapshot's time. Fields are matched by name
    /// and every value is checked against this model's type; what no longer
    /// fits (a removed entity, event or field, a changed type, a new required
    /// field) is not restored. Returns how many values and events were dropped.
    pub fn restore(&mut self, snapshot: &EngineSnapshot) -> usize {
        let plan = self.plan.clone();
        let mut dropped = 0;
        let mut records = Vec::new();
        let mut attribute_records = Vec::new();
        for ((name, old_fields), instances) in snapshot.entity_schema.iter().zip(&snapshot.entities) {
            let Some(e) = plan.entities.iter().position(|x| &x.name == name) else {
                dropped += instances.len();
                continue;
            };
            let entity = &plan.entities[e];
            let key_ty = entity.fields[entity.key].ty;
            for (key, row) in instances {
                if !fits(&plan, key, key_ty) {
                    dropped += 1;
                    continue;
                }
                records.push(Record::Upsert { entity: e, key: key.clone(), set: Vec::new(), unset: Vec::new() });
                let Some(row) = row else { continue };
                let mut set = Vec::new();
                for (old_i, v) in row.iter().enumerate() {
                    let new_i = old_fields.get(old_i).and_then(|n| entity.fields.iter().position(|f| &f.name == n));
                    match new_i {
                        Some(i) if i == entity.key || v.is_null() => {}
                        Some(i) if fits(&plan, v, entity.fields[i].ty) => set.push((i, v.clone())),
                        // Null, or the instance's own internal id in its key
                        // field, as earlier snapshots wrote it (references are
                        // by key): nothing to restore, under a renamed key
                        // field too.
                        _ if v.is_null() || matches!(v, Value::Ref(_)) => {}
                        _ => dropped += 1,
                    }
                }
                attribute_records.push(Record::Upsert { entity: e, key: key.clone(), set, unset: Vec::new() });
            }
        }
        records.extend(attribute_records);
        for ((name, old_fields), rows) in snapshot.event_schema.iter().zip(&snapshot.events) {
            let Some(ev) = plan.events.iter().position(|x| &x.name == name) else {
                dropped += rows.len();
                continue;
            };
            let fields = &plan.events[ev].fields;
            let positions: Vec<Option<usize>> =
                fields.iter().map(|f| old_fields.iter().position(|n| *n == f.name)).collect();
            for row in rows.rows() {
                let new_row: Option<Row> = fields
                    .iter()
                    .zip(&positions)
                    .map(|(f, p)| {
                        let v = p.and_then(|p| row.get(p)).cloned().unwrap_or(Value::Null);
                        let ok = if v.is_null() { f.nullable } else { fits(&plan, &v, f.ty) };
                        ok.then_some(v)
                    })
                    .collect();
                match new_row {
                    Some(r) => records.push(Record::Event { event: ev, row: r }),
                    None => dropped += 1,
                }
            }
        }
        // Re-applying registers the ids of retained events; ids of events no longer
        // retained are added after, so later redeliveries of those are still caught.
        self.apply_at(&records, snapshot.now);
        for ((name, _), ids) in snapshot.event_schema.iter().zip(&snapshot.seen_ids) {
            if let Some(ev) = plan.events.iter().position(|x| &x.name == name) {
                for id in ids.iter() {
                    self.seen_ids[ev].insert(id.as_bytes());
                }
            }
        }
        dropped
    }

    /// Writes `row` of an `event` into `out` with its references interned;
    /// registers newly named instances.
    fn intern_row(&mut self, event: usize, row: &[Value], time: Time, updates: &mut Vec<Update>, out: &mut Row) {
        out.clear();
        for (f, v) in row.iter().enumerate() {
            out.push(match self.event_types[event][f] {
                Type::Ref(e) if !v.is_null() => Value::Ref(self.intern_key(e, v, time, updates)),
                _ => v.clone(),
            });
        }
    }

    fn intern_key(&mut self, entity: usize, key: &Value, time: Time, updates: &mut Vec<Update>) -> u64 {
        let (id, new) = self.keys[entity].intern(key);
        if new {
            self.key_order.push(entity, key);
            if let Some(input) = self.instances_input[entity] {
                updates.push((Target::single(input), vec![Value::Ref(id), key.clone()].into(), time, 1));
            }
        }
        id
    }

    /// Sends each worker its share of `updates` (all at `batch_time`); when
    /// the batch is `complete`, the workers compute it. A piece of a batch
    /// being fed goes whole to one worker, in turn: they balance over many
    /// pieces, and nothing is copied.
    fn send(&mut self, updates: Vec<Update>, batch_time: Time, complete: bool) {
        let n = self.commands.len();
        if !complete {
            let worker = self.next_worker % n;
            self.next_worker = self.next_worker.wrapping_add(1);
            // A worker that is gone has panicked, and the process is stopping (see `start`).
            let _ = self.commands[worker].send(Command::Feed { updates, at: batch_time });
            return;
        }
        let mut shares: Vec<Vec<Update>> = (0..n).map(|_| Vec::with_capacity(updates.len() / n + 1)).collect();
        for u in updates {
            shares[self.next_worker % n].push(u);
            self.next_worker = self.next_worker.wrapping_add(1);
        }
        for (tx, share) in self.commands.iter().zip(shares) {
            let _ = tx.send(Command::Step { updates: share, upto: batch_time + 1 });
        }
    }

    /// Waits for every worker's answer to the batch complete at `upto` and
    /// returns their changes, each worker's sorted runs; answers for later
    /// batches (a worker can run ahead) are kept for their turn.
    fn receive(&mut self, upto: Time) -> Vec<Vec<OutputUpdate>> {
        let n = self.commands.len();
        let mut runs = Vec::new();
        let mut got = 0;
        let mut i = 0;
        while i < self.early.len() {
            if self.early[i].upto == upto {
                runs.extend(self.early.swap_remove(i).outputs);
                got += 1;
            } else {
                i += 1;
            }
        }
        while got < n {
            match self.acks.recv() {
                Ok(ack) if ack.upto == upto => {
                    runs.extend(ack.outputs);
                    got += 1;
                }
                Ok(ack) => self.early.push(ack),
                Err(_) => break,
            }
        }
        runs
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.commands.clear();
        if let Some(guards) = self.guards.take() {
            drop(guards);
        }
    }
}

pub fn logical_to_time(ms: i64) -> Time {
    (ms.max(0) as u64) << SUB_BITS
}

pub fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// How many records ahead of the one whose id `accept` hashes it asks for
/// that id's bytes: about the time a cache miss to the other core takes,
/// in hashing and looking up ids (not tuned further; with UUID ids the
/// engine thread's samples fell from 3279 to 2819, BENCHMARKS.md).
const BYTES_AHEAD: usize = 16;

/// The references that `records`' events give: (entity, key), the nulls left out.
fn references<'r>(records: &'r [Record], event_types: &'r [Vec<Type>]) -> impl Iterator<Item = (usize, &'r Value)> {
    records
        .iter()
        .flat_map(move |record| match record {
            Record::Event { event, row } => Some(row.iter().zip(&event_types[*event])),
            _ => None,
        })
        .flatten()
        .filter_map(|(value, ty)| match (ty, value.is_null()) {
            (Type::Ref(entity), false) => Some((*entity, value)),
            _ => None,
        })
}

/// Asks for the bytes of the keys that `records`' references give, a long
/// one being a string of its own on the heap (see `accept`): hashing them
/// to find their slots (`warm_references`) reads them.
fn warm_reference_bytes(records: &[Record], event_types: &[Vec<Type>]) {
    for (_, key) in references(records, event_types) {
        if let Value::Str(key) = key {
            prefetch_text(key);
        }
    }
}

/// The event type and id of an event record with an id (the decoder gives
/// an event's id as a string or null).
fn event_id(record: &Record) -> Option<(usize, &Text)> {
    match record {
        Record::Event { event, row } => match &row[EVENT_ID] {
            Value::Str(id) => Some((*event, id)),
            _ => None,
        },
        _ => None,
    }
}
