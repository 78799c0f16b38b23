/*
 * test.h: the small harness every tests/test_*.c uses. CHECK records a failure
 * and goes on; a test program ends with TEST_END(), which prints
 * "N passed, N failed" and returns 1 if anything failed. A test that needs the
 * shared reference data and cannot find it says so and exits with 77 (skip).
 */
#ifndef PAGODA_TEST_H
#define PAGODA_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_passed_, test_failed_;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) {                                                                      \
            test_passed_++;                                                              \
        } else {                                                                         \
            test_failed_++;                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
        }                                                                                \
    } while (0)

#define CHECKF(cond, ...)                                                                \
    do {                                                                                 \
        if (cond) {                                                                      \
            test_passed_++;                                                              \
        } else {                                                                         \
            test_failed_++;                                                              \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

#define TEST_END()                                                                       \
    do {                                                                                 \
        printf("%d passed, %d failed\n", test_passed_, test_failed_);                    \
        return test_failed_ ? 1 : 0;                                                     \
    } while (0)

#define TEST_SKIP_EXIT 77

/* The whole file as a NUL-terminated malloc'd string (length in *len when
 * len is not NULL), or NULL. */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

/* The reference data folder: $PAGODA_REFERENCE_DIR, else ../shared/reference
 * beside the source tree. Returns NULL (after saying so) when it is absent. */
static inline const char *test_reference_dir(void)
{
    static char buf[4096];
    const char *env = getenv("PAGODA_REFERENCE_DIR");
    if (env && *env) {
        snprintf(buf, sizeof buf, "%s", env);
    } else {
        const char *src = getenv("PAGODA_SOURCE_DIR");
#ifdef PAGODA_TEST_SOURCE_DIR
        if (!src || !*src)
            src = PAGODA_TEST_SOURCE_DIR;
#endif
        snprintf(buf, sizeof buf, "%s/../shared/reference", src && *src ? src : "..");
    }
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "reference data not found at %s (set PAGODA_REFERENCE_DIR): skipping\n",
                buf);
        return NULL;
    }
    return buf;
}

/* A path inside the reference folder; NULL when the folder is absent. */
static inline const char *test_reference_path(const char *rel)
{
    static char buf[4096];
    const char *dir = test_reference_dir();
    if (!dir)
        return NULL;
    int n = snprintf(buf, sizeof buf, "%s/%s", dir, rel);
    return n > 0 && (size_t)n < sizeof buf ? buf : NULL;
}

#endif
