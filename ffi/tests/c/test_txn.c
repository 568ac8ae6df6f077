/* Transactions: compares on every target with every relation, then/else branches, the result
 * reader, nested transactions, and the errors a commit can report. */
#include "check.h"

/* Commits a transaction of one compare on key "k" and one put in each branch; returns
 * whether the "then" branch ran. */
static int holds(etch_db *db, int target, int op, int64_t number, const char *value) {
    etch_txn *txn = NULL;
    etch_txn_result *res = NULL;
    int succeeded = -1;
    OK(NULL, etch_txn_new(&txn));
    OK(NULL, etch_txn_compare(txn, S("k"), NULL, 0, target, op, number,
                              (const uint8_t *)value, value ? strlen(value) : 0));
    OK(db, etch_txn_commit(db, txn, &res));
    OK(NULL, etch_txn_result_info(res, &succeeded, NULL, NULL));
    etch_txn_result_free(res);
    etch_txn_free(txn);
    CHECK(succeeded == 0 || succeeded == 1);
    return succeeded;
}

static void test_compares(etch_db *db) {
    int64_t rev;
    /* Missing key: version/create/mod/lease are 0, value compares never hold. */
    CHECK(holds(db, ETCH_CMP_VERSION, ETCH_CMP_EQUAL, 0, NULL));
    CHECK(!holds(db, ETCH_CMP_VALUE, ETCH_CMP_EQUAL, 0, ""));
    OK(db, etch_put(db, S("k"), S("m"), NULL, &rev, NULL));
    CHECK(holds(db, ETCH_CMP_VALUE, ETCH_CMP_EQUAL, 0, "m"));
    CHECK(holds(db, ETCH_CMP_VALUE, ETCH_CMP_NOT_EQUAL, 0, "x"));
    CHECK(holds(db, ETCH_CMP_VALUE, ETCH_CMP_LESS, 0, "n"));
    CHECK(holds(db, ETCH_CMP_VALUE, ETCH_CMP_GREATER, 0, "l"));
    CHECK(!holds(db, ETCH_CMP_VALUE, ETCH_CMP_GREATER, 0, "m"));
    CHECK(holds(db, ETCH_CMP_VERSION, ETCH_CMP_EQUAL, 1, NULL));
    CHECK(holds(db, ETCH_CMP_VERSION, ETCH_CMP_GREATER, 0, NULL));
    CHECK(holds(db, ETCH_CMP_CREATE, ETCH_CMP_EQUAL, rev, NULL));
    CHECK(holds(db, ETCH_CMP_MOD, ETCH_CMP_LESS, rev + 1, NULL));
    CHECK(!holds(db, ETCH_CMP_MOD, ETCH_CMP_NOT_EQUAL, rev, NULL));
    CHECK(holds(db, ETCH_CMP_LEASE, ETCH_CMP_EQUAL, 0, NULL));
}

static void test_branches_and_reader(etch_db *db) {
    etch_txn *txn = NULL;
    etch_txn_result *res = NULL;
    etch_txn_op_result op;
    etch_iter *it = NULL;
    const etch_kv *kv;
    int succeeded;
    int64_t rev, before;
    size_t count;

    OK(db, etch_put(db, S("leader"), S("old"), NULL, NULL, NULL));
    OK(db, etch_put(db, S("c/1"), S("one"), NULL, NULL, NULL));
    OK(db, etch_put(db, S("c/2"), S("two"), NULL, NULL, NULL));
    OK(db, etch_revision(db, &before));

    /* CAS on "leader": holds, so then = put(prev_kv) + range (sees the put) + delete(prev). */
    OK(NULL, etch_txn_new(&txn));
    OK(NULL, etch_txn_compare(txn, S("leader"), NULL, 0, ETCH_CMP_VALUE, ETCH_CMP_EQUAL, 0,
                              S("old")));
    OK(NULL, etch_txn_put(txn, ETCH_TXN_THEN, S("leader"), S("me"), NULL, 1));
    OK(NULL, etch_txn_range(txn, ETCH_TXN_THEN, S("leader"), NULL, 0, NULL));
    OK(NULL, etch_txn_delete_range(txn, ETCH_TXN_THEN, S("c/"), S("c0"), 1));
    OK(NULL, etch_txn_range(txn, ETCH_TXN_ELSE, S("leader"), NULL, 0, NULL));
    OK(db, etch_txn_commit(db, txn, &res));
    OK(NULL, etch_txn_result_info(res, &succeeded, &rev, &count));
    CHECK(succeeded == 1 && rev == before + 1 && count == 3);

    OK(NULL, etch_txn_result_op(res, 0, &op));
    CHECK(op.kind == ETCH_OP_PUT && op.count == 1 && op.revision == rev);
    OK(NULL, etch_txn_result_kvs(res, 0, &it));
    OK(NULL, etch_iter_next(it, &kv));
    CHECK(bytes_eq(kv->value, kv->value_len, "old"));
    CHECK(etch_iter_next(it, &kv) == ETCH_NOT_FOUND);
    etch_iter_free(it);

    OK(NULL, etch_txn_result_op(res, 1, &op));
    CHECK(op.kind == ETCH_OP_RANGE && op.count == 1 && op.more == 0);
    OK(NULL, etch_txn_result_kvs(res, 1, &it));
    OK(NULL, etch_iter_next(it, &kv));
    CHECK(bytes_eq(kv->value, kv->value_len, "me") && kv->mod_revision == rev);
    etch_iter_free(it);

    OK(NULL, etch_txn_result_op(res, 2, &op));
    CHECK(op.kind == ETCH_OP_DELETE && op.count == 2);
    OK(NULL, etch_txn_result_kvs(res, 2, &it));
    size_t n;
    OK(NULL, etch_iter_len(it, &n));
    CHECK(n == 2);
    etch_iter_free(it);

    CHECK_RC(NULL, etch_txn_result_op(res, 3, &op), ETCH_INVALID);
    it = (etch_iter *)0x1;
    CHECK_RC(NULL, etch_txn_result_kvs(res, 3, &it), ETCH_INVALID);
    CHECK(it == NULL);
    etch_txn_result *nested = (etch_txn_result *)0x1;
    CHECK_RC(NULL, etch_txn_result_nested(res, 0, &nested), ETCH_INVALID);
    CHECK(nested == NULL);
    etch_txn_result_free(res);

    /* The same builder again: the compare now fails, so the else branch runs (a read). */
    OK(db, etch_txn_commit(db, txn, &res));
    OK(NULL, etch_txn_result_info(res, &succeeded, &rev, &count));
    CHECK(succeeded == 0 && count == 1);
    OK(db, etch_revision(db, &before));
    CHECK(rev == before); /* wrote nothing */
    OK(NULL, etch_txn_result_kvs(res, 0, &it));
    OK(NULL, etch_iter_next(it, &kv));
    CHECK(bytes_eq(kv->value, kv->value_len, "me"));
    etch_iter_free(it);
    etch_txn_result_free(res);
    etch_txn_free(txn);
}

static void test_nested(etch_db *db) {
    etch_txn *outer = NULL, *inner = NULL;
    etch_txn_result *res = NULL, *nested = NULL;
    etch_txn_op_result op;
    int succeeded;
    size_t count;

    OK(NULL, etch_txn_new(&inner));
    OK(NULL, etch_txn_compare(inner, S("n/flag"), NULL, 0, ETCH_CMP_VERSION, ETCH_CMP_EQUAL, 0,
                              NULL, 0));
    OK(NULL, etch_txn_put(inner, ETCH_TXN_THEN, S("n/a"), S("1"), NULL, 0));
    OK(NULL, etch_txn_put(inner, ETCH_TXN_ELSE, S("n/b"), S("1"), NULL, 0));
    OK(NULL, etch_txn_new(&outer));
    OK(NULL, etch_txn_put(outer, ETCH_TXN_THEN, S("n/outer"), S("x"), NULL, 0));
    OK(NULL, etch_txn_nest(outer, ETCH_TXN_THEN, inner));
    CHECK_RC(NULL, etch_txn_nest(outer, ETCH_TXN_THEN, outer), ETCH_INVALID);
    etch_txn_free(inner); /* nest copied it */
    OK(db, etch_txn_commit(db, outer, &res));
    OK(NULL, etch_txn_result_info(res, &succeeded, NULL, &count));
    CHECK(succeeded == 1 && count == 2);
    OK(NULL, etch_txn_result_op(res, 1, &op));
    CHECK(op.kind == ETCH_OP_TXN && op.succeeded == 1 && op.count == 1);
    etch_iter *it = (etch_iter *)0x1;
    CHECK_RC(NULL, etch_txn_result_kvs(res, 1, &it), ETCH_INVALID);
    CHECK(it == NULL);
    OK(NULL, etch_txn_result_nested(res, 1, &nested));
    OK(NULL, etch_txn_result_info(nested, &succeeded, NULL, &count));
    CHECK(succeeded == 1 && count == 1);
    OK(NULL, etch_txn_result_op(nested, 0, &op));
    CHECK(op.kind == ETCH_OP_PUT);
    etch_txn_result_free(nested);
    etch_txn_result_free(res);
    etch_txn_free(outer);

    etch_kv *kv;
    OK(db, etch_get(db, S("n/a"), &kv));
    etch_kv_free(kv);
    CHECK_RC(db, etch_get(db, S("n/b"), &kv), ETCH_NOT_FOUND);
}

static void test_errors(etch_db *db) {
    etch_txn *txn = NULL;
    etch_txn_result *res = (etch_txn_result *)0x1;

    /* Builder argument errors. */
    CHECK_RC(NULL, etch_txn_new(NULL), ETCH_INVALID);
    OK(NULL, etch_txn_new(&txn));
    CHECK_RC(NULL, etch_txn_compare(txn, S("k"), NULL, 0, 99, ETCH_CMP_EQUAL, 0, NULL, 0),
             ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_compare(txn, S("k"), NULL, 0, ETCH_CMP_MOD, 99, 0, NULL, 0),
             ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_compare(NULL, S("k"), NULL, 0, ETCH_CMP_MOD, 0, 0, NULL, 0),
             ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_compare(txn, S("k"), NULL, 0, ETCH_CMP_VALUE, 0, 0, NULL, 3),
             ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_put(txn, 7, S("k"), S("v"), NULL, 0), ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_put(NULL, ETCH_TXN_THEN, S("k"), S("v"), NULL, 0), ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_delete_range(txn, 7, S("k"), NULL, 0, 0), ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_delete_range(NULL, 0, S("k"), NULL, 0, 0), ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_range(txn, 7, S("k"), NULL, 0, NULL), ETCH_INVALID);
    etch_range_opts bad = {0};
    bad.sort_order = 42;
    CHECK_RC(NULL, etch_txn_range(txn, ETCH_TXN_THEN, S("k"), NULL, 0, &bad), ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_range(NULL, 0, S("k"), NULL, 0, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_nest(txn, 0, NULL), ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_nest(NULL, 0, txn), ETCH_INVALID);
    CHECK_RC(NULL, etch_txn_commit(NULL, txn, &res), ETCH_INVALID);
    CHECK_RC(db, etch_txn_commit(db, NULL, &res), ETCH_INVALID);
    CHECK(res == NULL);
    CHECK_RC(db, etch_txn_commit(db, txn, NULL), ETCH_INVALID);

    /* Duplicate key in one branch: nothing is written. */
    OK(NULL, etch_txn_put(txn, ETCH_TXN_THEN, S("dup"), S("1"), NULL, 0));
    OK(NULL, etch_txn_put(txn, ETCH_TXN_THEN, S("dup"), S("2"), NULL, 0));
    CHECK_RC(db, etch_txn_commit(db, txn, &res), ETCH_INVALID);
    CHECK(res == NULL);
    CHECK(strstr(etch_errmsg(db), "duplicate key") != NULL);
    etch_kv *kv;
    CHECK_RC(db, etch_get(db, S("dup"), &kv), ETCH_NOT_FOUND);
    etch_txn_free(txn);

    /* Too many operations (the test store allows 128 per branch). */
    OK(NULL, etch_txn_new(&txn));
    for (int i = 0; i < 129; i++) {
        char k[16];
        snprintf(k, sizeof k, "many/%d", i);
        OK(NULL, etch_txn_put(txn, ETCH_TXN_THEN, S(k), S("v"), NULL, 0));
    }
    CHECK_RC(db, etch_txn_commit(db, txn, &res), ETCH_TOO_LARGE);
    etch_txn_free(txn);

    /* Empty key; a lease that does not exist. */
    OK(NULL, etch_txn_new(&txn));
    OK(NULL, etch_txn_put(txn, ETCH_TXN_THEN, NULL, 0, S("v"), NULL, 0));
    CHECK_RC(db, etch_txn_commit(db, txn, &res), ETCH_INVALID);
    etch_txn_free(txn);
    OK(NULL, etch_txn_new(&txn));
    etch_put_opts po = {0};
    po.lease = 424242;
    OK(NULL, etch_txn_put(txn, ETCH_TXN_THEN, S("leased"), S("v"), &po, 0));
    CHECK_RC(db, etch_txn_commit(db, txn, &res), ETCH_NOT_FOUND);
    etch_txn_free(txn);

    /* A range op at a future revision. */
    OK(NULL, etch_txn_new(&txn));
    etch_range_opts ro = {0};
    ro.revision = 1 << 30;
    OK(NULL, etch_txn_range(txn, ETCH_TXN_THEN, S("k"), NULL, 0, &ro));
    CHECK_RC(db, etch_txn_commit(db, txn, &res), ETCH_FUTURE_REV);
    etch_txn_free(txn);

    /* Reader argument errors. */
    int s;
    CHECK_RC(NULL, etch_txn_result_info(NULL, &s, NULL, NULL), ETCH_INVALID);
    etch_txn_op_result op;
    CHECK_RC(NULL, etch_txn_result_op(NULL, 0, &op), ETCH_INVALID);
    etch_iter *it;
    CHECK_RC(NULL, etch_txn_result_kvs(NULL, 0, &it), ETCH_INVALID);
    etch_txn_result *n;
    CHECK_RC(NULL, etch_txn_result_nested(NULL, 0, &n), ETCH_INVALID);
    etch_txn_free(NULL);
    etch_txn_result_free(NULL);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    etch_db *db = open_core_db(argv[1], "txn.etch");
    test_compares(db);
    test_branches_and_reader(db);
    test_nested(db);
    test_errors(db);
    close_core_db(db);
    printf("test_txn: ok\n");
    return 0;
}
