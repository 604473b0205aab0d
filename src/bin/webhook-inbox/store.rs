//! Opening the store for the store commands (`stats`, `list`, `show`,
//! `replay`, `purge`, `admin`), and saying plainly why it could not be
//! opened: a directory (never created), or a PostgreSQL database (never
//! migrated: `webhook-inbox migrate` does that, on purpose).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use webhook_inbox::postgres::DEFAULT_SCHEMA;
use webhook_inbox::{Inbox, OpenError, OperatorError};

use crate::common::Failure;
use crate::pg;

/// The environment variable read when `--store` is not given.
pub const STORE_ENV: &str = "WEBHOOK_INBOX_STORE";

/// Dedup markers are collected by whoever has the store open, with the
/// retention it was opened with. The service's retention is not recorded in
/// the store, so the CLI opens with one no marker ever reaches: running a
/// command never makes a redelivery look new.
pub const NEVER_COLLECT: Duration = Duration::from_secs(1000 * 365 * 86_400);

/// The `--store` and `--schema` flags shared by the store commands.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The store: the service's directory, or its PostgreSQL database as
    /// `postgres://user:password@host/db` [env: WEBHOOK_INBOX_STORE; prefer it
    /// for a URL with a password, which --store shows to `ps`]. A directory is
    /// never created, a database schema never migrated (see `migrate`).
    #[arg(long, value_name = "DIR|URL")]
    store: Option<OsString>,
    /// The PostgreSQL schema holding the inbox's tables, as the service
    /// connects with it (PostgreSQL stores only) [default: webhook_inbox].
    #[arg(long, value_name = "NAME")]
    schema: Option<String>,
}

/// Where the store is.
#[derive(Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory, as `Inbox::open` takes it.
    Dir(PathBuf),
    /// A PostgreSQL database and the schema of the inbox's tables.
    Postgres {
        /// The URL as given (holds the password: print [`pg::redact`]ed only).
        url: String,
        /// The schema.
        schema: String,
    },
}

impl Location {
    /// How messages name it: the directory, or the URL without its password
    /// and the schema.
    pub fn label(&self) -> String {
        match self {
            Self::Dir(dir) => dir.display().to_string(),
            Self::Postgres { url, schema } => {
                format!("{} (schema {schema})", pg::redact(url))
            }
        }
    }
}

/// An open store and how to name it.
pub struct Opened {
    /// The inbox.
    pub inbox: Inbox,
    /// Where it is.
    pub location: Location,
}

impl StoreArgs {
    /// The store from `--store`, else from `WEBHOOK_INBOX_STORE`.
    pub fn location(&self) -> Result<Location, Failure> {
        self.location_from(std::env::var_os(STORE_ENV))
    }

    fn location_from(&self, env: Option<OsString>) -> Result<Location, Failure> {
        let given = match (&self.store, env) {
            (Some(store), _) => store.clone(),
            (None, Some(store)) if !store.is_empty() => store,
            _ => {
                return Err(Failure::Usage(format!(
                    "no store given: pass --store DIR (or --store postgres://…) or set {STORE_ENV}"
                )));
            }
        };
        match given.to_str().filter(|text| pg::is_url(text)) {
            Some(url) => Ok(Location::Postgres {
                url: url.to_owned(),
                schema: self
                    .schema
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SCHEMA.to_owned()),
            }),
            None if self.schema.is_some() => Err(Failure::Usage(format!(
                "--schema applies to PostgreSQL stores (postgres://…), and the store is the \
                 directory {}",
                Path::new(&given).display()
            ))),
            None => Ok(Location::Dir(PathBuf::from(given))),
        }
    }

    /// Opens the existing store; never creates a directory store, never
    /// migrates a PostgreSQL schema.
    pub fn open(&self) -> Result<Opened, Failure> {
        let location = self.location()?;
        let inbox = match &location {
            Location::Dir(dir) => Inbox::builder(dir)
                .create(false)
                .retention(NEVER_COLLECT)
                .open()
                .map_err(|e| open_failure(dir, &e))?,
            Location::Postgres { url, schema } => Inbox::postgres(url)
                .schema(schema.as_str())
                // Operator commands share the database with running
                // replicas: one connection, no LISTEN, and no migration
                // behind anyone's back.
                .migrate(false)
                .pool_size(1)
                .listen(false)
                .retention(NEVER_COLLECT)
                .connect()
                .map_err(|e| postgres_failure(url, schema, &e))?,
        };
        Ok(Opened { inbox, location })
    }
}

impl StoreArgs {
    /// Opens the store, runs `op` on it, closes it (waiting for its writes);
    /// returns what `op` gave and where the store is, for messages.
    pub fn with<T>(
        &self,
        op: impl FnOnce(&Inbox) -> Result<T, OperatorError>,
    ) -> Result<(T, Location), Failure> {
        let Opened { inbox, location } = self.open()?;
        let outcome = op(&inbox);
        inbox
            .close()
            .map_err(|e| store_failure(&location, &OperatorError::from(e)))?;
        let value = outcome.map_err(|e| store_failure(&location, &e))?;
        Ok((value, location))
    }
}

/// A store operation failed after the store was opened.
fn store_failure(location: &Location, err: &OperatorError) -> Failure {
    let err = match location {
        Location::Postgres { url, .. } => pg::scrub(&err.to_string(), url),
        Location::Dir(_) => err.to_string(),
    };
    Failure::Unavailable(format!("the store at {} failed: {err}", location.label()))
}

/// What went wrong connecting to the PostgreSQL store, and what to do about
/// it; never the password (what the driver said is scrubbed of it).
pub fn postgres_failure(url: &str, schema: &str, err: &OpenError) -> Failure {
    let at = pg::redact(url);
    Failure::Unavailable(match err {
        OpenError::InvalidSchema { .. } => return Failure::Usage(err.to_string()),
        OpenError::SchemaMissing {
            found: 0, known, ..
        } => format!(
            "the database at {at} has no webhook-inbox tables in schema {schema:?} \
             (this build needs schema version {known}); nothing was created. Check \
             --schema, or create them with `webhook-inbox migrate --store URL --schema \
             {schema}` (or apply `webhook-inbox migrate --print --schema {schema}` with \
             your migration tool)."
        ),
        OpenError::SchemaMissing { found, known, .. } => format!(
            "schema {schema:?} at {at} is at version {found}, and this build needs version \
             {known}; nothing was changed. Migrate it with `webhook-inbox migrate --store \
             URL --schema {schema}` (or apply `webhook-inbox migrate --print --schema \
             {schema}` with your migration tool), then run this command again."
        ),
        OpenError::SchemaTooNew { found, known, .. } => format!(
            "schema {schema:?} at {at} is at version {found}, newer than this build of \
             webhook-inbox knows ({known}): use the webhook-inbox version the service runs."
        ),
        OpenError::Database { detail } => format!(
            "cannot use the PostgreSQL store at {at}: {}",
            pg::scrub(detail, url)
        ),
        other => format!(
            "cannot use the PostgreSQL store at {at}: {}",
            pg::scrub(&other.to_string(), url)
        ),
    })
}

/// What went wrong opening `dir`, and what to do about it.
pub fn open_failure(dir: &Path, err: &OpenError) -> Failure {
    let path = dir.display();
    Failure::Unavailable(match err {
        OpenError::InUse { .. } => format!(
            "the store at {path} is in use: the service (or another webhook-inbox command) \
             has it open, and sled allows one process per store.\n\
             Stop the service and run this command again, or do this inside the running \
             service through the library API (Inbox::events, Inbox::event, Inbox::replay, \
             Inbox::purge_dead)."
        ),
        OpenError::NotFound { .. } => format!(
            "there is no store at {path} (no such directory, or it is empty); nothing was \
             created. Check --store or {STORE_ENV}."
        ),
        OpenError::NotAStore { .. } => format!(
            "{path} is not a webhook-inbox store: it holds other files but no `sled` or `wal` \
             directory. Nothing was created or changed; check --store or {STORE_ENV}."
        ),
        OpenError::Corrupt { detail, .. } => format!(
            "the store at {path} cannot be read (corrupt, or not a webhook-inbox store): {detail}"
        ),
        OpenError::Io { error, .. } => format!("cannot open the store at {path}: {error}"),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(store: Option<&str>, schema: Option<&str>) -> StoreArgs {
        StoreArgs {
            store: store.map(OsString::from),
            schema: schema.map(str::to_owned),
        }
    }

    #[test]
    fn the_flag_wins_over_the_environment() {
        let flag = args(Some("/from/flag"), None);
        let none = args(None, None);
        let env = Some(OsString::from("/from/env"));
        let dir = |d: &str| Location::Dir(PathBuf::from(d));
        assert_eq!(
            flag.location_from(env.clone()).ok(),
            Some(dir("/from/flag"))
        );
        assert_eq!(none.location_from(env).ok(), Some(dir("/from/env")));
        for missing in [None, Some(OsString::new())] {
            match none.location_from(missing) {
                Err(Failure::Usage(m)) => assert!(m.contains(STORE_ENV), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        let url_env = Some(OsString::from("postgres://u:pw@db/hooks"));
        assert_eq!(
            flag.location_from(url_env.clone()).ok(),
            Some(dir("/from/flag"))
        );
        let pg_flag = args(Some("postgresql://db/flag"), None);
        assert_eq!(
            pg_flag.location_from(Some("/from/env".into())).ok(),
            Some(Location::Postgres {
                url: "postgresql://db/flag".into(),
                schema: DEFAULT_SCHEMA.into()
            })
        );
    }

    #[test]
    fn a_url_is_a_postgres_store_with_a_schema() {
        let env = Some(OsString::from("postgres://u:pw@db/hooks"));
        let located = args(None, Some("hooks_eu")).location_from(env).ok();
        assert_eq!(
            located,
            Some(Location::Postgres {
                url: "postgres://u:pw@db/hooks".into(),
                schema: "hooks_eu".into()
            })
        );
        let label = located.map(|l| l.label()).unwrap_or_default();
        assert_eq!(label, "postgres://u:***@db/hooks (schema hooks_eu)");
        match args(Some("/srv/hooks"), Some("x")).location_from(None) {
            Err(Failure::Usage(m)) => assert!(m.contains("--schema") && m.contains("/srv/hooks")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn postgres_failures_say_what_to_do_and_hide_the_password() {
        let url = "postgres://hooks:hunter2@db/hooks";
        let missing = OpenError::SchemaMissing {
            schema: "hooks".into(),
            found: 0,
            known: 1,
        };
        let m = postgres_failure(url, "hooks", &missing).to_string();
        assert!(
            m.contains("webhook-inbox migrate") && m.contains("nothing was created"),
            "{m}"
        );
        assert!(
            m.contains("postgres://hooks:***@db/hooks") && !m.contains("hunter2"),
            "{m}"
        );
        let refused = OpenError::Database {
            detail: format!("could not reach {url}: hunter2"),
        };
        let m = postgres_failure(url, "hooks", &refused).to_string();
        assert!(!m.contains("hunter2"), "{m}");
        let bad = OpenError::InvalidSchema { name: "a;b".into() };
        assert!(matches!(
            postgres_failure(url, "a;b", &bad),
            Failure::Usage(_)
        ));
    }

    #[test]
    fn open_failures_name_the_path() {
        let dir = Path::new("/srv/hooks");
        let in_use = open_failure(dir, &OpenError::InUse { path: dir.into() }).to_string();
        assert!(in_use.contains("/srv/hooks") && in_use.contains("one process per store"));
        assert!(in_use.contains("Inbox::replay"));
        let missing = open_failure(dir, &OpenError::NotFound { path: dir.into() }).to_string();
        assert!(missing.contains("/srv/hooks") && missing.contains("nothing was created"));
    }
}
