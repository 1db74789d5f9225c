/* elementwise.cu: SwiGLU, residual add, embedding gather. */
#include "check.h"
#include "kernels.h"
#include "weight.cuh"

static __global__ void swiglu(float *out, const float *g, const float *u, size_t n)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x)
        out[k] = g[k] / (1.0f + expf(-g[k])) * u[k];
}

extern "C" void pp_cuda_swiglu(float *out, const float *g, const float *u, size_t n, cudaStream_t s)
{
    if (!n) return;
    PP_LAUNCH(swiglu, pp_cuda_grid(n), 256, 0, s)(out, g, u, n);
    PP_LAUNCHED("swiglu");
}

static __global__ void add(float *x, const float *y, size_t n)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) x[k] += y[k];
}

extern "C" void pp_cuda_add(float *x, const float *y, size_t n, cudaStream_t s)
{
    if (!n) return;
    PP_LAUNCH(add, pp_cuda_grid(n), 256, 0, s)(x, y, n);
    PP_LAUNCHED("add");
}

static __global__ void embed(float *out, pp_weight t, const uint32_t *ids, int n, pp_codes cd)
{
    size_t dim = (size_t)t.cols, total = (size_t)n * dim;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
        size_t i = k / dim, j = k % dim;
        out[k] = pp_wval(cd, t, (size_t)ids[i] * dim + j);
    }
}

extern "C" void pp_cuda_embed(float *out, const pp_weight *table, const uint32_t *ids, int n, cudaStream_t s)
{
    if (n <= 0) return;
    PP_LAUNCH(embed, pp_cuda_grid((size_t)n * table->cols), 256, 0, s)(out, *table, ids, n, *pp_cuda_codes());
    PP_LAUNCHED("embed");
}
