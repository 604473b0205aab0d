//! A PostgreSQL database for the integration tests (feature `postgres`): the
//! twin of the library's `src/store/postgres/testdb.rs`, which tests here
//! cannot reach.
//!
//! `WEBHOOK_INBOX_TEST_POSTGRES` names the database (`.ci/run` starts the
//! server and exports it; the README says how to do it locally). Without it a
//! test says why and skips, except under `CI=true`, where its absence fails.
//! Every test works in a schema of its own ([`Schema::fresh`]), dropped when
//! the guard is (kept when `PG_KEEP_SCHEMA` is set, to look at).
//!
//! ```ignore
//! let Some(schema) = common::postgres::Schema::fresh("replay") else {
//!     return; // skipped, the reason printed
//! };
//! let inbox = schema.inbox().connect().unwrap();
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use webhook_inbox::Inbox;
use webhook_inbox::postgres::PostgresBuilder;

/// The environment variable holding the test database's URL.
pub const VAR: &str = "WEBHOOK_INBOX_TEST_POSTGRES";

/// Set (to anything), this keeps every test's schema instead of dropping it.
pub const KEEP: &str = "PG_KEEP_SCHEMA";

/// The longest schema name PostgreSQL keeps (longer ones are truncated).
const MAX_NAME: usize = 63;

/// The test database's URL, or `None` (the reason printed) when there is
/// none. Panics when there is none under `CI=true`: there, PostgreSQL tests
/// must run.
pub fn url() -> Option<String> {
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

/// A schema name no other test (in this process or another) uses:
/// `t_{what}_{pid}_{n}_{nanos}`, `what` reduced to lowercase letters, digits
/// and `_` and shortened so the whole stays a valid schema name.
pub fn fresh_schema(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tail = format!(
        "_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let what: String = what
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '_',
        })
        .take(MAX_NAME.saturating_sub(2 + tail.len()))
        .collect();
    format!("t_{what}{tail}")
}

/// A client of the test database, with a connect timeout; panics with the
/// server's answer if it cannot connect.
pub fn client(url: &str) -> postgres::Client {
    let mut config: postgres::Config = url.parse().expect("a valid test database URL");
    config.connect_timeout(Duration::from_secs(5));
    config
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to the test database: {e}"))
}

/// Drops `schema` and everything in it (at the end of a test); waits at most
/// 10 s for locks, and leaves a failure unreported (nothing to assert on).
/// It works on a thread of its own, so it may be called (or a [`Schema`]
/// dropped) on a tokio runtime's thread, where the synchronous client panics.
pub fn drop_schema(url: &str, schema: &str) {
    let Ok(mut config) = url.parse::<postgres::Config>() else {
        return;
    };
    config.connect_timeout(Duration::from_secs(5));
    let sql = format!(
        "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{}\" CASCADE",
        schema.replace('"', "\"\"")
    );
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Ok(mut client) = config.connect(postgres::NoTls) {
                let _ = client.batch_execute(&sql);
            }
        });
    });
}

/// A fresh schema in the test database, dropped (with everything in it) when
/// this guard is; drop every `Inbox` using it first.
pub struct Schema {
    url: String,
    name: String,
}

impl Schema {
    /// A fresh schema for test `what`, or `None` when there is no test
    /// database (see [`url`]). Nothing is created: the inbox creates it.
    pub fn fresh(what: &str) -> Option<Self> {
        Some(Self::at(&url()?, what))
    }

    /// A fresh schema for test `what` in the database at `url` (for a test
    /// that has already asked [`url`]).
    pub fn at(url: &str, what: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: fresh_schema(what),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `sql` with `{s}` standing for this schema's quoted name.
    pub fn sql(&self, sql: &str) -> String {
        sql.replace("{s}", &format!("\"{}\"", self.name))
    }

    /// `Inbox::postgres(url).schema(name)`, for further settings.
    pub fn inbox(&self) -> PostgresBuilder {
        Inbox::postgres(&self.url).schema(&self.name)
    }

    /// A client of the test database with `search_path` set to this schema,
    /// to look at (or tamper with) the inbox's tables directly.
    pub fn client(&self) -> postgres::Client {
        let mut client = client(&self.url);
        client
            .batch_execute(&format!("SET search_path TO \"{}\"", self.name))
            .expect("set search_path");
        client
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // To look at what a failing run left behind.
        if std::env::var_os(KEEP).is_some() {
            eprintln!("kept schema {}", self.name);
            return;
        }
        drop_schema(&self.url, &self.name);
    }
}
