//! An `etch serve` server in this process, on a loopback port, driven from blocking test code:
//! it runs on a runtime of its own, and stopping or dropping it shuts it down (so no server
//! outlives its test, also when the test panics). Shared by etch-client's tests and the root
//! crate's backend tests (`#[path = ...] mod serve;`).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etch_server::config::ListenUrl;
use etch_server::{ServerConfig, ServerHandle};

/// How long a shutdown may take before the test fails.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20);

/// Changes a server's configuration before it starts (TLS, limits).
pub type Adjust = Box<dyn Fn(&mut ServerConfig)>;

/// A running (or stopped, restartable) in-process server of one store file.
pub struct Served {
    runtime: tokio::runtime::Runtime,
    adjust: Adjust,
    handle: Option<ServerHandle>,
    /// The address it listens on (kept across restarts).
    pub addr: SocketAddr,
    /// The store file.
    pub db: PathBuf,
}

impl Served {
    /// Serves `db` on a free loopback port.
    pub fn start(db: &Path) -> Served {
        Served::start_with(db, Box::new(|_| {}))
    }

    /// Serves `db` on a free loopback port, `adjust` changing the configuration (also on
    /// every restart).
    pub fn start_with(db: &Path, adjust: Adjust) -> Served {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        let mut served = Served {
            runtime,
            adjust,
            handle: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            db: db.to_path_buf(),
        };
        served.restart();
        served
    }

    /// `host:port`, as the client's endpoints take it.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Starts the server again on the same address (after [`Served::stop`]).
    pub fn restart(&mut self) {
        assert!(self.handle.is_none(), "the server is already running");
        let mut config = ServerConfig::new(&self.db);
        config.listen_client_urls = vec![ListenUrl::http(self.addr)];
        config.advertise_client_urls = vec![format!("http://{}", self.addr)];
        config.shutdown_grace = Duration::from_secs(2);
        (self.adjust)(&mut config);
        let handle = self
            .runtime
            .block_on(etch_server::start(config))
            .expect("etch serve starts");
        self.addr = handle.client_addrs()[0];
        self.handle = Some(handle);
    }

    /// Shuts the server down; its store file is closed when this returns.
    pub fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.runtime
                .block_on(async { tokio::time::timeout(SHUTDOWN_LIMIT, handle.shutdown()).await })
                .expect("shutdown finishes in time")
                .expect("shutdown is clean");
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(SHUTDOWN_LIMIT, handle.shutdown()).await });
        }
    }
}
