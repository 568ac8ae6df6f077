//! `lease grant | revoke | timetolive | list | keep-alive` against a server.

use std::time::Duration;

use etch::{LeaseGrant, LeaseInfo};
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::lease_client::LeaseClient;
use tokio::sync::mpsc;

use crate::args::LeaseCommand;
use crate::client::{ids, revision, status_error, Client};
use crate::commands::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::text::lease_hex;
use crate::requests::parse_lease_id;
use crate::signals;

/// How etcdctl names a lease id argument it cannot parse.
const BAD_ID: &str = "bad lease ID arg";

/// How often a keep-alive loop checks for Ctrl-C.
const POLL: Duration = Duration::from_millis(200);

/// Runs one `lease` subcommand.
pub fn run(ctx: &mut Ctx, c: &Client, cmd: &LeaseCommand) -> CliResult {
    let mut lease = LeaseClient::new(c.channel.clone());
    match cmd {
        LeaseCommand::Grant { ttl } => {
            let req = pb::LeaseGrantRequest { ttl: *ttl, id: 0 };
            let resp = c
                .call(lease.lease_grant(req))
                .map_err(|e| e.context("failed to grant lease"))?;
            ctx.printer.set_server(ids(resp.header.as_ref()));
            let grant = LeaseGrant {
                id: resp.id,
                ttl: resp.ttl,
            };
            Ok(ctx
                .printer
                .lease_grant(revision(resp.header.as_ref()), &grant)?)
        }
        LeaseCommand::Revoke { id } => {
            let id = parse_lease_id(id, BAD_ID)?;
            let resp = c
                .call(lease.lease_revoke(pb::LeaseRevokeRequest { id }))
                .map_err(|e| e.context("failed to revoke lease"))?;
            ctx.printer.set_server(ids(resp.header.as_ref()));
            Ok(ctx
                .printer
                .lease_revoke(revision(resp.header.as_ref()), id)?)
        }
        LeaseCommand::Timetolive { id, keys } => {
            let id = parse_lease_id(id, BAD_ID)?;
            let req = pb::LeaseTimeToLiveRequest { id, keys: *keys };
            let resp = c.call(lease.lease_time_to_live(req))?;
            ctx.printer.set_server(ids(resp.header.as_ref()));
            // etcd answers TTL -1 for a lease it does not know: "already expired".
            let info = (resp.ttl >= 0).then(|| LeaseInfo {
                id: resp.id,
                ttl: resp.ttl,
                granted_ttl: resp.granted_ttl,
                keys: resp.keys.clone(),
            });
            let rev = revision(resp.header.as_ref());
            Ok(ctx.printer.lease_ttl(rev, id, info.as_ref(), *keys)?)
        }
        LeaseCommand::List => {
            let resp = c.call(lease.lease_leases(pb::LeaseLeasesRequest {}))?;
            ctx.printer.set_server(ids(resp.header.as_ref()));
            // The list carries ids only; the table's TTL column asks each lease.
            let mut leases = Vec::with_capacity(resp.leases.len());
            for l in &resp.leases {
                let ttl = if ctx.printer.format() == crate::args::Format::Table {
                    let req = pb::LeaseTimeToLiveRequest {
                        id: l.id,
                        keys: false,
                    };
                    c.call(lease.lease_time_to_live(req))?.granted_ttl
                } else {
                    0
                };
                leases.push(LeaseGrant { id: l.id, ttl });
            }
            Ok(ctx
                .printer
                .lease_list(revision(resp.header.as_ref()), &leases)?)
        }
        LeaseCommand::KeepAlive { id, once } => {
            keep_alive(ctx, c, parse_lease_id(id, BAD_ID)?, *once)
        }
    }
}

/// Renews over the keep-alive stream every TTL/3 until interrupted; ends quietly (as
/// etcdctl) when the lease is gone. `--once` failing exits 2, as etcdctl.
fn keep_alive(ctx: &mut Ctx, c: &Client, id: i64, once: bool) -> CliResult {
    let (tx, rx) = mpsc::channel::<pb::LeaseKeepAliveRequest>(4);
    // The first request goes in before the stream opens: etcd answers the call only once a
    // request has arrived.
    tx.try_send(pb::LeaseKeepAliveRequest { id })
        .map_err(|_| CliError::failed("keep-alive stream closed"))?;
    let mut lease = LeaseClient::new(c.channel.clone());
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let opened = c.block_on(async {
        tokio::time::timeout(c.conn().command_timeout, lease.lease_keep_alive(stream)).await
    });
    let mut responses = match opened {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(s)) => return Err(keep_alive_error(status_error(&s), once)),
        Err(_) => {
            return Err(keep_alive_error(
                CliError::failed(crate::client::DEADLINE_EXCEEDED),
                once,
            ))
        }
    };
    if !once {
        signals::install()?;
    }
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) && tx.try_send(pb::LeaseKeepAliveRequest { id }).is_err() {
            return Err(CliError::failed("keep-alive stream closed"));
        }
        let resp = c.block_on(async {
            tokio::time::timeout(c.conn().command_timeout, responses.message()).await
        });
        let resp = match resp {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => return Err(keep_alive_error(CliError::failed("stream closed"), once)),
            Ok(Err(s)) => return Err(keep_alive_error(status_error(&s), once)),
            Err(_) => {
                return Err(keep_alive_error(
                    CliError::failed(crate::client::DEADLINE_EXCEEDED),
                    once,
                ))
            }
        };
        if resp.ttl <= 0 {
            // The lease expired or was revoked.
            if once {
                return Err(CliError::bad_connection(
                    "etcdserver: requested lease not found",
                ));
            }
            ctx.printer
                .line(&format!("lease {} expired or revoked.", lease_hex(id)))?;
            return Ok(());
        }
        ctx.printer.set_server(ids(resp.header.as_ref()));
        ctx.printer
            .lease_keep_alive(revision(resp.header.as_ref()), id, resp.ttl)?;
        ctx.printer.flush()?;
        if once {
            return Ok(());
        }
        let every = Duration::from_millis((resp.ttl.max(1) as u64 * 1000) / 3)
            .max(Duration::from_millis(300));
        let until = std::time::Instant::now() + every;
        while std::time::Instant::now() < until {
            if signals::interrupted() {
                return Ok(());
            }
            std::thread::sleep(POLL.min(until - std::time::Instant::now()));
        }
    }
}

/// etcdctl exits 2 when the single renewal of `--once` fails, 1 otherwise.
fn keep_alive_error(e: CliError, once: bool) -> CliError {
    if once {
        CliError::bad_connection(e.message)
    } else {
        e
    }
}
