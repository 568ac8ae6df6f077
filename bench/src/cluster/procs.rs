//! A cluster of server processes on loopback, started from etcd's own flags: etcd 3.4 members
//! or `etch serve` members, which take the same flags (name, data-dir, listen/advertise client
//! and peer URLs, initial-cluster, initial-cluster-state, initial-cluster-token,
//! snapshot-count). Each member has its own directory under one temporary directory; every
//! process is killed by pid (and reaped) when the cluster is dropped, also on error or panic.

use std::fs::File;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etch_server::proto::etcdserverpb::cluster_client::ClusterClient;
use etch_server::proto::etcdserverpb::kv_client::KvClient;
use etch_server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etch_server::proto::etcdserverpb::{MemberAddRequest, RangeRequest, StatusRequest};
use tonic::transport::Channel;

use crate::server::process::{etcd_path, etch_path, Kind};

/// Longest a member may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One member process.
pub struct Member {
    /// etcd's member name (`m0`, `m1`, ...).
    pub name: String,
    /// `http://127.0.0.1:PORT`, its client URL.
    pub client_url: String,
    /// `http://127.0.0.1:PORT`, its peer URL (TCP for etcd, UDP for etch's QUIC).
    pub peer_url: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Member {
    /// Whether the process is running (not killed by the benchmark).
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }
}

/// A running cluster; dropping it kills every member.
pub struct ProcCluster {
    /// What the members run.
    pub kind: Kind,
    /// The members, in the order they were added.
    pub members: Vec<Member>,
    snapshot_count: Option<u64>,
    dir: tempfile::TempDir,
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                // `Child::kill` is SIGKILL to exactly this pid.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A loopback port the OS just handed out, for TCP (etcd's peers and every client URL) or
/// UDP (etch's peers).
fn free_port(udp: bool) -> u16 {
    let port = if udp {
        UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr())
    };
    port.map(|a| a.port()).expect("bind a loopback port")
}

/// A gRPC channel to `url`, failing fast when nobody listens.
pub async fn channel(url: &str) -> Result<Channel, String> {
    Channel::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .map_err(|e| format!("connect to {url}: {e}"))
}

impl ProcCluster {
    /// Starts `n` members of `kind` as a new cluster and waits until every member answers a
    /// linearizable read (so a leader is elected and known everywhere). `snapshot_count` is
    /// passed as `--snapshot-count` when set.
    pub async fn start(
        kind: Kind,
        n: usize,
        snapshot_count: Option<u64>,
    ) -> Result<ProcCluster, String> {
        let dir = tempfile::tempdir_in(".").map_err(|e| format!("temporary directory: {e}"))?;
        let mut cluster = ProcCluster {
            kind,
            members: Vec::new(),
            snapshot_count,
            dir,
        };
        for i in 0..n {
            cluster.members.push(cluster.new_member(i));
        }
        let initial = cluster.initial_cluster();
        for i in 0..n {
            cluster.spawn(i, "new", &initial)?;
        }
        for i in 0..n {
            cluster.wait_ready(i).await?;
        }
        Ok(cluster)
    }

    fn new_member(&self, i: usize) -> Member {
        let name = format!("m{i}");
        let dir = self.dir.path().join(&name);
        Member {
            client_url: format!("http://127.0.0.1:{}", free_port(false)),
            peer_url: format!("http://127.0.0.1:{}", free_port(self.kind == Kind::Etch)),
            name,
            dir,
            child: None,
        }
    }

    /// `m0=http://...,m1=http://...` over every member so far.
    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts member `i`'s process with `initial-cluster-state` `state`.
    fn spawn(&mut self, i: usize, state: &str, initial_cluster: &str) -> Result<(), String> {
        let m = &self.members[i];
        std::fs::create_dir_all(&m.dir).map_err(|e| e.to_string())?;
        let program = match self.kind {
            Kind::Etcd => etcd_path(),
            Kind::Etch => etch_path(),
        };
        let mut command = Command::new(&program);
        if self.kind == Kind::Etch {
            command.arg("serve");
        }
        command
            .arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", m.dir.join("data").display()))
            .arg(format!("--listen-client-urls={}", m.client_url))
            .arg(format!("--advertise-client-urls={}", m.client_url))
            .arg(format!("--listen-peer-urls={}", m.peer_url))
            .arg(format!("--initial-advertise-peer-urls={}", m.peer_url))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg(format!("--initial-cluster-state={state}"))
            .arg("--initial-cluster-token=etch-bench-cluster")
            .arg("--log-level=warn");
        if self.kind == Kind::Etcd {
            command.arg("--logger=zap");
        }
        if let Some(n) = self.snapshot_count {
            command.arg(format!("--snapshot-count={n}"));
        }
        // Each start appends to the member's log, kept for a failed run's diagnosis.
        let log = File::options()
            .create(true)
            .append(true)
            .open(m.dir.join("server.log"))
            .map_err(|e| e.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {}: {e}", program.display()))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// The last lines of member `i`'s log, for error messages.
    fn log_tail(&self, i: usize) -> String {
        let text =
            std::fs::read_to_string(self.members[i].dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// Waits until member `i` answers a linearizable Range.
    pub async fn wait_ready(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.members[i].child.as_mut() {
                if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                    self.members[i].child = None;
                    return Err(format!(
                        "{} member {} exited during start-up: {status}\n{}",
                        self.kind.name(),
                        self.members[i].name,
                        self.log_tail(i)
                    ));
                }
            }
            if let Ok(ch) = channel(&self.members[i].client_url).await {
                let probe = RangeRequest {
                    key: b"etch-bench/probe".to_vec(),
                    ..Default::default()
                };
                let mut client = KvClient::new(ch);
                let call = client.range(probe);
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), call).await {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} member {} did not answer within {START_TIMEOUT:?}\n{}",
                    self.kind.name(),
                    self.members[i].name,
                    self.log_tail(i)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The index of the member that leads, by asking the running members' Status.
    pub async fn leader(&self) -> Result<usize, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (i, m) in self.members.iter().enumerate() {
                if !m.is_up() {
                    continue;
                }
                let Ok(ch) = channel(&m.client_url).await else {
                    continue;
                };
                let mut client = MaintenanceClient::new(ch);
                let call = client.status(StatusRequest {});
                if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(2), call).await {
                    let resp = resp.into_inner();
                    let me = resp.header.map_or(0, |h| h.member_id);
                    if resp.leader != 0 && resp.leader == me {
                        return Ok(i);
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no {} leader within 30 s", self.kind.name()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs member `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data directory and waits until it answers.
    pub async fn restart(&mut self, i: usize) -> Result<(), String> {
        let initial = self.initial_cluster();
        // A restarted member has data: etcd (and etch) ignore the initial-cluster flags then.
        self.spawn(i, "new", &initial)?;
        self.wait_ready(i).await
    }

    /// Adds a member the etcd way (MemberAdd on a running member, then the new process with
    /// `initial-cluster-state=existing`) and returns its index and the instant its process
    /// started. Does not wait for it to catch up.
    pub async fn add_member(&mut self) -> Result<(usize, Instant), String> {
        let i = self.members.len();
        let member = self.new_member(i);
        let peer_url = member.peer_url.clone();
        self.members.push(member);
        let via = self
            .members
            .iter()
            .find(|m| m.is_up())
            .ok_or("no member is running")?
            .client_url
            .clone();
        let request = MemberAddRequest {
            peer_ur_ls: vec![peer_url],
            is_learner: false,
        };
        // etcd refuses a reconfiguration until every member has been connected for a few
        // seconds ("unhealthy cluster"): retry, bounded.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = ClusterClient::new(channel(&via).await?)
                .member_add(request.clone())
                .await;
            match answer {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("  member add: {} (retrying)", e.message());
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(format!("member add: {e}")),
            }
        }
        let initial = self.initial_cluster();
        let started = Instant::now();
        self.spawn(i, "existing", &initial)?;
        Ok((i, started))
    }
}
