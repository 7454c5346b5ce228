//! Where an input update goes: one update for all the inputs of an event
//! type that carry the same row.
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

/// Inputs `routes[route].inputs[i]` for each bit `i` set in `mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub route: u32,
    pub mask: u32,
}

impl Target {
    /// Input `input` alone: routes `0..inputs` are the inputs one by one.
    pub fn single(input: usize) -> Target {
        Target { route: input as u32, mask: 1 }
    }
}

/// Inputs fed the same rows, and each one's window.
#[derive(Clone, Debug, Default)]
pub struct Route {
    pub inputs: Vec<usize>,
    pub windows: Vec<Option<u64>>,
    /// The event fields its rows carry (empty for an input that is not an event's).
    pub fields: Vec<usize>,
}

/// A mask holds this many inputs.
const WIDTH: usize = 32;

#[derive(Clone, Debug, Default)]
pub struct Routes {
    pub routes: Vec<Route>,
    /// Per event type, its routes (after the single ones), each of inputs
    /// carrying the same fields.
    pub of_event: Vec<Vec<u32>>,
}

impl Routes {
    pub fn new(plan: &Plan) -> Routes {
        let mut routes: Vec<Route> = plan
            .inputs
            .iter()
            .enumerate()
            .map(|(i, input)| match input {
                Input::Events { window_ms, fields, .. } => {
                    Route { inputs: vec![i], windows: vec![*window_ms], fields: fields.clone() }
                }
                _ => Route { inputs: vec![i], windows: vec![None], fields: Vec::new() },
            })
            .collect();
        let mut of_event = vec![Vec::new(); plan.events.len()];
        for (i, input) in plan.inputs.iter().enumerate() {
            let Input::Events { event, window_ms, fields } = input else { continue };
            let shared = of_event[*event].iter().copied().find(|&r: &u32| {
                let route: &Route = &routes[r as usize];
                route.fields == *fields && route.inputs.len() < WIDTH
            });
            let r = match shared {
                Some(r) => r,
                None => {
                    routes.push(Route { inputs: Vec::new(), windows: Vec::new(), fields: fields.clone() });
                    of_event[*event].push(routes.len() as u32 - 1);
                    routes.len() as u32 - 1
                }
            };
            routes[r as usize].inputs.push(i);
            routes[r as usize].windows.push(*window_ms);
        }
        Routes { routes, of_event }
    }

    pub fn route(&self, target: Target) -> &Route {
        &self.routes[target.route as usize]
    }
}

impl Route {
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

/// Puts `row` into each input `target` names.
pub fn apply(
    routes: &Routes,
    target: Target,
    row: SharedRow,
    time: Time,
    diff: isize,
    sessions: &mut [InputSession<Time, SharedRow, isize>],
) {
    let inputs = &routes.route(target).inputs;
    let mut bits = target.mask;
    while bits != 0 {
        let bit = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        sessions[inputs[bit]].update_at(row.clone(), time, diff);
    }
}

#[cfg(test)]
mod tests {
    use super::{Routes, Target};

    #[test]
    fn inputs_of_one_event_with_the_same_fields_share_a_route() {
        let source = "entity user { key id: string; }
            event order { user: user; amount: decimal; }
            tag user.n7 = count(order within 7d);
            tag user.s30 = sum(order.amount within 30d);
            tag user.n = count(order);";
        let plan = &segflow_compiler::compile_str("t.eql", source).map_err(|(_, d)| format!("{d:?}")).unwrap().plan;
        let routes = Routes::new(plan);
        // One route per input alone, then the order's.
        assert_eq!(routes.routes.len(), plan.inputs.len() + routes.of_event.iter().map(Vec::len).sum::<usize>());
        for (i, route) in routes.routes.iter().take(plan.inputs.len()).enumerate() {
            assert_eq!(route.inputs, [i]);
        }
        let order_inputs: usize =
            plan.inputs.iter().filter(|i| matches!(i, segflow_compiler::plan::Input::Events { .. })).count();
        let covered: usize = routes.of_event.iter().flatten().map(|&r| routes.routes[r as usize].inputs.len()).sum();
        assert_eq!(covered, order_inputs);
        // A route's windows are its inputs', in order.
        let day = 86_400_000;
        let route = &routes.routes[routes.of_event[0][0] as usize];
        let at = 0;
        // Nothing has closed at the event's own time; the 7-day window has a week on.
        assert_eq!(route.closed(at, crate::engine::logical_to_time(at)), 0);
        let week = route.closed(at, crate::engine::logical_to_time(7 * day));
        assert_eq!(week.count_ones(), 1);
        assert_eq!(route.windows[week.trailing_zeros() as usize], Some(7 * day as u64));
        assert_eq!(Target::single(3), Target { route: 3, mask: 1 });
    }
}
