/*
 * etch.h: the C API of etch, etcd's data model as an embeddable single-file library.
 *
 * Build and link:  cc app.c $(pkg-config --cflags --libs etch)
 *            or:   cc app.c -Iffi/include target/release/libetch.a -lpthread -ldl -lm
 *
 * CONVENTIONS (they hold for every function below)
 *
 * Status codes. Every function returns an int status: ETCH_OK (0) on success, ETCH_NOT_FOUND
 * (a normal, non-fatal outcome: missing key or lease, exhausted iterator, poll timeout), or an
 * error code. etch_strerror(code) describes a code; etch_errmsg(db) gives the detailed message
 * of the calling thread's last failed call on db, and etch_errmsg(NULL) that of its last
 * failed call without a usable handle (etch_open(), functions on iterators, transactions,
 * results, watches). The only exceptions, which cannot fail, are etch_version(),
 * etch_strerror(), etch_errmsg() and the void release functions.
 *
 * Arguments. A pointer argument is either NULL or valid for what the function does with it:
 * readable for `len` bytes for (pointer, length) pairs, NUL-terminated for paths, writable for
 * out-parameters, a live object of the named type for handles. NULL where a value is required
 * gives ETCH_INVALID and never crashes; (NULL, 0) is an empty buffer. Keys and values are
 * arbitrary bytes (not NUL-terminated) and are copied: the caller keeps its buffers. Ranges
 * follow etcd: (key, range_end) with an empty range_end meaning the single key, range_end
 * "\0" (length 1) meaning every key >= key, and key "\0" with range_end "\0" meaning all
 * keys; etch_prefix_end() computes the range_end of a prefix.
 *
 * Results. Outputs go through out-parameters, written only as each function documents.
 * Object out-parameters (`T **`) are set to NULL first thing, before any argument is checked,
 * so after every failure (a NULL handle included) they hold NULL and passing them to their
 * release function is harmless. Optional outputs may be NULL.
 *
 * Keys. A key is 1 to max_key_size bytes (etch_options). An empty key is ETCH_INVALID and a
 * longer one ETCH_TOO_LARGE in every call that takes a single key, reads (etch_get(),
 * etch_wtxn_get()) as well as writes: no such key can exist.
 *
 * Revisions. No revision argument is ever negative: a negative one is ETCH_INVALID in every
 * call (etch_range_opts.revision and its min/max filters, etch_watch_opts.start_revision,
 * etch_compact(), etch_hash_kv()). 0 means "the current revision" for reads and hashes, "from
 * now" for watches, and "no bound" for filters; etch_compact(0) is ETCH_COMPACTED, as every
 * revision at or below the compact revision.
 *
 * Memory checkers. Once every object is released and every handle closed, the library holds
 * no memory for the caller's threads except the last handle-less error message of a thread
 * that had one (kept for etch_errmsg(NULL), freed when that thread exits), which valgrind
 * reports as "still reachable", not as a leak. So a program that opens, reads and closes runs
 * clean under `valgrind --leak-check=full --error-exitcode=1` with no suppression file
 * (ffi/tests checks exactly that).
 *
 * Backends. One etch_db type for three backends, taking the same calls: a local file
 * (etch_open(), etch_restore()), a member of a Raft cluster running in this process
 * (etch_open_member(): writes go through the cluster's leader, peers are reached over QUIC or
 * an in-process network), and a remote etch serve cluster or etcd server (etch_connect()).
 * Cluster and network failures have their own codes: ETCH_UNAVAILABLE (nothing was applied;
 * retrying is safe), ETCH_TIMEOUT (the outcome of a write is unknown), ETCH_NOT_MEMBER,
 * ETCH_CLUSTER, ETCH_BUSY (etcd's "too many requests": nothing was proposed; retry after a
 * back-off). The few calls a backend does not offer (maintenance of a local file on a
 * member or remote handle, etch_member_info() elsewhere) return ETCH_UNSUPPORTED.
 *
 * Ownership. Every object the library allocates for the caller has exactly one release
 * function, to be called exactly once:
 *   etch_db               etch_close()             from etch_open(), etch_restore(),
 *                                                  etch_open_member(), etch_connect()
 *   etch_kv (owned)       etch_kv_free()           from etch_get(), etch_put(), etch_wtxn_get()
 *   etch_iter             etch_iter_free()
 *   etch_txn              etch_txn_free()
 *   etch_txn_result       etch_txn_result_free()
 *   etch_watch            etch_watch_close()
 *   etch_watch_resp       etch_watch_resp_free()   from etch_watch_poll() only
 *   etch_leases           etch_leases_free()
 * An etch_wtxn is lent to an etch_write() callback for the duration of the call; never free it.
 * Anything reached through one of these objects (the etch_kv an iterator yields, the events of
 * a watch response) is borrowed from it and must not be freed. Release functions accept NULL.
 * Strings from etch_version() and etch_strerror() are static.
 *
 * Threads. An etch_db may be used by any number of threads at once (reads never wait for
 * writers; concurrent commits share one fsync), except etch_close(), which must be the last
 * call on it. Every other object is owned by one thread at a time: it may be moved between
 * threads but not used concurrently (an etch_txn_result may be read concurrently). Watch
 * callbacks run on a thread the library creates. No Rust panic ever crosses into C: a bug in
 * etch is reported as ETCH_INTERNAL.
 */


#ifndef ETCH_H
#define ETCH_H

/* Generated by cbindgen from ffi/src; do not edit. Regenerate with
   ETCH_BLESS=1 cargo test -p etch-ffi --test header */

#include <stddef.h>
#include <stdint.h>

/**
 * Major version of the etch library this header belongs to.
 */
#define ETCH_VERSION_MAJOR 0

/**
 * Minor version of the etch library this header belongs to.
 */
#define ETCH_VERSION_MINOR 1

/**
 * Patch version of the etch library this header belongs to.
 */
#define ETCH_VERSION_PATCH 0

/**
 * `etch_options.durability`: a commit returns after its WAL record is on stable storage
 * (fdatasync; concurrent commits share one sync). The default.
 */
#define ETCH_DURABILITY_IMMEDIATE 0

/**
 * `etch_options.durability`: a commit returns once its record is in the WAL's memory map;
 * the WAL is synced every `relaxed_sync_interval_ms` and by etch_sync(). A power cut may lose
 * the commits of the last interval; a process crash loses nothing.
 */
#define ETCH_DURABILITY_RELAXED 1

/**
 * `etch_options.auto_compaction_mode`: never compact automatically.
 */
#define ETCH_AUTO_COMPACTION_OFF 0

/**
 * `etch_options.auto_compaction_mode`: keep the history of the last
 * `auto_compaction_retention` revisions. The default (100000 revisions).
 */
#define ETCH_AUTO_COMPACTION_REVISIONS 1

/**
 * `etch_options.auto_compaction_mode`: keep the history of the last
 * `auto_compaction_retention` milliseconds.
 */
#define ETCH_AUTO_COMPACTION_PERIODIC 2

/**
 * Success.
 */
#define ETCH_OK 0

/**
 * Not an error: the key or lease does not exist, an iterator is exhausted, or a watch poll
 * timed out with nothing to report. Output parameters are left as documented per function.
 */
#define ETCH_NOT_FOUND 1

/**
 * The requested revision has been compacted away.
 */
#define ETCH_COMPACTED 2

/**
 * The requested revision is newer than the store's current revision.
 */
#define ETCH_FUTURE_REV 3

/**
 * The file is locked by another process, or already open in this one.
 */
#define ETCH_LOCKED 4

/**
 * The file or its WAL is damaged (etch_errmsg() names the page or offset).
 */
#define ETCH_CORRUPT 5

/**
 * An I/O error from the operating system.
 */
#define ETCH_IO 6

/**
 * The disk is full (ENOSPC or EDQUOT). Nothing acknowledged is lost; free space and reopen.
 */
#define ETCH_NOSPACE 7

/**
 * A bad argument: a NULL pointer where one is required, an empty key, an option out of range,
 * an unknown enum value, a key written twice in one transaction, a value or lease given
 * together with ignore_value / ignore_lease.
 */
#define ETCH_INVALID 8

/**
 * A key, a request or a transaction exceeds the configured limits (max_key_size,
 * max_request_bytes, max_txn_ops).
 */
#define ETCH_TOO_LARGE 9

/**
 * An optimistic transaction (etch_write()) kept conflicting with concurrent writers and gave
 * up after `etch_options.write_attempts` attempts.
 */
#define ETCH_CONFLICT 10

/**
 * A bug in etch (a Rust panic was caught at the boundary). The handle stays usable, but
 * please report it with etch_errmsg().
 */
#define ETCH_INTERNAL 11

/**
 * The file is not an etch file, or was written by a newer version of etch.
 */
#define ETCH_FORMAT 12

/**
 * The store's space quota is exceeded (etcd's NOSPACE alarm): writes that add data are
 * refused; reads, deletes, compaction and defrag still work.
 */
#define ETCH_QUOTA 13

/**
 * An earlier write or sync failed, so this handle refuses writes; reopen the file to recover
 * every acknowledged commit.
 */
#define ETCH_POISONED 14

/**
 * The store was closed (seen by watches that outlive etch_close()), or the watch has ended.
 */
#define ETCH_CLOSED 15

/**
 * The lease (or other object) to create already exists.
 */
#define ETCH_EXISTS 16

/**
 * The store was opened read-only: every write is refused.
 */
#define ETCH_READONLY 17

/**
 * The WAL is damaged in the middle: valid, acknowledged records follow the damage, so the
 * open refused to drop them and changed nothing. etch_errmsg(NULL) names the WAL offset, the
 * last good sequence number and how many records follow. Reopen with
 * `etch_options.repair_wal` set to keep a copy of the WAL and recover up to the damage
 * (etch_wal_repair() then reports it). Distinct from ETCH_CORRUPT, which no option repairs.
 */
#define ETCH_WAL_DAMAGED 18

/**
 * A cluster member or remote handle could not serve the call now: the cluster has no leader
 * this member can reach (an election is running, or a majority is down), or no endpoint of a
 * remote handle answered. Nothing was applied; retrying later is safe.
 */
#define ETCH_UNAVAILABLE 19

/**
 * No answer came within the request timeout (a member's `request_timeout_ms`, a remote
 * handle's `request_timeout_ms`), or a remote connection broke after the request was sent.
 * The outcome is **unknown**: a write may still be applied. Make writes idempotent, or read
 * before retrying.
 */
#define ETCH_TIMEOUT 20

/**
 * This cluster member is not, or no longer, in the cluster's membership (not added yet, or
 * removed): it serves no writes and no linearizable reads.
 */
#define ETCH_NOT_MEMBER 21

/**
 * A cluster or server failure not covered by another code: Raft refused a change or stopped
 * on this member, the peer port could not be bound, or a server answered with an error of its
 * own (etch_errmsg() has its text).
 */
#define ETCH_CLUSTER 22

/**
 * The call is not available on this kind of handle (e.g. etch_defrag() on a remote server,
 * etch_member_info() on a local file).
 */
#define ETCH_UNSUPPORTED 23

/**
 * The cluster is too busy to take the write now (etcd's `too many requests`): the leader's
 * Raft log has no safe room for it, or committed entries wait to be applied (more than
 * `max_apply_lag`, etcd's 5,000). Nothing was proposed or applied; retry after a back-off.
 */
#define ETCH_BUSY 24

/**
 * `etch_range_opts.sort_order`: key order (no sorting). The default.
 */
#define ETCH_SORT_NONE 0

/**
 * `etch_range_opts.sort_order`: ascending by sort_target.
 */
#define ETCH_SORT_ASCEND 1

/**
 * `etch_range_opts.sort_order`: descending by sort_target.
 */
#define ETCH_SORT_DESCEND 2

/**
 * `etch_range_opts.sort_target`: by key. The default.
 */
#define ETCH_SORT_KEY 0

/**
 * `etch_range_opts.sort_target`: by version.
 */
#define ETCH_SORT_VERSION 1

/**
 * `etch_range_opts.sort_target`: by create revision.
 */
#define ETCH_SORT_CREATE 2

/**
 * `etch_range_opts.sort_target`: by mod revision.
 */
#define ETCH_SORT_MOD 3

/**
 * `etch_range_opts.sort_target`: by value bytes.
 */
#define ETCH_SORT_VALUE 4

/**
 * Branch selector: the operations run when every compare holds.
 */
#define ETCH_TXN_THEN 0

/**
 * Branch selector: the operations run when some compare fails.
 */
#define ETCH_TXN_ELSE 1

/**
 * Compare target: the value bytes (a missing key never satisfies a value compare).
 */
#define ETCH_CMP_VALUE 0

/**
 * Compare target: the version (0 for a missing key: version == 0 means "does not exist").
 */
#define ETCH_CMP_VERSION 1

/**
 * Compare target: the create revision (0 for a missing key).
 */
#define ETCH_CMP_CREATE 2

/**
 * Compare target: the mod revision (0 for a missing key).
 */
#define ETCH_CMP_MOD 3

/**
 * Compare target: the lease id (0 for a missing key or no lease).
 */
#define ETCH_CMP_LEASE 4

/**
 * Compare relation: field == operand.
 */
#define ETCH_CMP_EQUAL 0

/**
 * Compare relation: field != operand.
 */
#define ETCH_CMP_NOT_EQUAL 1

/**
 * Compare relation: field < operand.
 */
#define ETCH_CMP_LESS 2

/**
 * Compare relation: field > operand.
 */
#define ETCH_CMP_GREATER 3

/**
 * Operation kind in a result: a put.
 */
#define ETCH_OP_PUT 0

/**
 * Operation kind in a result: a range read.
 */
#define ETCH_OP_RANGE 1

/**
 * Operation kind in a result: a delete-range.
 */
#define ETCH_OP_DELETE 2

/**
 * Operation kind in a result: a nested transaction.
 */
#define ETCH_OP_TXN 3

/**
 * Event kind: a put (creation or update).
 */
#define ETCH_EVENT_PUT 0

/**
 * Event kind: a deletion (kv holds the key, mod_revision is the deletion's revision, the other
 * fields are zero).
 */
#define ETCH_EVENT_DELETE 1

/**
 * An open store. Opaque; created by etch_open() or etch_restore() (a local file),
 * etch_open_member() (an in-process member of a cluster) or etch_connect() (a remote server),
 * destroyed by etch_close(). Every call takes any of the three, except the few a backend does
 * not offer (ETCH_UNSUPPORTED; each function's documentation names them).
 *
 * Thread safety: every function taking an `etch_db *` may be called from any number of
 * threads at once on the same handle (reads never wait for writers; concurrent writers share
 * one fsync through group commit), except etch_close(), which must be the last call on the
 * handle and must not run concurrently with any other call on it.
 */
typedef struct etch_db etch_db;

/**
 * The result of a read: key-values in order, plus the count and `more` of the range.
 * Opaque; created by etch_range(), etch_delete_range(), etch_lease_time_to_live() or
 * etch_txn_result_kvs(), released by etch_iter_free().
 *
 * An iterator owns a complete copy of its result (a consistent snapshot taken when it was
 * created), so it stays valid after later writes and even after etch_close() of its handle.
 * Thread safety: not for concurrent use; it may be moved to another thread.
 */
typedef struct etch_iter etch_iter;

/**
 * A transaction being built: compares, then the operations of the "then" branch (run if every
 * compare holds) and of the "else" branch. Opaque; created by etch_txn_new(), released by
 * etch_txn_free(). Building never touches the store; etch_txn_commit() may be called any
 * number of times on one builder. Thread safety: not for concurrent use; it may be moved
 * to another thread.
 */
typedef struct etch_txn etch_txn;

/**
 * The outcome of a committed transaction. Opaque; created by etch_txn_commit() or
 * etch_txn_result_nested(), released by etch_txn_result_free(). Owns its data (valid after
 * etch_close()). Thread safety: read-only, so it may be read from several threads at once.
 */
typedef struct etch_txn_result etch_txn_result;

/**
 * A watch. Opaque; created by etch_watch_open() (polling) or etch_watch_start() (callback),
 * released by etch_watch_close(). It keeps the store's data reachable, so it may outlive
 * etch_close() of its handle (then it reports ETCH_CLOSED). Thread safety: a polling watch is
 * not for concurrent use (one thread polls at a time; it may be moved between threads); a
 * callback watch is only closed.
 */
typedef struct etch_watch etch_watch;

/**
 * The transaction an etch_write() callback works with. Opaque; valid only during the callback
 * call that received it, and only on that thread. Not freed by the caller.
 */
typedef struct etch_wtxn etch_wtxn;

/**
 * How etch_open_member() starts a member.
 *
 * Fill it with `etch_member_config_init(&config, sizeof config)`, then set at least `id`,
 * `path` and one of `listen_peer` / `local_network`. The strings are read during the call
 * only.
 */
typedef struct etch_member_config {
  /**
   * Size in bytes of the caller's struct: set by etch_member_config_init(), never by hand.
   */
  size_t size;
  /**
   * This member's id: unique in the cluster, not 0.
   */
  uint64_t id;
  /**
   * The member's store file (created if missing). A member keeps its whole state in it;
   * reopening it rejoins the cluster.
   */
  const char *path;
  /**
   * Peers as a comma-separated list of `id=host:port` (the QUIC address each peer listens
   * on), or of bare ids on a local network; this member may be listed or not.
   */
  const char *peers;
  /**
   * `host:port` to listen on for peers (UDP, QUIC). NULL: use `local_network`.
   */
  const char *listen_peer;
  /**
   * The name of an in-process network: every member of this process opened with the same
   * name reaches the others directly. Used when `listen_peer` is NULL.
   */
  const char *local_network;
  /**
   * etcd's `initial-cluster-token`: QUIC peers with another token are refused. NULL:
   * "etch-cluster".
   */
  const char *cluster_token;
  /**
   * Non-zero: start a new cluster whose voters are this member and its `peers`, keeping
   * everything the file holds (a standalone store becomes the cluster's first state).
   * Ignored when the file already belongs to a cluster (it rejoins). Set it on one member
   * only; the others start with 0 and are reached by the first.
   */
  int initialize;
  /**
   * Leader heartbeat interval in milliseconds (default 100).
   */
  uint64_t heartbeat_ms;
  /**
   * Election timeout in milliseconds: a follower that hears no leader for between this and
   * twice this campaigns (default 1000).
   */
  uint64_t election_timeout_ms;
  /**
   * Longest wait for a write or linearizable read, in milliseconds (default 5000): past it
   * the call returns ETCH_TIMEOUT.
   */
  uint64_t request_timeout_ms;
  /**
   * Peer TLS (QUIC only; etcd's `--peer-cert-file`): this member's certificate (PEM).
   * NULL: connections are encrypted with a throwaway certificate and peers are not
   * authenticated.
   */
  const char *peer_cert_file;
  /**
   * `--peer-key-file`: the certificate's private key (PEM).
   */
  const char *peer_key_file;
  /**
   * `--peer-trusted-ca-file`: the CA every peer's certificate must chain to (PEM);
   * connecting peers are then required to present one.
   */
  const char *peer_trusted_ca_file;
} etch_member_config;

/**
 * Options for etch_open() and etch_restore(). Owned by the caller (stack or heap); etch only
 * reads it during the call.
 *
 * Always fill it with `etch_options_init(&opts, sizeof opts)` first, then change the fields
 * you care about. ABI evolution: later versions only ever append fields, and `size` records
 * how much of the struct the caller's header knew; the library reads only those `size` bytes
 * and gives every field beyond them its default. So a program built against this header keeps
 * working, unchanged and unrecompiled, with a later library.
 */
typedef struct etch_options {
  /**
   * Size in bytes of the caller's etch_options: set by etch_options_init(), never by hand.
   */
  size_t size;
  /**
   * ETCH_DURABILITY_IMMEDIATE (default) or ETCH_DURABILITY_RELAXED.
   */
  int durability;
  /**
   * How often the WAL is synced in relaxed mode, in milliseconds (default 100).
   */
  uint64_t relaxed_sync_interval_ms;
  /**
   * Page size of a new file: a power of two from 4096 to 65536 (default 4096). An existing
   * file keeps its page size.
   */
  uint32_t page_size;
  /**
   * Maximum key length in bytes (default 960; at most page_size / 4 - 64).
   */
  size_t max_key_size;
  /**
   * Maximum size of the keys and values of one write request (default 1.5 MiB).
   */
  size_t max_request_bytes;
  /**
   * Maximum number of operations in one transaction branch (default 128).
   */
  size_t max_txn_ops;
  /**
   * Largest size in bytes of the WAL file (default 64 MiB; 1 MiB to 1 TiB). The WAL is
   * created at 256 KiB (or this, if smaller) and doubles, zero-filled, as commits need room,
   * up to this size; a checkpoint empties it, and once it is this full commits checkpoint.
   * etch_close() removes it.
   */
  uint64_t wal_capacity;
  /**
   * A checkpoint runs at least this often while the WAL holds records, in milliseconds
   * (default 30000).
   */
  uint64_t checkpoint_interval_ms;
  /**
   * A checkpoint runs once the WAL is this fraction full (default 0.5; 0.05 to 0.95).
   */
  double checkpoint_wal_fraction;
  /**
   * Non-zero: tell the kernel reads are random (no read-ahead). Default 0.
   */
  int random_access;
  /**
   * Attempts of an optimistic transaction before ETCH_CONFLICT (default 16, at least 1).
   */
  uint32_t write_attempts;
  /**
   * ETCH_AUTO_COMPACTION_OFF, _REVISIONS (default) or _PERIODIC.
   */
  int auto_compaction_mode;
  /**
   * Revisions (mode _REVISIONS, default 100000) or milliseconds (mode _PERIODIC) of
   * history to keep; ignored when the mode is _OFF.
   */
  uint64_t auto_compaction_retention;
  /**
   * Space quota in bytes; past it writes that add data fail with ETCH_QUOTA. 0 means no
   * quota. Default 8 GiB.
   */
  uint64_t quota_bytes;
  /**
   * Non-zero: open read-only. The file must exist; it is opened O_RDONLY with a shared
   * lock, so any number of read-only handles (in any processes) may hold it at once, while
   * a writer and they exclude each other. Nothing is ever written (a file of mode 0444 or in
   * a read-only directory works): commits a killed writer left in the WAL are replayed into
   * memory only. Every write fails with ETCH_READONLY. The handle shows the state as of the
   * open, runs no background work (no lease expiry, compaction, checkpoint) and reports
   * `wal_size` 0. Cannot be combined with repair_wal (ETCH_INVALID). Default 0.
   */
  int read_only;
  /**
   * How long an open waits for the file lock while another handle holds it, in
   * milliseconds (SQLite's busy timeout); ETCH_LOCKED once it expires. Default 0: fail at
   * once.
   */
  uint64_t lock_timeout_ms;
  /**
   * Non-zero: if the WAL is damaged in the middle (the open would fail with
   * ETCH_WAL_DAMAGED), first copy it durably to `<file>-wal.damaged` (or `.damaged.N`),
   * then recover up to the damage, dropping the records after it; etch_wal_repair() reports
   * what was found and dropped. Default 0: such an open fails and changes nothing.
   */
  int repair_wal;
} etch_options;

/**
 * What etch_wal_repair() reports: the damage an open with `etch_options.repair_wal` found in
 * the WAL and repaired.
 */
typedef struct etch_wal_repair_report {
  /**
   * Byte offset in the WAL of the first frame that could not be read.
   */
  uint64_t offset;
  /**
   * Sequence number of the last record read intact: the store was recovered up to it.
   */
  uint64_t last_good_seq;
  /**
   * Valid records after the damage, all dropped by the repair.
   */
  uint64_t records_after;
  /**
   * Path of the kept copy of the damaged WAL (NUL-terminated), next to the store. Borrowed
   * from the handle: valid until etch_close(); do not free it.
   */
  const char *copy_path;
} etch_wal_repair_report;

/**
 * Options of a range read (etcd's RangeRequest). All-zero means the defaults, so
 * `etch_range_opts o = {0};` and etch_range_opts_init() are equivalent.
 */
typedef struct etch_range_opts {
  /**
   * Read at this revision; 0 for the current one, negative is ETCH_INVALID. Below the
   * compact revision: ETCH_COMPACTED; above the current one: ETCH_FUTURE_REV.
   */
  int64_t revision;
  /**
   * At most this many key-values (0: no limit); etch_iter_more() tells if some were left out.
   */
  int64_t limit;
  /**
   * Non-zero: return keys without values.
   */
  int keys_only;
  /**
   * Non-zero: return no key-values, only the count (etch_iter_count()).
   */
  int count_only;
  /**
   * ETCH_SORT_NONE, ETCH_SORT_ASCEND or ETCH_SORT_DESCEND.
   */
  int sort_order;
  /**
   * ETCH_SORT_KEY, _VERSION, _CREATE, _MOD or _VALUE.
   */
  int sort_target;
  /**
   * Only keys with mod_revision >= this (0: no bound).
   */
  int64_t min_mod_revision;
  /**
   * Only keys with mod_revision <= this (0: no bound).
   */
  int64_t max_mod_revision;
  /**
   * Only keys with create_revision >= this (0: no bound).
   */
  int64_t min_create_revision;
  /**
   * Only keys with create_revision <= this (0: no bound).
   */
  int64_t max_create_revision;
} etch_range_opts;

/**
 * A key with its value and metadata (etcd's mvccpb.KeyValue).
 *
 * `key`/`value` are never NULL (an empty value has `value_len` 0) and are not NUL-terminated.
 * Who owns the bytes depends on where the struct came from: one returned by etch_get() or
 * etch_put() is owned by the caller and released with etch_kv_free(); one reached through an
 * iterator or a watch response is borrowed from that object and valid until it is freed (or,
 * for iterators, until the next etch_iter_next()). Treat every field as read-only.
 */
typedef struct etch_kv {
  /**
   * The key bytes.
   */
  const uint8_t *key;
  /**
   * Length of the key.
   */
  size_t key_len;
  /**
   * The value bytes (empty for keys_only reads).
   */
  const uint8_t *value;
  /**
   * Length of the value.
   */
  size_t value_len;
  /**
   * Revision of the key's last creation.
   */
  int64_t create_revision;
  /**
   * Revision of the key's last modification.
   */
  int64_t mod_revision;
  /**
   * Modifications since creation (1 after creation).
   */
  int64_t version;
  /**
   * Attached lease id, 0 for none.
   */
  int64_t lease;
} etch_kv;

/**
 * Options of etch_put() and of puts in transactions (etcd's PutRequest). Zero-initialise it
 * (`etch_put_opts o = {0};`) for a plain put.
 */
typedef struct etch_put_opts {
  /**
   * Lease to attach to the key (0 for none); it must exist (else ETCH_NOT_FOUND).
   */
  int64_t lease;
  /**
   * Non-zero: keep the key's current value (the key must exist, else ETCH_NOT_FOUND; the
   * value passed must be empty, else ETCH_INVALID).
   */
  int ignore_value;
  /**
   * Non-zero: keep the key's current lease (the key must exist; `lease` must be 0).
   */
  int ignore_lease;
} etch_put_opts;

/**
 * A lease id with its granted TTL in seconds.
 */
typedef struct etch_lease {
  /**
   * The lease id.
   */
  int64_t id;
  /**
   * The TTL it was granted with, in seconds.
   */
  int64_t ttl;
} etch_lease;

/**
 * Every lease of a store (etch_lease_list()). Owned by the caller, released with
 * etch_leases_free(); `leases` is an array of `count` entries (NULL when count is 0).
 */
typedef struct etch_leases {
  /**
   * Number of leases.
   */
  size_t count;
  /**
   * The leases.
   */
  const struct etch_lease *leases;
} etch_leases;

/**
 * Store status (filled by etch_status()), as etcd's StatusResponse plus engine figures.
 */
typedef struct etch_store_status {
  /**
   * Current revision.
   */
  int64_t revision;
  /**
   * Compact revision (history below it is gone).
   */
  int64_t compact_revision;
  /**
   * Number of live keys.
   */
  uint64_t key_count;
  /**
   * Size of the main file in bytes.
   */
  uint64_t file_size;
  /**
   * Bytes of the main file holding live pages.
   */
  uint64_t size_in_use;
  /**
   * Bytes of WAL records not yet checkpointed (0 right after etch_checkpoint()).
   */
  uint64_t wal_size;
  /**
   * Page size in bytes.
   */
  uint32_t page_size;
  /**
   * Last applied WAL sequence number.
   */
  uint64_t applied_index;
} etch_store_status;

/**
 * What etch_check() examined.
 */
typedef struct etch_check_report {
  /**
   * Tree pages visited (all verified).
   */
  uint64_t tree_pages;
  /**
   * Overflow pages visited.
   */
  uint64_t overflow_pages;
  /**
   * Pages not in use (free or waiting for reuse).
   */
  uint64_t free_pages;
  /**
   * Live keys.
   */
  uint64_t keys;
  /**
   * History records (superseded versions and tombstones).
   */
  uint64_t history_records;
  /**
   * Change-log records.
   */
  uint64_t log_records;
} etch_check_report;

/**
 * Options for etch_connect(). Owned by the caller; etch only reads it during the call.
 *
 * Always fill it with `etch_connect_options_init(&opts, sizeof opts)` first, then change the
 * fields you care about (ABI evolution as etch_options: later versions only append fields).
 * The defaults are etcdctl's: a 2 s dial timeout, 5 s per request, 2 retries, plaintext
 * unless an endpoint is `https://`.
 */
typedef struct etch_connect_options {
  /**
   * Size in bytes of the caller's struct: set by etch_connect_options_init(), never by hand.
   */
  size_t size;
  /**
   * Longest wait for one connection to one endpoint, in milliseconds (default 2000).
   */
  uint64_t dial_timeout_ms;
  /**
   * Longest wait for one request, retries and failover included, in milliseconds (default
   * 5000). A call that runs out of it returns ETCH_TIMEOUT.
   */
  uint64_t request_timeout_ms;
  /**
   * Extra rounds over the endpoints after a first round failed (default 2).
   */
  uint32_t retries;
  /**
   * CA certificate file (PEM) that verifies the servers: turns TLS on. NULL: plaintext,
   * unless an endpoint is `https://`.
   */
  const char *ca_file;
  /**
   * Client certificate file (PEM), for servers that ask for one; needs `key_file`.
   */
  const char *cert_file;
  /**
   * Private key file (PEM) of `cert_file`.
   */
  const char *key_file;
} etch_connect_options;

/**
 * Summary of one operation's result (filled by etch_txn_result_op()).
 */
typedef struct etch_txn_op_result {
  /**
   * ETCH_OP_PUT, ETCH_OP_RANGE, ETCH_OP_DELETE or ETCH_OP_TXN.
   */
  int kind;
  /**
   * Store revision after the operation (the header revision of its response).
   */
  int64_t revision;
  /**
   * RANGE: keys matched (ignoring limit); DELETE: keys deleted; PUT: 1 if a previous
   * key-value was returned, else 0; TXN: number of operations in the nested result.
   */
  int64_t count;
  /**
   * RANGE: 1 if limit cut the result short. Otherwise 0.
   */
  int more;
  /**
   * TXN: 1 if the nested transaction's compares held. Otherwise 0.
   */
  int succeeded;
} etch_txn_op_result;

/**
 * Options of a watch (etcd's WatchCreateRequest). All-zero means the defaults.
 */
typedef struct etch_watch_opts {
  /**
   * First revision to deliver (history is replayed from it); 0 for "changes after now";
   * negative is ETCH_INVALID. A replay ends with a response that has caught_up = 1.
   */
  int64_t start_revision;
  /**
   * Non-zero: include each event's previous key-value.
   */
  int prev_kv;
  /**
   * Non-zero: leave out puts.
   */
  int no_put;
  /**
   * Non-zero: leave out deletes.
   */
  int no_delete;
  /**
   * If non-zero, send a response with no events (a progress notification) after this many
   * milliseconds without one.
   */
  uint64_t progress_notify_ms;
} etch_watch_opts;

/**
 * One change (etcd's mvccpb.Event). Borrowed from its etch_watch_resp.
 */
typedef struct etch_event {
  /**
   * ETCH_EVENT_PUT or ETCH_EVENT_DELETE.
   */
  int kind;
  /**
   * The key after the change.
   */
  struct etch_kv kv;
  /**
   * The key before the change if prev_kv was requested and it existed, else NULL.
   */
  const struct etch_kv *prev_kv;
} etch_event;

/**
 * One watch response. From etch_watch_poll() it is owned by the caller and released with
 * etch_watch_resp_free(); passed to a callback it is borrowed for the duration of the call
 * only. Every pointer inside (events, their key-values) lives exactly as long as the response.
 */
typedef struct etch_watch_resp {
  /**
   * ETCH_OK for a normal response. For callbacks only: non-zero in the final call made when
   * the watch stops on an error (ETCH_CLOSED after etch_close() of the store, ETCH_IO, ...);
   * no call follows it.
   */
  int status;
  /**
   * Store revision when the response was made: every matching change up to it has been
   * delivered.
   */
  int64_t header_revision;
  /**
   * 1 if the watch was cancelled because it needed compacted history (no more responses
   * follow), else 0.
   */
  int canceled;
  /**
   * The compact revision, when canceled.
   */
  int64_t compact_revision;
  /**
   * Number of events (0 for a progress notification or a cancellation).
   */
  size_t event_count;
  /**
   * The events in revision order (NULL when event_count is 0). Events of one transaction
   * are always in the same response.
   */
  const struct etch_event *events;
  /**
   * 1 in the one response that completes the replay of a watch started at a past revision
   * (etch_watch_opts.start_revision): every matching change up to the revision current when
   * the watch was created has then been delivered, and what follows is live. It may carry
   * the last replayed events or none. Always 0 for a watch from now (nothing to replay).
   */
  int caught_up;
} etch_watch_resp;

/**
 * A callback receiving watch responses on a library thread. `ctx` is the pointer given to
 * etch_watch_start(); `resp` is valid only during the call. It must not call
 * etch_watch_poll() on its own watch; it may call etch_watch_close() on it (the watch then
 * stops after the callback returns) and any function on the etch_db.
 */
typedef void (*etch_watch_cb)(void *ctx, const struct etch_watch_resp *resp);

/**
 * An etch_write() callback: reads and writes through `tx`, then returns ETCH_OK to commit or
 * any other value to abort without writing (etch_write() then returns that value). It may run
 * several times (once per attempt), so it must not have side effects beyond `tx`: reset any
 * state it builds at the start of each call.
 */
typedef int (*etch_write_fn)(struct etch_wtxn *tx, void *ctx);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The version of the linked library as a static NUL-terminated string ("0.1.0"); compare it
 * with the ETCH_VERSION_* macros to detect a header/library mismatch. Never NULL; do not
 * free it. Thread-safe.
 */
const char *etch_version(void);

/**
 * Fills `*config` with the defaults (no id or path yet, a 100 ms heartbeat, a 1 s election
 * timeout, 5 s per request, token "etch-cluster", no peer TLS files). `size` must be
 * `sizeof *config`. Returns ETCH_OK, or ETCH_INVALID for a NULL `config` or an unknown size.
 * Thread-safe.
 */
int etch_member_config_init(struct etch_member_config *config, size_t size);

/**
 * Opens the store file `config->path` as a member of a Raft cluster that runs in this
 * process, and gives a handle taking the same calls as one from etch_open(): writes and
 * linearizable reads go through the cluster's leader (from any member), watches are served
 * from what this member has applied.
 *
 * `opts` (NULL for the defaults) are the store's options, as for etch_open(). On success `*db` receives a handle owned by the caller;
 * etch_close() shuts the member down (its file closed cleanly, its peers see it gone). On
 * failure `*db` is NULL and etch_errmsg(NULL) says why.
 *
 * Until a leader is elected (or while this member cannot reach a majority) writes and
 * linearizable reads wait up to `request_timeout_ms` and then return ETCH_UNAVAILABLE; a
 * write whose answer does not come in time returns ETCH_TIMEOUT (its outcome is unknown). A
 * member removed from the cluster answers ETCH_NOT_MEMBER. etch_snapshot(), etch_defrag(),
 * etch_status(), etch_check(), etch_sync(), etch_checkpoint() and etch_wal_repair() return
 * ETCH_UNSUPPORTED on a member.
 *
 * Returns ETCH_OK, ETCH_INVALID (NULL or bad config, bad options), ETCH_LOCKED (the file is
 * open elsewhere), ETCH_CLUSTER (the peer port cannot be bound, or Raft refused to start),
 * ETCH_FORMAT, ETCH_CORRUPT, ETCH_IO. Thread-safe.
 */
int etch_open_member(const struct etch_member_config *config,
                     const struct etch_options *opts,
                     struct etch_db **db);

/**
 * For a handle from etch_open_member(): `id` (optional) receives this member's id and
 * `leader` (optional) the id of the leader it knows, 0 while there is none (an election is
 * running, or it cannot reach a majority). Returns ETCH_OK, ETCH_INVALID (NULL db) or
 * ETCH_UNSUPPORTED (a local or remote handle). Thread-safe.
 */
int etch_member_info(const struct etch_db *db, uint64_t *id, uint64_t *leader);

/**
 * Fills `*opts` with the defaults (immediate durability, 4 KiB pages, etcd's limits of 1.5 MiB
 * per request and 128 operations per transaction, a WAL of at most 64 MiB, auto-compaction keeping
 * 100000 revisions, an 8 GiB quota).
 *
 * 100000 revisions, an 8 GiB quota, a writable open that fails at once on a locked file and
 * refuses a damaged WAL). `size` must be `sizeof *opts` (the caller's view of the struct): the
 * library writes only that many bytes and records it in `opts->size`.
 *
 * Returns ETCH_OK, or ETCH_INVALID if `opts` is NULL or `size` is not a size of etch_options
 * this library knows (smaller than this version's, or from a newer header). Thread-safe.
 */
int etch_options_init(struct etch_options *opts, size_t size);

/**
 * Opens the store at `path` (a NUL-terminated file name), creating it if it does not exist.
 *
 * `opts` may be NULL for the defaults. On success `*db` receives a new handle, owned by the
 * caller and released with etch_close(); on failure `*db` is set to NULL and
 * etch_errmsg(NULL) describes the failure on this thread.
 *
 * Returns ETCH_OK, ETCH_INVALID (NULL path or db, bad option, `read_only` with `repair_wal`),
 * ETCH_LOCKED (held elsewhere, including in this process, past `lock_timeout_ms`),
 * ETCH_FORMAT (not an etch file, or a newer format), ETCH_CORRUPT, ETCH_WAL_DAMAGED (see
 * `repair_wal`), ETCH_IO (with `read_only`: also a missing file) or ETCH_NOSPACE. Thread-safe.
 */
int etch_open(const char *path, const struct etch_options *opts, struct etch_db **db);

/**
 * Restores a snapshot file written by etch_snapshot(): copies `snapshot_path` to
 * `output_path` (which must not exist), verifies the copy completely, and opens it.
 *
 * `opts` may be NULL for the defaults. On success `*db` receives the open handle (release it
 * with etch_close()); on failure `*db` is NULL, the output file is removed, and
 * etch_errmsg(NULL) describes the failure. The snapshot file is only read.
 *
 * Returns ETCH_OK, ETCH_INVALID, ETCH_FORMAT, ETCH_CORRUPT, ETCH_IO (including "output
 * exists") or ETCH_NOSPACE. Thread-safe.
 */
int etch_restore(const char *snapshot_path,
                 const char *output_path,
                 const struct etch_options *opts,
                 struct etch_db **db);

/**
 * Closes the handle: checkpoints (the WAL is folded into the main file and removed, leaving
 * one file), releases the file lock and frees the handle, even when it reports an error. A
 * cluster member is shut down first (its peers then elect a leader without it); a remote
 * handle closes its connections.
 *
 * Must be the last call on `db`, with no other call on it running. Objects created from the
 * handle stay valid and must still be freed: iterators, key-values and transaction results
 * own their data; watches report ETCH_CLOSED from then on. A NULL `db` is a no-op returning
 * ETCH_OK. Returns ETCH_OK, or ETCH_IO / ETCH_NOSPACE / ETCH_POISONED if the final checkpoint
 * failed (every acknowledged commit is still recovered by the next open); the message is
 * then available from etch_errmsg(NULL), since the handle is gone.
 */
int etch_close(struct etch_db *db);

/**
 * If the open that made `db` repaired a damaged WAL (`etch_options.repair_wal`), fills
 * `*report` with what it found and dropped and returns ETCH_OK; otherwise returns
 * ETCH_NOT_FOUND and leaves `*report` unwritten. ETCH_INVALID for a NULL argument,
 * ETCH_UNSUPPORTED on a member or remote handle.
 * `report->copy_path` is borrowed from the handle (valid until etch_close()). Thread-safe.
 */
int etch_wal_repair(const struct etch_db *db, struct etch_wal_repair_report *report);

/**
 * `*read_only` receives 1 if `db` was opened with `etch_options.read_only`, else 0 (always 0
 * for a member or remote handle).
 * ETCH_OK, or ETCH_INVALID for a NULL argument. Thread-safe.
 */
int etch_is_read_only(const struct etch_db *db, int *read_only);

/**
 * The message of the calling thread's most recent failed call on `db` (a NUL-terminated
 * English string), or "no error" if it has none. With `db` NULL: the calling thread's most
 * recent failure among calls that had no usable handle (etch_open(), etch_restore(),
 * etch_close(), calls passing a NULL db, and the functions taking an iterator, transaction,
 * result, watch or etch_wtxn instead of a handle).
 *
 * Messages are kept per thread, so threads sharing a handle never see or clobber each other's
 * messages. Calls that succeed leave it unchanged, like errno; ETCH_NOT_FOUND results are
 * recorded like failures. The string is owned by the library: valid until the same thread's
 * next call on the same handle (or, for NULL, its next handle-less call),
 * or until etch_close(db). Never NULL.
 */
const char *etch_errmsg(const struct etch_db *db);

/**
 * A static, NUL-terminated English description of a status code ("unknown status code" for
 * codes etch does not define). Never NULL. The string is owned by the library and lives for
 * the whole process: do not free it. Safe to call from any thread at any time.
 */
const char *etch_strerror(int code);

/**
 * Fills `*opts` with the defaults (all zero: current revision, no limit, key order).
 * Returns ETCH_OK, or ETCH_INVALID if `opts` is NULL. Thread-safe.
 */
int etch_range_opts_init(struct etch_range_opts *opts);

/**
 * Reads the keys of a range, at the current or an older revision, into an iterator.
 *
 * The range is etcd's `(key, range_end)` pair: `range_end` NULL/empty for the single key
 * `key`; `"\0"` (length 1) for every key >= `key`; key `"\0"` with range_end `"\0"` for every
 * key; otherwise `[key, range_end)` (etch_prefix_end() computes the end of a prefix). `opts`
 * may be NULL for the defaults. On ETCH_OK `*iter` receives an iterator owned by the caller
 * (release it with etch_iter_free()); on failure `*iter` is NULL. An empty result is ETCH_OK
 * with an iterator that yields nothing.
 *
 * Returns ETCH_OK, ETCH_INVALID (NULL arguments, empty key, bad options), ETCH_COMPACTED,
 * ETCH_FUTURE_REV. Never waits for writers;
 * may run concurrently with any call on the handle except etch_close().
 */
int etch_range(const struct etch_db *db,
               const uint8_t *key,
               size_t key_len,
               const uint8_t *range_end,
               size_t range_end_len,
               const struct etch_range_opts *opts,
               struct etch_iter **iter);

/**
 * Advances the iterator: on ETCH_OK `*kv` points to the next key-value, borrowed from the
 * iterator and valid until the next etch_iter_next() or etch_iter_free() on it (copy what you
 * keep). Returns ETCH_NOT_FOUND (with `*kv` NULL) when the iterator is exhausted, and
 * ETCH_INVALID for NULL arguments.
 */
int etch_iter_next(struct etch_iter *iter, const struct etch_kv **kv);

/**
 * The number of key-values the iterator holds in all (not just the ones left). ETCH_OK or
 * ETCH_INVALID.
 */
int etch_iter_len(const struct etch_iter *iter, size_t *len);

/**
 * The number of keys that matched the range and filters, ignoring `limit` (etcd's count);
 * the only result of a count_only read. For deleted key-values and lease keys, the number
 * of key-values. ETCH_OK or ETCH_INVALID.
 */
int etch_iter_count(const struct etch_iter *iter, int64_t *count);

/**
 * `*more` receives 1 if `limit` cut the result short, else 0. ETCH_OK or ETCH_INVALID.
 */
int etch_iter_more(const struct etch_iter *iter, int *more);

/**
 * `*revision` receives the store revision the read saw (the current revision, even for a read
 * at an older one, as etcd's response header). ETCH_OK or ETCH_INVALID.
 */
int etch_iter_revision(const struct etch_iter *iter, int64_t *revision);

/**
 * Releases an iterator and every key-value borrowed from it (exactly once). NULL is a no-op.
 */
void etch_iter_free(struct etch_iter *iter);

/**
 * Releases a key-value returned by etch_get() or etch_put() (exactly once). NULL is a no-op.
 * Never pass a key-value borrowed from an iterator or a watch response.
 */
void etch_kv_free(struct etch_kv *kv);

/**
 * Puts `key = value` atomically at a new revision.
 *
 * `opts` may be NULL (a plain put). `revision` (optional) receives the store's revision after
 * the write. If `prev_kv` is non-NULL it receives the key's previous key-value, owned by the
 * caller (free it with etch_kv_free()), or NULL if the key did not exist. Key and value bytes
 * are copied; the caller keeps ownership of its buffers.
 *
 * Returns ETCH_OK, ETCH_INVALID (empty key, NULL with non-zero length, ignore_* misuse),
 * ETCH_NOT_FOUND (lease does not exist, or ignore_* on a missing key), ETCH_TOO_LARGE,
 * ETCH_QUOTA, ETCH_IO, ETCH_NOSPACE, ETCH_POISONED. May run concurrently with any call on
 * the same handle except etch_close().
 */
int etch_put(const struct etch_db *db,
             const uint8_t *key,
             size_t key_len,
             const uint8_t *value,
             size_t value_len,
             const struct etch_put_opts *opts,
             int64_t *revision,
             struct etch_kv **prev_kv);

/**
 * Reads the current value and metadata of `key`.
 *
 * On ETCH_OK `*kv` receives a key-value owned by the caller: release it with etch_kv_free().
 * If the key does not exist, returns ETCH_NOT_FOUND and sets `*kv` to NULL. To read at an
 * older revision use etch_range(). Returns ETCH_INVALID for a NULL/empty key or NULL `kv`,
 * ETCH_TOO_LARGE for a key longer than max_key_size (as etch_put(): no such key can exist).
 * Never waits for writers; may run concurrently with any call on the handle except
 * etch_close().
 */
int etch_get(const struct etch_db *db, const uint8_t *key, size_t key_len, struct etch_kv **kv);

/**
 * Deletes every key of a range at one revision.
 *
 * The range is etcd's `(key, range_end)` pair: `range_end` NULL/empty for the single key
 * `key`; `"\0"` (length 1) for every key >= `key`; otherwise the keys in `[key, range_end)`
 * (use etch_prefix_end() for a prefix). `deleted` (optional) receives the number of keys
 * deleted, `revision` (optional) the store's revision afterwards (unchanged if nothing was
 * deleted). If `prev_kvs` is non-NULL it receives an iterator over the deleted key-values,
 * owned by the caller (free with etch_iter_free()).
 *
 * Returns ETCH_OK (also when nothing matched), ETCH_INVALID, ETCH_TOO_LARGE, ETCH_IO,
 * ETCH_NOSPACE, ETCH_POISONED. May run concurrently with any call except etch_close().
 */
int etch_delete_range(const struct etch_db *db,
                      const uint8_t *key,
                      size_t key_len,
                      const uint8_t *range_end,
                      size_t range_end_len,
                      int64_t *deleted,
                      int64_t *revision,
                      struct etch_iter **prev_kvs);

/**
 * Computes the `range_end` that makes `(prefix, range_end)` mean "every key starting with
 * prefix" (etcd's GetPrefixRangeEnd): the prefix with its last byte incremented after
 * dropping trailing 0xff bytes, or `"\0"` if nothing is left.
 *
 * `out` is a caller-owned buffer of `out_cap` bytes; it needs `max(prefix_len, 1)` bytes.
 * `out_len` receives the length written. For every key, use etcd's convention instead: key
 * `"\0"` with range_end `"\0"` (both length 1). Returns ETCH_OK,
 * or ETCH_INVALID (NULL pointers, `out_cap` too small). Thread-safe; no allocation.
 */
int etch_prefix_end(const uint8_t *prefix,
                    size_t prefix_len,
                    uint8_t *out,
                    size_t out_cap,
                    size_t *out_len);

/**
 * Grants a lease of `ttl` seconds (1 to 9000000000). `id` 0 lets etch pick a fresh id;
 * otherwise that id is used (ETCH_EXISTS if taken). `granted_id` (optional) receives the id.
 * Keys put with the lease are deleted, at one revision, when it is revoked or expires without
 * keep-alive (expiry runs on the store's background thread).
 *
 * Returns ETCH_OK, ETCH_INVALID (ttl out of range, negative id), ETCH_EXISTS, ETCH_IO,
 * ETCH_NOSPACE, ETCH_QUOTA, ETCH_POISONED. May run concurrently with any call on the handle
 * except etch_close().
 */
int etch_lease_grant(const struct etch_db *db, int64_t ttl, int64_t id, int64_t *granted_id);

/**
 * Revokes lease `id`: its keys are deleted at one revision and watchers see the deletes.
 * `revision` (optional) receives the store revision afterwards. Returns ETCH_OK,
 * ETCH_NOT_FOUND (no such lease), ETCH_IO, ETCH_NOSPACE, ETCH_POISONED. Concurrency as
 * etch_lease_grant().
 */
int etch_lease_revoke(const struct etch_db *db, int64_t id, int64_t *revision);

/**
 * Renews lease `id` for its full TTL; `ttl` (optional) receives that TTL in seconds. Returns
 * ETCH_OK or ETCH_NOT_FOUND (no such lease: revoked, expired or never granted). Concurrency
 * as etch_lease_grant().
 */
int etch_lease_keep_alive(const struct etch_db *db, int64_t id, int64_t *ttl);

/**
 * Reports lease `id`: `ttl` (optional) receives the seconds left before it expires (rounded
 * up), `granted_ttl` (optional) the TTL it was granted with. If `keys` is non-NULL and
 * `with_keys` is non-zero, `*keys` receives an iterator over its attached keys (key-values
 * with only the key set), owned by the caller (etch_iter_free()); otherwise, if non-NULL, it
 * is set to NULL. Returns ETCH_OK or ETCH_NOT_FOUND. Concurrency as etch_lease_grant().
 */
int etch_lease_time_to_live(const struct etch_db *db,
                            int64_t id,
                            int64_t *ttl,
                            int64_t *granted_ttl,
                            int with_keys,
                            struct etch_iter **keys);

/**
 * Lists every lease. On ETCH_OK `*list` receives the list, owned by the caller
 * (etch_leases_free()); on failure it is NULL. Returns ETCH_OK or ETCH_INVALID.
 * Concurrency as etch_lease_grant().
 */
int etch_lease_list(const struct etch_db *db, struct etch_leases **list);

/**
 * Releases a list returned by etch_lease_list() (exactly once). NULL is a no-op.
 */
void etch_leases_free(struct etch_leases *list);

/**
 * `*revision` receives the current revision (a new store is at 1). ETCH_OK or ETCH_INVALID.
 * May run concurrently with any call on the handle except etch_close().
 */
int etch_revision(const struct etch_db *db, int64_t *revision);

/**
 * Compacts history: afterwards reads below `revision` fail with ETCH_COMPACTED, and every
 * version superseded at or before it is gone (each key keeps its value as of `revision`). The
 * space is reused for new pages; etch_defrag() shrinks the file. `current` (optional)
 * receives the store revision at the compaction. Returns ETCH_OK, ETCH_INVALID (`revision`
 * negative), ETCH_COMPACTED (already compacted at or past `revision`, 0 included),
 * ETCH_FUTURE_REV, ETCH_IO, ETCH_NOSPACE, ETCH_POISONED.
 * May run concurrently with any call on the handle except etch_close().
 */
int etch_compact(const struct etch_db *db, int64_t revision, int64_t *current);

/**
 * Writes a consistent, compact single-file copy of the store as it is now to `path` (a
 * NUL-terminated file name that must not exist), while writers go on. Restore it with
 * etch_restore() (or simply open it). `revision` and `size` (both optional) receive the
 * revision copied and the file's size in bytes. Returns ETCH_OK, ETCH_INVALID, ETCH_IO (for
 * instance, the file exists), ETCH_NOSPACE. May run concurrently with any call except
 * etch_close().
 */
int etch_snapshot(const struct etch_db *db, const char *path, int64_t *revision, uint64_t *size);

/**
 * Rewrites the store compactly into a new file that atomically replaces the old one (etcd's
 * defrag). Writers wait while it runs; readers go on. `before` and `after` (both optional)
 * receive the file size in bytes. Returns ETCH_OK, ETCH_IO, ETCH_NOSPACE, ETCH_LOCKED,
 * ETCH_POISONED. May run concurrently with any call except etch_close().
 */
int etch_defrag(const struct etch_db *db, uint64_t *before, uint64_t *after);

/**
 * Fills the caller's `*status` with the store's figures. Returns ETCH_OK, ETCH_INVALID or
 * ETCH_IO. May run concurrently with any call except etch_close().
 */
int etch_status(const struct etch_db *db, struct etch_store_status *status);

/**
 * Integrity check: walks every reachable page, verifying checksums, key order, tree shape,
 * record encoding and that every page is accounted for exactly once. `report` (optional)
 * receives what was examined. Blocks writers while it runs. Returns ETCH_OK, ETCH_CORRUPT
 * (the message names the page and what failed) or ETCH_IO. May run concurrently with any call
 * except etch_close().
 */
int etch_check(const struct etch_db *db, struct etch_check_report *report);

/**
 * `*hash` receives a CRC-32 of the keyspace as of `revision` (0 for the current one): every
 * key with its value and metadata, in key order (etcd's HashKV, for comparing copies).
 * Returns ETCH_OK, ETCH_INVALID (NULL hash, negative revision), ETCH_COMPACTED,
 * ETCH_FUTURE_REV. May run concurrently with
 * any call except etch_close().
 */
int etch_hash_kv(const struct etch_db *db, int64_t revision, uint32_t *hash);

/**
 * Makes every commit so far durable (useful with ETCH_DURABILITY_RELAXED). Returns ETCH_OK,
 * ETCH_IO, ETCH_NOSPACE or ETCH_POISONED. May run concurrently with any call except
 * etch_close().
 */
int etch_sync(const struct etch_db *db);

/**
 * Runs a checkpoint now: the main file then holds every commit and the WAL is empty, as
 * etch_status() shows at once (wal_size 0). Returns
 * ETCH_OK, ETCH_IO, ETCH_NOSPACE or ETCH_POISONED. May run concurrently with any call except
 * etch_close().
 */
int etch_checkpoint(const struct etch_db *db);

/**
 * Fills `*opts` with the defaults (etcdctl's: 2 s dial timeout, 5 s per request, 2 retries,
 * no TLS files). `size` must be `sizeof *opts`. Returns ETCH_OK, or ETCH_INVALID for a NULL
 * `opts` or a size this library does not know. Thread-safe.
 */
int etch_connect_options_init(struct etch_connect_options *opts, size_t size);

/**
 * Connects to a remote `etch serve` cluster or etcd server: the handle it gives takes the same
 * calls as one from etch_open(), sent over etcd's v3 API.
 *
 * `endpoints` is a NUL-terminated, comma-separated list of `host:port`, `http://host:port`
 * or `https://host:port` (etcdctl's `--endpoints`); requests are balanced over them and fail
 * over when one is unreachable. `opts` may be NULL for the defaults. Nothing is sent yet: an
 * unreachable server shows at the first call (ETCH_UNAVAILABLE). On success `*db` receives a
 * handle owned by the caller (etch_close() releases it); on failure `*db` is NULL and
 * etch_errmsg(NULL) says why.
 *
 * The calls a remote server does not offer through this API (etch_snapshot(), etch_defrag(),
 * etch_status(), etch_check(), etch_sync(), etch_checkpoint(), etch_write(),
 * etch_wal_repair(), etch_member_info()) return ETCH_UNSUPPORTED. Network failures are
 * ETCH_UNAVAILABLE (nothing was applied; retrying is safe) or ETCH_TIMEOUT (the outcome of a
 * write is unknown). Returns ETCH_OK or ETCH_INVALID (NULL or empty endpoints, a malformed
 * endpoint, bad options, unreadable TLS files). Thread-safe.
 */
int etch_connect(const char *endpoints,
                 const struct etch_connect_options *opts,
                 struct etch_db **db);

/**
 * Creates an empty transaction builder (no compares: the "then" branch runs). On ETCH_OK
 * `*txn` receives it, owned by the caller (etch_txn_free()). ETCH_INVALID if `txn` is NULL.
 */
int etch_txn_new(struct etch_txn **txn);

/**
 * Releases a transaction builder (exactly once). NULL is a no-op.
 */
void etch_txn_free(struct etch_txn *txn);

/**
 * Adds a compare: the field `target` of the key `(key, range_end)` (of every key of the
 * range, when range_end is non-empty) must relate to the operand by `op`.
 *
 * The operand is `value`/`value_len` for ETCH_CMP_VALUE and `number` for the other targets
 * (the unused one is ignored; value may be NULL when value_len is 0). All bytes are copied.
 * Returns ETCH_OK or ETCH_INVALID (NULL txn, unknown target/op). Empty keys and limits are
 * checked by etch_txn_commit().
 */
int etch_txn_compare(struct etch_txn *txn,
                     const uint8_t *key,
                     size_t key_len,
                     const uint8_t *range_end,
                     size_t range_end_len,
                     int target,
                     int op,
                     int64_t number,
                     const uint8_t *value,
                     size_t value_len);

/**
 * Adds a put to branch `which` (ETCH_TXN_THEN or ETCH_TXN_ELSE). `opts` may be NULL; non-zero
 * `prev_kv` asks for the previous key-value in the result (etch_txn_result_kvs()). Bytes are
 * copied. Returns ETCH_OK or ETCH_INVALID.
 */
int etch_txn_put(struct etch_txn *txn,
                 int which,
                 const uint8_t *key,
                 size_t key_len,
                 const uint8_t *value,
                 size_t value_len,
                 const struct etch_put_opts *opts,
                 int prev_kv);

/**
 * Adds a delete of the range `(key, range_end)` (as etch_delete_range()) to branch `which`;
 * non-zero `prev_kv` asks for the deleted key-values in the result. Returns ETCH_OK or
 * ETCH_INVALID.
 */
int etch_txn_delete_range(struct etch_txn *txn,
                          int which,
                          const uint8_t *key,
                          size_t key_len,
                          const uint8_t *range_end,
                          size_t range_end_len,
                          int prev_kv);

/**
 * Adds a range read of `(key, range_end)` (as etch_range(); `opts` may be NULL) to branch
 * `which`. It sees the transaction's earlier writes. Returns ETCH_OK or ETCH_INVALID.
 */
int etch_txn_range(struct etch_txn *txn,
                   int which,
                   const uint8_t *key,
                   size_t key_len,
                   const uint8_t *range_end,
                   size_t range_end_len,
                   const struct etch_range_opts *opts);

/**
 * Adds a copy of the transaction `child` as a nested transaction in branch `which` of `txn`.
 * `child` stays owned by the caller (free it as usual). Its compares are evaluated against the
 * state before the outer transaction, as in etcd. Returns ETCH_OK or ETCH_INVALID (NULL, or
 * `child == txn`).
 */
int etch_txn_nest(struct etch_txn *txn, int which, const struct etch_txn *child);

/**
 * Runs the transaction atomically: if every compare holds the "then" operations run,
 * otherwise the "else" operations; all its writes happen at one revision. The builder is not
 * consumed. On ETCH_OK `*result` receives the outcome, owned by the caller
 * (etch_txn_result_free()); on failure it is NULL and nothing was written.
 *
 * Returns ETCH_OK (whichever branch ran), ETCH_INVALID (empty key, a key written twice in one
 * branch, ignore_* misuse), ETCH_NOT_FOUND (a put's lease does not exist), ETCH_TOO_LARGE
 * (over max_txn_ops or max_request_bytes), ETCH_COMPACTED / ETCH_FUTURE_REV (a range op's
 * revision), ETCH_QUOTA, ETCH_IO, ETCH_NOSPACE, ETCH_POISONED. May run concurrently with any
 * call on the handle except etch_close() (the builder itself must not be shared).
 */
int etch_txn_commit(const struct etch_db *db,
                    const struct etch_txn *txn,
                    struct etch_txn_result **result);

/**
 * Releases a transaction result (exactly once). NULL is a no-op.
 */
void etch_txn_result_free(struct etch_txn_result *result);

/**
 * Reads a result's summary: `succeeded` (1 if the compares held and "then" ran),
 * `revision` (store revision after the transaction; unchanged if it wrote nothing) and
 * `count` (number of operation results, one per operation of the branch that ran). Each
 * output is optional (NULL to skip). Returns ETCH_OK or ETCH_INVALID (NULL result).
 */
int etch_txn_result_info(const struct etch_txn_result *result,
                         int *succeeded,
                         int64_t *revision,
                         size_t *count);

/**
 * Fills `*op` with the summary of operation `index` (0-based, in branch order). Returns
 * ETCH_OK, or ETCH_INVALID (NULL arguments, index out of range).
 */
int etch_txn_result_op(const struct etch_txn_result *result,
                       size_t index,
                       struct etch_txn_op_result *op);

/**
 * The key-values of operation `index` as a new iterator owned by the caller
 * (etch_iter_free()): a range's key-values (with its count and more), a put's previous
 * key-value (0 or 1 of them, if prev_kv was asked), a delete's deleted key-values (if prev_kv
 * was asked). Returns ETCH_OK, or ETCH_INVALID (NULL arguments, index out of range, or a
 * nested transaction: use etch_txn_result_nested()). On failure `*iter` is NULL.
 */
int etch_txn_result_kvs(const struct etch_txn_result *result,
                        size_t index,
                        struct etch_iter **iter);

/**
 * The result of the nested transaction at operation `index`, as a new result owned by the
 * caller (etch_txn_result_free()). Returns ETCH_OK, or ETCH_INVALID (NULL arguments, index
 * out of range, or not a nested transaction). On failure `*nested` is NULL.
 */
int etch_txn_result_nested(const struct etch_txn_result *result,
                           size_t index,
                           struct etch_txn_result **nested);

/**
 * Starts a polling watch on the range `(key, range_end)` (as etch_range(); key `"\0"` with
 * range_end `"\0"` watches every key). `opts` may be NULL. On ETCH_OK `*watch` receives the
 * watch, owned by the caller (etch_watch_close()); on failure it is NULL. Read responses with
 * etch_watch_poll(). Returns ETCH_OK, ETCH_INVALID. May run concurrently with any call on the
 * handle except etch_close().
 */
int etch_watch_open(const struct etch_db *db,
                    const uint8_t *key,
                    size_t key_len,
                    const uint8_t *range_end,
                    size_t range_end_len,
                    const struct etch_watch_opts *opts,
                    struct etch_watch **watch);

/**
 * Waits up to `timeout_ms` milliseconds (0: just check) for the next response of a polling
 * watch. On ETCH_OK `*resp` receives it, owned by the caller (etch_watch_resp_free()).
 * Otherwise `*resp` is NULL and the code says why: ETCH_NOT_FOUND (nothing within the
 * timeout), ETCH_CLOSED (the watch ended: after a canceled response, or the store was
 * closed), ETCH_INVALID (NULL arguments, negative timeout, a callback watch), or an I/O code.
 */
int etch_watch_poll(struct etch_watch *watch, int64_t timeout_ms, struct etch_watch_resp **resp);

/**
 * Releases a response returned by etch_watch_poll() (exactly once). NULL is a no-op. Never
 * pass the response a callback receives.
 */
void etch_watch_resp_free(struct etch_watch_resp *resp);

/**
 * Starts a watch on `(key, range_end)` that calls `cb(ctx, resp)` for every response, on a
 * thread the library creates for this watch (one at a time, in order). `opts` may be NULL.
 * `ctx` is passed through untouched; it must stay valid, and be safe to use from that
 * thread, until etch_watch_close() returns. If the watch is cancelled (compaction) the last
 * call has canceled = 1; if it fails (e.g. ETCH_CLOSED after etch_close()) the last call has
 * that status. On ETCH_OK `*watch` receives the watch, owned by the caller
 * (etch_watch_close()). Returns ETCH_OK, ETCH_INVALID (NULL cb, NULL watch, empty key) or
 * ETCH_INTERNAL (the thread could not be created).
 */
int etch_watch_start(const struct etch_db *db,
                     const uint8_t *key,
                     size_t key_len,
                     const uint8_t *range_end,
                     size_t range_end_len,
                     const struct etch_watch_opts *opts,
                     etch_watch_cb cb,
                     void *ctx,
                     struct etch_watch **watch);

/**
 * Stops and releases a watch (exactly once). For a callback watch: no callback starts after
 * this returns, and it waits for a running one to finish (from inside the callback itself it
 * does not wait; the watch stops when the callback returns). NULL is a no-op returning
 * ETCH_OK. Returns ETCH_OK, or ETCH_INTERNAL if the watch thread had panicked.
 */
int etch_watch_close(struct etch_watch *watch);

/**
 * Runs `fn(tx, ctx)` as an optimistic read-write transaction: every key read through `tx` is
 * validated at commit (by mod revision) and the buffered writes are applied atomically at one
 * revision. If another writer changed something it read, the callback runs again on a fresh
 * snapshot, up to `etch_options.write_attempts` times, then ETCH_CONFLICT.
 *
 * `revision` (optional) receives, on ETCH_OK, the revision the writes were committed at (the
 * store revision right after them), or, if the callback wrote nothing, the revision of the
 * snapshot it read; it is left untouched on failure.
 *
 * Returns ETCH_OK once committed (or if the callback wrote nothing), the callback's own
 * non-zero return value if it aborted (nothing is written), ETCH_CONFLICT, ETCH_INVALID
 * (NULL db or fn), or an error code from the commit. The callback runs on the calling thread;
 * it may call any function on `db` except etch_close() (writes it makes directly are not part
 * of the transaction and may themselves cause a conflict). May run concurrently with any call
 * on the handle except etch_close().
 */
int etch_write(const struct etch_db *db, etch_write_fn fn, void *ctx, int64_t *revision);

/**
 * `*revision` receives the revision of the snapshot this attempt reads. ETCH_OK or
 * ETCH_INVALID.
 */
int etch_wtxn_revision(struct etch_wtxn *tx, int64_t *revision);

/**
 * Reads `key` within the transaction (a key it wrote reads back its new value, with zero
 * revisions and version). On ETCH_OK `*kv` receives a key-value owned by the caller
 * (etch_kv_free()); ETCH_NOT_FOUND (with `*kv` NULL) if it does not exist or the transaction
 * deleted it. ETCH_INVALID for NULL arguments or an empty key, ETCH_TOO_LARGE for a key longer
 * than max_key_size.
 */
int etch_wtxn_get(struct etch_wtxn *tx, const uint8_t *key, size_t key_len, struct etch_kv **kv);

/**
 * Reads the range `(key, range_end)` (as etch_range()) as of the transaction's snapshot (its
 * own writes are not merged in); any change to the range before commit makes the attempt
 * retry. On ETCH_OK `*iter` receives an iterator owned by the caller (etch_iter_free()).
 */
int etch_wtxn_range(struct etch_wtxn *tx,
                    const uint8_t *key,
                    size_t key_len,
                    const uint8_t *range_end,
                    size_t range_end_len,
                    struct etch_iter **iter);

/**
 * Buffers a put of `key = value` (bytes copied), applied at commit. ETCH_OK or ETCH_INVALID
 * (NULL arguments, empty key; limits are checked at commit).
 */
int etch_wtxn_put(struct etch_wtxn *tx,
                  const uint8_t *key,
                  size_t key_len,
                  const uint8_t *value,
                  size_t value_len);

/**
 * Buffers the deletion of `key`, applied at commit. ETCH_OK or ETCH_INVALID.
 */
int etch_wtxn_delete(struct etch_wtxn *tx, const uint8_t *key, size_t key_len);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* ETCH_H */
