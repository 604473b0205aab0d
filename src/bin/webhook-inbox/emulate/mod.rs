//! `webhook-inbox emulate`: Bluum's webhook side on your own machine — the
//! management API under /v1 (Basic auth, tenant and investor-scoped keys) and
//! signed deliveries with Bluum's retry ladder, from an outbox that is this
//! library's own store and worker. The contract is docs/BLUUM_API.md.

mod auth;
mod outbox;
mod registry;
mod reply;
mod routes;
mod server;
mod target;
mod validate;

use std::io::Write;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args as ClapArgs;

use crate::common::Failure;
use auth::Keys;
use outbox::{Outbox, Settings, log};
use registry::Registry;
use routes::Api;
use server::Limits;
use target::Targets;

/// Bluum's retry ladder: the waits after attempts 1 to 5.
const LADDER_SECS: [u64; 5] = [60, 300, 1800, 7200, 28_800];
/// Threads answering the API.
const API_THREADS: usize = 4;
/// Descriptors kept for the stores, the log and delivery connections when
/// the connection cap is fitted to the process's descriptor limit.
const RESERVED_FDS: u64 = 64;

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
    /// How long a client has to send a request's headers (and how long an
    /// idle connection is kept open).
    #[arg(long, default_value = "10s", value_parser = positive)]
    header_timeout: Duration,
    /// How long a client has to send a request's body once its headers are
    /// in, and how long it may leave the answer unread.
    #[arg(long, default_value = "30s", value_parser = positive)]
    request_timeout: Duration,
    /// Most connections open at once; more wait until one closes.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    max_connections: u32,
    /// Also deliver to private addresses (10/8, 172.16/12, 192.168/16,
    /// 100.64/10, fc00::/7, …). Loopback is always allowed; link-local and
    /// cloud metadata targets never are.
    #[arg(long)]
    allow_private_targets: bool,
    /// How long delivered and parked deliveries, with their attempt logs, are
    /// kept after their latest attempt.
    #[arg(long, default_value = "30d", value_parser = positive)]
    delivery_retention: Duration,
}

fn positive(text: &str) -> Result<Duration, String> {
    match crate::duration::parse(text)? {
        d if d.is_zero() => Err(format!("`{text}` must be more than zero")),
        d => Ok(d),
    }
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
    let targets = Targets {
        allow_private: args.allow_private_targets,
    };
    if let Some(config) = &args.config {
        warn_if_shared(config);
    }

    // Everything the emulator creates (the registry holds every webhook's
    // secret; the outbox every body) is for its user alone, whatever the
    // umask it was started with.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
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
        Settings {
            timeout: args.timeout,
            targets,
            retention: args.delivery_retention,
        },
    )
    .map_err(Failure::Unavailable)?;
    lock_down(&args.store).map_err(|e| {
        Failure::Unavailable(format!(
            "cannot make the store {} private: {e}",
            args.store.display()
        ))
    })?;
    let listener = std::net::TcpListener::bind(&args.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Failure::Unavailable(format!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_or_else(|_| args.listen.clone(), |a| a.to_string());
    crate::common::print(&format!("listening on http://{address}\n"))?;
    let _ = std::io::stdout().flush();
    let limits = Limits {
        header_timeout: args.header_timeout,
        request_timeout: args.request_timeout,
        max_connections: fit_to_descriptors(args.max_connections),
    };
    log(&format!(
        "emulating Bluum on http://{address}/v1 (store {}, time scale {}, timeout {}, \
         header timeout {}, request timeout {}, at most {} connections, {} targets, \
         deliveries kept {})",
        args.store.display(),
        args.time_scale,
        crate::duration::display(args.timeout),
        crate::duration::display(limits.header_timeout),
        crate::duration::display(limits.request_timeout),
        limits.max_connections,
        if targets.allow_private {
            "loopback, public and private"
        } else {
            "loopback and public"
        },
        crate::duration::display(args.delivery_retention),
    ));

    let api = Arc::new(Api {
        registry,
        outbox,
        targets,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(API_THREADS)
        .enable_all()
        .build()
        .map_err(|e| Failure::Unavailable(format!("cannot start the HTTP server: {e}")))?;
    let served = runtime.block_on(server::serve(
        listener,
        Arc::clone(&api),
        Arc::new(keys),
        limits,
    ));
    // Requests still being answered get a moment; then the store is closed.
    runtime.shutdown_timeout(server::GRACE);
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

/// Makes the store directory and everything in it private (0700 directories,
/// 0600 files): a store made by an earlier version, or with the sled files
/// created before the umask, is tightened at each start.
fn lock_down(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.is_dir() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            lock_down(&entry?.path())?;
        }
    } else if meta.is_file() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Warns when the keys file can be read by others: it holds API secrets.
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        log(&format!(
            "warning: {} holds API secrets and can be read by other users (mode {:o}); \
             chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
}

/// The connection cap, lowered to fit the process's descriptor limit.
fn fit_to_descriptors(wanted: u32) -> u32 {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match limit {
        Some(limit) if u64::from(wanted) + RESERVED_FDS > limit => {
            let fitted = u32::try_from(limit.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(1);
            log(&format!(
                "at most {fitted} connections (not {wanted}): the descriptor limit is {limit}"
            ));
            fitted
        }
        _ => wanted,
    }
}

/// Creates the store directory, or checks an existing one holds nothing but
/// an emulator's outbox and registry (never take over someone's directory).
fn prepare_store(dir: &Path) -> Result<(), Failure> {
    let unusable = |e: std::io::Error| {
        Failure::Unavailable(format!("cannot use the store {}: {e}", dir.display()))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(unusable)?;
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
