use etch_engine::AutoCompaction;
use etch_server::etcd_config::*;
use std::time::Duration;

const THREE: &str =
    "infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,infra2=http://10.0.1.12:2380";

fn yaml(extra: &str) -> String {
    format!(
        "name: infra1\n\
         data-dir: /var/lib/etch/infra1\n\
         listen-peer-urls: http://127.0.0.1:2380\n\
         initial-advertise-peer-urls: http://10.0.1.11:2380\n\
         listen-client-urls: http://127.0.0.1:2379\n\
         advertise-client-urls: http://10.0.1.11:2379\n\
         initial-cluster: {THREE}\n\
         initial-cluster-token: etcd-cluster-1\n\
         {extra}"
    )
}

#[test]
fn defaults_are_etcds() {
    let s = EtcdConfig::default().validate().unwrap();
    assert_eq!(s.name, "default");
    assert_eq!(s.data_dir, "default.etcd");
    assert_eq!(s.heartbeat, Duration::from_millis(100));
    assert_eq!(s.election_timeout, Duration::from_millis(1000));
    assert_eq!(s.snapshot_count, 100_000);
    assert_eq!(s.cluster_state, ClusterState::New);
    assert_eq!(s.cluster_token, "etcd-cluster");
    assert_eq!(s.advertise_client_urls, ["http://localhost:2379"]);
    assert_eq!(s.initial_cluster.len(), 1);
    assert_eq!(s.initial_cluster[0].name, "default");
    assert_eq!(s.initial_cluster[0].peer_urls, ["http://localhost:2380"]);
    assert_eq!(s.quota_backend_bytes, None);
    assert_eq!(s.auto_compaction, Some(AutoCompaction::Off));
    assert!(!s.force_new_cluster);
    assert_eq!(s.log_level, "info");
    assert_eq!(EtcdConfig::from_yaml("").unwrap(), EtcdConfig::default());
}

#[test]
fn a_full_file_parses() {
    let text = yaml(
        "initial-cluster-state: existing\n\
         heartbeat-interval: 50\n\
         election-timeout: 500\n\
         snapshot-count: 10000\n\
         quota-backend-bytes: 4294967296\n\
         auto-compaction-mode: revision\n\
         auto-compaction-retention: 1000\n\
         force-new-cluster: false\n\
         log-level: warn\n",
    );
    let s = EtcdConfig::from_yaml(&text).unwrap().validate().unwrap();
    assert_eq!(s.name, "infra1");
    assert_eq!(s.data_dir, "/var/lib/etch/infra1");
    assert_eq!(s.cluster_state, ClusterState::Existing);
    assert_eq!(s.heartbeat, Duration::from_millis(50));
    assert_eq!(s.election_timeout, Duration::from_millis(500));
    assert_eq!(s.snapshot_count, 10_000);
    assert_eq!(s.quota_backend_bytes, Some(4 << 30));
    assert_eq!(s.auto_compaction, Some(AutoCompaction::Revisions(1000)));
    assert_eq!(s.log_level, "warn");
    let names: Vec<&str> = s.initial_cluster.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["infra0", "infra1", "infra2"]);
    let ids: std::collections::BTreeSet<u64> = s.initial_cluster.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 3, "distinct member ids");
    // Every member computes the same ids from the same file.
    let again = EtcdConfig::from_yaml(&text).unwrap().validate().unwrap();
    assert_eq!(again.initial_cluster, s.initial_cluster);
}

#[test]
fn periodic_retention_takes_durations_and_hours() {
    for (retention, every) in [("\"1h30m\"", 5400), ("2", 7200), ("\"30m\"", 1800)] {
        let text = yaml(&format!(
            "auto-compaction-mode: periodic\nauto-compaction-retention: {retention}\n"
        ));
        let s = EtcdConfig::from_yaml(&text).unwrap().validate().unwrap();
        assert_eq!(
            s.auto_compaction,
            Some(AutoCompaction::Periodic(Duration::from_secs(every))),
            "{retention}"
        );
    }
}

#[test]
fn an_unknown_key_is_an_error_naming_it() {
    let e = EtcdConfig::from_yaml(&yaml("enable-v2: true\n")).unwrap_err();
    assert!(e.0.contains("enable-v2"), "{e}");
    let e = EtcdConfig::from_yaml("peer-transport-security:\n  cert-file: a.pem\n  bogus: 1\n")
        .unwrap_err();
    assert!(e.0.contains("bogus"), "{e}");
    let e = EtcdConfig::default().set("enable-v2", "true").unwrap_err();
    assert!(e.0.contains("enable-v2"), "{e}");
}

#[test]
fn a_value_of_the_wrong_type_is_an_error() {
    let e = EtcdConfig::from_yaml("heartbeat-interval: fast\n").unwrap_err();
    assert!(e.0.contains("heartbeat-interval"), "{e}");
}

#[test]
fn flags_set_the_same_settings_as_the_file() {
    let mut flags = EtcdConfig::default();
    for (flag, value) in [
        ("name", "infra1"),
        ("data-dir", "/var/lib/etch/infra1"),
        ("listen-peer-urls", "http://127.0.0.1:2380"),
        ("initial-advertise-peer-urls", "http://10.0.1.11:2380"),
        ("listen-client-urls", "http://127.0.0.1:2379"),
        ("advertise-client-urls", "http://10.0.1.11:2379"),
        ("initial-cluster", THREE),
        ("initial-cluster-token", "etcd-cluster-1"),
    ] {
        flags.set(flag, value).unwrap();
    }
    let file = EtcdConfig::from_yaml(&yaml("")).unwrap();
    assert_eq!(flags.validate().unwrap(), file.validate().unwrap());
    assert!(flags.set("heartbeat-interval", "-1").is_err());
    assert!(flags.set("force-new-cluster", "maybe").is_err());
    flags.set("force-new-cluster", "true").unwrap();
    assert!(flags.validate().unwrap().force_new_cluster);
}

fn invalid(extra: &str, key: &str) {
    let config = EtcdConfig::from_yaml(&yaml(extra)).unwrap();
    let e = config.validate().unwrap_err();
    assert!(
        e.0.starts_with(key),
        "expected an error about {key}, got: {e}"
    );
}

#[test]
fn validation_names_the_key() {
    invalid("election-timeout: 400\n", "election-timeout");
    invalid("election-timeout: 60000\n", "election-timeout");
    invalid("heartbeat-interval: 0\n", "heartbeat-interval");
    invalid("initial-cluster-state: joining\n", "initial-cluster-state");
    invalid("log-level: chatty\n", "log-level");
    invalid("auto-compaction-mode: hourly\n", "auto-compaction-mode");
    invalid(
        "auto-compaction-mode: revision\nauto-compaction-retention: 1h\n",
        "auto-compaction-retention",
    );
    let mut c = EtcdConfig::from_yaml(&yaml("")).unwrap();
    c.initial_cluster_token = String::new();
    assert!(c
        .validate()
        .unwrap_err()
        .0
        .starts_with("initial-cluster-token"));
}

#[test]
fn initial_cluster_must_agree_with_this_member() {
    let mut c = EtcdConfig::from_yaml(&yaml("")).unwrap();
    c.name = "infra9".into();
    assert!(c.validate().unwrap_err().0.contains("infra9"));
    let mut c = EtcdConfig::from_yaml(&yaml("")).unwrap();
    c.initial_advertise_peer_urls = "http://10.0.1.99:2380".into();
    assert!(c.validate().unwrap_err().0.starts_with("initial-cluster"));
    for bad in [
        "infra1",
        "=http://a:1",
        "infra1=10.0.1.11:2380",
        "infra1=http://10.0.1.11:2380,infra2=http://10.0.1.11:2380",
    ] {
        let mut c = EtcdConfig::from_yaml(&yaml("")).unwrap();
        c.initial_cluster = Some(bad.into());
        let e = c.validate().unwrap_err();
        assert!(e.0.starts_with("initial-cluster"), "{bad}: {e}");
    }
}

#[test]
fn url_lists_are_checked() {
    let c = EtcdConfig {
        advertise_client_urls: "localhost:2379".into(),
        ..EtcdConfig::default()
    };
    assert!(c
        .validate()
        .unwrap_err()
        .0
        .contains("advertise-client-urls"));
    let c = EtcdConfig {
        listen_peer_urls: "ftp://localhost:2380".into(),
        ..EtcdConfig::default()
    };
    assert!(c.validate().unwrap_err().0.contains("listen-peer-urls"));
}

#[test]
fn peer_tls_settings_must_fit_together() {
    let mut c = EtcdConfig::default();
    c.peer_transport_security.cert_file = Some("peer.pem".into());
    assert!(c
        .validate()
        .unwrap_err()
        .0
        .starts_with("peer-transport-security"));
    let mut c = EtcdConfig {
        listen_peer_urls: "https://localhost:2380".into(),
        ..EtcdConfig::default()
    };
    assert!(c
        .validate()
        .unwrap_err()
        .0
        .starts_with("peer-transport-security"));
    c.peer_transport_security.auto_tls = true;
    c.validate().unwrap();
    let text = "peer-transport-security:\n  cert-file: p.pem\n  key-file: p.key\n  client-cert-auth: true\n";
    let c = EtcdConfig::from_yaml(text).unwrap();
    assert!(c.validate().unwrap_err().0.contains("trusted-ca-file"));
    let c = EtcdConfig::from_yaml(&format!("{text}  trusted-ca-file: ca.pem\nlisten-peer-urls: https://localhost:2380\ninitial-advertise-peer-urls: https://localhost:2380\n")).unwrap();
    let s = c.validate().unwrap();
    assert!(s.peer_security.client_cert_auth);
    assert_eq!(s.peer_security.trusted_ca_file.as_deref(), Some("ca.pem"));
}
