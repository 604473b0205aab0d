//! `webhook-inbox emulate`: Bluum's webhook side on your own machine — the
//! management API under /v1 (Basic auth, tenant and investor-scoped keys) and
//! signed deliveries with Bluum's retry ladder, from an outbox that is this
//! library's own store and worker. The contract is docs/BLUUM_API.md.

mod auth;
mod outbox;
mod registry;
mod reply;
mod routes;
mod validate;

use std::future::IntoFuture;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::common::Failure;
use auth::Keys;
use outbox::{Outbox, log};
use registry::Registry;
use reply::{ApiError, Reply};
use routes::{Api, Request};

/// Bluum's retry ladder: the waits after attempts 1 to 5.
const LADDER_SECS: [u64; 5] = [60, 300, 1800, 7200, 28_800];
/// Threads answering the API.
const API_THREADS: usize = 4;
/// How long requests in progress may take to finish once asked to stop.
const GRACE: Duration = Duration::from_secs(5);
/// Largest request body the API reads.
const MAX_REQUEST: usize = 1 << 20;
/// Largest too-large body still read (and dropped) so its sender sees the 413.
const DRAIN_LIMIT: usize = 8 << 20;

#[derive(Debug, ClapArgs)]
#[command(after_help = "\
The store directory holds the outbox (pending deliveries, a webhook-inbox store)
and the registry (webhooks, their secrets, each delivery's attempt log); restart
on the same directory and nothing is lost. Credentials are for the emulator
only: pass them as flags or in a JSON file
  {\"tenant_keys\": [{\"key\": \"...\", \"secret\": \"...\"}], \"investor_keys\": [...]}
Routes and shapes: docs/BLUUM_API.md. The first line on stdout is
`listening on http://ADDR`; each delivery attempt is logged on stderr.")]
pub struct Args {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: String,
    /// Directory for the emulator's outbox and registry (created if missing).
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// A tenant-wide API key, `KEY:SECRET` (repeatable; test keys only: argv is visible to `ps`).
    #[arg(long = "tenant-key", value_name = "KEY:SECRET")]
    tenant_keys: Vec<String>,
    /// An investor-scoped API key, `KEY:SECRET`, refused on webhook routes (repeatable).
    #[arg(long = "investor-key", value_name = "KEY:SECRET")]
    investor_keys: Vec<String>,
    /// A JSON file of keys (added to the flags).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Multiplies Bluum's retry waits (1m, 5m, 30m, 2h, 8h): 0.001 makes them 60ms … 28.8s.
    #[arg(long, default_value_t = 1.0, value_parser = parse_scale)]
    time_scale: f64,
    /// How long a receiver has to answer before the attempt counts as failed.
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse)]
    timeout: Duration,
}

fn parse_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 && f <= 1000.0 => Ok(f),
        _ => Err("expected a number above 0 and at most 1000 (such as 0.001)".to_owned()),
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut keys = match &args.config {
        Some(path) => Keys::from_file(path).map_err(Failure::Usage)?,
        None => Keys::default(),
    };
    // Parsed here rather than by clap, whose error would echo the secret.
    let flag = |flag: &str, text: &String| {
        Keys::parse_flag(text).map_err(|e| Failure::Usage(format!("--{flag}: {e}")))
    };
    for text in &args.tenant_keys {
        keys.tenant_keys.push(flag("tenant-key", text)?);
    }
    for text in &args.investor_keys {
        keys.investor_keys.push(flag("investor-key", text)?);
    }
    if keys.tenant_keys.is_empty() {
        return Err(Failure::Usage(
            "configure at least one tenant key (--tenant-key KEY:SECRET or --config FILE)".into(),
        ));
    }
    let ladder = LADDER_SECS
        .iter()
        .map(|&secs| Duration::from_secs_f64(secs as f64 * args.time_scale))
        .collect();

    prepare_store(&args.store)?;
    let registry = Arc::new(Registry::open(&args.store.join("registry")).map_err(|e| {
        Failure::Unavailable(format!(
            "cannot open the registry in {}: {e} (is another emulator using it?)",
            args.store.display()
        ))
    })?);
    let outbox = Outbox::start(
        &args.store.join("outbox"),
        Arc::clone(&registry),
        ladder,
        args.timeout,
    )
    .map_err(Failure::Unavailable)?;
    let listener = std::net::TcpListener::bind(&args.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Failure::Unavailable(format!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_or_else(|_| args.listen.clone(), |a| a.to_string());
    crate::common::print(&format!("listening on http://{address}\n"))?;
    let _ = std::io::stdout().flush();
    log(&format!(
        "emulating Bluum on http://{address}/v1 (store {}, time scale {}, timeout {})",
        args.store.display(),
        args.time_scale,
        crate::duration::display(args.timeout)
    ));

    let api = Arc::new(Api {
        keys,
        registry,
        outbox,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(API_THREADS)
        .enable_all()
        .build()
        .map_err(|e| Failure::Unavailable(format!("cannot start the HTTP server: {e}")))?;
    let served = runtime.block_on(serve(listener, Arc::clone(&api)));
    // Requests still being answered get a moment; then the store is closed.
    runtime.shutdown_timeout(GRACE);
    served.map_err(|e| Failure::Unavailable(format!("the HTTP server failed: {e}")))?;
    let Ok(api) = Arc::try_unwrap(api) else {
        log("a request is still being answered; stopping without a clean close (nothing is lost)");
        return Ok(());
    };
    let Api {
        outbox, registry, ..
    } = api;
    outbox.close().map_err(Failure::Unavailable)?;
    registry
        .flush()
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    log("stopped; pending deliveries resume at the next start");
    Ok(())
}

/// Answers requests until SIGINT or SIGTERM, then stops taking connections
/// and gives open ones [`GRACE`] to finish (a client that never finishes its
/// request does not hold the emulator up). Stopping abruptly loses nothing:
/// every change is durable before it is acknowledged.
async fn serve(listener: std::net::TcpListener, api: Arc<Api>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let api = Arc::clone(&api);
        async move { answer(api, request).await }
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        log(&format!("{signal}: stopping"));
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(until_stopped(stopped.clone()))
        .into_future();
    let deadline = async {
        until_stopped(stopped).await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        served = server => served,
        () = deadline => {
            log("open connections did not finish in time; stopping anyway");
            Ok(())
        }
    }
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

/// One request: the body read up to [`MAX_REQUEST`] (a larger declared or
/// actual length is refused without reading it), then the routes, on the
/// blocking pool (they write to disk).
async fn answer(api: Arc<Api>, request: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&n| n > MAX_REQUEST as u64) {
        // A client that is still sending would see its connection cut rather
        // than the 413: take (and drop) a body of a plausible size first; an
        // absurd one is refused before reading a byte of it.
        if declared <= DRAIN_LIMIT as u64 {
            let _ = tokio::time::timeout(GRACE, axum::body::to_bytes(body, DRAIN_LIMIT)).await;
        }
        return response(&ApiError::too_large(MAX_REQUEST).into());
    }
    let reply = match axum::body::to_bytes(body, MAX_REQUEST).await {
        Err(_) => ApiError::too_large(MAX_REQUEST).into(),
        Ok(body) => {
            let method = parts.method.as_str().to_owned();
            let target = parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
            let authorization = parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            tokio::task::spawn_blocking(move || {
                api.handle(&Request {
                    method: &method,
                    target: &target,
                    authorization: authorization.as_deref(),
                    body: &body,
                })
            })
            .await
            .unwrap_or_else(|e| ApiError::internal(e).into())
        }
    };
    response(&reply)
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

/// Creates the store directory, or checks an existing one holds nothing but
/// an emulator's outbox and registry (never take over someone's directory).
fn prepare_store(dir: &Path) -> Result<(), Failure> {
    let unusable = |e: std::io::Error| {
        Failure::Unavailable(format!("cannot use the store {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(unusable)?;
    for entry in std::fs::read_dir(dir).map_err(unusable)? {
        let name = entry.map_err(unusable)?.file_name();
        let name = name.to_string_lossy();
        if !["outbox", "registry", "lost+found"].contains(&name.as_ref()) && !name.starts_with('.')
        {
            return Err(Failure::Unavailable(format!(
                "{} holds `{}`: not an emulator store (expected only outbox/ and registry/); \
                 choose an empty or new directory",
                dir.display(),
                crate::common::clean(&name)
            )));
        }
    }
    Ok(())
}
