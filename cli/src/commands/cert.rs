//! `etch cert ca | node`: a cluster CA and node certificates (rcgen), so that a cluster with
//! mutual TLS needs no openssl.
//!
//! `ca` writes `DIR/ca.crt` and `DIR/ca.key`; `node` reads them and writes `DIR/NAME.crt` and
//! `DIR/NAME.key`: a certificate for the node's IP addresses and DNS names, valid both as a
//! server and as a client certificate, so one pair serves for peer traffic (both directions)
//! and for `etch serve`'s client TLS. Files are PEM; keys are created with mode 0600 and no
//! existing file is ever overwritten. Each new node certificate is verified against the CA
//! (as a server for each of its names, and as a client) before it is written.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

use crate::error::{CliError, CliResult};

/// `cert ...`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Make a cluster certificate authority: DIR/ca.crt and DIR/ca.key
    #[command(after_help = "Example:\n  etch cert ca --dir certs")]
    Ca(CaArgs),
    /// Make a node certificate signed by DIR's CA: DIR/NAME.crt and DIR/NAME.key
    #[command(
        after_help = "Examples:\n  etch cert node --dir certs --name n1 --ip 10.0.0.1\n  etch cert node --dir certs --name n2 --ip 10.0.0.2 --dns n2.example.internal"
    )]
    Node(NodeArgs),
}

/// `cert ca`.
#[derive(Debug, Args)]
pub struct CaArgs {
    /// Directory to write ca.crt and ca.key into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The CA's common name
    #[arg(long, default_value = "etch cluster CA")]
    pub common_name: String,
    /// Days the CA is valid
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,
}

/// `cert node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Directory holding ca.crt and ca.key; NAME.crt and NAME.key are written there
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The node's name (etcd's --name): the certificate's common name and its file names
    #[arg(long)]
    pub name: String,
    /// An IP address the node is reached at (repeatable)
    #[arg(long, value_name = "ADDRESS")]
    pub ip: Vec<IpAddr>,
    /// A DNS name the node is reached at (repeatable)
    #[arg(long, value_name = "NAME")]
    pub dns: Vec<String>,
    /// Days the certificate is valid
    #[arg(long, default_value_t = 825, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,
}

/// Runs one `cert` subcommand, printing the files it wrote.
pub fn run(c: &CertCommand) -> CliResult {
    let written = match c {
        CertCommand::Ca(a) => ca(a)?,
        CertCommand::Node(a) => node(a)?,
    };
    let mut out = std::io::stdout().lock();
    for path in written {
        writeln!(out, "{}", path.display())?;
    }
    Ok(())
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::failed(format!("{what}: {e}"))
}

/// Validity from an hour ago (clock skew between machines) to `days` from now.
fn validity(params: &mut CertificateParams, days: u32) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
}

fn ca(a: &CaArgs) -> CliResult<Vec<PathBuf>> {
    let (cert_path, key_path) = (a.dir.join("ca.crt"), a.dir.join("ca.key"));
    refuse_existing(&[&cert_path, &key_path])?;
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_error("CA certificate", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, a.common_name.as_str());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, a.days);
    let key = KeyPair::generate().map_err(|e| tls_error("CA key", e))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| tls_error("CA certificate", e))?;
    std::fs::create_dir_all(&a.dir)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_new(&cert_path, cert.pem().as_bytes(), false)?;
    Ok(vec![cert_path, key_path])
}

fn node(a: &NodeArgs) -> CliResult<Vec<PathBuf>> {
    if a.name.is_empty()
        || a.name.starts_with('.')
        || a.name.contains(['/', '\\'])
        || a.name.chars().any(char::is_control)
    {
        return Err(CliError::bad_args(format!(
            "--name {:?}: a node name must be usable as a file name",
            a.name
        )));
    }
    if a.ip.is_empty() && a.dns.is_empty() {
        return Err(CliError::bad_args(
            "give at least one --ip or --dns: peers check the address they dial against the \
             certificate",
        ));
    }
    let (ca_cert_path, ca_key_path) = (a.dir.join("ca.crt"), a.dir.join("ca.key"));
    let (cert_path, key_path) = (
        a.dir.join(format!("{}.crt", a.name)),
        a.dir.join(format!("{}.key", a.name)),
    );
    refuse_existing(&[&cert_path, &key_path])?;
    let ca_pem = read(&ca_cert_path)?;
    let ca_key = KeyPair::from_pem(&read(&ca_key_path)?)
        .map_err(|e| tls_error(&format!("{}", ca_key_path.display()), e))?;
    let ca_params = CertificateParams::from_ca_cert_pem(&ca_pem)
        .map_err(|e| tls_error(&format!("{}", ca_cert_path.display()), e))?;
    let issuer = ca_params
        .self_signed(&ca_key)
        .map_err(|e| tls_error("CA", e))?;

    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| tls_error("node certificate", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, a.name.as_str());
    for ip in &a.ip {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    for dns in &a.dns {
        let name = dns
            .clone()
            .try_into()
            .map_err(|e| CliError::bad_args(format!("--dns {dns:?}: {e}")))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params, a.days);
    let key = KeyPair::generate().map_err(|e| tls_error("node key", e))?;
    let cert = params
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|e| tls_error("node certificate", e))?;
    verify(a, &ca_pem, cert.der()).map_err(|e| {
        CliError::failed(format!(
            "the new certificate does not verify against {} (does {} belong to it?): {e}",
            ca_cert_path.display(),
            ca_key_path.display()
        ))
    })?;
    write_new(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_new(&cert_path, cert.pem().as_bytes(), false)?;
    Ok(vec![cert_path, key_path])
}

/// Checks `cert` as peers will: a server certificate for each of the node's names, and a
/// client certificate, both chaining to the CA in `ca_pem`.
fn verify(a: &NodeArgs, ca_pem: &str, cert: &CertificateDer<'_>) -> Result<(), String> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let roots = Arc::new(roots);
    let now = UnixTime::now();
    let server = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::clone(&roots),
        Arc::clone(&provider),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let names = a.ip.iter().map(|ip| ServerName::from(*ip)).chain(
        a.dns
            .iter()
            .filter_map(|d| ServerName::try_from(d.clone()).ok()),
    );
    for name in names {
        server
            .verify_server_cert(cert, &[], &name, &[], now)
            .map_err(|e| format!("as a server for {name:?}: {e}"))?;
    }
    let client = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| e.to_string())?;
    client
        .verify_client_cert(cert, &[], now)
        .map_err(|e| format!("as a client: {e}"))?;
    Ok(())
}

fn read(path: &Path) -> CliResult<String> {
    std::fs::read_to_string(path).map_err(|e| CliError::failed(format!("{}: {e}", path.display())))
}

fn refuse_existing(paths: &[&Path]) -> CliResult {
    for path in paths {
        if path.exists() {
            return Err(CliError::failed(format!(
                "{} exists: remove it first (etch cert never overwrites)",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Creates `path` (it must not exist) with `bytes`; a key is created readable by its owner
/// only, before any byte is written.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> CliResult {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options
        .open(path)
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
