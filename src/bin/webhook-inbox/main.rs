//! `webhook-inbox`: the operator's command-line tool.
//!
//! - `sign`, `verify`: produce or check a delivery's signature headers.
//! - `send`: POST a signed test delivery to a receiver and print its answers.
//! - `stats`, `list`, `show`, `replay`, `purge`: inspect and repair a store
//!   (`--store DIR` or `WEBHOOK_INBOX_STORE`). The store is never created,
//!   and sled allows one process per store, so these run while the service
//!   is stopped; for a running service, `--url http://host:port/admin` runs
//!   them against its admin API (feature `admin`) with the same output.
//!   A PostgreSQL store (`--store postgres://…`, `--schema NAME`) is shared:
//!   they run while the service's replicas keep running, and never migrate.
//! - `migrate`: create or upgrade a PostgreSQL store's schema, or print the SQL.
//! - `admin`: the admin dashboard, JSON API and `/metrics` for a store.
//! - `emulate`, `trigger`: a local Bluum (its webhook management API and
//!   signed deliveries with retries) and a way to make it emit an event.
//! - `bluum`: manage webhooks through Bluum's API or the emulator's.
//!
//! Every read command takes `--json`, as do `replay`, `purge` and `send`.
//!
//! Exit status:
//! - 0: success.
//! - 1: refused or not found — a delivery that is not genuine (`verify`), a
//!   receiver that did not answer 2xx (`send`), an id with no stored event
//!   (`show`) or no dead letter (`replay`).
//! - 2: usage or configuration error, or the store or receiver could not be
//!   used (in use, missing, not a store, corrupt, connection failed).
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod admin;
mod bluum;
mod common;
mod duration;
mod emulate;
mod list;
mod migrate;
mod pg;
mod purge;
mod remote;
mod replay;
mod send;
mod show;
mod sign;
mod stats;
mod store;
mod table;
mod time;
mod trigger;
mod verify;
mod view;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::common::Failure;

/// Sign, verify and send webhook deliveries the way Standard Webhooks, Bluum,
/// Stripe, GitHub, Slack and Shopify do, and inspect, replay and purge the
/// events in a webhook-inbox store.
#[derive(Debug, Parser)]
#[command(
    name = "webhook-inbox",
    version,
    after_help = "\
Store commands (stats, list, show, replay, purge) open the store at --store DIR
(or $WEBHOOK_INBOX_STORE) and never create one. Only one process can have a store
open: stop the service first, or run them against the service's admin API with
--url http://host:port/admin (token from $WEBHOOK_INBOX_ADMIN_TOKEN or --token-file).
A PostgreSQL store (--store postgres://user:password@host/db, --schema NAME) is
used while the service runs, and never migrated: see `webhook-inbox migrate`.

Exit status: 0 success; 1 refused or not found (invalid signature, a non-2xx
answer to `send`, an unknown id); 2 usage or configuration error, or the store
or receiver could not be used."
)]
struct Cli {
    /// Run the store commands against a running admin API instead of a
    /// local store: `http://host:port/admin` (token from
    /// $WEBHOOK_INBOX_ADMIN_TOKEN or --token-file).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// A file holding the admin token (for --url) [default: $WEBHOOK_INBOX_ADMIN_TOKEN].
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the headers a sender would attach to a body, one `Name: value` per line.
    Sign(sign::Args),
    /// Check a delivery's headers and raw body; print `valid` (exit 0) or the reason (exit 1).
    Verify(verify::Args),
    /// POST a signed test delivery to a receiver and print each answer (exit 1 unless all 2xx).
    Send(send::Args),
    /// Show what the store holds: pending, retrying and dead events, dedup markers, backlog age.
    Stats(stats::Args),
    /// List stored events (pending, retrying, dead) as a table, a page at a time.
    List(list::Args),
    /// Show one stored event: state, error history, headers and body (exit 1 if unknown).
    Show(show::Args),
    /// Put dead letters back to work: one by id, by type, or all (the worker runs them).
    Replay(replay::Args),
    /// Delete dead letters for good (all, or those dead for at least --older-than).
    Purge(purge::Args),
    /// Create or upgrade a PostgreSQL store's schema (--store URL), or print its SQL (--print).
    Migrate(migrate::Args),
    /// Serve the admin dashboard, JSON API and /metrics for a store (loopback only without a token).
    Admin(admin::Args),
    /// Run a local Bluum: its webhook management API under /v1 and signed deliveries with retries.
    Emulate(emulate::Args),
    /// Have a running emulator send an event to every webhook subscribed to its type.
    Trigger(trigger::Args),
    /// Manage webhooks through Bluum's API (or the emulator's); key and secret from the environment.
    #[command(subcommand)]
    Bluum(bluum::Command),
}

impl Command {
    fn run(self, remote: Option<&remote::Remote>) -> Result<(), Failure> {
        let store_command = matches!(
            self,
            Self::Stats(_) | Self::List(_) | Self::Show(_) | Self::Replay(_) | Self::Purge(_)
        );
        if remote.is_some() && !store_command {
            return Err(Failure::Usage(
                "--url applies to the store commands: stats, list, show, replay, purge".into(),
            ));
        }
        match self {
            Self::Sign(args) => sign::run(args),
            Self::Verify(args) => verify::run(args),
            Self::Send(args) => send::run(args),
            Self::Stats(args) => stats::run(args, remote),
            Self::List(args) => list::run(args, remote),
            Self::Show(args) => show::run(args, remote),
            Self::Replay(args) => replay::run(args, remote),
            Self::Purge(args) => purge::run(args, remote),
            Self::Migrate(args) => migrate::run(args),
            Self::Admin(args) => admin::run(args),
            Self::Emulate(args) => emulate::run(args),
            Self::Trigger(args) => trigger::run(args),
            Self::Bluum(command) => bluum::run(command),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` are "errors" that print to stdout and exit 0.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    let remote = match cli
        .url
        .as_deref()
        .map(|u| remote::Remote::new(u, cli.token_file.as_deref()))
        .transpose()
    {
        Ok(remote) => remote,
        Err(failure) => {
            let _ = writeln!(std::io::stderr().lock(), "{failure}");
            return failure.exit_code();
        }
    };
    match cli.command.run(remote.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = writeln!(std::io::stderr().lock(), "{failure}");
            failure.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
