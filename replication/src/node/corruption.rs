//! Comparing members' keyspaces, like etcd's corruption check: every member hashes its
//! keyspace at the same revision (`Store::hash_kv`); members with the same history give the
//! same hash.

use std::collections::BTreeMap;

use engine::Revision;
use etch_engine as engine;

use super::ReplicatedStore;

/// How many times a member is asked for its hash when the message or the answer is lost.
const HASH_TRIES: usize = 6;
use crate::error::Result;
use crate::forward::{ClientReply, ClientRequest, ForwardError};
use crate::types::NodeId;

/// What each member answered for one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashReport {
    /// The revision compared.
    pub revision: Revision,
    /// Each asked member's hash, or why it gave none (unreachable, not there yet, compacted).
    pub hashes: BTreeMap<NodeId, std::result::Result<u32, String>>,
}

impl HashReport {
    /// Whether two members that answered gave different hashes: their keyspaces differ at the
    /// same revision (a corruption, or a bug).
    pub fn mismatch(&self) -> bool {
        let mut answered = self.hashes.values().filter_map(|h| h.as_ref().ok());
        match answered.next() {
            Some(first) => answered.any(|h| h != first),
            None => false,
        }
    }
}

impl ReplicatedStore {
    /// Asks every voter and learner for its hash at `revision` (0: this member's current
    /// revision) and reports them; see [`HashReport::mismatch`].
    pub async fn check_hashes(&self, revision: Revision) -> Result<HashReport> {
        self.check_open()?;
        let revision = if revision == 0 {
            self.revision()
        } else {
            revision
        };
        let (voters, learners) = self.members();
        let mut hashes = BTreeMap::new();
        for id in voters.into_iter().chain(learners) {
            let answer = if id == self.id() {
                self.hash_kv(revision).map_err(|e| e.to_string())
            } else {
                let mut answer = Err(String::new());
                // A lost message is not a member's answer: ask a few times.
                for _ in 0..HASH_TRIES {
                    let request = ClientRequest::HashKv { revision };
                    let asked = tokio::time::timeout(
                        self.inner.config.request_timeout,
                        self.inner.ask(id, request),
                    )
                    .await;
                    let retry = matches!(asked, Ok(Ok(None)) | Ok(Err(())));
                    answer = match asked {
                        Ok(Ok(Some(Ok(ClientReply::Hash { hash, .. })))) => Ok(hash),
                        Ok(Ok(Some(Err(ForwardError::Store(msg))))) => Err(msg),
                        Ok(Ok(Some(other))) => Err(format!("unexpected answer {other:?}")),
                        Ok(Ok(None)) => Err("unreachable".into()),
                        Ok(Err(())) => Err("no answer".into()),
                        Err(_) => Err("timed out".into()),
                    };
                    if !retry {
                        break;
                    }
                }
                answer
            };
            hashes.insert(id, answer);
        }
        Ok(HashReport { revision, hashes })
    }
}
