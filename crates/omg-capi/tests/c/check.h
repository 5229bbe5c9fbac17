/*
 * What the C tests (test_capi.c, test_protected.c) share: the checking macros CHECK(cond),
 * EXPECT(call, status, needle) and OK(call), which count checks and failures and print each
 * failure with its file, line and omg's last error message; read_file, which reads a whole
 * file or exits with status 2. Included by one translation unit per program.
 */
#ifndef OMG_TEST_CHECK_H
#define OMG_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omg.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        checks++;                                                                     \
        if (!(cond)) {                                                                \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__,   \
                    __LINE__, #cond, omg_last_error_message());                       \
        }                                                                             \
    } while (0)

/* True if `needle` is NULL or in this thread's last error message. */
static int mentions(const char *needle) {
    return needle == NULL || strstr(omg_last_error_message(), needle) != NULL;
}

static const char *or_empty(const char *s) { return s == NULL ? "" : s; }

/* A call that must return `want`, with a message mentioning `needle` (NULL: any message). */
#define EXPECT(call, want, needle)                                                    \
    do {                                                                              \
        OmgStatus got_ = (call);                                                      \
        checks++;                                                                     \
        if (got_ != (want)) {                                                         \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: %s returned %d, expected %d (last error: %s)\n",  \
                    __FILE__, __LINE__, #call, (int)got_, (int)(want),                \
                    omg_last_error_message());                                        \
        } else if ((want) != OMG_STATUS_OK && !mentions(needle)) {                    \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: %s: message \"%s\" lacks \"%s\"\n", __FILE__,     \
                    __LINE__, #call, omg_last_error_message(), or_empty(needle));    \
        }                                                                             \
    } while (0)

#define OK(call) EXPECT(call, OMG_STATUS_OK, NULL)

/* The whole file at `path` (its length in `*size`), or exits with status 2. */
static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

#endif
