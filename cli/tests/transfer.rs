//! import and export: JSON lines round trip, prefixes, past revisions and bad lines.

use crate::common;

use common::Env;

#[test]
fn export_then_import_round_trips_every_byte() {
    let src = Env::new();
    src.ok(&["put", "a", "1"]);
    src.ok(&["put", "b/x", "line\nbreak"]);
    src.ok(&["put", "b/y", ""]);
    // More keys than one export page and one import batch.
    let lines: String = (0..1500)
        .map(|i| {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::STANDARD;
            format!(
                "{{\"key\":\"{}\",\"value\":\"{}\"}}\n",
                b.encode(format!("n/{i:04}")),
                b.encode(format!("v{i}"))
            )
        })
        .collect();
    std::fs::write(src.path("bulk.jsonl"), lines).unwrap();
    assert_eq!(
        src.ok(&["import", "bulk.jsonl"]),
        "Imported 1500 keys (revision 16)\n"
    );
    let exported = src.ok(&["export"]);
    assert_eq!(exported.lines().count(), 1503);
    let first: serde_json::Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(first["key"], "YQ==");
    assert_eq!(first["value"], "MQ==");
    assert_eq!(first["version"], 1);

    let dst = Env::new();
    std::fs::write(dst.path("all.jsonl"), &exported).unwrap();
    dst.ok(&["import", "all.jsonl"]);
    assert_eq!(dst.ok(&["get", "", "--prefix", "--count-only"]), "1503\n");
    assert_eq!(
        dst.ok(&["get", "b/x", "--print-value-only"]),
        "line\nbreak\n"
    );
    assert_eq!(dst.ok(&["get", "n/1499", "--print-value-only"]), "v1499\n");
    // Same keys and values: the exports differ only in revisions.
    let strip = |s: &str| -> Vec<(String, String)> {
        s.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["key"].to_string(), v["value"].to_string())
            })
            .collect()
    };
    assert_eq!(strip(&dst.ok(&["export"])), strip(&exported));
}

#[test]
fn export_a_prefix_at_a_past_revision_and_import_from_stdin() {
    let e = Env::new();
    e.ok(&["put", "svc/a", "1"]); // rev 2
    e.ok(&["put", "svc/b", "2"]); // rev 3
    e.ok(&["put", "other", "3"]);
    e.ok(&["put", "svc/a", "changed"]);
    let out = e.ok(&["export", "--prefix", "svc/", "--rev", "3"]);
    assert_eq!(out.lines().count(), 2);
    assert!(out.contains("\"value\":\"MQ==\""), "{out}");
    let dst = Env::new();
    let r = dst.run_with_stdin(&["import", "-", "-w", "json"], &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["imported"], 2);
    assert_eq!(dst.ok(&["get", "svc/a", "--print-value-only"]), "1\n");
    e.fails(&["export", "--rev", "1000"], 1);
}

#[test]
fn repeated_keys_import_in_order() {
    let e = Env::new();
    let input = "{\"key\":\"aw==\",\"value\":\"MQ==\"}\n{\"key\":\"aw==\",\"value\":\"Mg==\"}\n";
    let r = e.run_with_stdin(&["import", "-"], input);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(e.ok(&["get", "k", "--print-value-only"]), "2\n");
}

#[test]
fn bad_lines_are_invalid_input_naming_the_line() {
    let e = Env::new();
    std::fs::write(
        e.path("bad.jsonl"),
        "{\"key\":\"YQ==\",\"value\":\"MQ==\"}\nnot json\n",
    )
    .unwrap();
    let err = e.fails(&["import", "bad.jsonl"], 3);
    assert!(err.contains("bad.jsonl line 2"), "{err}");
    // The file is checked before anything is written: the good first line is not imported.
    assert!(
        !e.db.exists(),
        "a rejected import must not create or change the store"
    );
    e.ok(&["put", "other", "1"]);
    e.fails(&["import", "bad.jsonl"], 3);
    assert_eq!(e.ok(&["get", "", "--prefix", "--count-only"]), "1\n");
    std::fs::write(e.path("bad2.jsonl"), "{\"key\":\"***\"}\n").unwrap();
    assert!(e.fails(&["import", "bad2.jsonl"], 3).contains("base64"));
    assert!(e
        .fails(&["import", "missing.jsonl"], 1)
        .contains("missing.jsonl"));
}

#[test]
fn progress_bar_only_on_a_terminal() {
    use base64::Engine as _;
    let e = Env::new();
    let b = base64::engine::general_purpose::STANDARD;
    let lines: String = (0..20_000)
        .map(|i| {
            format!(
                "{{\"key\":\"{}\",\"value\":\"eA==\"}}\n",
                b.encode(format!("k{i:06}"))
            )
        })
        .collect();
    std::fs::write(e.path("in.jsonl"), lines).unwrap();
    // Off a terminal: nothing on stderr.
    let r = e.run(&["import", "in.jsonl"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    // On a terminal (script(1) gives the command a pty): the bar is drawn on it.
    let cmd = format!(
        "'{}' --db '{}' import '{}'",
        env!("CARGO_BIN_EXE_etch"),
        e.path("tty.etch").display(),
        e.path("in.jsonl").display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("importing ["), "{screen}");
    assert!(screen.contains("Imported 20000 keys"), "{screen}");
}
