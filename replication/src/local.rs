//! [`LocalNetwork`]: members of one process talking through direct calls, with no delay, loss or
//! trace.
//!
//! It is for clusters that live in one process on a real (not paused) tokio runtime: benchmarks
//! that measure the cost of consensus without a network's, a server test that runs three members
//! in one process, an application that wants an in-process cluster. The simulated network
//! ([`crate::sim::SimNetwork`]) is for reproducible fault tests instead: it records every
//! delivery, so it grows without bound in a long run.
//!
//! A request is handed to the receiving member's [`RaftHandler`] as it is (no encoding: both ends
//! share the message types). A member that is not registered (not started yet, stopped, or
//! [`LocalNetwork::unregister`]ed to model a crash) is [`TransportError::Unreachable`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::network::{BoxFuture, RaftHandler, RaftReply, RaftRequest, Transport, TransportError};
use crate::types::NodeId;

/// An in-process network: a registry of members' handlers. Clones share the registry.
#[derive(Clone, Default)]
pub struct LocalNetwork {
    handlers: Arc<RwLock<HashMap<NodeId, Arc<dyn RaftHandler>>>>,
}

impl LocalNetwork {
    /// An empty network.
    pub fn new() -> LocalNetwork {
        LocalNetwork::default()
    }

    /// Makes member `id` reachable through `handler` (replacing an earlier registration, as a
    /// restarted member does).
    pub fn register(&self, id: NodeId, handler: Arc<dyn RaftHandler>) {
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, handler);
    }

    /// Makes member `id` unreachable.
    pub fn unregister(&self, id: NodeId) {
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    fn handler(&self, id: NodeId) -> Option<Arc<dyn RaftHandler>> {
        self.handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }
}

impl Transport for LocalNetwork {
    fn send(
        &self,
        _from: NodeId,
        to: NodeId,
        request: RaftRequest,
    ) -> BoxFuture<'static, Result<RaftReply, TransportError>> {
        let handler = self.handler(to);
        Box::pin(async move {
            match handler {
                Some(h) => Ok(h.handle(request).await),
                None => Err(TransportError::Unreachable { to }),
            }
        })
    }
}
