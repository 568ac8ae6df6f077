use etch_engine::{Event, EventKind};
use etch_engine::{KeyValue, Range};
use etch_server::dispatch::*;
use etch_server::watch_index::WatchSpec;

fn put(key: &str, revision: i64) -> Event {
    Event {
        kind: EventKind::Put,
        kv: KeyValue {
            key: key.as_bytes().to_vec(),
            mod_revision: revision,
            ..Default::default()
        },
        prev_kv: None,
    }
}

fn spec(range: Range) -> WatchSpec {
    WatchSpec {
        range,
        prev_kv: false,
        no_put: false,
        no_delete: false,
    }
}

#[test]
fn join_only_past_what_is_routed() {
    let d = Dispatcher::new(10);
    let s = d.register();
    assert!(!d.join(s.id(), 1, &spec(Range::key("a")), 10));
    assert!(d.join(s.id(), 1, &spec(Range::key("a")), 11));
    let mut with_prev = spec(Range::key("a"));
    with_prev.prev_kv = true;
    assert!(!d.choose_prev_kv());
    assert!(
        !d.join(s.id(), 2, &with_prev, 11),
        "follower not reading prev_kv"
    );
    assert!(d.choose_prev_kv());
    assert!(d.join(s.id(), 2, &with_prev, 11));
    assert!(d.choose_prev_kv(), "a synced watch wants them");
    d.leave(s.id(), 2);
    assert!(d.choose_prev_kv(), "lingers after the request");
    drop(s);
    assert_eq!(d.synced_watches(), 0);
}

#[test]
fn routes_by_range_and_start_revision() {
    let d = Dispatcher::new(0);
    let s = d.register();
    assert!(d.join(s.id(), 1, &spec(Range::prefix("a/")), 1));
    assert!(d.join(s.id(), 2, &spec(Range::key("a/x")), 3));
    d.route(vec![put("a/x", 1), put("b", 2), put("a/x", 3)], 3);
    assert_eq!(d.routed(), 3);
    let Some(Mail::Events(delivery)) = s.mailbox().take() else {
        panic!("a delivery");
    };
    assert_eq!(delivery.through, 3);
    let revs: Vec<i64> = delivery.events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revs, [1, 3]);
    assert_eq!(delivery.watches, vec![(1, vec![0, 1]), (2, vec![1])]);
    assert!(s.mailbox().take().is_none());
}

#[test]
fn a_full_mailbox_switches_the_stream_to_catch_up() {
    let d = Dispatcher::new(0);
    let s = d.register();
    assert!(d.join(s.id(), 1, &spec(Range::prefix("k")), 1));
    assert!(d.join(s.id(), 2, &spec(Range::key("other")), 50_000));
    let mut rev = 0;
    while d.lag_switches() == 0 {
        rev += 1;
        d.route(vec![put("k", rev)], rev);
    }
    assert_eq!(rev as usize, MAILBOX_EVENTS + 1);
    assert_eq!(d.synced_watches(), 0);
    // Nothing joins while the switch is pending.
    assert!(!d.join(s.id(), 3, &spec(Range::key("z")), rev + 1));
    let mut delivered = 0;
    let lagged = loop {
        match s.mailbox().take() {
            Some(Mail::Events(dl)) => delivered += dl.events.len(),
            Some(Mail::Lagged(l)) => break l,
            None => panic!("no lag notice"),
        }
    };
    assert_eq!(delivered, MAILBOX_EVENTS);
    let mut lagged = lagged;
    lagged.sort();
    assert_eq!(lagged, vec![(1, rev), (2, 50_000)]);
    assert!(d.join(s.id(), 1, &spec(Range::prefix("k")), rev + 1));
}
