//! The connection flags (etcdctl's names and defaults) and dialing one endpoint.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{ArgAction, Args};
use tonic::transport::{Channel, Endpoint};

use crate::args::parse_duration;
use crate::error::{CliError, CliResult};

/// Global flags of client mode.
#[derive(Args, Clone, Debug)]
pub struct ConnArgs {
    /// Client mode: talk to these servers (comma-separated, e.g. 127.0.0.1:2379 or
    /// https://host:2379) instead of opening --db [env: ETCH_ENDPOINTS, then ETCDCTL_ENDPOINTS]
    #[arg(
        long,
        global = true,
        env = "ETCH_ENDPOINTS",
        hide_env = true,
        value_delimiter = ',',
        value_name = "URLS"
    )]
    pub endpoints: Vec<String>,
    /// Verify the server's certificate with this CA bundle (PEM); enables TLS
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require one (--client-cert-auth); with --key
    #[arg(
        long = "cert",
        id = "tls_cert",
        global = true,
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert
    #[arg(
        long = "key",
        id = "tls_key",
        global = true,
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub key: Option<PathBuf>,
    /// Use TLS but accept any server certificate (testing only, as etcdctl warns)
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Without TLS flags or an https:// endpoint, talk plaintext (as etcdctl); false forces TLS
    #[arg(
        long,
        global = true,
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub insecure_transport: bool,
    /// Longest wait for one connection to an endpoint
    #[arg(long, global = true, default_value = "2s", value_name = "DURATION", value_parser = parse_duration)]
    pub dial_timeout: Duration,
    /// Longest wait for a connection, and for each request (the streams of watch, keep-alive,
    /// lock, elect and snapshot save run until done or interrupted)
    #[arg(long, global = true, default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub command_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings while a call is open (at least 10s, as grpc-go)
    #[arg(long, global = true, default_value = "2s", value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_time: Duration,
    /// How long a keep-alive ping may go unanswered before the connection is dropped
    #[arg(long, global = true, default_value = "6s", value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,
}

impl ConnArgs {
    /// The endpoints: `--endpoints` / `ETCH_ENDPOINTS`, else `ETCDCTL_ENDPOINTS` (read by
    /// [`ConnArgs::fall_back_to_etcdctl_env`]); empty means file mode.
    pub fn endpoints(&self) -> CliResult<Vec<String>> {
        let list: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if list.is_empty() {
            return Err(CliError::bad_args("no endpoints given (--endpoints)"));
        }
        for endpoint in &list {
            url(endpoint, false)?;
        }
        Ok(list)
    }

    /// Takes the endpoints from `ETCDCTL_ENDPOINTS` when none were given otherwise.
    pub fn fall_back_to_etcdctl_env(&mut self) {
        if self.endpoints.is_empty() {
            if let Ok(v) = std::env::var("ETCDCTL_ENDPOINTS") {
                self.endpoints = v.split(',').map(str::to_string).collect();
            }
        }
    }

    /// True when a server is named: the commands run in client mode.
    pub fn is_client(&self) -> bool {
        self.endpoints.iter().any(|e| !e.trim().is_empty())
    }

    /// True when connections use TLS for `endpoint`: an https:// endpoint, any TLS file, or
    /// `--insecure-transport=false` (etcdctl's rule).
    pub fn uses_tls(&self, endpoint: &str) -> bool {
        endpoint.starts_with("https://")
            || self.cacert.is_some()
            || self.cert.is_some()
            || self.insecure_skip_tls_verify
            || !self.insecure_transport
    }
}

/// The URL tonic dials for an endpoint as etcdctl takes it (`host:port`, `http://host:port`,
/// `https://host:port`).
pub fn url(endpoint: &str, tls: bool) -> CliResult<String> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint);
    if rest.contains("://") || rest.is_empty() {
        return Err(CliError::bad_args(format!(
            "unsupported endpoint {endpoint:?} (expected host:port, http://host:port or https://host:port)"
        )));
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{}", rest.trim_end_matches('/')))
}

/// Dials one endpoint, bounded by `--dial-timeout` and the command's `deadline`.
pub async fn dial(conn: &ConnArgs, endpoint: &str, deadline: Instant) -> Result<Channel, String> {
    let tls = conn.uses_tls(endpoint);
    // Without verification the TLS is done by our own connector, under a plain URL.
    let own_tls = tls && conn.insecure_skip_tls_verify;
    let url = url(endpoint, tls && !own_tls).map_err(|e| e.message)?;
    let left = deadline.saturating_duration_since(Instant::now());
    let limit = conn.dial_timeout.min(left).max(Duration::from_millis(1));
    let mut ep = Endpoint::from_shared(url)
        .map_err(|e| e.to_string())?
        .connect_timeout(limit)
        .tcp_nodelay(true)
        // As grpc-go (etcdctl's client): pings no more often than every 10 s and only while
        // a call is open, which etcd's server policy (5 s minimum, none without streams)
        // accepts; closer pings would be answered with GOAWAY "too_many_pings".
        .http2_keep_alive_interval(conn.keepalive_time.max(MIN_KEEPALIVE_TIME))
        .keep_alive_timeout(conn.keepalive_timeout)
        .keep_alive_while_idle(false);
    if own_tls {
        let config = super::tls::insecure::client_config(conn).map_err(|e| e.message)?;
        return match tokio::time::timeout(limit, super::tls::insecure::connect(ep, config)).await {
            Ok(result) => result,
            Err(_) => Err(super::DEADLINE_EXCEEDED.to_string()),
        };
    }
    if tls {
        let config = super::tls::config(conn).map_err(|e| e.message)?;
        ep = ep.tls_config(config).map_err(|e| error_chain(&e))?;
    }
    match tokio::time::timeout(limit, ep.connect()).await {
        Ok(Ok(ch)) => Ok(ch),
        Ok(Err(e)) => Err(error_chain(&e)),
        Err(_) => Err(super::DEADLINE_EXCEEDED.to_string()),
    }
}

/// Dials `endpoint` until it answers or `deadline` passes (etcdctl's client keeps retrying a
/// refused connection until the command's context ends); the last error on failure.
pub async fn dial_until(
    conn: &ConnArgs,
    endpoint: &str,
    deadline: Instant,
) -> Result<Channel, String> {
    loop {
        let err = match dial(conn, endpoint, deadline).await {
            Ok(ch) => return Ok(ch),
            Err(e) => e,
        };
        if Instant::now() + RETRY_PAUSE >= deadline {
            return Err(err);
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// The shortest interval between keep-alive pings (grpc-go's floor).
const MIN_KEEPALIVE_TIME: Duration = Duration::from_secs(10);

/// The pause between two dials of an endpoint that refused.
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// An error with its causes, `a: b: c` (tonic's top-level message alone says little).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// A client log line on stderr in the shape etcdctl's logger writes (one JSON object), so
/// scripts that skip `{"level":...}` lines skip it too.
pub fn log_warn(msg: &str, error: &str) {
    let line = serde_json::json!({ "level": "warn", "msg": msg, "error": error });
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn endpoints_become_urls() {
        assert_eq!(
            url("127.0.0.1:2379", false).unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(url("http://h:1", true).unwrap(), "https://h:1");
        assert_eq!(url("https://h:1/", true).unwrap(), "https://h:1");
        assert!(url("unix://x", false).is_err());
        assert!(url("", false).is_err());
    }
}
