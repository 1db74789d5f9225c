#include "quant.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* bitsandbytes get_4bit_type("nf4") and ("fp4"): the fp4 values are
 * [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3] / 12. */
static const float nf4_code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};
static float fp4_code[16];
static float dyn_code[256];

/* create_dynamic_map(signed=True), as float32 bit patterns (tests check them
 * against bitsandbytes' own, tests/fixtures/quant/). */
static const uint32_t dyn_bits[256] = {
0xbf7e3333, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333,
0xbf68999a, 0xbf650000, 0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a,
0xbf530000, 0xbf4f6666, 0xbf4bcccd, 0xbf483333, 0xbf44999a, 0xbf410000,
0xbf3d6666, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6666,
0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd,
0xbf123334, 0xbf0e999a, 0xbf0b0000, 0xbf076666, 0xbf03cccc, 0xbf003333,
0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a, 0xbedc6666, 0xbed53333,
0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000,
0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999,
0xbe6f3333, 0xbe60cccd, 0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333,
0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334, 0xbdc9eb85, 0xbdc428f7,
0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c2a, 0xbda1999a,
0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147b,
0xbd728f5d, 0xbd670a3d, 0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3,
0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148, 0xbcfeb852, 0xbce7ae15,
0xbcd0a3d7, 0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3,
0xbbcfdf3b, 0xbbbd70a4, 0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a,
0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d, 0xba7765ff, 0xba59e83e,
0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94,
0xb513a3b7, 0x00000000, 0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206,
0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b, 0x398ce705, 0x39c7e283,
0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374,
0x3bab020d, 0x3bbd70a4, 0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581,
0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148, 0x3c68f5c3, 0x3c8b851f,
0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000,
0x3d5b851f, 0x3d670a3d, 0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d,
0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a, 0x3da75c2a, 0x3dad1eb8,
0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000,
0x3e526666, 0x3e60cccd, 0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334,
0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000, 0x3eb13333, 0x3eb86666,
0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666,
0x3f0b0000, 0x3f0e999a, 0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000,
0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666, 0x3f2f0000, 0x3f32999a,
0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd,
0x3f616666, 0x3f650000, 0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666,
0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000
};

static void init_codes(void)
{
    static int done;
    if (done) return;
    static const float fp4[8] = {0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f};
    for (int i = 0; i < 8; i++) {
        fp4_code[i] = fp4[i] / 12.0f;
        fp4_code[i + 8] = fp4[i] == 0 ? 0.0f : -fp4[i] / 12.0f; /* Python's -0 is the integer 0 */
    }
    for (int i = 0; i < 256; i++) memcpy(&dyn_code[i], &dyn_bits[i], 4);
    done = 1;
}

const float *pp_quant_code4(pp_qtype t)
{
    init_codes();
    return t == PP_Q_FP4 ? fp4_code : nf4_code;
}

const float *pp_quant_dynamic_map(void)
{
    init_codes();
    return dyn_code;
}

size_t pp_quant_blocks(size_t n, int blocksize) { return (n + (size_t)blocksize - 1) / (size_t)blocksize; }

/* dQuantizeNF4: the kernel's decision tree, thresholds and comparisons as written there. */
static unsigned nf4(float x)
{
    if (x > 0.03979014977812767f) {
        if (x > 0.3893125355243683f) {
            if (x > 0.6427869200706482f) return x > 0.8614784181118011f ? 15 : 14;
            return x > 0.5016634166240692f ? 13 : 12;
        }
        if (x > 0.2035212516784668f) return x > 0.2920137718319893f ? 11 : 10;
        return x > 0.1202552504837513f ? 9 : 8;
    }
    if (x > -0.33967943489551544f) {
        if (x > -0.13791173323988914f) return x > -0.045525018125772476f ? 7 : 6;
        return x > -0.23460740596055984f ? 5 : 4;
    }
    if (x > -0.6106329262256622f) return x > -0.4599952697753906f ? 3 : 2;
    return x > -0.8480964004993439f ? 1 : 0;
}

/* dQuantizeFP4: sign from x < 0 (so -0.0 and NaN get the positive codes). */
static unsigned fp4(float x)
{
    unsigned sign = x < 0 ? 8 : 0;
    x = fabsf(x);
    if (x > 0.29166667f) {
        if (x > 0.583333f) return (x > 0.8333333f ? 3 : 2) + sign;
        return (x > 0.4166667f ? 5 : 4) + sign;
    }
    if (x > 0.0859375f) return (x > 0.20833333f ? 7 : 6) + sign;
    return (x > 0.00260417f ? 1 : 0) + sign;
}

/* bitsandbytes builds its kernels with --use_fast_math: every float
 * operation flushes subnormal inputs and results to a zero of the same sign. */
static inline float ftz(float x)
{
    return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x;
}

/* The block's absmax as the kernel reduces it: fmaxf from -FLT_MAX. */
static float block_absmax(const float *x, size_t n)
{
    float m = -FLT_MAX;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(ftz(x[i])));
    return m;
}

/* 1.0f / absmax, flushed: +inf for an all-zero block, 0 above 2^126. */
static inline float inverse(float m)
{
    return ftz(1.0f / ftz(m));
}

void pp_quant4(uint8_t *packed, float *absmax, const float *x, size_t n, int blocksize, pp_qtype t)
{
    size_t bs = (size_t)blocksize;
    for (size_t b = 0; b * bs < n; b++) {
        size_t lo = b * bs, hi = lo + bs < n ? lo + bs : n;
        float m = block_absmax(x + lo, hi - lo);
        absmax[b] = m;
        float inv = inverse(m);
        for (size_t i = lo; i < hi; i++) {
            float v = ftz(ftz(x[i]) * inv);
            unsigned q = t == PP_Q_FP4 ? fp4(v) : nf4(v);
            if ((i & 1) == 0) packed[i / 2] = (uint8_t)(q << 4);
            else packed[i / 2] |= (uint8_t)q;
        }
    }
    /* An odd count: the last byte's low nibble quantizes the kernel's zero padding. */
    if (n & 1) {
        float v = 0.0f * inverse(absmax[(n - 1) / bs]);
        packed[n / 2] |= (uint8_t)(t == PP_Q_FP4 ? fp4(v) : nf4(v));
    }
}

void pp_dequant4(float *out, const uint8_t *packed, const float *absmax, size_t n, int blocksize, pp_qtype t)
{
    const float *code = pp_quant_code4(t);
    for (size_t i = 0; i < n; i++) {
        unsigned q = (i & 1) ? packed[i / 2] & 15 : packed[i / 2] >> 4;
        out[i] = code[q] * absmax[i / (size_t)blocksize];
    }
}

/* dQuantize<0>: binary search over the 256-entry code, then the nearer
 * neighbour by the midpoint, exactly as the kernel walks it. */
static uint8_t dyn_quant(const float *code, float x)
{
    int pivot = 127, upper_pivot = 255, lower_pivot = 0;
    float lower = -1.0f, upper = 1.0f, val = code[pivot];
    for (int i = 64; i > 0; i >>= 1) {
        if (x > val) {
            lower_pivot = pivot;
            lower = val;
            pivot += i;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= i;
        }
        val = code[pivot];
    }
    if (upper_pivot == 255) upper = code[upper_pivot];
    if (lower_pivot == 0) lower = code[lower_pivot];
    if (x > val) {
        float mid = (upper + val) * 0.5f;
        return (uint8_t)(x > mid ? upper_pivot : pivot);
    }
    float mid = (lower + val) * 0.5f;
    return (uint8_t)(x < mid ? lower_pivot : pivot);
}

void pp_quant_nested(uint8_t *q, float *nested_absmax, float *offset, const float *absmax, size_t nblocks)
{
    const float *code = pp_quant_dynamic_map();
    double sum = 0;
    for (size_t i = 0; i < nblocks; i++) sum += absmax[i];
    float off = nblocks ? (float)(sum / (double)nblocks) : 0.0f;
    *offset = off;
    float tmp[PP_NESTED_BLOCKSIZE];
    for (size_t lo = 0; lo < nblocks; lo += PP_NESTED_BLOCKSIZE) {
        size_t k = nblocks - lo < PP_NESTED_BLOCKSIZE ? nblocks - lo : PP_NESTED_BLOCKSIZE;
        for (size_t i = 0; i < k; i++) tmp[i] = absmax[lo + i] - off;
        float m = block_absmax(tmp, k);
        nested_absmax[lo / PP_NESTED_BLOCKSIZE] = m;
        float inv = inverse(m);
        for (size_t i = 0; i < k; i++) q[lo + i] = dyn_quant(code, ftz(ftz(tmp[i]) * inv));
    }
}

void pp_dequant_nested(float *absmax, const uint8_t *q, const float *nested_absmax, float offset, size_t nblocks)
{
    const float *code = pp_quant_dynamic_map();
    for (size_t i = 0; i < nblocks; i++)
        absmax[i] = code[q[i]] * nested_absmax[i / PP_NESTED_BLOCKSIZE] + offset;
}

void pp_quant_int8(int8_t *q, float *absmax, const float *x, size_t n, int blocksize)
{
    size_t bs = (size_t)blocksize;
    for (size_t b = 0; b * bs < n; b++) {
        size_t lo = b * bs, hi = lo + bs < n ? lo + bs : n;
        float m = block_absmax(x + lo, hi - lo);
        absmax[b] = m;
        double s = m > 0 ? 127.0 / (double)m : 0.0; /* double: no overflow for a tiny absmax */
        for (size_t i = lo; i < hi; i++) {
            double v = nearbyint((double)x[i] * s);
            q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v == v ? v : 0);
        }
    }
}

void pp_dequant_int8(float *out, const int8_t *q, const float *absmax, size_t n, int blocksize)
{
    for (size_t i = 0; i < n; i++) out[i] = (float)q[i] * (absmax[i / (size_t)blocksize] / 127.0f);
}

float pp_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float pp_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 1023, u;
    if (e == 0) {
        if (m == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int k = -1;
            do {
                k++;
                m <<= 1;
            } while (!(m & 1024));
            u = sign | (uint32_t)(127 - 15 - k) << 23 | (m & 1023) << 13;
        }
    } else if (e == 31) {
        u = sign | 0x7f800000u | m << 13;
    } else {
        u = sign | (e + 127 - 15) << 23 | m << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t pp_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

uint16_t pp_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);            /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);           /* overflow to inf */
    if (a < 0x38800000u) {                                           /* subnormal or zero */
        if (a < 0x33000000u) return (uint16_t)sign;
        uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;                                    /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((a >> 13) - (112u << 10)), rem = a & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

/* Python's repr() of a double: the fewest significant digits that read back
 * exactly, in positional notation for 1e-4 <= |v| < 1e16 (with ".0" when
 * integral), else d.ddde+XX. */
static void python_repr(char *buf, size_t cap, double v)
{
    char e[40];
    int p = 1;
    for (; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    if (v == 0) {
        snprintf(buf, cap, "%s", signbit(v) ? "-0.0" : "0.0");
        return;
    }
    char *ep = strchr(e, 'e');
    int exp10 = atoi(ep + 1);
    char digits[24];
    size_t nd = 0;
    for (const char *q = e; q < ep; q++)
        if (*q >= '0' && *q <= '9') digits[nd++] = *q;
    digits[nd] = '\0';
    char *o = buf;
    if (v < 0) *o++ = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) { /* 0.000ddd */
            *o++ = '0', *o++ = '.';
            for (int k = 0; k < -exp10 - 1; k++) *o++ = '0';
            for (size_t k = 0; k < nd; k++) *o++ = digits[k];
        } else { /* ddd.ddd, or ddd000.0 */
            for (int k = 0; k <= exp10; k++) *o++ = (size_t)k < nd ? digits[k] : '0';
            *o++ = '.';
            if (nd <= (size_t)exp10 + 1) *o++ = '0';
            for (size_t k = (size_t)exp10 + 1; k < nd; k++) *o++ = digits[k];
        }
        *o = '\0';
    } else { /* d.ddde+XX */
        *o++ = digits[0];
        if (nd > 1) *o++ = '.';
        for (size_t k = 1; k < nd; k++) *o++ = digits[k];
        snprintf(o, cap - (size_t)(o - buf), "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
}

pp_status pp_quant_state_json(pp_buf *out, pp_qtype t, int blocksize, const char *dtype, const uint64_t *shape,
                              int ndim, int double_quant, float offset)
{
    static const char *const names[] = {"nf4", "fp4", "int8"};
    PP_TRY(pp_buf_printf(out, "{\"quant_type\": \"%s\", \"blocksize\": %d, \"dtype\": \"%s\", \"shape\": [", names[t],
                         blocksize, dtype));
    for (int i = 0; i < ndim; i++) PP_TRY(pp_buf_printf(out, i ? ", %llu" : "%llu", (unsigned long long)shape[i]));
    PP_TRY(pp_buf_adds(out, "]"));
    if (double_quant) {
        char num[40];
        python_repr(num, sizeof num, (double)offset);
        PP_TRY(pp_buf_printf(out, ", \"nested_blocksize\": %d, \"nested_dtype\": \"float32\", \"nested_offset\": %s",
                             PP_NESTED_BLOCKSIZE, num));
    }
    return pp_buf_adds(out, "}");
}
