//! Bounds shared by the ingest path and the store's log, kept in a leaf
//! module so the store (the bottom floor) need not import the ingest layer.

/// The largest `max_body` an ingestor accepts: 64 MiB (the log's frames are bounded).
///
/// ```
/// assert_eq!(webhook_inbox::MAX_BODY_LIMIT, 64 * 1024 * 1024);
/// ```
pub const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;
