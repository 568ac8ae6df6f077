//! Leases: grant, revoke, keep-alive, time-to-live, listing and expiry. The leases themselves
//! live in the keyspace (applied through the commit pipeline); their deadlines are in-memory
//! clocks on the handle, as in etcd.

use std::time::Duration;

use super::commit::mismatched_response;
use super::Store;
use crate::command::{Command, CommandResponse};
use crate::error::{Error, Result};
use crate::keyspace;
use crate::types::Revision;

/// A granted lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The lease id.
    pub id: i64,
    /// Its TTL in seconds.
    pub ttl: i64,
}

/// What [`Store::lease_time_to_live`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease id.
    pub id: i64,
    /// Seconds left before it expires (rounded up).
    pub ttl: i64,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// Keys attached to it, if asked for.
    pub keys: Vec<Vec<u8>>,
}

#[derive(Clone, Copy)]
pub(super) struct LeaseClock {
    pub(super) ttl: i64,
    /// Expiry, on the store's clock.
    pub(super) deadline: Duration,
}

impl Store {
    /// Grants a lease of `ttl` seconds (1 to 9,000,000,000); `id` 0 picks a fresh one. Keys put
    /// with the lease are deleted, at one revision, when it is revoked or expires without
    /// [`Store::lease_keep_alive`]. Expiry runs on the background thread.
    ///
    /// ```no_run
    /// use etch_engine::{PutOp, Store};
    /// let db = Store::open("app.etch")?;
    /// let lease = db.lease_grant(10, 0)?;
    /// db.put_with(PutOp { key: b"svc/me".to_vec(), value: b"10.0.0.7".to_vec(), lease: lease.id, ..Default::default() })?;
    /// db.lease_keep_alive(lease.id)?; // call more often than every 10 s, or the key goes
    /// # Ok::<(), etch_engine::Error>(())
    /// ```
    pub fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrant> {
        self.check_writable()?;
        self.check_local_write("lease_grant")?;
        if !(1..=9_000_000_000).contains(&ttl) {
            return Err(Error::InvalidOption(format!(
                "lease TTL {ttl} is not between 1 and 9000000000 seconds"
            )));
        }
        if id < 0 {
            return Err(Error::InvalidOption(format!("lease id {id} is negative")));
        }
        self.commit_with(|w| {
            let id = if id != 0 {
                if keyspace::lease_ttl(&w.pager, &w.state, id)?.is_some() {
                    return Err(Error::LeaseExists { id });
                }
                id
            } else {
                loop {
                    let candidate = (crate::file::random_u64() >> 1) as i64;
                    if candidate != 0
                        && keyspace::lease_ttl(&w.pager, &w.state, candidate)?.is_none()
                    {
                        break candidate;
                    }
                }
            };
            self.commit_command(w, &Command::LeaseGrant { id, ttl })
        })
        .and_then(|response| match response {
            CommandResponse::LeaseGrant(grant) => Ok(grant),
            other => Err(mismatched_response("lease grant", &other)),
        })
    }

    /// Revokes a lease: its keys are deleted at one revision (returned; unchanged if it had no
    /// keys) and watchers see the deletes.
    pub fn lease_revoke(&self, id: i64) -> Result<Revision> {
        self.check_writable()?;
        self.check_local_write("lease_revoke")?;
        let command = Command::LeaseRevoke { id };
        match self.commit_with(|w| self.commit_command(w, &command))? {
            CommandResponse::LeaseRevoke(r) => Ok(r),
            other => Err(mismatched_response("lease revoke", &other)),
        }
    }

    /// Renews a lease for its full TTL; returns the TTL.
    pub fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.check_writable()?;
        let mut clocks = self.shared.lease_clocks.lock();
        let clock = clocks.get_mut(&id).ok_or(Error::LeaseNotFound { id })?;
        clock.deadline = self
            .shared
            .opts
            .clock
            .now()
            .saturating_add(Duration::from_secs(clock.ttl as u64));
        Ok(clock.ttl)
    }

    /// Remaining and granted TTL of a lease, and optionally its keys.
    pub fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        let read = self.read()?;
        let granted_ttl = keyspace::lease_ttl(&read.snap.view(), &read.snap.state, id)?
            .ok_or(Error::LeaseNotFound { id })?;
        let remaining = self.shared.lease_clocks.lock().get(&id).map_or(0, |c| {
            c.deadline
                .saturating_sub(self.shared.opts.clock.now())
                .as_millis()
                .div_ceil(1000) as i64
        });
        let keys = if with_keys {
            keyspace::lease_keys(&read.snap.view(), &read.snap.state, id)?
        } else {
            Vec::new()
        };
        Ok(LeaseInfo {
            id,
            ttl: remaining,
            granted_ttl,
            keys,
        })
    }

    /// Every lease: (id, granted TTL).
    pub fn lease_list(&self) -> Result<Vec<LeaseGrant>> {
        let read = self.read()?;
        Ok(keyspace::lease_list(&read.snap.view(), &read.snap.state)?
            .into_iter()
            .map(|(id, ttl)| LeaseGrant { id, ttl })
            .collect())
    }

    /// The clock lease deadlines are measured on ([`Options::clock`](crate::Options::clock)),
    /// so that a replication layer deciding expiry reads the same time as the store.
    pub fn lease_clock(&self) -> std::sync::Arc<dyn crate::Clock> {
        std::sync::Arc::clone(&self.shared.opts.clock)
    }

    /// When a lease of `ttl` seconds granted or renewed now expires.
    pub(super) fn lease_deadline(&self, ttl: i64) -> Duration {
        self.shared
            .opts
            .clock
            .now()
            .saturating_add(Duration::from_secs(ttl.max(0) as u64))
    }

    /// The leases whose deadline has passed, in ascending id order, without revoking them: what
    /// a replication layer proposes to revoke when the store's own background writes are off
    /// ([`Options::background_writes`](crate::Options::background_writes)).
    pub fn expired_leases(&self) -> Vec<i64> {
        let now = self.shared.opts.clock.now();
        let mut expired: Vec<i64> = self
            .shared
            .lease_clocks
            .lock()
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        expired
    }

    /// Revokes every lease whose deadline has passed, in ascending id order, and returns their
    /// ids. The background thread calls this every tick; tests with a [`crate::ManualClock`]
    /// call it after advancing the clock.
    pub fn expire_leases(&self) -> Result<Vec<i64>> {
        self.check_writable()?;
        self.check_local_write("expire_leases")?;
        // Read after the list, so every listed lease is still due at `now`.
        let expired = self.expired_leases();
        let now = self.shared.opts.clock.now();
        let mut revoked = Vec::new();
        for id in expired {
            // Keep-alive may have raced with us; check again right before revoking.
            let still = self
                .shared
                .lease_clocks
                .lock()
                .get(&id)
                .is_some_and(|c| c.deadline <= now);
            if !still {
                continue;
            }
            match self.lease_revoke(id) {
                Ok(_) => revoked.push(id),
                // Revoked meanwhile by someone else.
                Err(Error::LeaseNotFound { .. }) => {
                    self.shared.lease_clocks.lock().remove(&id);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(revoked)
    }
}
