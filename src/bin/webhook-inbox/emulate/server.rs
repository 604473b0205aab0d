//! The emulator's HTTP server: axum's router served connection by connection
//! through hyper, with limits a hostile or broken client cannot outlast.
//!
//! - At most `max_connections` connections are open at once; more wait in
//!   the listen backlog, holding none of the emulator's descriptors.
//! - A request's headers must arrive within `header_timeout` (which also
//!   closes a connection left idle that long).
//! - The credential is checked from the headers, before any of the body is
//!   read: a client without one never gets a byte of its upload read.
//! - The body must arrive within `request_timeout` (408 otherwise), and an
//!   answer left unread that long closes the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::auth::Keys;
use super::outbox::log;
use super::reply::{ApiError, Reply};
use super::routes::{Api, Request};

/// How long requests in progress may take to finish once asked to stop.
pub const GRACE: Duration = Duration::from_secs(5);
/// Largest request body the API reads.
const MAX_REQUEST: usize = 1 << 20;
/// Largest too-large body still read (and dropped, never kept) so its sender
/// sees the answer (400 `BLUM-400-008`).
const DRAIN_LIMIT: usize = 8 << 20;
/// Pause after a failed accept (out of descriptors, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The server's limits (flags of `webhook-inbox emulate`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: u32,
}

/// Answers requests until SIGINT or SIGTERM, then stops taking connections
/// and gives open ones [`GRACE`] to finish (a client that never finishes its
/// request does not hold the emulator up). Stopping abruptly loses nothing:
/// every change is durable before it is acknowledged.
pub async fn serve(
    listener: std::net::TcpListener,
    api: Arc<Api>,
    keys: Arc<Keys>,
    limits: Limits,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (api, keys) = (Arc::clone(&api), Arc::clone(&keys));
        async move { answer(api, &keys, limits, request).await }
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        log(&format!("{signal}: stopping"));
        let _ = stop.send(true);
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections as usize));
    let mut stopping = stopped.clone();
    loop {
        // A slot first, then the connection: past the cap, clients wait in
        // the kernel's backlog rather than in our descriptor table.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = until_stopped(&mut stopping) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    log(&format!("cannot accept a connection: {e}"));
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = until_stopped(&mut stopping) => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let io = hyper_util::rt::TokioIo::new(Unstalled::new(stream, limits.request_timeout));
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let connection = builder.serve_connection(io, service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = until_stopped(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    // Every slot back means every connection closed.
    if tokio::time::timeout(GRACE, slots.acquire_many(limits.max_connections))
        .await
        .is_err()
    {
        log("open connections did not finish in time; stopping anyway");
    }
    Ok(())
}

async fn until_stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// One request: the credential checked from the headers; then the body read
/// up to [`MAX_REQUEST`] within the request timeout (a larger declared or
/// actual length is refused without keeping it); then the routes, on the
/// blocking pool (they write to disk).
async fn answer(
    api: Arc<Api>,
    keys: &Keys,
    limits: Limits,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let authorization = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let scope = match keys.check(authorization) {
        Ok(scope) => scope,
        // Not a byte of the body is read for a client without a credential.
        Err(refusal) => {
            return response(&ApiError::unauthenticated(refusal.code(), refusal.message()).into());
        }
    };
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&n| n > MAX_REQUEST as u64) {
        // A client that is still sending would see its connection cut rather
        // than the answer: take (and drop) a body of a plausible size first; an
        // absurd one is refused before reading a byte of it.
        if declared <= DRAIN_LIMIT as u64 {
            let _ = tokio::time::timeout(limits.request_timeout, drain(body, DRAIN_LIMIT)).await;
        }
        return response(&ApiError::too_large(MAX_REQUEST).into());
    }
    let body = match tokio::time::timeout(
        limits.request_timeout,
        axum::body::to_bytes(body, MAX_REQUEST),
    )
    .await
    {
        Err(_) => return response(&too_slow(limits.request_timeout).into()),
        Ok(Err(_)) => return response(&ApiError::too_large(MAX_REQUEST).into()),
        Ok(Ok(body)) => body,
    };
    let method = parts.method.as_str().to_owned();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let reply = tokio::task::spawn_blocking(move || {
        api.handle(&Request {
            method: &method,
            target: &target,
            scope,
            body: &body,
        })
    })
    .await
    .unwrap_or_else(|e| ApiError::internal(e).into());
    response(&reply)
}

/// Reads and drops up to `limit` bytes of `body`, holding one frame at a time.
async fn drain(mut body: axum::body::Body, limit: usize) {
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            seen = seen.saturating_add(data.len());
            if seen > limit {
                return;
            }
        }
    }
}

/// 408: the body did not arrive in time.
fn too_slow(limit: Duration) -> ApiError {
    ApiError {
        status: 408,
        code: "BLUM-408-001",
        message: format!(
            "Request timeout: the body did not arrive within {}.",
            crate::duration::display(limit)
        ),
        param: None,
    }
}

fn response(reply: &Reply) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut body = serde_json::to_vec_pretty(&reply.body).unwrap_or_default();
    body.push(b'\n');
    let status = axum::http::StatusCode::from_u16(reply.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A connection whose writes fail once they have made no progress for
/// `limit`: a client that stops reading its answers is let go.
struct Unstalled {
    stream: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Unstalled {
    fn new(stream: TcpStream, limit: Duration) -> Self {
        Self {
            stream,
            limit,
            stalled: None,
        }
    }

    /// `write`'s outcome, or a timeout once it has been pending for `limit`.
    fn bounded<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Poll::Ready(done) = write(Pin::new(&mut self.stream), cx) {
            self.stalled = None;
            return Poll::Ready(done);
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(stalled.as_mut().poll(cx));
        self.stalled = None;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading",
        )))
    }
}

impl AsyncRead for Unstalled {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Unstalled {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.bounded(cx, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.bounded(cx, |stream, cx| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.bounded(cx, AsyncWrite::poll_flush)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.bounded(cx, AsyncWrite::poll_shutdown)
    }
}
