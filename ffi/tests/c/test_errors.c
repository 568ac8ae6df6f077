/* Every error code the C API can be made to return, NULL and bad arguments for every
 * function, bad options, and the etch_errmsg() rules. */
#include <fcntl.h>
#include <unistd.h>

#include "check.h"

static void write_file(const char *path, unsigned char fill, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    unsigned char buf[4096];
    memset(buf, fill, sizeof buf);
    for (size_t off = 0; off < len; off += sizeof buf) {
        CHECK(write(fd, buf, sizeof buf) == (ssize_t)sizeof buf);
    }
    CHECK(close(fd) == 0);
}

static void test_open_errors(const char *dir) {
    char path[4096];
    etch_db *db = (etch_db *)0x1, *db2 = NULL;
    etch_options o;

    /* NULL and empty arguments. */
    CHECK_RC(NULL, etch_open(NULL, NULL, &db), ETCH_INVALID);
    CHECK(db == NULL);
    CHECK(strcmp(etch_errmsg(NULL), "path is NULL") == 0);
    CHECK_RC(NULL, etch_open("", NULL, &db), ETCH_INVALID);
    CHECK_RC(NULL, etch_open(path_in(path, sizeof path, dir, "x.etch"), NULL, NULL),
             ETCH_INVALID);
    CHECK_RC(NULL, etch_options_init(NULL, sizeof(etch_options)), ETCH_INVALID);
    CHECK_RC(NULL, etch_restore(NULL, path, NULL, &db), ETCH_INVALID);
    CHECK_RC(NULL, etch_restore(path, NULL, NULL, &db), ETCH_INVALID);
    CHECK_RC(NULL, etch_restore(path, path, NULL, NULL), ETCH_INVALID);

    /* Options out of range or unknown enum values. */
    OK(NULL, etch_options_init(&o, sizeof o));
    o.page_size = 1000;
    CHECK_RC(NULL, etch_open(path, &o, &db), ETCH_INVALID);
    CHECK(strstr(etch_errmsg(NULL), "page_size") != NULL);
    OK(NULL, etch_options_init(&o, sizeof o));
    o.durability = 9;
    CHECK_RC(NULL, etch_open(path, &o, &db), ETCH_INVALID);
    OK(NULL, etch_options_init(&o, sizeof o));
    o.auto_compaction_mode = 9;
    CHECK_RC(NULL, etch_open(path, &o, &db), ETCH_INVALID);
    OK(NULL, etch_options_init(&o, sizeof o));
    o.wal_capacity = 10;
    CHECK_RC(NULL, etch_open(path, &o, &db), ETCH_INVALID);
    OK(NULL, etch_options_init(&o, sizeof o));
    o.max_txn_ops = 0;
    CHECK_RC(NULL, etch_open(path, &o, &db), ETCH_INVALID);

    /* ETCH_IO: the directory does not exist. */
    CHECK_RC(NULL, etch_open(path_in(path, sizeof path, dir, "no/such/dir.etch"), NULL, &db),
             ETCH_IO);

    /* ETCH_FORMAT: not an etch file. */
    write_file(path_in(path, sizeof path, dir, "text.etch"), 'x', 16384);
    CHECK_RC(NULL, etch_open(path, NULL, &db), ETCH_FORMAT);
    CHECK(db == NULL);
    CHECK(strstr(etch_errmsg(NULL), "not an etch file") != NULL);

    /* ETCH_LOCKED: open twice in one process. */
    db = open_test_db(dir, "locked.etch");
    OK(NULL, etch_options_init(&o, sizeof o));
    o.wal_capacity = 1 << 20;
    CHECK_RC(NULL, etch_open(path_in(path, sizeof path, dir, "locked.etch"), &o, &db2),
             ETCH_LOCKED);
    CHECK(db2 == NULL);
    OK(NULL, etch_close(db));

    /* ETCH_NOSPACE: a device that is always full. */
    if (access("/dev/full", W_OK) == 0) {
        CHECK_RC(NULL, etch_open("/dev/full", &o, &db), ETCH_NOSPACE);
        CHECK(db == NULL);
    }
}

static void test_corrupt(const char *dir) {
    char path[4096];
    etch_db *db = open_test_db(dir, "corrupt.etch");
    for (int i = 0; i < 200; i++) {
        char k[32];
        snprintf(k, sizeof k, "key/%04d", i);
        OK(db, etch_put(db, S(k), S("a value long enough to fill a few pages of the tree"),
                        NULL, NULL, NULL));
    }
    OK(NULL, etch_close(db));
    /* Overwrite every page after the two meta pages. */
    int fd = open(path_in(path, sizeof path, dir, "corrupt.etch"), O_RDWR);
    CHECK(fd >= 0);
    off_t size = lseek(fd, 0, SEEK_END);
    CHECK(size > 3 * 4096);
    unsigned char junk[4096];
    memset(junk, 0xA5, sizeof junk);
    for (off_t off = 2 * 4096; off < size; off += 4096) {
        CHECK(pwrite(fd, junk, sizeof junk, off) == (ssize_t)sizeof junk);
    }
    CHECK(close(fd) == 0);

    etch_options o;
    OK(NULL, etch_options_init(&o, sizeof o));
    o.wal_capacity = 1 << 20;
    db = NULL;
    int rc = etch_open(path, &o, &db);
    if (rc == ETCH_OK) {
        /* Found on first use instead of at open. */
        CHECK_RC(db, etch_check(db, NULL), ETCH_CORRUPT);
        CHECK(strstr(etch_errmsg(db), "corrupt") != NULL);
        etch_close(db);
    } else {
        CHECK_RC(NULL, rc, ETCH_CORRUPT);
        CHECK(db == NULL);
    }
}

static void test_limits(const char *dir) {
    etch_options o;
    etch_db *db = NULL;
    char path[4096];

    /* ETCH_TOO_LARGE: key over max_key_size, request over max_request_bytes. */
    OK(NULL, etch_options_init(&o, sizeof o));
    o.durability = ETCH_DURABILITY_RELAXED;
    o.wal_capacity = 1 << 20;
    o.max_request_bytes = 1024;
    OK(NULL, etch_open(path_in(path, sizeof path, dir, "limits.etch"), &o, &db));
    uint8_t big[2048];
    memset(big, 'k', sizeof big);
    CHECK_RC(db, etch_put(db, big, 961, S("v"), NULL, NULL, NULL), ETCH_TOO_LARGE);
    CHECK(strstr(etch_errmsg(db), "maximum key size") != NULL);
    CHECK_RC(db, etch_put(db, S("k"), big, sizeof big, NULL, NULL, NULL), ETCH_TOO_LARGE);
    CHECK_RC(db, etch_delete_range(db, big, 961, NULL, 0, NULL, NULL, NULL), ETCH_TOO_LARGE);
    OK(NULL, etch_close(db));

    /* ETCH_QUOTA: a tiny space quota; deletes still work once it is hit. */
    OK(NULL, etch_options_init(&o, sizeof o));
    o.durability = ETCH_DURABILITY_RELAXED;
    o.wal_capacity = 1 << 20;
    o.quota_bytes = 64 * 1024;
    OK(NULL, etch_open(path_in(path, sizeof path, dir, "quota.etch"), &o, &db));
    int rc = ETCH_OK, i;
    for (i = 0; i < 2000 && rc == ETCH_OK; i++) {
        char k[32];
        snprintf(k, sizeof k, "q/%05d", i);
        rc = etch_put(db, S(k), big, 1000, NULL, NULL, NULL);
    }
    CHECK_RC(db, rc, ETCH_QUOTA);
    CHECK(strstr(etch_errmsg(db), "NOSPACE") != NULL);
    OK(db, etch_delete_range(db, S("q/"), S("q0"), NULL, NULL, NULL));
    OK(NULL, etch_close(db));
}

/* Every function with a NULL handle or a NULL required argument returns ETCH_INVALID. */
static void test_null_arguments(const char *dir) {
    etch_db *db = open_test_db(dir, "nulls.etch");
    etch_kv *kv = NULL;
    etch_iter *it = NULL;
    int64_t i64;
    uint64_t u64;
    uint32_t u32;
    size_t len;
    int flag;
    const etch_kv *ckv;
    etch_store_status st;
    uint8_t out[8];

    CHECK_RC(NULL, etch_put(NULL, S("k"), S("v"), NULL, NULL, NULL), ETCH_INVALID);
    CHECK(strcmp(etch_errmsg(NULL), "db is NULL") == 0);
    CHECK_RC(db, etch_put(db, NULL, 3, S("v"), NULL, NULL, NULL), ETCH_INVALID);
    CHECK_RC(db, etch_put(db, S("k"), NULL, 3, NULL, NULL, NULL), ETCH_INVALID);
    CHECK_RC(db, etch_put(db, NULL, 0, S("v"), NULL, NULL, NULL), ETCH_INVALID); /* empty */
    CHECK(strcmp(etch_errmsg(db), "key is empty") == 0);
    CHECK_RC(NULL, etch_get(NULL, S("k"), &kv), ETCH_INVALID);
    CHECK_RC(db, etch_get(db, S("k"), NULL), ETCH_INVALID);
    CHECK_RC(db, etch_get(db, NULL, 0, &kv), ETCH_INVALID);
    CHECK_RC(db, etch_get(db, NULL, 5, &kv), ETCH_INVALID);
    CHECK_RC(NULL, etch_delete_range(NULL, S("k"), NULL, 0, NULL, NULL, NULL), ETCH_INVALID);
    CHECK_RC(db, etch_delete_range(db, S("k"), NULL, 2, NULL, NULL, NULL), ETCH_INVALID);
    CHECK_RC(db, etch_delete_range(db, NULL, 0, NULL, 0, NULL, NULL, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_range(NULL, S("k"), NULL, 0, NULL, &it), ETCH_INVALID);
    CHECK_RC(db, etch_range(db, S("k"), NULL, 0, NULL, NULL), ETCH_INVALID);
    CHECK_RC(db, etch_range(db, NULL, 4, NULL, 0, NULL, &it), ETCH_INVALID);
    CHECK_RC(db, etch_range(db, NULL, 0, S("z"), NULL, &it), ETCH_INVALID); /* empty key */
    CHECK(it == NULL);
    etch_range_opts ro = {0};
    ro.sort_target = 17;
    CHECK_RC(db, etch_range(db, S("k"), NULL, 0, &ro, &it), ETCH_INVALID);
    ro.sort_target = 0;
    ro.limit = -1;
    CHECK_RC(db, etch_range(db, S("k"), NULL, 0, &ro, &it), ETCH_INVALID);
    CHECK_RC(NULL, etch_range_opts_init(NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_prefix_end(NULL, 1, out, sizeof out, &len), ETCH_INVALID);
    CHECK_RC(NULL, etch_prefix_end(S("a"), NULL, 8, &len), ETCH_INVALID);
    CHECK_RC(NULL, etch_prefix_end(S("a"), out, sizeof out, NULL), ETCH_INVALID);

    OK(db, etch_range(db, S("k"), NULL, 0, NULL, &it));
    CHECK_RC(NULL, etch_iter_next(NULL, &ckv), ETCH_INVALID);
    CHECK_RC(NULL, etch_iter_next(it, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_iter_len(NULL, &len), ETCH_INVALID);
    CHECK_RC(NULL, etch_iter_len(it, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_iter_count(NULL, &i64), ETCH_INVALID);
    CHECK_RC(NULL, etch_iter_count(it, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_iter_more(NULL, &flag), ETCH_INVALID);
    CHECK_RC(NULL, etch_iter_more(it, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_iter_revision(NULL, &i64), ETCH_INVALID);
    CHECK_RC(NULL, etch_iter_revision(it, NULL), ETCH_INVALID);
    etch_iter_free(it);
    etch_iter_free(NULL);
    etch_kv_free(NULL);

    CHECK_RC(NULL, etch_revision(NULL, &i64), ETCH_INVALID);
    CHECK_RC(db, etch_revision(db, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_compact(NULL, 1, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_snapshot(NULL, "x", NULL, NULL), ETCH_INVALID);
    CHECK_RC(db, etch_snapshot(db, NULL, NULL, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_defrag(NULL, &u64, &u64), ETCH_INVALID);
    CHECK_RC(NULL, etch_status(NULL, &st), ETCH_INVALID);
    CHECK_RC(db, etch_status(db, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_check(NULL, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_hash_kv(NULL, 0, &u32), ETCH_INVALID);
    CHECK_RC(db, etch_hash_kv(db, 0, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_sync(NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_checkpoint(NULL), ETCH_INVALID);
    CHECK(strcmp(etch_errmsg(NULL), "db is NULL") == 0);
    OK(NULL, etch_close(db));
}

/* errmsg: "no error" before any failure, unchanged by successes, per handle. */
static void test_errmsg_rules(const char *dir) {
    etch_db *a = open_test_db(dir, "msg-a.etch");
    etch_db *b = open_test_db(dir, "msg-b.etch");
    etch_kv *kv;
    CHECK(strcmp(etch_errmsg(a), "no error") == 0);
    CHECK_RC(a, etch_get(a, S("missing"), &kv), ETCH_NOT_FOUND);
    OK(a, etch_put(a, S("k"), S("v"), NULL, NULL, NULL));
    CHECK(strcmp(etch_errmsg(a), "key not found") == 0); /* like errno */
    CHECK(strcmp(etch_errmsg(b), "no error") == 0);      /* per handle */
    OK(NULL, etch_close(a));
    OK(NULL, etch_close(b));
}

/* etch_connect() and etch_open_member(): NULL and malformed arguments are typed errors, an
 * unreachable server is ETCH_UNAVAILABLE at the first call, a member with no majority answers
 * ETCH_UNAVAILABLE once its request timeout passes, and the member-only call refuses a file. */
static void test_backend_errors(const char *dir) {
    etch_db *db = (etch_db *)0x1;
    etch_kv *kv = NULL;
    char path[4096];
    etch_connect_options co;
    CHECK_RC(NULL, etch_connect_options_init(NULL, sizeof co), ETCH_INVALID);
    CHECK_RC(NULL, etch_connect_options_init(&co, 3), ETCH_INVALID);
    OK(NULL, etch_connect_options_init(&co, sizeof co));
    CHECK_RC(NULL, etch_connect(NULL, NULL, &db), ETCH_INVALID);
    CHECK(db == NULL);
    CHECK_RC(NULL, etch_connect("127.0.0.1:1", NULL, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_connect("", NULL, &db), ETCH_INVALID);
    CHECK_RC(NULL, etch_connect("not an endpoint", NULL, &db), ETCH_INVALID);
    CHECK(db == NULL);
    co.cert_file = "client.crt"; /* without key_file */
    CHECK_RC(NULL, etch_connect("127.0.0.1:1", &co, &db), ETCH_INVALID);
    /* Port 1 on loopback: nothing listens. */
    OK(NULL, etch_connect_options_init(&co, sizeof co));
    co.dial_timeout_ms = 200;
    co.request_timeout_ms = 1000;
    co.retries = 0;
    OK(NULL, etch_connect("127.0.0.1:1", &co, &db));
    CHECK_RC(db, etch_get(db, S("k"), &kv), ETCH_UNAVAILABLE);
    CHECK(kv == NULL);
    CHECK(strcmp(etch_strerror(ETCH_UNAVAILABLE),
                 "cluster or server unavailable (no leader, or no endpoint answered)") == 0);
    CHECK_RC(db, etch_defrag(db, NULL, NULL), ETCH_UNSUPPORTED);
    OK(NULL, etch_close(db));

    etch_member_config mc;
    CHECK_RC(NULL, etch_member_config_init(NULL, sizeof mc), ETCH_INVALID);
    CHECK_RC(NULL, etch_member_config_init(&mc, sizeof mc + 1), ETCH_INVALID);
    OK(NULL, etch_member_config_init(&mc, sizeof mc));
    db = (etch_db *)0x1;
    CHECK_RC(NULL, etch_open_member(NULL, NULL, &db), ETCH_INVALID);
    CHECK(db == NULL);
    CHECK_RC(NULL, etch_open_member(&mc, NULL, NULL), ETCH_INVALID);
    mc.path = path_in(path, sizeof path, dir, "member.etch");
    mc.local_network = "errors";
    CHECK_RC(NULL, etch_open_member(&mc, NULL, &db), ETCH_INVALID); /* id 0 */
    CHECK(strstr(etch_errmsg(NULL), "id 0") != NULL);
    mc.id = 1;
    mc.local_network = NULL; /* neither QUIC nor a local network */
    CHECK_RC(NULL, etch_open_member(&mc, NULL, &db), ETCH_INVALID);
    mc.listen_peer = "127.0.0.1:0";
    mc.peers = "2"; /* QUIC peers need addresses */
    CHECK_RC(NULL, etch_open_member(&mc, NULL, &db), ETCH_INVALID);
    mc.listen_peer = "nowhere";
    mc.peers = NULL;
    CHECK_RC(NULL, etch_open_member(&mc, NULL, &db), ETCH_INVALID);
    mc.listen_peer = NULL;
    mc.local_network = "errors";
    mc.peers = "2,x";
    CHECK_RC(NULL, etch_open_member(&mc, NULL, &db), ETCH_INVALID);
    /* One voter of two, the other never started: no leader, so no write. */
    mc.peers = "2";
    mc.initialize = 1;
    mc.heartbeat_ms = 50;
    mc.election_timeout_ms = 200;
    mc.request_timeout_ms = 500;
    OK(NULL, etch_open_member(&mc, NULL, &db));
    uint64_t id = 0, leader = 7;
    OK(db, etch_member_info(db, &id, &leader));
    CHECK(id == 1 && leader == 0);
    CHECK_RC(db, etch_put(db, S("k"), S("v"), NULL, NULL, NULL), ETCH_UNAVAILABLE);
    etch_store_status st;
    CHECK_RC(db, etch_status(db, &st), ETCH_UNSUPPORTED);
    OK(NULL, etch_close(db));
    CHECK_RC(NULL, etch_member_info(NULL, &id, &leader), ETCH_INVALID);
    /* The same file reopens as a member of its cluster (initialize is then ignored). */
    OK(NULL, etch_open_member(&mc, NULL, &db));
    OK(NULL, etch_close(db));
    /* The member-only call refuses a local file. */
    db = open_test_db(dir, "plain-for-member-info.etch");
    CHECK_RC(db, etch_member_info(db, &id, &leader), ETCH_UNSUPPORTED);
    OK(NULL, etch_close(db));
    for (int c = ETCH_UNAVAILABLE; c <= ETCH_BUSY; c++) {
        CHECK(strcmp(etch_strerror(c), "unknown status code") != 0);
    }
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    test_backend_errors(argv[1]);
    test_open_errors(argv[1]);
    test_corrupt(argv[1]);
    test_limits(argv[1]);
    test_null_arguments(argv[1]);
    test_errmsg_rules(argv[1]);
    printf("test_errors: ok\n");
    return 0;
}
