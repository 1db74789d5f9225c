/* train.cu: the training operations' kernels in fp32 (the backward passes of
 * norm.cu, rope.cu, attention.cu and elementwise.cu, cross-entropy, and the
 * trainer's data movement), the same arithmetic as the CPU backend's.
 * Reductions run in a fixed order (no atomics), so a run repeats itself bit
 * for bit on the same GPU. */
#include "backend.h"
#include "check.h"
#include "kernels.h"
#include "reduce.cuh"

/* ------------------------------------------------------------- RMSNorm */

static __global__ void rmsnorm_train(float *out, float *rstd, const float *x, const float *w, int dim, float eps)
{
    __shared__ float part[33];
    const float *xi = x + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) ss += xi[j] * xi[j];
    float r = 1.0f / sqrtf(block_sum(ss, part) / (float)dim + eps);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) out[(size_t)blockIdx.x * dim + j] = w[j] * (xi[j] * r);
}

extern "C" void pp_cuda_rmsnorm_train(float *out, float *rstd, const float *x, const float *w, int n, int dim, float eps,
                                      cudaStream_t s)
{
    if (n <= 0) return;
    PP_LAUNCH(rmsnorm_train, n, 256, 0, s)(out, rstd, x, w, dim, eps);
    PP_LAUNCHED("rmsnorm_train");
}

/* dx += r g dy - (sum_j g dy x) r³ / dim x, a block per row. */
static __global__ void rmsnorm_dx(float *dx, const float *dy, const float *x, const float *rstd, const float *w, int dim)
{
    __shared__ float part[33];
    size_t o = (size_t)blockIdx.x * dim;
    float dot = 0.0f, r = rstd[blockIdx.x];
    for (int j = threadIdx.x; j < dim; j += blockDim.x) dot += w[j] * dy[o + j] * x[o + j];
    float k = block_sum(dot, part) * r * r * r / (float)dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) dx[o + j] += r * w[j] * dy[o + j] - k * x[o + j];
}

/* dw[j] += sum_i dy[i, j] x[i, j] rstd[i], a thread per column, rows in order. */
static __global__ void rmsnorm_dw(float *dw, const float *dy, const float *x, const float *rstd, int n, int dim)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= dim) return;
    float acc = 0.0f;
    for (int i = 0; i < n; i++) acc += dy[(size_t)i * dim + j] * (x[(size_t)i * dim + j] * rstd[i]);
    dw[j] += acc;
}

extern "C" void pp_cuda_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                                         const float *w, int n, int dim, cudaStream_t s)
{
    if (n <= 0) return;
    PP_LAUNCH(rmsnorm_dx, n, 256, 0, s)(dx, dy, x, rstd, w, dim);
    PP_LAUNCHED("rmsnorm_dx");
    if (dw) {
        PP_LAUNCH(rmsnorm_dw, (dim + 255) / 256, 256, 0, s)(dw, dy, x, rstd, n, dim);
        PP_LAUNCHED("rmsnorm_dw");
    }
}

/* ------------------------------------------------------------- attention */

/* The products of attention run in cuBLAS (backend_cuda.cu); these are its
 * row operations, a block per (query i, head h) over row p (h, i, 0..n). */

/* The causal softmax in place: p_ij = exp(s_ij - max) / sum for j <= i
 * (s already scaled), zeros after. */
static __global__ void causal_softmax(float *p, int n)
{
    __shared__ float part[33];
    int i = blockIdx.x;
    float *pr = p + ((size_t)blockIdx.y * n + i) * n;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) mx = fmaxf(mx, pr[j]);
    mx = block_max(mx, part);
    float sum = 0.0f;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) sum += (pr[j] = expf(pr[j] - mx));
    float inv = 1.0f / block_sum(sum, part);
    for (int j = threadIdx.x; j < n; j += blockDim.x) pr[j] = j <= i ? pr[j] * inv : 0.0f;
}

extern "C" void pp_cuda_causal_softmax(float *p, int n, int n_heads, cudaStream_t s)
{
    if (n <= 0) return;
    PP_LAUNCH(causal_softmax, dim3(n, n_heads), 128, 0, s)(p, n);
    PP_LAUNCHED("causal_softmax");
}

/* The softmax's backward in place: ds_ij = p_ij (dp_ij - sum_j' p dp) scale
 * for j <= i, zeros after (dp = dout v_jᵀ on entry). */
static __global__ void softmax_backward(float *ds, const float *p, int n, float scale)
{
    __shared__ float part[33];
    int i = blockIdx.x;
    size_t o = ((size_t)blockIdx.y * n + i) * n;
    float dot = 0.0f;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) dot += p[o + j] * ds[o + j];
    dot = block_sum(dot, part);
    for (int j = threadIdx.x; j < n; j += blockDim.x) ds[o + j] = j <= i ? p[o + j] * (ds[o + j] - dot) * scale : 0.0f;
}

extern "C" void pp_cuda_softmax_backward(float *ds, const float *p, int n, int n_heads, float scale, cudaStream_t s)
{
    if (n <= 0) return;
    PP_LAUNCH(softmax_backward, dim3(n, n_heads), 128, 0, s)(ds, p, n, scale);
    PP_LAUNCHED("softmax_backward");
}

/* ------------------------------------------------------------- elementwise */

static __global__ void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i], ui = u[i], d = dh[i]; /* all read first: dg may be g, du may be u */
        float sg = 1.0f / (1.0f + expf(-gi)), silu = gi * sg;
        du[i] = d * silu;
        dg[i] = d * ui * sg * (1.0f + gi * (1.0f - sg));
    }
}

extern "C" void pp_cuda_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n,
                                        cudaStream_t s)
{
    if (!n) return;
    PP_LAUNCH(swiglu_backward, pp_cuda_grid(n), 256, 0, s)(dg, du, dh, g, u, n);
    PP_LAUNCHED("swiglu_backward");
}

/* Rows of logits: loss[i] = logsumexp - logit[target], the row replaced by
 * (softmax - onehot) scale; a row without a target becomes zeros (loss 0). */
static __global__ void cross_entropy(float *logits, float *loss, const int32_t *targets, int vocab, float scale)
{
    __shared__ float part[33];
    float *l = logits + (size_t)blockIdx.x * vocab;
    int t = targets[blockIdx.x];
    if (t < 0) {
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) l[j] = 0.0f;
        if (threadIdx.x == 0) loss[blockIdx.x] = 0.0f;
        return;
    }
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, l[j]);
    mx = block_max(mx, part);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(l[j] - mx);
    float lse = mx + logf(block_sum(sum, part));
    if (threadIdx.x == 0) loss[blockIdx.x] = lse - l[t];
    __syncthreads(); /* l[t] is read above before it is overwritten below */
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) l[j] = expf(l[j] - lse) * scale - (j == t ? scale : 0.0f);
}

extern "C" void pp_cuda_cross_entropy(float *logits, float *loss, const int32_t *targets, int n, int vocab, float scale,
                                      cudaStream_t s)
{
    if (n <= 0) return;
    PP_LAUNCH(cross_entropy, n, 256, 0, s)(logits, loss, targets, vocab, scale);
    PP_LAUNCHED("cross_entropy");
}

/* *sum += loss[0..n) in order, in double (one thread: a few hundred values a call). */
static __global__ void loss_add(double *sum, const float *loss, int n)
{
    double s = *sum;
    for (int i = 0; i < n; i++) s += loss[i];
    *sum = s;
}

extern "C" void pp_cuda_loss_add(double *sum, const float *loss, int n, cudaStream_t s)
{
    if (n <= 0) return;
    PP_LAUNCH(loss_add, 1, 1, 0, s)(sum, loss, n);
    PP_LAUNCHED("loss_add");
}

/* dtable row ids[i] += dout row i: a thread per column, the rows in order
 * (a token may repeat: its sum comes out the same every run, without atomics). */
static __global__ void embed_backward(float *dtable, const float *dout, const uint32_t *ids, int n, int dim)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= dim) return;
    for (int i = 0; i < n; i++) dtable[(size_t)ids[i] * dim + j] += dout[(size_t)i * dim + j];
}

extern "C" void pp_cuda_embed_backward(float *dtable, const float *dout, const uint32_t *ids, int n, int dim, cudaStream_t s)
{
    if (n <= 0) return;
    PP_LAUNCH(embed_backward, (dim + 255) / 256, 256, 0, s)(dtable, dout, ids, n, dim);
    PP_LAUNCHED("embed_backward");
}

/* ------------------------------------------------------------- data movement */

static __global__ void rows(float *dst, const float *src, const int *idx, int count, int dim, int scatter)
{
    size_t total = (size_t)count * dim;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
        size_t i = k / dim, j = k % dim, r = (size_t)idx[i];
        if (scatter) dst[r * dim + j] = src[i * dim + j];
        else dst[i * dim + j] = src[r * dim + j];
    }
}

extern "C" void pp_cuda_rows(float *dst, const float *src, const int *idx, int count, int dim, int scatter, cudaStream_t s)
{
    if (count <= 0) return;
    PP_LAUNCH(rows, pp_cuda_grid((size_t)count * dim), 256, 0, s)(dst, src, idx, count, dim, scatter);
    PP_LAUNCHED("rows");
}

static __global__ void dropout(float *out, const float *x, size_t n, uint64_t key, uint32_t thr, float scale, int acc)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = pp_dropout_bits(key, i) >= thr ? x[i] * scale : 0.0f;
        out[i] = acc ? out[i] + v : v;
    }
}

extern "C" void pp_cuda_dropout(float *out, const float *x, size_t n, uint64_t key, uint32_t thr, float scale, int acc,
                                cudaStream_t s)
{
    if (!n) return;
    PP_LAUNCH(dropout, pp_cuda_grid(n), 256, 0, s)(out, x, n, key, thr, scale, acc);
    PP_LAUNCHED("dropout");
}

/* ------------------------------------------------------------- the optimizer */

/* Partial sums of squares in double: PP_CUDA_SUMSQ_BLOCKS blocks, each
 * thread a fixed stride, so the order (and the result) is always the same. */
static __global__ void sumsq(double *part, const float *x, size_t n)
{
    __shared__ double s[256];
    double acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        acc += (double)x[i] * x[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int o = 128; o > 0; o >>= 1) {
        if (threadIdx.x < o) s[threadIdx.x] += s[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = s[0];
}

extern "C" void pp_cuda_sumsq(double *part, const float *x, size_t n, cudaStream_t s)
{
    PP_LAUNCH(sumsq, PP_CUDA_SUMSQ_BLOCKS, 256, 0, s)(part, x, n);
    PP_LAUNCHED("sumsq");
}

static __global__ void scale(float *x, size_t n, float f)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] *= f;
}

extern "C" void pp_cuda_scale(float *x, size_t n, float f, cudaStream_t s)
{
    if (!n) return;
    PP_LAUNCH(scale, pp_cuda_grid(n), 256, 0, s)(x, n, f);
    PP_LAUNCHED("scale");
}

/* pp_adamw_update's arithmetic, value by value (h: b1, b2, eps, step, decay, bc2s). */
static __global__ void adamw(float *p, const float *g, float *m, float *v, size_t n, size_t n_decay, float b1, float b2,
                             float eps, float step, float decay, float bc2s)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float pi = p[i], gi = g[i];
        if (i < n_decay) pi = __fmul_rn(pi, decay);
        float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(1.0f - b1, gi));
        float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(1.0f - b2, gi), gi));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2s), eps);
        p[i] = __fsub_rn(pi, __fmul_rn(step, __fdiv_rn(mi, denom)));
        m[i] = mi, v[i] = vi;
    }
}

extern "C" void pp_cuda_adamw(float *p, const float *g, float *m, float *v, size_t n, size_t n_decay, const float h[6],
                              cudaStream_t s)
{
    if (!n) return;
    PP_LAUNCH(adamw, pp_cuda_grid(n), 256, 0, s)(p, g, m, v, n, n_decay, h[0], h[1], h[2], h[3], h[4], h[5]);
    PP_LAUNCHED("adamw");
}
