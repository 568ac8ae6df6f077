//! put, get, del: every flag, every output format, and the exit codes of bad input.

use crate::common;

use common::Env;

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn put_then_get_in_simple_output() {
    let e = Env::new();
    assert_eq!(e.ok(&["put", "greeting", "hello"]), "OK\n");
    assert_eq!(e.ok(&["get", "greeting"]), "greeting\nhello\n");
    assert_eq!(e.ok(&["get", "missing"]), "");
    assert_eq!(
        e.ok(&["put", "greeting", "bye", "--prev-kv"]),
        "OK\ngreeting\nhello\n"
    );
    assert_eq!(e.ok(&["get", "greeting", "--print-value-only"]), "bye\n");
    assert_eq!(e.ok(&["get", "greeting", "--keys-only"]), "greeting\n\n");
    assert_eq!(
        e.ok(&["get", "greeting", "--hex"]),
        "\\x67\\x72\\x65\\x65\\x74\\x69\\x6e\\x67\n\\x62\\x79\\x65\n"
    );
}

#[test]
fn value_from_stdin_is_taken_byte_for_byte() {
    let e = Env::new();
    let r = e.run_with_stdin(&["put", "cfg"], "line one\nline two\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        e.ok(&["get", "cfg", "--print-value-only"]),
        "line one\nline two\n\n"
    );
}

#[test]
fn a_value_starting_with_a_dash_after_double_dash() {
    let e = Env::new();
    e.ok(&["put", "--", "k", "-v"]);
    assert_eq!(e.ok(&["get", "k", "--print-value-only"]), "-v\n");
}

#[test]
fn db_comes_from_etch_db_env_or_defaults_to_default_etch() {
    let e = Env::new();
    let other = e.path("env.etch");
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_etch"));
    let out = c
        .args(["put", "a", "1"])
        .env("ETCH_DB", &other)
        .current_dir(e.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(other.exists());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_etch"))
        .args(["put", "b", "2"])
        .env_remove("ETCH_DB")
        .current_dir(e.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(e.path("default.etch").exists());
}

#[test]
fn ranges_prefix_from_key_limit_and_sorting() {
    let e = Env::new();
    for (k, v) in [("a", "3"), ("b/1", "1"), ("b/2", "2"), ("c", "0")] {
        e.ok(&["put", k, v]);
    }
    e.ok(&["put", "a", "4"]); // a: version 2, newest mod revision
    assert_eq!(
        e.ok(&["get", "b/", "--prefix", "--keys-only"]),
        "b/1\n\nb/2\n\n"
    );
    assert_eq!(
        e.ok(&["get", "b", "--from-key", "--print-value-only"]),
        "1\n2\n0\n"
    );
    assert_eq!(e.ok(&["get", "a", "c", "--print-value-only"]), "4\n1\n2\n");
    assert_eq!(
        e.ok(&["get", "", "--prefix", "--limit", "2", "--keys-only"]),
        "a\n\nb/1\n\n"
    );
    assert_eq!(
        e.ok(&["get", "", "--from-key", "--order", "descend", "--keys-only"]),
        "c\n\nb/2\n\nb/1\n\na\n\n"
    );
    assert_eq!(
        e.ok(&[
            "get",
            "",
            "--prefix",
            "--sort-by",
            "VALUE",
            "--print-value-only"
        ]),
        "0\n1\n2\n4\n"
    );
    assert_eq!(
        e.ok(&[
            "get",
            "",
            "--prefix",
            "--sort-by",
            "MODIFY",
            "--order",
            "DESCEND",
            "--keys-only",
            "--limit",
            "1"
        ]),
        "a\n\n"
    );
    assert_eq!(
        e.ok(&[
            "get",
            "",
            "--prefix",
            "--sort-by",
            "VERSION",
            "--order",
            "DESCEND",
            "--keys-only",
            "--limit",
            "1"
        ]),
        "a\n\n"
    );
    assert_eq!(
        e.ok(&[
            "get",
            "",
            "--prefix",
            "--sort-by",
            "CREATE",
            "--order",
            "DESCEND",
            "--keys-only",
            "--limit",
            "1"
        ]),
        "c\n\n"
    );
    assert_eq!(e.ok(&["get", "", "--prefix", "--count-only"]), "4\n");
    // Revision filters (a: created 2, modified 6; b/1: 3; b/2: 4; c: 5).
    let keys = |extra: &[&str]| {
        let mut args = vec!["get", "", "--prefix", "--keys-only"];
        args.extend_from_slice(extra);
        e.ok(&args).split_whitespace().collect::<Vec<_>>().join(" ")
    };
    assert_eq!(keys(&["--min-mod-revision", "5"]), "a c");
    assert_eq!(keys(&["--max-mod-revision", "4"]), "b/1 b/2");
    assert_eq!(keys(&["--min-create-revision", "4"]), "b/2 c");
    assert_eq!(keys(&["--max-create-revision", "2"]), "a");
    e.fails(&["get", "a", "--min-mod-revision", "-1"], 128);
}

#[test]
fn get_at_a_past_revision() {
    let e = Env::new();
    e.ok(&["put", "k", "old"]);
    let rev = json(&e.ok(&["get", "k", "-w", "json"]))["header"]["revision"]
        .as_i64()
        .unwrap();
    e.ok(&["put", "k", "new"]);
    assert_eq!(
        e.ok(&["get", "k", "--rev", &rev.to_string(), "--print-value-only"]),
        "old\n"
    );
    assert_eq!(e.ok(&["get", "k", "--print-value-only"]), "new\n");
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn json_output_has_etcdctls_shape_with_base64_and_numeric_ids() {
    let e = Env::new();
    let lease = e.ok(&["lease", "grant", "100"]);
    let id_hex = lease.split_whitespace().nth(1).unwrap().to_string();
    let id = i64::from_str_radix(&id_hex, 16).unwrap();
    let put = json(&e.ok(&["put", "k", "v", "--lease", &id_hex, "-w", "json"]));
    let rev = put["header"]["revision"].as_i64().unwrap();
    assert!(rev > 0);
    let got = json(&e.ok(&["get", "k", "-w", "json"]));
    assert_eq!(got["header"]["revision"], rev);
    assert_eq!(got["count"], 1);
    // As etcdctl (Go's omitempty): false, zero and empty fields are left out.
    assert!(got.get("more").is_none(), "{got}");
    let kv = &got["kvs"][0];
    assert_eq!(kv["key"], b64("k"));
    assert_eq!(kv["value"], b64("v"));
    assert_eq!(kv["create_revision"], rev);
    assert_eq!(kv["mod_revision"], rev);
    assert_eq!(kv["version"], 1);
    // The id as a JSON number, as etcdctl writes it (exact in the text, beyond 2^53)...
    assert_eq!(kv["lease"].as_i64(), Some(id));
    // ...or as a decimal string with --string-ids.
    let strings = json(&e.ok(&["get", "k", "-w", "json", "--string-ids"]));
    assert_eq!(strings["kvs"][0]["lease"], id.to_string());
    let prev = json(&e.ok(&["put", "k", "w", "--prev-kv", "-w", "json"]));
    assert_eq!(prev["prev_kv"]["value"], b64("v"));
    let del = json(&e.ok(&["del", "k", "--prev-kv", "-w", "json"]));
    assert_eq!(del["deleted"], 1);
    assert_eq!(del["prev_kvs"][0]["value"], b64("w"));
    // A miss is the header alone.
    let missing = e.ok(&["get", "k", "-w", "json"]);
    assert_eq!(
        missing,
        format!("{{\"header\":{{\"revision\":{}}}}}\n", rev + 2)
    );
}

#[test]
fn fields_and_table_output() {
    let e = Env::new();
    e.ok(&["put", "k", "a\"b"]);
    let fields = e.ok(&["get", "k", "-w", "fields"]);
    assert_eq!(
        fields,
        "\"Revision\" : 2\n\"Key\" : \"k\"\n\"CreateRevision\" : 2\n\"ModRevision\" : 2\n\
         \"Version\" : 1\n\"Value\" : \"a\\\"b\"\n\"Lease\" : 0\n\"More\" : false\n\"Count\" : 1\n"
    );
    assert_eq!(
        e.ok(&["put", "k", "c", "-w", "fields"]),
        "\"Revision\" : 3\n"
    );
    assert_eq!(
        e.ok(&["del", "k", "-w", "fields"]),
        "\"Revision\" : 4\n\"Deleted\" : 1\n"
    );
    e.ok(&["put", "k", "v"]);
    let table = e.ok(&["get", "k", "-w", "table"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(
        lines[1].contains("KEY") && lines[1].contains("MOD REVISION"),
        "{table}"
    );
    assert!(lines[3].starts_with("| k   | v     | 5 "), "{table}");
}

#[test]
fn put_with_lease_ignore_value_and_ignore_lease() {
    let e = Env::new();
    let id = e
        .ok(&["lease", "grant", "100"])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    e.ok(&["put", "k", "v"]);
    e.ok(&["put", "k", "--ignore-value", "--lease", &id]);
    let got = json(&e.ok(&["get", "k", "-w", "json"]));
    let id_number = i64::from_str_radix(&id, 16).unwrap();
    assert_eq!(got["kvs"][0]["value"], b64("v"));
    assert_eq!(got["kvs"][0]["lease"].as_i64(), Some(id_number));
    e.ok(&["put", "k", "w", "--ignore-lease"]);
    let got = json(&e.ok(&["get", "k", "-w", "json"]));
    assert_eq!(got["kvs"][0]["value"], b64("w"));
    assert_eq!(got["kvs"][0]["lease"].as_i64(), Some(id_number));
    // Engine rejections are errors (exit 1) with etcd's message.
    assert!(e
        .fails(&["put", "nokey", "--ignore-value"], 1)
        .contains("key not found"));
    assert!(e
        .fails(&["put", "k", "v", "--lease", "abc123"], 1)
        .contains("lease"));
}

#[test]
fn delete_ranges() {
    let e = Env::new();
    for k in ["a", "b/1", "b/2", "c"] {
        e.ok(&["put", k, "x"]);
    }
    assert_eq!(e.ok(&["del", "b/", "--prefix"]), "2\n");
    assert_eq!(e.ok(&["del", "nothing"]), "0\n");
    assert_eq!(e.ok(&["del", "a", "--prev-kv"]), "1\na\nx\n");
    assert_eq!(e.ok(&["delete", "c", "--from-key"]), "1\n");
    assert_eq!(e.ok(&["get", "", "--prefix", "--count-only"]), "0\n");
}

#[test]
fn bad_arguments_exit_128() {
    let e = Env::new();
    e.ok(&["put", "k", "v"]);
    assert!(e.fails(&["get", "k", "--bogus"], 128).contains("--bogus"));
    assert!(e.fails(&["get", "k", "--rev", "abc"], 128).contains("abc"));
    // As etcd, a negative revision reads the current one.
    assert_eq!(e.ok(&["get", "k", "--rev", "-3"]), "k\nv\n");
    assert!(e
        .fails(&["get", "k", "--consistency", "x"], 4)
        .contains("unknown consistency flag"));
    e.fails(&["get", "k", "--prefix", "--from-key"], 128);
    e.fails(&["get", "a", "z", "--prefix"], 128);
    e.fails(&["get", "k", "--order", "SIDEWAYS"], 128);
    e.fails(&["put"], 128);
    e.fails(&["frobnicate"], 128);
    e.fails(&["-w", "xml", "get", "k"], 128);
    assert!(e
        .fails(&["put", "k", "v", "--lease", "xyz"], 128)
        .contains("Hex"));
}

#[test]
fn operation_errors_exit_1_on_stderr() {
    let e = Env::new();
    e.ok(&["put", "k", "v"]);
    let r = e.run(&["get", "k", "--rev", "99"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "Error: etcdserver: mvcc: required revision is a future revision\n"
    );
    assert_eq!(
        e.fails(&["put", "", "v"], 1),
        "Error: etcdserver: key is not provided\n"
    );
}

#[test]
fn missing_and_corrupt_files_are_errors() {
    let e = Env::new();
    let missing = e.path("missing.etch");
    let r: common::Run = std::process::Command::new(env!("CARGO_BIN_EXE_etch"))
        .arg("--db")
        .arg(&missing)
        .args(["get", "k"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no such database file"), "{}", r.stderr);
    assert!(!missing.exists(), "a read must not create the file");

    std::fs::write(&e.db, vec![0x5a; 64 * 1024]).unwrap();
    for args in [
        &["get", "k"][..],
        &["put", "k", "v"],
        &["check"],
        &["status"],
    ] {
        let err = e.fails(args, 1);
        assert!(
            err.contains("not an etch file") || err.contains("corrupt"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn broken_pipe_exits_quietly() {
    let e = Env::new();
    let lines: String = (0..2000)
        .map(|i| {
            format!(
                "{{\"key\":\"{}\",\"value\":\"eA==\"}}\n",
                b64(&format!("k{i:05}"))
            )
        })
        .collect();
    std::fs::write(e.path("in.jsonl"), lines).unwrap();
    e.ok(&["import", "in.jsonl"]);
    // bash for PIPESTATUS: etch's own exit code, not head's.
    let script = format!(
        "'{}' --db '{}' get '' --prefix | head -n 1; echo \"rc=${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_etch"),
        e.db.display()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "k00000\nrc=0\n");
    assert_eq!(stderr, "");
}
