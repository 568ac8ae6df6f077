//! The follower: one thread per server that reads the store's change log once per commit,
//! hands the events to the watch [`Dispatcher`], and publishes the routed revision to async
//! tasks (lock and election waiters, watch streams catching up), so that nothing else holds a
//! blocking thread to wait for changes.

use std::time::Duration;

use etch_engine::{Error, Range, WatchOptions, Watcher};
use tokio::sync::watch;

use crate::backend::Backend;
use crate::dispatch::Dispatcher;

/// How long the follower waits for a commit before it re-checks whether it should stop or
/// switch its reads (previous key-values wanted or not).
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// Starts the follower; returns the dispatcher it feeds and a receiver of every routed
/// revision (coalesced). The thread ends when the backend closes or every receiver is gone.
pub fn start(store: Backend) -> (Dispatcher, watch::Receiver<i64>) {
    let revision = store.revision();
    let dispatcher = Dispatcher::new(revision);
    let (tx, rx) = watch::channel(revision);
    let follower = dispatcher.clone();
    let spawned = std::thread::Builder::new()
        .name("etch-follower".into())
        .spawn(move || follow(store, follower, tx));
    if let Err(e) = spawned {
        // Without the thread watchers would never wake; refuse to pretend otherwise.
        tracing::error!(error = %e, "cannot start the change-log follower thread");
    }
    (dispatcher, rx)
}

fn follow(store: Backend, dispatcher: Dispatcher, tx: watch::Sender<i64>) {
    // The reader and whether it reads previous key-values.
    let mut reader: Option<(Watcher, bool)> = None;
    loop {
        if tx.is_closed() {
            return;
        }
        let prev_kv = dispatcher.choose_prev_kv();
        let current = match reader.take() {
            Some((w, p)) if p == prev_kv => w,
            _ => {
                let opts = WatchOptions {
                    start_revision: dispatcher.routed() + 1,
                    prev_kv,
                    ..Default::default()
                };
                match store.watch_with(Range::all(), opts) {
                    Ok(w) => w,
                    Err(Error::Closed) if ended(&store) => return,
                    Err(e) => {
                        tracing::error!(error = %e, "change-log follower cannot watch the store");
                        std::thread::sleep(IDLE_CHECK);
                        continue;
                    }
                }
            }
        };
        let mut watcher = current;
        match watcher.recv_timeout(IDLE_CHECK) {
            Ok(Some(resp)) if resp.canceled => {
                // Compaction removed revisions not routed yet.
                dispatcher.skip_to(resp.compact_revision);
                publish(&tx, dispatcher.routed());
                continue; // a new reader from after the compaction
            }
            Ok(Some(resp)) => {
                let through = watcher.next_revision() - 1;
                dispatcher.route(resp.events, through);
                publish(&tx, through);
            }
            Ok(None) => {}
            Err(Error::Closed) if ended(&store) => return,
            Err(e) => {
                tracing::error!(error = %e, "change-log follower read failed");
                std::thread::sleep(IDLE_CHECK);
                continue; // a new reader from the next revision to route
            }
        }
        reader = Some((watcher, prev_kv));
    }
}

/// Whether a closed reader means the end: a local store closes once, for good; a cluster
/// member's store is also replaced when a snapshot is installed on it, which closes the
/// readers of the old one while the member goes on (the follower then reads the new store from
/// the next revision to route, or skips what the snapshot compacted away).
fn ended(store: &Backend) -> bool {
    store.member().is_none() || store.is_closed()
}

fn publish(tx: &watch::Sender<i64>, revision: i64) {
    tx.send_if_modified(|rev| {
        let newer = revision > *rev;
        if newer {
            *rev = revision;
        }
        newer
    });
}
