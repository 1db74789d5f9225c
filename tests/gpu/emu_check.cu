/* emu_check: checks of the CUDA emulator itself (cuda/emu/), built only
 * against it. With no argument, its semantics: barriers, the four warp
 * shuffles, block and grid indices, launch limits, cuBLAS products in fp32
 * and bf16, copies; one "ok NAME" or "FAIL NAME" line each. With one
 * argument, a fault it must catch (tests/cli/test_cuda_emu.sh expects the
 * exit): overflow and hostread must fault (SIGSEGV); hostarg, deadlock,
 * tail (a write within an allocation's 256-byte rounding) and exitedlane (a
 * shuffle reading a returned lane) exit with status 70 and a message; race prints a value that depends on
 * PP_EMU_ORDER; streams prints what a stream reads of another's write
 * before and after waiting for it ("0 7" when PP_EMU_DEFER=2 holds the
 * writer back, "7 7" otherwise). */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "cuda_bf16.h"
#include "reduce.cuh"

static int failed;

static void report(const char *name, int ok)
{
    printf("%s emu_check: %s\n", ok ? "ok" : "FAIL", name);
    failed += !ok;
}

static __global__ void sums(float *out)
{
    __shared__ float part[33];
    out[blockIdx.x] = block_sum((float)threadIdx.x, part);
}

static __global__ void shuffles(int *out, int mode)
{
    int lane = threadIdx.x & 31, v = (int)threadIdx.x * 10, r = 0;
    switch (mode) {
    case 0: r = __shfl_xor_sync(0xffffffffu, v, 5); break;
    case 1: r = __shfl_sync(0xffffffffu, v, 3, 16); break;
    case 2: r = __shfl_down_sync(0xffffffffu, v, 4, 16); break;
    case 3: r = __shfl_up_sync(0xffffffffu, v, 2); break;
    case 4: r = __shfl_xor_sync(0xffffffffu, v, 3, 16); break;
    }
    (void)lane;
    out[threadIdx.x] = r;
}

/* threads 40.. return; the rest meet at a barrier (released without them) */
static __global__ void early_exit(int *out)
{
    __shared__ int s[64];
    if (threadIdx.x >= 40) return;
    s[threadIdx.x] = (int)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = s[39 - threadIdx.x];
}

/* lane 5 returns; lane 4 then reads it */
static __global__ void shuffle_exited(float *out)
{
    if (threadIdx.x == 5) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

static __global__ void indices(int *out)
{
    int b = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    int t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    out[b * blockDim.x * blockDim.y * blockDim.z + t] = b * 1000 + t;
}

static __global__ void write_at(float *p, int i) { p[i] = 1.0f; }

static __global__ void bad_shuffle(float *out)
{
    float v = (float)threadIdx.x;
    if ((threadIdx.x & 31) < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    __syncthreads();
    out[threadIdx.x] = v;
}

/* thread 0 reads what thread 31 writes, with no barrier between */
static __global__ void racy(int *p)
{
    if (threadIdx.x == 31) p[0] = 31;
    if (threadIdx.x == 0) p[1] = p[0];
}

static void shuffle_case(int mode, const char *name)
{
    int *d, h[64];
    PP_CUDA(cudaMalloc(&d, sizeof h));
    PP_LAUNCH(shuffles, 1, 64, 0, 0)(d, mode);
    PP_LAUNCHED("shuffles");
    PP_CUDA(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
    int ok = 1;
    for (int t = 0; t < 64; t++) {
        int lane = t & 31, w = t - lane, want = 0;
        switch (mode) {
        case 0: want = (w + (lane ^ 5)) * 10; break;
        case 1: want = (w + (lane & 16) + 3) * 10; break;
        case 2: want = ((lane & 15) + 4 < 16 ? t + 4 : t) * 10; break;
        case 3: want = (lane >= 2 ? t - 2 : t) * 10; break;
        case 4: want = (w + (lane ^ 3)) * 10; break;
        }
        ok &= h[t] == want;
    }
    report(name, ok);
    cudaFree(d);
}

static int semantics(void)
{
    static const int threads[] = {32, 96, 256, 1024};
    for (int i = 0; i < 4; i++) {
        float *d, h[3];
        PP_CUDA(cudaMalloc(&d, sizeof h));
        PP_LAUNCH(sums, 3, threads[i], 0, 0)(d);
        PP_LAUNCHED("sums");
        PP_CUDA(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
        char name[64];
        snprintf(name, sizeof name, "block_sum over %d threads", threads[i]);
        float want = threads[i] * (threads[i] - 1) / 2.0f;
        report(name, h[0] == want && h[1] == want && h[2] == want);
        cudaFree(d);
    }
    {
        float *f, h[4];
        PP_CUDA(cudaMalloc(&f, sizeof h));
        PP_CUDA(cudaMemcpy(h, f, sizeof h, cudaMemcpyDeviceToHost));
        report("fresh device memory reads as NaN, not zero", h[0] != h[0] && h[3] != h[3]);
        cudaFree(f);
    }
    shuffle_case(0, "__shfl_xor_sync");
    shuffle_case(1, "__shfl_sync width 16");
    shuffle_case(2, "__shfl_down_sync width 16");
    shuffle_case(3, "__shfl_up_sync");
    shuffle_case(4, "__shfl_xor_sync width 16");
    {
        int *e, h[40];
        PP_CUDA(cudaMalloc(&e, sizeof h));
        PP_LAUNCH(early_exit, 1, 64, 0, 0)(e);
        PP_LAUNCHED("early_exit");
        PP_CUDA(cudaMemcpy(h, e, sizeof h, cudaMemcpyDeviceToHost));
        int ok = 1;
        for (int t = 0; t < 40; t++) ok &= h[t] == 39 - t;
        report("a barrier with 24 of 64 threads returned", ok);
        cudaFree(e);
    }

    int *d, h[3 * 2 * 2 * 4 * 2 * 3];
    PP_CUDA(cudaMalloc(&d, sizeof h));
    PP_LAUNCH(indices, dim3(3, 2, 2), dim3(4, 2, 3), 0, 0)(d);
    PP_LAUNCHED("indices");
    PP_CUDA(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
    int ok = 1;
    for (int b = 0; b < 12; b++)
        for (int t = 0; t < 24; t++) ok &= h[b * 24 + t] == b * 1000 + t;
    report("3-d grid and block indices", ok);

    PP_LAUNCH(indices, 1, 2048, 0, 0)(d);
    cudaError_t e = cudaGetLastError();
    PP_LAUNCH(indices, dim3(1, 70000), 32, 0, 0)(d);
    report("launch limits (2048 threads, grid.y 70000)",
           e == cudaErrorInvalidConfiguration && cudaGetLastError() == cudaErrorInvalidConfiguration &&
               cudaGetLastError() == cudaSuccess);
    cudaFree(d);

    /* C (3x2, column-major) = Aᵀ B with A (4x3), B (4x2); in fp32 and bf16 */
    float A[12], B[8], C[6], want[6];
    for (int i = 0; i < 12; i++) A[i] = (float)(i % 5) - 2.0f;
    for (int i = 0; i < 8; i++) B[i] = (float)(i % 3) + 0.5f;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 3; i++) {
            want[j * 3 + i] = 0;
            for (int k = 0; k < 4; k++) want[j * 3 + i] += A[i * 4 + k] * B[j * 4 + k];
        }
    float *dA, *dB, *dC;
    __nv_bfloat16 hA[12], hB[8], *bA, *bB;
    PP_CUDA(cudaMalloc(&dA, sizeof A));
    PP_CUDA(cudaMalloc(&dB, sizeof B));
    PP_CUDA(cudaMalloc(&dC, sizeof C));
    PP_CUDA(cudaMalloc(&bA, sizeof hA));
    PP_CUDA(cudaMalloc(&bB, sizeof hB));
    for (int i = 0; i < 12; i++) hA[i] = __float2bfloat16(A[i]);
    for (int i = 0; i < 8; i++) hB[i] = __float2bfloat16(B[i]);
    PP_CUDA(cudaMemcpy(dA, A, sizeof A, cudaMemcpyHostToDevice));
    PP_CUDA(cudaMemcpy(dB, B, sizeof B, cudaMemcpyHostToDevice));
    PP_CUDA(cudaMemcpy(bA, hA, sizeof hA, cudaMemcpyHostToDevice));
    PP_CUDA(cudaMemcpy(bB, hB, sizeof hB, cudaMemcpyHostToDevice));
    PP_CUDA(cudaMemset(dC, 0xff, sizeof C)); /* NaN: beta 0 must not read it */
    cublasHandle_t blas;
    PP_CUBLAS(cublasCreate(&blas));
    float one = 1.0f, zero = 0.0f;
    PP_CUBLAS(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, 3, 2, 4, &one, dA, 4, dB, 4, &zero, dC, 3));
    PP_CUDA(cudaMemcpy(C, dC, sizeof C, cudaMemcpyDeviceToHost));
    ok = 1;
    for (int i = 0; i < 6; i++) ok &= C[i] == want[i];
    report("cublasSgemm Aᵀ B, beta 0 over NaN", ok);
    PP_CUBLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, 3, 2, 4, &one, bA, CUDA_R_16BF, 4, bB, CUDA_R_16BF, 4, &one,
                           dC, CUDA_R_32F, 3, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    PP_CUDA(cudaMemcpy(C, dC, sizeof C, cudaMemcpyDeviceToHost));
    ok = 1;
    for (int i = 0; i < 6; i++) ok &= C[i] == 2 * want[i];
    report("cublasGemmEx bf16 inputs, beta 1", ok);
    cublasDestroy(blas);
    cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(bA), cudaFree(bB);
    return failed ? 1 : 0;
}

static __global__ void set_int(int *p, int v) { *p = v; }

int main(int argc, char **argv)
{
    if (argc < 2) return semantics();
    float *d;
    int *di;
    PP_CUDA(cudaMalloc(&d, 64 * sizeof *d));
    PP_CUDA(cudaMalloc(&di, 2 * sizeof *di));
    const char *m = argv[1];
    if (!strcmp(m, "overflow")) PP_LAUNCH(write_at, 1, 1, 0, 0)(d, 64); /* one past the end */
    else if (!strcmp(m, "tail")) { /* past the end of 10 floats, within the 256-byte rounding */
        float *t;
        PP_CUDA(cudaMalloc(&t, 10 * sizeof *t));
        PP_LAUNCH(write_at, 1, 1, 0, 0)(t, 10);
    } else if (!strcmp(m, "exitedlane")) PP_LAUNCH(shuffle_exited, 1, 32, 0, 0)(d);
    else if (!strcmp(m, "hostread")) printf("%g\n", d[0]);
    else if (!strcmp(m, "hostarg")) {
        static float h[64];
        PP_LAUNCH(write_at, 1, 1, 0, 0)(h, 0);
    } else if (!strcmp(m, "deadlock")) PP_LAUNCH(bad_shuffle, 1, 64, 0, 0)(d);
    else if (!strcmp(m, "race")) {
        int h[2];
        PP_CUDA(cudaMemset(di, 0, 2 * sizeof *di));
        PP_LAUNCH(racy, 1, 32, 0, 0)(di);
        PP_CUDA(cudaMemcpy(h, di, sizeof h, cudaMemcpyDeviceToHost));
        printf("%d\n", h[1]);
    } else if (!strcmp(m, "streams")) {
        cudaStream_t a, b;
        cudaEvent_t e;
        int h[2];
        PP_CUDA(cudaStreamCreate(&a));
        PP_CUDA(cudaStreamCreate(&b));
        PP_CUDA(cudaEventCreate(&e));
        PP_CUDA(cudaMemset(di, 0, 2 * sizeof *di));
        PP_LAUNCH(set_int, 1, 1, 0, b)(di, 7);
        PP_CUDA(cudaMemcpyAsync(h, di, sizeof *h, cudaMemcpyDeviceToHost, a)); /* not waiting for b */
        PP_CUDA(cudaStreamSynchronize(a));
        PP_CUDA(cudaEventRecord(e, b));
        PP_CUDA(cudaStreamWaitEvent(a, e, 0));
        PP_CUDA(cudaMemcpyAsync(h + 1, di, sizeof *h, cudaMemcpyDeviceToHost, a));
        PP_CUDA(cudaStreamSynchronize(a));
        printf("%d %d\n", h[0], h[1]);
    } else {
        fprintf(stderr, "emu_check: unknown case %s\n", m);
        return 2;
    }
    PP_CUDA(cudaDeviceSynchronize());
    return 0;
}
