/* Watch: polling (events, prev_kv, filters, history replay, timeout, progress, compaction
 * cancel, closed store) and callbacks on the library's thread (delivery to another thread,
 * close from inside the callback, the final status after etch_close()). */
#include <pthread.h>
#include <time.h>

#include "check.h"

static const uint8_t ALL[] = {0};

static etch_watch_resp *poll_one(etch_watch *w) {
    etch_watch_resp *resp = NULL;
    OK(NULL, etch_watch_poll(w, 5000, &resp));
    CHECK(resp != NULL && resp->status == ETCH_OK);
    return resp;
}

static void test_poll(etch_db *db) {
    etch_watch *w = NULL;
    etch_watch_resp *resp = NULL;
    uint8_t end[8];
    size_t end_len;
    int64_t rev;

    OK(NULL, etch_prefix_end(S("cfg/"), end, sizeof end, &end_len));
    etch_watch_opts wo = {0};
    wo.prev_kv = 1;
    OK(db, etch_watch_open(db, S("cfg/"), end, end_len, &wo, &w));

    /* Nothing yet: a zero timeout returns at once with NOT_FOUND. */
    resp = (etch_watch_resp *)0x1;
    CHECK_RC(NULL, etch_watch_poll(w, 0, &resp), ETCH_NOT_FOUND);
    CHECK(resp == NULL);

    OK(db, etch_put(db, S("cfg/a"), S("1"), NULL, NULL, NULL));
    OK(db, etch_put(db, S("other"), S("x"), NULL, NULL, NULL)); /* outside the range */
    OK(db, etch_put(db, S("cfg/a"), S("2"), NULL, &rev, NULL));
    OK(db, etch_delete_range(db, S("cfg/a"), NULL, 0, NULL, NULL, NULL));

    int puts = 0, deletes = 0;
    while (puts + deletes < 3) {
        resp = poll_one(w);
        CHECK(resp->canceled == 0 && resp->event_count > 0 && resp->events != NULL);
        for (size_t i = 0; i < resp->event_count; i++) {
            const etch_event *ev = &resp->events[i];
            CHECK(bytes_eq(ev->kv.key, ev->kv.key_len, "cfg/a"));
            if (ev->kind == ETCH_EVENT_PUT) {
                puts++;
                if (puts == 1) {
                    CHECK(bytes_eq(ev->kv.value, ev->kv.value_len, "1") && ev->prev_kv == NULL);
                } else {
                    CHECK(bytes_eq(ev->kv.value, ev->kv.value_len, "2"));
                    CHECK(ev->kv.mod_revision == rev && ev->kv.version == 2);
                    CHECK(ev->prev_kv != NULL &&
                          bytes_eq(ev->prev_kv->value, ev->prev_kv->value_len, "1"));
                }
            } else {
                CHECK(ev->kind == ETCH_EVENT_DELETE);
                deletes++;
                CHECK(ev->kv.mod_revision == rev + 1);
                CHECK(ev->prev_kv != NULL);
            }
        }
        etch_watch_resp_free(resp);
    }
    CHECK(puts == 2 && deletes == 1);
    OK(NULL, etch_watch_close(w));

    /* From a past revision, with a filter: history replays, deletes left out. */
    wo.start_revision = rev;
    wo.no_delete = 1;
    wo.prev_kv = 0;
    OK(db, etch_watch_open(db, S("cfg/"), end, end_len, &wo, &w));
    resp = poll_one(w);
    CHECK(resp->event_count == 1 && resp->events[0].kind == ETCH_EVENT_PUT);
    CHECK(resp->events[0].kv.mod_revision == rev && resp->events[0].prev_kv == NULL);
    etch_watch_resp_free(resp);
    CHECK_RC(NULL, etch_watch_poll(w, 10, &resp), ETCH_NOT_FOUND);
    OK(NULL, etch_watch_close(w));

    /* Progress notifications: an empty response after the interval (a remote server sends
     * them at its own interval, 10 minutes for etcd, so not there). */
    if (backend() != BACKEND_REMOTE) {
        etch_watch_opts po = {0};
        po.progress_notify_ms = 20;
        OK(db, etch_watch_open(db, ALL, 1, ALL, 1, &po, &w));
        resp = poll_one(w);
        CHECK(resp->event_count == 0 && resp->events == NULL && resp->canceled == 0);
        OK(db, etch_revision(db, &rev));
        CHECK(resp->header_revision == rev);
        etch_watch_resp_free(resp);
        OK(NULL, etch_watch_close(w));
    }

    /* Compaction past a watcher's position cancels it with the compact revision. */
    etch_watch_opts co = {0};
    co.start_revision = 2;
    OK(db, etch_revision(db, &rev));
    OK(db, etch_compact(db, rev, NULL));
    OK(db, etch_watch_open(db, ALL, 1, ALL, 1, &co, &w));
    resp = poll_one(w);
    CHECK(resp->canceled == 1 && resp->compact_revision == rev && resp->event_count == 0);
    etch_watch_resp_free(resp);
    CHECK_RC(NULL, etch_watch_poll(w, 0, &resp), ETCH_CLOSED);
    OK(NULL, etch_watch_close(w));

    /* Argument errors. */
    CHECK_RC(db, etch_watch_open(db, NULL, 0, NULL, 0, NULL, &w), ETCH_INVALID);
    CHECK(w == NULL);
    CHECK_RC(db, etch_watch_open(db, S("k"), NULL, 0, NULL, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_watch_open(NULL, S("k"), NULL, 0, NULL, &w), ETCH_INVALID);
    CHECK_RC(NULL, etch_watch_poll(NULL, 0, &resp), ETCH_INVALID);
    OK(db, etch_watch_open(db, S("k"), NULL, 0, NULL, &w));
    CHECK_RC(NULL, etch_watch_poll(w, -1, &resp), ETCH_INVALID);
    CHECK_RC(NULL, etch_watch_poll(w, 0, NULL), ETCH_INVALID);
    OK(NULL, etch_watch_close(w));
    OK(NULL, etch_watch_close(NULL));
    etch_watch_resp_free(NULL);
}

/* Callback side: events collected under a mutex, with the delivering thread recorded. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int events;
    int calls;
    int last_status;
    int saw_other_thread;
    pthread_t main_thread;
    etch_watch *self; /* closed from inside the callback when set */
    int closed_inside;
} sink;

static void on_resp(void *ctx, const etch_watch_resp *resp) {
    sink *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->events += (int)resp->event_count;
    s->last_status = resp->status;
    if (!pthread_equal(pthread_self(), s->main_thread)) {
        s->saw_other_thread = 1;
    }
    for (size_t i = 0; i < resp->event_count; i++) {
        CHECK(resp->events[i].kv.key_len > 0);
    }
    if (s->self != NULL && s->events > 0 && !s->closed_inside) {
        s->closed_inside = 1;
        OK(NULL, etch_watch_close(s->self)); /* does not wait for itself */
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void sink_init(sink *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->main_thread = pthread_self();
    s->last_status = -1;
}

static void sink_destroy(sink *s) {
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

/* Waits (up to 10 s) until pred(s) holds. */
static void wait_for(sink *s, int (*pred)(sink *)) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&s->mu);
    while (!pred(s)) {
        int rc = pthread_cond_timedwait(&s->cv, &s->mu, &deadline);
        CHECK(rc == 0);
    }
    pthread_mutex_unlock(&s->mu);
}

static int three_events(sink *s) { return s->events >= 3; }
static int one_event(sink *s) { return s->events >= 1; }
static int closed_status(sink *s) { return s->last_status == ETCH_CLOSED; }

static void test_callback(const char *dir) {
    etch_db *db = open_test_db(dir, "watch-cb.etch");
    sink s;
    etch_watch *w = NULL;

    /* Events arrive on another thread. */
    sink_init(&s);
    OK(db, etch_watch_start(db, S("job/"), S("job0"), NULL, on_resp, &s, &w));
    for (int i = 0; i < 3; i++) {
        char k[16];
        snprintf(k, sizeof k, "job/%d", i);
        OK(db, etch_put(db, S(k), S("v"), NULL, NULL, NULL));
    }
    wait_for(&s, three_events);
    OK(NULL, etch_watch_close(w));
    pthread_mutex_lock(&s.mu);
    CHECK(s.events == 3 && s.saw_other_thread && s.last_status == ETCH_OK);
    pthread_mutex_unlock(&s.mu);
    sink_destroy(&s);

    /* Closing from inside the callback. */
    sink_init(&s);
    OK(db, etch_watch_start(db, S("job/"), S("job0"), NULL, on_resp, &s, &w));
    pthread_mutex_lock(&s.mu);
    s.self = w;
    pthread_mutex_unlock(&s.mu);
    OK(db, etch_put(db, S("job/x"), S("v"), NULL, NULL, NULL));
    wait_for(&s, one_event);
    pthread_mutex_lock(&s.mu);
    CHECK(s.closed_inside == 1);
    pthread_mutex_unlock(&s.mu);

    /* A watch outliving its store: the callback's last call carries ETCH_CLOSED, and a
     * polling watch reports ETCH_CLOSED. */
    sink s2;
    sink_init(&s2);
    etch_watch *w2 = NULL, *wp = NULL;
    etch_watch_resp *resp = NULL;
    OK(db, etch_watch_start(db, S("z"), NULL, 0, NULL, on_resp, &s2, &w2));
    OK(db, etch_watch_open(db, S("z"), NULL, 0, NULL, &wp));
    OK(NULL, etch_close(db));
    wait_for(&s2, closed_status);
    CHECK_RC(NULL, etch_watch_poll(wp, 0, &resp), ETCH_CLOSED);
    CHECK(resp == NULL);
    CHECK_RC(NULL, etch_watch_poll(wp, 0, &resp), ETCH_CLOSED);
    OK(NULL, etch_watch_close(wp));
    OK(NULL, etch_watch_close(w2));
    sink_destroy(&s2);
    sink_destroy(&s);
}

static void test_callback_errors(etch_db *db) {
    etch_watch *w = (etch_watch *)0x1;
    sink s;
    sink_init(&s);
    CHECK_RC(db, etch_watch_start(db, S("k"), NULL, 0, NULL, NULL, &s, &w), ETCH_INVALID);
    CHECK(w == NULL);
    CHECK_RC(db, etch_watch_start(db, NULL, 0, NULL, 0, NULL, on_resp, &s, &w), ETCH_INVALID);
    CHECK_RC(db, etch_watch_start(db, S("k"), NULL, 0, NULL, on_resp, &s, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_watch_start(NULL, S("k"), NULL, 0, NULL, on_resp, &s, &w),
             ETCH_INVALID);
    /* A callback watch cannot be polled. */
    etch_watch_resp *resp;
    OK(db, etch_watch_start(db, S("k"), NULL, 0, NULL, on_resp, &s, &w));
    CHECK_RC(NULL, etch_watch_poll(w, 0, &resp), ETCH_INVALID);
    OK(NULL, etch_watch_close(w));
    sink_destroy(&s);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    etch_db *db = open_core_db(argv[1], "watch.etch");
    test_poll(db);
    test_callback_errors(db);
    close_core_db(db);
    /* Callbacks and the final status after etch_close() of a local store. */
    if (backend_is_local()) test_callback(argv[1]);
    printf("test_watch: ok\n");
    return 0;
}
