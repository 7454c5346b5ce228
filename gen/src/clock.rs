//! The event clock: when the `i`-th of `n` events happens.
//!
//! The time span is cut into hour slots, each weighted by its local (UTC+8) hour,
//! weekday, shopping festival and a slow growth trend. Laid end to end, the slots'
//! weights form a "busy-time" axis of total length `T`; event `i` gets a uniform
//! position in `[i·T/n, (i+1)·T/n)` on it and is mapped back to wall time inside its
//! slot. Positions grow with `i`, so event times never decrease, and busy hours get
//! proportionally more events. All integer arithmetic.

use crate::model::{FESTIVALS, HOUR_WEIGHTS, WEEKDAY_WEIGHTS};
use crate::rng::Rng;
use crate::time::{civil_from_days, weekday, MS_PER_DAY, MS_PER_HOUR};

const LOCAL_OFFSET_MS: i64 = 8 * MS_PER_HOUR;

#[derive(Debug)]
pub(crate) struct Clock {
    start_ms: i64,
    events: u64,
    /// Weight of each hour slot.
    weights: Vec<u64>,
    /// `starts[s]`: busy-time position (weight × ms) where slot `s` begins; one
    /// extra entry holds the total.
    starts: Vec<u64>,
    /// The slot of the previous event; events only move forward.
    cursor: usize,
}

impl Clock {
    pub(crate) fn new(end_ms: i64, days: u32, events: u64) -> Self {
        let slots = days as usize * 24;
        let start_ms = end_ms - i64::from(days) * MS_PER_DAY;
        let mut weights = Vec::with_capacity(slots);
        let mut starts = Vec::with_capacity(slots + 1);
        let mut position = 0u64;
        for slot in 0..slots {
            let local = start_ms + slot as i64 * MS_PER_HOUR + LOCAL_OFFSET_MS;
            let day = local.div_euclid(MS_PER_DAY);
            let hour = (local.rem_euclid(MS_PER_DAY) / MS_PER_HOUR) as usize;
            let (_, month, dom) = civil_from_days(day);
            let festival =
                FESTIVALS.iter().find(|&&(m, d, _)| m == month && d == dom).map_or(100, |&(_, _, percent)| percent);
            // Up to +20% growth from the first slot to the last.
            let trend = 1000 + 200 * slot as u64 / slots as u64;
            let weight = WEEKDAY_WEIGHTS[weekday(day) as usize] * festival / 100 * trend / 1000 * HOUR_WEIGHTS[hour];
            weights.push(weight);
            starts.push(position);
            position += weight * MS_PER_HOUR as u64;
        }
        starts.push(position);
        Clock { start_ms, events, weights, starts, cursor: 0 }
    }

    pub(crate) fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// The time of event `i`; call with `i` = 0, 1, 2, … in order.
    pub(crate) fn time_of(&mut self, i: u64, rng: &mut Rng) -> i64 {
        let total = *self.starts.last().unwrap_or(&0);
        let jitter = rng.below(total.max(1));
        let position =
            ((u128::from(i) * u128::from(total) + u128::from(jitter)) / u128::from(self.events.max(1))) as u64;
        while self.cursor + 1 < self.weights.len() && self.starts[self.cursor + 1] <= position {
            self.cursor += 1;
        }
        let into_slot = (position - self.starts[self.cursor]) / self.weights[self.cursor];
        self.start_ms + self.cursor as i64 * MS_PER_HOUR + into_slot as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_increase_and_stay_in_range() {
        let end = 1_795_132_800_000;
        let mut clock = Clock::new(end, 30, 50_000);
        let mut rng = Rng::new(1, 0);
        let mut last = i64::MIN;
        let mut by_local_hour = [0u32; 24];
        for i in 0..50_000 {
            let t = clock.time_of(i, &mut rng);
            assert!(t >= last, "event {i} went back in time");
            assert!(t >= end - 30 * MS_PER_DAY && t < end);
            by_local_hour[((t + LOCAL_OFFSET_MS).rem_euclid(MS_PER_DAY) / MS_PER_HOUR) as usize] += 1;
            last = t;
        }
        // 21:00 local is the busiest hour, 04:00 the quietest.
        assert!(by_local_hour[21] > 10 * by_local_hour[4], "{by_local_hour:?}");
    }
}
