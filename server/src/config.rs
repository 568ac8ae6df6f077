//! What `etch serve` runs with: etcd's flags, parsed and checked before anything starts.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use etch_engine::AutoCompaction;

/// A server's configuration (etcd's flag names in the field docs).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The store file (`--db`).
    pub db: PathBuf,
    /// Human-readable member name (`--name`, default `default`).
    pub name: String,
    /// Addresses serving gRPC and HTTP (`--listen-client-urls`); `https://` ones with TLS.
    pub listen_client_urls: Vec<ListenUrl>,
    /// Client URLs this member advertises in MemberList (`--advertise-client-urls`).
    pub advertise_client_urls: Vec<String>,
    /// Extra addresses serving only `/health`, `/version` and `/metrics`
    /// (`--listen-metrics-urls`).
    pub listen_metrics_urls: Vec<SocketAddr>,
    /// Space quota in bytes; `None` for the engine's default (`--quota-backend-bytes`, 0).
    pub quota_backend_bytes: Option<u64>,
    /// Automatic compaction (`--auto-compaction-mode` and `--auto-compaction-retention`).
    pub auto_compaction: Option<AutoCompaction>,
    /// Largest request the server accepts (`--max-request-bytes`, 1.5 MiB).
    pub max_request_bytes: usize,
    /// Most operations per transaction (`--max-txn-ops`, 128).
    pub max_txn_ops: usize,
    /// How often a watch created with `progress_notify` gets a progress notification
    /// (etcd's `--experimental-watch-progress-notify-interval`, 10 minutes).
    pub watch_progress_notify_interval: Duration,
    /// TLS for clients (`--cert-file`, `--key-file`, `--trusted-ca-file`,
    /// `--client-cert-auth`, `--auto-tls`).
    pub tls: crate::tls::TlsOptions,
    /// How long a graceful shutdown waits for in-flight requests before closing anyway.
    pub shutdown_grace: Duration,
    /// The cluster's token (`--initial-cluster-token`, `etcd-cluster`); over a cluster member
    /// the cluster id in every header is derived from it, so all members must share it.
    pub initial_cluster_token: String,
}

impl ServerConfig {
    /// etcd's defaults for a store at `db`: client URL `http://localhost:2379`, name `default`.
    pub fn new(db: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            db: db.into(),
            name: "default".to_string(),
            listen_client_urls: vec![ListenUrl::http(SocketAddr::from(([127, 0, 0, 1], 2379)))],
            advertise_client_urls: vec!["http://localhost:2379".to_string()],
            listen_metrics_urls: Vec::new(),
            quota_backend_bytes: None,
            auto_compaction: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            watch_progress_notify_interval: Duration::from_secs(600),
            tls: crate::tls::TlsOptions::default(),
            shutdown_grace: Duration::from_secs(10),
            initial_cluster_token: "etcd-cluster".to_string(),
        }
    }
}

/// An address to listen on and whether it speaks TLS (`https://`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenUrl {
    /// The socket address.
    pub addr: SocketAddr,
    /// True for an `https://` URL.
    pub tls: bool,
}

impl ListenUrl {
    /// A plain `http://` address.
    pub fn http(addr: SocketAddr) -> ListenUrl {
        ListenUrl { addr, tls: false }
    }
}

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// Slack above `max_request_bytes` for a message's framing, as etcd's gRPC limit
/// (`grpcOverheadBytes`): a request just over the limit gets etcd's "request is too large"
/// from the request check rather than a transport error.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// A configuration error: a bad URL or flag value. The message names the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Parses a comma-separated list of `http://host:port` or `https://host:port` URLs, as
/// etcd's `--listen-client-urls`.
pub fn parse_listen_urls(flag: &str, urls: &str) -> Result<Vec<ListenUrl>, ConfigError> {
    let mut out = Vec::new();
    for url in split_urls(urls) {
        let (scheme, hostport) = url.split_once("://").ok_or_else(|| {
            ConfigError(format!(
                "--{flag}: URL {url:?} has no scheme (expected http://host:port)"
            ))
        })?;
        let tls = match scheme {
            "http" => false,
            "https" => true,
            _ => {
                return Err(ConfigError(format!(
                    "--{flag}: URL scheme must be http or https (got {url:?})"
                )))
            }
        };
        let hostport = hostport.trim_end_matches('/');
        if hostport.contains('/') {
            return Err(ConfigError(format!(
                "--{flag}: URL {url:?} must not have a path"
            )));
        }
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| ConfigError(format!("--{flag}: bad address in {url:?}: {e}")))?
            .next()
            .ok_or_else(|| ConfigError(format!("--{flag}: {url:?} resolves to no address")))?;
        out.push(ListenUrl { addr, tls });
    }
    if out.is_empty() {
        return Err(ConfigError(format!("--{flag}: no URL given")));
    }
    Ok(out)
}

/// Checks a comma-separated list of advertised URLs (`http://host:port` each).
pub fn parse_advertise_urls(flag: &str, urls: &str) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = split_urls(urls).map(str::to_string).collect();
    for url in &list {
        let ok = url
            .split_once("://")
            .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && !rest.is_empty());
        if !ok {
            return Err(ConfigError(format!(
                "--{flag}: {url:?} is not an http:// or https:// URL"
            )));
        }
    }
    if list.is_empty() {
        return Err(ConfigError(format!("--{flag}: no URL given")));
    }
    Ok(list)
}

fn split_urls(urls: &str) -> impl Iterator<Item = &str> {
    urls.split(',').map(str::trim).filter(|u| !u.is_empty())
}

/// etcd's `--auto-compaction-mode` (`periodic` or `revision`) with `--auto-compaction-retention`
/// (for periodic: a duration such as `1h` or `30m`, or a bare number of hours; for revision:
/// a count). A retention of 0 turns compaction off, as in etcd.
pub fn parse_auto_compaction(
    mode: &str,
    retention: &str,
) -> Result<Option<AutoCompaction>, ConfigError> {
    let retention = retention.trim();
    match mode {
        "periodic" => {
            let every = parse_duration(retention).ok_or_else(|| {
                ConfigError(format!(
                    "--auto-compaction-retention: {retention:?} is not a duration (e.g. 1h, 30m, 10s, or hours as a number)"
                ))
            })?;
            Ok(if every.is_zero() {
                Some(AutoCompaction::Off)
            } else {
                Some(AutoCompaction::Periodic(every))
            })
        }
        "revision" => {
            let n: u64 = retention.parse().map_err(|_| {
                ConfigError(format!(
                    "--auto-compaction-retention: {retention:?} is not a revision count"
                ))
            })?;
            Ok(Some(if n == 0 {
                AutoCompaction::Off
            } else {
                AutoCompaction::Revisions(n)
            }))
        }
        other => Err(ConfigError(format!(
            "--auto-compaction-mode: unknown mode {other:?} (expected periodic or revision)"
        ))),
    }
}

/// A Go-style duration (`1h`, `30m`, `1h30m`, `10s`, `500ms`) or a bare number of hours.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if let Ok(hours) = s.parse::<u64>() {
        return Some(Duration::from_secs(hours.checked_mul(3600)?));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}
