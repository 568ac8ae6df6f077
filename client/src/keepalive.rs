//! Keeping a lease alive in the background, as etcd's clients do: a task renews the lease over
//! a keep-alive stream a third of its TTL after each renewal, reconnecting (to any endpoint)
//! when the stream breaks, until the handle is dropped.

use std::sync::Arc;
use std::time::Duration;

use etch_proto::etcdserverpb as pb;
use etch_proto::etcdserverpb::lease_client::LeaseClient;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::async_client::AsyncClient;
use crate::error::{self, Error, Result};

/// The shortest pause between two renewals (a 1 s lease is renewed every 333 ms otherwise).
const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// The pause between attempts to reach a server again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Where a background keep-alive stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeepAliveStatus {
    /// No renewal has been answered yet.
    Pending,
    /// The last renewal was answered with this TTL (seconds).
    Alive {
        /// The TTL the server reset the lease to.
        ttl: i64,
    },
    /// The lease does not exist (revoked or expired): the task has stopped.
    LeaseNotFound,
    /// No server could be reached for [`crate::ClientOptions::reconnect_timeout`]: the task has
    /// stopped; the message is the last failure.
    Unavailable(String),
}

/// A lease kept alive in the background ([`AsyncClient::keep_alive`],
/// [`crate::Client::keep_alive`]). Dropping it stops the renewals (the lease then expires after
/// its TTL unless revoked).
pub struct KeepAlive {
    id: i64,
    status: Arc<Mutex<KeepAliveStatus>>,
    task: JoinHandle<()>,
    /// What the task needs alive besides itself: the blocking client's runtime.
    _runtime: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepAlive")
            .field("id", &self.id)
            .field("status", &self.status())
            .finish()
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KeepAlive {
    /// Spawns the renewal task on the current tokio runtime; [`Error::OutsideRuntime`] if
    /// there is none.
    pub(crate) fn start(client: AsyncClient, id: i64) -> Result<KeepAlive> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::OutsideRuntime)?;
        let status = Arc::new(Mutex::new(KeepAliveStatus::Pending));
        let task = runtime.spawn(run(client, id, status.clone()));
        Ok(KeepAlive {
            id,
            status,
            task,
            _runtime: None,
        })
    }

    /// Keeps `runtime` (the one the task runs on) alive as long as this handle.
    pub(crate) fn holding(mut self, runtime: Arc<dyn std::any::Any + Send + Sync>) -> KeepAlive {
        self._runtime = Some(runtime);
        self
    }

    /// The lease id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Where the renewals stand.
    pub fn status(&self) -> KeepAliveStatus {
        self.status.lock().clone()
    }

    /// True while the task runs (it stops when the lease is gone or no server answers).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

async fn run(client: AsyncClient, id: i64, status: Arc<Mutex<KeepAliveStatus>>) {
    let balancer = &client.balancer;
    let mut give_up = Instant::now() + balancer.opts.reconnect_timeout;
    loop {
        let failure = match balancer.pick(give_up).await {
            Ok((i, channel)) => match renew(
                channel,
                id,
                &status,
                &mut give_up,
                balancer.opts.reconnect_timeout,
            )
            .await
            {
                Renewals::LeaseGone => {
                    *status.lock() = KeepAliveStatus::LeaseNotFound;
                    return;
                }
                Renewals::Broken(message) => {
                    balancer.mark_failed(i);
                    message
                }
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() >= give_up {
            *status.lock() = KeepAliveStatus::Unavailable(failure);
            return;
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

enum Renewals {
    LeaseGone,
    Broken(String),
}

/// Renews over one stream until it breaks or the lease is gone.
async fn renew(
    channel: Channel,
    id: i64,
    status: &Mutex<KeepAliveStatus>,
    give_up: &mut Instant,
    reconnect: Duration,
) -> Renewals {
    let (requests, request_rx) = mpsc::channel(1);
    let mut client = LeaseClient::new(channel);
    let mut responses = match client
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(request_rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return Renewals::Broken(error::describe(&s)),
    };
    loop {
        if requests
            .send(pb::LeaseKeepAliveRequest { id })
            .await
            .is_err()
        {
            return Renewals::Broken("the keep-alive stream closed".into());
        }
        let ttl = match responses.message().await {
            Ok(Some(r)) => r.ttl,
            Ok(None) => return Renewals::Broken("the server closed the keep-alive stream".into()),
            Err(s) => return Renewals::Broken(error::describe(&s)),
        };
        if ttl <= 0 {
            return Renewals::LeaseGone;
        }
        *status.lock() = KeepAliveStatus::Alive { ttl };
        let interval = Duration::from_millis(ttl as u64 * 1000 / 3).max(MIN_INTERVAL);
        *give_up = Instant::now() + reconnect;
        tokio::time::sleep(interval).await;
    }
}
