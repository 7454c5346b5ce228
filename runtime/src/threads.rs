//! Running a few independent pieces of work on scoped threads.

/// `f` of each item, each on its own thread; the answers in item order. A
/// panic in any of them is raised again here, so no answer goes missing
/// silently (`map_in_order` with a thread an item).
pub fn map_on_threads<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let mut answers = Vec::with_capacity(items.len());
    let taken: Result<(), std::convert::Infallible> = map_in_order(items, items.len(), f, |answer| {
        answers.push(answer);
        Ok(())
    });
    let Ok(()) = taken;
    answers
}

/// `f` of each item on `threads` threads (item k on thread k % threads),
/// each answer handed to `consume` in item order as soon as it and those
/// before it are ready: the consumer works while later items are computed,
/// where `map_on_threads` makes it wait for all. A thread holds at most two
/// answers not yet consumed (one in its channel, one it waits to send), so
/// memory stays bounded however many items there are. Stops at the first
/// error of `consume` (the threads stop after the item each is on); a panic
/// in `f` is raised again here, so no answer goes missing silently.
pub fn map_in_order<I: Sync, T: Send, E>(
    items: &[I],
    threads: usize,
    f: impl Fn(&I) -> T + Sync,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let threads = threads.clamp(1, items.len().max(1));
    let f = &f;
    std::thread::scope(|scope| {
        let (mut answers, mut handles) = (Vec::with_capacity(threads), Vec::with_capacity(threads));
        for t in 0..threads {
            let (send, receive) = std::sync::mpsc::sync_channel(1);
            answers.push(receive);
            handles.push(scope.spawn(move || {
                for item in items.iter().skip(t).step_by(threads) {
                    if send.send(f(item)).is_err() {
                        return; // the consumer stopped
                    }
                }
            }));
        }
        let mut result = Ok(());
        for k in 0..items.len() {
            // An answer missing is a thread that panicked: raised below.
            let Ok(answer) = answers[k % threads].recv() else { break };
            if let Err(e) = consume(answer) {
                result = Err(e);
                break;
            }
        }
        drop(answers);
        for handle in handles {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::{map_in_order, map_on_threads};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn answers_are_consumed_in_item_order() {
        let items: Vec<u32> = (0..100).collect();
        for threads in [1, 2, 3, 8, 200] {
            let mut seen = Vec::new();
            // Earlier items take longer: answers become ready out of order.
            let slow_first = |&i: &u32| {
                std::thread::sleep(std::time::Duration::from_micros(u64::from(100 - i) * 20));
                i * 2
            };
            let done: Result<(), ()> = map_in_order(&items, threads, slow_first, |a| {
                seen.push(a);
                Ok(())
            });
            assert_eq!(done, Ok(()));
            assert_eq!(seen, items.iter().map(|i| i * 2).collect::<Vec<_>>(), "{threads} threads");
        }
        let none: Result<(), ()> = map_in_order(&[] as &[u32], 2, |&i| i, |_| panic!("no item"));
        assert_eq!(none, Ok(()));
    }

    #[test]
    fn a_thread_an_item_answers_in_item_order() {
        let items: Vec<u64> = (0..8).collect();
        let slow_first = |&i: &u64| {
            std::thread::sleep(std::time::Duration::from_millis(8 - i));
            i * 3
        };
        assert_eq!(map_on_threads(&items, slow_first), [0, 3, 6, 9, 12, 15, 18, 21]);
        assert!(map_on_threads(&[] as &[u64], |&i| i).is_empty());
    }

    #[test]
    fn the_first_error_stops_the_consumer_and_the_threads() {
        let items: Vec<u32> = (0..1000).collect();
        let computed = AtomicUsize::new(0);
        let mut seen = 0;
        let f = |&i: &u32| {
            computed.fetch_add(1, Ordering::Relaxed);
            i
        };
        let done = map_in_order(&items, 2, f, |a| {
            seen += 1;
            if a == 10 {
                Err(a)
            } else {
                Ok(())
            }
        });
        assert_eq!((done, seen), (Err(10), 11));
        // Each thread computes at most the answer in its channel, the one it
        // waits to send and the one it is on when the consumer stops.
        let computed = computed.load(Ordering::Relaxed);
        assert!(computed <= 11 + 2 * 3, "{computed} answers computed after an error at the 11th");
    }

    #[test]
    #[should_panic(expected = "item 7")]
    fn a_panic_in_a_thread_is_raised_again() {
        let items: Vec<u32> = (0..50).collect();
        let _: Result<(), ()> = map_in_order(&items, 2, |&i| if i == 7 { panic!("item 7") } else { i }, |_| Ok(()));
    }

    #[test]
    #[should_panic(expected = "consumer")]
    fn a_panic_in_the_consumer_leaves_no_thread_waiting() {
        // The threads are blocked sending the answers after the first when
        // the consumer panics: the call must raise it, not hang.
        let items: Vec<u32> = (0..1000).collect();
        let _: Result<(), ()> = map_in_order(&items, 2, |&i| i, |_| panic!("consumer"));
    }
}
