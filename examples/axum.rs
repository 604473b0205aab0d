//! A Bluum webhook receiver on axum, with the ready-made handler
//! `webhook_inbox::axum::receive` (feature `axum`).
//!
//! ```sh
//! cargo run --example axum --features axum -- --port 3000 --store ./webhooks
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
use std::path::PathBuf;

use axum::routing::post;
use webhook_inbox::{Event, HandlerResult, Inbox, Router, Scheme, Verifier, Worker, WorkerConfig};

const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let port: u16 = arg("--port").as_deref().unwrap_or("3000").parse()?;
    let store = arg("--store").map_or_else(
        || std::env::temp_dir().join(format!("webhook-inbox-axum-{}", std::process::id())),
        PathBuf::from,
    );
    let secret = std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| TEST_SECRET.to_owned());

    let inbox = Inbox::open(&store)?;
    let bluum = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [secret])?)
        .build()?;
    let router = Router::builder().on("*", print_handled).build()?;
    let _worker = Worker::start(&inbox, router, WorkerConfig::default())?; // runs until dropped

    // `receive` takes the raw body bytes (never parsed JSON: the signature covers
    // the exact bytes) and runs the durable ingest on tokio's blocking pool.
    let app = axum::Router::new().route(
        "/webhooks/bluum",
        post(webhook_inbox::axum::receive).with_state(bluum),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    axum::serve(listener, app)
        .with_graceful_shutdown(ctrl_c)
        .await?;
    Ok(()) // the worker stops, then the inbox closes
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
