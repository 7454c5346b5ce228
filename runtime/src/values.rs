//! One instance's values: a consolidated multiset, sorted, that stays cheap
//! to change however large it grows.
//!
//! Most instances hold a few values (a user's orders in a window, a gather's
//! slots), kept in one sorted vector (a thin one: one pointer, and nothing
//! allocated while empty), and a batch's changes are merged in one pass. A
//! hot instance (a store's or a product's orders over 30 days) holds
//! thousands, and a refresh brings it one or two changes at a time: placing
//! each in a vector moved half of it, and merging more than a few copied all
//! of it, on every batch. Those live in a tree, where a change costs a
//! search. A batch of changes large beside the values (a backfill's) is
//! still merged in one pass over a vector.

use std::collections::BTreeMap;
use thin_vec::ThinVec;

/// Makes room for exactly `n` elements in `v` if it has none yet; growth
/// after that doubles. A thin vector's first push or reserve makes room for
/// four, and most per-instance vectors hold one to three (a dense gather's
/// slots, a join's lookup row, a multiset's one answer): at a million users
/// that spare room was ~50 MB of a backfill's peak (BENCHMARKS.md).
pub(crate) fn first_room<T>(v: &mut ThinVec<T>, n: usize) {
    if v.capacity() == 0 {
        v.reserve_exact(n);
    }
}

/// Values held in a vector below this many; from it on, a tree takes small
/// batches of changes. Debug builds (the tests) switch at a handful, so that
/// the reference tests cover both forms and the switches both ways.
const MANY: usize = if cfg!(debug_assertions) { 8 } else { 64 };

/// A batch of changes at least this fraction of the values (1/8) is merged
/// in one pass, in a vector: cheaper than a search per change. (So a tree
/// that has shrunk to 8 values or fewer is a vector again at its next change.)
fn merges_whole(changes: usize, values: usize) -> bool {
    changes * 8 >= values
}

/// Consolidated values with their multiplicities, in order; none has
/// multiplicity 0 (a time's changes come in parts, so one may be negative
/// for a while).
pub enum Values<D> {
    Few(ThinVec<(D, isize)>),
    // Boxed, so that either form is a pointer: two words with the tag.
    Many(Box<BTreeMap<D, isize>>),
}

const _: () = assert!(std::mem::size_of::<Values<u64>>() == 16);

impl<D> Default for Values<D> {
    fn default() -> Self {
        Values::Few(ThinVec::new())
    }
}

impl<D: Ord> Values<D> {
    pub fn len(&self) -> usize {
        match self {
            Values::Few(v) => v.len(),
            Values::Many(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks for the memory the values start in: a vector's length and its
    /// first values, through its pointer alone (reading the length to find
    /// them was itself the cache miss), or a tree's header (see
    /// `instances::prefetch`).
    pub fn prefetch(&self) {
        match self {
            Values::Few(v) => crate::instances::prefetch_before(v.as_ptr()),
            Values::Many(t) => crate::instances::prefetch(&**t),
        }
    }

    /// The least value and its multiplicity.
    pub fn first(&self) -> Option<(&D, isize)> {
        match self {
            Values::Few(v) => v.first().map(|(d, n)| (d, *n)),
            Values::Many(t) => t.first_key_value().map(|(d, n)| (d, *n)),
        }
    }

    /// The greatest value and its multiplicity.
    pub fn last(&self) -> Option<(&D, isize)> {
        match self {
            Values::Few(v) => v.last().map(|(d, n)| (d, *n)),
            Values::Many(t) => t.last_key_value().map(|(d, n)| (d, *n)),
        }
    }

    /// The multiplicity of `value` (0 if it is not held).
    pub fn count(&self, value: &D) -> isize {
        match self {
            Values::Few(v) => v.binary_search_by(|(d, _)| d.cmp(value)).map_or(0, |i| v[i].1),
            Values::Many(t) => t.get(value).copied().unwrap_or(0),
        }
    }

    /// The most frequent value (the least of them, on a tie): a scan of all.
    pub fn most_frequent(&self) -> Option<&D> {
        let mut best: Option<(&D, isize)> = None;
        for (v, n) in self.iter() {
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((v, n));
            }
        }
        best.map(|(v, _)| v)
    }

    /// Every value with its multiplicity, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&D, isize)> {
        let (few, many) = match self {
            Values::Few(v) => (Some(v.iter().map(|(d, n)| (d, *n))), None),
            Values::Many(t) => (None, Some(t.iter().map(|(d, n)| (d, *n)))),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    /// Adds `changes`, sorted by value (drained; a value may repeat, and
    /// multiplicities may be anything, 0 too).
    pub fn absorb(&mut self, changes: &mut Vec<(D, isize)>) {
        match self {
            Values::Few(v) if v.len() >= MANY && !merges_whole(changes.len(), v.len()) => {
                let mut tree: BTreeMap<D, isize> = std::mem::take(v).into_iter().collect();
                place(&mut tree, changes);
                *self = Values::Many(Box::new(tree));
            }
            Values::Few(v) => merge(v, changes),
            Values::Many(t) if merges_whole(changes.len(), t.len()) => {
                let mut v: ThinVec<(D, isize)> = std::mem::take(&mut **t).into_iter().collect();
                merge(&mut v, changes);
                *self = Values::Few(v);
            }
            Values::Many(t) => place(t, changes),
        }
    }
}

impl<D: Ord> Values<D> {
    /// Keeps, of the values with a positive multiplicity, each that no kept
    /// greater value `outlasts`, going down from the greatest (so `outlasts`
    /// is asked of the least value kept so far and the next one down); drops
    /// the rest, and every negative multiplicity.
    pub fn retain_unoutlasted(&mut self, outlasts: impl Fn(&D, &D) -> bool) {
        if let Values::Few(v) = self {
            // In place: the dropped ones are marked with multiplicity 0 first.
            let mut least_kept: Option<usize> = None;
            for i in (0..v.len()).rev() {
                if v[i].1 > 0 && least_kept.is_none_or(|k| !outlasts(&v[k].0, &v[i].0)) {
                    least_kept = Some(i);
                } else {
                    v[i].1 = 0;
                }
            }
            v.retain(|(_, n)| *n != 0);
            // A vector merged whole from a large time (a backfill's) would
            // otherwise keep room for all it held, for one entry or a few.
            if v.capacity() > 2 * v.len().max(4) {
                v.shrink_to_fit();
            }
            return;
        }
        let Values::Many(tree) = std::mem::take(self) else { return };
        let mut kept: Vec<(D, isize)> = Vec::new();
        for (d, n) in tree.into_iter().rev() {
            if n > 0 && kept.last().is_none_or(|(k, _)| !outlasts(k, &d)) {
                kept.push((d, n));
            }
        }
        kept.reverse();
        *self = if kept.len() < MANY {
            Values::Few(kept.into_iter().collect())
        } else {
            Values::Many(Box::new(kept.into_iter().collect()))
        };
    }
}

/// Adds each change to `tree` by a search.
fn place<D: Ord>(tree: &mut BTreeMap<D, isize>, changes: &mut Vec<(D, isize)>) {
    for (d, n) in changes.drain(..) {
        match tree.entry(d) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                *e.get_mut() += n;
                if *e.get() == 0 {
                    e.remove();
                }
            }
            std::collections::btree_map::Entry::Vacant(e) if n != 0 => {
                e.insert(n);
            }
            std::collections::btree_map::Entry::Vacant(_) => {}
        }
    }
}

/// Adds sorted `changes` (drained) to sorted, consolidated `values`, which
/// stay sorted and consolidated. A few changes are placed by binary search in
/// place (the common case: an instance touched by one or two events); many are
/// merged in one pass over both.
fn merge<D: Ord>(values: &mut ThinVec<(D, isize)>, changes: &mut Vec<(D, isize)>) {
    if changes.len() <= 8 {
        first_room(values, changes.len());
        for (d, n) in changes.drain(..) {
            match values.binary_search_by(|v| v.0.cmp(&d)) {
                Ok(i) => {
                    values[i].1 += n;
                    if values[i].1 == 0 {
                        values.remove(i);
                    }
                }
                Err(i) if n != 0 => values.insert(i, (d, n)),
                Err(_) => {}
            }
        }
        return;
    }
    let mut out: ThinVec<(D, isize)> = ThinVec::with_capacity(values.len() + changes.len());
    let mut old = std::mem::take(values).into_iter().peekable();
    let push = |out: &mut ThinVec<(D, isize)>, (d, n): (D, isize)| match out.last_mut() {
        Some(last) if last.0 == d => last.1 += n,
        _ => out.push((d, n)),
    };
    for change in changes.drain(..) {
        while let Some(v) = old.next_if(|v| v.0 < change.0) {
            push(&mut out, v);
        }
        if let Some(v) = old.next_if(|v| v.0 == change.0) {
            push(&mut out, v);
        }
        push(&mut out, change);
    }
    out.extend(old);
    out.retain(|(_, n)| *n != 0);
    *values = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_values_stay_sorted_and_consolidated() {
        // Few changes (placed in place) and many (merged), same expectations.
        let few = vec![(0, 1), (3, -2), (3, 1), (4, 1), (5, -1), (9, 0)];
        let mut many = few.clone();
        many.extend([(10, 1), (10, -1), (11, 0), (12, 0)]);
        for changes in [few, many] {
            let mut values = ThinVec::from(vec![(1, 1), (3, 2), (5, 1)]);
            merge(&mut values, &mut changes.clone());
            assert_eq!(values.as_slice(), [(0, 1), (1, 1), (3, 1), (4, 1)], "{changes:?}");
        }
        let mut values = ThinVec::<(i32, isize)>::new();
        merge(&mut values, &mut vec![(2, 1), (2, 1)]);
        assert_eq!(values.as_slice(), [(2, 2)]);
    }

    /// A new instance's few values take the room they need, not a thin
    /// vector's first four (a user's one lookup row in a join: 40 bytes, not
    /// 112); more values later grow the vector as usual.
    #[test]
    fn a_new_instances_values_take_the_room_they_need() {
        for n in 1..=3 {
            let mut values = Values::default();
            values.absorb(&mut (0..n).map(|v| (v, 1)).collect());
            let Values::Few(v) = &values else { panic!("few values in a tree") };
            assert_eq!((v.len(), v.capacity()), (n as usize, n as usize));
        }
        let mut values = Values::default();
        for (v, room) in [(1, 1), (2, 2), (3, 4)] {
            values.absorb(&mut vec![(v, 1)]);
            let Values::Few(few) = &values else { panic!("few values in a tree") };
            assert_eq!(few.capacity(), room, "grown by doubling");
        }
        assert_eq!(values.iter().map(|(d, n)| (*d, n)).collect::<Vec<_>>(), [(1, 1), (2, 1), (3, 1)]);
    }

    #[test]
    fn retained_values_are_those_no_greater_kept_one_outlasts() {
        // (at, value) entries; a later entry outlasts an earlier one at most as large.
        let entries = [((1, 9), 1), ((2, 3), 1), ((3, 5), -1), ((4, 7), 2), ((5, 1), 1), ((6, 2), 1)];
        for tree in [false, true] {
            let mut values: Values<(i32, i32)> = if tree {
                Values::Many(Box::new(entries.iter().copied().collect()))
            } else {
                Values::Few(entries.iter().copied().collect())
            };
            values.retain_unoutlasted(|later: &(i32, i32), earlier: &(i32, i32)| later.1 >= earlier.1);
            let kept: Vec<_> = values.iter().map(|(d, n)| (*d, n)).collect();
            assert_eq!(kept, [((1, 9), 1), ((4, 7), 2), ((6, 2), 1)], "tree {tree}");
            assert!(matches!(values, Values::Few(_)));
            values.retain_unoutlasted(|_, _| true);
            assert_eq!(values.iter().map(|(d, n)| (*d, n)).collect::<Vec<_>>(), [((6, 2), 1)]);
        }
        let mut none: Values<i32> = Values::Few([(1, -1)].into_iter().collect());
        none.retain_unoutlasted(|_, _| true);
        assert!(none.is_empty());
    }

    /// Random batches of changes, small and large beside the values, against
    /// a plain map: every form and every switch between them.
    #[test]
    fn values_in_either_form_are_the_consolidated_changes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut values, mut expected) = (Values::default(), BTreeMap::<u64, isize>::new());
        // Switches seen: vector to tree, tree to vector.
        let mut switches = [0; 2];
        for round in 0..2_000 {
            let size = if round % 10 == 0 { 1 + next(200) } else { 1 + next(3) };
            // Mostly insertions and retractions of what is there; now and then
            // a retraction ahead of its insertion (a time's changes come in
            // parts) or a change that consolidated to nothing.
            let mut changes: Vec<(u64, isize)> = (0..size)
                .map(|_| {
                    let d = next(100);
                    let n = match next(20) {
                        0 => 0,
                        1 => -1,
                        _ if next(3) == 0 && expected.get(&d).is_some_and(|n| *n > 0) => -1,
                        _ => 1,
                    };
                    (d, n)
                })
                .collect();
            for (d, n) in &changes {
                *expected.entry(*d).or_default() += n;
            }
            expected.retain(|_, n| *n != 0);
            changes.sort();
            let was_tree = matches!(values, Values::Many(_));
            values.absorb(&mut changes);
            assert!(changes.is_empty());
            match (was_tree, matches!(values, Values::Many(_))) {
                (false, true) => switches[0] += 1,
                (true, false) => switches[1] += 1,
                _ => {}
            }
            let got: Vec<(u64, isize)> = values.iter().map(|(d, n)| (*d, n)).collect();
            let want: Vec<(u64, isize)> = expected.iter().map(|(d, n)| (*d, *n)).collect();
            assert_eq!(got, want, "round {round}");
            assert_eq!(values.len(), want.len());
            assert_eq!(values.first().map(|(d, n)| (*d, n)), want.first().copied());
            assert_eq!(values.last().map(|(d, n)| (*d, n)), want.last().copied());
        }
        assert!(switches[0] > 0 && switches[1] > 0, "switches both ways: {switches:?}");
    }
}
