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

pub(super) fn insert_then_duplicate_stores_nothing_new(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let first = add(&*b, "evt_1");
    let again = b.insert(event(
        "shop",
        "evt_1",
        "order.paid",
        T0 + 5,
        b"{\"other\":1}",
    ));
    assert_eq!(again.ok(), Some(Insert::Duplicate { seq: first }));
    assert_eq!(counts(&*b), pending(1, 0, 0, 1));
    let other_source = add(&*b, "evt_2");
    assert_ne!(other_source, first);
    let same_id_elsewhere = accept(&*b, event("bank", "evt_1", "order.created", T0, b"{}"));
    assert!(
        same_id_elsewhere > other_source,
        "seqs grow in acceptance order"
    );
    assert_eq!(counts(&*b), pending(3, 0, 0, 3));
    let stored = b.event(Some("shop"), "evt_1").ok().flatten();
    let stored = stored.map(|s| (s.seq, s.event.event_type, s.event.body));
    assert_eq!(
        stored,
        Some((first, "order.created".to_owned(), b"{}".to_vec())),
        "the first copy is kept"
    );
}

pub(super) fn insert_is_refused_at_max_pending(factory: &Factory) {
    let config = Config {
        max_pending: 2,
        ..Config::default()
    };
    let (_h, b) = open(factory, config);
    let first = add(&*b, "a");
    add(&*b, "b");
    let refused = b.insert(event("shop", "c", "order.created", T0, b"{}"));
    assert_eq!(
        refused.ok(),
        Some(Insert::Overloaded {
            pending: 2,
            limit: 2
        })
    );
    assert_eq!(counts(&*b), pending(2, 0, 0, 2), "nothing stored");
    let duplicate = b.insert(event("shop", "a", "order.created", T0, b"{}"));
    assert_eq!(
        duplicate.ok(),
        Some(Insert::Duplicate { seq: first }),
        "a duplicate is still a duplicate"
    );
    let claimed = claim(&*b, T0);
    assert!(finish(
        &*b,
        first,
        token_of(&claimed, first),
        Outcome::Forget
    ));
    add(&*b, "c");
    assert_eq!(counts(&*b), pending(2, 0, 0, 3));
}

pub(super) fn claim_hands_out_fresh_events_in_acceptance_order_once(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let all: Vec<u64> = (0..5).map(|i| add(&*b, &format!("evt_{i}"))).collect();
    let first = claim_at(&*b, T0, 2, None);
    assert_eq!(seqs(&first), all[..2]);
    let rest = claim_at(&*b, T0, 10, None);
    assert_eq!(seqs(&rest), all[2..]);
    assert!(claim(&*b, T0 + 1).is_empty(), "each once");
    let mut tokens: Vec<Token> = first.iter().chain(&rest).map(|c| c.token).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 5, "a token per claim");
    let e = &first[0].stored;
    assert_eq!(
        (e.event.source.as_str(), e.event.id.as_str()),
        ("shop", "evt_0")
    );
    assert_eq!(
        (e.event.event_type.as_str(), e.event.received_at_ms),
        ("order.created", T0)
    );
    assert_eq!(
        e.event.headers,
        [("webhook-id".to_owned(), "evt_0".to_owned())]
    );
    assert_eq!(
        (e.event.body.as_slice(), e.progress.as_ref()),
        (&b"{}"[..], None)
    );
    assert_eq!(counts(&*b), pending(5, 0, 0, 5), "a claim changes no count");
}

pub(super) fn leased_event_is_claimed_again_only_after_its_lease_with_a_new_token(
    factory: &Factory,
) {
    let (_h, b) = open(factory, Config::default());
    let seq = add(&*b, "evt");
    let first = claim(&*b, T0);
    assert_eq!(seqs(&first), [seq]);
    assert!(
        claim(&*b, T0 + LEASE).is_empty(),
        "leased until T0 + LEASE, inclusive"
    );
    let again = claim(&*b, T0 + LEASE + 1);
    assert_eq!(seqs(&again), [seq], "the lease ended");
    assert_ne!(again[0].token, first[0].token);
    assert!(claim(&*b, T0 + LEASE + 2).is_empty());
}

pub(super) fn heartbeat_extends_a_lease_and_refuses_a_stale_token(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let seq = add(&*b, "evt");
    let old = claim(&*b, T0)[0].token;
    let beat = b.heartbeat(&[(seq, old), (seq + 1_000, old)], T0 + 3 * LEASE);
    assert_eq!(beat.ok(), Some(vec![true, false]), "held; never claimed");
    assert!(
        claim(&*b, T0 + 2 * LEASE).is_empty(),
        "extended past the old end"
    );
    let new = claim(&*b, T0 + 3 * LEASE + 1);
    assert_eq!(seqs(&new), [seq]);
    let new = new[0].token;
    let beat = b.heartbeat(&[(seq, old), (seq, new)], T0 + 5 * LEASE);
    assert_eq!(
        beat.ok(),
        Some(vec![false, true]),
        "the stale token is refused"
    );
    assert!(finish(&*b, seq, new, Outcome::Forget));
    let beat = b.heartbeat(&[(seq, new)], T0 + 6 * LEASE);
    assert_eq!(beat.ok(), Some(vec![false]), "a finished claim is not held");
}

pub(super) fn finish_with_a_stale_token_is_refused_and_writes_nothing(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let seq = add(&*b, "evt");
    let old = claim(&*b, T0)[0].token;
    let new = token_of(&claim(&*b, T0 + LEASE + 1), seq);
    for outcome in [
        Outcome::Forget,
        dead_at(T0),
        retry_at(T0 + 1),
        Outcome::Release,
        Outcome::Keep,
    ] {
        assert!(!finish(&*b, seq, old, outcome), "stale");
    }
    assert_eq!(counts(&*b), pending(1, 0, 0, 1), "nothing written");
    assert_eq!(stored_progress(&*b, "evt"), None);
    assert!(
        claim(&*b, T0 + LEASE + 2).is_empty(),
        "still leased to the new claim"
    );
    let other = add(&*b, "other");
    let other_token = token_of(&claim(&*b, T0 + LEASE + 3), other);
    let batch = [
        Finish {
            seq,
            token: old,
            outcome: Outcome::Forget,
        },
        Finish {
            seq,
            token: new,
            outcome: dead_at(T0 + LEASE + 3),
        },
        Finish {
            seq: other,
            token: other_token,
            outcome: Outcome::Forget,
        },
        Finish {
            seq: other,
            token: other_token,
            outcome: Outcome::Forget,
        },
    ];
    let recorded = b.finish(&batch).ok();
    assert_eq!(
        recorded,
        Some(vec![false, true, true, false]),
        "one outcome ends a claim, in a batch too"
    );
    assert_eq!(
        counts(&*b),
        pending(0, 0, 1, 2),
        "the fresh tokens' outcomes are recorded"
    );
}

pub(super) fn forget_removes_the_event_and_keeps_its_marker(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let seq = add(&*b, "done");
    let kept = add(&*b, "kept");
    let claimed = claim(&*b, T0);
    assert!(finish(&*b, seq, token_of(&claimed, seq), Outcome::Forget));
    assert_eq!(counts(&*b), pending(1, 0, 0, 2));
    assert_eq!(listed(&*b, &Filter::default()), [kept]);
    assert!(matches!(b.event(None, "done"), Ok(None)));
    let again = b.insert(event("shop", "done", "order.created", T0, b"{}"));
    assert_eq!(
        again.ok(),
        Some(Insert::Duplicate { seq }),
        "the marker stays"
    );
    assert!(
        claim(&*b, T0 + 10 * LEASE)
            .iter()
            .all(|c| c.stored.seq != seq),
        "never claimed again"
    );
}

pub(super) fn retry_is_claimable_only_once_due(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let seq = add(&*b, "evt");
    let token = claim(&*b, T0)[0].token;
    let due = T0 + 10_000;
    assert!(finish(&*b, seq, token, retry_at(due)));
    assert_eq!(counts(&*b), pending(1, 1, 0, 1));
    assert_eq!(b.next_due().ok(), Some(Some(due)));
    assert!(claim(&*b, T0 + 1).is_empty(), "not due");
    assert!(claim(&*b, due - 1).is_empty(), "not due");
    let again = claim(&*b, due);
    assert_eq!(seqs(&again), [seq], "due at next_at, inclusive");
    assert_ne!(again[0].token, token);
    let progress = again[0].stored.progress.clone();
    assert_eq!(
        progress.map(|p| (p.attempts, p.next_at_ms, p.errors.len())),
        Some((1, due, 1))
    );
    assert_eq!(
        listed(
            &*b,
            &Filter {
                standing: Some(Standing::Retrying),
                ..Filter::default()
            }
        ),
        [seq]
    );
}

pub(super) fn dead_progress_makes_a_dead_letter(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let seq = add(&*b, "evt");
    let other = add(&*b, "other");
    let claimed = claim(&*b, T0);
    assert!(finish(&*b, seq, token_of(&claimed, seq), dead_at(T0 + 1)));
    assert_eq!(counts(&*b), pending(1, 0, 1, 2));
    assert_eq!(listed(&*b, &dead_filter()), [seq]);
    assert_eq!(
        stored_progress(&*b, "evt").and_then(|p| p.dead_at_ms),
        Some(T0 + 1)
    );
    assert!(finish(
        &*b,
        other,
        token_of(&claimed, other),
        Outcome::Forget
    ));
    assert!(
        claim(&*b, T0 + 100 * LEASE).is_empty(),
        "a dead letter is never claimed"
    );
    assert!(
        matches!(b.oldest_pending(), Ok(None)),
        "a dead letter is not pending"
    );
}

pub(super) fn release_makes_an_event_claimable_at_once(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let seq = add(&*b, "evt");
    let old = claim(&*b, T0)[0].token;
    assert!(finish(&*b, seq, old, Outcome::Release));
    let again = claim(&*b, T0 + 1);
    assert_eq!(seqs(&again), [seq]);
    assert_ne!(again[0].token, old);
    assert!(
        !finish(&*b, seq, old, Outcome::Forget),
        "the released claim is over"
    );
    assert_eq!(counts(&*b), pending(1, 0, 0, 1));
    // A released retry keeps its progress and its due time.
    assert!(finish(&*b, seq, again[0].token, retry_at(T0 + 5_000)));
    let retry = claim(&*b, T0 + 5_000)[0].token;
    assert!(finish(&*b, seq, retry, Outcome::Release));
    let again = claim(&*b, T0 + 5_001);
    assert_eq!(seqs(&again), [seq]);
    assert_eq!(
        again[0].stored.progress.as_ref().map(|p| p.attempts),
        Some(1)
    );
}

pub(super) fn keep_holds_the_claim_and_frees_its_ordering_key(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let first = add_keyed(&*b, "first", "x");
    let second = add_keyed(&*b, "second", "x");
    let claimed = claim_ordered(&*b, T0);
    assert_eq!(seqs(&claimed), [first]);
    let kept = claimed[0].token;
    assert!(finish(&*b, first, kept, Outcome::Keep));
    let next = claim_ordered(&*b, T0 + 1);
    assert_eq!(
        seqs(&next),
        [second],
        "the kept event frees its key and is not offered again"
    );
    assert_eq!(
        b.heartbeat(&[(first, kept)], T0 + 2 * LEASE).ok(),
        Some(vec![true]),
        "the kept claim goes on"
    );
    assert!(
        claim_ordered(&*b, T0 + LEASE + 1)
            .iter()
            .all(|c| c.stored.seq != first),
        "while its lease lives"
    );
    assert_eq!(counts(&*b), pending(2, 0, 0, 2), "left as it is");
    assert!(finish(
        &*b,
        second,
        token_of(&next, second),
        Outcome::Forget
    ));
    assert!(
        finish(&*b, first, kept, Outcome::Release),
        "its holder lets it go"
    );
    assert_eq!(seqs(&claim_ordered(&*b, T0 + LEASE + 2)), [first]);
}

pub(super) fn kept_event_holds_its_key_again_when_its_claim_ends(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let kept = add_keyed(&*b, "kept", "x");
    let claimed = claim_ordered(&*b, T0);
    assert!(finish(&*b, kept, claimed[0].token, Outcome::Keep));
    let second = add_keyed(&*b, "second", "x");
    let third = add_keyed(&*b, "third", "x");
    let next = claim_ordered(&*b, T0 + 1);
    assert_eq!(
        seqs(&next),
        [second],
        "the kept event does not hold its key"
    );
    // The kept claim ends with a retry: the event is unfinished and holds its key again.
    assert!(finish(&*b, kept, claimed[0].token, retry_at(T0 + 1_000)));
    assert!(finish(&*b, second, next[0].token, Outcome::Forget));
    assert!(
        claim_ordered(&*b, T0 + 2).is_empty(),
        "the third waits behind the retrying kept one"
    );
    assert_eq!(seqs(&claim_ordered(&*b, T0 + 1_000)), [kept]);
    // Kept again, and its claim lapses: it holds its key again.
    let token = token_of(&claim_ordered(&*b, T0 + 1_000 + 3 * LEASE), kept);
    assert!(finish(&*b, kept, token, Outcome::Keep));
    let third_claim = claim_ordered(&*b, T0 + 1_001 + 3 * LEASE);
    assert_eq!(seqs(&third_claim), [third]);
    assert!(finish(&*b, third, third_claim[0].token, Outcome::Release));
    let lapsed = claim_ordered(&*b, T0 + 1_002 + 5 * LEASE);
    assert_eq!(
        seqs(&lapsed),
        [kept],
        "the kept claim lapsed: the earlier event goes first"
    );
}

pub(super) fn after_a_reopen_an_earlier_fresh_event_holds_its_key(factory: &Factory) {
    let (mut h, b) = open(factory, Config::default());
    let kept = add_keyed(&*b, "kept", "x");
    let claimed = claim_ordered(&*b, T0);
    assert!(finish(&*b, kept, claimed[0].token, Outcome::Keep));
    let later = add_keyed(&*b, "later", "x");
    let next = claim_ordered(&*b, T0 + 1);
    assert_eq!(seqs(&next), [later]);
    assert!(finish(&*b, later, next[0].token, retry_at(T0 + 2)));
    let b = h.reopen(b);
    let claimed = claim_ordered(&*b, T0 + 2);
    assert_eq!(
        seqs(&claimed),
        [kept],
        "the earlier event goes first; the retry waits"
    );
}

pub(super) fn ordering_holds_later_events_of_a_key_until_the_first_is_finished(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let x1 = add_keyed(&*b, "x1", "x");
    let x2 = add_keyed(&*b, "x2", "x");
    let y1 = add_keyed(&*b, "y1", "y");
    let none = add(&*b, "no-key");
    let not_json = accept(&*b, event("shop", "not-json", "t", T0, b"\xff"));
    let x3 = add_keyed(&*b, "x3", "x");
    let y2 = add_keyed(&*b, "y2", "y");
    let firsts = [x1, y1, none, not_json];
    assert_eq!(
        seqs(&claim_ordered(&*b, T0)),
        firsts,
        "the first of each key, and the unkeyed"
    );
    assert!(claim_ordered(&*b, T0 + 1).is_empty());
    let now = T0 + LEASE + 1;
    let again = claim_ordered(&*b, now);
    let mut claimed = seqs(&again);
    claimed.sort_unstable();
    assert_eq!(
        claimed, firsts,
        "expired leases: the same firsts again, not the later ones"
    );
    assert!(finish(&*b, x1, token_of(&again, x1), Outcome::Forget));
    assert_eq!(
        seqs(&claim_ordered(&*b, now + 1)),
        [x2],
        "next of x once the first is done"
    );
    assert!(finish(&*b, y1, token_of(&again, y1), dead_at(now)));
    assert_eq!(
        seqs(&claim_ordered(&*b, now + 2)),
        [y2],
        "a dead letter frees its key"
    );
    assert!(
        claim_ordered(&*b, now + 3)
            .iter()
            .all(|c| c.stored.seq != x3)
    );
}

pub(super) fn retrying_event_holds_its_key(factory: &Factory) {
    let (mut h, b) = open(factory, Config::default());
    let x1 = add_keyed(&*b, "x1", "x");
    let x2 = add_keyed(&*b, "x2", "x");
    let y1 = add_keyed(&*b, "y1", "y");
    let claimed = claim_ordered(&*b, T0);
    assert_eq!(seqs(&claimed), [x1, y1]);
    let due = T0 + 10_000;
    assert!(finish(&*b, x1, token_of(&claimed, x1), retry_at(due)));
    assert!(
        claim_ordered(&*b, T0 + 1).is_empty(),
        "x2 waits behind the retrying x1"
    );
    let b = h.reopen(b);
    assert!(
        claim_ordered(&*b, T0 + 2)
            .iter()
            .all(|c| c.stored.seq != x2),
        "and still after a reopen"
    );
    let retried = claim_ordered(&*b, due);
    assert_eq!(seqs(&retried)[0], x1);
    assert!(!seqs(&retried).contains(&x2));
    assert!(finish(&*b, x1, token_of(&retried, x1), Outcome::Forget));
    assert!(seqs(&claim_ordered(&*b, due + 1)).contains(&x2));
}

pub(super) fn replayed_dead_letter_holds_its_key_again(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let first = add_keyed(&*b, "first", "x");
    let second = add_keyed(&*b, "second", "x");
    let claimed = claim_ordered(&*b, T0);
    assert_eq!(seqs(&claimed), [first]);
    assert!(finish(&*b, first, claimed[0].token, dead_at(T0)));
    let which = DeadSelection::Id {
        source: None,
        id: "first",
    };
    assert_eq!(
        change(&*b, &which, DeadChange::Replay { now_ms: T0 + 1 }),
        1
    );
    assert_eq!(
        seqs(&claim_ordered(&*b, T0 + 1)),
        [first],
        "the replayed event goes first again"
    );
    assert!(
        claim_ordered(&*b, T0 + 2).is_empty(),
        "the second waits behind it"
    );
    let again = claim_ordered(&*b, T0 + 2 + LEASE);
    assert_eq!(seqs(&again), [first]);
    assert!(finish(&*b, first, again[0].token, Outcome::Forget));
    assert_eq!(seqs(&claim_ordered(&*b, T0 + 3 + LEASE)), [second]);
}

pub(super) fn replay_makes_a_dead_letter_claimable_afresh(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let one = add(&*b, "one");
    let two = add(&*b, "two");
    let claimed = claim(&*b, T0);
    for seq in [one, two] {
        assert!(finish(&*b, seq, token_of(&claimed, seq), dead_at(T0 + 1)));
    }
    let by_id = DeadSelection::Id {
        source: None,
        id: "one",
    };
    assert_eq!(
        change(&*b, &by_id, DeadChange::Replay { now_ms: T0 + 100 }),
        1
    );
    assert_eq!(counts(&*b), pending(1, 1, 1, 2));
    assert!(claim(&*b, T0 + 99).is_empty(), "due at the replay's now");
    let again = claim(&*b, T0 + 100);
    assert_eq!(seqs(&again), [one]);
    let progress = again[0].stored.progress.clone();
    assert_eq!(
        progress.map(|p| (p.attempts, p.dead_at_ms, p.errors.len())),
        Some((0, None, 1)),
        "attempts afresh, history kept"
    );
    assert_eq!(
        change(&*b, &by_id, DeadChange::Replay { now_ms: T0 + 100 }),
        0,
        "no longer dead"
    );
    let filter = Filter::default();
    let all = DeadSelection::Matching {
        filter: &filter,
        after: 0,
        limit: 100,
    };
    assert_eq!(
        change(&*b, &all, DeadChange::Replay { now_ms: T0 + 200 }),
        1
    );
    assert_eq!(seqs(&claim(&*b, T0 + 200)), [two]);
    assert_eq!(counts(&*b), pending(2, 2, 0, 2));
}

pub(super) fn purge_removes_dead_letters_by_age(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let old = add(&*b, "old");
    let young = add(&*b, "young");
    let alive = add(&*b, "alive");
    let other = accept(&*b, event("bank", "young", "order.created", T0, b"{}"));
    let claimed = claim(&*b, T0);
    assert!(finish(&*b, old, token_of(&claimed, old), dead_at(T0 + 100)));
    assert!(finish(
        &*b,
        young,
        token_of(&claimed, young),
        dead_at(T0 + 200)
    ));
    assert!(finish(
        &*b,
        other,
        token_of(&claimed, other),
        dead_at(T0 + 200)
    ));
    let filter = Filter::default();
    let all = DeadSelection::Matching {
        filter: &filter,
        after: 0,
        limit: 100,
    };
    assert_eq!(
        change(
            &*b,
            &all,
            DeadChange::Purge {
                dead_before_ms: T0 + 150
            }
        ),
        1,
        "dead at or before the cutoff"
    );
    assert_eq!(counts(&*b), pending(1, 0, 2, 4));
    assert!(matches!(b.event(None, "old"), Ok(None)));
    let again = b.insert(event("shop", "old", "order.created", T0, b"{}"));
    assert_eq!(
        again.ok(),
        Some(Insert::Duplicate { seq: old }),
        "the marker stays"
    );
    let one = DeadSelection::Id {
        source: Some("bank"),
        id: "young",
    };
    assert_eq!(
        change(
            &*b,
            &one,
            DeadChange::Purge {
                dead_before_ms: T0 + 199
            }
        ),
        0,
        "too young"
    );
    assert_eq!(
        change(
            &*b,
            &one,
            DeadChange::Purge {
                dead_before_ms: T0 + 200
            }
        ),
        1
    );
    assert_eq!(listed(&*b, &dead_filter()), [young]);
    assert_eq!(
        change(
            &*b,
            &all,
            DeadChange::Purge {
                dead_before_ms: i64::MAX
            }
        ),
        1
    );
    assert_eq!(
        counts(&*b),
        pending(1, 0, 0, 4),
        "only dead letters are purged"
    );
    assert_eq!(listed(&*b, &Filter::default()), [alive]);
}

pub(super) fn event_by_id_with_and_without_source(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let shop = add(&*b, "evt");
    let bank = accept(&*b, event("bank", "evt", "order.created", T0, b"{}"));
    add(&*b, "unrelated");
    let found = |source: Option<&str>, id: &str| match b.event(source, id) {
        Ok(stored) => stored.map(|s| (s.seq, s.event.source)),
        Err(e) => panic!("event: {e}"),
    };
    assert_eq!(found(Some("shop"), "evt"), Some((shop, "shop".to_owned())));
    assert_eq!(found(Some("bank"), "evt"), Some((bank, "bank".to_owned())));
    assert_eq!(
        found(None, "evt"),
        Some((bank, "bank".to_owned())),
        "the latest, from any source"
    );
    assert_eq!(found(Some("mail"), "evt"), None);
    assert_eq!(found(None, "nope"), None);
    let claimed = claim(&*b, T0);
    assert!(finish(&*b, bank, token_of(&claimed, bank), Outcome::Forget));
    assert_eq!(
        found(None, "evt"),
        Some((shop, "shop".to_owned())),
        "a forgotten event is not found"
    );
}

pub(super) fn list_pages_and_filters(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let kinds = [
        ("shop", "order.created"),
        ("bank", "order.paid"),
        ("shop", "refund.created"),
        ("shop", "order"),
        ("bank", "order.paid.late"),
        ("shop", "orders.created"),
    ];
    let mut all = Vec::new();
    for (i, (source, event_type)) in kinds.iter().enumerate() {
        let id = format!("evt_{i}");
        let at = T0 + 1_000 * i as i64;
        all.push(accept(&*b, event(source, &id, event_type, at, b"{}")));
    }
    // Pages of 2, following `next`.
    let mut seen = Vec::new();
    let mut after = 0;
    for _ in 0..10 {
        let page = match b.list(&Filter::default(), after, 2) {
            Ok(page) => page,
            Err(e) => panic!("list: {e}"),
        };
        assert!(page.events.len() <= 2);
        seen.extend(page.events.iter().map(|s| s.seq));
        match page.next {
            Some(next) => {
                assert!(next > after, "pages move on");
                after = next;
            }
            None => break,
        }
    }
    assert_eq!(seen, all, "every event once, in acceptance order");
    let page = b.list(&Filter::default(), all[1], 3).ok();
    assert_eq!(
        page.map(|p| p.events.iter().map(|s| s.seq).collect::<Vec<_>>()),
        Some(all[2..5].to_vec())
    );
    let pick = |idx: &[usize]| idx.iter().map(|&i| all[i]).collect::<Vec<_>>();
    let by_source = Filter {
        source: Some("bank".to_owned()),
        ..Filter::default()
    };
    assert_eq!(listed(&*b, &by_source), pick(&[1, 4]));
    let by_type = Filter {
        event_type: Some("order.*".to_owned()),
        ..Filter::default()
    };
    assert_eq!(listed(&*b, &by_type), pick(&[0, 1, 4]));
    let exact = Filter {
        event_type: Some("order".to_owned()),
        ..Filter::default()
    };
    assert_eq!(listed(&*b, &exact), pick(&[3]));
    let window = Filter {
        since_ms: Some(T0 + 1_000),
        until_ms: Some(T0 + 3_000),
        ..Filter::default()
    };
    assert_eq!(
        listed(&*b, &window),
        pick(&[1, 2]),
        "since inclusive, until exclusive"
    );
    let combined = Filter {
        source: Some("shop".to_owned()),
        event_type: Some("order.*".to_owned()),
        since_ms: Some(T0),
        ..Filter::default()
    };
    assert_eq!(listed(&*b, &combined), pick(&[0]));
    let claimed = claim(&*b, T0);
    assert!(finish(&*b, all[1], token_of(&claimed, all[1]), dead_at(T0)));
    assert!(finish(
        &*b,
        all[2],
        token_of(&claimed, all[2]),
        retry_at(T0 + 1)
    ));
    assert_eq!(listed(&*b, &dead_filter()), pick(&[1]));
    let retrying = Filter {
        standing: Some(Standing::Retrying),
        ..Filter::default()
    };
    assert_eq!(listed(&*b, &retrying), pick(&[2]));
    let fresh = Filter {
        standing: Some(Standing::Fresh),
        ..Filter::default()
    };
    assert_eq!(listed(&*b, &fresh), pick(&[0, 3, 4, 5]));
    let dead_bank = Filter {
        standing: Some(Standing::Dead),
        source: Some("shop".to_owned()),
        ..Filter::default()
    };
    assert!(listed(&*b, &dead_bank).is_empty());
    let empty = b
        .list(&Filter::default(), *all.last().unwrap_or(&0), 10)
        .ok()
        .map(|p| (p.events.len(), p.next));
    assert_eq!(empty, Some((0, None)), "nothing after the last");
}

pub(super) fn collect_expired_removes_only_old_markers_of_gone_events(factory: &Factory) {
    let hour = 3_600_000;
    let (_h, b) = open(factory, Config::default());
    let gone = accept(&*b, event("shop", "old-gone", "t", T0, b"{}"));
    let stays = accept(&*b, event("shop", "old-stored", "t", T0, b"{}"));
    sync(&*b);
    let young = accept(&*b, event("shop", "young-gone", "t", T0 + 2 * hour, b"{}"));
    let claimed = claim(&*b, T0);
    for seq in [gone, young] {
        assert!(finish(&*b, seq, token_of(&claimed, seq), Outcome::Forget));
    }
    assert_eq!(counts(&*b), pending(1, 0, 0, 3));
    let now = from_unix_millis(T0 + hour + hour / 2);
    assert_eq!(b.collect_expired(now).ok(), Some(1));
    assert_eq!(counts(&*b), pending(1, 0, 0, 2));
    assert!(
        matches!(
            b.insert(event("shop", "old-gone", "t", T0, b"{}")),
            Ok(Insert::Accepted { .. })
        ),
        "its marker is gone"
    );
    assert_eq!(
        b.insert(event("shop", "old-stored", "t", T0, b"{}")).ok(),
        Some(Insert::Duplicate { seq: stays }),
        "its event is still stored"
    );
    assert_eq!(
        b.insert(event("shop", "young-gone", "t", T0, b"{}")).ok(),
        Some(Insert::Duplicate { seq: young }),
        "younger than the retention"
    );
    assert_eq!(
        b.collect_expired(now).ok(),
        Some(0),
        "nothing more to collect"
    );
}

pub(super) fn reopen_keeps_the_data_and_drops_every_lease(factory: &Factory) {
    let (mut h, b) = open(factory, Config::default());
    let leased = add(&*b, "leased");
    let retrying = add(&*b, "retrying");
    let dead = add(&*b, "dead");
    let done = add(&*b, "done");
    let claimed = claim(&*b, T0);
    let due = T0 + 10_000;
    assert!(finish(
        &*b,
        retrying,
        token_of(&claimed, retrying),
        retry_at(due)
    ));
    assert!(finish(&*b, dead, token_of(&claimed, dead), dead_at(T0)));
    assert!(finish(&*b, done, token_of(&claimed, done), Outcome::Forget));
    let before = counts(&*b);
    assert_eq!(before, pending(2, 1, 1, 4));
    let b = h.reopen(b);
    assert_eq!(counts(&*b), before);
    let again = claim(&*b, T0 + 1);
    assert_eq!(seqs(&again), [leased], "its lease is gone with the process");
    assert_eq!(b.next_due().ok(), Some(Some(due)));
    let retried = claim(&*b, due);
    assert_eq!(seqs(&retried), [retrying]);
    assert_eq!(
        retried[0]
            .stored
            .progress
            .as_ref()
            .map(|p| (p.attempts, p.next_at_ms)),
        Some((1, due))
    );
    assert_eq!(listed(&*b, &dead_filter()), [dead]);
    assert!(stored_progress(&*b, "dead").is_some_and(|p| p.dead_at_ms == Some(T0)));
    let duplicate = b.insert(event("shop", "done", "t", T0, b"{}"));
    assert_eq!(
        duplicate.ok(),
        Some(Insert::Duplicate { seq: done }),
        "markers survive"
    );
    assert!(finish(
        &*b,
        leased,
        token_of(&again, leased),
        Outcome::Forget
    ));
    assert_eq!(counts(&*b), pending(1, 1, 1, 4));
}

pub(super) fn closed_backend_answers_closed(factory: &Factory) {
    let (_h, b) = open(factory, Config::default());
    let seq = add(&*b, "evt");
    let token = claim(&*b, T0)[0].token;
    assert!(b.close().is_ok());
    let closed = |what: &str, result: Result<(), StoreError>| {
        assert!(
            matches!(result, Err(StoreError::Closed)),
            "{what}: {result:?}"
        );
    };
    closed(
        "insert",
        b.insert(event("shop", "new", "t", T0, b"{}")).map(drop),
    );
    let request = ClaimRequest {
        limit: 10,
        now_ms: T0 + 10 * LEASE,
        lease_until_ms: T0 + 11 * LEASE,
        ordering: None,
    };
    closed("claim", b.claim(&request).map(drop));
    closed(
        "heartbeat",
        b.heartbeat(&[(seq, token)], T0 + LEASE).map(drop),
    );
    closed(
        "finish",
        b.finish(&[Finish {
            seq,
            token,
            outcome: Outcome::Forget,
        }])
        .map(drop),
    );
    closed(
        "finish release",
        b.finish(&[Finish {
            seq,
            token,
            outcome: Outcome::Release,
        }])
        .map(drop),
    );
    closed("next_due", b.next_due().map(drop));
    closed("list", b.list(&Filter::default(), 0, 10).map(drop));
    closed("event", b.event(None, "evt").map(drop));
    let which = DeadSelection::Id {
        source: None,
        id: "evt",
    };
    closed(
        "change_dead",
        b.change_dead(&which, DeadChange::Replay { now_ms: T0 })
            .map(drop),
    );
    closed("oldest_pending", b.oldest_pending().map(drop));
    closed(
        "collect_expired",
        b.collect_expired(from_unix_millis(T0)).map(drop),
    );
}
