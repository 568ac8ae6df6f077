//! The free list an open reads: checkpoints write it in ascending order, which the open takes as
//! proof that no page is listed twice; a list in any other order is sorted and checked instead.
//! These tests edit a closed file's free list (re-sealing the page's checksum, so that only the
//! list's content is wrong) and hold the open to both paths.

use std::path::Path;

use etch_engine::{Error, Store};

const PAGE: usize = 4096;
/// Bytes before a free-list page's ids (the common page header).
const HEADER: usize = 24;

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A closed store whose free list holds pages (overwrites, then a compaction, free the old
/// versions' pages); returns the id of the free list's first page.
fn store_with_free_pages(path: &Path) -> u64 {
    let db = Store::open(path).unwrap();
    let value = vec![7u8; 600];
    for round in 0..3 {
        for i in 0..400 {
            db.put(format!("key/{i:04}"), [&value[..], &[round]].concat())
                .unwrap();
        }
    }
    db.compact(db.revision()).unwrap();
    db.checkpoint().unwrap();
    db.close().unwrap();
    let file = std::fs::read(path).unwrap();
    // The newest meta is in both slots after a close; its free-list head is at byte 40.
    let head = u64_at(&file, 40);
    assert_ne!(head, 0, "the store has no free list");
    let page = &file[head as usize * PAGE..][..PAGE];
    let count = u16::from_le_bytes([page[6], page[7]]) as usize;
    assert!(count >= 3, "the first free-list page lists {count} ids");
    head
}

/// Applies `edit` to the ids of free-list page `id` and re-seals its checksum.
fn edit_ids(path: &Path, id: u64, edit: impl FnOnce(&mut [u64])) {
    let mut file = std::fs::read(path).unwrap();
    let page = &mut file[id as usize * PAGE..][..PAGE];
    let count = u16::from_le_bytes([page[6], page[7]]) as usize;
    let mut ids: Vec<u64> = (0..count).map(|j| u64_at(page, HEADER + 8 * j)).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "a checkpoint wrote the list out of order"
    );
    edit(&mut ids);
    for (j, v) in ids.iter().enumerate() {
        page[HEADER + 8 * j..HEADER + 8 * j + 8].copy_from_slice(&v.to_le_bytes());
    }
    let crc = crc32fast::hash(&page[4..]);
    page[..4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, file).unwrap();
}

#[test]
fn a_page_listed_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let head = store_with_free_pages(&path);
    edit_ids(&path, head, |ids| ids[1] = ids[0]);
    match Store::open(&path) {
        Err(Error::Open { .. }) | Err(Error::Corrupt(_)) => {}
        other => panic!("a free list listing a page twice opened: {:?}", other.err()),
    }
    // Twice but not adjacent, so the list is out of order too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let head = store_with_free_pages(&path);
    edit_ids(&path, head, |ids| ids[2] = ids[0]);
    let err = Store::open(&path).err().expect("opened");
    assert!(err.to_string().contains("twice"), "unexpected error: {err}");
}

#[test]
fn a_list_out_of_order_but_sound_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.etch");
    let head = store_with_free_pages(&path);
    edit_ids(&path, head, |ids| ids.swap(0, 1));
    let db = Store::open(&path).unwrap();
    db.check().unwrap();
    for i in 0..400 {
        db.put(format!("new/{i:04}"), vec![1u8; 600]).unwrap();
    }
    db.check().unwrap();
    db.close().unwrap();
}
