//! The README's main job: open `./quickstart.etch`, write, read at two revisions, range a
//! prefix, print status. Run with `cargo run --release --example quickstart`.

use std::time::Duration;

use etch::{Compare, CompareOp, PutOp, Range, RangeOptions, Store, Txn, TxnOp};

fn main() -> Result<(), etch::Error> {
    let db = Store::open("quickstart.etch")?;
    println!("opened quickstart.etch at revision {}", db.revision());

    let first = db.put("config/mode", "fast")?.header_revision;
    db.put("config/mode", "safe")?;
    for (i, host) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
        db.put(format!("svc/api/{i}"), host)?;
    }
    println!("wrote 5 keys; revision is now {}", db.revision());

    let now = db.get("config/mode")?.expect("just written");
    let then = db.range_with(
        &Range::key("config/mode"),
        &RangeOptions {
            revision: first,
            ..Default::default()
        },
    )?;
    println!(
        "config/mode = {:?} (version {}), and at revision {first} it was {:?}",
        String::from_utf8_lossy(&now.value),
        now.version,
        String::from_utf8_lossy(&then.kvs[0].value)
    );

    let services = db.range(Range::prefix("svc/api/"))?;
    println!("{} keys under svc/api/:", services.count);
    for kv in &services.kvs {
        println!(
            "  {} = {} (created at {}, modified at {})",
            String::from_utf8_lossy(&kv.key),
            String::from_utf8_lossy(&kv.value),
            kv.create_revision,
            kv.mod_revision
        );
    }

    // Watch a prefix from now on, while a lease-bound key comes and goes.
    let mut watcher = db.watch(Range::prefix("session/"))?;
    let lease = db.lease_grant(60, 0)?;
    db.put_with(PutOp {
        key: b"session/alice".to_vec(),
        value: b"online".to_vec(),
        lease: lease.id,
        ..Default::default()
    })?;
    let ttl = db.lease_time_to_live(lease.id, true)?;
    println!(
        "lease {:x}: {} s left, keys {:?}",
        lease.id,
        ttl.ttl,
        ttl.keys
            .iter()
            .map(|k| String::from_utf8_lossy(k))
            .collect::<Vec<_>>()
    );
    db.lease_revoke(lease.id)?; // expiry would do the same after 60 s without keep-alive
    while let Some(resp) = watcher.recv_timeout(Duration::from_secs(1))? {
        for ev in &resp.events {
            println!(
                "watch: {:?} {} at revision {}",
                ev.kind,
                String::from_utf8_lossy(&ev.kv.key),
                ev.kv.mod_revision
            );
        }
        if db.get("session/alice")?.is_none() && resp.header_revision >= db.revision() {
            break;
        }
    }

    // Compare-and-swap: only the first claimant becomes leader.
    for who in ["node-a", "node-b"] {
        let claim = Txn::new()
            .when([Compare::version("election/leader", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("election/leader", who)]);
        let won = db.txn(claim)?.succeeded;
        println!(
            "{who} claims leadership: {}",
            if won { "won" } else { "lost" }
        );
    }

    let removed = db.delete_range(Range::prefix("svc/api/"), false)?;
    println!(
        "deleted {} keys at revision {}",
        removed.deleted, removed.header_revision
    );

    db.compact(removed.header_revision)?;
    println!(
        "compacted history before revision {}",
        removed.header_revision
    );

    let report = db.check()?;
    let status = db.status()?;
    println!(
        "status: revision {}, {} live keys, file {} bytes ({} in use), WAL {} bytes; check: {} tree pages ok",
        status.revision, status.key_count, status.file_size, status.size_in_use, status.wal_size, report.tree_pages
    );
    db.close()?;
    println!("closed cleanly: quickstart.etch is one file again");
    Ok(())
}
