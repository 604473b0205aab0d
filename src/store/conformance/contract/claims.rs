//! Clauses of inserting, claiming, leases, heartbeats and outcomes.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(in crate::store::conformance) fn insert_then_duplicate_stores_nothing_new(factory: &Factory) {
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

pub(in crate::store::conformance) fn insert_is_refused_at_max_pending(factory: &Factory) {
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

pub(in crate::store::conformance) fn claim_hands_out_fresh_events_in_acceptance_order_once(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn leased_event_is_claimed_again_only_after_its_lease_with_a_new_token(
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

pub(in crate::store::conformance) fn heartbeat_extends_a_lease_and_refuses_a_stale_token(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn finish_with_a_stale_token_is_refused_and_writes_nothing(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn forget_removes_the_event_and_keeps_its_marker(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn retry_is_claimable_only_once_due(factory: &Factory) {
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

pub(in crate::store::conformance) fn dead_progress_makes_a_dead_letter(factory: &Factory) {
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

pub(in crate::store::conformance) fn release_makes_an_event_claimable_at_once(factory: &Factory) {
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
