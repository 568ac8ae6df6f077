/* Versions, options, open/close, put/get with metadata, range iterators, delete_range,
 * prefix_end, and the maintenance calls. */
#include "check.h"

static void put(etch_db *db, const char *k, const char *v) {
    OK(db, etch_put(db, S(k), S(v), NULL, NULL, NULL));
}

/* Reads every key-value of an iterator into "k=v," form; frees nothing. */
static void dump(etch_iter *it, char *out, size_t cap) {
    const etch_kv *kv;
    int rc;
    out[0] = 0;
    while ((rc = etch_iter_next(it, &kv)) == ETCH_OK) {
        size_t len = strlen(out);
        int n = snprintf(out + len, cap - len, "%.*s=%.*s,", (int)kv->key_len,
                         (const char *)kv->key, (int)kv->value_len, (const char *)kv->value);
        CHECK(n > 0 && (size_t)n < cap - len);
    }
    CHECK(rc == ETCH_NOT_FOUND);
    CHECK(kv == NULL);
    CHECK(etch_iter_next(it, &kv) == ETCH_NOT_FOUND); /* stays exhausted */
}

static void test_version(void) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", ETCH_VERSION_MAJOR, ETCH_VERSION_MINOR,
             ETCH_VERSION_PATCH);
    CHECK(strcmp(etch_version(), want) == 0);
    CHECK(strcmp(etch_strerror(ETCH_OK), "ok") == 0);
    CHECK(strcmp(etch_strerror(ETCH_NOT_FOUND), "not found") == 0);
    CHECK(strcmp(etch_strerror(12345), "unknown status code") == 0);
    for (int c = ETCH_OK; c <= ETCH_EXISTS; c++) {
        CHECK(etch_strerror(c) != NULL && strlen(etch_strerror(c)) > 0);
    }
}

static void test_put_get(etch_db *db) {
    int64_t rev0, rev1, rev2;
    etch_kv *kv = NULL, *prev = NULL;
    OK(db, etch_revision(db, &rev0));
    OK(db, etch_put(db, S("cfg/mode"), S("fast"), NULL, &rev1, &prev));
    CHECK(rev1 == rev0 + 1);
    CHECK(prev == NULL); /* did not exist */

    OK(db, etch_get(db, S("cfg/mode"), &kv));
    CHECK(bytes_eq(kv->key, kv->key_len, "cfg/mode"));
    CHECK(bytes_eq(kv->value, kv->value_len, "fast"));
    CHECK(kv->create_revision == rev1 && kv->mod_revision == rev1);
    CHECK(kv->version == 1 && kv->lease == 0);
    etch_kv_free(kv);

    OK(db, etch_put(db, S("cfg/mode"), S("safe"), NULL, &rev2, &prev));
    CHECK(rev2 == rev1 + 1);
    CHECK(prev != NULL && bytes_eq(prev->value, prev->value_len, "fast"));
    CHECK(prev->mod_revision == rev1 && prev->version == 1);
    etch_kv_free(prev);

    OK(db, etch_get(db, S("cfg/mode"), &kv));
    CHECK(kv->create_revision == rev1 && kv->mod_revision == rev2 && kv->version == 2);
    etch_kv_free(kv);

    /* Missing key: distinct, non-fatal, and *kv is NULL. */
    kv = (etch_kv *)0x1;
    CHECK_RC(db, etch_get(db, S("nope"), &kv), ETCH_NOT_FOUND);
    CHECK(kv == NULL);
    CHECK(strcmp(etch_errmsg(db), "key not found") == 0);

    /* Empty value and binary keys/values with NUL bytes round-trip. */
    const uint8_t bin[] = {0, 1, 0, 255};
    OK(db, etch_put(db, bin, sizeof bin, NULL, 0, NULL, NULL, NULL));
    OK(db, etch_get(db, bin, sizeof bin, &kv));
    CHECK(kv->key_len == 4 && memcmp(kv->key, bin, 4) == 0);
    CHECK(kv->value_len == 0 && kv->value != NULL);
    etch_kv_free(kv);
    OK(db, etch_put(db, S("v"), bin, sizeof bin, NULL, NULL, NULL));
    OK(db, etch_get(db, S("v"), &kv));
    CHECK(kv->value_len == 4 && memcmp(kv->value, bin, 4) == 0);
    etch_kv_free(kv);

    /* ignore_value keeps the value and bumps the version. */
    etch_put_opts po = {0};
    po.ignore_value = 1;
    OK(db, etch_put(db, S("cfg/mode"), NULL, 0, &po, NULL, NULL));
    OK(db, etch_get(db, S("cfg/mode"), &kv));
    CHECK(bytes_eq(kv->value, kv->value_len, "safe") && kv->version == 3);
    etch_kv_free(kv);
    CHECK_RC(db, etch_put(db, S("absent"), NULL, 0, &po, NULL, NULL), ETCH_NOT_FOUND);
    CHECK_RC(db, etch_put(db, S("cfg/mode"), S("x"), &po, NULL, NULL), ETCH_INVALID);

    OK(db, etch_delete_range(db, S("v"), NULL, 0, NULL, NULL, NULL));
    OK(db, etch_delete_range(db, bin, sizeof bin, NULL, 0, NULL, NULL, NULL));
}

static void test_range(etch_db *db) {
    char buf[1024];
    etch_iter *it = NULL;
    int64_t count, rev, first_rev;
    size_t len;
    int more;
    uint8_t end[16];
    size_t end_len;

    put(db, "svc/a", "1");
    OK(db, etch_revision(db, &first_rev));
    put(db, "svc/b", "2");
    put(db, "svc/c", "3");
    put(db, "svd", "x");

    /* Prefix via etch_prefix_end. */
    OK(NULL, etch_prefix_end(S("svc/"), end, sizeof end, &end_len));
    CHECK(end_len == 4 && memcmp(end, "svc0", 4) == 0);
    OK(db, etch_range(db, S("svc/"), end, end_len, NULL, &it));
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/a=1,svc/b=2,svc/c=3,") == 0);
    OK(NULL, etch_iter_len(it, &len));
    OK(NULL, etch_iter_count(it, &count));
    OK(NULL, etch_iter_more(it, &more));
    OK(NULL, etch_iter_revision(it, &rev));
    CHECK(len == 3 && count == 3 && more == 0);
    int64_t now;
    OK(db, etch_revision(db, &now));
    CHECK(rev == now);
    etch_iter_free(it);

    /* [key, range_end), single key, from-key, all keys. */
    OK(db, etch_range(db, S("svc/b"), S("svd"), NULL, &it));
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/b=2,svc/c=3,") == 0);
    etch_iter_free(it);
    OK(db, etch_range(db, S("svc/b"), NULL, 0, NULL, &it));
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/b=2,") == 0);
    etch_iter_free(it);
    OK(db, etch_range(db, S("svc/c"), (const uint8_t *)"", 1, NULL, &it));
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/c=3,svd=x,") == 0);
    etch_iter_free(it);
    OK(db, etch_range(db, (const uint8_t *)"", 1, (const uint8_t *)"", 1, NULL, &it));
    OK(NULL, etch_iter_len(it, &len));
    CHECK(len >= 4);
    etch_iter_free(it);

    /* Options: limit/more, keys_only, count_only, revision, sort. */
    etch_range_opts ro;
    OK(NULL, etch_range_opts_init(&ro));
    ro.limit = 2;
    OK(db, etch_range(db, S("svc/"), end, end_len, &ro, &it));
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/a=1,svc/b=2,") == 0);
    OK(NULL, etch_iter_more(it, &more));
    OK(NULL, etch_iter_count(it, &count));
    CHECK(more == 1 && count == 3);
    etch_iter_free(it);

    OK(NULL, etch_range_opts_init(&ro));
    ro.keys_only = 1;
    OK(db, etch_range(db, S("svc/"), end, end_len, &ro, &it));
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/a=,svc/b=,svc/c=,") == 0);
    etch_iter_free(it);

    OK(NULL, etch_range_opts_init(&ro));
    ro.count_only = 1;
    OK(db, etch_range(db, S("svc/"), end, end_len, &ro, &it));
    OK(NULL, etch_iter_len(it, &len));
    OK(NULL, etch_iter_count(it, &count));
    CHECK(len == 0 && count == 3);
    etch_iter_free(it);

    OK(NULL, etch_range_opts_init(&ro));
    ro.revision = first_rev;
    OK(db, etch_range(db, S("svc/"), end, end_len, &ro, &it));
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/a=1,") == 0);
    etch_iter_free(it);

    OK(NULL, etch_range_opts_init(&ro));
    ro.sort_order = ETCH_SORT_DESCEND;
    ro.sort_target = ETCH_SORT_KEY;
    OK(db, etch_range(db, S("svc/"), end, end_len, &ro, &it));
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/c=3,svc/b=2,svc/a=1,") == 0);
    etch_iter_free(it);

    OK(NULL, etch_range_opts_init(&ro));
    ro.min_mod_revision = first_rev + 1;
    OK(db, etch_range(db, S("svc/"), end, end_len, &ro, &it));
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/b=2,svc/c=3,") == 0);
    etch_iter_free(it);

    /* Future revision; an iterator outlives later writes (it is a snapshot). */
    OK(NULL, etch_range_opts_init(&ro));
    ro.revision = now + 100;
    it = (etch_iter *)0x1;
    CHECK_RC(db, etch_range(db, S("svc/"), end, end_len, &ro, &it), ETCH_FUTURE_REV);
    CHECK(it == NULL);
    OK(db, etch_range(db, S("svc/"), end, end_len, NULL, &it));
    put(db, "svc/zz", "late");
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/a=1,svc/b=2,svc/c=3,") == 0);
    etch_iter_free(it);

    /* delete_range with prev_kvs. */
    int64_t deleted, drev;
    OK(db, etch_delete_range(db, S("svc/b"), S("svd"), &deleted, &drev, &it));
    CHECK(deleted == 3); /* svc/b, svc/c, svc/zz */
    dump(it, buf, sizeof buf);
    CHECK(strcmp(buf, "svc/b=2,svc/c=3,svc/zz=late,") == 0);
    etch_iter_free(it);
    OK(db, etch_revision(db, &rev));
    CHECK(drev == rev);
    OK(db, etch_delete_range(db, S("svc/b"), S("svd"), &deleted, &drev, NULL));
    CHECK(deleted == 0 && drev == rev); /* nothing deleted: revision unchanged */

    /* prefix_end edge cases. */
    const uint8_t ff[] = {'a', 0xff, 0xff};
    OK(NULL, etch_prefix_end(ff, sizeof ff, end, sizeof end, &end_len));
    CHECK(end_len == 1 && end[0] == 'b');
    const uint8_t all_ff[] = {0xff};
    OK(NULL, etch_prefix_end(all_ff, 1, end, sizeof end, &end_len));
    CHECK(end_len == 1 && end[0] == 0);
    CHECK_RC(NULL, etch_prefix_end(S("abc"), end, 2, &end_len), ETCH_INVALID);
}

static void test_maintenance(etch_db *db, const char *dir) {
    char path[4096], out[4096];
    etch_store_status st;
    etch_check_report rep;
    int64_t rev, at, snap_rev;
    uint64_t size, before, after;
    uint32_t h1, h2;

    for (int i = 0; i < 50; i++) {
        char k[32];
        snprintf(k, sizeof k, "m/%03d", i);
        put(db, k, "some value that takes a little room");
    }
    OK(db, etch_revision(db, &rev));
    OK(db, etch_status(db, &st));
    CHECK(st.revision == rev && st.page_size == 4096 && st.key_count >= 50);
    CHECK(st.file_size > 0);
    OK(db, etch_check(db, &rep));
    CHECK(rep.keys == st.key_count && rep.tree_pages > 0);
    OK(db, etch_check(db, NULL));

    OK(db, etch_hash_kv(db, 0, &h1));
    OK(db, etch_hash_kv(db, rev, &h2));
    CHECK(h1 == h2);
    OK(db, etch_hash_kv(db, rev - 1, &h2));
    CHECK(h1 != h2);

    OK(db, etch_snapshot(db, path_in(path, sizeof path, dir, "kv.snap"), &snap_rev, &size));
    CHECK(snap_rev == rev && size > 0);
    CHECK_RC(db, etch_snapshot(db, path, NULL, NULL), ETCH_IO); /* exists */

    OK(db, etch_sync(db));
    OK(db, etch_checkpoint(db));

    /* Compact: older reads fail, compacting again at or below fails. */
    OK(db, etch_compact(db, rev, &at));
    CHECK(at == rev);
    etch_iter *it = NULL;
    etch_range_opts ro = {0};
    ro.revision = rev - 1;
    CHECK_RC(db, etch_range(db, S("m/"), NULL, 0, &ro, &it), ETCH_COMPACTED);
    CHECK(it == NULL);
    CHECK_RC(db, etch_compact(db, rev, NULL), ETCH_COMPACTED);
    CHECK_RC(db, etch_compact(db, rev + 1000, NULL), ETCH_FUTURE_REV);
    CHECK_RC(db, etch_hash_kv(db, rev - 1, &h2), ETCH_COMPACTED);

    OK(db, etch_delete_range(db, S("m/"), S("m0"), NULL, NULL, NULL));
    OK(db, etch_revision(db, &rev));
    OK(db, etch_compact(db, rev, NULL));
    OK(db, etch_defrag(db, &before, &after));
    CHECK(after > 0 && after <= before);
    OK(db, etch_defrag(db, NULL, NULL));
    OK(db, etch_check(db, NULL));

    /* Restore the snapshot into a new file and compare hashes. */
    etch_db *restored = NULL;
    etch_options o;
    OK(NULL, etch_options_init(&o, sizeof o));
    o.wal_capacity = 1 << 20;
    OK(NULL, etch_restore(path, path_in(out, sizeof out, dir, "restored.etch"), &o, &restored));
    CHECK(restored != NULL);
    OK(restored, etch_revision(restored, &rev));
    CHECK(rev == snap_rev);
    OK(restored, etch_hash_kv(restored, 0, &h2));
    CHECK(h2 == h1);
    OK(NULL, etch_close(restored));
    /* The output must not exist. */
    CHECK_RC(NULL, etch_restore(path, out, NULL, &restored), ETCH_IO);
    CHECK(restored == NULL);
}

/* On a member or remote handle the calls only a local file offers say so with a typed code;
 * the member-only call refuses the other two kinds of handle. */
static void test_local_only_calls_elsewhere_are_unsupported(etch_db *db) {
    if (db == NULL) return;
    etch_store_status st;
    uint64_t id = 0, leader = 0;
    CHECK_RC(db, etch_status(db, &st), ETCH_UNSUPPORTED);
    CHECK(strstr(etch_errmsg(db), "etch_status is not available on") != NULL);
    CHECK_RC(db, etch_defrag(db, NULL, NULL), ETCH_UNSUPPORTED);
    CHECK_RC(db, etch_check(db, NULL), ETCH_UNSUPPORTED);
    CHECK_RC(db, etch_sync(db), ETCH_UNSUPPORTED);
    CHECK_RC(db, etch_checkpoint(db), ETCH_UNSUPPORTED);
    CHECK_RC(db, etch_snapshot(db, "never-written.snap", NULL, NULL), ETCH_UNSUPPORTED);
    int ro = -1;
    OK(db, etch_is_read_only(db, &ro));
    CHECK(ro == 0);
    if (backend() == BACKEND_MEMBER) {
        OK(db, etch_member_info(db, &id, &leader));
        CHECK(id >= 1 && id <= 3 && leader >= 1 && leader <= 3 && leader != id);
    } else {
        CHECK_RC(db, etch_member_info(db, &id, &leader), ETCH_UNSUPPORTED);
    }
    /* Both keep working afterwards, and agree on the hash of the keyspace. */
    uint32_t h1 = 0, h2 = 0;
    OK(db, etch_hash_kv(db, 0, &h1));
    OK(db, etch_hash_kv(db, 0, &h2));
    CHECK(h1 == h2);
}

static void test_reopen(const char *dir) {
    etch_db *db = open_test_db(dir, "reopen.etch");
    put(db, "persist", "yes");
    OK(NULL, etch_close(db));
    db = open_test_db(dir, "reopen.etch");
    etch_kv *kv;
    OK(db, etch_get(db, S("persist"), &kv));
    CHECK(bytes_eq(kv->value, kv->value_len, "yes"));
    etch_kv_free(kv);
    OK(NULL, etch_close(db));
    OK(NULL, etch_close(NULL));
    /* A NULL options pointer means the defaults. */
    char path[4096];
    OK(NULL, etch_open(path_in(path, sizeof path, dir, "defaults.etch"), NULL, &db));
    OK(db, etch_put(db, S("k"), S("v"), NULL, NULL, NULL));
    OK(NULL, etch_close(db));
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    test_version();
    etch_db *db = open_core_db(argv[1], "kv.etch");
    test_put_get(db);
    test_range(db);
    if (backend_is_local()) {
        test_maintenance(db, argv[1]);
        test_local_only_calls_elsewhere_are_unsupported(NULL);
    } else {
        test_local_only_calls_elsewhere_are_unsupported(db);
    }
    close_core_db(db);
    if (backend_is_local()) test_reopen(argv[1]);
    printf("test_kv: ok\n");
    return 0;
}
