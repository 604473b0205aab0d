//! What the harness-free benchmarks share: their settings and summaries.
#![allow(dead_code)]

/// Rounds and scale from the environment: `BENCH_QUICK=1` for a smoke run
/// (1 round unless `BENCH_ROUNDS` says otherwise), `BENCH_ROUNDS=n`.
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
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    Some(Settings { quick, rounds })
}

/// Median, min and max.
pub fn summary(xs: &[f64]) -> (f64, f64, f64) {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

/// A Bluum `order.filled` envelope of exactly 1 KiB.
pub fn body(n: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"event":"order.filled","timestamp":"2026-11-28T14:00:00Z","data":{{"id":"ord_{n}","investor_id":"inv_42","symbol":"AAPL","side":"buy","status":"filled","filled_quantity":"10","average_price":"189.4200","note":""#
    );
    let mut b = head.into_bytes();
    b.resize(1024 - 3, b'x');
    b.extend_from_slice(br#""}}"#);
    b
}
