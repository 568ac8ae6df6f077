//! Client mode over TLS: `etch --endpoints https://...` against `etch serve --client-cert-auth`
//! with a CA made for the test (rcgen): a client certificate from the trusted CA is served; none,
//! a stranger's, or a server that --cacert does not vouch for are refused;
//! `--insecure-skip-tls-verify` skips only the server's verification.

use crate::common;

use std::path::{Path, PathBuf};

use common::serve::Server;
use common::Run;

/// A CA and a certificate it signed for `names`, as PEM (certificate, key).
fn pki(dir: &Path) -> (PathBuf, [PathBuf; 2], [PathBuf; 2], [PathBuf; 2]) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        (params.self_signed(&key).unwrap(), key)
    };
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let leaf = |prefix: &str, names: &[&str], ca: &(rcgen::Certificate, KeyPair)| {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca.0, &ca.1)
            .unwrap();
        [
            write(&format!("{prefix}.pem"), &cert.pem()),
            write(&format!("{prefix}-key.pem"), &key.serialize_pem()),
        ]
    };
    let authority = ca("etch test CA");
    let stranger = ca("someone else");
    (
        write("ca.pem", &authority.0.pem()),
        leaf("server", &["localhost", "127.0.0.1"], &authority),
        leaf("client", &["client"], &authority),
        leaf("stranger", &["client"], &stranger),
    )
}

#[test]
fn tls_with_client_certificates() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, server_pair, client_pair, stranger_pair) = pki(certs.path());
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let server = Server::start_with(
        "https",
        &[
            "--cert-file",
            &s(&server_pair[0]),
            "--key-file",
            &s(&server_pair[1]),
            "--trusted-ca-file",
            &s(&ca),
            "--client-cert-auth",
        ],
    );
    let c = server.client();
    let tls = |pair: &[PathBuf; 2]| {
        vec![
            "--cacert".to_string(),
            s(&ca),
            "--cert".to_string(),
            s(&pair[0]),
            "--key".to_string(),
            s(&pair[1]),
        ]
    };
    let with = |flags: Vec<String>, args: &[&str]| -> Run {
        let mut all: Vec<String> = flags;
        all.push("--command-timeout".into());
        all.push("2s".into());
        all.extend(args.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        c.run(&refs)
    };
    let r = with(tls(&client_pair), &["put", "secure", "yes"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "OK\n"), "{}", r.stderr);
    let r = with(tls(&client_pair), &["get", "secure", "--print-value-only"]);
    assert_eq!(r.stdout, "yes\n", "{}", r.stderr);
    // No client certificate, or one from another CA: refused.
    let r = with(vec!["--cacert".into(), s(&ca)], &["put", "nocert", "v"]);
    assert_eq!(
        r.code, 1,
        "served without a client certificate: {}",
        r.stdout
    );
    let r = with(tls(&stranger_pair), &["put", "stranger", "v"]);
    assert_eq!(r.code, 1, "served a stranger's certificate: {}", r.stdout);
    // A server certificate that --cacert does not vouch for: refused.
    let r = with(
        vec![
            "--cacert".into(),
            s(&stranger_pair[0]),
            "--cert".into(),
            s(&client_pair[0]),
            "--key".into(),
            s(&client_pair[1]),
        ],
        &["get", "secure"],
    );
    assert_eq!(r.code, 1, "trusted an unknown server: {}", r.stdout);
    // No --cacert: nothing verifies the server, so the dial fails...
    let r = with(
        vec![
            "--cert".into(),
            s(&client_pair[0]),
            "--key".into(),
            s(&client_pair[1]),
        ],
        &["get", "secure"],
    );
    assert_eq!(r.code, 1, "trusted a server without a CA: {}", r.stdout);
    assert!(r.stderr.contains("UnknownIssuer"), "{}", r.stderr);
    // ...unless verification is skipped (etcdctl's testing flag); the server still checks
    // the client's certificate.
    let mut skip = vec!["--insecure-skip-tls-verify".to_string()];
    skip.extend(tls(&client_pair).into_iter().skip(2));
    let r = with(skip, &["put", "unverified", "v"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "OK\n"), "{}", r.stderr);
    let mut skip = vec!["--insecure-skip-tls-verify".to_string()];
    skip.extend(tls(&stranger_pair).into_iter().skip(2));
    let r = with(skip, &["put", "stranger2", "v"]);
    assert_eq!(r.code, 1, "served a stranger's certificate: {}", r.stdout);
    // --cert without --key is an argument error.
    let r = c.run(&["--cert", &s(&client_pair[0]), "get", "secure"]);
    assert_eq!(r.code, 128, "{}", r.stderr);
    // Nothing the refused clients sent was written.
    let r = with(tls(&client_pair), &["get", "", "--prefix", "--keys-only"]);
    assert_eq!(r.stdout, "secure\n\nunverified\n\n", "{}", r.stderr);
}
