/* norm.cu: RMSNorm, one block per row, the sum of squares reduced in fp32. */
#include "check.h"
#include "kernels.h"

static __global__ void rmsnorm(float *out, const float *x, const float *w, int dim, float eps)
{
    __shared__ float part[32];
    const float *xi = x + (size_t)blockIdx.x * dim;
    float *oi = out + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) ss += xi[j] * xi[j];
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        ss = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (threadIdx.x == 0) part[0] = ss;
    }
    __syncthreads();
    float r = 1.0f / sqrtf(part[0] / (float)dim + eps);
    for (int j = threadIdx.x; j < dim; j += blockDim.x) oi[j] = w[j] * (xi[j] * r);
}

extern "C" void pp_cuda_rmsnorm(float *out, const float *x, const float *w, int n, int dim, float eps, cudaStream_t s)
{
    if (n <= 0) return;
    rmsnorm<<<n, 256, 0, s>>>(out, x, w, dim, eps);
    PP_LAUNCHED("rmsnorm");
}
