/* check.h: one way to check CUDA and cuBLAS calls. A failed call is a bug or
 * a broken device: it names the statement, file:line and device, and the
 * tool exits with status 70 (the backend's operations return nothing). */
#ifndef PP_CUDA_CHECK_H
#define PP_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

static inline void pp_cuda_die(const char *stmt, const char *file, int line, const char *what)
{
    int dev = -1;
    cudaGetDevice(&dev);
    fprintf(stderr, "pp: CUDA error in `%s` at %s:%d on device %d: %s\n", stmt, file, line, dev, what);
    exit(70);
}

#define PP_CUDA(call)                                                                        \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess) pp_cuda_die(#call, __FILE__, __LINE__, cudaGetErrorString(e_)); \
    } while (0)

#define PP_CUBLAS(call)                                                                            \
    do {                                                                                           \
        cublasStatus_t e_ = (call);                                                                \
        if (e_ != CUBLAS_STATUS_SUCCESS) pp_cuda_die(#call, __FILE__, __LINE__, cublasGetStatusString(e_)); \
    } while (0)

/* Blocks of 256 threads for a grid-stride loop over n elements (capped:
 * each thread then takes several). */
static inline unsigned pp_cuda_grid(size_t n)
{
    size_t b = (n + 255) / 256;
    return b > 65535 * 8 ? 65535 * 8 : (unsigned)(b ? b : 1);
}

/* PP_LAUNCH(kernel, grid, block, shared bytes, stream)(arguments): a kernel
 * launch, spelled so that the CUDA emulator (cuda/emu/, which compiles these
 * files with g++ to test them on the CPU) can run it too. */
#ifdef PP_CUDA_EMU
#define PP_LAUNCH(k, grid, block, shared, stream) pp_emu_launch(k, grid, block, shared, stream, #k)
#else
#define PP_LAUNCH(k, grid, block, shared, stream) k<<<grid, block, shared, stream>>>
#endif

/* After every kernel launch. */
#define PP_LAUNCHED(what) PP_CUDA(cudaGetLastError())

#endif
