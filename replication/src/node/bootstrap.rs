//! A member's file and the cluster it belongs to: starting a cluster on a file that keeps its
//! history ([`ReplicatedStore::bootstrap`]), and telling new, standalone and member files apart.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use etch_engine as engine;

use super::{NodeConfig, ReplicatedStore};
use crate::codec;
use crate::engine_log::EngineLog;
use crate::error::{Error, Result};
use crate::log_store::LogStore;
use crate::network::Transport;
use crate::types::{Entry, NodeId};

impl ReplicatedStore {
    /// Opens the file at `path` (as [`ReplicatedStore::open`] does) and makes it the first
    /// member of a new cluster whose voters are `members` (which must include this member),
    /// keeping everything the file holds: a store used standalone keeps its keys, their
    /// revisions and versions, its revision, compact revision and leases, and new writes
    /// continue from its revision. A new, empty file works too.
    ///
    /// openraft's own initialize starts a log at index 0, which a file with a history cannot
    /// have (its log starts after its applied index). So the initial membership entry is
    /// appended here, at the log's next index, before Raft starts; then this member elects
    /// itself (with other voters, once a majority of them runs). Members joining later receive
    /// the history as a snapshot.
    ///
    /// A file that already belongs to a cluster (it holds a vote, an applied membership or log
    /// entries) is refused with [`Error::AlreadyMember`], unchanged: reopen it with
    /// [`ReplicatedStore::open`].
    pub async fn bootstrap<T: Transport>(
        config: NodeConfig,
        path: impl AsRef<Path>,
        opts: engine::Options,
        transport: Arc<T>,
        members: BTreeSet<NodeId>,
    ) -> Result<ReplicatedStore> {
        if !members.contains(&config.id) {
            return Err(Error::Store(engine::Error::InvalidOption(format!(
                "the first member {} must be one of the voters {members:?}",
                config.id
            ))));
        }
        let store = open_store(&config, path.as_ref(), opts)?;
        let next = match cluster_state(&store)? {
            FileState::Member => return Err(Error::AlreadyMember { id: config.id }),
            // The engine's last index is the Raft index after the last one (engine = Raft + 1).
            FileState::New | FileState::Standalone => store.log_state()?.last.map_or(0, |l| l.0),
        };
        let entry = Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(0, 0), next),
            payload: openraft::EntryPayload::Membership(openraft::Membership::new(
                vec![members],
                None,
            )),
        };
        let bytes = codec::encode(&entry)
            .map_err(|e| Error::Store(engine::Error::InvalidOption(e.to_string())))?;
        EngineLog::new(store.clone())
            .append(&[(next, 0, &bytes)])
            .map_err(|e| Error::Raft(e.to_string()))?;
        let member = Self::start(config, path.as_ref(), store, transport).await?;
        // As openraft's initialize does: campaign now rather than after an election timeout.
        let _ = member.inner.raft.trigger().elect().await;
        Ok(member)
    }
}

/// Opens a member's one store (see [`ReplicatedStore::open`]).
pub(super) fn open_store(
    config: &NodeConfig,
    path: &Path,
    opts: engine::Options,
) -> Result<engine::Store> {
    if config.id == 0 {
        return Err(Error::Store(engine::Error::InvalidOption(
            "member id 0 is reserved".into(),
        )));
    }
    Ok(opts.replicated(true).background_writes(false).open(path)?)
}

/// What a member's file says about its cluster.
pub(super) enum FileState {
    /// Nothing: no vote, no membership, an empty log that was never purged.
    New,
    /// A history of its own and no cluster: a standalone store opened as a member (its log is
    /// empty, its purge point is its applied index), or a new one.
    Standalone,
    /// It belongs to a cluster: it holds a vote, an applied membership or log entries.
    Member,
}

pub(super) fn cluster_state(store: &engine::Store) -> Result<FileState> {
    let log = store.log_state()?;
    if store.read_vote()?.is_some()
        || store.applied_membership().is_some()
        || log.last != log.last_purged
    {
        return Ok(FileState::Member);
    }
    Ok(match log.last_purged {
        None => FileState::New,
        Some(_) => FileState::Standalone,
    })
}
