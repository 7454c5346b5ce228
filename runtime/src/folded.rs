//! The frame of an operator that keeps its own state per instance
//! (`totals`, `distinct`): changes exchanged by instance, each time's
//! changes folded as they arrive, and handed over whole, in time order, once
//! no change at that time can come any more.

use crate::render::Time;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use std::collections::BTreeMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

/// `fold` adds one change (instance, value, multiplicity) to its time's
/// folded changes `F`; `complete` takes a completed time's `F` and appends
/// what the operator emits at that time.
pub fn folded_by_time<'s, D, F, O>(
    changes: VecCollection<'s, Time, (u64, D), isize>,
    name: &str,
    fold: impl Fn(&mut F, u64, D, isize) + 'static,
    mut complete: impl FnMut(F, &mut Vec<(O, isize)>) + 'static,
) -> VecCollection<'s, Time, O, isize>
where
    D: ExchangeData,
    F: Default + 'static,
    O: ExchangeData,
{
    let exchange = Exchange::new(|((key, _), _, _): &((u64, D), Time, isize)| *key);
    changes
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<(O, Time, isize)>>, _, _, _>(
            exchange,
            name,
            move |_capability, _info| {
                let mut waiting: BTreeMap<Time, (Capability<Time>, F)> = BTreeMap::new();
                let mut emitted = Vec::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|stamp, containers| {
                        let Some(cap) = stamp.retain_least(0) else { return };
                        for container in containers {
                            for ((key, value), time, diff) in container.drain(..) {
                                let entry = waiting.entry(time).or_insert_with(|| (cap.delayed(&time), F::default()));
                                fold(&mut entry.1, key, value, diff);
                            }
                        }
                    });
                    while let Some(entry) = waiting.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (time, (cap, folded)) = entry.remove_entry();
                        complete(folded, &mut emitted);
                        let mut session = output.session(&cap);
                        for (data, diff) in emitted.drain(..) {
                            session.give((data, time, diff));
                        }
                    }
                }
            },
        )
        .as_collection()
}
