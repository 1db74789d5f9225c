/* backend_cuda.cu: the backend table (backend.h) on an NVIDIA GPU. One
 * stream, one cuBLAS handle; scratch buffers grown once to what reserve()
 * announces. Products: a stored weight's own kernel for a few rows of x
 * (gemv.cu: decoding reads each weight once in its stored form); else an
 * fp32 weight through cublasSgemm, any other widened to bf16 in a scratch
 * buffer right before cublasGemmEx (bf16 inputs, fp32 accumulation and
 * output). Training operations come with the GPU training issue: their
 * entries are NULL here, and pp-train stays on the CPU. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "check.h"
#include "kernels.h"

typedef struct cu {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    __nv_bfloat16 *wb, *xb; /* a widened weight; x in bf16 */
    size_t wbcap, xbcap;
    uint32_t *ids;          /* token ids for embed */
    size_t idcap;
    pp_cuda_host host;
    size_t peak;            /* the most device memory in use seen after an allocation (cudaMemGetInfo) */
} cu;

static void note_peak(cu *c)
{
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess && tot - fr > c->peak) c->peak = tot - fr;
}

static cu *C(pp_backend *be) { return (cu *)be->priv; }

/* Grows a device buffer to n elements of size sz (contents not kept). */
static void grow(cu *c, void **p, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap) return;
    if (*p) PP_CUDA(cudaFree(*p));
    *p = NULL;
    PP_CUDA(cudaMalloc(p, n * sz));
    *cap = n;
    note_peak(c);
}

static void *cu_alloc(pp_backend *be, size_t bytes)
{
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
    (void)be;
    if (p) PP_CUDA(cudaFree(p));
}

static void cu_upload(pp_backend *be, void *dst, const void *src, size_t bytes)
{
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
    void *p = c->wb;
    if (weight_elems > c->wbcap) {
        if (p) PP_CUDA(cudaFree(p));
        c->wb = NULL, c->wbcap = 0;
        if (cudaMalloc(&p, weight_elems * sizeof(__nv_bfloat16)) != cudaSuccess) {
            cudaGetLastError();
            return c->host.fail(PP_E_NOMEM, "out of device memory for a %zu-value weight buffer", weight_elems);
        }
        c->wb = (__nv_bfloat16 *)p, c->wbcap = weight_elems;
        note_peak(c);
    }
    return PP_OK;
}

static void cu_embed(pp_backend *be, float *out, const pp_weight *table, const uint32_t *ids, int n)
{
    cu *c = C(be);
    grow(c, (void **)&c->ids, &c->idcap, (size_t)n, sizeof *c->ids);
    PP_CUDA(cudaMemcpyAsync(c->ids, ids, (size_t)n * sizeof *ids, cudaMemcpyHostToDevice, c->stream));
    pp_cuda_embed(out, table, c->ids, n, c->stream);
}

static void cu_rmsnorm(pp_backend *be, float *out, const float *x, const pp_weight *w, int n, float eps)
{
    pp_cuda_rmsnorm(out, x, (const float *)w->data, n, w->cols, eps, C(be)->stream);
}

/* Row-major C (M, N) = alpha op(A) op(B) + beta C through column-major
 * cuBLAS: Cᵀ = op(B)ᵀ op(A)ᵀ. */
static void cu_gemm(pp_backend *be, float *Cm, const float *A, const float *B, int M, int N, int K, int ta, int tb,
                    float alpha, float beta)
{
    PP_CUBLAS(cublasSgemm(C(be)->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                          tb ? K : N, A, ta ? M : K, &beta, Cm, N));
}

static void cu_matmul(pp_backend *be, float *out, const float *x, const pp_weight *w, int n, int acc)
{
    cu *c = C(be);
    if (n <= PP_CUDA_GEMV_MAX && pp_cuda_gemv(out, x, w, n, acc, c->stream)) return;
    float one = 1.0f, beta = acc ? 1.0f : 0.0f;
    if (w->type == PP_W_F32) { /* out (n, rows) = x (n, cols) · Wᵀ */
        PP_CUBLAS(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, w->rows, n, w->cols, &one, (const float *)w->data, w->cols,
                              x, w->cols, &beta, out, w->rows));
        return;
    }
    grow(c, (void **)&c->wb, &c->wbcap, (size_t)w->rows * w->cols, sizeof *c->wb);
    grow(c, (void **)&c->xb, &c->xbcap, (size_t)n * w->cols, sizeof *c->xb);
    pp_cuda_widen_bf16(c->wb, w, c->stream);
    pp_cuda_to_bf16(c->xb, x, (size_t)n * w->cols, c->stream);
    PP_CUBLAS(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, w->rows, n, w->cols, &one, c->wb, CUDA_R_16BF, w->cols, c->xb,
                           CUDA_R_16BF, w->cols, &beta, out, CUDA_R_32F, w->rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static void cu_rope(pp_backend *be, float *q, float *k, int n, int pos0, int n_heads, int n_kv, int hd, float theta)
{
    pp_cuda_rope(q, k, n, pos0, n_heads, n_kv, hd, theta, C(be)->stream);
}

static void cu_attention(pp_backend *be, float *out, const float *q, const float *kc, const float *vc, int n, int pos0,
                         int n_heads, int n_kv, int hd)
{
    pp_cuda_attention(out, q, kc, vc, n, pos0, n_heads, n_kv, hd, C(be)->stream);
}

static void cu_swiglu(pp_backend *be, float *out, const float *gate, const float *up, size_t n)
{
    pp_cuda_swiglu(out, gate, up, n, C(be)->stream);
}

static void cu_add(pp_backend *be, float *x, const float *y, size_t n) { pp_cuda_add(x, y, n, C(be)->stream); }

static void cu_destroy(pp_backend *be)
{
    cu *c = C(be);
    if (c && c->host.verbose)
        fprintf(stderr, "pp: CUDA device %d: peak device memory in use %.1f MiB\n", c->device, c->peak / 1048576.0);
    if (c) {
        cudaFree(c->wb);
        cudaFree(c->xb);
        cudaFree(c->ids);
        if (c->blas) cublasDestroy(c->blas);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
    }
    free(be);
}

static const pp_backend_ops cuda_ops = {
    "cuda", cu_alloc, cu_free, cu_upload, cu_download, cu_reserve, cu_embed, cu_rmsnorm, cu_matmul, cu_rope, cu_attention,
    cu_swiglu, cu_add, cu_gemm,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, /* training: the GPU training issue */
    cu_destroy, 0,
};

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
    PP_CUDA(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    PP_CUBLAS(cublasCreate(&c->blas));
    PP_CUBLAS(cublasSetStream(c->blas, c->stream));
    pp_cuda_set_codes(host->nf4_code, host->fp4_code);
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
