//! The CLI's error type and etcdctl's exit codes.
//!
//! Every failure leaves `main` as a [`CliError`]: a message for stderr and the exit code
//! etcdctl would use for the same kind of failure.

use std::fmt;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The operation failed (etcdctl's `ExitError`): a store error, an I/O error.
pub const EXIT_ERROR: u8 = 1;
/// etcdctl's `ExitBadConnection`, which it also uses when `lease keep-alive --once` fails.
pub const EXIT_BAD_CONNECTION: u8 = 2;
/// An option value etcdctl does not know (etcdctl's `ExitBadFeature`).
pub const EXIT_BAD_FEATURE: u8 = 4;
/// A wait was interrupted by a signal (etcdctl's `ExitInterrupted`).
pub const EXIT_INTERRUPTED: u8 = 5;
/// Input read from stdin or a file could not be parsed (etcdctl's `ExitInvalidInput`).
pub const EXIT_INVALID_INPUT: u8 = 3;
/// The command line itself is wrong (etcdctl's `ExitBadArgs`).
pub const EXIT_BAD_ARGS: u8 = 128;

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    /// Process exit code.
    pub code: u8,
    /// Message printed after `Error: ` on stderr.
    pub message: String,
    /// True when stdout was closed under us (`etch get ... | head`): exit quietly.
    pub broken_pipe: bool,
}

/// Result alias of the CLI.
pub type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    /// An operation error (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::with_code(EXIT_ERROR, message)
    }

    /// Unparseable input (exit 3).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::with_code(EXIT_INVALID_INPUT, message)
    }

    /// Interrupted before the work could start (exit 5).
    pub fn interrupted(message: impl Into<String>) -> Self {
        Self::with_code(EXIT_INTERRUPTED, message)
    }

    /// An unknown option value (exit 4).
    pub fn bad_feature(message: impl Into<String>) -> Self {
        Self::with_code(EXIT_BAD_FEATURE, message)
    }

    /// A failure etcdctl reports with exit code 2 (`lease keep-alive --once`).
    pub fn bad_connection(message: impl Into<String>) -> Self {
        Self::with_code(EXIT_BAD_CONNECTION, message)
    }

    /// The same error with etcdctl's wrapping: `<context> (<message>)`, as in
    /// `failed to revoke lease (etcdserver: requested lease not found)`.
    pub fn context(mut self, context: &str) -> Self {
        self.message = format!("{context} ({})", self.message);
        self
    }

    /// A failure already reported on stdout or stderr (etcdctl's `os.Exit` without an
    /// `Error:` line): exit `code`, nothing more printed.
    pub fn silent(code: u8) -> Self {
        Self::with_code(code, "")
    }

    /// Bad command-line arguments (exit 128).
    pub fn bad_args(message: impl Into<String>) -> Self {
        Self::with_code(EXIT_BAD_ARGS, message)
    }

    fn with_code(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
            broken_pipe: false,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// etcd's own text for the errors etcd has, exactly as etcdctl prints them after `Error: `
/// (scripts and client libraries match on these strings); `None` for etch's own errors.
pub fn etcd_text(e: &etch::Error) -> Option<&'static str> {
    use etch::Error as E;
    Some(match e {
        E::EmptyKey => "etcdserver: key is not provided",
        E::KeyTooLarge { .. } | E::RequestTooLarge { .. } => "etcdserver: request is too large",
        E::TooManyOps { .. } => "etcdserver: too many operations in txn request",
        E::DuplicateKey { .. } => "etcdserver: duplicate key given in txn request",
        E::KeyNotFound => "etcdserver: key not found",
        E::ValueProvided => "etcdserver: value is provided",
        E::LeaseProvided => "etcdserver: lease is provided",
        E::LeaseNotFound { .. } => "etcdserver: requested lease not found",
        E::LeaseExists { .. } => "etcdserver: lease already exists",
        E::Compacted { .. } => "etcdserver: mvcc: required revision has been compacted",
        E::FutureRevision { .. } => "etcdserver: mvcc: required revision is a future revision",
        E::QuotaExceeded { .. } => "etcdserver: mvcc: database space exceeded",
        _ => return None,
    })
}

impl From<etch::Error> for CliError {
    fn from(e: etch::Error) -> Self {
        // etcdctl reports every server-side rejection with ExitError, invalid options included.
        // Errors etcd also has print etcd's exact text, without the engine's details (the
        // revisions, the lease id), so `Error: ...` lines are the ones scripts expect.
        match etcd_text(&e) {
            Some(text) => CliError::failed(text),
            None => CliError::failed(e.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        let mut err = CliError::failed(e.to_string());
        err.broken_pipe = e.kind() == std::io::ErrorKind::BrokenPipe;
        err
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        if e.is_io() {
            return CliError::from(std::io::Error::from(e));
        }
        CliError::invalid_input(e.to_string())
    }
}
