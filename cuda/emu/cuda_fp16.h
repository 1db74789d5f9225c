/* cuda_fp16.h (emulated): __half as IEEE binary16 bits, converted with
 * round-to-nearest-even through the compiler's _Float16. */
#ifndef PP_EMU_CUDA_FP16_H
#define PP_EMU_CUDA_FP16_H

#include "cuda_runtime.h"

struct __half {
    unsigned short x;
};

static inline __half __float2half(float f)
{
    _Float16 h = (_Float16)f;
    __half r;
    memcpy(&r.x, &h, 2);
    return r;
}
static inline __half __float2half_rn(float f) { return __float2half(f); }
static inline float __half2float(__half h)
{
    _Float16 v;
    memcpy(&v, &h.x, 2);
    return (float)v;
}

#endif
