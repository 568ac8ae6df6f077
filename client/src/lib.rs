//! etch-client: a Rust client of `etch serve` and of etcd v3 servers, with the local store's
//! method names, types and errors, so code moves from a file to a server without changes.
//!
//! ```no_run
//! use etch_client::{Client, ClientOptions};
//! use etch_engine::Range;
//! let client = Client::connect(&["127.0.0.1:2379", "127.0.0.1:22379"], ClientOptions::default())?;
//! client.put("svc/api", "10.0.0.7:8080")?;
//! for kv in client.range(Range::prefix("svc/"))?.kvs {
//!     println!("{}", String::from_utf8_lossy(&kv.key));
//! }
//! # Ok::<(), etch_client::Error>(())
//! ```
//!
//! - [`Client`] blocks (it drives a two-thread tokio runtime of its own); [`AsyncClient`] is
//!   the same API as `async fn`s for code already on tokio (its futures need a tokio runtime).
//! - **Endpoints and failover.** Requests go round robin over the endpoints; one that fails is
//!   tried last for [`ClientOptions::endpoint_backoff`]. Reads are retried on the next endpoint
//!   after any connection failure; writes only when the request surely never reached a server
//!   (the connection was refused), otherwise they fail with [`Error::Unavailable`] and
//!   `maybe_applied: true`. At most `1 + retries` rounds over the endpoints, never past
//!   [`ClientOptions::request_timeout`].
//! - **Watches** resume after a lost connection from the revision after the last one delivered,
//!   on any endpoint: no gap, no duplicate ([`AsyncClient::watch_with`]).
//! - **Leases** can be kept alive in the background ([`Client::keep_alive`]).
//! - **Locks and elections** through the server's Lock and Election services
//!   ([`Client::lock`], [`Client::campaign`]).
//! - **TLS** with a CA, and a client certificate for servers that require one
//!   ([`TlsOptions`]).
//! - **Errors**: the engine's [`etch_engine::Error`] where the server's error means the same
//!   (compacted, future revision, lease not found, too many operations...), as
//!   [`Error::Engine`]; typed client errors otherwise. The mapping table is in [`mod@error`].
//!
//! Differences from a local store that remain: `WatchResponse::caught_up` is never set (etcd's
//! protocol does not mark the end of a replay), and a watch's `progress_notify` interval is the
//! server's (etcd's is 10 minutes), the option only turns it on.

#![deny(missing_docs)]

mod async_client;
mod balancer;
mod client;
pub mod convert;
pub mod error;
mod keepalive;
mod options;
mod recipes;
mod watch;

pub use async_client::{AsyncClient, HashKv, ServerStatus};
pub use client::{Client, Watcher};
pub use error::{Error, Result};
pub use keepalive::{KeepAlive, KeepAliveStatus};
pub use options::{ClientOptions, TlsOptions};
pub use recipes::{Leader, LockKey};
pub use watch::WatchStream;
