//! The emulator's outbox: the library's own store and worker, pointed the
//! other way. Each delivery is an event in an `Inbox` (id `dlv_…`, type the
//! Bluum event name, body the exact bytes to POST); the worker's handler signs
//! it with the webhook's secret and POSTs it, and a failure goes back to the
//! worker's persisted retry schedule — Bluum's ladder, scaled. After the last
//! attempt the event is a dead letter: the delivery is parked.
//!
//! Deliveries enter the outbox through an `Ingestor`, signed with a secret
//! that lives only in this process: the same verified, deduplicated, durable
//! path every other event takes, and no private back door into the store.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use webhook_inbox::{
    Backoff, Event, EventState, HandlerError, Inbox, Ingestor, MAX_BODY_LIMIT, Replay, Report,
    Router, Scheme, Secret, Signer, Verifier, Worker, WorkerConfig,
};

use super::registry::{Attempt, Delivery, Registry, RegistryError};
use super::target::{CheckedResolver, Targets, refusal};
use crate::time::utc_millis;

/// How many deliveries run at once (each may wait up to the timeout).
const DELIVERY_THREADS: usize = 8;
/// How much of a receiver's answer the attempt log keeps.
const RESPONSE_EXCERPT: usize = 512;
/// The shortest dedup retention the outbox's inbox accepts for its ingestor
/// (twice the default 300 s tolerance).
const MIN_OUTBOX_RETENTION: Duration = Duration::from_secs(600);
/// Pruning runs this often (at most; a shorter retention prunes more often).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// How deliveries are made and kept.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Bluum's ladder, scaled, is passed apart; this is the rest.
    pub timeout: Duration,
    /// Where deliveries may go.
    pub targets: Targets,
    /// How long delivered and parked deliveries (and their attempt logs) are
    /// kept after their latest attempt.
    pub retention: Duration,
}

/// Where a delivery stands, from the registry and the outbox together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Retrying,
    Delivered,
    Parked,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::Parked => "parked",
        }
    }
}

/// Why a delivery could not be queued or replayed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("the outbox refused the delivery: {0}")]
    Ingest(webhook_inbox::IngestError),
    #[error("the outbox failed: {0}")]
    Store(webhook_inbox::OperatorError),
}

// Each cause is in the message, not also a `source()` (said once in a chain).
impl From<webhook_inbox::IngestError> for OutboxError {
    fn from(e: webhook_inbox::IngestError) -> Self {
        Self::Ingest(e)
    }
}

impl From<webhook_inbox::OperatorError> for OutboxError {
    fn from(e: webhook_inbox::OperatorError) -> Self {
        Self::Store(e)
    }
}

pub struct Outbox {
    inbox: Inbox,
    ingestor: Ingestor,
    signer: Signer,
    worker: Option<Worker>,
    /// Stops the pruning thread (dropping it does too).
    stop_pruning: Option<std::sync::mpsc::Sender<()>>,
    pruning: Option<std::thread::JoinHandle<()>>,
}

impl Outbox {
    /// Opens (or creates) the outbox store in `dir` and starts delivering.
    /// Deliveries the registry knows but the outbox does not (a crash between
    /// the two writes) are queued again first.
    pub fn start(
        dir: &Path,
        registry: Arc<Registry>,
        ladder: Vec<Duration>,
        settings: Settings,
    ) -> Result<Self, String> {
        let Settings {
            timeout,
            targets,
            retention,
        } = settings;
        // The outbox's own dedup markers must outlive its ingestor's replay
        // window (twice the verifier's default tolerance), however short the
        // delivery retention is.
        let inbox = Inbox::builder(dir)
            .retention(retention.max(MIN_OUTBOX_RETENTION))
            .open()
            .map_err(|e| format!("cannot open the outbox {}: {e}", dir.display()))?;
        // Known only to this process: deliveries reach the outbox through an
        // ingestor, the same verified, deduplicated, durable path as any event.
        let secret = new_secret()?;
        let signer = Signer::new(Scheme::bluum(), secret.clone()).map_err(|e| e.to_string())?;
        let verifier = Verifier::new(Scheme::bluum(), [secret]).map_err(|e| e.to_string())?;
        let ingestor = inbox
            .ingestor(verifier)
            .source("emulator")
            .max_body(MAX_BODY_LIMIT)
            .build()
            .map_err(|e| e.to_string())?;
        let mut outbox = Self {
            inbox,
            ingestor,
            signer,
            worker: None,
            stop_pruning: None,
            pruning: None,
        };
        outbox
            .requeue_lost(&registry, retention)
            .map_err(|e| e.to_string())?;

        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            // A proxy from the environment would be connected to instead of
            // the checked addresses.
            .proxy(None)
            .user_agent(concat!(
                "webhook-inbox-emulator/",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::new(),
            CheckedResolver::new(targets),
        );
        let sender = Sender {
            registry: Arc::clone(&registry),
            agent,
            timeout,
        };
        let router = Router::builder()
            .on("*", move |event: &Event| sender.deliver(event))
            .build()
            .map_err(|e| e.to_string())?;
        let config = WorkerConfig::default()
            .threads(DELIVERY_THREADS)
            .backoff(Backoff::ladder(ladder))
            .slow_after(timeout + Duration::from_secs(5))
            .observe(|event: &Event, report: &Report| {
                if let Report::DeadLettered { error, .. } = report {
                    log(&format!("{} parked: {error}", event.id()));
                }
            });
        outbox.worker =
            Some(Worker::start(&outbox.inbox, router, config).map_err(|e| e.to_string())?);
        let (stop, stopped) = std::sync::mpsc::channel();
        let inbox = outbox.inbox.clone();
        let every = (retention / 4).clamp(Duration::from_millis(50), PRUNE_EVERY);
        outbox.pruning = Some(
            std::thread::Builder::new()
                .name("emulator-prune".into())
                .spawn(move || {
                    use std::sync::mpsc::RecvTimeoutError;
                    loop {
                        if let Err(e) = prune(&inbox, &registry, retention) {
                            log(&format!(
                                "pruning old deliveries failed (tried again later): {e}"
                            ));
                        }
                        match stopped.recv_timeout(every) {
                            Err(RecvTimeoutError::Timeout) => {}
                            _ => return,
                        }
                    }
                })
                .map_err(|e| format!("cannot start pruning: {e}"))?,
        );
        outbox.stop_pruning = Some(stop);
        Ok(outbox)
    }

    /// Hands new deliveries (already in the registry) to the worker.
    pub fn enqueue(&self, deliveries: &[Delivery]) -> Result<(), OutboxError> {
        for delivery in deliveries {
            let body = delivery.body.as_bytes();
            let headers = self
                .signer
                .sign(&delivery.id, unix_seconds(SystemTime::now()), body);
            self.ingestor.ingest(&headers, body)?;
        }
        Ok(())
    }

    /// Where `delivery` stands, and when its next attempt is due.
    pub fn state(&self, delivery: &Delivery) -> Result<(State, Option<SystemTime>), OutboxError> {
        if delivery.delivered_at.is_some() {
            return Ok((State::Delivered, None));
        }
        Ok(match self.inbox.event(&delivery.id)? {
            Some(e) => match e.state {
                EventState::Dead => (State::Parked, None),
                EventState::Retrying => (State::Retrying, e.next_attempt),
                // A failed attempt is logged before the worker records the
                // retry: for that moment, say retrying (next time not yet known).
                _ if !delivery.attempts.is_empty() => (State::Retrying, None),
                _ => (State::Pending, None),
            },
            // Not yet handed over (or just finished; the registry is written first).
            None => (State::Pending, None),
        })
    }

    /// Starts a parked delivery again with a fresh ladder; `false` if it is
    /// not parked.
    pub fn replay(&self, id: &str) -> Result<bool, OutboxError> {
        Ok(self.inbox.replay(&Replay::Id(id.to_owned()))? > 0)
    }

    /// Queues again the undelivered deliveries the outbox does not hold
    /// (recorded, then a crash before they were queued), one at a time. One
    /// whose latest attempt is older than the retention was a parked delivery
    /// the outbox already purged: it is not sent again.
    fn requeue_lost(&self, registry: &Registry, retention: Duration) -> Result<(), OutboxError> {
        let mut count = 0;
        for delivery in registry.deliveries_iter() {
            let delivery = match delivery {
                Ok(delivery) => delivery,
                // One damaged record does not keep the others from being sent.
                Err(e @ RegistryError::Corrupt(..)) => {
                    log(&format!("skipped at start: {e}"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let expired = delivery
                .attempts
                .last()
                .is_some_and(|a| a.at.elapsed().is_ok_and(|age| age > retention));
            if delivery.delivered_at.is_none()
                && !expired
                && matches!(self.inbox.event(&delivery.id), Ok(None))
            {
                self.enqueue(std::slice::from_ref(&delivery))?;
                count += 1;
            }
        }
        if count > 0 {
            log(&format!(
                "re-queued {count} deliveries recorded but not queued"
            ));
        }
        Ok(())
    }

    /// Stops delivering (attempts in flight finish) and closes the store, so
    /// the next start opens it without recovery.
    pub fn close(mut self) -> Result<(), String> {
        drop(self.stop_pruning.take());
        if let Some(pruning) = self.pruning.take() {
            let _ = pruning.join();
        }
        if let Some(worker) = self.worker.take() {
            worker.shutdown().map_err(|e| e.to_string())?;
        }
        drop(self.ingestor);
        self.inbox.close().map_err(|e| e.to_string())
    }
}

/// Deletes delivered and parked deliveries whose latest attempt is older
/// than `retention`: from the registry first, then (a while later, so never
/// before the registry lets go of them) the outbox's dead letters.
fn prune(inbox: &Inbox, registry: &Registry, retention: Duration) -> Result<(), OutboxError> {
    /// How much longer the outbox keeps a dead letter than the registry its record.
    const OUTBOX_LAG: Duration = Duration::from_secs(60);
    let cutoff = SystemTime::now()
        .checked_sub(retention)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let pruned = registry.prune(retention, |delivery| {
        matches!(
            inbox.event(&delivery.id),
            Ok(Some(e)) if e.state == EventState::Dead && e.dead_at.is_some_and(|at| at < cutoff)
        )
    })?;
    let purged = inbox.purge_dead(Some(retention.saturating_add(OUTBOX_LAG)))?;
    if pruned + purged > 0 {
        log(&format!(
            "pruned {pruned} finished deliveries older than {} ({purged} parked ones from the outbox)",
            crate::duration::display(retention)
        ));
    }
    Ok(())
}

/// Signs and POSTs one delivery per handler call.
struct Sender {
    registry: Arc<Registry>,
    agent: ureq::Agent,
    timeout: Duration,
}

impl Sender {
    fn deliver(&self, event: &Event) -> Result<(), HandlerError> {
        let id = event.id();
        let registry_failed = |e: RegistryError| HandlerError::retry(e);
        let Some(delivery) = self.registry.delivery(id).map_err(registry_failed)? else {
            return Err(HandlerError::permanent(format!(
                "delivery {id} is not in the registry"
            )));
        };
        if delivery.delivered_at.is_some() {
            // Delivered, then killed before the worker recorded it: done.
            return Ok(());
        }
        let webhook = match self.registry.webhook(&delivery.webhook_id) {
            Ok(Some(w)) if w.active => w,
            Ok(found) => {
                let why = match found {
                    Some(_) => "is inactive",
                    None => "was deleted",
                };
                let error = format!("not sent: webhook {} {why}", delivery.webhook_id);
                self.log(&delivery, failed_attempt(None, error.clone(), None, 0))?;
                return Err(HandlerError::permanent(error));
            }
            Err(e) => return Err(registry_failed(e)),
        };
        let signer = Signer::new(Scheme::bluum(), webhook.secret.as_str())
            .map_err(HandlerError::permanent)?;
        let now = SystemTime::now();
        let unix = unix_seconds(now);
        let mut request = self
            .agent
            .post(&webhook.url)
            .header("content-type", "application/json");
        for (name, value) in signer.sign(&delivery.event_id, unix, event.body()) {
            request = request.header(name, value);
        }
        let started = Instant::now();
        let outcome = request.send(event.body());
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let shown = redact_url(&webhook.url);
        if let Err(err) = &outcome
            && let Some(refused) = refusal(err)
        {
            // Not a receiver's failure: retrying cannot help. Parked at once.
            let error = format!("not sent: the target is refused: {refused}");
            log(&format!(
                "{} {} → {shown} attempt {}: {error}",
                delivery.id,
                delivery.event_type,
                delivery.attempts.len() + 1,
            ));
            self.log(
                &delivery,
                failed_attempt(None, error.clone(), None, duration_ms),
            )?;
            return Err(HandlerError::permanent(error));
        }
        let attempt = match outcome {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let excerpt = excerpt(response.body_mut().as_reader());
                if (200..300).contains(&status) {
                    Attempt {
                        at: now,
                        status: Some(status),
                        error: None,
                        response: excerpt,
                        duration_ms,
                    }
                } else {
                    failed_attempt(Some(status), format!("HTTP {status}"), excerpt, duration_ms)
                }
            }
            // An error that quotes the URL quotes it without its query
            // (often a token): this text is logged, here and when it parks.
            Err(e) => failed_attempt(
                None,
                scrub(&transport_error(&e, self.timeout), &webhook.url),
                None,
                duration_ms,
            ),
        };
        let said = attempt.error.as_deref().unwrap_or("delivered");
        log(&format!(
            "{} {} → {shown} attempt {}: {said} in {duration_ms} ms",
            delivery.id,
            delivery.event_type,
            delivery.attempts.len() + 1,
        ));
        let error = attempt.error.clone();
        self.log(&delivery, attempt)?;
        match error {
            None => Ok(()),
            Some(error) => Err(HandlerError::retry(error)),
        }
    }

    fn log(&self, delivery: &Delivery, attempt: Attempt) -> Result<(), HandlerError> {
        self.registry
            .log_attempt(&delivery.id, attempt)
            .map(drop)
            .map_err(HandlerError::retry)
    }
}

/// A URL as logged: scheme, host (and port) and path; no query, fragment or
/// credentials.
pub fn redact_url(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let (scheme, rest) = url[..cut].split_once("://").unwrap_or(("", &url[..cut]));
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let query = if cut < url.len() { "?…" } else { "" };
    format!("{scheme}://{host}{path}{query}")
}

/// `text` with `url`, and its query, replaced by [`redact_url`]'s form.
fn scrub(text: &str, url: &str) -> String {
    let mut text = text.replace(url, &redact_url(url));
    if let Some(i) = url.find(['?', '#']) {
        let tail = &url[i + 1..];
        if !tail.is_empty() {
            text = text.replace(tail, "…");
        }
    }
    text
}

fn failed_attempt(
    status: Option<u16>,
    error: String,
    response: Option<String>,
    duration_ms: u64,
) -> Attempt {
    Attempt {
        at: SystemTime::now(),
        status,
        error: Some(error),
        response,
        duration_ms,
    }
}

fn transport_error(err: &ureq::Error, timeout: Duration) -> String {
    match err {
        ureq::Error::Timeout(_) => format!("timed out after {}", crate::duration::display(timeout)),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            format!("timed out after {}", crate::duration::display(timeout))
        }
        other => format!("not delivered: {other}"),
    }
}

/// The first bytes of a receiver's answer, as text safe to show.
fn excerpt(reader: impl Read) -> Option<String> {
    let mut bytes = Vec::new();
    let _ = reader.take(RESPONSE_EXCERPT as u64).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    (!text.is_empty()).then(|| crate::common::clean(text).into_owned())
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A fresh `whsec_` secret of 24 random bytes, as Standard Webhooks issues.
pub fn new_secret() -> Result<Secret, String> {
    use base64::Engine as _;
    let mut key = [0u8; 24];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness for a secret: {e}"))?;
    Ok(Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )))
}

/// One line on stderr: what the emulator is doing, for whoever watches it.
pub fn log(line: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "{} {}",
        utc_millis(SystemTime::now()),
        crate::common::clean(line)
    );
}
