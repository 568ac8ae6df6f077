//! Starting and stopping a server: open the store, bind the listeners, serve gRPC and HTTP on
//! every client URL (HTTP only on metrics URLs), and shut down gracefully.

use std::future::Future;
use std::net::SocketAddr;

use etch_engine::{Options, Store};
use etch_replication::ReplicatedStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

use tokio_stream::StreamExt;

use crate::auth::AuthService;
use crate::authority::AuthorityFix;
use crate::backend::{Backend, BackendError};
use crate::cluster::ClusterService;
use crate::config::{ServerConfig, GRPC_OVERHEAD_BYTES};
use crate::election::ElectionService;
use crate::kv::KvService;
use crate::lease::LeaseService;
use crate::lock::LockService;
use crate::maintenance::MaintenanceService;
use crate::node::Node;
use crate::proto::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::watch::WatchService;

/// HTTP/2 streams one connection may open at once (etcd allows 2^32 - 1; each stream's
/// buffering is bounded, so a large number is safe).
const MAX_CONCURRENT_STREAMS: u32 = 100_000;

/// Why a server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The store file.
        path: String,
        /// The engine's error.
        source: etch_engine::Error,
    },
    /// A flag combination that cannot work (TLS files missing or unreadable, ...).
    #[error("{0}")]
    Config(String),
    /// A listen address could not be bound.
    #[error("listen tcp {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A listener failed while serving.
    #[error("serving failed: {0}")]
    Serve(String),
    /// Closing the store failed (the WAL stays; the next open recovers it).
    #[error("closing the store failed: {0}")]
    Close(etch_engine::Error),
    /// Shutting the cluster member down failed.
    #[error("stopping the cluster member failed: {0}")]
    CloseMember(String),
}

/// A running server.
pub struct ServerHandle {
    client_addrs: Vec<SocketAddr>,
    metrics_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), String>>>,
    node: Node,
}

impl ServerHandle {
    /// The bound client addresses (useful when a URL asked for port 0).
    pub fn client_addrs(&self) -> &[SocketAddr] {
        &self.client_addrs
    }

    /// The bound metrics addresses.
    pub fn metrics_addrs(&self) -> &[SocketAddr] {
        &self.metrics_addrs
    }

    /// The node (store, identity, metrics) the server runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Stops accepting connections, ends watch and keep-alive streams, waits up to the
    /// configured grace period for in-flight requests, and closes the store (checkpointing it
    /// into its single file) or shuts the cluster member down.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.shutdown.send(true);
        let grace = self.node.config().shutdown_grace;
        let mut failure = None;
        let deadline = tokio::time::Instant::now() + grace;
        for mut task in self.tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => failure = Some(e),
                Ok(Err(e)) => failure = Some(e.to_string()),
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish in time; closing anyway");
                    task.abort();
                }
            }
        }
        let backend = self.node.backend().clone();
        drop(self.node);
        match backend.close().await {
            Ok(()) => {}
            Err(BackendError::Store(etch_replication::Error::Store(e))) => {
                return Err(ServeError::Close(e))
            }
            Err(BackendError::Store(e)) => return Err(ServeError::CloseMember(e.to_string())),
            Err(BackendError::Internal(e)) => return Err(ServeError::Serve(e)),
        }
        tracing::info!("store closed");
        match failure {
            Some(e) => Err(ServeError::Serve(e)),
            None => Ok(()),
        }
    }

    /// Serves until `signal` completes, then shuts down as [`ServerHandle::shutdown`].
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), ServeError> {
        signal.await;
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

/// Opens the store named by `config` with its limits.
fn open_store(config: &ServerConfig) -> Result<Store, ServeError> {
    let mut options = Options::new()
        .max_request_bytes(config.max_request_bytes)
        .max_txn_ops(config.max_txn_ops);
    if let Some(quota) = config.quota_backend_bytes {
        options = options.quota_bytes(Some(quota));
    }
    if let Some(mode) = config.auto_compaction {
        options = options.auto_compaction(mode);
    }
    options.open(&config.db).map_err(|source| ServeError::Open {
        path: config.db.display().to_string(),
        source,
    })
}

async fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, ServeError> {
    let mut listeners = Vec::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: *addr,
                source,
            })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Every gRPC service, with the request size limit, plus the HTTP endpoints.
fn routes(node: &Node) -> Routes {
    let limit = node.config().max_request_bytes + GRPC_OVERHEAD_BYTES;
    let grpc =
        Routes::new(KvServer::new(KvService::new(node.clone())).max_decoding_message_size(limit))
            .add_service(
                WatchServer::new(WatchService::new(node.clone())).max_decoding_message_size(limit),
            )
            .add_service(
                LeaseServer::new(LeaseService::new(node.clone())).max_decoding_message_size(limit),
            )
            .add_service(
                ClusterServer::new(ClusterService::new(node.clone()))
                    .max_decoding_message_size(limit),
            )
            .add_service(
                MaintenanceServer::new(MaintenanceService::new(node.clone()))
                    .max_decoding_message_size(limit),
            )
            .add_service(
                AuthServer::new(AuthService::new(node.clone())).max_decoding_message_size(limit),
            )
            .add_service(
                LockServer::new(LockService::new(node.clone())).max_decoding_message_size(limit),
            )
            .add_service(
                ElectionServer::new(ElectionService::new(node.clone()))
                    .max_decoding_message_size(limit),
            );
    Routes::from(
        grpc.into_axum_router()
            .merge(crate::http::router(node.clone())),
    )
}

/// Opens the store, binds every URL and starts serving. Errors if the store cannot be opened
/// or an address cannot be bound; nothing is left running then.
pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServeError> {
    let bound = Bound::bind(&config).await?;
    let open_config = config.clone();
    let store = tokio::task::spawn_blocking(move || open_store(&open_config))
        .await
        .map_err(|e| ServeError::Serve(e.to_string()))??;
    serve(config, Backend::Local(store), bound)
}

/// Serves etcd's API in front of a cluster member (opened, and registered with its network,
/// by the caller; `config.db` is not used). The member's id is the member id in headers and
/// MemberList; `config.initial_cluster_token` gives the cluster id (the same on every member).
/// [`ServerHandle::shutdown`] shuts the member down. Errors if an address cannot be bound; the
/// member is left running then (it is the caller's).
pub async fn start_member(
    config: ServerConfig,
    member: ReplicatedStore,
) -> Result<ServerHandle, ServeError> {
    let bound = Bound::bind(&config).await?;
    serve(config, Backend::Member(member), bound)
}

/// The client TLS settings and the bound listeners, ready to serve.
struct Bound {
    tls: Option<tonic::transport::ServerTlsConfig>,
    client_listeners: Vec<TcpListener>,
    metrics_listeners: Vec<TcpListener>,
}

impl Bound {
    async fn bind(config: &ServerConfig) -> Result<Bound, ServeError> {
        let hosts: Vec<String> = config
            .listen_client_urls
            .iter()
            .map(|u| u.addr.ip().to_string())
            .collect();
        let tls =
            crate::tls::server_tls(&config.tls, &hosts).map_err(|e| ServeError::Config(e.0))?;
        if config.listen_client_urls.iter().any(|u| u.tls) && tls.is_none() {
            return Err(ServeError::Config(
                "an https:// listen URL needs --cert-file and --key-file, or --auto-tls".into(),
            ));
        }
        let client_addrs: Vec<SocketAddr> =
            config.listen_client_urls.iter().map(|u| u.addr).collect();
        let client_listeners = bind(&client_addrs).await?;
        let metrics_listeners = bind(&config.listen_metrics_urls).await?;
        Ok(Bound {
            tls,
            client_listeners,
            metrics_listeners,
        })
    }
}

/// Serves on the bound listeners over `backend`.
fn serve(config: ServerConfig, backend: Backend, bound: Bound) -> Result<ServerHandle, ServeError> {
    let Bound {
        tls,
        client_listeners,
        metrics_listeners,
    } = bound;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let node = Node::new(backend, config, shutdown_rx.clone());
    let routes = routes(&node);
    let mut tasks = Vec::new();
    let mut client_addrs = Vec::new();
    let urls = node.config().listen_client_urls.clone();
    for (listener, url) in client_listeners.into_iter().zip(urls) {
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError::Serve(e.to_string()))?;
        client_addrs.push(addr);
        tracing::info!(%addr, tls = url.tls, "serving client requests (gRPC and HTTP)");
        let mut builder = tonic::transport::Server::builder();
        if let (true, Some(tls)) = (url.tls, &tls) {
            builder = builder
                .tls_config(tls.clone())
                .map_err(|e| ServeError::Config(format!("TLS: {e}")))?;
        }
        let server = builder
            .accept_http1(true)
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .add_routes(routes.clone());
        let stop = stopped(shutdown_rx.clone());
        // The builder's tcp_nodelay applies only to listeners tonic binds itself; without
        // TCP_NODELAY a response's frames wait out delayed ACKs (~40 ms). Plain-text
        // connections tolerate a URL as HTTP/2 authority (etcdctl's `--cluster` sends one).
        let plain = !url.tls;
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .map(move |conn| conn.map(|stream| AuthorityFix::new(stream, plain)));
        tasks.push(tokio::spawn(async move {
            server
                .serve_with_incoming_shutdown(incoming, stop)
                .await
                .map_err(|e| e.to_string())
        }));
    }
    let mut metrics_addrs = Vec::new();
    for listener in metrics_listeners {
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError::Serve(e.to_string()))?;
        metrics_addrs.push(addr);
        tracing::info!(%addr, "serving /health, /version and /metrics");
        let router = crate::http::router(node.clone());
        let stop = stopped(shutdown_rx.clone());
        tasks.push(tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
                .map_err(|e| e.to_string())
        }));
    }
    Ok(ServerHandle {
        client_addrs,
        metrics_addrs,
        shutdown: shutdown_tx,
        tasks,
        node,
    })
}

/// Completes when the shutdown flag turns true (or its sender is gone).
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
