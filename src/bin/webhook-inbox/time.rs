//! Times for people: UTC timestamps in RFC 3339 form, and short ages
//! (`2h 05m`), without a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, negative before it.
fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction; the fallbacks are never taken.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

fn format(t: SystemTime, millis: bool) -> String {
    let ms = unix_millis(t);
    let secs = ms.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    let (h, m, s) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    if millis {
        let frac = ms.rem_euclid(1000);
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{frac:03}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

/// Reads back what [`utc_millis`] wrote (`2026-11-28T14:00:00.123Z`).
pub fn parse_utc_millis(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 24 || !text.is_ascii() || b[23] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, s, ms) = (n(11..13)?, n(14..16)?, n(17..19)?, n(20..23)?);
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let millis = ((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + ms;
    match u64::try_from(millis) {
        Ok(m) => UNIX_EPOCH.checked_add(Duration::from_millis(m)),
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_millis(millis.unsigned_abs())),
    }
}

/// `2026-11-28T14:00:00Z`: UTC, to the second (tables and text).
pub fn utc(t: SystemTime) -> String {
    format(t, false)
}

/// `2026-11-28T14:00:00.123Z`: UTC, to the millisecond (JSON output).
pub fn utc_millis(t: SystemTime) -> String {
    format(t, true)
}

/// A short age: `350ms`, `42s`, `4m 05s`, `2h 05m`, `3d 04h`.
pub fn age(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// `in 4m 05s` or `3d 04h ago`, seen from `now`.
pub fn relative(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(ahead) => format!("in {}", age(ahead)),
        Err(behind) => format!("{} ago", age(behind.duration())),
    }
}

/// Seconds as a JSON number with millisecond precision.
pub fn secs_f64(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> SystemTime {
        match u64::try_from(secs) {
            Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
            Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()),
        }
    }

    #[test]
    fn millis_round_trip() {
        for secs in [0, 1_700_000_000, 951_782_400, 4_107_542_400, -1] {
            let t = at(secs) + Duration::from_millis(123);
            assert_eq!(parse_utc_millis(&utc_millis(t)), Some(t), "{secs}");
        }
        assert_eq!(parse_utc_millis("2026-11-28T14:00:00Z"), None);
    }

    #[test]
    fn utc_matches_known_dates() {
        assert_eq!(utc(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(utc(at(1_700_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(utc(at(951_782_400)), "2000-02-29T00:00:00Z"); // a leap day (÷400)
        // 2100 is no leap year: the second after February 28 is March 1.
        assert_eq!(utc(at(4_107_542_399)), "2100-02-28T23:59:59Z");
        assert_eq!(utc(at(4_107_542_400)), "2100-03-01T00:00:00Z");
        assert_eq!(utc(at(1_798_761_599)), "2026-12-31T23:59:59Z");
        assert_eq!(utc(at(-1)), "1969-12-31T23:59:59Z");
        assert_eq!(
            utc_millis(UNIX_EPOCH + Duration::from_millis(1_764_338_400_123)),
            "2025-11-28T14:00:00.123Z"
        );
        assert_eq!(
            utc_millis(UNIX_EPOCH - Duration::from_millis(1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // Walk day by day and check the calendar advances as it should.
        let (mut y, mut m, mut d) = (1970_i64, 1_u32, 1_u32);
        for days in 0..(400 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
    }

    #[test]
    fn ages_are_short() {
        let s = Duration::from_secs;
        assert_eq!(age(Duration::from_millis(350)), "350ms");
        assert_eq!(age(s(42)), "42s");
        assert_eq!(age(s(245)), "4m 05s");
        assert_eq!(age(s(2 * 3600 + 5 * 60 + 9)), "2h 05m");
        assert_eq!(age(s(3 * 86_400 + 4 * 3600)), "3d 04h");
        let now = at(1_000_000);
        assert_eq!(relative(at(1_000_245), now), "in 4m 05s");
        assert_eq!(relative(at(999_958), now), "42s ago");
    }
}
