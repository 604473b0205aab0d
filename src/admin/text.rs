//! Text for the admin layer: UTC times, HTML escaping, bodies for display,
//! and the JSON shapes the CLI's `--json` prints.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};

use super::body_view::{hex_dump, reindent};
use crate::events::{EventState, StoredEvent};

fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-28T14:00:00.123Z` (`millis`) or `2026-11-28T14:00:00Z`.
pub(crate) fn utc(t: SystemTime, millis: bool) -> String {
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

/// Parses `YYYY-MM-DDTHH:MM[:SS][Z]` (UTC; what a `datetime-local` input
/// sends) or whole seconds since the epoch.
pub(crate) fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)));
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    if text.len() > 19 || !text.is_ascii() {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let sep = |i: usize, c: u8| text.as_bytes().get(i) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && (sep(10, b'T') || sep(10, b' ')) && sep(13, b':')) {
        return None;
    }
    let (year, month, day, hour, minute) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
    );
    let second = match text.len() {
        16 => 0,
        19 if sep(16, b':') => num(17..19)?,
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(secs)
        .ok()
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
}

/// A short age: `350ms`, `42s`, `4m 05s`, `2h 05m`, `3d 04h`.
pub(crate) fn age(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// Seconds as a JSON number with millisecond precision.
pub(crate) fn secs_f64(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

/// Escapes text for HTML element content and quoted attribute values; other
/// control characters than newline and tab are shown as `\u{…}` escapes, so
/// nothing a sender wrote can open a tag, end an attribute or hide itself.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters, for query values.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Header values that carry credentials are shown as this.
pub(crate) const REDACTED: &str = "[redacted]";

/// The event as the CLI's `--json` prints it; `full` adds headers and body
/// (text when UTF-8, else base64, saying which in `body_encoding`). Header
/// values `redact` names are replaced by [`REDACTED`].
pub(crate) fn event_json(e: &StoredEvent, full: bool, redact: &dyn Fn(&str) -> bool) -> Value {
    let at = |t: Option<SystemTime>| t.map(|t| utc(t, true));
    let mut object = json!({
        "seq": e.seq,
        "source": e.source,
        "id": e.id,
        "type": e.event_type,
        "state": e.state.to_string(),
        "attempts": e.attempts,
        "received_at": utc(e.received_at, true),
        "next_attempt": at(e.next_attempt),
        "dead_at": at(e.dead_at),
        "last_error": e.errors.last().map(|a| a.error.as_str()),
        "errors": e.errors.iter().map(|a| json!({
            "attempt": a.attempt,
            "at": utc(a.at, true),
            "error": a.error,
        })).collect::<Vec<_>>(),
    });
    if full && let Value::Object(map) = &mut object {
        let headers = e
            .headers
            .iter()
            .map(|(name, value)| {
                let value = if redact(name) {
                    REDACTED
                } else {
                    value.as_str()
                };
                json!({ "name": name, "value": value })
            })
            .collect();
        map.insert("headers".into(), Value::Array(headers));
        let (encoding, body) = match std::str::from_utf8(&e.body) {
            Ok(text) => ("utf-8", text.to_owned()),
            Err(_) => (
                "base64",
                base64::engine::general_purpose::STANDARD.encode(&e.body),
            ),
        };
        map.insert("body_encoding".into(), Value::from(encoding));
        map.insert("body".into(), Value::from(body));
    }
    object
}

/// When the event is next due (retrying) or since when it is dead.
pub(crate) fn next_or_dead(e: &StoredEvent) -> Option<SystemTime> {
    match e.state {
        EventState::Dead => e.dead_at,
        _ => e.next_attempt,
    }
}

/// The body for display, with what it is: JSON re-indented (the sender's
/// key order and digits kept), other text as is, other bytes as a hex dump.
/// The caller escapes it.
pub(crate) fn body_text(body: &[u8]) -> (&'static str, String) {
    if body.is_empty() {
        return ("empty", String::new());
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
        && let Ok(text) = std::str::from_utf8(body)
    {
        return ("JSON", reindent(text));
    }
    match std::str::from_utf8(body) {
        Ok(text) => ("text", text.to_owned()),
        Err(_) => ("not UTF-8, shown as hex", hex_dump(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_shows_controls() {
        let hostile =
            "\"><img src=x onerror=alert(1)></textarea><script>alert(2)</script>\u{1b}[2J\u{202e}";
        let out = esc(hostile);
        assert!(
            !out.contains(['<', '>', '"', '\'', '\u{1b}', '\u{202e}']),
            "{out}"
        );
        assert!(
            out.contains("&lt;script&gt;") && out.contains("\\u{1b}") && out.contains("\\u{202e}")
        );
    }

    #[test]
    fn times_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(utc(t, false), "2023-11-14T22:13:20Z");
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(t));
        assert_eq!(
            parse_time("2023-11-14T22:13"),
            Some(t - Duration::from_secs(20))
        );
        assert_eq!(parse_time("1700000000"), Some(t));
        for bad in [
            "",
            "yesterday",
            "2023-13-01T00:00",
            "2023-11-14T22:13:20+01:00",
            "２０２３",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn urls_encode_everything_reserved() {
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
