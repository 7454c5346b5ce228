//! Sorting by integer keys a byte at a time, for the large batches of
//! changes that operators group by instance and the output sorts.
//!
//! A comparison sort of changes compares tuples and moves 40–56-byte
//! changes at each of its ~log2(n) levels. Here only a key and a position
//! per change are sorted (16 bytes), in one pass per byte in which the
//! keys differ (three for 100k instances), and each change then moves
//! once, to its place.

/// Sorts `items` by `key`, stably.
pub fn sort_by_key<T>(items: &mut [T], key: impl Fn(&T) -> u64) {
    let mut order = order_by_key(items.iter().map(key));
    permute(items, &mut order);
}

/// Each key with its position, sorted by key, stably. Few keys take a
/// comparison sort.
pub fn order_by_key(keys: impl ExactSizeIterator<Item = u64>) -> Vec<(u64, u32)> {
    assert!(keys.len() <= u32::MAX as usize, "positions are u32");
    let mut order: Vec<(u64, u32)> = keys.zip(0..).collect();
    if order.len() < SMALL {
        order.sort_by_key(|&(key, _)| key);
    } else {
        let varying = order.iter().fold(0, |bits, &(k, _)| bits | (k ^ order[0].0));
        radix_sort(&mut order, varying);
    }
    order
}

/// Below this many items a comparison sort is as quick: the passes and
/// their counts cost a fixed amount each.
const SMALL: usize = 64;

/// Sorts `items` by key, stably, a byte at a time from the lowest, passing
/// over the bytes in which no key differs (`varying`: the bits that do).
fn radix_sort(items: &mut Vec<(u64, u32)>, varying: u64) {
    let mut moved = vec![(0, 0); items.len()];
    for shift in (0..64).step_by(8).filter(|shift| (varying >> shift) & 0xff != 0) {
        let digit = |key: u64| ((key >> shift) & 0xff) as usize;
        let mut starts = [0usize; 256];
        for &(key, _) in items.iter() {
            starts[digit(key)] += 1;
        }
        let mut next = 0;
        for start in starts.iter_mut() {
            (*start, next) = (next, next + *start);
        }
        for &item in items.iter() {
            let at = &mut starts[digit(item.0)];
            moved[*at] = item;
            *at += 1;
        }
        std::mem::swap(items, &mut moved);
    }
}

/// Moves each item to its place in `order` (the item at `order[i].1` goes
/// to `i`) along the permutation's cycles, in place: no second vector of
/// the items to allocate and fault in. `order`'s positions are used up.
fn permute<T>(items: &mut [T], order: &mut [(u64, u32)]) {
    const PLACED: u32 = u32::MAX;
    for start in 0..order.len() {
        let mut at = start;
        while order[at].1 != PLACED {
            let from = order[at].1 as usize;
            order[at].1 = PLACED;
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The same order as the standard library's stable sort by key,
        /// whichever bytes of the keys vary.
        #[test]
        fn sorts_as_a_stable_sort_does(
            keys in prop::collection::vec(
                prop_oneof![0..4u64, 0..1u64 << 20, any::<u64>(), (0..3u64).prop_map(|k| k << 40)],
                0..400,
            ),
        ) {
            let mut items: Vec<(u64, usize)> = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
            let mut expected = items.clone();
            expected.sort_by_key(|item| item.0);
            super::sort_by_key(&mut items, |item| item.0);
            prop_assert_eq!(items, expected);
        }
    }
}
