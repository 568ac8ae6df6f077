//! Printing responses in the four formats of `--write-out`.
//!
//! `simple` and `fields` reproduce etcdctl's printers line for line (fields without the cluster,
//! member and raft-term header lines, which a local file does not have; simple output writes
//! keys and values as raw bytes, as etcdctl does); `json` is described in [`json`]; `table`
//! renders a bordered table where etcdctl has one (endpoint status, snapshot status: cells
//! right-aligned as etcdctl's) and, beyond etcdctl, for status, get, lease list and check;
//! elsewhere it prints as `simple`, as etcdctl 3.5's table printer does (3.4 refuses).

mod admin;
mod cluster;
pub mod json;
pub mod table;
pub mod text;

use std::io::{self, Write};

use etch::{
    DeleteResponse, KeyValue, PutResponse, RangeResponse, TxnOpResponse, TxnResponse, WatchResponse,
};
use serde_json::Value;

use crate::args::Format;
pub use cluster::{AlarmRow, EndpointHealth, EndpointStatus, MemberRow};
use json::Json;
use text::{display_bytes, go_quote, hex_escaped, lease_hex};

/// What `snapshot status` reports about a snapshot file.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotStatus {
    /// `hash_kv` of the snapshot at its revision.
    pub hash: u32,
    /// The snapshot's revision.
    pub revision: i64,
    /// Live keys.
    pub keys: u64,
    /// File size in bytes.
    pub size: u64,
}

/// Writes responses to an output stream in one format.
pub struct Printer {
    format: Format,
    hex: bool,
    json_style: Json,
    value_only: bool,
    /// Printing a server's responses: fields output has etcdctl's four header lines.
    client: bool,
    out: Box<dyn Write>,
}

impl Printer {
    /// A printer writing to stdout.
    pub fn stdout(format: Format, hex: bool, json_style: Json) -> Printer {
        Printer::new(format, hex, json_style, Box::new(io::stdout()))
    }

    /// A printer writing to `out`.
    pub fn new(format: Format, hex: bool, json_style: Json, out: Box<dyn Write>) -> Printer {
        Printer {
            format,
            hex,
            json_style,
            value_only: false,
            client: false,
            out,
        }
    }

    /// The JSON writer of this printer.
    pub fn json_style(&self) -> Json {
        self.json_style
    }

    /// Sets the cluster, member and term of the server's response about to be printed.
    pub fn set_server(&mut self, ids: json::ServerIds) {
        self.json_style.server = ids;
        self.client = true;
    }

    /// The output format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Print values without keys in simple output (`get --print-value-only`).
    pub fn set_value_only(&mut self, value_only: bool) {
        self.value_only = value_only;
    }

    /// Flushes the output (before a child process writes to the same stdout).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Writes one line of text.
    pub fn line(&mut self, s: &str) -> io::Result<()> {
        writeln!(self.out, "{s}")
    }

    fn json(&mut self, v: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        writeln!(self.out)
    }

    fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
        self.out.write_all(table::render(headers, rows).as_bytes())
    }

    /// A table with right-aligned cells, as etcdctl's status tables.
    fn table_right(&mut self, headers: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
        let t = table::render_aligned(headers, rows, table::Align::Right);
        self.out.write_all(t.as_bytes())
    }

    fn bytes(&self, b: &[u8]) -> String {
        display_bytes(b, self.hex)
    }

    /// One line of bytes as etcdctl's simple output writes it: raw, or `\xNN` with `--hex`.
    fn raw_line(&mut self, b: &[u8]) -> io::Result<()> {
        if self.hex {
            self.out.write_all(hex_escaped(b).as_bytes())?;
        } else {
            self.out.write_all(b)?;
        }
        self.out.write_all(b"\n")
    }

    /// etcdctl's `printKV`: the key line (unless value-only), then the value line.
    fn kv_simple(&mut self, kv: &KeyValue) -> io::Result<()> {
        if !self.value_only {
            self.raw_line(&kv.key)?;
        }
        self.raw_line(&kv.value)
    }

    fn kv_fields(&mut self, prefix: &str, kv: &KeyValue) -> io::Result<()> {
        let o = &mut self.out;
        writeln!(o, "\"{prefix}Key\" : {}", go_quote(&kv.key))?;
        writeln!(o, "\"{prefix}CreateRevision\" : {}", kv.create_revision)?;
        writeln!(o, "\"{prefix}ModRevision\" : {}", kv.mod_revision)?;
        writeln!(o, "\"{prefix}Version\" : {}", kv.version)?;
        writeln!(o, "\"{prefix}Value\" : {}", go_quote(&kv.value))?;
        writeln!(o, "\"{prefix}Lease\" : {}", kv.lease)
    }

    /// The header lines of fields output: etcdctl's four for a server's response, the
    /// revision alone for a file.
    fn header_fields(&mut self, revision: i64) -> io::Result<()> {
        let s = self.json_style.server;
        if !self.client {
            return writeln!(self.out, "\"Revision\" : {revision}");
        }
        writeln!(self.out, "\"ClusterID\" : {}", s.cluster_id)?;
        writeln!(self.out, "\"MemberID\" : {}", s.member_id)?;
        writeln!(self.out, "\"Revision\" : {revision}")?;
        writeln!(self.out, "\"RaftTerm\" : {}", s.raft_term)
    }

    fn kv_rows(&self, kvs: &[KeyValue]) -> Vec<Vec<String>> {
        kvs.iter()
            .map(|kv| {
                vec![
                    self.bytes(&kv.key),
                    self.bytes(&kv.value),
                    kv.create_revision.to_string(),
                    kv.mod_revision.to_string(),
                    kv.version.to_string(),
                    lease_hex(kv.lease),
                ]
            })
            .collect()
    }

    const KV_HEADERS: [&'static str; 6] = [
        "KEY",
        "VALUE",
        "CREATE REVISION",
        "MOD REVISION",
        "VERSION",
        "LEASE",
    ];

    /// A get response. `count_only` prints the count alone in simple output (etcdctl allows
    /// `--count-only` with fields output only; etch prints the number).
    pub fn get(&mut self, r: &RangeResponse, count_only: bool) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&self.json_style.range(r)),
            Format::Fields => {
                self.header_fields(r.header_revision)?;
                for kv in &r.kvs {
                    self.kv_fields("", kv)?;
                }
                writeln!(self.out, "\"More\" : {}", r.more)?;
                writeln!(self.out, "\"Count\" : {}", r.count)
            }
            Format::Table if count_only => self.table(&["COUNT"], &[vec![r.count.to_string()]]),
            Format::Table => {
                let rows = self.kv_rows(&r.kvs);
                self.table(&Self::KV_HEADERS, &rows)
            }
            Format::Simple if count_only => writeln!(self.out, "{}", r.count),
            Format::Simple => {
                for kv in &r.kvs {
                    self.kv_simple(kv)?;
                }
                Ok(())
            }
        }
    }

    /// A put response: `OK`, then the previous key-value if asked for.
    pub fn put(&mut self, r: &PutResponse) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&self.json_style.put(r)),
            Format::Fields => {
                self.header_fields(r.header_revision)?;
                if let Some(prev) = &r.prev_kv {
                    self.kv_fields("Prev", prev)?;
                }
                Ok(())
            }
            Format::Simple | Format::Table => {
                writeln!(self.out, "OK")?;
                if let Some(prev) = &r.prev_kv {
                    self.kv_simple(prev)?;
                }
                Ok(())
            }
        }
    }

    /// A delete response: the number deleted, then the deleted key-values if asked for.
    pub fn del(&mut self, r: &DeleteResponse) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&self.json_style.delete(r)),
            Format::Fields => {
                self.header_fields(r.header_revision)?;
                writeln!(self.out, "\"Deleted\" : {}", r.deleted)?;
                for kv in &r.prev_kvs {
                    self.kv_fields("Prev", kv)?;
                }
                Ok(())
            }
            Format::Simple | Format::Table => {
                writeln!(self.out, "{}", r.deleted)?;
                for kv in &r.prev_kvs {
                    self.kv_simple(kv)?;
                }
                Ok(())
            }
        }
    }

    /// A transaction response: SUCCESS or FAILURE, then each response after a blank line.
    pub fn txn(&mut self, r: &TxnResponse) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&self.json_style.txn(r)),
            Format::Fields => {
                self.header_fields(r.header_revision)?;
                writeln!(self.out, "\"Succeeded\" : {}", r.succeeded)?;
                self.txn_responses(&r.responses, false)
            }
            Format::Simple | Format::Table => {
                let verdict = if r.succeeded { "SUCCESS" } else { "FAILURE" };
                writeln!(self.out, "{verdict}")?;
                self.txn_responses(&r.responses, true)
            }
        }
    }

    fn txn_responses(&mut self, responses: &[TxnOpResponse], blank: bool) -> io::Result<()> {
        // A server fills only the revision of the responses inside a transaction.
        let server = std::mem::take(&mut self.json_style.server);
        let printed = self.txn_op_responses(responses, blank);
        self.json_style.server = server;
        printed
    }

    fn txn_op_responses(&mut self, responses: &[TxnOpResponse], blank: bool) -> io::Result<()> {
        for op in responses {
            if blank {
                writeln!(self.out)?;
            }
            match op {
                TxnOpResponse::Put(p) => self.put(p)?,
                TxnOpResponse::Range(g) => self.get(g, false)?,
                TxnOpResponse::Delete(d) => self.del(d)?,
                TxnOpResponse::Txn(t) => self.txn(t)?,
            }
        }
        Ok(())
    }

    /// A watch response: per event, the type line, the previous key-value if asked for, then
    /// the key-value.
    pub fn watch(&mut self, r: &WatchResponse) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&self.json_style.watch(r)),
            Format::Fields => {
                self.header_fields(r.header_revision)?;
                for e in &r.events {
                    writeln!(self.out, "\"Type\" : {}", json::event_type(e.kind))?;
                    if let Some(prev) = &e.prev_kv {
                        self.kv_fields("Prev", prev)?;
                    }
                    self.kv_fields("", &e.kv)?;
                }
                Ok(())
            }
            Format::Simple | Format::Table => {
                for e in &r.events {
                    writeln!(self.out, "{}", json::event_type(e.kind))?;
                    if let Some(prev) = &e.prev_kv {
                        self.kv_simple(prev)?;
                    }
                    self.kv_simple(&e.kv)?;
                }
                Ok(())
            }
        }
    }
}
