/* 4 threads verify while the main thread reloads snapshots and revocation
 * updates 1000 times (including refused ones): 0 wrong verdicts for valid keys.
 * Usage: test_threads FIXTURES_DIR */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "common.h"

static const uint64_t NOW = 1767225600;
static keygate_verifier *verifier;
/* Each worker verifies this many times; the main thread reloads until every
 * worker is done and at least 1000 loads happened, so the two always overlap
 * (also under valgrind, which runs one thread at a time). */
enum { VERIFIES_PER_THREAD = 25000 };
static atomic_int workers_done;
static char valid_key[128];

typedef struct {
    long verifies, wrong;
} tally;

static void *worker(void *arg) {
    tally *t = arg;
    keygate_verdict d;
    for (int i = 0; i < VERIFIES_PER_THREAD; i++) {
        keygate_result r = keygate_verifier_verify(verifier, valid_key, strlen(valid_key), "invoices:read",
                                                   13, NOW, &d);
        t->verifies++;
        if (r != KEYGATE_RESULT_OK || d.outcome != KEYGATE_OUTCOME_VALID ||
            strcmp(d.principal, "billing-service") != 0)
            t->wrong++;
    }
    atomic_fetch_add(&workers_done, 1);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    read_key(dir, "valid", valid_key, sizeof valid_key);
    buffer t = read_file(dir, "trust.kgt");
    CHECK_RESULT(keygate_verifier_new(t.data, t.len, &verifier), KEYGATE_RESULT_OK);
    enum { VERSIONS = 200 };
    buffer snaps[VERSIONS + 1], revs[VERSIONS + 1];
    for (int i = 1; i <= VERSIONS; i++) {
        char name[64];
        snprintf(name, sizeof name, "snapshot-%d.kgs", i);
        snaps[i] = read_file(dir, name);
        snprintf(name, sizeof name, "revocations-%d.kgr", i);
        revs[i] = read_file(dir, name);
    }
    CHECK_RESULT(keygate_verifier_load_snapshot(verifier, snaps[1].data, snaps[1].len), KEYGATE_RESULT_OK);

    pthread_t th[4];
    tally tallies[4] = {{0, 0}};
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&th[i], NULL, worker, &tallies[i]) == 0);

    int ok = 0, refused = 0, ops = 0;
    unsigned char *bad = malloc(snaps[1].len);
    for (int v = 1; ops < 1000 || atomic_load(&workers_done) < 4; v = v % VERSIONS + 1) {
        /* A newer snapshot (a rollback once v wraps), its update, and a corrupted copy. */
        keygate_result r = keygate_verifier_load_snapshot(verifier, snaps[v].data, snaps[v].len);
        ok += r == KEYGATE_RESULT_OK;
        refused += r != KEYGATE_RESULT_OK;
        r = keygate_verifier_load_revocations(verifier, revs[v].data, revs[v].len);
        ok += r == KEYGATE_RESULT_OK;
        refused += r != KEYGATE_RESULT_OK;
        memcpy(bad, snaps[v].data, snaps[v].len);
        bad[(size_t)(v * 37) % snaps[v].len] ^= 0x40;
        r = keygate_verifier_load_snapshot(verifier, bad, snaps[v].len);
        refused += r != KEYGATE_RESULT_OK;
        ok += r == KEYGATE_RESULT_OK;
        ops += 3;
        sched_yield();
    }
    long verifies = 0, wrong = 0;
    for (int i = 0; i < 4; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        verifies += tallies[i].verifies;
        wrong += tallies[i].wrong;
    }
    CHECK(verifies == 4L * VERIFIES_PER_THREAD);
    printf("test_threads: %d loads (%d installed, %d refused), %ld verifies on 4 threads, %ld wrong\n", ops,
           ok, refused, verifies, wrong);
    CHECK(wrong == 0);
    CHECK(verifies > 0);
    CHECK(ok >= VERSIONS);
    CHECK(refused > 0);
    uint64_t sv, rs;
    CHECK_RESULT(keygate_verifier_versions(verifier, &sv, &rs), KEYGATE_RESULT_OK);
    CHECK(sv >= 1 && rs == 1);
    free(bad);
    for (int i = 1; i <= VERSIONS; i++) {
        free(snaps[i].data);
        free(revs[i].data);
    }
    free(t.data);
    keygate_verifier_free(verifier);
    return 0;
}
