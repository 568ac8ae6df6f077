//! A lease kept alive in the background while a lock or a candidacy is held, as etcd's
//! `concurrency.Session`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use etch::Store;

use crate::error::{CliError, CliResult};

/// A granted lease renewed every TTL/3 until [`Session::close`].
pub struct Session {
    store: Store,
    /// The lease id.
    pub lease: i64,
    stop: Arc<AtomicBool>,
    renewer: Option<JoinHandle<()>>,
}

impl Session {
    /// Grants a lease of `ttl` seconds and starts renewing it.
    pub fn new(store: &Store, ttl: i64) -> CliResult<Session> {
        if ttl <= 0 {
            return Err(CliError::bad_args(format!("--ttl {ttl} must be positive")));
        }
        let lease = store.lease_grant(ttl, 0)?.id;
        let stop = Arc::new(AtomicBool::new(false));
        let every = Duration::from_millis(ttl as u64 * 1000 / 3).max(Duration::from_millis(100));
        let (s, flag) = (store.clone(), stop.clone());
        let renewer = std::thread::spawn(move || {
            let mut waited = Duration::ZERO;
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                waited += Duration::from_millis(50);
                if waited >= every {
                    waited = Duration::ZERO;
                    // A failure means the lease is gone (expired or revoked); the lock or
                    // candidacy it held is gone with it, which the holder sees on release.
                    if s.lease_keep_alive(lease).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Session {
            store: store.clone(),
            lease,
            stop,
            renewer: Some(renewer),
        })
    }

    /// Stops renewing and revokes the lease (deleting anything still attached to it).
    pub fn close(mut self) -> CliResult {
        self.stop_renewer();
        match self.store.lease_revoke(self.lease) {
            Ok(_) | Err(etch::Error::LeaseNotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn stop_renewer(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.renewer.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_renewer();
    }
}
