//! The state behind a gather read only by projections (tags and segments):
//! each instance's slot values in place, and what each projection kept.
//!
//! A gather's inputs are columns and attribute rows, each of which holds at
//! most one value per instance once a time completes. So an instance's slots
//! are a row, not a multiset: a change overwrites or clears its slot, with no
//! sorting and no merging of sorted values, and the projections' previous
//! values sit by position, so their changes come from comparing slot by slot
//! (`keyed::by_key` held the slots as a sorted multiset, sorted what the row
//! produced and merged it with what it produced before).
//!
//! A time's changes can come in parts and in any order, so a slot can hold
//! two values for a while (the new one came before the old one's
//! retraction), or a retraction of a value it does not hold yet. Such a
//! slot's changes wait in `odd`, consolidated, until they are one value again.

use crate::keyed::{keyed_inputs, slot_of_input, with_key, Changes, InstanceState};
use crate::render::{push_exprs, Row, Time};
use differential_dataflow::consolidation::consolidate;
use differential_dataflow::VecCollection;
use segflow_compiler::eval::ScalarExpr;
use segflow_compiler::plan::Keep;
use segflow_compiler::value::Value;
use thin_vec::ThinVec;

/// What every instance of one gather shares.
pub struct Projections {
    /// Each slot's value when the instance has none (slot 0 is the instance).
    defaults: Vec<Value>,
    /// Evaluated in order, each reading the slots and the ones before it.
    exprs: Vec<ScalarExpr>,
    /// Per projection, the row position it reads and what it keeps.
    kept: Vec<(usize, Keep)>,
    /// Per projection, where an instance keeps what it last produced.
    held: Vec<Held>,
    /// How many projections keep their value in `Gathered::produced`.
    held_values: usize,
    /// Per projection, the slots its value depends on (`Slots`; always slot
    /// 0, the instance), and the expressions it needs evaluated (bit `k`:
    /// expression `k`; all bits for one past the 64th).
    depends: Vec<(Slots, u64)>,
    /// Per slot bit, the projections that depend on it: a change to one
    /// slot of thirty visits its few projections, not all of them.
    dependents: Vec<Vec<usize>>,
}

/// Where an instance keeps a projection's last produced value.
#[derive(Clone, Copy, Debug)]
enum Held {
    /// A segment's: a bit of `Gathered::members`, set while it produced
    /// true (the only value a segment keeps). 24 bytes a value for one bit
    /// made the user gather's produced values 13 x 24 bytes a user, for
    /// ten segments and three tags.
    Bit(u32),
    /// Its place in `Gathered::produced`.
    Value(usize),
}

/// A set of slots, as bits; slot 63 stands for itself and every later one.
type Slots = u64;

fn slot_bit(slot: usize) -> Slots {
    1 << slot.min(63)
}

impl Projections {
    pub fn new(defaults: Vec<Value>, exprs: Vec<ScalarExpr>, kept: Vec<(usize, Keep)>) -> Projections {
        let inputs = defaults.len();
        // Per expression: the slots it reads, through earlier expressions
        // too, and the expressions it needs (itself and those it reads).
        let mut expr_depends: Vec<(Slots, u64)> = Vec::with_capacity(exprs.len());
        for (k, expr) in exprs.iter().enumerate() {
            let mut depends = (0, expr_bit(k));
            expr.visit_slots(&mut |at| {
                let (slots, needs) = position_depends(at, inputs, &expr_depends);
                depends.0 |= slots;
                depends.1 |= needs;
            });
            expr_depends.push(depends);
        }
        // Every projection depends on the instance (slot 0) being there too:
        // one that reads no slot (a constant) changes when it comes or goes.
        let depends: Vec<(Slots, u64)> = kept
            .iter()
            .map(|&(at, _)| {
                let (slots, needs) = position_depends(at, inputs, &expr_depends);
                (slots | slot_bit(0), needs)
            })
            .collect();
        let dependents = (0..Slots::BITS)
            .map(|bit| (0..depends.len()).filter(|&j| depends[j].0 & (1 << bit) != 0).collect())
            .collect();
        // Segments past the 64th keep their true as a value.
        let (mut bits, mut held_values) = (0, 0);
        let held = kept
            .iter()
            .map(|&(_, keep)| match keep {
                Keep::True if bits < u64::BITS => {
                    bits += 1;
                    Held::Bit(bits - 1)
                }
                _ => {
                    held_values += 1;
                    Held::Value(held_values - 1)
                }
            })
            .collect();
        Projections { defaults, exprs, kept, held, held_values, depends, dependents }
    }

    /// Into `candidates`, in order, the projections that depend on a slot of
    /// `changed` (all of them for `Slots::MAX`).
    fn depending_on(&self, changed: Slots, candidates: &mut Vec<usize>) {
        candidates.clear();
        if changed == Slots::MAX {
            candidates.extend(0..self.kept.len());
            return;
        }
        let mut bits = changed;
        while bits != 0 {
            candidates.extend_from_slice(&self.dependents[bits.trailing_zeros() as usize]);
            bits &= bits - 1;
        }
        candidates.sort_unstable();
        candidates.dedup();
    }
}

fn expr_bit(k: usize) -> u64 {
    if k < 64 {
        1 << k
    } else {
        u64::MAX
    }
}

/// What row position `at` depends on: a slot itself, or an expression's slots
/// and expressions (a position past the row, null, on nothing).
fn position_depends(at: usize, inputs: usize, exprs: &[(Slots, u64)]) -> (Slots, u64) {
    match at.checked_sub(inputs) {
        None => (slot_bit(at), 0),
        Some(k) => exprs.get(k).copied().unwrap_or((0, 0)),
    }
}

/// The projections' values of a gather over `slots` (input `i` holding
/// slot `i` of each instance), as (instance, (projection, value)), one per
/// kept value.
pub fn projected<'s>(
    slots: Vec<VecCollection<'s, Time, (u64, Value), isize>>,
    name: &str,
    projections: Projections,
) -> VecCollection<'s, Time, (u64, (u32, Value)), isize> {
    let logic = Logic { projections, row: Default::default(), candidates: Default::default() };
    keyed_inputs::<_, _, _, Gathered, Changes<(u32, Value)>, _>(slots, name, slot_of_input, with_key, logic)
}

/// The operator's own: the projections, and a row buffer.
pub(crate) struct Logic {
    projections: Projections,
    /// One row buffer for every instance the operator recomputes.
    row: std::cell::RefCell<Row>,
    /// The projections that may have changed, for every instance.
    candidates: std::cell::RefCell<Vec<usize>>,
}

/// One instance's slots and projected values.
#[derive(Default)]
pub struct Gathered {
    /// By slot; `None` is no value (or, while `odd` has changes for the slot,
    /// that they stand for its values).
    slots: ThinVec<Option<Value>>,
    /// Consolidated changes of slots that are not one value, by (slot, value).
    odd: ThinVec<((u32, Value), isize)>,
    /// The value last produced by each projection whose `Held` is a
    /// value; empty while none keeps one.
    produced: ThinVec<Option<Value>>,
    /// The segments (`Held::Bit`) that last produced true.
    members: u64,
    /// The slots changed since the instance last produced: only projections
    /// that depend on one can have changed. (A refresh that moves a user's
    /// spend need not evaluate the city tests beside it.)
    changed: Slots,
}

impl Gathered {
    fn has_odd(&self, slot: u32) -> bool {
        self.odd.iter().any(|((s, _), _)| *s == slot)
    }

    fn slot_mut(&mut self, slot: u32) -> &mut Option<Value> {
        let at = slot as usize;
        if self.slots.len() <= at {
            self.slots.resize(at + 1, None);
        }
        &mut self.slots[at]
    }

    /// Takes one change in its slot if the slot stays one value, else sets it
    /// aside in `odd`.
    fn take_in(&mut self, slot: u32, value: Value, diff: isize) {
        self.changed |= slot_bit(slot as usize);
        if !self.has_odd(slot) {
            let held = self.slot_mut(slot);
            match (diff, &held) {
                (-1, Some(v)) if *v == value => {
                    *held = None;
                    return;
                }
                (1, None) => {
                    *held = Some(value);
                    return;
                }
                _ => {}
            }
        }
        self.odd.push(((slot, value), diff));
    }

    /// Consolidates `odd` with the values of its slots, and puts each slot
    /// that is one value (or none) back in place.
    fn settle(&mut self) {
        let mut odd: Vec<_> = std::mem::take(&mut self.odd).into_iter().collect();
        for i in 0..odd.len() {
            let slot = odd[i].0 .0;
            if let Some(v) = self.slots.get_mut(slot as usize).and_then(Option::take) {
                odd.push(((slot, v), 1));
            }
        }
        consolidate(&mut odd);
        for group in odd.chunk_by(|a, b| a.0 .0 == b.0 .0) {
            if let [((slot, value), 1)] = group {
                *self.slot_mut(*slot) = Some(value.clone());
            } else {
                self.odd.extend(group.iter().cloned());
            }
        }
    }

    /// The instance's row: the slots in `slots` (their values, or their
    /// defaults), null in the others, then each expression that `needs`
    /// names. False if it is not an instance (slot 0 has no value).
    fn fill(&self, logic: &Projections, slots: Slots, needs: u64, row: &mut Row) -> bool {
        // (A multiset's row took an instance whose slot 0 held only a
        // retraction, which a completed time cannot leave, as present.)
        let instance =
            matches!(self.slots.first(), Some(Some(_))) || self.odd.iter().any(|((s, _), d)| *s == 0 && *d > 0);
        if !instance {
            return false;
        }
        // A slot that no projection that may have changed reads is left
        // null: a user whose home store's revenue moved reads two slots of
        // thirty, and every user of the store is recomputed.
        row.clear();
        row.extend(logic.defaults.iter().enumerate().map(|(slot, default)| {
            if slots & slot_bit(slot) == 0 {
                return Value::Null;
            }
            match self.slots.get(slot) {
                Some(Some(v)) => v.clone(),
                _ => default.clone(),
            }
        }));
        // Not one value at a completed time only if an input broke its
        // contract: the greatest inserted value wins, as in a multiset's row.
        for ((slot, value), diff) in &self.odd {
            if let (true, Some(at)) = (*diff > 0, row.get_mut(*slot as usize)) {
                *at = value.clone();
            }
        }
        if needs == u64::MAX {
            push_exprs(row, &logic.exprs);
        } else {
            // An expression no projection that may have changed needs is
            // left null: nothing reads it.
            for (k, expr) in logic.exprs.iter().enumerate() {
                let v = if needs & expr_bit(k) != 0 { expr.eval(row) } else { Value::Null };
                row.push(v);
            }
        }
        true
    }
}

impl InstanceState<(u32, Value), (u32, Value)> for Gathered {
    type Logic = Logic;

    fn absorb(&mut self, changes: &mut Vec<((u32, Value), isize)>) {
        // A new instance's slots are made once, to the last one changed,
        // and to that size exactly: grown slot by slot, a new user's thirty
        // slots took four allocations (3 % of a backfill's final
        // computation) and kept room for up to twice as many. Slots that
        // come later, a few at a time, grow as a vector does.
        if let Some(last) = changes.iter().map(|((slot, _), _)| *slot as usize).max() {
            if last >= self.slots.len() {
                if self.slots.capacity() == 0 {
                    self.slots.reserve_exact(last + 1);
                }
                self.slots.resize(last + 1, None);
            }
        }
        // Retractions first: the old value leaves its slot before the new
        // one comes, whichever order they arrived in.
        for retractions in [true, false] {
            for ((slot, value), diff) in changes.iter_mut() {
                if (*diff < 0) == retractions && *diff != 0 {
                    self.take_in(*slot, std::mem::take(value), *diff);
                }
            }
        }
        changes.clear();
        if !self.odd.is_empty() {
            self.settle();
        }
    }

    fn produce(&mut self, logic: &Logic, _: &mut Vec<(u32, Value)>, out: &mut Vec<((u32, Value), isize)>) {
        let projections = &logic.projections;
        // The instance itself coming or going, or a slot that is not one
        // value, changes everything.
        let changed = if self.changed & 1 != 0 || !self.odd.is_empty() { Slots::MAX } else { self.changed };
        self.changed = 0;
        let mut candidates = logic.candidates.borrow_mut();
        projections.depending_on(changed, &mut candidates);
        let (slots, needs) =
            candidates.iter().fold((0, 0), |(s, n), &j| (s | projections.depends[j].0, n | projections.depends[j].1));
        let mut row = logic.row.borrow_mut();
        let instance = self.fill(projections, slots, needs, &mut row);
        let now = |at: usize, keep: Keep| if instance { row.get(at).filter(|v| kept(keep, v)) } else { None };
        let mut holds_value = false;
        for &j in candidates.iter() {
            let (at, keep) = projections.kept[j];
            let now = now(at, keep);
            match projections.held[j] {
                Held::Bit(bit) => {
                    let (was, is) = (self.members & 1 << bit != 0, now.is_some());
                    if was != is {
                        self.members ^= 1 << bit;
                        out.push(((j as u32, Value::Bool(true)), if is { 1 } else { -1 }));
                    }
                }
                Held::Value(i) => {
                    holds_value |= now.is_some();
                    if self.produced.is_empty() {
                        if now.is_none() {
                            continue;
                        }
                        crate::values::first_room(&mut self.produced, projections.held_values);
                        self.produced.resize(projections.held_values, None);
                    }
                    let before = &mut self.produced[i];
                    if now == before.as_ref() {
                        continue;
                    }
                    if let Some(old) = before.take() {
                        out.push(((j as u32, old), -1));
                    }
                    if let Some(new) = now {
                        let new = before.insert(new.clone());
                        out.push(((j as u32, new.clone()), 1));
                    }
                }
            }
        }
        // The others are as they were; only when none of these kept a value
        // are they looked at.
        if !holds_value && !self.produced.is_empty() && !self.produced.iter().any(Option::is_some) {
            // No value kept any more: no buffer to keep either.
            self.produced = ThinVec::new();
        }
    }

    fn size(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count() + self.odd.len()
    }

    // A change overwrites its slot, so folding early costs no search; and
    // counting the slots read each one (a time that recomputes every user
    // of a store folds early).
    fn folds_later(&self, _: usize) -> bool {
        false
    }

    // Asked after every produce: stops at the first slot with a value (slot
    // 0, the instance, for all but one that is going), where counting them
    // all read every slot of every instance recomputed.
    fn is_empty(&self) -> bool {
        self.odd.is_empty() && self.slots.iter().all(Option::is_none)
    }

    fn holds_output(&self) -> bool {
        !self.produced.is_empty() || self.members != 0
    }

    fn prefetch(&self) {
        crate::instances::prefetch_lines(self.slots.as_slice(), 16);
        crate::instances::prefetch_lines(self.produced.as_slice(), 16);
    }

    // A `ThinVec` keeps its length in its allocation, just before the
    // items: `prefetch` reads it.
    const PREFETCHES_POINTED: bool = true;
    fn prefetch_pointed(&self) {
        crate::instances::prefetch_before(self.slots.as_ptr());
        crate::instances::prefetch_before(self.produced.as_ptr());
    }
}

/// Whether a projection keeps `v`: a value that is not null, or a segment's true.
pub fn kept(keep: Keep, v: &Value) -> bool {
    match keep {
        Keep::NonNull => !v.is_null(),
        Keep::True => *v == Value::Bool(true),
    }
}

#[cfg(test)]
mod tests {
    use super::{kept, projected, Gathered, Projections};
    use crate::keyed::{by_key, InstanceState};
    use crate::render::{gather_row, Row, Time};
    use differential_dataflow::VecCollection;
    use proptest::prelude::*;
    use segflow_compiler::eval::ScalarExpr;
    use segflow_compiler::plan::Keep;
    use segflow_compiler::value::Value;
    use std::collections::BTreeMap;

    type Slots<'s> = VecCollection<'s, Time, (u64, (u32, Value)), isize>;

    /// Slot 0 is the instance, 1 to 3 columns (2 with a default); row
    /// position 4 is whether slot 3 is null, 5 slot 1 again, 6 a constant;
    /// then 67 more expressions (past the 64 that are told apart), each
    /// even one slot 2 and each odd one the expression before it.
    /// Projections of each kind: a column, a defaulted one, a segment, an
    /// expression, the key, a constant segment, and expressions past 64;
    /// then more segments, so that those past the 64th keep their true as
    /// a value, not a bit.
    fn projections() -> Projections {
        let mut exprs = vec![
            ScalarExpr::IsNull(Box::new(ScalarExpr::Slot(3)), false),
            ScalarExpr::Slot(1),
            ScalarExpr::Literal(Value::Bool(true)),
        ];
        for k in 3..70 {
            exprs.push(ScalarExpr::Slot(if k % 2 == 0 { 2 } else { 4 + k - 1 }));
        }
        Projections::new(
            vec![Value::Null, Value::Null, Value::Int(0), Value::Null],
            exprs,
            vec![
                (1, Keep::NonNull),
                (2, Keep::NonNull),
                (4, Keep::True),
                (5, Keep::NonNull),
                (0, Keep::NonNull),
                (6, Keep::True),
                (4 + 40, Keep::NonNull),
                (4 + 69, Keep::NonNull),
            ]
            .into_iter()
            .chain((0..66).map(|k| (if k % 2 == 0 { 4 } else { 6 }, Keep::True)))
            .collect(),
        )
    }

    fn as_row(slots: Slots<'_>) -> Slots<'_> {
        // Each slot an input of its own, as a gather's columns are.
        let inputs = (0..4u32)
            .map(|slot| slots.clone().flat_map(move |(k, (s, v)): (u64, (u32, Value))| (s == slot).then_some((k, v))))
            .collect();
        projected(inputs, "Gather", projections())
    }

    /// The gather as it was: a multiset of slots, the row rebuilt from it.
    fn as_multiset(slots: Slots<'_>) -> Slots<'_> {
        let p = projections();
        let row = std::cell::RefCell::new(Row::new());
        by_key(slots, "Gather", move |input, output: &mut Vec<(u32, Value)>| {
            let mut row = row.borrow_mut();
            if gather_row(&p.defaults, &p.exprs, input, &mut row) {
                for (j, &(at, keep)) in p.kept.iter().enumerate() {
                    let v = row.get(at).unwrap_or(&Value::Null);
                    if kept(keep, v) {
                        output.push((j as u32, v.clone()));
                    }
                }
            }
        })
    }

    proptest! {
        /// Columns changing over times (a value set, cleared, or set twice
        /// within a time), each time's changes shuffled: the gather emits
        /// what the multiset gather emitted, time by time.
        #[test]
        fn a_row_of_slots_emits_what_a_multiset_did(
            steps in prop::collection::vec(prop::collection::vec((0u64..3, 0u32..4, 0i64..5, any::<bool>()), 0..10), 1..6),
            seed in any::<u64>(),
        ) {
            let mut current: BTreeMap<(u64, u32), Value> = BTreeMap::new();
            let mut s = seed;
            let mut times = Vec::new();
            for step in steps {
                let mut changes = Vec::new();
                for (instance, slot, v, bounce) in step {
                    // 4 clears the slot; 3 is a null value.
                    let new = match v { 4 => None, 3 => Some(Value::Null), v => Some(Value::Int(v)) };
                    if current.get(&(instance, slot)) == new.as_ref() {
                        continue;
                    }
                    if bounce {
                        // Through a value that comes and goes within the time.
                        changes.push(((instance, (slot, Value::Int(99))), 1));
                        changes.push(((instance, (slot, Value::Int(99))), -1));
                    }
                    if let Some(old) = current.remove(&(instance, slot)) {
                        changes.push(((instance, (slot, old)), -1));
                    }
                    if let Some(new) = new {
                        current.insert((instance, slot), new.clone());
                        changes.push(((instance, (slot, new)), 1));
                    }
                }
                for i in (1..changes.len()).rev() {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    changes.swap(i, (s >> 33) as usize % (i + 1));
                }
                times.push(changes);
            }
            let got = crate::testing::emitted(times.clone(), as_row);
            let want = crate::testing::emitted(times, as_multiset);
            prop_assert_eq!(got, want);
        }
    }

    /// Slot values a multiset of changes consolidates to.
    fn consolidated(changes: &[((u32, Value), isize)]) -> BTreeMap<(u32, Value), isize> {
        let mut m = BTreeMap::new();
        for (k, d) in changes {
            *m.entry(k.clone()).or_insert(0) += d;
        }
        m.retain(|_, d| *d != 0);
        m
    }

    fn held(g: &Gathered) -> BTreeMap<(u32, Value), isize> {
        let mut all: Vec<((u32, Value), isize)> = g.odd.to_vec();
        for (slot, v) in g.slots.iter().enumerate() {
            if let Some(v) = v {
                all.push(((slot as u32, v.clone()), 1));
            }
        }
        consolidated(&all)
    }

    proptest! {
        /// Whatever the order and the parts changes come in, the state holds
        /// exactly their consolidated multiset, and once that is at most one
        /// value per slot, every slot is in place and nothing is odd.
        #[test]
        fn parts_in_any_order_leave_the_consolidated_slots(
            rounds in prop::collection::vec(prop::collection::vec((0u32..3, 0i64..3), 0..4), 1..6),
            seed in any::<u64>(),
            cut in 1usize..5,
        ) {
            // Each round moves every slot it names from its value to a new
            // one: the changes of a column over successive times.
            let mut current: BTreeMap<u32, i64> = BTreeMap::new();
            let mut changes = Vec::new();
            for round in rounds {
                for (slot, v) in round {
                    if let Some(old) = current.insert(slot, v) {
                        changes.push(((slot, Value::Int(old)), -1));
                    }
                    changes.push(((slot, Value::Int(v)), 1));
                }
            }
            // Shuffled (a fixed permutation by seed) and fed in parts.
            let mut order: Vec<usize> = (0..changes.len()).collect();
            let mut s = seed;
            for i in (1..order.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            let shuffled: Vec<_> = order.iter().map(|&i| changes[i].clone()).collect();
            let mut g = Gathered::default();
            for (i, part) in shuffled.chunks(cut).enumerate() {
                g.absorb(&mut part.to_vec());
                let fed = (i * cut + part.len()).min(shuffled.len());
                prop_assert_eq!(held(&g), consolidated(&shuffled[..fed]));
            }
            prop_assert_eq!(held(&g), consolidated(&changes));
            prop_assert!(g.odd.is_empty(), "odd left: {:?}", g.odd);
            let expected: BTreeMap<u32, Value> = current.into_iter().map(|(s, v)| (s, Value::Int(v))).collect();
            let slots: BTreeMap<u32, Value> = g.slots.iter().enumerate()
                .filter_map(|(s, v)| Some((s as u32, v.clone()?))).collect();
            prop_assert_eq!(slots, expected);
        }
    }
}
