/* The header's rules for edge cases: keys over max_key_size in reads, negative revisions,
 * compact(0), status after a checkpoint, the revision etch_write() committed at, and the
 * caught_up flag that ends a watch's replay of history. */
#include "check.h"

static void test_key_rules(etch_db *db) {
    uint8_t long_key[961];
    etch_kv *kv = (etch_kv *)(uintptr_t)0x1;
    memset(long_key, 'k', sizeof long_key);
    CHECK_RC(db, etch_put(db, long_key, sizeof long_key, S("v"), NULL, NULL, NULL),
             ETCH_TOO_LARGE);
    CHECK_RC(db, etch_get(db, long_key, sizeof long_key, &kv), ETCH_TOO_LARGE);
    CHECK(kv == NULL);
    CHECK(strstr(etch_errmsg(db), "maximum key size") != NULL);
    /* 960 bytes is allowed for both. */
    OK(db, etch_put(db, long_key, 960, S("v"), NULL, NULL, NULL));
    OK(db, etch_get(db, long_key, 960, &kv));
    CHECK(bytes_eq(kv->value, kv->value_len, "v"));
    etch_kv_free(kv);
    kv = (etch_kv *)(uintptr_t)0x1;
    CHECK_RC(db, etch_get(db, NULL, 0, &kv), ETCH_INVALID);
    CHECK(kv == NULL);
}

static void test_revision_rules(etch_db *db) {
    int64_t current = 0;
    uint32_t hash = 0;
    etch_iter *it = (etch_iter *)(uintptr_t)0x1;
    etch_watch *w = (etch_watch *)(uintptr_t)0x1;
    etch_range_opts ro = {0};
    etch_watch_opts wo = {0};

    OK(db, etch_put(db, S("r"), S("1"), NULL, NULL, NULL));
    CHECK_RC(db, etch_compact(db, -1, &current), ETCH_INVALID);
    CHECK(strstr(etch_errmsg(db), "negative") != NULL);
    CHECK_RC(db, etch_compact(db, 0, &current), ETCH_COMPACTED);
    CHECK_RC(db, etch_hash_kv(db, -1, &hash), ETCH_INVALID);
    OK(db, etch_hash_kv(db, 0, &hash));

    ro.revision = -1;
    CHECK_RC(db, etch_range(db, S("r"), NULL, 0, &ro, &it), ETCH_INVALID);
    CHECK(it == NULL);
    ro.revision = 0;
    ro.min_mod_revision = -5;
    CHECK_RC(db, etch_range(db, S("r"), NULL, 0, &ro, &it), ETCH_INVALID);
    ro.min_mod_revision = 0;
    OK(db, etch_range(db, S("r"), NULL, 0, &ro, &it));
    etch_iter_free(it);

    wo.start_revision = -1;
    CHECK_RC(db, etch_watch_open(db, S("r"), NULL, 0, &wo, &w), ETCH_INVALID);
    CHECK(w == NULL);
}

static void test_checkpoint_shows_in_status(etch_db *db) {
    etch_store_status st;
    for (int i = 0; i < 10; i++) {
        OK(db, etch_put(db, S("c"), S("value"), NULL, NULL, NULL));
    }
    OK(db, etch_status(db, &st));
    CHECK(st.wal_size > 0);
    OK(db, etch_checkpoint(db));
    OK(db, etch_status(db, &st));
    CHECK(st.wal_size == 0);
}

static int put_two(etch_wtxn *tx, void *ctx) {
    (void)ctx;
    OK(NULL, etch_wtxn_put(tx, S("w1"), S("a")));
    OK(NULL, etch_wtxn_put(tx, S("w2"), S("b")));
    return ETCH_OK;
}

static int read_only(etch_wtxn *tx, void *ctx) {
    etch_kv *kv = NULL;
    (void)ctx;
    CHECK_RC(NULL, etch_wtxn_get(tx, S("w1"), &kv), ETCH_OK);
    etch_kv_free(kv);
    return ETCH_OK;
}

static void test_write_reports_its_revision(etch_db *db) {
    int64_t at = -1, current = 0;
    etch_kv *kv = NULL;
    OK(db, etch_write(db, put_two, NULL, &at));
    OK(db, etch_revision(db, &current));
    CHECK(at == current);
    OK(db, etch_get(db, S("w2"), &kv));
    CHECK(kv->mod_revision == at);
    etch_kv_free(kv);
    /* Nothing written: the revision the reads were made at. */
    at = -1;
    OK(db, etch_write(db, read_only, NULL, &at));
    CHECK(at == current);
}

static void test_watch_replay_reports_catching_up(etch_db *db) {
    etch_watch *w = NULL;
    etch_watch_resp *r = NULL;
    etch_watch_opts wo = {0};
    size_t replayed = 0;
    int64_t first = 0;

    OK(db, etch_revision(db, &first));
    for (int i = 0; i < 3; i++) {
        OK(db, etch_put(db, S("h/key"), S("v"), NULL, NULL, NULL));
    }
    wo.start_revision = first + 1;
    OK(db, etch_watch_open(db, S("h/"), S("h0"), &wo, &w));
    for (;;) {
        OK(NULL, etch_watch_poll(w, 10000, &r));
        replayed += r->event_count;
        int done = r->caught_up;
        etch_watch_resp_free(r);
        if (done) {
            break;
        }
    }
    CHECK(replayed == 3);
    OK(db, etch_put(db, S("h/key"), S("live"), NULL, NULL, NULL));
    OK(NULL, etch_watch_poll(w, 10000, &r));
    CHECK(r->event_count == 1 && r->caught_up == 0);
    etch_watch_resp_free(r);
    OK(NULL, etch_watch_close(w));

    /* A replay over history with nothing matching still ends with the flag. */
    wo.start_revision = 1;
    OK(db, etch_watch_open(db, S("nothing/"), S("nothing0"), &wo, &w));
    OK(NULL, etch_watch_poll(w, 10000, &r));
    CHECK(r->caught_up == 1 && r->event_count == 0);
    etch_watch_resp_free(r);
    OK(NULL, etch_watch_close(w));

    /* A watch from now has nothing to replay and never flags. */
    OK(db, etch_watch_open(db, S("h/"), S("h0"), NULL, &w));
    CHECK_RC(NULL, etch_watch_poll(w, 0, &r), ETCH_NOT_FOUND);
    CHECK(r == NULL);
    OK(NULL, etch_watch_close(w));
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    etch_db *db = open_test_db(argv[1], "edges.etch");
    test_key_rules(db);
    test_revision_rules(db);
    test_checkpoint_shows_in_status(db);
    test_write_reports_its_revision(db);
    test_watch_replay_reports_catching_up(db);
    OK(NULL, etch_close(db));
    printf("test_edges: ok\n");
    return 0;
}
