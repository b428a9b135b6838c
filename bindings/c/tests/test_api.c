/* Every outcome, every reachable error code, NULL and garbage arguments, and
 * refused artifacts keeping state, through the C API. Usage: test_api FIXTURES_DIR */
#include "common.h"

static const uint64_t NOW = 1767225600;

static keygate_verifier *loaded(const char *dir) {
    buffer t = read_file(dir, "trust.kgt");
    buffer s = read_file(dir, "snapshot-1.kgs");
    keygate_verifier *v = NULL;
    CHECK_RESULT(keygate_verifier_new(t.data, t.len, &v), KEYGATE_RESULT_OK);
    CHECK(v != NULL);
    CHECK_RESULT(keygate_verifier_load_snapshot(v, s.data, s.len), KEYGATE_RESULT_OK);
    free(t.data);
    free(s.data);
    return v;
}

static void every_outcome(const char *dir) {
    keygate_verifier *v = loaded(dir);
    char k[128];
    read_key(dir, "valid", k, sizeof k);
    keygate_verdict d = verify_at(v, k, "invoices:write", NOW);
    CHECK(d.outcome == KEYGATE_OUTCOME_VALID);
    CHECK(strcmp(d.principal, "billing-service") == 0);
    CHECK(d.principal_len == strlen("billing-service"));
    CHECK(d.snapshot_version == 1 && d.revocation_seq == 0 && !d.stale);
    CHECK(d.expires_at == 0 && d.deprecated_at == 0 && d.sunset_at == 0);
    CHECK(strcmp(keygate_outcome_name(d.outcome), "valid") == 0);

    CHECK(verify_at(v, k, "no-such-scope", NOW).outcome == KEYGATE_OUTCOME_INSUFFICIENT_SCOPE);
    CHECK(verify_at(v, k, NULL, NOW).outcome == KEYGATE_OUTCOME_VALID);
    CHECK(verify_at(v, k, NULL, NOW + 2 * 86400 + 1).outcome == KEYGATE_OUTCOME_STALE);
    d = verify_at(v, k, NULL, NOW + 86400 + 5);
    CHECK(d.outcome == KEYGATE_OUTCOME_VALID && d.stale);
    /* now = 0 means the current time: far past this fixture's validity. */
    CHECK(verify_at(v, k, NULL, 0).outcome == KEYGATE_OUTCOME_STALE);

    read_key(dir, "deprecated", k, sizeof k);
    d = verify_at(v, k, "invoices:read", NOW);
    CHECK(d.outcome == KEYGATE_OUTCOME_VALID_DEPRECATED);
    CHECK(d.deprecated_at == NOW - 3600 && d.sunset_at == NOW + 7 * 86400);
    CHECK(d.expires_at == NOW + 7 * 86400);

    read_key(dir, "revoked", k, sizeof k);
    CHECK(verify_at(v, k, NULL, NOW).outcome == KEYGATE_OUTCOME_REVOKED);
    read_key(dir, "expired", k, sizeof k);
    CHECK(verify_at(v, k, NULL, NOW).outcome == KEYGATE_OUTCOME_EXPIRED);
    read_key(dir, "not_yet_valid", k, sizeof k);
    CHECK(verify_at(v, k, NULL, NOW).outcome == KEYGATE_OUTCOME_NOT_YET_VALID);
    read_key(dir, "unknown", k, sizeof k);
    d = verify_at(v, k, NULL, NOW);
    CHECK(d.outcome == KEYGATE_OUTCOME_UNKNOWN && d.principal[0] == 0 && d.principal_len == 0);
    CHECK(verify_at(v, "acme_live_typo", NULL, NOW).outcome == KEYGATE_OUTCOME_MALFORMED);

    /* A 128-byte principal arrives whole, with its NUL. */
    read_key(dir, "long_principal", k, sizeof k);
    d = verify_at(v, k, NULL, NOW);
    CHECK(d.principal_len == 128 && strlen(d.principal) == 128);

    /* Garbage bytes (not UTF-8) as a key: a malformed verdict, not an error. */
    const char garbage[] = {(char)0xff, (char)0xfe, 0, 'x'};
    keygate_verdict g;
    CHECK_RESULT(keygate_verifier_verify(v, garbage, sizeof garbage, NULL, 0, NOW, &g), KEYGATE_RESULT_OK);
    CHECK(g.outcome == KEYGATE_OUTCOME_MALFORMED);

    /* Revocation update: revoked_by_update becomes revoked, with the sequence. */
    read_key(dir, "revoked_by_update", k, sizeof k);
    CHECK(verify_at(v, k, NULL, NOW).outcome == KEYGATE_OUTCOME_VALID);
    buffer r = read_file(dir, "revocations-1.kgr");
    CHECK_RESULT(keygate_verifier_load_revocations(v, r.data, r.len), KEYGATE_RESULT_OK);
    d = verify_at(v, k, NULL, NOW);
    CHECK(d.outcome == KEYGATE_OUTCOME_REVOKED && d.revocation_seq == 1);
    /* Applying it twice is a no-op. */
    CHECK_RESULT(keygate_verifier_load_revocations(v, r.data, r.len), KEYGATE_RESULT_OK);
    free(r.data);

    uint64_t sv = 0, rs = 0;
    CHECK_RESULT(keygate_verifier_versions(v, &sv, &rs), KEYGATE_RESULT_OK);
    CHECK(sv == 1 && rs == 1);

    /* An update that carries records (format 2): a key added after the
       snapshot verifies, with its principal; the valid key is rotated out
       (deprecated, sunset from the update); the revocation still holds. */
    char added[128];
    read_key(dir, "added_by_update", added, sizeof added);
    CHECK(verify_at(v, added, NULL, NOW).outcome == KEYGATE_OUTCOME_UNKNOWN);
    buffer u = read_file(dir, "update-with-records-1.kgr");
    CHECK_RESULT(keygate_verifier_load_revocations(v, u.data, u.len), KEYGATE_RESULT_OK);
    free(u.data);
    d = verify_at(v, added, "invoices:read", NOW);
    CHECK(d.outcome == KEYGATE_OUTCOME_VALID && d.revocation_seq == 2);
    CHECK(strcmp(d.principal, "added-later") == 0);
    read_key(dir, "valid", added, sizeof added);
    d = verify_at(v, added, NULL, NOW);
    CHECK(d.outcome == KEYGATE_OUTCOME_VALID_DEPRECATED && d.sunset_at == NOW + 3600);
    CHECK(verify_at(v, k, NULL, NOW).outcome == KEYGATE_OUTCOME_REVOKED);
    keygate_verifier_free(v);
}

static void every_error_code_and_state_kept(const char *dir) {
    keygate_verifier *v = loaded(dir);
    char k[128];
    read_key(dir, "valid", k, sizeof k);
    keygate_verdict before = verify_at(v, k, NULL, NOW);

    buffer s1 = read_file(dir, "snapshot-1.kgs");
    buffer s2 = read_file(dir, "snapshot-2.kgs");
    buffer r2 = read_file(dir, "revocations-2.kgr");
    buffer other = read_file(dir, "snapshot-other-signer.kgs");
    buffer keyset = read_file(dir, "snapshot-other-keyset.kgs");
    buffer untrusted = read_file(dir, "untrusted-chain.kgt");

    /* NULL pointers. */
    keygate_verifier *none = NULL;
    CHECK_RESULT(keygate_verifier_new(NULL, 10, &none), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(keygate_verifier_new(s1.data, s1.len, NULL), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK(none == NULL);
    CHECK_RESULT(keygate_verifier_load_snapshot(NULL, s1.data, s1.len), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(keygate_verifier_load_snapshot(v, NULL, 5), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(keygate_verifier_load_revocations(v, NULL, 0), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(keygate_verifier_load_trust(NULL, NULL, 0), KEYGATE_RESULT_NULL_ARGUMENT);
    keygate_verdict out;
    memset(&out, 0x5A, sizeof out);
    keygate_verdict untouched = out;
    CHECK_RESULT(keygate_verifier_verify(NULL, k, strlen(k), NULL, 0, NOW, &out), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(keygate_verifier_verify(v, NULL, 3, NULL, 0, NOW, &out), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(keygate_verifier_verify(v, k, strlen(k), NULL, 0, NOW, NULL), KEYGATE_RESULT_NULL_ARGUMENT);
    /* Invalid scope bytes: an argument error, and *out untouched. */
    const char bad_scope[] = {(char)0xc3, (char)0x28};
    CHECK_RESULT(keygate_verifier_verify(v, k, strlen(k), bad_scope, 2, NOW, &out), KEYGATE_RESULT_INVALID_ARGUMENT);
    CHECK(memcmp(&out, &untouched, sizeof out) == 0);
    uint64_t a, b;
    CHECK_RESULT(keygate_verifier_versions(v, NULL, &b), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(keygate_verifier_versions(NULL, &a, &b), KEYGATE_RESULT_NULL_ARGUMENT);
    keygate_verifier_free(NULL);

    /* Artifact errors, each leaving the verifier as it was. */
    CHECK_RESULT(keygate_verifier_load_snapshot(v, (const uint8_t *)"garbage!", 8), KEYGATE_RESULT_BAD_MAGIC);
    CHECK_RESULT(keygate_verifier_load_snapshot(v, s2.data, 100), KEYGATE_RESULT_TRUNCATED);
    CHECK_RESULT(keygate_verifier_load_snapshot(v, s2.data, 0), KEYGATE_RESULT_TRUNCATED);
    unsigned char *m = malloc(s2.len);
    memcpy(m, s2.data, s2.len);
    m[4] = 9; /* format version */
    CHECK_RESULT(keygate_verifier_load_snapshot(v, m, s2.len), KEYGATE_RESULT_UNSUPPORTED_VERSION);
    memcpy(m, s2.data, s2.len);
    m[16] ^= 1; /* created_at: structure fine, signature not */
    CHECK_RESULT(keygate_verifier_load_snapshot(v, m, s2.len), KEYGATE_RESULT_BAD_SIGNATURE);
    memcpy(m, s2.data, s2.len);
    m[7] = 0; /* header length: 256 becomes 0 */
    CHECK_RESULT(keygate_verifier_load_snapshot(v, m, s2.len), KEYGATE_RESULT_MALFORMED);
    free(m);
    CHECK_RESULT(keygate_verifier_load_snapshot(v, other.data, other.len), KEYGATE_RESULT_UNKNOWN_SIGNER);
    CHECK_RESULT(keygate_verifier_load_snapshot(v, keyset.data, keyset.len), KEYGATE_RESULT_WRONG_KEYSET);
    CHECK_RESULT(keygate_verifier_load_revocations(v, r2.data, r2.len), KEYGATE_RESULT_BASE_MISMATCH);
    CHECK_RESULT(keygate_verifier_load_trust(v, untrusted.data, untrusted.len), KEYGATE_RESULT_UNTRUSTED_BUNDLE);

    keygate_verdict after = verify_at(v, k, NULL, NOW);
    CHECK(memcmp(&before, &after, sizeof before) == 0);

    /* Rollback after moving to version 2; the same version again is a no-op. */
    CHECK_RESULT(keygate_verifier_load_snapshot(v, s2.data, s2.len), KEYGATE_RESULT_OK);
    CHECK_RESULT(keygate_verifier_load_snapshot(v, s2.data, s2.len), KEYGATE_RESULT_OK);
    CHECK_RESULT(keygate_verifier_load_snapshot(v, s1.data, s1.len), KEYGATE_RESULT_ROLLBACK);
    CHECK(verify_at(v, k, NULL, NOW).snapshot_version == 2);

    /* A revocation update before any snapshot. */
    buffer t = read_file(dir, "trust.kgt");
    keygate_verifier *fresh = NULL;
    CHECK_RESULT(keygate_verifier_new(t.data, t.len, &fresh), KEYGATE_RESULT_OK);
    CHECK_RESULT(keygate_verifier_load_revocations(fresh, r2.data, r2.len), KEYGATE_RESULT_NO_SNAPSHOT);
    CHECK(verify_at(fresh, k, NULL, NOW).outcome == KEYGATE_OUTCOME_STALE);
    /* A signer rotation followed through the chain, then the new signer's snapshot. */
    buffer rotated = read_file(dir, "rotated-chain.kgt");
    CHECK_RESULT(keygate_verifier_load_trust(fresh, rotated.data, rotated.len), KEYGATE_RESULT_OK);
    /* A forged, self-signed bundle of a lower version than the one followed:
     * a rollback, refused (it used to return OK as "nothing new"). */
    buffer forged = read_file(dir, "other-trust.kgt");
    CHECK_RESULT(keygate_verifier_load_trust(fresh, forged.data, forged.len), KEYGATE_RESULT_ROLLBACK);
    CHECK_RESULT(keygate_verifier_load_snapshot(fresh, other.data, other.len), KEYGATE_RESULT_OK);
    keygate_verifier_free(fresh);
    /* Bad trust at creation: no handle written. */
    keygate_verifier *nope = NULL;
    CHECK_RESULT(keygate_verifier_new(s1.data, s1.len, &nope), KEYGATE_RESULT_BAD_MAGIC);
    CHECK(nope == NULL);

    /* Stats: size query, too-small buffer (nothing written), then the text. */
    size_t need = 0, len = 0;
    CHECK_RESULT(keygate_verifier_stats_prometheus_size(v, &need), KEYGATE_RESULT_OK);
    CHECK(need > 100);
    char small[8] = "unset";
    CHECK_RESULT(keygate_verifier_stats_prometheus(v, small, sizeof small, &len), KEYGATE_RESULT_BUFFER_TOO_SMALL);
    CHECK(len == 0 && strcmp(small, "unset") == 0);
    char *text = malloc(need);
    CHECK_RESULT(keygate_verifier_stats_prometheus(v, text, need, &len), KEYGATE_RESULT_OK);
    CHECK(len == strlen(text));
    CHECK(strstr(text, "keygate_verify_total{outcome=\"valid\"}") != NULL);
    CHECK(strstr(text, "keygate_artifact_refused_total{artifact=\"snapshot\"}") != NULL);
    CHECK_RESULT(keygate_verifier_stats_prometheus(v, NULL, 10, &len), KEYGATE_RESULT_NULL_ARGUMENT);
    free(text);

    /* Every result code has a message; version string. */
    int codes[] = {0, 1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 199};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        CHECK(strstr(keygate_result_message(codes[i]), "unknown") == NULL);
    /* Integers C makes up are answered, not undefined behaviour. */
    CHECK(strcmp(keygate_result_message(8), "unknown result code") == 0);
    CHECK(strcmp(keygate_result_message(0xffffffffu), "unknown result code") == 0);
    CHECK(strcmp(keygate_outcome_name(9), "unknown outcome") == 0);
    CHECK(strcmp(keygate_outcome_name(0xffffffffu), "unknown outcome") == 0);
    CHECK(strncmp(keygate_version(), "keygate ", 8) == 0);

    free(s1.data);
    free(s2.data);
    free(r2.data);
    free(other.data);
    free(keyset.data);
    free(untrusted.data);
    free(t.data);
    free(rotated.data);
    free(forged.data);
    keygate_verifier_free(v);
}

/* The high-water state survives a "restart": a new verifier given the saved
 * text refuses the older snapshot it would otherwise install. */
static void state_survives_a_restart(const char *dir) {
    keygate_verifier *v = loaded(dir);
    buffer s1 = read_file(dir, "snapshot-1.kgs");
    buffer s2 = read_file(dir, "snapshot-2.kgs");
    CHECK_RESULT(keygate_verifier_load_snapshot(v, s2.data, s2.len), KEYGATE_RESULT_OK);
    char text[KEYGATE_STATE_MAX];
    size_t len = 0;
    CHECK_RESULT(keygate_verifier_state(v, text, 8, &len), KEYGATE_RESULT_BUFFER_TOO_SMALL);
    CHECK_RESULT(keygate_verifier_state(NULL, text, sizeof text, &len), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(keygate_verifier_state(v, text, sizeof text, &len), KEYGATE_RESULT_OK);
    CHECK(len == strlen(text) && strstr(text, "snapshot 2\n") != NULL);
    keygate_verifier_free(v);

    buffer t = read_file(dir, "trust.kgt");
    keygate_verifier *after = NULL;
    CHECK_RESULT(keygate_verifier_new(t.data, t.len, &after), KEYGATE_RESULT_OK);
    const char *junk = "keygate-state 1\nsnapshot two\n";
    CHECK_RESULT(keygate_verifier_restore_state(after, (const uint8_t *)junk, strlen(junk)), KEYGATE_RESULT_MALFORMED);
    const char *other = "keygate-state 1\nkeyset globex\nsnapshot 9\n";
    CHECK_RESULT(keygate_verifier_restore_state(after, (const uint8_t *)other, strlen(other)), KEYGATE_RESULT_WRONG_KEYSET);
    CHECK_RESULT(keygate_verifier_restore_state(after, NULL, 3), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(keygate_verifier_restore_state(after, (const uint8_t *)text, len), KEYGATE_RESULT_OK);
    CHECK_RESULT(keygate_verifier_load_snapshot(after, s1.data, s1.len), KEYGATE_RESULT_ROLLBACK);
    CHECK_RESULT(keygate_verifier_load_snapshot(after, s2.data, s2.len), KEYGATE_RESULT_OK);
    keygate_verifier_free(after);
    free(s1.data);
    free(s2.data);
    free(t.data);
}

#define H(n, v) {(const uint8_t *)(n), sizeof(n) - 1, (const uint8_t *)(v), strlen(v)}

static const char *header_value(const keygate_answer *a, const char *name) {
    for (size_t i = 0; i < a->response_headers_len; i++)
        if (strcmp(a->response_headers[i].name, name) == 0) return a->response_headers[i].value;
    return NULL;
}

/* The gateway contract through C: headers in, the answer out. */
static void the_contract(const char *dir) {
    keygate_verifier *v = loaded(dir);
    keygate_policy *p = NULL;
    CHECK_RESULT(keygate_policy_new("api", 3, "X-User", 6, 7, &p), KEYGATE_RESULT_OK);
    keygate_policy *bad = NULL;
    CHECK_RESULT(keygate_policy_new("a\"b", 3, "X-User", 6, 7, &bad), KEYGATE_RESULT_INVALID_POLICY);
    CHECK_RESULT(keygate_policy_new("api", 3, "X_API_Key", 9, 7, &bad), KEYGATE_RESULT_INVALID_POLICY);
    CHECK_RESULT(keygate_policy_new(NULL, 0, "X-User", 6, 7, &bad), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK(bad == NULL);
    keygate_policy_free(NULL);

    char k[128], k2[128], dep[128], lng[160];
    read_key(dir, "valid", k, sizeof k);
    read_key(dir, "revoked", k2, sizeof k2);
    read_key(dir, "deprecated", dep, sizeof dep);
    read_key(dir, "long_principal", lng, sizeof lng);
    char bearer[160];
    snprintf(bearer, sizeof bearer, "Bearer\t%s ", k);
    keygate_answer a;

    keygate_header ok[] = {H("Authorization", bearer), H("X_User", "admin")};
    CHECK_RESULT(keygate_verifier_check(v, ok, 2, "invoices:read", 13, NOW, p, &a), KEYGATE_RESULT_OK);
    CHECK(a.status == 200 && a.forward && a.verified && a.verdict.outcome == KEYGATE_OUTCOME_VALID);
    CHECK(a.response_headers_len == 0);
    CHECK(strcmp(a.principal_value, "billing-service") == 0 && a.principal_value_len == 15);
    CHECK(keygate_policy_strips(p, ok[0].name, ok[0].name_len, ok[0].value, ok[0].value_len));
    CHECK(keygate_policy_strips(p, ok[1].name, ok[1].name_len, ok[1].value, ok[1].value_len));
    CHECK(!keygate_policy_strips(p, (const uint8_t *)"Accept", 6, (const uint8_t *)"*/*", 3));
    CHECK(!keygate_policy_strips(NULL, ok[0].name, ok[0].name_len, ok[0].value, ok[0].value_len));

    keygate_header none[] = {H("Authorization", "Basic eDp5")};
    CHECK_RESULT(keygate_verifier_check(v, none, 1, NULL, 0, NOW, p, &a), KEYGATE_RESULT_OK);
    CHECK(a.status == 401 && !a.forward && !a.verified && a.verdict.outcome == KEYGATE_OUTCOME_MALFORMED);
    CHECK(strcmp(header_value(&a, "WWW-Authenticate"), "Bearer realm=\"api\"") == 0);

    keygate_header two[] = {H("Authorization", bearer), H("X-API-Key", k2)};
    CHECK_RESULT(keygate_verifier_check(v, two, 2, NULL, 0, NOW, p, &a), KEYGATE_RESULT_OK);
    CHECK(a.status == 400 && strstr(header_value(&a, "WWW-Authenticate"), "invalid_request") != NULL);

    keygate_header rev[] = {H("x-api-key", k2)};
    CHECK_RESULT(keygate_verifier_check(v, rev, 1, NULL, 0, NOW, p, &a), KEYGATE_RESULT_OK);
    CHECK(a.status == 401 && a.verified && a.verdict.outcome == KEYGATE_OUTCOME_REVOKED);
    CHECK(strcmp(header_value(&a, "WWW-Authenticate"),
                 "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"revoked\"") == 0);
    CHECK(strcmp(a.body, "invalid_token\n") == 0 && a.principal_value_len == 0);

    keygate_header scope[] = {H("x-api-key", k)};
    CHECK_RESULT(keygate_verifier_check(v, scope, 1, "admin", 5, NOW, p, &a), KEYGATE_RESULT_OK);
    CHECK(a.status == 403 && strstr(header_value(&a, "WWW-Authenticate"), "insufficient_scope") != NULL);

    keygate_header d[] = {H("x-api-key", dep)};
    CHECK_RESULT(keygate_verifier_check(v, d, 1, NULL, 0, NOW, p, &a), KEYGATE_RESULT_OK);
    CHECK(a.status == 200 && a.response_headers_len == 2);
    CHECK(header_value(&a, "Deprecation")[0] == '@' && strstr(header_value(&a, "Sunset"), "GMT") != NULL);

    /* Non-UTF-8 bytes in a key header: malformed, never an error. */
    keygate_header junk[] = {{(const uint8_t *)"X-API-Key", 9, (const uint8_t *)"\xff\xfe", 2}};
    CHECK_RESULT(keygate_verifier_check(v, junk, 1, NULL, 0, NOW, p, &a), KEYGATE_RESULT_OK);
    CHECK(a.status == 401 && a.verdict.outcome == KEYGATE_OUTCOME_MALFORMED);

    /* A 128-byte principal goes upstream whole. */
    keygate_header l[] = {H("x-api-key", lng)};
    CHECK_RESULT(keygate_verifier_check(v, l, 1, NULL, 0, NOW, p, &a), KEYGATE_RESULT_OK);
    CHECK(a.forward && a.principal_value_len == 128 && strlen(a.principal_value) == 128);

    /* No verifier (no trust anchor loaded): 503 with Retry-After. */
    CHECK_RESULT(keygate_verifier_check(NULL, ok, 2, NULL, 0, NOW, p, &a), KEYGATE_RESULT_OK);
    CHECK(a.status == 503 && strcmp(header_value(&a, "Retry-After"), "7") == 0);
    /* Bad arguments: errors, nothing written past them. */
    CHECK_RESULT(keygate_verifier_check(v, ok, 2, NULL, 0, NOW, NULL, &a), KEYGATE_RESULT_NULL_ARGUMENT);
    CHECK_RESULT(keygate_verifier_check(v, NULL, 2, NULL, 0, NOW, p, &a), KEYGATE_RESULT_INVALID_ARGUMENT);
    keygate_header nul[] = {{NULL, 5, NULL, 0}};
    CHECK_RESULT(keygate_verifier_check(v, nul, 1, NULL, 0, NOW, p, &a), KEYGATE_RESULT_INVALID_ARGUMENT);
    keygate_policy_free(p);
    keygate_verifier_free(v);
}

/* The core's file change detection: a same-size file renamed into place in
 * the same second gets a new stamp; an untouched one keeps it. */
static void file_stamps(const char *dir) {
    char path[4096], tmp[4096], a[KEYGATE_FILE_STAMP_MAX], b[KEYGATE_FILE_STAMP_MAX];
    size_t la = 0, lb = 0;
    snprintf(path, sizeof path, "%s/stamp-test", dir);
    snprintf(tmp, sizeof tmp, "%s/stamp-test.tmp", dir);
    remove(path);
    CHECK_RESULT(keygate_file_stamp(path, strlen(path), a, sizeof a, &la), KEYGATE_RESULT_FILE_NOT_FOUND);
    FILE *f = fopen(path, "wb");
    fputs("aaaa", f);
    fclose(f);
    CHECK_RESULT(keygate_file_stamp(path, strlen(path), a, 4, &la), KEYGATE_RESULT_BUFFER_TOO_SMALL);
    CHECK_RESULT(keygate_file_stamp(path, strlen(path), a, sizeof a, &la), KEYGATE_RESULT_OK);
    CHECK_RESULT(keygate_file_stamp(path, strlen(path), b, sizeof b, &lb), KEYGATE_RESULT_OK);
    CHECK(la == lb && strcmp(a, b) == 0);
    f = fopen(tmp, "wb");
    fputs("bbbb", f);
    fclose(f);
    CHECK(rename(tmp, path) == 0);
    CHECK_RESULT(keygate_file_stamp(path, strlen(path), b, sizeof b, &lb), KEYGATE_RESULT_OK);
    CHECK(strcmp(a, b) != 0);
    CHECK_RESULT(keygate_file_stamp(NULL, 3, b, sizeof b, &lb), KEYGATE_RESULT_NULL_ARGUMENT);
    remove(path);
}

/* Two "worker processes" add their counters up into one Prometheus text. */
static void stats_add_up(const char *dir) {
    keygate_verifier *a = loaded(dir), *b = loaded(dir);
    char k[128];
    read_key(dir, "valid", k, sizeof k);
    verify_at(a, k, NULL, NOW);
    verify_at(b, k, NULL, NOW);
    verify_at(b, k, NULL, NOW);
    read_key(dir, "deprecated", k, sizeof k);
    verify_at(b, k, NULL, NOW);
    char texts[8192];
    size_t la = 0, lb = 0;
    CHECK_RESULT(keygate_verifier_stats_text(a, texts, 16, &la), KEYGATE_RESULT_BUFFER_TOO_SMALL);
    CHECK_RESULT(keygate_verifier_stats_text(a, texts, 4096, &la), KEYGATE_RESULT_OK);
    CHECK_RESULT(keygate_verifier_stats_text(b, texts + la, sizeof texts - la, &lb), KEYGATE_RESULT_OK);
    char out[8192];
    size_t len = 0;
    CHECK_RESULT(keygate_stats_merge_prometheus((const uint8_t *)texts, la + lb, out, 8, &len),
                 KEYGATE_RESULT_BUFFER_TOO_SMALL);
    CHECK(len > 8);
    CHECK_RESULT(keygate_stats_merge_prometheus((const uint8_t *)texts, la + lb, out, sizeof out, &len),
                 KEYGATE_RESULT_OK);
    CHECK(strstr(out, "keygate_verify_total{outcome=\"valid\"} 3\n") != NULL);
    CHECK(strstr(out, "keygate_verify_total{outcome=\"valid_deprecated\"} 1\n") != NULL);
    CHECK(strstr(out, "keygate_deprecated_key_uses_total{") != NULL);
    CHECK_RESULT(keygate_stats_merge_prometheus((const uint8_t *)"junk", 4, out, sizeof out, &len),
                 KEYGATE_RESULT_INVALID_ARGUMENT);
    keygate_verifier_free(a);
    keygate_verifier_free(b);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    every_outcome(argv[1]);
    every_error_code_and_state_kept(argv[1]);
    state_survives_a_restart(argv[1]);
    the_contract(argv[1]);
    stats_add_up(argv[1]);
    file_stamps(argv[1]);
    printf("test_api: %d checks passed (%s)\n", checks, keygate_version());
    return 0;
}
