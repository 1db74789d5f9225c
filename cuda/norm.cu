/* norm.cu: RMSNorm, one block per row, the sum of squares reduced in fp32. */
#include "check.h"
#include "kernels.h"
#include "reduce.cuh"

static __global__ void rmsnorm(float *out, const float *x, const float *w, int dim, float eps)
{
    __shared__ float part[33];
    const float *xi = x + (size_t)blockIdx.x * dim;
    float *oi = out + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) ss += xi[j] * xi[j];
    float r = 1.0f / sqrtf(block_sum(ss, part) / (float)dim + eps);
    for (int j = threadIdx.x; j < dim; j += blockDim.x) oi[j] = w[j] * (xi[j] * r);
}

extern "C" void pp_cuda_rmsnorm(float *out, const float *x, const float *w, int n, int dim, float eps, cudaStream_t s)
{
    if (n <= 0) return;
    PP_LAUNCH(rmsnorm, n, 256, 0, s)(out, x, w, dim, eps);
    PP_LAUNCHED("rmsnorm");
}
