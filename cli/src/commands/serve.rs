//! `etch serve`: etcd's v3 gRPC API over the store named by `--db`, so etcdctl and etcd client
//! libraries work against it; with etcd's member flags (`--initial-cluster`,
//! `--listen-peer-urls`, ...) or `--config-file`, as a member of a replicated cluster
//! (`etch_server::launch`). Flags carry etcd's names and defaults; logs are structured
//! (tracing); SIGTERM or SIGINT shuts down gracefully (stop accepting, finish in-flight
//! requests, close the store back into its single file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use etch_server::config::{
    parse_advertise_urls, parse_auto_compaction, parse_listen_urls, DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
};
use etch_server::etcd_config::{EtcdConfig, MemberSettings};
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
    #[command(flatten)]
    pub member: MemberFlags,
}

/// etcd's cluster-member flags. Any of them (or `--config-file`) makes `etch serve` a member
/// of a replicated cluster (peers over QUIC); without them it serves the `--db` file alone.
#[derive(Debug, Default, Args)]
pub struct MemberFlags {
    /// etcd's YAML configuration file; it replaces the member flags (as in etcd)
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<std::path::PathBuf>,
    /// Directory of the member's file (<data-dir>/member.etch; default <name>.etcd)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// URLs to listen on for peers (the port is QUIC's UDP port)
    #[arg(long, value_name = "URLS")]
    pub listen_peer_urls: Option<String>,
    /// This member's peer URLs, as advertised to the cluster
    #[arg(long, value_name = "URLS")]
    pub initial_advertise_peer_urls: Option<String>,
    /// The initial cluster: name=peer-url,... (every member, this one included)
    #[arg(long, value_name = "NAME=URL,...")]
    pub initial_cluster: Option<String>,
    /// new: start a cluster with initial-cluster; existing: join one (after member add)
    #[arg(long, value_name = "new|existing")]
    pub initial_cluster_state: Option<String>,
    /// The cluster's token (peers with another token are refused; member ids derive from it)
    #[arg(long, value_name = "TOKEN")]
    pub initial_cluster_token: Option<String>,
    /// Heartbeat interval in milliseconds (100)
    #[arg(long, value_name = "MS")]
    pub heartbeat_interval: Option<String>,
    /// Election timeout in milliseconds (1000)
    #[arg(long, value_name = "MS")]
    pub election_timeout: Option<String>,
    /// Applied entries between Raft snapshots (100000)
    #[arg(long, value_name = "N")]
    pub snapshot_count: Option<String>,
    /// Start a one-member cluster from this member's data
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub force_new_cluster: Option<String>,
    /// This member's peer certificate (PEM)
    #[arg(long, value_name = "FILE")]
    pub peer_cert_file: Option<String>,
    /// Private key (PEM) of --peer-cert-file
    #[arg(long, value_name = "FILE")]
    pub peer_key_file: Option<String>,
    /// CA (PEM) that signs the peers' certificates
    #[arg(long, value_name = "FILE")]
    pub peer_trusted_ca_file: Option<String>,
    /// Refuse peers without a certificate signed by --peer-trusted-ca-file
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub peer_client_cert_auth: Option<String>,
    /// Self-signed peer certificates (peers are then NOT authenticated)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub peer_auto_tls: Option<String>,
}

impl MemberFlags {
    /// The member-only flags given, by etcd's name.
    fn given(&self) -> Vec<(&'static str, &str)> {
        [
            ("data-dir", &self.data_dir),
            ("listen-peer-urls", &self.listen_peer_urls),
            (
                "initial-advertise-peer-urls",
                &self.initial_advertise_peer_urls,
            ),
            ("initial-cluster", &self.initial_cluster),
            ("initial-cluster-state", &self.initial_cluster_state),
            ("initial-cluster-token", &self.initial_cluster_token),
            ("heartbeat-interval", &self.heartbeat_interval),
            ("election-timeout", &self.election_timeout),
            ("snapshot-count", &self.snapshot_count),
            ("force-new-cluster", &self.force_new_cluster),
            ("peer-cert-file", &self.peer_cert_file),
            ("peer-key-file", &self.peer_key_file),
            ("peer-trusted-ca-file", &self.peer_trusted_ca_file),
            ("peer-client-cert-auth", &self.peer_client_cert_auth),
            ("peer-auto-tls", &self.peer_auto_tls),
        ]
        .into_iter()
        .filter_map(|(flag, value)| value.as_deref().map(|v| (flag, v)))
        .collect()
    }
}

/// The `--db` default: a `--db` equal to it names no file (the member's file is then in
/// its data directory).
const DEFAULT_DB: &str = "./default.etch";

/// The member's configuration: the YAML file, or the flags (etcd's names; the flags shared
/// with a standalone server included).
fn etcd_config(args: &ServeArgs) -> Result<EtcdConfig, ConfigError> {
    if let Some(path) = &args.member.config_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "--config-file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        let given = args.member.given();
        if let Some((flag, _)) = given.first() {
            return Err(ConfigError(format!(
                "--{flag}: a --config-file replaces the member flags; set {flag} in the file"
            )));
        }
        return EtcdConfig::from_yaml(&text);
    }
    let mut config = EtcdConfig::default();
    let quota = args.quota_backend_bytes.to_string();
    for (flag, value) in [
        ("name", args.name.as_str()),
        ("listen-client-urls", args.listen_client_urls.as_str()),
        ("advertise-client-urls", args.advertise_client_urls.as_str()),
        ("quota-backend-bytes", quota.as_str()),
        ("auto-compaction-mode", args.auto_compaction_mode.as_str()),
        (
            "auto-compaction-retention",
            args.auto_compaction_retention.as_str(),
        ),
        ("log-level", args.log_level.as_str()),
    ] {
        config.set(flag, value)?;
    }
    for (flag, value) in args.member.given() {
        config.set(flag, value)?;
    }
    Ok(config)
}

/// The member's file: `--db` when it names one, else `<data-dir>/member.etch`.
fn member_file(
    db: &Path,
    settings: &MemberSettings,
    data_dir_given: bool,
) -> Result<PathBuf, ConfigError> {
    let db_given = db != Path::new(DEFAULT_DB);
    match (db_given, data_dir_given) {
        (true, true) => Err(ConfigError(
            "--db names the member's file and data-dir its directory: give one of them".into(),
        )),
        (true, false) => Ok(db.to_path_buf()),
        (false, _) => {
            let dir = PathBuf::from(&settings.data_dir);
            std::fs::create_dir_all(&dir).map_err(|e| {
                ConfigError(format!("data-dir: cannot create {}: {e}", dir.display()))
            })?;
            Ok(dir.join("member.etch"))
        }
    }
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

/// Runs the server until SIGTERM or SIGINT: a cluster member when member flags or
/// `--config-file` are given, else a standalone server over `--db`.
pub fn run(db: &Path, args: &ServeArgs) -> CliResult<u8> {
    let member = args.member.config_file.is_some() || !args.member.given().is_empty();
    let mut config = config(db, args).map_err(bad_flag)?;
    let settings = if member {
        let etcd = etcd_config(args).map_err(bad_flag)?;
        let settings = etcd.validate().map_err(bad_flag)?;
        let data_dir_given = etcd.data_dir.is_some();
        config.db = member_file(db, &settings, data_dir_given).map_err(bad_flag)?;
        Some(settings)
    } else {
        None
    };
    let level_name = settings
        .as_ref()
        .map_or(args.log_level.as_str(), |s| s.log_level.as_str());
    let level = log_level(level_name).map_err(bad_flag)?;
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
    let serve_error = |e: etch_server::ServeError| match e {
        etch_server::ServeError::Config(msg) => bad_flag(ConfigError(msg)),
        other => CliError::failed(other.to_string()),
    };
    runtime.block_on(async {
        match settings {
            None => {
                tracing::info!(db = %config.db.display(), name = %config.name, "starting etch serve");
                let server = etch_server::start(config).await.map_err(serve_error)?;
                server
                    .run_until(termination())
                    .await
                    .map_err(|e| CliError::failed(e.to_string()))
            }
            Some(settings) => {
                tracing::info!(
                    file = %config.db.display(),
                    name = %settings.name,
                    "starting etch serve as a cluster member"
                );
                let file = config.db.clone();
                let running = etch_server::launch::start_cluster_member(&settings, &file, config)
                    .await
                    .map_err(|e| match e {
                        etch_server::launch::LaunchError::Config(msg) => {
                            bad_flag(ConfigError(msg))
                        }
                        etch_server::launch::LaunchError::Serve(e) => serve_error(e),
                        other => CliError::failed(other.to_string()),
                    })?;
                termination().await;
                tracing::info!("shutting down");
                running
                    .shutdown()
                    .await
                    .map_err(|e| CliError::failed(e.to_string()))
            }
        }
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
