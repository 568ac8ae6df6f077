/* Leases: grant (fresh and chosen ids), put with a lease, keep-alive, time-to-live with keys,
 * list, revoke (keys deleted at one revision), expiry, and their error codes. */
#include <unistd.h>

#include "check.h"

static void test_lifecycle(etch_db *db) {
    int64_t id = 0, id2 = 0, ttl, granted, rev, before;
    etch_iter *keys = NULL;
    const etch_kv *kv;
    etch_kv *got;

    OK(db, etch_lease_grant(db, 60, 0, &id));
    CHECK(id > 0);
    OK(db, etch_lease_grant(db, 30, 777, &id2));
    CHECK(id2 == 777);
    CHECK_RC(db, etch_lease_grant(db, 30, 777, NULL), ETCH_EXISTS);
    CHECK_RC(db, etch_lease_grant(db, 0, 0, NULL), ETCH_INVALID);
    CHECK_RC(db, etch_lease_grant(db, 10, -5, NULL), ETCH_INVALID);

    etch_put_opts po = {0};
    po.lease = id;
    OK(db, etch_put(db, S("svc/a"), S("10.0.0.1"), &po, NULL, NULL));
    OK(db, etch_put(db, S("svc/b"), S("10.0.0.2"), &po, NULL, NULL));
    OK(db, etch_get(db, S("svc/a"), &got));
    CHECK(got->lease == id);
    etch_kv_free(got);

    /* ignore_lease keeps it; a lease on an existing key with ignore_lease is refused. */
    etch_put_opts keep = {0};
    keep.ignore_lease = 1;
    OK(db, etch_put(db, S("svc/a"), S("10.0.0.9"), &keep, NULL, NULL));
    OK(db, etch_get(db, S("svc/a"), &got));
    CHECK(got->lease == id && bytes_eq(got->value, got->value_len, "10.0.0.9"));
    etch_kv_free(got);
    keep.lease = id2;
    CHECK_RC(db, etch_put(db, S("svc/a"), S("x"), &keep, NULL, NULL), ETCH_INVALID);

    OK(db, etch_lease_keep_alive(db, id, &ttl));
    CHECK(ttl == 60);
    OK(db, etch_lease_keep_alive(db, id, NULL));
    OK(db, etch_lease_time_to_live(db, id, &ttl, &granted, 1, &keys));
    CHECK(granted == 60 && ttl > 0 && ttl <= 60);
    size_t n;
    OK(NULL, etch_iter_len(keys, &n));
    CHECK(n == 2);
    OK(NULL, etch_iter_next(keys, &kv));
    CHECK(bytes_eq(kv->key, kv->key_len, "svc/a") && kv->lease == id);
    etch_iter_free(keys);
    /* Without keys: *keys is NULL. */
    keys = (etch_iter *)0x1;
    OK(db, etch_lease_time_to_live(db, id, NULL, NULL, 0, &keys));
    CHECK(keys == NULL);
    OK(db, etch_lease_time_to_live(db, id, NULL, NULL, 1, NULL));

    etch_leases *list = NULL;
    OK(db, etch_lease_list(db, &list));
    CHECK(list->count == 2 && list->leases != NULL);
    int seen = 0;
    for (size_t i = 0; i < list->count; i++) {
        if (list->leases[i].id == id && list->leases[i].ttl == 60) seen |= 1;
        if (list->leases[i].id == 777 && list->leases[i].ttl == 30) seen |= 2;
    }
    CHECK(seen == 3);
    etch_leases_free(list);

    /* Revoke deletes both keys at one revision. */
    OK(db, etch_revision(db, &before));
    OK(db, etch_lease_revoke(db, id, &rev));
    CHECK(rev == before + 1);
    CHECK_RC(db, etch_get(db, S("svc/a"), &got), ETCH_NOT_FOUND);
    CHECK_RC(db, etch_get(db, S("svc/b"), &got), ETCH_NOT_FOUND);
    CHECK_RC(db, etch_lease_revoke(db, id, NULL), ETCH_NOT_FOUND);
    CHECK_RC(db, etch_lease_keep_alive(db, id, &ttl), ETCH_NOT_FOUND);
    CHECK_RC(db, etch_lease_time_to_live(db, id, &ttl, NULL, 0, NULL), ETCH_NOT_FOUND);
    po.lease = id;
    CHECK_RC(db, etch_put(db, S("svc/c"), S("x"), &po, NULL, NULL), ETCH_NOT_FOUND);
    OK(db, etch_lease_revoke(db, 777, NULL));

    OK(db, etch_lease_list(db, &list));
    CHECK(list->count == 0 && list->leases == NULL);
    etch_leases_free(list);
    etch_leases_free(NULL);
    CHECK_RC(db, etch_lease_list(db, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_lease_grant(NULL, 10, 0, &id), ETCH_INVALID);
    CHECK_RC(NULL, etch_lease_revoke(NULL, 1, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_lease_keep_alive(NULL, 1, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_lease_time_to_live(NULL, 1, NULL, NULL, 0, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_lease_list(NULL, &list), ETCH_INVALID);
}

/* A one-second lease without keep-alive expires on the store's background thread. */
static void test_expiry(etch_db *db) {
    int64_t id = 0;
    etch_kv *got;
    etch_put_opts po = {0};
    OK(db, etch_lease_grant(db, 1, 0, &id));
    po.lease = id;
    OK(db, etch_put(db, S("ephemeral"), S("x"), &po, NULL, NULL));
    int rc = ETCH_OK;
    for (int i = 0; i < 200 && rc == ETCH_OK; i++) {
        usleep(50 * 1000);
        rc = etch_get(db, S("ephemeral"), &got);
        if (rc == ETCH_OK) etch_kv_free(got);
    }
    CHECK(rc == ETCH_NOT_FOUND);
    CHECK_RC(db, etch_lease_keep_alive(db, id, NULL), ETCH_NOT_FOUND);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    etch_db *db = open_core_db(argv[1], "lease.etch");
    test_lifecycle(db);
    test_expiry(db);
    close_core_db(db);
    printf("test_lease: ok\n");
    return 0;
}
