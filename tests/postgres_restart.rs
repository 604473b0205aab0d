//! PostgreSQL restarted under load: a server of this test's own (initdb in a
//! temp dir, as the `postgres` user, on a free port on 127.0.0.1), never the
//! shared one. Senders ingest from several threads, retrying on 503 as a
//! provider does, and a worker runs, while the server is restarted (a fast
//! shutdown, then an immediate one, which is a crash). Every acknowledged
//! delivery must be there afterwards and be handled; the worker reconnects
//! and finishes everything.
//!
//! It needs root (to run the server as `postgres`) and the PostgreSQL 15
//! binaries; without them it says why and skips, except under `CI=true`.
#![cfg(feature = "postgres")]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SECRET, bluum_body, bluum_headers};
use webhook_inbox::{
    Event, Inbox, IngestError, Ingested, Router, Scheme, Verifier, Worker, WorkerConfig,
};

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL server in a temp dir, stopped and removed when dropped
/// (also when the test fails).
struct Server {
    dir: PathBuf,
    port: u16,
}

/// The number `cmd args` prints, if it runs.
fn number_from(cmd: &str, args: &[&str]) -> Option<u32> {
    let out = Command::new(cmd).args(args).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// Runs `program` as the `postgres` user in `dir`; its output on failure.
fn as_postgres(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(BIN).join(program))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("runuser {program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{program} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

impl Server {
    /// Why this machine cannot run a server of its own, if it cannot.
    fn unavailable() -> Option<String> {
        if number_from("id", &["-u"]) != Some(0) {
            return Some("not root (the server runs as the postgres user)".into());
        }
        for program in ["initdb", "pg_ctl", "postgres"] {
            if !Path::new(BIN).join(program).exists() {
                return Some(format!("{BIN}/{program} is missing"));
            }
        }
        if number_from("id", &["-u", "postgres"]).is_none() {
            return Some("there is no postgres user".into());
        }
        if !Path::new("/usr/sbin/runuser").exists() && number_from("which", &["runuser"]).is_none()
        {
            return Some("runuser is missing".into());
        }
        None
    }

    fn start() -> Self {
        let uid = number_from("id", &["-u", "postgres"]).unwrap();
        let gid = number_from("id", &["-g", "postgres"]).unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "webhook-inbox-pg-restart-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let server = Self { dir, port };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&server.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid)).unwrap();
        let data = server.data();
        as_postgres(
            &server.dir,
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        )
        .unwrap();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60 \
             -c shared_buffers=16MB",
            server.port,
            server.dir.display()
        );
        server
            .pg_ctl(&["start", "-o", &options, "-l", &server.log()])
            .unwrap();
        server
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn log(&self) -> String {
        self.dir.join("log").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.data();
        let mut all = vec!["-D", &data, "-w", "-t", "60"];
        all.extend_from_slice(args);
        as_postgres(&self.dir, "pg_ctl", &all)
    }

    /// `pg_ctl restart -m mode`: how long the server was away.
    fn restart(&self, mode: &str) -> Duration {
        let started = Instant::now();
        // With its log file again: else the server writes to (and holds
        // open) pg_ctl's output, which this test reads to the end.
        if let Err(e) = self.pg_ctl(&["restart", "-m", mode, "-l", &self.log()]) {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            panic!("{e}\n{log}");
        }
        started.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One sender: ids `t{thread}_{n}`, each sent until acknowledged (200) and
/// retried on 503 as a provider would, until `stop`.
fn sender(
    inbox: &Inbox,
    thread: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    refused: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .build()
        .unwrap();
    std::thread::spawn(move || {
        for n in 0u64.. {
            let id = format!("t{thread}_{n}");
            let body = bluum_body("order.filled", n);
            loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                match ingestor.ingest(&bluum_headers(&id, &body), &body) {
                    Ok(Ingested::Accepted { .. } | Ingested::Duplicate { .. }) => {
                        acked.lock().unwrap().push(id.clone());
                        break;
                    }
                    Err(e @ IngestError::Storage(_)) => {
                        assert_eq!(e.retry_after(), Some(webhook_inbox::RETRY_AFTER));
                        refused.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => panic!("{id}: {e}"),
                }
            }
        }
    })
}

#[test]
fn acknowledged_deliveries_survive_server_restarts_and_crashes() {
    if let Some(reason) = Server::unavailable() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true, and this machine cannot run a PostgreSQL server of its own: {reason}"
        );
        eprintln!("skipping: {reason}");
        return;
    }
    let server = Server::start();
    let inbox = Inbox::postgres(&server.url())
        .schema("restart")
        .connect()
        .unwrap();
    let handled: Arc<Mutex<HashSet<String>>> = Arc::default();
    let router = {
        let handled = Arc::clone(&handled);
        Router::builder()
            .on("*", move |e: &Event| {
                handled.lock().unwrap().insert(e.id().to_owned());
                Ok(())
            })
            .build()
            .unwrap()
    };
    let config = WorkerConfig::default()
        .threads(4)
        .lease(Duration::from_secs(2));
    let worker = Worker::start(&inbox, router, config).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..4)
        .map(|t| {
            sender(
                &inbox,
                t,
                Arc::clone(&stop),
                Arc::clone(&acked),
                Arc::clone(&refused),
            )
        })
        .collect();
    let acked_now = || acked.lock().unwrap().len();
    let settle = |what: &str| {
        // Until the senders are acknowledged again after a restart.
        let from = acked_now();
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked_now() < from + 50 {
            assert!(
                Instant::now() < deadline,
                "no deliveries acknowledged after {what}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    settle("start");
    let fast = server.restart("fast");
    settle("the fast restart");
    let refused_fast = refused.load(Ordering::Relaxed);
    let immediate = server.restart("immediate");
    settle("the crash");
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.join().unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let refused = refused.load(Ordering::Relaxed);
    eprintln!(
        "{} deliveries acknowledged, {refused} answers 503 ({refused_fast} by the fast restart); \
         server away {fast:?} (fast), {immediate:?} (immediate)",
        acked.len()
    );
    // The restarts were felt: senders were refused, and retried.
    assert!(
        refused_fast > 0 && refused > refused_fast,
        "{refused_fast} {refused}"
    );

    // Every acknowledged delivery is stored: its dedup marker is there (it
    // outlives the event), and so a sender's retry of it is a duplicate.
    let mut client = postgres::Client::connect(&server.url(), postgres::NoTls).unwrap();
    let markers: HashSet<String> = client
        .query("SELECT event_id FROM restart.markers", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !markers.contains(*id)).collect();
    assert!(missing.is_empty(), "acknowledged, then lost: {missing:?}");

    // The worker reconnected and handles all of it: nothing left pending.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = inbox.stats();
        let done = {
            let handled = handled.lock().unwrap();
            acked.iter().all(|id| handled.contains(id))
        };
        if done && stats.pending == 0 && stats.retrying == 0 && stats.dead == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not finish: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(worker.is_running());
    let left: i64 = client
        .query_one("SELECT count(*) FROM restart.events", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    worker.shutdown().unwrap();
    inbox.close().unwrap();
    drop(client);
    drop(server);
}
