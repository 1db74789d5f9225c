/* cuda_runtime.h (emulated): the part of the CUDA runtime pp uses, on the
 * CPU, so that the kernels in cuda/ compile with g++ and run in tests on
 * machines without a GPU (cuda/emu/README). Kernels run block after block;
 * the threads of a block are fibers, switched at __syncthreads() and at warp
 * shuffles, so barriers and shuffles behave as on the device. Device memory
 * is host memory that host code cannot touch: it is readable only inside
 * kernels, copies and cuBLAS calls (a host dereference of a device pointer
 * faults, as it would with a real GPU). */
#ifndef PP_EMU_CUDA_RUNTIME_H
#define PP_EMU_CUDA_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <tuple>
#include <type_traits>

#ifndef __cplusplus
#error "the CUDA emulator is C++ (the kernels compile as C++ with g++)"
#endif

#define PP_CUDA_EMU 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __constant__
#define __shared__ static
#define __restrict__ __restrict
#define __launch_bounds__(...)

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* the vector types, aligned as on the device */
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
static constexpr int warpSize = 32;

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorLaunchFailure = 719,
} cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

typedef struct pp_emu_stream *cudaStream_t;
typedef struct pp_emu_event *cudaEvent_t;
#define cudaStreamNonBlocking 1u

struct cudaDeviceProp {
    char name[256];
    int major, minor, multiProcessorCount, warpSize, maxThreadsPerBlock;
    size_t totalGlobalMem, sharedMemPerBlock;
};

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaMalloc(void **p, size_t bytes);
template <typename T> static inline cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc((void **)p, bytes); }
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaEventCreate(cudaEvent_t *e);
#define cudaEventDisableTiming 2u
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);

/* ------------------------------------------------------------ device code */

struct pp_emu_thread {
    dim3 tid;
    int warp, lane;
};
extern pp_emu_thread *pp_emu_self;
extern dim3 pp_emu_block, pp_emu_bdim, pp_emu_gdim;
#define threadIdx (pp_emu_self->tid)
#define blockIdx pp_emu_block
#define blockDim pp_emu_bdim
#define gridDim pp_emu_gdim

void __syncthreads(void);
void __syncwarp(unsigned mask = 0xffffffffu);
/* a warp's exchange: every lane puts v, each takes the one of lane src(lane);
 * only the full warp's mask is emulated */
uint64_t pp_emu_exchange(uint64_t v, unsigned mask, int mode, int arg, int width);
template <typename T> static inline T pp_emu_shfl(T v, unsigned mask, int mode, int arg, int width)
{
    static_assert(sizeof(T) <= 8, "shuffles of up to 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = pp_emu_exchange(b, mask, mode, arg, width);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}
template <typename T> static inline T __shfl_xor_sync(unsigned k, T v, int m, int w = 32) { return pp_emu_shfl(v, k, 0, m, w); }
template <typename T> static inline T __shfl_sync(unsigned k, T v, int l, int w = 32) { return pp_emu_shfl(v, k, 1, l, w); }
template <typename T> static inline T __shfl_down_sync(unsigned k, T v, int d, int w = 32) { return pp_emu_shfl(v, k, 2, d, w); }
template <typename T> static inline T __shfl_up_sync(unsigned k, T v, int d, int w = 32) { return pp_emu_shfl(v, k, 3, d, w); }

/* Blocks run one at a time on one host thread (the emulator is not for
 * several host threads at once): atomics are plain updates. */
template <typename T> static inline T atomicAdd(T *p, T v)
{
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> static inline T atomicMax(T *p, T v)
{
    T old = *p;
    *p = old > v ? old : v;
    return old;
}
template <typename T> static inline T __ldg(const T *p) { return *p; }

/* Rounded operations: the translation unit is compiled without contraction
 * (-ffp-contract=off), so plain operators round once each. */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline float __saturatef(float a) { return a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
static inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }

/* ------------------------------------------------------------ launches */

/* PP_LAUNCH(kernel, grid, block, shared bytes, stream)(arguments...) runs the
 * kernel (check.h spells it kernel<<<grid, block, shared, stream>>> for nvcc). */
struct pp_emu_kernel {
    void (*run)(void *ctx); /* one thread's body */
    void *ctx;
    const char *name;
};
void pp_emu_run(const pp_emu_kernel &k, dim3 grid, dim3 block, size_t shared, cudaStream_t s);
/* 0 (and the launch's error set) when the configuration is over the limits */
int pp_emu_launch_ok(dim3 grid, dim3 block, size_t shared);
/* Work for stream s: run now, or queued when s is deferred (emu.cc:
 * PP_EMU_DEFER). (Run now without a std::function: nothing on the heap, so
 * a fault that exits from inside leaves no leak for LeakSanitizer.) */
int pp_emu_deferred(cudaStream_t s);
void pp_emu_enqueue(cudaStream_t s, std::function<void()> f);
template <typename F> static inline void pp_emu_submit(cudaStream_t s, F f)
{
    if (pp_emu_deferred(s)) pp_emu_enqueue(s, std::function<void()>(std::move(f)));
    else f();
}
/* a pointer argument must be NULL or in device memory */
void pp_emu_check_arg(const void *p, const char *kernel, int index);

template <typename... P> struct pp_emu_launcher {
    void (*k)(P...);
    dim3 grid, block;
    size_t shared;
    cudaStream_t s;
    const char *name;
    template <typename... A> void operator()(A... a)
    {
        static_assert(sizeof...(A) == sizeof...(P), "kernel argument count");
        int i = 0;
        ((check(a, i++)), ...);
        if (!pp_emu_launch_ok(grid, block, shared)) return;
        std::tuple<P...> args((P)a...);
        void (*kf)(P...) = k;
        dim3 g = grid, b = block;
        size_t sh = shared;
        cudaStream_t st = s;
        const char *nm = name;
        /* the arguments are copied: the launch may run later (a deferred stream) */
        pp_emu_submit(s, [kf, args, g, b, sh, st, nm]() mutable {
            struct ctx_t {
                void (*k)(P...);
                std::tuple<P...> *args;
            } c = {kf, &args};
            pp_emu_kernel body = {[](void *v) {
                                      ctx_t *c = (ctx_t *)v;
                                      std::apply(c->k, *c->args);
                                  },
                                  &c, nm};
            pp_emu_run(body, g, b, sh, st);
        });
    }
    template <typename T> void check(T a, int i)
    {
        if constexpr (std::is_pointer<T>::value) pp_emu_check_arg((const void *)a, name, i);
    }
};

template <typename... P>
static inline pp_emu_launcher<P...> pp_emu_launch(void (*k)(P...), dim3 grid, dim3 block, size_t shared, cudaStream_t s,
                                                  const char *name)
{
    return pp_emu_launcher<P...>{k, grid, block, shared, s, name};
}

#endif
