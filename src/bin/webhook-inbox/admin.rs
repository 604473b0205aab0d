//! `webhook-inbox admin`: the admin dashboard, JSON API and `/metrics` for a
//! store no service holds open, on 127.0.0.1 unless a token is given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use webhook_inbox::admin::{Admin, Auth, check_bind};

use crate::common::Failure;
use crate::remote;
use crate::store::StoreArgs;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Flags of `webhook-inbox admin`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Where to listen. Without a token only a loopback address is allowed.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// A file holding the admin token [default: $WEBHOOK_INBOX_ADMIN_TOKEN;
    /// without either, no credentials and loopback clients only].
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Show everything, change nothing (no replay, no purge).
    #[arg(long)]
    read_only: bool,
}

/// Opens the store and serves the admin routes until SIGINT or SIGTERM.
pub fn run(args: Args) -> Result<(), Failure> {
    let auth = match remote::token(args.token_file.as_deref())? {
        Some(token) => Auth::token(token).map_err(|e| Failure::Usage(e.to_string()))?,
        None => Auth::loopback_only(),
    };
    check_bind(&auth, args.listen).map_err(|e| Failure::Usage(e.to_string()))?;
    let inbox = args.store.open()?.inbox;
    let routes = Admin::new(auth)
        .read_only(args.read_only)
        .router::<()>(&inbox)
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Unavailable(format!("cannot start the runtime: {e}")))?;
    let served = runtime.block_on(serve(routes, args.listen));
    let closed = inbox.close();
    served?;
    closed.map_err(|e| Failure::Unavailable(format!("closing the store: {e}")))
}

async fn serve(routes: axum::Router, listen: SocketAddr) -> Result<(), Failure> {
    use std::io::Write as _;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::Unavailable(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}/");
        let _ = out.flush();
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut stop = std::pin::pin!(signal());
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let app = routes
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        tokio::spawn(async move {
            let _slot = slot;
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let _ = tokio::time::timeout(
                Duration::from_secs(300),
                builder.serve_connection(io, service),
            )
            .await;
        });
    }
    Ok(())
}

async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = terminate.recv() => {},
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
