/* Quantization against bitsandbytes: every case of
 * tests/fixtures/quant/quant_ref.safetensors (made by gen_quant.py, which
 * follows the CUDA kernels, cross-checked with the bitsandbytes package) must
 * come out bit for bit: packed codes, absmax, code maps, nested absmax,
 * offset and the quant-state JSON. Plus round trips and conversions. */
#include <cjson/cJSON.h>
#include <math.h>

#include "check.h"
#include "quant.h"
#include "safetensors.h"
#include "stream.h"
#include "text.h"

static pp_st_reader *st;
static unsigned char *data;     /* every tensor of the fixture, by offset */

static const void *tensor(const char *name, const pp_tensor_info **ti)
{
    const pp_tensor_info *t = pp_st_find(st, name);
    if (ti) *ti = t;
    return t ? data + t->begin : NULL;
}

static int same_bytes(const char *what, const char *name, const void *a, const void *b, size_t n)
{
    if (a && b && memcmp(a, b, n) == 0) return 1;
    size_t i = 0;
    while (a && b && i < n && ((const unsigned char *)a)[i] == ((const unsigned char *)b)[i]) i++;
    fprintf(stderr, "  %s %s differs (first at byte %zu of %zu)\n", name, what, i, n);
    return 0;
}

static void run_case(const char *key, const char *meta)
{
    cJSON *m = cJSON_Parse(meta);
    const char *id = key + 5;
    const char *type = cJSON_GetObjectItem(m, "type")->valuestring, *dtype = cJSON_GetObjectItem(m, "dtype")->valuestring;
    int bs = cJSON_GetObjectItem(m, "blocksize")->valueint, dq = cJSON_IsTrue(cJSON_GetObjectItem(m, "double_quant"));
    const cJSON *shape = cJSON_GetObjectItem(m, "shape");
    uint64_t shp[2] = {0, 0};
    int nd = 0;
    size_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) n *= (size_t)(shp[nd++] = (uint64_t)d->valuedouble);
    pp_qtype qt = strcmp(type, "fp4") == 0 ? PP_Q_FP4 : PP_Q_NF4;
    char name[64];
    const pp_tensor_info *ti;
    snprintf(name, sizeof name, "%s.input", id);
    const void *in = tensor(name, &ti);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        if (ti->dtype == PP_F32) x[i] = ((const float *)in)[i];
        else if (!strcmp(dtype, "float16")) x[i] = pp_f16_to_f32(((const uint16_t *)in)[i]);
        else x[i] = pp_bf16_to_f32(((const uint16_t *)in)[i]);
    }
    size_t nb = pp_quant_blocks(n, bs), nn = pp_quant_blocks(nb, PP_NESTED_BLOCKSIZE);
    uint8_t *packed = calloc((n + 1) / 2, 1), *q = malloc(nb);
    float *absmax = malloc(nb * 4), *nested = malloc(nn * 4), offset = 0;
    pp_quant4(packed, absmax, x, n, bs, qt);
    int ok = 1;
    snprintf(name, sizeof name, "%s.packed", id);
    ok &= same_bytes("packed codes", id, packed, tensor(name, NULL), (n + 1) / 2);
    snprintf(name, sizeof name, "%s.quant_map", id);
    ok &= same_bytes("quant_map", id, pp_quant_code4(qt), tensor(name, NULL), 64);
    snprintf(name, sizeof name, "%s.absmax", id);
    if (!dq) {
        ok &= same_bytes("absmax", id, absmax, tensor(name, NULL), nb * 4);
    } else {
        pp_quant_nested(q, nested, &offset, absmax, nb);
        ok &= same_bytes("quantized absmax", id, q, tensor(name, NULL), nb);
        snprintf(name, sizeof name, "%s.nested_absmax", id);
        ok &= same_bytes("nested_absmax", id, nested, tensor(name, NULL), nn * 4);
        snprintf(name, sizeof name, "%s.nested_quant_map", id);
        ok &= same_bytes("nested_quant_map", id, pp_quant_dynamic_map(), tensor(name, NULL), 1024);
        snprintf(name, sizeof name, "%s.offset", id);
        ok &= same_bytes("offset", id, &offset, tensor(name, NULL), 4);
    }
    pp_buf json = {0};
    pp_quant_state_json(&json, qt, bs, dtype, shp, nd, dq, offset);
    const char *want = cJSON_GetObjectItem(m, "quant_state_json")->valuestring;
    if (strcmp(json.p, want) != 0) {
        fprintf(stderr, "  %s quant_state JSON:\n    pp:  %s\n    bnb: %s\n", id, json.p, want);
        ok = 0;
    }
    if (!ok) check_failed = 1;
    pp_buf_free(&json);
    free(x);
    free(packed);
    free(q);
    free(absmax);
    free(nested);
    cJSON_Delete(m);
}

TEST(bit_identical_to_bitsandbytes)
{
    pp_reader *r;
    CHECK_STATUS(pp_reader_open(&r, "tests/fixtures/quant/quant_ref.safetensors"), PP_OK);
    CHECK_STATUS(pp_st_open(&st, r), PP_OK);
    if (check_failed) return;
    data = malloc(pp_st_data_size(st) + 1);
    for (size_t i = 0; i < pp_st_count(st); i++) {
        const pp_tensor_info *t = pp_st_tensor(st, i);
        CHECK_STATUS(pp_st_read(st, t, data + t->begin), PP_OK);
    }
    int cases = 0;
    for (size_t i = 0; i < pp_st_meta_count(st); i++) {
        const char *k, *v;
        pp_st_meta_at(st, i, &k, &v);
        if (strncmp(k, "case.", 5) == 0) {
            run_case(k, v);
            cases++;
        }
    }
    CHECK(cases >= 15);
    free(data);
    pp_st_close(st);
    pp_reader_close(r);
}

TEST(round_trip_error_is_bounded)
{
    /* Gaussian weights: NF4's relative RMS error is about 0.1, FP4's a bit
     * more, INT8's about 0.01; every value lies within its block's absmax. */
    size_t n = 64 * 1024;
    float *x = malloc(n * 4), *y = malloc(n * 4), absmax[1024];
    uint8_t *p = malloc(n);
    uint64_t seed = 42;
    for (size_t i = 0; i < n; i++) { /* Box-Muller from a xorshift */
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        double u1 = ((seed >> 11) + 1.0) / 9007199254740993.0;
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        double u2 = (seed >> 11) / 9007199254740992.0;
        x[i] = (float)(0.02 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    const double bound[3] = {0.11, 0.13, 0.012};
    for (int t = 0; t < 3; t++) {
        if (t < 2) {
            pp_quant4(p, absmax, x, n, 64, (pp_qtype)t);
            pp_dequant4(y, p, absmax, n, 64, (pp_qtype)t);
        } else {
            pp_quant_int8((int8_t *)p, absmax, x, n, 64);
            pp_dequant_int8(y, (int8_t *)p, absmax, n, 64);
        }
        double e = 0, r = 0;
        for (size_t i = 0; i < n; i++) {
            e += (double)(x[i] - y[i]) * (x[i] - y[i]);
            r += (double)x[i] * x[i];
            CHECK(fabsf(y[i]) <= absmax[i / 64] * (1 + 1e-6f)); /* q * (absmax / 127): one rounding */
        }
        fprintf(stderr, "  type %d: relative RMS error %.4f\n", t, sqrt(e / r));
        CHECK(sqrt(e / r) < bound[t] && sqrt(e / r) > bound[t] / 20);
    }
    /* double quantization changes the absmax values only a little */
    float back[1024], nested[4], off;
    uint8_t q[1024];
    pp_quant4(p, absmax, x, n, 64, PP_Q_NF4);
    pp_quant_nested(q, nested, &off, absmax, 1024);
    pp_dequant_nested(back, q, nested, off, 1024);
    for (int i = 0; i < 1024; i++) CHECK(fabsf(back[i] - absmax[i]) <= 0.01f * absmax[i] + 1e-6f);
    free(x);
    free(y);
    free(p);
}

TEST(half_precision_conversions)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = pp_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (pp_f32_to_f16(f) != h) {
            fprintf(stderr, "  f16 %04x does not round-trip\n", h);
            check_failed = 1;
            break;
        }
        float g = pp_bf16_to_f32((uint16_t)h);
        if (!isnan(g) && pp_f32_to_bf16(g) != h) {
            fprintf(stderr, "  bf16 %04x does not round-trip\n", h);
            check_failed = 1;
            break;
        }
    }
    CHECK(pp_f16_to_f32(0x3c00) == 1.0f && pp_f16_to_f32(0x0001) == 5.9604644775390625e-8f);
    CHECK(pp_f32_to_f16(65520.0f) == 0x7c00 && pp_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(pp_f32_to_bf16(1.00390625f) == 0x3f80); /* a tie rounds to even */
    CHECK(pp_f32_to_bf16(1.01171875f) == 0x3f82);
    CHECK(pp_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00 && pp_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);
}

/* nested_offset as Python's repr() writes it (the strings come from Python) */
TEST(offset_written_as_python_repr)
{
    static const struct {
        float v;
        const char *want;
    } c[] = {
        {100.0f, "100.0"}, {20.0f, "20.0"}, {0.051963794976472855f, "0.051963794976472855"},
        {1e-5f, "9.999999747378752e-06"}, {0.0001f, "9.999999747378752e-05"}, {1e16f, "1.0000000272564224e+16"},
        {123456.5f, "123456.5"}, {-0.5f, "-0.5"}, {0.0f, "0.0"}, {3.0e-3f, "0.003000000026077032"},
        {1.5e20f, "1.500000030061316e+20"}, {1e15f, "999999986991104.0"},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        pp_buf b = {0};
        uint64_t sh[1] = {1};
        pp_quant_state_json(&b, PP_Q_NF4, 64, "float32", sh, 1, 1, c[i].v);
        const char *p = strstr(b.p, "\"nested_offset\": ");
        size_t n = strlen(c[i].want);
        if (!p || strncmp(p + 17, c[i].want, n) != 0 || p[17 + n] != '}') {
            fprintf(stderr, "  offset %g written as %s, Python writes %s\n", (double)c[i].v, p ? p + 17 : "?", c[i].want);
            check_failed = 1;
        }
        pp_buf_free(&b);
    }
}

int main(void)
{
    RUN(bit_identical_to_bitsandbytes);
    RUN(round_trip_error_is_bounded);
    RUN(half_precision_conversions);
    RUN(offset_written_as_python_repr);
    return tests_failed ? 1 : 0;
}
