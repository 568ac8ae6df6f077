//! `elect NAME [PROPOSAL] [--listen]`.

use std::time::Duration;

use etch::{Election, KeyValue, RangeResponse};

use super::session::Session;
use super::Ctx;
use crate::args::ElectArgs;
use crate::db::{self, Mode};
use crate::error::{CliError, CliResult};
use crate::signals;

/// How long one observation lasts before checking for Ctrl-C.
const OBSERVE_SLICE: Duration = Duration::from_millis(250);

/// Campaigns (printing the leader key and value once elected, holding leadership until
/// Ctrl-C, then resigning) or, with `--listen`, prints every leader.
pub fn run(ctx: &mut Ctx, a: &ElectArgs) -> CliResult {
    if a.listen {
        return listen(ctx, a);
    }
    let Some(proposal) = &a.proposal else {
        return Err(CliError::bad_args("no proposal argument but -l not set"));
    };
    let store = db::open(ctx.cli, Mode::Create)?;
    signals::install()?;
    let session = Session::new(&store, a.ttl)?;
    let election = Election::new(&store, &a.name);
    // The engine's campaign has no timeout; another candidate can only be a stale one whose
    // lease expires within its TTL, because this process holds the file.
    signals::exit_on_signal(true);
    let leadership = election.campaign(session.lease, proposal);
    signals::exit_on_signal(false);
    let leadership = leadership?;
    if let Some(leader) = election.leader()? {
        print_leader(ctx, store.revision(), leader)?;
    }
    while !signals::interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
    leadership.resign()?;
    session.close()?;
    db::close(store)
}

fn listen(ctx: &mut Ctx, a: &ElectArgs) -> CliResult {
    let store = db::open(ctx.cli, Mode::Existing)?;
    signals::install()?;
    let election = Election::new(&store, &a.name);
    let mut current = election.leader()?;
    if let Some(leader) = &current {
        print_leader(ctx, store.revision(), leader.clone())?;
    }
    while !signals::interrupted() {
        if let Some(changed) = election.observe(current.as_ref(), OBSERVE_SLICE)? {
            if let Some(leader) = &changed {
                print_leader(ctx, store.revision(), leader.clone())?;
            }
            current = changed;
        }
    }
    db::close(store)
}

/// Prints the leader as etcdctl does: as a get response of its key.
fn print_leader(ctx: &mut Ctx, revision: i64, leader: KeyValue) -> CliResult {
    let resp = RangeResponse {
        header_revision: revision,
        kvs: vec![leader],
        more: false,
        count: 1,
    };
    ctx.printer.get(&resp, false)?;
    Ok(ctx.printer.flush()?)
}
