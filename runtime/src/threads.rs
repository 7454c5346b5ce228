//! Running a few independent pieces of work on scoped threads.

/// `f` of each item, each on its own thread; the answers in item order. A
/// panic in any of them is raised again here, so no answer goes missing
/// silently.
pub fn map_on_threads<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.iter().map(|item| scope.spawn(move || f(item))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}
