//! A Bluum webhook receiver on axum, with the ready-made handler
//! `webhook_inbox::axum::receive` (feature `axum`), the admin dashboard, API
//! and metrics mounted under `/admin` (feature `admin`), and the timeouts
//! and the connection cap a server facing the internet needs.
//!
//! ```sh
//! WEBHOOK_INBOX_ADMIN_TOKEN=$(openssl rand -hex 16) \
//!     cargo run --example axum --features admin -- --port 3000 --store ./webhooks
//! # the dashboard: http://127.0.0.1:3000/admin (any user name, the token as password)
//! # then, from another terminal (the CLI: `cargo install --path . --features cli`):
//! webhook-inbox send --url http://127.0.0.1:3000/webhooks/bluum --scheme bluum \
//!     --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw --type order.filled --data '{"id":"ord_1"}'
//! ```
//!
//! `--port 0` picks a free port; without `--store` the events go to a fresh
//! private temporary directory, removed on Ctrl-C; the secret is
//! `WEBHOOK_SECRET` (default: the test secret above). It answers `200
//! accepted` (`200 duplicate` when sent again), and the worker prints `handled
//! order.filled <event id> attempt 1`. `--header-timeout-ms`,
//! `--request-deadline-ms` and `--max-connections` override the limits below
//! (the tests shorten them).
//!
//! `--postgres postgres://user:password@host/db` (feature `postgres`) keeps
//! the events in PostgreSQL instead of a directory, in schema `--schema NAME`
//! (default `webhook_inbox`), created or migrated on connect; several copies
//! of the example, on other ports, then share one inbox and its work:
//! `cargo run --example axum --features admin,postgres -- --port 3001 --postgres
//! postgres://hooks:pw@localhost/hooks`. Give `--store` or `--postgres`, not both.
//!
//! The admin routes need `WEBHOOK_INBOX_ADMIN_TOKEN` (Bearer, or Basic with
//! the token as password); without it they serve loopback clients only
//! (this example listens on 127.0.0.1 anyway). `webhook-inbox --url
//! http://127.0.0.1:3000/admin stats` (and `list`, `show`, `replay`,
//! `purge`) works against it.
//!
//! `axum::serve` has no header-read timeout, so the app is served with
//! hyper's connection builder directly, which has one.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use webhook_inbox::admin::{self, Auth};
use webhook_inbox::{Event, HandlerResult, Inbox, Router, Scheme, Verifier, Worker, WorkerConfig};

const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How long a client may take to send a request's headers, also how long an
/// idle keep-alive connection stays open. Without it a half-sent request
/// holds its connection, and a file descriptor, for as long as the client likes.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take from its headers to its answer: the body and
/// the ingest. Bluum waits 30 s for an answer and then retries, so a slower
/// answer is wasted anyway; and a body stalled 1 byte short of the limit
/// stops holding its memory.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// Connections open at once; the next ones wait in the kernel's accept queue.
/// Keeps file descriptors and memory bounded whatever the clients do.
const MAX_CONNECTIONS: usize = 1024;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let port: u16 = arg("--port").as_deref().unwrap_or("3000").parse()?;
    let header_timeout = millis_arg("--header-timeout-ms", HEADER_TIMEOUT)?;
    let deadline = millis_arg("--request-deadline-ms", REQUEST_DEADLINE)?;
    let max_connections = count_arg("--max-connections", MAX_CONNECTIONS)?;
    let mut scratch = None; // without `--store`: a private directory, removed when dropped
    let inbox = match (arg("--postgres"), arg("--store")) {
        (Some(_), Some(_)) => return Err("give --store DIR or --postgres URL, not both".into()),
        (Some(url), None) => postgres(&url)?,
        (None, Some(path)) => Inbox::open(path)?,
        (None, None) => Inbox::open(scratch.insert(private_dir()?).path())?,
    };
    let secret = std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| TEST_SECRET.to_owned());

    let bluum = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [secret])?)
        .build()?;
    let router = Router::builder().on("*", print_handled).build()?;
    let _worker = Worker::start(&inbox, router, WorkerConfig::default())?; // runs until dropped

    // `receive` takes the raw body bytes (never parsed JSON: the signature covers
    // the exact bytes) and runs the durable ingest on tokio's blocking pool.
    // The admin routes: a token from the environment, else loopback clients only.
    let auth = match std::env::var("WEBHOOK_INBOX_ADMIN_TOKEN") {
        Ok(token) if !token.is_empty() => Auth::token(token)?,
        _ => Auth::loopback_only(),
    };
    let app = axum::Router::new()
        .route(
            "/webhooks/bluum",
            post(webhook_inbox::axum::receive).with_state(bluum),
        )
        .nest("/admin", admin::router(&inbox, auth))
        .layer(axum::middleware::from_fn_with_state(deadline, within));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let connections = Arc::new(Semaphore::new(max_connections));
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        // Wait for a free slot before accepting: at the cap, new connections
        // queue in the kernel instead of costing a descriptor and a task each.
        let next = async {
            let slot = Arc::clone(&connections).acquire_owned().await;
            (slot, listener.accept().await)
        };
        let (slot, accepted) = tokio::select! {
            next = next => next,
            _ = &mut ctrl_c => break,
        };
        let slot = slot?; // an error only if the semaphore were closed
        // A failed accept (out of file descriptors, a reset) must not stop the server.
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // The peer's address, for the admin's loopback check.
        let app = app
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new()) // hyper's timeouts need a timer to run
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
        tokio::spawn(async move {
            let _ = connection.await; // a client that went away, or timed out
            drop(slot);
        });
    }
    Ok(()) // the worker stops, then the inbox closes, then a temporary store is removed
}

/// Middleware: the request (its body and the ingest) gets `deadline` to be
/// answered, else 408 and the connection closed.
async fn within(State(deadline): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let close = [(header::CONNECTION, "close")];
            (StatusCode::REQUEST_TIMEOUT, close, "request timeout").into_response()
        }
    }
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
/// share it. Its queries run on the backend's own threads, so calling it
/// here, on the runtime, is safe (it blocks once, at start-up).
#[cfg(feature = "postgres")]
fn postgres(url: &str) -> Result<Inbox, Box<dyn Error>> {
    let schema = arg("--schema").unwrap_or_else(|| webhook_inbox::postgres::DEFAULT_SCHEMA.into());
    Ok(Inbox::postgres(url).schema(schema).connect()?)
}

#[cfg(not(feature = "postgres"))]
fn postgres(_url: &str) -> Result<Inbox, Box<dyn Error>> {
    Err("--postgres needs the `postgres` feature: cargo run --example axum --features admin,postgres -- --postgres URL".into())
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
