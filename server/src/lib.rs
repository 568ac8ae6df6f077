//! etch-server: etcd's v3 gRPC API over an etch store, so etcdctl and etcd's client libraries
//! work unchanged against a single etch node (`etch serve`) or a member of an etch cluster
//! ([`start_member`]).
//!
//! The services map onto the store's API through a [`Backend`]: a local store (every engine
//! call on tokio's blocking pool, never on the async executor) or a Raft member
//! (`etch_replication::ReplicatedStore`). Errors carry etcd's gRPC codes and message texts.
//!
//! ```no_run
//! # async fn demo() -> Result<(), etch_server::ServeError> {
//! let mut config = etch_server::ServerConfig::new("app.etch");
//! config.listen_client_urls = vec![etch_server::config::ListenUrl::http("127.0.0.1:2379".parse().unwrap())];
//! let server = etch_server::start(config).await?;
//! server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![deny(missing_docs)]

pub mod auth;
pub mod authority;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod dispatch;
pub mod election;
pub mod errors;
pub mod etcd_config;
pub mod http;
pub mod kv;
pub mod launch;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod members;
pub mod metrics;
pub mod node;
mod notifier;
pub mod proto;
pub mod queue;
pub mod server;
pub mod tls;
pub mod watch;
pub mod watch_index;

pub use backend::Backend;
pub use config::{ConfigError, ServerConfig};
pub use node::Node;
pub use server::{start, start_member, ServeError, ServerHandle};
