//! Reading version 1 snapshots, whose change log is only its list of
//! changes: it started at the first change ever made, since nothing was
//! forgotten then. The same fields in the same order as version 2 otherwise
//! (bincode writes a struct as the tuple of its fields).

use super::change_log::{ChangeLog, Listed};
use super::ServingSnapshot;
use crate::engine::EngineSnapshot;
use segflow_compiler::value::Value;
use serde::de::DeserializeSeed;
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
pub(super) struct Snapshot {
    seq: u64,
    model: String,
    engine: EngineSnapshot,
    serving: Serving,
}

#[derive(Deserialize)]
struct Serving {
    time: i64,
    batches: u64,
    changes: FromFirst,
    members: Vec<(String, Vec<(Value, i64)>)>,
}

/// A list of changes, the first at position 0.
struct FromFirst(ChangeLog);

impl<'de> Deserialize<'de> for FromFirst {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FromFirst, D::Error> {
        Listed { start: 0 }.deserialize(deserializer).map(FromFirst)
    }
}

impl From<Snapshot> for super::Snapshot {
    fn from(v1: Snapshot) -> super::Snapshot {
        let Serving { time, batches, changes: FromFirst(changes), members } = v1.serving;
        super::Snapshot {
            seq: v1.seq,
            model: v1.model,
            engine: v1.engine,
            serving: ServingSnapshot { time, batches, changes, members },
        }
    }
}
