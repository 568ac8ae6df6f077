//! Ctrl-C (and SIGTERM, SIGHUP) for the commands that run until interrupted: they poll
//! [`interrupted`] and then release what they hold (lock key, candidacy, the file) cleanly.
//! Around a wait that cannot be cut short (an election campaign), [`exit_on_signal`] makes a
//! signal end the process at once instead; the lease it left expires on a later open.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{CliError, CliResult};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static EXIT_AT_ONCE: AtomicBool = AtomicBool::new(false);

use crate::error::EXIT_INTERRUPTED;

/// Installs the handler; call once, before blocking.
pub fn install() -> CliResult {
    ctrlc::set_handler(|| {
        if EXIT_AT_ONCE.load(Ordering::SeqCst) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        INTERRUPTED.store(true, Ordering::SeqCst);
    })
    .map_err(|e| CliError::failed(format!("cannot install the signal handler: {e}")))
}

/// While `on`, a signal exits the process immediately.
pub fn exit_on_signal(on: bool) {
    EXIT_AT_ONCE.store(on, Ordering::SeqCst);
}

/// True once a termination signal has arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
