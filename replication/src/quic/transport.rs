//! [`QuicTransport`]: a member's QUIC endpoint, both the client that sends its Raft messages
//! to peers and (once [`QuicTransport::serve`] is called) the server that answers theirs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, IdleTimeout, VarInt};

use super::config::QuicConfig;
use super::frame;
use super::hello::{ClusterHash, CLOSE_SHUTDOWN};
use super::peer::Peer;
use super::stats::{bump, Counters, QuicStats};
use super::tls::TlsError;
use crate::network::{BoxFuture, RaftHandler, RaftReply, RaftRequest, Transport, TransportError};
use crate::types::NodeId;

/// Why a transport could not start.
#[derive(Debug)]
pub enum QuicError {
    /// The TLS material or options.
    Tls(TlsError),
    /// The UDP socket (address in use, no permission, ...).
    Io(std::io::Error),
    /// An invalid setting (the message names it).
    Config(String),
}

impl std::fmt::Display for QuicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuicError::Tls(e) => write!(f, "{e}"),
            QuicError::Io(e) => write!(f, "peer endpoint: {e}"),
            QuicError::Config(m) => write!(f, "peer transport: {m}"),
        }
    }
}

impl std::error::Error for QuicError {}

impl From<TlsError> for QuicError {
    fn from(e: TlsError) -> QuicError {
        QuicError::Tls(e)
    }
}

/// Where a peer is: its UDP address, and the name its certificate must carry when servers are
/// verified (the IP address itself unless a host name was given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PeerAddress {
    pub(super) addr: SocketAddr,
    pub(super) name: Option<String>,
}

/// What the transport's tasks share.
pub(super) struct Shared {
    pub(super) config: QuicConfig,
    pub(super) cluster: ClusterHash,
    /// The endpoint; taken at shutdown so that the UDP socket is released even while the
    /// transport object lives on (the member that owns it may outlive the shutdown).
    endpoint: RwLock<Option<Endpoint>>,
    pub(super) client: quinn::ClientConfig,
    /// Whether the client side verifies servers' certificates (then the server name sent is
    /// the peer's IP address, which its certificate must carry).
    pub(super) verifies_server: bool,
    pub(super) counters: Counters,
    book: RwLock<HashMap<NodeId, PeerAddress>>,
    peers: Mutex<HashMap<NodeId, Arc<Peer>>>,
    closed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The endpoint, unless shut down.
    pub(super) fn endpoint(&self) -> Option<Endpoint> {
        self.endpoint
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The address the book gives for `id`.
    pub(super) fn address(&self, id: NodeId) -> Option<PeerAddress> {
        self.book
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn peer(&self, id: NodeId) -> Arc<Peer> {
        let mut peers = lock(&self.peers);
        Arc::clone(
            peers
                .entry(id)
                .or_insert_with(|| Arc::new(Peer::new(id, self.config.max_in_flight))),
        )
    }

    async fn send(&self, to: NodeId, request: RaftRequest) -> Result<RaftReply, TransportError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TransportError::Unreachable { to });
        }
        let peer = self.peer(to);
        // Fail fast rather than queue: a dead or slow peer holds at most `max_in_flight`
        // requests (and their memory), and openraft retries on its own schedule.
        let Some(_permit) = peer.try_reserve() else {
            bump(&self.counters.overloaded);
            tracing::debug!(peer = to, "too many requests in flight; refusing another");
            return Err(TransportError::Unreachable { to });
        };
        let bytes = match frame::encode(&request, self.config.max_frame) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(peer = to, kind = request.kind(), error = %e, "cannot send request");
                return Err(TransportError::Unreachable { to });
            }
        };
        let limit = match request {
            RaftRequest::InstallSnapshot(_) => self.config.snapshot_timeout,
            _ => self.config.request_timeout,
        };
        let exchange = async {
            let conn = peer.connection(self).await?;
            peer.exchange(self, &conn, &bytes).await
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Lost { to }),
        }
    }
}

/// A member's QUIC peer transport. Create it inside a tokio runtime with
/// [`QuicTransport::bind`], fill its address book with [`QuicTransport::set_peer`], give it to
/// the member (`ReplicatedStore::open`), then [`QuicTransport::serve`] the member's handler.
pub struct QuicTransport {
    shared: Arc<Shared>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The endpoints of `QuicConfig::also_listen` (accepting only) and their accept loops;
    /// emptied at shutdown, which releases their sockets.
    also: Mutex<Vec<Listener>>,
}

/// One further listening endpoint and, once served, its accept loop.
struct Listener {
    endpoint: Endpoint,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl QuicTransport {
    /// Binds the UDP endpoint of `config.listen` with the configured TLS. Must be called
    /// inside a tokio runtime. Nothing is answered until [`QuicTransport::serve`].
    pub fn bind(config: QuicConfig) -> Result<QuicTransport, QuicError> {
        if config.id == 0 {
            return Err(QuicError::Config("member id 0 is reserved".into()));
        }
        if config.max_in_flight == 0 {
            return Err(QuicError::Config("max_in_flight must be at least 1".into()));
        }
        if config.keep_alive >= config.idle_timeout {
            return Err(QuicError::Config(
                "keep_alive must be shorter than idle_timeout".into(),
            ));
        }
        let tls = config.tls.configs()?;
        let crypto = |e: &dyn std::fmt::Display| QuicError::Tls(TlsError::Crypto(e.to_string()));
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(
                IdleTimeout::try_from(config.idle_timeout)
                    .map_err(|_| QuicError::Config("idle_timeout is too long".into()))?,
            ))
            .keep_alive_interval(Some(config.keep_alive))
            // Room for every request a peer may have in flight, plus its hello.
            .max_concurrent_bidi_streams(
                VarInt::from_u64(config.max_in_flight as u64 + 8)
                    .map_err(|_| QuicError::Config("max_in_flight is too large".into()))?,
            )
            .max_concurrent_uni_streams(VarInt::from_u32(0));
        let transport = Arc::new(transport);
        let server_crypto = QuicServerConfig::try_from(tls.server).map_err(|e| crypto(&e))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(Arc::clone(&transport));
        let also = config
            .also_listen
            .iter()
            .map(|addr| {
                let endpoint = Endpoint::server(server.clone(), *addr).map_err(QuicError::Io)?;
                Ok(Listener {
                    endpoint,
                    accept: None,
                })
            })
            .collect::<Result<Vec<Listener>, QuicError>>()?;
        let client_crypto = QuicClientConfig::try_from(tls.client).map_err(|e| crypto(&e))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport);
        let endpoint = Endpoint::server(server, config.listen).map_err(QuicError::Io)?;
        let cluster = ClusterHash::of(&config.cluster_token);
        Ok(QuicTransport {
            shared: Arc::new(Shared {
                config,
                cluster,
                endpoint: RwLock::new(Some(endpoint)),
                client,
                verifies_server: tls.verifies_server,
                counters: Counters::default(),
                book: RwLock::new(HashMap::new()),
                peers: Mutex::new(HashMap::new()),
                closed: AtomicBool::new(false),
            }),
            accept: Mutex::new(None),
            also: Mutex::new(also),
        })
    }

    /// The UDP address the endpoint is bound to (the port chosen when `listen` had port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self.shared.endpoint() {
            Some(endpoint) => endpoint.local_addr(),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the peer transport is shut down",
            )),
        }
    }

    /// Every UDP address the transport accepts peers on: `listen`'s, then those of
    /// `also_listen` in order (empty after shutdown).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs: Vec<SocketAddr> = self.local_addr().into_iter().collect();
        if addrs.is_empty() {
            return addrs;
        }
        for listener in lock(&self.also).iter() {
            if let Ok(addr) = listener.endpoint.local_addr() {
                addrs.push(addr);
            }
        }
        addrs
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.shared.config.id
    }

    /// Records (or changes) the address of member `id`; its certificate must name the IP
    /// address. A changed address takes effect at the next request: the connection to the old
    /// one is closed then.
    pub fn set_peer(&self, id: NodeId, addr: SocketAddr) {
        self.book_insert(id, PeerAddress { addr, name: None });
    }

    /// [`QuicTransport::set_peer`] for a member whose peer URL names a host: `addr` is where
    /// `host` resolved to, and the member's certificate must name `host`.
    pub fn set_peer_named(&self, id: NodeId, addr: SocketAddr, host: &str) {
        let name = Some(host.to_string());
        self.book_insert(id, PeerAddress { addr, name });
    }

    fn book_insert(&self, id: NodeId, address: PeerAddress) {
        self.shared
            .book
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, address);
    }

    /// Forgets member `id` (a removed member): requests to it fail as unreachable.
    pub fn remove_peer(&self, id: NodeId) {
        self.shared
            .book
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(peer) = lock(&self.shared.peers).remove(&id) {
            peer.close();
        }
    }

    /// Starts answering peers with `handler` (the member's `ReplicatedStore::handler()`),
    /// replacing any handler served before.
    pub fn serve(&self, handler: Arc<dyn RaftHandler>) {
        let Some(endpoint) = self.shared.endpoint() else {
            return;
        };
        let task = tokio::spawn(super::server::accept_loop(
            Arc::clone(&self.shared),
            endpoint,
            Arc::clone(&handler),
        ));
        if let Some(old) = lock(&self.accept).replace(task) {
            old.abort();
        }
        for listener in lock(&self.also).iter_mut() {
            let task = tokio::spawn(super::server::accept_loop(
                Arc::clone(&self.shared),
                listener.endpoint.clone(),
                Arc::clone(&handler),
            ));
            if let Some(old) = listener.accept.replace(task) {
                old.abort();
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> QuicStats {
        self.shared.counters.snapshot()
    }

    /// Stops the transport: no more requests are answered or sent, connections are closed
    /// (peers see a shutdown close code at once, rather than waiting for the idle timeout),
    /// and the UDP socket is released (waits at most a second for peers to acknowledge).
    pub async fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::Release);
        let task = lock(&self.accept).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        let also: Vec<Listener> = lock(&self.also).drain(..).collect();
        for mut listener in also {
            if let Some(task) = listener.accept.take() {
                task.abort();
                let _ = task.await;
            }
            listener.endpoint.close(CLOSE_SHUTDOWN, b"shutdown");
            let _ =
                tokio::time::timeout(Duration::from_secs(1), listener.endpoint.wait_idle()).await;
        }
        let endpoint = self
            .shared
            .endpoint
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let peers: Vec<Arc<Peer>> = lock(&self.shared.peers).drain().map(|(_, p)| p).collect();
        for peer in peers {
            peer.close();
        }
        if let Some(endpoint) = endpoint {
            endpoint.close(CLOSE_SHUTDOWN, b"shutdown");
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        }
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Some(task) = lock(&self.accept).take() {
            task.abort();
        }
        for mut listener in lock(&self.also).drain(..) {
            if let Some(task) = listener.accept.take() {
                task.abort();
            }
            listener.endpoint.close(CLOSE_SHUTDOWN, b"shutdown");
        }
        let endpoint = self
            .shared
            .endpoint
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(endpoint) = endpoint {
            endpoint.close(CLOSE_SHUTDOWN, b"shutdown");
        }
    }
}

impl Transport for QuicTransport {
    /// Sends `request` to member `to`. `from` is ignored: peers learn the sender from the
    /// connection's hello, which carries this transport's own id.
    fn send(
        &self,
        _from: NodeId,
        to: NodeId,
        request: RaftRequest,
    ) -> BoxFuture<'static, Result<RaftReply, TransportError>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.send(to, request).await })
    }
}
