//! lease grant | revoke | timetolive | list | keep-alive, with hex ids in and out.

use crate::common;

use common::{Env, Running};

fn grant(e: &Env, ttl: &str) -> String {
    let out = e.ok(&["lease", "grant", ttl]);
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(out, format!("lease {id} granted with TTL({ttl}s)\n"));
    assert_eq!(id.len(), 16);
    id
}

#[test]
fn grant_list_timetolive_revoke() {
    let e = Env::new();
    let id = grant(&e, "100");
    e.ok(&["put", "a", "1", "--lease", &id]);
    e.ok(&["put", "b", "2", "--lease", &id]);
    assert_eq!(e.ok(&["lease", "list"]), format!("found 1 leases\n{id}\n"));
    let ttl = e.ok(&["lease", "timetolive", &id]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(100s), remaining(")),
        "{ttl}"
    );
    let ttl = e.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(ttl.ends_with(", attached keys([a b])\n"), "{ttl}");
    // etcdctl accepts the id without leading zeros too, and a 0x prefix is fine.
    let short = id.trim_start_matches('0');
    assert_eq!(
        e.ok(&["lease", "revoke", &format!("0x{short}")]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(e.ok(&["get", "", "--prefix", "--count-only"]), "0\n");
    assert_eq!(
        e.ok(&["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    assert_eq!(e.ok(&["lease", "list"]), "found 0 leases\n");
    // etcd's text, wrapped as etcdctl wraps it.
    let err = e.fails(&["lease", "revoke", &id], 1);
    assert_eq!(
        err,
        "Error: failed to revoke lease (etcdserver: requested lease not found)\n"
    );
}

#[test]
fn json_ids_are_numbers_or_strings_with_string_ids() {
    let e = Env::new();
    let v: serde_json::Value =
        serde_json::from_str(&e.ok(&["lease", "grant", "30", "-w", "json"])).unwrap();
    let id = v["ID"].as_i64().expect("ID is a number");
    assert_eq!(v["TTL"], 30);
    assert_eq!(v["Error"], "");
    let hex = format!("{id:016x}");
    let v: serde_json::Value =
        serde_json::from_str(&e.ok(&["lease", "timetolive", &hex, "-w", "json"])).unwrap();
    assert_eq!(v["id"].as_i64(), Some(id));
    assert_eq!(v["granted-ttl"], 30);
    assert_eq!(v["keys"], serde_json::Value::Null);
    let v: serde_json::Value =
        serde_json::from_str(&e.ok(&["lease", "list", "-w", "json"])).unwrap();
    assert_eq!(v["leases"][0]["id"].as_i64(), Some(id));
    let out = e.ok(&["lease", "list", "-w", "json", "--string-ids"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["leases"][0]["id"], id.to_string());
    let fields = e.ok(&["lease", "list", "-w", "fields"]);
    assert!(fields.ends_with(&format!("\"ID\" : {id}\n")), "{fields}");
}

#[test]
fn bad_ids_and_ttls() {
    let e = Env::new();
    e.ok(&["lease", "grant", "5"]);
    assert!(e
        .fails(&["lease", "revoke", "not-hex"], 128)
        .contains("Hex"));
    e.fails(&["lease", "timetolive", "-5"], 128);
    e.fails(&["lease", "grant", "ten"], 128);
    assert!(e.fails(&["lease", "grant", "0"], 1).contains("TTL"));
    // etcdctl exits 2 when the single renewal fails.
    assert_eq!(
        e.fails(&["lease", "keep-alive", "--once", "123"], 2),
        "Error: etcdserver: requested lease not found\n"
    );
}

#[test]
fn keep_alive_once_and_until_interrupted() {
    let e = Env::new();
    let id = grant(&e, "3");
    assert_eq!(
        e.ok(&["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(3)\n")
    );
    // Renewing every TTL/3 keeps a 3 s lease alive past its TTL.
    let k = Running::spawn(e.cmd(&["lease", "keep-alive", &id]));
    let first = k.line(5);
    assert_eq!(first, format!("lease {id} keepalived with TTL(3)"));
    let started = std::time::Instant::now();
    let mut renewals = 0;
    while started.elapsed() < std::time::Duration::from_millis(3500) {
        assert_eq!(k.line(5), first);
        renewals += 1;
    }
    assert!(renewals >= 3, "{renewals}");
    k.signal("TERM");
    assert_eq!(k.wait(10), Some(0));
    assert!(e.ok(&["lease", "list"]).contains(&id));
}
