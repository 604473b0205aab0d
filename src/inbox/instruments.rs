//! Hooks the admin layer installs to count deliveries and handler runs.

use std::time::Duration;

use crate::outcome::{IngestError, Ingested};

/// What a handler attempt came to, for [`Instruments::handler_finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "admin"), allow(dead_code))]
pub(crate) enum HandlerOutcome {
    /// The handler returned `Ok`.
    Ok,
    /// The handler returned an error.
    Error,
    /// The handler panicked.
    Panicked,
    /// No handler matched the type.
    Unmatched,
}

/// Hooks the admin layer installs to count deliveries and handler runs
/// (feature `admin`). Without it each call site costs one atomic load.
#[cfg_attr(not(feature = "admin"), allow(dead_code))]
pub(crate) trait Instruments: std::any::Any + Send + Sync {
    /// One delivery through `ingest` of the ingestor named `source`.
    fn delivery(&self, source: &str, outcome: &Result<Ingested, IngestError>, took: Duration);
    /// A handler thread took an event.
    fn handler_started(&self);
    /// A handler thread finished one; `pattern` is the router pattern that
    /// matched (`None`: no handler did).
    fn handler_finished(&self, pattern: Option<&str>, outcome: HandlerOutcome, took: Duration);
}
