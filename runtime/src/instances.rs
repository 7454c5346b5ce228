//! One worker's per-instance state, by instance id, for the operators that
//! keep their own (`keyed`, `totals`, `distinct`).
//!
//! Ids are dense (keys are interned in order of arrival) and an operator's
//! exchange gives a worker the ids equal to its index modulo the number of
//! workers, so `id / workers` is a dense index: a state is found by one read,
//! where a hash table's probe read its control bytes and then its slot, each
//! a cache miss in a table of a million instances; and no key is stored. An
//! instance without state holds the default, which allocates nothing.

pub struct Instances<S> {
    states: Vec<S>,
    workers: u64,
}

impl<S: Default> Instances<S> {
    /// For an operator whose input is exchanged by id over `workers` workers.
    pub fn new(workers: usize) -> Self {
        Instances { states: Vec::new(), workers: workers.max(1) as u64 }
    }

    /// The state of instance `id` (the default if it has none yet).
    pub fn entry(&mut self, id: u64) -> &mut S {
        let at = (id / self.workers) as usize;
        if at >= self.states.len() {
            // Amortized: `resize_with` grows the vector at least twofold.
            self.states.resize_with(at + 1, S::default);
        }
        &mut self.states[at]
    }

    pub fn get(&self, id: u64) -> Option<&S> {
        self.states.get((id / self.workers) as usize)
    }

    /// Asks for the memory of instance `id`'s state, without waiting for it.
    pub fn prefetch(&self, id: u64) {
        if let Some(state) = self.get(id) {
            prefetch(state);
        }
    }
}

/// Asks the CPU to bring the cache line of `at` in, without waiting for it
/// (a hint: it never faults, and does nothing on other architectures).
#[allow(unsafe_code)]
pub fn prefetch<T: ?Sized>(at: &T) {
    // SAFETY: a prefetch is a hint that reads nothing and cannot fault, and
    // SSE, which it needs, is part of every x86_64.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((at as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

#[cfg(test)]
mod tests {
    use super::Instances;

    #[test]
    fn each_id_of_a_workers_share_has_its_own_state() {
        // Worker 1 of 3 gets ids 1, 4, 7, ...
        let mut instances = Instances::<u64>::new(3);
        for id in (1..300).step_by(3) {
            *instances.entry(id) += id;
        }
        for id in (1..300).step_by(3) {
            assert_eq!(*instances.entry(id), id);
        }
        assert_eq!(*instances.entry(3001), 0, "an id not seen has the default");
    }
}
