//! `Store::apply`: the state machine's entry point for replicated commits. Every index is
//! applied in order and takes a WAL frame (a no-op when the command was refused or is a blank),
//! the term is recorded, and replay after a power cut reproduces the same state and position.

use crate::common;

use etch_engine::{
    Command, CommandResponse, Compare, CompareOp, Error, PutOp, Range, Store, Txn, TxnOp, WriteOp,
};

fn put(key: &str, value: &str) -> Command {
    Command::Batch(vec![WriteOp::put(key, value)])
}

fn hash(db: &Store) -> u32 {
    db.hash_kv(db.revision()).unwrap()
}

#[test]
fn commands_apply_in_index_order_with_their_terms() {
    let (_dir, _disk, db) = common::sim_store("a.etch");
    assert_eq!(db.applied(), (0, 0));
    let r = db.apply(1, 1, &put("a", "1")).unwrap();
    let CommandResponse::Batch(b) = r else {
        panic!("{r:?}")
    };
    assert_eq!(b.header_revision, 2);
    assert_eq!(
        db.apply(2, 1, &Command::Noop).unwrap(),
        CommandResponse::Noop
    );
    let CommandResponse::Batch(b) = db.apply(3, 2, &put("b", "2")).unwrap() else {
        panic!("not a batch response")
    };
    assert_eq!(b.header_revision, 3);
    assert_eq!(b.responses.len(), 1);
    assert_eq!(db.applied(), (3, 2));
    assert_eq!(db.revision(), 3);
    assert_eq!(db.get("b").unwrap().unwrap().value, b"2");
}

#[test]
fn an_index_out_of_order_is_refused_and_changes_nothing() {
    let (_dir, _disk, db) = common::sim_store("a.etch");
    db.apply(1, 1, &put("a", "1")).unwrap();
    for bad in [1, 3, 0] {
        match db.apply(bad, 1, &put("a", "2")) {
            Err(Error::OutOfOrder { expected: 2, got }) => assert_eq!(got, bad),
            other => panic!("index {bad}: {other:?}"),
        }
    }
    assert_eq!(db.applied(), (1, 1));
    assert_eq!(db.get("a").unwrap().unwrap().value, b"1");
}

#[test]
fn a_refused_command_still_takes_its_index() {
    let (dir, disk, db) = common::sim_store("a.etch");
    db.apply(1, 1, &put("a", "1")).unwrap();
    let before = hash(&db);
    // Refusals decided at apply time, as on every replica.
    assert!(matches!(
        db.apply(2, 1, &Command::LeaseRevoke { id: 9 }),
        Err(Error::LeaseNotFound { id: 9 })
    ));
    assert!(matches!(
        db.apply(3, 1, &Command::Compact(100)),
        Err(Error::FutureRevision { .. })
    ));
    let ignore_missing = Command::Batch(vec![WriteOp::Put(PutOp {
        key: b"missing".to_vec(),
        ignore_value: true,
        ..Default::default()
    })]);
    assert!(matches!(
        db.apply(4, 2, &ignore_missing),
        Err(Error::KeyNotFound)
    ));
    assert_eq!(db.applied(), (4, 2));
    assert_eq!(hash(&db), before);
    db.apply(5, 2, &put("b", "1")).unwrap();
    assert_eq!(db.revision(), 3);

    // The no-op frames keep the WAL's sequence numbers consecutive: everything replays.
    let reopened = common::open_after_power_cut(&dir, &disk, "a.etch");
    assert_eq!(reopened.applied(), (5, 2));
    assert_eq!(reopened.revision(), 3);
    assert_eq!(hash(&reopened), hash(&db));
}

#[test]
fn transactions_decide_at_apply_time() {
    let (_dir, _disk, db) = common::sim_store("a.etch");
    let cas = |expected: i64, value: &str| {
        Command::Txn(
            Txn::new()
                .when([Compare::mod_revision("k", CompareOp::Equal, expected)])
                .and_then([TxnOp::put("k", value)])
                .or_else([TxnOp::get("k")]),
        )
    };
    // Both proposed against "k absent"; only the first to be applied wins.
    let CommandResponse::Txn(first) = db.apply(1, 1, &cas(0, "x")).unwrap() else {
        panic!()
    };
    let CommandResponse::Txn(second) = db.apply(2, 1, &cas(0, "y")).unwrap() else {
        panic!()
    };
    assert!(first.succeeded);
    assert!(!second.succeeded);
    assert_eq!(db.get("k").unwrap().unwrap().value, b"x");
    assert_eq!(db.applied(), (2, 1));
}

#[test]
fn replay_after_a_power_cut_restores_state_and_position() {
    let (dir, disk, db) = common::sim_store("a.etch");
    let mut index = 0;
    let mut next = |db: &Store, term: u64, c: Command| {
        index += 1;
        let _ = db.apply(index, term, &c);
    };
    next(&db, 1, Command::LeaseGrant { id: 7, ttl: 60 });
    next(
        &db,
        1,
        Command::Batch(vec![WriteOp::Put(PutOp {
            key: b"leased".to_vec(),
            value: b"v".to_vec(),
            lease: 7,
            ..Default::default()
        })]),
    );
    for i in 0..20 {
        next(&db, 2, put(&format!("k{i}"), &i.to_string()));
    }
    next(
        &db,
        2,
        Command::Batch(vec![WriteOp::delete(Range::prefix("k1"))]),
    );
    next(&db, 3, Command::Compact(5));
    next(&db, 3, Command::Noop);
    next(&db, 3, Command::LeaseRevoke { id: 7 });
    let want = (db.applied(), db.revision(), hash(&db));
    assert_eq!(want.0, (26, 3));

    let reopened = common::open_after_power_cut(&dir, &disk, "a.etch");
    assert_eq!(
        (reopened.applied(), reopened.revision(), hash(&reopened)),
        want
    );
    assert!(reopened.get("leased").unwrap().is_none());
    reopened.check().unwrap();
    // And it continues from there.
    reopened.apply(27, 3, &put("after", "1")).unwrap();
    assert_eq!(reopened.applied(), (27, 3));
}

#[test]
fn local_commits_and_applied_commands_build_the_same_keyspace() {
    let (_d1, _s1, local) = common::sim_store("l.etch");
    let (_d2, _s2, applied) = common::sim_store("r.etch");
    local.put("a", "1").unwrap();
    local
        .batch(vec![WriteOp::put("b", "2"), WriteOp::put("c", "3")])
        .unwrap();
    local.delete("a").unwrap();
    local
        .txn(
            Txn::new()
                .when([Compare::version("b", CompareOp::Equal, 1)])
                .and_then([TxnOp::put("b", "22")]),
        )
        .unwrap();
    local.compact(3).unwrap();

    let commands = [
        put("a", "1"),
        Command::Batch(vec![WriteOp::put("b", "2"), WriteOp::put("c", "3")]),
        Command::Batch(vec![WriteOp::delete(Range::key("a"))]),
        Command::Txn(
            Txn::new()
                .when([Compare::version("b", CompareOp::Equal, 1)])
                .and_then([TxnOp::put("b", "22")]),
        ),
        Command::Compact(3),
    ];
    for (i, c) in commands.iter().enumerate() {
        applied.apply(i as u64 + 1, 1, c).unwrap();
    }
    assert_eq!(local.revision(), applied.revision());
    assert_eq!(hash(&local), hash(&applied));
    assert_eq!(local.applied().0, applied.applied().0);
}
