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

use std::io::{Read, Write};
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
/// Largest request body the API reads.
const MAX_REQUEST: usize = 1 << 20;

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
    /// A tenant-wide API key, `KEY:SECRET` (repeatable).
    #[arg(long = "tenant-key", value_name = "KEY:SECRET", value_parser = Keys::parse_flag)]
    tenant_keys: Vec<auth::Key>,
    /// An investor-scoped API key, `KEY:SECRET`, refused on webhook routes (repeatable).
    #[arg(long = "investor-key", value_name = "KEY:SECRET", value_parser = Keys::parse_flag)]
    investor_keys: Vec<auth::Key>,
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
    keys.tenant_keys.extend(args.tenant_keys);
    keys.investor_keys.extend(args.investor_keys);
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
    let server = tiny_http::Server::http(&args.listen)
        .map_err(|e| Failure::Unavailable(format!("cannot listen on {}: {e}", args.listen)))?;
    let address = server
        .server_addr()
        .to_ip()
        .map_or_else(|| args.listen.clone(), |a| a.to_string());
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
    let server = Arc::new(server);
    let threads: Vec<_> = (0..API_THREADS)
        .map(|_| {
            let (server, api) = (Arc::clone(&server), Arc::clone(&api));
            std::thread::spawn(move || serve(&server, &api))
        })
        .collect();
    stop_on_signal(&server)?;
    for thread in threads {
        let _ = thread.join();
    }
    let Ok(api) = Arc::try_unwrap(api) else {
        return Err(Failure::Unavailable(
            "an API thread is still running".into(),
        ));
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

/// Waits for SIGINT or SIGTERM, then stops the API threads (requests being
/// answered finish first). SIGKILL loses nothing either: every change is
/// durable before it is acknowledged; a clean stop only makes the next start
/// faster.
fn stop_on_signal(server: &tiny_http::Server) -> Result<(), Failure> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Failure::Unavailable(format!("cannot handle signals: {e}")))?;
    if let Some(signal) = signals.forever().next() {
        log(&format!("signal {signal}: stopping"));
    }
    for _ in 0..API_THREADS {
        server.unblock();
    }
    Ok(())
}

/// Answers requests until the server stops.
fn serve(server: &tiny_http::Server, api: &Api) {
    while let Ok(mut request) = server.recv() {
        let reply = match read_body(&mut request) {
            Ok(body) => {
                let authorization = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("authorization"))
                    .map(|h| h.value.as_str().to_owned());
                let method = request.method().as_str().to_ascii_uppercase();
                api.handle(&Request {
                    method: &method,
                    target: request.url(),
                    authorization: authorization.as_deref(),
                    body: &body,
                })
            }
            Err(err) => err.into(),
        };
        let _ = request.respond(response(&reply));
    }
}

fn read_body(request: &mut tiny_http::Request) -> Result<Vec<u8>, ApiError> {
    if request.body_length().is_some_and(|n| n > MAX_REQUEST) {
        return Err(ApiError::too_large(MAX_REQUEST));
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_REQUEST as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::bad_request(format!("Could not read the body: {e}.")))?;
    if body.len() > MAX_REQUEST {
        return Err(ApiError::too_large(MAX_REQUEST));
    }
    Ok(body)
}

fn response(reply: &Reply) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut body = serde_json::to_vec_pretty(&reply.body).unwrap_or_default();
    body.push(b'\n');
    let mut response = tiny_http::Response::from_data(body).with_status_code(reply.status);
    if let Ok(header) = tiny_http::Header::from_bytes("content-type", "application/json") {
        response.add_header(header);
    }
    response
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
