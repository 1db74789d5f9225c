/* check.h: the unit tests' harness. Each TEST is a function; CHECK records a
 * failure with its line and goes on; main() calls RUN for each test, which
 * prints "ok NAME" or "FAIL NAME" for tests/run.sh to count. */
#ifndef PP_CHECK_H
#define PP_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            check_failed = 1;                                                        \
        }                                                                            \
    } while (0)

/* CHECK that a pp call returns the given status; prints the message if not. */
#define CHECK_STATUS(expr, want)                                                     \
    do {                                                                             \
        pp_status got_ = (expr);                                                     \
        if (got_ != (want)) {                                                        \
            fprintf(stderr, "  %s:%d: %s returned %d, expected %d: %s\n", __FILE__,  \
                    __LINE__, #expr, (int)got_, (int)(want), pp_errmsg());           \
            check_failed = 1;                                                        \
        }                                                                            \
    } while (0)

#define TEST(name) static void name(void)

static int tests_failed;

#define RUN(name)                                                                    \
    do {                                                                             \
        check_failed = 0;                                                            \
        name();                                                                      \
        printf("%s %s\n", check_failed ? "FAIL" : "ok", #name);                      \
        fflush(stdout);                                                              \
        tests_failed += check_failed;                                                \
    } while (0)

/* Reads a whole file into memory (NUL-terminated); aborts the test program if
 * the fixture is missing, since nothing can be checked without it. */
__attribute__((unused)) static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    if (!p || fread(p, 1, (size_t)len, f) != (size_t)len) exit(2);
    p[len] = '\0';
    fclose(f);
    if (n) *n = (size_t)len;
    return p;
}

/* Reads a whole file, plain or zstd-compressed, through libpp's reader
 * (stream.h); NULL when it cannot. */
#ifdef PP_STREAM_H
__attribute__((unused)) static char *read_path(const char *path, size_t *n)
{
    pp_reader *r;
    char *data = NULL;
    if (pp_reader_open(&r, path) != PP_OK) return NULL;
    if (pp_read_all(r, &data, n, 1u << 30) != PP_OK) data = NULL;
    pp_reader_close(r);
    return data;
}
#endif

#endif
