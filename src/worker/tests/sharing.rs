//! Several workers on one sled inbox: each event once, per-key order kept.

#[allow(clippy::wildcard_imports)]
use super::*;

const EVENTS: u64 = 2_000;
const KEYS: u64 = 8;
const SENDERS: u64 = 4;

/// `workers` workers (2 threads each, ordered by `/data/k`) on one sled
/// inbox while 4 threads ingest 2,000 events over 8 keys: each event runs
/// exactly once, and each key's events one at a time, in acceptance order.
fn workers_share_one_inbox(workers: usize) {
    let dir = tempfile::TempDir::new().unwrap();
    let inbox = Inbox::open(dir.path()).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let config = WorkerConfig::default().threads(2).ordering_key("/data/k");
    let pool: Vec<Worker> = (0..workers)
        .map(|_| Worker::start(&inbox, ordered_router(&seen), config.clone()).unwrap())
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..SENDERS {
            let sender = Sender::new(&inbox);
            scope.spawn(move || {
                for n in (t..EVENTS).step_by(SENDERS as usize) {
                    sender.accept(&format!("evt_{n}"), n % KEYS);
                }
            });
        }
    });
    let handled = || pool.iter().map(|w| w.stats().handled).sum::<u64>();
    wait_for("every event handled", Duration::from_secs(60), || {
        handled() >= EVENTS
    });
    let took = started.elapsed();
    let per_worker: Vec<u64> = pool.iter().map(|w| w.stats().handled).collect();
    for worker in pool {
        let stats = worker.stats();
        assert_eq!(
            (stats.retried, stats.leases_lost, stats.store_errors),
            (0, 0, 0)
        );
        worker.shutdown().unwrap();
    }
    let seen = lock(&seen);
    assert_eq!(seen.violations, Vec::<String>::new());
    assert_eq!(seen.runs.len() as u64, EVENTS);
    let twice: Vec<_> = seen.runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "run more than once: {twice:?}");
    assert_eq!(per_worker.iter().sum::<u64>(), EVENTS);
    assert!(
        per_worker.iter().filter(|n| **n > 0).count() >= 2,
        "only one worker took part: {per_worker:?}"
    );
    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.retrying, stats.dead), (0, 0, 0));
    eprintln!("{workers} workers: {EVENTS} events in {took:.2?}, by worker {per_worker:?}");
}

#[test]
fn two_workers_on_one_sled_inbox_handle_each_event_once_in_key_order() {
    workers_share_one_inbox(2);
}

#[test]
fn four_workers_on_one_sled_inbox_handle_each_event_once_in_key_order() {
    workers_share_one_inbox(4);
}
