//! Rows extended with the lookup row of the instance they reference (the
//! plan's `Enrich`: `order.product.category` reads the product's row).
//!
//! Differential's `join_core` needs both sides arranged: every event row is
//! sorted into batches of a trace and merged again and again as the trace
//! compacts, though the lookup side (an entity's attributes) seldom changes.
//! In a refresh of retail orders the three joins' arrangements and joins took
//! a third of the workers' time. Here each worker keeps, per referenced
//! instance of its share, its lookup rows and a log of the changes to the
//! rows that reference it. A time's new rows are joined to the lookup row as
//! it is and appended to the log: nothing else is read. Only when the lookup
//! row changes is every row joined again (the old joined rows retracted, the
//! new ones inserted), and only then (if the log holds a retraction), or when
//! retractions have made the log twice as long as the rows it adds up to, is
//! the log consolidated. The output is exactly the collection `join_core`
//! gives, not always consolidated (a row logged twice joins twice); with a
//! predicate (a filter that is the join's only reader), exactly the rows of
//! it that the predicate is true of.

use crate::keyed::{keyed_inputs, Changes, InstanceState};
use crate::render::{filtered_row, kept_by, Row, SharedRow, Time};
use crate::values::Values;
use differential_dataflow::consolidation::consolidate_slice;
use differential_dataflow::VecCollection;
use segflow_compiler::eval::ScalarExpr;
use segflow_compiler::value::Value;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use thin_vec::ThinVec;

/// A change to one instance's side of the join.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Side {
    /// A row that references the instance.
    Row(SharedRow),
    /// The instance's lookup row (at a completed time, at most one).
    Lookup(SharedRow),
}

/// One instance's lookup rows and the rows that reference it, and the
/// changes to its lookup rows in the time that has not completed yet.
#[derive(Default)]
struct Referenced {
    /// Changes to the rows, in the order they came, not consolidated (an
    /// insertion costs a push). Those before `settled` are of completed times.
    rows: ThinVec<(SharedRow, isize)>,
    settled: usize,
    /// The number of rows at the completed times (multiplicities summed).
    live: isize,
    lookups: Values<SharedRow>,
    /// Applied when the time completes: what is emitted depends on the
    /// lookup rows before and after.
    lookup_changes: ThinVec<(SharedRow, isize)>,
}

/// What every instance of one join shares: the predicate of the filter that
/// is the join's only reader, if it has one (`where product.category =
/// "shoes"`), which each joined row is tested by before it is made. Made
/// and then filtered, most rows of such a join were an allocation each,
/// sent on only to be dropped. And the columns its readers read, if that
/// is all they read (`render::read_columns`).
pub struct Logic {
    predicate: Option<ScalarExpr>,
    columns: Option<Vec<usize>>,
    /// A joined row being tested, reused.
    scratch: RefCell<Row>,
}

impl Logic {
    /// A join that tests each joined row by `predicate`, if any, and makes
    /// rows of `columns` of it alone, if given: of the whole joined row
    /// (the row, then the lookup row), in that order. A gather that follows
    /// a reference reads two values of each row (the key, a slot of the
    /// lookup), an aggregate one to four; when the referenced instance's
    /// value changes, every row that references it is joined again, and a
    /// store's users were each copied whole, twice.
    pub fn new(predicate: Option<ScalarExpr>, columns: Option<Vec<usize>>) -> Logic {
        Logic { predicate, columns, scratch: RefCell::default() }
    }

    /// `row` extended with `lookup`, if the predicate keeps it: one
    /// allocation, from an iterator of known length.
    fn joined(&self, row: &SharedRow, lookup: &SharedRow) -> Option<SharedRow> {
        self.extended(row, lookup, 0)
    }

    /// What a row referencing no instance (its reference is null) joins
    /// to, as a left outer join gives it: `row` extended with `width`
    /// nulls, made as `joined` makes the others.
    pub fn unreferenced(&self, row: &SharedRow, width: usize) -> Option<SharedRow> {
        self.extended(row, &[], width)
    }

    /// `row`, then `lookup`, then `nulls` nulls, if the predicate keeps it
    /// (tested on the whole row): whole, or only its narrowed columns.
    fn extended(&self, row: &[Value], lookup: &[Value], nulls: usize) -> Option<SharedRow> {
        // `nulls` matters to the whole row alone: past the lookup, the
        // predicate and `narrow_row` read nulls.
        match (&self.columns, &self.predicate) {
            (None, predicate) => {
                let values = row.iter().chain(lookup).cloned().chain(std::iter::repeat_n(Value::Null, nulls));
                filtered_row(predicate.as_ref(), &mut self.scratch.borrow_mut(), values)
            }
            (Some(columns), None) => Some(narrow_row(columns, row, lookup)),
            (Some(columns), Some(predicate)) => {
                let mut scratch = self.scratch.borrow_mut();
                scratch.clear();
                scratch.extend(row.iter().chain(lookup).cloned());
                // The kept columns are moved out of the row tested, not cloned again.
                let narrowed = kept_by(predicate, &scratch)
                    .then(|| columns.iter().map(|&c| scratch.get_mut(c).map_or(Value::Null, std::mem::take)).collect());
                scratch.clear();
                narrowed
            }
        }
    }
}

/// Columns `columns` of `row` followed by `lookup` (null past their end).
fn narrow_row(columns: &[usize], row: &[Value], lookup: &[Value]) -> SharedRow {
    let at = |c: usize| match c.checked_sub(row.len()) {
        None => row[c].clone(),
        Some(l) => lookup.get(l).cloned().unwrap_or(Value::Null),
    };
    columns.iter().map(|&c| at(c)).collect()
}

/// How many rows ahead `join_all` asks for a row's memory.
const JOIN_AHEAD: usize = 8;

/// Appends every pair of `rows` and `lookups` that `logic` keeps to `out`,
/// each with the product of their multiplicities times `sign`.
fn join_all(
    rows: &[(SharedRow, isize)],
    lookups: &Values<SharedRow>,
    sign: isize,
    logic: &Logic,
    out: &mut Vec<(SharedRow, isize)>,
) {
    for (i, (row, n)) in rows.iter().enumerate() {
        // Joined again when the lookup row changes, a store's users are
        // thousands of rows, each in memory of its own.
        if let Some((ahead, _)) = rows.get(i + JOIN_AHEAD) {
            crate::instances::prefetch(&**ahead);
        }
        for (lookup, m) in lookups.iter() {
            if let Some(joined) = logic.joined(row, lookup) {
                out.push((joined, sign * n * m));
            }
        }
    }
}

/// Sums up the changes per row, none left at 0.
fn consolidate(changes: &mut ThinVec<(SharedRow, isize)>) {
    let len = changes.len();
    consolidate_first(changes, len);
}

/// Sums up the first `len` changes per row, none left at 0 (differential's
/// consolidation, in place), the rest after them as they were; returns how
/// many the first became. Insertions alone are left as they are: nothing
/// cancels, and a row twice joins as it would once with 2 (a backfill's
/// instances each sorted all their rows, by content, only to find that).
fn consolidate_first(changes: &mut ThinVec<(SharedRow, isize)>, len: usize) -> usize {
    if changes[..len].iter().all(|(_, n)| *n > 0) {
        return len;
    }
    let kept = consolidate_slice(&mut changes[..len]);
    changes.drain(kept..len);
    if changes.capacity() > 2 * changes.len() + 16 {
        changes.shrink_to_fit();
    }
    kept
}

impl InstanceState<Side, SharedRow> for Referenced {
    type Logic = Logic;

    fn absorb(&mut self, changes: &mut Vec<(Side, isize)>) {
        // The first batch's rows exactly: a store's thousands of users in a
        // backfill, which doubling would give up to twice the room.
        crate::values::first_room(
            &mut self.rows,
            changes.iter().filter(|(side, _)| matches!(side, Side::Row(_))).count(),
        );
        for (side, diff) in changes.drain(..) {
            match side {
                Side::Row(row) => self.rows.push((row, diff)),
                Side::Lookup(lookup) => self.lookup_changes.push((lookup, diff)),
            }
        }
    }

    fn produce(&mut self, logic: &Logic, _: &mut Vec<SharedRow>, out: &mut Vec<(SharedRow, isize)>) {
        self.live += self.rows[self.settled..].iter().map(|(_, n)| n).sum::<isize>();
        let consolidated = if self.lookup_changes.is_empty() {
            // Only rows changed: each joined to the lookup row as it is.
            join_all(&self.rows[self.settled..], &self.lookups, 1, logic, out);
            false
        } else {
            // The lookup row changed: every row, old and new, is joined
            // again, each once (the log summed up first).
            if !self.lookups.is_empty() {
                let old_rows = consolidate_first(&mut self.rows, self.settled);
                join_all(&self.rows[..old_rows], &self.lookups, -1, logic, out);
            }
            let mut changes = std::mem::take(&mut self.lookup_changes).into_iter().collect::<Vec<_>>();
            changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            self.lookups.absorb(&mut changes);
            consolidate(&mut self.rows);
            join_all(&self.rows, &self.lookups, 1, logic, out);
            true
        };
        // Retractions only add to the log: past twice the rows it adds up
        // to, it is summed up (an amortised constant per change).
        let long = self.rows.len() > 2 * self.live.max(0) as usize + 16 || (self.live == 0 && !self.rows.is_empty());
        if long && !consolidated {
            consolidate(&mut self.rows);
        }
        self.settled = self.rows.len();
    }

    fn size(&self) -> usize {
        self.rows.len() + self.lookups.len() + self.lookup_changes.len()
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.lookups.is_empty() && self.lookup_changes.is_empty()
    }

    // And the log's length: taking the state (`Instances::entry`) asks
    // whether it is vacant, which reads it.
    fn prefetch(&self) {
        self.lookups.prefetch();
        crate::instances::prefetch_before(self.rows.as_ptr());
    }

    // What it emitted is its rows joined to its lookup rows: nothing is held
    // beside them.
    fn holds_output(&self) -> bool {
        false
    }
}

/// Each of `rows` (keyed by the instance it references) extended with every
/// one of `lookups` of that instance, kept up to date as either side changes;
/// with a `predicate`, only the joined rows it is true of (a filter of the
/// join). A row whose instance has no lookup row is not emitted (nor held
/// out: it is emitted once one comes).
pub fn enriched<'s>(
    rows: VecCollection<'s, Time, (u64, SharedRow), isize>,
    lookups: VecCollection<'s, Time, (u64, SharedRow), isize>,
    logic: Logic,
) -> VecCollection<'s, Time, SharedRow, isize> {
    let side = |input, row| if input == 0 { Side::Row(row) } else { Side::Lookup(row) };
    keyed_inputs::<_, _, _, Referenced, Changes<Side>, _>(vec![rows, lookups], "Enrich", side, |_, row| row, logic)
}

#[cfg(test)]
mod tests {
    use super::{enriched, narrow_row, Logic, Referenced, Side};
    use crate::keyed::InstanceState;
    use crate::render::SharedRow;
    use crate::render::Time;
    use differential_dataflow::VecCollection;
    use proptest::prelude::*;
    use segflow_compiler::eval::ScalarExpr;
    use segflow_compiler::hir::{BinaryOp, UnaryOp};
    use segflow_compiler::value::Value;
    use std::collections::BTreeMap;

    fn row(values: &[i64]) -> SharedRow {
        values.iter().map(|v| Value::Int(*v)).collect()
    }

    #[test]
    fn a_narrow_row_takes_its_columns_from_the_row_then_the_lookup() {
        let (r, l) = (row(&[10, 11, 12]), row(&[20, 21]));
        assert_eq!(narrow_row(&[0, 4], &r, &l), row(&[10, 21]));
        assert_eq!(narrow_row(&[1, 2, 3], &r, &l), row(&[11, 12, 20]));
        // Past the lookup's end (no lookup: a row referencing nothing), null.
        let padded: SharedRow = [Value::Int(12), Value::Null].into_iter().collect();
        assert_eq!(narrow_row(&[2, 3], &r, &[]), padded);
        // The same columns as the whole joined row, projected.
        let whole: Vec<Value> = r.iter().chain(l.iter()).cloned().collect();
        let columns = [0, 2, 3];
        let projected: SharedRow = columns.iter().map(|&c| whole[c].clone()).collect();
        assert_eq!(narrow_row(&columns, &r, &l), projected);
    }

    /// Each time's changes; what the operator emits at each time, consolidated.
    fn run(times: Vec<Vec<((u64, Side), isize)>>) -> Vec<Vec<(SharedRow, isize)>> {
        crate::testing::emitted(times, join_of_sides).into_iter().map(consolidated).collect()
    }

    /// `run` of the join with `filter()` as its predicate.
    fn run_filtered(times: Vec<Vec<((u64, Side), isize)>>) -> Vec<Vec<(SharedRow, isize)>> {
        crate::testing::emitted(times, filtered_join_of_sides).into_iter().map(consolidated).collect()
    }

    /// `run_filtered` of the join that keeps only column `C` of its rows.
    fn run_narrowed<const C: usize>(times: Vec<Vec<((u64, Side), isize)>>) -> Vec<Vec<(SharedRow, isize)>> {
        crate::testing::emitted(times, narrowed_join_of_sides::<C>).into_iter().map(consolidated).collect()
    }

    /// True of a joined row `[v, w]` whose row value is even or whose lookup
    /// value is 101 or 103 (`keeps`): it depends on both sides.
    fn filter() -> ScalarExpr {
        let int = |i| ScalarExpr::Literal(Value::Int(i));
        let even = ScalarExpr::Binary(
            BinaryOp::Eq,
            Box::new(ScalarExpr::Binary(BinaryOp::Rem, Box::new(ScalarExpr::Slot(0)), Box::new(int(2)))),
            Box::new(int(0)),
        );
        let lookup = ScalarExpr::InList(Box::new(ScalarExpr::Slot(1)), vec![int(101), int(103)], false);
        ScalarExpr::Binary(BinaryOp::Or, Box::new(even), Box::new(lookup))
    }

    /// `filter()`, in plain Rust: what the test expects of it.
    fn keeps(joined: &[Value]) -> bool {
        match joined {
            [Value::Int(v), Value::Int(w)] => v % 2 == 0 || *w == 101 || *w == 103,
            _ => panic!("a joined row of two ints: {joined:?}"),
        }
    }

    /// Rows or lookup rows by instance, as a test's dataflow holds them.
    type Keyed<'s> = VecCollection<'s, Time, (u64, SharedRow), isize>;

    /// The rows and the lookup rows among `sides`.
    fn sides(sides: VecCollection<'_, Time, (u64, Side), isize>) -> (Keyed<'_>, Keyed<'_>) {
        let rows = sides.clone().flat_map(|(k, side)| match side {
            Side::Row(row) => Some((k, row)),
            Side::Lookup(_) => None,
        });
        let lookups = sides.flat_map(|(k, side)| match side {
            Side::Lookup(row) => Some((k, row)),
            Side::Row(_) => None,
        });
        (rows, lookups)
    }

    /// The join of the rows and lookup rows among `sides`, each an input.
    fn join_of_sides(sides: VecCollection<'_, Time, (u64, Side), isize>) -> VecCollection<'_, Time, SharedRow, isize> {
        let (rows, lookups) = self::sides(sides);
        enriched(rows, lookups, Logic::new(None, None))
    }

    /// `join_of_sides` with `filter()` as its predicate.
    fn filtered_join_of_sides(
        sides: VecCollection<'_, Time, (u64, Side), isize>,
    ) -> VecCollection<'_, Time, SharedRow, isize> {
        let (rows, lookups) = self::sides(sides);
        enriched(rows, lookups, Logic::new(Some(filter()), None))
    }

    /// `filtered_join_of_sides` making rows of column `C` alone: the
    /// predicate reads both columns, so each narrowing drops one it read.
    fn narrowed_join_of_sides<const C: usize>(
        sides: VecCollection<'_, Time, (u64, Side), isize>,
    ) -> VecCollection<'_, Time, SharedRow, isize> {
        let (rows, lookups) = self::sides(sides);
        enriched(rows, lookups, Logic::new(Some(filter()), Some(vec![C])))
    }

    fn consolidated(changes: impl IntoIterator<Item = (SharedRow, isize)>) -> Vec<(SharedRow, isize)> {
        let mut sums: BTreeMap<SharedRow, isize> = BTreeMap::new();
        for (r, n) in changes {
            *sums.entry(r).or_default() += n;
        }
        sums.into_iter().filter(|(_, n)| *n != 0).collect()
    }

    #[test]
    fn a_row_referencing_nothing_is_tested_whole_then_narrowed() {
        let is_null = |slot| ScalarExpr::IsNull(Box::new(ScalarExpr::Slot(slot)), false);
        let logic = Logic::new(Some(is_null(2)), Some(vec![0, 2]));
        assert_eq!(logic.unreferenced(&row(&[7]), 2), Some(SharedRow::from(vec![Value::Int(7), Value::Null])));
        let logic = Logic::new(Some(ScalarExpr::Unary(UnaryOp::Not, Box::new(is_null(2)))), Some(vec![0, 2]));
        assert_eq!(logic.unreferenced(&row(&[7]), 2), None);
    }

    #[test]
    fn rows_are_joined_to_the_lookup_row_and_again_when_it_changes() {
        let emitted = run(vec![
            // A row of instance 1 before its lookup row, and one of 2, which has none.
            vec![((1, Side::Row(row(&[10]))), 1), ((2, Side::Row(row(&[20]))), 1)],
            // 1's lookup row comes, with a second row.
            vec![((1, Side::Lookup(row(&[100]))), 1), ((1, Side::Row(row(&[11]))), 1)],
            // 1's lookup row changes, and its first row leaves.
            vec![
                ((1, Side::Lookup(row(&[100]))), -1),
                ((1, Side::Lookup(row(&[101]))), 1),
                ((1, Side::Row(row(&[10]))), -1),
            ],
        ]);
        assert_eq!(emitted[0], []);
        assert_eq!(emitted[1], [(row(&[10, 100]), 1), (row(&[11, 100]), 1)]);
        assert_eq!(emitted[2], [(row(&[10, 100]), -1), (row(&[11, 100]), -1), (row(&[11, 101]), 1)]);
    }

    /// One instance's state fed a time's changes in parts (as early folds
    /// give them), then asked what the time changed.
    fn step(state: &mut Referenced, parts: Vec<Vec<(Side, isize)>>) -> Vec<(SharedRow, isize)> {
        for mut part in parts {
            state.absorb(&mut part);
        }
        let mut out = Vec::new();
        state.produce(&Logic::new(None, None), &mut Vec::new(), &mut out);
        consolidated(out)
    }

    #[test]
    fn a_time_in_parts_is_joined_as_one() {
        let mut state = Referenced::default();
        assert_eq!(step(&mut state, vec![vec![(Side::Lookup(row(&[100])), 1)]]), []);
        // Rows only: a row leaves in one part before it came in a later one,
        // and another comes.
        let rows = step(
            &mut state,
            vec![
                vec![(Side::Row(row(&[1])), 1), (Side::Row(row(&[2])), -1)],
                vec![(Side::Row(row(&[2])), 1)],
                vec![(Side::Row(row(&[3])), 1)],
            ],
        );
        assert_eq!(rows, [(row(&[1, 100]), 1), (row(&[3, 100]), 1)]);
        // The lookup row changes over two parts, with a row coming between.
        let lookup = step(
            &mut state,
            vec![
                vec![(Side::Lookup(row(&[100])), -1)],
                vec![(Side::Row(row(&[4])), 1), (Side::Lookup(row(&[101])), 1)],
            ],
        );
        assert_eq!(
            lookup,
            [(row(&[1, 100]), -1), (row(&[1, 101]), 1), (row(&[3, 100]), -1), (row(&[3, 101]), 1), (row(&[4, 101]), 1)]
        );
    }

    #[test]
    fn retractions_leave_a_log_as_long_as_its_rows() {
        let mut state = Referenced::default();
        step(&mut state, vec![vec![(Side::Lookup(row(&[100])), 1)]]);
        // Rows come and most go, a time each, oldest first, as windows expire them.
        for t in 0..1000 {
            let mut changes = vec![(Side::Row(row(&[t])), 1)];
            if t >= 3 {
                changes.push((Side::Row(row(&[t - 3])), -1));
            }
            let out = step(&mut state, vec![changes]);
            assert_eq!(out.len(), if t >= 3 { 2 } else { 1 });
            // Summed up once past twice its live rows (at most 3) plus 16.
            assert!(state.rows.len() <= 2 * 3 + 16, "the log holds {} entries", state.rows.len());
        }
        assert_eq!(state.live, 3);
        // All go: nothing is left to keep.
        let out = step(&mut state, vec![(997..1000).map(|t| (Side::Row(row(&[t])), -1)).collect()]);
        assert_eq!(out.len(), 3);
        step(&mut state, vec![vec![(Side::Lookup(row(&[100])), -1)]]);
        assert!(state.is_empty());
    }

    proptest! {
        /// Rows and lookup rows of a few instances come and go over times,
        /// with any multiplicities: at each time the operator emits the
        /// difference between the join of everything so far and the join
        /// of everything up to the time before; with a predicate, exactly
        /// those changes that it is true of.
        #[test]
        fn emits_the_change_in_the_join(
            steps in prop::collection::vec(
                prop::collection::vec((0u64..3, any::<bool>(), 0i64..6, -2isize..3), 0..30), 1..8),
        ) {
            let side = |lookup: bool, v: i64| if lookup { Side::Lookup(row(&[100 + v])) } else { Side::Row(row(&[v])) };
            let times: Vec<Vec<((u64, Side), isize)>> = steps
                .iter()
                .map(|step| step.iter().map(|&(k, lookup, v, n)| ((k, side(lookup, v)), n)).collect())
                .collect();
            let emitted = run(times.clone());
            let filtered = run_filtered(times.clone());
            let narrowed = [run_narrowed::<0>(times.clone()), run_narrowed::<1>(times)];
            // The join of all changes up to each time, from scratch.
            let join_upto = |t: usize| {
                let mut rows: BTreeMap<(u64, i64), isize> = BTreeMap::new();
                let mut lookups: BTreeMap<(u64, i64), isize> = BTreeMap::new();
                for &(k, lookup, v, n) in steps[..t].iter().flatten() {
                    *if lookup { &mut lookups } else { &mut rows }.entry((k, v)).or_default() += n;
                }
                let mut out = Vec::new();
                for (&(k, v), &n) in &rows {
                    for (&(_, w), &m) in lookups.range((k, i64::MIN)..=(k, i64::MAX)) {
                        out.push((row(&[v, 100 + w]), n * m));
                    }
                }
                consolidated(out)
            };
            for (t, got) in emitted.iter().enumerate() {
                let after = join_upto(t + 1);
                let before = join_upto(t);
                let expected = consolidated(after.into_iter().chain(before.into_iter().map(|(r, n)| (r, -n))));
                prop_assert_eq!(got, &expected, "at time {}", t);
                // With a predicate: exactly the changes it is true of.
                let kept: Vec<(SharedRow, isize)> =
                    expected.iter().filter(|(row, _)| keeps(row)).cloned().collect();
                prop_assert_eq!(&filtered[t], &kept, "filtered, at time {}", t);
                // Narrowed: those changes, of one column (retractions made
                // when a lookup row changes cancel the rows made before).
                for (c, narrowed) in narrowed.iter().enumerate() {
                    let projected = consolidated(kept.iter().map(|(row, n)| (SharedRow::from(&row[c..=c]), *n)));
                    prop_assert_eq!(&narrowed[t], &projected, "narrowed to column {}, at time {}", c, t);
                }
            }
        }
    }
}
