/* The open options of issue 12: a WAL damaged in the middle (left by a writer killed with
 * SIGKILL, one byte flipped) refuses to open with ETCH_WAL_DAMAGED and changes nothing, then
 * opens with repair_wal and reports it through etch_wal_repair(); read-only opens (one, two at
 * once, writes refused, a writer excluded); lock_timeout_ms waiting for a writer that closes;
 * etch_options_init()'s size rule. */
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define KILLED_PUTS 40

/* Reads a whole file into a malloc'd buffer; *len receives its size. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    CHECK(n >= 0);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    CHECK(buf != NULL);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const uint8_t *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(buf, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A child process opens `path` with immediate durability, commits KILLED_PUTS puts (each
 * acknowledged, so each is durable before the next is written) and kills itself with SIGKILL:
 * no close, no checkpoint, the WAL stays full of acknowledged records. */
static void killed_writer(const char *path) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        etch_options o;
        etch_db *db = NULL;
        char key[16], value[128];
        if (etch_options_init(&o, sizeof o) != ETCH_OK) _exit(2);
        o.wal_capacity = 1 << 20;
        o.auto_compaction_mode = ETCH_AUTO_COMPACTION_OFF;
        if (etch_open(path, &o, &db) != ETCH_OK) _exit(3);
        for (int i = 0; i < KILLED_PUTS; i++) {
            snprintf(key, sizeof key, "k%03d", i);
            memset(value, 'a' + i % 26, sizeof value);
            if (etch_put(db, S(key), (const uint8_t *)value, sizeof value, NULL, NULL, NULL) !=
                ETCH_OK)
                _exit(4);
        }
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static int open_plain(const char *path, etch_db **db) {
    etch_options o;
    OK(NULL, etch_options_init(&o, sizeof o));
    o.wal_capacity = 1 << 20;
    o.auto_compaction_mode = ETCH_AUTO_COMPACTION_OFF;
    return etch_open(path, &o, db);
}

static void test_damaged_wal(const char *dir) {
    char path[4096], wal[4200], copy[4300];
    path_in(path, sizeof path, dir, "killed.etch");
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(copy, sizeof copy, "%s-wal.damaged", path);
    killed_writer(path);
    CHECK(file_exists(wal));

    size_t main_len = 0, wal_len = 0;
    uint8_t *main_image = read_file(path, &main_len);
    uint8_t *wal_image = read_file(wal, &wal_len);
    /* Read-only, the killed writer's WAL is replayed into memory: every put is there, and
     * neither file changes. */
    etch_options ro;
    OK(NULL, etch_options_init(&ro, sizeof ro));
    ro.read_only = 1;
    etch_db *reader = NULL;
    OK(NULL, etch_open(path, &ro, &reader));
    int64_t seen = 0;
    OK(reader, etch_revision(reader, &seen));
    CHECK(seen == KILLED_PUTS + 1);
    OK(NULL, etch_close(reader));
    size_t check_len = 0;
    uint8_t *check = read_file(wal, &check_len);
    CHECK(check_len == wal_len && memcmp(check, wal_image, wal_len) == 0);
    free(check);
    check = read_file(path, &check_len);
    CHECK(check_len == main_len && memcmp(check, main_image, main_len) == 0);
    free(check);

    size_t end = wal_len;
    while (end > 4096 && wal_image[end - 1] == 0) end--;
    CHECK(end > 4096);

    /* Flip one byte, from the middle of the log on, until the plain open refuses (a byte of
     * frame padding may be harmless); each probe starts from the killed writer's files. */
    etch_db *db = (etch_db *)(uintptr_t)0x1;
    size_t at = 4096 + (end - 4096) / 2;
    int rc = ETCH_OK;
    for (int probe = 0; probe < 64 && at < end; probe++, at++) {
        write_file(path, main_image, main_len);
        wal_image[at] ^= 0x80;
        write_file(wal, wal_image, wal_len);
        rc = open_plain(path, &db);
        if (rc == ETCH_WAL_DAMAGED) break;
        wal_image[at] ^= 0x80;
        if (rc == ETCH_OK) OK(NULL, etch_close(db));
    }
    CHECK_RC(NULL, rc, ETCH_WAL_DAMAGED);
    CHECK(db == NULL);
    CHECK(strstr(etch_errmsg(NULL), "WAL is damaged at offset") != NULL);
    CHECK(strcmp(etch_strerror(ETCH_WAL_DAMAGED), etch_strerror(ETCH_CORRUPT)) != 0);

    /* The refusal changed nothing: same WAL bytes, no copy; a second try refuses again. */
    size_t now_len = 0;
    uint8_t *now = read_file(wal, &now_len);
    CHECK(now_len == wal_len && memcmp(now, wal_image, wal_len) == 0);
    free(now);
    CHECK(!file_exists(copy));
    CHECK_RC(NULL, open_plain(path, &db), ETCH_WAL_DAMAGED);
    /* read-only refuses it too, and read_only cannot be combined with repair. */
    etch_options o;
    OK(NULL, etch_options_init(&o, sizeof o));
    o.read_only = 1;
    CHECK_RC(NULL, etch_open(path, &o, &db), ETCH_WAL_DAMAGED);
    o.repair_wal = 1;
    CHECK_RC(NULL, etch_open(path, &o, &db), ETCH_INVALID);
    CHECK(db == NULL);

    /* With repair: opens, keeps the damaged WAL, recovers the prefix, says what it dropped. */
    OK(NULL, etch_options_init(&o, sizeof o));
    o.repair_wal = 1;
    OK(NULL, etch_open(path, &o, &db));
    etch_wal_repair_report report;
    OK(db, etch_wal_repair(db, &report));
    CHECK(report.offset >= 4096 && report.offset <= at);
    CHECK(report.records_after > 0);
    CHECK(report.copy_path != NULL && strcmp(report.copy_path, copy) == 0);
    uint8_t *kept = read_file(copy, &now_len);
    CHECK(now_len == wal_len && memcmp(kept, wal_image, wal_len) == 0);
    free(kept);
    int64_t revision = 0;
    OK(db, etch_revision(db, &revision));
    /* One revision per put, starting at 1: every put is recovered, the damaged record, or
     * one of the records after it that the repair dropped. */
    CHECK((uint64_t)revision == report.last_good_seq + 1);
    CHECK((uint64_t)(revision - 1) + 1 + report.records_after == KILLED_PUTS);
    etch_kv *kv = NULL;
    OK(db, etch_get(db, S("k000"), &kv));
    etch_kv_free(kv);
    char last[16];
    snprintf(last, sizeof last, "k%03d", KILLED_PUTS - 1);
    CHECK_RC(db, etch_get(db, S(last), &kv), ETCH_NOT_FOUND);
    OK(db, etch_put(db, S("after"), S("repair"), NULL, NULL, NULL));
    OK(NULL, etch_close(db));

    /* The next open is a plain one with no repair to report. */
    OK(NULL, open_plain(path, &db));
    CHECK_RC(db, etch_wal_repair(db, &report), ETCH_NOT_FOUND);
    CHECK_RC(db, etch_wal_repair(db, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_wal_repair(NULL, &report), ETCH_INVALID);
    OK(NULL, etch_close(db));
    free(main_image);
    free(wal_image);
}

static void test_read_only(const char *dir) {
    char path[4096];
    path_in(path, sizeof path, dir, "ro.etch");
    etch_db *w = open_test_db(dir, "ro.etch");
    OK(w, etch_put(w, S("k"), S("v"), NULL, NULL, NULL));
    OK(NULL, etch_close(w));

    etch_options o;
    OK(NULL, etch_options_init(&o, sizeof o));
    o.read_only = 1;
    etch_db *a = NULL, *b = NULL, *writer = (etch_db *)(uintptr_t)0x1;
    OK(NULL, etch_open(path, &o, &a));
    OK(NULL, etch_open(path, &o, &b)); /* two read-only handles at once */
    int ro = 0;
    OK(a, etch_is_read_only(a, &ro));
    CHECK(ro == 1);
    etch_kv *kv = NULL;
    OK(b, etch_get(b, S("k"), &kv));
    CHECK(bytes_eq(kv->value, kv->value_len, "v"));
    etch_kv_free(kv);
    CHECK_RC(a, etch_put(a, S("k"), S("w"), NULL, NULL, NULL), ETCH_READONLY);
    CHECK(strstr(etch_errmsg(a), "read-only") != NULL);
    CHECK_RC(a, etch_compact(a, 1, NULL), ETCH_READONLY);
    etch_wal_repair_report report;
    CHECK_RC(a, etch_wal_repair(a, &report), ETCH_NOT_FOUND);
    /* A writer is excluded while they hold it. */
    CHECK_RC(NULL, open_plain(path, &writer), ETCH_LOCKED);
    CHECK(writer == NULL);
    OK(NULL, etch_close(a));
    OK(NULL, etch_close(b));

    /* A read-only open never creates a file. */
    char missing[4096];
    path_in(missing, sizeof missing, dir, "missing.etch");
    CHECK(etch_open(missing, &o, &a) != ETCH_OK);
    CHECK(a == NULL && !file_exists(missing));

    /* A writable handle reports 0. */
    OK(NULL, open_plain(path, &writer));
    OK(writer, etch_is_read_only(writer, &ro));
    CHECK(ro == 0);
    OK(NULL, etch_close(writer));
}

struct closer {
    etch_db *db;
};

static void *close_later(void *arg) {
    struct closer *c = arg;
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    OK(NULL, etch_close(c->db));
    return NULL;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_lock_timeout(const char *dir) {
    char path[4096];
    path_in(path, sizeof path, dir, "lock.etch");
    struct closer c = {open_test_db(dir, "lock.etch")};
    etch_db *second = (etch_db *)(uintptr_t)0x1;
    /* The default (0) fails at once. */
    CHECK_RC(NULL, open_plain(path, &second), ETCH_LOCKED);
    CHECK(second == NULL);

    pthread_t thread;
    double start = now_seconds();
    CHECK(pthread_create(&thread, NULL, close_later, &c) == 0);
    etch_options o;
    OK(NULL, etch_options_init(&o, sizeof o));
    o.lock_timeout_ms = 30000;
    OK(NULL, etch_open(path, &o, &second));
    double waited = now_seconds() - start;
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(waited >= 0.2 && waited < 30.0);

    /* A short timeout expires with ETCH_LOCKED while the holder stays. */
    etch_db *third = (etch_db *)(uintptr_t)0x1;
    o.lock_timeout_ms = 100;
    start = now_seconds();
    CHECK_RC(NULL, etch_open(path, &o, &third), ETCH_LOCKED);
    CHECK(third == NULL && now_seconds() - start >= 0.09);
    OK(NULL, etch_close(second));
}

static void test_options_size(void) {
    etch_options o;
    CHECK_RC(NULL, etch_options_init(&o, 8), ETCH_INVALID);
    CHECK_RC(NULL, etch_options_init(&o, sizeof o + 8), ETCH_INVALID);
    OK(NULL, etch_options_init(&o, sizeof o));
    CHECK(o.size == sizeof o && o.read_only == 0 && o.lock_timeout_ms == 0 &&
          o.repair_wal == 0);
    /* A size not set by etch_options_init() is refused by the open. */
    etch_db *db = (etch_db *)(uintptr_t)0x1;
    o.size = 3;
    CHECK_RC(NULL, etch_open("/nonexistent/x.etch", &o, &db), ETCH_INVALID);
    CHECK(db == NULL);
    CHECK(strstr(etch_errmsg(NULL), "etch_options_init") != NULL);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    /* First, while this process has no threads or handles: the fork of the killed writer. */
    test_damaged_wal(argv[1]);
    test_read_only(argv[1]);
    test_lock_timeout(argv[1]);
    test_options_size();
    printf("test_open: ok\n");
    return 0;
}
