//! A Bluum webhook receiver on actix-web 4, ingest on actix's blocking pool.
//!
//! ```sh
//! cargo run --example actix -- --port 3000 --store ./webhooks
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

use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use webhook_inbox::{
    Event, HandlerResult, HeaderSource, Inbox, Ingestor, Reply, Router, Scheme, Verifier, Worker,
    WorkerConfig,
};

const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[actix_web::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let port: u16 = arg("--port").as_deref().unwrap_or("3000").parse()?;
    let store = arg("--store").map_or_else(
        || std::env::temp_dir().join(format!("webhook-inbox-actix-{}", std::process::id())),
        PathBuf::from,
    );
    let secret = std::env::var("WEBHOOK_SECRET").unwrap_or_else(|_| TEST_SECRET.to_owned());

    let inbox = Inbox::open(&store)?;
    let bluum = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [secret])?)
        .build()?;
    let router = Router::builder().on("*", print_handled).build()?;
    let _worker = Worker::start(&inbox, router, WorkerConfig::default())?; // runs until dropped

    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(bluum.clone()))
            .app_data(web::PayloadConfig::new(bluum.max_body())) // actix's default is 256 KiB
            .route("/webhooks/bluum", web::post().to(receive))
    })
    .bind(("127.0.0.1", port))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    server.run().await?;
    Ok(())
}

// `web::Bytes` is the raw body, exactly as sent (the signature covers it): never
// parse and re-serialise the JSON first.
async fn receive(
    bluum: web::Data<Ingestor>,
    req: HttpRequest,
    body: web::Bytes,
) -> actix_web::Result<HttpResponse> {
    let headers = ActixHeaders(req.headers().clone());
    // `ingest` waits for about one fdatasync: keep it off the async threads.
    let reply = web::block(move || Reply::from(&bluum.ingest(&headers, &body)))
        .await
        .unwrap_or_else(|_| Reply::unavailable());
    let mut response = HttpResponse::build(
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    if let Some(secs) = reply.retry_after_secs {
        response.insert_header((header::RETRY_AFTER, secs));
    }
    Ok(response.body(reply.body))
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
