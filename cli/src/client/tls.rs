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
