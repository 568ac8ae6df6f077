//! `lease grant | revoke | timetolive | list | keep-alive`.
//!
//! Lease ids are printed and taken in hex, as etcdctl. A lease's countdown runs only while a
//! process has the file open: the engine restarts every lease at its full TTL on open.

use std::time::{Duration, Instant};

use super::Ctx;
use crate::args::LeaseCommand;
use crate::db::{self, Mode};
use crate::error::{CliError, CliResult};
use crate::output::text::lease_hex;
use crate::requests::parse_lease_id;
use crate::signals;

/// How etcdctl names a lease id argument it cannot parse.
const BAD_ID: &str = "bad lease ID arg";

/// The longest TTL etcd grants (`MaxLeaseTTL`, 9,000,000,000 s); etch has the same limit.
const MAX_TTL: i64 = 9_000_000_000;

/// A refused grant, wrapped as etcdctl wraps it.
fn grant_error(ttl: i64, e: etch::Error) -> CliError {
    let err = if ttl > MAX_TTL {
        CliError::failed("etcdserver: too large lease TTL")
    } else {
        CliError::from(e)
    };
    err.context("failed to grant lease")
}

/// Runs one `lease` subcommand.
pub fn run(ctx: &mut Ctx, c: &LeaseCommand) -> CliResult {
    match c {
        LeaseCommand::Grant { ttl } => {
            let store = db::open(ctx.cli, Mode::Create)?;
            let grant = store
                .lease_grant(*ttl, 0)
                .map_err(|e| grant_error(*ttl, e))?;
            let revision = store.revision();
            db::close(store)?;
            Ok(ctx.printer.lease_grant(revision, &grant)?)
        }
        LeaseCommand::Revoke { id } => {
            let id = parse_lease_id(id, BAD_ID)?;
            let store = db::open(ctx.cli, Mode::Existing)?;
            let revision = store
                .lease_revoke(id)
                .map_err(|e| CliError::from(e).context("failed to revoke lease"))?;
            db::close(store)?;
            Ok(ctx.printer.lease_revoke(revision, id)?)
        }
        LeaseCommand::Timetolive { id, keys } => {
            let id = parse_lease_id(id, BAD_ID)?;
            let store = db::open(ctx.cli, Mode::ReadOnly)?;
            let info = match store.lease_time_to_live(id, *keys) {
                Ok(info) => Some(info),
                // etcd answers TTL -1 for an unknown lease; etcdctl prints "already expired".
                Err(etch::Error::LeaseNotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let revision = store.revision();
            db::close(store)?;
            Ok(ctx.printer.lease_ttl(revision, id, info.as_ref(), *keys)?)
        }
        LeaseCommand::List => {
            let store = db::open(ctx.cli, Mode::ReadOnly)?;
            let leases = store.lease_list()?;
            let revision = store.revision();
            db::close(store)?;
            Ok(ctx.printer.lease_list(revision, &leases)?)
        }
        LeaseCommand::KeepAlive { id, once } => keep_alive(ctx, parse_lease_id(id, BAD_ID)?, *once),
    }
}

/// Renews every TTL/3 until interrupted; ends quietly (as etcdctl) when the lease is gone.
fn keep_alive(ctx: &mut Ctx, id: i64, once: bool) -> CliResult {
    let store = db::open(ctx.cli, Mode::Existing)?;
    let ttl = match store.lease_keep_alive(id) {
        Ok(ttl) => ttl,
        // etcdctl exits 2 when the single renewal of `--once` fails.
        Err(e) if once => {
            let err = CliError::from(e);
            return Err(CliError::bad_connection(err.message));
        }
        Err(e) => return Err(e.into()),
    };
    ctx.printer.lease_keep_alive(store.revision(), id, ttl)?;
    ctx.printer.flush()?;
    if once {
        return db::close(store);
    }
    signals::install()?;
    let every =
        Duration::from_millis((ttl.max(1) as u64 * 1000) / 3).max(Duration::from_millis(300));
    let mut next = Instant::now() + every;
    while !signals::interrupted() {
        std::thread::sleep(Duration::from_millis(100).min(every));
        if Instant::now() < next {
            continue;
        }
        next = Instant::now() + every;
        match store.lease_keep_alive(id) {
            Ok(ttl) => {
                ctx.printer.lease_keep_alive(store.revision(), id, ttl)?;
                ctx.printer.flush()?;
            }
            Err(etch::Error::LeaseNotFound { .. }) => {
                ctx.printer
                    .line(&format!("lease {} expired or revoked.", lease_hex(id)))?;
                break;
            }
            Err(e) => return Err(CliError::from(e)),
        }
    }
    db::close(store)
}
