//! `etch serve`: etcd's v3 gRPC API over the store named by `--db`, so etcdctl and etcd client
//! libraries work against it. Flags carry etcd's names and defaults; logs are structured
//! (tracing); SIGTERM or SIGINT shuts down gracefully (stop accepting, finish in-flight
//! requests, close the store back into its single file).

use std::path::Path;
use std::time::Duration;

use clap::Args;
use etch_server::config::{
    parse_advertise_urls, parse_auto_compaction, parse_listen_urls, DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
};
use etch_server::{ConfigError, ServerConfig};

use crate::error::{CliError, CliResult, EXIT_OK};

/// etcd's exit code for a bad flag or flag value (Go's flag package: 2).
pub const EXIT_BAD_FLAG: u8 = 2;

/// Flags of `etch serve`, named as etcd's.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Human-readable name of this member
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Comma-separated URLs to serve clients on (gRPC and HTTP on the same port)
    #[arg(long, default_value = "http://localhost:2379", value_name = "URLS")]
    pub listen_client_urls: String,
    /// Comma-separated client URLs of this member, as reported to clients
    #[arg(long, default_value = "http://localhost:2379", value_name = "URLS")]
    pub advertise_client_urls: String,
    /// Extra URLs serving only /health, /version and /metrics
    #[arg(long, value_name = "URLS")]
    pub listen_metrics_urls: Option<String>,
    /// Raise the NOSPACE alarm when the store exceeds this many bytes (0: etch's default, 8 GiB)
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    pub quota_backend_bytes: u64,
    /// Auto compaction mode: periodic or revision
    #[arg(long, default_value = "periodic", value_name = "MODE")]
    pub auto_compaction_mode: String,
    /// Auto compaction retention: a duration (1h, 30m; a bare number is hours) for periodic,
    /// a revision count for revision; 0 turns auto compaction off
    #[arg(long, default_value = "0", value_name = "RETENTION")]
    pub auto_compaction_retention: String,
    /// Largest request the server accepts, in bytes
    #[arg(long, default_value_t = DEFAULT_MAX_REQUEST_BYTES, value_name = "BYTES")]
    pub max_request_bytes: usize,
    /// Most operations in one transaction
    #[arg(long, default_value_t = DEFAULT_MAX_TXN_OPS, value_name = "N")]
    pub max_txn_ops: usize,
    /// Log level: debug, info, warn, error
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
    /// Server certificate (PEM) for https:// client URLs
    #[arg(long, value_name = "FILE")]
    pub cert_file: Option<std::path::PathBuf>,
    /// Private key (PEM) of --cert-file
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<std::path::PathBuf>,
    /// CA certificates (PEM) that sign client certificates
    #[arg(long, value_name = "FILE")]
    pub trusted_ca_file: Option<std::path::PathBuf>,
    /// Refuse clients without a certificate signed by --trusted-ca-file
    #[arg(long)]
    pub client_cert_auth: bool,
    /// Serve https:// client URLs with a generated self-signed certificate
    #[arg(long)]
    pub auto_tls: bool,
    /// How often watches created with progress_notify get a progress notification
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    pub experimental_watch_progress_notify_interval: String,
}

fn bad_flag(e: ConfigError) -> CliError {
    CliError {
        code: EXIT_BAD_FLAG,
        message: e.to_string(),
        broken_pipe: false,
    }
}

/// The server configuration the flags describe.
fn config(db: &Path, args: &ServeArgs) -> Result<ServerConfig, ConfigError> {
    let mut config = ServerConfig::new(db);
    config.name = args.name.clone();
    config.listen_client_urls = parse_listen_urls("listen-client-urls", &args.listen_client_urls)?;
    config.advertise_client_urls =
        parse_advertise_urls("advertise-client-urls", &args.advertise_client_urls)?;
    if let Some(urls) = &args.listen_metrics_urls {
        let parsed = parse_listen_urls("listen-metrics-urls", urls)?;
        if parsed.iter().any(|u| u.tls) {
            return Err(ConfigError(
                "--listen-metrics-urls: https is not supported for metrics; use http".into(),
            ));
        }
        config.listen_metrics_urls = parsed.iter().map(|u| u.addr).collect();
    }
    config.quota_backend_bytes = (args.quota_backend_bytes > 0).then_some(args.quota_backend_bytes);
    config.auto_compaction =
        parse_auto_compaction(&args.auto_compaction_mode, &args.auto_compaction_retention)?;
    if args.max_request_bytes == 0 {
        return Err(ConfigError("--max-request-bytes must be positive".into()));
    }
    config.max_request_bytes = args.max_request_bytes;
    if args.max_txn_ops == 0 {
        return Err(ConfigError("--max-txn-ops must be positive".into()));
    }
    config.max_txn_ops = args.max_txn_ops;
    config.tls = etch_server::tls::TlsOptions {
        cert_file: args.cert_file.clone(),
        key_file: args.key_file.clone(),
        trusted_ca_file: args.trusted_ca_file.clone(),
        client_cert_auth: args.client_cert_auth,
        auto_tls: args.auto_tls,
    };
    config.watch_progress_notify_interval =
        etch_server::config::parse_duration(&args.experimental_watch_progress_notify_interval)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                ConfigError(format!(
                    "--experimental-watch-progress-notify-interval: {:?} is not a duration",
                    args.experimental_watch_progress_notify_interval
                ))
            })?;
    Ok(config)
}

fn log_level(level: &str) -> Result<tracing::Level, ConfigError> {
    match level {
        "debug" => Ok(tracing::Level::DEBUG),
        "info" => Ok(tracing::Level::INFO),
        "warn" => Ok(tracing::Level::WARN),
        "error" | "panic" | "fatal" => Ok(tracing::Level::ERROR),
        other => Err(ConfigError(format!(
            "--log-level: unknown level {other:?} (expected debug, info, warn or error)"
        ))),
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(db: &Path, args: &ServeArgs) -> CliResult<u8> {
    let config = config(db, args).map_err(bad_flag)?;
    let level = log_level(&args.log_level).map_err(bad_flag)?;
    // Logs go to stderr, as etcd's.
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("etch-serve")
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        tracing::info!(db = %config.db.display(), name = %config.name, "starting etch serve");
        let server = etch_server::start(config).await.map_err(|e| match e {
            etch_server::ServeError::Config(msg) => bad_flag(ConfigError(msg)),
            other => CliError::failed(other.to_string()),
        })?;
        server
            .run_until(termination())
            .await
            .map_err(|e| CliError::failed(e.to_string()))
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(EXIT_OK)
}

/// Completes on the first SIGTERM or SIGINT.
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("received SIGTERM"),
                _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
