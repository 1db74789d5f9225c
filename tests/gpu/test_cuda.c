/* test_cuda: every operation of the CUDA backend against the CPU backend on
 * fresh random inputs, then whole models end to end. Run by
 * tests/gpu/selftest.sh on a machine with an NVIDIA GPU:
 *
 *   test_cuda [MODEL...]     each MODEL (HF directory or pp model file) is
 *                            run on both backends: logits and greedy text
 *
 * Each check prints one table row: name, error, tolerance, ok/FAIL. The error
 * is the largest absolute difference over the largest absolute reference
 * value (NaN never passes). Output buffers are poisoned with NaN before each
 * run, so elements the kernel leaves unwritten fail. Exit 0 when all pass,
 * 1 when one fails, 77 when there is no CUDA device. PP_TEST_DEVICE=cpu
 * compares the CPU backend with itself: the harness's own check. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "llama.h"
#include "lora.h"
#include "quant.h"
#include "train.h"

static pp_backend *cpu, *gpu;
static int failed, checks;
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static float frand(void)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((double)((rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *randv(size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}

static void report(const char *name, double err, double tol)
{
    int ok = err <= tol; /* NaN fails */
    checks++;
    failed += !ok;
    printf("%-44s %11.3e %9.1e  %s\n", name, err, tol, ok ? "ok" : "FAIL");
    fflush(stdout);
}

static double rel_err(const float *got, const float *want, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= d)) d = e; /* NaN sticks */
        if (fabs(want[i]) > m) m = fabs(want[i]);
    }
    return m > 0 ? d / m : d;
}

/* Device buffer of n floats holding host values, or NaN when v is NULL. */
static float *dev(const float *v, size_t n)
{
    float *d = gpu->ops->alloc(gpu, n * sizeof(float));
    float *tmp = malloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) tmp[i] = v ? v[i] : NAN;
    gpu->ops->upload(gpu, d, tmp, n * sizeof(float));
    free(tmp);
    return d;
}

static float *host(const float *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    gpu->ops->download(gpu, h, d, n * sizeof(float));
    return h;
}

/* Compares a device buffer of n floats with the host reference. */
static void cmp_dev(const char *name, const float *d, const float *want, size_t n, double tol)
{
    float *got = host(d, n);
    report(name, rel_err(got, want, n), tol);
    free(got);
}

/* A weight of type t (rows, cols) from values v, on the host (hw) and the
 * device (dw); returns the host allocations to free. With nested_weights,
 * a 4-bit type's absmax values are double-quantized: the host gets them
 * resolved (as llama.c loads them), the device as stored (absq). */
typedef struct wpair {
    pp_weight hw, dw;
    void *hdata, *ddata;
    float *habs, *dabs;
    uint8_t *hq;
    void *dq;
    float *hnest, *dnest;
} wpair;

static int nested_weights;

static void make_weight(wpair *p, pp_wtype t, int rows, int cols, const float *v, int blocksize)
{
    memset(p, 0, sizeof *p);
    size_t n = (size_t)rows * cols, bytes = 0, nb = (n + blocksize - 1) / blocksize;
    p->hw = (pp_weight){.type = t, .rows = rows, .cols = cols, .blocksize = t >= PP_W_NF4 ? blocksize : 0};
    switch (t) {
    case PP_W_F32: bytes = 4 * n, p->hdata = malloc(bytes), memcpy(p->hdata, v, bytes); break;
    case PP_W_BF16:
    case PP_W_F16:
        bytes = 2 * n, p->hdata = malloc(bytes);
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)p->hdata)[i] = t == PP_W_BF16 ? pp_f32_to_bf16(v[i]) : pp_f32_to_f16(v[i]);
        break;
    case PP_W_NF4:
    case PP_W_FP4:
        bytes = (n + 1) / 2, p->hdata = malloc(bytes), p->habs = malloc(nb * sizeof(float));
        pp_quant4(p->hdata, p->habs, v, n, blocksize, t == PP_W_NF4 ? PP_Q_NF4 : PP_Q_FP4);
        if (nested_weights) {
            size_t nn = (nb + PP_NESTED_BLOCKSIZE - 1) / PP_NESTED_BLOCKSIZE;
            float off;
            p->hq = malloc(nb), p->hnest = malloc(nn * sizeof(float));
            pp_quant_nested(p->hq, p->hnest, &off, p->habs, nb);
            pp_dequant_nested(p->habs, p->hq, p->hnest, off, nb);
            p->dq = gpu->ops->alloc(gpu, nb);
            gpu->ops->upload(gpu, p->dq, p->hq, nb);
            p->dnest = dev(p->hnest, nn);
            p->dw.absq = p->dq, p->dw.absnest = p->dnest, p->dw.absoff = off;
        }
        break;
    case PP_W_INT8:
        bytes = n, p->hdata = malloc(bytes), p->habs = malloc(nb * sizeof(float));
        pp_quant_int8(p->hdata, p->habs, v, n, blocksize);
        break;
    }
    p->hw.data = p->hdata, p->hw.absmax = p->habs;
    pp_weight nested = p->dw;
    p->dw = p->hw;
    p->ddata = gpu->ops->alloc(gpu, bytes);
    gpu->ops->upload(gpu, p->ddata, p->hdata, bytes);
    p->dw.data = p->ddata;
    if (nested.absq) {
        p->dw.absmax = NULL;
        p->dw.absq = nested.absq, p->dw.absnest = nested.absnest, p->dw.absoff = nested.absoff;
    } else if (p->habs) {
        p->dabs = dev(p->habs, nb);
        p->dw.absmax = p->dabs;
    }
}

static void free_weight(wpair *p)
{
    gpu->ops->free(gpu, p->ddata);
    gpu->ops->free(gpu, p->dabs);
    gpu->ops->free(gpu, p->dq);
    gpu->ops->free(gpu, p->dnest);
    free(p->hdata);
    free(p->habs);
    free(p->hq);
    free(p->hnest);
}

static const char *tname(pp_wtype t)
{
    static const char *const n[] = {"f32", "f16", "bf16", "nf4", "fp4", "int8"};
    return n[t];
}

/* Double-quantized NF4 and FP4 decoded on the device exactly as the CPU
 * resolves them: x the identity's first n rows, so out (n, rows) holds Wᵀ's
 * first n rows, which fp32 products give exactly (the weight's own kernel
 * for n <= 8, cuBLAS on the widened weight above) and bf16 products as W
 * rounded to bf16 (widen4 or a value a thread). Counted in values that differ. */
static void check_nested(int rows, int cols)
{
    int bs = 64;
    size_t nw = (size_t)rows * cols;
    float *wv = randv(nw, 0.5f), *W = malloc(nw * sizeof *W);
    static const pp_wtype ts[] = {PP_W_NF4, PP_W_FP4};
    static const int ns[] = {8, 64};
    for (int ti = 0; ti < 2; ti++) {
        wpair w;
        nested_weights = 1;
        make_weight(&w, ts[ti], rows, cols, wv, bs);
        nested_weights = 0;
        pp_dequant4(W, w.hdata, w.habs, nw, bs, ts[ti] == PP_W_NF4 ? PP_Q_NF4 : PP_Q_FP4);
        gpu->ops->reserve(gpu, nw, 16);
        for (int pi = 0; pi < 2; pi++)
            for (int ni = 0; ni < 2; ni++) {
                int n = ns[ni];
                gpu->precision = pi ? PP_PREC_BF16 : PP_PREC_FP32;
                float *x = calloc((size_t)n * cols, sizeof *x);
                for (int i = 0; i < n; i++) x[(size_t)i * cols + i] = 1.0f;
                float *dx = dev(x, (size_t)n * cols), *dout = dev(NULL, (size_t)n * rows), *got = malloc((size_t)n * rows * 4);
                gpu->ops->matmul(gpu, dout, dx, &w.dw, n, 0);
                gpu->ops->download(gpu, got, dout, (size_t)n * rows * 4);
                double bad = 0;
                for (int i = 0; i < n; i++)
                    for (int r = 0; r < rows; r++) {
                        float want = W[(size_t)r * cols + i];
                        if (pi) want = pp_bf16_to_f32(pp_f32_to_bf16(want));
                        bad += memcmp(&want, got + (size_t)i * rows + r, 4) != 0;
                    }
                char name[96];
                snprintf(name, sizeof name, "double-quant %s %dx%d n=%d %s (differing)", tname(ts[ti]), rows, cols, n,
                         pi ? "bf16" : "fp32");
                report(name, bad, 0);
                gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dout);
                free(x), free(got);
            }
        free_weight(&w);
    }
    gpu->precision = PP_PREC_AUTO;
    free(wv), free(W);
}

static void check_matmul(pp_wtype t, int n, int rows, int cols, int acc)
{
    float *wv = randv((size_t)rows * cols, 0.5f), *x = randv((size_t)n * cols, 1.0f), *o0 = randv((size_t)n * rows, 1.0f);
    wpair w;
    make_weight(&w, t, rows, cols, wv, 64);
    float *want = malloc((size_t)n * rows * sizeof *want);
    memcpy(want, o0, (size_t)n * rows * sizeof *want);
    cpu->ops->reserve(cpu, (size_t)rows * cols, 16);
    gpu->ops->reserve(gpu, (size_t)rows * cols, 16);
    cpu->ops->matmul(cpu, want, x, &w.hw, n, acc);
    float *dx = dev(x, (size_t)n * cols), *dout = dev(acc ? o0 : NULL, (size_t)n * rows);
    gpu->ops->matmul(gpu, dout, dx, &w.dw, n, acc);
    char name[96];
    snprintf(name, sizeof name, "matmul %s n=%d %dx%d%s", tname(t), n, rows, cols, acc ? " acc" : "");
    /* the gemv path reads the weight as stored (fp32 sums); the GEMM path rounds x and W to bf16 */
    int gemm_bf16 = n > 8 && t != PP_W_F32;
    cmp_dev(name, dout, want, (size_t)n * rows, gemm_bf16 ? 2e-2 : 2e-5);
    gpu->ops->free(gpu, dx);
    gpu->ops->free(gpu, dout);
    free_weight(&w);
    free(wv), free(x), free(o0), free(want);
}

static void check_gemm(int M, int N, int K, int ta, int tb, float beta)
{
    float *A = randv((size_t)M * K, 1), *B = randv((size_t)K * N, 1), *Cm = randv((size_t)M * N, 1);
    float *dA = dev(A, (size_t)M * K), *dB = dev(B, (size_t)K * N), *dC = dev(beta != 0 ? Cm : NULL, (size_t)M * N);
    cpu->ops->gemm(cpu, Cm, A, B, M, N, K, ta, tb, 0.7f, beta);
    gpu->ops->gemm(gpu, dC, dA, dB, M, N, K, ta, tb, 0.7f, beta);
    char name[96];
    snprintf(name, sizeof name, "gemm %dx%dx%d ta=%d tb=%d beta=%g", M, N, K, ta, tb, beta);
    cmp_dev(name, dC, Cm, (size_t)M * N, 1e-5);
    gpu->ops->free(gpu, dA), gpu->ops->free(gpu, dB), gpu->ops->free(gpu, dC);
    free(A), free(B), free(Cm);
}

static void check_small_ops(void)
{
    int n = 37, dim = 320, H = 8, KV = 2, hd = 40;
    char name[96];
    /* rmsnorm */
    float *x = randv((size_t)n * dim, 2), *g = randv(dim, 1), *want = malloc((size_t)n * dim * 4);
    pp_weight hw = {.type = PP_W_F32, .rows = 1, .cols = dim, .data = g}, dw = hw;
    float *dg = dev(g, dim), *dx = dev(x, (size_t)n * dim), *dout = dev(NULL, (size_t)n * dim);
    dw.data = dg;
    cpu->ops->rmsnorm(cpu, want, x, &hw, n, 1e-5f);
    gpu->ops->rmsnorm(gpu, dout, dx, &dw, n, 1e-5f);
    cmp_dev("rmsnorm 37x320", dout, want, (size_t)n * dim, 1e-5);
    /* swiglu and add */
    float *u = randv((size_t)n * dim, 2), *du = dev(u, (size_t)n * dim);
    cpu->ops->swiglu(cpu, want, x, u, (size_t)n * dim);
    gpu->ops->swiglu(gpu, dout, dx, du, (size_t)n * dim);
    cmp_dev("swiglu 37x320", dout, want, (size_t)n * dim, 1e-6);
    memcpy(want, x, (size_t)n * dim * 4);
    cpu->ops->add(cpu, want, u, (size_t)n * dim);
    gpu->ops->add(gpu, dx, du, (size_t)n * dim);
    cmp_dev("add 37x320", dx, want, (size_t)n * dim, 0);
    /* rope at two offsets, plain and with Llama 3's scaled frequencies */
    for (int pos0 = 0; pos0 <= 1000; pos0 += 1000) {
        pp_config rc = {.head_dim = hd, .rope_theta = 10000.0f, .rope_factor = 1};
        if (pos0) rc = (pp_config){.head_dim = hd, .rope_theta = 500000.0f, .rope_type = PP_ROPE_LLAMA3,
                                   .rope_factor = 8, .rope_low_freq = 1, .rope_high_freq = 4, .rope_orig_max = 64};
        float inv[20], *dinv;
        pp_config_inv_freq(&rc, inv);
        dinv = dev(inv, (size_t)hd / 2);
        float *q = randv((size_t)n * H * hd, 1), *k = randv((size_t)n * KV * hd, 1);
        float *dq = dev(q, (size_t)n * H * hd), *dk = dev(k, (size_t)n * KV * hd);
        cpu->ops->rope(cpu, q, k, n, pos0, H, KV, hd, inv);
        gpu->ops->rope(gpu, dq, dk, n, pos0, H, KV, hd, dinv);
        gpu->ops->free(gpu, dinv);
        float *gq = host(dq, (size_t)n * H * hd), *gk = host(dk, (size_t)n * KV * hd);
        snprintf(name, sizeof name, "rope q,k pos0=%d", pos0);
        double e = rel_err(gq, q, (size_t)n * H * hd), e2 = rel_err(gk, k, (size_t)n * KV * hd);
        report(name, e > e2 || isnan(e2) ? (isnan(e2) ? e2 : e) : e2, 1e-5);
        gpu->ops->free(gpu, dq), gpu->ops->free(gpu, dk);
        free(q), free(k), free(gq), free(gk);
    }
    /* attention: a prefill of n after pos0 cached positions, and one decoding step */
    int seq = 300;
    float *kc = randv((size_t)seq * KV * hd, 1), *vc = randv((size_t)seq * KV * hd, 1);
    float *dkc = dev(kc, (size_t)seq * KV * hd), *dvc = dev(vc, (size_t)seq * KV * hd);
    cpu->ops->reserve(cpu, 1, seq);
    gpu->ops->reserve(gpu, 1, seq);
    int cases[3][2] = {{n, 0}, {n, 200}, {1, 299}};
    for (int c = 0; c < 3; c++) {
        int nq = cases[c][0], pos0 = cases[c][1];
        float *q = randv((size_t)nq * H * hd, 1), *o = malloc((size_t)nq * H * hd * 4);
        float *dq = dev(q, (size_t)nq * H * hd), *dO = dev(NULL, (size_t)nq * H * hd);
        cpu->ops->attention(cpu, o, q, kc, vc, nq, pos0, H, KV, hd);
        gpu->ops->attention(gpu, dO, dq, dkc, dvc, nq, pos0, H, KV, hd);
        snprintf(name, sizeof name, "attention n=%d pos0=%d GQA %d/%d hd=%d", nq, pos0, H, KV, hd);
        cmp_dev(name, dO, o, (size_t)nq * H * hd, 1e-5);
        gpu->ops->free(gpu, dq), gpu->ops->free(gpu, dO);
        free(q), free(o);
    }
    /* embed from a bf16 and an NF4 table */
    uint32_t ids[7] = {0, 5, 99, 3, 5, 120, 7};
    for (int t = 0; t < 2; t++) {
        float *tv = randv((size_t)128 * dim, 1), *e = malloc((size_t)7 * dim * 4);
        wpair w;
        make_weight(&w, t ? PP_W_NF4 : PP_W_BF16, 128, dim, tv, 64);
        float *de = dev(NULL, (size_t)7 * dim);
        cpu->ops->embed(cpu, e, &w.hw, ids, 7);
        gpu->ops->embed(gpu, de, &w.dw, ids, 7);
        cmp_dev(t ? "embed nf4 table" : "embed bf16 table", de, e, (size_t)7 * dim, 0);
        gpu->ops->free(gpu, de);
        free_weight(&w);
        free(tv), free(e);
    }
    gpu->ops->free(gpu, dkc), gpu->ops->free(gpu, dvc), gpu->ops->free(gpu, dg), gpu->ops->free(gpu, dx);
    gpu->ops->free(gpu, dout), gpu->ops->free(gpu, du);
    free(x), free(g), free(want), free(u), free(kc), free(vc);
}

/* The training operations (fp32 on both backends). */
static void check_train_ops(void)
{
    int n = 45, dim = 320, H = 8, KV = 2, hd = 40, qd = H * hd, kvd = KV * hd, V = 1000;
    size_t nd = (size_t)n * dim;
    char name[96];
    /* matmul_dx through each stored type */
    static const pp_wtype wt[] = {PP_W_F32, PP_W_BF16, PP_W_NF4};
    for (int t = 0; t < 3; t++) {
        int rows = 300, cols = 512;
        float *wv = randv((size_t)rows * cols, 0.5f), *dy = randv((size_t)n * rows, 1), *dx = randv((size_t)n * cols, 1);
        wpair w;
        make_weight(&w, wt[t], rows, cols, wv, 64);
        float *ddy = dev(dy, (size_t)n * rows), *ddx = dev(dx, (size_t)n * cols);
        cpu->ops->reserve(cpu, (size_t)rows * cols, 16), gpu->ops->reserve(gpu, (size_t)rows * cols, 16);
        cpu->ops->matmul_dx(cpu, dx, dy, &w.hw, n);
        gpu->ops->matmul_dx(gpu, ddx, ddy, &w.dw, n);
        snprintf(name, sizeof name, "matmul_dx %s n=%d %dx%d", tname(wt[t]), n, rows, cols);
        cmp_dev(name, ddx, dx, (size_t)n * cols, 2e-5);
        gpu->ops->free(gpu, ddy), gpu->ops->free(gpu, ddx);
        free_weight(&w);
        free(wv), free(dy), free(dx);
    }
    /* rmsnorm_train and its backward (dx accumulates, dw accumulates) */
    float *x = randv(nd, 2), *g = randv(dim, 1), *out = malloc(nd * 4), *rstd = malloc((size_t)n * 4);
    pp_weight hw = {.type = PP_W_F32, .rows = 1, .cols = dim, .data = g}, dw = hw;
    float *dg = dev(g, dim), *dx = dev(x, nd), *dout = dev(NULL, nd), *drstd = dev(NULL, (size_t)n);
    dw.data = dg;
    cpu->ops->rmsnorm_train(cpu, out, rstd, x, &hw, n, 1e-5f);
    gpu->ops->rmsnorm_train(gpu, dout, drstd, dx, &dw, n, 1e-5f);
    cmp_dev("rmsnorm_train out", dout, out, nd, 1e-5);
    cmp_dev("rmsnorm_train rstd", drstd, rstd, (size_t)n, 1e-6);
    float *dy = randv(nd, 1), *gx = randv(nd, 1), *gw = randv(dim, 1);
    float *ddy = dev(dy, nd), *dgx = dev(gx, nd), *dgw = dev(gw, dim);
    cpu->ops->rmsnorm_backward(cpu, gx, gw, dy, x, rstd, &hw, n);
    gpu->ops->rmsnorm_backward(gpu, dgx, dgw, ddy, dx, drstd, &dw, n);
    cmp_dev("rmsnorm_backward dx", dgx, gx, nd, 1e-5);
    cmp_dev("rmsnorm_backward dw", dgw, gw, dim, 1e-5);
    /* swiglu_backward */
    float *u = randv(nd, 2), *du = dev(u, nd), *dgate = malloc(nd * 4), *dup = malloc(nd * 4);
    float *ddgate = dev(NULL, nd), *ddup = dev(NULL, nd);
    cpu->ops->swiglu_backward(cpu, dgate, dup, dy, x, u, nd);
    gpu->ops->swiglu_backward(gpu, ddgate, ddup, ddy, dx, du, nd);
    cmp_dev("swiglu_backward dgate", ddgate, dgate, nd, 1e-6);
    cmp_dev("swiglu_backward dup", ddup, dup, nd, 1e-6);
    gpu->ops->copy(gpu, ddgate, dx, nd), gpu->ops->copy(gpu, ddup, du, nd); /* in place, as the trainer calls it */
    gpu->ops->swiglu_backward(gpu, ddgate, ddup, ddy, ddgate, ddup, nd);
    cmp_dev("swiglu_backward in place dgate", ddgate, dgate, nd, 1e-6);
    cmp_dev("swiglu_backward in place dup", ddup, dup, nd, 1e-6);
    /* rope_backward undoes rope */
    float *q = randv((size_t)n * qd, 1), *k = randv((size_t)n * kvd, 1);
    float *dq = dev(q, (size_t)n * qd), *dk = dev(k, (size_t)n * kvd);
    pp_config rc = {.head_dim = hd, .rope_theta = 10000.0f, .rope_factor = 1};
    float *inv = malloc((size_t)hd / 2 * 4), *dinv;
    pp_config_inv_freq(&rc, inv);
    dinv = dev(inv, (size_t)hd / 2);
    cpu->ops->rope_backward(cpu, q, k, n, 0, H, KV, hd, inv);
    gpu->ops->rope_backward(gpu, dq, dk, n, 0, H, KV, hd, dinv);
    gpu->ops->free(gpu, dinv), free(inv);
    cmp_dev("rope_backward q", dq, q, (size_t)n * qd, 1e-5);
    cmp_dev("rope_backward k", dk, k, (size_t)n * kvd, 1e-5);
    /* attention_train and attention_backward (GQA) */
    float *v = randv((size_t)n * kvd, 1), *dv_ = dev(v, (size_t)n * kvd);
    float *att = malloc((size_t)n * qd * 4), *pr = malloc((size_t)H * n * n * 4);
    float *datt = dev(NULL, (size_t)n * qd), *dp = dev(NULL, (size_t)H * n * n);
    cpu->ops->reserve(cpu, 1, n), gpu->ops->reserve(gpu, 1, n);
    cpu->ops->attention_train(cpu, att, pr, q, k, v, n, H, KV, hd);
    gpu->ops->attention_train(gpu, datt, dp, dq, dk, dv_, n, H, KV, hd);
    cmp_dev("attention_train out", datt, att, (size_t)n * qd, 1e-5);
    cmp_dev("attention_train p", dp, pr, (size_t)H * n * n, 1e-5);
    float *dO = randv((size_t)n * qd, 1), *ddO = dev(dO, (size_t)n * qd);
    float *gq = malloc((size_t)n * qd * 4), *gk = malloc((size_t)n * kvd * 4), *gv = malloc((size_t)n * kvd * 4);
    float *dgq = dev(NULL, (size_t)n * qd), *dgk = dev(NULL, (size_t)n * kvd), *dgv = dev(NULL, (size_t)n * kvd);
    cpu->ops->attention_backward(cpu, gq, gk, gv, dO, pr, q, k, v, n, H, KV, hd);
    gpu->ops->attention_backward(gpu, dgq, dgk, dgv, ddO, dp, dq, dk, dv_, n, H, KV, hd);
    cmp_dev("attention_backward dq", dgq, gq, (size_t)n * qd, 1e-5);
    cmp_dev("attention_backward dk", dgk, gk, (size_t)n * kvd, 1e-5);
    cmp_dev("attention_backward dv", dgv, gv, (size_t)n * kvd, 1e-5);
    if (gpu->ops->lse_attention) {
        /* the same without the probabilities: log-sum-exps kept, the backward pass recomputes */
        float *dlse = dev(NULL, (size_t)H * n);
        float *fatt = dev(NULL, (size_t)n * qd), *fq = dev(NULL, (size_t)n * qd), *fk = dev(NULL, (size_t)n * kvd),
              *fv = dev(NULL, (size_t)n * kvd);
        gpu->attention_lse = 1;
        gpu->ops->attention_train(gpu, fatt, dlse, dq, dk, dv_, n, H, KV, hd);
        gpu->ops->attention_backward(gpu, fq, fk, fv, ddO, dlse, dq, dk, dv_, n, H, KV, hd);
        gpu->attention_lse = 0;
        cmp_dev("attention_train, log-sum-exps kept: out", fatt, att, (size_t)n * qd, 1e-5);
        cmp_dev("attention_backward from log-sum-exps: dq", fq, gq, (size_t)n * qd, 1e-5);
        cmp_dev("attention_backward from log-sum-exps: dk", fk, gk, (size_t)n * kvd, 1e-5);
        cmp_dev("attention_backward from log-sum-exps: dv", fv, gv, (size_t)n * kvd, 1e-5);
        gpu->ops->free(gpu, dlse), gpu->ops->free(gpu, fatt), gpu->ops->free(gpu, fq), gpu->ops->free(gpu, fk);
        gpu->ops->free(gpu, fv);
    }
    /* cross_entropy: loss and gradient, a row without a target */
    float *lg = randv((size_t)n * V, 4), *dlg = dev(lg, (size_t)n * V), *dlg2 = dev(lg, (size_t)n * V);
    int32_t tg[45];
    for (int i = 0; i < n; i++) tg[i] = i % 7 == 3 ? -1 : (i * 37) % V;
    cpu->ops->cross_entropy(cpu, lg, tg, n, V, 0.25f), gpu->ops->cross_entropy(gpu, dlg, tg, n, V, 0.25f);
    double lc = cpu->ops->loss_sum(cpu), lgpu = gpu->ops->loss_sum(gpu);
    report("cross_entropy loss", fabs(lgpu - lc) / fabs(lc), 1e-6);
    cmp_dev("cross_entropy gradient", dlg, lg, (size_t)n * V, 1e-5);
    /* the loss summed over calls (rows in two blocks), then from 0 again */
    gpu->ops->cross_entropy(gpu, dlg2, tg, 20, V, 0.25f);
    gpu->ops->cross_entropy(gpu, dlg2 + (size_t)20 * V, tg + 20, n - 20, V, 0.25f);
    double l2 = gpu->ops->loss_sum(gpu), l3 = gpu->ops->loss_sum(gpu);
    report("cross_entropy loss over two calls", fabs(l2 - lc) / fabs(lc) + fabs(l3), 1e-6);
    gpu->ops->free(gpu, dlg2);
    /* embed_backward with a repeated id */
    uint32_t ids[45];
    for (int i = 0; i < n; i++) ids[i] = (uint32_t)((i * 13) % 40);
    float *tab = randv((size_t)40 * dim, 1), *dtab = dev(tab, (size_t)40 * dim);
    cpu->ops->embed_backward(cpu, tab, dy, ids, n, dim);
    gpu->ops->embed_backward(gpu, dtab, ddy, ids, n, dim);
    cmp_dev("embed_backward", dtab, tab, (size_t)40 * dim, 1e-6);
    /* data movement: zero, copy, rows (gather, scatter), dropout (the same mask, exactly) */
    float *a = randv(nd, 1), *da = dev(a, nd), *db = dev(NULL, nd);
    gpu->ops->copy(gpu, db, da, nd);
    cmp_dev("copy", db, a, nd, 0);
    gpu->ops->zero(gpu, db, nd);
    float *zeros = calloc(nd, 4);
    cmp_dev("zero", db, zeros, nd, 0);
    int rows[5] = {44, 0, 7, 8, 30};
    float *gat = malloc((size_t)5 * dim * 4);
    cpu->ops->rows(cpu, gat, a, rows, 5, dim, 0);
    float *dgat = dev(NULL, (size_t)5 * dim);
    gpu->ops->rows(gpu, dgat, da, rows, 5, dim, 0);
    cmp_dev("rows gather", dgat, gat, (size_t)5 * dim, 0);
    cpu->ops->rows(cpu, zeros, gat, rows, 5, dim, 1);
    gpu->ops->rows(gpu, db, dgat, rows, 5, dim, 1);
    cmp_dev("rows scatter", db, zeros, nd, 0);
    float *dr = malloc(nd * 4);
    memcpy(dr, x, nd * 4);
    cpu->ops->dropout(cpu, dr, a, nd, 0x1234567ull, 1288490189u, 1.0f / 0.7f, 1);
    float *ddr = dev(x, nd);
    gpu->ops->dropout(gpu, ddr, da, nd, 0x1234567ull, 1288490189u, 1.0f / 0.7f, 1);
    cmp_dev("dropout p=0.3 (the same mask)", ddr, dr, nd, 0);
    /* the optimizer: sum of squares, scaling, and AdamW's update (the same
     * roundings as the CPU's: equal to the bit) */
    double ssc = cpu->ops->sumsq(cpu, a, nd), ssg = gpu->ops->sumsq(gpu, da, nd);
    report("sumsq (double)", fabs(ssg - ssc) / ssc, 1e-12);
    float *sc = malloc(nd * 4);
    memcpy(sc, a, nd * 4);
    cpu->ops->scale(cpu, sc, nd, 0.37f);
    gpu->ops->scale(gpu, da, nd, 0.37f);
    cmp_dev("scale", da, sc, nd, 0);
    float *pm = randv(nd, 1), *mm = randv(nd, 0.1f), *vv = randv(nd, 0.01f);
    for (size_t i = 0; i < nd; i++) vv[i] = fabsf(vv[i]);
    float *dpm = dev(pm, nd), *dmm = dev(mm, nd), *dvv = dev(vv, nd);
    const float hyper[6] = {0.9f, 0.999f, 1e-8f, 2e-4f / 0.271f, 1.0f - 2e-4f * 0.01f, sqrtf(1.0f - 0.997003f)};
    cpu->ops->adamw(cpu, pm, sc, mm, vv, nd, nd - 100, hyper);
    gpu->ops->adamw(gpu, dpm, da, dmm, dvv, nd, nd - 100, hyper);
    cmp_dev("adamw params", dpm, pm, nd, 0);
    cmp_dev("adamw first moment", dmm, mm, nd, 0);
    cmp_dev("adamw second moment", dvv, vv, nd, 0);
    gpu->ops->free(gpu, dpm), gpu->ops->free(gpu, dmm), gpu->ops->free(gpu, dvv);
    free(sc), free(pm), free(mm), free(vv);
    float *bufs[] = {dg, dx, dout, drstd, ddy, dgx, dgw, du, ddgate, ddup, dq, dk, dv_, datt, dp, ddO, dgq, dgk, dgv,
                     dlg, dtab, da, db, dgat, ddr};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) gpu->ops->free(gpu, bufs[i]);
    float *hb[] = {x, g, out, rstd, dy, gx, gw, u, dgate, dup, q, k, v, att, pr, dO, gq, gk, gv, lg, tab, a, zeros, gat, dr};
    for (size_t i = 0; i < sizeof hb / sizeof *hb; i++) free(hb[i]);
}

/* A large operand's 16-bit copy, held between products (backend_cuda.cu's
 * operand16), is dropped when its source changes: x changed by an
 * operation (add), overwritten by a product (gemm), uploaded again, or
 * wanted in another precision; each product after a change must see the
 * new x (x doubled each time: a stale copy would be off by half). */
static void check_held_operands(void)
{
    int n = 2048, rows = 64, cols = 512; /* x: 2^20 values, PP_CUDA_HOLD_MIN */
    size_t nx = (size_t)n * cols, ny = (size_t)n * rows;
    float *wv = randv((size_t)rows * cols, 0.5f), *x = randv(nx, 1), *y = malloc(ny * sizeof *y);
    float *a = randv((size_t)n * 16, 1), *b = randv((size_t)16 * cols, 1);
    wpair w;
    make_weight(&w, PP_W_BF16, rows, cols, wv, 64);
    float *dx = dev(x, nx), *dy = dev(NULL, ny), *da = dev(a, (size_t)n * 16), *db = dev(b, (size_t)16 * cols);
    gpu->ops->reserve(gpu, (size_t)rows * cols, 16);
    gpu->precision = PP_PREC_BF16;
    static const char *const what[] = {"first", "after add", "after a product wrote x", "after upload", "in fp16"};
    for (int step = 0; step < 5; step++) {
        if (step == 1) { /* x += x */
            gpu->ops->add(gpu, dx, dx, nx);
            for (size_t i = 0; i < nx; i++) x[i] += x[i];
        } else if (step == 2) { /* x = 2 a b */
            gpu->ops->gemm(gpu, dx, da, db, n, cols, 16, 0, 0, 2.0f, 0.0f);
            cpu->ops->gemm(cpu, x, a, b, n, cols, 16, 0, 0, 2.0f, 0.0f);
        } else if (step == 3) {
            for (size_t i = 0; i < nx; i++) x[i] *= 2;
            gpu->ops->upload(gpu, dx, x, nx * sizeof *x);
        } else if (step == 4) {
            gpu->precision = PP_PREC_FP16;
        }
        cpu->ops->matmul(cpu, y, x, &w.hw, n, 0);
        gpu->ops->matmul(gpu, dy, dx, &w.dw, n, 0);
        char name[96];
        snprintf(name, sizeof name, "held operand: matmul %s", what[step]);
        cmp_dev(name, dy, y, ny, step == 4 ? 3e-3 : 2e-2);
    }
    gpu->precision = PP_PREC_AUTO;
    gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dy), gpu->ops->free(gpu, da), gpu->ops->free(gpu, db);
    free_weight(&w);
    free(wv), free(x), free(y), free(a), free(b);
}

/* A weight widened for bf16 products ahead of time (backend_cuda.cu widens
 * on a second stream) must be read after AdamW changed it (--full): an fp32
 * weight, a product, an AdamW step on it, the product again. (On the
 * emulator with PP_EMU_DEFER=1 the AdamW step waits in the stream's queue
 * until someone waits for it: a widening that did not would see the old
 * weight.) */
static void check_weight_update(void)
{
    int n = 45, rows = 96, cols = 512;
    size_t nw = (size_t)rows * cols;
    float *wv = randv(nw, 0.5f), *x = randv((size_t)n * cols, 1), *g = randv(nw, 1), *zeros = calloc(nw, sizeof *zeros);
    float *y = malloc((size_t)n * rows * sizeof *y);
    wpair w;
    make_weight(&w, PP_W_F32, rows, cols, wv, 64);
    float *dx = dev(x, (size_t)n * cols), *dy = dev(NULL, (size_t)n * rows), *dg = dev(g, nw), *dm = dev(zeros, nw),
          *dv = dev(zeros, nw), *hm = calloc(nw, sizeof *hm), *hv = calloc(nw, sizeof *hv);
    const float hyper[6] = {0.9f, 0.999f, 1e-8f, 0.5f, 1.0f, 0.0316227766f};
    gpu->ops->reserve(gpu, nw, 16);
    gpu->precision = PP_PREC_BF16;
    for (int step = 0; step < 2; step++) {
        if (step) {
            cpu->ops->adamw(cpu, w.hdata, g, hm, hv, nw, 0, hyper);
            gpu->ops->adamw(gpu, w.ddata, dg, dm, dv, nw, 0, hyper);
        }
        cpu->ops->matmul(cpu, y, x, &w.hw, n, 0);
        gpu->ops->matmul(gpu, dy, dx, &w.dw, n, 0);
        cmp_dev(step ? "bf16 product after AdamW changed the weight" : "bf16 product of an fp32 weight", dy, y,
                (size_t)n * rows, 2e-2);
    }
    gpu->precision = PP_PREC_AUTO;
    gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dy), gpu->ops->free(gpu, dg), gpu->ops->free(gpu, dm);
    gpu->ops->free(gpu, dv);
    free_weight(&w);
    free(wv), free(x), free(g), free(zeros), free(y), free(hm), free(hv);
}

/* narrow and widen (activations kept in 16 bits) bit for bit as the CPU
 * backend's, in bf16 and fp16: ties to even, subnormals, fp16's overflow to
 * inf; NaN stays NaN. */
static void check_narrow(void)
{
    static const pp_precision ps[] = {PP_PREC_BF16, PP_PREC_FP16};
    size_t n = 4099;
    float *x = randv(n, 4);
    x[0] = 70000.0f, x[1] = -1e30f, x[2] = 3e-7f, x[3] = -6e-8f, x[4] = NAN, x[5] = 1.0f + 1.0f / 256; /* a bf16 tie */
    x[6] = 1.0f + 3.0f / 2048; /* an fp16 tie */
    for (size_t i = 7; i < 64; i++) x[i] *= 1e-5f;
    uint16_t *h16 = malloc(n * 2), *g16 = malloc(n * 2);
    float *hw = malloc(n * 4), *gw = malloc(n * 4), *dx = dev(x, n), *dw = dev(NULL, n);
    void *d16 = gpu->ops->alloc(gpu, n * 2);
    for (int i = 0; i < 2; i++) {
        cpu->precision = gpu->precision = ps[i];
        cpu->ops->narrow(cpu, h16, x, n);
        cpu->ops->widen(cpu, hw, h16, n);
        gpu->ops->narrow(gpu, d16, dx, n);
        gpu->ops->widen(gpu, dw, d16, n);
        gpu->ops->download(gpu, g16, d16, n * 2);
        gpu->ops->download(gpu, gw, dw, n * 4);
        /* NaN: any NaN (the device's conversion has its own NaN bits: 0x7fff) */
        double bad16 = 0, bad32 = 0;
        for (size_t k = 0; k < n; k++) {
            int f16 = ps[i] == PP_PREC_FP16;
            uint16_t e = f16 ? 0x7c00 : 0x7f80, m = f16 ? 0x03ff : 0x007f;
            int nan_g = (g16[k] & e) == e && (g16[k] & m), nan_h = (h16[k] & e) == e && (h16[k] & m);
            bad16 += nan_h ? !nan_g : g16[k] != h16[k];
            bad32 += isnan(hw[k]) ? !isnan(gw[k]) : memcmp(gw + k, hw + k, 4) != 0;
        }
        char name[96];
        snprintf(name, sizeof name, "narrow %s (values differing)", pp_precision_name(ps[i]));
        report(name, bad16, 0);
        snprintf(name, sizeof name, "widen %s (values differing)", pp_precision_name(ps[i]));
        report(name, bad32, 0);
    }
    cpu->precision = gpu->precision = PP_PREC_AUTO;
    gpu->ops->free(gpu, d16), gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dw);
    free(x), free(h16), free(g16), free(hw), free(gw);
}

/* One LoRA step of the trainer on both backends: the loss and every
 * adapter gradient (all seven targets, B not zero so that A gets a
 * gradient too), on model, with dropout or without. */
/* One LoRA step on both backends, the GPU's products in precision prec. */
static void check_lora_step(const char *model, float dropout, pp_precision prec)
{
    gpu->precision = prec;
    pp_llama mc, mg;
    pp_lora lc, lg;
    if (pp_llama_load(&mc, model) != PP_OK || pp_llama_load(&mg, model) != PP_OK || pp_llama_to_backend(&mg, gpu) != PP_OK ||
        pp_lora_init(&lc, &mc.cfg, 8, 16, 0, 0x7f) != PP_OK || pp_lora_init(&lg, &mc.cfg, 8, 16, 0, 0x7f) != PP_OK) {
        printf("%-44s %s\n", model, pp_errmsg());
        failed++;
        return;
    }
    for (size_t i = 0; i < lc.n_params; i++) lc.params[i] = lg.params[i] = frand() * 0.1f;
    if (pp_lora_to_backend_train(&lg, gpu) != PP_OK) {
        printf("%-44s %s\n", model, pp_errmsg());
        failed++;
        return;
    }
    int V = mc.cfg.vocab;
    uint32_t r0[40], r1[25];
    for (int i = 0; i < 40; i++) r0[i] = (uint32_t)(1 + (i * 7919u) % (unsigned)(V - 1));
    for (int i = 0; i < 25; i++) r1[i] = (uint32_t)(1 + (i * 104729u) % (unsigned)(V - 1));
    const uint32_t *tok[2] = {r0, r1};
    int len[2] = {40, 25}, plen[2] = {10, 3};
    /* in fp32 the device takes the loss 7 rows at a time and keeps attention's
     * log-sum-exps (where it can), the CPU all rows at once and the
     * probabilities; in bf16 or fp16 the device keeps the layers' inputs in
     * that type (act16) */
    int fp32 = prec == PP_PREC_FP32;
    pp_train_opts o = {96, 48, 0, dropout, 5, fp32 ? 7 : 0, fp32 && gpu->ops->lse_attention, !fp32 && prec != PP_PREC_AUTO},
                  oc = o;
    oc.logit_rows = 0, oc.attention_lse = 0, oc.act16 = 0;
    pp_trainer tc, tgp;
    double loss_c = 0, loss_g = 0;
    int nc = 0, ng = 0;
    if (pp_trainer_init(&tc, &mc, cpu, &lc, &oc) != PP_OK || pp_trainer_init(&tgp, &mg, gpu, &lg, &o) != PP_OK ||
        pp_trainer_batch(&tc, tok, len, plen, 2, 0.02f, 1, &loss_c, &nc) != PP_OK ||
        pp_trainer_batch(&tgp, tok, len, plen, 2, 0.02f, 1, &loss_g, &ng) != PP_OK) {
        printf("%-44s %s\n", model, pp_errmsg());
        failed++;
        return;
    }
    pp_lora_grads_to_host(&lg);
    const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    char name[96];
    /* the products in fp32, or some in bf16 (AUTO: a stored weight's), or all in bf16 or fp16 */
    int quant = strcmp(mc.quant, "f32") != 0;
    double tl = 1e-5, tg = 1e-4;
    if (prec == PP_PREC_BF16 || (prec == PP_PREC_AUTO && quant)) tl = 1e-2, tg = 5e-2;
    if (prec == PP_PREC_FP16) tl = 2e-3, tg = 1e-2;
    snprintf(name, sizeof name, "LoRA step %s (%s, %s)%s: loss", base, mc.quant, pp_precision_name(prec), dropout > 0 ? " dropout" : "");
    report(name, nc == ng ? fabs(loss_g - loss_c) / fabs(loss_c) : INFINITY, tl);
    snprintf(name, sizeof name, "LoRA step %s (%s, %s)%s: gradients", base, mc.quant, pp_precision_name(prec), dropout > 0 ? " dropout" : "");
    report(name, rel_err(lg.grads, lc.grads, lc.n_params), tg);
    gpu->precision = PP_PREC_AUTO;
    pp_trainer_free(&tc), pp_trainer_free(&tgp);
    pp_lora_free(&lc), pp_lora_free(&lg);
    pp_llama_free(&mc), pp_llama_free(&mg);
}

/* The products in each precision against the CPU's fp32 (the CPU backend
 * ignores the setting, so this runs on a device only): close within the
 * precision's rounding, and really rounded (an error no larger than fp32's
 * would mean the setting is ignored); in fp16 a value beyond 65504
 * overflows, which the trainer's loss scaling relies on. */
static void check_precision(void)
{
    static const pp_precision ps[] = {PP_PREC_FP32, PP_PREC_BF16, PP_PREC_FP16};
    int n = 45, rows = 300, cols = 512;
    float *wv = randv((size_t)rows * cols, 0.5f), *x = randv((size_t)n * cols, 1), *dy = randv((size_t)n * rows, 1);
    wpair w;
    make_weight(&w, PP_W_BF16, rows, cols, wv, 64);
    cpu->ops->reserve(cpu, (size_t)rows * cols, 16), gpu->ops->reserve(gpu, (size_t)rows * cols, 16);
    float *y = malloc((size_t)n * rows * sizeof *y), *dx = calloc((size_t)n * cols, sizeof *dx);
    cpu->ops->matmul(cpu, y, x, &w.hw, n, 0);
    cpu->ops->matmul_dx(cpu, dx, dy, &w.hw, n);
    float *A = randv(40 * 64, 1), *B = randv(24 * 64, 1), *Cm = malloc(40 * 24 * sizeof *Cm);
    cpu->ops->gemm(cpu, Cm, A, B, 40, 24, 64, 0, 1, 1.0f, 0.0f);
    float *dX = dev(x, (size_t)n * cols), *dDy = dev(dy, (size_t)n * rows), *dA = dev(A, 40 * 64), *dB = dev(B, 24 * 64);
    char name[96];
    for (int i = 0; i < 3; i++) {
        gpu->precision = ps[i];
        double tol = ps[i] == PP_PREC_FP32 ? 2e-5 : ps[i] == PP_PREC_BF16 ? 2e-2 : 3e-3;
        float *dY = dev(NULL, (size_t)n * rows), *dDx = dev(NULL, (size_t)n * cols), *dC = dev(NULL, 40 * 24);
        gpu->ops->zero(gpu, dDx, (size_t)n * cols);
        gpu->ops->matmul(gpu, dY, dX, &w.dw, n, 0);
        gpu->ops->matmul_dx(gpu, dDx, dDy, &w.dw, n);
        gpu->ops->gemm(gpu, dC, dA, dB, 40, 24, 64, 0, 1, 1.0f, 0.0f);
        const char *pn = pp_precision_name(ps[i]);
        snprintf(name, sizeof name, "precision %s: matmul bf16 n=%d", pn, n);
        cmp_dev(name, dY, y, (size_t)n * rows, tol);
        snprintf(name, sizeof name, "precision %s: matmul_dx bf16 n=%d", pn, n);
        cmp_dev(name, dDx, dx, (size_t)n * cols, tol);
        snprintf(name, sizeof name, "precision %s: gemm 40x24x64", pn);
        cmp_dev(name, dC, Cm, 40 * 24, tol);
        if (ps[i] != PP_PREC_FP32) {
            float *h = host(dC, 40 * 24);
            snprintf(name, sizeof name, "precision %s: gemm operands really rounded", pn);
            report(name, rel_err(h, Cm, 40 * 24) > 1e-5 ? 0 : 1, 0);
            free(h);
        }
        gpu->ops->free(gpu, dY), gpu->ops->free(gpu, dDx), gpu->ops->free(gpu, dC);
    }
    /* fp16: dy of 1e5 is beyond its range */
    for (size_t i = 0; i < (size_t)n * rows; i++) dy[i] = 1e5f;
    gpu->ops->upload(gpu, dDy, dy, (size_t)n * rows * sizeof *dy);
    float *dDx = dev(NULL, (size_t)n * cols);
    gpu->ops->zero(gpu, dDx, (size_t)n * cols);
    gpu->ops->matmul_dx(gpu, dDx, dDy, &w.dw, n);
    float *h = host(dDx, (size_t)n * cols);
    int finite = 0;
    for (size_t i = 0; i < (size_t)n * cols; i++) finite += isfinite(h[i]) != 0;
    report("precision fp16: an operand beyond 65504 overflows", finite, 0);
    gpu->precision = PP_PREC_AUTO;
    free(h);
    gpu->ops->free(gpu, dDx), gpu->ops->free(gpu, dX), gpu->ops->free(gpu, dDy), gpu->ops->free(gpu, dA), gpu->ops->free(gpu, dB);
    free_weight(&w);
    free(wv), free(x), free(dy), free(y), free(dx), free(A), free(B), free(Cm);
}

/* A model on both backends: the logits of a prompt, and 48 greedy tokens. */
static void check_model(const char *path)
{
    pp_llama mc, mg;
    if (pp_llama_load(&mc, path) != PP_OK || pp_llama_load(&mg, path) != PP_OK || pp_llama_to_backend(&mg, gpu) != PP_OK) {
        printf("%-44s %s\n", path, pp_errmsg());
        failed++;
        return;
    }
    int V = mc.cfg.vocab, P = 24, G = 48, seq = P + G + 1;
    if (seq > mc.cfg.max_pos) seq = mc.cfg.max_pos, G = seq - P - 1;
    pp_infer sc, sg;
    uint32_t ids[256];
    for (int i = 0; i < P; i++) ids[i] = (uint32_t)(1 + (i * 7919u) % (unsigned)(V - 1));
    float *lc = malloc((size_t)P * V * 4), *lg = malloc((size_t)P * V * 4);
    pp_status s1 = pp_infer_init(&sc, &mc, cpu, seq, 64), s2 = pp_infer_init(&sg, &mg, gpu, seq, 64);
    if (s1 != PP_OK || s2 != PP_OK || pp_infer_forward(&sc, ids, P, lc, 1) != PP_OK ||
        pp_infer_forward(&sg, ids, P, lg, 1) != PP_OK) {
        printf("%-44s %s\n", path, pp_errmsg());
        failed++;
        return;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char name[96];
    int bf16_path = strcmp(mc.quant, "f32") != 0; /* prefill products in bf16 */
    snprintf(name, sizeof name, "logits %s (%s)", base, mc.quant);
    report(name, rel_err(lg, lc, (size_t)P * V), bf16_path ? 5e-2 : 1e-4);
    /* greedy: each backend continues its own text */
    int same = 0;
    uint32_t tc = 0, tg = 0;
    for (int k = 0; k < G; k++) {
        const float *a = lc + (size_t)(k == 0 ? P - 1 : 0) * V, *b = lg + (size_t)(k == 0 ? P - 1 : 0) * V;
        tc = 0, tg = 0;
        for (int j = 1; j < V; j++) {
            if (a[j] > a[tc]) tc = (uint32_t)j;
            if (b[j] > b[tg]) tg = (uint32_t)j;
        }
        if (tc != tg) break;
        same++;
        if (pp_infer_forward(&sc, &tc, 1, lc, 0) != PP_OK || pp_infer_forward(&sg, &tg, 1, lg, 0) != PP_OK) break;
    }
    snprintf(name, sizeof name, "greedy %s: equal tokens of %d", base, G);
    report(name, (double)(G - same), 0);
    pp_infer_free(&sc), pp_infer_free(&sg);
    pp_llama_free(&mc), pp_llama_free(&mg);
    free(lc), free(lg);
}

/* The tiny model with PEFT's adapter applied unmerged, on both backends. */
static void check_adapter(const char *model, const char *adapter)
{
    pp_llama mc, mg;
    pp_lora lc, lg;
    if (pp_llama_load(&mc, model) != PP_OK || pp_llama_load(&mg, model) != PP_OK || pp_llama_to_backend(&mg, gpu) != PP_OK ||
        pp_lora_load(&lc, &mc.cfg, adapter) != PP_OK || pp_lora_load(&lg, &mc.cfg, adapter) != PP_OK ||
        pp_lora_to_backend(&lg, gpu) != PP_OK) {
        printf("%-44s %s\n", adapter, pp_errmsg());
        failed++;
        return;
    }
    int V = mc.cfg.vocab, P = 13;
    uint32_t ids[13];
    for (int i = 0; i < P; i++) ids[i] = (uint32_t)(3 + (i * 131u) % (unsigned)(V - 3));
    float *a = malloc((size_t)P * V * 4), *b = malloc((size_t)P * V * 4);
    pp_infer sc, sg;
    if (pp_infer_init(&sc, &mc, cpu, 32, 16) != PP_OK || pp_infer_init(&sg, &mg, gpu, 32, 16) != PP_OK ||
        pp_infer_adapter(&sc, &lc, 1.0f) != PP_OK || pp_infer_adapter(&sg, &lg, 1.0f) != PP_OK ||
        pp_infer_forward(&sc, ids, P, a, 1) != PP_OK || pp_infer_forward(&sg, ids, P, b, 1) != PP_OK) {
        printf("%-44s %s\n", adapter, pp_errmsg());
        failed++;
        return;
    }
    report("logits tiny + PEFT adapter (unmerged)", rel_err(b, a, (size_t)P * V), 1e-4);
    pp_infer_free(&sc), pp_infer_free(&sg);
    pp_lora_free(&lc), pp_lora_free(&lg);
    pp_llama_free(&mc), pp_llama_free(&mg);
    free(a), free(b);
}

int main(int argc, char **argv)
{
    pp_cli_init("test_cuda");
    /* PP_TEST_DEVICE=cpu runs the harness against the CPU backend itself
     * (every error 0): a check of the checks where there is no GPU */
    const char *devname = getenv("PP_TEST_DEVICE") ? getenv("PP_TEST_DEVICE") : "cuda";
    if (pp_backend_open(&gpu, devname, 1) != PP_OK) {
        printf("no CUDA backend: %s\n", pp_errmsg());
        return 77;
    }
    pp_backend_cpu(&cpu, 0);
    printf("%-44s %11s %9s\n", "check", "error", "tolerance");
    static const pp_wtype types[] = {PP_W_F32, PP_W_F16, PP_W_BF16, PP_W_NF4, PP_W_FP4, PP_W_INT8};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        check_matmul(types[t], 1, 300, 512, 0);
        check_matmul(types[t], 3, 300, 512, 1);
        check_matmul(types[t], 8, 128, 1024, 0);
        check_matmul(types[t], 77, 300, 512, 1);
    }
    check_matmul(PP_W_NF4, 1, 100, 96, 0); /* cols not a multiple of 64: the general path */
    /* 300 x 512: widen4 and the weight's own kernel; 37 x 100: a value a thread (no groups of 16 line up) */
    if (!gpu->ops->host_memory) check_nested(300, 512), check_nested(37, 100);
    check_gemm(17, 33, 16, 0, 1, 0), check_gemm(17, 33, 16, 1, 0, 1), check_gemm(40, 8, 64, 0, 0, 1);
    check_gemm(8, 40, 64, 1, 1, 0.5f);
    check_small_ops();
    check_adapter("tests/fixtures/llama/tiny", "tests/fixtures/lora/peft-adapter");
    check_train_ops();
    check_narrow();
    if (!gpu->ops->host_memory) check_held_operands(), check_weight_update();
    check_lora_step("tests/fixtures/llama/tiny", 0, PP_PREC_AUTO);
    check_lora_step("tests/fixtures/llama/tiny", 0.3f, PP_PREC_AUTO);
    if (!gpu->ops->host_memory) check_precision();
    for (int i = 1; i < argc; i++) check_lora_step(argv[i], 0, PP_PREC_AUTO);
    for (int i = 1; i < argc; i++) check_lora_step(argv[i], 0, PP_PREC_FP32);
    for (int i = 1; i < argc; i++) check_lora_step(argv[i], 0, PP_PREC_BF16);
    for (int i = 1; i < argc; i++) check_lora_step(argv[i], 0, PP_PREC_FP16);
    for (int i = 1; i < argc; i++) check_model(argv[i]);
    printf("%d checks, %d failed\n", checks, failed);
    pp_backend_free(cpu);
    pp_backend_free(gpu);
    return failed ? 1 : 0;
}
