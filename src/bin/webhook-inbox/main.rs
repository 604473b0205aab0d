//! `webhook-inbox`: the operator's command-line tool.
//!
//! Exit status: 0 on success, 1 when the input was checked and refused (a
//! delivery that is not genuine), 2 for a usage or configuration error.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod sign;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::common::Failure;

/// Sign and verify webhook deliveries the way Standard Webhooks, Bluum, Stripe,
/// GitHub, Slack and Shopify do.
#[derive(Debug, Parser)]
#[command(name = "webhook-inbox", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the headers a sender would attach to a body, one `Name: value` per line.
    Sign(sign::Args),
    /// Check a delivery's headers and raw body; print `valid` (exit 0) or the reason (exit 1).
    Verify(verify::Args),
}

impl Command {
    fn run(self) -> Result<(), Failure> {
        match self {
            Self::Sign(args) => sign::run(args),
            Self::Verify(args) => verify::run(args),
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
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = writeln!(std::io::stderr().lock(), "{failure}");
            failure.exit_code()
        }
    }
}
