/* gemv.cu: out (n, rows) (+)= x (n, cols) · Wᵀ for a few rows of x (decoding),
 * reading each weight row once in its stored form with 16-byte loads: one
 * warp per weight row, eight rows per block, fp32 accumulation. This is the
 * memory-bound product that decides decoding speed. */
#include "check.h"
#include "kernels.h"
#include "weight.cuh"

#define WARPS 8

template <int N> static __device__ __forceinline__ void fma_x(float (&acc)[N], const float *x, int cols, int n, int c,
                                                              const float *v, int cnt)
{
#pragma unroll
    for (int i = 0; i < N; i++) {
        if (i >= n) break;
        const float *xi = x + (size_t)i * cols + c;
        float s = 0.0f;
        for (int j = 0; j < cnt; j += 4) {
            float4 xv = *(const float4 *)(xi + j);
            s += v[j] * xv.x + v[j + 1] * xv.y + v[j + 2] * xv.z + v[j + 3] * xv.w;
        }
        acc[i] += s;
    }
}

template <int N> static __global__ void gemv(float *out, const float *x, pp_weight w, int n, int acc_out, pp_codes cd)
{
    int lane = threadIdx.x & 31, row = blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (row >= w.rows) return;
    int cols = w.cols;
    float acc[N];
#pragma unroll
    for (int i = 0; i < N; i++) acc[i] = 0.0f;
    float v[32];
    switch (w.type) {
    case PP_W_F32: {
        const float4 *p = (const float4 *)((const float *)w.data + (size_t)row * cols);
        for (int c = lane * 4; c < cols; c += 32 * 4) {
            float4 q = __ldg(p + c / 4);
            v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
            fma_x<N>(acc, x, cols, n, c, v, 4);
        }
        break;
    }
    case PP_W_BF16:
    case PP_W_F16: {
        const uint4 *p = (const uint4 *)((const unsigned short *)w.data + (size_t)row * cols);
        for (int c = lane * 8; c < cols; c += 32 * 8) {
            uint4 q = __ldg(p + c / 8);
            const unsigned short *h = (const unsigned short *)&q;
            for (int j = 0; j < 8; j++) {
                unsigned short b = h[j];
                v[j] = w.type == PP_W_BF16 ? __bfloat162float(*(const __nv_bfloat16 *)&b) : __half2float(*(const __half *)&b);
            }
            fma_x<N>(acc, x, cols, n, c, v, 8);
        }
        break;
    }
    case PP_W_NF4:
    case PP_W_FP4: {
        size_t at = (size_t)row * cols;
        const uint4 *p = (const uint4 *)((const unsigned char *)w.data + at / 2);
        for (int c = lane * 32; c < cols; c += 32 * 32) {
            uint4 q = __ldg(p + c / 32);
            float a = pp_absmax(cd, w, (at + c) / w.blocksize);
            const unsigned char *b = (const unsigned char *)&q;
            for (int j = 0; j < 16; j++) {
                v[2 * j] = pp_code(cd, w, b[j] >> 4) * a;
                v[2 * j + 1] = pp_code(cd, w, b[j] & 15) * a;
            }
            fma_x<N>(acc, x, cols, n, c, v, 32);
        }
        break;
    }
    case PP_W_INT8: {
        size_t at = (size_t)row * cols;
        const uint4 *p = (const uint4 *)((const signed char *)w.data + at);
        for (int c = lane * 16; c < cols; c += 32 * 16) {
            uint4 q = __ldg(p + c / 16);
            float a = pp_absmax(cd, w, (at + c) / w.blocksize) / 127.0f;
            const signed char *b = (const signed char *)&q;
            for (int j = 0; j < 16; j++) v[j] = (float)b[j] * a;
            fma_x<N>(acc, x, cols, n, c, v, 16);
        }
        break;
    }
    }
#pragma unroll
    for (int i = 0; i < N; i++) {
        if (i >= n) break;
        float s = acc[i];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) {
            float *d = out + (size_t)i * w.rows + row;
            *d = acc_out ? *d + s : s;
        }
    }
}

extern "C" int pp_cuda_gemv(float *out, const float *x, const pp_weight *w, int n, int acc, cudaStream_t s)
{
    int per = w->type == PP_W_F32 ? 4 : w->type == PP_W_NF4 || w->type == PP_W_FP4 ? 32 : w->type == PP_W_INT8 ? 16 : 8;
    if (n < 1 || n > PP_CUDA_GEMV_MAX || w->cols % 32 || w->cols % per) return 0;
    if ((w->type >= PP_W_NF4) && (w->blocksize % per)) return 0;
    unsigned blocks = (unsigned)((w->rows + WARPS - 1) / WARPS);
    if (n <= 1) PP_LAUNCH(gemv<1>, blocks, 32 * WARPS, 0, s)(out, x, *w, n, acc, *pp_cuda_codes());
    else if (n <= 2) PP_LAUNCH(gemv<2>, blocks, 32 * WARPS, 0, s)(out, x, *w, n, acc, *pp_cuda_codes());
    else if (n <= 4) PP_LAUNCH(gemv<4>, blocks, 32 * WARPS, 0, s)(out, x, *w, n, acc, *pp_cuda_codes());
    else PP_LAUNCH(gemv<PP_CUDA_GEMV_MAX>, blocks, 32 * WARPS, 0, s)(out, x, *w, n, acc, *pp_cuda_codes());
    PP_LAUNCHED("gemv");
    return 1;
}
