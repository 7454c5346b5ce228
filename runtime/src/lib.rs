//! Stage 3 of the segflow pipeline: a plan, running.
//!
//! ```text
//!  NDJSON ──decode──> Record ──Engine::apply──> input sessions ──> dataflow (render)
//!                                                                     │ output changes
//!                     readers <── ServingState (one lock per batch) <─┘
//! ```
//!
//! [`decode`] validates records against the model; [`engine::Engine`] owns the
//! timely workers, the clock, deduplication and window retractions, and
//! publishes each batch whole into the [`state::ServingState`]; [`render`]
//! turns the compiler's plan into differential operators. The runtime never
//! looks at EQL syntax: everything it knows comes from the plan.

pub mod chunked;
pub mod column;
pub mod decode;
pub mod distinct;
pub mod due;
pub mod engine;
pub mod enriched;
pub mod folded;
pub mod gathered;
pub mod ids;
pub mod input_groups;
pub mod instances;
pub mod intern;
pub mod json;
pub mod keyed;
pub mod load;
pub mod members;
pub mod pairs;
pub mod priority;
pub mod probed;
pub mod profile;
pub mod radix;
pub mod render;
pub mod retained;
pub mod sharded;
pub mod snapshot;
pub mod state;
#[cfg(test)]
mod testing;
pub mod threads;
pub mod totals;
pub mod unbeaten;
pub mod values;
pub mod wal;

pub use decode::{DecodeError, Decoder, Record, Warning};
pub use engine::{Clock, Engine, EngineConfig};
pub use state::ServingState;
