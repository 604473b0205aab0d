//! When a failed event is tried again: exponential backoff with full jitter, or a fixed ladder.

use std::time::Duration;

/// A retry schedule: how long to wait before attempt `n + 1` after attempt `n`
/// failed, and when to give up (the event then goes to the dead letters).
///
/// ```
/// use std::time::Duration;
/// use webhook_inbox::{Backoff, Jitter};
///
/// let ladder = Backoff::bluum();
/// let mut rng = Jitter::seeded(7);
/// assert_eq!(ladder.delay_after(1, &mut rng), Some(Duration::from_secs(60)));
/// assert_eq!(ladder.delay_after(5, &mut rng), Some(Duration::from_secs(8 * 3600)));
/// assert_eq!(ladder.delay_after(6, &mut rng), None); // six attempts made: give up
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backoff {
    /// Exponential with full jitter: after attempt `n`, wait a uniformly random
    /// time in `[0, min(cap, base × 2^(n-1))]`; give up after `max_attempts`.
    Exponential {
        /// The ceiling of the first wait.
        base: Duration,
        /// The largest ceiling.
        cap: Duration,
        /// Attempts in all, the first included.
        max_attempts: u32,
    },
    /// Fixed waits: after attempt `n`, wait `delays[n-1]`; give up once every
    /// delay has been used (so `delays.len() + 1` attempts in all).
    Ladder {
        /// The waits, in order.
        delays: Vec<Duration>,
    },
}

impl Backoff {
    /// Exponential backoff with full jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::{Backoff, Jitter};
    ///
    /// let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60), 10);
    /// let wait = b.delay_after(3, &mut Jitter::seeded(1)).unwrap();
    /// assert!(wait <= Duration::from_secs(4));
    /// ```
    pub fn exponential(base: Duration, cap: Duration, max_attempts: u32) -> Self {
        Self::Exponential {
            base,
            cap,
            max_attempts,
        }
    }

    /// A fixed ladder of waits.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::{Backoff, Jitter};
    ///
    /// let b = Backoff::ladder([Duration::from_secs(5), Duration::from_secs(30)]);
    /// assert_eq!(b.max_attempts(), 3);
    /// assert_eq!(b.delay_after(2, &mut Jitter::seeded(0)), Some(Duration::from_secs(30)));
    /// ```
    pub fn ladder(delays: impl IntoIterator<Item = Duration>) -> Self {
        Self::Ladder {
            delays: delays.into_iter().collect(),
        }
    }

    /// Bluum's own retry ladder: 1 min, 5 min, 30 min, 2 h, 8 h.
    ///
    /// ```
    /// use webhook_inbox::Backoff;
    ///
    /// assert_eq!(Backoff::bluum().max_attempts(), 6);
    /// ```
    pub fn bluum() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self::ladder([
            minutes(1),
            minutes(5),
            minutes(30),
            minutes(120),
            minutes(480),
        ])
    }

    /// Attempts in all, the first included.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::Backoff;
    ///
    /// let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(8), 4);
    /// assert_eq!(b.max_attempts(), 4);
    /// ```
    pub fn max_attempts(&self) -> u32 {
        match self {
            Self::Exponential { max_attempts, .. } => *max_attempts,
            Self::Ladder { delays } => u32::try_from(delays.len())
                .unwrap_or(u32::MAX)
                .saturating_add(1),
        }
    }

    /// How long to wait after attempt `attempt` (counted from 1) failed, or
    /// `None` when no attempt is left.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::{Backoff, Jitter};
    ///
    /// let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1), 3);
    /// let mut rng = Jitter::seeded(42);
    /// assert!(b.delay_after(1, &mut rng).is_some());
    /// assert!(b.delay_after(3, &mut rng).is_none());
    /// ```
    pub fn delay_after(&self, attempt: u32, rng: &mut Jitter) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts() {
            return None;
        }
        match self {
            Self::Ladder { delays } => delays.get(usize::try_from(attempt - 1).ok()?).copied(),
            Self::Exponential { base, cap, .. } => {
                let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
                let ceiling = base.saturating_mul(factor).min(*cap);
                let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
                Some(Duration::from_nanos(rng.below_inclusive(nanos)))
            }
        }
    }
}

/// The random source of backoff jitter: a small, fast generator (SplitMix64),
/// seeded for deterministic tests or from the clock and process in production.
/// Not for anything secret.
///
/// ```
/// use webhook_inbox::Jitter;
///
/// let (mut a, mut b) = (Jitter::seeded(9), Jitter::seeded(9));
/// assert_eq!(a.below_inclusive(1000), b.below_inclusive(1000));
/// ```
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator whose sequence is fixed by `seed`.
    ///
    /// ```
    /// use webhook_inbox::Jitter;
    ///
    /// assert!(Jitter::seeded(1).below_inclusive(10) <= 10);
    /// ```
    pub fn seeded(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator seeded from the std library's per-process random hasher keys.
    ///
    /// ```
    /// use webhook_inbox::Jitter;
    ///
    /// let _ = Jitter::from_entropy().below_inclusive(5);
    /// ```
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        Self::seeded(h.finish())
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniformly distributed number in `0..=max`.
    ///
    /// ```
    /// use webhook_inbox::Jitter;
    ///
    /// let mut rng = Jitter::seeded(3);
    /// assert!((0..100).all(|_| rng.below_inclusive(7) <= 7));
    /// ```
    pub fn below_inclusive(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        // Multiply-shift: maps 64 random bits onto 0..=max without modulo bias worth speaking of.
        ((u128::from(self.next_u64()) * (u128::from(max) + 1)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_ceilings_double_up_to_the_cap_and_jitter_fills_them() {
        let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(10), 20);
        let mut rng = Jitter::seeded(5);
        for (attempt, ceiling) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (19, 10)] {
            let waits: Vec<Duration> = (0..500)
                .map(|_| b.delay_after(attempt, &mut rng).unwrap())
                .collect();
            let top = Duration::from_secs(ceiling);
            assert!(waits.iter().all(|w| *w <= top), "attempt {attempt}");
            // Full jitter: the waits spread over the whole range.
            assert!(waits.iter().any(|w| *w < top / 4) && waits.iter().any(|w| *w > top * 3 / 4));
        }
        assert_eq!(b.delay_after(20, &mut rng), None);
        assert_eq!(b.delay_after(0, &mut rng), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let b = Backoff::exponential(Duration::from_millis(10), Duration::from_secs(60), 30);
        let run = |seed| {
            let mut rng = Jitter::seeded(seed);
            (1..30)
                .map(|n| b.delay_after(n, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(11), run(11));
        assert_ne!(run(11), run(12));
    }

    #[test]
    fn huge_attempt_numbers_and_durations_do_not_overflow() {
        let b = Backoff::exponential(Duration::MAX, Duration::MAX, u32::MAX);
        assert!(
            b.delay_after(u32::MAX - 1, &mut Jitter::seeded(0))
                .is_some()
        );
    }
}
