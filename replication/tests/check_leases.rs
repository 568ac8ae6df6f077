//! Tests of the linearizability checker on histories with leases: a key attached to a lease is
//! deleted at the revocation's revision, so a read that still sees it after the revocation was
//! acknowledged is caught, as are puts and keep-alives on a revoked lease; histories that are
//! linearizable (concurrent revocations, detaching puts, lost answers) pass.

use etch_replication::check::{
    check, Config, HistoryError, KeyValue, Operation, Outcome, Request, Response, Verdict,
    Violation,
};

fn op(invoke: u64, at: u64, request: Request, response: Response) -> Operation {
    Operation {
        client: invoke,
        invoke,
        request,
        outcome: Outcome::Returned { at, response },
    }
}

fn unknown(invoke: u64, request: Request) -> Operation {
    Operation {
        client: invoke,
        invoke,
        request,
        outcome: Outcome::Unknown,
    }
}

fn grant(lease: i64) -> Request {
    Request::LeaseGrant { lease }
}

fn revoke(lease: i64) -> Request {
    Request::LeaseRevoke { lease }
}

fn keep_alive(lease: i64) -> Request {
    Request::LeaseKeepAlive { lease }
}

fn lease_put(key: &str, value: &str, lease: i64) -> Request {
    Request::LeasePut {
        key: key.into(),
        value: value.into(),
        lease,
    }
}

fn put(key: &str, value: &str) -> Request {
    Request::Put {
        key: key.into(),
        value: value.into(),
    }
}

fn get(key: &str) -> Request {
    Request::Get { key: key.into() }
}

fn seen(revision: u64, value: &str, created: u64, modified: u64, version: u64) -> Response {
    Response::Get {
        revision,
        kv: Some(KeyValue {
            value: value.into(),
            create_revision: created,
            mod_revision: modified,
            version,
        }),
    }
}

fn absent(revision: u64) -> Response {
    Response::Get { revision, kv: None }
}

fn verdict(history: &[Operation]) -> Verdict {
    check(history, &Config::default()).expect("well-formed history")
}

fn violation(history: &[Operation]) -> Violation {
    match verdict(history) {
        Verdict::NotLinearizable(v) => v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

/// Grant lease 7, put `k` on it at revision 2, revoke it at revision 3.
fn granted_put_revoked() -> Vec<Operation> {
    vec![
        op(0, 10, grant(7), Response::LeaseGrant),
        op(
            20,
            30,
            lease_put("k", "v", 7),
            Response::Put { revision: 2 },
        ),
        op(40, 50, revoke(7), Response::LeaseRevoke { revision: 3 }),
    ]
}

#[test]
fn a_revocation_deletes_the_attached_key() {
    let mut h = granted_put_revoked();
    h.push(op(35, 38, get("k"), seen(2, "v", 2, 2, 1)));
    h.push(op(60, 70, get("k"), absent(3)));
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn a_read_that_sees_the_key_after_the_revocation_was_acknowledged_is_caught() {
    let mut h = granted_put_revoked();
    // Invoked after the revoke returned, yet still sees the key (at the old revision, or at
    // the revoke's revision: neither is possible).
    h.push(op(60, 70, get("k"), seen(2, "v", 2, 2, 1)));
    assert!(matches!(
        violation(&h),
        Violation::Key { .. } | Violation::RevisionWentBack { .. }
    ));

    let mut h = granted_put_revoked();
    h.push(op(60, 70, get("k"), seen(3, "v", 2, 2, 1)));
    match violation(&h) {
        Violation::Key { key, ops, .. } => {
            assert_eq!(key, b"k");
            // The key's sub-history holds the lease's grant and revoke too.
            assert_eq!(ops, vec![0, 1, 2, 3]);
        }
        other => panic!("expected a violation on k, got {other:?}"),
    }
}

#[test]
fn a_read_concurrent_with_the_revocation_may_see_either() {
    for response in [seen(2, "v", 2, 2, 1), absent(3)] {
        let mut h = granted_put_revoked();
        h.push(op(45, 48, get("k"), response));
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }
}

#[test]
fn a_put_without_the_lease_detaches_the_key() {
    let mut h = vec![
        op(0, 10, grant(7), Response::LeaseGrant),
        op(
            20,
            30,
            lease_put("k", "v", 7),
            Response::Put { revision: 2 },
        ),
        op(31, 35, put("k", "w"), Response::Put { revision: 3 }),
        // Nothing attached any more: the revocation deletes nothing and reports revision 3.
        op(40, 50, revoke(7), Response::LeaseRevoke { revision: 3 }),
        op(60, 70, get("k"), seen(3, "w", 2, 3, 2)),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    // But the key must not vanish then.
    h[4] = op(60, 70, get("k"), absent(3));
    assert!(matches!(violation(&h), Violation::Key { .. }));
}

#[test]
fn a_revocation_deletes_every_attached_key_at_one_revision() {
    let h = vec![
        op(0, 10, grant(7), Response::LeaseGrant),
        op(
            20,
            30,
            lease_put("a", "1", 7),
            Response::Put { revision: 2 },
        ),
        op(
            31,
            35,
            lease_put("b", "2", 7),
            Response::Put { revision: 3 },
        ),
        op(40, 50, revoke(7), Response::LeaseRevoke { revision: 4 }),
        op(60, 70, get("a"), absent(4)),
        op(60, 70, get("b"), absent(4)),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    let mut stale = h.clone();
    stale[5] = op(60, 70, get("b"), seen(4, "2", 3, 3, 1));
    match violation(&stale) {
        Violation::Key { key, .. } => assert_eq!(key, b"b"),
        other => panic!("expected a violation on b, got {other:?}"),
    }
}

#[test]
fn a_put_on_a_revoked_or_unknown_lease_is_caught() {
    // Acknowledged after the revoke returned.
    let mut h = granted_put_revoked();
    h.push(op(
        60,
        70,
        lease_put("k", "x", 7),
        Response::Put { revision: 4 },
    ));
    assert!(matches!(violation(&h), Violation::Key { .. }));
    // A lease never granted.
    let h = vec![op(
        0,
        10,
        lease_put("k", "x", 9),
        Response::Put { revision: 2 },
    )];
    assert!(matches!(violation(&h), Violation::Key { .. }));
    // "Not found" for a lease that is alive is wrong too.
    let h = vec![
        op(0, 10, grant(7), Response::LeaseGrant),
        op(20, 30, lease_put("k", "x", 7), Response::LeaseNotFound),
    ];
    assert!(matches!(violation(&h), Violation::Key { .. }));
    // And right once it is revoked.
    let mut h = granted_put_revoked();
    h.push(op(60, 70, lease_put("k", "x", 7), Response::LeaseNotFound));
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn keep_alives_follow_the_lease() {
    let h = vec![
        op(0, 10, grant(7), Response::LeaseGrant),
        op(20, 30, keep_alive(7), Response::LeaseKeepAlive),
        op(40, 50, revoke(7), Response::LeaseRevoke { revision: 1 }),
        op(60, 70, keep_alive(7), Response::LeaseNotFound),
        op(60, 70, revoke(7), Response::LeaseNotFound),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    let mut late = h.clone();
    late[3] = op(60, 70, keep_alive(7), Response::LeaseKeepAlive);
    match violation(&late) {
        Violation::Lease { lease, .. } => assert_eq!(lease, 7),
        other => panic!("expected a violation on lease 7, got {other:?}"),
    }
    let mut early = h;
    early[1] = op(0, 5, keep_alive(7), Response::LeaseKeepAlive);
    early[0] = op(6, 10, grant(7), Response::LeaseGrant);
    assert!(matches!(violation(&early), Violation::Lease { .. }));
}

#[test]
fn a_revocation_with_a_lost_answer_may_or_may_not_have_happened() {
    let base = vec![
        op(0, 10, grant(7), Response::LeaseGrant),
        op(
            20,
            30,
            lease_put("k", "v", 7),
            Response::Put { revision: 2 },
        ),
        unknown(40, revoke(7)),
    ];
    for response in [seen(2, "v", 2, 2, 1), absent(3)] {
        let mut h = base.clone();
        h.push(op(60, 70, get("k"), response));
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }
    // Once it is seen to have happened, the key cannot come back.
    let mut h = base;
    h.push(op(60, 70, get("k"), absent(3)));
    h.push(op(80, 90, get("k"), seen(3, "v", 2, 2, 1)));
    assert!(matches!(violation(&h), Violation::Key { .. }));
}

#[test]
fn an_answered_revocation_may_account_for_a_missing_revision() {
    // The revoke's revision 3 is reported by nobody else; the history is complete.
    let mut h = granted_put_revoked();
    h.push(op(60, 70, put("other", "x"), Response::Put { revision: 4 }));
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn lease_zero_is_a_malformed_history() {
    let h = vec![op(0, 10, grant(0), Response::LeaseGrant)];
    assert_eq!(
        check(&h, &Config::default()),
        Err(HistoryError::ZeroLease { op: 0 })
    );
    let h = vec![op(0, 10, keep_alive(7), Response::LeaseGrant)];
    assert_eq!(
        check(&h, &Config::default()),
        Err(HistoryError::MismatchedResponse { op: 0 })
    );
}
