//! Shared by the server's tests: an in-process server on a temporary store and loopback port,
//! clients for it, and a guard that kills child processes (etcdctl) when a test ends.

#![allow(dead_code)]

pub mod watch_stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use etch_server::proto::etcdserverpb::{
    auth_client::AuthClient, cluster_client::ClusterClient, kv_client::KvClient,
    lease_client::LeaseClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use etch_server::proto::v3electionpb::election_client::ElectionClient;
use etch_server::proto::v3lockpb::lock_client::LockClient;
use etch_server::{ServerConfig, ServerHandle};
use tonic::transport::Channel;

/// A server on a fresh store in a temporary directory.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub addr: SocketAddr,
    pub handle: Option<ServerHandle>,
}

/// A config for a store `test.etch` in `dir`, on a free loopback port.
pub fn config_in(dir: &std::path::Path) -> ServerConfig {
    let mut config = ServerConfig::new(dir.join("test.etch"));
    config.listen_client_urls = vec![etch_server::config::ListenUrl::http(
        "127.0.0.1:0".parse().unwrap(),
    )];
    config.advertise_client_urls = vec!["http://127.0.0.1:0".to_string()];
    config.shutdown_grace = Duration::from_secs(5);
    config
}

impl TestServer {
    /// Starts a server with default settings.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` changes its config.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        adjust(&mut config);
        let db = config.db.clone();
        let handle = etch_server::start(config).await.expect("server starts");
        let addr = handle.client_addrs()[0];
        TestServer {
            dir,
            db,
            addr,
            handle: Some(handle),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("client connects")
    }

    pub async fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }
    pub async fn watch(&self) -> WatchClient<Channel> {
        WatchClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }
    pub async fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel().await)
    }
    pub async fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel().await)
    }
    pub async fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }
    pub async fn auth(&self) -> AuthClient<Channel> {
        AuthClient::new(self.channel().await)
    }
    pub async fn lock(&self) -> LockClient<Channel> {
        LockClient::new(self.channel().await)
    }
    pub async fn election(&self) -> ElectionClient<Channel> {
        ElectionClient::new(self.channel().await)
    }

    /// Shuts the server down, then reopens the file and checks it completely: the store must
    /// be one intact file after every test.
    pub async fn stop_and_check(mut self) {
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), handle.shutdown())
            .await
            .expect("shutdown finishes in time")
            .expect("shutdown is clean");
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let store = etch_engine::Store::open(&db).expect("reopens");
            store.check().expect("check is clean");
            store.close().unwrap();
        })
        .await
        .unwrap();
        let wal_left = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy() != "test.etch")
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>();
        assert!(
            wal_left.is_empty(),
            "only the store file remains, found {wal_left:?}"
        );
    }
}

/// Kills and reaps a child process when dropped (also when the test fails).
pub struct ChildGuard(pub Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// True if `tool` runs; when it does not and `ETCH_REQUIRE_TOOLS=1`, panics.
pub fn tool_available(tool: &str, version_arg: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("ETCH_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{tool} is required (ETCH_REQUIRE_TOOLS=1) but not found");
        }
        eprintln!("skipped: {tool} not found");
    }
    ok
}
