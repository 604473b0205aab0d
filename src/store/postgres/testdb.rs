//! A PostgreSQL database for tests: `WEBHOOK_INBOX_TEST_POSTGRES` names it
//! (`.ci/run` starts the server and exports it). Without it, tests that need
//! it say why and skip, except under `CI=true`, where its absence fails.

use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable holding the test database's URL.
pub(crate) const VAR: &str = "WEBHOOK_INBOX_TEST_POSTGRES";

/// The test database's URL, if there is one.
pub(crate) fn url() -> Option<String> {
    match std::env::var(VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{VAR} is not set, and CI=true: PostgreSQL tests must run in CI"
            );
            eprintln!("skipping: {VAR} is not set (see README, \"Running the PostgreSQL tests\")");
            None
        }
    }
}

/// A schema name no other test uses.
pub(crate) fn fresh_schema(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "t_{what}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Drops `schema` and everything in it (at the end of a test).
pub(crate) fn drop_schema(url: &str, schema: &str) {
    if let Ok(mut client) = postgres::Client::connect(url, postgres::NoTls) {
        let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    }
}
