//! watch: history replay, prev-kv, formats, the per-event command hook, following live changes
//! (lease expiry) and cancellation by compaction.

use crate::common;

use common::{wait_for_file, Env, Running};

fn setup() -> Env {
    let e = Env::new();
    e.ok(&["put", "cfg/a", "1"]); // rev 2
    e.ok(&["put", "other", "x"]); // rev 3
    e.ok(&["put", "cfg/a", "2"]); // rev 4
    e.ok(&["del", "cfg/a"]); // rev 5
    e
}

#[test]
fn replays_history_as_etcdctl_prints_it() {
    let e = setup();
    assert_eq!(
        e.ok(&["watch", "cfg/a", "--rev", "1", "--no-follow"]),
        "PUT\ncfg/a\n1\nPUT\ncfg/a\n2\nDELETE\ncfg/a\n\n"
    );
    assert_eq!(
        e.ok(&[
            "watch",
            "cfg/",
            "--prefix",
            "--rev",
            "4",
            "--prev-kv",
            "--no-follow"
        ]),
        "PUT\ncfg/a\n1\ncfg/a\n2\nDELETE\ncfg/a\n2\ncfg/a\n\n"
    );
    // No --rev: only changes after now, and there are none.
    assert_eq!(e.ok(&["watch", "cfg/a", "--no-follow"]), "");
    let json = e.ok(&["watch", "cfg/a", "--rev", "5", "--no-follow", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    // etcdctl's shape: Go's field names, the event type as a number (DELETE = 1).
    assert_eq!(v["Events"][0]["type"], 1);
    assert_eq!(v["Events"][0]["kv"]["mod_revision"], 5);
    assert_eq!(v["Canceled"], false);
}

#[test]
fn runs_the_command_once_per_event_with_etcdctls_environment() {
    let e = setup();
    let out = e.path("events");
    let script = format!(
        "echo \"$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\" >> '{}'",
        out.display()
    );
    let stdout = e.ok(&[
        "watch",
        "cfg/a",
        "--rev",
        "1",
        "--no-follow",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(stdout.starts_with("PUT\ncfg/a\n1\n"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "2 \"PUT\" \"cfg/a\" \"1\"\n4 \"PUT\" \"cfg/a\" \"2\"\n5 \"DELETE\" \"cfg/a\" \"\"\n"
    );
    // A failing command stops the watch with an error.
    let err = e.fails(
        &["watch", "cfg/a", "--rev", "1", "--no-follow", "--", "false"],
        1,
    );
    assert!(err.contains("error"), "{err}");
}

#[test]
fn follows_live_changes_until_interrupted() {
    // The only writer while watch holds the file is the watch process itself: a lease of 1 s
    // expires while it watches and the deletion is a live event.
    let e = Env::new();
    let id = e
        .ok(&["lease", "grant", "1"])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    e.ok(&["put", "eph", "here", "--lease", &id]);
    let hook = e.path("hook");
    let script = format!("echo $ETCD_WATCH_EVENT_TYPE >> '{}'", hook.display());
    let w = Running::spawn(e.cmd(&["watch", "eph", "--rev", "1", "--", "sh", "-c", &script]));
    assert_eq!(w.line(10), "PUT");
    assert_eq!(w.line(10), "eph");
    assert_eq!(w.line(10), "here");
    assert_eq!(w.line(10), "DELETE");
    assert_eq!(w.line(10), "eph");
    wait_for_file(&hook, 10);
    w.signal("INT");
    assert_eq!(w.wait(10), Some(0));
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "\"PUT\"\n\"DELETE\"\n"
    );
    assert_eq!(e.ok(&["get", "eph"]), "");
}

#[test]
fn a_compacted_start_revision_cancels_the_watch() {
    let e = setup();
    e.ok(&["compaction", "4"]);
    // As etcdctl: the reason, then the error, exit 5.
    let err = e.fails(&["watch", "cfg/a", "--rev", "2", "--no-follow"], 5);
    assert_eq!(
        err,
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n\
         Error: watch is canceled by the server\n"
    );
}
