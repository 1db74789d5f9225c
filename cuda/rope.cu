/* rope.cu: rotary embeddings in Hugging Face's rotate_half layout (pairs j,
 * j + hd/2), angles computed as transformers computes them in float32 from
 * the model's inverse frequencies (inv_freq, hd/2 on the device). */
#include "check.h"
#include "kernels.h"

static __global__ void rope(float *q, float *k, int n, int pos0, int n_heads, int n_kv, int hd, const float *inv_freq,
                            float sign)
{
    int half = hd / 2, heads = n_heads + n_kv;
    size_t total = (size_t)n * half * heads;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        int h = (int)(t % heads), j = (int)(t / heads % half), i = (int)(t / heads / half);
        float a = (float)(pos0 + i) * inv_freq[j], cs = cosf(a), sn = sign * sinf(a);
        float *v = h < n_heads ? q + ((size_t)i * n_heads + h) * hd : k + ((size_t)i * n_kv + (h - n_heads)) * hd;
        float x1 = v[j], x2 = v[j + half];
        v[j] = x1 * cs - x2 * sn;
        v[j + half] = x2 * cs + x1 * sn;
    }
}

extern "C" void pp_cuda_rope(float *q, float *k, int n, int pos0, int n_heads, int n_kv, int hd, const float *inv_freq, cudaStream_t s)
{
    size_t total = (size_t)n * (hd / 2) * (n_heads + n_kv);
    if (!total) return;
    PP_LAUNCH(rope, pp_cuda_grid(total), 256, 0, s)(q, k, n, pos0, n_heads, n_kv, hd, inv_freq, 1.0f);
    PP_LAUNCHED("rope");
}

/* The backward pass: the transpose of a rotation is the rotation back. */
extern "C" void pp_cuda_rope_backward(float *dq, float *dk, int n, int pos0, int n_heads, int n_kv, int hd,
                                      const float *inv_freq, cudaStream_t s)
{
    size_t total = (size_t)n * (hd / 2) * (n_heads + n_kv);
    if (!total) return;
    PP_LAUNCH(rope, pp_cuda_grid(total), 256, 0, s)(dq, dk, n, pos0, n_heads, n_kv, hd, inv_freq, -1.0f);
    PP_LAUNCHED("rope_backward");
}
