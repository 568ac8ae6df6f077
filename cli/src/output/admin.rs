//! Printers of the lease, maintenance and snapshot commands (a second `impl` block of
//! [`Printer`], split from the key-value printers for size).

use std::io::{self, Write};
use std::path::Path;

use etch::{CheckReport, LeaseGrant, LeaseInfo, Status};
use serde_json::{json, Value};

use super::json::b64;
use super::text::{go_quote, human_bytes, lease_hex};
use super::{Printer, SnapshotStatus};
use crate::args::Format;

impl Printer {
    /// `lease grant`.
    pub fn lease_grant(&mut self, revision: i64, g: &LeaseGrant) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let j = self.json_style;
                let fields = vec![
                    ("ID", j.id(g.id)),
                    ("TTL", g.ttl.into()),
                    ("Error", "".into()),
                ];
                self.json(&j.lease(revision, fields))
            }
            Format::Fields => {
                self.header_fields(revision)?;
                writeln!(self.out, "\"ID\" : {}\n\"TTL\" : {}", g.id, g.ttl)
            }
            Format::Simple | Format::Table => writeln!(
                self.out,
                "lease {} granted with TTL({}s)",
                lease_hex(g.id),
                g.ttl
            ),
        }
    }

    /// `lease revoke`.
    pub fn lease_revoke(&mut self, revision: i64, id: i64) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let header = self.json_style.header(revision);
                self.json(&json!({ "header": header }))
            }
            Format::Fields => self.header_fields(revision),
            Format::Simple | Format::Table => {
                writeln!(self.out, "lease {} revoked", lease_hex(id))
            }
        }
    }

    /// `lease keep-alive`, once per renewal.
    pub fn lease_keep_alive(&mut self, revision: i64, id: i64, ttl: i64) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let j = self.json_style;
                self.json(&j.lease(revision, vec![("ID", j.id(id)), ("TTL", ttl.into())]))
            }
            Format::Fields => {
                self.header_fields(revision)?;
                writeln!(self.out, "\"ID\" : {id}\n\"TTL\" : {ttl}")
            }
            Format::Simple | Format::Table => writeln!(
                self.out,
                "lease {} keepalived with TTL({ttl})",
                lease_hex(id)
            ),
        }
    }

    /// `lease timetolive`; `info == None` means the lease does not exist (etcd reports it as
    /// already expired, with TTL -1).
    pub fn lease_ttl(
        &mut self,
        revision: i64,
        id: i64,
        info: Option<&LeaseInfo>,
        keys: bool,
    ) -> io::Result<()> {
        let (ttl, granted, key_list) = match info {
            Some(i) => (i.ttl, i.granted_ttl, i.keys.as_slice()),
            None => (-1, 0, &[][..]),
        };
        match self.format {
            Format::Json => {
                // clientv3's LeaseTimeToLiveResponse: no omitempty, `null` for no keys.
                let j = self.json_style;
                let key_values: Vec<Value> = key_list.iter().map(|k| b64(k)).collect();
                let key_values = if key_values.is_empty() {
                    Value::Null
                } else {
                    Value::Array(key_values)
                };
                let fields = vec![
                    ("id", j.id(id)),
                    ("ttl", ttl.into()),
                    ("granted-ttl", granted.into()),
                    ("keys", key_values),
                ];
                self.json(&j.lease(revision, fields))
            }
            Format::Fields => {
                self.header_fields(revision)?;
                writeln!(self.out, "\"ID\" : {id}\n\"TTL\" : {ttl}")?;
                writeln!(self.out, "\"GrantedTTL\" : {granted}")?;
                for k in key_list {
                    writeln!(self.out, "\"Key\" : {}", go_quote(k))?;
                }
                Ok(())
            }
            Format::Table => {
                let attached: Vec<String> = key_list.iter().map(|k| self.bytes(k)).collect();
                let row = vec![
                    lease_hex(id),
                    granted.to_string(),
                    ttl.to_string(),
                    attached.join(", "),
                ];
                self.table(&["ID", "GRANTED TTL", "REMAINING", "KEYS"], &[row])
            }
            Format::Simple => {
                if info.is_none() {
                    return writeln!(self.out, "lease {} already expired", lease_hex(id));
                }
                let mut txt = format!(
                    "lease {} granted with TTL({granted}s), remaining({ttl}s)",
                    lease_hex(id)
                );
                if keys {
                    let names: Vec<String> = key_list.iter().map(|k| self.bytes(k)).collect();
                    txt.push_str(&format!(", attached keys([{}])", names.join(" ")));
                }
                writeln!(self.out, "{txt}")
            }
        }
    }

    /// `lease list`.
    pub fn lease_list(&mut self, revision: i64, leases: &[LeaseGrant]) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let j = self.json_style;
                let list: Vec<Value> = leases.iter().map(|l| json!({ "id": j.id(l.id) })).collect();
                self.json(&j.lease(revision, vec![("leases", Value::Array(list))]))
            }
            Format::Fields => {
                self.header_fields(revision)?;
                for l in leases {
                    writeln!(self.out, "\"ID\" : {}", l.id)?;
                }
                Ok(())
            }
            Format::Table => {
                let rows: Vec<Vec<String>> = leases
                    .iter()
                    .map(|l| vec![lease_hex(l.id), l.ttl.to_string()])
                    .collect();
                self.table(&["ID", "GRANTED TTL"], &rows)
            }
            Format::Simple => {
                writeln!(self.out, "found {} leases", leases.len())?;
                for l in leases {
                    writeln!(self.out, "{}", lease_hex(l.id))?;
                }
                Ok(())
            }
        }
    }

    /// `compaction`: etcdctl prints the same line in every output format.
    pub fn compaction(&mut self, compacted: i64) -> io::Result<()> {
        writeln!(self.out, "compacted revision {compacted}")
    }

    /// `defrag`.
    pub fn defrag(&mut self, path: &Path, before: u64, after: u64) -> io::Result<()> {
        let p = path.display().to_string();
        match self.format {
            Format::Json => {
                self.json(&json!({ "path": p, "sizeBefore": before, "sizeAfter": after }))
            }
            Format::Fields => writeln!(
                self.out,
                "\"Path\" : {}\n\"SizeBefore\" : {before}\n\"SizeAfter\" : {after}",
                go_quote(p.as_bytes())
            ),
            Format::Simple | Format::Table => writeln!(
                self.out,
                "Finished defragmenting etch file[{p}] ({} -> {})",
                human_bytes(before),
                human_bytes(after)
            ),
        }
    }

    /// `status`.
    pub fn status(&mut self, path: &Path, s: &Status) -> io::Result<()> {
        let p = path.display().to_string();
        let version = env!("CARGO_PKG_VERSION");
        match self.format {
            Format::Json => self.json(&json!({
                "header": self.json_style.header(s.revision),
                "path": p,
                "version": version,
                "dbSize": s.file_size,
                "dbSizeInUse": s.size_in_use,
                "walSize": s.wal_size,
                "compactRevision": s.compact_revision,
                "keys": s.key_count,
                "pageSize": s.page_size,
                "appliedIndex": s.applied_index,
            })),
            Format::Fields => {
                self.header_fields(s.revision)?;
                let o = &mut self.out;
                writeln!(o, "\"Path\" : {}", go_quote(p.as_bytes()))?;
                writeln!(o, "\"Version\" : {}", go_quote(version.as_bytes()))?;
                writeln!(o, "\"DBSize\" : {}", s.file_size)?;
                writeln!(o, "\"DBSizeInUse\" : {}", s.size_in_use)?;
                writeln!(o, "\"WALSize\" : {}", s.wal_size)?;
                writeln!(o, "\"CompactRevision\" : {}", s.compact_revision)?;
                writeln!(o, "\"Keys\" : {}", s.key_count)?;
                writeln!(o, "\"PageSize\" : {}", s.page_size)?;
                writeln!(o, "\"AppliedIndex\" : {}", s.applied_index)
            }
            Format::Simple | Format::Table => {
                let row = vec![
                    p,
                    version.to_string(),
                    human_bytes(s.file_size),
                    human_bytes(s.size_in_use),
                    human_bytes(s.wal_size),
                    s.revision.to_string(),
                    s.compact_revision.to_string(),
                    s.key_count.to_string(),
                    s.page_size.to_string(),
                    s.applied_index.to_string(),
                ];
                if self.format == Format::Simple {
                    return writeln!(self.out, "{}", row.join(", "));
                }
                let headers = [
                    "PATH",
                    "VERSION",
                    "DB SIZE",
                    "DB SIZE IN USE",
                    "WAL SIZE",
                    "REVISION",
                    "COMPACT REVISION",
                    "KEYS",
                    "PAGE SIZE",
                    "APPLIED INDEX",
                ];
                self.table(&headers, &[row])
            }
        }
    }

    /// `check` on an intact file.
    pub fn check(&mut self, path: &Path, r: &CheckReport) -> io::Result<()> {
        let p = path.display().to_string();
        let figures = [
            ("TreePages", r.tree_pages),
            ("OverflowPages", r.overflow_pages),
            ("FreePages", r.free_pages),
            ("Keys", r.keys),
            ("HistoryRecords", r.history_records),
            ("LogRecords", r.log_records),
        ];
        match self.format {
            Format::Json => {
                let mut v = json!({ "path": p, "ok": true });
                for (name, n) in figures {
                    let mut key = name.to_string();
                    key[..1].make_ascii_lowercase();
                    v[key] = json!(n);
                }
                self.json(&v)
            }
            Format::Fields => {
                writeln!(self.out, "\"Path\" : {}\n\"OK\" : true", go_quote(p.as_bytes()))?;
                for (name, n) in figures {
                    writeln!(self.out, "\"{name}\" : {n}")?;
                }
                Ok(())
            }
            Format::Table => {
                let mut headers = vec!["PATH", "OK"];
                headers.extend([
                    "TREE PAGES",
                    "OVERFLOW PAGES",
                    "FREE PAGES",
                    "KEYS",
                    "HISTORY RECORDS",
                    "LOG RECORDS",
                ]);
                let mut row = vec![p, "true".to_string()];
                row.extend(figures.iter().map(|(_, n)| n.to_string()));
                self.table(&headers, &[row])
            }
            Format::Simple => writeln!(
                self.out,
                "{p}: OK ({} keys, {} history records, {} tree pages, {} overflow pages, {} free pages, {} log records)",
                r.keys, r.history_records, r.tree_pages, r.overflow_pages, r.free_pages, r.log_records
            ),
        }
    }

    /// `snapshot save`.
    pub fn snapshot_saved(&mut self, path: &Path, revision: i64, size: u64) -> io::Result<()> {
        let p = path.display().to_string();
        match self.format {
            Format::Json => self.json(&json!({ "path": p, "revision": revision, "size": size })),
            Format::Fields => writeln!(
                self.out,
                "\"Path\" : {}\n\"Revision\" : {revision}\n\"Size\" : {size}",
                go_quote(p.as_bytes())
            ),
            Format::Simple | Format::Table => writeln!(self.out, "Snapshot saved at {p}"),
        }
    }

    /// `snapshot restore`.
    pub fn snapshot_restored(&mut self, from: &Path, to: &Path, revision: i64) -> io::Result<()> {
        let (f, t) = (from.display().to_string(), to.display().to_string());
        match self.format {
            Format::Json => self.json(&json!({ "snapshot": f, "output": t, "revision": revision })),
            Format::Fields => writeln!(
                self.out,
                "\"Snapshot\" : {}\n\"Output\" : {}\n\"Revision\" : {revision}",
                go_quote(f.as_bytes()),
                go_quote(t.as_bytes())
            ),
            Format::Simple | Format::Table => writeln!(
                self.out,
                "Restored snapshot {f} to {t} at revision {revision}"
            ),
        }
    }

    /// `snapshot status`: etcdutl's hash, revision, total keys, total size.
    pub fn snapshot_status(&mut self, s: &SnapshotStatus) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json!({
                "hash": s.hash, "revision": s.revision, "totalKey": s.keys, "totalSize": s.size,
            })),
            Format::Fields => writeln!(
                self.out,
                "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}",
                s.hash, s.revision, s.keys, s.size
            ),
            Format::Simple | Format::Table => {
                let row = vec![
                    format!("{:x}", s.hash),
                    s.revision.to_string(),
                    s.keys.to_string(),
                    human_bytes(s.size),
                ];
                if self.format == Format::Simple {
                    return writeln!(self.out, "{}", row.join(", "));
                }
                self.table_right(&["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], &[row])
            }
        }
    }
}
