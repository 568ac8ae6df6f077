//! Client mode: with `--endpoints`, commands talk etcd's v3 gRPC API to a server (`etch serve`
//! or etcd) instead of opening a file.
//!
//! One tokio runtime per process drives tonic; commands stay synchronous and block on each call
//! ([`Client::call`]). The connection rules follow etcdctl: endpoints are tried in order, each
//! dial is bounded by `--dial-timeout`, and a command gives up after `--command-timeout` with
//! etcd's "context deadline exceeded" (exit 1). Server errors print their gRPC message, which
//! etcd (and `etch serve`) make etcd's text, e.g. `etcdserver: requested lease not found`.

pub mod conn;
pub mod convert;
pub mod tls;

use std::future::Future;
use std::time::Instant;

use tonic::transport::Channel;

pub use conn::ConnArgs;

use crate::error::{CliError, CliResult};
use crate::output::json::ServerIds;
use etch_server::proto::etcdserverpb::ResponseHeader;

/// etcd's text for a request that ran out of time (Go's `context.DeadlineExceeded`).
pub const DEADLINE_EXCEEDED: &str = "context deadline exceeded";

/// A connection to one server endpoint, with the runtime that drives it.
pub struct Client {
    rt: tokio::runtime::Runtime,
    /// The channel to the endpoint that answered.
    pub channel: Channel,
    /// That endpoint, as given on the command line.
    pub endpoint: String,
    conn: ConnArgs,
}

/// A runtime for tonic: two workers, enough for a call plus a background keep-alive.
pub fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the client runtime: {e}")))
}

impl Client {
    /// Connects to the first endpoint that answers, retrying until `--command-timeout` has
    /// passed since the start.
    pub fn connect(conn: &ConnArgs) -> CliResult<Client> {
        let rt = runtime()?;
        let started = Instant::now();
        let deadline = started + conn.command_timeout;
        let endpoints = conn.endpoints()?;
        let (channel, endpoint) = rt.block_on(async {
            loop {
                let mut last = String::new();
                for ep in &endpoints {
                    match conn::dial(conn, ep, deadline).await {
                        Ok(ch) => return Ok((ch, ep.clone())),
                        Err(e) => last = format!("{ep}: {e}"),
                    }
                }
                if Instant::now() + conn::RETRY_PAUSE >= deadline {
                    // As etcdctl: a client log line with the cause, then the deadline error.
                    conn::log_warn("dialing the endpoints failed", &last);
                    return Err(CliError::failed(DEADLINE_EXCEEDED));
                }
                tokio::time::sleep(conn::RETRY_PAUSE).await;
            }
        })?;
        Ok(Client {
            rt,
            channel,
            endpoint,
            conn: conn.clone(),
        })
    }

    /// The runtime (for streams and background tasks).
    pub fn rt(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// The connection flags.
    pub fn conn(&self) -> &ConnArgs {
        &self.conn
    }

    /// Runs one unary call, bounded by `--command-timeout` (as etcdctl, each request gets its
    /// own; a transaction typed interactively is not rushed).
    pub fn call<T>(
        &self,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> CliResult<T> {
        self.rt.block_on(async {
            match tokio::time::timeout(self.conn.command_timeout, fut).await {
                Ok(Ok(resp)) => Ok(resp.into_inner()),
                Ok(Err(status)) => Err(status_error(&status)),
                Err(_) => Err(CliError::failed(DEADLINE_EXCEEDED)),
            }
        })
    }

    /// Runs a call with no time limit (streams, waits for a lock), on the runtime.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }
}

/// A gRPC status as etcdctl prints it: the server's message (etcd's text), exit 1.
pub fn status_error(status: &tonic::Status) -> CliError {
    match status.code() {
        tonic::Code::DeadlineExceeded => CliError::failed(DEADLINE_EXCEEDED),
        _ if status.message().is_empty() => CliError::failed(format!("{status}")),
        _ => CliError::failed(status.message()),
    }
}

/// The cluster, member and term of a response header, for the printers.
pub fn ids(header: Option<&ResponseHeader>) -> ServerIds {
    header.map_or_else(ServerIds::default, |h| ServerIds {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        raft_term: h.raft_term,
    })
}

/// The revision of a response header (0 without one).
pub fn revision(header: Option<&ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision)
}
