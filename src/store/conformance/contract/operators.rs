//! Clauses of the operator calls, retention, reopening and closing.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(in crate::store::conformance) fn replay_makes_a_dead_letter_claimable_afresh(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn purge_removes_dead_letters_by_age(factory: &Factory) {
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

pub(in crate::store::conformance) fn event_by_id_with_and_without_source(factory: &Factory) {
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

pub(in crate::store::conformance) fn list_pages_and_filters(factory: &Factory) {
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

pub(in crate::store::conformance) fn collect_expired_removes_only_old_markers_of_gone_events(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn reopen_keeps_the_data_and_drops_every_lease(
    factory: &Factory,
) {
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

pub(in crate::store::conformance) fn closed_backend_answers_closed(factory: &Factory) {
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
