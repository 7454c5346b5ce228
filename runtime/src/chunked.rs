//! Logs and vectors that grow in fixed-size chunks, for the long-lived
//! state of a served history (events kept for snapshots, queued
//! retractions, the segment change log, entity keys, per-instance state).
//!
//! A `Vec` or `VecDeque` grows by doubling: appending to one of millions of
//! items now and then copies all of them, a pause of tens to hundreds of
//! milliseconds on the thread every request waits on. Here a push allocates
//! at most one chunk, and the pause is gone.
//!
//! `Shared` also makes a copy cheap: a full chunk never changes again, so it
//! is shared (`Arc`) and a copy (a snapshot's) clones pointers, not items.
//! `Slots` is a vector by index that grows the same way, for per-instance
//! state: as `Vec`s, every such vector of an entity would double at once when
//! it passes a power of two of instances, in the workers and the serving
//! state.

use std::collections::VecDeque;
use std::sync::Arc;

/// Items per chunk: 24–48 KB for the 24–48-byte items kept here.
pub const CHUNK: usize = 1024;

/// An append-only log that forgets from its front; a clone shares every full
/// chunk. Positions (`start`, `end`, `iter_from`) count from the first item
/// ever pushed, so they stay valid as the front is forgotten. Every full
/// chunk holds exactly `CHUNK` items (one is sealed only when full), so a
/// position finds its chunk by division.
#[derive(Clone, Debug)]
pub struct Shared<T> {
    full: VecDeque<Arc<[T]>>,
    /// The chunk being filled (at most `CHUNK` items).
    tail: Vec<T>,
    /// Items of the first chunk (`full[0]`, or `tail` if there is none)
    /// already forgotten.
    skip: usize,
    pushed: usize,
    forgotten: usize,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared { full: VecDeque::new(), tail: Vec::new(), skip: 0, pushed: 0, forgotten: 0 }
    }
}

impl<T> Shared<T> {
    /// An empty log whose first item will be at position `at` (a log read
    /// back whose front was forgotten before it was written).
    pub fn starting_at(at: usize) -> Self {
        Shared { pushed: at, forgotten: at, ..Shared::default() }
    }

    pub fn push_back(&mut self, item: T) {
        if self.tail.len() == CHUNK {
            let full = std::mem::replace(&mut self.tail, Vec::with_capacity(CHUNK));
            self.full.push_back(full.into());
        } else if self.tail.capacity() == 0 {
            self.tail.reserve_exact(CHUNK);
        }
        self.tail.push(item);
        self.pushed += 1;
    }

    /// Items held (pushed and not forgotten).
    pub fn len(&self) -> usize {
        self.pushed - self.forgotten
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Position of the first item held.
    pub fn start(&self) -> usize {
        self.forgotten
    }

    /// Position one past the last item pushed.
    pub fn end(&self) -> usize {
        self.pushed
    }

    pub fn front(&self) -> Option<&T> {
        match self.full.front() {
            Some(chunk) => chunk.get(self.skip),
            None => self.tail.get(self.skip),
        }
    }

    pub fn back(&self) -> Option<&T> {
        // A tail all forgotten is cleared, so its last item is held.
        self.tail.last().or_else(|| self.full.back().and_then(|c| c.last()))
    }

    /// Forgets the front item, if any. (Its chunk, and so the item itself,
    /// is dropped once all of the chunk is forgotten.)
    pub fn pop_front(&mut self) {
        if self.is_empty() {
            return;
        }
        self.skip += 1;
        self.forgotten += 1;
        match self.full.front() {
            Some(chunk) if self.skip == chunk.len() => {
                self.full.pop_front();
                self.skip = 0;
            }
            Some(_) => {}
            None if self.skip == self.tail.len() => {
                self.tail.clear();
                self.skip = 0;
            }
            None => {}
        }
    }

    /// The item at position `at`, if held.
    pub fn get(&self, at: usize) -> Option<&T> {
        if at < self.forgotten || at >= self.pushed {
            return None;
        }
        let offset = at - self.forgotten + self.skip;
        let (chunk, within) = (offset / CHUNK, offset % CHUNK);
        match self.full.get(chunk) {
            Some(c) => c.get(within),
            None => self.tail.get(within),
        }
    }

    /// Calls `f` on each item held, oldest first, changing it in place (a
    /// chunk shared with a copy is copied first, so the copy keeps its own).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut T))
    where
        T: Clone,
    {
        let skip = self.skip;
        for (i, chunk) in self.full.iter_mut().enumerate() {
            let items = Arc::make_mut(chunk);
            items[if i == 0 { skip } else { 0 }..].iter_mut().for_each(&mut f);
        }
        let tail_from = if self.full.is_empty() { skip } else { 0 };
        self.tail[tail_from..].iter_mut().for_each(f);
    }

    /// The items held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.iter_from(self.forgotten)
    }

    /// The items from position `from` (clamped to those held) on.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &T> {
        // Offset into the first chunk's items, forgotten ones included.
        let offset = from.max(self.forgotten) - self.forgotten + self.skip;
        let (chunk, within) = (offset / CHUNK, offset % CHUNK);
        let full = self.full.range(chunk.min(self.full.len())..).map(|c| &c[..]);
        // Past the tail's chunk there is nothing.
        let tail = (chunk <= self.full.len()).then_some(&self.tail[..]);
        full.chain(tail).enumerate().flat_map(move |(i, c)| c[if i == 0 { within.min(c.len()) } else { 0 }..].iter())
    }
}

impl<T> std::ops::Index<usize> for Shared<T> {
    type Output = T;

    fn index(&self, at: usize) -> &T {
        self.get(at).expect("a position held")
    }
}

impl<T> FromIterator<T> for Shared<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Shared<T> {
        let mut shared = Shared::default();
        for item in items {
            shared.push_back(item);
        }
        shared
    }
}

/// `Slots` chunks hold 1 << SLOTS_SHIFT slots (a power of two: an index
/// splits by shifts).
const SLOTS_SHIFT: u32 = 12;
const SLOTS_CHUNK: usize = 1 << SLOTS_SHIFT;

/// A vector indexed by position, in chunks of `SLOTS_CHUNK` slots, where a
/// `Vec` would double and copy every slot: growing moves at most the last
/// chunk, which grows as a `Vec` does up to its full size (so a vector of a
/// few slots costs a few slots). Every chunk but the last is full. A read is
/// one more load (of the chunk's address, from a short list that stays in
/// cache).
#[derive(Clone, Debug)]
pub struct Slots<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots { chunks: Vec::new(), len: 0 }
    }
}

impl<T: Default> Slots<T> {
    /// `len` default slots.
    pub fn with_len(len: usize) -> Slots<T> {
        let mut slots = Slots::default();
        slots.grow_to(len);
        slots
    }

    /// Makes it at least `len` slots long; new slots hold the default.
    pub fn grow_to(&mut self, len: usize) {
        while self.len < len {
            if self.chunks.last().is_none_or(|last| last.len() == SLOTS_CHUNK) {
                self.chunks.push(Vec::new());
            }
            let full = (self.chunks.len() - 1) << SLOTS_SHIFT;
            if let Some(last) = self.chunks.last_mut() {
                last.resize_with((len - full).min(SLOTS_CHUNK), T::default);
                self.len = full + last.len();
            }
        }
    }
}

impl<T> Slots<T> {
    /// Empty, with room for `items` in its first chunk (at most a chunk's).
    pub fn with_room(items: usize) -> Slots<T> {
        let chunks = if items == 0 { Vec::new() } else { vec![Vec::with_capacity(items.min(SLOTS_CHUNK))] };
        Slots { chunks, len: 0 }
    }

    /// Appends `item`. A chunk this starts after the first is allocated
    /// whole: a batch's hundreds of thousands of changes fill many.
    pub fn push(&mut self, item: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < SLOTS_CHUNK => last.push(item),
            _ => {
                let mut chunk = Vec::with_capacity(if self.chunks.is_empty() { 16 } else { SLOTS_CHUNK });
                chunk.push(item);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        (i < self.len).then(|| &self.chunks[i >> SLOTS_SHIFT][i & (SLOTS_CHUNK - 1)])
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        (i < self.len).then(|| &mut self.chunks[i >> SLOTS_SHIFT][i & (SLOTS_CHUNK - 1)])
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks.iter_mut().flatten()
    }
}

/// A list kept in pieces of at most `PIECE` items, for one that grows to
/// millions and is thinned now and then: pushing allocates a whole piece
/// at a time, where a `Vec` doubled and copied every item into fresh memory
/// (a backfill's rows awaiting `now`: ~8 % of the engine thread's time in
/// those copies and the faults of their pages). Order is kept; there is no
/// indexing, so thinning leaves pieces part full.
#[derive(Debug)]
pub struct Pieces<T> {
    pieces: Vec<Vec<T>>,
    len: usize,
}

const PIECE: usize = 1 << 14;

impl<T> Default for Pieces<T> {
    fn default() -> Self {
        Pieces { pieces: Vec::new(), len: 0 }
    }
}

impl<T> Pieces<T> {
    pub fn push(&mut self, item: T) {
        match self.pieces.last_mut() {
            // (Capacity may exceed what was asked for: PIECE bounds a piece.)
            Some(last) if last.len() < last.capacity().min(PIECE) => last.push(item),
            _ => {
                // The only piece grows as a `Vec` does, so a short list costs
                // little; a last piece that thinning shrank, among others,
                // takes its whole room at once.
                let mut piece = match self.pieces.pop() {
                    None => Vec::with_capacity(16),
                    Some(mut last) if last.len() < PIECE => {
                        let room = if self.pieces.is_empty() { (2 * last.len()).min(PIECE) } else { PIECE };
                        last.reserve_exact(room - last.len());
                        last
                    }
                    Some(full) => {
                        self.pieces.push(full);
                        Vec::with_capacity(PIECE)
                    }
                };
                piece.push(item);
                self.pieces.push(piece);
            }
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the items `keep` says to, in order. A piece left a quarter
    /// full or less gives its room back, an empty one goes.
    pub fn retain_mut(&mut self, mut keep: impl FnMut(&mut T) -> bool) {
        for piece in &mut self.pieces {
            piece.retain_mut(&mut keep);
            if !piece.is_empty() && piece.len() * 4 <= piece.capacity() {
                piece.shrink_to_fit();
            }
        }
        self.pieces.retain(|piece| !piece.is_empty());
        self.len = self.pieces.iter().map(Vec::len).sum();
    }
}

impl<T> IntoIterator for Pieces<T> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.pieces.into_iter().flatten()
    }
}

/// Values by dense id, a slot each (see `intern`: ids are dense per
/// entity), in `Slots`: one read finds one, and growing never copies them
/// all, where a hash map by id rehashed every entry into fresh memory at
/// each doubling (an engine thread's pause in the middle of a batch, at a
/// million instances tens of milliseconds). A slot is 16 bytes for a
/// pointer, for every id up to the greatest that has a value: an entity
/// most of whose instances have none (known only from references) pays
/// for them too, where a map paid ~30 bytes a value held.
#[derive(Clone, Debug)]
pub struct ById<T>(Slots<Option<T>>);

impl<T> Default for ById<T> {
    fn default() -> Self {
        ById(Slots::default())
    }
}

impl<T> ById<T> {
    pub fn get(&self, id: u64) -> Option<&T> {
        self.0.get(id as usize).and_then(Option::as_ref)
    }

    /// Asks for `id`'s slot without reading it (`get` reads it to tell
    /// whether it holds a value).
    pub fn prefetch(&self, id: u64) {
        if let Some(slot) = self.0.get(id as usize) {
            crate::instances::prefetch(slot);
        }
    }

    /// Sets `id`'s value; returns the one it replaces.
    pub fn insert(&mut self, id: u64, value: T) -> Option<T> {
        let at = id as usize;
        self.0.grow_to(at + 1);
        self.0[at].replace(value)
    }

    pub fn remove(&mut self, id: u64) -> Option<T> {
        self.0.get_mut(id as usize).and_then(Option::take)
    }
}

impl<T> IntoIterator for Slots<T> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter().flatten()
    }
}

impl<T> std::ops::Index<usize> for Slots<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        self.get(i).expect("a slot within the length")
    }
}

impl<T> std::ops::IndexMut<usize> for Slots<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        self.get_mut(i).expect("a slot within the length")
    }
}

#[cfg(test)]
mod tests {
    use super::{ById, Pieces, Shared, Slots, CHUNK, PIECE, SLOTS_CHUNK};
    use proptest::prelude::*;
    use std::collections::{HashMap, VecDeque};

    #[derive(Clone, Debug)]
    enum Op {
        Push,
        Pop,
        Copy,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        // Mostly pushes, so the logs cross several chunks.
        let op = prop_oneof![6 => Just(Op::Push), 3 => Just(Op::Pop), 1 => Just(Op::Copy)];
        proptest::collection::vec(op, 0..4 * CHUNK)
    }

    proptest! {
        #[test]
        fn a_shared_log_holds_what_a_deque_does(ops in ops()) {
            let (mut log, mut deque, mut copies) = (Shared::default(), VecDeque::new(), Vec::new());
            let (mut pushed, mut popped) = (0usize, 0usize);
            for op in ops {
                match op {
                    Op::Push => {
                        log.push_back(pushed);
                        deque.push_back(pushed);
                        pushed += 1;
                    }
                    Op::Pop => {
                        popped += usize::from(deque.pop_front().is_some());
                        log.pop_front();
                    }
                    // The copy carries on as the log (pushes after a clone), the
                    // original is kept to check it never changes.
                    Op::Copy => {
                        let copy = log.clone();
                        copies.push((std::mem::replace(&mut log, copy), deque.clone()));
                    }
                }
                prop_assert_eq!(log.front(), deque.front());
                prop_assert_eq!(log.back(), deque.back());
                prop_assert_eq!((log.len(), log.start(), log.end()), (deque.len(), popped, pushed));
                for at in [popped.saturating_sub(1), popped, pushed / 2, pushed.saturating_sub(1), pushed, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK] {
                    prop_assert_eq!(log.get(at), at.checked_sub(popped).and_then(|i| deque.get(i)), "at {}", at);
                }
            }
            prop_assert!(log.iter().eq(deque.iter()));
            let chunk_edges = [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, popped + CHUNK];
            for from in [0, popped, popped + 1, pushed / 2, pushed, pushed + 5].into_iter().chain(chunk_edges) {
                let expected = deque.iter().skip(from.saturating_sub(popped));
                prop_assert!(log.iter_from(from).eq(expected), "from {}", from);
            }
            // A copy keeps what it held however the log moved on.
            for (copy, held) in copies {
                prop_assert!(copy.iter().eq(held.iter()));
            }
        }
    }

    /// A log read back from a snapshot starts where the written one did:
    /// positions go on across chunks as in the log it was written from.
    #[test]
    fn a_log_started_at_a_position_keeps_positions_from_there() {
        let mut original = Shared::default();
        for i in 0..3 * CHUNK + 7 {
            original.push_back(i);
        }
        for _ in 0..CHUNK + 5 {
            original.pop_front();
        }
        let mut copy = Shared::starting_at(original.start());
        original.iter().for_each(|&i| copy.push_back(i));
        for log in [&mut original, &mut copy] {
            log.push_back(3 * CHUNK + 7);
        }
        assert_eq!((copy.start(), copy.end(), copy.len()), (original.start(), original.end(), original.len()));
        for at in [0, CHUNK + 4, CHUNK + 5, 2 * CHUNK, 3 * CHUNK + 7, 3 * CHUNK + 8] {
            assert_eq!(copy.get(at), original.get(at), "at {at}");
            assert!(copy.iter_from(at).eq(original.iter_from(at)), "from {at}");
        }
        assert_eq!(copy.get(CHUNK + 5), Some(&(CHUNK + 5)));
    }

    /// Changed in place: every item held, forgotten ones skipped, and a
    /// copy sharing the log's chunks keeps its own items.
    #[test]
    fn a_log_changed_in_place_leaves_its_copies_as_they_were() {
        let mut log = Shared::default();
        for i in 0..2 * CHUNK + 7 {
            log.push_back(i);
        }
        let mut tail_only = Shared::default();
        for i in 0..10 {
            tail_only.push_back(i);
        }
        for _ in 0..5 {
            log.pop_front();
        }
        for _ in 0..3 {
            tail_only.pop_front();
        }
        for log in [log, tail_only] {
            let copy = log.clone();
            let mut changed = log;
            changed.for_each_mut(|i| *i += 1_000_000);
            assert!(changed.iter().eq(copy.iter().map(|i| i + 1_000_000).collect::<Vec<_>>().iter()));
            assert_eq!((changed.start(), changed.end()), (copy.start(), copy.end()));
            assert_eq!(copy.iter().next(), copy.get(copy.start()), "the copy is untouched");
            assert!(copy.iter().all(|&i| i < 1_000_000), "the copy is untouched");
        }
    }

    #[test]
    fn slots_hold_what_a_vector_does_across_chunks() {
        let mut slots: Slots<u64> = Slots::with_len(3);
        assert_eq!(slots.chunks[0].len(), 3, "a few slots cost a few slots");
        let mut vector = vec![0u64; 3];
        for (i, len) in [(2, 3), (SLOTS_CHUNK, SLOTS_CHUNK + 1), (3 * SLOTS_CHUNK + 5, 3 * SLOTS_CHUNK + 6), (7, 10)] {
            slots.grow_to(len);
            if vector.len() < len {
                vector.resize(len, 0);
            }
            slots[i] = i as u64 + 1;
            vector[i] = i as u64 + 1;
        }
        assert_eq!(slots.len(), vector.len());
        assert_eq!((slots.get(vector.len()), slots.get(SLOTS_CHUNK)), (None, Some(&(SLOTS_CHUNK as u64 + 1))));
        for v in slots.iter_mut() {
            *v *= 2;
        }
        let doubled: Vec<u64> = vector.iter().map(|v| v * 2).collect();
        assert_eq!(slots.clone().into_iter().collect::<Vec<_>>(), doubled);
        assert_eq!((0..slots.len()).map(|i| slots[i]).collect::<Vec<_>>(), doubled);
    }

    proptest! {
        /// Pieces keep what a vector keeps, in its order, through pushes
        /// and thinnings (over several pieces, down to none).
        #[test]
        fn pieces_hold_what_a_vector_does(rounds in prop::collection::vec((0..3 * PIECE, 1u64..5), 1..5)) {
            let mut pieces = Pieces::default();
            let mut vector = Vec::new();
            let mut next = 0u64;
            for (pushes, modulus) in rounds {
                for _ in 0..pushes {
                    pieces.push(next);
                    vector.push(next);
                    next += 1;
                }
                // Thinned, and each kept item changed as it is kept.
                let keep = |v: &mut u64| { *v += 1_000_000; !v.is_multiple_of(modulus) };
                pieces.retain_mut(keep);
                vector.retain_mut(keep);
                prop_assert_eq!(pieces.len(), vector.len());
                prop_assert!(pieces.pieces.iter().all(|p| !p.is_empty() && p.len() <= PIECE && p.capacity() <= PIECE));
            }
            prop_assert_eq!(pieces.is_empty(), vector.is_empty());
            prop_assert_eq!(pieces.into_iter().collect::<Vec<_>>(), vector);
        }
    }

    /// Pushed slots, over several chunks and after slots grown by length,
    /// are where a vector has them; every chunk but the last is full, whole
    /// from the start after the first.
    #[test]
    fn slots_pushed_hold_what_a_vector_does() {
        let mut slots: Slots<u64> = Slots::default();
        let mut vector = Vec::new();
        for i in 0..2 * SLOTS_CHUNK as u64 + 7 {
            slots.push(i);
            vector.push(i);
        }
        slots.grow_to(slots.len() + 2);
        vector.extend([0, 0]);
        slots.push(9);
        vector.push(9);
        assert_eq!(slots.len(), vector.len());
        assert_eq!((0..slots.len()).map(|i| slots[i]).collect::<Vec<_>>(), vector);
        let (last, full) = slots.chunks.split_last().unwrap();
        assert!(full.iter().all(|c| c.len() == SLOTS_CHUNK) && last.len() == 10);
        assert!(full[1..].iter().chain([last]).all(|c| c.capacity() == SLOTS_CHUNK), "later chunks are whole");
    }

    /// Slots made with room (none, part of a chunk, more than a chunk)
    /// hold what a vector does as they are pushed past it, every chunk but
    /// the last full.
    #[test]
    fn slots_made_with_room_hold_what_a_vector_does() {
        for room in [0, 5, SLOTS_CHUNK + 3] {
            let mut slots: Slots<u64> = Slots::with_room(room);
            assert!(slots.is_empty());
            let vector: Vec<u64> = (0..2 * SLOTS_CHUNK as u64 + 7).collect();
            for &i in &vector {
                slots.push(i);
            }
            assert_eq!((0..slots.len()).map(|i| slots[i]).collect::<Vec<_>>(), vector, "room {room}");
            let (last, full) = slots.chunks.split_last().unwrap();
            assert!(full.iter().all(|c| c.len() == SLOTS_CHUNK) && last.len() == 7, "room {room}");
        }
    }

    proptest! {
        /// Values by id (ids over several chunks, set, replaced, removed)
        /// are what a map by id holds.
        #[test]
        fn by_id_holds_what_a_map_does(ops in prop::collection::vec((0u64..(3 * SLOTS_CHUNK as u64), any::<Option<u8>>()), 0..300)) {
            let mut by_id = ById::default();
            let mut map = HashMap::new();
            for (id, op) in ops {
                match op {
                    Some(v) => prop_assert_eq!(by_id.insert(id, v), map.insert(id, v)),
                    None => prop_assert_eq!(by_id.remove(id), map.remove(&id)),
                }
            }
            for id in 0..3 * SLOTS_CHUNK as u64 + 2 {
                prop_assert_eq!(by_id.get(id), map.get(&id));
            }
        }
    }
}
