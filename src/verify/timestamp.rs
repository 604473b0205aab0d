//! The replay window: the signed timestamp, parsed strictly and checked
//! against now ± the tolerance.

use super::Verifier;
use crate::error::{HeaderProblem, VerifyError};

impl Verifier {
    /// Parses the timestamp and checks it against now ± tolerance.
    pub(super) fn check_timestamp(&self, name: &str, raw: &[u8]) -> Result<i64, VerifyError> {
        let ts = parse_unix_seconds(raw).ok_or_else(|| VerifyError::MalformedHeader {
            name: name.to_owned(),
            problem: HeaderProblem::NotATimestamp,
        })?;
        let now = self.clock.unix_seconds();
        let tolerance = i128::from(self.tolerance.as_secs().min(i64::MAX as u64) as i64);
        let age = i128::from(now) - i128::from(ts);
        let secs = |d: i128| u64::try_from(d).unwrap_or(u64::MAX);
        if age > tolerance {
            return Err(VerifyError::TimestampTooOld {
                age_secs: secs(age),
                tolerance_secs: self.tolerance.as_secs(),
            });
        }
        if -age > tolerance {
            return Err(VerifyError::TimestampInFuture {
                ahead_secs: secs(-age),
                tolerance_secs: self.tolerance.as_secs(),
            });
        }
        Ok(ts)
    }
}

/// Whole seconds since the epoch: 1 to 18 ASCII digits (no sign, no spaces).
fn parse_unix_seconds(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() || raw.len() > 18 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    raw.iter().try_fold(0i64, |acc, d| {
        acc.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_plain_digits() {
        assert_eq!(parse_unix_seconds(b"1614265330"), Some(1_614_265_330));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1.5",
            b"9999999999999999999",
            b"12x",
        ] {
            assert_eq!(parse_unix_seconds(bad), None, "{bad:?}");
        }
    }
}
