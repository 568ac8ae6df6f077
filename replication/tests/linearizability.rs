//! Tests of the linearizability checker itself: histories known to be linearizable pass, known
//! anomalies are rejected, unknown outcomes are handled both ways, and histories generated from a
//! reference store with random concurrency always pass.

use etch_replication::check::{
    check, Compare, Config, KeyValue, Operation, Outcome, Request, Response, Verdict, Violation,
};

fn op(client: u64, invoke: u64, at: u64, request: Request, response: Response) -> Operation {
    Operation {
        client,
        invoke,
        request,
        outcome: Outcome::Returned { at, response },
    }
}

fn unknown(client: u64, invoke: u64, request: Request) -> Operation {
    Operation {
        client,
        invoke,
        request,
        outcome: Outcome::Unknown,
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

fn delete(key: &str) -> Request {
    Request::Delete { key: key.into() }
}

fn cas(key: &str, mod_revision: u64, value: &str) -> Request {
    Request::Txn {
        key: key.into(),
        compare: Compare::ModRevision(mod_revision),
        value: value.into(),
    }
}

fn put_ok(revision: u64) -> Response {
    Response::Put { revision }
}

fn kv(value: &str, create: u64, modified: u64, version: u64) -> Option<KeyValue> {
    Some(KeyValue {
        value: value.into(),
        create_revision: create,
        mod_revision: modified,
        version,
    })
}

fn got(revision: u64, kv: Option<KeyValue>) -> Response {
    Response::Get { revision, kv }
}

fn verdict(history: &[Operation]) -> Verdict {
    check(history, &Config::default()).expect("well-formed history")
}

fn assert_linearizable(history: &[Operation]) {
    assert_eq!(verdict(history), Verdict::Linearizable);
}

fn assert_violation(history: &[Operation]) -> Violation {
    match verdict(history) {
        Verdict::NotLinearizable(v) => v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn sequential_history_passes() {
    assert_linearizable(&[
        op(1, 0, 1, put("a", "1"), put_ok(2)),
        op(1, 2, 3, get("a"), got(2, kv("1", 2, 2, 1))),
        op(1, 4, 5, put("a", "2"), put_ok(3)),
        op(1, 6, 7, get("a"), got(3, kv("2", 2, 3, 2))),
        op(
            1,
            8,
            9,
            delete("a"),
            Response::Delete {
                revision: 4,
                deleted: true,
            },
        ),
        op(1, 10, 11, get("a"), got(4, None)),
        op(
            1,
            12,
            13,
            delete("a"),
            Response::Delete {
                revision: 4,
                deleted: false,
            },
        ),
        op(1, 14, 15, put("a", "3"), put_ok(5)),
        op(1, 16, 17, get("a"), got(5, kv("3", 5, 5, 1))),
    ]);
}

#[test]
fn concurrent_read_may_see_either_side_of_a_write() {
    let before = [
        op(1, 0, 1, put("a", "1"), put_ok(2)),
        op(1, 10, 20, put("a", "2"), put_ok(3)),
    ];
    let mut old = before.to_vec();
    old.push(op(2, 12, 14, get("a"), got(2, kv("1", 2, 2, 1))));
    assert_linearizable(&old);
    let mut new = before.to_vec();
    new.push(op(2, 12, 14, get("a"), got(3, kv("2", 2, 3, 2))));
    assert_linearizable(&new);
}

#[test]
fn stale_read_is_rejected() {
    let v = assert_violation(&[
        op(1, 0, 1, put("a", "1"), put_ok(2)),
        op(1, 2, 3, put("a", "2"), put_ok(3)),
        // Starts after the second put returned, yet reports the first value at its revision.
        op(2, 4, 5, get("a"), got(2, kv("1", 2, 2, 1))),
    ]);
    assert!(matches!(v, Violation::RevisionWentBack { .. }), "{v:?}");
}

#[test]
fn stale_read_with_a_current_header_is_rejected_by_the_key_search() {
    // The header revision is fresh, only the value is old: the global checks pass, the per-key
    // model must catch it.
    let v = assert_violation(&[
        op(1, 0, 1, put("a", "1"), put_ok(2)),
        op(1, 2, 3, put("a", "2"), put_ok(3)),
        op(2, 4, 5, get("a"), got(3, kv("1", 2, 2, 1))),
    ]);
    assert!(
        matches!(v, Violation::Key { ref key, .. } if key == b"a"),
        "{v:?}"
    );
}

#[test]
fn lost_write_is_rejected() {
    let v = assert_violation(&[
        op(1, 0, 1, put("a", "1"), put_ok(2)),
        op(1, 2, 3, put("b", "1"), put_ok(3)),
        // The acknowledged write to `a` is gone.
        op(2, 4, 5, get("a"), got(3, None)),
    ]);
    assert!(
        matches!(v, Violation::Key { ref key, .. } if key == b"a"),
        "{v:?}"
    );
}

#[test]
fn reordered_revisions_are_rejected() {
    let v = assert_violation(&[
        op(1, 0, 1, put("a", "1"), put_ok(3)),
        op(2, 2, 3, put("b", "1"), put_ok(2)),
    ]);
    assert_eq!(
        v,
        Violation::RevisionWentBack {
            earlier: 0,
            later: 1
        }
    );
}

#[test]
fn duplicate_revisions_are_rejected() {
    let v = assert_violation(&[
        op(1, 0, 5, put("a", "1"), put_ok(2)),
        op(2, 0, 5, put("b", "1"), put_ok(2)),
    ]);
    assert!(
        matches!(v, Violation::DuplicateRevision { revision: 2, .. }),
        "{v:?}"
    );
}

#[test]
fn read_of_a_value_never_written_is_rejected() {
    let v = assert_violation(&[
        op(1, 0, 1, put("a", "1"), put_ok(2)),
        op(2, 0, 3, get("a"), got(2, kv("x", 2, 2, 1))),
    ]);
    assert!(matches!(v, Violation::Key { .. }), "{v:?}");
}

#[test]
fn wrong_version_or_create_revision_is_rejected() {
    let writes = [
        op(1, 0, 1, put("a", "1"), put_ok(2)),
        op(1, 2, 3, put("a", "2"), put_ok(3)),
    ];
    for bad in [kv("2", 2, 3, 1), kv("2", 3, 3, 2), kv("2", 2, 2, 2)] {
        let mut history = writes.to_vec();
        history.push(op(2, 4, 5, get("a"), got(3, bad)));
        assert_violation(&history);
    }
}

#[test]
fn concurrent_compare_and_swap_admits_one_winner() {
    let setup = op(1, 0, 1, put("a", "0"), put_ok(2));
    let both_win = [
        setup.clone(),
        op(
            2,
            2,
            10,
            cas("a", 2, "x"),
            Response::Txn {
                revision: 3,
                succeeded: true,
                kv: None,
            },
        ),
        op(
            3,
            2,
            10,
            cas("a", 2, "y"),
            Response::Txn {
                revision: 4,
                succeeded: true,
                kv: None,
            },
        ),
    ];
    assert!(matches!(assert_violation(&both_win), Violation::Key { .. }));

    let one_wins = [
        setup,
        op(
            2,
            2,
            10,
            cas("a", 2, "x"),
            Response::Txn {
                revision: 3,
                succeeded: true,
                kv: None,
            },
        ),
        op(
            3,
            2,
            10,
            cas("a", 2, "y"),
            Response::Txn {
                revision: 3,
                succeeded: false,
                kv: kv("x", 2, 3, 2),
            },
        ),
    ];
    assert_linearizable(&one_wins);
}

#[test]
fn txn_on_an_absent_key_compares_mod_revision_zero() {
    assert_linearizable(&[
        op(
            1,
            0,
            1,
            cas("a", 0, "1"),
            Response::Txn {
                revision: 2,
                succeeded: true,
                kv: None,
            },
        ),
        op(
            1,
            2,
            3,
            cas("a", 0, "2"),
            Response::Txn {
                revision: 2,
                succeeded: false,
                kv: kv("1", 2, 2, 1),
            },
        ),
        op(
            1,
            4,
            5,
            Request::Txn {
                key: "a".into(),
                compare: Compare::Value("1".into()),
                value: "3".into(),
            },
            Response::Txn {
                revision: 3,
                succeeded: true,
                kv: None,
            },
        ),
        op(1, 6, 7, get("a"), got(3, kv("3", 2, 3, 2))),
    ]);
}

#[test]
fn unknown_write_may_have_happened() {
    assert_linearizable(&[
        unknown(1, 0, put("a", "1")),
        op(2, 5, 6, get("a"), got(2, kv("1", 2, 2, 1))),
    ]);
}

#[test]
fn unknown_write_may_not_have_happened() {
    assert_linearizable(&[
        op(1, 0, 1, put("a", "0"), put_ok(2)),
        unknown(1, 2, put("a", "1")),
        op(2, 5, 6, get("a"), got(2, kv("0", 2, 2, 1))),
    ]);
}

#[test]
fn unknown_write_cannot_appear_then_vanish() {
    let v = assert_violation(&[
        op(1, 0, 1, put("a", "0"), put_ok(2)),
        unknown(1, 2, put("a", "1")),
        op(2, 5, 6, get("a"), got(3, kv("1", 2, 3, 2))),
        op(2, 7, 8, get("a"), got(3, kv("0", 2, 2, 1))),
    ]);
    assert!(matches!(v, Violation::Key { .. }), "{v:?}");
}

#[test]
fn unknown_write_cannot_take_effect_before_it_was_sent() {
    // The read returns before the put is sent, so the put cannot explain the value.
    let v = assert_violation(&[
        op(2, 0, 1, get("a"), got(2, kv("1", 2, 2, 1))),
        unknown(1, 5, put("a", "1")),
    ]);
    assert!(matches!(v, Violation::Key { .. }), "{v:?}");
}

#[test]
fn unknown_revision_is_pinned_by_the_first_read() {
    // The first read pins the unknown put at revision 2; the second reports 3 for the same version.
    assert_violation(&[
        unknown(1, 0, put("a", "1")),
        op(2, 5, 6, get("a"), got(3, kv("1", 2, 2, 1))),
        op(2, 7, 8, get("a"), got(3, kv("1", 3, 3, 1))),
    ]);
}

#[test]
fn skipped_revisions_need_unknown_writes() {
    let gap = [
        op(1, 0, 1, put("a", "1"), put_ok(2)),
        op(1, 2, 3, put("b", "1"), put_ok(4)),
    ];
    assert_eq!(
        assert_violation(&gap),
        Violation::MissingRevisions {
            missing: 1,
            unknown_writes: 0
        }
    );
    let mut explained = gap.to_vec();
    explained.push(unknown(2, 0, put("c", "1")));
    assert_linearizable(&explained);
    // Without the completeness assumption the gap is not an error.
    let relaxed = Config {
        complete: false,
        ..Config::default()
    };
    assert_eq!(check(&gap, &relaxed).unwrap(), Verdict::Linearizable);
}

#[test]
fn malformed_histories_are_errors_not_verdicts() {
    let wrong_kind = [op(1, 0, 1, get("a"), put_ok(2))];
    assert!(check(&wrong_kind, &Config::default()).is_err());
    let backwards = [op(1, 5, 1, put("a", "1"), put_ok(2))];
    assert!(check(&backwards, &Config::default()).is_err());
}

#[test]
fn budget_exhaustion_is_inconclusive_not_a_verdict() {
    // Many fully concurrent puts of the same key whose order is only fixed by a final read.
    let mut history: Vec<Operation> = (0..12)
        .map(|i| op(i, 0, 100, put("a", &i.to_string()), put_ok(2 + i)))
        .collect();
    history.push(op(99, 200, 201, get("a"), got(13, kv("11", 2, 13, 12))));
    let tiny = Config {
        budget_per_key: 3,
        ..Config::default()
    };
    assert_eq!(
        check(&history, &tiny).unwrap(),
        Verdict::Inconclusive { key: b"a".to_vec() }
    );
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

/// A tiny deterministic generator (xorshift64*), so the test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A reference etcd store for one process: what a correct system would answer.
#[derive(Default)]
struct Reference {
    revision: u64,
    keys: std::collections::BTreeMap<Vec<u8>, KeyValue>,
}

impl Reference {
    fn apply(&mut self, request: &Request) -> Response {
        match request {
            Request::Put { key, value } => {
                self.revision += 1;
                self.store(key, value);
                Response::Put {
                    revision: self.revision,
                }
            }
            Request::Get { key } => Response::Get {
                revision: self.revision,
                kv: self.keys.get(key).cloned(),
            },
            Request::Delete { key } => {
                let deleted = self.keys.remove(key).is_some();
                if deleted {
                    self.revision += 1;
                }
                Response::Delete {
                    revision: self.revision,
                    deleted,
                }
            }
            Request::Txn {
                key,
                compare,
                value,
            } => {
                let current = self.keys.get(key);
                let holds = match compare {
                    Compare::ModRevision(r) => current.map_or(0, |kv| kv.mod_revision) == *r,
                    Compare::Version(v) => current.map_or(0, |kv| kv.version) == *v,
                    Compare::Value(v) => current.is_some_and(|kv| kv.value == *v),
                };
                if holds {
                    self.revision += 1;
                    self.store(key, value);
                    Response::Txn {
                        revision: self.revision,
                        succeeded: true,
                        kv: None,
                    }
                } else {
                    Response::Txn {
                        revision: self.revision,
                        succeeded: false,
                        kv: current.cloned(),
                    }
                }
            }
            // Lease histories are tested in check_leases.rs.
            other => panic!("the generator makes no lease request, got {other:?}"),
        }
    }

    fn store(&mut self, key: &[u8], value: &[u8]) {
        let revision = self.revision;
        let kv = self.keys.entry(key.to_vec()).or_insert(KeyValue {
            value: Vec::new(),
            create_revision: revision,
            mod_revision: revision,
            version: 0,
        });
        kv.value = value.to_vec();
        kv.mod_revision = revision;
        kv.version += 1;
    }
}

/// A random linearizable history: operations take effect in order at increasing linearization
/// points, each inside a random interval around its point; some lose their answer.
fn generated_history(seed: u64, ops: usize, keys: u64) -> Vec<Operation> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut store = Reference {
        revision: 1,
        ..Reference::default()
    };
    let mut history = Vec::new();
    for i in 0..ops {
        let point = 100 * (i as u64 + 1);
        let key = format!("k{}", rng.below(keys));
        let value = format!("v{i}");
        let current_mod = store
            .keys
            .get(key.as_bytes())
            .map_or(0, |kv| kv.mod_revision);
        let request = match rng.below(10) {
            0..=3 => put(&key, &value),
            4..=6 => get(&key),
            7 => delete(&key),
            // Half the compare-and-swaps use the right revision.
            _ => cas(&key, current_mod * rng.below(2), &value),
        };
        let response = store.apply(&request);
        let invoke = point - rng.below(400).min(point);
        let at = point + rng.below(400);
        let outcome = if rng.below(15) == 0 {
            Outcome::Unknown
        } else {
            Outcome::Returned { at, response }
        };
        history.push(Operation {
            client: i as u64,
            invoke,
            request,
            outcome,
        });
    }
    history
}

#[test]
fn generated_linearizable_histories_pass() {
    for seed in 0..300 {
        let history = generated_history(seed, 120, 3);
        assert_eq!(
            verdict(&history),
            Verdict::Linearizable,
            "seed {seed} produced a false positive"
        );
    }
}

#[test]
fn corrupted_reads_in_generated_histories_are_caught() {
    // Change one answered read's value to one that was never written: always a violation.
    let mut caught = 0;
    for seed in 0..100 {
        let mut history = generated_history(seed, 80, 3);
        let target = history.iter_mut().find(|op| {
            matches!(
                op.outcome,
                Outcome::Returned {
                    response: Response::Get { kv: Some(_), .. },
                    ..
                }
            )
        });
        let Some(target) = target else { continue };
        if let Outcome::Returned {
            response: Response::Get { kv: Some(kv), .. },
            ..
        } = &mut target.outcome
        {
            kv.value = b"never written".to_vec();
        }
        assert!(
            matches!(verdict(&history), Verdict::NotLinearizable(_)),
            "seed {seed}: corrupted read accepted"
        );
        caught += 1;
    }
    assert!(
        caught > 50,
        "too few histories had a read to corrupt: {caught}"
    );
}
