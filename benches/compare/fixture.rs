//! What every measurement is made of: signed 1 KiB Bluum deliveries, scratch
//! directories, an inbox opened the way the benches open it, a no-op router,
//! and latency percentiles.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use webhook_inbox::{
    Event, Inbox, Ingested, Ingestor, Router, Scheme, Signer, Verifier, Worker, WorkerStats,
};

use crate::common::{self, SECRET};

/// One delivery as the sender would POST it.
pub struct Delivery {
    pub id: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn signer() -> Signer {
    Signer::new(Scheme::bluum(), SECRET).expect("secret")
}

/// The verifier the library's ingestor and every baseline check deliveries with.
pub fn verifier() -> Verifier {
    Verifier::new(Scheme::bluum(), [SECRET]).expect("secret")
}

/// A delivery with id `id` and body [`common::body`]`(n)`, signed at `now`.
pub fn delivery(signer: &Signer, id: String, n: usize, now: i64) -> Delivery {
    let body = common::body(n);
    Delivery {
        headers: signer.sign(&id, now, &body),
        id,
        body,
    }
}

/// `callers` lists of `per_caller` deliveries with ids `{prefix}-{caller}-{n}`.
pub fn deliveries(prefix: &str, callers: usize, per_caller: usize) -> Vec<Vec<Delivery>> {
    let (signer, now) = (signer(), common::now_secs());
    (0..callers)
        .map(|c| {
            (0..per_caller)
                .map(|n| delivery(&signer, format!("{prefix}-{c}-{n}"), n, now))
                .collect()
        })
        .collect()
}

/// A fresh directory under the system's temporary directory (the same disk as
/// everything else measured), removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "webhook-inbox-compare-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An inbox with the default `Durability::Fsync` and no bound on pending events.
pub fn open(dir: &Path) -> Inbox {
    Inbox::builder(dir)
        .max_pending(u64::MAX)
        .open()
        .expect("open the inbox")
}

pub fn ingestor(inbox: &Inbox) -> Ingestor {
    inbox.ingestor(verifier()).build().expect("ingestor")
}

/// Ingests `d`, which must be new.
pub fn accept(ingestor: &Ingestor, d: &Delivery) {
    let outcome = ingestor.ingest(&d.headers, &d.body).expect("ingest");
    assert!(matches!(outcome, Ingested::Accepted { .. }), "{outcome:?}");
}

pub fn noop_router() -> Router {
    Router::builder()
        .on("*", |_e: &Event| Ok(()))
        .build()
        .expect("router")
}

/// Polls every millisecond until `worker` has handled `n` events; panics if a
/// no-op handler fails or the worker makes no progress for ten minutes.
pub fn wait_handled(worker: &Worker, n: u64) -> WorkerStats {
    const PATIENCE: Duration = Duration::from_secs(600);
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let stats = worker.stats();
        assert!(
            stats.retried + stats.dead_lettered + stats.unknown + stats.store_errors == 0,
            "a no-op handler failed: {stats:?}"
        );
        if stats.handled >= n {
            assert_eq!(stats.handled, n, "handled more events than were stored");
            return stats;
        }
        if stats.handled != last {
            (last, since) = (stats.handled, Instant::now());
        }
        assert!(
            since.elapsed() < PATIENCE,
            "the worker stalled at {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sorted latencies in nanoseconds.
pub struct Latencies(Vec<u64>);

impl Latencies {
    pub fn new(mut nanos: Vec<u64>) -> Self {
        nanos.sort_unstable();
        Self(nanos)
    }

    /// The `p` quantile (0..=1, nearest rank below), in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        let i = ((self.0.len() as f64 - 1.0) * p) as usize;
        self.0.get(i).map_or(0.0, |&n| n as f64 / 1e6)
    }
}

/// Nanoseconds since `t`, saturating.
pub fn nanos_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
