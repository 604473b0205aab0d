//! Fsync latency, recorded lock-free by the log writer and read by `stats()`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets by powers of two of microseconds: bucket `i` holds samples below
/// `2^i` µs (bucket 0: under 1 µs; the last one: everything from 2^30 µs,
/// about 18 minutes, up).
const BUCKETS: usize = 32;

/// A histogram of durations with power-of-two buckets, plus count, sum and max.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

/// A snapshot of [`Latencies`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LatencySummary {
    pub(crate) count: u64,
    pub(crate) mean: Duration,
    /// The upper bound of the bucket holding the 99th percentile (so at most
    /// twice the true value), capped at the maximum seen.
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl Latencies {
    pub(crate) fn record(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let micros = nanos / 1_000;
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        self.buckets[bucket.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.total_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        if count == 0 {
            return LatencySummary::default();
        }
        let max = Duration::from_nanos(self.max_nanos.load(Ordering::Relaxed));
        let rank = count - count / 100; // the sample at or above 99 %
        let mut seen = 0;
        let mut p99 = max;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                p99 = Duration::from_micros(1u64 << i).min(max);
                break;
            }
        }
        LatencySummary {
            count,
            mean: Duration::from_nanos(self.total_nanos.load(Ordering::Relaxed) / count),
            p99,
            max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_nothing_is_zero() {
        assert_eq!(Latencies::default().summary(), LatencySummary::default());
    }

    #[test]
    fn p99_lands_in_the_bucket_of_the_slow_tail() {
        let l = Latencies::default();
        for _ in 0..990 {
            l.record(Duration::from_micros(100)); // bucket below 128 µs
        }
        for _ in 0..10 {
            l.record(Duration::from_millis(5)); // bucket below 8,192 µs
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.max, Duration::from_millis(5));
        assert_eq!(s.p99, Duration::from_micros(128));
        l.record(Duration::from_millis(5));
        assert_eq!(
            l.summary().p99,
            Duration::from_millis(5),
            "capped at the max"
        );
        let mean = l.summary().mean;
        assert!(mean > Duration::from_micros(100) && mean < Duration::from_micros(200));
    }

    #[test]
    fn huge_durations_go_to_the_last_bucket() {
        let l = Latencies::default();
        l.record(Duration::MAX);
        assert_eq!(l.summary().count, 1);
    }
}
