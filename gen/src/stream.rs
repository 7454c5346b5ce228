//! The output side both generators share: lines assembled in one buffer and
//! handed to the writer in large chunks, the count of what was written, the
//! duplicates waiting to be re-sent, and the event times with their ~1% of
//! late arrivals.

use std::io::{self, Write};

use crate::json::push_i64;
use crate::rng::Rng;
use crate::time::{TimestampWriter, MS_PER_DAY, MS_PER_SECOND};
use crate::GenStats;

/// Hand the buffer to the writer once it holds this much.
const FLUSH_AT: usize = 1 << 16;

/// Per million events: late arrivals, re-sent duplicates, and (written by
/// each generator) attribute changes.
const LATE_PPM: u64 = 10_000;
const DUPLICATE_PPM: u64 = 1_000;
pub(crate) const UPDATE_PPM: u64 = 5_000;
/// A duplicate is re-sent within this many events of the original.
const DUPLICATE_MAX_DELAY: u64 = 5_000;
/// A late event's time is up to this far behind the newest event time sent so far.
const LATE_MAX_MS: u64 = 3 * MS_PER_DAY as u64;

/// How an event's `at` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtForm {
    /// `"2026-11-19T10:00:00.123Z"`
    Millis,
    /// `"2026-11-19T10:00:00Z"` (the time is a whole second)
    Seconds,
    /// `1795082400123`
    EpochMs,
}

struct Pending {
    due: u64,
    line: Vec<u8>,
}

pub(crate) struct Stream {
    /// The line being assembled, after any whole lines not yet written.
    pub(crate) buf: Vec<u8>,
    pub(crate) stats: GenStats,
    timestamps: TimestampWriter,
    /// Duplicates waiting to be re-sent, in the order they were scheduled.
    pending: Vec<Pending>,
    /// The newest event time sent so far (late events excepted).
    watermark: Option<i64>,
}

impl Stream {
    pub(crate) fn new() -> Stream {
        Stream {
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            stats: GenStats::default(),
            timestamps: TimestampWriter::default(),
            pending: Vec::new(),
            watermark: None,
        }
    }

    /// Ends the line in `buf`, writing the buffer out once it is large.
    pub(crate) fn end_line(&mut self, out: &mut impl Write) -> io::Result<()> {
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH_AT {
            out.write_all(&self.buf)?;
            self.stats.bytes += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes out the rest and flushes `out`: what was written in all.
    pub(crate) fn finish(mut self, out: &mut impl Write) -> io::Result<GenStats> {
        self.resend_due(u64::MAX, out)?;
        out.write_all(&self.buf)?;
        self.stats.bytes += self.buf.len() as u64;
        out.flush()?;
        Ok(self.stats)
    }

    /// Counts the event line that starts at `start` in `buf` and, for ~0.1%
    /// of events, keeps a copy to re-send a few thousand events later.
    pub(crate) fn event_written(&mut self, start: usize, rng: &mut Rng) {
        if rng.chance_ppm(DUPLICATE_PPM) {
            let line = self.buf[start..].to_vec();
            let due = self.stats.events + rng.between(1, DUPLICATE_MAX_DELAY);
            self.pending.push(Pending { due, line });
        }
        self.stats.events += 1;
    }

    /// Re-sends the duplicates due by event `now` (all of them at `u64::MAX`).
    pub(crate) fn resend_due(&mut self, now: u64, out: &mut impl Write) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if now == u64::MAX {
            // End of stream: send the rest in the order they fall due.
            self.pending.sort_by_key(|p| p.due);
        }
        let mut k = 0;
        while k < self.pending.len() {
            if self.pending[k].due <= now {
                let duplicate = self.pending.remove(k);
                self.buf.extend_from_slice(&duplicate.line);
                self.stats.duplicates += 1;
                self.end_line(out)?;
            } else {
                k += 1;
            }
        }
        Ok(())
    }

    /// Decides an event's `at`: usually its clock time `t`; for ~1% of events a
    /// time up to three days behind the newest time already sent (a late arrival).
    pub(crate) fn event_time(&mut self, t: i64, rng: &mut Rng) -> (i64, AtForm) {
        let mut form = match rng.below(100) {
            0..=9 => AtForm::EpochMs,
            10..=11 => AtForm::Seconds,
            _ => AtForm::Millis,
        };
        let mut at = t;
        let mut late = false;
        if let Some(watermark) = self.watermark {
            if rng.chance_ppm(LATE_PPM) {
                at = watermark - 1 - rng.below(LATE_MAX_MS) as i64;
                late = true;
            }
        }
        if form == AtForm::Seconds {
            let whole = at - at.rem_euclid(MS_PER_SECOND);
            // Rounding down must not make an on-time event look late.
            if late || self.watermark.is_none_or(|w| whole >= w) {
                at = whole;
            } else {
                form = AtForm::Millis;
            }
        }
        if late {
            self.stats.late += 1;
        } else {
            self.watermark = Some(self.watermark.map_or(at, |w| w.max(at)));
        }
        (at, form)
    }

    /// Appends `at` as a JSON value in `form`.
    pub(crate) fn push_at(&mut self, at: i64, form: AtForm) {
        match form {
            AtForm::EpochMs => push_i64(&mut self.buf, at),
            AtForm::Millis | AtForm::Seconds => self.push_timestamp(at, form == AtForm::Millis),
        }
    }

    /// Appends a timestamp as an RFC 3339 string (`millis` false: the caller
    /// passes a whole second).
    pub(crate) fn push_timestamp(&mut self, ms: i64, millis: bool) {
        self.buf.push(b'"');
        self.timestamps.write(&mut self.buf, ms, millis);
        self.buf.push(b'"');
    }
}
