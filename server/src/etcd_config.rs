//! A cluster member's configuration in etcd's vocabulary: the keys of etcd's YAML
//! configuration file (`--config-file`) and the same names as flags, with etcd's defaults, and
//! validation with errors that name the key.
//!
//! As in etcd, a configuration file replaces the flags (it is not merged with them). Parse a
//! file with [`EtcdConfig::from_yaml`], or start from [`EtcdConfig::default`] and
//! [`EtcdConfig::set`] each flag; then [`EtcdConfig::validate`] gives the checked
//! [`MemberSettings`]. Wiring the settings to the peer transport is not done here.

use std::time::Duration;

use etch_engine::AutoCompaction;
use serde::Deserialize;

use crate::config::{parse_advertise_urls, parse_auto_compaction, parse_listen_urls, ListenUrl};
use crate::ConfigError;

/// etcd's keys and defaults. Field names are the YAML keys (and flag names) with `-` for `_`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct EtcdConfig {
    /// `name`: this member's name (`default`).
    pub name: String,
    /// `data-dir`: where the member's file lives (`<name>.etcd`).
    pub data_dir: Option<String>,
    /// `listen-peer-urls` (`http://localhost:2380`).
    pub listen_peer_urls: String,
    /// `initial-advertise-peer-urls` (`http://localhost:2380`).
    pub initial_advertise_peer_urls: String,
    /// `listen-client-urls` (`http://localhost:2379`).
    pub listen_client_urls: String,
    /// `advertise-client-urls` (`http://localhost:2379`).
    pub advertise_client_urls: String,
    /// `initial-cluster`: `name=peer-url,...` (`default=http://localhost:2380`; etcd's default
    /// uses the member's name).
    pub initial_cluster: Option<String>,
    /// `initial-cluster-state`: `new` or `existing` (`new`).
    pub initial_cluster_state: String,
    /// `initial-cluster-token` (`etcd-cluster`).
    pub initial_cluster_token: String,
    /// `heartbeat-interval` in milliseconds (100).
    pub heartbeat_interval: u64,
    /// `election-timeout` in milliseconds (1000).
    pub election_timeout: u64,
    /// `snapshot-count`: applied entries between snapshots (100,000, etcd 3.5's).
    pub snapshot_count: u64,
    /// `quota-backend-bytes` (0: etch's default).
    pub quota_backend_bytes: u64,
    /// `auto-compaction-mode`: `periodic` or `revision` (`periodic`).
    pub auto_compaction_mode: String,
    /// `auto-compaction-retention` (`0`: off). A number or a duration string.
    pub auto_compaction_retention: Retention,
    /// `force-new-cluster` (false).
    pub force_new_cluster: bool,
    /// `peer-transport-security`: the peers' TLS.
    pub peer_transport_security: PeerSecurity,
    /// `log-level`: debug, info, warn, error, panic or fatal (`info`).
    pub log_level: String,
}

/// `auto-compaction-retention`, which YAML may give as a number or a string.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Retention {
    /// A bare number (hours for periodic, revisions for revision).
    Number(u64),
    /// A duration such as `1h30m`, or a number as text.
    Text(String),
}

impl Default for Retention {
    fn default() -> Retention {
        Retention::Text("0".into())
    }
}

impl Retention {
    fn as_text(&self) -> String {
        match self {
            Retention::Number(n) => n.to_string(),
            Retention::Text(s) => s.clone(),
        }
    }
}

/// etcd's `peer-transport-security` block (and the `--peer-*` flags).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct PeerSecurity {
    /// `cert-file` (`--peer-cert-file`).
    pub cert_file: Option<String>,
    /// `key-file` (`--peer-key-file`).
    pub key_file: Option<String>,
    /// `client-cert-auth` (`--peer-client-cert-auth`): peers must present a certificate
    /// signed by `trusted-ca-file`.
    pub client_cert_auth: bool,
    /// `trusted-ca-file` (`--peer-trusted-ca-file`).
    pub trusted_ca_file: Option<String>,
    /// `auto-tls` (`--peer-auto-tls`): self-signed certificates, peers not authenticated.
    pub auto_tls: bool,
}

impl Default for EtcdConfig {
    fn default() -> EtcdConfig {
        EtcdConfig {
            name: "default".into(),
            data_dir: None,
            listen_peer_urls: "http://localhost:2380".into(),
            initial_advertise_peer_urls: "http://localhost:2380".into(),
            listen_client_urls: "http://localhost:2379".into(),
            advertise_client_urls: "http://localhost:2379".into(),
            initial_cluster: None,
            initial_cluster_state: "new".into(),
            initial_cluster_token: "etcd-cluster".into(),
            heartbeat_interval: 100,
            election_timeout: 1000,
            snapshot_count: 100_000,
            quota_backend_bytes: 0,
            auto_compaction_mode: "periodic".into(),
            auto_compaction_retention: Retention::default(),
            force_new_cluster: false,
            peer_transport_security: PeerSecurity::default(),
            log_level: "info".into(),
        }
    }
}

/// Whether the member starts a new cluster or joins a running one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// `new`: every member of `initial-cluster` starts together.
    New,
    /// `existing`: the member was added with MemberAdd and joins.
    Existing,
}

/// One member of `initial-cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialMember {
    /// Its name.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its member id, derived from its peer URLs and the cluster token (so every member
    /// computes the same ids).
    pub id: u64,
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberSettings {
    /// This member's name.
    pub name: String,
    /// Its data directory.
    pub data_dir: String,
    /// The addresses to listen for peers on.
    pub listen_peer_urls: Vec<ListenUrl>,
    /// The peer URLs it advertises.
    pub advertise_peer_urls: Vec<String>,
    /// The addresses to serve clients on.
    pub listen_client_urls: Vec<ListenUrl>,
    /// The client URLs it advertises.
    pub advertise_client_urls: Vec<String>,
    /// The initial members, this one among them.
    pub initial_cluster: Vec<InitialMember>,
    /// New cluster or joining one.
    pub cluster_state: ClusterState,
    /// The cluster token.
    pub cluster_token: String,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Election timeout.
    pub election_timeout: Duration,
    /// Applied entries between snapshots.
    pub snapshot_count: u64,
    /// Space quota (`None`: etch's default).
    pub quota_backend_bytes: Option<u64>,
    /// Automatic compaction.
    pub auto_compaction: Option<AutoCompaction>,
    /// Start a one-member cluster from this member's data, dropping the others.
    pub force_new_cluster: bool,
    /// Peer TLS.
    pub peer_security: PeerSecurity,
    /// Log level.
    pub log_level: String,
}

fn err(key: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{key}: {msg}"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(err(key, format!("{other:?} is not true or false"))),
    }
}

fn parse_u64(key: &str, value: &str) -> Result<u64, ConfigError> {
    value
        .parse()
        .map_err(|_| err(key, format!("{value:?} is not a non-negative integer")))
}

impl EtcdConfig {
    /// Parses etcd's YAML configuration file. An unknown key is an error naming it.
    pub fn from_yaml(text: &str) -> Result<EtcdConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(EtcdConfig::default());
        }
        serde_norway::from_str(text).map_err(|e| ConfigError(format!("config file: {e}")))
    }

    /// Sets one flag by etcd's name (without `--`), as the command line gives it.
    pub fn set(&mut self, flag: &str, value: &str) -> Result<(), ConfigError> {
        let v = value.to_string();
        let peer = &mut self.peer_transport_security;
        match flag {
            "name" => self.name = v,
            "data-dir" => self.data_dir = Some(v),
            "listen-peer-urls" => self.listen_peer_urls = v,
            "initial-advertise-peer-urls" => self.initial_advertise_peer_urls = v,
            "listen-client-urls" => self.listen_client_urls = v,
            "advertise-client-urls" => self.advertise_client_urls = v,
            "initial-cluster" => self.initial_cluster = Some(v),
            "initial-cluster-state" => self.initial_cluster_state = v,
            "initial-cluster-token" => self.initial_cluster_token = v,
            "heartbeat-interval" => self.heartbeat_interval = parse_u64(flag, value)?,
            "election-timeout" => self.election_timeout = parse_u64(flag, value)?,
            "snapshot-count" => self.snapshot_count = parse_u64(flag, value)?,
            "quota-backend-bytes" => self.quota_backend_bytes = parse_u64(flag, value)?,
            "auto-compaction-mode" => self.auto_compaction_mode = v,
            "auto-compaction-retention" => self.auto_compaction_retention = Retention::Text(v),
            "force-new-cluster" => self.force_new_cluster = parse_bool(flag, value)?,
            "peer-cert-file" => peer.cert_file = Some(v),
            "peer-key-file" => peer.key_file = Some(v),
            "peer-trusted-ca-file" => peer.trusted_ca_file = Some(v),
            "peer-client-cert-auth" => peer.client_cert_auth = parse_bool(flag, value)?,
            "peer-auto-tls" => peer.auto_tls = parse_bool(flag, value)?,
            "log-level" => self.log_level = v,
            other => return Err(ConfigError(format!("unknown flag: --{other}"))),
        }
        Ok(())
    }

    /// Checks every value and their combinations, as etcd does before it starts.
    pub fn validate(&self) -> Result<MemberSettings, ConfigError> {
        if self.name.is_empty() {
            return Err(err("name", "must not be empty"));
        }
        let listen_peer_urls = parse_listen_urls("listen-peer-urls", &self.listen_peer_urls)?;
        let advertise_peer_urls = parse_advertise_urls(
            "initial-advertise-peer-urls",
            &self.initial_advertise_peer_urls,
        )?;
        let listen_client_urls = parse_listen_urls("listen-client-urls", &self.listen_client_urls)?;
        let advertise_client_urls =
            parse_advertise_urls("advertise-client-urls", &self.advertise_client_urls)?;
        if self.heartbeat_interval == 0 {
            return Err(err("heartbeat-interval", "must be above 0 ms"));
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(err(
                "election-timeout",
                format!(
                    "{} ms must be at least 5 times heartbeat-interval ({} ms)",
                    self.election_timeout, self.heartbeat_interval
                ),
            ));
        }
        if self.election_timeout > 50_000 {
            return Err(err(
                "election-timeout",
                format!(
                    "{} ms is above the maximum of 50000 ms",
                    self.election_timeout
                ),
            ));
        }
        let cluster_state = match self.initial_cluster_state.as_str() {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            other => {
                return Err(err(
                    "initial-cluster-state",
                    format!("{other:?} is not new or existing"),
                ))
            }
        };
        if self.initial_cluster_token.is_empty() {
            return Err(err("initial-cluster-token", "must not be empty"));
        }
        let initial = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={}", self.name, self.initial_advertise_peer_urls));
        let initial_cluster = parse_initial_cluster(&initial, &self.initial_cluster_token)?;
        let mine = initial_cluster
            .iter()
            .find(|m| m.name == self.name)
            .ok_or_else(|| {
                err(
                    "initial-cluster",
                    format!("has no member named {:?} (this member's name)", self.name),
                )
            })?;
        let (mut a, mut b) = (mine.peer_urls.clone(), advertise_peer_urls.clone());
        a.sort();
        b.sort();
        if a != b {
            return Err(err(
                "initial-cluster",
                format!(
                    "lists {:?} for {:?} but initial-advertise-peer-urls is {:?}",
                    mine.peer_urls, self.name, advertise_peer_urls
                ),
            ));
        }
        let auto_compaction = parse_auto_compaction(
            &self.auto_compaction_mode,
            &self.auto_compaction_retention.as_text(),
        )
        .map_err(|e| ConfigError(e.0.trim_start_matches("--").to_string()))?;
        self.check_peer_security(&listen_peer_urls, &advertise_peer_urls)?;
        if !matches!(
            self.log_level.as_str(),
            "debug" | "info" | "warn" | "error" | "panic" | "fatal"
        ) {
            return Err(err(
                "log-level",
                format!(
                    "{:?} is not debug, info, warn, error, panic or fatal",
                    self.log_level
                ),
            ));
        }
        Ok(MemberSettings {
            name: self.name.clone(),
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| format!("{}.etcd", self.name)),
            listen_peer_urls,
            advertise_peer_urls,
            listen_client_urls,
            advertise_client_urls,
            initial_cluster,
            cluster_state,
            cluster_token: self.initial_cluster_token.clone(),
            heartbeat: Duration::from_millis(self.heartbeat_interval),
            election_timeout: Duration::from_millis(self.election_timeout),
            snapshot_count: self.snapshot_count,
            quota_backend_bytes: (self.quota_backend_bytes > 0).then_some(self.quota_backend_bytes),
            auto_compaction,
            force_new_cluster: self.force_new_cluster,
            peer_security: self.peer_transport_security.clone(),
            log_level: self.log_level.clone(),
        })
    }

    fn check_peer_security(
        &self,
        listen: &[ListenUrl],
        advertise: &[String],
    ) -> Result<(), ConfigError> {
        let peer = &self.peer_transport_security;
        if peer.cert_file.is_some() != peer.key_file.is_some() {
            return Err(err(
                "peer-transport-security",
                "cert-file and key-file go together",
            ));
        }
        if peer.client_cert_auth && peer.trusted_ca_file.is_none() && !peer.auto_tls {
            return Err(err(
                "peer-transport-security",
                "client-cert-auth needs trusted-ca-file",
            ));
        }
        let has_tls = peer.cert_file.is_some() || peer.auto_tls;
        let wants_tls =
            listen.iter().any(|u| u.tls) || advertise.iter().any(|u| u.starts_with("https://"));
        if wants_tls && !has_tls {
            return Err(err(
                "peer-transport-security",
                "https:// peer URLs need cert-file and key-file, or auto-tls",
            ));
        }
        Ok(())
    }
}

/// Parses `name=url,name=url,...` (a name may appear once per URL, as etcd allows several
/// peer URLs per member).
fn parse_initial_cluster(text: &str, token: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut members: Vec<InitialMember> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, url) = item
            .split_once('=')
            .ok_or_else(|| err("initial-cluster", format!("{item:?} is not name=url")))?;
        if name.is_empty() {
            return Err(err("initial-cluster", format!("{item:?} has no name")));
        }
        parse_advertise_urls("initial-cluster", url)
            .map_err(|e| ConfigError(e.0.trim_start_matches("--").to_string()))?;
        match members.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url.to_string()),
            None => members.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url.to_string()],
                id: 0,
            }),
        }
    }
    if members.is_empty() {
        return Err(err("initial-cluster", "no member given"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for m in &mut members {
        for url in &m.peer_urls {
            if !seen.insert(url.clone()) {
                return Err(err(
                    "initial-cluster",
                    format!("peer URL {url} is listed twice"),
                ));
            }
        }
        m.id = initial_member_id(&m.peer_urls, token);
    }
    Ok(members)
}

/// A member id from its peer URLs and the cluster token (never 0), as etcd derives the ids of
/// the initial members, so that every member computes the same table.
pub fn initial_member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut data = urls.join(",").into_bytes();
    data.push(0);
    data.extend_from_slice(token.as_bytes());
    crate::node::fnv1a(&data, b"etch-initial-member").max(1)
}
