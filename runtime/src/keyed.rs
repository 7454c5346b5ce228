//! Per-instance state held in memory: the operator behind gathers and the
//! aggregates that need an instance's values (min, max, mode, first, last,
//! float sums).
//!
//! Differential's `reduce` recomputes a changed instance by re-reading its
//! whole input history from the batches of an arrangement. Here each worker
//! keeps, per instance of its share, the consolidated multiset of its values
//! (sorted), applies a time's changes once the time is complete (one merge per
//! instance), recomputes the touched instances and emits only the differences
//! from what they produced before. The engine's times are totally ordered and
//! applied in order, so the output is exactly the collection `reduce` gives.
//!
//! Values that are only ever inserted need less: `running` keeps, per
//! instance, just the greatest value so far (min, max, first and last over
//! events without a window), and folds a time's changes into one greatest
//! value per instance as they arrive. Values that leave only by expiring,
//! oldest first, need less too: `expiring` keeps, per instance, only the
//! entries that no later entry will outlast (last, min and max over windowed
//! events' own fields). And `mode` counts a large instance's values in a hash
//! table, remembering the most frequent, instead of scanning them all.

use crate::chunked::Slots;
use crate::instances::Instances;
use crate::render::Time;
use crate::values::Values;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use foldhash::HashMap;
use segflow_compiler::value::Value;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use thin_vec::ThinVec;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::progress::frontier::MutableAntichain;

/// What an operator keeps for one instance, and how a time's changes to its
/// values update it. There is one per instance, often millions, so what all
/// of an operator's instances share (`Logic`) is not kept in each.
pub(crate) trait InstanceState<D, V>: Default {
    /// What the instance produces from its values, the operator's to hold.
    type Logic;
    /// Adds `changes` (in no particular order; it may reorder or drain them)
    /// to the instance's values, producing nothing yet: a time's changes may
    /// come in several parts.
    fn absorb(&mut self, changes: &mut Vec<(D, isize)>);
    /// Appends to `out` the differences in what the instance produces since
    /// it last produced. `scratch` is the operator's buffer, for producing
    /// without allocating.
    fn produce(&mut self, logic: &Self::Logic, scratch: &mut Vec<V>, out: &mut Vec<(V, isize)>);
    /// How many values the instance holds.
    fn size(&self) -> usize;
    /// Whether `changes` of a time not yet complete are better folded in
    /// with its last ones than now: a few into a large state, where each
    /// fold costs a search (see `Absorbed::absorb_ahead`).
    fn folds_later(&self, changes: usize) -> bool {
        changes * 8 < self.size()
    }
    /// Asks for the memory its values are in (see `Ahead`).
    fn prefetch(&self) {}
    /// Whether `prefetch_pointed` asks for anything: the others skip the
    /// lookup of the instance it needs (a hash table's, in sparse form).
    const PREFETCHES_POINTED: bool = false;
    /// Asks for the first memory its pointers lead to, reading only the
    /// state itself (see `Ahead`): where `prefetch` reads a length kept
    /// behind a pointer, that read was a cache miss of its own.
    fn prefetch_pointed(&self) {}
    /// Whether the instance has no values left (its state can go).
    fn is_empty(&self) -> bool {
        self.size() == 0
    }
    /// Whether it holds output it produced (to retract when that changes).
    fn holds_output(&self) -> bool;
    /// Whether it is as new: nothing in it, nothing produced.
    fn is_vacant(&self) -> bool {
        self.is_empty() && !self.holds_output()
    }
}

/// How an operator holds one time's changes until the time completes.
pub(crate) trait Pending<D>: Default {
    /// Empty, with room for about `changes` (the last time's count): a
    /// refresh's operator held each time's changes in buffers that grew
    /// from nothing through every doubling, copying what they held each
    /// time (~2 % of the workers' time in a refresh of retail orders).
    fn with_room(changes: usize) -> Self {
        let _ = changes;
        Self::default()
    }
    fn push(&mut self, key: u64, value: D, diff: isize);
    /// Changes (or folded values) held.
    fn held(&self) -> usize;
    /// Hands `f` each instance's changes (in any order; `f` may drain them),
    /// and instances it will hand over next, to prefetch (see `Ahead`).
    fn for_each_instance(self, f: impl FnMut(u64, &mut Vec<(D, isize)>, Ahead));
}

/// Instances a few and several places ahead of the one being handed over:
/// an operator prefetches the slot of the farthest, the memory the state
/// of the middle one points to (`prefetch_pointed`), and the state of the
/// nearest, so that the cache misses of a table of a million instances
/// overlap instead of following one another.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ahead {
    near: Option<u64>,
    middle: Option<u64>,
    far: Option<u64>,
}

const NEAR: usize = 4;
const MIDDLE: usize = 6;
const FAR: usize = 8;

/// How far ahead of the change being taken `Changes` prefetches one.
const CHANGES_AHEAD: usize = 16;

impl Ahead {
    fn of(keys: &[u64], at: usize) -> Ahead {
        Ahead {
            near: keys.get(at + NEAR).copied(),
            middle: keys.get(at + MIDDLE).copied(),
            far: keys.get(at + FAR).copied(),
        }
    }

    fn prefetch<D, V, S: InstanceState<D, V>>(self, instances: &Instances<S>) {
        if let Some(far) = self.far {
            instances.prefetch(far);
        }
        if S::PREFETCHES_POINTED {
            if let Some(state) = self.middle.and_then(|middle| instances.get(middle)) {
                state.prefetch_pointed();
            }
        }
        if let Some(state) = self.near.and_then(|near| instances.get(near)) {
            state.prefetch();
        }
    }
}

/// Every change, grouped by instance when the time completes. The keys are
/// kept apart from the values: grouping sorts only the keys, with each
/// change's position (see `radix`), and then takes each instance's values
/// from their places, where sorting the changes themselves moved every one
/// at each level of a comparison sort.
pub(crate) struct Changes<D> {
    keys: Vec<u64>,
    /// Each is taken, once, as its instance's turn comes. In chunks: a
    /// backfill's operator holds hundreds of thousands, and a vector copied
    /// them at every doubling, into fresh memory each time (~2 % of the
    /// workers' time in those copies and in the faults of the new pages).
    values: Slots<Option<(D, isize)>>,
}

impl<D> Default for Changes<D> {
    fn default() -> Self {
        Changes { keys: Vec::new(), values: Slots::default() }
    }
}

impl<D> Pending<D> for Changes<D> {
    fn with_room(changes: usize) -> Self {
        Changes { keys: Vec::with_capacity(changes), values: Slots::with_room(changes) }
    }
    fn push(&mut self, key: u64, value: D, diff: isize) {
        self.keys.push(key);
        self.values.push(Some((value, diff)));
    }
    fn held(&self) -> usize {
        self.keys.len()
    }
    fn for_each_instance(mut self, mut f: impl FnMut(u64, &mut Vec<(D, isize)>, Ahead)) {
        // Grouping needs only the instances in order; a state that needs its
        // values sorted sorts its own few.
        let order = crate::radix::order_by_key(self.keys.iter().copied());
        self.keys.clear();
        self.keys.extend(order.chunk_by(|a, b| a.0 == b.0).map(|run| run[0].0));
        let mut batch = Vec::new();
        // The changes lie in the order they came, and are taken in the
        // instances' order: each would be a cache miss of its own in a
        // backfill's hundreds of thousands, so the one `CHANGES_AHEAD`
        // places on is asked for meanwhile.
        let mut ahead = order.iter().skip(CHANGES_AHEAD).map(|&(_, i)| i);
        for (at, run) in order.chunk_by(|a, b| a.0 == b.0).enumerate() {
            batch.clear();
            for &(_, i) in run {
                if let Some(change) = ahead.next().and_then(|i| self.values.get(i)) {
                    crate::instances::prefetch_whole(change);
                }
                let change = self.values[i].take();
                debug_assert!(change.is_some(), "a change taken twice");
                batch.extend(change);
            }
            f(run[0].0, &mut batch, Ahead::of(&self.keys, at));
        }
    }
}

/// Only each instance's greatest inserted value: what `Best` keeps of a
/// time's changes, folded as they arrive instead of held and sorted.
struct Greatest<D>(HashMap<u64, D>);

impl<D> Default for Greatest<D> {
    fn default() -> Self {
        Greatest(HashMap::default())
    }
}

impl<D: Ord> Pending<D> for Greatest<D> {
    fn with_room(instances: usize) -> Self {
        Greatest(HashMap::with_capacity_and_hasher(instances, Default::default()))
    }
    fn push(&mut self, key: u64, value: D, diff: isize) {
        debug_assert!(diff > 0, "a running aggregate saw a retraction");
        match self.0.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut best) => {
                if value > *best.get() {
                    best.insert(value);
                }
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(value);
            }
        }
    }
    fn held(&self) -> usize {
        self.0.len()
    }
    fn for_each_instance(self, mut f: impl FnMut(u64, &mut Vec<(D, isize)>, Ahead)) {
        let keys: Vec<u64> = self.0.keys().copied().collect();
        let mut batch = Vec::with_capacity(1);
        for (at, (key, value)) in self.0.into_iter().enumerate() {
            batch.clear();
            batch.push((value, 1));
            f(key, &mut batch, Ahead::of(&keys, at));
        }
    }
}

/// A time's changes held past this many (or, for a running aggregate, this
/// many instances' greatest values), when no change at an earlier time can
/// come, are folded into the instances' states before the time completes: a
/// large batch (a backfill is one) then holds each instance's values once,
/// in its state, instead of also as a list of changes until the time completes.
/// Debug builds (the tests) absorb early nearly always, so that the
/// randomized reference tests cover it.
const ABSORB_HELD: usize = if cfg!(debug_assertions) { 4 } else { 1 << 16 };

/// The most changes a time's pending changes start with room for: a
/// backfill's one time, of hundreds of thousands, does not make every
/// refresh after it allocate as much.
const ROOM_MOST: usize = 1 << 14;

/// `n` and a quarter more: room for a time a little larger than the last
/// (a refresh's next batch of the same size), which otherwise doubled its
/// buffers for a few changes more.
pub(crate) fn with_slack(n: usize) -> usize {
    n + n / 4
}

/// The operator behind `by_key`, `expiring`, `mode`, `running`,
/// `gathered::projected` and `enriched`: exchanges values by instance,
/// holds each time's changes (`P`) until the time completes, then updates
/// every touched instance's state once, in time order, and emits what that
/// changed.
pub(crate) fn keyed<'s, D, V, S, P>(
    values: VecCollection<'s, Time, (u64, D), isize>,
    name: &str,
    logic: S::Logic,
) -> VecCollection<'s, Time, (u64, V), isize>
where
    D: ExchangeData + Ord,
    V: ExchangeData + Ord,
    S: InstanceState<D, V> + 'static,
    S::Logic: 'static,
    P: Pending<D> + 'static,
{
    keyed_inputs::<D, D, V, S, P, _>(vec![values], name, |_, value| value, with_key, logic)
}

/// `keyed` over several inputs, each value `tag`ged with the index of the
/// input it came from, and each output `emit`ted as the caller wants it: a
/// gather's slots, each a column of its own, go in as they are, where each
/// was mapped to carry its slot and all were concatenated first (an operator
/// per slot and one more, each copying every change and each scheduled and
/// tracked at every batch); a join's two sides go in as they are and its
/// rows come out without their keys.
pub(crate) fn keyed_inputs<'s, I, D, V, S, P, O>(
    inputs: Vec<VecCollection<'s, Time, (u64, I), isize>>,
    name: &str,
    tag: impl Fn(usize, I) -> D + 'static,
    emit: impl Fn(u64, V) -> O + 'static,
    logic: S::Logic,
) -> VecCollection<'s, Time, O, isize>
where
    I: ExchangeData,
    D: ExchangeData + Ord,
    V: ExchangeData + Ord,
    S: InstanceState<D, V> + 'static,
    S::Logic: 'static,
    P: Pending<D> + 'static,
    O: differential_dataflow::Data,
{
    let scope = inputs.first().expect("a keyed operator reads at least one input").inner.scope();
    let (worker, peers) = (scope.index(), scope.peers());
    let mut builder = OperatorBuilder::new(name.to_string(), scope);
    let mut handles: Vec<_> = inputs
        .into_iter()
        .map(|values| {
            let exchange = Exchange::new(|((key, _), _, _): &((u64, I), Time, isize)| *key);
            builder.new_input(values.inner, exchange)
        })
        .collect();
    let (output, stream) = builder.new_output::<Vec<(O, Time, isize)>>();
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<(O, Time, isize)>>>::from(output);
    builder.build(move |_capabilities| {
        let mut instances = Instances::<S>::new(worker, peers, |state: &S| state.is_vacant());
        let mut waiting: BTreeMap<Time, (Capability<Time>, P)> = BTreeMap::new();
        // The room a new time's changes start with: a little more than the
        // last completed time held, up to `ROOM_MOST`.
        let mut room = 0;
        let mut absorbed = Absorbed::default();
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        move |frontiers: &[MutableAntichain<Time>]| {
            let mut output = output.activate();
            for (i, input) in handles.iter_mut().enumerate() {
                input.for_each_stamp(|stamp, containers| {
                    let Some(cap) = stamp.retain_least(0) else { return };
                    for container in containers {
                        for ((key, value), time, diff) in container.drain(..) {
                            let entry = waiting.entry(time).or_insert_with(|| (cap.delayed(&time), P::with_room(room)));
                            entry.1.push(key, tag(i, value), diff);
                        }
                        absorbed.absorb_ahead(&mut waiting, frontiers, &mut instances);
                    }
                });
            }
            while let Some(entry) = waiting.first_entry() {
                if frontiers.iter().any(|f| f.less_equal(entry.key())) {
                    break;
                }
                let (time, (cap, changes)) = entry.remove_entry();
                room = with_slack(changes.held()).min(ROOM_MOST);
                let mut session = output.session(&cap);
                // Emits what the instance's changes changed; whether its state can go.
                let mut produce = |key: u64, state: &mut S| {
                    state.produce(&logic, &mut scratch, &mut out);
                    for (v, d) in out.drain(..) {
                        session.give((emit(key, v), time, d));
                    }
                    state.is_empty()
                };
                if absorbed.keys.is_empty() {
                    changes.for_each_instance(|key, batch, ahead| {
                        ahead.prefetch(&instances);
                        let state = instances.entry(key);
                        state.absorb(batch);
                        if produce(key, state) {
                            instances.remove(key);
                        }
                    });
                } else {
                    absorbed.absorb(changes, &mut instances);
                    let keys = absorbed.take();
                    for (at, &key) in keys.iter().enumerate() {
                        Ahead::of(&keys, at).prefetch(&instances);
                        let state = instances.entry(key);
                        if produce(key, state) {
                            instances.remove(key);
                        }
                    }
                }
                // The next time's early folds start afresh (the last may
                // have left every change waiting).
                absorbed.next = ABSORB_HELD;
            }
        }
    });
    stream.as_collection()
}

/// The instances that took in changes of the first waiting time ahead of
/// its completion (see `ABSORB_HELD`): they produce when the time completes.
struct Absorbed {
    /// Sorted and deduplicated now and then, as it grows.
    keys: Vec<u64>,
    limit: usize,
    /// Changes held before the next early fold: past `ABSORB_HELD`, and
    /// past twice what the last one left.
    next: usize,
}

impl Default for Absorbed {
    fn default() -> Self {
        Absorbed { keys: Vec::new(), limit: ABSORB_HELD, next: ABSORB_HELD }
    }
}

impl Absorbed {
    /// Folds the first waiting time's changes into the instances' values, if
    /// it holds many and nothing at an earlier time can come any more. An
    /// instance whose values outnumber its changes eight to one keeps them
    /// waiting: folded early, a hot instance in a vector would be copied at
    /// every fold. (In a tree each change costs a search whenever it is
    /// folded; see `values`.)
    fn absorb_ahead<D, V, S: InstanceState<D, V>, P: Pending<D>>(
        &mut self,
        waiting: &mut BTreeMap<Time, (Capability<Time>, P)>,
        frontiers: &[MutableAntichain<Time>],
        instances: &mut Instances<S>,
    ) {
        let Some(mut first) = waiting.first_entry() else { return };
        if first.get().1.held() < self.next || frontiers.iter().any(|f| f.less_than(first.key())) {
            return;
        }
        let mut left = P::default();
        std::mem::take(&mut first.get_mut().1).for_each_instance(|key, batch, ahead| {
            ahead.prefetch(instances);
            let state = instances.entry(key);
            if state.folds_later(batch.len()) {
                for (value, diff) in batch.drain(..) {
                    left.push(key, value, diff);
                }
            } else {
                state.absorb(batch);
                self.keys.push(key);
            }
        });
        self.next = ABSORB_HELD.max(2 * left.held());
        first.get_mut().1 = left;
        self.tidy();
    }

    /// Folds a completed time's last changes in with the rest (see `take`).
    fn absorb<D, V, S: InstanceState<D, V>, P: Pending<D>>(&mut self, changes: P, instances: &mut Instances<S>) {
        changes.for_each_instance(|key, batch, ahead| {
            ahead.prefetch(instances);
            instances.entry(key).absorb(batch);
            self.keys.push(key);
        });
    }

    /// Keeps `keys` from growing past the instances it names.
    fn tidy(&mut self) {
        if self.keys.len() >= self.limit {
            self.keys.sort_unstable();
            self.keys.dedup();
            self.limit = 2 * self.keys.len() + ABSORB_HELD;
        }
    }

    /// The instances, each once, leaving none.
    fn take(&mut self) -> Vec<u64> {
        self.keys.sort_unstable();
        self.keys.dedup();
        self.limit = ABSORB_HELD;
        std::mem::take(&mut self.keys)
    }
}

/// An instance's consolidated values and what `L` produced from them: three
/// words (see `Values`; a thin vector keeps its length and capacity with its
/// elements, and an empty one allocates nothing), where vectors would take
/// six.
struct Multiset<D, V, L> {
    values: Values<D>,
    /// What the logic produced from them last, sorted.
    produced: ThinVec<V>,
    logic: PhantomData<fn() -> L>,
}

impl<D, V, L> Default for Multiset<D, V, L> {
    fn default() -> Self {
        Multiset { values: Values::default(), produced: ThinVec::new(), logic: PhantomData }
    }
}

impl<D: Ord, V: Ord + Clone, L: Fn(&Values<D>, &mut Vec<V>)> InstanceState<D, V> for Multiset<D, V, L> {
    type Logic = L;
    fn absorb(&mut self, changes: &mut Vec<(D, isize)>) {
        changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.values.absorb(changes);
    }
    fn produce(&mut self, logic: &L, scratch: &mut Vec<V>, out: &mut Vec<(V, isize)>) {
        scratch.clear();
        if !self.values.is_empty() {
            logic(&self.values, scratch);
            scratch.sort_unstable();
        }
        let before = out.len();
        differences(&self.produced, scratch, out);
        if out.len() > before {
            // Moved into the instance's own buffer, which grows only as far as
            // it needs: the scratch buffer is as large as the largest instance's.
            self.produced.clear();
            crate::values::first_room(&mut self.produced, scratch.len());
            self.produced.extend(scratch.drain(..));
        }
    }
    fn size(&self) -> usize {
        self.values.len()
    }
    fn holds_output(&self) -> bool {
        !self.produced.is_empty()
    }
    fn prefetch(&self) {
        self.values.prefetch();
        crate::instances::prefetch_before(self.produced.as_ptr());
    }
}

/// For every instance that has values, what `logic` produces from its
/// consolidated values (sorted, with multiplicities); kept up to date.
pub fn by_key<'s, D, V, L>(
    values: VecCollection<'s, Time, (u64, D), isize>,
    name: &str,
    logic: L,
) -> VecCollection<'s, Time, (u64, V), isize>
where
    D: ExchangeData + Ord,
    V: ExchangeData + Ord,
    L: Fn(&Values<D>, &mut Vec<V>) + 'static,
{
    keyed::<_, _, Multiset<D, V, L>, Changes<D>>(values, name, logic)
}

/// `by_key` of slots: input `i` holds slot `i` of each instance, as
/// `(slot, value)` values (see `keyed_inputs`).
pub fn by_key_of_slots<'s, V, L>(
    slots: Vec<VecCollection<'s, Time, (u64, Value), isize>>,
    name: &str,
    logic: L,
) -> VecCollection<'s, Time, (u64, V), isize>
where
    V: ExchangeData + Ord,
    L: Fn(&Values<(u32, Value)>, &mut Vec<V>) + 'static,
{
    keyed_inputs::<_, _, _, Multiset<(u32, Value), V, L>, Changes<(u32, Value)>, _>(
        slots,
        name,
        slot_of_input,
        with_key,
        logic,
    )
}

/// An instance's output as a keyed operator emits it by default: with its key.
pub(crate) fn with_key<V>(key: u64, v: V) -> (u64, V) {
    (key, v)
}

/// A value of input `i` of a gather as its slot `i`'s value.
pub(crate) fn slot_of_input(input: usize, value: Value) -> (u32, Value) {
    (input as u32, value)
}

/// An instance's entries, of which `L` keeps only those that can still be
/// its answer (see `expiring`), and its answer.
struct Unoutlasted<D, V, L> {
    entries: Values<D>,
    produced: Option<V>,
    logic: PhantomData<fn() -> L>,
}

impl<D, V, L> Default for Unoutlasted<D, V, L> {
    fn default() -> Self {
        Unoutlasted { entries: Values::default(), produced: None, logic: PhantomData }
    }
}

impl<D: Ord, V: Clone + PartialEq, L: Fn(&mut Values<D>) -> Option<V>> InstanceState<D, V> for Unoutlasted<D, V, L> {
    type Logic = L;
    fn absorb(&mut self, changes: &mut Vec<(D, isize)>) {
        changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.entries.absorb(changes);
    }
    fn produce(&mut self, logic: &L, _: &mut Vec<V>, out: &mut Vec<(V, isize)>) {
        replace_answer(&mut self.produced, logic(&mut self.entries), out);
    }
    fn size(&self) -> usize {
        self.entries.len()
    }
    fn holds_output(&self) -> bool {
        self.produced.is_some()
    }
    fn prefetch(&self) {
        self.entries.prefetch();
    }
}

/// For every instance, what `logic` answers from its entries, where entries
/// leave only by expiring, in order (the plan's `Expiring` strategy), and
/// `logic` drops those that a later entry will outlast and that so can never
/// be the answer again (`Values::retain_unoutlasted`).
///
/// It may drop them only at a time's completion, when the entries are
/// exactly those of the time: a time's changes come in parts, in any order.
/// A dropped entry's retraction comes later as a negative multiplicity,
/// which the next time's completion drops in turn; the entry that outlasts
/// it is still there then, because it expires no earlier.
pub fn expiring<'s, D, V, L>(
    values: VecCollection<'s, Time, (u64, D), isize>,
    name: &str,
    logic: L,
) -> VecCollection<'s, Time, (u64, V), isize>
where
    D: ExchangeData + Ord,
    V: ExchangeData + Ord,
    L: Fn(&mut Values<D>) -> Option<V> + 'static,
{
    keyed::<_, _, Unoutlasted<D, V, L>, Changes<D>>(values, name, logic)
}

/// An instance's values, counted, for mode. A few are kept sorted (see
/// `Values`); from `COUNTED` on, in a hash table with the most frequent value
/// remembered, so that a change costs a hash lookup and not a scan of every
/// value: a store's buyers over 30 days are thousands, and every refresh
/// touches every store.
struct Tallied<D, V, P> {
    few: Values<D>,
    many: Option<Box<Counts<D>>>,
    produced: Option<V>,
    project: PhantomData<fn() -> P>,
}

/// Many values' multiplicities (none 0; one may be negative while a time's
/// changes come in), and the most frequent value with a positive one (the
/// least of them, on a tie) unless a change made it unknown.
struct Counts<D> {
    counts: HashMap<D, isize>,
    top: Option<(isize, D)>,
}

impl<D: Eq + std::hash::Hash + Ord + Clone> Counts<D> {
    fn add(&mut self, value: D, diff: isize) {
        let new = match self.counts.get_mut(&value) {
            Some(count) => {
                *count += diff;
                *count
            }
            None => {
                self.counts.insert(value.clone(), diff);
                diff
            }
        };
        if new == 0 {
            self.counts.remove(&value);
        }
        // Only `value`'s count moved: it becomes the top if it now beats it,
        // and the top becomes unknown if it was the top and fell.
        self.top = match self.top.take() {
            Some((top, ref held)) if *held == value => (new >= top).then_some((new, value)),
            Some((top, held)) if new > top || (new == top && value < held) => Some((new, value)),
            other => other,
        };
    }

    fn top(&mut self) -> Option<&D> {
        if self.top.is_none() {
            for (value, &count) in &self.counts {
                let beats = |(top, held): &(isize, D)| count > *top || (count == *top && value < held);
                if count > 0 && self.top.as_ref().is_none_or(beats) {
                    self.top = Some((count, value.clone()));
                }
            }
        }
        self.top.as_ref().map(|(_, value)| value)
    }
}

/// Values counted in a hash table from this many on, and again sorted below
/// half of it. Debug builds (the tests) switch at a handful, so that the
/// randomized reference tests cover both forms, the switches, and counts
/// that fall without reaching zero.
const COUNTED: usize = if cfg!(debug_assertions) { 4 } else { 64 };

impl<D, V, P> Default for Tallied<D, V, P> {
    fn default() -> Self {
        Tallied { few: Values::default(), many: None, produced: None, project: PhantomData }
    }
}

impl<D: Ord + Clone + std::hash::Hash, V: Clone + PartialEq, P: Fn(&D) -> V> InstanceState<D, V> for Tallied<D, V, P> {
    type Logic = P;
    fn absorb(&mut self, changes: &mut Vec<(D, isize)>) {
        match &mut self.many {
            Some(many) => {
                for (value, diff) in changes.drain(..) {
                    many.add(value, diff);
                }
                if many.counts.len() < COUNTED / 2 {
                    let mut sorted: Vec<(D, isize)> = many.counts.drain().collect();
                    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    self.few.absorb(&mut sorted);
                    self.many = None;
                }
            }
            None => {
                changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                self.few.absorb(changes);
                if self.few.len() >= COUNTED {
                    let counts = std::mem::take(&mut self.few).iter().map(|(v, n)| (v.clone(), n)).collect();
                    self.many = Some(Box::new(Counts { counts, top: None }));
                }
            }
        }
    }
    fn produce(&mut self, project: &P, _: &mut Vec<V>, out: &mut Vec<(V, isize)>) {
        let answer = match &mut self.many {
            Some(many) => many.top().map(project),
            None => self.few.most_frequent().map(project),
        };
        replace_answer(&mut self.produced, answer, out);
    }
    fn size(&self) -> usize {
        self.many.as_ref().map_or(self.few.len(), |many| many.counts.len())
    }
    fn holds_output(&self) -> bool {
        self.produced.is_some()
    }
    fn prefetch(&self) {
        match &self.many {
            Some(many) => crate::instances::prefetch(&**many),
            None => self.few.prefetch(),
        }
    }
}

/// For every instance, `project` of its most frequent value (the least of
/// them, on a tie).
pub fn mode<'s, D, V, P>(
    values: VecCollection<'s, Time, (u64, D), isize>,
    name: &str,
    project: P,
) -> VecCollection<'s, Time, (u64, V), isize>
where
    D: ExchangeData + Ord + std::hash::Hash,
    V: ExchangeData + Ord,
    P: Fn(&D) -> V + 'static,
{
    keyed::<_, _, Tallied<D, V, P>, Changes<D>>(values, name, project)
}

/// An instance's greatest value so far and what `project` made of it.
struct Best<D, V, P> {
    best: Option<D>,
    produced: Option<V>,
    /// Whether `best` grew since the instance last produced.
    moved: bool,
    project: PhantomData<fn() -> P>,
}

impl<D, V, P> Default for Best<D, V, P> {
    fn default() -> Self {
        Best { best: None, produced: None, moved: false, project: PhantomData }
    }
}

impl<D: Ord, V: Clone + PartialEq, P: Fn(&D) -> V> InstanceState<D, V> for Best<D, V, P> {
    type Logic = P;
    fn absorb(&mut self, changes: &mut Vec<(D, isize)>) {
        debug_assert!(changes.iter().all(|(_, d)| *d > 0), "a running aggregate saw a retraction");
        let Some(candidate) = changes.drain(..).map(|(d, _)| d).max() else { return };
        if self.best.as_ref().is_none_or(|best| *best < candidate) {
            self.best = Some(candidate);
            self.moved = true;
        }
    }
    fn produce(&mut self, project: &P, _: &mut Vec<V>, out: &mut Vec<(V, isize)>) {
        let (Some(best), true) = (&self.best, std::mem::take(&mut self.moved)) else { return };
        replace_answer(&mut self.produced, Some(project(best)), out);
    }
    fn size(&self) -> usize {
        usize::from(self.best.is_some())
    }
    fn holds_output(&self) -> bool {
        self.produced.is_some()
    }
}

/// For every instance, `project` of its greatest value so far, for values
/// that are only ever inserted (the plan's `Running` strategy guarantees it):
/// one value per instance is kept, not all of them.
pub fn running<'s, D, V, P>(
    values: VecCollection<'s, Time, (u64, D), isize>,
    name: &str,
    project: P,
) -> VecCollection<'s, Time, (u64, V), isize>
where
    D: ExchangeData + Ord,
    V: ExchangeData + Ord,
    P: Fn(&D) -> V + 'static,
{
    keyed::<_, _, Best<D, V, P>, Greatest<D>>(values, name, project)
}

/// An instance's one answer becomes `answer`: if it differs from what was
/// `produced`, appends the old one's retraction and the new one's insertion.
fn replace_answer<V: Clone + PartialEq>(produced: &mut Option<V>, answer: Option<V>, out: &mut Vec<(V, isize)>) {
    if answer != *produced {
        out.extend(produced.take().map(|old| (old, -1)));
        out.extend(answer.clone().map(|new| (new, 1)));
        *produced = answer;
    }
}

/// Appends to `out` what turns sorted `old` into sorted `new`: retractions
/// and insertions.
fn differences<V: Ord + Clone>(old: &[V], new: &[V], out: &mut Vec<(V, isize)>) {
    let (mut i, mut j) = (0, 0);
    loop {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                out.push((a.clone(), -1));
                i += 1;
            }
            (Some(a), None) => {
                out.push((a.clone(), -1));
                i += 1;
            }
            (_, Some(b)) => {
                out.push((b.clone(), 1));
                j += 1;
            }
            (None, None) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a multiset instance first produces takes the room it needs (one
    /// row of a dense gather: 32 bytes, not a thin vector's first four, 80);
    /// more grows it by doubling.
    #[test]
    fn a_multisets_produced_values_take_the_room_they_need() {
        let logic = |values: &Values<i64>, out: &mut Vec<i64>| out.extend(values.iter().map(|(v, _)| *v));
        let mut state: Multiset<i64, i64, _> = Multiset::default();
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        for (n, room) in [(1, 1), (2, 2), (3, 4)] {
            state.absorb(&mut vec![(n, 1)]);
            state.produce(&logic, &mut scratch, &mut out);
            assert_eq!((state.produced.len(), state.produced.capacity()), (n as usize, room));
        }
        assert_eq!(out, [(1, 1), (2, 1), (3, 1)]);
    }

    /// How many values each instance has, through `by_key`.
    fn counts(values: VecCollection<'_, Time, (u64, i64), isize>) -> VecCollection<'_, Time, (u64, i64), isize> {
        by_key(values, "Count", |values: &Values<i64>, out: &mut Vec<i64>| out.push(values.len() as i64))
    }

    #[test]
    fn an_answer_is_retracted_when_the_states_move_to_a_table_mid_fold() {
        // Instance 0's only value leaves in a large time (folded ahead of its
        // completion, in id order) that also brings a far instance: its
        // states then move to a table while 0 has no values but still holds
        // an answer, which must be retracted.
        let mut second: Vec<((u64, i64), isize)> = vec![((0, 7), -1)];
        second.extend((0..ABSORB_HELD as i64 * 4).map(|v| ((1000, v), 1)));
        let emitted = crate::testing::emitted(vec![vec![((0, 7), 1)], second], counts);
        assert_eq!(emitted[0], [((0, 1), 1)]);
        assert_eq!(emitted[1], [((0, 1), -1), ((1000, ABSORB_HELD as i64 * 4), 1)]);
    }

    proptest::proptest! {
        /// A time's changes come out by instance, in key order, each
        /// instance's the ones pushed for it (in the order they came), and
        /// with the instances 4 and 8 places on to prefetch.
        #[test]
        fn changes_come_out_by_instance(
            pushed in proptest::collection::vec((0..40u64, -3..3i64, -1..=1isize), 0..300),
        ) {
            let mut changes = Changes::default();
            let mut expected: BTreeMap<u64, Vec<(i64, isize)>> = BTreeMap::new();
            for &(key, value, diff) in &pushed {
                changes.push(key, value, diff);
                expected.entry(key).or_default().push((value, diff));
            }
            let keys: Vec<u64> = expected.keys().copied().collect();
            let mut handed = Vec::new();
            changes.for_each_instance(|key, batch, ahead| {
                let at = handed.len();
                assert_eq!((ahead.near, ahead.far), (keys.get(at + NEAR).copied(), keys.get(at + FAR).copied()));
                handed.push((key, std::mem::take(batch)));
            });
            proptest::prop_assert_eq!(handed, expected.into_iter().collect::<Vec<_>>());
        }
    }

    fn diff<V: Ord + Clone>(old: &[V], new: &[V]) -> Vec<(V, isize)> {
        let mut out = Vec::new();
        differences(old, new, &mut out);
        out
    }

    #[test]
    fn the_remembered_top_is_the_least_of_the_most_frequent() {
        // Random changes to a few values, negative counts included (a time's
        // changes come in parts), checked after each against a scan.
        let mut counted = Counts::<u8> { counts: HashMap::default(), top: None };
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 33
        };
        for step in 0..20_000 {
            let value = (next() % 6) as u8;
            let diff = if next() % 3 == 0 { -1 } else { 1 + (next() % 2) as isize };
            counted.add(value, diff);
            let scan = (0..6u8)
                .filter_map(|v| counted.counts.get(&v).filter(|n| **n > 0).map(|n| (*n, v)))
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
                .map(|(_, v)| v);
            assert_eq!(counted.top().copied(), scan, "step {step}: {:?}", counted.counts);
            assert!(counted.counts.values().all(|n| *n != 0));
        }
    }

    #[test]
    fn differences_retract_what_went_and_insert_what_came() {
        assert_eq!(diff(&[1, 3, 5], &[1, 4, 5, 6]), vec![(3, -1), (4, 1), (6, 1)]);
        assert_eq!(diff::<i32>(&[], &[]), vec![]);
        assert_eq!(diff(&[2], &[]), vec![(2, -1)]);
    }
}
