//! etch_connect(): an `etch_db *` over a remote `etch serve` cluster or etcd server.

use std::ffi::{c_char, c_int, CStr};
use std::path::PathBuf;
use std::time::Duration;

use etch_client::{Client, ClientOptions, TlsOptions};

use crate::backend::{client_failure, Backend};
use crate::boundary::{call, clear, out};
use crate::db::into_handle;
use crate::error::{Failure, FfiResult};

/// Options for etch_connect(). Owned by the caller; etch only reads it during the call.
///
/// Always fill it with `etch_connect_options_init(&opts, sizeof opts)` first, then change the
/// fields you care about (ABI evolution as etch_options: later versions only append fields).
/// The defaults are etcdctl's: a 2 s dial timeout, 5 s per request, 2 retries, plaintext
/// unless an endpoint is `https://`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct etch_connect_options {
    /// Size in bytes of the caller's struct: set by etch_connect_options_init(), never by hand.
    pub size: usize,
    /// Longest wait for one connection to one endpoint, in milliseconds (default 2000).
    pub dial_timeout_ms: u64,
    /// Longest wait for one request, retries and failover included, in milliseconds (default
    /// 5000). A call that runs out of it returns ETCH_TIMEOUT.
    pub request_timeout_ms: u64,
    /// Extra rounds over the endpoints after a first round failed (default 2).
    pub retries: u32,
    /// CA certificate file (PEM) that verifies the servers: turns TLS on. NULL: plaintext,
    /// unless an endpoint is `https://`.
    pub ca_file: *const c_char,
    /// Client certificate file (PEM), for servers that ask for one; needs `key_file`.
    pub cert_file: *const c_char,
    /// Private key file (PEM) of `cert_file`.
    pub key_file: *const c_char,
}

impl etch_connect_options {
    fn defaults() -> etch_connect_options {
        let d = ClientOptions::default();
        etch_connect_options {
            size: std::mem::size_of::<etch_connect_options>(),
            dial_timeout_ms: d.dial_timeout.as_millis() as u64,
            request_timeout_ms: d.request_timeout.as_millis() as u64,
            retries: d.retries,
            ca_file: std::ptr::null(),
            cert_file: std::ptr::null(),
            key_file: std::ptr::null(),
        }
    }

    fn check_size(size: usize) -> FfiResult<()> {
        let known = std::mem::size_of::<etch_connect_options>();
        if size == known {
            Ok(())
        } else {
            Err(Failure::invalid(format!(
                "etch_connect_options size {size} is not {known}: fill the options with \
                 etch_connect_options_init(&opts, sizeof opts)"
            )))
        }
    }

    /// The client's options.
    ///
    /// # Safety
    /// The file name pointers must be NULL or NUL-terminated strings.
    unsafe fn to_client(self) -> FfiResult<ClientOptions> {
        // SAFETY: the caller's guarantee for each pointer.
        let (ca, cert, key) = unsafe {
            (
                file(self.ca_file, "ca_file")?,
                file(self.cert_file, "cert_file")?,
                file(self.key_file, "key_file")?,
            )
        };
        if cert.is_some() != key.is_some() {
            return Err(Failure::invalid(
                "cert_file and key_file go together: give both or neither",
            ));
        }
        let mut options = ClientOptions::new()
            .dial_timeout(Duration::from_millis(self.dial_timeout_ms))
            .request_timeout(Duration::from_millis(self.request_timeout_ms))
            .retries(self.retries);
        if ca.is_some() || cert.is_some() {
            let tls = TlsOptions::from_files(ca.as_deref(), cert.as_deref(), key.as_deref())
                .map_err(client_failure)?;
            options = options.tls(tls);
        }
        Ok(options)
    }
}

/// An optional file name.
///
/// # Safety
/// `ptr` must be NULL or a NUL-terminated string.
unsafe fn file(ptr: *const c_char, what: &str) -> FfiResult<Option<PathBuf>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's guarantee.
    Ok(Some(unsafe { crate::boundary::path(ptr, what) }?))
}

/// Fills `*opts` with the defaults (etcdctl's: 2 s dial timeout, 5 s per request, 2 retries,
/// no TLS files). `size` must be `sizeof *opts`. Returns ETCH_OK, or ETCH_INVALID for a NULL
/// `opts` or a size this library does not know. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_connect_options_init(
    opts: *mut etch_connect_options,
    size: usize,
) -> c_int {
    call(|| {
        // SAFETY: by the header's contract opts is NULL or writable for sizeof *opts bytes.
        let opts = unsafe { out(opts, "opts") }?;
        etch_connect_options::check_size(size)?;
        opts.set(etch_connect_options::defaults());
        Ok(())
    })
}

/// Connects to a remote `etch serve` cluster or etcd server: the handle it gives takes the same
/// calls as one from etch_open(), sent over etcd's v3 API.
///
/// `endpoints` is a NUL-terminated, comma-separated list of `host:port`, `http://host:port`
/// or `https://host:port` (etcdctl's `--endpoints`); requests are balanced over them and fail
/// over when one is unreachable. `opts` may be NULL for the defaults. Nothing is sent yet: an
/// unreachable server shows at the first call (ETCH_UNAVAILABLE). On success `*db` receives a
/// handle owned by the caller (etch_close() releases it); on failure `*db` is NULL and
/// etch_errmsg(NULL) says why.
///
/// The calls a remote server does not offer through this API (etch_snapshot(), etch_defrag(),
/// etch_status(), etch_check(), etch_sync(), etch_checkpoint(), etch_write(),
/// etch_wal_repair(), etch_member_info()) return ETCH_UNSUPPORTED. Network failures are
/// ETCH_UNAVAILABLE (nothing was applied; retrying is safe) or ETCH_TIMEOUT (the outcome of a
/// write is unknown). Returns ETCH_OK or ETCH_INVALID (NULL or empty endpoints, a malformed
/// endpoint, bad options, unreadable TLS files). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn etch_connect(
    endpoints: *const c_char,
    opts: *const etch_connect_options,
    db: *mut *mut crate::db::etch_db,
) -> c_int {
    // SAFETY: by the header's contract `db` is NULL or writable; cleared first so that every
    // failure leaves NULL there.
    unsafe { clear(db) };
    call(|| {
        // SAFETY: by the header's contract db is writable, endpoints NUL-terminated and opts
        // NULL or an etch_connect_options filled by etch_connect_options_init().
        let (db, endpoints, options) = unsafe {
            let db = out(db, "db")?;
            if endpoints.is_null() {
                return Err(Failure::invalid("endpoints is NULL"));
            }
            let endpoints = CStr::from_ptr(endpoints)
                .to_str()
                .map_err(|_| Failure::invalid("endpoints is not UTF-8"))?
                .to_string();
            let options = match opts.as_ref() {
                None => etch_connect_options::defaults(),
                Some(o) => {
                    etch_connect_options::check_size(o.size)?;
                    *o
                }
            };
            (db, endpoints, options.to_client()?)
        };
        let list: Vec<&str> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        let client = Client::connect(&list, options).map_err(client_failure)?;
        db.set(into_handle(Backend::Remote(client)));
        Ok(())
    })
}
