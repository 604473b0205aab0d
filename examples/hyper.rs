//! A Bluum webhook receiver on bare hyper 1 (no framework): an HTTP/1 server,
//! the body collected with a size limit, ingest on tokio's blocking pool.
//!
//! ```sh
//! cargo run --example hyper -- --port 3000 --store ./webhooks
//! # then, from another terminal (the CLI: `cargo install --path . --features cli`):
//! webhook-inbox send --url http://127.0.0.1:3000/webhooks/bluum --scheme bluum \
//!     --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw --type order.filled --data '{"id":"ord_1"}'
//! ```
//!
//! `--port 0` picks a free port; without `--store` the events go to a fresh
//! temporary directory; the secret is `WEBHOOK_SECRET` (default: the test secret
//! above). It answers `200 accepted` (`200 duplicate` when sent again), and the
//! worker prints `handled order.filled <event id> attempt 1`.

use std::convert::Infallible;
use std::error::Error;
use std::path::PathBuf;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use webhook_inbox::{
    Event, HandlerResult, Inbox, Ingestor, Reply, Router, Scheme, Verifier, Worker, WorkerConfig,
};

type HttpResponse = Response<Full<Bytes>>;

const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let port: u16 = arg("--port").as_deref().unwrap_or("3000").parse()?;
    let store = arg("--store").map_or_else(
        || std::env::temp_dir().join(format!("webhook-inbox-hyper-{}", std::process::id())),
        PathBuf::from,
    );
    let secret = std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| TEST_SECRET.to_owned());

    let inbox = Inbox::open(&store)?;
    let bluum = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [secret])?)
        .build()?;
    let router = Router::builder().on("*", print_handled).build()?;
    let _worker = Worker::start(&inbox, router, WorkerConfig::default())?; // runs until dropped

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        // A failed accept (out of file descriptors, a reset) must not stop the server.
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let bluum = bluum.clone();
        let service = hyper::service::service_fn(move |req| receive(bluum.clone(), req));
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service),
        );
    }
}

async fn receive(bluum: Ingestor, req: Request<Incoming>) -> Result<HttpResponse, Infallible> {
    if (req.method(), req.uri().path()) != (&Method::POST, "/webhooks/bluum") {
        return Ok(respond(404, None, "not found"));
    }
    let (parts, body) = req.into_parts();
    // The raw bytes, exactly as sent (the signature covers them): never parse and
    // re-serialise the JSON first. Collect at most the ingestor's limit.
    let body = match Limited::new(body, bluum.max_body()).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Ok(respond(413, None, "body too large")),
        Err(_) => return Ok(respond(400, None, "unreadable body")),
    };
    // `ingest` waits for about one fdatasync: keep it off the async threads.
    let reply =
        tokio::task::spawn_blocking(move || Reply::from(&bluum.ingest(&parts.headers, &body)))
            .await
            .unwrap_or_else(|_| Reply::unavailable());
    Ok(respond(reply.status, reply.retry_after_secs, reply.body))
}

fn respond(status: u16, retry_after_secs: Option<u64>, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
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
