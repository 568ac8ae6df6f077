/* Tiny assertion helpers shared by the C test suite. Each test program takes one argument, a
 * scratch directory, and exits 0 on success. */
#ifndef ETCH_TEST_CHECK_H
#define ETCH_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etch.h"

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);    \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

/* Checks that `call` returns `want`; on mismatch prints the code and the handle's message. */
#define CHECK_RC(db, call, want)                                                        \
    do {                                                                                \
        int rc_ = (call);                                                               \
        if (rc_ != (want)) {                                                            \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %d; errmsg: %s\n",        \
                    __FILE__, __LINE__, #call, rc_, etch_strerror(rc_), (want),         \
                    etch_errmsg(db));                                                   \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

#define OK(db, call) CHECK_RC(db, call, ETCH_OK)

/* (pointer, length) of a string literal or C string, without its NUL. */
#define S(str) (const uint8_t *)(str), strlen(str)

/* True if the buffer (p, n) holds exactly the C string s. */
static inline int bytes_eq(const uint8_t *p, size_t n, const char *s) {
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* dir/name into buf. */
static inline const char *path_in(char *buf, size_t cap, const char *dir, const char *name) {
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    CHECK(n > 0 && (size_t)n < cap);
    return buf;
}

/* Opens dir/name with options fit for tests: relaxed durability (fsyncs do not matter here),
 * a small WAL, no automatic compaction. */
static inline etch_db *open_test_db(const char *dir, const char *name) {
    char path[4096];
    etch_options o;
    etch_db *db = NULL;
    OK(NULL, etch_options_init(&o, sizeof o));
    o.durability = ETCH_DURABILITY_RELAXED;
    o.wal_capacity = 1 << 20;
    o.auto_compaction_mode = ETCH_AUTO_COMPACTION_OFF;
    OK(NULL, etch_open(path_in(path, sizeof path, dir, name), &o, &db));
    CHECK(db != NULL);
    return db;
}

/* ---- Backends ----------------------------------------------------------------------------
 * The core cases (test_kv, test_txn, test_watch, test_lease) run on the backend the harness
 * names in ETCH_TEST_BACKEND: "local" (the default: a store file), "member" (a follower of a
 * 3-member cluster in this process, on an in-process network) or "remote" (an `etch serve`
 * the harness started, at ETCH_TEST_ENDPOINT). Cases a backend does not offer (maintenance of
 * the file, reopening it) run on "local" only. */

typedef enum { BACKEND_LOCAL, BACKEND_MEMBER, BACKEND_REMOTE } test_backend;

static inline test_backend backend(void) {
    const char *b = getenv("ETCH_TEST_BACKEND");
    if (b == NULL || strcmp(b, "local") == 0) return BACKEND_LOCAL;
    if (strcmp(b, "member") == 0) return BACKEND_MEMBER;
    CHECK(strcmp(b, "remote") == 0);
    return BACKEND_REMOTE;
}

static inline int backend_is_local(void) { return backend() == BACKEND_LOCAL; }

/* The two other members of the cluster open_core_db() made (closed by close_core_db()). */
static etch_db *other_members_[2];

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Three members of a new cluster on the in-process network named after dir/name; waits
 * (bounded) until they agree on a leader and returns a follower, so that every write and
 * linearizable read crosses the cluster. */
static inline etch_db *open_member_cluster(const char *dir, const char *name) {
    char net[4096], path[4096], file[256];
    etch_db *m[3] = {NULL, NULL, NULL};
    path_in(net, sizeof net, dir, name);
    for (int i = 0; i < 3; i++) {
        etch_member_config c;
        etch_options o;
        OK(NULL, etch_member_config_init(&c, sizeof c));
        OK(NULL, etch_options_init(&o, sizeof o));
        o.durability = ETCH_DURABILITY_RELAXED;
        o.wal_capacity = 1 << 20;
        o.auto_compaction_mode = ETCH_AUTO_COMPACTION_OFF;
        snprintf(file, sizeof file, "%s-m%d", name, i + 1);
        c.id = (uint64_t)(i + 1);
        c.path = path_in(path, sizeof path, dir, file);
        c.local_network = net;
        c.peers = "1,2,3";
        c.initialize = i == 0;
        c.heartbeat_ms = 100;
        c.election_timeout_ms = 1000;
        c.request_timeout_ms = 20000;
        OK(NULL, etch_open_member(&c, &o, &m[i]));
    }
    uint64_t leader = 0;
    for (int tries = 0;; tries++) {
        uint64_t seen[3];
        for (int i = 0; i < 3; i++) OK(m[i], etch_member_info(m[i], NULL, &seen[i]));
        if (seen[0] != 0 && seen[0] == seen[1] && seen[1] == seen[2]) {
            leader = seen[0];
            break;
        }
        CHECK(tries < 3000); /* 60 s */
        sleep_ms(20);
    }
    int follower = leader == 1 ? 1 : 0, k = 0;
    for (int i = 0; i < 3; i++) {
        if (i != follower) other_members_[k++] = m[i];
    }
    return m[follower];
}

/* A handle on the backend of this run (see above). */
static inline etch_db *open_core_db(const char *dir, const char *name) {
    etch_db *db = NULL;
    switch (backend()) {
    case BACKEND_LOCAL:
        return open_test_db(dir, name);
    case BACKEND_MEMBER:
        return open_member_cluster(dir, name);
    case BACKEND_REMOTE: {
        const char *endpoint = getenv("ETCH_TEST_ENDPOINT");
        CHECK(endpoint != NULL);
        etch_connect_options o;
        OK(NULL, etch_connect_options_init(&o, sizeof o));
        o.request_timeout_ms = 20000;
        OK(NULL, etch_connect(endpoint, &o, &db));
        CHECK(db != NULL);
        return db;
    }
    }
    return NULL;
}

/* Closes a handle from open_core_db() (and the rest of its cluster). */
static inline void close_core_db(etch_db *db) {
    OK(NULL, etch_close(db));
    for (int i = 0; i < 2; i++) {
        if (other_members_[i] != NULL) {
            OK(NULL, etch_close(other_members_[i]));
            other_members_[i] = NULL;
        }
    }
}

#endif
