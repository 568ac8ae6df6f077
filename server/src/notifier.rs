//! One thread per server that follows the store's revision and publishes it to async tasks,
//! so watch streams sleep on a channel instead of each holding a blocking thread.

use std::time::Duration;

use etch_engine::{Error, Range, Store};
use tokio::sync::watch;

/// Starts the thread; the receiver sees every new revision (coalesced). The thread ends when
/// the store closes or every receiver is gone.
pub fn revision_notifier(store: Store) -> watch::Receiver<i64> {
    let (tx, rx) = watch::channel(store.revision());
    let spawned = std::thread::Builder::new()
        .name("etch-revisions".into())
        .spawn(move || follow(store, tx));
    if let Err(e) = spawned {
        // Without the thread watchers would never wake; refuse to pretend otherwise.
        tracing::error!(error = %e, "cannot start the revision notifier thread");
    }
    rx
}

fn follow(store: Store, tx: watch::Sender<i64>) {
    loop {
        // A watcher on every key from now: it wakes on each publish that carries a change.
        let mut watcher = match store.watch(Range::all()) {
            Ok(w) => w,
            Err(Error::Closed) => return,
            Err(e) => {
                tracing::error!(error = %e, "revision notifier cannot watch the store");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        loop {
            if tx.is_closed() {
                return;
            }
            match watcher.recv_timeout(Duration::from_millis(500)) {
                Ok(Some(resp)) if resp.canceled => break, // fell behind a compaction: restart
                Ok(_) => {
                    let now = store.revision();
                    tx.send_if_modified(|rev| {
                        let newer = now > *rev;
                        if newer {
                            *rev = now;
                        }
                        newer
                    });
                }
                Err(Error::Closed) => return,
                Err(e) => {
                    tracing::error!(error = %e, "revision notifier read failed");
                    std::thread::sleep(Duration::from_millis(100));
                    break;
                }
            }
        }
    }
}
