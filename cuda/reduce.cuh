/* reduce.cuh: sums and maxima over a thread block (up to 1024 threads, a
 * multiple of 32), through warp shuffles and 33 floats of shared memory
 * (part); every thread gets the result. Call from all threads of a block. */
#ifndef PP_CUDA_REDUCE_CUH
#define PP_CUDA_REDUCE_CUH

static __device__ float block_sum(float v, float *part)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) part[32] = v;
    }
    __syncthreads();
    return part[32];
}

static __device__ float block_max(float v, float *part)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
        if (threadIdx.x == 0) part[32] = v;
    }
    __syncthreads();
    return part[32];
}

#endif
