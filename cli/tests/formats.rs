//! Every command that prints a response, in every `-w` format: JSON parses (one document per
//! line, with a revision wherever etcdctl has a header), fields output is `"Name" : value` lines,
//! table output is a bordered table (or etcdctl's simple fallback where etcdctl has no table).

use crate::common;

use common::Env;

const FORMATS: [&str; 4] = ["simple", "json", "table", "fields"];

fn check_format(format: &str, args: &[&str], out: &str) {
    assert!(!out.is_empty(), "{args:?} -w {format}: no output");
    match format {
        "json" => {
            for line in out.lines() {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {line}"));
                assert!(v.is_object(), "{args:?}: {line}");
            }
        }
        "fields" => {
            for line in out.lines() {
                let (name, value) = line
                    .split_once(" : ")
                    .unwrap_or_else(|| panic!("{args:?}: not a field line: {line:?}"));
                assert!(
                    name.starts_with('"') && name.ends_with('"'),
                    "{args:?}: {line}"
                );
                assert!(!value.is_empty(), "{args:?}: {line}");
            }
        }
        _ => {}
    }
}

#[test]
fn every_command_in_every_format() {
    let e = Env::new();
    e.ok(&["put", "k", "v"]);
    let id = e
        .ok(&["lease", "grant", "100"])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    e.ok(&["put", "leased", "x", "--lease", &id]);
    let mut n = 0;
    for format in FORMATS {
        n += 1;
        let snap = e.path(&format!("snap-{format}.etch"));
        let restored = e.path(&format!("restored-{format}.etch"));
        let (snap, restored) = (snap.to_str().unwrap(), restored.to_str().unwrap());
        let key = format!("key-{format}");
        let commands: Vec<Vec<&str>> = vec![
            vec!["put", &key, "value", "--prev-kv"],
            vec!["get", "k"],
            vec!["get", "", "--prefix", "--count-only"],
            vec!["del", &key, "--prev-kv"],
            vec!["lease", "timetolive", &id, "--keys"],
            vec!["lease", "list"],
            vec!["lease", "keep-alive", "--once", &id],
            vec!["watch", "k", "--rev", "1", "--no-follow", "--prev-kv"],
            vec!["status"],
            vec!["check"],
            vec!["defrag"],
            vec!["snapshot", "save", snap],
            vec!["snapshot", "status", snap],
            vec!["snapshot", "restore", snap, "--output", restored],
        ];
        for args in commands {
            let mut full = args.clone();
            full.extend(["-w", format]);
            let out = e.ok(&full);
            check_format(format, &args, &out);
        }
        // Compaction on a file of its own, so the other iterations keep their history. As
        // etcdctl, it prints the same line in every format.
        let c = Env::new();
        c.ok(&["put", "a", "1"]);
        assert_eq!(
            c.ok(&["compaction", "2", "-w", format]),
            "compacted revision 2\n"
        );
        let granted = e.ok(&["lease", "grant", "5", "-w", format]);
        check_format(format, &["lease", "grant"], &granted);
        let new_id = e.ok(&["lease", "list", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&new_id).unwrap();
        let ids: Vec<i64> = v["leases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect();
        let old = i64::from_str_radix(&id, 16).unwrap();
        let fresh = ids.iter().find(|i| **i != old).unwrap();
        let out = e.ok(&["lease", "revoke", &format!("{fresh:x}"), "-w", format]);
        check_format(format, &["lease", "revoke"], &out);
        let txn = e.run_with_stdin(&["txn", "-w", format], "\nput t 1\nget t\ndel u\n\n");
        assert_eq!(txn.code, 0, "{}", txn.stderr);
        check_format(format, &["txn"], &txn.stdout);
    }
    assert_eq!(n, 4);
}

#[test]
fn table_output_is_bordered_where_etcdctl_has_tables() {
    let e = Env::new();
    e.ok(&["put", "k", "v"]);
    e.ok(&["snapshot", "save", "s.etch"]);
    let id = e
        .ok(&["lease", "grant", "100"])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    for args in [
        vec!["get", "k"],
        vec!["status"],
        vec!["check"],
        vec!["lease", "list"],
        vec!["lease", "timetolive", &id],
        vec!["snapshot", "status", "s.etch"],
    ] {
        let mut full = args.clone();
        full.extend(["-w", "table"]);
        let out = e.ok(&full);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() >= 5, "{args:?}: {out}");
        assert!(
            lines[0].starts_with("+-") && lines[0].ends_with("-+"),
            "{args:?}: {out}"
        );
        assert!(
            lines[1].starts_with("| ") && lines[1].ends_with(" |"),
            "{args:?}: {out}"
        );
        assert!(
            lines.iter().all(|l| l.len() == lines[0].len()),
            "{args:?}: ragged\n{out}"
        );
    }
}
