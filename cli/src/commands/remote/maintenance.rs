//! `compaction`, `defrag`, `snapshot save`, `endpoint status|health`, `member list` and
//! `alarm list|disarm` against servers.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::cluster_client::ClusterClient;
use etch_server::proto::etcdserverpb::kv_client::KvClient;
use etch_server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use sha2::Digest;
use tonic::transport::Channel;

use crate::args::CompactionArgs;
use crate::client::DEADLINE_EXCEEDED;
use crate::client::{conn, ids, revision, runtime, status_error, Client, ConnArgs};
use crate::commands::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::{AlarmRow, EndpointHealth, EndpointStatus, MemberRow};
use crate::progress;

/// `compaction REV [--physical]`.
pub fn compaction(ctx: &mut Ctx, c: &Client, a: &CompactionArgs) -> CliResult {
    let mut kv = KvClient::new(c.channel.clone());
    let req = pb::CompactionRequest {
        revision: a.rev,
        physical: a.physical,
    };
    c.call(kv.compact(req))?;
    Ok(ctx.printer.compaction(a.rev)?)
}

/// One unary call on its own endpoint's channel, bounded by `--command-timeout`.
async fn timed<T>(
    conn: &ConnArgs,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(conn.command_timeout, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(status_error(&s).message),
        Err(_) => Err(DEADLINE_EXCEEDED.to_string()),
    }
}

/// Dials `endpoint` with the command's time budget.
async fn dial(conn: &ConnArgs, endpoint: &str) -> Result<Channel, String> {
    conn::dial_until(conn, endpoint, Instant::now() + conn.command_timeout)
        .await
        .map_err(|e| {
            conn::log_warn("dialing the endpoint failed", &format!("{endpoint}: {e}"));
            DEADLINE_EXCEEDED.to_string()
        })
}

/// `defrag`: every endpoint in turn, as etcdctl; a failure is reported and the exit is 1.
pub fn defrag(conn: &ConnArgs) -> CliResult {
    let rt = runtime()?;
    let mut failed = false;
    for ep in conn.endpoints()? {
        let done = progress::spin("defragmenting", || {
            rt.block_on(async {
                let ch = dial(conn, &ep).await?;
                let mut m = MaintenanceClient::new(ch);
                // Rewriting a large file can take longer than one request's timeout.
                match m.defragment(pb::DefragmentRequest {}).await {
                    Ok(_) => Ok(()),
                    Err(s) => Err(status_error(&s).message),
                }
            })
        });
        match done {
            Ok(()) => println!("Finished defragmenting etcd member[{ep}]"),
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
                failed = true;
            }
        }
    }
    if failed {
        // etcdctl exits 1 with nothing more to say.
        return Err(CliError::silent(crate::error::EXIT_ERROR));
    }
    Ok(())
}

/// `endpoint status`: a row per endpoint that answered; the others are reported on stderr
/// and make the exit code 1.
pub fn endpoint_status(ctx: &mut Ctx, conn: &ConnArgs) -> CliResult {
    let rt = runtime()?;
    let mut rows = Vec::new();
    let mut failed = false;
    for ep in conn.endpoints()? {
        let got = rt.block_on(async {
            let ch = dial(conn, &ep).await?;
            timed(
                conn,
                MaintenanceClient::new(ch).status(pb::StatusRequest {}),
            )
            .await
        });
        match got {
            Ok(s) => rows.push(EndpointStatus {
                endpoint: ep.clone(),
                revision: revision(s.header.as_ref()),
                server: ids(s.header.as_ref()),
                version: s.version,
                db_size: s.db_size,
                db_size_in_use: s.db_size_in_use,
                leader: s.leader,
                is_learner: s.is_learner,
                raft_index: s.raft_index,
                raft_term: s.raft_term,
                raft_applied_index: s.raft_applied_index,
                errors: s.errors,
            }),
            Err(e) => {
                eprintln!("Failed to get the status of endpoint {ep} ({e})");
                failed = true;
            }
        }
    }
    if let Some(first) = rows.first() {
        ctx.printer.set_server(first.server);
    }
    ctx.printer.endpoint_status(&rows)?;
    if failed {
        ctx.printer.flush()?;
        return Err(CliError::silent(crate::error::EXIT_ERROR));
    }
    Ok(())
}

/// `endpoint health`: a linearizable read of the key "health" (a permission error still
/// proves the member works, as etcdctl counts it), then no raised alarm.
pub fn endpoint_health(ctx: &mut Ctx, conn: &ConnArgs) -> CliResult {
    let rt = runtime()?;
    let mut rows = Vec::new();
    for ep in conn.endpoints()? {
        let start = Instant::now();
        let result = rt.block_on(async {
            let ch = dial(conn, &ep).await?;
            let get = pb::RangeRequest {
                key: b"health".to_vec(),
                ..Default::default()
            };
            match timed(conn, KvClient::new(ch.clone()).range(get)).await {
                Ok(_) => {}
                Err(e) if e.contains("permission denied") => {}
                Err(e) => return Err(e),
            }
            let list = pb::AlarmRequest {
                action: pb::alarm_request::AlarmAction::Get as i32,
                ..Default::default()
            };
            let alarms = timed(conn, MaintenanceClient::new(ch).alarm(list)).await?;
            if let Some(a) = alarms.alarms.first() {
                let name = pb::AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
                return Err(format!("Active Alarm(s): {name}"));
            }
            Ok(())
        });
        rows.push(EndpointHealth {
            endpoint: ep.clone(),
            health: result.is_ok(),
            took: start.elapsed(),
            error: result.err().unwrap_or_default(),
        });
    }
    ctx.printer.endpoint_health(&rows)?;
    if rows.iter().any(|r| !r.health) {
        ctx.printer.flush()?;
        return Err(CliError::failed("unhealthy cluster"));
    }
    Ok(())
}

/// `member list`.
pub fn member_list(ctx: &mut Ctx, c: &Client) -> CliResult {
    let mut cluster = ClusterClient::new(c.channel.clone());
    let resp = c.call(cluster.member_list(pb::MemberListRequest {
        linearizable: false,
    }))?;
    ctx.printer.set_server(ids(resp.header.as_ref()));
    let members: Vec<MemberRow> = resp
        .members
        .into_iter()
        .map(|m| MemberRow {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_ur_ls,
            client_urls: m.client_ur_ls,
            is_learner: m.is_learner,
        })
        .collect();
    Ok(ctx
        .printer
        .member_list(revision(resp.header.as_ref()), &members)?)
}

fn alarm_rows(r: &pb::AlarmResponse) -> Vec<AlarmRow> {
    r.alarms
        .iter()
        .map(|a| AlarmRow {
            member_id: a.member_id,
            alarm: a.alarm,
        })
        .collect()
}

/// `alarm list`, or with `disarm`, deactivates every raised alarm and prints those.
pub fn alarm(ctx: &mut Ctx, c: &Client, disarm: bool) -> CliResult {
    use pb::alarm_request::AlarmAction;
    let mut m = MaintenanceClient::new(c.channel.clone());
    let list = pb::AlarmRequest {
        action: AlarmAction::Get as i32,
        ..Default::default()
    };
    let listed = c.call(m.alarm(list))?;
    let mut resp = listed.clone();
    if disarm {
        resp.alarms.clear();
        for a in &listed.alarms {
            let req = pb::AlarmRequest {
                action: AlarmAction::Deactivate as i32,
                member_id: a.member_id,
                alarm: a.alarm,
            };
            let done = c.call(m.alarm(req))?;
            resp.header = done.header;
            resp.alarms.extend(done.alarms);
        }
    }
    ctx.printer.set_server(ids(resp.header.as_ref()));
    let rev = resp.header.as_ref().map(|h| h.revision);
    Ok(ctx.printer.alarms(rev, &alarm_rows(&resp))?)
}

/// `snapshot save FILE`: streams the server's snapshot to FILE.part, checks the SHA-256 the
/// server sends last (as etcd does), and renames the part into place. The saved file is the
/// store file without the checksum, so `etch snapshot restore` reads it.
pub fn snapshot_save(ctx: &mut Ctx, c: &Client, file: &Path) -> CliResult {
    let part = {
        let mut p = file.as_os_str().to_os_string();
        p.push(".part");
        std::path::PathBuf::from(p)
    };
    let mut out = std::fs::File::create(&part)
        .map_err(|e| CliError::failed(format!("could not open {} ({e})", part.display())))?;
    let result = progress::spin("saving snapshot", || receive(c, &mut out));
    let (rev, body_len) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    out.set_len(body_len)?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&part, file)?;
    Ok(ctx.printer.snapshot_saved(file, rev, body_len)?)
}

/// Receives the stream into `out`; returns the header revision and the length of the data
/// before the trailing checksum.
fn receive(c: &Client, out: &mut std::fs::File) -> CliResult<(i64, u64)> {
    let mut m = MaintenanceClient::new(c.channel.clone());
    c.block_on(async {
        let mut stream =
            tokio::time::timeout(c.conn().command_timeout, m.snapshot(pb::SnapshotRequest {}))
                .await
                .map_err(|_| CliError::failed(DEADLINE_EXCEEDED))?
                .map_err(|s| status_error(&s))?
                .into_inner();
        let mut sha = sha2::Sha256::new();
        let mut total: u64 = 0;
        let mut rev = 0;
        // The last 32 bytes received are the checksum: hold them back from the hash.
        let mut tail: Vec<u8> = Vec::new();
        while let Some(msg) = stream.message().await.map_err(|s| status_error(&s))? {
            if rev == 0 {
                rev = revision(msg.header.as_ref());
            }
            out.write_all(&msg.blob)?;
            total += msg.blob.len() as u64;
            tail.extend_from_slice(&msg.blob);
            if tail.len() > 32 {
                let cut = tail.len() - 32;
                sha.update(&tail[..cut]);
                tail.drain(..cut);
            }
        }
        if tail.len() != 32 || sha.finalize().as_slice() != tail.as_slice() {
            return Err(CliError::failed(
                "snapshot: the checksum at the end of the stream does not match its data",
            ));
        }
        Ok((rev, total - 32))
    })
}
