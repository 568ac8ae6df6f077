//! Distributed locks and leader election through the server's Lock and Election services
//! (etcd's `v3lock` and `v3election`, which `etch serve` provides too): the same recipes as the
//! local store's [`etch_engine::Mutex`] and [`etch_engine::Election`], run by the server. Both
//! tie ownership to a lease: when the lease ends (revoked, or expired because nobody kept it
//! alive) the lock is released and the leader resigns.

use std::time::Duration;

use etch_engine::{KeyValue, Revision};
use etch_proto::v3electionpb as epb;
use etch_proto::v3electionpb::election_client::ElectionClient;
use etch_proto::v3lockpb as lpb;
use etch_proto::v3lockpb::lock_client::LockClient;

use crate::async_client::AsyncClient;
use crate::balancer::Retry;
use crate::convert;
use crate::error::{Context, Error, Result};

/// A held lock ([`AsyncClient::lock`]): its key exists while the lock is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockKey {
    /// The lock's key (the lock name, a slash and the lease id); pass it to `unlock`.
    pub key: Vec<u8>,
    /// The revision at which the lock was acquired.
    pub header_revision: Revision,
}

/// Leadership won in a campaign ([`AsyncClient::campaign`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    /// The election's name.
    pub name: Vec<u8>,
    /// The leader's key.
    pub key: Vec<u8>,
    /// The creation revision of the key (orders the candidates).
    pub revision: Revision,
    /// The lease that holds the leadership.
    pub lease: i64,
}

impl Leader {
    fn to_proto(&self) -> epb::LeaderKey {
        epb::LeaderKey {
            name: self.name.clone(),
            key: self.key.clone(),
            rev: self.revision,
            lease: self.lease,
        }
    }
}

/// etcd's text when an election has no leader.
const NO_LEADER: &str = "election: no leader";

impl AsyncClient {
    /// Takes the lock `name`, held by `lease`, waiting up to `timeout` for holders before it.
    /// Whether a request that timed out stays queued is the server's choice (etcd withdraws
    /// it; `etch serve` today keeps it, so it takes the lock later and holds it until the lease
    /// ends): revoke the lease to be sure it is withdrawn. The same holds for a campaign.
    pub async fn lock(
        &self,
        name: impl AsRef<[u8]>,
        lease: i64,
        timeout: Duration,
    ) -> Result<LockKey> {
        let request = lpb::LockRequest {
            name: name.as_ref().to_vec(),
            lease,
        };
        let ctx = Context {
            lease,
            ..Context::default()
        };
        let response = self
            .balancer
            .call_within(timeout, Retry::Write, ctx, |ch| {
                let request = request.clone();
                async move { LockClient::new(ch).lock(request).await }
            })
            .await?
            .into_inner();
        Ok(LockKey {
            key: response.key,
            header_revision: convert::revision(response.header.as_ref()),
        })
    }

    /// Releases a lock taken with [`AsyncClient::lock`].
    pub async fn unlock(&self, lock: &LockKey) -> Result<Revision> {
        let request = lpb::UnlockRequest {
            key: lock.key.clone(),
        };
        // Deleting the lock's key twice leaves the same state: idempotent.
        let response = self
            .balancer
            .call(Retry::Idempotent, Context::default(), |ch| {
                let request = request.clone();
                async move { LockClient::new(ch).unlock(request).await }
            })
            .await?;
        Ok(convert::revision(response.into_inner().header.as_ref()))
    }

    /// Campaigns in election `name` with `value`, held by `lease`; returns once this candidate
    /// leads, or fails after `timeout`.
    pub async fn campaign(
        &self,
        name: impl AsRef<[u8]>,
        lease: i64,
        value: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Leader> {
        let request = epb::CampaignRequest {
            name: name.as_ref().to_vec(),
            lease,
            value: value.as_ref().to_vec(),
        };
        let ctx = Context {
            lease,
            ..Context::default()
        };
        let response = self
            .balancer
            .call_within(timeout, Retry::Write, ctx, |ch| {
                let request = request.clone();
                async move { ElectionClient::new(ch).campaign(request).await }
            })
            .await?
            .into_inner();
        let leader = response.leader.ok_or_else(|| Error::Server {
            code: tonic::Code::Internal,
            message: "the campaign response names no leader".into(),
        })?;
        Ok(Leader {
            name: leader.name,
            key: leader.key,
            revision: leader.rev,
            lease: leader.lease,
        })
    }

    /// The current leader's key-value of election `name`, `None` if nobody leads.
    pub async fn leader(&self, name: impl AsRef<[u8]>) -> Result<Option<KeyValue>> {
        let request = epb::LeaderRequest {
            name: name.as_ref().to_vec(),
        };
        let result = self
            .balancer
            .call(Retry::Idempotent, Context::default(), |ch| {
                let request = request.clone();
                async move { ElectionClient::new(ch).leader(request).await }
            })
            .await;
        match result {
            Ok(response) => Ok(response.into_inner().kv.map(convert::key_value)),
            Err(Error::Server { message, .. }) if message.ends_with(NO_LEADER) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Publishes a new value as `leader` (fails if it no longer leads).
    pub async fn proclaim(&self, leader: &Leader, value: impl AsRef<[u8]>) -> Result<Revision> {
        let request = epb::ProclaimRequest {
            leader: Some(leader.to_proto()),
            value: value.as_ref().to_vec(),
        };
        let response = self
            .balancer
            .call(Retry::Write, Context::default(), |ch| {
                let request = request.clone();
                async move { ElectionClient::new(ch).proclaim(request).await }
            })
            .await?;
        Ok(convert::revision(response.into_inner().header.as_ref()))
    }

    /// Gives up leadership.
    pub async fn resign(&self, leader: &Leader) -> Result<Revision> {
        let request = epb::ResignRequest {
            leader: Some(leader.to_proto()),
        };
        // Deleting the leader's key twice leaves the same state: idempotent.
        let response = self
            .balancer
            .call(Retry::Idempotent, Context::default(), |ch| {
                let request = request.clone();
                async move { ElectionClient::new(ch).resign(request).await }
            })
            .await?;
        Ok(convert::revision(response.into_inner().header.as_ref()))
    }
}
