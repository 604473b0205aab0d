//! A Bluum webhook receiver on actix-web 4, ingest on actix's blocking pool,
//! with the timeouts and the connection cap a server facing the internet needs.
//!
//! ```sh
//! cargo run --example actix -- --port 3000 --store ./webhooks
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
//! `cargo run --example actix --features postgres -- --port 3001 --postgres
//! postgres://hooks:pw@localhost/hooks`. Give `--store` or `--postgres`, not both.

use std::error::Error;
use std::time::Duration;

use actix_web::http::{KeepAlive, StatusCode, header};
use actix_web::{App, FromRequest, HttpRequest, HttpResponse, HttpServer, web};
use webhook_inbox::{
    Event, HandlerResult, HeaderSource, Inbox, Ingestor, Reply, Router, Scheme, Verifier, Worker,
    WorkerConfig,
};

const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How long a client may take to send a request's headers, also how long an
/// idle keep-alive connection stays open. Without it a half-sent request
/// holds its connection, and a file descriptor, for as long as the client likes.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take from its headers to its answer: the body and
/// the ingest. Bluum waits 30 s for an answer and then retries, so a slower
/// answer is wasted anyway; and a body stalled 1 byte short of the limit
/// stops holding its memory. actix has no body timeout of its own.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// Connections open at once (shared out among actix's workers); the next ones
/// wait in the kernel's accept queue. Keeps file descriptors and memory
/// bounded whatever the clients do.
const MAX_CONNECTIONS: usize = 1024;

/// The route's deadline, as app data.
#[derive(Clone, Copy)]
struct Deadline(Duration);

#[actix_web::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let port: u16 = arg("--port").as_deref().unwrap_or("3000").parse()?;
    let header_timeout = millis_arg("--header-timeout-ms", HEADER_TIMEOUT)?;
    let deadline = Deadline(millis_arg("--request-deadline-ms", REQUEST_DEADLINE)?);
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

    // actix's cap is per worker thread: share the total out, never above it.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let workers = cores.clamp(1, max_connections);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(bluum.clone()))
            .app_data(web::PayloadConfig::new(bluum.max_body())) // actix's default is 256 KiB
            .app_data(deadline)
            .route("/webhooks/bluum", web::post().to(receive))
    })
    .workers(workers)
    .max_connections(max_connections / workers)
    .client_request_timeout(header_timeout) // the first request's headers
    .keep_alive(KeepAlive::Timeout(header_timeout)) // the next request's, on a kept-alive connection
    .bind(("127.0.0.1", port))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    server.run().await?;
    Ok(()) // the worker stops, then the inbox closes, then a temporary store is removed
}

async fn receive(
    bluum: web::Data<Ingestor>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    // `web::Bytes` is the raw body, exactly as sent (the signature covers it):
    // never parse and re-serialise the JSON first. It is read here rather than
    // as an argument so that reading it has a deadline.
    let Deadline(deadline) = req
        .app_data()
        .copied()
        .unwrap_or(Deadline(REQUEST_DEADLINE));
    let started = std::time::Instant::now();
    let read = web::Bytes::from_request(&req, &mut payload.into_inner());
    let body = match actix_web::rt::time::timeout(deadline, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Ok(e.error_response()), // 413 over the limit, 400 unreadable
        Err(_) => return Ok(request_timeout()),
    };
    let headers = ActixHeaders(req.headers().clone());
    // `ingest` waits for about one fdatasync: keep it off the async threads.
    let ingest = web::block(move || Reply::from(&bluum.ingest(&headers, &body)));
    let left = deadline.saturating_sub(started.elapsed());
    let reply = match actix_web::rt::time::timeout(left, ingest).await {
        Ok(done) => done.unwrap_or_else(|_| Reply::unavailable()),
        Err(_) => return Ok(request_timeout()),
    };
    let mut response = HttpResponse::build(
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    if let Some(secs) = reply.retry_after_secs {
        response.insert_header((header::RETRY_AFTER, secs));
    }
    Ok(response.body(reply.body))
}

/// 408, and the connection closed.
fn request_timeout() -> HttpResponse {
    HttpResponse::RequestTimeout()
        .force_close()
        .body("request timeout")
}

/// actix-web has its own header map type: tell `ingest` how to read it.
struct ActixHeaders(header::HeaderMap);

impl HeaderSource for ActixHeaders {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(|value| value.as_bytes())
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
    Err("--postgres needs the `postgres` feature: cargo run --example actix --features postgres -- --postgres URL".into())
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
