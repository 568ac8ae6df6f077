/* Optimistic read-write transactions (etch_write): commit, abort with the callback's code,
 * reads of its own writes, ranges, retry after a conflict, ETCH_CONFLICT when attempts run
 * out, and threads incrementing one counter without losing an update. */
#include <pthread.h>

#include "check.h"

static long read_num(etch_wtxn *tx, const char *key) {
    etch_kv *kv = NULL;
    int rc = etch_wtxn_get(tx, S(key), &kv);
    CHECK(rc == ETCH_OK || rc == ETCH_NOT_FOUND);
    if (rc == ETCH_NOT_FOUND) {
        CHECK(kv == NULL);
        return 0;
    }
    char buf[32];
    CHECK(kv->value_len < sizeof buf);
    memcpy(buf, kv->value, kv->value_len);
    buf[kv->value_len] = 0;
    etch_kv_free(kv);
    return strtol(buf, NULL, 10);
}

static void write_num(etch_wtxn *tx, const char *key, long n) {
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", n);
    OK(NULL, etch_wtxn_put(tx, S(key), S(buf)));
}

static int transfer(etch_wtxn *tx, void *ctx) {
    (void)ctx;
    long a = read_num(tx, "acct/a"), b = read_num(tx, "acct/b");
    write_num(tx, "acct/a", a - 10);
    write_num(tx, "acct/b", b + 10);
    /* A key it wrote reads back the new value, with zero revisions. */
    etch_kv *kv;
    OK(NULL, etch_wtxn_get(tx, S("acct/a"), &kv));
    CHECK(kv->mod_revision == 0 && kv->version == 0);
    etch_kv_free(kv);
    return ETCH_OK;
}

static int abort_42(etch_wtxn *tx, void *ctx) {
    (void)ctx;
    write_num(tx, "acct/a", -1);
    return 42;
}

static int ranges_and_deletes(etch_wtxn *tx, void *ctx) {
    (void)ctx;
    int64_t rev;
    etch_iter *it;
    size_t n;
    OK(NULL, etch_wtxn_revision(tx, &rev));
    CHECK(rev > 1);
    OK(NULL, etch_wtxn_range(tx, S("acct/"), S("acct0"), &it));
    OK(NULL, etch_iter_len(it, &n));
    CHECK(n == 2);
    etch_iter_free(it);
    OK(NULL, etch_wtxn_delete(tx, S("acct/b")));
    etch_kv *kv = (etch_kv *)0x1;
    CHECK_RC(NULL, etch_wtxn_get(tx, S("acct/b"), &kv), ETCH_NOT_FOUND);
    CHECK(kv == NULL);
    /* Argument errors inside a callback. */
    CHECK_RC(NULL, etch_wtxn_put(tx, NULL, 0, S("v")), ETCH_INVALID);
    CHECK_RC(NULL, etch_wtxn_put(NULL, S("k"), S("v")), ETCH_INVALID);
    CHECK_RC(NULL, etch_wtxn_delete(tx, NULL, 0), ETCH_INVALID);
    CHECK_RC(NULL, etch_wtxn_get(tx, S("k"), NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_wtxn_range(tx, S("k"), NULL, 0, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_wtxn_revision(tx, NULL), ETCH_INVALID);
    return ETCH_OK;
}

/* Reads "race", then (first attempt only) changes it behind the transaction's back. */
typedef struct {
    etch_db *db;
    int attempts;
    int interfere_every_time;
} race_ctx;

static int racy(etch_wtxn *tx, void *p) {
    race_ctx *c = p;
    c->attempts++;
    long n = read_num(tx, "race");
    if (c->attempts == 1 || c->interfere_every_time) {
        OK(c->db, etch_put(c->db, S("race"), S("999"), NULL, NULL, NULL));
    }
    write_num(tx, "race", n + 1);
    return ETCH_OK;
}

static int increment(etch_wtxn *tx, void *ctx) {
    (void)ctx;
    write_num(tx, "counter", read_num(tx, "counter") + 1);
    return ETCH_OK;
}

static void *incrementer(void *p) {
    etch_db *db = p;
    for (int i = 0; i < 25; i++) {
        OK(db, etch_write(db, increment, NULL, NULL));
    }
    return NULL;
}

static long get_num(etch_db *db, const char *key) {
    etch_kv *kv;
    OK(db, etch_get(db, S(key), &kv));
    char buf[32];
    CHECK(kv->value_len < sizeof buf);
    memcpy(buf, kv->value, kv->value_len);
    buf[kv->value_len] = 0;
    etch_kv_free(kv);
    return strtol(buf, NULL, 10);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    etch_db *db = open_test_db(argv[1], "write.etch");
    OK(db, etch_put(db, S("acct/a"), S("100"), NULL, NULL, NULL));
    OK(db, etch_put(db, S("acct/b"), S("0"), NULL, NULL, NULL));

    OK(db, etch_write(db, transfer, NULL, NULL));
    CHECK(get_num(db, "acct/a") == 90 && get_num(db, "acct/b") == 10);

    int64_t before, after;
    OK(db, etch_revision(db, &before));
    CHECK_RC(db, etch_write(db, abort_42, NULL, NULL), 42);
    CHECK(strcmp(etch_errmsg(db), "write callback returned 42") == 0);
    OK(db, etch_revision(db, &after));
    CHECK(after == before && get_num(db, "acct/a") == 90);

    OK(db, etch_write(db, ranges_and_deletes, NULL, NULL));
    etch_kv *kv;
    CHECK_RC(db, etch_get(db, S("acct/b"), &kv), ETCH_NOT_FOUND);

    /* A conflict on the first attempt: the callback runs again and commits. */
    race_ctx rc1 = {db, 0, 0};
    OK(db, etch_write(db, racy, &rc1, NULL));
    CHECK(rc1.attempts == 2 && get_num(db, "race") == 1000);

    /* Interference on every attempt: ETCH_CONFLICT after write_attempts tries. */
    race_ctx rc2 = {db, 0, 1};
    CHECK_RC(db, etch_write(db, racy, &rc2, NULL), ETCH_CONFLICT);
    CHECK(rc2.attempts == 16); /* the default write_attempts */

    CHECK_RC(NULL, etch_write(NULL, increment, NULL, NULL), ETCH_INVALID);
    CHECK_RC(db, etch_write(db, NULL, NULL, NULL), ETCH_INVALID);

    /* Threads: every increment lands exactly once. */
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, incrementer, db) == 0);
    for (int i = 0; i < 4; i++) CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(get_num(db, "counter") == 100);

    OK(NULL, etch_close(db));
    printf("test_write: ok\n");
    return 0;
}
