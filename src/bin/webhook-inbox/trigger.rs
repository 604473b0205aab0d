//! `webhook-inbox trigger`: placeholder, being written.
use crate::common::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<(), Failure> {
    Err(Failure::Usage("not yet".into()))
}
