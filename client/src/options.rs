//! How a [`Client`](crate::Client) connects: timeouts, retries and TLS.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// Settings of a client. `ClientOptions::default()` matches etcdctl's defaults (2 s dial
/// timeout, 5 s per request) and talks plaintext unless an endpoint is `https://`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Longest wait for one connection to one endpoint.
    pub dial_timeout: Duration,
    /// Longest wait for one request, retries and failover included. Streams (watch,
    /// keep-alive, snapshot) are bounded by it only while they are being set up.
    pub request_timeout: Duration,
    /// Extra rounds over the endpoints after a first round failed: every endpoint is tried
    /// once per round. Reads go to the next endpoint after any unavailability; writes only
    /// when the request surely did not reach the server (see the crate documentation).
    pub retries: u32,
    /// After a failure, an endpoint is tried last for this long (the others first).
    pub endpoint_backoff: Duration,
    /// A watch or background keep-alive that cannot reach any endpoint for this long gives up
    /// and reports [`Error::Unavailable`].
    pub reconnect_timeout: Duration,
    /// TLS settings; `None` uses TLS only for `https://` endpoints (which then need a CA).
    pub tls: Option<TlsOptions>,
    /// Largest response message accepted (a big range or snapshot chunk).
    pub max_response_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            dial_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            retries: 2,
            endpoint_backoff: Duration::from_secs(1),
            reconnect_timeout: Duration::from_secs(30),
            tls: None,
            max_response_bytes: 64 << 20,
        }
    }
}

impl ClientOptions {
    /// The defaults.
    pub fn new() -> ClientOptions {
        ClientOptions::default()
    }

    /// Sets [`ClientOptions::dial_timeout`].
    pub fn dial_timeout(mut self, timeout: Duration) -> ClientOptions {
        self.dial_timeout = timeout;
        self
    }

    /// Sets [`ClientOptions::request_timeout`].
    pub fn request_timeout(mut self, timeout: Duration) -> ClientOptions {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`ClientOptions::retries`].
    pub fn retries(mut self, retries: u32) -> ClientOptions {
        self.retries = retries;
        self
    }

    /// Sets [`ClientOptions::reconnect_timeout`].
    pub fn reconnect_timeout(mut self, timeout: Duration) -> ClientOptions {
        self.reconnect_timeout = timeout;
        self
    }

    /// Uses TLS with these settings for every endpoint.
    pub fn tls(mut self, tls: TlsOptions) -> ClientOptions {
        self.tls = Some(tls);
        self
    }
}

/// TLS settings (PEM): the CA that signed the servers' certificates, and a client certificate
/// for servers started with client certificate authentication. The system's trust store is not
/// read: without a CA no server certificate verifies.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// CA certificates (PEM) that verify the server.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain (PEM), presented to servers that ask.
    pub cert_pem: Option<Vec<u8>>,
    /// Private key (PEM) of `cert_pem`.
    pub key_pem: Option<Vec<u8>>,
    /// Name to verify in the server's certificate instead of the endpoint's host.
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// Reads the CA and, when both are given, the client certificate and key from PEM files
    /// (etcdctl's `--cacert`, `--cert`, `--key`).
    pub fn from_files(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<TlsOptions> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| Error::Tls(format!("reading {}: {e}", p.display())))
        };
        if cert.is_some() != key.is_some() {
            return Err(Error::Tls(
                "a client certificate needs its key and a key its certificate".into(),
            ));
        }
        Ok(TlsOptions {
            ca_pem: ca.map(read).transpose()?,
            cert_pem: cert.map(read).transpose()?,
            key_pem: key.map(read).transpose()?,
            server_name: None,
        })
    }

    /// The same settings, verifying `name` in the server's certificate.
    pub fn server_name(mut self, name: impl Into<String>) -> TlsOptions {
        self.server_name = Some(name.into());
        self
    }

    /// tonic's configuration of these settings.
    pub(crate) fn tonic_config(&self) -> tonic::transport::ClientTlsConfig {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = &self.ca_pem {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        if let (Some(cert), Some(key)) = (&self.cert_pem, &self.key_pem) {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        config
    }
}
