//! Scheduling priority of a pipeline's threads: one that has slack runs at
//! a lower priority, so that the cores go first to the thread the others
//! wait for.

/// Lowers the calling thread's priority by `steps` nice steps (to at most
/// 19). On Linux a thread's nice value is its own (the process's other
/// threads keep theirs); elsewhere nothing changes. Lowering one's own
/// priority needs no privilege; if it fails all the same, the thread runs
/// on as it was.
pub fn lower_this_thread(steps: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpriority and setpriority read no memory of ours; `0`
        // names the calling thread. (-1 from getpriority can be a nice value
        // or an error; either way `steps` above it is lower.)
        #[allow(unsafe_code)]
        let rc = unsafe {
            let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            libc::setpriority(libc::PRIO_PROCESS, 0, (nice + steps).min(19))
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "a thread keeps its priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = steps;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::lower_this_thread;

    /// The calling thread's nice value, from its /proc stat (field 19).
    fn nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("a thread's stat");
        let after_name = &stat[stat.rfind(')').expect("the name's end") + 1..];
        after_name.split_whitespace().nth(16).and_then(|f| f.parse().ok()).expect("the nice field")
    }

    #[test]
    fn a_thread_lowers_its_own_priority_and_no_other() {
        let before = nice();
        let inside = std::thread::spawn(|| {
            lower_this_thread(3);
            nice()
        })
        .join()
        .expect("the thread");
        assert_eq!(inside, (before + 3).min(19));
        assert_eq!(nice(), before, "only the thread that asked is lowered");
    }
}
