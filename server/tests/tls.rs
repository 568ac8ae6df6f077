//! TLS for clients: mutual TLS with `--trusted-ca-file` and `--client-cert-auth` (clients
//! without a valid certificate are refused), `--auto-tls`, and etcdctl over TLS.

use crate::common;

use std::time::Duration;

use common::{tool_available, TestServer};
use etch_server::config::ListenUrl;
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::kv_client::KvClient;
use etch_server::tls::TlsOptions;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A CA and a certificate it signed (for the server or a client), as PEM files in `dir`.
struct Pki {
    ca: String,
    ca_path: std::path::PathBuf,
    server_cert: std::path::PathBuf,
    server_key: std::path::PathBuf,
    client_cert: String,
    client_key: String,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    (params.self_signed(&key).unwrap(), key)
}

fn leaf(names: &[&str], ca: &(rcgen::Certificate, KeyPair)) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki(dir: &std::path::Path) -> Pki {
    let authority = ca("etch test CA");
    let (server_pem, server_key_pem) = leaf(&["localhost", "127.0.0.1"], &authority);
    let (client_cert, client_key) = leaf(&["client"], &authority);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: authority.0.pem(),
        ca_path: write("ca.pem", &authority.0.pem()),
        server_cert: write("server.pem", &server_pem),
        server_key: write("server-key.pem", &server_key_pem),
        client_cert,
        client_key,
    }
}

async fn tls_kv(
    addr: std::net::SocketAddr,
    tls: ClientTlsConfig,
) -> Result<KvClient<Channel>, String> {
    let channel = Channel::from_shared(format!("https://localhost:{}", addr.port()))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        // Every request bounded: a refused client must fail, never wait forever (a CI run
        // once hung here with no timer pending in the test's runtime).
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        })?;
    Ok(KvClient::new(channel))
}

fn put(key: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.into(),
        value: "v".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_auth_refuses_clients_without_a_valid_certificate() {
    let certs_dir = tempfile::tempdir().unwrap();
    let pki = pki(certs_dir.path());
    let (cert, key, ca_path) = (
        pki.server_cert.clone(),
        pki.server_key.clone(),
        pki.ca_path.clone(),
    );
    let server = TestServer::start_with(move |c| {
        c.listen_client_urls = vec![ListenUrl {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: true,
        }];
        c.tls = TlsOptions {
            cert_file: Some(cert),
            key_file: Some(key),
            trusted_ca_file: Some(ca_path),
            client_cert_auth: true,
            auto_tls: false,
        };
    })
    .await;
    let trust = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");

    // With a certificate signed by the trusted CA: served.
    let mut kv = tls_kv(
        server.addr,
        trust
            .clone()
            .identity(Identity::from_pem(&pki.client_cert, &pki.client_key)),
    )
    .await
    .unwrap();
    kv.put(put("secure")).await.unwrap();

    // Without a client certificate: refused.
    let refused = match tls_kv(server.addr, trust.clone()).await {
        Err(_) => true,
        Ok(mut kv) => kv.put(put("nocert")).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");

    // With a certificate from another CA: refused.
    let other = ca("someone else");
    let (bad_cert, bad_key) = leaf(&["client"], &other);
    let refused = match tls_kv(
        server.addr,
        trust.identity(Identity::from_pem(bad_cert, bad_key)),
    )
    .await
    {
        Err(_) => true,
        Ok(mut kv) => kv.put(put("badcert")).await.is_err(),
    };
    assert!(refused, "a client with an untrusted certificate was served");

    // Plain text on the TLS port: refused.
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await;
    if let Ok(channel) = plain {
        assert!(KvClient::new(channel).put(put("plain")).await.is_err());
    }

    // etcdctl with the same certificates.
    if tool_available("etcdctl", "version") {
        let client_cert = certs_dir.path().join("client.pem");
        let client_key = certs_dir.path().join("client-key.pem");
        std::fs::write(&client_cert, &pki.client_cert).unwrap();
        std::fs::write(&client_key, &pki.client_key).unwrap();
        let endpoint = format!("--endpoints=https://localhost:{}", server.addr.port());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(endpoint)
                .arg(format!("--cacert={}", pki.ca_path.display()))
                .arg(format!("--cert={}", client_cert.display()))
                .arg(format!("--key={}", client_key.display()))
                .args(["--dial-timeout=5s", "get", "secure"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "secure\nv\n");
    }
    drop(kv);
    server.stop_and_check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tls_serves_https_and_bad_tls_flags_are_refused() {
    // Bad combinations are configuration errors, before anything is bound or opened.
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config_in(dir.path());
    config.listen_client_urls = vec![ListenUrl {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: true,
    }];
    let err = etch_server::start(config.clone()).await.err().unwrap();
    assert!(matches!(err, etch_server::ServeError::Config(_)), "{err}");
    config.tls.client_cert_auth = true;
    config.tls.auto_tls = true;
    let err = etch_server::start(config).await.err().unwrap();
    assert!(err.to_string().contains("--trusted-ca-file"), "{err}");

    let server = TestServer::start_with(|c| {
        c.listen_client_urls = vec![ListenUrl {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: true,
        }];
        c.tls.auto_tls = true;
    })
    .await;
    if tool_available("etcdctl", "version") {
        let endpoint = format!("--endpoints=https://127.0.0.1:{}", server.addr.port());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(endpoint)
                .args([
                    "--insecure-skip-tls-verify",
                    "--insecure-transport=false",
                    "--dial-timeout=5s",
                    "put",
                    "auto",
                    "tls",
                ])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
    }
    server.stop_and_check().await;
}
