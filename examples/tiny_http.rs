//! A Bluum webhook receiver on tiny_http: fully synchronous, a few threads
//! each looping on `server.recv()`, no async runtime at all.
//!
//! Not for a port the internet can reach: tiny_http 0.12 discards an unread
//! body by allocating its declared `Content-Length` at once, so one request
//! declaring 100 GB aborts the process. Put it behind a proxy that caps
//! request bodies, or use the axum, actix or hyper example.
//!
//! ```sh
//! cargo run --example tiny_http -- --port 3000 --store ./webhooks
//! # then, from another terminal (the CLI: `cargo install --path . --features cli`):
//! webhook-inbox send --url http://127.0.0.1:3000/webhooks/bluum --scheme bluum \
//!     --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw --type order.filled --data '{"id":"ord_1"}'
//! ```
//!
//! `--port 0` picks a free port; without `--store` the events go to a fresh
//! temporary directory; the secret is `WEBHOOK_SECRET` (default: the test secret
//! above). It answers `200 accepted` (`200 duplicate` when sent again), and the
//! worker prints `handled order.filled <event id> attempt 1`.

use std::error::Error;
use std::io::Read;
use std::path::PathBuf;

use tiny_http::{Header, Method, Request, Response, Server};
use webhook_inbox::{
    Event, HandlerResult, Inbox, Ingestor, Reply, Router, Scheme, Verifier, Worker, WorkerConfig,
};

const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const THREADS: usize = 8; // requests handled at once; concurrent ingests share one fdatasync

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let port: u16 = arg("--port").as_deref().unwrap_or("3000").parse()?;
    let store = arg("--store").map_or_else(
        || std::env::temp_dir().join(format!("webhook-inbox-tiny-http-{}", std::process::id())),
        PathBuf::from,
    );
    let secret = std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| TEST_SECRET.to_owned());

    let inbox = Inbox::open(&store)?;
    let bluum = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [secret])?)
        .build()?;
    let router = Router::builder().on("*", print_handled).build()?;
    let _worker = Worker::start(&inbox, router, WorkerConfig::default())?; // runs until dropped

    let server = Server::http(("127.0.0.1", port))?;
    let addr = server.server_addr().to_ip().ok_or("not an IP address")?;
    println!("listening on http://{addr}");
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                while let Ok(request) = server.recv() {
                    if let Err(e) = receive(&bluum, request) {
                        eprintln!("could not answer: {e}");
                    }
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
