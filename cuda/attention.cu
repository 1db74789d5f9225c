/* attention.cu: causal attention with GQA for prefill and decoding against
 * the KV cache, and for training without the (heads, n, n) probabilities
 * (flash-style: the forward pass keeps each row's log-sum-exp, the backward
 * pass recomputes the probabilities from it). One block of four warps per
 * (head, query), or per (kv head, key) for dK and dV; the warps take every
 * fourth position, each lane a slice of the head dimension, and combine
 * through shared memory in a fixed order. Head dims up to 256. */
#include <math.h>

#include "check.h"
#include "kernels.h"

#define AW 4   /* warps per block */
#define MAXE 8 /* head dims per lane: 256 / 32 */

/* The warp's dot product of two head vectors held a slice per lane. */
static __device__ __forceinline__ float warp_dot(const float (&a)[MAXE], const float *b, int lane, int ne, int hd)
{
    float d = 0.0f;
#pragma unroll
    for (int t = 0; t < MAXE; t++) {
        int e = lane + 32 * t;
        if (t < ne && e < hd) d += a[t] * b[e];
    }
    for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
    return d;
}

static __device__ __forceinline__ void load(float (&a)[MAXE], const float *x, int lane, int ne, int hd)
{
#pragma unroll
    for (int t = 0; t < MAXE; t++) {
        int e = lane + 32 * t;
        a[t] = t < ne && e < hd ? x[e] : 0.0f;
    }
}

static __global__ void attention(float *out, float *lse, const float *q, const float *kc, const float *vc, int pos0,
                                 int n_heads, int n_kv, int hd)
{
    __shared__ float sm[AW], sl[AW], sacc[AW][32 * MAXE];
    int i = blockIdx.x, h = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int kh = h / (n_heads / n_kv), kvd = n_kv * hd, last = pos0 + i, ne = (hd + 31) / 32;
    float scale = 1.0f / sqrtf((float)hd);
    const float *qi = q + ((size_t)i * n_heads + h) * hd;
    float qv[MAXE], acc[MAXE];
    load(qv, qi, lane, ne, hd);
#pragma unroll
    for (int t = 0; t < MAXE; t++) acc[t] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int j = warp; j <= last; j += AW) {
        const float *kj = kc + (size_t)j * kvd + (size_t)kh * hd, *vj = vc + (size_t)j * kvd + (size_t)kh * hd;
        float s = warp_dot(qv, kj, lane, ne, hd) * scale, mn = fmaxf(m, s), corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + p;
#pragma unroll
        for (int t = 0; t < MAXE; t++) {
            int e = lane + 32 * t;
            if (t < ne && e < hd) acc[t] = acc[t] * corr + p * vj[e];
        }
        m = mn;
    }
    if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
    for (int t = 0; t < MAXE; t++)
        if (t < ne) sacc[warp][lane + 32 * t] = acc[t];
    __syncthreads();
    if (warp != 0) return;
    float M = -INFINITY, L = 0.0f;
    for (int w = 0; w < AW; w++) M = fmaxf(M, sm[w]);
    float f[AW];
    for (int w = 0; w < AW; w++) {
        f[w] = sl[w] > 0.0f ? expf(sm[w] - M) : 0.0f;
        L += sl[w] * f[w];
    }
    float *o = out + ((size_t)i * n_heads + h) * hd;
    if (lse && lane == 0) lse[(size_t)h * gridDim.x + i] = M + logf(L);
    for (int t = 0; t < ne; t++) {
        int e = lane + 32 * t;
        if (e >= hd) break;
        float v = 0.0f;
        for (int w = 0; w < AW; w++) v += sacc[w][e] * f[w];
        o[e] = v / L;
    }
}

extern "C" void pp_cuda_attention(float *out, const float *q, const float *kc, const float *vc, int n, int pos0, int n_heads,
                                  int n_kv, int hd, cudaStream_t s)
{
    if (n <= 0) return;
    dim3 grid((unsigned)n, (unsigned)n_heads); /* queries in x: more than 65535 of them fit */
    PP_LAUNCH(attention, grid, 32 * AW, 0, s)(out, (float *)NULL, q, kc, vc, pos0, n_heads, n_kv, hd);
    PP_LAUNCHED("attention");
}

/* ------------------------------------------------------------- training */

extern "C" void pp_cuda_flash_forward(float *out, float *lse, const float *q, const float *k, const float *v, int n,
                                      int n_heads, int n_kv, int hd, cudaStream_t s)
{
    if (n <= 0) return;
    dim3 grid((unsigned)n, (unsigned)n_heads);
    PP_LAUNCH(attention, grid, 32 * AW, 0, s)(out, lse, q, k, v, 0, n_heads, n_kv, hd);
    PP_LAUNCHED("flash_forward");
}

/* Sums acc over the block's warps (in warp order) into dst (hd values). */
static __device__ void combine(float *dst, const float (&acc)[MAXE], float (*sacc)[32 * MAXE], int warp, int lane, int ne,
                               int hd)
{
#pragma unroll
    for (int t = 0; t < MAXE; t++)
        if (t < ne) sacc[warp][lane + 32 * t] = acc[t];
    __syncthreads();
    for (int e = threadIdx.x; e < hd; e += blockDim.x) {
        float v = 0.0f;
        for (int w = 0; w < AW; w++) v += sacc[w][e];
        dst[e] = v;
    }
}

/* dq_i for (head h, query i), and D_hi = sum_j p_ij dp_ij (= dO_i·O_i) for
 * the dK/dV kernel: p_ij = exp(scale q_i·k_j - lse_i), dp_ij = dO_i·v_j,
 * ds_ij = p_ij (dp_ij - D_hi) scale, dq_i = sum_j ds_ij k_j. Two passes over
 * j <= i: D first, then dq. */
static __global__ void flash_dq(float *dq, float *D, const float *dout, const float *lse, const float *q, const float *k,
                                const float *v, int n, int n_heads, int n_kv, int hd)
{
    __shared__ float sd[AW], sacc[AW][32 * MAXE];
    int i = blockIdx.x, h = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int kh = h / (n_heads / n_kv), kvd = n_kv * hd, ne = (hd + 31) / 32;
    float scale = 1.0f / sqrtf((float)hd), l = lse[(size_t)h * n + i];
    size_t qo = ((size_t)i * n_heads + h) * hd;
    float qv[MAXE], dov[MAXE], acc[MAXE];
    load(qv, q + qo, lane, ne, hd);
    load(dov, dout + qo, lane, ne, hd);
    float dsum = 0.0f;
    for (int j = warp; j <= i; j += AW) {
        const float *kj = k + (size_t)j * kvd + (size_t)kh * hd, *vj = v + (size_t)j * kvd + (size_t)kh * hd;
        float p = expf(warp_dot(qv, kj, lane, ne, hd) * scale - l);
        dsum += p * warp_dot(dov, vj, lane, ne, hd);
    }
    if (lane == 0) sd[warp] = dsum;
    __syncthreads();
    float Dh = 0.0f;
    for (int w = 0; w < AW; w++) Dh += sd[w];
    if (threadIdx.x == 0) D[(size_t)h * n + i] = Dh;
#pragma unroll
    for (int t = 0; t < MAXE; t++) acc[t] = 0.0f;
    for (int j = warp; j <= i; j += AW) {
        const float *kj = k + (size_t)j * kvd + (size_t)kh * hd, *vj = v + (size_t)j * kvd + (size_t)kh * hd;
        float p = expf(warp_dot(qv, kj, lane, ne, hd) * scale - l);
        float ds = p * (warp_dot(dov, vj, lane, ne, hd) - Dh) * scale;
#pragma unroll
        for (int t = 0; t < MAXE; t++) {
            int e = lane + 32 * t;
            if (t < ne && e < hd) acc[t] += ds * kj[e];
        }
    }
    combine(dq + qo, acc, sacc, warp, lane, ne, hd);
}

/* dk_j and dv_j for (kv head kh, key j): over the group's heads and the
 * queries i >= j, dk_j = sum ds_ij q_i, dv_j = sum p_ij dO_i. */
static __global__ void flash_dkv(float *dk, float *dv, const float *D, const float *dout, const float *lse, const float *q,
                                 const float *k, const float *v, int n, int n_heads, int n_kv, int hd)
{
    __shared__ float sacc[AW][32 * MAXE];
    int j = blockIdx.x, kh = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int group = n_heads / n_kv, kvd = n_kv * hd, ne = (hd + 31) / 32;
    float scale = 1.0f / sqrtf((float)hd);
    size_t ko = (size_t)j * kvd + (size_t)kh * hd;
    float kv_[MAXE], vv[MAXE], ak[MAXE], av[MAXE];
    load(kv_, k + ko, lane, ne, hd);
    load(vv, v + ko, lane, ne, hd);
#pragma unroll
    for (int t = 0; t < MAXE; t++) ak[t] = av[t] = 0.0f;
    for (int h = kh * group; h < (kh + 1) * group; h++)
        for (int i = j + warp; i < n; i += AW) {
            size_t qo = ((size_t)i * n_heads + h) * hd;
            const float *qi = q + qo, *doi = dout + qo;
            float p = expf(warp_dot(kv_, qi, lane, ne, hd) * scale - lse[(size_t)h * n + i]);
            float ds = p * (warp_dot(vv, doi, lane, ne, hd) - D[(size_t)h * n + i]) * scale;
#pragma unroll
            for (int t = 0; t < MAXE; t++) {
                int e = lane + 32 * t;
                if (t < ne && e < hd) ak[t] += ds * qi[e], av[t] += p * doi[e];
            }
        }
    combine(dk + ko, ak, sacc, warp, lane, ne, hd);
    __syncthreads(); /* sacc is read by every thread before it is written again */
    combine(dv + ko, av, sacc, warp, lane, ne, hd);
}

extern "C" void pp_cuda_flash_backward(float *dq, float *dk, float *dv, float *D, const float *dout, const float *lse,
                                       const float *q, const float *k, const float *v, int n, int n_heads, int n_kv, int hd,
                                       cudaStream_t s)
{
    if (n <= 0) return;
    PP_LAUNCH(flash_dq, dim3(n, n_heads), 32 * AW, 0, s)(dq, D, dout, lse, q, k, v, n, n_heads, n_kv, hd);
    PP_LAUNCHED("flash_dq");
    PP_LAUNCH(flash_dkv, dim3(n, n_kv), 32 * AW, 0, s)(dk, dv, D, dout, lse, q, k, v, n, n_heads, n_kv, hd);
    PP_LAUNCHED("flash_dkv");
}
