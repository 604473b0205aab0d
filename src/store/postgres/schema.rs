//! The schema: versioned migrations embedded in the crate, applied on
//! connect under a transaction-scoped advisory lock (so replicas starting
//! together migrate once, and it works through PgBouncer), in a schema the
//! user names.
//!
//! Each migration is SQL with `{s}` standing for the quoted schema name.

use postgres::Client;

use crate::inbox::OpenError;

/// The newest schema version this build knows.
pub(crate) const VERSION: i32 = 1;

/// Version 1: events, dedup markers, counters, and the functions that
/// change them.
///
/// - `markers` holds one dedup key per (event id, source) with the seq it
///   was accepted under; it outlives the event (retention).
/// - `events` holds the events not yet handled, and dead letters: `state`
///   0 fresh, 1 retrying, 2 dead; `due_ms` the next attempt (a fresh
///   event's receipt); `progress` the attempts and their errors (bincode,
///   as in the embedded store); `lease_until`/`token` the claim;
///   `order_key`/`keyed` the ordering key read at the worker's pointer.
/// - `counters` has 16 slots: each transaction adds its changes to the slot
///   of its connection (backend pid mod 16), so concurrent transactions
///   rarely wait on one row; the counts are the sums (kept, never counted).
/// - Every plpgsql function plans its statements once per connection
///   (`force_generic_plan`): replanning them on every call for new array
///   parameters cost more than running them.
/// - `ingest` inserts a batch under the insert lock, so seqs are handed out
///   in commit order: an event of a key never commits before an earlier-seq
///   one, which per-key ordering across replicas relies on.
const V1: &str = r#"
CREATE SEQUENCE IF NOT EXISTS {s}.event_seq AS bigint;
CREATE SEQUENCE IF NOT EXISTS {s}.claim_token AS bigint;
CREATE TABLE IF NOT EXISTS {s}.markers (
    event_id text NOT NULL,
    source text NOT NULL,
    seq bigint NOT NULL,
    accepted_ms bigint NOT NULL,
    PRIMARY KEY (event_id, source)
);
CREATE INDEX IF NOT EXISTS markers_by_age ON {s}.markers USING brin (accepted_ms);
CREATE TABLE IF NOT EXISTS {s}.events (
    seq bigint PRIMARY KEY,
    source text NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    received_ms bigint NOT NULL,
    headers jsonb NOT NULL,
    body bytea NOT NULL,
    state smallint NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),
    due_ms bigint NOT NULL,
    progress bytea,
    lease_until bigint,
    token bigint,
    kept boolean NOT NULL DEFAULT false,
    order_key text,
    keyed boolean NOT NULL DEFAULT false
) WITH (fillfactor = 80);
CREATE INDEX IF NOT EXISTS events_fresh ON {s}.events (seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS events_due ON {s}.events (due_ms, seq) WHERE state = 1;
CREATE INDEX IF NOT EXISTS events_dead ON {s}.events (seq) WHERE state = 2;
CREATE INDEX IF NOT EXISTS events_by_key ON {s}.events (order_key, seq)
    WHERE state < 2 AND order_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.counters (
    slot int PRIMARY KEY,
    pending bigint NOT NULL DEFAULT 0,
    retrying bigint NOT NULL DEFAULT 0,
    dead bigint NOT NULL DEFAULT 0,
    markers bigint NOT NULL DEFAULT 0
);
INSERT INTO {s}.counters (slot) SELECT generate_series(0, 15) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS {s}.meta (name text PRIMARY KEY, value text NOT NULL);

CREATE OR REPLACE FUNCTION {s}.add_counts(p_pending bigint, p_retrying bigint, p_dead bigint, p_markers bigint)
RETURNS void LANGUAGE sql AS $fn$
    UPDATE {s}.counters
    SET pending = pending + p_pending, retrying = retrying + p_retrying,
        dead = dead + p_dead, markers = markers + p_markers
    WHERE slot = pg_backend_pid() % 16
      AND (p_pending, p_retrying, p_dead, p_markers) <> (0, 0, 0, 0);
$fn$;

CREATE OR REPLACE FUNCTION {s}.ingest(
    p_source text[], p_id text[], p_type text[], p_received bigint[], p_headers text[],
    p_body bytea[], p_max_pending bigint, p_lock bigint)
RETURNS TABLE (o_ord bigint, o_seq bigint, o_new boolean, o_pending bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
#variable_conflict use_column
DECLARE
    v_pending bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    SELECT coalesce(sum(pending), 0) INTO v_pending FROM {s}.counters;
    IF v_pending >= p_max_pending THEN
        RETURN QUERY
        SELECT i.ord, m.seq, false, v_pending
        FROM unnest(p_source, p_id) WITH ORDINALITY AS i(source, event_id, ord)
        LEFT JOIN {s}.markers m ON m.event_id = i.event_id AND m.source = i.source;
        RETURN;
    END IF;
    -- One statement: markers (the dedup key decides), the events of the
    -- markers that went in, the counters; each input row answered with its
    -- new seq, or the seq of the marker that was there (the snapshot of the
    -- statement's start, so the look-up sees only markers from before it).
    RETURN QUERY
    WITH i AS (
        SELECT * FROM unnest(p_source, p_id, p_type, p_received, p_headers, p_body)
            WITH ORDINALITY AS t(source, event_id, event_type, received_ms, headers, body, ord)
    ), m AS (
        INSERT INTO {s}.markers (event_id, source, seq, accepted_ms)
        SELECT i.event_id, i.source, nextval('{s}.event_seq'), i.received_ms FROM i
        ON CONFLICT DO NOTHING
        RETURNING markers.seq, markers.source, markers.event_id
    ), e AS (
        INSERT INTO {s}.events (seq, source, event_id, event_type, received_ms, headers, body, due_ms)
        SELECT m.seq, i.source, i.event_id, i.event_type, i.received_ms, i.headers::jsonb, i.body,
               i.received_ms
        FROM i JOIN m ON m.event_id = i.event_id AND m.source = i.source
        RETURNING 1
    ), c AS (
        UPDATE {s}.counters
        SET pending = pending + (SELECT count(*) FROM m), markers = markers + (SELECT count(*) FROM m)
        WHERE slot = pg_backend_pid() % 16
        RETURNING 1
    )
    SELECT i.ord,
           coalesce(m.seq, (SELECT x.seq FROM {s}.markers x
                            WHERE x.event_id = i.event_id AND x.source = i.source)),
           m.seq IS NOT NULL, v_pending
    FROM i
    LEFT JOIN m ON m.event_id = i.event_id AND m.source = i.source;
END
$fn$;

CREATE OR REPLACE FUNCTION {s}.apply(
    p_seq bigint[], p_token bigint[], p_kind smallint[], p_progress bytea[],
    p_state smallint[], p_due bigint[])
RETURNS TABLE (o_ord bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
#variable_conflict use_column
DECLARE
    v_held bigint[];
    v_was smallint[];
    d record;
BEGIN
    -- The rows whose claim the outcome carries (or, with no token, dead
    -- letters an operator changes), locked.
    SELECT coalesce(array_agg(x.seq), '{}'), coalesce(array_agg(x.state), '{}')
    INTO v_held, v_was
    FROM (
        SELECT e.seq, e.state
        FROM {s}.events e
        JOIN unnest(p_seq, p_token) AS t(seq, token) ON e.seq = t.seq
        WHERE (t.token IS NOT NULL AND e.token = t.token)
           OR (t.token IS NULL AND e.state = 2)
        ORDER BY e.seq
        FOR UPDATE OF e
    ) x;
    WITH i AS (
        SELECT * FROM unnest(p_seq, p_kind, p_state) AS t(seq, kind, state)
    ), h AS (
        SELECT * FROM unnest(v_held, v_was) AS t(seq, was)
    ), c AS (
        SELECT h.was,
               CASE WHEN i.kind = 0 THEN -1 WHEN i.kind IN (1, 2) THEN i.state ELSE h.was END AS now
        FROM h JOIN i ON i.seq = h.seq
    )
    SELECT coalesce(sum((now IN (0, 1))::int - (was IN (0, 1))::int), 0) AS pending,
           coalesce(sum((now = 1)::int - (was = 1)::int), 0) AS retrying,
           coalesce(sum((now = 2)::int - (was = 2)::int), 0) AS dead
    INTO d FROM c;
    DELETE FROM {s}.events e
    USING unnest(p_seq, p_kind) AS i(seq, kind)
    WHERE e.seq = i.seq AND i.kind = 0 AND e.seq = ANY (v_held);
    UPDATE {s}.events e SET
        progress = CASE WHEN i.kind IN (1, 2) THEN i.progress ELSE e.progress END,
        state = CASE WHEN i.kind IN (1, 2) THEN i.state ELSE e.state END,
        due_ms = CASE WHEN i.kind IN (1, 2) THEN i.due ELSE e.due_ms END,
        lease_until = CASE WHEN i.kind IN (1, 4) THEN NULL ELSE e.lease_until END,
        token = CASE WHEN i.kind IN (1, 4) THEN NULL ELSE e.token END,
        kept = CASE WHEN i.kind = 3 THEN true WHEN i.kind IN (1, 4) THEN false ELSE e.kept END
    FROM unnest(p_seq, p_kind, p_progress, p_state, p_due) AS i(seq, kind, progress, state, due)
    WHERE e.seq = i.seq AND i.kind <> 0 AND e.seq = ANY (v_held);
    PERFORM {s}.add_counts(d.pending, d.retrying, d.dead, 0);
    RETURN QUERY
    SELECT t.ord FROM unnest(p_seq) WITH ORDINALITY AS t(seq, ord) WHERE t.seq = ANY (v_held);
END
$fn$;

CREATE OR REPLACE FUNCTION {s}.claim(
    p_now bigint, p_limit int, p_until bigint, p_ordered boolean)
RETURNS SETOF {s}.events
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
#variable_conflict use_column
DECLARE
    v_got int;
BEGIN
    -- Retries that are due, then fresh events in acceptance order; with
    -- ordering, only an event no earlier unfinished event of its key holds
    -- back (one whose claim kept it, with the lease in force, does not).
    RETURN QUERY
    WITH c AS (
        SELECT e.seq FROM {s}.events e
        WHERE e.state = 1 AND e.due_ms <= p_now
          AND (e.lease_until IS NULL OR e.lease_until < p_now)
          AND (NOT p_ordered OR (e.keyed AND (e.order_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM {s}.events o
              WHERE o.order_key = e.order_key AND o.state < 2 AND o.seq < e.seq
                AND NOT (o.kept AND o.lease_until >= p_now)))))
        ORDER BY e.due_ms, e.seq
        LIMIT p_limit
        FOR UPDATE OF e SKIP LOCKED
    )
    UPDATE {s}.events e
    SET lease_until = p_until, token = nextval('{s}.claim_token'), kept = false
    FROM c WHERE e.seq = c.seq
    RETURNING e.*;
    GET DIAGNOSTICS v_got = ROW_COUNT;
    IF v_got >= p_limit THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH c AS (
        SELECT e.seq FROM {s}.events e
        WHERE e.state = 0
          AND (e.lease_until IS NULL OR e.lease_until < p_now)
          AND (NOT p_ordered OR (e.keyed AND (e.order_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM {s}.events o
              WHERE o.order_key = e.order_key AND o.state < 2 AND o.seq < e.seq
                AND NOT (o.kept AND o.lease_until >= p_now)))))
        ORDER BY e.seq
        LIMIT p_limit - v_got
        FOR UPDATE OF e SKIP LOCKED
    )
    UPDATE {s}.events e
    SET lease_until = p_until, token = nextval('{s}.claim_token'), kept = false
    FROM c WHERE e.seq = c.seq
    RETURNING e.*;
END
$fn$;

CREATE OR REPLACE FUNCTION {s}.collect(p_cutoff bigint, p_lock bigint, p_batch int)
RETURNS bigint
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_removed bigint;
BEGIN
    -- One replica at a time; the others skip this round.
    IF NOT pg_try_advisory_xact_lock(p_lock) THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM {s}.markers m
        WHERE m.ctid = ANY (ARRAY(
            SELECT x.ctid FROM {s}.markers x
            WHERE x.accepted_ms < p_cutoff
              AND NOT EXISTS (SELECT 1 FROM {s}.events e WHERE e.seq = x.seq)
            LIMIT p_batch))
        RETURNING 1
    )
    SELECT count(*) INTO v_removed FROM gone;
    PERFORM {s}.add_counts(0, 0, 0, -v_removed);
    RETURN v_removed;
END
$fn$;
"#;

/// The migrations, oldest first: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[(1, V1)];

/// The version table, created before anything else.
const VERSION_TABLE: &str = "CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.schema_version (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    version int NOT NULL
);";

/// Refuses a schema name that is not a plain lowercase identifier.
pub(crate) fn check_name(name: &str) -> Result<(), OpenError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && name.len() <= 63 {
        return Ok(());
    }
    let mut end = name.len().min(80);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    Err(OpenError::InvalidSchema {
        name: name[..end].to_owned(),
    })
}

/// `sql` with the schema in place of `{s}` (checked names only).
pub(crate) fn fill(sql: &str, schema: &str) -> String {
    sql.replace("{s}", &format!("\"{schema}\""))
}

/// Everything [`migrate`] would apply to an empty database, as one script.
pub(crate) fn script(schema: &str) -> String {
    let mut out = format!(
        "-- webhook-inbox schema version {VERSION} in schema \"{schema}\"\nBEGIN;\n{}\n",
        fill(VERSION_TABLE, schema)
    );
    for (version, sql) in MIGRATIONS {
        out.push_str(&fill(sql, schema));
        out.push_str(&fill(
            &format!(
                "INSERT INTO {{s}}.schema_version (version) VALUES ({version})\n    ON CONFLICT (one) DO UPDATE SET version = GREATEST({{s}}.schema_version.version, {version});\n"
            ),
            schema,
        ));
    }
    out.push_str("COMMIT;\n");
    out
}

/// An advisory lock key for `what` in `schema`: the first 8 bytes of a
/// SHA-256, stable across builds and replicas.
pub(crate) fn lock_key(schema: &str, what: &str) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("webhook-inbox {schema} {what}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Brings `schema` to [`VERSION`] (if `apply`), or checks that it is there.
pub(crate) fn migrate(client: &mut Client, schema: &str, apply: bool) -> Result<(), OpenError> {
    let failed = |e: postgres::Error| OpenError::Database {
        detail: super::describe(&e),
    };
    let mut tx = client.transaction().map_err(failed)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key(schema, "migrate")],
    )
    .map_err(failed)?;
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("\"{schema}\".schema_version")],
        )
        .map_err(failed)?
        .get(0);
    let found: i32 = if exists {
        tx.query_opt(&fill("SELECT version FROM {s}.schema_version", schema), &[])
            .map_err(failed)?
            .map_or(0, |row| row.get(0))
    } else {
        0
    };
    if found > VERSION {
        return Err(OpenError::SchemaTooNew {
            schema: schema.to_owned(),
            found,
            known: VERSION,
        });
    }
    if found == VERSION {
        return tx.commit().map_err(failed);
    }
    if !apply {
        return Err(OpenError::SchemaMissing {
            schema: schema.to_owned(),
            found,
            known: VERSION,
        });
    }
    tx.batch_execute(&fill(VERSION_TABLE, schema))
        .map_err(failed)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(&fill(sql, schema)).map_err(failed)?;
        tx.execute(
            &fill(
                "INSERT INTO {s}.schema_version (version) VALUES ($1)
                 ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
                schema,
            ),
            &[version],
        )
        .map_err(failed)?;
    }
    tx.commit().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["webhook_inbox", "_x", "a1", &"a".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "A", "a-b", "a;drop", "a\"b", &"a".repeat(64), "é"] {
            assert!(
                matches!(check_name(bad), Err(OpenError::InvalidSchema { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_script_names_only_the_schema_given() {
        let sql = script("hooks");
        assert!(!sql.contains("{s}"));
        assert!(sql.contains("\"hooks\".events"));
        assert!(sql.trim_end().ends_with("COMMIT;"));
    }

    #[test]
    fn lock_keys_differ_by_schema_and_purpose() {
        assert_ne!(lock_key("a", "insert"), lock_key("b", "insert"));
        assert_ne!(lock_key("a", "insert"), lock_key("a", "migrate"));
    }
}
