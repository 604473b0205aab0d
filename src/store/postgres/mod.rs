//! The PostgreSQL backend: one database shared by every replica.
//!
//! - Ingest gathers concurrent inserts into one call of the schema's
//!   `ingest` function (one statement, one transaction): arrays per column,
//!   dedup by the markers' primary key in the same statement.
//! - Claims lease rows with `FOR UPDATE SKIP LOCKED` under a fresh token
//!   from a sequence; heartbeats extend leases; outcomes are applied in
//!   batches by `apply`, which checks each token.
//! - Per-key ordering: the claim skips an event whose key has an earlier
//!   unfinished event. Keys are read from bodies by the claiming replica
//!   (`keys`), once per event.
//! - Wake-ups: `LISTEN`/`NOTIFY` as a hint, with a poll behind it
//!   (`wake`); retention by one replica at a time under an advisory lock.

mod claims;
mod insert;
mod operators;
mod pool;
pub(crate) mod schema;
#[cfg(test)]
pub(crate) mod testdb;
mod wake;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crossbeam_channel::Receiver;
use postgres::Row;

use super::backend::{
    Backend, BackendStats, Changed, ClaimRequest, Claimed, DeadChange, DeadSelection, Filter,
    Finish, Listing, Token,
};
use super::record::{EventRecord, decode_progress};
use super::{Insert, NewEvent, StoreCounts, StoreError, Stored};
use crate::clock::{Clock, from_unix_millis};
use crate::inbox::OpenError;
use crate::sync::lock;
use pool::{Conn, Pool, failed};

/// What [`connect`] needs.
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) pool_size: usize,
    pub(crate) listen: bool,
    pub(crate) migrate: bool,
    pub(crate) retention: Duration,
    pub(crate) max_pending: u64,
    pub(crate) clock: Arc<dyn Clock>,
}

/// A connected backend.
pub(crate) struct Connected {
    pub(crate) backend: PgBackend,
    /// `postgres://user@host:port/db (schema s)`: no password.
    pub(crate) label: String,
}

/// What operators see as the store: the connection without its password.
fn label(config: &postgres::Config, schema: &str) -> String {
    use postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db} (schema {schema})")
}

/// A PostgreSQL error in a few words: the server's message and code, or
/// the client's (never the connection string, which may hold a password).
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    // The client's own message leaves its cause out ("error connecting to
    // server"): add the chain ("Connection refused").
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// The statements, with the schema filled in.
pub(crate) struct Sql {
    schema: String,
    ingest: String,
    claim: String,
    heartbeat: String,
    apply: String,
    counts: String,
    next_due: String,
    list: String,
    event: String,
    dead_page: String,
    dead_by_id: String,
    oldest: String,
    collect: String,
    top: String,
    unkeyed: String,
    set_keys: String,
    release: String,
    size: String,
}

/// The columns every read of events selects, in [`stored`]'s order.
const COLUMNS: &str = "seq, source, event_id, event_type, received_ms, headers, body, progress";

impl Sql {
    fn new(schema: &str) -> Self {
        let f = |sql: &str| schema::fill(&sql.replace("{cols}", COLUMNS), schema);
        Self {
            schema: schema.to_owned(),
            ingest: f("SELECT o_ord, o_seq, o_new, o_pending FROM {s}.ingest($1, $2, $3, $4, $5, $6, $7, $8)"),
            claim: f("SELECT {cols}, token FROM {s}.claim($1, $2, $3, $4)"),
            heartbeat: f("UPDATE {s}.events e SET lease_until = GREATEST(e.lease_until, $3)
                FROM unnest($1::bigint[], $2::bigint[]) AS t(seq, token)
                WHERE e.seq = t.seq AND e.token = t.token RETURNING e.seq, e.token"),
            apply: f("SELECT o_ord FROM {s}.apply($1, $2, $3, $4, $5, $6)"),
            counts: f("SELECT coalesce(sum(pending), 0)::bigint, coalesce(sum(retrying), 0)::bigint,
                coalesce(sum(dead), 0)::bigint, coalesce(sum(markers), 0)::bigint FROM {s}.counters"),
            next_due: f("SELECT due_ms FROM {s}.events WHERE state = 1 AND lease_until IS NULL
                AND due_ms > $1 ORDER BY due_ms LIMIT 1"),
            list: f("SELECT {cols} FROM {s}.events
                WHERE seq > $1 AND ($2::smallint IS NULL OR state = $2)
                  AND ($3::text IS NULL OR source = $3)
                  AND ($4::bigint IS NULL OR received_ms >= $4)
                  AND ($5::bigint IS NULL OR received_ms < $5)
                ORDER BY seq LIMIT $6"),
            event: f("SELECT {cols} FROM {s}.events WHERE seq IN (
                SELECT m.seq FROM {s}.markers m WHERE m.event_id = $1
                  AND ($2::text IS NULL OR m.source = $2)) ORDER BY seq DESC LIMIT 1"),
            dead_page: f("SELECT {cols} FROM {s}.events WHERE state = 2 AND seq > $1
                ORDER BY seq LIMIT $2"),
            dead_by_id: f("SELECT {cols} FROM {s}.events WHERE state = 2 AND seq IN (
                SELECT m.seq FROM {s}.markers m WHERE m.event_id = $1
                  AND ($2::text IS NULL OR m.source = $2))"),
            oldest: f("SELECT least(
                (SELECT received_ms FROM {s}.events WHERE state = 0 ORDER BY seq LIMIT 1),
                (SELECT min(received_ms) FROM {s}.events WHERE state = 1))"),
            collect: f("SELECT {s}.collect($1, $2, $3)"),
            top: f("SELECT coalesce(max(seq), 0) FROM {s}.events"),
            unkeyed: f("SELECT seq, body FROM {s}.events WHERE seq > $1 AND seq <= $2 AND NOT keyed
                ORDER BY seq LIMIT $3"),
            set_keys: f("UPDATE {s}.events e SET order_key = t.k, keyed = true
                FROM unnest($1::bigint[], $2::text[]) AS t(seq, k) WHERE e.seq = t.seq"),
            release: f("UPDATE {s}.events e SET lease_until = NULL, token = NULL, kept = false
                FROM unnest($1::bigint[], $2::bigint[]) AS t(seq, token)
                WHERE e.seq = t.seq AND e.token = t.token"),
            size: f("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')"),
        }
    }
}

/// What the backend's threads share.
pub(crate) struct Shared {
    sql: Arc<Sql>,
    pool: Pool,
    closed: AtomicBool,
    retention: Duration,
    max_pending: u64,
    clock: Arc<dyn Clock>,
    insert_lock: i64,
    collect_lock: i64,
    /// The claims this process holds (seq → token), released at close.
    held: Mutex<HashMap<u64, Token>>,
    /// The ordering pointer this process has keyed events under, and the
    /// seq through which every event is keyed (seqs are handed out in
    /// commit order, so none below it can still appear).
    pointer: Mutex<(Option<String>, i64)>,
    /// The `now` of the latest claim: retries due by then were considered.
    claimed_at: AtomicI64,
    /// The last counts read, for when the database is unreachable.
    counts: Mutex<StoreCounts>,
    wake: wake::Wake,
}

/// A [`Backend`] on PostgreSQL.
pub(crate) struct PgBackend {
    shared: Arc<Shared>,
    inserter: insert::Inserter,
}

/// Connects, migrates and starts the backend's threads.
pub(crate) fn connect(settings: Settings) -> Result<Connected, OpenError> {
    schema::check_name(&settings.schema)?;
    let config = pool::config(&settings.url).map_err(|detail| OpenError::Database { detail })?;
    first_connection(&config, &settings.schema, settings.migrate)?;
    let io = |e: StoreError| OpenError::Database {
        detail: e.to_string(),
    };
    let schema = settings.schema.clone();
    let shared = Arc::new(Shared {
        sql: Arc::new(Sql::new(&schema)),
        pool: Pool::new(&config, settings.pool_size, "webhook-inbox-pg").map_err(io)?,
        closed: AtomicBool::new(false),
        retention: settings.retention,
        max_pending: settings.max_pending,
        clock: settings.clock,
        insert_lock: schema::lock_key(&schema, "insert"),
        collect_lock: schema::lock_key(&schema, "collect"),
        held: Mutex::default(),
        pointer: Mutex::default(),
        claimed_at: AtomicI64::new(i64::MIN),
        counts: Mutex::default(),
        wake: wake::Wake::new(&config, &schema, settings.listen).map_err(io)?,
    });
    let inserter = insert::Inserter::start(&config, &shared).map_err(io)?;
    wake::start_upkeep(&shared).map_err(io)?;
    Ok(Connected {
        backend: PgBackend { shared, inserter },
        label: label(&config, &settings.schema),
    })
}

/// Connects once and creates, migrates or checks the schema. On a thread of
/// its own, like every query: the caller may be a tokio runtime's thread,
/// where the `postgres` client panics (connecting and dropping the
/// connection too). Bounded: `connect_timeout` covers the TCP connect only,
/// not a server that accepts and never answers.
fn first_connection(
    config: &postgres::Config,
    schema: &str,
    migrate: bool,
) -> Result<(), OpenError> {
    let (connected_tx, connected) = crossbeam_channel::bounded(1);
    let (done_tx, done) = crossbeam_channel::bounded(1);
    let (config, schema) = (config.clone(), schema.to_owned());
    std::thread::Builder::new()
        .name("webhook-inbox-pg-connect".into())
        .spawn(move || {
            let first = Conn::connect(&config);
            let _ = connected_tx.send(());
            let migrated = first
                .map_err(|e| OpenError::Database {
                    detail: match e {
                        StoreError::Database(d) => d,
                        other => other.to_string(),
                    },
                })
                .and_then(|mut first| schema::migrate(&mut first.client, &schema, migrate));
            let _ = done_tx.send(migrated);
        })
        .map_err(|e| OpenError::Database {
            detail: format!("cannot start a thread: {e}"),
        })?;
    let silent = |what: &str| OpenError::Database {
        detail: format!("the server did not answer within {what}"),
    };
    connected
        .recv_timeout(pool::CONNECT_TIMEOUT + Duration::from_millis(500))
        .map_err(|_| silent("the connect timeout"))?;
    done.recv_timeout(pool::JOB_DEADLINE)
        .map_err(|_| silent("the job deadline"))?
}

/// A row of [`COLUMNS`] as a stored event.
fn stored(row: &Row) -> Result<Stored, StoreError> {
    let seq: i64 = row.try_get(0).map_err(failed)?;
    let headers: serde_json::Value = row.try_get(5).map_err(failed)?;
    let headers: Vec<(String, String)> = serde_json::from_value(headers)
        .map_err(|e| StoreError::Corrupt(format!("event {seq}: headers: {e}")))?;
    let progress: Option<Vec<u8>> = row.try_get(7).map_err(failed)?;
    let progress = progress
        .map(|p| decode_progress(&p))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))?;
    Ok(Stored {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("seq {seq}")))?,
        event: EventRecord {
            source: row.try_get(1).map_err(failed)?,
            id: row.try_get(2).map_err(failed)?,
            event_type: row.try_get(3).map_err(failed)?,
            received_at_ms: row.try_get(4).map_err(failed)?,
            headers,
            body: row.try_get(6).map_err(failed)?,
        },
        progress,
    })
}

/// A seq or token as the database's bigint.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Shared {
    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Runs `job` on a pooled connection with the statements at hand.
    fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Conn, &Sql) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.check_open()?;
        let sql = Arc::clone(&self.sql);
        self.pool.run(move |conn| job(conn, &sql))
    }
}

impl Backend for PgBackend {
    fn insert(&self, event: NewEvent<'_>) -> Result<Insert, StoreError> {
        self.shared.check_open()?;
        let inserted = self.inserter.insert(&event)?;
        if matches!(inserted, Insert::Accepted { .. }) {
            self.shared.wake.changed();
        }
        Ok(inserted)
    }

    fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>, StoreError> {
        claims::claim(&self.shared, request)
    }

    fn heartbeat(&self, held: &[(u64, Token)], until_ms: i64) -> Result<Vec<bool>, StoreError> {
        claims::heartbeat(&self.shared, held, until_ms)
    }

    fn finish(&self, outcomes: &[Finish]) -> Result<Vec<bool>, StoreError> {
        claims::finish(&self.shared, outcomes)
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let after = self.shared.claimed_at.load(Ordering::SeqCst);
        self.shared.run(move |conn, sql| {
            let st = conn.statement("next_due", &sql.next_due)?;
            let row = conn.client.query_opt(&st, &[&after]).map_err(failed)?;
            row.map(|r| r.try_get(0).map_err(failed)).transpose()
        })
    }

    fn subscribe(&self) -> Receiver<()> {
        self.shared.wake.subscribe()
    }

    fn idle_poll(&self) -> Duration {
        self.shared.wake.poll_interval()
    }

    fn list(&self, filter: &Filter, after: u64, limit: usize) -> Result<Listing, StoreError> {
        operators::list(&self.shared, filter, after, limit)
    }

    fn event(&self, source: Option<&str>, id: &str) -> Result<Option<Stored>, StoreError> {
        operators::event(&self.shared, source, id)
    }

    fn change_dead(
        &self,
        which: &DeadSelection<'_>,
        change: DeadChange,
    ) -> Result<Changed, StoreError> {
        let changed = operators::change_dead(&self.shared, which, change)?;
        if changed.done > 0 {
            self.shared.wake.changed();
        }
        Ok(changed)
    }

    fn counts(&self) -> StoreCounts {
        let read = self.shared.run(|conn, sql| {
            let st = conn.statement("counts", &sql.counts)?;
            let row = conn.client.query_one(&st, &[]).map_err(failed)?;
            let n = |i: usize| -> Result<u64, StoreError> {
                let v: i64 = row.try_get(i).map_err(failed)?;
                Ok(u64::try_from(v).unwrap_or(0))
            };
            Ok(StoreCounts {
                pending: n(0)?,
                retrying: n(1)?,
                dead: n(2)?,
                markers: n(3)?,
            })
        });
        let mut last = lock(&self.shared.counts);
        if let Ok(counts) = read {
            *last = counts;
        }
        *last
    }

    fn oldest_pending(&self) -> Result<Option<SystemTime>, StoreError> {
        self.shared.run(|conn, sql| {
            let st = conn.statement("oldest", &sql.oldest)?;
            let row = conn.client.query_one(&st, &[]).map_err(failed)?;
            let ms: Option<i64> = row.try_get(0).map_err(failed)?;
            Ok(ms.map(from_unix_millis))
        })
    }

    fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        wake::collect(&self.shared, now)
    }

    fn stats(&self) -> BackendStats {
        let size = self.shared.run(|conn, sql| {
            let st = conn.statement("size", &sql.size)?;
            let row = conn.client.query_one(&st, &[&sql.schema]).map_err(failed)?;
            let bytes: i64 = row.try_get(0).map_err(failed)?;
            Ok(u64::try_from(bytes).unwrap_or(0))
        });
        BackendStats {
            fsync: None,
            disk_bytes: size.ok(),
        }
    }

    fn close(&self) -> Result<(), StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Claims still held go back at once, as a stopping process's should:
        // no outcome of them can be recorded after this.
        let released = claims::release_all(&self.shared);
        self.shared.closed.store(true, Ordering::SeqCst);
        self.inserter.stop();
        self.shared.wake.stop();
        released
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn settings(url: &str, schema: &str) -> Settings {
        Settings {
            url: url.to_owned(),
            schema: schema.to_owned(),
            pool_size: 1,
            listen: false,
            migrate: true,
            retention: Duration::from_secs(3600),
            max_pending: 100,
            clock: Arc::new(ManualClock::at_unix(0)),
        }
    }

    #[test]
    fn the_label_has_no_password() {
        let config = pool::config("postgres://hooks:s3cret@db.internal:6543/inbox").unwrap();
        let shown = label(&config, "hooks");
        assert_eq!(
            shown,
            "postgres://hooks@db.internal:6543/inbox (schema hooks)"
        );
    }

    #[test]
    fn tls_required_is_refused_with_a_clear_error() {
        let Some(url) = testdb::url() else { return };
        let sep = if url.contains('?') { '&' } else { '?' };
        let schema = testdb::fresh_schema("tls");
        let Err(e) = connect(settings(&format!("{url}{sep}sslmode=require"), &schema)) else {
            panic!("connected with sslmode=require and no TLS support");
        };
        let text = e.to_string();
        assert!(text.contains("sslmode=require"), "{text}");
        assert!(text.contains("TLS"), "{text}");
        assert!(!text.contains("webhook_inbox:webhook_inbox"), "{text}");
    }
}
