//! Opening the store for the store commands (`stats`, `list`, `show`,
//! `replay`, `purge`), and saying plainly why it could not be opened.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use webhook_inbox::{Inbox, OpenError, OperatorError};

use crate::common::Failure;

/// The environment variable read when `--store` is not given.
pub const STORE_ENV: &str = "WEBHOOK_INBOX_STORE";

/// Dedup markers are collected by whoever has the store open, with the
/// retention it was opened with. The service's retention is not recorded in
/// the store, so the CLI opens with one no marker ever reaches: running a
/// command never makes a redelivery look new.
const NEVER_COLLECT: Duration = Duration::from_secs(1000 * 365 * 86_400);

/// The `--store` flag shared by the store commands.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The store's directory, as the service opens it [env: WEBHOOK_INBOX_STORE].
    /// Never created: a mistyped path is an error, not a new empty store.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

impl StoreArgs {
    /// The directory from `--store`, else from `WEBHOOK_INBOX_STORE`.
    fn dir(&self) -> Result<PathBuf, Failure> {
        self.dir_from(std::env::var_os(STORE_ENV))
    }

    fn dir_from(&self, env: Option<OsString>) -> Result<PathBuf, Failure> {
        match (&self.store, env) {
            (Some(dir), _) => Ok(dir.clone()),
            (None, Some(dir)) if !dir.is_empty() => Ok(PathBuf::from(dir)),
            _ => Err(Failure::Usage(format!(
                "no store given: pass --store DIR or set {STORE_ENV}"
            ))),
        }
    }

    /// Opens the existing store; never creates one.
    pub fn open(&self) -> Result<Inbox, Failure> {
        let dir = self.dir()?;
        Inbox::builder(&dir)
            .create(false)
            .retention(NEVER_COLLECT)
            .open()
            .map_err(|e| open_failure(&dir, &e))
    }
}

impl StoreArgs {
    /// Opens the store, runs `op` on it, closes it (waiting for its writes);
    /// returns what `op` gave and the store's path, for messages.
    pub fn with<T>(
        &self,
        op: impl FnOnce(&Inbox) -> Result<T, OperatorError>,
    ) -> Result<(T, PathBuf), Failure> {
        let inbox = self.open()?;
        let path = inbox.path().to_owned();
        let outcome = op(&inbox);
        inbox
            .close()
            .map_err(|e| store_failure(&path, &OperatorError::from(e)))?;
        let value = outcome.map_err(|e| store_failure(&path, &e))?;
        Ok((value, path))
    }
}

/// A store operation failed after the store was opened.
fn store_failure(path: &Path, err: &OperatorError) -> Failure {
    Failure::Unavailable(format!("the store at {} failed: {err}", path.display()))
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

    #[test]
    fn the_flag_wins_over_the_environment() {
        let flag = StoreArgs {
            store: Some("/from/flag".into()),
        };
        let none = StoreArgs { store: None };
        let env = Some(OsString::from("/from/env"));
        assert_eq!(
            flag.dir_from(env.clone()).ok(),
            Some(PathBuf::from("/from/flag"))
        );
        assert_eq!(none.dir_from(env).ok(), Some(PathBuf::from("/from/env")));
        for missing in [None, Some(OsString::new())] {
            match none.dir_from(missing) {
                Err(Failure::Usage(m)) => assert!(m.contains(STORE_ENV), "{m}"),
                other => panic!("{other:?}"),
            }
        }
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
