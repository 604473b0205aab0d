//! Handlers by event type: exact names, `domain.*` wildcards, a fallback.
//!
//! The router is what the worker calls for each due event; it can also be
//! used (and tested) on its own.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::ConfigError;
use crate::pattern::Patterns;

mod event;

pub use event::Event;

/// Why a handler did not finish an event, and what to do about it.
///
/// ```
/// use std::time::Duration;
/// use webhook_inbox::HandlerError;
///
/// let later = HandlerError::retry_after(Duration::from_secs(30), "rate limited");
/// assert_eq!(later.requested_wait(), Some(Duration::from_secs(30)));
/// assert!(HandlerError::permanent("unknown account").is_permanent());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// Try again after the backoff delay.
    #[error("{reason}")]
    Retry {
        /// What went wrong (kept in the event's error history).
        reason: String,
    },
    /// Try again no sooner than `after`.
    #[error("{reason} (retry after {after:?})")]
    RetryAfter {
        /// The least wait.
        after: Duration,
        /// What went wrong.
        reason: String,
    },
    /// Do not retry: dead-letter the event now.
    #[error("{reason} (permanent)")]
    Permanent {
        /// What went wrong.
        reason: String,
    },
}

impl HandlerError {
    /// A failure worth retrying after the backoff delay.
    ///
    /// ```
    /// # use webhook_inbox::HandlerError;
    /// assert!(!HandlerError::retry("timeout").is_permanent());
    /// ```
    pub fn retry(reason: impl fmt::Display) -> Self {
        Self::Retry {
            reason: reason.to_string(),
        }
    }

    /// A failure worth retrying, but not before `after`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use webhook_inbox::HandlerError;
    /// let e = HandlerError::retry_after(Duration::from_secs(5), "busy");
    /// assert_eq!(e.to_string(), "busy (retry after 5s)");
    /// ```
    pub fn retry_after(after: Duration, reason: impl fmt::Display) -> Self {
        Self::RetryAfter {
            after,
            reason: reason.to_string(),
        }
    }

    /// A failure no retry can fix.
    ///
    /// ```
    /// # use webhook_inbox::HandlerError;
    /// assert_eq!(HandlerError::permanent("bad account").to_string(), "bad account (permanent)");
    /// ```
    pub fn permanent(reason: impl fmt::Display) -> Self {
        Self::Permanent {
            reason: reason.to_string(),
        }
    }

    /// Whether the event should go to the dead letters now.
    ///
    /// ```
    /// # use webhook_inbox::HandlerError;
    /// assert!(HandlerError::permanent("x").is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent { .. })
    }

    /// The least wait the handler asked for, if any.
    ///
    /// ```
    /// # use webhook_inbox::HandlerError;
    /// assert_eq!(HandlerError::retry("x").requested_wait(), None);
    /// ```
    pub fn requested_wait(&self) -> Option<Duration> {
        match self {
            Self::RetryAfter { after, .. } => Some(*after),
            _ => None,
        }
    }
}

/// What a handler returns.
pub type HandlerResult = Result<(), HandlerError>;

type Handler = Arc<dyn Fn(&Event) -> HandlerResult + Send + Sync>;

/// What happens to events no handler matches.
///
/// ```
/// use webhook_inbox::UnknownTypes;
///
/// assert_eq!(UnknownTypes::default(), UnknownTypes::Complete);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UnknownTypes {
    /// Count them and consider them done (a sender may add event types at any time).
    #[default]
    Complete,
    /// Leave them pending until a handler is registered: the worker that
    /// met one holds it until it stops, then the next worker runs it.
    Keep,
    /// Put them in the dead letters.
    DeadLetter,
}

/// The outcome of routing one event.
///
/// ```
/// use webhook_inbox::{Dispatch, Event, Router};
///
/// let router = Router::builder().build()?;
/// let outcome = router.dispatch(&Event::new("e", "order.filled", b"{}".to_vec()));
/// assert!(matches!(outcome, Dispatch::Unknown(_)));
/// # Ok::<(), webhook_inbox::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dispatch {
    /// A handler ran and returned this.
    Ran(HandlerResult),
    /// The handler panicked (caught); the worker treats it as a retryable error.
    Panicked(String),
    /// No handler matched; the router's policy says what to do.
    Unknown(UnknownTypes),
}

/// Handlers by event type. The most specific match wins: an exact name, then
/// the longest `domain.*` wildcard, then the fallback.
///
/// ```
/// use webhook_inbox::{Dispatch, Event, HandlerError, Router};
///
/// let router = Router::builder()
///     .on("order.filled", |e: &Event| { assert_eq!(e.event_type(), "order.filled"); Ok(()) })
///     .on("transfer.*", |_e: &Event| Err(HandlerError::retry("bank unreachable")))
///     .build()?;
/// let filled = Event::new("e1", "order.filled", b"{}".to_vec());
/// assert_eq!(router.dispatch(&filled), Dispatch::Ran(Ok(())));
/// let deposit = Event::new("e2", "transfer.deposit.completed", b"{}".to_vec());
/// assert!(matches!(router.dispatch(&deposit), Dispatch::Ran(Err(_))));
/// # Ok::<(), webhook_inbox::ConfigError>(())
/// ```
pub struct Router {
    handlers: Patterns<Handler>,
    unknown: UnknownTypes,
}

/// Builds a [`Router`]; see [`Router::builder`].
///
/// ```
/// use webhook_inbox::{Router, UnknownTypes};
///
/// let router = Router::builder().unknown_types(UnknownTypes::Keep).build()?;
/// # let _ = router;
/// # Ok::<(), webhook_inbox::ConfigError>(())
/// ```
#[must_use]
#[derive(Default)]
pub struct RouterBuilder {
    entries: Vec<(String, Handler)>,
    unknown: UnknownTypes,
}

impl RouterBuilder {
    /// Registers `handler` for `pattern`: an exact type (`order.filled`), a
    /// domain wildcard (`order.*`, `transfer.deposit.*`), or `*` (the fallback).
    ///
    /// ```
    /// use webhook_inbox::{Event, Router};
    ///
    /// let router = Router::builder().on("*", |_e: &Event| Ok(())).build()?;
    /// # let _ = router;
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn on<F>(mut self, pattern: impl Into<String>, handler: F) -> Self
    where
        F: Fn(&Event) -> HandlerResult + Send + Sync + 'static,
    {
        self.entries.push((pattern.into(), Arc::new(handler)));
        self
    }

    /// Registers a typed handler: the event's `data` is deserialized into `T`
    /// first; a payload that does not fit is a permanent failure.
    ///
    /// ```
    /// use webhook_inbox::{Dispatch, Event, Router};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Deposit { amount: String }
    ///
    /// let router = Router::builder()
    ///     .on_typed("transfer.deposit.completed", |_e: &Event, d: Deposit| {
    ///         assert_eq!(d.amount, "2500.00");
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// let e = Event::new("e", "transfer.deposit.completed", br#"{"data":{"amount":"2500.00"}}"#.to_vec());
    /// assert_eq!(router.dispatch(&e), Dispatch::Ran(Ok(())));
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn on_typed<T, F>(self, pattern: impl Into<String>, handler: F) -> Self
    where
        T: DeserializeOwned,
        F: Fn(&Event, T) -> HandlerResult + Send + Sync + 'static,
    {
        self.on(pattern, move |event: &Event| handler(event, event.data()?))
    }

    /// What to do with events no handler matches. Defaults to [`UnknownTypes::Complete`].
    ///
    /// ```
    /// use webhook_inbox::{Router, UnknownTypes};
    ///
    /// let r = Router::builder().unknown_types(UnknownTypes::DeadLetter).build()?;
    /// # let _ = r;
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn unknown_types(mut self, policy: UnknownTypes) -> Self {
        self.unknown = policy;
        self
    }

    /// Checks the patterns: each valid, none registered twice.
    ///
    /// ```
    /// use webhook_inbox::{ConfigError, Event, Router};
    ///
    /// let twice = Router::builder()
    ///     .on("order.*", |_e: &Event| Ok(()))
    ///     .on("order.*", |_e: &Event| Ok(()))
    ///     .build();
    /// assert!(matches!(twice, Err(ConfigError::DuplicatePattern(_))));
    /// ```
    pub fn build(self) -> Result<Router, ConfigError> {
        let mut handlers = Patterns::default();
        for (pattern, handler) in self.entries {
            handlers.insert(pattern, handler)?;
        }
        Ok(Router {
            handlers,
            unknown: self.unknown,
        })
    }
}

impl Router {
    /// A builder to register handlers.
    ///
    /// ```
    /// use webhook_inbox::Router;
    ///
    /// let router = Router::builder().build()?;
    /// # let _ = router;
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// Runs the most specific handler for `event`, catching a panic, or
    /// reports that none matched.
    ///
    /// ```
    /// use webhook_inbox::{Dispatch, Event, HandlerError, Router};
    ///
    /// let router = Router::builder().on("order.filled", |_e: &Event| -> Result<(), HandlerError> {
    ///     panic!("bug in the handler")
    /// }).build()?;
    /// let outcome = router.dispatch(&Event::new("e", "order.filled", b"{}".to_vec()));
    /// assert!(matches!(outcome, Dispatch::Panicked(what) if what == "bug in the handler"));
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn dispatch(&self, event: &Event) -> Dispatch {
        self.dispatch_inner(event)
    }

    /// The registered pattern that handles `event_type`, if any (a metrics label).
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn pattern_of(&self, event_type: &str) -> Option<String> {
        self.handlers.pattern_of(event_type)
    }

    fn dispatch_inner(&self, event: &Event) -> Dispatch {
        let Some(handler) = self.handlers.get(event.event_type()) else {
            return Dispatch::Unknown(self.unknown);
        };
        match catch_unwind(AssertUnwindSafe(|| handler(event))) {
            Ok(result) => Dispatch::Ran(result),
            Err(panic) => Dispatch::Panicked(
                panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".to_owned()),
            ),
        }
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("patterns", &self.handlers.names())
            .field("unknown", &self.unknown)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(tag: &'static str) -> impl Fn(&Event) -> HandlerResult + Send + Sync + 'static {
        move |_| Err(HandlerError::permanent(tag))
    }

    fn winner(router: &Router, event_type: &str) -> Option<String> {
        match router.dispatch(&Event::new("e", event_type, b"{}".to_vec())) {
            Dispatch::Ran(Err(HandlerError::Permanent { reason })) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn the_most_specific_pattern_wins() {
        let router = Router::builder()
            .on("*", tagged("fallback"))
            .on("transfer.*", tagged("transfer.*"))
            .on("transfer.deposit.*", tagged("transfer.deposit.*"))
            .on("transfer.deposit.completed", tagged("exact"))
            .build()
            .unwrap();
        assert_eq!(
            winner(&router, "transfer.deposit.completed").as_deref(),
            Some("exact")
        );
        assert_eq!(
            winner(&router, "transfer.deposit.failed").as_deref(),
            Some("transfer.deposit.*")
        );
        assert_eq!(
            winner(&router, "transfer.withdrawal.failed").as_deref(),
            Some("transfer.*")
        );
        assert_eq!(winner(&router, "transferx").as_deref(), Some("fallback"));
        assert_eq!(winner(&router, "order.filled").as_deref(), Some("fallback"));
    }

    #[test]
    fn bad_and_repeated_patterns_are_refused_when_built() {
        for bad in ["", "order.*.filled", "*.filled", ".*", "order filled"] {
            let built = Router::builder().on(bad, tagged("x")).build();
            assert!(
                matches!(built, Err(ConfigError::InvalidPattern(_))),
                "{bad:?}"
            );
        }
        for twice in ["order.filled", "order.*", "*"] {
            let built = Router::builder()
                .on(twice, tagged("a"))
                .on(twice, tagged("b"))
                .build();
            assert!(
                matches!(built, Err(ConfigError::DuplicatePattern(_))),
                "{twice:?}"
            );
        }
    }

    #[test]
    fn a_payload_that_does_not_fit_is_permanent() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Order {
            id: String,
        }
        let router = Router::builder()
            .on_typed("order.filled", |_e: &Event, _o: Order| Ok(()))
            .build()
            .unwrap();
        let wrong = Event::new("e", "order.filled", br#"{"data":{"id":42}}"#.to_vec());
        assert!(matches!(
            router.dispatch(&wrong),
            Dispatch::Ran(Err(HandlerError::Permanent { .. }))
        ));
    }
}
