/* safetensors container: round trips (plain, zstd), the reference library's
 * own file, and every invalid case the reader must refuse. */
#include <stdint.h>
#include <unistd.h>
#include <zstd.h>

#include "check.h"
#include "safetensors.h"
#include "stream.h"

static char dir[] = "/tmp/pp-test-st-XXXXXX";

/* A file image: u64 length (or len_override if nonzero), the header text,
 * then ndata bytes of data. */
static unsigned char *image(const char *header, size_t ndata, uint64_t len_override, size_t *n)
{
    size_t h = strlen(header);
    *n = 8 + h + ndata;
    unsigned char *p = calloc(1, *n);
    uint64_t len = len_override ? len_override : h;
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(len >> (8 * i));
    memcpy(p + 8, header, h);
    for (size_t i = 0; i < ndata; i++) p[8 + h + i] = (unsigned char)i;
    return p;
}

/* Opens the image and reads every tensor and the end; returns the first failure. */
static pp_status read_image(const unsigned char *p, size_t n)
{
    pp_reader *r;
    pp_st_reader *st = NULL;
    pp_status s = pp_reader_open_mem(&r, p, n);
    if (s == PP_OK) s = pp_st_open(&st, r);
    for (size_t i = 0; s == PP_OK && i < pp_st_count(st); i++) {
        const pp_tensor_info *t = pp_st_tensor(st, i);
        void *buf = malloc(t->end - t->begin + 1);
        s = pp_st_read(st, t, buf);
        free(buf);
    }
    if (s == PP_OK) s = pp_st_finish(st);
    pp_st_close(st);
    pp_reader_close(r);
    return s;
}

static pp_status read_header(const char *header, size_t ndata)
{
    size_t n;
    unsigned char *p = image(header, ndata, 0, &n);
    pp_status s = read_image(p, n);
    free(p);
    return s;
}

TEST(valid_minimal_files)
{
    CHECK_STATUS(read_header("{}", 0), PP_OK);
    CHECK_STATUS(read_header("{\"__metadata__\":{\"a\":\"b\"}}", 0), PP_OK);
    CHECK_STATUS(read_header("{\"__metadata__\":null}", 0), PP_OK);
    CHECK_STATUS(read_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4), PP_OK);
    CHECK_STATUS(read_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]}}", 0), PP_OK);
    CHECK_STATUS(read_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
                             "\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0), PP_OK);
    /* out of header order but contiguous, with padding spaces after the JSON */
    CHECK_STATUS(read_header("{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]},"
                             "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}   ", 5), PP_OK);
}

TEST(invalid_headers_are_refused)
{
    static const struct {
        const char *header;
        size_t ndata;
        const char *why;
    } bad[] = {
        {"{\"a\"", 0, "not valid JSON"},
        {"[]", 0, "not a JSON object"},
        {"{} x", 0, "data after the JSON"},
        {"\"str\"", 0, "not a JSON object"},
        {"{\"__metadata__\":{\"a\":1}}", 0, "not a string"},
        {"{\"__metadata__\":[]}", 0, "not an object"},
        {"{\"__metadata__\":{\"a\":\"b\",\"a\":\"c\"}}", 0, "duplicate metadata"},
        {"{\"x\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, "shape"},
        {"{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "data_offsets"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "need 8"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "end before"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6, "overlap"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8, "duplicate tensor"},
        {"{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "NUL"},
        {"{\"a\tb\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "control character"},
        {"{\"\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "UTF-8"},
        {"{\"x\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "overflow"},
        {"{\"x\":{\"dtype\":\"F64\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,8]}}", 8, "overflow"},
        {"{\"x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 3, "declares 4 bytes of data, the file has 3"},
        {"{\"x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 5, "declares 4 bytes of data, the file has 5"},
        {"{\"x\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "dimensions"},
        {"{\"x\":[1,2]}", 0, "not an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pp_status s = read_header(bad[i].header, bad[i].ndata);
        if (s != PP_E_DATA || !strstr(pp_errmsg(), bad[i].why)) {
            fprintf(stderr, "  case %zu (%s): status %d, message: %s\n", i, bad[i].why, (int)s, pp_errmsg());
            check_failed = 1;
        }
    }
}

/* Compressed input has no known size: the end is checked by reading. */
TEST(zstd_stream_checks_the_end)
{
    const char *h = "{\"x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
    for (size_t nd = 3; nd <= 5; nd++) {
        size_t n;
        unsigned char *p = image(h, nd, 0, &n);
        size_t cap = ZSTD_compressBound(n);
        unsigned char *z = malloc(cap);
        size_t zn = ZSTD_compress(z, cap, p, n, 3);
        pp_status s = read_image(z, zn);
        CHECK(s == (nd == 4 ? PP_OK : PP_E_DATA));
        if (nd == 3) CHECK(strstr(pp_errmsg(), "truncated") && strstr(pp_errmsg(), "tensor x"));
        if (nd == 5) CHECK(strstr(pp_errmsg(), "input goes on") != NULL);
        free(z);
        free(p);
    }
}

TEST(header_length_is_checked)
{
    size_t n;
    unsigned char *p = image("{}", 0, 100000001, &n);
    CHECK_STATUS(read_image(p, n), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "exceeds") != NULL);
    free(p);
    p = image("{}", 0, 64, &n); /* longer than the file */
    CHECK_STATUS(read_image(p, n), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "truncated") != NULL);
    free(p);
    p = image("{}", 0, UINT64_MAX, &n);
    CHECK_STATUS(read_image(p, n), PP_E_DATA);
    free(p);
    CHECK_STATUS(read_image((const unsigned char *)"\x02\0\0\0", 4), PP_E_DATA);
    CHECK_STATUS(read_image((const unsigned char *)"", 0), PP_E_DATA);
}

static const uint64_t shp_a[] = {2, 3}, shp_e[] = {0, 4}, shp_s[1] = {0};

/* Writes three tensors, one of them zero-size and one a scalar. */
static void write_sample(const char *path, int level)
{
    static const float a[6] = {1, -2, 3.5f, 0, 1e-30f, -0.0f};
    static const double sc = 42.25;
    pp_st_entry e[] = {
        {"model.layers.0.weight", PP_F32, 2, shp_a, a},
        {"empty", PP_BF16, 2, shp_e, ""},
        {"scalar", PP_F64, 0, shp_s, &sc},
    };
    const char *kv[] = {"pp.kind", "test", "quote\"and\\back", "line\nbreak \xc3\xa9"};
    pp_writer *w;
    CHECK_STATUS(pp_writer_open(&w, path, level), PP_OK);
    CHECK_STATUS(pp_st_write(w, e, 3, kv, 2), PP_OK);
    CHECK_STATUS(pp_writer_commit(w), PP_OK);
}

TEST(round_trip_plain_and_zstd)
{
    char path[256];
    for (int level = 0; level <= 3; level += 3) {
        snprintf(path, sizeof path, "%s/sample.%d", dir, level);
        write_sample(path, level);
        pp_reader *r;
        pp_st_reader *st;
        CHECK_STATUS(pp_reader_open(&r, path), PP_OK);
        CHECK_STATUS(pp_st_open(&st, r), PP_OK);
        CHECK(pp_st_count(st) == 3);
        CHECK(strcmp(pp_st_meta(st, "pp.kind"), "test") == 0);
        CHECK(strcmp(pp_st_meta(st, "quote\"and\\back"), "line\nbreak \xc3\xa9") == 0);
        const pp_tensor_info *a = pp_st_find(st, "model.layers.0.weight"), *e = pp_st_find(st, "empty"),
                             *s = pp_st_find(st, "scalar");
        CHECK(a && a->dtype == PP_F32 && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 && a->nelem == 6);
        CHECK(e && e->dtype == PP_BF16 && e->nelem == 0 && e->begin == e->end);
        CHECK(s && s->dtype == PP_F64 && s->ndim == 0 && s->nelem == 1);
        float fa[6];
        double d;
        CHECK_STATUS(pp_st_read(st, a, fa), PP_OK);
        CHECK(fa[2] == 3.5f && fa[4] == 1e-30f);
        CHECK_STATUS(pp_st_read(st, s, &d), PP_OK);
        CHECK(d == 42.25);
        CHECK_STATUS(pp_st_read(st, a, fa), PP_E_INTERNAL); /* out of file order */
        CHECK_STATUS(pp_st_finish(st), PP_OK);
        pp_st_close(st);
        pp_reader_close(r);
    }
    /* The header is padded to 8 bytes, as the reference writer does. */
    size_t n;
    snprintf(path, sizeof path, "%s/sample.0", dir);
    unsigned char *p = (unsigned char *)slurp(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | p[i];
    CHECK(hl % 8 == 0 && 8 + hl + 24 + 8 == n);
    free(p);
}

TEST(writer_refuses_bad_entries)
{
    pp_writer *w;
    char path[256];
    snprintf(path, sizeof path, "%s/bad", dir);
    static const uint64_t one[1] = {1}, huge[2] = {UINT64_MAX / 2, 4};
    pp_st_entry dup[] = {{"x", PP_U8, 1, one, "a"}, {"x", PP_U8, 1, one, "b"}};
    pp_st_entry over[] = {{"x", PP_F32, 2, huge, NULL}};
    pp_st_entry meta[] = {{"__metadata__", PP_U8, 1, one, "a"}};
    CHECK_STATUS(pp_writer_open(&w, path, 0), PP_OK);
    CHECK_STATUS(pp_st_write(w, dup, 2, NULL, 0), PP_E_INTERNAL);
    CHECK_STATUS(pp_st_write(w, over, 1, NULL, 0), PP_E_DATA);
    CHECK_STATUS(pp_st_write(w, meta, 1, NULL, 0), PP_E_INTERNAL);
    pp_writer_abort(w);
    CHECK(access(path, F_OK) != 0);
}

TEST(truncated_zstd_file_fails_at_every_byte)
{
    char path[256];
    snprintf(path, sizeof path, "%s/sample.3", dir);
    size_t n;
    unsigned char *p = (unsigned char *)slurp(path, &n);
    for (size_t len = 0; len < n; len++) {
        pp_status s = read_image(p, len);
        if (s == PP_OK) {
            fprintf(stderr, "  a prefix of %zu of %zu bytes was accepted\n", len, n);
            check_failed = 1;
        }
    }
    CHECK_STATUS(read_image(p, n), PP_OK);
    free(p);
}

/* tests/fixtures/python.safetensors was written by the reference library
 * (gen_fixtures.py): arange-based values that are recomputed here. */
TEST(reads_the_reference_librarys_file)
{
    pp_reader *r;
    pp_st_reader *st;
    CHECK_STATUS(pp_reader_open(&r, "tests/fixtures/python.safetensors"), PP_OK);
    CHECK_STATUS(pp_st_open(&st, r), PP_OK);
    if (check_failed) return;
    CHECK(pp_st_count(st) == 7);
    CHECK(strcmp(pp_st_meta(st, "pp.test"), "written by safetensors") == 0);
    for (size_t i = 0; i < pp_st_count(st); i++) {
        const pp_tensor_info *t = pp_st_tensor(st, i);
        unsigned char buf[256];
        CHECK(t->end - t->begin <= sizeof buf);
        CHECK_STATUS(pp_st_read(st, t, buf), PP_OK);
        if (!strcmp(t->name, "f32")) {
            CHECK(t->dtype == PP_F32 && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 4);
            for (int k = 0; k < 12; k++) CHECK(((float *)buf)[k] == k / 4.0f);
        } else if (!strcmp(t->name, "f16")) {
            uint16_t *h = (uint16_t *)buf; /* -3 = 0xC200, 0 = 0, 2 = 0x4000 */
            CHECK(t->dtype == PP_F16 && h[0] == 0xC200 && h[3] == 0 && h[5] == 0x4000);
        } else if (!strcmp(t->name, "i64")) {
            for (int k = 0; k < 5; k++) CHECK(((int64_t *)buf)[k] == -1000000007LL * k);
        } else if (!strcmp(t->name, "u8")) {
            for (int k = 0; k < 7; k++) CHECK(buf[k] == (unsigned char)(37 * k));
        } else if (!strcmp(t->name, "flags")) {
            CHECK(t->dtype == PP_BOOL && buf[0] == 1 && buf[1] == 0 && buf[2] == 1);
        } else if (!strcmp(t->name, "empty")) {
            CHECK(t->nelem == 0 && t->shape[0] == 0 && t->shape[1] == 3);
        } else if (!strcmp(t->name, "scalar")) {
            CHECK(t->ndim == 0 && *(double *)buf == 2.5);
        } else {
            CHECK(!"unexpected tensor");
        }
    }
    CHECK_STATUS(pp_st_finish(st), PP_OK);
    pp_st_close(st);
    pp_reader_close(r);
}

int main(void)
{
    if (!mkdtemp(dir)) return 2;
    RUN(valid_minimal_files);
    RUN(invalid_headers_are_refused);
    RUN(zstd_stream_checks_the_end);
    RUN(header_length_is_checked);
    RUN(round_trip_plain_and_zstd);
    RUN(writer_refuses_bad_entries);
    RUN(truncated_zstd_file_fails_at_every_byte);
    RUN(reads_the_reference_librarys_file);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 2;
    return tests_failed ? 1 : 0;
}
