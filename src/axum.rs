//! A ready-made [axum](https://docs.rs/axum/0.8) handler (feature `axum`): one
//! line per provider route.
//!
//! [`receive`] takes the [`Ingestor`] as route state, the request's headers
//! and its raw body, runs [`Ingestor::ingest`] on tokio's blocking pool (it
//! waits for about one `fdatasync`) and answers with the [`Reply`]: its
//! status, its `Retry-After` header when set, and its plain-text body. A
//! [`Reply`] is also an [`IntoResponse`], for handlers of your own.
//!
//! Serving: `axum::serve` has no header-read timeout, no body deadline and
//! no connection cap, so a few clients that send half a request and stop
//! hold connections and memory for as long as they like. On a port the
//! internet reaches, serve the router with hyper's connection builder
//! (`.timer(TokioTimer::new()).header_read_timeout(..)`), wrap requests in a
//! `tokio::time::timeout` middleware and cap connections with a semaphore
//! around `accept`: `examples/axum.rs` in the repository does all three.

use ::axum::body::Bytes;
use ::axum::extract::State;
use ::axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use ::axum::response::{IntoResponse, Response};

use crate::ingest::Ingestor;
use crate::outcome::Reply;

/// The axum handler for a webhook route: ingests the delivery with the
/// route's [`Ingestor`] and answers 200 (`accepted` or `duplicate`, durable
/// either way), 400, 401, 413 or 503 with `Retry-After`.
///
/// Give each provider's route its ingestor with
/// [`MethodRouter::with_state`](::axum::routing::MethodRouter::with_state):
/// `.route("/webhooks/bluum", post(receive).with_state(bluum))`. The body is
/// taken as raw bytes, exactly as sent, which is what the signature covers.
/// axum refuses bodies over its [`DefaultBodyLimit`](::axum::extract::DefaultBodyLimit)
/// (2 MB) with 413 before this handler runs; raise it on the route if the
/// ingestor's `max_body` is larger. If the blocking task cannot run (the
/// runtime is shutting down), the answer is 503 with `Retry-After`.
///
/// ```
/// use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
/// use webhook_inbox::axum::receive;
/// use webhook_inbox::{Inbox, Scheme, Signer, Verifier};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("axum-receive-{}", std::process::id()));
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let inbox = Inbox::open(&dir)?;
/// let bluum = inbox.ingestor(Verifier::new(Scheme::bluum(), [secret])?).build()?;
///
/// let app: Router = Router::new()
///     .route("/webhooks/bluum", post(receive).with_state(bluum.clone()));
/// // Serve it with timeouts and a connection cap: see the module docs.
/// # drop(app);
///
/// // What a request to that route gets:
/// let body = br#"{"event":"order.filled","timestamp":"2026-11-28T12:00:00Z","data":{"id":"ord_1"}}"#;
/// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
/// let mut headers = HeaderMap::new();
/// for (name, value) in Signer::new(Scheme::bluum(), secret)?.sign("evt_1", now, body) {
///     headers.insert(axum::http::HeaderName::try_from(name)?, value.parse()?);
/// }
/// let response = receive(State(bluum.clone()), headers.clone(), Bytes::from_static(body)).await;
/// assert_eq!(response.status(), 200);
/// headers.insert("webhook-signature", "v1,Zm9yZ2Vk".parse()?);
/// let forged = receive(State(bluum.clone()), headers, Bytes::from_static(body)).await;
/// assert_eq!(forged.status(), 401);
/// # drop(bluum); inbox.close()?; std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub async fn receive(
    State(ingestor): State<Ingestor>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ingest = move || Reply::from(&ingestor.ingest(&headers, &body));
    match tokio::task::spawn_blocking(ingest).await {
        Ok(reply) => reply.into_response(),
        Err(_) => Reply::unavailable().into_response(),
    }
}

/// The status, a `Retry-After` header when set, and the body as `text/plain`.
impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Inbox, RETRY_AFTER, Scheme, Signer, Verifier};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn signed(id: &str, body: &[u8]) -> HeaderMap {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut headers = HeaderMap::new();
        for (name, value) in Signer::new(Scheme::bluum(), SECRET)
            .unwrap()
            .sign(id, now, body)
        {
            headers.insert(
                ::axum::http::HeaderName::try_from(name).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    async fn text(response: Response) -> String {
        let bytes = ::axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn accepts_then_deduplicates_then_503_with_retry_after_once_closed() {
        let dir = std::env::temp_dir().join(format!("axum-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let inbox = Inbox::open(&dir).unwrap();
        let bluum = inbox
            .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
            .build()
            .unwrap();
        let body = Bytes::from_static(
            br#"{"event":"order.filled","timestamp":"2026-11-28T12:00:00Z","data":{"id":"ord_1"}}"#,
        );
        let headers = signed("evt_1", &body);
        let call = || receive(State(bluum.clone()), headers.clone(), body.clone());

        let first = call().await;
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers().get(header::RETRY_AFTER), None);
        assert_eq!(text(first).await, "accepted");
        assert_eq!(text(call().await).await, "duplicate");

        inbox.close().unwrap();
        let closed = receive(State(bluum.clone()), signed("evt_2", &body), body.clone()).await;
        assert_eq!(closed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            closed.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(RETRY_AFTER.as_secs()))
        );
        assert_eq!(text(closed).await, "temporarily unavailable");
        drop(bluum);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
