/* backend_cuda.h: the CUDA backend's C entry point. It lives in its own
 * shared library (build/lib/libppcuda.so) that libpp opens at run time
 * (common/backend.c), so that the tools need no CUDA library to start and
 * the CPU build stays untouched. The library takes what it needs from libpp
 * through the pp_cuda_host table rather than by linking to it. */
#ifndef PP_BACKEND_CUDA_H
#define PP_BACKEND_CUDA_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pp_cuda_host {
    pp_status (*fail)(pp_status s, const char *fmt, ...); /* pp_fail */
    const float *nf4_code, *fp4_code;                   /* pp_quant_code4 tables (16 values each) */
    const float *dyn_code;                              /* pp_quant_dynamic_map (256 values) */
    int verbose;                                          /* print the device and memory */
} pp_cuda_host;

/* The symbol libpp looks up, and its type. device: the CUDA device index. */
#define PP_CUDA_ENTRY "pp_backend_cuda_create"
typedef pp_status (*pp_cuda_create_fn)(pp_backend **out, int device, const pp_cuda_host *host);
pp_status pp_backend_cuda_create(pp_backend **out, int device, const pp_cuda_host *host);

#ifdef __cplusplus
}
#endif

#endif
