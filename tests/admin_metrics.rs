//! `/metrics` after known traffic, parsed by a real Prometheus text-format
//! parser (and `promtool check metrics` where installed): delivery outcomes
//! by source and reason, latency histograms, handler outcomes labelled by the
//! router's patterns (never raw types), the store's gauges.
#![cfg(feature = "admin")]

mod admin_support;
mod common;

use std::time::Duration;

use admin_support::{Served, bluum, call, dead_count, deliver, envelope, wait_for};
use common::TempDir;
use common::prometheus;
use webhook_inbox::admin::{Admin, Auth};
use webhook_inbox::{Backoff, Event, HandlerError, Inbox, Router, Worker, WorkerConfig};

const TOKEN: &str = "metrics-token-0123456789";

fn scrape(s: &Served, accept: Option<&str>) -> admin_support::Answer {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(a) = accept {
        headers.push(("accept", a));
    }
    let a = call("GET", &format!("{}/metrics", s.base), &headers, None);
    assert_eq!(a.status, 200, "{}", a.body);
    a
}

#[test]
fn metrics_count_known_traffic_with_bounded_labels() {
    let dir = TempDir::new("admin-metrics");
    let inbox = Inbox::open(dir.path()).unwrap();
    // Mounted before any traffic, as a service does.
    let s = Served::start(&inbox, Admin::new(Auth::token(TOKEN).unwrap()));
    let router = Router::builder()
        .on("order.*", |_e: &Event| Ok(()))
        .on("transfer.*", |_e: &Event| {
            Err(HandlerError::permanent("ledger down"))
        })
        .build()
        .unwrap();
    let config = WorkerConfig::default()
        .threads(2)
        .backoff(Backoff::exponential(
            Duration::from_millis(10),
            Duration::from_millis(10),
            1,
        ));
    let worker = Worker::start(&inbox, router, config).unwrap();

    let bluum = bluum(&inbox);
    let eu = inbox
        .ingestor(
            webhook_inbox::Verifier::new(webhook_inbox::Scheme::bluum(), [common::SECRET]).unwrap(),
        )
        .source("bluum-eu")
        .build()
        .unwrap();
    deliver(&bluum, "evt_1", &envelope("order.filled", 1));
    // An attacker-chosen type under a registered pattern: labelled `order.*`.
    let evil = serde_json::json!({"event": "order.\"}{evil=\"1\"", "timestamp": "2026-11-28T14:00:00Z", "data": {}});
    deliver(&bluum, "evt_2", evil.to_string().as_bytes());
    deliver(&bluum, "evt_3", &envelope("transfer.deposit.failed", 3));
    deliver(&eu, "evt_4", &envelope("order.filled", 4));
    let dup = envelope("order.filled", 1);
    let _ = bluum.ingest(&common::bluum_headers("evt_1", &dup), &dup); // duplicate
    let mut forged = common::bluum_headers("evt_5", &dup);
    for (name, value) in &mut forged {
        if name == "webhook-signature" {
            *value = "v1,Zm9yZ2Vk".into();
        }
    }
    assert!(bluum.ingest(&forged, &dup).is_err());
    assert!(bluum.ingest(&[("webhook-id", "evt_6")], &dup).is_err());
    wait_for("three handled and one dead", || {
        worker.stats().handled == 3 && dead_count(&inbox) == 1
    });

    let a = scrape(&s, None);
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let m = prometheus::parse(&a.body).unwrap_or_else(|e| panic!("{e:#?}\n{}", a.body));
    if let Some(Err(e)) = prometheus::promtool().map(|_| prometheus::promtool_check(&a.body)) {
        panic!("promtool: {e}\n{}", a.body);
    }
    let v = |name: &str, labels: &[(&str, &str)]| {
        m.value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?}\n{}", a.body))
    };
    let d = "webhook_inbox_deliveries_total";
    assert_eq!(v(d, &[("source", "bluum"), ("outcome", "accepted")]), 3.0);
    assert_eq!(
        v(d, &[("source", "bluum-eu"), ("outcome", "accepted")]),
        1.0
    );
    assert_eq!(v(d, &[("source", "bluum"), ("outcome", "duplicate")]), 1.0);
    assert_eq!(v(d, &[("source", "bluum"), ("outcome", "refused")]), 2.0);
    let r = "webhook_inbox_refused_deliveries_total";
    assert_eq!(
        v(r, &[("source", "bluum"), ("reason", "bad_signature")]),
        1.0
    );
    assert_eq!(
        v(r, &[("source", "bluum"), ("reason", "missing_header")]),
        1.0
    );
    let ingest = m
        .histogram("webhook_inbox_ingest_duration_seconds", &[])
        .unwrap();
    assert_eq!(ingest.count, 7.0);
    assert!(ingest.sum > 0.0);

    let h = "webhook_inbox_handler_runs_total";
    assert_eq!(v(h, &[("pattern", "order.*"), ("outcome", "ok")]), 3.0);
    assert_eq!(
        v(h, &[("pattern", "transfer.*"), ("outcome", "error")]),
        1.0
    );
    let patterns: std::collections::BTreeSet<String> = m
        .samples(h)
        .iter()
        .map(|s| s.labels["pattern"].clone())
        .collect();
    assert_eq!(
        patterns.into_iter().collect::<Vec<_>>(),
        ["order.*", "transfer.*"],
        "no raw type is a label value"
    );
    assert!(
        !a.body.contains("evil"),
        "the attacker's type is nowhere in the exposition"
    );
    assert_eq!(
        m.histogram(
            "webhook_inbox_handler_duration_seconds",
            &[("pattern", "order.*")]
        )
        .unwrap()
        .count,
        3.0
    );
    assert_eq!(v("webhook_inbox_handler_threads_busy", &[]), 0.0);

    assert_eq!(v("webhook_inbox_dead_events", &[]), 1.0);
    assert_eq!(v("webhook_inbox_pending_events", &[]), 0.0);
    assert_eq!(v("webhook_inbox_retrying_events", &[]), 0.0);
    assert_eq!(v("webhook_inbox_oldest_pending_age_seconds", &[]), 0.0);
    assert!(v("webhook_inbox_fsyncs_total", &[]) >= 1.0);
    assert!(v("webhook_inbox_fsync_p99_seconds", &[]) > 0.0);
    assert!(v("webhook_inbox_dedup_markers", &[]) >= 4.0);

    // Prometheus asks for OpenMetrics and gets it.
    let om = scrape(
        &s,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert!(
        om.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(om.body.contains("# TYPE webhook_inbox_deliveries counter"));
    worker.shutdown().unwrap();
}
