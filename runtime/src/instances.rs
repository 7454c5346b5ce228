//! One worker's per-instance state, by instance id, for the operators that
//! keep their own (`keyed`, `totals`, `distinct`).
//!
//! Ids are dense (keys are interned in order of arrival) and an operator's
//! exchange gives a worker the ids equal to its index modulo the number of
//! workers, so `id / workers` is a dense index: a state is found by one read,
//! where a hash table's probe read its control bytes and then its slot, each
//! a cache miss in a table of a million instances; and no key is stored. An
//! instance without state holds the default, which allocates nothing.
//! (While few of the slots would hold a state, the states are in a hash
//! table instead: see `Form`.) The vector grows in chunks (`Slots`), where a
//! `Vec` of each operator would double, copying every state, in the same
//! batch as the entity passes a power of two of instances.

use crate::chunked::Slots;
use foldhash::HashMap;
use segflow_compiler::value::Text;

pub struct Instances<S> {
    form: Form<S>,
    /// This worker's index, and how many there are.
    worker: u64,
    workers: u64,
    /// One past the greatest index seen.
    span: usize,
    /// States not vacant, as far as `entry` and `remove` tell (it only
    /// chooses the form; `vacant` must be true only of a state equal to
    /// the default, which a table may drop).
    present: usize,
    vacant: fn(&S) -> bool,
}

/// An operator whose states cover a small part of an entity's instances (a
/// filtered aggregate over a few users of millions) would pay a slot for
/// every instance in a vector: its states are in a hash table while fewer
/// than a quarter of the slots would be used.
enum Form<S> {
    Dense(Slots<S>),
    Sparse(HashMap<u64, S>),
}

/// Below this many slots a vector is kept whatever it holds. (Few in debug
/// builds, so that the randomized reference tests use both forms.)
const SMALL: usize = if cfg!(debug_assertions) { 4 } else { 1024 };

impl<S: Default> Instances<S> {
    /// For an operator whose input is exchanged by id, `worker` of
    /// `workers`; `vacant` tells a state that holds nothing (the default).
    pub fn new(worker: usize, workers: usize, vacant: fn(&S) -> bool) -> Self {
        let workers = workers.max(1) as u64;
        Instances {
            form: Form::Dense(Slots::default()),
            worker: worker as u64 % workers,
            workers,
            span: 0,
            present: 0,
            vacant,
        }
    }

    fn index(&self, id: u64) -> usize {
        debug_assert_eq!(id % self.workers, self.worker, "an id exchanged to another worker");
        (id / self.workers) as usize
    }

    /// The state of instance `id` (the default if it has none yet).
    pub fn entry(&mut self, id: u64) -> &mut S {
        let at = self.index(id);
        self.span = self.span.max(at + 1);
        let grows = match &self.form {
            Form::Dense(states) => at >= states.len(),
            Form::Sparse(map) => !map.contains_key(&(at as u64)),
        };
        if grows {
            self.fit(self.present + 1);
        }
        match &mut self.form {
            Form::Dense(states) => {
                states.grow_to(at + 1);
                let state = &mut states[at];
                if (self.vacant)(state) {
                    self.present += 1;
                }
                state
            }
            Form::Sparse(map) => {
                if grows {
                    self.present += 1;
                }
                map.entry(at as u64).or_default()
            }
        }
    }

    /// Drops instance `id`'s state (it is vacant, or no longer needed).
    pub fn remove(&mut self, id: u64) {
        let at = self.index(id);
        match &mut self.form {
            Form::Dense(states) => {
                if let Some(state) = states.get_mut(at) {
                    // Callers empty a state before they remove it; `entry`
                    // counted it when it was vacant.
                    self.present = self.present.saturating_sub(1);
                    *state = S::default();
                }
            }
            Form::Sparse(map) => {
                map.remove(&(at as u64));
                self.present = map.len();
            }
        }
        self.fit(self.present);
    }

    pub fn get(&self, id: u64) -> Option<&S> {
        match &self.form {
            Form::Dense(states) => states.get(self.index(id)),
            Form::Sparse(map) => map.get(&(self.index(id) as u64)),
        }
    }

    /// Asks for the memory of instance `id`'s state, without waiting for it
    /// (in the vector form: a hash table's slot is not known ahead).
    pub fn prefetch(&self, id: u64) {
        if let Form::Dense(states) = &self.form {
            if let Some(state) = states.get(self.index(id)) {
                prefetch(state);
            }
        }
    }

    /// Chooses the form for `present` states over `span` slots: a vector
    /// from half used, a table below a quarter (between, the form stays).
    fn fit(&mut self, present: usize) {
        let span = self.span.max(SMALL);
        match &mut self.form {
            Form::Dense(states) if present * 4 < span && self.span > SMALL => {
                let vacant = self.vacant;
                let map = std::mem::take(states)
                    .into_iter()
                    .enumerate()
                    .filter(|(_, state)| !vacant(state))
                    .map(|(at, state)| (at as u64, state))
                    .collect::<HashMap<u64, S>>();
                self.present = map.len();
                self.form = Form::Sparse(map);
            }
            Form::Sparse(map) if present * 2 >= span || self.span <= SMALL => {
                let mut states = Slots::with_len(self.span);
                for (at, state) in std::mem::take(map) {
                    states[at as usize] = state;
                }
                self.form = Form::Dense(states);
            }
            _ => {}
        }
    }
}

/// Asks the CPU to bring the cache line of `at` in, without waiting for it
/// (a hint: it never faults, and does nothing on other architectures).
pub fn prefetch<T: ?Sized>(at: &T) {
    prefetch_address((at as *const T).cast());
}

/// Asks for a string's bytes without reading them, if it keeps them on the
/// heap (a long one: a UUID, say, written by another thread): their first
/// cache line and their last, all of a UUID's 36.
pub fn prefetch_text(text: &Text) {
    if !text.is_inline() {
        prefetch_lines(text.as_bytes(), 1);
    }
}

/// `prefetch` of the cache lines of `items`, from the first, at most
/// `most_lines` of them, and of the line where the last item ends.
pub fn prefetch_lines<T>(items: &[T], most_lines: usize) {
    let start = items.as_ptr().cast::<i8>();
    let bytes = std::mem::size_of_val(items);
    for offset in (0..bytes).step_by(CACHE_LINE).take(most_lines) {
        prefetch_address(start.wrapping_add(offset));
    }
    if bytes > 0 {
        prefetch_address(start.wrapping_add(bytes - 1));
    }
}

/// `prefetch` of both ends of `at`, for a value that may lie across two
/// cache lines.
pub fn prefetch_whole<T>(at: &T) {
    let first = (at as *const T).cast::<i8>();
    prefetch_address(first);
    prefetch_address(first.wrapping_add(std::mem::size_of::<T>().max(1) - 1));
}

/// `prefetch` of where an `Arc` keeps its counts, which a clone's
/// increment touches first (and of whatever of its value shares their
/// cache line).
pub fn prefetch_arc<T: ?Sized>(at: &std::sync::Arc<T>) {
    // The counts are the two words before the value, which starts at the
    // next multiple of its alignment: right after them up to 16.
    debug_assert!(std::mem::align_of_val(&**at) <= 2 * std::mem::size_of::<usize>());
    prefetch_address(std::sync::Arc::as_ptr(at).cast::<i8>().wrapping_sub(2 * std::mem::size_of::<usize>()));
}

/// `prefetch` of the word before `items` (a `ThinVec` keeps its length and
/// capacity in the two words before its items, in one cache line) and of
/// the first item, without reading either.
pub fn prefetch_before<T>(items: *const T) {
    let start = items.cast::<i8>();
    prefetch_address(start.wrapping_sub(std::mem::size_of::<usize>()));
    prefetch_address(start);
}

const CACHE_LINE: usize = 64;

#[allow(unsafe_code)]
fn prefetch_address(at: *const i8) {
    // SAFETY: a prefetch is a hint that reads nothing and cannot fault,
    // whatever the address, and SSE, which it needs, is part of every x86_64.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

#[cfg(test)]
mod tests {
    use super::{Form, Instances, SMALL};

    fn dense<S>(instances: &Instances<S>) -> bool {
        matches!(instances.form, Form::Dense(_))
    }

    #[test]
    fn each_id_of_a_workers_share_has_its_own_state() {
        // Worker 1 of 3 gets ids 1, 4, 7, ...
        let mut instances = Instances::<u64>::new(1, 3, |n| *n == 0);
        for id in (1..3000).step_by(3) {
            *instances.entry(id) += id;
        }
        assert!(dense(&instances));
        for id in (1..3000).step_by(3) {
            assert_eq!(instances.get(id), Some(&id));
            assert_eq!(*instances.entry(id), id);
        }
        assert_eq!(*instances.entry(30_001), 0, "an id not seen has the default");
    }

    #[test]
    fn few_states_over_many_ids_are_in_a_table_and_many_in_a_vector() {
        let mut instances = Instances::<u64>::new(0, 1, |n| *n == 0);
        // One id in a hundred: a table.
        for id in (0..100 * SMALL as u64).step_by(100) {
            *instances.entry(id) = id + 1;
        }
        assert!(!dense(&instances));
        // Every id: a vector again, with the earlier states.
        for id in 0..100 * SMALL as u64 {
            if id % 100 != 0 {
                *instances.entry(id) = id + 1;
            }
        }
        assert!(dense(&instances));
        // All but a few removed: a table, keeping the few.
        for id in 0..100 * SMALL as u64 {
            if id % 1000 != 7 {
                instances.remove(id);
            }
        }
        assert!(!dense(&instances));
        for id in 0..100 * SMALL as u64 {
            let expected = (id % 1000 == 7).then_some(id + 1);
            assert_eq!(instances.get(id).copied(), expected, "{id}");
        }
    }
}
