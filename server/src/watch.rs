//! The Watch service: etcd's bidirectional watch stream.
//!
//! **Design.** One async task drives each stream. Its watches are in one of two modes, as
//! etcd's synced and unsynced watcher groups (see `dispatch.rs`):
//! - *synced*: on the shared path. The server's one follower thread reads each commit's
//!   events once and the dispatcher routes them, through the stream's mailbox, to the watches
//!   whose key, prefix or range they match. A watch created from now starts here.
//! - *catching up*: the task reads the change log for the watch with an engine [`Watcher`]
//!   (which holds no queue, only the next revision), on the blocking pool, one response per
//!   round. A watch created with a past start revision starts here, and so does every watch of
//!   a stream that fell behind; once its next revision is past what the dispatcher has routed,
//!   it joins the shared path, with no gap and no duplicate at the seam.
//!
//! The task sleeps until a request arrives, its mailbox receives, the store's revision moves
//! (for watches catching up), or a progress notification is due.
//!
//! **Slow clients.** Responses go through a channel of [`OUTBOUND_CAPACITY`] responses and
//! then HTTP/2 flow control. When a client stops reading, the task waits to send and stops
//! taking from its mailbox; the mailbox holds at most [`crate::dispatch::MAILBOX_EVENTS`]
//! events, and a delivery that would overflow it switches all of the stream's watches to
//! catching up (from their next revisions) instead. So memory stays bounded per stream, the
//! follower and writers are never blocked, and unread changes stay in the file until the
//! client reads again. A watch that falls behind a compaction is cancelled with the compact
//! revision, as etcd cancels one.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etch_engine::{
    Event, EventKind, Range, WatchOptions, WatchResponse as EngineResponse, Watcher,
};
use futures_util::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::kv_to_pb;
use crate::dispatch::{Delivery, Mail, Mailbox, StreamRegistration};
use crate::node::Node;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::mvccpb;
use crate::watch_index::WatchSpec;

/// Responses buffered per stream before the stream's task waits for the client.
pub const OUTBOUND_CAPACITY: usize = 16;

/// Most watches on one stream; further creates are refused (created and cancelled at once).
pub const MAX_WATCHES_PER_STREAM: usize = 100_000;

/// Most mailbox items one wake-up of a stream's task sends before it looks at requests again.
const DRAIN_ITEMS: usize = 64;

/// The watch id etcd reports for responses not tied to one watch (and failed creates).
const INVALID_WATCH_ID: i64 = -1;

/// Serves etcd's Watch service.
pub struct WatchService {
    node: Node,
}

impl WatchService {
    /// The service over `node`.
    pub fn new(node: Node) -> WatchService {
        WatchService { node }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ResponseStream;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let driver = StreamDriver::new(self.node.clone(), tx);
        tokio::spawn(driver.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One watch of a stream.
struct StreamWatch {
    /// The watch's key in the dispatcher: unique for the stream's life, unlike client ids,
    /// which a client may reuse after a cancel while deliveries for the old watch are queued.
    serial: i64,
    spec: WatchSpec,
    mode: Mode,
    fragment: bool,
    progress_notify: bool,
    /// When the watch last got a response (for progress notifications of synced watches).
    last_sent: Instant,
}

enum Mode {
    /// On the shared path: the dispatcher delivers its events from revision `from` on.
    Synced { from: i64 },
    /// Reading the log itself; `None` only while the watcher is out being polled.
    CatchingUp(Option<Watcher>),
}

struct StreamDriver {
    node: Node,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    watches: BTreeMap<i64, StreamWatch>,
    /// Watch id by serial.
    serials: HashMap<i64, i64>,
    next_serial: i64,
    /// Next server-chosen id candidate (etcd starts at 0 and skips ids in use).
    next_id: i64,
    registration: StreamRegistration,
    /// Every routed change up to this revision that concerns a synced watch has been sent.
    through: i64,
}

/// Why a stream's task stopped.
enum End {
    /// The client went away or closed its side.
    Client,
    /// The server is shutting down or the store closed.
    Server,
}

impl StreamDriver {
    fn new(node: Node, tx: mpsc::Sender<Result<pb::WatchResponse, Status>>) -> StreamDriver {
        let registration = node.dispatcher().register();
        let through = registration.dispatcher().routed();
        StreamDriver {
            node,
            tx,
            watches: BTreeMap::new(),
            serials: HashMap::new(),
            next_serial: 0,
            next_id: 0,
            registration,
            through,
        }
    }

    async fn run(mut self, mut inbound: Streaming<pb::WatchRequest>) {
        self.node.metrics().watch_stream_opened();
        let mut revisions = self.node.revisions();
        let mut shutdown = self.node.shutdown_signal();
        let mailbox: Arc<Mailbox> = self.registration.mailbox().clone();
        let tick_every = self
            .node
            .config()
            .watch_progress_notify_interval
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut pending_poll = false;
        let end = loop {
            let has_progress = self.watches.values().any(|w| w.progress_notify);
            tokio::select! {
                biased;
                _ = shutdown.changed() => break End::Server,
                msg = inbound.message() => match msg {
                    Ok(Some(req)) => {
                        if let Err(end) = self.handle(req).await {
                            break end;
                        }
                        pending_poll = true;
                    }
                    Ok(None) | Err(_) => break End::Client,
                },
                _ = mailbox.ready() => {
                    match self.drain().await {
                        Ok(lagged) => pending_poll |= lagged,
                        Err(end) => break end,
                    }
                }
                changed = revisions.changed() => {
                    if changed.is_err() {
                        break End::Server;
                    }
                    pending_poll = true;
                }
                _ = ticker.tick(), if has_progress => {
                    if let Err(end) = self.progress_tick().await {
                        break end;
                    }
                    pending_poll = true;
                }
                _ = std::future::ready(()), if pending_poll => {
                    match self.poll().await {
                        Ok(more) => pending_poll = more,
                        Err(end) => break end,
                    }
                }
            }
        };
        self.node.metrics().watchers_closed(self.watches.len());
        self.node.metrics().watch_stream_closed();
        if let End::Server = end {
            let _ = self.tx.try_send(Err(crate::errors::stopped()));
        }
    }

    /// Handles one client request.
    async fn handle(&mut self, req: pb::WatchRequest) -> Result<(), End> {
        use pb::watch_request::RequestUnion;
        match req.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                let resp = self.create(create);
                self.send(resp).await
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                // etcd answers only a cancel of a watch that exists; others are ignored.
                if self.remove(cancel.watch_id) {
                    let resp = pb::WatchResponse {
                        header: self.node.current_header(),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..Default::default()
                    };
                    return self.send(resp).await;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.drain().await?;
                let resp = pb::WatchResponse {
                    header: self.node.header(self.progress_revision()),
                    watch_id: INVALID_WATCH_ID,
                    ..Default::default()
                };
                self.send(resp).await
            }
            None => Ok(()),
        }
    }

    /// Removes a watch (off the shared path too); false if there was none with this id.
    fn remove(&mut self, id: i64) -> bool {
        let Some(w) = self.watches.remove(&id) else {
            return false;
        };
        self.serials.remove(&w.serial);
        if let Mode::Synced { .. } = w.mode {
            let stream = self.registration.id();
            self.registration.dispatcher().leave(stream, w.serial);
        }
        self.node.metrics().watchers_closed(1);
        true
    }

    /// Up to which revision everything a watch is to receive has been sent.
    fn delivered_through(&self, w: &StreamWatch) -> Option<i64> {
        match &w.mode {
            Mode::Synced { from } => Some((from - 1).max(self.through)),
            Mode::CatchingUp(watcher) => watcher.as_ref().map(|w| w.next_revision() - 1),
        }
    }

    /// The highest revision up to which every watch of the stream has delivered everything.
    fn progress_revision(&self) -> i64 {
        let current = self.node.backend().revision();
        self.watches
            .values()
            .filter_map(|w| self.delivered_through(w))
            .fold(current, i64::min)
    }

    fn create(&mut self, create: pb::WatchCreateRequest) -> pb::WatchResponse {
        let current = self.node.backend().revision();
        let refuse = |reason: &str| pb::WatchResponse {
            header: self.node.header(current),
            watch_id: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        };
        // etcd: an empty key means "\0"; range_end "\0" means every key >= key.
        let key = if create.key.is_empty() {
            vec![0]
        } else {
            create.key
        };
        let end = create.range_end;
        if !end.is_empty() && end != [0] && key >= end {
            return refuse("mvcc: watcher range is empty");
        }
        if create.watch_id != 0 && self.watches.contains_key(&create.watch_id) {
            return refuse("mvcc: duplicate watch ID provided on the WatchStream");
        }
        if self.watches.len() >= MAX_WATCHES_PER_STREAM {
            return refuse("etch: too many watches on this stream");
        }
        let id = if create.watch_id != 0 {
            create.watch_id
        } else {
            while self.watches.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        let filters = &create.filters;
        let spec = WatchSpec {
            range: Range::from_raw(&key, &end),
            prev_kv: create.prev_kv,
            no_put: filters.contains(&(pb::watch_create_request::FilterType::Noput as i32)),
            no_delete: filters.contains(&(pb::watch_create_request::FilterType::Nodelete as i32)),
        };
        // "From now" is after the revision this response reports.
        let from = if create.start_revision > 0 {
            create.start_revision
        } else {
            current + 1
        };
        let serial = self.next_serial;
        let stream = self.registration.id();
        let mode = if self
            .registration
            .dispatcher()
            .join(stream, serial, &spec, from)
        {
            Mode::Synced { from }
        } else {
            match self.engine_watcher(&spec, from, create.progress_notify) {
                Ok(w) => Mode::CatchingUp(Some(w)),
                Err(e) => return refuse(&format!("etch: {e}")),
            }
        };
        self.next_serial += 1;
        self.serials.insert(serial, id);
        self.watches.insert(
            id,
            StreamWatch {
                serial,
                spec,
                mode,
                fragment: create.fragment,
                progress_notify: create.progress_notify,
                last_sent: Instant::now(),
            },
        );
        self.node.metrics().watchers_opened(1);
        pb::WatchResponse {
            header: self.node.header(current),
            watch_id: id,
            created: true,
            ..Default::default()
        }
    }

    /// An engine watcher that reads the log for `spec` from revision `from`.
    fn engine_watcher(
        &self,
        spec: &WatchSpec,
        from: i64,
        progress_notify: bool,
    ) -> etch_engine::Result<Watcher> {
        let opts = WatchOptions {
            start_revision: from,
            prev_kv: spec.prev_kv,
            no_put: spec.no_put,
            no_delete: spec.no_delete,
            progress_notify: progress_notify
                .then_some(self.node.config().watch_progress_notify_interval),
        };
        self.node.backend().watch_with(spec.range.clone(), opts)
    }

    /// Sends what is in the mailbox, at most [`DRAIN_ITEMS`] items so that a busy mailbox
    /// cannot starve the stream's requests (the mailbox is re-armed if items are left).
    /// Returns whether some watches switched to catching up.
    async fn drain(&mut self) -> Result<bool, End> {
        // Read before taking: every delivery up to `routed` is queued by then.
        let routed = self.registration.dispatcher().routed();
        let mailbox = self.registration.mailbox().clone();
        let mut lagged = false;
        for _ in 0..DRAIN_ITEMS {
            let Some(mail) = mailbox.take() else {
                // Empty: everything routed up to `routed` has been sent.
                self.through = self.through.max(routed);
                return Ok(lagged);
            };
            match mail {
                Mail::Events(delivery) => self.deliver(delivery).await?,
                Mail::Lagged(watches) => {
                    self.catch_up(watches).await?;
                    lagged = true;
                }
            }
        }
        mailbox.rearm();
        Ok(lagged)
    }

    /// Sends one delivery: one response per watch, in the order of the watch ids.
    async fn deliver(&mut self, delivery: Delivery) -> Result<(), End> {
        let events: Vec<mvccpb::Event> = delivery
            .events
            .iter()
            .map(|e| event_to_pb(Event::clone(e)))
            .collect();
        for (serial, indices) in delivery.watches {
            let Some(&id) = self.serials.get(&serial) else {
                continue; // cancelled since
            };
            let Some(w) = self.watches.get_mut(&id) else {
                continue;
            };
            w.last_sent = Instant::now();
            let (prev_kv, fragment) = (w.spec.prev_kv, w.fragment);
            let resp = pb::WatchResponse {
                header: self.node.header(delivery.through),
                watch_id: id,
                events: indices
                    .iter()
                    .filter_map(|&i| events.get(i as usize))
                    .map(|e| {
                        let mut e = e.clone();
                        if !prev_kv {
                            e.prev_kv = None;
                        }
                        e
                    })
                    .collect(),
                ..Default::default()
            };
            self.send_events(resp, fragment).await?;
        }
        self.through = self.through.max(delivery.through);
        Ok(())
    }

    /// Switches watches that left the shared path (serial, next revision) to reading the log.
    async fn catch_up(&mut self, lagged: Vec<(i64, i64)>) -> Result<(), End> {
        for (serial, next) in lagged {
            let Some(&id) = self.serials.get(&serial) else {
                continue;
            };
            let Some(w) = self.watches.get(&id) else {
                continue;
            };
            match self.engine_watcher(&w.spec, next, w.progress_notify) {
                Ok(watcher) => {
                    if let Some(w) = self.watches.get_mut(&id) {
                        w.mode = Mode::CatchingUp(Some(watcher));
                    }
                }
                Err(e) => {
                    self.remove(id);
                    let resp = pb::WatchResponse {
                        header: self.node.current_header(),
                        watch_id: id,
                        canceled: true,
                        cancel_reason: format!("etch: {e}"),
                        ..Default::default()
                    };
                    self.send(resp).await?;
                }
            }
        }
        Ok(())
    }

    /// Sends a progress notification to each synced watch that asked for them and got nothing
    /// for an interval (watches catching up get theirs from their engine watcher).
    async fn progress_tick(&mut self) -> Result<(), End> {
        self.drain().await?;
        let every = self.node.config().watch_progress_notify_interval;
        let now = Instant::now();
        let due: Vec<(i64, i64)> = self
            .watches
            .iter()
            .filter(|(_, w)| {
                w.progress_notify
                    && matches!(w.mode, Mode::Synced { .. })
                    && now.duration_since(w.last_sent) >= every
            })
            .filter_map(|(id, w)| self.delivered_through(w).map(|rev| (*id, rev)))
            .collect();
        for (id, revision) in due {
            if let Some(w) = self.watches.get_mut(&id) {
                w.last_sent = now;
            }
            let resp = pb::WatchResponse {
                header: self.node.header(revision),
                watch_id: id,
                ..Default::default()
            };
            self.send(resp).await?;
        }
        Ok(())
    }

    /// Polls the watches catching up that may have something to say, once each; sends what
    /// they return; puts those no longer behind on the shared path. Returns whether another
    /// round is needed right away (some watch is still behind).
    async fn poll(&mut self) -> Result<bool, End> {
        let current = self.node.backend().revision();
        let mut batch: Vec<(i64, Watcher)> = Vec::new();
        for (id, w) in self.watches.iter_mut() {
            let progress = w.progress_notify;
            if let Mode::CatchingUp(slot) = &mut w.mode {
                let due = slot
                    .as_ref()
                    .is_some_and(|watcher| watcher.next_revision() <= current || progress);
                if due {
                    if let Some(watcher) = slot.take() {
                        batch.push((*id, watcher));
                    }
                }
            }
        }
        let polled = if batch.is_empty() {
            Vec::new()
        } else {
            tokio::task::spawn_blocking(move || {
                batch
                    .into_iter()
                    .map(|(id, mut watcher)| {
                        let result = watcher.try_recv();
                        (id, watcher, result)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|_| End::Server)?
        };
        let mut more = false;
        for (id, watcher, result) in polled {
            let behind = watcher.next_revision() <= current;
            let Some(entry) = self.watches.get_mut(&id) else {
                continue;
            };
            entry.mode = Mode::CatchingUp(Some(watcher));
            let fragment = entry.fragment;
            match result {
                Ok(Some(resp)) => {
                    entry.last_sent = Instant::now();
                    let canceled = resp.canceled;
                    let out = watch_response(&self.node, id, resp);
                    if canceled {
                        self.remove(id);
                    } else {
                        more |= behind;
                    }
                    self.send_events(out, fragment).await?;
                }
                Ok(None) => {}
                Err(etch_engine::Error::Closed) => return Err(End::Server),
                Err(e) => {
                    self.remove(id);
                    let resp = pb::WatchResponse {
                        header: self.node.current_header(),
                        watch_id: id,
                        canceled: true,
                        cancel_reason: format!("etch: {e}"),
                        ..Default::default()
                    };
                    self.send(resp).await?;
                }
            }
        }
        self.join_shared_path();
        Ok(more)
    }

    /// Puts each watch catching up whose next revision is past what the dispatcher routed on
    /// the shared path.
    fn join_shared_path(&mut self) {
        let stream = self.registration.id();
        let dispatcher = self.registration.dispatcher().clone();
        let routed = dispatcher.routed();
        for w in self.watches.values_mut() {
            let Mode::CatchingUp(Some(watcher)) = &w.mode else {
                continue;
            };
            let next = watcher.next_revision();
            if next > routed && dispatcher.join(stream, w.serial, &w.spec, next) {
                w.mode = Mode::Synced { from: next };
            }
        }
    }

    /// Sends a response, split into fragments when the watch asked for them and it is larger
    /// than the request limit (etcd's rule: every fragment but the last has `fragment` set;
    /// a fragment holds at least one event).
    async fn send_events(&mut self, resp: pb::WatchResponse, fragment: bool) -> Result<(), End> {
        let limit = self.node.config().max_request_bytes;
        if !fragment || resp.events.len() < 2 || resp.encoded_len() < limit {
            return self.send(resp).await;
        }
        let mut events = resp.events.into_iter().peekable();
        let template = pb::WatchResponse {
            events: Vec::new(),
            ..resp
        };
        while events.peek().is_some() {
            let mut part = template.clone();
            while let Some(ev) = events.peek() {
                if !part.events.is_empty() && part.encoded_len() + ev.encoded_len() + 8 >= limit {
                    break;
                }
                part.events.extend(events.next());
            }
            part.fragment = events.peek().is_some();
            self.send(part).await?;
        }
        Ok(())
    }

    async fn send(&self, resp: pb::WatchResponse) -> Result<(), End> {
        self.node.metrics().sent_bytes(resp.encoded_len());
        self.tx.send(Ok(resp)).await.map_err(|_| End::Client)
    }
}

/// An engine watch response as etcd's. A watch cancelled because its start revision was
/// compacted carries no revision in its header, as etcd's (its mvcc layer reports none there).
fn watch_response(node: &Node, id: i64, resp: EngineResponse) -> pb::WatchResponse {
    let revision = if resp.canceled && resp.compact_revision != 0 {
        0
    } else {
        resp.header_revision
    };
    pb::WatchResponse {
        header: node.header(revision),
        watch_id: id,
        created: false,
        canceled: resp.canceled,
        compact_revision: resp.compact_revision,
        cancel_reason: String::new(),
        fragment: false,
        events: resp.events.into_iter().map(event_to_pb).collect(),
    }
}

/// An engine event as etcd's `mvccpb.Event`.
pub fn event_to_pb(ev: Event) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match ev.kind {
            EventKind::Put => mvccpb::event::EventType::Put as i32,
            EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(kv_to_pb(ev.kv)),
        prev_kv: ev.prev_kv.map(kv_to_pb),
    }
}
