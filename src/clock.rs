//! The source of "now": the system clock in production, a hand-moved clock in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tells the current time. Injected wherever the library compares against "now"
/// (timestamp tolerance today), so that boundaries can be tested exactly.
///
/// ```
/// use webhook_inbox::{Clock, ManualClock, SystemClock};
///
/// assert!(SystemClock.unix_seconds() > 1_600_000_000);
/// let clock = ManualClock::at_unix(1_614_265_330);
/// assert_eq!(clock.unix_seconds(), 1_614_265_330);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use webhook_inbox::{Clock, SystemClock};
    ///
    /// assert!(SystemClock.now() <= SystemTime::now());
    /// ```
    fn now(&self) -> SystemTime;

    /// The current time in whole seconds since the Unix epoch (negative before it).
    ///
    /// ```
    /// use webhook_inbox::{Clock, ManualClock};
    ///
    /// assert_eq!(ManualClock::at_unix(-5).unix_seconds(), -5);
    /// ```
    fn unix_seconds(&self) -> i64 {
        match self.now().duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            Err(before) => {
                let d = before.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                // -1.5 s is second -2: round towards negative infinity.
                -secs - i64::from(d.subsec_nanos() > 0)
            }
        }
    }
}

/// `t` in whole milliseconds since the Unix epoch (negative before it),
/// saturating at the ends of `i64`.
pub(crate) fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Inverse of [`unix_millis`].
pub(crate) fn from_unix_millis(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
    .unwrap_or(UNIX_EPOCH)
}

/// The operating system's wall clock. The default everywhere.
///
/// ```
/// use webhook_inbox::{Clock, SystemClock};
///
/// let a = SystemClock.now();
/// assert!(SystemClock.now() >= a);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// On Linux, the coarse wall clock: the kernel's time at its last tick (a
    /// few milliseconds behind at most), read without the fine clock's
    /// hardware counter — whole seconds are all a timestamp check needs, and
    /// it is on the path of every verification.
    #[cfg(target_os = "linux")]
    fn unix_seconds(&self) -> i64 {
        rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse).tv_sec
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// Use it in tests to put "now" exactly at a timestamp boundary.
///
/// ```
/// use std::time::Duration;
/// use webhook_inbox::{Clock, ManualClock};
///
/// let clock = ManualClock::at_unix(1_000);
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(300));
/// assert_eq!(shared.unix_seconds(), 1_300);
/// clock.set_unix(42);
/// assert_eq!(shared.unix_seconds(), 42);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    unix_millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `secs` seconds after the Unix epoch.
    ///
    /// ```
    /// use webhook_inbox::{Clock, ManualClock};
    ///
    /// assert_eq!(ManualClock::at_unix(7).unix_seconds(), 7);
    /// ```
    pub fn at_unix(secs: i64) -> Self {
        Self {
            unix_millis: Arc::new(AtomicI64::new(secs.saturating_mul(1000))),
        }
    }

    /// Moves the clock (and every clone of it) to `secs` seconds after the Unix epoch.
    ///
    /// ```
    /// use webhook_inbox::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::at_unix(7);
    /// clock.set_unix(9);
    /// assert_eq!(clock.unix_seconds(), 9);
    /// ```
    pub fn set_unix(&self, secs: i64) {
        self.unix_millis
            .store(secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Moves the clock (and every clone of it) forward by `by`, to the millisecond.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::at_unix(0);
    /// clock.advance(Duration::from_millis(2_500));
    /// assert_eq!(clock.unix_seconds(), 2);
    /// ```
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.unix_millis.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn unix_seconds(&self) -> i64 {
        self.unix_millis.load(Ordering::SeqCst).div_euclid(1000)
    }

    fn now(&self) -> SystemTime {
        let ms = self.unix_millis.load(Ordering::SeqCst);
        let magnitude = Duration::from_millis(ms.unsigned_abs());
        let moved = if ms >= 0 {
            UNIX_EPOCH.checked_add(magnitude)
        } else {
            UNIX_EPOCH.checked_sub(magnitude)
        };
        moved.unwrap_or(UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_fractions_round_down() {
        let clock = ManualClock::at_unix(-1);
        clock.advance(Duration::from_millis(500));
        assert_eq!(clock.unix_seconds(), -1);
    }
}
