//! The KV rows `etch-bench server` and `etch-bench cluster` share: the same closed-loop load
//! run on an etcd deployment and then on an etch one, row after row, so that a change in the
//! machine's load hits both alike.

use std::time::Instant;

use tonic::transport::Channel;

use super::load::{self, Op, RunResult, Target};
use super::process::Kind;

/// Client counts of the KV rows.
pub const CLIENTS: [usize; 3] = [1, 64, 256];

/// How much a run asks of the KV rows.
#[derive(Clone, Copy, Debug)]
pub struct KvScale {
    /// Keys the rows write and read (prefilled before the first row).
    pub keys: u64,
    /// Requests per row at 1 client: (puts, gets).
    pub single: (u64, u64),
    /// Requests per row at 64 and 256 clients: (puts, gets).
    pub many: (u64, u64),
}

/// One row: the same load on both deployments.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KvRow {
    /// The operation's name.
    pub op: &'static str,
    /// Closed-loop clients.
    pub clients: usize,
    /// Connections the clients share.
    pub connections: usize,
    /// Requests asked for (a run stops earlier at [`load::RUN_TIME_LIMIT`]).
    pub requests: u64,
    /// etcd's figures.
    pub etcd: RunResult,
    /// etch's figures.
    pub etch: RunResult,
}

/// The key space of a run's rows.
pub fn target(scale: &KvScale) -> Target {
    Target {
        prefix: "kv/".to_string(),
        keys: scale.keys,
        epoch: Instant::now(),
    }
}

/// Runs `ops` at each of [`CLIENTS`] on etcd and then etch (`deployments`: each kind with
/// its connections, at least `connections_for(256)` of them, already prefilled for `target`);
/// a row at `clients` uses the first `connections_for(clients)` connections.
pub async fn run(
    scale: &KvScale,
    target: &Target,
    ops: &[Op],
    deployments: &[(Kind, Vec<Channel>); 2],
    connections_for: impl Fn(usize) -> usize,
) -> Result<Vec<KvRow>, String> {
    let mut rows = Vec::new();
    for &op in ops {
        for clients in CLIENTS {
            let (puts, gets) = if clients == 1 {
                scale.single
            } else {
                scale.many
            };
            let requests = if op == Op::Put { puts } else { gets };
            let connections = connections_for(clients);
            let mut results = Vec::new();
            for (kind, channels) in deployments {
                eprintln!("  {} x{clients} on {}", op.name(), kind.name());
                let (hist, seconds) =
                    load::run(&channels[..connections], clients, requests, op, target)
                        .await
                        .map_err(|e| format!("{} {}: {e}", kind.name(), op.name()))?;
                results.push(RunResult::of(&hist, seconds));
            }
            rows.push(KvRow {
                op: op.name(),
                clients,
                connections,
                requests,
                etch: results.pop().expect("etch result"),
                etcd: results.pop().expect("etcd result"),
            });
        }
    }
    Ok(rows)
}
