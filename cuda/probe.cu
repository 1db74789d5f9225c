// probe.cu: the CUDA build's first brick. It proves that nvcc, the -gencode
// targets and the C linkage work; the backend proper arrives with issue 5.
#include <cuda_runtime.h>

#include "check.h"
#include "probe.h"

__global__ static void fill_iota(int *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = i;
}

extern "C" int pp_cuda_probe(int *devices)
{
    *devices = 0;
    if (cudaGetDeviceCount(devices) != cudaSuccess) return -1;
    if (*devices == 0) return 0;
    enum { N = 256 };
    int *d = nullptr, h[N];
    if (cudaMalloc(&d, N * sizeof(int)) != cudaSuccess) return -1;
    PP_LAUNCH(fill_iota, (N + 127) / 128, 128, 0, 0)(d, N);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    cudaFree(d);
    if (e != cudaSuccess) return -1;
    for (int i = 0; i < N; i++)
        if (h[i] != i) return -1;
    return 1;
}
