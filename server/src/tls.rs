//! TLS for clients, with etcd's flags: `--cert-file`/`--key-file` (the server's identity),
//! `--trusted-ca-file` with `--client-cert-auth` (clients must present a certificate signed by
//! that CA, or the handshake fails), and `--auto-tls` (a self-signed certificate generated at
//! start, for encryption without a PKI; clients then skip verification). TLS applies to the
//! `https://` listen URLs; `http://` URLs stay plain, as in etcd.

use std::path::PathBuf;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::ConfigError;

/// The TLS flags.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// The server certificate, PEM (`--cert-file`).
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM (`--key-file`).
    pub key_file: Option<PathBuf>,
    /// CA certificates that sign client certificates, PEM (`--trusted-ca-file`).
    pub trusted_ca_file: Option<PathBuf>,
    /// Require a client certificate signed by the trusted CA (`--client-cert-auth`).
    pub client_cert_auth: bool,
    /// Generate a self-signed server certificate when none is given (`--auto-tls`).
    pub auto_tls: bool,
}

impl TlsOptions {
    /// True if any TLS flag asks for TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || self.auto_tls
    }
}

fn read(flag: &str, path: &PathBuf) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError(format!("--{flag} {}: {e}", path.display())))
}

/// The server TLS configuration the flags describe, or `None` without TLS. `hosts` are the
/// names and addresses an auto-generated certificate is valid for.
pub fn server_tls(
    opts: &TlsOptions,
    hosts: &[String],
) -> Result<Option<ServerTlsConfig>, ConfigError> {
    if opts.key_file.is_some() != opts.cert_file.is_some() {
        return Err(ConfigError(
            "--cert-file and --key-file must be given together".into(),
        ));
    }
    if opts.client_cert_auth && opts.trusted_ca_file.is_none() {
        return Err(ConfigError(
            "--client-cert-auth requires --trusted-ca-file".into(),
        ));
    }
    let identity = match (&opts.cert_file, &opts.key_file) {
        (Some(cert), Some(key)) => {
            Identity::from_pem(read("cert-file", cert)?, read("key-file", key)?)
        }
        _ if opts.auto_tls => self_signed(hosts)?,
        _ => return Ok(None),
    };
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &opts.trusted_ca_file {
        config = config
            .client_ca_root(Certificate::from_pem(read("trusted-ca-file", ca)?))
            .client_auth_optional(!opts.client_cert_auth);
    }
    Ok(Some(config))
}

/// A fresh self-signed certificate for `hosts` (plus localhost and 127.0.0.1).
fn self_signed(hosts: &[String]) -> Result<Identity, ConfigError> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for host in hosts {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ConfigError(format!("--auto-tls: cannot generate a certificate: {e}")))?;
    Ok(Identity::from_pem(
        certified.cert.pem(),
        certified.key_pair.serialize_pem(),
    ))
}
