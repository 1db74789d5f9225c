/* backend_cuda.cu: the backend table (backend.h) on an NVIDIA GPU. One
 * stream for the operations, a second for widening weights (weight_rows),
 * one cuBLAS handle; scratch buffers grown once to what reserve()
 * announces. Products: a stored weight's own kernel for a few rows of x
 * (gemv.cu: decoding reads each weight once in its stored form); else, as
 * be->precision says, cublasSgemm on fp32 operands (a stored weight widened
 * to fp32 in a scratch buffer), or cublasGemmEx on bf16/fp16 operands (a
 * weight stored in that type used as it is, any other widened a block of
 * rows at a time on the second stream, overlapping the products: QLoRA's
 * dequantization) with fp32 accumulation and output; a double-quantized
 * weight's absmax values are decoded inside those kernels (weight.cuh);
 * large operands keep their 16-bit copies between products (operand16).
 * The other training operations (train.cu) are fp32, the CPU backend's
 * arithmetic; narrow/widen keep activations in 16 bits between them; host
 * index arrays (ids, targets, rows) are copied in per call.
 * PP_CUDA_PROFILE=1 times every operation (timed). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "check.h"
#include "kernels.h"

/* A large operand's 16-bit copy, kept while its source is unchanged (see
 * operand16). */
typedef struct held {
    void *buf;
    size_t cap;
    const float *src;       /* NULL: empty */
    size_t n;
    int f16;
} held;

typedef struct cu {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *wb[2], *xb, *yb;  /* 16-bit copies (bf16 or fp16): blocks of a widened weight; a small product's operands */
    size_t wbcap[2], xbcap, ybcap;
    /* QLoRA's dequantization overlaps the products (widened, below): it runs on
     * a second stream into wb[0] and wb[1] in turn */
    int overlap;            /* 0: one buffer, on the stream ($PP_CUDA_OVERLAP=0) */
    cudaStream_t side;
    cudaEvent_t ready[2];   /* wb[b] widened (side) */
    cudaEvent_t done[2];    /* the last product that read wb[b] (stream) */
    cudaEvent_t mark;       /* the stream's work so far, for the side stream to wait on */
    int side_stale;         /* a weight may have changed (upload, adamw, alloc, free) since the side stream last waited */
    int wnext, wlast;       /* the buffer the next block goes to; the one the last went to */
    held op16[2];           /* large operands' copies */
    int op16_recent;        /* the one used last */
    size_t op16_min;        /* values from which an operand is held (PP_CUDA_HOLD_MIN, $PP_CUDA_HOLD_MIN for tests) */
    uint32_t *ids;          /* token ids for embed */
    size_t idcap;
    float *wf;              /* a weight widened to fp32 (matmul_dx) */
    size_t wfcap;
    float *ds;              /* attention_backward's (n_heads, n, n): dP, then dS */
    size_t dscap;
    float *loss;            /* cross_entropy's per-row losses */
    size_t losscap;
    double *losssum;        /* their sum since the last loss_sum */
    int32_t *tg;            /* targets or row indices */
    size_t tgcap;
    double *part;           /* sumsq's partial sums (PP_CUDA_SUMSQ_BLOCKS) */
    float *dyn;             /* double quantization's 256-value map */
    size_t chunk;           /* values of a weight widened at once (PP_CUDA_CHUNK, $PP_CUDA_WIDEN_MAX for tests) */
    pp_cuda_host host;
    pp_backend *be;         /* be->peak_bytes: the most device memory in use seen after an allocation */
    struct prof *prof;      /* $PP_CUDA_PROFILE=1: device time per operation; else NULL */
} cu;

/* A weight is widened for a product at most this many values at a time
 * (32 MiB in bf16, twice: the block being multiplied and the next):
 * Llama 2's attention matrices in one block, its MLP's in three. */
#define PP_CUDA_CHUNK ((size_t)1 << 24)

/* Operands of a product with at least this many values (an activation of
 * a few hundred tokens) keep their 16-bit copy while unchanged. */
#define PP_CUDA_HOLD_MIN ((size_t)1 << 20)

static void note_peak(cu *c)
{
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess && tot - fr > c->be->peak_bytes) c->be->peak_bytes = tot - fr;
}

static cu *C(pp_backend *be) { return (cu *)be->priv; }

/* ---- PP_CUDA_PROFILE=1: the device time of each operation, from events
 * around it on its stream, summed by name and printed when the backend is
 * released: where a step's time goes. (A product's time includes rounding
 * its operands and, with PP_CUDA_OVERLAP=0, widening its weight; with the
 * overlap the widening is timed apart, on its own stream, inside the
 * product's scope.) The events are read when the ring is nearly full,
 * between operations (no scope open, so every pair read has its end):
 * a wait every few thousand operations. */
#define PROF_RING 2048
#define PROF_SPARE 256 /* pairs an operation may open inside its own (a product's blocks) */
#define PROF_NAMES 48
typedef struct prof {
    cudaEvent_t ev[2 * PROF_RING];
    const char *of[PROF_RING]; /* the operation of each pair */
    int n;                     /* pairs recorded and not yet read */
    int open;                  /* scopes open */
    const char *name[PROF_NAMES];
    double ms[PROF_NAMES];
    long calls[PROF_NAMES];
    int names;
} prof;

static void prof_drain(prof *p)
{
    for (int i = 0; i < p->n; i++) {
        float ms = 0;
        PP_CUDA(cudaEventSynchronize(p->ev[2 * i + 1]));
        PP_CUDA(cudaEventElapsedTime(&ms, p->ev[2 * i], p->ev[2 * i + 1]));
        int k = 0;
        while (k < p->names && p->name[k] != p->of[i]) k++;
        if (k == p->names) {
            if (k == PROF_NAMES) continue;
            p->name[p->names++] = p->of[i];
        }
        p->ms[k] += ms, p->calls[k]++;
    }
    p->n = 0;
}

/* Times the scope it is declared in (an operation) on stream s. */
struct timed {
    prof *p;
    int i;
    cudaStream_t s;
    timed(prof *pr, const char *what, cudaStream_t st) : p(pr), i(-1), s(st)
    {
        if (!p) return;
        if (!p->open && p->n >= PROF_RING - PROF_SPARE) prof_drain(p);
        p->open++;
        if (p->n == PROF_RING) return; /* (not timed: no room) */
        i = p->n++;
        p->of[i] = what;
        PP_CUDA(cudaEventRecord(p->ev[2 * i], s));
    }
    ~timed()
    {
        if (!p) return;
        p->open--;
        if (i >= 0) PP_CUDA(cudaEventRecord(p->ev[2 * i + 1], s));
    }
};
#define TIMED(what) timed timed_(C(be)->prof, what, C(be)->stream)
/* The start of an operation that writes device memory and is not a product:
 * timed, and the held 16-bit copies dropped (forget_all, below). */
#define WRITES(what) TIMED(what); forget_all(C(be))

static void prof_report(cu *c)
{
    prof *p = c->prof;
    prof_drain(p);
    double total = 0;
    for (int k = 0; k < p->names; k++) total += p->ms[k];
    fprintf(stderr, "pp: CUDA device %d: device time by operation (PP_CUDA_PROFILE), %.1f ms in all\n", c->device, total);
    for (int done = 0; done < p->names; done++) { /* largest first */
        int b = -1;
        for (int k = 0; k < p->names; k++)
            if (p->calls[k] >= 0 && (b < 0 || p->ms[k] > p->ms[b])) b = k;
        fprintf(stderr, "pp:   %-20s %9.2f ms %5.1f%% %8ld calls %9.1f us each\n", p->name[b], p->ms[b],
                total > 0 ? 100 * p->ms[b] / total : 0.0, p->calls[b], 1e3 * p->ms[b] / p->calls[b]);
        p->calls[b] = -1;
    }
}

/* Products in bf16 or fp16 round their fp32 operands first, and the same
 * activation is often an operand several times in a row: the input of q,
 * k and v and of their adapters, a gradient for a weight and its adapter's
 * two products. So the two most recently used large operands keep their
 * 16-bit copies while nothing writes to them: a product drops the copies
 * its output overlaps (forget), and every other operation that writes
 * device memory drops them all (forget_all: simple and safe; the reuse is
 * between consecutive products). */
static void forget_all(cu *c)
{
    c->op16[0].src = c->op16[1].src = NULL;
}

/* An operation that may change a weight (upload, adamw; alloc and free,
 * which may reuse an address): the side stream must wait for the stream
 * before it widens again (weight_rows). */
static void weights_may_change(cu *c)
{
    forget_all(c);
    c->side_stale = 1;
}

static void forget(cu *c, const void *p, size_t bytes)
{
    for (int i = 0; i < 2; i++) {
        held *h = &c->op16[i];
        const char *a = (const char *)h->src, *b = (const char *)p;
        if (h->src && a < b + bytes && b < a + h->n * sizeof(float)) h->src = NULL;
    }
}

/* Grows a device buffer to n elements of size sz (contents not kept).
 * cudaFree waits for the device to finish what it has, on every stream: the
 * side stream may be reading the old buffer. */
static void grow(cu *c, void **p, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap) return;
    if (*p) PP_CUDA(cudaFree(*p));
    *p = NULL;
    if (cudaMalloc(p, n * sz) != cudaSuccess) {
        fprintf(stderr, "pp: out of device memory for a %.1f MiB scratch buffer (%.1f MiB in use at the peak so far); "
                        "--grad-checkpoint, a smaller --batch-size or shorter records need less\n",
                n * sz / 1048576.0, c->be->peak_bytes / 1048576.0);
        exit(70);
    }
    *cap = n;
    note_peak(c);
}

static void *cu_alloc(pp_backend *be, size_t bytes)
{
    weights_may_change(C(be));
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError(); /* clear it: running out of memory is reported by the caller */
        return NULL;
    }
    PP_CUDA(cudaMemsetAsync(p, 0, bytes, C(be)->stream));
    PP_CUDA(cudaStreamSynchronize(C(be)->stream));
    note_peak(C(be));
    return p;
}

static void cu_free(pp_backend *be, void *p)
{
    weights_may_change(C(be));
    if (p) PP_CUDA(cudaFree(p));
}

static void cu_upload(pp_backend *be, void *dst, const void *src, size_t bytes)
{
    weights_may_change(C(be));
    PP_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, C(be)->stream));
    PP_CUDA(cudaStreamSynchronize(C(be)->stream));
}

static void cu_download(pp_backend *be, void *dst, const void *src, size_t bytes)
{
    PP_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, C(be)->stream));
    PP_CUDA(cudaStreamSynchronize(C(be)->stream));
}

static pp_status cu_reserve(pp_backend *be, size_t weight_elems, int seq)
{
    (void)seq; /* attention needs no scratch: its softmax is online */
    cu *c = C(be);
    if (weight_elems > c->chunk) weight_elems = c->chunk; /* weights are widened in blocks of rows */
    for (int b = 0; b < 1 + c->overlap; b++) {
        void *p = c->wb[b];
        if (weight_elems <= c->wbcap[b]) continue;
        if (p) PP_CUDA(cudaFree(p));
        c->wb[b] = NULL, c->wbcap[b] = 0;
        if (cudaMalloc(&p, weight_elems * 2) != cudaSuccess) {
            cudaGetLastError();
            return c->host.fail(PP_E_NOMEM, "out of device memory for a %zu-value weight buffer", weight_elems);
        }
        c->wb[b] = p, c->wbcap[b] = weight_elems;
        note_peak(c);
    }
    return PP_OK;
}

/* Copies n host 32-bit values (token ids, targets, row indices) into the
 * device buffer *buf. */
static const void *to_device(cu *c, void **buf, size_t *cap, const void *h, int n)
{
    grow(c, buf, cap, (size_t)(n > 0 ? n : 1), 4);
    if (n > 0) PP_CUDA(cudaMemcpyAsync(*buf, h, (size_t)n * 4, cudaMemcpyHostToDevice, c->stream));
    return *buf;
}

static const uint32_t *device_ids(cu *c, const uint32_t *ids, int n)
{
    return (const uint32_t *)to_device(c, (void **)&c->ids, &c->idcap, ids, n);
}

static void cu_embed(pp_backend *be, float *out, const pp_weight *table, const uint32_t *ids, int n)
{
    WRITES("embed");
    cu *c = C(be);
    pp_cuda_embed(out, table, device_ids(c, ids, n), n, c->stream);
}

static void cu_rmsnorm(pp_backend *be, float *out, const float *x, const pp_weight *w, int n, float eps)
{
    WRITES("rmsnorm");
    pp_cuda_rmsnorm(out, x, (const float *)w->data, n, w->cols, eps, C(be)->stream);
}

/* The precision's 16-bit type: fp16 for FP16, else bf16. */
static int f16(const pp_backend *be) { return be->precision == PP_PREC_FP16; }
static cudaDataType half_type(const pp_backend *be) { return f16(be) ? CUDA_R_16F : CUDA_R_16BF; }
static int halves(const pp_backend *be) { return be->precision == PP_PREC_BF16 || be->precision == PP_PREC_FP16; }

/* x (n values) rounded into the 16-bit buffer *buf. */
static const void *narrowed(pp_backend *be, void **buf, size_t *cap, const float *x, size_t n)
{
    cu *c = C(be);
    grow(c, buf, cap, n ? n : 1, 2);
    if (f16(be)) pp_cuda_to_f16((__half *)*buf, x, n, c->stream);
    else pp_cuda_to_bf16((__nv_bfloat16 *)*buf, x, n, c->stream);
    return *buf;
}

/* x (n values) as a 16-bit operand: its held copy, or rounded now (into
 * the least recently used slot; small operands into *buf, not held). */
static const void *operand16(pp_backend *be, void **buf, size_t *cap, const float *x, size_t n)
{
    cu *c = C(be);
    if (n < c->op16_min) return narrowed(be, buf, cap, x, n);
    int i = 0;
    while (i < 2 && !(c->op16[i].src == x && c->op16[i].n == n && c->op16[i].f16 == f16(be))) i++;
    if (i == 2) { /* not held: into the other slot than the one used last */
        held *h = &c->op16[i = !c->op16_recent];
        h->src = NULL;
        narrowed(be, &h->buf, &h->cap, x, n);
        h->src = x, h->n = n, h->f16 = f16(be);
    }
    c->op16_recent = i;
    return c->op16[i].buf;
}

/* 1 when w is an operand as it is stored: fp32 in fp32, bf16 in bf16 (or
 * AUTO's bf16), fp16 in fp16; then it is not copied. */
static int as_stored(const cu *c, const pp_weight *w, int half)
{
    if (!half) return w->type == PP_W_F32;
    return w->type == (c->be->precision == PP_PREC_FP16 ? PP_W_F16 : PP_W_BF16);
}

/* Rows per product of w: all of them when they need no copy (as_stored), else as many as c->chunk values hold: a weight is widened and
 * multiplied a block of rows at a time, so the scratch stays small (the
 * output's vocabulary-sized matrix would take 250 MiB in bf16 for Llama 2). */
static int chunk_rows(const cu *c, const pp_weight *w, int half)
{
    if (as_stored(c, w, half)) return w->rows;
    size_t r = c->chunk / (size_t)w->cols;
    return r < 1 ? 1 : r > (size_t)w->rows ? w->rows : (int)r;
}

/* Rows r0..r0+rows-1 of w as an operand: its own data (as_stored), or
 * widened to fp32 into c->wf, or to the 16-bit type into c->wb[b].
 *
 * The 16-bit widening (QLoRA's dequantization, memory-bound) runs on the
 * side stream, into the two buffers in turn, so that it overlaps the
 * products (compute-bound) on the stream: block k+1 of a weight, or the
 * next weight's first, is widened while block k is multiplied. The side
 * stream waits for the last product that read a buffer before writing it
 * again (done), the stream for a buffer's widening before reading it
 * (ready), and the side stream for the stream's own work whenever a
 * weight may have changed since (side_stale: upload, adamw, and alloc and
 * free, which may reuse an address; backend.h). Each product from the
 * buffer is followed by widened_done(). */
static const void *weight_rows(pp_backend *be, const pp_weight *w, int r0, int rows, int half)
{
    cu *c = C(be);
    size_t n = (size_t)rows * w->cols;
    if (as_stored(c, w, half)) return (const char *)w->data + (size_t)r0 * w->cols * (half ? 2 : sizeof(float));
    if (!half) {
        grow(c, (void **)&c->wf, &c->wfcap, n, sizeof *c->wf);
        pp_cuda_widen_f32(c->wf, w, r0, rows, c->stream);
        return c->wf;
    }
    int b = c->wlast = c->wnext;
    c->wnext = c->overlap ? !b : 0;
    grow(c, &c->wb[b], &c->wbcap[b], n, 2);
    cudaStream_t s = c->stream;
    if (c->overlap) {
        s = c->side;
        if (c->side_stale) {
            PP_CUDA(cudaEventRecord(c->mark, c->stream));
            PP_CUDA(cudaStreamWaitEvent(s, c->mark, 0));
            c->side_stale = 0;
        }
        PP_CUDA(cudaStreamWaitEvent(s, c->done[b], 0));
    }
    {
        timed t(c->overlap ? c->prof : NULL, "widen weights", s); /* (without the overlap: the product's time) */
        if (f16(be)) pp_cuda_widen_f16((__half *)c->wb[b], w, r0, rows, s);
        else pp_cuda_widen_bf16((__nv_bfloat16 *)c->wb[b], w, r0, rows, s);
    }
    if (c->overlap) {
        PP_CUDA(cudaEventRecord(c->ready[b], s));
        PP_CUDA(cudaStreamWaitEvent(c->stream, c->ready[b], 0));
    }
    return c->wb[b];
}

/* After a product that read weight_rows's 16-bit block: its buffer is free
 * once that product has run. */
static void widened_done(cu *c, const pp_weight *w, int half)
{
    if (half && c->overlap && !as_stored(c, w, half)) PP_CUDA(cudaEventRecord(c->done[c->wlast], c->stream));
}

/* Row-major C (M, N) = alpha op(A) op(B) + beta C through column-major
 * cuBLAS: Cᵀ = op(B)ᵀ op(A)ᵀ, with leading dimensions. A and B are fp32, or
 * with half, 16-bit copies of the precision's type. */
static void gemm_ld(pp_backend *be, float *Cm, int ldc, const void *A, int lda, const void *B, int ldb, int half, int M,
                    int N, int K, int ta, int tb, float alpha, float beta)
{
    cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (!half) {
        PP_CUBLAS(cublasSgemm(C(be)->blas, opa, opb, N, M, K, &alpha, (const float *)B, ldb, (const float *)A, lda, &beta,
                              Cm, ldc));
        return;
    }
    cudaDataType t = half_type(be);
    PP_CUBLAS(cublasGemmEx(C(be)->blas, opa, opb, N, M, K, &alpha, B, t, ldb, A, t, lda, &beta, Cm, CUDA_R_32F, ldc,
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* The same with the matrices packed (leading dimensions their widths). */
static void gemm_rm(pp_backend *be, float *Cm, const void *A, const void *B, int half, int M, int N, int K, int ta, int tb,
                    float alpha, float beta)
{
    gemm_ld(be, Cm, N, A, ta ? M : K, B, tb ? K : N, half, M, N, K, ta, tb, alpha, beta);
}

static void cu_gemm(pp_backend *be, float *Cm, const float *A, const float *B, int M, int N, int K, int ta, int tb,
                    float alpha, float beta)
{
    TIMED("gemm");
    forget(C(be), Cm, (size_t)M * N * sizeof *Cm);
    if (!halves(be)) {
        gemm_rm(be, Cm, A, B, 0, M, N, K, ta, tb, alpha, beta);
        return;
    }
    cu *c = C(be);
    const void *a = operand16(be, &c->xb, &c->xbcap, A, (size_t)M * K);
    const void *b = operand16(be, &c->yb, &c->ybcap, B, (size_t)K * N);
    gemm_rm(be, Cm, a, b, 1, M, N, K, ta, tb, alpha, beta);
}

/* out (n, rows) (+)= x (n, cols) · Wᵀ: a few rows through the weight's own
 * kernel; else in the precision asked (AUTO: fp32 weights in fp32, others
 * through bf16), a block of W's rows (out's columns) at a time. */
static void cu_matmul(pp_backend *be, float *out, const float *x, const pp_weight *w, int n, int acc)
{
    TIMED("matmul");
    cu *c = C(be);
    forget(c, out, (size_t)n * w->rows * sizeof *out);
    /* (not in bf16/fp16: the gemv reads x in fp32, which those precisions round) */
    if (n <= PP_CUDA_GEMV_MAX && !halves(be) && pp_cuda_gemv(out, x, w, n, acc, c->stream)) return;
    int half = halves(be) || (be->precision == PP_PREC_AUTO && w->type != PP_W_F32), R = chunk_rows(c, w, half);
    const void *xo = half ? operand16(be, &c->xb, &c->xbcap, x, (size_t)n * w->cols) : x;
    for (int r0 = 0; r0 < w->rows; r0 += R) {
        int nr = w->rows - r0 < R ? w->rows - r0 : R;
        gemm_ld(be, out + r0, w->rows, xo, w->cols, weight_rows(be, w, r0, nr, half), w->cols, half, n, nr, w->cols, 0, 1,
                1.0f, acc ? 1.0f : 0.0f);
        widened_done(c, w, half);
    }
}

static void cu_rope(pp_backend *be, float *q, float *k, int n, int pos0, int n_heads, int n_kv, int hd,
                    const float *inv_freq)
{
    WRITES("rope");
    pp_cuda_rope(q, k, n, pos0, n_heads, n_kv, hd, inv_freq, C(be)->stream);
}

/* attention.cu's kernels hold a head in 32 lanes of 8 values. */
static void head_dim_fits(int hd)
{
    if (hd > 256) pp_cuda_die("attention", __FILE__, __LINE__, "head dims over 256 are not supported on the GPU");
}

static void cu_attention(pp_backend *be, float *out, const float *q, const float *kc, const float *vc, int n, int pos0,
                         int n_heads, int n_kv, int hd)
{
    WRITES("attention");
    head_dim_fits(hd);
    pp_cuda_attention(out, q, kc, vc, n, pos0, n_heads, n_kv, hd, C(be)->stream);
}

static void cu_swiglu(pp_backend *be, float *out, const float *gate, const float *up, size_t n)
{
    WRITES("swiglu");
    pp_cuda_swiglu(out, gate, up, n, C(be)->stream);
}

static void cu_add(pp_backend *be, float *x, const float *y, size_t n)
{
    WRITES("add");
    pp_cuda_add(x, y, n, C(be)->stream);
}

/* ------------------------------------------------------------- training */

static const int32_t *indices(cu *c, const int32_t *h, int n)
{
    return (const int32_t *)to_device(c, (void **)&c->tg, &c->tgcap, h, n);
}

/* dx (n, cols) += dy (n, rows) · W (rows, cols), a block of W's rows (the
 * sum's terms) at a time. */
static void cu_matmul_dx(pp_backend *be, float *dx, const float *dy, const pp_weight *w, int n)
{
    TIMED("matmul_dx");
    cu *c = C(be);
    forget(c, dx, (size_t)n * w->cols * sizeof *dx);
    int half = halves(be), R = chunk_rows(c, w, half);
    const void *dyo = half ? operand16(be, &c->xb, &c->xbcap, dy, (size_t)n * w->rows) : dy;
    for (int r0 = 0; r0 < w->rows; r0 += R) {
        int nr = w->rows - r0 < R ? w->rows - r0 : R;
        const void *a = (const char *)dyo + (size_t)r0 * (half ? 2 : sizeof(float));
        gemm_ld(be, dx, w->cols, a, w->rows, weight_rows(be, w, r0, nr, half), w->cols, half, n, w->cols, nr, 0, 0, 1.0f,
                1.0f);
        widened_done(c, w, half);
    }
}

static void cu_rmsnorm_train(pp_backend *be, float *out, float *rstd, const float *x, const pp_weight *w, int n, float eps)
{
    WRITES("rmsnorm_train");
    pp_cuda_rmsnorm_train(out, rstd, x, (const float *)w->data, n, w->cols, eps, C(be)->stream);
}

static void cu_rmsnorm_backward(pp_backend *be, float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                                const pp_weight *w, int n)
{
    WRITES("rmsnorm_backward");
    pp_cuda_rmsnorm_backward(dx, dw, dy, x, rstd, (const float *)w->data, n, w->cols, C(be)->stream);
}

static void cu_rope_backward(pp_backend *be, float *dq, float *dk, int n, int pos0, int n_heads, int n_kv, int hd,
                             const float *inv_freq)
{
    WRITES("rope_backward");
    pp_cuda_rope_backward(dq, dk, n, pos0, n_heads, n_kv, hd, inv_freq, C(be)->stream);
}

/* For b < batch: C_b (M, N) = alpha op(A_b) op(B_b) + beta C_b, row-major
 * with leading dimensions and batch strides in elements (cuBLAS, column-
 * major, computes C_bᵀ = op(B_b)ᵀ op(A_b)ᵀ). fp32; TF32 tensor cores when
 * the precision is bf16 or fp16 (the math mode set per call). */
static void gemm_batched(pp_backend *be, float *Cm, long long ldc, long long sc, const float *A, long long lda,
                         long long sa, const float *B, long long ldb, long long sb, int M, int N, int K, int ta, int tb,
                         float alpha, float beta, int batch)
{
    cu *c = C(be);
    PP_CUBLAS(cublasSetMathMode(c->blas, halves(be) ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    PP_CUBLAS(cublasSgemmStridedBatched(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                        &alpha, B, (int)ldb, sb, A, (int)lda, sa, &beta, Cm, (int)ldc, sc, batch));
    PP_CUBLAS(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
}

/* Attention through batched products: heads h = kh * group + r share kv head
 * kh, so each r is one batch over the kv heads (Q's heads at stride group *
 * hd, K's and V's at hd). S = scale Q Kᵀ into p (h, n, n); the causal
 * softmax in place; out = P V. The masked upper triangle is computed and
 * zeroed: twice the work of a causal kernel, in tensor-core products. */
static void cu_attention_train(pp_backend *be, float *out, float *p, const float *q, const float *k, const float *v, int n,
                               int n_heads, int n_kv, int hd)
{
    WRITES("attention_train");
    if (n <= 0) return;
    if (be->attention_lse) { /* p holds (n_heads, n) log-sum-exps: attention.cu's flash-style kernels */
        head_dim_fits(hd);
        pp_cuda_flash_forward(out, p, q, k, v, n, n_heads, n_kv, hd, C(be)->stream);
        return;
    }
    long long g = n_heads / n_kv, qd = (long long)n_heads * hd, kvd = (long long)n_kv * hd, nn = (long long)n * n;
    float scale = 1.0f / sqrtf((float)hd);
    for (int r = 0; r < g; r++)
        gemm_batched(be, p + r * nn, n, g * nn, q + r * hd, qd, g * hd, k, kvd, hd, n, n, hd, 0, 1, scale, 0.0f, n_kv);
    pp_cuda_causal_softmax(p, n, n_heads, C(be)->stream);
    for (int r = 0; r < g; r++)
        gemm_batched(be, out + r * hd, qd, g * hd, p + r * nn, n, g * nn, v, kvd, hd, n, hd, n, 0, 0, 1.0f, 0.0f, n_kv);
}

/* dP = dO Vᵀ into ds; dS = P (dP - rowsum(P dP)) scale in place; dQ = dS K;
 * dK = sum over the group of dSᵀ Q, dV = sum of Pᵀ dO (the group's heads
 * added in order: the same result every run). */
static void cu_attention_backward(pp_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *p,
                                  const float *q, const float *k, const float *v, int n, int n_heads, int n_kv, int hd)
{
    WRITES("attention_backward");
    if (n <= 0) return;
    cu *c = C(be);
    if (be->attention_lse) {
        head_dim_fits(hd);
        grow(c, (void **)&c->ds, &c->dscap, (size_t)n_heads * n, sizeof *c->ds); /* D (n_heads, n) */
        pp_cuda_flash_backward(dq, dk, dv, c->ds, dout, p, q, k, v, n, n_heads, n_kv, hd, c->stream);
        return;
    }
    grow(c, (void **)&c->ds, &c->dscap, (size_t)n_heads * n * n, sizeof *c->ds);
    float *ds = c->ds;
    long long g = n_heads / n_kv, qd = (long long)n_heads * hd, kvd = (long long)n_kv * hd, nn = (long long)n * n;
    for (int r = 0; r < g; r++)
        gemm_batched(be, ds + r * nn, n, g * nn, dout + r * hd, qd, g * hd, v, kvd, hd, n, n, hd, 0, 1, 1.0f, 0.0f, n_kv);
    pp_cuda_softmax_backward(ds, p, n, n_heads, 1.0f / sqrtf((float)hd), c->stream);
    for (int r = 0; r < g; r++) {
        gemm_batched(be, dq + r * hd, qd, g * hd, ds + r * nn, n, g * nn, k, kvd, hd, n, hd, n, 0, 0, 1.0f, 0.0f, n_kv);
        float beta = r ? 1.0f : 0.0f;
        gemm_batched(be, dk, kvd, hd, ds + r * nn, n, g * nn, q + r * hd, qd, g * hd, n, hd, n, 1, 0, 1.0f, beta, n_kv);
        gemm_batched(be, dv, kvd, hd, p + r * nn, n, g * nn, dout + r * hd, qd, g * hd, n, hd, n, 1, 0, 1.0f, beta, n_kv);
    }
}

static void cu_swiglu_backward(pp_backend *be, float *dg, float *du, const float *dh, const float *g, const float *u,
                               size_t n)
{
    WRITES("swiglu_backward");
    pp_cuda_swiglu_backward(dg, du, dh, g, u, n, C(be)->stream);
}

/* The rows' losses go to c->loss, then are added in row order, in double,
 * to c->losssum on the device: nothing waits until loss_sum. */
static void cu_cross_entropy(pp_backend *be, float *logits, const int32_t *targets, int n, int vocab, float scale)
{
    WRITES("cross_entropy");
    cu *c = C(be);
    if (n <= 0) return;
    const int32_t *t = indices(c, targets, n);
    grow(c, (void **)&c->loss, &c->losscap, (size_t)n, sizeof *c->loss);
    pp_cuda_cross_entropy(logits, c->loss, t, n, vocab, scale, c->stream);
    pp_cuda_loss_add(c->losssum, c->loss, n, c->stream);
}

static double cu_loss_sum(pp_backend *be)
{
    cu *c = C(be);
    double s = 0;
    PP_CUDA(cudaMemcpyAsync(&s, c->losssum, sizeof s, cudaMemcpyDeviceToHost, c->stream));
    PP_CUDA(cudaMemsetAsync(c->losssum, 0, sizeof *c->losssum, c->stream));
    PP_CUDA(cudaStreamSynchronize(c->stream));
    return s;
}

static void cu_embed_backward(pp_backend *be, float *dtable, const float *dout, const uint32_t *ids, int n, int dim)
{
    WRITES("embed_backward");
    cu *c = C(be);
    pp_cuda_embed_backward(dtable, dout, device_ids(c, ids, n), n, dim, c->stream);
}

static void cu_zero(pp_backend *be, float *p, size_t n)
{
    WRITES("zero");
    if (n) PP_CUDA(cudaMemsetAsync(p, 0, n * sizeof *p, C(be)->stream));
}

static void cu_copyf(pp_backend *be, float *dst, const float *src, size_t n)
{
    WRITES("copy");
    if (n) PP_CUDA(cudaMemcpyAsync(dst, src, n * sizeof *dst, cudaMemcpyDeviceToDevice, C(be)->stream));
}

static void cu_rows(pp_backend *be, float *dst, const float *src, const int *rows, int count, int dim, int scatter)
{
    WRITES("rows");
    cu *c = C(be);
    pp_cuda_rows(dst, src, (const int *)indices(c, (const int32_t *)rows, count), count, dim, scatter, c->stream);
}

static void cu_dropout(pp_backend *be, float *out, const float *x, size_t n, uint64_t key, uint32_t thr, float scale, int acc)
{
    WRITES("dropout");
    pp_cuda_dropout(out, x, n, key, thr, scale, acc, C(be)->stream);
}

static void cu_narrow(pp_backend *be, void *dst, const float *src, size_t n)
{
    WRITES("narrow");
    if (f16(be)) pp_cuda_to_f16((__half *)dst, src, n, C(be)->stream);
    else pp_cuda_to_bf16((__nv_bfloat16 *)dst, src, n, C(be)->stream);
}

static void cu_widen(pp_backend *be, float *dst, const void *src, size_t n)
{
    WRITES("widen");
    if (f16(be)) pp_cuda_from_f16(dst, (const __half *)src, n, C(be)->stream);
    else pp_cuda_from_bf16(dst, (const __nv_bfloat16 *)src, n, C(be)->stream);
}

static double cu_sumsq(pp_backend *be, const float *x, size_t n)
{
    TIMED("sumsq");
    cu *c = C(be);
    double h[PP_CUDA_SUMSQ_BLOCKS], ss = 0;
    if (!c->part) PP_CUDA(cudaMalloc((void **)&c->part, sizeof h));
    pp_cuda_sumsq(c->part, x, n, c->stream);
    PP_CUDA(cudaMemcpyAsync(h, c->part, sizeof h, cudaMemcpyDeviceToHost, c->stream));
    PP_CUDA(cudaStreamSynchronize(c->stream));
    for (int i = 0; i < PP_CUDA_SUMSQ_BLOCKS; i++) ss += h[i];
    return ss;
}

static void cu_scale(pp_backend *be, float *x, size_t n, float f)
{
    WRITES("scale");
    pp_cuda_scale(x, n, f, C(be)->stream);
}

static void cu_adamw(pp_backend *be, float *p, const float *g, float *m, float *v, size_t n, size_t n_decay, const float h[6])
{
    TIMED("adamw");
    weights_may_change(C(be));
    pp_cuda_adamw(p, g, m, v, n, n_decay, h, C(be)->stream);
}

static void cu_destroy(pp_backend *be)
{
    cu *c = C(be);
    if (c && c->host.verbose)
        fprintf(stderr, "pp: CUDA device %d: peak device memory in use %.1f MiB\n", c->device, be->peak_bytes / 1048576.0);
    if (c && c->prof) {
        prof_report(c);
        for (int i = 0; i < 2 * PROF_RING; i++) cudaEventDestroy(c->prof->ev[i]);
        free(c->prof);
    }
    if (c) {
        if (c->side) cudaStreamSynchronize(c->side);
        cudaFree(c->wb[0]);
        cudaFree(c->wb[1]);
        cudaFree(c->xb);
        cudaFree(c->yb);
        cudaFree(c->op16[0].buf);
        cudaFree(c->op16[1].buf);
        cudaFree(c->ids);
        cudaFree(c->wf);
        cudaFree(c->ds);
        cudaFree(c->loss);
        cudaFree(c->tg);
        cudaFree(c->part);
        cudaFree(c->dyn);
        cudaFree(c->losssum);
        if (c->blas) cublasDestroy(c->blas);
        if (c->stream) cudaStreamDestroy(c->stream);
        if (c->side) {
            cudaStreamDestroy(c->side);
            for (int b = 0; b < 2; b++) cudaEventDestroy(c->ready[b]), cudaEventDestroy(c->done[b]);
            cudaEventDestroy(c->mark);
        }
        free(c);
    }
    free(be);
}

static const pp_backend_ops cuda_ops = {
    "cuda", cu_alloc, cu_free, cu_upload, cu_download, cu_reserve, cu_embed, cu_rmsnorm, cu_matmul, cu_rope, cu_attention,
    cu_swiglu, cu_add, cu_gemm, cu_matmul_dx, cu_rmsnorm_train, cu_rmsnorm_backward, cu_rope_backward,
    cu_attention_train, cu_attention_backward, cu_swiglu_backward, cu_cross_entropy, cu_loss_sum, cu_embed_backward,
    cu_zero, cu_copyf, cu_rows, cu_dropout, cu_narrow, cu_widen, cu_sumsq, cu_scale, cu_adamw, cu_destroy, 0, 1,
};

/* $name as a positive count, else dflt (tests' settings). */
static size_t env_size(const char *name, size_t dflt)
{
    const char *v = getenv(name);
    return v && atol(v) > 0 ? (size_t)atol(v) : dflt;
}

extern "C" pp_status pp_backend_cuda_create(pp_backend **out, int device, const pp_cuda_host *host)
{
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        return host->fail(PP_E_NOINPUT, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    if (device >= count) return host->fail(PP_E_USAGE, "no CUDA device %d (there are %d)", device, count);
    PP_CUDA(cudaSetDevice(device));
    pp_backend *be = (pp_backend *)calloc(1, sizeof *be);
    cu *c = (cu *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return host->fail(PP_E_NOMEM, "out of memory");
    }
    c->device = device;
    c->host = *host;
    c->chunk = env_size("PP_CUDA_WIDEN_MAX", PP_CUDA_CHUNK);
    c->op16_min = env_size("PP_CUDA_HOLD_MIN", PP_CUDA_HOLD_MIN);
    c->be = be;
    PP_CUDA(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    const char *pr = getenv("PP_CUDA_PROFILE");
    if (pr && !strcmp(pr, "1")) {
        c->prof = (prof *)calloc(1, sizeof *c->prof);
        if (!c->prof) pp_cuda_die("calloc", __FILE__, __LINE__, "out of host memory");
        for (int i = 0; i < 2 * PROF_RING; i++) PP_CUDA(cudaEventCreate(&c->prof->ev[i]));
    }
    const char *ov = getenv("PP_CUDA_OVERLAP");
    c->overlap = !(ov && !strcmp(ov, "0"));
    c->side_stale = 1;
    if (c->overlap) {
        PP_CUDA(cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking));
        for (int b = 0; b < 2; b++) {
            PP_CUDA(cudaEventCreateWithFlags(&c->ready[b], cudaEventDisableTiming));
            PP_CUDA(cudaEventCreateWithFlags(&c->done[b], cudaEventDisableTiming));
        }
        PP_CUDA(cudaEventCreateWithFlags(&c->mark, cudaEventDisableTiming));
    }
    PP_CUBLAS(cublasCreate(&c->blas));
    PP_CUBLAS(cublasSetStream(c->blas, c->stream));
    PP_CUDA(cudaMalloc((void **)&c->losssum, sizeof *c->losssum));
    PP_CUDA(cudaMemsetAsync(c->losssum, 0, sizeof *c->losssum, c->stream));
    PP_CUDA(cudaMalloc((void **)&c->dyn, 256 * sizeof *c->dyn));
    PP_CUDA(cudaMemcpyAsync(c->dyn, host->dyn_code, 256 * sizeof *c->dyn, cudaMemcpyHostToDevice, c->stream));
    PP_CUDA(cudaStreamSynchronize(c->stream)); /* (the side stream reads dyn: it must be there) */
    pp_cuda_set_codes(host->nf4_code, host->fp4_code, c->dyn);
    be->ops = &cuda_ops;
    be->threads = 1;
    be->priv = c;
    if (host->verbose) {
        cudaDeviceProp p;
        size_t fr = 0, tot = 0;
        PP_CUDA(cudaGetDeviceProperties(&p, device));
        PP_CUDA(cudaMemGetInfo(&fr, &tot));
        fprintf(stderr, "pp: CUDA device %d: %s, compute %d.%d, %.1f of %.1f GiB free\n", device, p.name, p.major, p.minor,
                fr / 1073741824.0, tot / 1073741824.0);
    }
    *out = be;
    return PP_OK;
}
