//! The same script through etcdctl 3.4 against a real etcd, and through `etch --db FILE`: after
//! removing what only a server has, stdout, stderr and the exit code must be equal.
//!
//! Run twice more in client mode: etcdctl and `etch --endpoints` each against their own fresh
//! `etch serve` (both advertising the same URL, so ids, revisions and headers compare exactly),
//! and each against their own real etcd (ids stripped as above). In client mode the two servers'
//! ports are masked as `<endpoint>`, and the cluster commands (member list, alarms, endpoint
//! health, defrag) are compared too; snapshot status is not (etcdctl reads bbolt files only).
//!
//! And once with etch on both sides: `etch --db FILE` against `etch --endpoints` talking to an
//! `etch serve`, so each command prints the same in file mode and client mode.
//!
//! What is normalised away, and why:
//! - `cluster_id`, `member_id` and `raft_term` (JSON) and the `ClusterID`, `MemberID` and
//!   `RaftTerm` lines (fields output): a file has no cluster, member or Raft term.
//! - etcdctl's client log lines on stderr (JSON objects from its gRPC retry logger): they are
//!   diagnostics of the network client, printed before the `Error: ...` line scripts read.
//! - Lease ids: both sides pick random ids. Each side's n-th granted lease becomes `<lease-n>`
//!   in hex and decimal, and `{Ln}` in a command stands for that side's own id.
//! - Remaining lease TTLs count down in real time: checked to lie within the granted TTL and a
//!   generous margin below it, then replaced. A lease's keys, which etcd lists in its map's
//!   random order, are compared sorted; so is `lease list` by lease name.
//! - Lock and election keys end in their session's lease id: masked.
//! - Snapshot hash, key count and size describe etcd's bbolt file (its buckets and pages),
//!   not the key space: only their presence and the revision are compared.
//! - `endpoint status` describes a server (member id, leader, raft term, its address): its
//!   shapes are compared (columns, JSON fields, field names, the revision).
//! - Tables are compared by column names and alignment, since widths follow the values.
//! - Files are named relative to each side's own working directory.
//!
//! Not compared, because etch differs on purpose (see the README's CLI section): `get
//! --count-only` (etcdctl 3.5's flag, absent from 3.4), `-w table` for put, get, del, txn and
//! the lease commands (3.4 runs the request, then fails with "table not supported as output
//! format", exit 4; etch prints a table or, as etcdctl 3.5, the simple output),
//! `lease grant 0` (etcd raises it to its minimum TTL; etch refuses it), `watch --rev -1` (etcd
//! treats it as a compacted revision), the exit status of `lock -- COMMAND` and
//! `$ETCD_WATCH_REVISION` of `watch -- COMMAND`, and argument-syntax errors (cobra's usage
//! text).

#[path = "../common/mod.rs"]
mod common;
mod masks;
mod pair;

use masks::*;
use pair::{Outcome, Pair, Side};
use serde_json::Value;

#[test]
fn etcdctl_and_etch_print_the_same() {
    let Some(p) = Pair::new() else { return };
    script(p);
}

/// Client mode: `etch --endpoints` against `etch serve` prints what etcdctl prints against
/// another `etch serve` with the same history, header fields included.
#[test]
fn etcdctl_and_etch_client_print_the_same() {
    let Some(p) = Pair::client() else { return };
    script(p);
}

/// Client mode against real etcd 3.4: `etch --endpoints` prints what etcdctl prints.
#[test]
fn etcdctl_and_etch_client_of_etcd_print_the_same() {
    let Some(p) = Pair::client_of_etcd() else {
        return;
    };
    script(p);
}

/// etch with itself: the same script through `etch --db FILE` and through `etch --endpoints`
/// against `etch serve` prints the same (issue: one CLI, two modes).
#[test]
fn etch_file_mode_and_client_mode_print_the_same() {
    let Some(p) = Pair::file_and_client() else {
        return;
    };
    script(p);
}

fn script(mut p: Pair) {
    kv(&p);
    deletes(&p);
    txns(&p);
    watches(&p);
    leases(&mut p);
    compaction(&p);
    snapshots(&p);
    endpoint_status(&p);
    if p.is_client() {
        cluster(&p);
    }
    // Last: a killed `elect` leaves its session's lease and key behind on both sides.
    lock_and_elect(&p);
    p.finish();
}

fn kv(p: &Pair) {
    p.same(&["put", "a", "1"]);
    p.same(&["put", "a", "2", "-w", "json"]);
    p.same(&["put", "b", "10", "--prev-kv"]);
    p.same(&["put", "b", "11", "--prev-kv"]);
    p.same(&["put", "b", "12", "--prev-kv", "-w", "json"]);
    p.same(&["put", "b", "13", "--prev-kv", "-w", "fields"]);
    p.same(&["put", "c", "30"]);
    // The value from stdin, byte for byte; empty stdin is an argument error.
    let id = |s: &str| s.to_string();
    p.same_with(&[b"put", b"s"], Some("line 1\nline 2\n"), &id);
    p.same_with(&[b"put", b"s"], Some(""), &id);
    p.same(&["get", "s", "-w", "json"]);
    p.same(&["put", "d/1", ""]);
    p.same(&["put", "d/2", "v"]);
    for w in ["simple", "json", "fields"] {
        p.same(&["get", "a", "-w", w]);
        p.same(&["get", "missing", "-w", w]);
        p.same(&["get", "", "--prefix", "-w", w]);
        p.same(&["get", "d/", "--prefix", "--keys-only", "-w", w]);
        p.same(&["get", "a", "c", "-w", w]);
        p.same(&["get", "b", "--from-key", "-w", w]);
        p.same(&["get", "", "--from-key", "--limit", "2", "-w", w]);
        p.same(&["get", "a", "--rev", "2", "-w", w]);
    }
    p.same(&["get", "", "--prefix", "--print-value-only"]);
    p.same(&[
        "get",
        "",
        "--prefix",
        "--sort-by",
        "VALUE",
        "--order",
        "DESCEND",
    ]);
    p.same(&[
        "get",
        "",
        "--prefix",
        "--sort-by",
        "CREATE",
        "--order",
        "DESCEND",
    ]);
    p.same(&["get", "", "--prefix", "--sort-by", "MODIFY", "-w", "json"]);
    p.same(&[
        "get",
        "",
        "--prefix",
        "--sort-by",
        "VERSION",
        "--order",
        "DESCEND",
    ]);
    p.same(&["get", "", "--prefix", "--order", "DESCEND", "--limit", "2"]);
    p.same(&["get", "", "--prefix", "--order", "descend"]);
    p.same(&["get", "a", "--rev", "0"]);
    p.same(&["get", "a", "--rev", "-1"]);
    p.same(&["get", "a", "--rev", "1", "-w", "json"]);
    p.same(&["get", "a", "--rev", "1000"]);
    p.same(&["get", "a", "--consistency", "s"]);
    p.same(&["get", "a", "--consistency", "l", "-w", "json"]);
    p.same(&["--hex", "get", "a"]);
    p.same(&["get", "a", "--prefix", "--from-key"]);
    p.same(&["get", "a", "c", "--prefix"]);
    p.same(&["--hex", "get", "a", "-w", "fields"]);
    p.same(&["--hex", "get", "", "--prefix", "--keys-only"]);
    p.same(&[
        "get",
        "",
        "--prefix",
        "--keys-only",
        "--limit",
        "1",
        "-w",
        "json",
    ]);
    p.same(&["get", "", "--prefix", "--print-value-only", "--keys-only"]);
    // Requests etcd refuses.
    p.same(&["put", "", "v"]);
    p.same(&["del", ""]);
    p.same(&["get", ""]);
    p.same(&["put", "nokey", "--ignore-value"]);
    p.same(&["put", "nokey", "v", "--ignore-lease"]);
    p.same(&["put", "a", "--ignore-value", "-w", "json"]);
    p.same(&["put", "a", "3", "--ignore-lease", "--prev-kv"]);
    p.same(&["put", "a", "3", "--ignore-value"]);
    p.same(&["put", "a", "4", "--lease", "1234", "--ignore-lease"]);
    p.same(&[
        "get",
        "",
        "--from-key",
        "--limit",
        "-1",
        "--order",
        "DESCEND",
    ]);
    // Keys and values that are not UTF-8 pass through as bytes.
    let (key, value): (&[u8], &[u8]) = (b"\xff\xfe", b"\x80v");
    p.same_with(&[b"put", key, value], None, &id);
    p.same_with(&[b"get", key], None, &id);
    p.same_with(&[b"get", key, b"-w", b"json"], None, &id);
    p.same_with(&[b"get", key, b"-w", b"fields"], None, &id);
    p.same_with(&[b"del", key], None, &id);
}

fn deletes(p: &Pair) {
    p.same(&["del", "missing"]);
    p.same(&["del", "missing", "-w", "json"]);
    p.same(&["del", "missing", "-w", "fields"]);
    p.same(&["put", "x1", "1"]);
    p.same(&["put", "x2", "2"]);
    p.same(&["put", "x3", "3"]);
    p.same(&["put", "x4", "4"]);
    p.same(&["del", "x1", "--prev-kv", "-w", "json"]);
    p.same(&["del", "x2", "--prev-kv", "-w", "fields"]);
    p.same(&["del", "x3", "--prev-kv"]);
    p.same(&["del", "x", "--prefix", "-w", "json"]);
    p.same(&["put", "y1", "1"]);
    p.same(&["put", "y2", "2"]);
    p.same(&["put", "z", "3"]);
    p.same(&["del", "y1", "y3", "--prev-kv"]);
    p.same(&["del", "y", "--from-key", "--prev-kv", "-w", "json"]);
    p.same(&["del", "a", "--prefix", "--from-key"]);
}

fn txns(p: &Pair) {
    let id = |s: &str| s.to_string();
    let txn = |w: &str, input: &str| {
        p.same_with(&[b"txn", b"-w", w.as_bytes()], Some(input), &id);
    };
    for w in ["simple", "json", "fields"] {
        txn(
            w,
            "value(\"a\") = \"2\"\n\nput t 1\nget a\ndel nothing\n\nput t 0\n\n",
        );
        txn(w, "mod(\"a\") > \"1000\"\n\nput t 1\n\nput t 2 --prev-kv\nget t --prefix\ndel t --prev-kv\n\n");
        txn(
            w,
            "version(\"b\") = \"4\"\ncreate(\"b\") < \"100\"\n\nget b --keys-only\n\n\n",
        );
    }
    // Quoted values with escapes, bytes that are not UTF-8. (No `lease(...)` compare: etcdctl
    // 3.4 panics parsing one.)
    txn(
        "simple",
        "create(\"a\") > \"0\"\n\nput \"q\\xff\" \"tab\\there\"\nget q --prefix\n\n\n",
    );
    txn(
        "json",
        "value(\"q\\xff\") = \"tab\\there\"\n\ndel q --prefix --prev-kv\n\n\n",
    );
    // Interactive: the prompts, then the result.
    let interactive = "value(\"a\") = \"3\"\n\nget a\n\nput a 9\n\n";
    p.same_with(&[b"txn", b"-i"], Some(interactive), &id);
    // etcd rejects writing the same key twice in one transaction.
    txn("simple", "\n\nput t 1\nput t 2\n\n\n");
    p.same(&["get", "t"]);
}

fn watches(p: &Pair) {
    p.same(&["put", "w", "1"]);
    p.same(&["put", "w", "2"]);
    p.same(&["del", "w"]);
    let rev = current_revision(p);
    let start = (rev - 2).to_string();
    p.watch(&["watch", "w", "--rev", &start], 9);
    p.watch(&["watch", "w", "--rev", &start, "--prev-kv"], 13);
    p.watch(&["watch", "w", "--rev", &start, "-w", "json"], 1);
    p.watch(
        &[
            "watch",
            "w",
            "--prefix",
            "--rev",
            &start,
            "--prev-kv",
            "-w",
            "json",
        ],
        1,
    );
    p.watch(&["watch", "w", "--rev", &start, "-w", "fields"], 1 + 3 * 7);
    p.watch(&["watch", "v", "x", "--rev", &start], 9);
    p.watch(&["--hex", "watch", "w", "--rev", &start, "--prev-kv"], 13);
    // A command per event, after the response is printed. (Not $ETCD_WATCH_REVISION: etcdctl
    // sets the response's header revision, etch the event's own revision, as documented.)
    let hook = "echo \"$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\"";
    p.watch(
        &["watch", "w", "--rev", &start, "--", "sh", "-c", hook],
        9 + 3,
    );
}

fn current_revision(p: &Pair) -> i64 {
    let out = p.same(&["get", "a", "-w", "json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["header"]["revision"].as_i64().unwrap()
}

fn leases(p: &mut Pair) {
    p.grant("100", "simple");
    p.grant("200", "json");
    p.grant("300", "fields");
    p.same(&["put", "l1", "v", "--lease", "{L1}"]);
    p.same(&["put", "l2", "v", "--lease", "{L1}", "-w", "json"]);
    p.same(&["get", "l1", "-w", "json"]);
    p.same(&["get", "l1", "-w", "fields"]);
    // Remaining TTLs count down; each must be close to the granted TTL. etcd lists a lease's
    // keys in its map's (random) order: they are compared sorted.
    let ttl = |s: &str| {
        sort_lease_keys(&mask_numbers(
            s,
            &["remaining(", "\"ttl\":", "\"TTL\" : "],
            // Generous: the machine may be slow, and only the shape is compared.
            60..=100,
        ))
    };
    for w in ["simple", "json", "fields"] {
        for keys in [&[][..], &[&b"--keys"[..]][..]] {
            let mut args: Vec<&[u8]> = vec![b"lease", b"timetolive", b"{L1}", b"-w", w.as_bytes()];
            args.extend_from_slice(keys);
            p.same_with(&args, None, &ttl);
        }
        p.same(&["lease", "timetolive", "1234", "--keys", "-w", w]);
        p.same(&["lease", "keep-alive", "--once", "{L1}", "-w", w]);
        p.same(&["lease", "keep-alive", "--once", "1234", "-w", w]);
    }
    // Both list in ascending id order, but the ids are random: compare as sets.
    for w in ["simple", "json", "fields"] {
        let (c1, o1, e1) = p.raw(Side::Etcd, &[b"lease", b"list", b"-w", w.as_bytes()], None);
        let (c2, o2, e2) = p.raw(Side::Etch, &[b"lease", b"list", b"-w", w.as_bytes()], None);
        let sorted = |o: Outcome| Outcome {
            stdout: sort_leases(&o.stdout),
            ..o
        };
        let etcd = sorted(p.outcome(Side::Etcd, c1, &o1, &e1));
        let etch = sorted(p.outcome(Side::Etch, c2, &o2, &e2));
        p.expect_equal(&format!("lease list -w {w}"), &etch, &etcd);
    }
    // Renewing until killed: one line per renewal.
    let keep = [&b"lease"[..], b"keep-alive", b"{L1}"];
    let etcd = p.bounded(Side::Etcd, &keep, 1);
    let etch = p.bounded(Side::Etch, &keep, 1);
    p.expect_equal("lease keep-alive {L1}", &etch, &etcd);
    p.same(&["put", "l3", "v", "--lease", "1234"]);
    p.same(&["put", "l3", "v", "--lease", "zz"]);
    p.same(&["lease", "revoke", "{L2}", "-w", "json"]);
    p.same(&["lease", "revoke", "{L3}", "-w", "fields"]);
    p.same(&["lease", "revoke", "{L1}"]);
    p.same(&["lease", "revoke", "{L1}"]);
    p.same(&["lease", "revoke", "zz"]);
    p.same(&["get", "l", "--prefix", "-w", "json"]);
    p.same(&["lease", "list"]);
    p.same(&["lease", "list", "-w", "json"]);
}

fn compaction(p: &Pair) {
    let rev = current_revision(p);
    let to = (rev - 3).to_string();
    p.same(&["compaction", &to]);
    p.same(&["compaction", &to]);
    p.same(&["compaction", "1", "-w", "json"]);
    p.same(&["compaction", "1000000"]);
    p.same(&[
        "compaction",
        &(rev - 1).to_string(),
        "--physical",
        "-w",
        "json",
    ]);
    p.same(&["get", "a", "--rev", "2"]);
    p.same(&["get", "a", "--rev", &(rev - 1).to_string(), "-w", "json"]);
    p.same(&["compaction", &rev.to_string(), "-w", "fields"]);
    p.same(&["compaction", "0"]);
    // A watch from a compacted revision is canceled: etcdctl prints the reason and exits 5.
    p.same(&["watch", "a", "--rev", "2"]);
    p.same(&["watch", "a", "--rev", "2", "-w", "json"]);
}

fn snapshots(p: &Pair) {
    let shape = |s: &str| {
        let mut out = String::new();
        for line in s.lines() {
            if let Ok(mut v) = serde_json::from_str::<Value>(line) {
                for k in ["hash", "totalKey", "totalSize"] {
                    assert!(v[k].as_u64().is_some(), "{k} missing: {line}");
                    v[k] = Value::from(0);
                }
                out.push_str(&v.to_string());
            } else if let Some((name, _)) = line.split_once(" : ") {
                let keep = name == "\"Revision\"";
                out.push_str(if keep { line } else { name });
            } else if line.contains(", ") {
                // "hash, revision, keys, size"
                let parts: Vec<&str> = line.split(", ").collect();
                assert_eq!(parts.len(), 4, "{line}");
                out.push_str(&format!("H, {}, K, S", parts[1]));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out
    };
    // etcd's snapshot status reports the newest revision left in its key bucket, which the
    // compaction above emptied of tombstones: a put makes it the current revision again.
    p.same(&["put", "before-snapshot", "1"]);
    p.same_with(&[b"snapshot", b"save", b"snap.db"], None, &|s| {
        s.to_string()
    });
    if p.is_client() {
        // Both sides saved an etch file, which etcdctl's `snapshot status` (bbolt) cannot
        // read; client.rs restores the file `etch --endpoints` saved.
        return;
    }
    for w in ["simple", "json", "fields"] {
        p.same_with(
            &[b"snapshot", b"status", b"snap.db", b"-w", w.as_bytes()],
            None,
            &shape,
        );
    }
    p.same_with(
        &[b"snapshot", b"status", b"snap.db", b"-w", b"table"],
        None,
        &table_shape,
    );
}

/// `endpoint status`: a file is a cluster of one member without id, leader or raft term, so the
/// shapes are compared: the columns, the JSON fields etcd would print for such a member, the
/// field names, and the revision.
fn endpoint_status(p: &Pair) {
    let shape = |s: &str| {
        let mut out = String::new();
        for line in s.lines() {
            if let Ok(mut v) = serde_json::from_str::<Value>(line) {
                let status = v[0]["Status"].as_object_mut().expect("Status");
                // Zero for a file, so left out (omitempty) on etch's side.
                status.shift_remove("leader");
                status.shift_remove("raftTerm");
                let keys: Vec<String> = status.keys().cloned().collect();
                let header = status["header"].to_string();
                let entry: Vec<String> = v[0].as_object().unwrap().keys().cloned().collect();
                out.push_str(&format!("{entry:?} {keys:?} {header}"));
            } else if line.starts_with("\"Revision\"") || line.is_empty() {
                out.push_str(line);
            } else if let Some((name, _)) = line.split_once(" : ") {
                out.push_str(name);
            } else {
                let columns: Vec<&str> = line.split(", ").collect();
                out.push_str(&format!(
                    "{} columns, errors {:?}",
                    columns.len(),
                    columns.last()
                ));
            }
            out.push('\n');
        }
        out
    };
    for w in ["simple", "json", "fields"] {
        p.same_with(&[b"endpoint", b"status", b"-w", w.as_bytes()], None, &shape);
    }
    p.same_with(
        &[b"endpoint", b"status", b"-w", b"table"],
        None,
        &table_shape,
    );
}

/// Client mode: the commands that ask a server about itself. Endpoints are compared as
/// `<endpoint>` (the two servers listen on different ports), durations as `<took>`.
fn cluster(p: &Pair) {
    if p.same_servers() {
        // Two etcds have different member ids and peer URLs; two `etch serve` given the same
        // advertised URL do not. (etcdctl 3.4 crashes on `alarm list -w fields` when etcd
        // sends no header.)
        for w in ["simple", "json", "fields"] {
            p.same(&["member", "list", "-w", w]);
        }
        p.same(&["alarm", "list", "-w", "fields"]);
    }
    p.same_with(&[b"member", b"list", b"-w", b"table"], None, &table_shape);
    for w in ["simple", "json"] {
        p.same(&["alarm", "list", "-w", w]);
    }
    p.same(&["alarm", "disarm"]);
    for w in ["simple", "json", "fields"] {
        p.same_with(
            &[b"endpoint", b"health", b"-w", w.as_bytes()],
            None,
            &mask_took,
        );
    }
    p.same_with(
        &[b"endpoint", b"health", b"-w", b"table"],
        None,
        &table_shape,
    );
    p.same(&["defrag"]);
    p.same(&["defrag", "-w", "json"]);
}

fn lock_and_elect(p: &Pair) {
    let script = "echo \"$ETCD_LOCK_KEY $ETCD_LOCK_REV\"";
    let args: [&[u8]; 6] = [b"lock", b"jobs", b"--", b"sh", b"-c", script.as_bytes()];
    p.same_with(&args, None, &|s| mask_session_keys(s, "jobs"));
    // The lock was released: its key is gone.
    p.same(&["get", "jobs", "--prefix"]);
    // Held until killed: the key, then the lock key's value (empty).
    let lock = [&b"lock"[..], b"held"];
    let etcd = mask_session_keys(&p.bounded(Side::Etcd, &lock, 2), "held");
    let etch = mask_session_keys(&p.bounded(Side::Etch, &lock, 2), "held");
    p.expect_equal("lock held", &etch, &etcd);
    let elect = [&b"elect"[..], b"leader", b"me"];
    let etcd = mask_session_keys(&p.bounded(Side::Etcd, &elect, 2), "leader");
    let etch = mask_session_keys(&p.bounded(Side::Etch, &elect, 2), "leader");
    p.expect_equal("elect leader me", &etch, &etcd);
    if etch.lines().count() != 2 {
        p.fail(format!("elect printed {etch:?}"));
    }
    // The killed candidate's session outlives it (until its lease expires): it still leads.
    let listen = [&b"elect"[..], b"leader", b"--listen"];
    let etcd = mask_session_keys(&p.bounded(Side::Etcd, &listen, 2), "leader");
    let etch = mask_session_keys(&p.bounded(Side::Etch, &listen, 2), "leader");
    p.expect_equal("elect leader --listen", &etch, &etcd);
    if etch != "leader/<session>\nme\n" {
        p.fail(format!("elect --listen printed {etch:?}"));
    }
}
