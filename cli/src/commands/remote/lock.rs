//! `lock` and `elect` against a server, through its Lock and Election services, each holding
//! a session: a lease kept alive in the background while the lock or candidacy is held.

use std::future::Future;
use std::time::Duration;

use etch::{KeyValue, RangeResponse};
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::kv_client::KvClient;
use etch_server::proto::etcdserverpb::lease_client::LeaseClient;
use etch_server::proto::v3electionpb as el;
use etch_server::proto::v3electionpb::election_client::ElectionClient;
use etch_server::proto::v3lockpb as lk;
use etch_server::proto::v3lockpb::lock_client::LockClient;
use tokio::task::JoinHandle;

use crate::args::{ElectArgs, LockArgs};
use crate::child;
use crate::client::{convert, ids, revision, status_error, Client};
use crate::commands::Ctx;
use crate::error::{CliError, CliResult, EXIT_ERROR, EXIT_OK};
use crate::signals;

/// How often a wait checks for Ctrl-C.
const POLL: Duration = Duration::from_millis(200);

/// A lease renewed every TTL/3 by a task on the client's runtime, as etcd's
/// `concurrency.Session`.
struct Session {
    lease: i64,
    renewer: JoinHandle<()>,
}

impl Session {
    fn new(c: &Client, ttl: i64) -> CliResult<Session> {
        if ttl <= 0 {
            return Err(CliError::bad_args(format!("--ttl {ttl} must be positive")));
        }
        let mut leases = LeaseClient::new(c.channel.clone());
        let grant = c.call(leases.lease_grant(pb::LeaseGrantRequest { ttl, id: 0 }))?;
        let lease = grant.id;
        let every = Duration::from_millis(grant.ttl.max(1) as u64 * 1000 / 3);
        let renewer = c.rt().spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            // etcd answers the call only once a request has arrived: the first renewal goes
            // in before the stream opens.
            if tx
                .try_send(pb::LeaseKeepAliveRequest { id: lease })
                .is_err()
            {
                return;
            }
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            let Ok(resp) = leases.lease_keep_alive(stream).await else {
                return;
            };
            let mut responses = resp.into_inner();
            let mut first = true;
            loop {
                if !std::mem::take(&mut first) {
                    tokio::time::sleep(every).await;
                    let renew = pb::LeaseKeepAliveRequest { id: lease };
                    if tx.send(renew).await.is_err() {
                        return;
                    }
                }
                // A lost lease ends the renewals; the holder sees it when it lets go.
                match responses.message().await {
                    Ok(Some(r)) if r.ttl > 0 => {}
                    _ => return,
                }
            }
        });
        Ok(Session { lease, renewer })
    }

    /// Stops renewing and revokes the lease (deleting the lock or candidacy key with it).
    fn close(self, c: &Client) -> CliResult {
        self.renewer.abort();
        let mut leases = LeaseClient::new(c.channel.clone());
        match c.call(leases.lease_revoke(pb::LeaseRevokeRequest { id: self.lease })) {
            Ok(_) => Ok(()),
            Err(e) if e.message.contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Awaits `fut` while polling for Ctrl-C: `None` when interrupted first.
fn until_interrupted<F: Future>(c: &Client, fut: F) -> Option<F::Output> {
    c.block_on(async {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Some(out),
                _ = tokio::time::sleep(POLL) => {
                    if signals::interrupted() {
                        return None;
                    }
                }
            }
        }
    })
}

/// Waits for Ctrl-C.
fn hold() {
    while !signals::interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prints a key-value as etcdctl prints the lock key and the leader: as a get response.
fn print_kv(ctx: &mut Ctx, header: Option<&pb::ResponseHeader>, kv: KeyValue) -> CliResult {
    ctx.printer.set_server(ids(header));
    let resp = RangeResponse {
        header_revision: revision(header),
        kvs: vec![kv],
        more: false,
        count: 1,
    };
    ctx.printer.get(&resp, false)?;
    Ok(ctx.printer.flush()?)
}

/// `lock NAME [-- COMMAND]`: returns the command's exit status.
pub fn lock(ctx: &mut Ctx, c: &Client, a: &LockArgs) -> CliResult<u8> {
    signals::install()?;
    let session = Session::new(c, a.ttl)?;
    let mut locks = LockClient::new(c.channel.clone());
    let req = lk::LockRequest {
        name: a.name.as_bytes().to_vec(),
        lease: session.lease,
    };
    let Some(locked) = until_interrupted(c, locks.lock(req)) else {
        session.close(c)?;
        return Err(CliError::interrupted(
            "interrupted while waiting for the lock",
        ));
    };
    let locked = match locked {
        Ok(r) => r.into_inner(),
        Err(s) => {
            session.close(c)?;
            return Err(status_error(&s));
        }
    };
    let code = if a.command.is_empty() {
        let mut kv = KvClient::new(c.channel.clone());
        let get = pb::RangeRequest {
            key: locked.key.clone(),
            ..Default::default()
        };
        let resp = c.call(kv.range(get))?;
        if let Some(k) = resp.kvs.into_iter().next() {
            print_kv(ctx, resp.header.as_ref(), convert::kv(k))?;
        }
        hold();
        EXIT_OK
    } else {
        let env = [
            (
                "ETCD_LOCK_KEY",
                String::from_utf8_lossy(&locked.key).into_owned(),
            ),
            (
                "ETCD_LOCK_REV",
                revision(locked.header.as_ref()).to_string(),
            ),
        ];
        let status = child::run(&a.command, &env)?;
        status.code().map_or(EXIT_ERROR, |c| c as u8)
    };
    let unlock = c.call(locks.unlock(lk::UnlockRequest { key: locked.key }));
    session.close(c)?;
    unlock?;
    Ok(code)
}

/// `elect NAME PROPOSAL` or `elect NAME --listen`.
pub fn elect(ctx: &mut Ctx, c: &Client, a: &ElectArgs) -> CliResult {
    signals::install()?;
    let mut election = ElectionClient::new(c.channel.clone());
    let name = a.name.as_bytes().to_vec();
    if a.listen {
        return listen(ctx, c, &mut election, name);
    }
    let Some(proposal) = &a.proposal else {
        return Err(CliError::bad_args("no proposal argument but -l not set"));
    };
    let session = Session::new(c, a.ttl)?;
    let req = el::CampaignRequest {
        name: name.clone(),
        lease: session.lease,
        value: proposal.as_bytes().to_vec(),
    };
    let campaign = match until_interrupted(c, election.campaign(req)) {
        None => {
            session.close(c)?;
            return Err(CliError::interrupted("interrupted while campaigning"));
        }
        Some(Err(s)) => {
            session.close(c)?;
            return Err(status_error(&s));
        }
        Some(Ok(r)) => r.into_inner(),
    };
    let leader = c.call(election.leader(el::LeaderRequest { name }))?;
    if let Some(kv) = leader.kv {
        print_kv(ctx, leader.header.as_ref(), convert::kv(kv))?;
    }
    hold();
    let resign = c.call(election.resign(el::ResignRequest {
        leader: campaign.leader,
    }));
    session.close(c)?;
    resign.map(|_| ())
}

/// Prints the current leader and every change, until interrupted.
fn listen(
    ctx: &mut Ctx,
    c: &Client,
    election: &mut ElectionClient<tonic::transport::Channel>,
    name: Vec<u8>,
) -> CliResult {
    let opened = until_interrupted(c, election.observe(el::LeaderRequest { name }));
    let mut stream = match opened {
        None => return Ok(()),
        Some(Err(s)) => return Err(status_error(&s)),
        Some(Ok(r)) => r.into_inner(),
    };
    loop {
        match until_interrupted(c, stream.message()) {
            None => return Ok(()),
            Some(Err(s)) => return Err(status_error(&s)),
            Some(Ok(None)) => return Err(CliError::failed("observe stream closed by the server")),
            Some(Ok(Some(resp))) => {
                if let Some(kv) = resp.kv {
                    print_kv(ctx, resp.header.as_ref(), convert::kv(kv))?;
                }
            }
        }
    }
}
