/* Several threads sharing one etch_db: concurrent puts, gets, ranges and transactions, each
 * thread's etch_errmsg() its own, and a final count that proves no write was lost. */
#include <pthread.h>

#include "check.h"

#define THREADS 4
#define WRITES 40

/* Values are not NUL-terminated: parse (p, n) through a bounded copy. */
static long parse_num(const uint8_t *p, size_t n) {
    char buf[32];
    CHECK(n < sizeof buf);
    memcpy(buf, p, n);
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

typedef struct {
    etch_db *db;
    int index;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    etch_db *db = a->db;
    char key[32], val[32], msg[64];
    for (int i = 0; i < WRITES; i++) {
        snprintf(key, sizeof key, "t%d/%03d", a->index, i);
        snprintf(val, sizeof val, "%d", i);
        OK(db, etch_put(db, S(key), S(val), NULL, NULL, NULL));
        etch_kv *kv;
        OK(db, etch_get(db, S(key), &kv));
        CHECK(bytes_eq(kv->value, kv->value_len, val));
        etch_kv_free(kv);

        /* A shared counter bumped by compare-and-swap, retried on a lost race. */
        for (;;) {
            etch_kv *cur = NULL;
            int rc = etch_get(db, S("counter"), &cur);
            CHECK(rc == ETCH_OK || rc == ETCH_NOT_FOUND);
            int64_t version = cur ? cur->version : 0;
            long n = cur ? parse_num(cur->value, cur->value_len) : 0;
            etch_kv_free(cur);
            char next[32];
            snprintf(next, sizeof next, "%ld", n + 1);
            etch_txn *txn;
            etch_txn_result *res;
            int ok;
            OK(NULL, etch_txn_new(&txn));
            OK(NULL, etch_txn_compare(txn, S("counter"), NULL, 0, ETCH_CMP_VERSION,
                                      ETCH_CMP_EQUAL, version, NULL, 0));
            OK(NULL, etch_txn_put(txn, ETCH_TXN_THEN, S("counter"), S(next), NULL, 0));
            OK(db, etch_txn_commit(db, txn, &res));
            OK(NULL, etch_txn_result_info(res, &ok, NULL, NULL));
            etch_txn_result_free(res);
            etch_txn_free(txn);
            if (ok) break;
        }

        /* Every thread provokes its own distinct error and sees only its own message. */
        snprintf(key, sizeof key, "missing-%d", a->index);
        etch_kv *none;
        CHECK_RC(db, etch_get(db, S(key), &none), ETCH_NOT_FOUND);
        etch_range_opts ro = {0};
        ro.revision = 1000000 + a->index;
        etch_iter *it;
        CHECK_RC(db, etch_range(db, S("t"), NULL, 0, &ro, &it), ETCH_FUTURE_REV);
        snprintf(msg, sizeof msg, "is a future revision (requested %d,", 1000000 + a->index);
        CHECK(strstr(etch_errmsg(db), msg) != NULL);
    }
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    etch_db *db = open_test_db(argv[1], "threads.etch");
    pthread_t threads[THREADS];
    worker_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i].db = db;
        args[i].index = i;
        CHECK(pthread_create(&threads[i], NULL, worker, &args[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
    }
    /* The main thread never failed on this handle. */
    CHECK(strcmp(etch_errmsg(db), "no error") == 0);

    etch_iter *it;
    int64_t count;
    etch_range_opts ro = {0};
    ro.count_only = 1;
    OK(db, etch_range(db, S("t"), S("u"), &ro, &it));
    OK(NULL, etch_iter_count(it, &count));
    CHECK(count == THREADS * WRITES);
    etch_iter_free(it);
    etch_kv *kv;
    OK(db, etch_get(db, S("counter"), &kv));
    CHECK(parse_num(kv->value, kv->value_len) == THREADS * WRITES);
    CHECK(kv->version == THREADS * WRITES);
    etch_kv_free(kv);
    OK(db, etch_check(db, NULL));
    OK(NULL, etch_close(db));
    printf("test_threads: ok\n");
    return 0;
}
