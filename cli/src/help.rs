//! Long help texts of the command line: what each command does on a local file, and its
//! examples.

/// One-line description of etch.
pub const ABOUT: &str =
    "etcd's data model on a local file: etcdctl's commands for an etch store or an etcd server";

/// Description of etch in `etch --help`.
pub const LONG_ABOUT: &str = "\
etcd's data model on a local file: etcdctl's commands for an etch store.

etch opens the file named by --db (or $ETCH_DB), runs one command and closes it. The file is
locked while a command runs, so long-running commands (watch, lock, elect, lease keep-alive)
hold it exclusively: other etch processes get 'database is locked' until they exit.

With --endpoints (or $ETCH_ENDPOINTS, or $ETCDCTL_ENDPOINTS when no file is named) every command
talks etcd's v3 gRPC API to a server instead (`etch serve`, or etcd), as etcdctl does, with
etcdctl's connection flags (--dial-timeout, --command-timeout, --cacert, --cert, --key);
member list, endpoint health, alarm and check perf need a server.";

/// Examples, exit codes and the JSON conventions, after `etch --help`.
pub const AFTER_HELP: &str = "\
Examples:
  etch --db app.etch put greeting hello
  etch --endpoints 127.0.0.1:2379 get greeting -w json      # against `etch serve` or etcd
  etch --db app.etch get greeting -w json
  etch --db app.etch get svc/ --prefix -w table
  printf 'value(\"k\") = \"v\"\\n\\nput k v2\\n\\nget k\\n\\n' | etch txn

Exit codes (as etcdctl): 0 ok, 1 error, 2 `lease keep-alive --once` failed, 3 invalid input,
4 unknown option value, 5 interrupted while waiting (lock, elect) or watch canceled, 128 bad
arguments. Errors etcd also has print etcd's text, e.g.
'Error: etcdserver: mvcc: required revision has been compacted'.
JSON output (-w json) is etcdctl's: keys and values in base64, zero and empty fields left out,
lease ids as JSON numbers; on a file the header has only the revision (a file has no cluster,
member or raft term), a server's header has all four fields, as etcdctl prints them. --string-ids writes ids as decimal strings, which JavaScript and jq read exactly.";

/// Long help of `txn`.
pub const TXN_LONG: &str = "\
Run a transaction read from stdin in etcdctl's txn syntax: compares, a blank line, the requests
to run if every compare holds, a blank line, the requests to run otherwise (and a final blank
line or end of input).

Compares:  value(\"key\") = \"v\"   mod(\"key\") > \"5\"   version(\"key\") = \"0\"
           create(\"key\") < \"9\"   lease(\"key\") = \"694d77aa9e38260f\" (hex)
           (operators: = != < >; short forms val, m, ver, c)
Requests:  put KEY VALUE [--lease ID] [--prev-kv] ...   get KEY [RANGE_END] [--prefix] ...
           del KEY [RANGE_END] [--prefix] [--prev-kv]   (the flags of put, get and del)

Prints SUCCESS or FAILURE, then each response as the matching command prints it.";

/// Examples of `txn`.
pub const TXN_EXAMPLE: &str = "\
Example:
  etch txn <<'EOF'
  mod(\"key1\") > \"0\"

  put key1 \"overwrote-key1\"

  put key1 \"created-key1\"
  put key2 \"some extra key\"

  EOF";

/// Long help of `watch`.
pub const WATCH_LONG: &str = "\
Print each change to a key (or range) as etcdctl does: PUT or DELETE, then the key, then the
value. With --rev, history from that revision is replayed first.

On a file, locked by the process that opens it, no other process can write while `etch watch`
runs: watch is then mainly for replaying history (--rev) and for changes made by the watching
process itself, which are the deletions of expiring leases. --no-follow exits once the history
up to the current revision has been printed. Against a server (--endpoints) watch follows every
change live until interrupted, and -i reads `watch KEY [RANGE_END] [--prefix] [--rev N]
[--prev-kv]` lines from stdin, adding a watch per line.

After `--`, a command runs once per event with ETCD_WATCH_REVISION, ETCD_WATCH_KEY,
ETCD_WATCH_EVENT_TYPE and ETCD_WATCH_VALUE in its environment (as etcdctl, the key, value and
type are Go-quoted, e.g. \"PUT\"). The revision is the event's own revision on a file, the
response's revision against a server (as etcdctl).";

/// Examples of `watch`.
pub const WATCH_EXAMPLE: &str = "\
Examples:
  etch watch cfg/ --prefix --rev 1 --no-follow
  etch watch greeting --rev 1 --no-follow -- sh -c 'echo $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY'
  etch --endpoints 127.0.0.1:2379 watch svc/ --prefix --prev-kv
  printf 'watch a\nwatch b --prefix\n' | etch --endpoints 127.0.0.1:2379 watch -i";

/// Examples of `lease`.
pub const LEASE_EXAMPLE: &str = "\
Examples:
  etch lease grant 60                # lease 694d77aa9e38260f granted with TTL(60s)
  etch put --lease 694d77aa9e38260f svc/a up
  etch lease timetolive 694d77aa9e38260f --keys
  etch lease revoke 694d77aa9e38260f

On a file, a lease's TTL counts down only while some etch process has the file open; on every
open the engine gives each lease its full TTL again (as etcd does after a restart). Against a
server (--endpoints) it counts down on the server, as in etcd.";

/// Examples of `snapshot`.
pub const SNAPSHOT_EXAMPLE: &str = "\
Examples:
  etch snapshot save backup.etch
  etch snapshot status backup.etch -w table
  etch snapshot restore backup.etch --output restored.etch
  etch --endpoints 127.0.0.1:2379 snapshot save backup.etch   # a server's store";

/// Long help of `lock`.
pub const LOCK_LONG: &str = "\
Take the lock NAME (etcd's concurrency.Mutex recipe: keys under NAME/ with a lease), print the
lock key, and hold the lock until interrupted (Ctrl-C), then release it.

After `--`, run the command while holding the lock instead, with ETCD_LOCK_KEY and ETCD_LOCK_REV
in its environment; the lock is released when it exits and etch exits with its status.

On a file, etch keeps the file locked while it runs, so the command cannot open the same file;
the lock then guards work outside the file. Against a server (--endpoints) the lock is the
server's (its Lock service), held by a lease this process keeps alive, and the command may use
the server freely.";

/// Examples of `lock`.
pub const LOCK_EXAMPLE: &str = "\
Examples:
  etch lock nightly-report -- ./make-report.sh
  etch lock deploy --ttl 30";

/// Long help of `elect`.
pub const ELECT_LONG: &str = "\
Campaign in the election NAME with PROPOSAL (etcd's concurrency.Election recipe), print the
leader key and value once elected, and hold leadership until interrupted, then resign.
With --listen, print the current leader and every change instead.";

/// Examples of `elect`.
pub const ELECT_EXAMPLE: &str = "\
Examples:
  etch elect scheduler node-1
  etch elect scheduler --listen";

/// Long help of `import`.
pub const IMPORT_LONG: &str = "\
Load keys from JSON lines, one key per line, in the shape `etch export` writes:
{\"key\":\"<base64>\",\"value\":\"<base64>\", ...}. Other fields (revisions, version, lease) are
ignored: imported keys get fresh revisions and no lease. Lines are written in batches, each
atomically; a file is checked completely first, so a bad line leaves the store unchanged.
A progress bar is shown on a terminal.";

/// Long help of `export`.
pub const EXPORT_LONG: &str = "\
Write every key (or those under --prefix) as JSON lines to stdout, one key per line:
{\"key\":\"<base64>\",\"value\":\"<base64>\",\"create_revision\":N,\"mod_revision\":N,
\"version\":N,\"lease\":\"<id>\"}. The export is a consistent view at one revision.";

/// Long help of `cert`.
pub const CERT_LONG: &str = "\
Make a cluster CA and node certificates for mutual TLS (rcgen; no openssl needed).

`cert ca` writes DIR/ca.crt and DIR/ca.key. `cert node` signs DIR/NAME.crt and DIR/NAME.key with
that CA, for the node's --ip addresses and --dns names, valid both as a server and as a client
certificate: one pair serves for peer traffic (--peer-cert-file, --peer-key-file) and for client
TLS (--cert-file, --key-file); every member trusts DIR/ca.crt (--peer-trusted-ca-file,
--trusted-ca-file). Files are PEM, keys are created with mode 0600, and no existing file is
overwritten. Keep ca.key off the nodes: it signs new members.";

/// Examples of `cert`.
pub const CERT_EXAMPLE: &str = "\
Example (a 3-node cluster's certificates):
  etch cert ca --dir certs
  etch cert node --dir certs --name n1 --ip 10.0.0.1
  etch cert node --dir certs --name n2 --ip 10.0.0.2
  etch cert node --dir certs --name n3 --ip 10.0.0.3 --dns n3.example.internal";
