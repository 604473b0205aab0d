//! The contract of [`Backend`]: every backend runs the same tests.
//!
//! A backend joins by naming a factory once:
//!
//! ```text
//! conformance!(memory, super::memory, cases = 64);
//! ```
//!
//! where `super::memory` is a `fn(Config) -> Box<dyn Harness>` (a path from
//! inside the generated module `memory`). The macro expands
//! into a module of `#[test]`s, one per clause of the contract
//! ([`contract`]), and one model-based property test ([`model`]) that runs
//! random operations against the backend and against a small model of the
//! contract kept in plain maps.
//!
//! Reads go through the seam's own sync point: [`sync`] lists nothing, and a
//! listing sees every write recorded before it, so a claim after it sees
//! them too (the embedded store applies its log to sled asynchronously).

mod contract;
mod model;

use std::sync::Arc;
use std::time::Duration;

use super::backend::{Backend, Filter};
use super::local::Local;
use super::local::memory::Memory;

/// What a fresh backend is opened with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// How long a dedup marker is kept after its event is gone.
    pub(crate) retention: Duration,
    /// Inserts past this many pending events are refused.
    pub(crate) max_pending: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(3600),
            max_pending: 1_000,
        }
    }
}

/// One backend under test: opened empty, and opened again over the same data.
pub(crate) trait Harness {
    /// The backend, empty.
    fn open(&mut self) -> Box<dyn Backend>;

    /// Closes `old` as a stopping process would and opens the backend again:
    /// the same events, progress, markers and dead letters, no claims.
    fn reopen(&mut self, old: Box<dyn Backend>) -> Box<dyn Backend>;
}

/// A factory of harnesses, one per test.
pub(crate) type Factory = dyn Fn(Config) -> Box<dyn Harness>;

/// Waits until every write recorded so far is visible to claims and reads.
pub(crate) fn sync(backend: &dyn Backend) {
    let listed = backend.list(&Filter::default(), 0, 0);
    assert!(listed.is_ok(), "sync point: {listed:?}");
}

/// Expands into the conformance tests for one backend: `$name` names the
/// module, `$factory` is a `fn(Config) -> Box<dyn Harness>`, `$cases` the
/// number of random cases of the model-based test.
macro_rules! conformance {
    ($name:ident, $factory:path, cases = $cases:expr) => {
        $crate::store::conformance::conformance!(
            $name, $factory, cases = $cases, if = $crate::store::conformance::always
        );
    };
    ($name:ident, $factory:path, cases = $cases:expr, if = $available:path) => {
        $crate::store::conformance::conformance!(@tests $name, $factory, $cases, $available, [
            insert_then_duplicate_stores_nothing_new,
            insert_is_refused_at_max_pending,
            claim_hands_out_fresh_events_in_acceptance_order_once,
            leased_event_is_claimed_again_only_after_its_lease_with_a_new_token,
            heartbeat_extends_a_lease_and_refuses_a_stale_token,
            finish_with_a_stale_token_is_refused_and_writes_nothing,
            forget_removes_the_event_and_keeps_its_marker,
            retry_is_claimable_only_once_due,
            dead_progress_makes_a_dead_letter,
            release_makes_an_event_claimable_at_once,
            keep_holds_the_claim_and_frees_its_ordering_key,
            kept_event_holds_its_key_again_when_its_claim_ends,
            after_a_reopen_an_earlier_fresh_event_holds_its_key,
            ordering_holds_later_events_of_a_key_until_the_first_is_finished,
            retrying_event_holds_its_key,
            replay_makes_a_dead_letter_claimable_afresh,
            replayed_dead_letter_holds_its_key_again,
            purge_removes_dead_letters_by_age,
            event_by_id_with_and_without_source,
            list_pages_and_filters,
            collect_expired_removes_only_old_markers_of_gone_events,
            reopen_keeps_the_data_and_drops_every_lease,
            closed_backend_answers_closed,
        ]);
    };
    (@tests $name:ident, $factory:path, $cases:expr, $available:path, [$($test:ident),* $(,)?]) => {
        mod $name {
            $(
                #[test]
                fn $test() {
                    if $available() {
                        $crate::store::conformance::contract::$test(&$factory);
                    }
                }
            )*

            #[test]
            fn model_based() {
                if $available() {
                    $crate::store::conformance::model::check(&$factory, $cases);
                }
            }
        }
    };
}
pub(crate) use conformance;

/// The in-memory store; "reopen" keeps its tables and drops the claims, as a
/// restart of the process would if the tables survived it.
fn memory(config: Config) -> Box<dyn Harness> {
    struct MemoryHarness {
        config: Config,
        tables: Option<Arc<Memory>>,
    }
    impl Harness for MemoryHarness {
        fn open(&mut self) -> Box<dyn Backend> {
            let tables = Arc::new(Memory::new(self.config.retention, self.config.max_pending));
            self.tables = Some(Arc::clone(&tables));
            Box::new(Local::over(tables))
        }

        fn reopen(&mut self, old: Box<dyn Backend>) -> Box<dyn Backend> {
            // Not closed: closing would close the shared tables.
            drop(old);
            match &self.tables {
                Some(tables) => Box::new(Local::over(Arc::clone(tables))),
                None => self.open(),
            }
        }
    }
    Box::new(MemoryHarness {
        config,
        tables: None,
    })
}

/// The embedded sled store, in a temporary directory.
fn sled(config: Config) -> Box<dyn Harness> {
    use crate::Durability;
    use crate::clock::ManualClock;
    use crate::store::sled::{OpenFailure, Settings, SledStore};

    struct SledHarness {
        config: Config,
        dir: tempfile::TempDir,
    }
    impl SledHarness {
        fn open_store(&self) -> Box<dyn Backend> {
            let settings = Settings {
                durability: Durability::Fsync,
                retention: self.config.retention,
                cache_bytes: 4 << 20,
                max_pending: self.config.max_pending,
                // The store collects expired markers in the background by
                // this clock: at the epoch, it collects none of the suite's
                // (received in 2023 and later); only `collect_expired` does.
                clock: Arc::new(ManualClock::at_unix(0)),
            };
            match SledStore::open(&self.dir.path().join("inbox"), settings, true) {
                Ok(store) => Box::new(Local::new(store)),
                Err(OpenFailure::Io(e)) => panic!("opening the sled store: {e}"),
                Err(OpenFailure::Corrupt(e)) => panic!("opening the sled store: corrupt: {e}"),
                Err(_) => panic!("opening the sled store failed"),
            }
        }
    }
    impl Harness for SledHarness {
        fn open(&mut self) -> Box<dyn Backend> {
            self.open_store()
        }

        fn reopen(&mut self, old: Box<dyn Backend>) -> Box<dyn Backend> {
            let closed = old.close();
            assert!(closed.is_ok(), "closing the sled store: {closed:?}");
            drop(old);
            self.open_store()
        }
    }
    let dir = tempfile::TempDir::new();
    assert!(dir.is_ok(), "a temporary directory: {dir:?}");
    let Ok(dir) = dir else { unreachable!() };
    Box::new(SledHarness { config, dir })
}

/// Every backend that needs nothing outside the process runs.
pub(crate) fn always() -> bool {
    true
}

/// The PostgreSQL backend, in a fresh schema of the test database; "reopen"
/// closes it (its claims go back, as a stopping replica's do) and connects
/// again. The clock is at the epoch, so the background retention collects
/// none of the suite's markers.
#[cfg(feature = "postgres")]
fn postgres(config: Config) -> Box<dyn Harness> {
    use crate::clock::ManualClock;
    use crate::store::postgres::{Settings, connect, testdb};

    struct PgHarness {
        config: Config,
        url: String,
        schema: String,
    }
    impl PgHarness {
        fn connect(&self) -> Box<dyn Backend> {
            let settings = Settings {
                url: self.url.clone(),
                schema: self.schema.clone(),
                pool_size: 2,
                listen: true,
                migrate: true,
                retention: self.config.retention,
                max_pending: self.config.max_pending,
                clock: Arc::new(ManualClock::at_unix(0)),
            };
            match connect(settings) {
                Ok(connected) => Box::new(connected.backend),
                Err(e) => panic!("connecting to the test database: {e}"),
            }
        }
    }
    impl Harness for PgHarness {
        fn open(&mut self) -> Box<dyn Backend> {
            self.connect()
        }

        fn reopen(&mut self, old: Box<dyn Backend>) -> Box<dyn Backend> {
            let closed = old.close();
            assert!(closed.is_ok(), "closing the backend: {closed:?}");
            drop(old);
            self.connect()
        }
    }
    impl Drop for PgHarness {
        fn drop(&mut self) {
            testdb::drop_schema(&self.url, &self.schema);
        }
    }
    let Some(url) = testdb::url() else {
        unreachable!("the suite checks the database first")
    };
    Box::new(PgHarness {
        config,
        url,
        schema: testdb::fresh_schema("conf"),
    })
}

/// Whether the PostgreSQL suite can run (else it says why and skips).
#[cfg(feature = "postgres")]
fn postgres_available() -> bool {
    crate::store::postgres::testdb::url().is_some()
}

conformance!(memory, super::memory, cases = 64);
conformance!(sled, super::sled, cases = 12);
#[cfg(feature = "postgres")]
conformance!(postgres, super::postgres, cases = 16, if = super::postgres_available);
