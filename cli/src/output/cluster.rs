//! Printers of the cluster commands in etcdctl 3.4's shapes: `endpoint status`, `endpoint
//! health`, `member list`, `alarm list|disarm` (a third `impl` block of [`Printer`]).

use std::io::{self, Write};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::json::{Json, ServerIds};
use super::text::{go_quote, human_bytes};
use super::Printer;
use crate::args::Format;

/// One endpoint's `Maintenance.Status` (a file reports itself as a one-member cluster).
#[derive(Clone, Debug, Default)]
pub struct EndpointStatus {
    /// The endpoint as given (or the file's path).
    pub endpoint: String,
    /// The header revision.
    pub revision: i64,
    /// The header's cluster, member and term.
    pub server: ServerIds,
    /// The server's version.
    pub version: String,
    /// Size of the database file.
    pub db_size: i64,
    /// Bytes of it in use.
    pub db_size_in_use: i64,
    /// The leader's member id.
    pub leader: u64,
    /// True for a learner.
    pub is_learner: bool,
    /// Raft index.
    pub raft_index: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Raft applied index.
    pub raft_applied_index: u64,
    /// Errors the member reports.
    pub errors: Vec<String>,
}

/// One endpoint's health.
#[derive(Clone, Debug)]
pub struct EndpointHealth {
    /// The endpoint as given.
    pub endpoint: String,
    /// True when it answered a linearizable read and has no alarm.
    pub health: bool,
    /// How long the check took.
    pub took: Duration,
    /// Why it is unhealthy (empty when healthy).
    pub error: String,
}

/// One member of `member list`.
#[derive(Clone, Debug)]
pub struct MemberRow {
    /// Member id.
    pub id: u64,
    /// Name (empty for a member that has not started).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// True for a learner.
    pub is_learner: bool,
}

/// One raised alarm.
#[derive(Clone, Debug)]
pub struct AlarmRow {
    /// The member it is raised on.
    pub member_id: u64,
    /// etcd's alarm type number (1 NOSPACE, 2 CORRUPT).
    pub alarm: i32,
}

/// etcd's name of an alarm type.
fn alarm_name(alarm: i32) -> &'static str {
    match alarm {
        1 => "NOSPACE",
        2 => "CORRUPT",
        _ => "NONE",
    }
}

/// A duration as Go's `time.Duration.String()`: "791.909µs", "1.5s", "2m3.5s".
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    let trim = |whole: u128, frac: u128, digits: usize| -> String {
        let mut f = format!("{frac:0digits$}");
        while f.ends_with('0') {
            f.pop();
        }
        if f.is_empty() {
            whole.to_string()
        } else {
            format!("{whole}.{f}")
        }
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", trim(ns / 1_000, ns % 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", trim(ns / 1_000_000, ns % 1_000_000, 6));
    }
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let s = format!("{}s", trim(s, frac, 9));
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

impl Printer {
    /// `endpoint status` for each endpoint.
    pub fn endpoint_status(&mut self, rows: &[EndpointStatus]) -> io::Result<()> {
        match self.format {
            Format::Json => {
                // etcd's StatusResponse (omitempty) under etcdctl's {Endpoint, Status} wrapper.
                let list: Vec<Value> = rows
                    .iter()
                    .map(|r| {
                        let style = Json {
                            server: r.server,
                            ..self.json_style
                        };
                        let mut status = Map::new();
                        status.insert("header".into(), style.header(r.revision));
                        status.insert("version".into(), r.version.clone().into());
                        let numbers = [
                            ("dbSize", r.db_size.into()),
                            ("leader", style.uid(r.leader)),
                            ("raftIndex", r.raft_index.into()),
                            ("raftTerm", r.raft_term.into()),
                            ("raftAppliedIndex", r.raft_applied_index.into()),
                        ];
                        for (k, v) in numbers {
                            if v != json!(0) && v != json!("0") {
                                status.insert(k.into(), v);
                            }
                        }
                        if !r.errors.is_empty() {
                            status.insert("errors".into(), json!(r.errors));
                        }
                        if r.db_size_in_use != 0 {
                            status.insert("dbSizeInUse".into(), r.db_size_in_use.into());
                        }
                        if r.is_learner {
                            status.insert("isLearner".into(), true.into());
                        }
                        json!({ "Endpoint": r.endpoint, "Status": status })
                    })
                    .collect();
                self.json(&Value::Array(list))
            }
            Format::Fields => {
                for r in rows {
                    self.json_style.server = r.server;
                    self.header_fields(r.revision)?;
                    let o = &mut self.out;
                    writeln!(o, "\"Version\" : {}", go_quote(r.version.as_bytes()))?;
                    writeln!(o, "\"DBSize\" : {}", r.db_size)?;
                    writeln!(o, "\"Leader\" : {}", r.leader)?;
                    writeln!(o, "\"IsLearner\" : {}", r.is_learner)?;
                    writeln!(o, "\"RaftIndex\" : {}", r.raft_index)?;
                    writeln!(o, "\"RaftTerm\" : {}", r.raft_term)?;
                    writeln!(o, "\"RaftAppliedIndex\" : {}", r.raft_applied_index)?;
                    writeln!(o, "\"Errors\" : [{}]", r.errors.join(" "))?;
                    writeln!(o, "\"Endpoint\" : {}\n", go_quote(r.endpoint.as_bytes()))?;
                }
                Ok(())
            }
            Format::Simple | Format::Table => {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.endpoint.clone(),
                            format!("{:x}", r.server.member_id),
                            r.version.clone(),
                            human_bytes(r.db_size.max(0) as u64),
                            (r.leader == r.server.member_id).to_string(),
                            r.is_learner.to_string(),
                            r.raft_term.to_string(),
                            r.raft_index.to_string(),
                            r.raft_applied_index.to_string(),
                            r.errors.join(", "),
                        ]
                    })
                    .collect();
                if self.format == Format::Simple {
                    for row in table {
                        writeln!(self.out, "{}", row.join(", "))?;
                    }
                    return Ok(());
                }
                let headers = [
                    "ENDPOINT",
                    "ID",
                    "VERSION",
                    "DB SIZE",
                    "IS LEADER",
                    "IS LEARNER",
                    "RAFT TERM",
                    "RAFT INDEX",
                    "RAFT APPLIED INDEX",
                    "ERRORS",
                ];
                self.table_right(&headers, &table)
            }
        }
    }

    /// `endpoint health`: simple output goes to stderr, as etcdctl writes it.
    pub fn endpoint_health(&mut self, rows: &[EndpointHealth]) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let list: Vec<Value> = rows
                    .iter()
                    .map(|h| {
                        let mut m = Map::new();
                        m.insert("endpoint".into(), h.endpoint.clone().into());
                        m.insert("health".into(), h.health.into());
                        m.insert("took".into(), go_duration(h.took).into());
                        if !h.error.is_empty() {
                            m.insert("error".into(), h.error.clone().into());
                        }
                        Value::Object(m)
                    })
                    .collect();
                self.json(&Value::Array(list))
            }
            Format::Fields => {
                for h in rows {
                    let o = &mut self.out;
                    writeln!(o, "\"Endpoint\" : {}", go_quote(h.endpoint.as_bytes()))?;
                    writeln!(o, "\"Health\" : {}", h.health)?;
                    writeln!(o, "\"Took\" : {}", go_duration(h.took))?;
                    writeln!(o, "\"Error\" : {}\n", h.error)?;
                }
                Ok(())
            }
            Format::Table => {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|h| {
                        vec![
                            h.endpoint.clone(),
                            h.health.to_string(),
                            go_duration(h.took),
                            h.error.clone(),
                        ]
                    })
                    .collect();
                self.table_right(&["ENDPOINT", "HEALTH", "TOOK", "ERROR"], &table)
            }
            Format::Simple => {
                let mut err = io::stderr().lock();
                for h in rows {
                    if h.health {
                        writeln!(
                            err,
                            "{} is healthy: successfully committed proposal: took = {}",
                            h.endpoint,
                            go_duration(h.took)
                        )?;
                    } else {
                        writeln!(
                            err,
                            "{} is unhealthy: failed to commit proposal: {}",
                            h.endpoint, h.error
                        )?;
                    }
                }
                Ok(())
            }
        }
    }

    /// `member list`.
    pub fn member_list(&mut self, revision: i64, members: &[MemberRow]) -> io::Result<()> {
        let status = |m: &MemberRow| {
            if m.name.is_empty() {
                "unstarted"
            } else {
                "started"
            }
        };
        match self.format {
            Format::Json => {
                let j = self.json_style;
                let list: Vec<Value> = members
                    .iter()
                    .map(|m| {
                        let mut o = Map::new();
                        o.insert("ID".into(), j.uid(m.id));
                        if !m.name.is_empty() {
                            o.insert("name".into(), m.name.clone().into());
                        }
                        if !m.peer_urls.is_empty() {
                            o.insert("peerURLs".into(), json!(m.peer_urls));
                        }
                        if !m.client_urls.is_empty() {
                            o.insert("clientURLs".into(), json!(m.client_urls));
                        }
                        if m.is_learner {
                            o.insert("isLearner".into(), true.into());
                        }
                        Value::Object(o)
                    })
                    .collect();
                let mut top = Map::new();
                top.insert("header".into(), j.header(revision));
                if !list.is_empty() {
                    top.insert("members".into(), Value::Array(list));
                }
                self.json(&Value::Object(top))
            }
            Format::Fields => {
                self.header_fields(revision)?;
                for m in members {
                    let o = &mut self.out;
                    writeln!(o, "\"ID\" : {}", m.id)?;
                    writeln!(o, "\"Name\" : {}", go_quote(m.name.as_bytes()))?;
                    for u in &m.peer_urls {
                        writeln!(o, "\"PeerURL\" : {}", go_quote(u.as_bytes()))?;
                    }
                    for u in &m.client_urls {
                        writeln!(o, "\"ClientURL\" : {}", go_quote(u.as_bytes()))?;
                    }
                    writeln!(o, "\"IsLearner\" : {}\n", m.is_learner)?;
                }
                Ok(())
            }
            Format::Simple | Format::Table => {
                let rows: Vec<Vec<String>> = members
                    .iter()
                    .map(|m| {
                        vec![
                            format!("{:x}", m.id),
                            status(m).to_string(),
                            m.name.clone(),
                            m.peer_urls.join(","),
                            m.client_urls.join(","),
                            m.is_learner.to_string(),
                        ]
                    })
                    .collect();
                if self.format == Format::Simple {
                    for row in rows {
                        writeln!(self.out, "{}", row.join(", "))?;
                    }
                    return Ok(());
                }
                let headers = [
                    "ID",
                    "STATUS",
                    "NAME",
                    "PEER ADDRS",
                    "CLIENT ADDRS",
                    "IS LEARNER",
                ];
                self.table_right(&headers, &rows)
            }
        }
    }

    /// `alarm list` and `alarm disarm` (the alarms listed, or those disarmed);
    /// `revision` is `None` when the response had no header (etcd 3.4 sends none when there
    /// is no alarm): JSON then leaves it out, as etcdctl.
    pub fn alarms(&mut self, revision: Option<i64>, alarms: &[AlarmRow]) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let j = self.json_style;
                let mut top = Map::new();
                if let Some(revision) = revision {
                    top.insert("header".into(), j.header(revision));
                }
                if !alarms.is_empty() {
                    let list: Vec<Value> = alarms
                        .iter()
                        .map(|a| json!({ "memberID": j.uid(a.member_id), "alarm": a.alarm }))
                        .collect();
                    top.insert("alarms".into(), Value::Array(list));
                }
                self.json(&Value::Object(top))
            }
            Format::Fields => {
                self.header_fields(revision.unwrap_or(0))?;
                for a in alarms {
                    writeln!(self.out, "\"MemberID\" : {}", a.member_id)?;
                    writeln!(self.out, "\"AlarmType\" : {}", alarm_name(a.alarm))?;
                }
                Ok(())
            }
            Format::Simple | Format::Table => {
                for a in alarms {
                    // Go's `%+v` of the message: compact protobuf text, trailing space included.
                    writeln!(
                        self.out,
                        "memberID:{} alarm:{} ",
                        a.member_id,
                        alarm_name(a.alarm)
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_nanos(791_909)), "791.909µs");
        assert_eq!(go_duration(Duration::from_nanos(1_234_567)), "1.234567ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_millis(123_500)), "2m3.5s");
        assert_eq!(go_duration(Duration::from_nanos(12)), "12ns");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}
