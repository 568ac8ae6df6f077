//! The core cases of tests/support/kv_cases.rs, written once against `etch::kv::Kv`, on each
//! backend: a local store file, `etch serve` (in this process, on a loopback port) through the
//! remote client, and a real etcd 3.4 (started by the test; skipped when it is not installed,
//! a failure when `ETCH_REQUIRE_TOOLS=1`).
//!
//! Needs the `client` feature: `cargo test --release -p etch --features client --test kv_backends`.

#[path = "support/kv_cases.rs"]
mod kv_cases;

#[path = "../client/tests/support/serve.rs"]
mod serve;

#[path = "../cli/tests/common/etcd.rs"]
#[allow(dead_code)]
mod etcd;

use etch::{Client, ClientOptions, Store};

#[test]
fn local_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path().join("local.etch")).unwrap();
    kv_cases::all(&db);
    db.check().expect("the file is intact after the cases");
}

#[test]
fn etch_serve() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve::Served::start(&dir.path().join("served.etch"));
    let client = Client::connect(&[server.endpoint()], ClientOptions::default()).unwrap();
    kv_cases::all(&client);
    drop(client);
    server.stop();
    let db = Store::open(&server.db).unwrap();
    db.check()
        .expect("the served file is intact after the cases");
}

#[test]
fn real_etcd() {
    let Some(etcd) = etcd::Etcd::start() else {
        return;
    };
    let client = Client::connect(&[etcd.endpoint.as_str()], ClientOptions::default()).unwrap();
    kv_cases::all(&client);
}
