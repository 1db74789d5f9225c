/* dequant.cu: stored weights widened to bf16, fp16 or fp32 on the device,
 * and fp32 activations narrowed to bf16 or fp16 and back; one element per thread,
 * grid-stride (memory-bound). */
#include "check.h"
#include "kernels.h"
#include "weight.cuh"

/* One set per process: a tool opens one CUDA backend, and dyn is that
 * backend's device copy (valid while it is open). */
static pp_codes codes;

extern "C" void pp_cuda_set_codes(const float *nf4, const float *fp4, const float *dyn)
{
    for (int i = 0; i < 16; i++) codes.c[0][i] = nf4[i], codes.c[1][i] = fp4[i];
    codes.dyn = dyn;
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

/* NF4 and FP4 sixteen values a thread: one 8-byte load of nibbles, one
 * absmax, sixteen table lookups, 16 values stored with 16-byte stores
 * (QLoRA's dequantization before every product: it must run at memory
 * speed). g0: the first group of 16 (values first / 16); n16 groups. */
template <typename T> static __global__ void widen4(T *out, pp_weight w, size_t g0, size_t n16, pp_codes cd)
{
    const float *code = cd.c[w.type == PP_W_FP4];
    const uint2 *q = (const uint2 *)w.data;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n16; k += (size_t)gridDim.x * blockDim.x) {
        size_t g = g0 + k;
        uint2 b = q[g];
        float a = pp_absmax(cd, w, g * 16 / (size_t)w.blocksize);
        const unsigned char *c = (const unsigned char *)&b;
        T v[16];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            v[2 * j] = from_f32<T>(code[c[j] >> 4] * a);
            v[2 * j + 1] = from_f32<T>(code[c[j] & 15] * a);
        }
        uint4 *o = (uint4 *)(out + k * 16);
        const uint4 *src = (const uint4 *)v;
#pragma unroll
        for (int j = 0; j < (int)(16 * sizeof(T) / 16); j++) o[j] = src[j];
    }
}

/* Rows row0.. of w into out: NF4/FP4 through widen4 when its groups of 16
 * line up (absmax blocks, the first row, 8-byte aligned data), else a
 * thread per value. */
template <typename T> static void widen_rows(T *out, const pp_weight *w, int row0, int rows, cudaStream_t s)
{
    size_t n = (size_t)rows * w->cols, first = (size_t)row0 * w->cols;
    if (!n) return;
    if ((w->type == PP_W_NF4 || w->type == PP_W_FP4) && w->blocksize % 16 == 0 && first % 16 == 0 && n % 16 == 0 &&
        (uintptr_t)w->data % 8 == 0 && (uintptr_t)out % 16 == 0) {
        PP_LAUNCH(widen4<T>, pp_cuda_grid(n / 16), 256, 0, s)(out, *w, first / 16, n / 16, codes);
        PP_LAUNCHED("widen4");
        return;
    }
    PP_LAUNCH(widen<T>, pp_cuda_grid(n), 256, 0, s)(out, *w, first, n, codes);
    PP_LAUNCHED("widen");
}

extern "C" void pp_cuda_widen_bf16(__nv_bfloat16 *out, const pp_weight *w, int row0, int rows, cudaStream_t s)
{
    widen_rows(out, w, row0, rows, s);
}

extern "C" void pp_cuda_widen_f16(__half *out, const pp_weight *w, int row0, int rows, cudaStream_t s)
{
    widen_rows(out, w, row0, rows, s);
}

extern "C" void pp_cuda_widen_f32(float *out, const pp_weight *w, int row0, int rows, cudaStream_t s)
{
    widen_rows(out, w, row0, rows, s);
}

static __device__ __forceinline__ float to_f32(float v) { return v; }
static __device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
static __device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

/* out[k] = x[k] between fp32 and bf16 or fp16 (through fp32: exact one way,
 * rounded to nearest the other). */
template <typename O, typename I> static __global__ void convert(O *out, const I *x, size_t n)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x)
        out[k] = from_f32<O>(to_f32(x[k]));
}

template <typename O, typename I> static void convert_n(O *out, const I *x, size_t n, cudaStream_t s, const char *what)
{
    if (!n) return;
    PP_LAUNCH((convert<O, I>), pp_cuda_grid(n), 256, 0, s)(out, x, n);
    PP_LAUNCHED(what);
}

extern "C" void pp_cuda_to_bf16(__nv_bfloat16 *out, const float *x, size_t n, cudaStream_t s)
{
    convert_n(out, x, n, s, "to bf16");
}

extern "C" void pp_cuda_to_f16(__half *out, const float *x, size_t n, cudaStream_t s) { convert_n(out, x, n, s, "to f16"); }

extern "C" void pp_cuda_from_bf16(float *out, const __nv_bfloat16 *x, size_t n, cudaStream_t s)
{
    convert_n(out, x, n, s, "from bf16");
}

extern "C" void pp_cuda_from_f16(float *out, const __half *x, size_t n, cudaStream_t s)
{
    convert_n(out, x, n, s, "from f16");
}
