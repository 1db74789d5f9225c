/* backend_cpu.c: the reference backend. fp32 activations; matrix products
 * through OpenBLAS (a non-fp32 weight is widened or dequantized into one
 * scratch buffer right before its product); decoding steps (a few rows) use
 * fused kernels that read the weight in its stored form, since there the
 * cost is reading the weight once. Everything else is OpenMP loops. */
#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#else /* built without OpenMP (the fuzzers): one thread */
static int omp_get_thread_num(void) { return 0; }
static int omp_get_num_threads(void) { return 1; }
static int omp_get_num_procs(void) { return 1; }
static int omp_get_max_threads(void) { return 1; }
#endif
#include <stdlib.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "optim.h"
#include "quant.h"

#define FUSED_MAX_ROWS 4    /* up to this many tokens: fused kernels */
#define PAR_MIN (1 << 16)   /* below this much work, threads cost more than they give */

typedef struct cpu {
    float *wbuf;            /* a dequantized weight (rows * cols), grown as needed */
    size_t wcap;
    float *att;             /* attention scores, per thread (threads * seq) */
    size_t attcap;
    float *dp;              /* attention backward: a (seq, seq) matrix per thread, grown as needed */
    size_t dpcap;
    double loss;            /* cross_entropy's sum since the last loss_sum */
} cpu;

static int grow(float **p, size_t *cap, size_t need)
{
    if (need <= *cap) return 1;
    float *q = realloc(*p, need * sizeof *q);
    if (!q) return 0;
    *p = q;
    *cap = need;
    return 1;
}

static void *cpu_alloc(pp_backend *be, size_t bytes)
{
    (void)be;
    return calloc(1, bytes ? bytes : 1);
}

static void cpu_free(pp_backend *be, void *p)
{
    (void)be;
    free(p);
}

static void cpu_copy(pp_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    memcpy(dst, src, bytes);
}

static pp_status cpu_reserve(pp_backend *be, size_t weight_elems, int seq)
{
    cpu *c = be->priv;
    if (!grow(&c->wbuf, &c->wcap, weight_elems) || !grow(&c->att, &c->attcap, (size_t)be->threads * (size_t)seq))
        return pp_fail(PP_E_NOMEM, "out of memory for the CPU backend's scratch");
    return PP_OK;
}

/* Row r of w widened to fp32 into out (w->cols values). */
static void widen_row(float *out, const pp_weight *w, int r)
{
    size_t c = (size_t)w->cols, at = (size_t)r * c;
    switch (w->type) {
    case PP_W_F32: memcpy(out, (const float *)w->data + at, c * 4); break;
    case PP_W_BF16:
        for (size_t i = 0; i < c; i++) out[i] = pp_bf16_to_f32(((const uint16_t *)w->data)[at + i]);
        break;
    case PP_W_F16:
        for (size_t i = 0; i < c; i++) out[i] = pp_f16_to_f32(((const uint16_t *)w->data)[at + i]);
        break;
    case PP_W_NF4:
    case PP_W_FP4: {
        const float *code = pp_quant_code4(w->type == PP_W_FP4 ? PP_Q_FP4 : PP_Q_NF4);
        const uint8_t *p = w->data;
        size_t bs = (size_t)w->blocksize;
        for (size_t i = 0; i < c;) {
            size_t k = at + i, blk = k / bs, end = (blk + 1) * bs - at;
            if (end > c) end = c;
            float lut[16], a = w->absmax[blk];
            for (int j = 0; j < 16; j++) lut[j] = code[j] * a;
            if ((k & 1) == 0) /* whole bytes: two values each */
                for (; i + 1 < end; i += 2, k += 2) {
                    uint8_t b = p[k / 2];
                    out[i] = lut[b >> 4];
                    out[i + 1] = lut[b & 15];
                }
            for (; i < end; i++, k++) out[i] = lut[(k & 1) ? p[k / 2] & 15 : p[k / 2] >> 4];
        }
        break;
    }
    case PP_W_INT8:
        for (size_t i = 0; i < c; i++) {
            size_t k = at + i;
            out[i] = (float)((const int8_t *)w->data)[k] * (w->absmax[k / (size_t)w->blocksize] / 127.0f);
        }
        break;
    }
}

static void cpu_embed(pp_backend *be, float *out, const pp_weight *t, const uint32_t *ids, int n)
{
    (void)be;
    for (int i = 0; i < n; i++) widen_row(out + (size_t)i * t->cols, t, (int)ids[i]);
}

static void cpu_rmsnorm(pp_backend *be, float *out, const float *x, const pp_weight *w, int n, float eps)
{
    int dim = w->cols;
    const float *g = w->data; /* norm weights are kept in fp32 by the loader */
#pragma omp parallel for num_threads(be->threads) if ((size_t)n * dim >= PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        float *oi = out + (size_t)i * dim;
        float ss = 0;
        for (int j = 0; j < dim; j++) ss += xi[j] * xi[j];
        float r = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int j = 0; j < dim; j++) oi[j] = g[j] * (xi[j] * r);
    }
}

#if defined(__x86_64__)
/* The sum of a vector's 8 lanes. */
__attribute__((target("avx2,fma"))) static inline float hsum(__m256 v)
{
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* exp of 8 floats (Cephes' expf: within 2 ulp over a softmax's range; 0 below -87). */
__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 z = _mm256_mul_ps(x, x), y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_add_ps(_mm256_fmadd_ps(y, z, x), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}


/* One row of a 4-bit weight against one vector, AVX2 + FMA: per block a
 * 16-entry table in two registers, 16 values per step (8 bytes: nibbles
 * interleaved high first), two accumulators. The row must start at a block
 * boundary and the blocksize be a multiple of 16. */
__attribute__((target("avx2,fma"))) static float dot4_avx2(const uint8_t *p, const float *absmax, const float *code,
                                                            const float *x, int cols, int bs)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 clo = _mm256_loadu_ps(code), chi = _mm256_loadu_ps(code + 8);
    const __m128i low = _mm_set1_epi8(15);
    for (int b = 0; b < cols; b += bs) {
        __m256 a = _mm256_set1_ps(absmax[b / bs]);
        __m256 lo = _mm256_mul_ps(clo, a), hi = _mm256_mul_ps(chi, a);
        for (int c = b; c < b + bs; c += 16) {
            __m128i bytes = _mm_loadl_epi64((const __m128i *)(p + c / 2));
            __m128i h = _mm_and_si128(_mm_srli_epi16(bytes, 4), low), l = _mm_and_si128(bytes, low);
            __m128i q = _mm_unpacklo_epi8(h, l);
            __m256i i0 = _mm256_cvtepu8_epi32(q), i1 = _mm256_cvtepu8_epi32(_mm_srli_si128(q, 8));
            __m256 v0 = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, i0), _mm256_permutevar8x32_ps(hi, i0),
                                         _mm256_castsi256_ps(_mm256_slli_epi32(i0, 28)));
            __m256 v1 = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, i1), _mm256_permutevar8x32_ps(hi, i1),
                                         _mm256_castsi256_ps(_mm256_slli_epi32(i1, 28)));
            acc0 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(x + c), acc0);
            acc1 = _mm256_fmadd_ps(v1, _mm256_loadu_ps(x + c + 8), acc1);
        }
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

/* One row of bf16 weights against one vector, AVX2 + FMA. cols % 16 == 0. */
__attribute__((target("avx2,fma"))) static float dot_bf16_avx2(const uint16_t *h, const float *x, int cols)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int c = 0; c < cols; c += 16) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(h + c));
        __m256 w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(w)), 16));
        __m256 w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(w, 1)), 16));
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + c), acc0);
        acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + c + 8), acc1);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

static int have_avx2(void)
{
    static int v = -1;
    if (v < 0) v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return v;
}
#endif

/* Fused product for a few rows of x against a stored weight: each thread
 * takes a range of the weight's rows and reads them once. */
static void fused(pp_backend *be, float *out, const float *x, const pp_weight *w, int n, int acc)
{
    int rows = w->rows, cols = w->cols;
    const float *code = pp_quant_code4(w->type == PP_W_FP4 ? PP_Q_FP4 : PP_Q_NF4);
#if defined(__x86_64__)
    /* one token: the vector kernels, where the layout allows */
    int is4 = w->type == PP_W_NF4 || w->type == PP_W_FP4;
    if (n == 1 && have_avx2() && ((is4 && w->blocksize % 16 == 0 && cols % w->blocksize == 0) ||
                                  (w->type == PP_W_BF16 && cols % 16 == 0))) {
#pragma omp parallel for num_threads(be->threads) schedule(static) if ((size_t)rows * cols >= PAR_MIN)
        for (int r = 0; r < rows; r++) {
            size_t at = (size_t)r * cols;
            float v = is4 ? dot4_avx2((const uint8_t *)w->data + at / 2, w->absmax + at / w->blocksize, code, x, cols,
                                      w->blocksize)
                          : dot_bf16_avx2((const uint16_t *)w->data + at, x, cols);
            out[r] = acc ? out[r] + v : v;
        }
        return;
    }
#endif
#pragma omp parallel for num_threads(be->threads) schedule(static) if ((size_t)rows * cols >= PAR_MIN)
    for (int r = 0; r < rows; r++) {
        float sum[FUSED_MAX_ROWS] = {0};
        size_t at = (size_t)r * cols;
        if (w->type == PP_W_BF16 || w->type == PP_W_F16) {
            const uint16_t *h = (const uint16_t *)w->data + at;
            for (int c = 0; c < cols; c++) {
                float v = w->type == PP_W_BF16 ? pp_bf16_to_f32(h[c]) : pp_f16_to_f32(h[c]);
                for (int t = 0; t < n; t++) sum[t] += v * x[(size_t)t * cols + c];
            }
        } else if (w->type == PP_W_INT8) {
            const int8_t *q = (const int8_t *)w->data + at;
            for (int c = 0; c < cols; c++) {
                float v = (float)q[c] * (w->absmax[(at + c) / (size_t)w->blocksize] / 127.0f);
                for (int t = 0; t < n; t++) sum[t] += v * x[(size_t)t * cols + c];
            }
        } else { /* NF4 / FP4: a 16-entry table per block, two values per byte */
            const uint8_t *p = w->data;
            size_t bs = (size_t)w->blocksize;
            for (int c = 0; c < cols;) {
                size_t k = at + (size_t)c, blk = k / bs;
                size_t end = (blk + 1) * bs - at;
                if (end > (size_t)cols) end = (size_t)cols;
                float lut[16], a = w->absmax[blk];
                for (int j = 0; j < 16; j++) lut[j] = code[j] * a;
                if ((k & 1) == 0 && n == 1) {
                    float s0 = 0, s1 = 0;
                    for (; c + 1 < (int)end; c += 2, k += 2) {
                        uint8_t b = p[k / 2];
                        s0 += lut[b >> 4] * x[c];
                        s1 += lut[b & 15] * x[c + 1];
                    }
                    sum[0] += s0 + s1;
                }
                for (; c < (int)end; c++, k++) {
                    float v = lut[(k & 1) ? p[k / 2] & 15 : p[k / 2] >> 4];
                    for (int t = 0; t < n; t++) sum[t] += v * x[(size_t)t * cols + c];
                }
            }
        }
        for (int t = 0; t < n; t++) {
            float *o = out + (size_t)t * rows + r;
            *o = acc ? *o + sum[t] : sum[t];
        }
    }
}

/* out (n, rows) = x · Wᵀ with one thread pool: each OpenMP thread takes a
 * slice of W's rows (widening or dequantizing it into its part of the
 * scratch if needed) and runs single-threaded OpenBLAS on it. Two pools
 * (OpenMP and OpenBLAS's own threads) spinning on the same cores cost more
 * than they gave. */
static void cpu_matmul(pp_backend *be, float *out, const float *x, const pp_weight *w, int n, int acc)
{
    cpu *c = be->priv;
    if (w->type != PP_W_F32 && (n <= FUSED_MAX_ROWS || (size_t)w->rows * w->cols > c->wcap)) {
        for (int t = 0; t < n; t += FUSED_MAX_ROWS) /* decoding, or no scratch reserved */
            fused(be, out + (size_t)t * w->rows, x + (size_t)t * w->cols, w, n - t < FUSED_MAX_ROWS ? n - t : FUSED_MAX_ROWS, acc);
        return;
    }
    int threads = (size_t)w->rows * w->cols * (size_t)n >= PAR_MIN ? be->threads : 1;
#pragma omp parallel num_threads(threads)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int r0 = (int)((long)w->rows * id / nt), r1 = (int)((long)w->rows * (id + 1) / nt);
        const float *W = (const float *)w->data + (size_t)r0 * w->cols;
        if (w->type != PP_W_F32) {
            for (int r = r0; r < r1; r++) widen_row(c->wbuf + (size_t)r * w->cols, w, r);
            W = c->wbuf + (size_t)r0 * w->cols;
        }
        if (r1 > r0) {
            if (n == 1)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, r1 - r0, w->cols, 1.0f, W, w->cols, x, 1, acc ? 1.0f : 0.0f,
                            out + r0, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r1 - r0, w->cols, 1.0f, x, w->cols, W, w->cols,
                            acc ? 1.0f : 0.0f, out + r0, w->rows);
        }
    }
}

/* Rotates q and k by the positions' angles (sign 1) or back by them (sign
 * -1: the transpose, for the backward pass), HF's rotate_half layout. */
static void rotate(pp_backend *be, float *q, float *k, int n, int pos0, int n_heads, int n_kv, int hd,
                   const float *inv_freq, float sign)
{
    int half = hd / 2;
#pragma omp parallel for num_threads(be->threads) if ((size_t)n * (n_heads + n_kv) * hd >= PAR_MIN)
    for (int i = 0; i < n; i++) {
        float pos = (float)(pos0 + i);
        for (int j = 0; j < half; j++) {
            /* as transformers computes it, in float32: freqs = position * inv_freq, then cos and sin */
            float a = pos * inv_freq[j], cs = cosf(a), sn = sign * sinf(a);
            for (int h = 0; h < n_heads + n_kv; h++) {
                float *v = h < n_heads ? q + ((size_t)i * n_heads + h) * hd : k + ((size_t)i * n_kv + (h - n_heads)) * hd;
                float x1 = v[j], x2 = v[j + half];
                v[j] = x1 * cs - x2 * sn;
                v[j + half] = x2 * cs + x1 * sn;
            }
        }
    }
}

static void cpu_rope(pp_backend *be, float *q, float *k, int n, int pos0, int n_heads, int n_kv, int hd,
                     const float *inv_freq)
{
    rotate(be, q, k, n, pos0, n_heads, n_kv, hd, inv_freq, 1.0f);
}

static void cpu_attention(pp_backend *be, float *out, const float *q, const float *kc, const float *vc, int n, int pos0,
                          int n_heads, int n_kv, int hd)
{
    cpu *c = be->priv;
    int seq = pos0 + n, group = n_heads / n_kv, kvd = n_kv * hd; /* seq <= the reserved length */
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for num_threads(be->threads) collapse(2) schedule(dynamic) if ((size_t)n * n_heads * seq * hd >= PAR_MIN)
    for (int i = 0; i < n; i++) {
        for (int h = 0; h < n_heads; h++) {
            float *s = c->att + (size_t)omp_get_thread_num() * seq;
            const float *qi = q + ((size_t)i * n_heads + h) * hd;
            int kvh = h / group, last = pos0 + i;
            float mx = -INFINITY;
            for (int j = 0; j <= last; j++) {
                const float *kj = kc + (size_t)j * kvd + (size_t)kvh * hd;
                float d = 0;
                for (int e = 0; e < hd; e++) d += qi[e] * kj[e];
                s[j] = d * scale;
                if (s[j] > mx) mx = s[j];
            }
            float sum = 0;
            for (int j = 0; j <= last; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            float *o = out + ((size_t)i * n_heads + h) * hd;
            memset(o, 0, (size_t)hd * sizeof *o);
            for (int j = 0; j <= last; j++) {
                const float *vj = vc + (size_t)j * kvd + (size_t)kvh * hd;
                float p = s[j] / sum;
                for (int e = 0; e < hd; e++) o[e] += p * vj[e];
            }
        }
    }
}

static void cpu_swiglu(pp_backend *be, float *out, const float *gate, const float *up, size_t n)
{
#pragma omp parallel for num_threads(be->threads) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void cpu_add(pp_backend *be, float *x, const float *y, size_t n)
{
    (void)be;
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}


/* ------------------------------------------------------------- training */

static void cpu_gemm(pp_backend *be, float *C, const float *A, const float *B, int M, int N, int K, int ta, int tb,
                     float alpha, float beta)
{
    /* threads split C's columns */
    int threads = (size_t)M * N * (size_t)K >= 8 * (size_t)PAR_MIN && N >= 64 ? be->threads : 1;
#pragma omp parallel num_threads(threads)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((long)N * id / nt), c1 = (int)((long)N * (id + 1) / nt);
        if (c1 > c0)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, c1 - c0, K, alpha,
                        A, ta ? M : K, tb ? B + (size_t)c0 * K : B + c0, tb ? K : N, beta, C + c0, N);
    }
}

static void cpu_matmul_dx(pp_backend *be, float *dx, const float *dy, const pp_weight *w, int n)
{
    cpu *c = be->priv;
    /* dx (n, cols) += dy (n, rows) · W (rows, cols): threads split dx's columns
     * when W is fp32; a stored weight is widened row slice by row slice. */
    if (w->type == PP_W_F32) {
        int threads = (size_t)w->rows * w->cols * (size_t)n >= PAR_MIN ? be->threads : 1;
#pragma omp parallel num_threads(threads)
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            int c0 = (int)((long)w->cols * id / nt), c1 = (int)((long)w->cols * (id + 1) / nt);
            if (c1 > c0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, c1 - c0, w->rows, 1.0f, dy, w->rows,
                            (const float *)w->data + c0, w->cols, 1.0f, dx + c0, w->cols);
        }
        return;
    }
    int threads = (size_t)w->rows * w->cols >= PAR_MIN ? be->threads : 1;
#pragma omp parallel num_threads(threads)
    {
#pragma omp for schedule(static)
        for (int r = 0; r < w->rows; r++) widen_row(c->wbuf + (size_t)r * w->cols, w, r);
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((long)w->cols * id / nt), c1 = (int)((long)w->cols * (id + 1) / nt);
        if (c1 > c0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, c1 - c0, w->rows, 1.0f, dy, w->rows, c->wbuf + c0,
                        w->cols, 1.0f, dx + c0, w->cols);
    }
}

static void cpu_rmsnorm_train(pp_backend *be, float *out, float *rstd, const float *x, const pp_weight *w, int n, float eps)
{
    (void)be;
    int dim = w->cols;
    const float *g = w->data;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        float ss = 0;
        for (int j = 0; j < dim; j++) ss += xi[j] * xi[j];
        float r = 1.0f / sqrtf(ss / (float)dim + eps);
        rstd[i] = r;
        for (int j = 0; j < dim; j++) out[(size_t)i * dim + j] = g[j] * (xi[j] * r);
    }
}

static void cpu_rmsnorm_backward(pp_backend *be, float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                                 const pp_weight *w, int n)
{
    int dim = w->cols;
    const float *g = w->data;
    /* rows in parallel unless the weight's gradient adds them up */
#pragma omp parallel for num_threads(be->threads) if (!dw && (size_t)n * dim >= PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim, *dyi = dy + (size_t)i * dim;
        float r = rstd[i];
        double dot = 0; /* sum_j g_j dy_j x_j */
        for (int j = 0; j < dim; j++) dot += (double)g[j] * dyi[j] * xi[j];
        float k = (float)(dot * r * r * r / dim);
        for (int j = 0; j < dim; j++) dx[(size_t)i * dim + j] += r * g[j] * dyi[j] - k * xi[j];
        if (dw)
            for (int j = 0; j < dim; j++) dw[j] += dyi[j] * (xi[j] * r);
    }
}

static void cpu_zero(pp_backend *be, float *p, size_t n)
{
    (void)be;
    memset(p, 0, n * sizeof *p);
}

static void cpu_copyf(pp_backend *be, float *dst, const float *src, size_t n)
{
    (void)be;
    memcpy(dst, src, n * sizeof *dst);
}

static void cpu_rows(pp_backend *be, float *dst, const float *src, const int *rows, int count, int dim, int scatter)
{
    (void)be;
    size_t d = (size_t)dim;
    for (int i = 0; i < count; i++)
        memcpy(dst + (scatter ? (size_t)rows[i] : (size_t)i) * d, src + (scatter ? (size_t)i : (size_t)rows[i]) * d,
               d * sizeof *dst);
}

static void cpu_dropout(pp_backend *be, float *out, const float *x, size_t n, uint64_t key, uint32_t thr, float scale, int acc)
{
    (void)be;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float v = pp_dropout_bits(key, i) >= thr ? x[i] * scale : 0.0f;
        out[i] = acc ? out[i] + v : v;
    }
}

static void cpu_narrow(pp_backend *be, void *dst, const float *src, size_t n)
{
    uint16_t *d = dst;
    int f16 = be->precision == PP_PREC_FP16;
    for (size_t i = 0; i < n; i++) d[i] = f16 ? pp_f32_to_f16(src[i]) : pp_f32_to_bf16(src[i]);
}

static void cpu_widen(pp_backend *be, float *dst, const void *src, size_t n)
{
    const uint16_t *s = src;
    int f16 = be->precision == PP_PREC_FP16;
    for (size_t i = 0; i < n; i++) dst[i] = f16 ? pp_f16_to_f32(s[i]) : pp_bf16_to_f32(s[i]);
}

static double cpu_sumsq(pp_backend *be, const float *x, size_t n)
{
    (void)be;
    return pp_sumsq(x, n);
}

static void cpu_scale(pp_backend *be, float *x, size_t n, float s)
{
    (void)be;
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

static void cpu_adamw(pp_backend *be, float *p, const float *g, float *m, float *v, size_t n, size_t n_decay, const float h[6])
{
    (void)be;
    pp_adamw_hyper hy = {h[0], h[1], h[2], h[3], h[4], h[5]};
    pp_adamw_update(p, g, m, v, n, n_decay, &hy);
}

static void cpu_embed_backward(pp_backend *be, float *dtable, const float *dout, const uint32_t *ids, int n, int dim)
{
    (void)be;
    for (int i = 0; i < n; i++) {
        float *row = dtable + (size_t)ids[i] * dim;
        const float *d = dout + (size_t)i * dim;
        for (int j = 0; j < dim; j++) row[j] += d[j];
    }
}

static void cpu_rope_backward(pp_backend *be, float *dq, float *dk, int n, int pos0, int n_heads, int n_kv, int hd,
                              const float *inv_freq)
{
    rotate(be, dq, dk, n, pos0, n_heads, n_kv, hd, inv_freq, -1.0f);
}

/* Causal softmax of the rows of s (n, n) in place: row i over 0..i, zeros after. */
#if defined(__x86_64__)
/* r[0..len) = exp(r - max) / sum, 8 at a time. */
__attribute__((target("avx2,fma"))) static void softmax_avx2(float *r, int len)
{
    int l8 = len & ~7;
    float mx = -INFINITY, sum = 0;
    for (int j = 0; j < len; j++) mx = r[j] > mx ? r[j] : mx;
    __m256 vm = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
    for (int j = 0; j < l8; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(r + j), vm));
        _mm256_storeu_ps(r + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    sum = hsum(acc);
    for (int j = l8; j < len; j++) sum += (r[j] = expf(r[j] - mx));
    __m256 vi = _mm256_set1_ps(1.0f / sum);
    for (int j = 0; j < l8; j += 8) _mm256_storeu_ps(r + j, _mm256_mul_ps(_mm256_loadu_ps(r + j), vi));
    for (int j = l8; j < len; j++) r[j] *= 1.0f / sum;
}
#endif

static void causal_softmax(float *s, int n)
{
#if defined(__x86_64__)
    int avx2 = have_avx2();
#endif
    for (int i = 0; i < n; i++) {
        float *r = s + (size_t)i * n;
        memset(r + i + 1, 0, (size_t)(n - i - 1) * sizeof *r);
#if defined(__x86_64__)
        if (avx2) {
            softmax_avx2(r, i + 1);
            continue;
        }
#endif
        float mx = -INFINITY, sum = 0;
        for (int j = 0; j <= i; j++) mx = r[j] > mx ? r[j] : mx;
        for (int j = 0; j <= i; j++) sum += (r[j] = expf(r[j] - mx));
        float inv = 1.0f / sum;
        for (int j = 0; j <= i; j++) r[j] *= inv;
    }
}

/* Per head, matrix products: S = scale Q Kᵀ, P = softmax(S), O = P V; heads in
 * parallel, each thread calling the single-threaded BLAS. */
static void cpu_attention_train(pp_backend *be, float *out, float *p, const float *q, const float *k, const float *v,
                                int n, int n_heads, int n_kv, int hd)
{
    int group = n_heads / n_kv, qd = n_heads * hd, kvd = n_kv * hd;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for num_threads(be->threads) schedule(dynamic) if ((size_t)n * n * n_heads * hd >= PAR_MIN)
    for (int h = 0; h < n_heads; h++) {
        int kh = h / group;
        float *ph = p + (size_t)h * n * n;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, scale, q + (size_t)h * hd, qd, k + (size_t)kh * hd,
                    kvd, 0.0f, ph, n);
        causal_softmax(ph, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n, 1.0f, ph, n, v + (size_t)kh * hd, kvd, 0.0f,
                    out + (size_t)h * hd, qd);
    }
}

/* Per key/value head (the heads of its group share dk, dv), in parallel:
 * dV += Pᵀ dO, dP = dO Vᵀ, dS = P (dP - rowsum(P dP)) scale, dQ = dS K,
 * dK += dSᵀ Q. */
static void cpu_attention_backward(pp_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *p,
                                   const float *q, const float *k, const float *v, int n, int n_heads, int n_kv, int hd)
{
    cpu *c = be->priv;
    int group = n_heads / n_kv, qd = n_heads * hd, kvd = n_kv * hd;
    float scale = 1.0f / sqrtf((float)hd);
    int threads = (size_t)n * n * n_heads * hd >= PAR_MIN ? be->threads : 1;
    if (threads > n_kv) threads = n_kv;
    if (!grow(&c->dp, &c->dpcap, (size_t)threads * n * n)) threads = 1, grow(&c->dp, &c->dpcap, (size_t)n * n);
    for (int i = 0; i < n; i++) {
        memset(dk + (size_t)i * kvd, 0, (size_t)kvd * sizeof *dk);
        memset(dv + (size_t)i * kvd, 0, (size_t)kvd * sizeof *dv);
    }
#pragma omp parallel for num_threads(threads) schedule(dynamic)
    for (int kh = 0; kh < n_kv; kh++) {
        float *ds = c->dp + (size_t)omp_get_thread_num() * n * n;
        for (int h = kh * group; h < (kh + 1) * group; h++) {
            const float *ph = p + (size_t)h * n * n, *doh = dout + (size_t)h * hd, *qh = q + (size_t)h * hd;
            const float *kk = k + (size_t)kh * hd, *vv = v + (size_t)kh * hd;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, n, 1.0f, ph, n, doh, qd, 1.0f, dv + (size_t)kh * hd, kvd);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, 1.0f, doh, qd, vv, kvd, 0.0f, ds, n);
            for (int i = 0; i < n; i++) {
                const float *pr = ph + (size_t)i * n;
                float *dr = ds + (size_t)i * n, dot = 0;
#pragma omp simd reduction(+ : dot)
                for (int j = 0; j <= i; j++) dot += pr[j] * dr[j];
#pragma omp simd
                for (int j = 0; j <= i; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
                memset(dr + i + 1, 0, (size_t)(n - i - 1) * sizeof *dr);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n, 1.0f, ds, n, kk, kvd, 0.0f, dq + (size_t)h * hd, qd);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, n, 1.0f, ds, n, qh, qd, 1.0f, dk + (size_t)kh * hd, kvd);
        }
    }
}

static void cpu_swiglu_backward(pp_backend *be, float *dg, float *du, const float *dh, const float *g, const float *u,
                                size_t n)
{
#pragma omp parallel for num_threads(be->threads) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i], ui = u[i], d = dh[i]; /* all read first: dg may be g, du may be u */
        float sg = 1.0f / (1.0f + expf(-gi)), silu = gi * sg;
        du[i] = d * silu;
        dg[i] = d * ui * sg * (1.0f + gi * (1.0f - sg));
    }
}

/* One row of cross-entropy: returns its loss and replaces the logits by
 * their gradient times scale. */
static double ce_row(float *l, int vocab, int target, float scale)
{
    float mx = l[0];
    for (int j = 1; j < vocab; j++) mx = l[j] > mx ? l[j] : mx;
    double sum = 0;
    for (int j = 0; j < vocab; j++) sum += expf(l[j] - mx);
    double lse = mx + log(sum), loss = lse - l[target];
    float flse = (float)lse;
    for (int j = 0; j < vocab; j++) l[j] = expf(l[j] - flse) * scale;
    l[target] -= scale;
    return loss;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static double ce_row_avx2(float *l, int vocab, int target, float scale)
{
    int v8 = vocab & ~7;
    __m256 m = _mm256_set1_ps(-INFINITY);
    for (int j = 0; j < v8; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(l + j));
    float mv[8], mx = -INFINITY;
    _mm256_storeu_ps(mv, m);
    for (int k = 0; k < 8; k++) mx = mv[k] > mx ? mv[k] : mx;
    for (int j = v8; j < vocab; j++) mx = l[j] > mx ? l[j] : mx;
    double sum = 0;
    __m256 vm = _mm256_set1_ps(mx);
    for (int j0 = 0; j0 < v8; j0 += 1024) { /* float blocks, added in double */
        int j1 = j0 + 1024 < v8 ? j0 + 1024 : v8;
        __m256 acc = _mm256_setzero_ps();
        for (int j = j0; j < j1; j += 8) acc = _mm256_add_ps(acc, exp8(_mm256_sub_ps(_mm256_loadu_ps(l + j), vm)));
        sum += hsum(acc);
    }
    for (int j = v8; j < vocab; j++) sum += expf(l[j] - mx);
    double lse = mx + log(sum), loss = lse - l[target];
    float flse = (float)lse;
    __m256 vl = _mm256_set1_ps(flse), vs = _mm256_set1_ps(scale);
    for (int j = 0; j < v8; j += 8)
        _mm256_storeu_ps(l + j, _mm256_mul_ps(exp8(_mm256_sub_ps(_mm256_loadu_ps(l + j), vl)), vs));
    for (int j = v8; j < vocab; j++) l[j] = expf(l[j] - flse) * scale;
    l[target] -= scale;
    return loss;
}
#endif

static void cpu_cross_entropy(pp_backend *be, float *logits, const int32_t *targets, int n, int vocab, float scale)
{
    double loss = 0;
#if defined(__x86_64__)
    int avx2 = have_avx2();
#else
    int avx2 = 0;
#endif
#pragma omp parallel for num_threads(be->threads) reduction(+ : loss) if ((size_t)n * vocab >= PAR_MIN)
    for (int i = 0; i < n; i++) {
        float *l = logits + (size_t)i * vocab;
        if (targets[i] < 0) {
            memset(l, 0, (size_t)vocab * sizeof *l);
            continue;
        }
#if defined(__x86_64__)
        if (avx2) {
            loss += ce_row_avx2(l, vocab, targets[i], scale);
            continue;
        }
#endif
        loss += ce_row(l, vocab, targets[i], scale);
    }
    ((cpu *)be->priv)->loss += loss;
}

static double cpu_loss_sum(pp_backend *be)
{
    cpu *c = be->priv;
    double s = c->loss;
    c->loss = 0;
    return s;
}

static void cpu_destroy(pp_backend *be);

static const pp_backend_ops cpu_ops = {
    "cpu", cpu_alloc, cpu_free, cpu_copy, cpu_copy, cpu_reserve, cpu_embed, cpu_rmsnorm, cpu_matmul, cpu_rope, cpu_attention,
    cpu_swiglu, cpu_add, cpu_gemm, cpu_matmul_dx, cpu_rmsnorm_train, cpu_rmsnorm_backward, cpu_rope_backward,
    cpu_attention_train, cpu_attention_backward, cpu_swiglu_backward, cpu_cross_entropy, cpu_loss_sum, cpu_embed_backward,
    cpu_zero, cpu_copyf, cpu_rows, cpu_dropout, cpu_narrow, cpu_widen, cpu_sumsq, cpu_scale, cpu_adamw, cpu_destroy, 1, 0,
};

/* This process's threads that are running or ready to run. */
static long running_here(void)
{
    DIR *d = opendir("/proc/self/task");
    long n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        size_t k = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[k] = 0;
        const char *p = strrchr(buf, ')'); /* "tid (name) S ..." */
        n += p && p[1] == ' ' && p[2] == 'R';
    }
    if (d) closedir(d);
    return n;
}

/* The CPUs free now: those this process may use, less the tasks of other
 * programs ready to run (/proc/loadavg's count of running tasks less this
 * process's own; the least of a few looks, so that a passing task does not
 * count). Threads that share a CPU with another busy program wait for each
 * other at every barrier: on a loaded machine fewer threads are faster. */
static int free_cpus(int allowed)
{
    long least = -1;
    for (int k = 0; k < 5; k++) {
        FILE *f = fopen("/proc/loadavg", "r");
        long running = -1;
        if (f && fscanf(f, "%*f %*f %*f %ld/", &running) != 1) running = -1;
        if (f) fclose(f);
        long others = running - running_here();
        if (running > 0 && (least < 0 || others < least)) least = others < 0 ? 0 : others;
        if (k < 4) usleep(1000);
    }
    if (least < 0) return allowed;
    long n = allowed - least;
    return n < 1 ? 1 : n > allowed ? allowed : (int)n;
}

pp_status pp_backend_cpu(pp_backend **out, int threads)
{
    *out = NULL;
    pp_backend *be = calloc(1, sizeof *be);
    cpu *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    be->ops = &cpu_ops;
    if (threads <= 0 && getenv("OMP_NUM_THREADS")) threads = omp_get_max_threads(); /* the user's */
    be->threads = threads > 0 ? threads : threads < 0 ? free_cpus(omp_get_num_procs()) : omp_get_num_procs();
    be->priv = c;
    openblas_set_num_threads(1); /* the threads are OpenMP's (cpu_matmul) */
    /* Start the thread pool now; pin each thread to its own CPU when there
     * are enough of them (as OMP_PROC_BIND=true would, unless the user set
     * it): unpinned, two busy threads were now and then scheduled on one
     * CPU, and a prompt took three times as long. */
    cpu_set_t allowed;
    int pin = !getenv("OMP_PROC_BIND") && sched_getaffinity(0, sizeof allowed, &allowed) == 0 &&
              CPU_COUNT(&allowed) >= be->threads && be->threads > 1;
#pragma omp parallel num_threads(be->threads)
    {
        if (pin) {
            int want = omp_get_thread_num(), k = -1;
            for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
                if (CPU_ISSET(cpu, &allowed) && ++k == want) {
                    cpu_set_t one;
                    CPU_ZERO(&one);
                    CPU_SET(cpu, &one);
                    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
                    break;
                }
        }
        float a[64] = {0}, b[64] = {0}, o[64];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 8, 8, 8, 1.0f, a, 8, b, 8, 0.0f, o, 8);
    }
    *out = be;
    return PP_OK;
}

void pp_backend_free(pp_backend *be)
{
    if (be) be->ops->destroy(be);
}

static void cpu_destroy(pp_backend *be)
{
    cpu *c = be->priv;
    if (c) {
        free(c->wbuf);
        free(c->att);
        free(c->dp);
        free(c);
    }
    free(be);
}

size_t pp_weight_bytes(const pp_weight *w)
{
    size_t n = (size_t)w->rows * (size_t)w->cols;
    switch (w->type) {
    case PP_W_F32: return 4 * n;
    case PP_W_F16:
    case PP_W_BF16: return 2 * n;
    case PP_W_NF4:
    case PP_W_FP4: return (n + 1) / 2;
    case PP_W_INT8: return n;
    }
    return 0;
}
