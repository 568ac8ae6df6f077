//! Damaged files: every case must end in a typed error (`Error::Corrupt`, `Error::NotEtchFile`,
//! `Error::NewerFormat`, ...) or in the documented recovery, never in a panic or a wrong answer.
//! `check()` runs after every open that succeeds.
//!
//! Layouts used here (see engine/src/meta.rs, page.rs, node.rs, wal.rs):
//! - meta slots: pages 0 and 1; 256 bytes; magic at 0, format version u32 at 8, page size u32 at
//!   12, db id u64 at 16, checkpoint counter u64 at 24, page count u64 at 32, free-list head u64
//!   at 40, roots (current, history, log) u64 at 56/64/72, revision u64 at 120, last applied WAL
//!   sequence number at 136, WAL offset at 152, WAL salt at 160; crc32 of [0, 252) at 252.
//! - tree and free-list pages: crc32 of [4, page_size) at 0, kind at 4 (1 branch, 2 leaf,
//!   3 free list), count u16 at 6, own page id u64 at 8, leftmost child u64 at 16; slot array of
//!   u16 entry offsets at 24; branch entry = u16 key_len | u64 child | key.
//! - WAL `<db>-wal`: 4096-byte header (magic "etchwal\x1a", version u32 at 8, db id u64 at 16,
//!   crc32 of [0, 24) at 24), then 8-byte aligned frames: crc32(salt | db id | header[4..32] |
//!   payload) at 0, payload length u32 at 4, sequence number u64 at 8, term u64 at 16, kind u8 at
//!   24 (1 commit, 2 wrap), payload at 32.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use etch_engine::{Error, Options, Range, RangeOptions, Store};

const PS: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

fn wal_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    s.into()
}

fn read_at(path: &Path, off: u64, len: usize) -> Vec<u8> {
    let all = fs::read(path).unwrap();
    all[off as usize..off as usize + len].to_vec()
}

fn write_at(path: &Path, off: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, off).unwrap();
    f.sync_all().unwrap();
}

fn xor_byte(path: &Path, off: u64, mask: u8) {
    let b = read_at(path, off, 1)[0];
    write_at(path, off, &[b ^ mask]);
}

fn set_len(path: &Path, len: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

/// Meta slot `slot` (256 bytes) of a file with page size `ps`.
fn meta(path: &Path, ps: usize, slot: usize) -> Vec<u8> {
    read_at(path, (slot * ps) as u64, 256)
}

fn meta_crc_ok(m: &[u8]) -> bool {
    crc32fast::hash(&m[..252]) == u32_at(m, 252)
}

/// Rewrites the meta crc after an edit.
fn fix_meta_crc(m: &mut [u8]) {
    let crc = crc32fast::hash(&m[..252]);
    m[252..256].copy_from_slice(&crc.to_le_bytes());
}

fn page(path: &Path, id: u64) -> Vec<u8> {
    read_at(path, id * PS as u64, PS)
}

/// Children of a branch page, leftmost first.
fn children(p: &[u8]) -> Vec<u64> {
    assert_eq!(p[4], 1, "not a branch");
    let n = u16_at(p, 6) as usize;
    let mut c = vec![u64_at(p, 16)];
    for i in 0..n {
        let off = u16_at(p, 24 + 2 * i) as usize;
        c.push(u64_at(p, off + 2));
    }
    c
}

/// Page ids from the root of the tree whose root is at meta offset `root_at` down to its leftmost
/// (or rightmost) leaf.
fn tree_path(path: &Path, root_at: usize, rightmost: bool) -> Vec<u64> {
    let m = meta(path, PS, 0);
    let mut id = u64_at(&m, root_at);
    assert!(id >= 2, "tree is empty");
    let mut out = vec![id];
    loop {
        let p = page(path, id);
        assert_eq!(u64_at(&p, 8), id, "page header names another page");
        match p[4] {
            2 => return out,
            1 => {
                let c = children(&p);
                id = if rightmost { *c.last().unwrap() } else { c[0] };
                out.push(id);
            }
            k => panic!("page {id}: kind {k} in a tree"),
        }
    }
}

fn key(i: usize) -> String {
    format!("key/{i:05}")
}

fn value(i: usize, gen: usize) -> Vec<u8> {
    format!("value-{i}-{gen}-{}", "x".repeat(i % 61)).into_bytes()
}

/// A marker that makes the overflow pages of the big value easy to find in the file.
const BIG_MARKER: &[u8] = b"<<etch-overflow-marker>>";

fn big_value() -> Vec<u8> {
    let mut v = Vec::new();
    while v.len() < 50_000 {
        v.extend_from_slice(BIG_MARKER);
        v.extend_from_slice(format!("{:08}", v.len()).as_bytes());
    }
    v
}

type Expected = BTreeMap<Vec<u8>, Vec<u8>>;

/// Writes `n` keys (some overwritten, some deleted, so all three trees and the free list have
/// content) and one ~50 KB value on overflow pages. Returns the expected contents.
fn fill(store: &Store, n: usize) -> Expected {
    let mut exp = Expected::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let ops = chunk
            .iter()
            .map(|&i| etch_engine::WriteOp::put(key(i), value(i, 0)))
            .collect();
        store.batch(ops).unwrap();
        for &i in chunk {
            exp.insert(key(i).into_bytes(), value(i, 0));
        }
    }
    for i in (0..n).step_by(7) {
        store.put(key(i), value(i, 1)).unwrap();
        exp.insert(key(i).into_bytes(), value(i, 1));
    }
    for i in (3..n).step_by(11) {
        store.delete(key(i)).unwrap();
        exp.remove(key(i).as_bytes());
    }
    store.put("big", big_value()).unwrap();
    exp.insert(b"big".to_vec(), big_value());
    exp
}

/// Asserts the store holds exactly `exp`, and passes `check()`.
fn assert_contents(store: &Store, exp: &Expected) {
    store.check().expect("check() after a successful open");
    let r = store.range(Range::all()).unwrap();
    let got: Expected = r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    if &got != exp {
        let missing: Vec<_> = exp
            .keys()
            .filter(|k| !got.contains_key(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !exp.contains_key(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .take(5)
            .collect();
        let wrong: Vec<_> = exp
            .iter()
            .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .take(5)
            .collect();
        panic!(
            "contents differ: {} keys, expected {}; missing {missing:?}, extra {extra:?}, \
             wrong values {wrong:?}",
            got.len(),
            exp.len()
        );
    }
}

/// A cleanly closed store with data, in its own directory.
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    exp: Expected,
    rev: i64,
}

fn fixture(n: usize) -> Fixture {
    fixture_with(n, Options::new())
}

fn fixture_with(n: usize, opts: Options) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let store = opts.open(&path).unwrap();
    let exp = fill(&store, n);
    let rev = store.revision();
    store.close().unwrap();
    assert!(!wal_path(&path).exists());
    Fixture {
        _dir: dir,
        path,
        exp,
        rev,
    }
}

/// A copy of the fixture's file(s) in a new directory.
fn copy_of(src: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    fs::copy(src, &path).unwrap();
    if wal_path(src).exists() {
        fs::copy(wal_path(src), wal_path(&path)).unwrap();
    }
    (dir, path)
}

/// Opens with a 1 MiB WAL (the smallest): every open writes a fresh, zero-filled WAL, and the
/// tests here open a lot.
fn open(path: &Path) -> etch_engine::Result<Store> {
    Options::new().wal_capacity(1 << 20).open(path)
}

/// Opens, expects success with exactly `exp` at revision `rev`, checks, closes, and does it once
/// more (the first close rewrites both meta slots).
fn assert_opens_with(path: &Path, exp: &Expected, rev: i64) {
    for _ in 0..2 {
        let store = open(path).expect("open");
        assert_eq!(store.revision(), rev);
        assert_contents(&store, exp);
        store.close().unwrap();
    }
    let m0 = meta(path, PS, 0);
    let m1 = meta(path, PS, 1);
    assert!(
        meta_crc_ok(&m0) && meta_crc_ok(&m1),
        "meta slots not healed"
    );
    assert_eq!(m0, m1, "a clean close leaves both slots equal");
}

fn expect_corrupt<T>(r: etch_engine::Result<T>, what: &str) -> String {
    match r {
        Err(Error::Corrupt(msg)) => msg,
        Err(e) => panic!("{what}: expected Error::Corrupt, got {e:?}"),
        Ok(_) => panic!("{what}: expected Error::Corrupt, got Ok"),
    }
}

fn expect_not_etch<T>(r: etch_engine::Result<T>, path: &Path, what: &str) {
    match r {
        Err(Error::NotEtchFile { path: p }) => assert_eq!(p, path, "{what}"),
        Err(e) => panic!("{what}: expected Error::NotEtchFile, got {e:?}"),
        Ok(_) => panic!("{what}: expected Error::NotEtchFile, got Ok"),
    }
}

// ---------------------------------------------------------------------------------------------
// (a) meta slots.
// ---------------------------------------------------------------------------------------------

#[test]
fn damaged_meta_slot0_opens_from_slot1() {
    let fx = fixture(500);
    // Inside a field, the magic, the crc itself, and the page size field.
    for off in [100u64, 0, 253, 12, 24] {
        let (_d, path) = copy_of(&fx.path);
        xor_byte(&path, off, 0x5a);
        assert!(!meta_crc_ok(&meta(&path, PS, 0)) || off == 0);
        assert_opens_with(&path, &fx.exp, fx.rev);
    }
    // The whole slot zeroed (a lost write of the first page).
    let (_d, path) = copy_of(&fx.path);
    write_at(&path, 0, &[0u8; PS]);
    assert_opens_with(&path, &fx.exp, fx.rev);
}

#[test]
fn damaged_meta_slot1_opens_from_slot0() {
    let fx = fixture(500);
    for off in [100u64, 0, 253, 12, 24] {
        let (_d, path) = copy_of(&fx.path);
        xor_byte(&path, PS as u64 + off, 0xa5);
        assert_opens_with(&path, &fx.exp, fx.rev);
    }
    let (_d, path) = copy_of(&fx.path);
    write_at(&path, PS as u64, &[0xffu8; PS]);
    assert_opens_with(&path, &fx.exp, fx.rev);
}

#[test]
fn damaged_meta_slot_with_larger_pages() {
    // Slot 1 sits one page in; with slot 0 damaged, open must find it at 8 KiB / 64 KiB.
    for ps in [8192usize, 65536] {
        let fx = fixture_with(300, Options::new().page_size(ps));
        let (_d, path) = copy_of(&fx.path);
        xor_byte(&path, 100, 0x01);
        let store = open(&path).expect("open with slot 0 damaged");
        assert_eq!(store.revision(), fx.rev);
        assert_contents(&store, &fx.exp);
        store.close().unwrap();
        let m0 = meta(&path, ps, 0);
        assert!(meta_crc_ok(&m0) && m0 == meta(&path, ps, 1));
        let (_d, path) = copy_of(&fx.path);
        xor_byte(&path, ps as u64 + 100, 0x01);
        let store = open(&path).expect("open with slot 1 damaged");
        assert_contents(&store, &fx.exp);
        store.close().unwrap();
    }
}

#[test]
fn both_meta_slots_damaged_is_corrupt() {
    let fx = fixture(200);
    for off in [100u64, 253, 24, 12] {
        let (_d, path) = copy_of(&fx.path);
        xor_byte(&path, off, 0x10);
        xor_byte(&path, PS as u64 + off, 0x10);
        let msg = expect_corrupt(open(&path), &format!("both slots damaged at {off}"));
        assert!(
            msg.contains("meta"),
            "message should name the meta slots: {msg}"
        );
    }
    // Only the magic of both slots destroyed: nothing says this is an etch file any more.
    let (_d, path) = copy_of(&fx.path);
    xor_byte(&path, 0, 0x10);
    xor_byte(&path, PS as u64, 0x10);
    expect_not_etch(open(&path), &path, "both magics damaged");
    // Magic intact in slot 0, slot 1 overwritten with junk.
    let (_d, path) = copy_of(&fx.path);
    xor_byte(&path, 140, 0x10);
    write_at(&path, PS as u64, &[0x42u8; 512]);
    expect_corrupt(open(&path), "slot 0 damaged, slot 1 junk");
}

#[test]
fn sane_checksum_over_insane_fields_is_rejected() {
    // A slot with a valid crc but an impossible page size / root outside the file must not be
    // trusted: open falls back to the other slot.
    let fx = fixture(300);
    let edits: [(usize, u64); 3] = [(12, 12345), (56, 1 << 40), (32, 1)];
    for (off, val) in edits {
        let (_d, path) = copy_of(&fx.path);
        let mut m = meta(&path, PS, 0);
        if off == 12 {
            m[off..off + 4].copy_from_slice(&(val as u32).to_le_bytes());
        } else {
            m[off..off + 8].copy_from_slice(&val.to_le_bytes());
        }
        fix_meta_crc(&mut m);
        write_at(&path, 0, &m);
        assert_opens_with(&path, &fx.exp, fx.rev);
    }
}

#[test]
fn interrupted_checkpoint_meta_states() {
    // A checkpoint writes slot 0, syncs, then slot 1. A crash in between leaves slot 0 new and
    // slot 1 old: open takes the newer one (higher counter) and loses nothing.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let store = open(&path).unwrap();
    let mut exp = fill(&store, 300);
    store.close().unwrap();
    let old_meta = read_at(&path, 0, PS);
    let store = open(&path).unwrap();
    for i in 1000..1200 {
        store.put(key(i), value(i, 2)).unwrap();
        exp.insert(key(i).into_bytes(), value(i, 2));
    }
    let rev = store.revision();
    store.close().unwrap();
    let new_meta = read_at(&path, 0, PS);
    assert!(u64_at(&new_meta, 24) > u64_at(&old_meta, 24));

    let (_d, p) = copy_of(&path);
    write_at(&p, PS as u64, &old_meta);
    assert_opens_with(&p, &exp, rev);
    // The reverse (old slot 0, new slot 1) cannot come from a crash, but the counter decides.
    let (_d, p) = copy_of(&path);
    write_at(&p, 0, &old_meta);
    assert_opens_with(&p, &exp, rev);
    // Slots from two different databases: refuse rather than guess.
    let other = fixture(10);
    let (_d, p) = copy_of(&path);
    write_at(&p, PS as u64, &read_at(&other.path, PS as u64, PS));
    expect_corrupt(open(&p), "slots from different databases");
}

// ---------------------------------------------------------------------------------------------
// (b) newer format.
// ---------------------------------------------------------------------------------------------

#[test]
fn newer_format_version_is_refused() {
    let fx = fixture(100);
    let set_version = |path: &Path, slot: usize, v: u32| {
        let mut m = meta(path, PS, slot);
        m[8..12].copy_from_slice(&v.to_le_bytes());
        fix_meta_crc(&mut m);
        write_at(path, (slot * PS) as u64, &m);
    };
    let (_d, path) = copy_of(&fx.path);
    set_version(&path, 0, 99);
    set_version(&path, 1, 99);
    let before = fs::read(&path).unwrap();
    match open(&path) {
        Err(Error::NewerFormat {
            path: p,
            found,
            supported,
        }) => {
            assert_eq!(p, path);
            assert_eq!(found, 99);
            // Version 2 is a replicated store's meta (design.md, "Meta slot").
            assert_eq!(supported, 2);
        }
        Err(e) => panic!("expected NewerFormat, got {e:?}"),
        Ok(_) => panic!("expected NewerFormat, got Ok"),
    }
    assert_eq!(
        fs::read(&path).unwrap(),
        before,
        "a refused open changed the file"
    );
    assert!(!wal_path(&path).exists(), "a refused open created a WAL");

    // One upgraded slot is enough to refuse: opening the other would roll the file back.
    for slot in [0, 1] {
        let (_d, path) = copy_of(&fx.path);
        set_version(&path, slot, 3);
        assert!(matches!(
            open(&path),
            Err(Error::NewerFormat { found: 3, .. })
        ));
    }
    // Version 2 without the replicated flag is inconsistent: that slot is damaged, the other
    // one is used.
    let (_d, path) = copy_of(&fx.path);
    set_version(&path, 0, 2);
    assert_opens_with(&path, &fx.exp, fx.rev);
    // Version 0 is not a valid version: that slot is damaged, the other one is used.
    let (_d, path) = copy_of(&fx.path);
    set_version(&path, 0, 0);
    assert_opens_with(&path, &fx.exp, fx.rev);
    let (_d, path) = copy_of(&fx.path);
    set_version(&path, 0, 0);
    set_version(&path, 1, 0);
    expect_corrupt(open(&path), "version 0 in both slots");
}

// ---------------------------------------------------------------------------------------------
// (c) tree, overflow and free-list pages.
// ---------------------------------------------------------------------------------------------

/// Every read either returns the right answer or `Error::Corrupt`; returns how many failed.
fn reads_are_right_or_corrupt(store: &Store, exp: &Expected) -> usize {
    let mut failed = 0;
    for (k, v) in exp {
        match store.get(k) {
            Ok(Some(kv)) => assert_eq!(&kv.value, v, "WRONG ANSWER for {k:?}"),
            Ok(None) => panic!(
                "WRONG ANSWER: {:?} reported absent",
                String::from_utf8_lossy(k)
            ),
            Err(Error::Corrupt(_)) => failed += 1,
            Err(e) => panic!("untyped failure for {k:?}: {e:?}"),
        }
    }
    for absent in ["key/00003", "zzz", "a"] {
        match store.get(absent) {
            Ok(None) | Err(Error::Corrupt(_)) => {}
            Ok(Some(kv)) => panic!("WRONG ANSWER: deleted/absent {absent} found: {kv:?}"),
            Err(e) => panic!("untyped failure: {e:?}"),
        }
    }
    match store.range(Range::all()) {
        Ok(r) => {
            let got: Expected = r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
            assert_eq!(&got, exp, "WRONG ANSWER from range(all)");
        }
        Err(Error::Corrupt(_)) => {}
        Err(e) => panic!("untyped failure from range: {e:?}"),
    }
    failed
}

#[test]
fn damaged_current_tree_root_is_reported() {
    let fx = fixture(2000);
    let root = tree_path(&fx.path, 56, false)[0];
    for off in [PS as u64 / 2, 2, 9, PS as u64 - 1] {
        let (_d, path) = copy_of(&fx.path);
        xor_byte(&path, root * PS as u64 + off, 0x80);
        let store = open(&path).expect("open does not read the tree");
        let msg = expect_corrupt(store.get(key(0)), "get through a damaged root");
        assert!(msg.contains(&format!("page {root}")), "{msg}");
        assert_eq!(reads_are_right_or_corrupt(&store, &fx.exp), fx.exp.len());
        let msg = expect_corrupt(store.check(), "check() with a damaged root");
        assert!(msg.contains(&format!("page {root}")), "{msg}");
        // A write needs the root too: a typed error, after which the handle refuses writes.
        match store.put("new", "v") {
            Err(Error::Corrupt(_)) | Err(Error::Poisoned(_)) => {}
            other => panic!("write through a damaged root: {other:?}"),
        }
        let _ = store.close(); // must not panic; an error is fine
    }
}

#[test]
fn damaged_leaf_is_reported_and_other_leaves_still_read() {
    let fx = fixture(2000);
    let left = tree_path(&fx.path, 56, false);
    let right = tree_path(&fx.path, 56, true);
    assert!(left.len() >= 2, "want a tree with branches: {left:?}");
    let leaf = *left.last().unwrap();
    let (_d, path) = copy_of(&fx.path);
    xor_byte(&path, leaf * PS as u64 + 1000, 0x04);
    let store = open(&path).unwrap();
    let msg = expect_corrupt(store.get(key(0)), "get of a key in the damaged leaf");
    assert!(msg.contains(&format!("page {leaf}")), "{msg}");
    // Keys in other leaves still read correctly (verification is per page).
    let last = fx.exp.keys().rfind(|k| k.starts_with(b"key/")).unwrap();
    assert_eq!(&store.get(last).unwrap().unwrap().value, &fx.exp[last]);
    assert_ne!(*right.last().unwrap(), leaf);
    let failed = reads_are_right_or_corrupt(&store, &fx.exp);
    assert!(failed > 0 && failed < fx.exp.len(), "{failed} failed reads");
    let msg = expect_corrupt(store.check(), "check() with a damaged leaf");
    assert!(msg.contains(&format!("page {leaf}")), "{msg}");
    let _ = store.close();
}

#[test]
fn misdirected_page_write_is_reported() {
    // A valid page written to the wrong place: its checksum holds, its header names another page.
    let fx = fixture(2000);
    let left = *tree_path(&fx.path, 56, false).last().unwrap();
    let right = *tree_path(&fx.path, 56, true).last().unwrap();
    assert_ne!(left, right);
    let (_d, path) = copy_of(&fx.path);
    write_at(&path, left * PS as u64, &page(&path, right));
    let store = open(&path).unwrap();
    let msg = expect_corrupt(store.get(key(0)), "get through a misdirected page");
    assert!(msg.contains(&format!("page {left}")), "{msg}");
    reads_are_right_or_corrupt(&store, &fx.exp);
    expect_corrupt(store.check(), "check() with a misdirected page");
    let _ = store.close();
}

#[test]
fn damaged_history_and_log_trees_are_reported() {
    let fx = fixture(2000);
    for root_at in [64usize, 72] {
        let root = tree_path(&fx.path, root_at, false)[0];
        let (_d, path) = copy_of(&fx.path);
        xor_byte(&path, root * PS as u64 + 77, 0x20);
        let store = open(&path).unwrap();
        // Current reads do not need these trees.
        assert_eq!(reads_are_right_or_corrupt(&store, &fx.exp), 0);
        // A read at an old revision goes through the history tree.
        let r = store.range_with(
            &Range::key(key(0)),
            &RangeOptions {
                revision: 2,
                ..Default::default()
            },
        );
        match r {
            Ok(r) => {
                assert_eq!(r.kvs.len(), 1, "key/00000 existed at revision 2");
                assert_eq!(r.kvs[0].value, value(0, 0), "WRONG ANSWER at revision 2");
            }
            Err(Error::Corrupt(msg)) => assert!(msg.contains("page"), "{msg}"),
            Err(e) => panic!("untyped: {e:?}"),
        }
        let msg = expect_corrupt(
            store.check(),
            &format!("check() with root at {root_at} damaged"),
        );
        assert!(msg.contains(&format!("page {root}")), "{msg}");
        let _ = store.close();
    }
}

#[test]
fn damaged_overflow_value_is_reported() {
    let fx = fixture(300);
    let data = fs::read(&fx.path).unwrap();
    let at = data
        .windows(BIG_MARKER.len())
        .position(|w| w == BIG_MARKER)
        .expect("overflow value in the file") as u64;
    let (_d, path) = copy_of(&fx.path);
    xor_byte(&path, at + 3000, 0x01);
    let store = open(&path).unwrap();
    let msg = expect_corrupt(store.get("big"), "get of a damaged overflow value");
    assert!(msg.contains("page"), "{msg}");
    // Everything else is intact.
    let mut rest = fx.exp.clone();
    rest.remove(b"big".as_slice());
    assert_eq!(reads_are_right_or_corrupt(&store, &rest), 0);
    expect_corrupt(store.check(), "check() with a damaged overflow value");
    let _ = store.close();
}

#[test]
fn damaged_free_list_is_reported_at_open() {
    let fx = fixture(2000);
    let m = meta(&fx.path, PS, 0);
    let head = u64_at(&m, 40);
    assert!(head >= 2, "fixture should leave a free list (head {head})");
    assert_eq!(page(&fx.path, head)[4], 3, "free-list page kind");
    let (_d, path) = copy_of(&fx.path);
    xor_byte(&path, head * PS as u64 + 30, 0x01);
    let msg = expect_corrupt(open(&path), "open with a damaged free list");
    assert!(msg.contains(&format!("page {head}")), "{msg}");
}

/// A store large enough that `check()` splits its walk over worker threads (the calling thread
/// checks the top levels until there are dozens of subtrees per worker, the workers take the
/// rest) and its change-log verification over parts of the revision range: 30,000 keys in
/// batches, every 7th overwritten, every 11th deleted.
fn large_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let store = Options::new().max_txn_ops(1000).open(&path).unwrap();
    let n = 30_000;
    let mut exp = Expected::new();
    let put = |i: usize, gen: usize| etch_engine::WriteOp::put(key(i), value(i, gen));
    for start in (0..n).step_by(1000) {
        store
            .batch((start..start + 1000).map(|i| put(i, 0)).collect())
            .unwrap();
    }
    let over: Vec<usize> = (0..n).step_by(7).collect();
    for chunk in over.chunks(1000) {
        store
            .batch(chunk.iter().map(|&i| put(i, 1)).collect())
            .unwrap();
    }
    let dels: Vec<usize> = (3..n).step_by(11).collect();
    for chunk in dels.chunks(1000) {
        let ops = chunk
            .iter()
            .map(|&i| etch_engine::WriteOp::delete(Range::key(key(i))))
            .collect();
        store.batch(ops).unwrap();
    }
    for i in 0..n {
        let gen = usize::from(i % 7 == 0);
        if i < 3 || (i - 3) % 11 != 0 {
            exp.insert(key(i).into_bytes(), value(i, gen));
        }
    }
    let rev = store.revision();
    store.close().unwrap();
    Fixture {
        _dir: dir,
        path,
        exp,
        rev,
    }
}

/// Rewrites page `id` with `edit` applied and its checksum recomputed: damage the checksum
/// cannot see, only the structure checks.
fn edit_page(path: &Path, id: u64, edit: impl FnOnce(&mut [u8])) {
    let mut p = page(path, id);
    edit(&mut p);
    let crc = crc32fast::hash(&p[4..]);
    p[..4].copy_from_slice(&crc.to_le_bytes());
    write_at(path, id * PS as u64, &p);
}

#[test]
fn check_split_over_workers_passes_a_sound_store_with_exact_counts() {
    let fx = large_fixture();
    let store = open(&fx.path).unwrap();
    let mut last = (0u64, 0u64);
    let mut seen = Vec::new();
    let report = store
        .check_with_progress(|done, total| {
            assert!(
                done >= last.0 && done <= total,
                "progress {done}/{total} after {last:?}"
            );
            last = (done, total);
            seen.push(done);
        })
        .unwrap();
    assert_eq!(last.0, last.1, "progress ends at its total");
    // The page walk is the first fifth of the total: its end is reported, and then the log's
    // verification takes the progress to the end (a bar does not sit full during it).
    let walk_end = last.1 / 5;
    assert!(seen.contains(&walk_end), "{walk_end} not in {seen:?}");
    assert!(seen.iter().filter(|&&d| d > walk_end).count() >= 1);
    assert_eq!(report.keys, fx.exp.len() as u64);
    // Nothing was compacted: every overwrite left the version it replaced in the history, every
    // delete that version and its tombstone, and every change one log record.
    let (over, dels) = (30_000u64.div_ceil(7), (30_000u64 - 3).div_ceil(11));
    assert_eq!(report.history_records, over + 2 * dels);
    assert_eq!(report.log_records, 30_000 + over + dels);
    assert_eq!(
        fx.rev,
        (30 + over.div_ceil(1000) + dels.div_ceil(1000) + 1) as i64
    );
    // The same snapshot checked again (the pages now verified) gives the same counts.
    assert_eq!(store.check().unwrap(), report);
    assert_contents(&store, &fx.exp);
}

#[test]
fn check_split_over_workers_reports_damage_in_any_subtree() {
    let fx = large_fixture();
    // The leftmost and rightmost leaf of each tree: the first and the last subtree the walk
    // hands out, taken by different workers.
    for root_at in [56usize, 64, 72] {
        for rightmost in [false, true] {
            let path_ids = tree_path(&fx.path, root_at, rightmost);
            assert!(path_ids.len() >= 2, "want branches: {path_ids:?}");
            let leaf = *path_ids.last().unwrap();
            let (_d, path) = copy_of(&fx.path);
            xor_byte(&path, leaf * PS as u64 + 2000, 0x10);
            let store = open(&path).unwrap();
            let msg = expect_corrupt(store.check(), &format!("check() with leaf {leaf} damaged"));
            assert!(msg.contains(&format!("page {leaf}")), "{msg}");
            let _ = store.close();
        }
    }
}

#[test]
fn check_split_over_workers_reports_a_page_reached_twice() {
    let fx = large_fixture();
    let left = tree_path(&fx.path, 56, false);
    let right = tree_path(&fx.path, 56, true);
    let (left_leaf, parent) = (*left.last().unwrap(), right[right.len() - 2]);
    let (_d, path) = copy_of(&fx.path);
    // The rightmost leaf's parent now points at the leftmost leaf instead (its checksum
    // recomputed): two subtrees reach that leaf, and the rightmost leaf is reached by none.
    edit_page(&path, parent, |p| {
        let n = u16_at(p, 6) as usize;
        let off = u16_at(p, 24 + 2 * (n - 1)) as usize + 2;
        p[off..off + 8].copy_from_slice(&left_leaf.to_le_bytes());
    });
    assert_eq!(*children(&page(&path, parent)).last().unwrap(), left_leaf);
    let store = open(&path).unwrap();
    let msg = expect_corrupt(store.check(), "check() with a leaf reached twice");
    // Whichever worker comes second: the leaf is claimed twice, or its keys lie outside the
    // bounds of the parent that now points at it.
    assert!(msg.contains(&format!("page {left_leaf}")), "{msg}");
    let _ = store.close();
}

#[test]
fn check_split_over_workers_reports_a_log_entry_without_its_version() {
    let fx = large_fixture();
    for rightmost in [false, true] {
        let leaf = *tree_path(&fx.path, 72, rightmost).last().unwrap();
        let (_d, path) = copy_of(&fx.path);
        // One change-log entry's key renamed ("key/" -> "kez/"), checksum recomputed: the
        // entry names a key that was never written.
        edit_page(&path, leaf, |p| {
            let at = p
                .windows(4)
                .position(|w| w == b"key/")
                .expect("a key in the leaf");
            p[at + 2] = b'z';
        });
        let store = open(&path).unwrap();
        let msg = expect_corrupt(store.check(), "check() with a renamed log entry");
        assert!(msg.contains("has no stored version"), "{msg}");
        let _ = store.close();
    }
}

// ---------------------------------------------------------------------------------------------
// (d) truncation.
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_files() {
    let fx = fixture(1000);
    let len = fs::metadata(&fx.path).unwrap().len();
    let page_count = u64_at(&meta(&fx.path, PS, 0), 32);
    assert!(page_count * PS as u64 <= len);
    let cuts = [
        page_count * PS as u64 - 1, // the last page torn
        page_count * PS as u64 - PS as u64,
        len / 2,
        2 * PS as u64, // just the meta pages
        PS as u64 + 100,
        PS as u64, // slot 0 only
        300,
        255,
        100,
        8,
        3,
    ];
    for cut in cuts {
        let (_d, path) = copy_of(&fx.path);
        set_len(&path, cut);
        let r = open(&path);
        if cut >= 8 {
            let msg = expect_corrupt(r, &format!("truncated to {cut} bytes"));
            assert!(msg.contains("truncated"), "{cut}: {msg}");
        } else {
            // Three bytes do not even hold the magic number.
            expect_not_etch(r, &path, "truncated to 3 bytes");
        }
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            cut,
            "a refused open changed the file"
        );
    }
    // Documented: a 0-byte file is a new, empty store (etch creates files that way), so a file
    // truncated to nothing opens as an empty store at revision 1.
    let (_d, path) = copy_of(&fx.path);
    set_len(&path, 0);
    let store = open(&path).unwrap();
    assert_eq!(store.revision(), 1);
    assert_contents(&store, &Expected::new());
    store.close().unwrap();
}

#[test]
fn slack_after_the_last_page_is_ignored() {
    // Bytes beyond the meta's page count (a preallocated or partly extended file) are not data.
    let fx = fixture(500);
    let (_d, path) = copy_of(&fx.path);
    let len = fs::metadata(&path).unwrap().len();
    let junk: Vec<u8> = (0..3 * PS).map(|i| (i * 7 + 3) as u8).collect();
    write_at(&path, len, &junk);
    let store = open(&path).unwrap();
    assert_contents(&store, &fx.exp);
    let mut exp = fx.exp.clone();
    for i in 5000..5400 {
        store.put(key(i), value(i, 9)).unwrap();
        exp.insert(key(i).into_bytes(), value(i, 9));
    }
    assert_contents(&store, &exp);
    store.close().unwrap();
    assert_opens_with(&path, &exp, fx.rev + 400);
}

// ---------------------------------------------------------------------------------------------
// (e) files that are not etch files.
// ---------------------------------------------------------------------------------------------

struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn foreign_files_are_not_etch_files() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<u8> = "The quick brown fox jumps over the lazy dog.\n"
        .repeat(300)
        .into_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random 4 KiB", pseudo_random(4096, 1)),
        ("random 1 MiB", pseudo_random(1 << 20, 2)),
        ("random 100 bytes", pseudo_random(100, 3)),
        ("random 300 bytes", pseudo_random(300, 4)),
        ("zeros 4 KiB", vec![0u8; 4096]),
        ("zeros 1 MiB", vec![0u8; 1 << 20]),
        ("one byte", vec![b'e']),
        ("short text", b"hello, world\n".to_vec()),
        ("text 13 KB", text),
        ("a SQLite header", {
            let mut v = b"SQLite format 3\0".to_vec();
            v.resize(8192, 0);
            v
        }),
    ];
    for (what, bytes) in cases {
        let path = dir.path().join(what.replace(' ', "_"));
        fs::write(&path, &bytes).unwrap();
        expect_not_etch(open(&path), &path, what);
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "{what}: a refused open changed the file"
        );
        assert!(
            !wal_path(&path).exists(),
            "{what}: a refused open created a WAL"
        );
    }
}

#[test]
fn a_wal_file_is_not_a_database() {
    let img = crash_image(20);
    let wal = wal_path(&img.path);
    let before = fs::read(&wal).unwrap();
    expect_not_etch(open(&wal), &wal, "opening the WAL as a database");
    assert_eq!(fs::read(&wal).unwrap(), before);
}

#[test]
fn etch_magic_followed_by_garbage_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.etch");
    let mut bytes = b"etch\x00db\x1a".to_vec();
    bytes.extend(pseudo_random(3 * PS, 9));
    fs::write(&path, &bytes).unwrap();
    expect_corrupt(open(&path), "magic then garbage");
}

// ---------------------------------------------------------------------------------------------
// (f) the WAL: crash images.
// ---------------------------------------------------------------------------------------------

/// The state a crash would leave: the files of an open store, copied after some durable commits.
struct CrashImage {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// Contents after the checkpoint only.
    base: Expected,
    base_rev: i64,
    /// (key, value, revision) of each commit after the checkpoint: one WAL record each.
    tail: Vec<(String, Vec<u8>, i64)>,
}

impl CrashImage {
    /// Expected contents with the first `n` tail commits.
    fn with_tail(&self, n: usize) -> (Expected, i64) {
        let mut exp = self.base.clone();
        let mut rev = self.base_rev;
        for (k, v, r) in &self.tail[..n] {
            exp.insert(k.clone().into_bytes(), v.clone());
            rev = *r;
        }
        (exp, rev)
    }

    fn copy(&self) -> (tempfile::TempDir, PathBuf) {
        copy_of(&self.path)
    }
}

fn crash_image(tail: usize) -> CrashImage {
    let src = tempfile::tempdir().unwrap();
    let src_path = src.path().join("db.etch");
    let store = open(&src_path).unwrap();
    let base = fill(&store, 400);
    store.checkpoint().unwrap();
    let base_rev = store.revision();
    let mut commits = Vec::new();
    for i in 0..tail {
        let k = format!("tail/{i:03}");
        let v = format!("tail value {i} {}", "t".repeat(i * 13 % 200)).into_bytes();
        let r = store.put(&k, &v).unwrap().header_revision;
        assert_eq!(r, base_rev + 1 + i as i64);
        commits.push((k, v, r));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    // Every put above returned, so its record is durable; copying now sees what a SIGKILL would
    // leave behind (the page cache survives a process crash).
    fs::copy(&src_path, &path).unwrap();
    fs::copy(wal_path(&src_path), wal_path(&path)).unwrap();
    store.close().unwrap();
    CrashImage {
        _dir: dir,
        path,
        base,
        base_rev,
        tail: commits,
    }
}

/// A WAL frame found by walking the log as recovery does.
#[derive(Debug)]
struct Frame {
    off: u64,
    len: u64,
    plen: u64,
    seq: u64,
}

/// Walks the valid frames of the image's WAL, checking their checksums independently of etch.
fn wal_frames(path: &Path) -> Vec<Frame> {
    let m0 = meta(path, PS, 0);
    let m1 = meta(path, PS, 1);
    let m = if u64_at(&m1, 24) > u64_at(&m0, 24) && meta_crc_ok(&m1) {
        m1
    } else {
        m0
    };
    let db_id = u64_at(&m, 16);
    let mut seq = u64_at(&m, 136) + 1;
    let mut off = u64_at(&m, 152);
    let salt = u64_at(&m, 160);
    let wal = fs::read(wal_path(path)).unwrap();
    assert_eq!(&wal[0..8], b"etchwal\x1a");
    assert_eq!(u64_at(&wal, 16), db_id);
    let mut frames = Vec::new();
    loop {
        let o = off as usize;
        if o + 32 > wal.len() {
            break;
        }
        let h = &wal[o..o + 32];
        let plen = u32_at(h, 4) as usize;
        if u64_at(h, 8) != seq || h[24] != 1 || o + 32 + plen > wal.len() {
            break;
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&salt.to_le_bytes());
        hasher.update(&db_id.to_le_bytes());
        hasher.update(&h[4..32]);
        hasher.update(&wal[o + 32..o + 32 + plen]);
        if hasher.finalize() != u32_at(h, 0) {
            break;
        }
        let len = 32 + (plen as u64).next_multiple_of(8);
        frames.push(Frame {
            off,
            len,
            plen: plen as u64,
            seq,
        });
        off += len;
        seq += 1;
    }
    frames
}

#[test]
fn wal_crash_image_recovers_every_acked_commit() {
    let img = crash_image(10);
    assert_eq!(wal_frames(&img.path).len(), 10, "one record per commit");
    let (_d, path) = img.copy();
    let (exp, rev) = img.with_tail(10);
    assert_opens_with(&path, &exp, rev);
}

#[test]
fn wal_damaged_last_record_is_dropped() {
    let img = crash_image(10);
    let frames = wal_frames(&img.path);
    let last = frames.last().unwrap();
    // Payload, header checksum, and the sequence number of the last record.
    for off in [
        last.off + 40,
        last.off,
        last.off + 9,
        last.off + last.len - 9,
    ] {
        let (_d, path) = img.copy();
        xor_byte(&wal_path(&path), off, 0x02);
        let (exp, rev) = img.with_tail(9);
        assert_opens_with(&path, &exp, rev);
    }
}

#[test]
fn wal_damage_before_acknowledged_records_refuses_to_open() {
    // Each put below was acknowledged (synced) before the next one was appended, so a damaged
    // record followed by valid ones is damage, not a torn tail: the open fails with the typed
    // error, naming where, and leaves the WAL (and the main file) byte-for-byte untouched.
    let img = crash_image(10);
    let frames = wal_frames(&img.path);
    for (i, f) in frames.iter().enumerate().take(frames.len() - 1) {
        let (_d, path) = img.copy();
        xor_byte(&wal_path(&path), f.off + 33, 0x40);
        let wal_before = fs::read(wal_path(&path)).unwrap();
        let main_before = fs::read(&path).unwrap();
        for _ in 0..2 {
            match open(&path) {
                Err(Error::WalDamaged {
                    path: p,
                    offset,
                    last_good_seq,
                    records_after,
                }) => {
                    assert_eq!(p, wal_path(&path));
                    assert_eq!(offset, f.off, "record {i}");
                    assert_eq!(last_good_seq, f.seq - 1, "record {i}");
                    assert_eq!(records_after, (frames.len() - 1 - i) as u64, "record {i}");
                }
                Err(e) => panic!("record {i}: wrong error {e}"),
                Ok(s) => panic!("record {i}: opened at revision {}", s.revision()),
            }
            assert_eq!(fs::read(wal_path(&path)).unwrap(), wal_before, "record {i}");
            assert_eq!(fs::read(&path).unwrap(), main_before, "record {i}");
        }
    }
}

#[test]
fn wal_repair_keeps_a_copy_and_recovers_up_to_the_damage() {
    let img = crash_image(10);
    let frames = wal_frames(&img.path);
    for (i, f) in frames.iter().enumerate().take(frames.len() - 1) {
        let (_d, path) = img.copy();
        xor_byte(&wal_path(&path), f.off + 33, 0x40);
        let damaged = fs::read(wal_path(&path)).unwrap();
        let (mut exp, rev) = img.with_tail(i);
        let store = Options::new()
            .wal_capacity(1 << 20)
            .repair_wal(true)
            .open(&path)
            .unwrap();
        let repair = store.wal_repair().expect("a repair report").clone();
        assert_eq!(repair.damage.offset, f.off);
        assert_eq!(repair.damage.last_good_seq, f.seq - 1);
        assert_eq!(repair.damage.records_after, (frames.len() - 1 - i) as u64);
        let mut copy_name = wal_path(&path).into_os_string();
        copy_name.push(".damaged");
        assert_eq!(repair.copy, PathBuf::from(copy_name));
        assert_eq!(
            fs::read(&repair.copy).unwrap(),
            damaged,
            "the copy is the damaged WAL"
        );
        assert_eq!(store.revision(), rev, "recovered up to record {i}");
        assert_contents(&store, &exp);
        // The store goes on from the cut: the next revision follows it, and no dropped record
        // comes back later (not after a clean close, and not after another crash).
        let r = store.put("after-cut", "x").unwrap().header_revision;
        assert_eq!(r, rev + 1);
        exp.insert(b"after-cut".to_vec(), b"x".to_vec());
        let (_d2, image2) = copy_of(&path);
        assert_opens_with(&image2, &exp, rev + 1);
        store.close().unwrap();
        assert_opens_with(&path, &exp, rev + 1);
        // An open without damage reports no repair.
        assert!(open(&path).unwrap().wal_repair().is_none());
    }
}

#[test]
fn wal_byte_flips_anywhere_recover_everything_or_refuse() {
    // A byte flipped anywhere in a WAL of acknowledged records: the open either recovers every
    // record, or refuses with WalDamaged and changes nothing. The one exception is the newest
    // record: no later frame witnesses that it was durable, so damage to it reads as a torn
    // tail and it alone is dropped (docs/design.md, "Damage or torn tail").
    let img = crash_image(40);
    let frames = wal_frames(&img.path);
    let last = frames.last().unwrap();
    let (all, all_rev) = img.with_tail(frames.len());
    let (but_last, but_last_rev) = img.with_tail(frames.len() - 1);
    let (mut recovered, mut refused, mut torn) = (0, 0, 0);
    let mut at = frames[0].off;
    while at < last.off + last.len {
        let (_d, path) = img.copy();
        xor_byte(&wal_path(&path), at, 0x21);
        let wal_before = fs::read(wal_path(&path)).unwrap();
        match open(&path) {
            Ok(store) if store.revision() == all_rev => {
                assert_contents(&store, &all);
                recovered += 1;
            }
            Ok(store) => {
                assert!(
                    at >= last.off,
                    "offset {at}: silent drop to {}",
                    store.revision()
                );
                assert_eq!(store.revision(), but_last_rev);
                assert_contents(&store, &but_last);
                torn += 1;
            }
            Err(Error::WalDamaged { records_after, .. }) => {
                assert!(records_after > 0);
                assert_eq!(fs::read(wal_path(&path)).unwrap(), wal_before);
                refused += 1;
            }
            Err(e) => panic!("offset {at}: {e}"),
        }
        at += 61;
    }
    assert!(refused > 50 && torn > 0, "{recovered} {refused} {torn}");
}

#[test]
fn wal_torn_tail_and_trailing_garbage_are_ignored() {
    let img = crash_image(10);
    let frames = wal_frames(&img.path);
    let last = frames.last().unwrap();
    let end = last.off + last.len;
    let (all, all_rev) = img.with_tail(10);
    let (nine, nine_rev) = img.with_tail(9);

    // Garbage right after the last record, inside the preallocated file.
    let (_d, path) = img.copy();
    write_at(&wal_path(&path), end, &pseudo_random(5000, 5));
    assert_opens_with(&path, &all, all_rev);

    // A plausible-looking frame header after the last record: right sequence number, bad crc.
    let (_d, path) = img.copy();
    let mut h = [0u8; 64];
    h[4..8].copy_from_slice(&16u32.to_le_bytes());
    h[8..16].copy_from_slice(&(last.seq + 1).to_le_bytes());
    h[24] = 1;
    write_at(&wal_path(&path), end, &h);
    assert_opens_with(&path, &all, all_rev);

    // Garbage appended beyond the end of the WAL file.
    let (_d, path) = img.copy();
    let wlen = fs::metadata(wal_path(&path)).unwrap().len();
    write_at(&wal_path(&path), wlen, &pseudo_random(3001, 6));
    assert_opens_with(&path, &all, all_rev);

    // Torn last record: the second half of it never reached the disk.
    let (_d, path) = img.copy();
    let half = last.off + last.len / 2;
    write_at(&wal_path(&path), half, &vec![0u8; (end - half) as usize]);
    assert_opens_with(&path, &nine, nine_rev);

    // The WAL file cut in the middle of the last record (or of its header).
    for cut in [last.off + last.len - 5, last.off + 20] {
        let (_d, path) = img.copy();
        set_len(&wal_path(&path), cut);
        assert_opens_with(&path, &nine, nine_rev);
    }
}

#[test]
fn wal_of_another_database_is_refused() {
    let img = crash_image(5);
    let other = crash_image(5);
    let (_d, path) = img.copy();
    fs::copy(wal_path(&other.path), wal_path(&path)).unwrap();
    let before = fs::read(wal_path(&path)).unwrap();
    let msg = expect_corrupt(open(&path), "WAL of another database");
    assert!(msg.contains("different database"), "{msg}");
    assert_eq!(
        fs::read(wal_path(&path)).unwrap(),
        before,
        "the refused WAL was changed"
    );
}

#[test]
fn wal_header_damage_is_refused() {
    let img = crash_image(5);
    for off in [0u64, 9, 17, 25] {
        let (_d, path) = img.copy();
        xor_byte(&wal_path(&path), off, 0x08);
        let msg = expect_corrupt(open(&path), &format!("WAL header byte {off} damaged"));
        assert!(msg.contains("WAL"), "{msg}");
    }
    // A WAL written by a newer etch (valid header checksum).
    let (_d, path) = img.copy();
    let w = wal_path(&path);
    let mut h = read_at(&w, 0, 28);
    h[8..12].copy_from_slice(&7u32.to_le_bytes());
    let crc = crc32fast::hash(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    write_at(&w, 0, &h);
    let msg = expect_corrupt(open(&path), "WAL from a newer etch");
    assert!(msg.contains("newer"), "{msg}");
}

#[test]
fn wal_that_never_held_records() {
    // Documented: a WAL whose header is all zeros (created, never initialised), or shorter than
    // one frame, holds nothing that could have been acknowledged, and is ignored.
    let fx = fixture(200);
    for len in [0usize, 100, 4096, 1 << 20] {
        let (_d, path) = copy_of(&fx.path);
        fs::write(wal_path(&path), vec![0u8; len]).unwrap();
        assert_opens_with(&path, &fx.exp, fx.rev);
        assert!(!wal_path(&path).exists());
    }
}

#[test]
fn stale_wal_from_an_earlier_generation_is_not_replayed() {
    // After a checkpoint the WAL starts a new generation (new salt, sequence continues). A WAL
    // left over from before that checkpoint must not be replayed on top of the newer file.
    let src = tempfile::tempdir().unwrap();
    let src_path = src.path().join("db.etch");
    let store = open(&src_path).unwrap();
    let mut exp = fill(&store, 200);
    for i in 0..5 {
        store.put(format!("gen1/{i}"), format!("old {i}")).unwrap();
        exp.insert(
            format!("gen1/{i}").into_bytes(),
            format!("old {i}").into_bytes(),
        );
    }
    let old_wal = fs::read(wal_path(&src_path)).unwrap();
    store.checkpoint().unwrap();
    let rev = store.revision();
    // Overwrite the same keys in the new generation, then copy the main file only.
    for i in 0..5 {
        store.put(format!("gen1/{i}"), format!("new {i}")).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    fs::copy(&src_path, &path).unwrap();
    fs::write(wal_path(&path), &old_wal).unwrap();
    store.close().unwrap();
    // The new generation's records are gone with its WAL; the old ones must not come back.
    assert_opens_with(&path, &exp, rev);
}

#[test]
fn torn_meta_write_during_a_checkpoint_with_a_wal() {
    // Slot 0 torn while a checkpoint rewrote it: slot 1 (the previous checkpoint) plus the WAL
    // still hold every acked commit.
    let img = crash_image(10);
    let (exp, rev) = img.with_tail(10);
    let (_d, path) = img.copy();
    xor_byte(&path, 130, 0xff);
    assert_opens_with(&path, &exp, rev);
}

#[test]
fn damaged_tree_page_in_a_crash_image_fails_recovery_cleanly() {
    // Recovery replays WAL records through the tree: a damaged page on that path is a typed
    // error from open, not a panic and not a silently partial store.
    let img = crash_image(10);
    let root = u64_at(&meta(&img.path, PS, 0), 56);
    let (_d, path) = img.copy();
    xor_byte(&path, root * PS as u64 + 2000, 0x10);
    let msg = expect_corrupt(open(&path), "replay through a damaged root");
    assert!(msg.contains(&format!("page {root}")), "{msg}");
    // The failed open left the WAL in place: repairing the page would recover everything.
    assert!(wal_path(&path).exists());
    xor_byte(&path, root * PS as u64 + 2000, 0x10);
    let (exp, rev) = img.with_tail(10);
    assert_opens_with(&path, &exp, rev);
}

// ---------------------------------------------------------------------------------------------
// Randomised single-byte damage.
// ---------------------------------------------------------------------------------------------

/// Seed for the randomised tests: `ETCH_CORRUPTION_SEED`, or fixed (they are cheap and
/// deterministic, and the offsets they hit are printed on failure).
fn fuzz_seed() -> u64 {
    std::env::var("ETCH_CORRUPTION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_e7c4)
}

#[test]
fn random_byte_flips_in_the_file_never_give_a_wrong_answer() {
    let fx = fixture(600);
    let len = fs::metadata(&fx.path).unwrap().len();
    let mut rng = Xorshift(fuzz_seed() | 1);
    let mut next = || rng.next();
    let mut outcomes = BTreeMap::<&str, usize>::new();
    for _ in 0..250 {
        // Half of the flips land in the meta pages' first 256 bytes.
        let off = if next() % 2 == 0 {
            (next() % 2) * PS as u64 + next() % 256
        } else {
            next() % len
        };
        let mask = (next() % 255 + 1) as u8;
        let what = format!("byte {off} (page {}) ^= {mask:#04x}", off / PS as u64);
        let (_d, path) = copy_of(&fx.path);
        xor_byte(&path, off, mask);
        let store = match open(&path) {
            Ok(s) => s,
            Err(Error::Corrupt(_)) if off >= 2 * PS as u64 => {
                *outcomes.entry("open: Corrupt").or_default() += 1;
                continue;
            }
            Err(e) => panic!("{what}: open failed: {e:?}"),
        };
        if off < 2 * PS as u64 {
            // One meta slot damaged (or an unused byte of a meta page): nothing is lost.
            assert_eq!(store.revision(), fx.rev, "{what}");
            store
                .check()
                .unwrap_or_else(|e| panic!("{what}: check: {e:?}"));
            assert_eq!(reads_are_right_or_corrupt(&store, &fx.exp), 0, "{what}");
            *outcomes.entry("meta page: recovered").or_default() += 1;
        } else {
            let failed = reads_are_right_or_corrupt(&store, &fx.exp);
            match store.check() {
                // check() must see every damage a read can see.
                Ok(_) => assert_eq!(failed, 0, "{what}: reads failed but check() passed"),
                Err(Error::Corrupt(_)) => {}
                Err(e) => panic!("{what}: check: untyped {e:?}"),
            }
            *outcomes
                .entry(if failed > 0 {
                    "reads: some Corrupt"
                } else {
                    "reads: all right"
                })
                .or_default() += 1;
        }
        let _ = store.close();
    }
    println!("outcomes: {outcomes:?}");
}

#[test]
fn random_byte_flips_in_the_wal_recover_all_or_refuse() {
    // A flip inside record j, when later records witness that j was durable (every record but
    // the last here), is refused as WalDamaged; a flip inside the last record drops just it (a
    // torn tail, as far as anything on disk can tell); a flip in a record's zero padding (not
    // checksummed, never read) or after the last record changes nothing; a flip in the header's
    // checksummed bytes is refused.
    let img = crash_image(12);
    let frames = wal_frames(&img.path);
    let end = frames.last().map(|f| f.off + f.len).unwrap();
    let mut rng = Xorshift(fuzz_seed() ^ 1 | 1);
    let mut next = || rng.next();
    for _ in 0..200 {
        let off = match next() % 4 {
            0 => next() % 64,
            _ => 4096 + next() % (end + 256 - 4096),
        };
        let mask = (next() % 255 + 1) as u8;
        let (_d, path) = img.copy();
        xor_byte(&wal_path(&path), off, mask);
        let what = format!("WAL byte {off} ^= {mask:#04x}");
        let expect_records = match frames
            .iter()
            .position(|f| off >= f.off && off < f.off + f.len)
        {
            Some(j) if off >= frames[j].off + 32 + frames[j].plen => frames.len(),
            Some(j) => j,
            None => frames.len(),
        };
        if off < 28 {
            expect_corrupt(open(&path), &what);
            continue;
        }
        if expect_records + 1 < frames.len() {
            match open(&path) {
                Err(Error::WalDamaged { last_good_seq, .. }) => {
                    assert_eq!(last_good_seq, frames[expect_records].seq - 1, "{what}")
                }
                Err(e) => panic!("{what}: wrong error {e:?}"),
                Ok(s) => panic!("{what}: opened at revision {}", s.revision()),
            }
            continue;
        }
        let store = open(&path).unwrap_or_else(|e| panic!("{what}: open: {e:?}"));
        let (exp, rev) = img.with_tail(expect_records);
        assert_eq!(store.revision(), rev, "{what}");
        store
            .check()
            .unwrap_or_else(|e| panic!("{what}: check: {e:?}"));
        assert_eq!(reads_are_right_or_corrupt(&store, &exp), 0, "{what}");
        store.close().unwrap();
    }
}
