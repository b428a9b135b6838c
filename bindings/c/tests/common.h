/* Shared helpers for the keygate C tests. */
#ifndef KEYGATE_TEST_COMMON_H
#define KEYGATE_TEST_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keygate.h"

static int checks = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

#define CHECK_RESULT(expr, want)                                                 \
    do {                                                                         \
        keygate_result got_ = (expr);                                            \
        checks++;                                                                \
        if (got_ != (want)) {                                                    \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s)\n", __FILE__, \
                    __LINE__, #expr, (int)got_, keygate_result_message(got_),    \
                    (int)(want), keygate_result_message(want));                  \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

typedef struct {
    unsigned char *data;
    size_t len;
} buffer;

static inline buffer read_file(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buffer b = {malloc((size_t)n + 1), (size_t)n};
    if (!b.data || fread(b.data, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    return b;
}

/* The key named `name` in keys.txt ("name key" lines); also returns "now". */
static inline void read_key(const char *dir, const char *name, char *out, size_t cap) {
    buffer b = read_file(dir, "keys.txt");
    b.data[b.len] = 0;
    char *line = strtok((char *)b.data, "\n");
    while (line) {
        char *sp = strchr(line, ' ');
        if (sp && (size_t)(sp - line) == strlen(name) && strncmp(line, name, strlen(name)) == 0) {
            snprintf(out, cap, "%s", sp + 1);
            free(b.data);
            return;
        }
        line = strtok(NULL, "\n");
    }
    fprintf(stderr, "no key %s in keys.txt\n", name);
    exit(1);
}

static inline keygate_verdict verify_at(const keygate_verifier *v, const char *key, const char *scope,
                                 uint64_t now) {
    keygate_verdict out;
    memset(&out, 0xAB, sizeof out);
    CHECK_RESULT(keygate_verifier_verify(v, key, strlen(key), scope, scope ? strlen(scope) : 0, now, &out),
                 KEYGATE_RESULT_OK);
    return out;
}

#endif
