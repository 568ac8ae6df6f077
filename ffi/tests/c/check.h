/* Tiny assertion helpers shared by the C test suite. Each test program takes one argument, a
 * scratch directory, and exits 0 on success. */
#ifndef ETCH_TEST_CHECK_H
#define ETCH_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
