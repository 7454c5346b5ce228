//! Deterministic synthetic data for segflow's examples and benchmarks.
//!
//! This crate is behind `segflow gen`. [`generate_for`] writes data for any
//! model from its declared entities and events (`segflow gen --model FILE.eql`;
//! the module `any_model` says how). [`generate`], the rest of this page, writes
//! richer data for one model, the retail example.
//!
//! [`generate`] writes NDJSON data records (EQL.md §10) for
//! the model in `examples/retail/retail.eql`: first the entities (stores, products,
//! users, as `set` upserts), then a stream of `page_view`, `add_to_cart`, `order` and
//! `referral` events over `days` days ending at `end_ms`, in increasing time.
//!
//! ```text
//! {"entity":"store","id":"s0001","set":{"city":"Shanghai","region":"East China"}}
//! {"entity":"product","id":"p000001","set":{"category":"shoes","price":"129.99","weight_kg":0.85}}
//! {"entity":"user","id":"u0000001","set":{"name":"Li Na","city":"Beijing","signup_at":…,"home_store":"s0002","vip":false}}
//! {"event":"order","id":"o-1","at":"2026-08-22T01:02:03.456Z","user":"u0004711","store":null,"product":"p000017","amount":259.90,"quantity":1}
//! ```
//!
//! The data looks like a real shop's, so that tags and segments have something to
//! find: users, products and stores are picked with a power-law skew (a few very
//! active users, a long tail); activity follows the hour of day (China time),
//! the weekday and the 11.11 / 6.18 / 12.12 festivals; page views lead to carts and
//! orders of the same product. It also has the untidiness a pipeline must survive,
//! each counted in [`GenStats`]: ~1% late events (up to three days behind the newest
//! time sent), ~0.1% duplicates (an earlier event line re-sent byte for byte, same
//! `id`), and ~0.5% attribute changes between the events (moves, new home stores,
//! repricing, `unset`, rarely a `delete`). Nullable fields are sometimes `null` and
//! sometimes absent; timestamps are RFC 3339 strings or epoch milliseconds; decimals
//! are JSON numbers or strings.
//!
//! **Deterministic**: the same [`GenConfig`] gives byte-identical output on every
//! platform. The generator has its own PRNG (xoshiro256**), uses integer
//! arithmetic for everything it prints, and no platform math functions.
//!
//! ```
//! let config = segflow_gen::GenConfig { users: 200, events: 1_000, ..Default::default() };
//! let mut out = Vec::new();
//! let stats = segflow_gen::generate(&config, &mut out)?;
//! assert_eq!(stats.events, 1_000);
//! assert_eq!(stats.bytes, out.len() as u64);
//! assert_eq!(stats.lines(), out.iter().filter(|&&b| b == b'\n').count() as u64);
//! # Ok::<(), std::io::Error>(())
//! ```

mod any_model;
mod args;
mod clock;
mod generator;
mod json;
mod model;
mod rng;
pub mod schema;
mod stream;
mod time;

pub use args::{parse_args, GenArgs, USAGE};
pub use schema::Schema;

/// What to generate. Two runs with equal configs write identical bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenConfig {
    /// Number of users; stores are `max(5, users / 2000)`, products `max(50, users / 100)`.
    /// For [`generate_for`], instances of the model's main entity (see there).
    pub users: u64,
    /// Number of distinct events (duplicates come on top).
    pub events: u64,
    pub seed: u64,
    /// Length of the event time span.
    pub days: u32,
    /// End of the event time span, epoch milliseconds (exclusive).
    pub end_ms: i64,
}

/// 2026-11-20T00:00:00Z in epoch milliseconds.
pub const DEFAULT_END_MS: i64 = 1_795_132_800_000;

/// Limits [`generate`] and [`generate_for`] accept: referrals need two
/// distinct users; the retail generator's per-user state takes ~10 bytes per user.
pub const MAX_USERS: u64 = 1_000_000_000;
pub const MAX_DAYS: u32 = 36_500;
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z.
const MIN_END_MS: i64 = -62_135_596_800_000;
const MAX_END_MS: i64 = 253_402_300_799_999;

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig { users: 10_000, events: 100_000, seed: 42, days: 90, end_ms: DEFAULT_END_MS }
    }
}

/// What [`generate`] wrote. Every output line is exactly one of: an entity record,
/// an event, an attribute update, or a duplicate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Entity upserts of the initial block (stores, products, users; for
    /// `generate_for`, every instance of every entity).
    pub entity_records: u64,
    /// Distinct events (equals `GenConfig::events`, or 0 for a model
    /// without events), late ones included.
    pub events: u64,
    /// Entity records interleaved with the events (`set`, `unset`, `delete`).
    pub attribute_updates: u64,
    /// Re-sent copies of earlier event lines.
    pub duplicates: u64,
    /// Events whose time is before the newest event time sent before them.
    pub late: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl GenStats {
    /// The number of lines written.
    pub fn lines(&self) -> u64 {
        self.entity_records + self.events + self.attribute_updates + self.duplicates
    }
}

/// Writes the data set described by `config` to `out` as NDJSON, one record per
/// line, and returns what it wrote.
///
/// Output is buffered internally in large chunks, so `out` need not be a
/// `BufWriter`. Fails with [`std::io::ErrorKind::InvalidInput`] if `users` is
/// not in `2..=MAX_USERS`, `days` not in `1..=MAX_DAYS`, or the time span
/// leaves the years 0001..=9999, and with `out`'s own
/// error if a write fails.
pub fn generate(config: &GenConfig, out: &mut impl std::io::Write) -> std::io::Result<GenStats> {
    check(config)?;
    generator::Generator::new(config).run(config, out)
}

/// Writes synthetic data for any model, described by `schema`, as
/// [`generate`] does for the retail example: the entity block, then
/// `config.events` events over `config.days` days ending at `config.end_ms`.
/// `config.users` counts the instances of the model's main entity
/// ([`Schema::main_entity`]); every other entity has `max(10, users / 100)`
/// ([`Schema::instance_counts`]). The module `any_model` says how values are drawn.
/// Fails as [`generate`] does, and when the schema is not one EQL allows
/// (a key that is not a string or an int, a reference to no entity).
///
/// ```
/// use segflow_gen::schema::{EntitySchema, EventSchema, FieldSchema, FieldType, Schema};
/// let schema = Schema {
///     entities: vec![EntitySchema { name: "user".into(), key: 0, fields: vec![
///         FieldSchema::new("id", FieldType::String, false),
///         FieldSchema::new("city", FieldType::String, true),
///     ] }],
///     events: vec![EventSchema { name: "visit".into(), fields: vec![
///         FieldSchema::new("user", FieldType::Ref(0), false),
///     ] }],
/// };
/// let config = segflow_gen::GenConfig { users: 50, events: 200, ..Default::default() };
/// let mut out = Vec::new();
/// let stats = segflow_gen::generate_for(&schema, &config, &mut out)?;
/// assert_eq!((stats.entity_records, stats.events), (50, 200));
/// assert!(String::from_utf8(out).unwrap().starts_with("{\"entity\":\"user\",\"id\":\"u01\""));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn generate_for(schema: &Schema, config: &GenConfig, out: &mut impl std::io::Write) -> std::io::Result<GenStats> {
    check(config)?;
    schema.check().map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
    any_model::ModelGenerator::new(schema, config).run(config, out)
}

/// The limits [`generate`] and [`generate_for`] put on a config.
fn check(config: &GenConfig) -> std::io::Result<()> {
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
    if !(2..=MAX_USERS).contains(&config.users) {
        return Err(invalid(format!("users must be between 2 and {MAX_USERS}, got {}", config.users)));
    }
    if !(1..=MAX_DAYS).contains(&config.days) {
        return Err(invalid(format!("days must be between 1 and {MAX_DAYS}, got {}", config.days)));
    }
    // Signups go back up to three years before the first event; keep every
    // timestamp within RFC 3339's years 0001..=9999.
    let earliest = config.end_ms.saturating_sub(i64::from(config.days + 4 * 366) * 86_400_000);
    if !(MIN_END_MS..=MAX_END_MS).contains(&config.end_ms) || earliest < MIN_END_MS {
        return Err(invalid(format!("end_ms {} puts timestamps outside the years 0001..=9999", config.end_ms)));
    }
    Ok(())
}
