//! A watch that survives lost connections.
//!
//! A background task owns the gRPC stream and remembers `next`, the first revision not yet
//! delivered. When the stream breaks it creates the watch again, on whichever endpoint answers,
//! with `start_revision = next`. Resumption is exact because etcd never splits one revision's
//! events over two responses (without the `fragment` option, which is not used), so after a
//! response `next` is the last event's revision + 1; an empty response (a progress
//! notification) means every change up to its header revision was delivered. Events below
//! `next` that a server sends again anyway are dropped, so none is delivered twice.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etch_engine::{Error as EngineError, Range, Revision, WatchOptions, WatchResponse};
use etch_proto::etcdserverpb as pb;
use etch_proto::etcdserverpb::watch_client::WatchClient;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::async_client::AsyncClient;
use crate::convert;
use crate::error::{self, Context, Error, Result};

/// Responses buffered between the task and a slow consumer; past it the task waits (and the
/// server's flow control holds further events).
const BUFFER: usize = 64;
/// The pause between attempts to reach a server again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A watch ([`AsyncClient::watch_with`]): responses in revision order, resumed after
/// reconnects. Dropping it ends the watch.
pub struct WatchStream {
    rx: mpsc::Receiver<Result<WatchResponse>>,
    task: JoinHandle<()>,
    next: Arc<AtomicI64>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("next_revision", &self.next_revision())
            .finish_non_exhaustive()
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WatchStream {
    pub(crate) async fn start(
        client: AsyncClient,
        range: Range,
        opts: WatchOptions,
    ) -> Result<WatchStream> {
        if range.start().is_empty() {
            return Err(EngineError::EmptyKey.into());
        }
        let (tx, rx) = mpsc::channel(BUFFER);
        let (ready_tx, ready_rx) = oneshot::channel();
        let next = Arc::new(AtomicI64::new(opts.start_revision.max(0)));
        let task = tokio::spawn(
            Watch {
                client,
                range,
                opts,
                next: next.clone(),
                ready: Some(ready_tx),
                tx,
            }
            .run(),
        );
        let stream = WatchStream { rx, task, next };
        match ready_rx.await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Unavailable {
                message: "the watch ended before it was created".into(),
                maybe_applied: false,
            }),
        }
    }

    /// The next response; `None` once the watch has ended (cancelled by the server after a
    /// compaction, given up after [`crate::ClientOptions::reconnect_timeout`] without a server,
    /// or cancelled here).
    pub async fn recv(&mut self) -> Option<Result<WatchResponse>> {
        self.rx.recv().await
    }

    /// The first revision not delivered yet.
    pub fn next_revision(&self) -> Revision {
        self.next.load(Ordering::Acquire)
    }

    /// Ends the watch; later calls of [`WatchStream::recv`] return `None`.
    pub fn cancel(&mut self) {
        self.task.abort();
        self.rx.close();
    }
}

/// How one stream ended.
enum Outcome {
    /// The watch is over (consumer gone, or the server cancelled it and that was delivered).
    Ended,
    /// A server error no reconnect changes: delivered, then the watch ends.
    Failed(Error),
    /// The connection broke: create the watch again.
    Broken(Error),
}

struct Watch {
    client: AsyncClient,
    range: Range,
    opts: WatchOptions,
    /// First revision not yet delivered; 0 until a watch "from now" is created.
    next: Arc<AtomicI64>,
    /// Told when the first creation succeeds or fails.
    ready: Option<oneshot::Sender<Result<()>>>,
    tx: mpsc::Sender<Result<WatchResponse>>,
}

impl Watch {
    async fn run(mut self) {
        let opts = self.client.balancer.opts.clone();
        // The first creation is bounded like a request, a re-creation by the reconnect timeout.
        let mut give_up = Instant::now() + opts.request_timeout;
        loop {
            let outcome = match self.client.balancer.pick(give_up).await {
                Ok((i, channel)) => {
                    let outcome = self.session(channel, &mut give_up).await;
                    if matches!(outcome, Outcome::Broken(_)) {
                        self.client.balancer.mark_failed(i);
                    }
                    outcome
                }
                Err(e @ Error::Tls(_)) => Outcome::Failed(e),
                Err(e) => Outcome::Broken(e),
            };
            let err = match outcome {
                Outcome::Ended => return,
                Outcome::Failed(e) => e,
                Outcome::Broken(_) if Instant::now() < give_up => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                Outcome::Broken(e) => e,
            };
            match self.ready.take() {
                Some(ready) => {
                    let _ = ready.send(Err(err));
                }
                None => {
                    let _ = self.tx.send(Err(err)).await;
                }
            }
            return;
        }
    }

    /// One gRPC stream: create the watch from `next`, then forward responses.
    async fn session(&mut self, channel: Channel, give_up: &mut Instant) -> Outcome {
        let opts = &self.client.balancer.opts;
        let mut filters = Vec::new();
        if self.opts.no_put {
            filters.push(pb::watch_create_request::FilterType::Noput as i32);
        }
        if self.opts.no_delete {
            filters.push(pb::watch_create_request::FilterType::Nodelete as i32);
        }
        let next = self.next.load(Ordering::Acquire);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: self.range.start().to_vec(),
                    range_end: self.range.end().to_vec(),
                    start_revision: next,
                    progress_notify: self.opts.progress_notify.is_some(),
                    filters,
                    prev_kv: self.opts.prev_kv,
                    watch_id: 0,
                    fragment: false,
                },
            )),
        };
        // The request side stays open for the whole session: closing it ends the watch.
        let (requests, request_rx) = mpsc::channel(1);
        if requests.send(create).await.is_err() {
            return Outcome::Ended;
        }
        let ctx = Context {
            revision: next,
            ..Context::default()
        };
        let classify = |status: tonic::Status| {
            let err = error::from_status(&status, &ctx, opts.request_timeout);
            if error::is_transport_failure(&status) {
                Outcome::Broken(err)
            } else {
                Outcome::Failed(err)
            }
        };
        let mut client =
            WatchClient::new(channel).max_decoding_message_size(opts.max_response_bytes);
        let setup = tokio::time::timeout(
            opts.request_timeout,
            client.watch(tokio_stream::wrappers::ReceiverStream::new(request_rx)),
        )
        .await;
        let mut stream = match setup {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => return classify(status),
            Err(_) => {
                return Outcome::Broken(Error::DeadlineExceeded {
                    timeout: opts.request_timeout,
                    maybe_applied: false,
                })
            }
        };
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => {
                    return Outcome::Broken(Error::Unavailable {
                        message: "the server closed the watch stream".into(),
                        maybe_applied: false,
                    })
                }
                Err(status) => return classify(status),
            };
            let header = convert::revision(response.header.as_ref());
            if response.created {
                if self.next.load(Ordering::Acquire) == 0 {
                    // A watch from now: every change after the creation's revision follows.
                    self.next.store(header + 1, Ordering::Release);
                }
                *give_up = Instant::now() + opts.reconnect_timeout;
                if response.canceled && response.compact_revision == 0 {
                    return Outcome::Failed(Error::Server {
                        code: tonic::Code::InvalidArgument,
                        message: response.cancel_reason,
                    });
                }
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(()));
                }
                if !response.canceled && response.events.is_empty() {
                    continue;
                }
            }
            if response.canceled {
                let last = WatchResponse {
                    header_revision: header,
                    events: Vec::new(),
                    canceled: true,
                    compact_revision: response.compact_revision,
                    caught_up: false,
                };
                if response.compact_revision == 0 {
                    return Outcome::Failed(Error::Server {
                        code: tonic::Code::Cancelled,
                        message: format!(
                            "watch cancelled by the server: {}",
                            response.cancel_reason
                        ),
                    });
                }
                let _ = self.tx.send(Ok(last)).await;
                return Outcome::Ended;
            }
            let next = self.next.load(Ordering::Acquire);
            let had_events = !response.events.is_empty();
            let events: Vec<_> = response
                .events
                .into_iter()
                .map(convert::event)
                .filter(|e| e.kv.mod_revision >= next)
                .collect();
            match events.last() {
                Some(last) => self.next.store(last.kv.mod_revision + 1, Ordering::Release),
                // Every event was delivered before the reconnect.
                None if had_events => continue,
                // A progress notification: everything up to the header was delivered.
                None => self.next.store(next.max(header + 1), Ordering::Release),
            }
            let out = WatchResponse {
                header_revision: header,
                events,
                canceled: false,
                compact_revision: 0,
                caught_up: false,
            };
            if self.tx.send(Ok(out)).await.is_err() {
                return Outcome::Ended;
            }
        }
    }
}
