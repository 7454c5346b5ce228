//! Where an input update goes: one update for all the inputs of an event
//! type that carry the same row (a group of inputs).
//!
//! The plan gives every (event type, window) its own input: a retail order
//! feeds eight (its count over 30 days, its sum over 90, ...), all with the
//! same fields. The engine thread, which builds every batch alone, pushed an
//! update per input: eight per order, each a pointer to the same row, and
//! as many pending rows while a batch run waits for its `now`. Now it pushes
//! one update with the set of those inputs, and the workers, which share the
//! rest of the work, put the row into each.

use crate::render::{SharedRow, Time};
use differential_dataflow::input::InputSession;
use segflow_compiler::plan::{Input, Plan};

/// Inputs `groups[group].inputs[i]` for each bit `i` set in `mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub group: u32,
    pub mask: u32,
}

impl Target {
    /// Input `input` alone: groups `0..inputs` are the inputs one by one.
    pub fn single(input: usize) -> Target {
        Target { group: input as u32, mask: 1 }
    }
}

/// Inputs fed the same rows, and each one's window.
#[derive(Clone, Debug, Default)]
pub struct InputGroup {
    pub inputs: Vec<usize>,
    pub windows: Vec<Option<u64>>,
    /// The event fields its rows carry (empty for an input that is not an event's).
    pub fields: Vec<usize>,
}

/// A mask holds this many inputs.
const WIDTH: usize = 32;

#[derive(Clone, Debug, Default)]
pub struct InputGroups {
    pub groups: Vec<InputGroup>,
    /// Per event type, its groups (after the single ones), each of inputs
    /// carrying the same fields.
    pub of_event: Vec<Vec<u32>>,
}

impl InputGroups {
    pub fn new(plan: &Plan) -> InputGroups {
        let mut groups: Vec<InputGroup> = plan
            .inputs
            .iter()
            .enumerate()
            .map(|(i, input)| match input {
                Input::Events { window_ms, fields, .. } => {
                    InputGroup { inputs: vec![i], windows: vec![*window_ms], fields: fields.clone() }
                }
                _ => InputGroup { inputs: vec![i], windows: vec![None], fields: Vec::new() },
            })
            .collect();
        let mut of_event = vec![Vec::new(); plan.events.len()];
        for (i, input) in plan.inputs.iter().enumerate() {
            let Input::Events { event, window_ms, fields } = input else { continue };
            let shared = of_event[*event].iter().copied().find(|&g: &u32| {
                let group: &InputGroup = &groups[g as usize];
                group.fields == *fields && group.inputs.len() < WIDTH
            });
            let g = match shared {
                Some(g) => g,
                None => {
                    groups.push(InputGroup { inputs: Vec::new(), windows: Vec::new(), fields: fields.clone() });
                    of_event[*event].push(groups.len() as u32 - 1);
                    groups.len() as u32 - 1
                }
            };
            groups[g as usize].inputs.push(i);
            groups[g as usize].windows.push(*window_ms);
        }
        InputGroups { groups, of_event }
    }

    pub fn group(&self, target: Target) -> &InputGroup {
        &self.groups[target.group as usize]
    }
}

impl InputGroup {
    /// The bits of the windowed inputs whose window, for an event at `at`
    /// (epoch ms), has closed by `out_before` (a dataflow time): those a row
    /// is retracted from by then.
    pub fn closed(&self, at: i64, out_before: Time) -> u32 {
        let mut mask = 0;
        for (bit, window) in self.windows.iter().enumerate() {
            if window.is_some_and(|w| retraction(at, w) <= out_before) {
                mask |= 1 << bit;
            }
        }
        mask
    }
}

/// The dataflow time an event at `at` leaves a window of `window` ms.
pub fn retraction(at: i64, window: u64) -> Time {
    crate::engine::logical_to_time(at.saturating_add(window as i64))
}

/// `apply` of each update in turn. A row was made by the engine thread,
/// on another core, and the first touch of it here is the count its clone
/// increments: a cache miss an update (3 % of the workers' samples in a
/// backfill), so the row `UPDATES_AHEAD` updates on is asked for meanwhile.
pub fn apply_all(
    groups: &InputGroups,
    updates: Vec<(Target, SharedRow, Time, isize)>,
    sessions: &mut [InputSession<Time, SharedRow, isize>],
) {
    let mut updates = updates.into_iter();
    while let Some((target, row, time, diff)) = updates.next() {
        // (What is left starts at the next update.)
        if let Some((_, ahead, _, _)) = updates.as_slice().get(UPDATES_AHEAD - 1) {
            crate::instances::prefetch_arc(ahead);
        }
        apply(groups, target, row, time, diff, sessions);
    }
}

/// How far ahead `apply_all` prefetches a row.
const UPDATES_AHEAD: usize = 8;

/// Puts `row` into each input `target` names.
pub fn apply(
    groups: &InputGroups,
    target: Target,
    row: SharedRow,
    time: Time,
    diff: isize,
    sessions: &mut [InputSession<Time, SharedRow, isize>],
) {
    let inputs = &groups.group(target).inputs;
    let mut bits = target.mask;
    while bits != 0 {
        let bit = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        sessions[inputs[bit]].update_at(row.clone(), time, diff);
    }
}

#[cfg(test)]
mod tests {
    use super::{InputGroups, Target};
    use crate::engine::logical_to_time;
    use segflow_compiler::plan::{Input, Plan};

    fn plan(source: &str) -> Plan {
        segflow_compiler::compile_str("t.eql", source).map_err(|(_, d)| format!("{d:?}")).unwrap().plan
    }

    #[test]
    fn inputs_of_one_event_with_the_same_fields_share_a_group() {
        let plan = plan(
            "entity user { key id: string; }
            event order { user: user; amount: decimal; }
            tag user.n7 = count(order within 7d);
            tag user.s30 = sum(order.amount within 30d);
            tag user.n = count(order);",
        );
        let groups = InputGroups::new(&plan);
        // One group per input alone, then the order's.
        assert_eq!(groups.groups.len(), plan.inputs.len() + groups.of_event.iter().map(Vec::len).sum::<usize>());
        for (i, group) in groups.groups.iter().take(plan.inputs.len()).enumerate() {
            assert_eq!(group.inputs, [i]);
        }
        let events = plan.inputs.iter().filter(|i| matches!(i, Input::Events { .. })).count();
        let covered: usize = groups.of_event.iter().flatten().map(|&g| groups.groups[g as usize].inputs.len()).sum();
        assert_eq!(covered, events);
        // A group's windows are its inputs', in order: at the event's own
        // time none has closed; a week on, the 7-day one has.
        let day = 86_400_000;
        let group = &groups.groups[groups.of_event[0][0] as usize];
        assert_eq!(group.closed(0, logical_to_time(0)), 0);
        let week = group.closed(0, logical_to_time(7 * day));
        assert_eq!(week.count_ones(), 1);
        assert_eq!(group.windows[week.trailing_zeros() as usize], Some(7 * day as u64));
        assert_eq!(Target::single(3), Target { group: 3, mask: 1 });
    }

    #[test]
    fn more_inputs_than_a_mask_holds_take_two_groups() {
        let tags: String = (1..=33).map(|d| format!("tag user.n{d} = count(order within {d}d);\n")).collect();
        let plan = plan(&format!("entity user {{ key id: string; }}\nevent order {{ user: user; }}\n{tags}"));
        let groups = InputGroups::new(&plan);
        let sizes: Vec<usize> = groups.of_event[0].iter().map(|&g| groups.groups[g as usize].inputs.len()).collect();
        assert_eq!(sizes, [32, 1]);
    }
}
