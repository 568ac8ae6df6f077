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

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use tonic::transport::{Channel, Endpoint};

    use super::read;
    use crate::client::ConnArgs;
    use crate::error::{CliError, CliResult};

    /// Accepts any server certificate; verifies handshake signatures with the provider's
    /// algorithms.
    #[derive(Debug)]
    struct AnyServer(Arc<CryptoProvider>);

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
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// The rustls client configuration: no verification, HTTP/2 by ALPN, the client
    /// certificate when given.
    pub fn client_config(conn: &ConnArgs) -> CliResult<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| CliError::failed(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
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
