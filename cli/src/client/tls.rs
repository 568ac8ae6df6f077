//! TLS settings of client mode from `--cacert`, `--cert` and `--key` (PEM files, as etcdctl).

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::ConnArgs;
use crate::error::{CliError, CliResult};

fn read(path: &std::path::Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| CliError::failed(format!("open {}: {e}", path.display())))
}

/// The TLS configuration: the server is verified against `--cacert` (the system's roots are
/// not read, so without `--cacert` no server certificate verifies and the dial fails with
/// rustls's "invalid peer certificate: UnknownIssuer"), and `--cert`/`--key` are presented to
/// servers that ask.
pub fn config(conn: &ConnArgs) -> CliResult<ClientTlsConfig> {
    let mut config = ClientTlsConfig::new();
    if let Some(ca) = &conn.cacert {
        config = config.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    if let (Some(cert), Some(key)) = (&conn.cert, &conn.key) {
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(config)
}

/// `--insecure-skip-tls-verify`: a dial that speaks TLS without verifying the server's
/// certificate (etcdctl's flag, for testing only). The handshake's signatures are still
/// checked, so the peer holds the key of the certificate it showed; who it is is not checked.
pub mod insecure {
    use std::sync::Arc;

    use etch_replication::quic::tls::AnyServer;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tonic::transport::{Channel, Endpoint};

    use super::read;
    use crate::client::ConnArgs;
    use crate::error::{CliError, CliResult};

    /// The rustls client configuration: no verification, HTTP/2 by ALPN, the client
    /// certificate when given.
    pub fn client_config(conn: &ConnArgs) -> CliResult<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| CliError::failed(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer::new(provider)));
        let mut config = match (&conn.cert, &conn.key) {
            (Some(cert), Some(key)) => {
                let bad = |what: &std::path::Path, e: rustls::pki_types::pem::Error| {
                    CliError::failed(format!("{}: {e}", what.display()))
                };
                let certs = CertificateDer::pem_slice_iter(&read(cert)?)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(cert, e))?;
                let key_der =
                    PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| bad(key, e))?;
                builder
                    .with_client_auth_cert(certs, key_der)
                    .map_err(|e| CliError::failed(format!("TLS client certificate: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// Connects `endpoint` (an `https://` URL tonic is given as `http://`, since the TLS is
    /// done here) through the unverified TLS connector.
    pub async fn connect(ep: Endpoint, config: rustls::ClientConfig) -> Result<Channel, String> {
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
        let connector = tower::service_fn(move |uri: http::Uri| {
            let tls = tls.clone();
            async move {
                let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
                let host = uri
                    .host()
                    .ok_or_else(|| invalid(format!("no host in {uri}")))?
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                let port = uri.port_u16().unwrap_or(443);
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from(host).map_err(|e| invalid(e.to_string()))?;
                let stream = tls.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        });
        ep.connect_with_connector(connector)
            .await
            .map_err(|e| super::super::conn::error_chain(&e))
    }
}
