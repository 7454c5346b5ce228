//! Time spent per dataflow operator, for finding what to optimise.
//!
//! With `SEGFLOW_PROFILE=operators` in the environment every worker records
//! timely's schedule events and, when it stops, prints the operators that took
//! the most time with the plan node that created them (see `segflow explain`
//! for the node numbers), every operator with `SEGFLOW_PROFILE_ALL=1` too,
//! then the time of each kind of operator summed. Off by default: logging
//! every schedule costs time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};
use timely::worker::Worker;

/// Whether operator profiling was asked for.
pub fn enabled() -> bool {
    std::env::var("SEGFLOW_PROFILE").is_ok_and(|v| v == "operators")
}

#[derive(Default)]
struct Totals {
    names: HashMap<usize, String>,
    /// Operator id -> (time scheduled, excluding operators nested inside it; schedules).
    time: HashMap<usize, (Duration, u64)>,
    /// Operators being scheduled: (id, started, time of nested operators).
    stack: Vec<(usize, Duration, Duration)>,
}

pub struct OperatorProfile {
    totals: Rc<RefCell<Totals>>,
}

impl OperatorProfile {
    /// Starts recording `worker`'s schedule events.
    pub fn install(worker: &mut Worker) -> Option<OperatorProfile> {
        let totals: Rc<RefCell<Totals>> = Rc::default();
        let sink = totals.clone();
        let mut register = worker.log_register()?;
        register.insert::<TimelyEventBuilder, _>("timely", move |_time, data| {
            let Some(events) = data else { return };
            let mut t = sink.borrow_mut();
            for (at, event) in events.iter() {
                match event {
                    TimelyEvent::Operates(op) => {
                        t.names.insert(op.id, op.name.clone());
                    }
                    TimelyEvent::Schedule(s) => match s.start_stop {
                        StartStop::Start => t.stack.push((s.id, *at, Duration::ZERO)),
                        StartStop::Stop => {
                            if let Some((id, start, nested)) = t.stack.pop() {
                                let total = at.saturating_sub(start);
                                let own = total.saturating_sub(nested);
                                let entry = t.time.entry(id).or_default();
                                entry.0 += own;
                                entry.1 += 1;
                                if let Some(parent) = t.stack.last_mut() {
                                    parent.2 += total;
                                }
                            }
                        }
                    },
                    _ => {}
                }
            }
        });
        Some(OperatorProfile { totals })
    }

    /// Prints the operators that took the most time (all of them with
    /// `SEGFLOW_PROFILE_ALL=1`), each with the plan node whose rendering
    /// created it (`nodes`: first operator id of each node), then each
    /// kind's sum.
    pub fn report(&self, worker: usize, nodes: &[(usize, usize)]) {
        let t = self.totals.borrow();
        let mut rows: Vec<(&usize, &(Duration, u64))> = t.time.iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1 .0));
        let all: Duration = rows.iter().map(|r| r.1 .0).sum();
        // One write, whose failure is ignored: a closed standard error (a
        // report piped into `head`) must not panic a worker, which would
        // leave the others waiting for it.
        let every = std::env::var("SEGFLOW_PROFILE_ALL").is_ok_and(|v| v == "1");
        let shown = if every { "every one" } else { "the most expensive" };
        let mut report = format!("segflow: worker {worker}: {:.3} s in operators; {shown}:\n", all.as_secs_f64());
        for (id, (time, schedules)) in rows.into_iter().take(if every { usize::MAX } else { 30 }) {
            let node = nodes.iter().rev().find(|(first, _)| first <= id).map(|(_, n)| format!("%{n}"));
            report.push_str(&format!(
                "  {:>8.3} s {:>5.1} % {:>8} schedules  op {id:<4} {:<6} {}\n",
                time.as_secs_f64(),
                100.0 * time.as_secs_f64() / all.as_secs_f64().max(1e-9),
                schedules,
                node.unwrap_or_default(),
                t.names.get(id).map(String::as_str).unwrap_or("?"),
            ));
        }
        // And by kind: a cost spread over many small operators (each map
        // before an exchange, say) shows only in their sum.
        let mut kinds: HashMap<&str, (Duration, usize)> = HashMap::new();
        for (id, (time, _)) in &t.time {
            let kind = kinds.entry(t.names.get(id).map(String::as_str).unwrap_or("?")).or_default();
            kind.0 += *time;
            kind.1 += 1;
        }
        let mut kinds: Vec<_> = kinds.into_iter().collect();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.1 .0));
        report.push_str("  by kind:");
        for (name, (time, operators)) in kinds {
            report.push_str(&format!(" {name} {:.3} s ({operators});", time.as_secs_f64()));
        }
        report.push('\n');
        let _ = std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes());
    }
}
