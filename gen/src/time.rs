//! Civil dates and RFC 3339 timestamps, by hand.
//!
//! Days are counted in a calendar shifted to start on 1 March, so the leap day is
//! the last day of its year and month lengths follow the repeating 31-30-31-30-31
//! pattern (`(153·m + 2) / 5` gives the first day of shifted month `m`). 400
//! Gregorian years are exactly 146 097 days, which makes the arithmetic exact for
//! any year, before or after 1970.

pub(crate) const MS_PER_SECOND: i64 = 1_000;
pub(crate) const MS_PER_HOUR: i64 = 3_600_000;
pub(crate) const MS_PER_DAY: i64 = 86_400_000;

/// Days from 1970-01-01 to 0000-03-01 in the proleptic Gregorian calendar.
const EPOCH_SHIFT: i64 = 719_468;
const DAYS_PER_400_YEARS: i64 = 146_097;

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1..=12); the
/// inverse of [`civil_from_days`], used to check it.
#[cfg(test)]
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let month = i64::from(month);
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let shifted_month = (month + 9) % 12; // March = 0 … February = 11
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_400_YEARS + day_of_era - EPOCH_SHIFT
}

/// The date `(year, month, day)` of a day counted from 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + EPOCH_SHIFT;
    let era = z.div_euclid(DAYS_PER_400_YEARS);
    let day_of_era = z.rem_euclid(DAYS_PER_400_YEARS);
    // Subtract the leap days seen so far (every 4 years, not every 100, every 400).
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// Day of the week of a day counted from 1970-01-01: 0 = Monday … 6 = Sunday.
pub(crate) fn weekday(days: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (days + 3).rem_euclid(7) as u32
}

/// Writes RFC 3339 UTC timestamps (`2026-11-19T10:00:00.123Z`), caching the date
/// part because consecutive events mostly fall on the same day.
#[derive(Debug)]
pub(crate) struct TimestampWriter {
    cached_day: i64,
    date: Vec<u8>,
}

impl Default for TimestampWriter {
    fn default() -> Self {
        TimestampWriter { cached_day: i64::MIN, date: Vec::with_capacity(16) }
    }
}

impl TimestampWriter {
    /// Appends the timestamp at epoch milliseconds `ms`, without quotes. With
    /// `millis` false the fraction is left out (the caller passes whole seconds).
    pub(crate) fn write(&mut self, buf: &mut Vec<u8>, ms: i64, millis: bool) {
        let day = ms.div_euclid(MS_PER_DAY);
        let ms_of_day = ms.rem_euclid(MS_PER_DAY);
        if day != self.cached_day {
            self.cached_day = day;
            self.date.clear();
            let (year, month, dom) = civil_from_days(day);
            if (0..=9999).contains(&year) {
                push_padded(&mut self.date, year as u64, 4);
            } else {
                // Outside RFC 3339's range; still written unambiguously.
                if year < 0 {
                    self.date.push(b'-');
                }
                push_padded(&mut self.date, year.unsigned_abs(), 4);
            }
            self.date.push(b'-');
            push_two(&mut self.date, month);
            self.date.push(b'-');
            push_two(&mut self.date, dom);
            self.date.push(b'T');
        }
        buf.extend_from_slice(&self.date);
        let seconds = ms_of_day / MS_PER_SECOND;
        push_two(buf, (seconds / 3600) as u32);
        buf.push(b':');
        push_two(buf, (seconds / 60 % 60) as u32);
        buf.push(b':');
        push_two(buf, (seconds % 60) as u32);
        if millis {
            buf.push(b'.');
            push_padded(buf, (ms_of_day % MS_PER_SECOND) as u64, 3);
        }
        buf.push(b'Z');
    }
}

/// Appends `v` in decimal, zero-padded on the left to at least `width` digits.
pub(crate) fn push_padded(buf: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    for _ in len..width {
        buf.push(b'0');
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends `v` (0..=99) as exactly two digits.
pub(crate) fn push_two(buf: &mut Vec<u8>, v: u32) {
    debug_assert!(v < 100);
    buf.push(b'0' + (v / 10) as u8);
    buf.push(b'0' + (v % 10) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(ms: i64, millis: bool) -> String {
        let mut buf = Vec::new();
        TimestampWriter::default().write(&mut buf, ms, millis);
        String::from_utf8(buf).unwrap()
    }

    /// Month lengths the slow way, to check the closed-form arithmetic against.
    fn days_in_month(year: i64, month: u32) -> u32 {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 11, 20), 20_777);
        assert_eq!(days_from_civil(2026, 11, 20) * MS_PER_DAY, 1_795_132_800_000);
        assert_eq!(days_from_civil(2026, 11, 20) * MS_PER_DAY, crate::DEFAULT_END_MS);
        assert_eq!(format(1_795_132_800_000, true), "2026-11-20T00:00:00.000Z");
        assert_eq!(format(0, true), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(-1, true), "1969-12-31T23:59:59.999Z");
        assert_eq!(format(951_782_400_000, false), "2000-02-29T00:00:00Z");
        assert_eq!(format(1_709_210_096_789, true), "2024-02-29T12:34:56.789Z");
        assert_eq!(format(4_107_542_399_999, true), "2100-02-28T23:59:59.999Z");
        assert_eq!(civil_from_days(days_from_civil(2100, 3, 1)), (2100, 3, 1));
        assert_eq!(days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28), 1);
        assert_eq!(days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28), 2);
        assert_eq!(weekday(days_from_civil(2026, 11, 20)), 4); // a Friday
        assert_eq!(weekday(days_from_civil(2024, 2, 29)), 3); // a Thursday
    }

    #[test]
    fn every_day_from_1600_to_2400_round_trips() {
        let mut days = days_from_civil(1600, 1, 1);
        for year in 1600..2400 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), days, "{year}-{month}-{day}");
                    assert_eq!(civil_from_days(days), (year, month, day));
                    days += 1;
                }
            }
        }
    }

    #[test]
    fn padding() {
        let mut buf = Vec::new();
        push_padded(&mut buf, 42, 6);
        push_padded(&mut buf, 1_234_567, 3);
        push_padded(&mut buf, 0, 1);
        assert_eq!(buf, b"00004212345670");
    }
}
