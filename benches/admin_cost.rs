//! What the admin layer costs ingest: 16 callers of durable ingest, alone and
//! with the dashboard's JSON polled and `/metrics` scraped every second over
//! real HTTP (issue 19's target: at least 0.95× the run without them).
//!
//! `cargo bench --bench admin_cost --features admin` (`ADMIN_COST_EVENTS`,
//! default 20000 per run; `ADMIN_COST_ROUNDS`, default 3 of each, alternated).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use webhook_inbox::admin::{Admin, Auth};
use webhook_inbox::{Inbox, Scheme, Signer, Verifier};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CALLERS: usize = 16;
const TOKEN: &str = "bench-admin-token-0123456789";

/// A signed delivery: headers and body.
type Delivery = (Vec<(String, String)>, Vec<u8>);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One run: events per second of 16 callers; `admin` adds the pollers.
fn run(events: usize, admin: bool, round: usize) -> f64 {
    let dir =
        std::env::temp_dir().join(format!("admin-cost-{}-{round}-{admin}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let inbox = Inbox::open(&dir).expect("open");
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).expect("secret"))
        .build()
        .expect("ingestor");
    let signer = Signer::new(Scheme::bluum(), SECRET).expect("secret");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let work: Vec<Vec<Delivery>> = (0..CALLERS)
        .map(|c| {
            (0..events / CALLERS)
                .map(|i| {
                    let body = format!(
                        r#"{{"event":"order.filled","timestamp":"2026-11-28T14:00:00Z","data":{{"id":"ord_{c}_{i}","note":"{}"}}}}"#,
                        "x".repeat(800)
                    )
                    .into_bytes();
                    (signer.sign(&format!("evt_{round}_{c}_{i}"), now, &body), body)
                })
                .collect()
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let mut side = Vec::new();
    let mut server = None;
    if admin {
        let routes: axum::Router = axum::Router::new().nest(
            "/admin",
            Admin::new(Auth::token(TOKEN).expect("token"))
                .router(&inbox)
                .expect("router"),
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(async move { axum::serve(listener, routes).await });
        server = Some(rt);
        for path in ["/api/stats", "/api/events?limit=50", "/metrics"] {
            let stop = Arc::clone(&stop);
            let url = format!("http://{addr}/admin{path}");
            side.push(std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                while !stop.load(Ordering::Relaxed) {
                    let _ = agent
                        .get(&url)
                        .header("authorization", &format!("Bearer {TOKEN}"))
                        .call()
                        .map(|mut r| r.body_mut().read_to_string());
                    std::thread::sleep(Duration::from_secs(1));
                }
            }));
        }
    }
    let start = Instant::now();
    std::thread::scope(|s| {
        for share in &work {
            let ingestor = &ingestor;
            s.spawn(move || {
                for (headers, body) in share {
                    let _ = ingestor.ingest(headers, body);
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in side {
        let _ = t.join();
    }
    drop(server);
    drop(ingestor);
    let _ = inbox.close();
    let _ = std::fs::remove_dir_all(&dir);
    (events / CALLERS * CALLERS) as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let events = env_usize("ADMIN_COST_EVENTS", 20_000);
    let rounds = env_usize("ADMIN_COST_ROUNDS", 3).max(1);
    let (mut plain, mut with) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        plain.push(run(events, false, round));
        with.push(run(events, true, round));
        eprintln!(
            "round {round}: alone {:.0}/s, with admin {:.0}/s",
            plain[round], with[round]
        );
    }
    let (a, b) = (median(plain), median(with));
    println!(
        "16-caller durable ingest: alone {a:.0} events/s, with the dashboard JSON and /metrics polled every second {b:.0} events/s: {:.3}x (target >= 0.95)",
        b / a
    );
}
