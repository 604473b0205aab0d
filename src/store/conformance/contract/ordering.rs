//! Clauses of per-key ordering: keys held and released across outcomes,
//! Keep, restarts and replays.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(in crate::store::conformance) fn keep_holds_the_claim_and_frees_its_ordering_key(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn kept_event_holds_its_key_again_when_its_claim_ends(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn after_a_reopen_an_earlier_fresh_event_holds_its_key(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn ordering_holds_later_events_of_a_key_until_the_first_is_finished(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn retrying_event_holds_its_key(factory: &Factory) {
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

pub(in crate::store::conformance) fn replayed_dead_letter_holds_its_key_again(factory: &Factory) {
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
