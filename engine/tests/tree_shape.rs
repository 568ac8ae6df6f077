//! B+tree shape under heavy splitting and merging: thousands of keys of mixed sizes inserted and
//! deleted in large batches, with `check()` (which verifies order, depth, fill and page
//! accounting) after every phase and the contents compared with a `BTreeMap`.

use std::collections::BTreeMap;

use etch_engine::{Options, Range, WriteOp};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 1 + rng.below(4) as usize,
        1 => 200 + rng.below(700) as usize,
        _ => 8 + rng.below(40) as usize,
    };
    (0..len)
        .map(|_| b"ab\x00\xffcd/"[rng.below(7) as usize])
        .collect()
}

fn value(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(20) {
        0 => 5000 + rng.below(30_000) as usize,
        1 => 900 + rng.below(400) as usize,
        _ => rng.below(200) as usize,
    };
    vec![rng.below(256) as u8; len]
}

fn compare(db: &etch_engine::Store, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let all = db.range(Range::all()).unwrap();
    assert_eq!(all.count as usize, model.len());
    let got: Vec<(Vec<u8>, Vec<u8>)> = all.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(got == want, "range(all) differs from the model");
    let report = db.check().unwrap();
    assert_eq!(report.keys as usize, model.len());
}

#[test]
fn splits_and_merges_keep_the_tree_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shape.etch");
    let open = || {
        Options::new()
            .max_txn_ops(100_000)
            .max_request_bytes(1 << 30)
            .open(&path)
            .unwrap()
    };
    let mut db = open();
    let mut model = BTreeMap::new();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..6 {
        // A large batch of puts (new keys and overwrites).
        let mut ops = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3000 {
            let k = if !model.is_empty() && rng.below(3) == 0 {
                model
                    .keys()
                    .nth(rng.below(model.len() as u64) as usize)
                    .cloned()
                    .unwrap()
            } else {
                key(&mut rng)
            };
            if seen.insert(k.clone()) {
                let v = value(&mut rng);
                model.insert(k.clone(), v.clone());
                ops.push(WriteOp::put(k, v));
            }
        }
        db.batch(ops).unwrap();
        compare(&db, &model);
        // Delete a random two thirds, one key per op, in one batch.
        let victims: Vec<Vec<u8>> = model
            .keys()
            .filter(|_| rng.below(3) != 0)
            .cloned()
            .collect();
        let ops = victims
            .iter()
            .map(|k| WriteOp::delete(Range::key(k)))
            .collect();
        db.batch(ops).unwrap();
        for k in &victims {
            model.remove(k);
        }
        compare(&db, &model);
        // Delete a prefix range.
        let prefix = [b"ab\x00\xffcd/"[round % 7]];
        db.delete_range(Range::prefix(prefix), false).unwrap();
        model.retain(|k, _| !k.starts_with(&prefix));
        compare(&db, &model);
        if round % 2 == 1 {
            db.close().unwrap();
            db = open();
            compare(&db, &model);
        }
    }
    // Single-key commits, each sealed on its own.
    for _ in 0..300 {
        let k = key(&mut rng);
        let v = value(&mut rng);
        db.put(&k, &v).unwrap();
        model.insert(k, v);
    }
    compare(&db, &model);
    db.delete_range(Range::all(), false).unwrap();
    model.clear();
    compare(&db, &model);
    db.close().unwrap();
}
