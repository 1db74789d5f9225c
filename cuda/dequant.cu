/* dequant.cu: stored weights widened to bf16, fp16 or fp32 on the device,
 * and fp32 activations narrowed to bf16 or fp16; one element per thread,
 * grid-stride (memory-bound). */
#include "check.h"
#include "kernels.h"
#include "weight.cuh"

static pp_codes codes;

extern "C" void pp_cuda_set_codes(const float *nf4, const float *fp4)
{
    for (int i = 0; i < 16; i++) codes.c[0][i] = nf4[i], codes.c[1][i] = fp4[i];
}

const pp_codes *pp_cuda_codes(void) { return &codes; }

template <typename T> static __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half(v); }

/* out[k] = w's element first + k, for k < n. */
template <typename T> static __global__ void widen(T *out, pp_weight w, size_t first, size_t n, pp_codes cd)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x)
        out[k] = from_f32<T>(pp_wval(cd, w, first + k));
}

extern "C" void pp_cuda_widen_bf16(__nv_bfloat16 *out, const pp_weight *w, int row0, int rows, cudaStream_t s)
{
    size_t n = (size_t)rows * w->cols;
    if (!n) return;
    PP_LAUNCH(widen<__nv_bfloat16>, pp_cuda_grid(n), 256, 0, s)(out, *w, (size_t)row0 * w->cols, n, codes);
    PP_LAUNCHED("widen bf16");
}

extern "C" void pp_cuda_widen_f16(__half *out, const pp_weight *w, int row0, int rows, cudaStream_t s)
{
    size_t n = (size_t)rows * w->cols;
    if (!n) return;
    PP_LAUNCH(widen<__half>, pp_cuda_grid(n), 256, 0, s)(out, *w, (size_t)row0 * w->cols, n, codes);
    PP_LAUNCHED("widen f16");
}

extern "C" void pp_cuda_widen_f32(float *out, const pp_weight *w, int row0, int rows, cudaStream_t s)
{
    size_t n = (size_t)rows * w->cols;
    if (!n) return;
    PP_LAUNCH(widen<float>, pp_cuda_grid(n), 256, 0, s)(out, *w, (size_t)row0 * w->cols, n, codes);
    PP_LAUNCHED("widen f32");
}

template <typename T> static __global__ void narrow(T *out, const float *x, size_t n)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x)
        out[k] = from_f32<T>(x[k]);
}

extern "C" void pp_cuda_to_bf16(__nv_bfloat16 *out, const float *x, size_t n, cudaStream_t s)
{
    if (!n) return;
    PP_LAUNCH(narrow<__nv_bfloat16>, pp_cuda_grid(n), 256, 0, s)(out, x, n);
    PP_LAUNCHED("to bf16");
}

extern "C" void pp_cuda_to_f16(__half *out, const float *x, size_t n, cudaStream_t s)
{
    if (!n) return;
    PP_LAUNCH(narrow<__half>, pp_cuda_grid(n), 256, 0, s)(out, x, n);
    PP_LAUNCHED("to f16");
}
