//! A Bluum webhook receiver on tiny_http: fully synchronous, a thread per
//! request, no async runtime at all.
//!
//! tiny_http 0.12 sets no timeout on the connections it accepts and gives no
//! way to reach their sockets: on its own, a client that stalls its headers
//! or its body holds a thread and a connection for as long as it likes, and
//! a few of them stop the server answering anyone. So here tiny_http listens
//! on a Unix socket in a private directory, and a small guard (`mod guard`
//! below) owns the public TCP connections: it caps how many are open, closes
//! those whose headers are too slow or that sit idle, and closes a request
//! not answered by its deadline, which also frees the tiny_http thread
//! reading it. (With hyper, axum or actix these are settings.)
//!
//! Still not for a port the internet can reach: tiny_http 0.12 discards an
//! unread body by allocating its declared `Content-Length` at once, so one
//! request declaring 100 GB aborts the process. Put it behind a proxy that
//! caps request bodies, or use the axum, actix or hyper example.
//!
//! ```sh
//! cargo run --example tiny_http -- --port 3000 --store ./webhooks
//! # then, from another terminal (the CLI: `cargo install --path . --features cli`):
//! webhook-inbox send --url http://127.0.0.1:3000/webhooks/bluum --scheme bluum \
//!     --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw --type order.filled --data '{"id":"ord_1"}'
//! ```
//!
//! `--port 0` picks a free port; without `--store` the events go to a fresh
//! private temporary directory, left behind when the example is killed; the secret is `WEBHOOK_SECRET` (default: the
//! test secret above). It answers `200 accepted` (`200 duplicate` when sent
//! again), and the worker prints `handled order.filled <event id> attempt 1`.
//! `--header-timeout-ms`, `--request-deadline-ms` and `--max-connections`
//! override the limits below (the tests shorten them).
//!
//! `--postgres postgres://user:password@host/db` (feature `postgres`) keeps
//! the events in PostgreSQL instead of a directory, in schema `--schema NAME`
//! (default `webhook_inbox`), created or migrated on connect; several copies
//! of the example, on other ports, then share one inbox and its work:
//! `cargo run --example tiny_http --features postgres -- --port 3001 --postgres
//! postgres://hooks:pw@localhost/hooks`. Give `--store` or `--postgres`, not both.

use std::error::Error;
use std::io::Read;
use std::time::Duration;

use tiny_http::{Header, Method, Request, Response, Server};
use webhook_inbox::{
    Event, HandlerResult, Inbox, Ingestor, Reply, Router, Scheme, Verifier, Worker, WorkerConfig,
};

const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How long a client may take to send a request's headers, also how long an
/// idle keep-alive connection stays open. Without it a half-sent request
/// holds its connection, a file descriptor and threads, for as long as the
/// client likes.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take from its first byte to its answer: the body
/// and the ingest. Bluum waits 30 s for an answer and then retries, so a
/// slower answer is wasted anyway; and a body stalled 1 byte short of the
/// limit stops holding its memory and its thread.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// Connections open at once; the next ones wait in the kernel's accept queue.
/// Each costs four threads here (two in the guard, tiny_http's reader, the
/// request's), so this also bounds threads and memory whatever clients do.
const MAX_CONNECTIONS: usize = 256;

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let port: u16 = arg("--port").as_deref().unwrap_or("3000").parse()?;
    let limits = guard::Limits {
        header_timeout: millis_arg("--header-timeout-ms", HEADER_TIMEOUT)?,
        deadline: millis_arg("--request-deadline-ms", REQUEST_DEADLINE)?,
        max_connections: count_arg("--max-connections", MAX_CONNECTIONS)?,
    };
    let mut scratch = None; // without `--store`: a private directory (left behind when killed)
    let inbox = match (arg("--postgres"), arg("--store")) {
        (Some(_), Some(_)) => return Err("give --store DIR or --postgres URL, not both".into()),
        (Some(url), None) => postgres(&url)?,
        (None, Some(path)) => Inbox::open(path)?,
        (None, None) => Inbox::open(scratch.insert(private_dir()?).path())?,
    };
    let private = private_dir()?; // tiny_http's socket: only the guard reaches it
    let secret = std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| TEST_SECRET.to_owned());

    let bluum = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [secret])?)
        .build()?;
    let router = Router::builder().on("*", print_handled).build()?;
    let _worker = Worker::start(&inbox, router, WorkerConfig::default())?; // runs until dropped

    let socket = private.path().join("tiny_http.sock");
    let server = Server::http_unix(&socket)?;
    let public = std::net::TcpListener::bind(("127.0.0.1", port))?;
    println!("listening on http://{}", public.local_addr()?);
    std::thread::scope(|s| {
        s.spawn(|| guard::run(&public, &socket, limits));
        // A thread per request: each connection carries one request at a
        // time, so the guard's cap bounds these too, and a stalled body
        // holds only its own thread, until the guard closes it.
        for request in server.incoming_requests() {
            s.spawn(|| {
                if let Err(e) = receive(&bluum, request) {
                    eprintln!("could not answer: {e}");
                }
            });
        }
    });
    Ok(())
}

fn receive(bluum: &Ingestor, mut request: Request) -> std::io::Result<()> {
    let path = request.url().split('?').next().unwrap_or_default();
    if (request.method(), path) != (&Method::Post, "/webhooks/bluum") {
        return request.respond(Response::from_string("not found").with_status_code(404));
    }
    // The raw bytes, exactly as sent (the signature covers them): never parse and
    // re-serialise the JSON first. One byte over the limit is enough for `ingest`
    // to answer 413.
    let mut body = Vec::new();
    let limit = bluum.max_body() as u64 + 1;
    if request
        .as_reader()
        .take(limit)
        .read_to_end(&mut body)
        .is_err()
    {
        return request.respond(Response::from_string("unreadable body").with_status_code(400));
    }
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| (h.field.to_string(), h.value.to_string()))
        .collect();
    let reply = Reply::from(&bluum.ingest(&headers, &body));
    let mut response = Response::from_string(reply.body).with_status_code(reply.status);
    if let Some(secs) = reply.retry_after_secs
        && let Ok(header) = Header::from_bytes("Retry-After", secs.to_string())
    {
        response.add_header(header);
    }
    request.respond(response)
}

/// The worker's handler for every event type.
fn print_handled(e: &Event) -> HandlerResult {
    let (event_type, id) = (e.event_type(), e.id());
    println!("handled {event_type} {id} attempt {}", e.attempt());
    Ok(())
}

/// The value after `name` on the command line.
fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

/// The duration in milliseconds after `name`, or `default`; never zero.
fn millis_arg(name: &str, default: Duration) -> Result<Duration, String> {
    count_arg(name, 0).map(|ms| match ms {
        0 => default,
        ms => Duration::from_millis(ms as u64),
    })
}

/// The positive number after `name`, or `default`.
fn count_arg(name: &str, default: usize) -> Result<usize, String> {
    match arg(name).map(|n| n.parse::<usize>()) {
        None => Ok(default),
        Some(Ok(n)) if n > 0 => Ok(n),
        Some(_) => Err(format!("{name} takes a whole number above 0")),
    }
}

/// The inbox in PostgreSQL at `url` (`--postgres`), in `--schema` (default
/// `webhook_inbox`), created or migrated on connect. Several replicas may
/// share it.
#[cfg(feature = "postgres")]
fn postgres(url: &str) -> Result<Inbox, Box<dyn Error + Send + Sync>> {
    let schema = arg("--schema").unwrap_or_else(|| webhook_inbox::postgres::DEFAULT_SCHEMA.into());
    Ok(Inbox::postgres(url).schema(schema).connect()?)
}

#[cfg(not(feature = "postgres"))]
fn postgres(_url: &str) -> Result<Inbox, Box<dyn Error + Send + Sync>> {
    Err("--postgres needs the `postgres` feature: cargo run --example tiny_http --features postgres -- --postgres URL".into())
}

/// A fresh directory only this user can open: an unguessable name, created
/// exclusively, mode 0700. Never a predictable /tmp path, which another local
/// user could create first.
fn private_dir() -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("webhook-inbox-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

/// The public side: TCP connections relayed to tiny_http's Unix socket, byte
/// for byte, with the limits tiny_http cannot set itself. It reads HTTP only
/// enough to find where a request's headers end (the first blank line).
mod guard {
    use std::io::{self, ErrorKind, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
    use std::time::{Duration, Instant};

    #[derive(Clone, Copy)]
    pub struct Limits {
        /// From a request's first byte to the end of its headers; and how
        /// long a connection may sit idle between requests.
        pub header_timeout: Duration,
        /// From a request's first byte to the first byte of its answer.
        pub deadline: Duration,
        /// Connections relayed at once.
        pub max_connections: usize,
    }

    /// Accepts connections on `public`, at most `max_connections` at once,
    /// and relays each to the server listening on `inner`.
    pub fn run(public: &TcpListener, inner: &Path, limits: Limits) {
        let slots = Arc::new(Slots {
            free: Mutex::new(limits.max_connections),
            freed: Condvar::new(),
        });
        loop {
            // Wait for a free slot before accepting: at the cap, new
            // connections queue in the kernel instead of costing threads.
            let slot = Slots::take(&slots);
            // A failed accept (out of file descriptors, a reset) must not stop the server.
            let Ok((client, _)) = public.accept() else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let inner = inner.to_owned();
            std::thread::spawn(move || {
                let _ = relay(client, &inner, limits);
                drop(slot);
            });
        }
    }

    /// Relays one connection until either side closes it or a limit is hit,
    /// then closes both sides: tiny_http's thread reading it sees the end
    /// of the stream and moves on.
    fn relay(client: TcpStream, inner: &Path, limits: Limits) -> io::Result<()> {
        let server = UnixStream::connect(inner)?;
        // Neither side may block the other by not reading; and tiny_http's
        // longest rightful silence is an idle spell, then a request.
        client.set_write_timeout(Some(limits.deadline))?;
        server.set_write_timeout(Some(limits.deadline))?;
        server.set_read_timeout(Some(limits.header_timeout + limits.deadline))?;
        let answered = Arc::new(Mutex::new(None));
        let answers = {
            let (mut from, mut to) = (server.try_clone()?, client.try_clone()?);
            let answered = Arc::clone(&answered);
            std::thread::spawn(move || {
                let mut chunk = [0; 8192];
                while let Ok(n @ 1..) = from.read(&mut chunk) {
                    *lock(&answered) = Some(Instant::now());
                    if to.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Both);
            })
        };
        let ended = forward(&client, &server, &answered, limits);
        if let Ok(Ended::ClientDone) = ended {
            // The client sent its last request: let its answer through.
            let _ = server.shutdown(Shutdown::Write);
        } else {
            let _ = server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
        }
        let _ = answers.join();
        let _ = server.shutdown(Shutdown::Both);
        ended.map(drop)
    }

    enum Ended {
        /// The client closed its side.
        ClientDone,
        /// A limit was hit.
        TooSlow,
    }

    /// Where the connection is, as far as the limits care.
    enum Phase {
        /// Between requests, since the instant held.
        Idle(Instant),
        /// Reading a request's headers, begun at the instant held.
        Headers(Instant, BlankLine),
        /// Headers read; the body and the answer, for the request begun at the instant held.
        Waiting(Instant),
    }

    /// Copies the client's bytes to tiny_http while the limits hold.
    fn forward(
        mut client: &TcpStream,
        mut server: &UnixStream,
        answered: &Mutex<Option<Instant>>,
        limits: Limits,
    ) -> io::Result<Ended> {
        let mut phase = Phase::Idle(Instant::now());
        let mut chunk = [0; 8192];
        loop {
            if let Some(at) = lock(answered).take() {
                phase = Phase::Idle(at); // HTTP/1.1: the answer ends the request
            }
            let limit = match phase {
                Phase::Idle(since) | Phase::Headers(since, _) => since + limits.header_timeout,
                Phase::Waiting(since) => since + limits.deadline,
            };
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Ended::TooSlow);
            }
            // Wake at least every header timeout to notice an answer.
            client.set_read_timeout(Some(left.min(limits.header_timeout)))?;
            let n = match client.read(&mut chunk) {
                Ok(0) => return Ok(Ended::ClientDone),
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            phase = match phase {
                Phase::Idle(_) => Phase::Headers(Instant::now(), BlankLine::default()),
                other => other,
            };
            if let Phase::Headers(since, ref mut blank) = phase
                && blank.ends_in(&chunk[..n])
            {
                phase = Phase::Waiting(since);
            }
            server.write_all(&chunk[..n])?;
        }
    }

    /// Finds `\r\n\r\n`, the end of a request's headers, across chunks.
    #[derive(Default)]
    struct BlankLine(u8);

    impl BlankLine {
        fn ends_in(&mut self, bytes: &[u8]) -> bool {
            for &byte in bytes {
                self.0 = match (self.0, byte) {
                    (3, b'\n') => return true,
                    (1, b'\n') => 2,
                    (2, b'\r') => 3,
                    (_, b'\r') => 1,
                    _ => 0,
                };
            }
            false
        }
    }

    /// A counting semaphore: how many more connections may be relayed.
    struct Slots {
        free: Mutex<usize>,
        freed: Condvar,
    }

    /// One connection's place; given back when dropped.
    struct Slot(Arc<Slots>);

    impl Slots {
        fn take(slots: &Arc<Self>) -> Slot {
            let mut free = lock(&slots.free);
            while *free == 0 {
                free = slots
                    .freed
                    .wait(free)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            *free -= 1;
            Slot(Arc::clone(slots))
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            *lock(&self.0.free) += 1;
            self.0.freed.notify_one();
        }
    }

    /// The data behind a lock, also if a thread panicked holding it (each
    /// critical section here is one assignment, so it is still consistent).
    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
