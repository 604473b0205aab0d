//! Prometheus metrics (with `prometheus-client`, the Prometheus project's own
//! Rust client: typed label sets, no global registry, OpenMetrics text) and
//! the dashboard's last hour, kept in a small ring of per-minute snapshots.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::VerifyError;
use crate::inbox::{HandlerOutcome, Inbox, InboxInner, Instruments};
use crate::ingest::{IngestError, Ingested};

/// Why deliveries are refused, in the order of [`Series`]'s refusal counts.
pub(crate) const REASONS: [&str; 8] = [
    "missing_header",
    "malformed_header",
    "bad_signature",
    "stale_timestamp",
    "malformed_event",
    "too_large",
    "overloaded",
    "storage",
];

/// The series the dashboard charts: accepted, duplicates, each refusal
/// reason, handled, failed.
pub(crate) const SERIES: usize = 2 + REASONS.len() + 2;
pub(crate) const ACCEPTED: usize = 0;
pub(crate) const DUPLICATES: usize = 1;
pub(crate) const REFUSED: usize = 2;
pub(crate) const HANDLED: usize = REFUSED + REASONS.len();
pub(crate) const FAILED: usize = HANDLED + 1;

/// Minutes of history the dashboard shows.
pub(crate) const MINUTES: usize = 60;

fn reason(e: &IngestError) -> usize {
    match e {
        IngestError::Rejected(VerifyError::MissingHeader { .. }) => 0,
        IngestError::Rejected(
            VerifyError::TimestampTooOld { .. } | VerifyError::TimestampInFuture { .. },
        ) => 3,
        IngestError::Rejected(VerifyError::NoMatchingSignature { .. }) => 2,
        IngestError::Rejected(_) => 1,
        IngestError::MalformedEvent(_) => 4,
        IngestError::TooLarge { .. } => 5,
        IngestError::Overloaded { .. } => 6,
        _ => 7,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    source: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    source: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PatternLabels {
    pattern: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    pattern: String,
    outcome: &'static str,
}

/// One minute's starting totals.
#[derive(Debug, Clone, Copy)]
struct Sample {
    minute: u64,
    totals: [u64; SERIES],
    fsync_p99: Duration,
}

/// The admin layer's instruments for one inbox.
pub(crate) struct Metrics {
    registry: Registry,
    deliveries: Family<DeliveryLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
    ingest_seconds: Histogram,
    handler_seconds: Family<PatternLabels, Histogram, fn() -> Histogram>,
    handler_runs: Family<HandlerLabels, Counter>,
    busy: Gauge,
    totals: [AtomicU64; SERIES],
    history: Mutex<VecDeque<Sample>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn handler_histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Figures read from the store at each scrape (no scan: the store's counters).
#[derive(Debug)]
struct StoreFigures {
    inbox: Weak<InboxInner>,
}

impl Collector for StoreFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(inner) = self.inbox.upgrade() else {
            return Ok(());
        };
        let stats = Inbox::from_inner(inner).stats();
        let gauges: [(&str, &str, f64); 8] = [
            (
                "pending_events",
                "Events stored and not yet handled (retrying ones included).",
                stats.pending as f64,
            ),
            (
                "retrying_events",
                "Pending events scheduled for another attempt.",
                stats.retrying as f64,
            ),
            (
                "dead_events",
                "Dead letters waiting for replay or purge.",
                stats.dead as f64,
            ),
            (
                "oldest_pending_age_seconds",
                "How long ago the oldest event waiting for its handler was received (0: none).",
                stats.oldest_pending_age.map_or(0.0, |d| d.as_secs_f64()),
            ),
            (
                "dedup_markers",
                "Dedup markers held.",
                stats.dedup_markers as f64,
            ),
            (
                "disk_bytes",
                "Bytes the store occupies on disk.",
                stats.disk_bytes as f64,
            ),
            (
                "fsync_p99_seconds",
                "99th percentile of the log's fdatasync durations since the store was opened (bucket upper bound).",
                stats.fsync.p99.as_secs_f64(),
            ),
            (
                "fsync_max_seconds",
                "Slowest fdatasync since the store was opened.",
                stats.fsync.max.as_secs_f64(),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let count = ConstCounter::new(stats.fsync.count);
        count.encode(encoder.encode_descriptor(
            "fsyncs",
            "fdatasync calls of the log since the store was opened.",
            None,
            count.metric_type(),
        )?)?;
        let sum = ConstCounter::new(stats.fsync.mean.as_secs_f64() * stats.fsync.count as f64);
        sum.encode(encoder.encode_descriptor(
            "fsync_seconds",
            "Time spent in the log's fdatasync calls since the store was opened.",
            None,
            sum.metric_type(),
        )?)?;
        Ok(())
    }
}

impl Metrics {
    /// The inbox's metrics, created (with the sampler thread) on first use.
    pub(crate) fn of(inbox: &Inbox) -> Arc<Self> {
        let slot = &inbox.inner().instruments;
        let hooks = slot.get_or_init(|| {
            let metrics = Arc::new(Self::new(Arc::downgrade(inbox.arc())));
            // The first minute starts now, before any delivery is counted.
            metrics.tick(SystemTime::now(), Duration::ZERO);
            start_sampler(Arc::downgrade(&metrics), Arc::downgrade(inbox.arc()));
            metrics
        });
        let any: Arc<dyn std::any::Any + Send + Sync> = hooks.clone();
        match any.downcast::<Self>() {
            Ok(metrics) => metrics,
            // Only this module installs instruments.
            Err(_) => Arc::new(Self::new(Weak::new())),
        }
    }

    fn new(inbox: Weak<InboxInner>) -> Self {
        let mut registry = Registry::with_prefix("webhook_inbox");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Deliveries passed to ingest, by source and outcome (accepted, duplicate, refused)",
            deliveries.clone(),
        );
        let refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "refused_deliveries",
            "Refused deliveries by source and reason",
            refused.clone(),
        );
        let ingest_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "ingest_duration_seconds",
            "Time ingest took (verification, dedup, durable write)",
            ingest_seconds.clone(),
        );
        let handler_seconds: Family<PatternLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(handler_histogram);
        registry.register(
            "handler_duration_seconds",
            "Handler run time by the router pattern that matched",
            handler_seconds.clone(),
        );
        let handler_runs = Family::<HandlerLabels, Counter>::default();
        registry.register(
            "handler_runs",
            "Handler runs by router pattern and outcome (ok, error, panicked, unmatched)",
            handler_runs.clone(),
        );
        let busy = Gauge::default();
        registry.register(
            "handler_threads_busy",
            "Handler threads running a handler now",
            busy.clone(),
        );
        registry.register_collector(Box::new(StoreFigures { inbox }));
        Self {
            registry,
            deliveries,
            refused,
            ingest_seconds,
            handler_seconds,
            handler_runs,
            busy,
            totals: Default::default(),
            history: Mutex::new(VecDeque::with_capacity(MINUTES + 2)),
        }
    }

    /// The exposition: OpenMetrics as `prometheus-client` writes it, or
    /// (`openmetrics: false`) the classic text format 0.0.4 every scraper
    /// and parser reads.
    pub(crate) fn encode(&self, openmetrics: bool) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        if openmetrics { out } else { classic(&out) }
    }

    fn totals(&self) -> [u64; SERIES] {
        std::array::from_fn(|i| self.totals[i].load(Ordering::Relaxed))
    }

    /// Starts a new minute in the history when the clock passed into one.
    pub(crate) fn tick(&self, now: SystemTime, fsync_p99: Duration) {
        let minute = minute_of(now);
        let mut history = crate::sync::lock(&self.history);
        if history.back().is_some_and(|s| s.minute >= minute) {
            return;
        }
        history.push_back(Sample {
            minute,
            totals: self.totals(),
            fsync_p99,
        });
        while history.len() > MINUTES + 1 {
            history.pop_front();
        }
    }

    /// The last hour, a value per minute (oldest first) for each series,
    /// and the fsync p99 sampled at each minute's start; the current minute
    /// counts up to now.
    pub(crate) fn last_hour(
        &self,
        now: SystemTime,
    ) -> ([[u64; MINUTES]; SERIES], [Duration; MINUTES]) {
        let live = self.totals();
        let now_minute = minute_of(now);
        let history = crate::sync::lock(&self.history);
        let at = |minute: u64| history.iter().find(|s| s.minute == minute);
        let mut values = [[0; MINUTES]; SERIES];
        let mut fsync = [Duration::ZERO; MINUTES];
        for slot in 0..MINUTES {
            let minute = now_minute + 1 + slot as u64 - MINUTES as u64;
            let Some(start) = at(minute) else { continue };
            let end = if minute == now_minute {
                live
            } else {
                match at(minute + 1) {
                    Some(s) => s.totals,
                    None => continue,
                }
            };
            for series in 0..SERIES {
                values[series][slot] = end[series].saturating_sub(start.totals[series]);
            }
            fsync[slot] = start.fsync_p99;
        }
        (values, fsync)
    }
}

/// OpenMetrics text to the classic format: a counter family `x` (samples
/// `x_total`) is named `x_total` in its `HELP` and `TYPE` lines; `UNIT` and
/// `EOF` lines go.
fn classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line.starts_with("# EOF") || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(h) = help.replace(line) {
                out.push_str(h);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let suffix = if kind == "counter" && !name.ends_with("_total") {
                "_total"
            } else {
                ""
            };
            if let Some(h) = help.take() {
                match h.strip_prefix("# HELP ").and_then(|r| r.strip_prefix(name)) {
                    Some(text) => {
                        out.push_str("# HELP ");
                        out.push_str(name);
                        out.push_str(suffix);
                        out.push_str(text);
                    }
                    None => out.push_str(h),
                }
                out.push('\n');
            }
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(suffix);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60)
}

/// Samples every few seconds while the inbox lives, so the history has
/// every minute even when nobody looks.
fn start_sampler(metrics: Weak<Metrics>, inbox: Weak<InboxInner>) {
    let _ = std::thread::Builder::new()
        .name("webhook-inbox-admin-sampler".into())
        .spawn(move || {
            loop {
                {
                    let (Some(m), Some(inner)) = (metrics.upgrade(), inbox.upgrade()) else {
                        return;
                    };
                    let p99 = inner.store.fsync_latency().p99;
                    m.tick(SystemTime::now(), p99);
                }
                std::thread::sleep(Duration::from_secs(5));
            }
        });
}

impl Instruments for Metrics {
    fn delivery(&self, source: &str, outcome: &Result<Ingested, IngestError>, took: Duration) {
        let (kind, series) = match outcome {
            Ok(Ingested::Accepted { .. }) => ("accepted", ACCEPTED),
            Ok(Ingested::Duplicate { .. }) => ("duplicate", DUPLICATES),
            Err(e) => {
                let r = reason(e);
                self.refused
                    .get_or_create(&RefusedLabels {
                        source: source.to_owned(),
                        reason: REASONS[r],
                    })
                    .inc();
                ("refused", REFUSED + r)
            }
        };
        self.totals[series].fetch_add(1, Ordering::Relaxed);
        self.deliveries
            .get_or_create(&DeliveryLabels {
                source: source.to_owned(),
                outcome: kind,
            })
            .inc();
        self.ingest_seconds.observe(took.as_secs_f64());
    }

    fn handler_started(&self) {
        self.busy.inc();
    }

    fn handler_finished(&self, pattern: Option<&str>, outcome: HandlerOutcome, took: Duration) {
        self.busy.dec();
        let pattern = pattern.unwrap_or("(none)").to_owned();
        let outcome = match outcome {
            HandlerOutcome::Ok => "ok",
            HandlerOutcome::Error => "error",
            HandlerOutcome::Panicked => "panicked",
            HandlerOutcome::Unmatched => "unmatched",
        };
        let series = if outcome == "ok" { HANDLED } else { FAILED };
        self.totals[series].fetch_add(1, Ordering::Relaxed);
        self.handler_seconds
            .get_or_create(&PatternLabels {
                pattern: pattern.clone(),
            })
            .observe(took.as_secs_f64());
        self.handler_runs
            .get_or_create(&HandlerLabels { pattern, outcome })
            .inc();
    }
}
