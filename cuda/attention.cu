/* attention.cu: causal attention with GQA for prefill and decoding against
 * the KV cache. One block of four warps per (head, query); the warps take
 * every fourth key with an online softmax (running max and sum), then
 * combine. Head dims up to 256. */
#include <math.h>

#include "check.h"
#include "kernels.h"

#define AW 4   /* warps per block */
#define MAXE 8 /* head dims per lane: 256 / 32 */

static __global__ void attention(float *out, const float *q, const float *kc, const float *vc, int pos0, int n_heads,
                                 int n_kv, int hd)
{
    __shared__ float sm[AW], sl[AW], sacc[AW][32 * MAXE];
    int h = blockIdx.x, i = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int kh = h / (n_heads / n_kv), kvd = n_kv * hd, last = pos0 + i, ne = (hd + 31) / 32;
    float scale = 1.0f / sqrtf((float)hd);
    const float *qi = q + ((size_t)i * n_heads + h) * hd;
    float qv[MAXE], acc[MAXE];
#pragma unroll
    for (int t = 0; t < MAXE; t++) {
        int e = lane + 32 * t;
        qv[t] = t < ne && e < hd ? qi[e] : 0.0f;
        acc[t] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j = warp; j <= last; j += AW) {
        const float *kj = kc + (size_t)j * kvd + (size_t)kh * hd, *vj = vc + (size_t)j * kvd + (size_t)kh * hd;
        float d = 0.0f;
#pragma unroll
        for (int t = 0; t < MAXE; t++) {
            int e = lane + 32 * t;
            if (t < ne && e < hd) d += qv[t] * kj[e];
        }
        for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
        float s = d * scale, mn = fmaxf(m, s), corr = expf(m - mn), p = expf(s - mn);
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
    dim3 grid((unsigned)n_heads, (unsigned)n);
    PP_LAUNCH(attention, grid, 32 * AW, 0, s)(out, q, kc, vc, pos0, n_heads, n_kv, hd);
    PP_LAUNCHED("attention");
}
