//! `webhook-inbox bluum …`: placeholder, being written.
use crate::common::Failure;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the event types.
    EventTypes,
}

pub fn run(_command: Command) -> Result<(), Failure> {
    Err(Failure::Usage("not yet".into()))
}
