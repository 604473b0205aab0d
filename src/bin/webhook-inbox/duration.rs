//! Durations on the command line: a whole number and one unit, `200ms`,
//! `30s`, `15m`, `2h`, `7d`.

use std::time::Duration;

const EXPECTED: &str =
    "expected a whole number and a unit: ms, s, m, h or d (such as 200ms, 30s, 15m, 2h, 7d)";

/// Parses `200ms`, `30s`, `15m`, `2h`, `7d` (also `0s`). Refuses a missing or unknown
/// unit, fractions, signs, spaces and values too large to represent.
pub fn parse(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!("`{text}`: {EXPECTED}"));
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("`{text}` has no unit: {EXPECTED}")),
        _ => return Err(format!("`{text}`: {EXPECTED}")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Prints a duration the way [`parse`] reads it, in its largest exact unit.
pub fn display(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 {
        return format!("{}ms", d.as_millis());
    }
    match secs {
        0 => "0s".to_owned(),
        _ if secs.is_multiple_of(86_400) => format!("{}d", secs / 86_400),
        _ if secs.is_multiple_of(3600) => format!("{}h", secs / 3600),
        _ if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_read() {
        let s = Duration::from_secs;
        assert_eq!(parse("0s"), Ok(s(0)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(display(Duration::from_millis(1500)), "1500ms");
        assert_eq!(parse("30s"), Ok(s(30)));
        assert_eq!(parse("15m"), Ok(s(900)));
        assert_eq!(parse("2h"), Ok(s(7200)));
        assert_eq!(parse("7d"), Ok(s(604_800)));
        assert_eq!(parse("007d"), Ok(s(604_800)));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        for bad in [
            "", "s", "30", "30x", "30 s", " 30s", "30s ", "-5s", "+5s", "1.5h", "2hours", "1h30m",
            "5S", "٣s",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(
                err.contains("unit") || err.contains("number"),
                "{bad}: {err}"
            );
        }
        assert!(parse("30").unwrap_err().contains("no unit"));
        let huge = format!("{}d", u64::MAX / 10);
        assert!(parse(&huge).unwrap_err().contains("too large"));
        assert!(
            parse("99999999999999999999999s")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["0s", "45s", "15m", "2h", "7d", "90s", "36h"] {
            let d = parse(text).unwrap();
            assert_eq!(parse(&display(d)), Ok(d), "{text}");
        }
        assert_eq!(display(Duration::from_secs(7200)), "2h");
        assert_eq!(display(Duration::from_secs(90)), "90s");
    }
}
