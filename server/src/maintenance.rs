//! The Maintenance service: Status, Defragment, Hash, HashKV, the Snapshot stream, Alarm, and
//! MoveLeader/Downgrade answered as etcd answers them on a single member. Status reports the
//! Raft state (leader, term, log and applied index) of a cluster member.

use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::backend::Backend;
use crate::node::{Node, ETCD_COMPAT_VERSION};
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::AlarmType;

/// Bytes per Snapshot message, as etcd.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// Snapshot messages buffered before the reader waits for the client.
const SNAPSHOT_CAPACITY: usize = 4;

/// Serves etcd's Maintenance service.
pub struct MaintenanceService {
    node: Node,
}

impl MaintenanceService {
    /// The service over `node`.
    pub fn new(node: Node) -> MaintenanceService {
        MaintenanceService { node }
    }

    fn alarm_member(&self, alarm: AlarmType) -> pb::AlarmMember {
        pb::AlarmMember {
            member_id: self.node.member_id(),
            alarm: alarm as i32,
        }
    }
}

/// A temporary path beside the store for a snapshot copy (same file system, so the copy
/// does not fill another disk; removed as soon as it is open).
fn snapshot_temp_path(db: &std::path::Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".snapshot-{}-{n}.tmp", std::process::id()));
    db.with_file_name(name)
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = SnapshotStream;

    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        use pb::alarm_request::AlarmAction;
        let req = request.into_inner();
        let alarm = AlarmType::try_from(req.alarm)
            .map_err(|_| Status::invalid_argument("etcdserver: unknown alarm type"))?;
        let alarms = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => self
                .node
                .alarms()
                .into_iter()
                .filter(|a| alarm == AlarmType::None || *a == alarm)
                .map(|a| self.alarm_member(a))
                .collect(),
            Ok(AlarmAction::Activate) => {
                if alarm == AlarmType::None {
                    Vec::new()
                } else if self.node.raise_alarm(alarm) {
                    vec![self.alarm_member(alarm)]
                } else {
                    Vec::new()
                }
            }
            Ok(AlarmAction::Deactivate) => {
                if self.node.disarm_alarm(alarm) {
                    vec![self.alarm_member(alarm)]
                } else {
                    Vec::new()
                }
            }
            Err(_) => return Err(Status::invalid_argument("etcdserver: unknown alarm action")),
        };
        Ok(Response::new(pb::AlarmResponse {
            header: self.node.current_header(),
            alarms,
        }))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let status = self
            .node
            .backend()
            .status()
            .await
            .map_err(|e| self.node.fail(e))?;
        let raft = self.node.raft_state();
        let mut errors: Vec<String> = self
            .node
            .alarms()
            .into_iter()
            .map(|a| {
                format!(
                    "memberID:{} alarm:{} ",
                    self.node.member_id(),
                    a.as_str_name()
                )
            })
            .collect();
        if raft.leader == 0 {
            // etcd 3.5 reports a leaderless member this way.
            errors.push("etcdserver: no leader".to_string());
        }
        let (raft_index, raft_applied_index) = match self.node.backend() {
            // A single node's log is its store's history.
            Backend::Local(_) => {
                let index = status.applied_index.max(status.revision.max(0) as u64);
                (index, index)
            }
            Backend::Member(_) => (raft.last_index, raft.applied_index),
        };
        Ok(Response::new(pb::StatusResponse {
            header: self.node.header(status.revision),
            version: ETCD_COMPAT_VERSION.to_string(),
            db_size: status.file_size as i64,
            leader: raft.leader,
            raft_index,
            raft_term: raft.term,
            raft_applied_index,
            errors,
            db_size_in_use: status.size_in_use as i64,
            is_learner: raft.is_learner,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        let (before, after) = match self.node.backend() {
            Backend::Local(store) => {
                let store = store.clone();
                run_blocking(&self.node, move || store.defrag()).await?
            }
            // This member's file only, its Raft log kept (etcdctl defragments each endpoint).
            Backend::Member(member) => {
                let member = member.clone();
                match tokio::task::spawn_blocking(move || member.defrag()).await {
                    Ok(result) => result.map_err(|e| crate::errors::cluster_to_status(&e))?,
                    Err(e) => {
                        tracing::error!(error = %e, "defrag panicked or was cancelled");
                        return Err(Status::internal("etch: request failed inside the server"));
                    }
                }
            }
        };
        tracing::info!(before, after, "defragmented");
        Ok(Response::new(pb::DefragmentResponse {
            header: self.node.current_header(),
        }))
    }

    async fn hash(
        &self,
        _request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        // etcd hashes its whole backend file; etch's file layout depends on history, so this
        // hashes the current keyspace, which is what comparing two copies needs.
        let revision = self.node.backend().revision();
        let hash = self
            .node
            .backend()
            .hash_kv(revision)
            .await
            .map_err(|e| self.node.fail(e))?;
        Ok(Response::new(pb::HashResponse {
            header: self.node.header(revision),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let requested = request.into_inner().revision;
        let backend = self.node.backend();
        let status = backend.status().await.map_err(|e| self.node.fail(e))?;
        let revision = if requested > 0 {
            requested
        } else {
            status.revision
        };
        let hash = backend
            .hash_kv(revision)
            .await
            .map_err(|e| self.node.fail(e))?;
        let (current, compact) = (status.revision, status.compact_revision);
        Ok(Response::new(pb::HashKvResponse {
            header: self.node.header(current),
            hash,
            compact_revision: compact,
            hash_revision: revision,
        }))
    }

    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let path = snapshot_temp_path(&self.node.config().db);
        let copied = self.node.backend().snapshot(path.clone()).await;
        // The open handle keeps the data; the name goes now so nothing is left behind.
        let opened = copied.map(|(revision, size)| (revision, size, std::fs::File::open(&path)));
        let _ = std::fs::remove_file(&path);
        let (revision, size, file) = opened.map_err(|e| self.node.fail(e))?;
        let file = file.map_err(|e| self.node.engine_error(e.into()))?;
        tracing::info!(revision, size, "streaming snapshot");
        let (tx, rx) = mpsc::channel(SNAPSHOT_CAPACITY);
        let header = self.node.header(revision);
        tokio::task::spawn_blocking(move || stream_file(file, size, header, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let target = request.into_inner().target_id;
        match self.node.backend() {
            // The only member is the leader already; any other target is not a member.
            Backend::Local(_) => {
                if target != self.node.member_id() {
                    return Err(crate::errors::bad_leader_transferee());
                }
            }
            Backend::Member(m) => {
                let raft = self.node.raft_state();
                if !raft.is_leader {
                    return Err(crate::errors::not_leader());
                }
                let (voters, _) = m.members();
                if !voters.contains(&target) {
                    return Err(crate::errors::bad_leader_transferee());
                }
                if target != self.node.member_id() {
                    // openraft 0.9 has no leadership transfer.
                    return Err(Status::unimplemented(
                        "etch: moving the leader is not supported on a cluster yet",
                    ));
                }
            }
        }
        Ok(Response::new(pb::MoveLeaderResponse {
            header: self.node.current_header(),
        }))
    }

    async fn downgrade(
        &self,
        request: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        use pb::downgrade_request::DowngradeAction;
        match DowngradeAction::try_from(request.into_inner().action) {
            Ok(DowngradeAction::Cancel) => Err(Status::failed_precondition(
                "etcdserver: no inflight downgrade job",
            )),
            _ => Err(Status::invalid_argument(
                "etcdserver: invalid downgrade target version",
            )),
        }
    }
}

/// Runs an engine call on the blocking pool, its error as etcd's.
async fn run_blocking<T, F>(node: &Node, f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce() -> etch_engine::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| node.engine_error(e)),
        Err(e) => {
            tracing::error!(error = %e, "engine call panicked or was cancelled");
            Err(Status::internal("etch: request failed inside the server"))
        }
    }
}

/// Sends `file` in chunks with the bytes remaining after each, then, as etcd, a last message
/// with the SHA-256 of everything sent (etcdctl refuses a snapshot without it and keeps it at
/// the end of the saved file); stops if the client leaves.
fn stream_file(
    mut file: std::fs::File,
    size: u64,
    header: Option<pb::ResponseHeader>,
    tx: mpsc::Sender<Result<pb::SnapshotResponse, Status>>,
) {
    use sha2::Digest;
    let mut sent: u64 = 0;
    let mut header = header;
    let mut sha = sha2::Sha256::new();
    loop {
        let mut blob = vec![0u8; SNAPSHOT_CHUNK];
        let n = match read_full(&mut file, &mut blob) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.blocking_send(Err(Status::internal(format!(
                    "etch: reading the snapshot failed: {e}"
                ))));
                return;
            }
        };
        if n == 0 {
            let resp = pb::SnapshotResponse {
                header: header.take(),
                remaining_bytes: 0,
                blob: sha.finalize().to_vec(),
            };
            let _ = tx.blocking_send(Ok(resp));
            return;
        }
        blob.truncate(n);
        sha.update(&blob);
        sent += n as u64;
        let resp = pb::SnapshotResponse {
            header: header.take(),
            remaining_bytes: size.saturating_sub(sent),
            blob,
        };
        if tx.blocking_send(Ok(resp)).is_err() {
            return;
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
