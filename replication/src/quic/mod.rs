//! The QUIC peer transport: [`QuicTransport`] carries Raft messages between members over QUIC
//! (quinn) with TLS 1.3 (rustls, ring), mutual when configured.
//!
//! ```text
//! let transport = Arc::new(QuicTransport::bind(QuicConfig::new(id, listen, token, tls))?);
//! transport.set_peer(2, "10.0.0.2:2380".parse()?);          // the address book
//! let db = ReplicatedStore::open(config, path, opts, log, Arc::clone(&transport)).await?;
//! transport.serve(db.handler());                             // answer peers
//! ```
//!
//! - [`tls`]: etcd's peer TLS flags and the rustls configurations they make;
//! - [`hello`]: the cluster and member identity check at the start of every connection;
//! - [`frame`]: length-prefixed, size-limited message frames;
//! - [`peer`]: one connection per peer, reconnection with capped backoff, bounded in-flight
//!   requests;
//! - [`server`]: accepting connections and answering requests with the member's handler;
//! - [`transport`]: [`QuicTransport`], the [`crate::network::Transport`] over all of these.
//!
//! The design is described in `docs/design.md` ("Peer transport").

pub mod config;
pub mod frame;
pub mod hello;
pub mod peer;
pub mod server;
pub mod stats;
pub mod tls;
pub mod transport;

pub use config::QuicConfig;
pub use stats::QuicStats;
pub use tls::{PeerTls, PeerTlsOptions, TlsError};
pub use transport::{QuicError, QuicTransport};
