/* Stream layer: plain and zstd round trips, truncation at every byte, flipped
 * bits, trailing garbage, the window cap, lines, atomic output and signals. */
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "check.h"
#include "stream.h"

static char dir[] = "/tmp/pp-test-stream-XXXXXX";

static char *path_in(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* Number of entries in dir other than . and .. */
static int dir_entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)((i % 7 == 0) ? (seed >> 16) : 'a' + i % 13); /* compressible, not trivially */
    }
}

static void write_file(const char *path, const void *data, size_t n, int level)
{
    pp_writer *w;
    CHECK_STATUS(pp_writer_open(&w, path, level), PP_OK);
    CHECK_STATUS(pp_write(w, data, n), PP_OK);
    CHECK_STATUS(pp_writer_commit(w), PP_OK);
}

/* Reads all of a memory buffer through the stream layer. */
static pp_status read_mem(const void *data, size_t n, char **out, size_t *len)
{
    pp_reader *r;
    *out = NULL;
    pp_status s = pp_reader_open_mem(&r, data, n);
    if (s == PP_OK) s = pp_read_all(r, out, len, (size_t)1 << 30);
    pp_reader_close(r);
    return s;
}

TEST(round_trip_plain_and_zstd)
{
    size_t sizes[] = {0, 1, 4, 100, 131072, 131073, 1000000};
    unsigned char *data = malloc(1000000);
    fill(data, 1000000, 7);
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        for (int level = 0; level <= 19; level += 19) {
            write_file(path_in("rt"), data, sizes[k], level);
            pp_reader *r;
            char *got = NULL;
            size_t n = 0;
            CHECK_STATUS(pp_reader_open(&r, path_in("rt")), PP_OK);
            CHECK_STATUS(pp_read_all(r, &got, &n, 1 << 30), PP_OK);
            CHECK(pp_reader_is_zstd(r) == (level > 0 && 1));
            CHECK(n == sizes[k] && memcmp(got, data, n) == 0);
            CHECK(pp_reader_offset(r) == sizes[k]);
            pp_reader_close(r);
            free(got);
        }
    }
    free(data);
}

/* A small zstd frame in memory. */
static unsigned char *small_frame(size_t *n, const char *text)
{
    size_t cap = ZSTD_compressBound(strlen(text));
    unsigned char *z = malloc(cap);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    *n = ZSTD_compress2(c, z, cap, text, strlen(text));
    ZSTD_freeCCtx(c);
    return z;
}

static const char *TEXT = "It is a truth universally acknowledged, that pp reads every byte it is given.";

TEST(truncation_at_every_byte_is_an_error)
{
    size_t n;
    unsigned char *z = small_frame(&n, TEXT);
    /* Below 4 bytes the magic number is not there: the input is plain. */
    for (size_t len = 4; len < n; len++) {
        char *out;
        size_t got;
        pp_status s = read_mem(z, len, &out, &got);
        if (s != PP_E_DATA) fprintf(stderr, "  prefix of %zu bytes: status %d\n", len, (int)s);
        CHECK(s == PP_E_DATA);
        free(out);
    }
    char *out;
    size_t got;
    CHECK_STATUS(read_mem(z, n, &out, &got), PP_OK);
    CHECK(got == strlen(TEXT) && memcmp(out, TEXT, got) == 0);
    free(out);
    free(z);
}

TEST(flipped_bit_never_reads_as_other_data)
{
    size_t n;
    unsigned char *z = small_frame(&n, TEXT);
    int detected = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++) {
            z[i] ^= (unsigned char)(1 << b);
            char *out;
            size_t got;
            pp_status s = read_mem(z, n, &out, &got);
            total++;
            if (s != PP_OK) detected++;
            /* A flip in the magic number makes it "plain": bytes are returned
             * verbatim, which is not the text either way. What must never
             * happen: a zstd decode that returns different text silently. */
            else if (i >= 4) CHECK(got == strlen(TEXT) && memcmp(out, TEXT, got) == 0);
            free(out);
            z[i] ^= (unsigned char)(1 << b);
        }
    }
    /* A few header and entropy-table bits are do-not-cares: the text comes out
     * the same (checked above). Everything else must be caught. */
    CHECK(detected * 10 >= total * 9);
    free(z);
}

TEST(trailing_garbage_is_an_error_concatenated_frames_are_not)
{
    size_t n;
    unsigned char *z = small_frame(&n, TEXT);
    unsigned char *buf = malloc(2 * n + 8);
    memcpy(buf, z, n);
    memcpy(buf + n, "garbage!", 8);
    char *out;
    size_t got;
    CHECK_STATUS(read_mem(buf, n + 8, &out, &got), PP_E_DATA);
    free(out);
    CHECK_STATUS(read_mem(buf, n + 1, &out, &got), PP_E_DATA);
    free(out);
    memcpy(buf + n, z, n);
    CHECK_STATUS(read_mem(buf, 2 * n, &out, &got), PP_OK);
    CHECK(got == 2 * strlen(TEXT));
    free(out);
    free(buf);
    free(z);
}

/* pp caps the window at 2^27, which is also libzstd's default limit: this
 * checks the property (such frames are refused as bad data, not decoded with
 * 256 MiB of memory), whichever of the two enforces it. */
TEST(decoder_window_is_capped)
{
    /* A streamed frame (no content size) that declares a 256 MiB window. */
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 28);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    unsigned char z[4096];
    ZSTD_outBuffer out = {z, sizeof z, 0};
    ZSTD_inBuffer in = {TEXT, strlen(TEXT), 0};
    ZSTD_compressStream2(c, &out, &in, ZSTD_e_continue); /* size unknown to the encoder */
    ZSTD_inBuffer none = {NULL, 0, 0};
    size_t left = ZSTD_compressStream2(c, &out, &none, ZSTD_e_end);
    CHECK(left == 0);
    ZSTD_freeCCtx(c);
    char *o;
    size_t got;
    CHECK_STATUS(read_mem(z, out.pos, &o, &got), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "zstd") != NULL);
    free(o);
}

TEST(exact_reads_report_truncation_with_offset)
{
    pp_reader *r;
    char buf[16];
    CHECK_STATUS(pp_reader_open_mem(&r, "abcdefgh", 8), PP_OK);
    CHECK_STATUS(pp_read_exact(r, buf, 5), PP_OK);
    CHECK_STATUS(pp_read_exact(r, buf, 5), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "byte offset 8") != NULL);
    pp_reader_close(r);
    CHECK_STATUS(pp_reader_open_mem(&r, "abcdefgh", 8), PP_OK);
    CHECK_STATUS(pp_read_skip(r, 8), PP_OK);
    CHECK_STATUS(pp_read_expect_end(r), PP_OK);
    pp_reader_close(r);
    CHECK_STATUS(pp_reader_open_mem(&r, "abcdefgh", 8), PP_OK);
    CHECK_STATUS(pp_read_skip(r, 7), PP_OK);
    CHECK_STATUS(pp_read_expect_end(r), PP_E_DATA);
    pp_reader_close(r);
}

TEST(lines_crlf_no_final_newline_and_long_lines)
{
    size_t big = 300000;
    char *text = malloc(big + 64);
    strcpy(text, "one\r\ntwo\n\n");
    memset(text + 10, 'x', big);
    strcpy(text + 10 + big, "\nlast");
    size_t n = strlen(text);
    for (int level = 0; level <= 3; level += 3) {
        write_file(path_in("lines"), text, n, level);
        pp_reader *r;
        const char *l;
        size_t len;
        CHECK_STATUS(pp_reader_open(&r, path_in("lines")), PP_OK);
        CHECK_STATUS(pp_read_line(r, &l, &len), PP_OK);
        CHECK(l && len == 3 && memcmp(l, "one", 3) == 0);
        CHECK_STATUS(pp_read_line(r, &l, &len), PP_OK);
        CHECK(l && len == 3 && memcmp(l, "two", 3) == 0);
        CHECK_STATUS(pp_read_line(r, &l, &len), PP_OK);
        CHECK(l && len == 0);
        CHECK_STATUS(pp_read_line(r, &l, &len), PP_OK);
        CHECK(l && len == big && l[0] == 'x' && l[big - 1] == 'x');
        CHECK_STATUS(pp_read_line(r, &l, &len), PP_OK);
        CHECK(l && len == 4 && memcmp(l, "last", 4) == 0);
        CHECK_STATUS(pp_read_line(r, &l, &len), PP_OK);
        CHECK(l == NULL);
        pp_reader_close(r);
    }
    free(text);
}

TEST(missing_input_and_uncreatable_output)
{
    pp_reader *r;
    CHECK_STATUS(pp_reader_open(&r, "/nonexistent/pp/file"), PP_E_NOINPUT);
    CHECK_STATUS(pp_reader_open(&r, dir), PP_E_NOINPUT);
    pp_writer *w;
    CHECK_STATUS(pp_writer_open(&w, "/nonexistent/pp/out", 0), PP_E_CANTCREAT);
    CHECK_STATUS(pp_writer_open(&w, path_in("sub/"), 0), PP_E_CANTCREAT);
}

TEST(atomic_output_appears_only_on_commit)
{
    int before = dir_entries();
    pp_writer *w;
    CHECK_STATUS(pp_writer_open(&w, path_in("atomic"), 3), PP_OK);
    CHECK_STATUS(pp_write(w, "half", 4), PP_OK);
    CHECK(access(path_in("atomic"), F_OK) != 0); /* nothing at the target yet */
    CHECK(dir_entries() == before + 1);          /* just the temporary */
    pp_writer_abort(w);
    CHECK(dir_entries() == before);
    CHECK(access(path_in("atomic"), F_OK) != 0);

    write_file(path_in("atomic"), "old", 3, 0);
    CHECK_STATUS(pp_writer_open(&w, path_in("atomic"), 0), PP_OK);
    CHECK_STATUS(pp_write(w, "new!", 4), PP_OK);
    pp_writer_abort(w); /* an aborted rewrite leaves the old file whole */
    struct stat st;
    CHECK(stat(path_in("atomic"), &st) == 0 && st.st_size == 3);
    CHECK(dir_entries() == before + 1);
    CHECK(pp_same_file(path_in("atomic"), path_in("atomic")));
    char other[256];
    snprintf(other, sizeof other, "%s", path_in("rt"));
    CHECK(!pp_same_file(path_in("atomic"), other));
    CHECK(!pp_same_file("-", "-"));
}

TEST(signal_removes_the_temporary)
{
    int before = dir_entries();
    pid_t pid = fork();
    if (pid == 0) {
        pp_install_signal_cleanup();
        pp_writer *w;
        if (pp_writer_open(&w, path_in("killed"), 3) != PP_OK) _exit(3);
        pp_write(w, "partial", 7);
        raise(SIGTERM);
        _exit(4); /* not reached */
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    CHECK(dir_entries() == before);
    CHECK(access(path_in("killed"), F_OK) != 0);
}

int main(void)
{
    if (!mkdtemp(dir)) return 2;
    RUN(round_trip_plain_and_zstd);
    RUN(truncation_at_every_byte_is_an_error);
    RUN(flipped_bit_never_reads_as_other_data);
    RUN(trailing_garbage_is_an_error_concatenated_frames_are_not);
    RUN(decoder_window_is_capped);
    RUN(exact_reads_report_truncation_with_offset);
    RUN(lines_crlf_no_final_newline_and_long_lines);
    RUN(missing_input_and_uncreatable_output);
    RUN(atomic_output_appears_only_on_commit);
    RUN(signal_removes_the_temporary);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 2;
    return tests_failed ? 1 : 0;
}
