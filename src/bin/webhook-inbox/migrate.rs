//! `webhook-inbox migrate`: create or upgrade a PostgreSQL store's schema
//! (`--store URL`), or print the SQL that does it (`--print`) for teams that
//! run migrations with their own tool.
//!
//! The store commands never migrate (an operator tool must not change a
//! production schema by surprise); the service migrates on connect unless it
//! connects with `migrate(false)`, and then this command (or the printed
//! script) is how the schema gets there.

use std::time::Duration;

use webhook_inbox::Inbox;
use webhook_inbox::postgres::{DEFAULT_SCHEMA, migration_sql};

use crate::common::{self, Failure};
use crate::pg;
use crate::store::{NEVER_COLLECT, STORE_ENV, postgres_failure};

/// How long connecting to read the schema's version may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of `webhook-inbox migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the SQL script that creates the schema, or brings an older one up
    /// to date, to stdout; connects to nothing. Applying it twice is harmless.
    #[arg(long, conflicts_with = "store")]
    print: bool,
    /// The database to migrate: `postgres://user:password@host/db`
    /// [env: WEBHOOK_INBOX_STORE; prefer it for a URL with a password].
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// The schema of the inbox's tables, as the service connects with it.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEMA)]
    schema: String,
}

/// Prints the script, or applies it and says what version the schema is at.
pub fn run(args: Args) -> Result<(), Failure> {
    // Checks the schema name first, whatever else was asked.
    let sql = migration_sql(&args.schema).map_err(|e| Failure::Usage(e.to_string()))?;
    if args.print {
        return common::print(&sql);
    }
    let url = match args.store {
        Some(url) => url,
        None => std::env::var(STORE_ENV)
            .ok()
            .filter(|url| !url.is_empty())
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "say what to do: --print writes the SQL to stdout, --store postgres://… \
                     (or {STORE_ENV}) applies it"
                ))
            })?,
    };
    if !pg::is_url(&url) {
        return Err(Failure::Usage(format!(
            "`migrate` is for PostgreSQL stores, and {} is not a postgres:// URL (a directory \
             store needs no migration)",
            pg::redact(&url)
        )));
    }
    let schema = args.schema;
    let before = version(&url, &schema)?;
    Inbox::postgres(&url)
        .schema(schema.as_str())
        .migrate(true)
        .pool_size(1)
        .listen(false)
        .retention(NEVER_COLLECT)
        .connect()
        .map_err(|e| postgres_failure(&url, &schema, &e))?
        .close()
        .map_err(|e| {
            Failure::Unavailable(format!(
                "closing the connection to {}: {}",
                pg::redact(&url),
                pg::scrub(&e.to_string(), &url)
            ))
        })?;
    let after = version(&url, &schema)?;
    let at = pg::redact(&url);
    common::print(&if before == after {
        format!(
            "schema {schema} at {at} is at version {after}: already up to date, nothing changed\n"
        )
    } else if before == 0 {
        format!("schema {schema} at {at} created: now at version {after}\n")
    } else {
        format!("schema {schema} at {at} migrated from version {before} to version {after}\n")
    })
}

/// The version recorded in `schema` (0 when it has no webhook-inbox tables).
/// `schema` was checked by `migration_sql`: a plain identifier, safe to quote.
fn version(url: &str, schema: &str) -> Result<i32, Failure> {
    let failed = |e: postgres::Error| {
        let detail = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => {
                // The driver's message is its kind only; the cause says why.
                let mut detail = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    detail = format!("{detail}: {cause}");
                    source = cause.source();
                }
                detail
            }
        };
        Failure::Unavailable(format!(
            "cannot use the PostgreSQL store at {}: {}",
            pg::redact(url),
            pg::scrub(&detail, url)
        ))
    };
    let mut config: postgres::Config = url.parse().map_err(failed)?;
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .application_name("webhook-inbox migrate");
    let mut client = config.connect(postgres::NoTls).map_err(failed)?;
    let table = format!("\"{schema}\".schema_version");
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .and_then(|row| row.try_get(0))
        .map_err(failed)?;
    if !exists {
        return Ok(0);
    }
    client
        .query_opt(&format!("SELECT version FROM {table}"), &[])
        .and_then(|row| row.map_or(Ok(0), |row| row.try_get(0)))
        .map_err(failed)
}
