//! The command line, declared with clap's derive API.
//!
//! Flag names follow etcdctl's so operators can reuse their muscle memory; every command carries
//! an example in its `--help`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::help::*;

/// `etch`: the top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "etch",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Database file [env: ETCH_DB]
    #[arg(
        long,
        global = true,
        env = "ETCH_DB",
        default_value = "./default.etch",
        value_name = "PATH",
        hide_env = true
    )]
    pub db: PathBuf,
    /// Output format: simple, json (etcdctl's JSON: base64 bytes, ids as numbers), table or fields
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        value_enum,
        default_value_t = Format::Simple,
        value_name = "FORMAT",
        hide_possible_values = true
    )]
    pub write_out: Format,
    /// Print keys and values as hex-escaped bytes (\x61\x62) in simple and table output
    #[arg(long, global = true)]
    pub hex: bool,
    /// In JSON output, write 64-bit ids (lease ids) as decimal strings instead of numbers:
    /// lossless in JavaScript and jq, which read numbers above 2^53 inexactly (not in etcdctl)
    #[arg(long, global = true)]
    pub string_ids: bool,
    /// How long to wait for another etch process to release the file before failing with
    /// "database is locked" (SQLite's busy timeout): e.g. 500ms, 5s, 1m; 0 fails at once
    #[arg(
        long,
        global = true,
        default_value = "5s",
        value_name = "DURATION",
        value_parser = parse_duration
    )]
    pub lock_timeout: std::time::Duration,
    /// Client mode: the server to talk to instead of a file (`--endpoints`, TLS, timeouts).
    #[command(flatten)]
    pub conn: crate::client::ConnArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Parses a duration as etcdctl's flags take them: a number with a unit (`ms`, `s`, `m`, `h`),
/// or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (expected e.g. 500ms, 5s, 1m)"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("invalid duration unit in {text:?} (ms, s, m or h)")),
    };
    std::time::Duration::try_from_secs_f64(n * scale).map_err(|e| format!("{text:?}: {e}"))
}

/// `check`'s flags.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CheckArgs {
    /// `check perf` (against a server); without it, `check` verifies the file
    #[command(subcommand)]
    pub perf: Option<CheckCommand>,
    /// If the WAL is damaged before acknowledged records (the open fails with "WAL is damaged"),
    /// copy it to <file>-wal.damaged, recover up to the damage, drop the records after it, and
    /// say how many were dropped; then check the file
    #[arg(long)]
    pub repair: bool,
}

/// `check perf`.
#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Measure the server's write performance as etcdctl's `check perf` (needs --endpoints)
    #[command(
        after_help = "Examples:\n  etch --endpoints 127.0.0.1:2379 check perf\n  etch --endpoints 127.0.0.1:2379 check perf --load m --duration 10s"
    )]
    Perf(crate::commands::remote::perf::PerfArgs),
}

/// Output formats, as etcdctl's `--write-out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// etcdctl's default: keys and values on their own lines.
    Simple,
    /// One JSON document per response, as etcdctl prints it: bytes in base64, 64-bit ids as
    /// numbers (strings with `--string-ids`), zero and empty fields omitted.
    Json,
    /// A bordered table.
    Table,
    /// `"Field" : value` lines.
    Fields,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Put a key (the value is read from stdin when omitted)
    #[command(
        after_help = "Examples:\n  etch put greeting hello\n  etch put --lease 694d77aa9e38260f svc/a 10.0.0.1\n  etch put config < config.json\n  etch put -- key -value-starting-with-a-dash"
    )]
    Put(PutArgs),
    /// Get a key or a range of keys
    #[command(
        after_help = "Examples:\n  etch get greeting\n  etch get svc/ --prefix --keys-only\n  etch get a z --limit 10 --order DESCEND --sort-by MODIFY\n  etch get greeting --rev 3 -w json"
    )]
    Get(GetArgs),
    /// Delete a key or a range of keys
    #[command(
        visible_alias = "delete",
        after_help = "Examples:\n  etch del greeting\n  etch del svc/ --prefix --prev-kv"
    )]
    Del(DelArgs),
    /// Run a transaction read from stdin in etcdctl's txn syntax
    #[command(long_about = TXN_LONG, after_help = TXN_EXAMPLE)]
    Txn(TxnArgs),
    /// Print the changes to a key or range, replaying history with --rev
    #[command(long_about = WATCH_LONG, after_help = WATCH_EXAMPLE)]
    Watch(WatchArgs),
    /// Grant, revoke, inspect, list and keep alive leases (ids in hex, as etcdctl)
    #[command(subcommand, after_help = LEASE_EXAMPLE)]
    Lease(LeaseCommand),
    /// Discard the history before a revision
    #[command(after_help = "Example:\n  etch compaction 1234")]
    Compaction(CompactionArgs),
    /// Rewrite the file (or each server's) compactly, giving free space back to the file system
    #[command(
        after_help = "Examples:\n  etch compaction $(etch get x -w json | jq .header.revision) && etch defrag\n  etch --endpoints 127.0.0.1:2379,127.0.0.1:22379 defrag"
    )]
    Defrag,
    /// Save (from the file or a server), restore and inspect snapshot files
    #[command(subcommand, after_help = SNAPSHOT_EXAMPLE)]
    Snapshot(SnapshotCommand),
    /// Show the file's revision, key count and sizes (a file only)
    #[command(
        after_help = "Example:\n  etch status -w table   # a file; for a server: etch --endpoints HOST:PORT endpoint status"
    )]
    Status,
    /// etcdctl's `endpoint status` and `endpoint health`
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// List the cluster's members (needs --endpoints)
    #[command(subcommand)]
    Member(MemberCommand),
    /// List or disarm the server's alarms, e.g. NOSPACE (needs --endpoints)
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Verify the whole file (checksums, tree shape, page accounting); non-zero exit on damage;
    /// `check perf` measures a server
    #[command(
        after_help = "Examples:\n  etch check && echo intact\n  etch check --repair   # after \"WAL is damaged\": keep a copy, recover up to the damage\n  etch --endpoints 127.0.0.1:2379 check perf --load m"
    )]
    Check(CheckArgs),
    /// Take a named lock, print its key and hold it (or run a command while holding it)
    #[command(long_about = LOCK_LONG, after_help = LOCK_EXAMPLE)]
    Lock(LockArgs),
    /// Campaign in a named election, or observe its leader with --listen
    #[command(long_about = ELECT_LONG, after_help = ELECT_EXAMPLE)]
    Elect(ElectArgs),
    /// Load keys from a JSON-lines file (as written by `etch export`); '-' reads stdin
    #[command(long_about = IMPORT_LONG, after_help = "Example:\n  etch --db old.etch export > keys.jsonl\n  etch --db new.etch import keys.jsonl")]
    Import(ImportArgs),
    /// Write keys as JSON lines to stdout, one key per line
    #[command(long_about = EXPORT_LONG, after_help = "Examples:\n  etch export > all.jsonl\n  etch export --prefix svc/ --rev 42 > svc-at-42.jsonl")]
    Export(ExportArgs),
    /// Serve etcd's v3 gRPC API over the database (etcdctl and etcd clients work against it)
    #[command(
        after_help = "Example:\n  etch serve --db app.etch --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379"
    )]
    Serve(Box<crate::commands::serve::ServeArgs>),
    /// Make a cluster CA and node certificates for mutual TLS (no openssl needed)
    #[command(subcommand, long_about = crate::help::CERT_LONG, after_help = crate::help::CERT_EXAMPLE)]
    Cert(crate::commands::cert::CertCommand),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  etch completion bash > /etc/bash_completion.d/etch\n  etch completion zsh > \"${fpath[1]}/_etch\"\n  etch completion fish > ~/.config/fish/completions/etch.fish"
    )]
    Completion(CompletionArgs),
}

/// `put`.
#[derive(Debug, Args, Clone)]
pub struct PutArgs {
    /// The key (any bytes)
    pub key: OsString,
    /// The value (any bytes); read from stdin when omitted (unless --ignore-value)
    pub value: Option<OsString>,
    /// Attach the key to a lease (hex id, as printed by `lease grant`)
    #[arg(long, value_name = "ID")]
    pub lease: Option<String>,
    /// Print the previous key-value
    #[arg(long)]
    pub prev_kv: bool,
    /// Keep the current value (update the lease only)
    #[arg(long)]
    pub ignore_value: bool,
    /// Keep the current lease
    #[arg(long)]
    pub ignore_lease: bool,
}

/// `get`.
#[derive(Debug, Args, Clone)]
pub struct GetArgs {
    /// The key, or the start of the range
    pub key: OsString,
    /// End of the range [KEY, RANGE_END)
    pub range_end: Option<OsString>,
    /// Get every key with the prefix KEY
    #[arg(long)]
    pub prefix: bool,
    /// Get every key >= KEY
    #[arg(long)]
    pub from_key: bool,
    /// Read at this past revision (0 or negative: the current one, as etcd)
    #[arg(
        long,
        default_value_t = 0,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub rev: i64,
    /// Accepted for etcdctl compatibility: l (linearizable) or s (serializable); a local file
    /// is always both
    #[arg(long, default_value = "l", value_name = "l|s")]
    pub consistency: String,
    /// At most this many keys (0 or negative: no limit, as etcd)
    #[arg(
        long,
        default_value_t = 0,
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub limit: i64,
    /// Sort order
    #[arg(long, value_enum, ignore_case = true)]
    pub order: Option<Order>,
    /// Sort target
    #[arg(long, value_enum, ignore_case = true)]
    pub sort_by: Option<SortBy>,
    /// Keys only, no values
    #[arg(long)]
    pub keys_only: bool,
    /// Only the number of keys
    #[arg(long)]
    pub count_only: bool,
    /// Values only, no keys (simple output)
    #[arg(long)]
    pub print_value_only: bool,
    /// Only keys modified at or after this revision
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub min_mod_revision: i64,
    /// Only keys modified at or before this revision
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_mod_revision: i64,
    /// Only keys created at or after this revision
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub min_create_revision: i64,
    /// Only keys created at or before this revision
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_create_revision: i64,
}

/// Sort order of `get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Order {
    /// Ascending.
    Ascend,
    /// Descending.
    Descend,
}

/// Sort target of `get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum SortBy {
    /// The key.
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Modify,
    /// The value.
    Value,
}

/// `del`.
#[derive(Debug, Args, Clone)]
pub struct DelArgs {
    /// The key, or the start of the range
    pub key: OsString,
    /// End of the range [KEY, RANGE_END)
    pub range_end: Option<OsString>,
    /// Delete every key with the prefix KEY
    #[arg(long)]
    pub prefix: bool,
    /// Delete every key >= KEY
    #[arg(long)]
    pub from_key: bool,
    /// Print the deleted key-values
    #[arg(long)]
    pub prev_kv: bool,
}

/// `txn`.
#[derive(Debug, Args)]
pub struct TxnArgs {
    /// Prompt for each part of the transaction
    #[arg(short, long)]
    pub interactive: bool,
}

/// One request inside a transaction: the flags of the top-level commands.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_subcommand = true)]
pub enum TxnRequest {
    /// A put.
    Put(PutArgs),
    /// A get.
    Get(GetArgs),
    /// A delete.
    #[command(alias = "delete")]
    Del(DelArgs),
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The key, or the start of the range (not with --interactive)
    #[arg(required_unless_present = "interactive")]
    pub key: Option<OsString>,
    /// End of the range [KEY, RANGE_END)
    pub range_end: Option<OsString>,
    /// Watch every key with the prefix KEY
    #[arg(long)]
    pub prefix: bool,
    /// Replay history from this revision (0: only new changes)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub rev: i64,
    /// Print each event's previous key-value
    #[arg(long)]
    pub prev_kv: bool,
    /// Read watch commands from stdin, one per line: `watch KEY [RANGE_END] [--prefix] [--rev N]
    /// [--prev-kv]` (client mode)
    #[arg(short, long)]
    pub interactive: bool,
    /// Exit after the history up to the current revision (not in etcdctl)
    #[arg(long)]
    pub no_follow: bool,
    /// Command to run for each event (after `--`)
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `lease ...`.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Grant a lease of TTL seconds
    #[command(after_help = "Example:\n  etch lease grant 60")]
    Grant {
        /// Seconds
        ttl: i64,
    },
    /// Revoke a lease, deleting its keys
    #[command(after_help = "Example:\n  etch lease revoke 694d77aa9e38260f")]
    Revoke {
        /// Lease id (hex)
        id: String,
    },
    /// Show a lease's granted and remaining TTL
    #[command(after_help = "Example:\n  etch lease timetolive 694d77aa9e38260f --keys")]
    Timetolive {
        /// Lease id (hex)
        id: String,
        /// Also list the keys attached to it
        #[arg(long)]
        keys: bool,
    },
    /// List every lease
    #[command(after_help = "Example:\n  etch lease list")]
    List,
    /// Renew a lease every TTL/3 until interrupted (or once with --once)
    #[command(
        after_help = "Examples:\n  etch lease keep-alive 694d77aa9e38260f\n  etch lease keep-alive --once 694d77aa9e38260f"
    )]
    KeepAlive {
        /// Lease id (hex)
        id: String,
        /// Renew once and exit
        #[arg(long)]
        once: bool,
    },
}

/// `endpoint ...`.
#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Each endpoint's status as etcdctl prints it; for a file: the path as endpoint, etch's
    /// version, the file size, the applied index as raft index, no member id, leader or term
    #[command(
        after_help = "Examples:\n  etch endpoint status\n  etch --endpoints 127.0.0.1:2379,127.0.0.1:22379 endpoint status -w table"
    )]
    Status,
    /// Check that each endpoint answers a linearizable read (needs --endpoints)
    #[command(
        after_help = "Examples:\n  etch --endpoints 127.0.0.1:2379 endpoint health\n  etch --endpoints 127.0.0.1:2379 endpoint health -w json"
    )]
    Health,
}

/// `member ...`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List the members with their ids, names and URLs
    #[command(after_help = "Example:\n  etch --endpoints 127.0.0.1:2379 member list -w table")]
    List,
}

/// `alarm ...`.
#[derive(Debug, Subcommand)]
pub enum AlarmCommand {
    /// List the raised alarms
    #[command(after_help = "Example:\n  etch --endpoints 127.0.0.1:2379 alarm list")]
    List,
    /// Disarm every raised alarm (after freeing space: compaction, defrag)
    #[command(after_help = "Example:\n  etch --endpoints 127.0.0.1:2379 alarm disarm")]
    Disarm,
}

/// `compaction`.
#[derive(Debug, Args)]
pub struct CompactionArgs {
    /// Discard history below this revision
    pub rev: i64,
    /// Accepted for etcdctl compatibility: etch always compacts physically
    #[arg(long)]
    pub physical: bool,
}

/// `snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Write a consistent copy of the store to FILE (which must not exist)
    #[command(after_help = "Example:\n  etch snapshot save backup.etch")]
    Save {
        /// Snapshot file to create
        file: PathBuf,
    },
    /// Copy a snapshot to a new store file and verify it completely
    #[command(after_help = "Example:\n  etch snapshot restore backup.etch --output restored.etch")]
    Restore {
        /// Snapshot file to read
        file: PathBuf,
        /// Store file to create (must not exist); `--data-dir` is accepted as etcdutl's name
        #[arg(long, visible_alias = "data-dir", value_name = "PATH")]
        output: PathBuf,
    },
    /// Show a snapshot's hash, revision, key count and size (the file is only read)
    #[command(after_help = "Example:\n  etch snapshot status backup.etch -w table")]
    Status {
        /// Snapshot file to inspect
        file: PathBuf,
    },
}

/// `lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Lock name (keys live under NAME/)
    pub name: String,
    /// TTL in seconds of the lease that holds the lock
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub ttl: i64,
    /// Command to run while holding the lock (after `--`)
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `elect`.
#[derive(Debug, Args)]
pub struct ElectArgs {
    /// Election name (candidates live under NAME/)
    pub name: String,
    /// The value to propose as leader
    pub proposal: Option<String>,
    /// Observe the leader instead of campaigning
    #[arg(short, long)]
    pub listen: bool,
    /// TTL in seconds of the lease that holds the candidacy
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub ttl: i64,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// JSON-lines file ('-' for stdin)
    pub file: PathBuf,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only keys with this prefix
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Export as of this past revision (0: the current one)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub rev: i64,
}

/// `completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
