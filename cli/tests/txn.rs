//! txn: etcdctl's syntax on stdin, SUCCESS/FAILURE output, interactive prompts, bad input.

use crate::common;

use common::Env;

const TXN: &str = "mod(\"key1\") > \"0\"\n\nput key1 \"overwrote-key1\"\n\nput key1 \"created-key1\"\nput key2 \"some extra key\"\n\n";

#[test]
fn failure_branch_then_success_branch() {
    let e = Env::new();
    let r = e.run_with_stdin(&["txn"], TXN);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "FAILURE\n\nOK\n\nOK\n");
    assert_eq!(
        e.ok(&["get", "key1", "--print-value-only"]),
        "created-key1\n"
    );
    assert_eq!(
        e.ok(&["get", "key2", "--print-value-only"]),
        "some extra key\n"
    );
    let r = e.run_with_stdin(&["txn"], TXN);
    assert_eq!(r.stdout, "SUCCESS\n\nOK\n");
    assert_eq!(
        e.ok(&["get", "key1", "--print-value-only"]),
        "overwrote-key1\n"
    );
}

#[test]
fn every_compare_target_and_request_kind() {
    let e = Env::new();
    e.ok(&["put", "k", "v"]);
    e.ok(&["put", "a/1", "x"]);
    let input =
        "value(\"k\") = \"v\"\nversion(\"k\") = \"1\"\ncreate(\"k\") = \"2\"\nmod(\"k\") < \"3\"\n\
                 lease(\"k\") = \"0\"\nval(\"k\") != \"w\"\n\n\
                 get k\nput k v2 --prev-kv\ndel a/ --prefix --prev-kv\n\n\n";
    let r = e.run_with_stdin(&["txn"], input);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "SUCCESS\n\nk\nv\n\nOK\nk\nv\n\n1\na/1\nx\n");
    // JSON: one document with typed responses.
    let r = e.run_with_stdin(&["txn", "-w", "json"], "ver(\"k\") = \"5\"\n\n\nget k\n");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    // etcdctl's shape: `succeeded: false` left out, Go's wrapping of each response.
    assert!(v.get("succeeded").is_none(), "{v}");
    assert_eq!(v["responses"][0]["Response"]["ResponseRange"]["count"], 1);
    // Fields.
    let r = e.run_with_stdin(&["txn", "-w", "fields"], "\nput z 1\n\n");
    assert_eq!(
        r.stdout,
        "\"Revision\" : 5\n\"Succeeded\" : true\n\"Revision\" : 5\n"
    );
}

#[test]
fn interactive_mode_prints_etcdctls_prompts() {
    let e = Env::new();
    let r = e.run_with_stdin(&["txn", "-i"], "\nput k v\n\n\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n"
    );
}

#[test]
fn end_of_input_ends_the_last_section() {
    let e = Env::new();
    let r = e.run_with_stdin(&["txn"], "\nput k v");
    assert_eq!((r.code, r.stdout.as_str()), (0, "SUCCESS\n\nOK\n"));
}

#[test]
fn bad_input_exits_3_and_writes_nothing() {
    let e = Env::new();
    for input in [
        "bogus(\"k\") = \"v\"\n\n\n",
        "value(\"k\") ~ \"v\"\n\n\n",
        "mod(\"k\") > \"abc\"\n\n\n",
        "\nfrob k\n\n",
        "\nput k\n\n",
        "\nget k --nope\n\n",
        "\nput \"k v\n\n",
    ] {
        let r = e.run_with_stdin(&["txn"], input);
        assert_eq!(r.code, 3, "{input:?}: {} {}", r.stdout, r.stderr);
        assert!(r.stderr.starts_with("Error: "), "{}", r.stderr);
    }
    assert!(!e.db.exists(), "nothing was opened for bad input");
    e.fails(&["txn", "extra"], 128);
}

#[test]
fn engine_rejections_exit_1() {
    let e = Env::new();
    let r = e.run_with_stdin(&["txn"], "\nput k 1\nput k 2\n\n");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("duplicate key"), "{}", r.stderr);
}
