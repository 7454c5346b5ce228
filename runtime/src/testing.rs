//! Test support: one operator run over given changes, a time at a time.

use crate::render::Time;
use differential_dataflow::input::Input;
use differential_dataflow::{ExchangeData, VecCollection};
use std::sync::{Arc, Mutex};

/// An operator under test, from its input collection to its output.
pub type Operator<D, O> = for<'s> fn(VecCollection<'s, Time, D, isize>) -> VecCollection<'s, Time, O, isize>;

/// Feeds `times[t]` to `operator` at time `t`, on one worker; returns what
/// it emitted at each time, sorted.
pub fn emitted<D, O>(times: Vec<Vec<(D, isize)>>, operator: Operator<D, O>) -> Vec<Vec<(O, isize)>>
where
    D: ExchangeData + Sync,
    O: ExchangeData + Ord,
{
    let seen: Arc<Mutex<Vec<(O, Time, isize)>>> = Arc::default();
    let sink = seen.clone();
    let steps = times.len();
    timely::execute_directly(move |worker| {
        let probe = timely::dataflow::ProbeHandle::new();
        let mut input = worker.dataflow::<Time, _, _>(|scope| {
            let (input, changes) = scope.new_collection::<D, isize>();
            operator(changes).inspect(move |x| sink.lock().unwrap().push(x.clone())).probe_with(&probe);
            input
        });
        for (t, changes) in times.into_iter().enumerate() {
            for (data, diff) in changes {
                input.update(data, diff);
            }
            input.advance_to(t as Time + 1);
            input.flush();
            while probe.less_than(input.time()) {
                worker.step();
            }
        }
    });
    let seen = seen.lock().unwrap();
    (0..steps as Time)
        .map(|t| {
            let mut at: Vec<(O, isize)> = seen.iter().filter(|x| x.1 == t).map(|x| (x.0.clone(), x.2)).collect();
            at.sort();
            at
        })
        .collect()
}
