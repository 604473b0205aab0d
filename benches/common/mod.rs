//! What the benchmarks share: the secret, the 1 KiB delivery, the clock, the
//! settings of the harness-free `compare` bench and summaries.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// The Standard Webhooks test secret every benchmark signs with.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The size of every benchmarked body.
pub const BODY_LEN: usize = 1024;

/// Rounds and scale from the environment: `BENCH_QUICK=1` for a smoke run
/// (1 round unless `BENCH_ROUNDS` says otherwise); 5 rounds by default, `BENCH_ROUNDS=n`.
pub struct Settings {
    pub quick: bool,
    pub rounds: usize,
}

/// The settings, or `None` when cargo only probes the harness
/// (`cargo bench -- --list`, `cargo test --benches`).
pub fn settings() -> Option<Settings> {
    if std::env::args().any(|a| a == "--list") {
        return None;
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(if quick { 1 } else { 5 });
    Some(Settings { quick, rounds })
}

/// Median, min and max (of a non-empty slice).
pub fn summary(xs: &[f64]) -> (f64, f64, f64) {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

/// A Bluum `order.filled` envelope of exactly [`BODY_LEN`] bytes, distinct per `n`.
pub fn body(n: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"event":"order.filled","timestamp":"2026-11-28T14:00:00Z","data":{{"id":"ord_{n}","investor_id":"inv_42","symbol":"AAPL","side":"buy","status":"filled","filled_quantity":"10","average_price":"189.4200","note":""#
    );
    let mut b = head.into_bytes();
    b.resize(BODY_LEN - 3, b'x');
    b.extend_from_slice(br#""}}"#);
    b
}

/// Now, in Unix seconds (what the verifiers' system clock accepts).
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
