//! The admin router served over real HTTP on 127.0.0.1, a store with
//! events in every state, and a blocking client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use webhook_inbox::admin::Admin;
use webhook_inbox::{
    Backoff, Event, EventQuery, EventState, HandlerError, Inbox, Ingested, Ingestor, Router,
    Scheme, Verifier, Worker, WorkerConfig,
};

use crate::common::{SECRET, bluum_headers};

/// A running axum server with the admin routes nested under `/admin`.
pub struct Served {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Serves `admin` for `inbox` (with peer addresses, for loopback-only auth).
    pub fn start(inbox: &Inbox, admin: Admin) -> Self {
        Self::start_with(inbox, admin, true)
    }

    pub fn start_with(inbox: &Inbox, admin: Admin, connect_info: bool) -> Self {
        let routes: axum::Router = axum::Router::new().nest("/admin", admin.router(inbox).unwrap());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let shutdown = async {
                    let _ = stopped.await;
                };
                if connect_info {
                    axum::serve(
                        listener,
                        routes.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(shutdown)
                    .await
                    .unwrap();
                } else {
                    axum::serve(listener, routes)
                        .with_graceful_shutdown(shutdown)
                        .await
                        .unwrap();
                }
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            base: format!("http://{addr}/admin"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        self.base
            .trim_start_matches("http://")
            .trim_end_matches("/admin")
            .to_owned()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An answer: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// One request; `body` is `(content type, bytes)`.
pub fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Answer {
    let agent = agent();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        builder = builder.header(*n, *v);
    }
    let mut response = match body {
        Some((ct, bytes)) => agent
            .run(
                builder
                    .header("content-type", ct)
                    .body(bytes.to_vec())
                    .unwrap(),
            )
            .unwrap(),
        None => agent.run(builder.body(()).unwrap()).unwrap(),
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

pub fn bluum(inbox: &Inbox) -> Ingestor {
    inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .build()
        .unwrap()
}

/// Ingests one signed delivery with `body`; asserts it was accepted.
pub fn deliver(ingestor: &Ingestor, id: &str, body: &[u8]) {
    let outcome = ingestor.ingest(&bluum_headers(id, body), body).unwrap();
    assert!(matches!(outcome, Ingested::Accepted { .. }), "{outcome:?}");
}

/// A Bluum envelope of type `event_type`.
pub fn envelope(event_type: &str, n: u64) -> Vec<u8> {
    format!(
        r#"{{"event":"{event_type}","timestamp":"2026-11-28T14:00:00Z","data":{{"id":"ord_{n}"}}}}"#
    )
    .into_bytes()
}

/// A worker whose handlers fail for good while `failing` is set.
pub fn worker(inbox: &Inbox, failing: Arc<AtomicBool>) -> Worker {
    let router = Router::builder()
        .on("*", move |e: &Event| {
            if failing.load(Ordering::SeqCst) || e.event_type().starts_with("always.") {
                Err(HandlerError::permanent(format!(
                    "ledger refused {}",
                    e.id()
                )))
            } else {
                Ok(())
            }
        })
        .build()
        .unwrap();
    let config = WorkerConfig::default()
        .threads(2)
        .backoff(Backoff::exponential(
            Duration::from_millis(10),
            Duration::from_millis(10),
            1,
        ));
    Worker::start(inbox, router, config).unwrap()
}

/// Waits (up to 20 s) for `done`.
pub fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn dead_count(inbox: &Inbox) -> usize {
    inbox
        .events(&EventQuery::dead().limit(10_000))
        .unwrap()
        .events
        .len()
}

pub fn state_of(inbox: &Inbox, id: &str) -> Option<EventState> {
    inbox.event(id).unwrap().map(|e| e.state)
}
