//! Sorting by integer keys a byte at a time, for the large batches of
//! changes that operators group by instance and the output sorts.
//!
//! A comparison sort of changes compares tuples and moves 40–56-byte
//! changes at each of its ~log2(n) levels. Here only a key and a position
//! per change are sorted (16 bytes), in one pass per byte in which the
//! keys differ (three for 100k instances); the changes are then put in
//! their places (taken from them, or swapped along the order's cycles).

/// Sorts `items` by `key`, stably.
pub fn sort_by_key<T>(items: &mut [T], key: impl Fn(&T) -> u64) {
    let mut order = order_by_key(items.iter().map(key));
    permute(items, &mut order);
}

/// Each key with its position, sorted by key, stably. Few keys take a
/// comparison sort.
pub fn order_by_key(keys: impl Iterator<Item = u64>) -> Vec<(u64, usize)> {
    let mut order: Vec<(u64, usize)> = keys.zip(0..).collect();
    if order.len() < SMALL {
        // Positions are all different: by key, then position, is by key
        // and stable.
        order.sort_unstable();
    } else {
        let first = order[0].0;
        let varying = order.iter().fold(0, |bits, &(key, _)| bits | (key ^ first));
        radix_sort(&mut order, varying);
    }
    order
}

/// Below this many items a comparison sort is as quick: the passes and
/// their counts cost a fixed amount each. (Few in debug builds, so that the
/// randomized reference tests group their small batches by radix too.)
const SMALL: usize = if cfg!(debug_assertions) { 4 } else { 64 };

/// Sorts `items` by key, stably, a byte at a time from the lowest, passing
/// over the bytes in which no key differs (`varying`: the bits that do).
fn radix_sort(items: &mut Vec<(u64, usize)>, varying: u64) {
    if varying == 0 {
        return;
    }
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
fn permute<T>(items: &mut [T], order: &mut [(u64, usize)]) {
    // No slice holds this many items.
    const PLACED: usize = usize::MAX;
    for start in 0..order.len() {
        let mut at = start;
        while order[at].1 != PLACED {
            let from = order[at].1;
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

    /// Keys that differ only in the bits of `mask`, from `base`: a byte in
    /// which no key differs is passed over, and one that differs in a
    /// single bit (the highest of its byte, say) is not.
    fn keys_varying_in(mask: u64) -> impl Strategy<Value = Vec<u64>> {
        (any::<u64>(), prop::collection::vec(any::<u64>(), 0..400))
            .prop_map(move |(base, bits)| bits.into_iter().map(|b| base ^ (b & mask)).collect())
    }

    fn keys() -> impl Strategy<Value = Vec<u64>> {
        prop_oneof![
            prop::collection::vec(prop_oneof![0..4u64, 0..1u64 << 20, any::<u64>()], 0..400),
            prop::sample::select(vec![0, 0x80, 0x8080, 0xff << 56, 1 << 40, 0xf_ffff, u64::MAX])
                .prop_flat_map(keys_varying_in),
            // Around the sizes where the comparison sort gives way.
            (60..70usize, 0..3u64).prop_map(|(n, k)| (0..n as u64).map(|i| (i * 7919 % 5) << (20 * k)).collect()),
        ]
    }

    proptest! {
        /// The same order as the standard library's stable sort by key,
        /// whichever bytes of the keys vary.
        #[test]
        fn sorts_as_a_stable_sort_does(keys in keys()) {
            let mut items: Vec<(u64, usize)> = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
            let mut expected = items.clone();
            expected.sort_by_key(|item| item.0);
            super::sort_by_key(&mut items, |item| item.0);
            prop_assert_eq!(items, expected);
        }
    }
}
