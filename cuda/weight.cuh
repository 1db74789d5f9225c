/* weight.cuh: one element of a stored weight, on the device, computed as the
 * CPU backend computes it (code[nibble] * absmax; q * (absmax / 127)), with
 * double quantization's absmax decoded on the fly. */
#ifndef PP_CUDA_WEIGHT_CUH
#define PP_CUDA_WEIGHT_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend.h"

/* The NF4 and FP4 code tables, passed to kernels by value (kernel
 * parameters live in constant memory), and the device's copy of the 256
 * values of the dynamic map double quantization uses. */
typedef struct pp_codes {
    float c[2][16];
    const float *dyn;
} pp_codes;

/* The tables pp_cuda_set_codes() stored (host side). */
const pp_codes *pp_cuda_codes(void);

static __device__ __forceinline__ float pp_code(const pp_codes &cd, const pp_weight &w, unsigned nib)
{
    return cd.c[w.type == PP_W_FP4][nib];
}

/* Block b's absmax: stored, or decoded from double quantization as the CPU
 * resolves it (pp_dequant_nested: a multiply, then an add; not fused). */
static __device__ __forceinline__ float pp_absmax(const pp_codes &cd, const pp_weight &w, size_t b)
{
    if (!w.absq) return __ldg(w.absmax + b);
    return __fadd_rn(__fmul_rn(__ldg(cd.dyn + w.absq[b]), __ldg(w.absnest + b / PP_NESTED_BLOCKSIZE)), w.absoff);
}

static __device__ __forceinline__ float pp_wval(const pp_codes &cd, const pp_weight &w, size_t k)
{
    switch (w.type) {
    case PP_W_F32: return ((const float *)w.data)[k];
    case PP_W_F16: return __half2float(((const __half *)w.data)[k]);
    case PP_W_BF16: return __bfloat162float(((const __nv_bfloat16 *)w.data)[k]);
    case PP_W_NF4:
    case PP_W_FP4: {
        unsigned b = ((const unsigned char *)w.data)[k >> 1];
        return pp_code(cd, w, (k & 1) ? b & 15 : b >> 4) * pp_absmax(cd, w, k / (size_t)w.blocksize);
    }
    case PP_W_INT8:
        return (float)((const signed char *)w.data)[k] * (pp_absmax(cd, w, k / (size_t)w.blocksize) / 127.0f);
    }
    return 0.0f;
}

#endif
