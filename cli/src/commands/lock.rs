//! `lock NAME [--ttl N] [-- COMMAND...]`.

use std::time::Duration;

use etch::{Mutex, RangeResponse};

use super::session::Session;
use super::Ctx;
use crate::args::LockArgs;
use crate::child;
use crate::db::{self, Mode};
use crate::error::{CliError, CliResult, EXIT_ERROR, EXIT_OK};
use crate::signals;

/// How long one wait for the lock lasts before checking for Ctrl-C. The engine's `Mutex::lock`
/// cannot be cancelled and `try_lock_for` leaves the queue when it times out, so every slice
/// costs a put and a delete (two revisions): a second keeps that small while Ctrl-C still
/// answers promptly.
const WAIT_SLICE: Duration = Duration::from_secs(1);

/// Takes the lock, then runs the command or prints the key and waits for Ctrl-C; releases the
/// lock and revokes its lease either way. Returns the command's exit status.
pub fn run(ctx: &mut Ctx, a: &LockArgs) -> CliResult<u8> {
    let store = db::open(ctx.cli, Mode::Create)?;
    signals::install()?;
    let session = Session::new(&store, a.ttl)?;
    let mutex = Mutex::new(&store, &a.name);
    // Waiting in slices lets Ctrl-C end the wait; each slice rejoins the queue with the same key.
    let guard = loop {
        if signals::interrupted() {
            session.close()?;
            db::close(store)?;
            return Err(CliError::interrupted(
                "interrupted while waiting for the lock",
            ));
        }
        if let Some(g) = mutex.try_lock_for(session.lease, WAIT_SLICE)? {
            break g;
        }
    };
    let key = String::from_utf8_lossy(guard.key()).into_owned();
    let code = if a.command.is_empty() {
        let kv = store.get(guard.key())?;
        let resp = RangeResponse {
            header_revision: store.revision(),
            count: kv.iter().len() as i64,
            kvs: kv.into_iter().collect(),
            more: false,
        };
        ctx.printer.get(&resp, false)?;
        ctx.printer.flush()?;
        while !signals::interrupted() {
            std::thread::sleep(Duration::from_millis(100));
        }
        EXIT_OK
    } else {
        ctx.printer.flush()?;
        let env = [
            ("ETCD_LOCK_KEY", key),
            ("ETCD_LOCK_REV", guard.revision().to_string()),
        ];
        let status = child::run(&a.command, &env)?;
        // A command killed by a signal has no code: report failure.
        status.code().map_or(EXIT_ERROR, |c| c as u8)
    };
    guard.unlock()?;
    session.close()?;
    db::close(store)?;
    Ok(code)
}
