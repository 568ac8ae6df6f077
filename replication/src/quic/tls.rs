//! TLS between peers, in etcd's vocabulary: `--peer-cert-file`, `--peer-key-file`,
//! `--peer-trusted-ca-file`, `--peer-client-cert-auth` and `--peer-auto-tls`.
//!
//! QUIC always encrypts, so there is no plaintext mode: `http://` peer URLs (etcd's plain peers)
//! and auto-TLS both run with a throwaway self-signed certificate and authenticate no one. Only
//! [`PeerTls::Files`] authenticates: the server's certificate is checked against the trusted CA
//! (and the peer's IP address), and with `client_cert_auth` so is the client's.
//!
//! The crypto provider is ring, passed explicitly to every configuration built here (never the
//! process-wide default), so whatever else the process installs does not change the peers' TLS.
//! Only TLS 1.3 is offered (QUIC requires it). Both sides offer the ALPN [`ALPN`] alone: a
//! client speaking another protocol fails the handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The application protocol peers negotiate (ALPN): the Raft messages of this crate, framing
/// version 1.
pub const ALPN: &[u8] = b"etch-raft/1";

/// Why a TLS configuration could not be built.
#[derive(Debug)]
pub enum TlsError {
    /// The options contradict each other or miss something (the message names the flag).
    Config(String),
    /// A certificate, key or CA file could not be read or parsed.
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls, rcgen or quinn refused the material.
    Crypto(String),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Config(m) => write!(f, "peer TLS: {m}"),
            TlsError::File { path, reason } => {
                write!(f, "peer TLS: {}: {reason}", path.display())
            }
            TlsError::Crypto(m) => write!(f, "peer TLS: {m}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// etcd's peer TLS flags as given; [`PeerTlsOptions::resolve`] turns them into a [`PeerTls`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerTlsOptions {
    /// `--peer-cert-file`: this member's certificate (PEM, chain allowed).
    pub cert_file: Option<PathBuf>,
    /// `--peer-key-file`: its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// `--peer-trusted-ca-file`: the CA peers' certificates must chain to (PEM).
    pub trusted_ca_file: Option<PathBuf>,
    /// `--peer-client-cert-auth`: refuse connecting peers without a certificate from the CA.
    pub client_cert_auth: bool,
    /// `--peer-auto-tls`: a self-signed certificate, peers not authenticated.
    pub auto_tls: bool,
}

impl PeerTlsOptions {
    /// The mode these flags ask for. As in etcd, certificate files win over auto-TLS. A
    /// certificate without its key (or the reverse), client-cert-auth without a trusted CA,
    /// and certificate files without a trusted CA are errors: this build has no system roots
    /// to fall back on.
    pub fn resolve(&self) -> Result<PeerTls, TlsError> {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let ca = self.trusted_ca_file.clone().ok_or_else(|| {
                    TlsError::Config(
                        "--peer-trusted-ca-file is required with --peer-cert-file".into(),
                    )
                })?;
                if self.auto_tls {
                    tracing::warn!("--peer-auto-tls is ignored: peer certificate files are given");
                }
                Ok(PeerTls::Files {
                    cert_file: cert.clone(),
                    key_file: key.clone(),
                    trusted_ca_file: ca,
                    client_cert_auth: self.client_cert_auth,
                })
            }
            (Some(_), None) => Err(TlsError::Config(
                "--peer-cert-file needs --peer-key-file".into(),
            )),
            (None, Some(_)) => Err(TlsError::Config(
                "--peer-key-file needs --peer-cert-file".into(),
            )),
            (None, None) if self.client_cert_auth => Err(TlsError::Config(
                "--peer-client-cert-auth needs --peer-cert-file, --peer-key-file and \
                 --peer-trusted-ca-file"
                    .into(),
            )),
            (None, None) if self.auto_tls => Ok(PeerTls::Auto),
            (None, None) => Ok(PeerTls::Plain),
        }
    }
}

/// How a member secures its peer connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerTls {
    /// `http://` peer URLs: encrypted with a throwaway certificate, nobody authenticated.
    Plain,
    /// `--peer-auto-tls`: the same, asked for explicitly; logged as a loud warning.
    Auto,
    /// Certificates from files: the server is always verified against the CA; connecting
    /// peers too when `client_cert_auth` is set.
    Files {
        /// This member's certificate chain (PEM).
        cert_file: PathBuf,
        /// Its private key (PEM).
        key_file: PathBuf,
        /// The cluster CA (PEM).
        trusted_ca_file: PathBuf,
        /// Whether a connecting peer must present a certificate from the CA.
        client_cert_auth: bool,
    },
}

/// The rustls configurations of one member: the server side answers peers, the client side
/// connects to them. Both carry [`ALPN`].
pub struct TlsConfigs {
    /// For the member's listening endpoint.
    pub server: rustls::ServerConfig,
    /// For connections to peers.
    pub client: rustls::ClientConfig,
    /// Whether the client side checks the server's certificate (and so which server name to
    /// send: the peer's IP address when it does).
    pub verifies_server: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn crypto(e: impl std::fmt::Display) -> TlsError {
    TlsError::Crypto(e.to_string())
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

fn read_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| file_error(path, e))?;
    }
    Ok(Arc::new(roots))
}

/// A throwaway self-signed certificate for [`PeerTls::Plain`] and [`PeerTls::Auto`].
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let made = rcgen::generate_simple_self_signed(vec!["etch-peer".to_string()]).map_err(crypto)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
    Ok((vec![made.cert.der().clone()], key))
}

impl PeerTls {
    /// Builds both sides' rustls configurations, reading the files now (a restart picks up
    /// renewed certificates).
    pub fn configs(&self) -> Result<TlsConfigs, TlsError> {
        let versions = &[&rustls::version::TLS13];
        let (server, client, verifies_server) = match self {
            PeerTls::Plain | PeerTls::Auto => {
                if *self == PeerTls::Auto {
                    tracing::warn!(
                        "PEER AUTO-TLS: peer connections are encrypted with a self-signed \
                         certificate but peers are NOT authenticated; anyone who can reach the \
                         peer port can join the traffic. Use --peer-cert-file, --peer-key-file, \
                         --peer-trusted-ca-file and --peer-client-cert-auth in production."
                    );
                } else {
                    tracing::warn!(
                        "plain (http://) peer URLs: peer traffic is encrypted but peers are not \
                         authenticated"
                    );
                }
                let (chain, key) = self_signed()?;
                let server = rustls::ServerConfig::builder_with_provider(provider())
                    .with_protocol_versions(versions)
                    .map_err(crypto)?
                    .with_no_client_auth()
                    .with_single_cert(chain, key)
                    .map_err(crypto)?;
                let client = rustls::ClientConfig::builder_with_provider(provider())
                    .with_protocol_versions(versions)
                    .map_err(crypto)?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyServer {
                        provider: provider(),
                    }))
                    .with_no_client_auth();
                (server, client, false)
            }
            PeerTls::Files {
                cert_file,
                key_file,
                trusted_ca_file,
                client_cert_auth,
            } => {
                let chain = read_certs(cert_file)?;
                let key = read_key(key_file)?;
                let roots = read_roots(trusted_ca_file)?;
                let builder = rustls::ServerConfig::builder_with_provider(provider())
                    .with_protocol_versions(versions)
                    .map_err(crypto)?;
                let builder = if *client_cert_auth {
                    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                        Arc::clone(&roots),
                        provider(),
                    )
                    .build()
                    .map_err(crypto)?;
                    builder.with_client_cert_verifier(verifier)
                } else {
                    builder.with_no_client_auth()
                };
                let server = builder
                    .with_single_cert(chain.clone(), key.clone_key())
                    .map_err(crypto)?;
                let client = rustls::ClientConfig::builder_with_provider(provider())
                    .with_protocol_versions(versions)
                    .map_err(crypto)?
                    .with_root_certificates(roots)
                    .with_client_auth_cert(chain, key)
                    .map_err(crypto)?;
                (server, client, true)
            }
        };
        let mut server = server;
        let mut client = client;
        server.alpn_protocols = vec![ALPN.to_vec()];
        client.alpn_protocols = vec![ALPN.to_vec()];
        Ok(TlsConfigs {
            server,
            client,
            verifies_server,
        })
    }
}

/// The client-side verifier of the unauthenticated modes: any certificate is accepted, but the
/// handshake signature is still checked against it (the usual TLS 1.3 proof of key possession).
/// Also what the CLI's `--insecure-skip-tls-verify` dials with.
#[derive(Debug)]
pub struct AnyServer {
    provider: Arc<CryptoProvider>,
}

impl AnyServer {
    /// A verifier that checks handshake signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> AnyServer {
        AnyServer { provider }
    }
}

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
