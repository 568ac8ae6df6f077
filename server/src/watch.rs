//! The Watch service: etcd's bidirectional watch stream.
//!
//! **Design.** One async task drives each stream. It owns the stream's watches (engine
//! [`Watcher`]s, which hold no queue, only the next revision to deliver) and sleeps until a
//! request arrives, the store's revision moves (the server's revision notifier), or a progress
//! notification is due. Then it polls, on the blocking pool, the watches that are behind, one
//! response (at most the engine's batch) per watch per round, and sends what they return.
//!
//! **Slow clients.** Responses go through a channel of [`OUTBOUND_CAPACITY`] responses and
//! then HTTP/2 flow control. When a client stops reading, the channel fills, the task waits
//! to send, and stops polling: nothing more is read from the store for that stream, so memory
//! stays bounded by the channel (each response at most one engine batch) and writers are never
//! blocked — unread changes stay in the file. A watch that falls behind a compaction is
//! cancelled with the compact revision, as etcd cancels one.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use etch_engine::{
    Event, EventKind, Range, WatchOptions, WatchResponse as EngineResponse, Watcher,
};
use futures_util::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::kv_to_pb;
use crate::node::Node;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::mvccpb;

/// Responses buffered per stream before the stream's task waits for the client.
pub const OUTBOUND_CAPACITY: usize = 16;

/// Most watches on one stream; further creates are refused (created and cancelled at once).
pub const MAX_WATCHES_PER_STREAM: usize = 100_000;

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
        let driver = StreamDriver {
            node: self.node.clone(),
            tx,
            watches: BTreeMap::new(),
            next_id: 0,
        };
        tokio::spawn(driver.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One watch of a stream.
struct StreamWatch {
    /// `None` only while the watcher is out being polled.
    watcher: Option<Watcher>,
    fragment: bool,
    progress_notify: bool,
}

struct StreamDriver {
    node: Node,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    watches: BTreeMap<i64, StreamWatch>,
    /// Next server-chosen id candidate (etcd starts at 0 and skips ids in use).
    next_id: i64,
}

/// Why a stream's task stopped.
enum End {
    /// The client went away or closed its side.
    Client,
    /// The server is shutting down or the store closed.
    Server,
}

impl StreamDriver {
    async fn run(mut self, mut inbound: Streaming<pb::WatchRequest>) {
        self.node.metrics().watch_stream_opened();
        let mut revisions = self.node.revisions();
        let mut shutdown = self.node.shutdown_signal();
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
                changed = revisions.changed() => {
                    if changed.is_err() {
                        break End::Server;
                    }
                    pending_poll = true;
                }
                _ = ticker.tick(), if has_progress => pending_poll = true,
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
                let resp = self.create(create).await;
                self.send(resp).await
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                // etcd answers only a cancel of a watch that exists; others are ignored.
                if self.watches.remove(&cancel.watch_id).is_some() {
                    self.node.metrics().watchers_closed(1);
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

    /// The highest revision up to which every watch of the stream has delivered everything.
    fn progress_revision(&self) -> i64 {
        let current = self.node.store().revision();
        self.watches
            .values()
            .filter_map(|w| w.watcher.as_ref())
            .map(|w| w.next_revision() - 1)
            .fold(current, i64::min)
    }

    async fn create(&mut self, create: pb::WatchCreateRequest) -> pb::WatchResponse {
        let current = self.node.store().revision();
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
        let opts = WatchOptions {
            start_revision: create.start_revision,
            prev_kv: create.prev_kv,
            no_put: filters.contains(&(pb::watch_create_request::FilterType::Noput as i32)),
            no_delete: filters.contains(&(pb::watch_create_request::FilterType::Nodelete as i32)),
            progress_notify: create
                .progress_notify
                .then_some(self.node.config().watch_progress_notify_interval),
        };
        let range = Range::from_raw(&key, &end);
        let watcher = match self.node.store().watch_with(range, opts) {
            Ok(w) => w,
            Err(e) => return refuse(&format!("etch: {e}")),
        };
        self.watches.insert(
            id,
            StreamWatch {
                watcher: Some(watcher),
                fragment: create.fragment,
                progress_notify: create.progress_notify,
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

    /// Polls the watches that may have something to say, once each; sends what they return.
    /// Returns whether another round is needed right away (some watch is still behind).
    async fn poll(&mut self) -> Result<bool, End> {
        let current = self.node.store().revision();
        let mut batch: Vec<(i64, Watcher)> = Vec::new();
        for (id, w) in self.watches.iter_mut() {
            let due = w
                .watcher
                .as_ref()
                .is_some_and(|watcher| watcher.next_revision() <= current || w.progress_notify);
            if due {
                if let Some(watcher) = w.watcher.take() {
                    batch.push((*id, watcher));
                }
            }
        }
        if batch.is_empty() {
            return Ok(false);
        }
        let polled = tokio::task::spawn_blocking(move || {
            batch
                .into_iter()
                .map(|(id, mut watcher)| {
                    let result = watcher.try_recv();
                    (id, watcher, result)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| End::Server)?;
        let mut more = false;
        for (id, watcher, result) in polled {
            let behind = watcher.next_revision() <= current;
            let Some(entry) = self.watches.get_mut(&id) else {
                continue;
            };
            entry.watcher = Some(watcher);
            let fragment = entry.fragment;
            match result {
                Ok(Some(resp)) => {
                    let canceled = resp.canceled;
                    let out = watch_response(&self.node, id, resp);
                    if canceled {
                        self.watches.remove(&id);
                        self.node.metrics().watchers_closed(1);
                    } else {
                        more |= behind;
                    }
                    self.send_events(out, fragment).await?;
                }
                Ok(None) => {}
                Err(etch_engine::Error::Closed) => return Err(End::Server),
                Err(e) => {
                    self.watches.remove(&id);
                    self.node.metrics().watchers_closed(1);
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
        Ok(more)
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

/// An engine watch response as etcd's.
fn watch_response(node: &Node, id: i64, resp: EngineResponse) -> pb::WatchResponse {
    pb::WatchResponse {
        header: node.header(resp.header_revision),
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
