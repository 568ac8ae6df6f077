//! compaction, defrag, status, check and snapshot save | restore | status.

use crate::common;

use common::Env;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// 50 keys of 500 bytes, written in one batch at revision 2.
fn filled() -> Env {
    use base64::Engine as _;
    let e = Env::new();
    let b = base64::engine::general_purpose::STANDARD;
    let lines: String = (0..50)
        .map(|i| {
            format!(
                "{{\"key\":\"{}\",\"value\":\"{}\"}}\n",
                b.encode(format!("k{i:02}")),
                b.encode("v".repeat(500))
            )
        })
        .collect();
    std::fs::write(e.path("fill.jsonl"), lines).unwrap();
    e.ok(&["import", "fill.jsonl"]);
    e
}

#[test]
fn compaction_discards_history() {
    let e = Env::new();
    for i in 0..10 {
        e.ok(&["put", "k00", &i.to_string()]); // revisions 2..=11
    }
    assert_eq!(e.ok(&["compaction", "6"]), "compacted revision 6\n");
    assert_eq!(
        e.fails(&["get", "k00", "--rev", "4"], 1),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );
    assert_eq!(
        e.ok(&["get", "k00", "--rev", "6", "--print-value-only"]),
        "4\n"
    );
    assert!(e.fails(&["compaction", "5"], 1).contains("compacted"));
    assert!(e.fails(&["compaction", "999"], 1).contains("future"));
    e.fails(&["compaction", "x"], 128);
    // etcdctl prints the same line in every format.
    assert_eq!(
        e.ok(&["compaction", "8", "--physical", "-w", "json"]),
        "compacted revision 8\n"
    );
    assert_eq!(json(&e.ok(&["status", "-w", "json"]))["compactRevision"], 8);
}

#[test]
fn defrag_shrinks_the_file_and_keeps_the_data() {
    let e = filled();
    e.ok(&["del", "k", "--prefix"]);
    let rev = json(&e.ok(&["status", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .unwrap();
    e.ok(&["compaction", &rev.to_string()]);
    e.ok(&["put", "keep", "me"]);
    let out = e.ok(&["defrag"]);
    assert!(
        out.starts_with(&format!(
            "Finished defragmenting etch file[{}]",
            e.db.display()
        )),
        "{out}"
    );
    let v = json(&e.ok(&["defrag", "-w", "json"]));
    assert!(v["sizeAfter"].as_u64().unwrap() <= v["sizeBefore"].as_u64().unwrap());
    assert_eq!(e.ok(&["get", "keep", "--print-value-only"]), "me\n");
    e.ok(&["check"]);
}

#[test]
fn status_in_every_format() {
    let e = filled();
    let simple = e.ok(&["status"]);
    let cols: Vec<&str> = simple.trim_end().split(", ").collect();
    assert_eq!(cols.len(), 10, "{simple}");
    assert_eq!(cols[0], e.db.display().to_string());
    assert_eq!(cols[5], "2"); // revision
    assert_eq!(cols[7], "50"); // keys
    let v = json(&e.ok(&["status", "-w", "json"]));
    assert_eq!(v["header"]["revision"], 2);
    assert_eq!(v["keys"], 50);
    assert!(v["dbSize"].as_u64().unwrap() > 0);
    let table = e.ok(&["status", "-w", "table"]);
    assert!(table.lines().nth(1).unwrap().contains("DB SIZE"), "{table}");
    let fields = e.ok(&["status", "-w", "fields"]);
    assert!(
        fields.starts_with("\"Revision\" : 2\n\"Path\" : "),
        "{fields}"
    );
    assert!(fields.contains("\"Keys\" : 50\n"), "{fields}");
}

#[test]
fn check_passes_on_an_intact_file_and_fails_on_damage() {
    let e = filled();
    let out = e.ok(&["check"]);
    assert!(out.contains(": OK (50 keys"), "{out}");
    assert_eq!(json(&e.ok(&["check", "-w", "json"]))["keys"], 50);
    // Damage one byte inside every tree page (header kind 1 or 2 at byte 4, its own id at
    // byte 8; pages 0 and 1 are the meta slots): the walk must hit a bad checksum.
    let mut bytes = std::fs::read(&e.db).unwrap();
    let ps = 4096;
    let mut damaged = 0;
    for id in 2..bytes.len() / ps {
        let page = &mut bytes[id * ps..(id + 1) * ps];
        let own = u64::from_le_bytes(page[8..16].try_into().unwrap());
        if matches!(page[4], 1 | 2) && own == id as u64 {
            page[ps / 2] ^= 0xa5;
            damaged += 1;
        }
    }
    assert!(damaged > 0);
    std::fs::write(&e.db, bytes).unwrap();
    let r = e.run(&["check"]);
    assert_ne!(r.code, 0, "check passed a damaged file: {}", r.stdout);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("Error: "), "{}", r.stderr);
    assert!(r.stderr.contains("check failed: corrupt"), "{}", r.stderr);
}

#[test]
fn snapshot_save_status_restore() {
    let e = filled();
    let snap = e.path("backup.etch");
    let snap_s = snap.to_str().unwrap();
    assert_eq!(
        e.ok(&["snapshot", "save", snap_s]),
        format!("Snapshot saved at {snap_s}\n")
    );
    // The file must not exist yet.
    e.fails(&["snapshot", "save", snap_s], 1);
    let before = std::fs::read(&snap).unwrap();
    let status = e.ok(&["snapshot", "status", snap_s]);
    let cols: Vec<&str> = status.trim_end().split(", ").collect();
    assert_eq!(cols.len(), 4, "{status}");
    assert_eq!((cols[1], cols[2]), ("2", "50"));
    let v = json(&e.ok(&["snapshot", "status", snap_s, "-w", "json"]));
    assert_eq!(v["revision"], 2);
    assert_eq!(v["totalKey"], 50);
    assert_eq!(v["totalSize"], before.len() as u64);
    assert_eq!(
        u64::from_str_radix(cols[0], 16).unwrap(),
        v["hash"].as_u64().unwrap()
    );
    let table = e.ok(&["snapshot", "status", snap_s, "-w", "table"]);
    assert!(table.contains("TOTAL KEYS"), "{table}");
    assert_eq!(
        std::fs::read(&snap).unwrap(),
        before,
        "status must only read the snapshot"
    );

    let out = e.path("restored.etch");
    let out_s = out.to_str().unwrap();
    let msg = e.ok(&["snapshot", "restore", snap_s, "--output", out_s]);
    assert_eq!(
        msg,
        format!("Restored snapshot {snap_s} to {out_s} at revision 2\n")
    );
    let restored = Env {
        dir: tempfile::tempdir().unwrap(),
        db: out.clone(),
        endpoints: None,
    };
    assert_eq!(restored.ok(&["get", "k07", "--keys-only"]), "k07\n\n");
    assert_eq!(
        restored.ok(&["get", "", "--prefix", "--count-only"]),
        "50\n"
    );
    // etcdutl's flag name works too.
    let other = e.path("other.etch");
    e.ok(&[
        "snapshot",
        "restore",
        snap_s,
        "--data-dir",
        other.to_str().unwrap(),
    ]);
    assert!(other.exists());
    // Restoring over an existing file, from a missing or a non-etch file: errors.
    e.fails(&["snapshot", "restore", snap_s, "--output", out_s], 1);
    assert!(e
        .fails(&["snapshot", "status", "nope.etch"], 1)
        .contains("no such snapshot"));
    e.fails(
        &["snapshot", "restore", "nope.etch", "--output", "x.etch"],
        1,
    );
    std::fs::write(e.path("junk"), vec![7u8; 20000]).unwrap();
    e.fails(&["snapshot", "status", e.path("junk").to_str().unwrap()], 1);
    e.fails(&["snapshot", "restore", snap_s], 128);
}
