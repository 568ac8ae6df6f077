/* etch from C: open a store, write, read at two revisions, list a prefix, compare-and-swap,
 * watch with a callback, use a lease, and close. Copy it as a starting point.
 *
 * Build (from the repository root, after `cargo build --release -p etch-ffi`):
 *   cc ffi/examples/quickstart.c -Iffi/include target/release/libetch.a -lpthread -ldl -lm
 * or, with etch installed (ffi/install.sh): cc quickstart.c $(pkg-config --cflags --libs etch)
 *
 * Run: ./a.out [file]   (default ./quickstart-c.etch) */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etch.h"

/* Stops with the status and the handle's message on any failure. */
static void must(etch_db *db, int rc, const char *what) {
    if (rc != ETCH_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, etch_strerror(rc), etch_errmsg(db));
        exit(1);
    }
}

/* Keys and values are (pointer, length) pairs: this macro passes a C string as one. */
#define STR(s) (const uint8_t *)(s), strlen(s)

/* Watch callback: runs on a library thread; resp is valid only during the call. */
static void on_change(void *ctx, const etch_watch_resp *resp) {
    atomic_int *seen = ctx; /* shared with main: atomic */
    for (size_t i = 0; i < resp->event_count; i++) {
        const etch_event *ev = &resp->events[i];
        printf("  watch: %s %.*s at revision %lld\n",
               ev->kind == ETCH_EVENT_PUT ? "PUT" : "DELETE", (int)ev->kv.key_len,
               (const char *)ev->kv.key, (long long)ev->kv.mod_revision);
        atomic_fetch_add(seen, 1);
    }
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "quickstart-c.etch";
    printf("etch %s (header %d.%d.%d)\n", etch_version(), ETCH_VERSION_MAJOR,
           ETCH_VERSION_MINOR, ETCH_VERSION_PATCH);

    etch_options opts;
    etch_options_init(&opts, sizeof opts);
    opts.durability = ETCH_DURABILITY_IMMEDIATE; /* the default: fsync before returning */
    etch_db *db = NULL;
    must(NULL, etch_open(path, &opts, &db), "open");

    /* A watch on the "svc/" prefix, delivered to a callback. */
    uint8_t end[16];
    size_t end_len;
    must(NULL, etch_prefix_end(STR("svc/"), end, sizeof end, &end_len), "prefix_end");
    atomic_int seen = 0;
    etch_watch *watch = NULL;
    must(db, etch_watch_start(db, STR("svc/"), end, end_len, NULL, on_change, &seen, &watch),
         "watch");

    /* Writes. */
    int64_t first = 0;
    must(db, etch_put(db, STR("config/mode"), STR("fast"), NULL, &first, NULL), "put");
    must(db, etch_put(db, STR("config/mode"), STR("safe"), NULL, NULL, NULL), "put");
    must(db, etch_put(db, STR("svc/api/0"), STR("10.0.0.1"), NULL, NULL, NULL), "put");
    must(db, etch_put(db, STR("svc/api/1"), STR("10.0.0.2"), NULL, NULL, NULL), "put");

    /* Read the current value with its metadata; the caller owns kv. */
    etch_kv *kv = NULL;
    must(db, etch_get(db, STR("config/mode"), &kv), "get");
    printf("config/mode = %.*s (version %lld, mod revision %lld)\n", (int)kv->value_len,
           (const char *)kv->value, (long long)kv->version, (long long)kv->mod_revision);
    etch_kv_free(kv);

    /* Read it as it was at an older revision. */
    etch_range_opts ro;
    etch_range_opts_init(&ro);
    ro.revision = first;
    etch_iter *it = NULL;
    const etch_kv *old;
    must(db, etch_range(db, STR("config/mode"), NULL, 0, &ro, &it), "range");
    if (etch_iter_next(it, &old) == ETCH_OK) {
        printf("at revision %lld it was %.*s\n", (long long)first, (int)old->value_len,
               (const char *)old->value);
    }
    etch_iter_free(it);

    /* List a prefix. */
    must(db, etch_range(db, STR("svc/"), end, end_len, NULL, &it), "range");
    const etch_kv *item;
    while (etch_iter_next(it, &item) == ETCH_OK) {
        printf("  %.*s = %.*s\n", (int)item->key_len, (const char *)item->key,
               (int)item->value_len, (const char *)item->value);
    }
    etch_iter_free(it);

    /* Compare-and-swap: become leader only if nobody is. */
    etch_txn *txn = NULL;
    etch_txn_result *res = NULL;
    int won = 0;
    must(NULL, etch_txn_new(&txn), "txn");
    must(NULL, etch_txn_compare(txn, STR("leader"), NULL, 0, ETCH_CMP_VERSION, ETCH_CMP_EQUAL, 0,
                                NULL, 0), "compare");
    must(NULL, etch_txn_put(txn, ETCH_TXN_THEN, STR("leader"), STR("me"), NULL, 0), "txn put");
    must(db, etch_txn_commit(db, txn, &res), "commit");
    etch_txn_result_info(res, &won, NULL, NULL);
    printf("became leader: %s\n", won ? "yes" : "no (someone already is)");
    etch_txn_result_free(res);
    etch_txn_free(txn);

    /* A lease: the key goes away when the lease is revoked (or expires). */
    int64_t lease = 0;
    must(db, etch_lease_grant(db, 30, 0, &lease), "lease grant");
    etch_put_opts po = {0};
    po.lease = lease;
    must(db, etch_put(db, STR("svc/api/2"), STR("10.0.0.3"), &po, NULL, NULL), "put");
    must(db, etch_lease_revoke(db, lease, NULL), "lease revoke");
    int rc = etch_get(db, STR("svc/api/2"), &kv);
    printf("svc/api/2 after revoking its lease: %s\n", rc == ETCH_NOT_FOUND ? "gone" : "still there");
    if (rc == ETCH_OK) etch_kv_free(kv);

    /* Give the watch a moment, then stop it (no callback runs after close returns). */
    for (int i = 0; i < 500 && atomic_load(&seen) < 4; i++) usleep(10 * 1000);
    must(NULL, etch_watch_close(watch), "watch close");
    printf("watch saw %d events\n", atomic_load(&seen));

    etch_store_status st;
    must(db, etch_status(db, &st), "status");
    printf("revision %lld, %llu keys, file %llu bytes\n", (long long)st.revision,
           (unsigned long long)st.key_count, (unsigned long long)st.file_size);
    must(NULL, etch_close(db), "close");
    return 0;
}
