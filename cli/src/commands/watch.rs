//! `watch KEY [RANGE_END] [--prefix] [--rev N] [--prev-kv] [--no-follow] [-- COMMAND...]`.
//!
//! The watching process holds the file's lock, so the only new changes it can see are its own:
//! the deletions of leases that expire while it watches. Replaying history with `--rev` is the
//! main use; `--no-follow` stops once the history up to the current revision is printed.

use std::time::Duration;

use etch::{EventKind, WatchOptions};

use super::Ctx;
use crate::args::{Format, WatchArgs};
use crate::child;
use crate::db::{self, Mode};
use crate::error::{CliError, CliResult};
use crate::output::text::go_quote;
use crate::requests;
use crate::signals;

/// How often a following watch checks for Ctrl-C.
const POLL: Duration = Duration::from_millis(200);

/// Runs the watch until interrupted (or caught up, with `--no-follow`).
pub fn run(ctx: &mut Ctx, a: &WatchArgs) -> CliResult {
    if a.rev < 0 {
        return Err(CliError::bad_args(format!(
            "revision {} is negative",
            a.rev
        )));
    }
    if a.interactive {
        return Err(CliError::bad_args(
            "watch -i needs a server (--endpoints): a file's watch sees no other writer",
        ));
    }
    let key = a.key.as_deref().unwrap_or_default();
    let end = a.range_end.as_deref().map(requests::bytes);
    let range = requests::key_range(requests::bytes(key), end, a.prefix, false)?;
    // A watch that stops when caught up only reads; one that follows holds the file for writing
    // (it is the process that expires leases while it runs).
    let mode = if a.no_follow {
        Mode::ReadOnly
    } else {
        Mode::Existing
    };
    let store = db::open(ctx.cli, mode)?;
    signals::install()?;
    let caught_up_at = store.revision();
    let mut watcher = store.watch_with(
        range,
        WatchOptions {
            start_revision: a.rev,
            prev_kv: a.prev_kv,
            ..Default::default()
        },
    )?;
    loop {
        if signals::interrupted() {
            break;
        }
        if a.no_follow && watcher.next_revision() > caught_up_at {
            break;
        }
        let Some(resp) = watcher.recv_timeout(POLL)? else {
            continue;
        };
        if resp.canceled {
            // As etcdctl: the canceled response in JSON, the reason on stderr, exit 5.
            if ctx.printer.format() == Format::Json {
                // etcd's cancel response carries no revision (an empty header).
                let resp = etch::WatchResponse {
                    header_revision: 0,
                    ..resp
                };
                ctx.printer.watch(&resp)?;
                ctx.printer.flush()?;
            }
            eprintln!(
                "watch was canceled (etcdserver: mvcc: required revision has been compacted)"
            );
            return Err(CliError::interrupted("watch is canceled by the server"));
        }
        if resp.events.is_empty() {
            // The engine's marker of a finished replay (`caught_up`) carries no events, and
            // etcd sends no such response: nothing to print.
            continue;
        }
        ctx.printer.watch(&resp)?;
        ctx.printer.flush()?;
        if a.command.is_empty() {
            continue;
        }
        for ev in &resp.events {
            let kind = match ev.kind {
                EventKind::Put => "PUT",
                EventKind::Delete => "DELETE",
            };
            // As etcdctl: type, key and value Go-quoted (%q); the revision is the event's own.
            let env = [
                ("ETCD_WATCH_REVISION", ev.kv.mod_revision.to_string()),
                ("ETCD_WATCH_EVENT_TYPE", go_quote(kind.as_bytes())),
                ("ETCD_WATCH_KEY", go_quote(&ev.kv.key)),
                ("ETCD_WATCH_VALUE", go_quote(&ev.kv.value)),
            ];
            let status = child::run(&a.command, &env)?;
            if !status.success() {
                return Err(CliError::failed(format!(
                    "command {:?} error ({status})",
                    a.command
                )));
            }
        }
    }
    db::close(store)
}
