//! The client over TLS: a server that requires client certificates (`--client-cert-auth`) is
//! reached with the CA and a client certificate; without the CA the server's certificate does
//! not verify and the error says TLS.

use crate::serve;

use std::path::{Path, PathBuf};

use etch_client::{Client, ClientOptions, Error, TlsOptions};
use etch_server::config::ListenUrl;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use serve::Served;

/// PEM files of a CA, a server certificate for 127.0.0.1 and localhost, and a client
/// certificate, all in `dir`.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "etch client test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |names: &[&str]| {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (server_pem, server_key) = leaf(&["localhost", "127.0.0.1"]);
    let (client_pem, client_key) = leaf(&["client"]);
    Pki {
        ca: write("ca.pem", &ca.pem()),
        server_cert: write("server.pem", &server_pem),
        server_key: write("server-key.pem", &server_key),
        client_cert: write("client.pem", &client_pem),
        client_key: write("client-key.pem", &client_key),
    }
}

#[test]
fn mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (cert, key, ca) = (
        pki.server_cert.clone(),
        pki.server_key.clone(),
        pki.ca.clone(),
    );
    let server = Served::start_with(
        &dir.path().join("tls.etch"),
        Box::new(move |config| {
            for url in &mut config.listen_client_urls {
                *url = ListenUrl {
                    addr: url.addr,
                    tls: true,
                };
            }
            config.advertise_client_urls =
                vec![format!("https://{}", config.listen_client_urls[0].addr)];
            config.tls.cert_file = Some(cert.clone());
            config.tls.key_file = Some(key.clone());
            config.tls.trusted_ca_file = Some(ca.clone());
            config.tls.client_cert_auth = true;
        }),
    );
    let endpoint = format!("https://localhost:{}", server.addr.port());

    let tls = TlsOptions::from_files(Some(&pki.ca), Some(&pki.client_cert), Some(&pki.client_key))
        .unwrap();
    let client = Client::connect(&[&endpoint], ClientOptions::default().tls(tls)).unwrap();
    client.put("secure", "yes").unwrap();
    assert_eq!(client.get("secure").unwrap().unwrap().value, b"yes");

    // No CA: the server's certificate does not verify.
    let unverified = Client::connect(&[&endpoint], ClientOptions::default()).unwrap();
    match unverified.get("secure") {
        Err(Error::Tls(message)) => assert!(message.contains("certificate"), "{message}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }

    // The CA but no client certificate: the server refuses the client.
    let tls = TlsOptions::from_files(Some(&pki.ca), None, None).unwrap();
    let anonymous = Client::connect(&[&endpoint], ClientOptions::default().tls(tls)).unwrap();
    assert!(anonymous.get("secure").is_err());

    assert!(matches!(
        TlsOptions::from_files(Some(&pki.ca), Some(&pki.client_cert), None),
        Err(Error::Tls(_))
    ));
}
