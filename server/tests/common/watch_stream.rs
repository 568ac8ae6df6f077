//! One watch stream through the generated client, shared by the watch tests: requests in,
//! responses out. Each test file adds the helpers its own checks need.

use std::time::Duration;

use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::watch_request::RequestUnion;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::Streaming;

use super::TestServer;

/// A bidirectional Watch call: `tx` sends requests, `rx` yields responses.
pub struct WatchStream {
    pub tx: mpsc::Sender<pb::WatchRequest>,
    pub rx: Streaming<pb::WatchResponse>,
}

impl WatchStream {
    /// Opens a Watch call on a new client of `server`.
    pub async fn open(server: &TestServer) -> WatchStream {
        let mut client = server.watch().await;
        let (tx, rx) = mpsc::channel(64);
        let responses = client
            .watch(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        WatchStream { tx, rx: responses }
    }

    /// Sends one request on the stream.
    pub async fn send(&self, req: RequestUnion) {
        self.tx
            .send(pb::WatchRequest {
                request_union: Some(req),
            })
            .await
            .unwrap();
    }

    /// The next response, which must arrive within `wait` on an open, error-free stream.
    pub async fn next_within(&mut self, wait: Duration) -> pb::WatchResponse {
        tokio::time::timeout(wait, self.rx.next())
            .await
            .expect("a watch response in time")
            .expect("stream open")
            .expect("no error")
    }
}
