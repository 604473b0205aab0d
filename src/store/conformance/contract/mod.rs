//! The contract of [`Backend`], one clause per test. Each takes the factory
//! of the backend under test; the [`conformance!`](super::conformance) macro
//! makes a `#[test]` of each.

use std::borrow::Cow;

use super::super::backend::{
    Backend, ClaimRequest, Claimed, DeadChange, DeadSelection, Filter, Finish, Outcome, Token,
};
use super::super::{Insert, NewEvent, Progress, Standing, StoreCounts, StoreError, lifecycle};
use super::{Config, Factory, Harness, sync};
use crate::clock::from_unix_millis;

/// "Now" at the start of every test (ms since the epoch).
const T0: i64 = 1_700_000_000_000;
/// How long a claim's lease lasts.
const LEASE: i64 = 30_000;
/// The ordering key's JSON pointer in the test bodies.
const KEY: &str = "/k";

fn open(factory: &Factory, config: Config) -> (Box<dyn Harness>, Box<dyn Backend>) {
    let mut harness = factory(config);
    let backend = harness.open();
    (harness, backend)
}

fn event<'a>(
    source: &'a str,
    id: &'a str,
    event_type: &'a str,
    received_ms: i64,
    body: &'a [u8],
) -> NewEvent<'a> {
    NewEvent {
        source,
        id,
        event_type,
        received_at: from_unix_millis(received_ms),
        headers: vec![("webhook-id", Cow::Borrowed(id))],
        body,
    }
}

/// Inserts a new event and answers its seq.
fn accept(backend: &dyn Backend, event: NewEvent<'_>) -> u64 {
    match backend.insert(event) {
        Ok(Insert::Accepted { seq }) => seq,
        other => panic!("expected Accepted, got {other:?}"),
    }
}

/// Inserts event `id` of source "shop" (body `{}`), received at T0.
fn add(backend: &dyn Backend, id: &str) -> u64 {
    accept(backend, event("shop", id, "order.created", T0, b"{}"))
}

/// Inserts event `id` whose ordering key (at [`KEY`]) is `key`.
fn add_keyed(backend: &dyn Backend, id: &str, key: &str) -> u64 {
    let body = format!(r#"{{"k":"{key}"}}"#);
    accept(
        backend,
        event("shop", id, "order.created", T0, body.as_bytes()),
    )
}

fn claim_at(
    backend: &dyn Backend,
    now_ms: i64,
    limit: usize,
    ordering: Option<&str>,
) -> Vec<Claimed> {
    sync(backend);
    let request = ClaimRequest {
        limit,
        now_ms,
        lease_until_ms: now_ms + LEASE,
        ordering,
    };
    match backend.claim(&request) {
        Ok(claimed) => claimed,
        Err(e) => panic!("claim: {e}"),
    }
}

/// Claims up to 100 events at `now_ms`, without ordering.
fn claim(backend: &dyn Backend, now_ms: i64) -> Vec<Claimed> {
    claim_at(backend, now_ms, 100, None)
}

/// Claims up to 100 events at `now_ms`, ordered by [`KEY`].
fn claim_ordered(backend: &dyn Backend, now_ms: i64) -> Vec<Claimed> {
    claim_at(backend, now_ms, 100, Some(KEY))
}

fn seqs(claimed: &[Claimed]) -> Vec<u64> {
    claimed.iter().map(|c| c.stored.seq).collect()
}

/// The claim of `seq` among `claimed`.
fn token_of(claimed: &[Claimed], seq: u64) -> Token {
    match claimed.iter().find(|c| c.stored.seq == seq) {
        Some(c) => c.token,
        None => panic!("event {seq} was not claimed: {:?}", seqs(claimed)),
    }
}

fn finish(backend: &dyn Backend, seq: u64, token: Token, outcome: Outcome) -> bool {
    match backend.finish(&[Finish {
        seq,
        token,
        outcome,
    }]) {
        Ok(recorded) if recorded.len() == 1 => recorded[0],
        other => panic!("finish: {other:?}"),
    }
}

/// A failed first attempt, retried at `at_ms`.
fn retry_at(at_ms: i64) -> Outcome {
    Outcome::Progress(lifecycle::retry(
        lifecycle::fail(None, 1, T0, "down"),
        at_ms,
    ))
}

/// A failed first attempt, buried at `at_ms`.
fn dead_at(at_ms: i64) -> Outcome {
    Outcome::Progress(lifecycle::bury(
        lifecycle::fail(None, 1, at_ms, "gone"),
        at_ms,
    ))
}

fn counts(backend: &dyn Backend) -> StoreCounts {
    sync(backend);
    backend.counts()
}

fn pending(pending: u64, retrying: u64, dead: u64, markers: u64) -> StoreCounts {
    StoreCounts {
        pending,
        retrying,
        dead,
        markers,
    }
}

fn listed(backend: &dyn Backend, filter: &Filter) -> Vec<u64> {
    match backend.list(filter, 0, 1_000) {
        Ok(listing) => listing.events.iter().map(|s| s.seq).collect(),
        Err(e) => panic!("list: {e}"),
    }
}

fn dead_filter() -> Filter {
    Filter {
        standing: Some(Standing::Dead),
        ..Filter::default()
    }
}

fn change(backend: &dyn Backend, which: &DeadSelection<'_>, change: DeadChange) -> usize {
    match backend.change_dead(which, change) {
        Ok(changed) => changed.done,
        Err(e) => panic!("change_dead: {e}"),
    }
}

fn stored_progress(backend: &dyn Backend, id: &str) -> Option<Progress> {
    match backend.event(None, id) {
        Ok(Some(stored)) => stored.progress,
        other => panic!("event {id}: {other:?}"),
    }
}

mod claims;
mod operators;
mod ordering;

pub(super) use claims::*;
pub(super) use operators::*;
pub(super) use ordering::*;
