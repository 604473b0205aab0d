//! The Prometheus exposition helper (`tests/common/prometheus.rs`) on a
//! hand-written valid exposition, and on invalid ones it must reject.

mod common;

use common::prometheus::{self, parse};

const VALID: &str = r#"# HELP webhook_inbox_ingested_total Deliveries ingested, by outcome.
# TYPE webhook_inbox_ingested_total counter
webhook_inbox_ingested_total{outcome="stored",provider="bluum"} 3
webhook_inbox_ingested_total{outcome="duplicate",provider="bluum"} 1
webhook_inbox_ingested_total{outcome="rejected",provider="we\"ird,=}\\x\nname"} 2
# HELP webhook_inbox_queue_depth Deliveries waiting for the handler.
# TYPE webhook_inbox_queue_depth gauge
webhook_inbox_queue_depth 7
# HELP webhook_inbox_handler_seconds Handler run time.\nIn seconds.
# TYPE webhook_inbox_handler_seconds histogram
webhook_inbox_handler_seconds_bucket{le="0.01"} 1
webhook_inbox_handler_seconds_bucket{le="0.1"} 2
webhook_inbox_handler_seconds_bucket{le="1"} 3
webhook_inbox_handler_seconds_bucket{le="+Inf"} 4
webhook_inbox_handler_seconds_sum 2.5
webhook_inbox_handler_seconds_count 4
"#;

#[test]
fn valid_exposition_parses_and_answers_queries() {
    let m = parse(VALID).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(m.families.len(), 3);
    assert_eq!(
        m.value(
            "webhook_inbox_ingested_total",
            &[("provider", "bluum"), ("outcome", "stored")]
        ),
        Some(3.0)
    );
    // Exact label sets only: a subset finds nothing; `sum` adds over a subset.
    assert_eq!(
        m.value("webhook_inbox_ingested_total", &[("outcome", "stored")]),
        None
    );
    assert_eq!(
        m.sum("webhook_inbox_ingested_total", &[("provider", "bluum")]),
        4.0
    );
    assert_eq!(m.sum("webhook_inbox_ingested_total", &[]), 6.0);
    // Escaped label values come back unescaped.
    assert_eq!(
        m.value(
            "webhook_inbox_ingested_total",
            &[("outcome", "rejected"), ("provider", "we\"ird,=}\\x\nname")]
        ),
        Some(2.0)
    );
    assert_eq!(m.value("webhook_inbox_queue_depth", &[]), Some(7.0));
    let f = m.family("webhook_inbox_ingested_total").unwrap();
    assert_eq!(
        (f.kind.as_str(), f.help.as_str()),
        ("counter", "Deliveries ingested, by outcome.")
    );

    let h = m.histogram("webhook_inbox_handler_seconds", &[]).unwrap();
    assert_eq!(h.count, 4.0);
    assert_eq!(h.sum, 2.5);
    assert_eq!(
        h.buckets,
        [(0.01, 1.0), (0.1, 2.0), (1.0, 3.0), (f64::INFINITY, 4.0)]
    );
    assert_eq!(
        m.value("webhook_inbox_handler_seconds_bucket", &[("le", "0.1")]),
        Some(2.0)
    );
    assert_eq!(
        m.value("webhook_inbox_handler_seconds_count", &[]),
        Some(4.0)
    );
    assert!(m.histogram("webhook_inbox_queue_depth", &[]).is_none());

    prometheus::promtool_check(VALID).unwrap();
}

/// Each of these is `VALID` with one thing broken, and must be rejected with a
/// message naming the problem.
#[test]
fn invalid_expositions_are_rejected() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (what, the error says, from, to)
        (
            "missing TYPE",
            "no # TYPE",
            "# TYPE webhook_inbox_queue_depth gauge\n",
            "",
        ),
        (
            "missing HELP",
            "no # HELP",
            "# HELP webhook_inbox_queue_depth Deliveries waiting for the handler.\n",
            "",
        ),
        (
            "unknown TYPE",
            "unknown TYPE",
            "webhook_inbox_queue_depth gauge",
            "webhook_inbox_queue_depth gauges",
        ),
        (
            "bad metric name",
            "syntax",
            "webhook_inbox_queue_depth 7",
            "webhook-inbox_queue_depth 7",
        ),
        (
            "name starting with a digit",
            "syntax",
            "webhook_inbox_queue_depth 7",
            "9webhook_inbox_queue_depth 7",
        ),
        (
            "bad label name",
            "syntax",
            "{outcome=\"stored\"",
            "{out-come=\"stored\"",
        ),
        (
            "reserved label name",
            "invalid label name",
            "{outcome=\"stored\"",
            "{__outcome=\"stored\"",
        ),
        ("unescaped quote", "syntax", "we\\\"ird", "we\"ird"),
        ("bad escape", "syntax", "\\\\x", "\\x"),
        (
            "unquoted label value",
            "syntax",
            "{outcome=\"stored\"",
            "{outcome=stored",
        ),
        (
            "raw newline in a label value",
            "raw line end",
            "\\nname",
            "\nname",
        ),
        (
            "value not a number",
            "syntax",
            "webhook_inbox_queue_depth 7",
            "webhook_inbox_queue_depth seven",
        ),
        (
            "negative counter",
            "counter value",
            "provider=\"bluum\"} 1",
            "provider=\"bluum\"} -1",
        ),
        (
            "duplicate series",
            "series appears twice",
            "webhook_inbox_queue_depth 7\n",
            "webhook_inbox_queue_depth 7\nwebhook_inbox_queue_depth 8\n",
        ),
        (
            "duplicate label",
            "twice",
            "{le=\"1\"}",
            "{le=\"1\",le=\"1\"}",
        ),
        (
            "no +Inf bucket",
            "no +Inf",
            "webhook_inbox_handler_seconds_bucket{le=\"+Inf\"} 4\n",
            "",
        ),
        ("+Inf bucket != count", "!= _count", "_count 4", "_count 5"),
        (
            "buckets not cumulative",
            "not cumulative",
            "{le=\"0.1\"} 2",
            "{le=\"0.1\"} 0",
        ),
        (
            "no _sum",
            "no _count or _sum",
            "webhook_inbox_handler_seconds_sum 2.5\n",
            "",
        ),
        (
            "bad HELP escape",
            "escape other than",
            "Handler run time.\\n",
            "Handler run time.\\t",
        ),
        ("no final newline", "newline", "_count 4\n", "_count 4"),
        (
            "family split in two",
            "family appears twice",
            "webhook_inbox_handler_seconds_count 4\n",
            "webhook_inbox_handler_seconds_count 4\nwebhook_inbox_queue_depth 8\n",
        ),
    ];
    for (what, says, from, to) in cases {
        assert!(VALID.contains(from), "{what}: {from:?} not in VALID");
        let bad = VALID.replacen(from, to, 1);
        match parse(&bad) {
            Ok(m) => panic!("{what}: accepted:\n{bad}\n{m:#?}"),
            Err(errors) => {
                assert!(
                    errors.iter().any(|e| e.contains(says)),
                    "{what}: {errors:?}"
                );
            }
        }
    }
    assert!(parse("").is_err(), "empty exposition accepted");
}

/// promtool (where installed) agrees on a broken exposition.
#[test]
fn promtool_rejects_what_parse_rejects() {
    if prometheus::promtool().is_none() {
        // promtool_check itself fails under CI=true when promtool is missing.
        prometheus::promtool_check(VALID).unwrap();
        return;
    }
    let bad = VALID.replace("{outcome=\"stored\"", "{outcome=stored");
    assert!(parse(&bad).is_err());
    let said = prometheus::promtool_check(&bad).unwrap_err();
    assert!(said.contains("promtool"), "{said}");
}

#[test]
fn escaping_round_trips() {
    let raw = "a\"b\\c\nd,}=";
    let line = format!(
        "# HELP x_total X.\n# TYPE x_total counter\nx_total{{v=\"{}\"}} 1\n",
        prometheus::escape_label_value(raw)
    );
    let m = parse(&line).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(m.value("x_total", &[("v", raw)]), Some(1.0));
    assert!(prometheus::valid_metric_name("a:b_c9"));
    assert!(!prometheus::valid_metric_name("9a"));
    assert!(!prometheus::valid_metric_name(""));
    assert!(prometheus::valid_label_name("_a"));
    assert!(!prometheus::valid_label_name("__a"));
    assert!(!prometheus::valid_label_name("a:b"));
}
