/* backend.h: the compute seam. The model code (llama.c) calls these
 * operations through a table and never asks which backend it has; the CPU
 * backend (backend_cpu.c: fp32, OpenBLAS, OpenMP) is the reference, the CUDA
 * backend implements the same table. Buffers passed to an operation live in
 * the backend's memory (host memory for the CPU).
 *
 * Shapes follow the convention of HF's nn.Linear: a weight is [rows, cols] =
 * [out_features, in_features], and out = x · Wᵀ. Activations are row-major
 * [n tokens, width] float32. */
#ifndef PP_BACKEND_H
#define PP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* How a frozen weight is stored. */
typedef enum pp_wtype { PP_W_F32, PP_W_F16, PP_W_BF16, PP_W_NF4, PP_W_FP4, PP_W_INT8 } pp_wtype;

/* Double quantization (QLoRA) quantizes the absmax values themselves in
 * blocks of this many (quant.h). */
#define PP_NESTED_BLOCKSIZE 256

typedef struct pp_weight {
    pp_wtype type;
    int rows, cols;         /* [out, in]; a vector (norm weight) has rows = 1 */
    int blocksize;          /* quantized types */
    const void *data;       /* F32/F16/BF16 values, packed nibbles or int8 codes */
    const float *absmax;    /* (blocks) quantized types: fp32 (double quantization resolved); on a
                             * device backend NULL when absq is set */
    const uint8_t *absq;    /* double quantization as stored, or NULL: block b's absmax is
                             * dyn[absq[b]] * absnest[b / PP_NESTED_BLOCKSIZE] + absoff in fp32, a
                             * multiply then an add (pp_dequant_nested; dyn: pp_quant_dynamic_map) */
    const float *absnest;   /* (blocks / PP_NESTED_BLOCKSIZE, rounded up) */
    float absoff;
} pp_weight;
/* A device backend may read a weight ahead of the operation that uses it
 * (backend_cuda.cu widens the next block of a quantized weight while the
 * last is multiplied): a weight's memory changes only through upload and
 * adamw, or after free and alloc. */

typedef struct pp_backend pp_backend;

typedef struct pp_backend_ops {
    const char *name;
    /* Memory: one allocation per category; zeroed. */
    void *(*alloc)(pp_backend *be, size_t bytes);
    void (*free)(pp_backend *be, void *p);
    void (*upload)(pp_backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(pp_backend *be, void *dst, const void *src, size_t bytes);
    /* Scratch for the operations below: weights up to weight_elems values,
     * attention over up to seq positions. Call before using them. */
    pp_status (*reserve)(pp_backend *be, size_t weight_elems, int seq);

    /* out[i, :] = table row ids[i], widened to fp32. out (n, dim) */
    void (*embed)(pp_backend *be, float *out, const pp_weight *table, const uint32_t *ids, int n);
    /* out = x / sqrt(mean(x²) + eps) * w, per row. out, x (n, dim); w (dim) */
    void (*rmsnorm)(pp_backend *be, float *out, const float *x, const pp_weight *w, int n, float eps);
    /* out (n, rows) = x (n, cols) · Wᵀ, or out += that when accumulate. */
    void (*matmul)(pp_backend *be, float *out, const float *x, const pp_weight *w, int n, int accumulate);
    /* Rotates q (n, n_heads*hd) and k (n, n_kv*hd) in place by position
     * pos0 + i, Hugging Face's rotate_half layout (pairs i, i + hd/2): pair
     * j by the angle (float)(pos0 + i) * inv_freq[j], inv_freq (hd/2) in
     * this backend's memory (pp_config_inv_freq() computes it). */
    void (*rope)(pp_backend *be, float *q, float *k, int n, int pos0, int n_heads, int n_kv, int hd,
                 const float *inv_freq);
    /* Causal attention of n new queries at positions pos0.. against the
     * cache holding positions 0..pos0+n-1. out, q (n, n_heads*hd);
     * kc, vc (max_seq, n_kv*hd) for this layer. GQA: query head h reads
     * key/value head h / (n_heads / n_kv). */
    void (*attention)(pp_backend *be, float *out, const float *q, const float *kc, const float *vc, int n, int pos0,
                      int n_heads, int n_kv, int hd);
    /* out = silu(gate) * up, elementwise over n values. */
    void (*swiglu)(pp_backend *be, float *out, const float *gate, const float *up, size_t n);
    /* x += y over n values. */
    void (*add)(pp_backend *be, float *x, const float *y, size_t n);

    /* ---- training (backward passes mirror the forward ones) ---- */
    /* C (M, N) = alpha * op(A) · op(B) + beta * C on plain fp32 row-major
     * matrices; op(X) is X or Xᵀ. For the small LoRA products. */
    void (*gemm)(pp_backend *be, float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
                 float alpha, float beta);
    /* dx (n, cols) += dy (n, rows) · W: the input gradient of a frozen weight. */
    void (*matmul_dx)(pp_backend *be, float *dx, const float *dy, const pp_weight *w, int n);
    /* out = rmsnorm(x) as rmsnorm, keeping rstd (n) for the backward pass. */
    void (*rmsnorm_train)(pp_backend *be, float *out, float *rstd, const float *x, const pp_weight *w, int n, float eps);
    /* dx (n, dim) += the input gradient of rmsnorm for dy; dw (dim) += the
     * weight's gradient unless dw is NULL. */
    void (*rmsnorm_backward)(pp_backend *be, float *dx, float *dw, const float *dy, const float *x, const float *rstd,
                             const pp_weight *w, int n);
    /* dq, dk rotated back (the transpose of rope for positions pos0..). */
    void (*rope_backward)(pp_backend *be, float *dq, float *dk, int n, int pos0, int n_heads, int n_kv, int hd,
                          const float *inv_freq);
    /* Causal self-attention over n tokens from position 0, keeping the
     * probabilities: p (n_heads, n, n). q (n, n_heads*hd); k, v (n, n_kv*hd).
     * With pp_backend.attention_lse (where ops.lse_attention says it can):
     * p (n_heads, n) gets each row's log-sum-exp of its scaled scores
     * instead, and the backward pass recomputes the probabilities. */
    void (*attention_train)(pp_backend *be, float *out, float *p, const float *q, const float *k, const float *v, int n,
                            int n_heads, int n_kv, int hd);
    /* dq (set), dk, dv (set) from dout and the kept probabilities. */
    void (*attention_backward)(pp_backend *be, float *dq, float *dk, float *dv, const float *dout, const float *p,
                               const float *q, const float *k, const float *v, int n, int n_heads, int n_kv, int hd);
    /* dgate, dup (set) from dh for h = silu(gate) * up; dgate may be gate and
     * dup may be up (the trainer writes them in place). */
    void (*swiglu_backward)(pp_backend *be, float *dgate, float *dup, const float *dh, const float *gate, const float *up,
                            size_t n);
    /* Cross-entropy of rows of logits (n, vocab) against targets (n; -1 =
     * no loss): the rows' losses are added to the backend's loss sum
     * (loss_sum); logits are replaced by their gradient times scale (zero
     * rows where there is no target). */
    void (*cross_entropy)(pp_backend *be, float *logits, const int32_t *targets, int n, int vocab, float scale);
    /* The losses cross_entropy added since the last call, summed in double;
     * the sum starts again from 0. (A device backend's one wait for its
     * work in a micro-batch: the loss is not read block by block.) */
    double (*loss_sum)(pp_backend *be);
    /* dtable (vocab, dim) row ids[i] += dout row i: the embedding's gradient. */
    void (*embed_backward)(pp_backend *be, float *dtable, const float *dout, const uint32_t *ids, int n, int dim);

    /* ---- data movement on the backend's buffers (the trainer touches no
     * activation itself, so that they may live on a device) ---- */
    /* p[0..n) = 0. */
    void (*zero)(pp_backend *be, float *p, size_t n);
    /* dst[0..n) = src[0..n); the two do not overlap. */
    void (*copy)(pp_backend *be, float *dst, const float *src, size_t n);
    /* Rows of dim values: dst row i = src row rows[i] (gather), or with
     * scatter, dst row rows[i] = src row i. rows (count) is host memory. */
    void (*rows)(pp_backend *be, float *dst, const float *src, const int *rows, int count, int dim, int scatter);
    /* Inverted dropout with a counter-based mask: value i is kept when
     * pp_dropout_bits(key, i) >= thr, then out[i] = x[i] * scale (or out[i] +=
     * that when acc); dropped values give 0 (or leave out[i]). Every backend
     * draws the same mask for the same key. */
    void (*dropout)(pp_backend *be, float *out, const float *x, size_t n, uint64_t key, uint32_t thr, float scale, int acc);
    /* Activations kept in 16 bits: dst (n 16-bit values of the precision's
     * type: fp16 for PP_PREC_FP16, else bf16) = src rounded to nearest even
     * (beyond fp16's range, ±inf); widen is the exact way back. */
    void (*narrow)(pp_backend *be, void *dst, const float *src, size_t n);
    void (*widen)(pp_backend *be, float *dst, const void *src, size_t n);

    /* ---- the optimizer, on the backend's buffers ---- */
    /* The sum of squares of x (n), in double. */
    double (*sumsq)(pp_backend *be, const float *x, size_t n);
    /* x[0..n) *= s. */
    void (*scale)(pp_backend *be, float *x, size_t n, float s);
    /* One AdamW update of p (n) from g with moments m, v, the first n_decay
     * values decayed (pp_adamw_update's arithmetic; h: b1, b2, eps, step,
     * decay, sqrt(1 - b2^t), as pp_adamw_hyper). */
    void (*adamw)(pp_backend *be, float *p, const float *g, float *m, float *v, size_t n, size_t n_decay, const float h[6]);

    /* Releases the backend (pp_backend_free calls it). */
    void (*destroy)(pp_backend *be);
    int host_memory;        /* 1: buffers are plain host memory (the CPU backend) */
    int lse_attention;      /* 1: attention_train can keep log-sum-exps (pp_backend.attention_lse) */
} pp_backend_ops;

/* The dropout mask's random bits for value i under key (splitmix64's
 * finalizer over a Weyl sequence): the same on every backend. */
#ifdef __CUDACC__
#define PP_HOST_DEVICE __host__ __device__
#else
#define PP_HOST_DEVICE
#endif
static inline PP_HOST_DEVICE uint64_t pp_dropout_mix(uint64_t z)
{
    z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ z >> 27) * 0x94D049BB133111EBull;
    return z ^ z >> 31;
}
static inline PP_HOST_DEVICE uint32_t pp_dropout_bits(uint64_t key, uint64_t i)
{
    return (uint32_t)(pp_dropout_mix(key + i * 0x9E3779B97F4A7C15ull) >> 32);
}

/* How a backend's products compute (matmul, matmul_dx, gemm); the caller
 * sets pp_backend.precision before using them.
 *   AUTO: fp32 weights in fp32, stored weights of other types through bf16
 *         (the default: decoding);
 *   FP32: everything in fp32 (training's reference);
 *   BF16, FP16: both operands rounded to bf16 or fp16, the product
 *         accumulated and returned in fp32 (what autocast does for linear
 *         layers); in fp16 a value beyond ±65504 becomes ±inf, which the
 *         trainer's loss scaling detects.
 * The CPU backend computes in fp32 whatever is asked. */
typedef enum { PP_PREC_AUTO, PP_PREC_FP32, PP_PREC_BF16, PP_PREC_FP16 } pp_precision;

/* "auto", "fp32", "bf16" or "fp16". */
const char *pp_precision_name(pp_precision p);

struct pp_backend {
    const pp_backend_ops *ops;
    int threads;
    void *priv;             /* the backend's own state (scratch buffers) */
    pp_precision precision; /* of the products (above) */
    int attention_lse;      /* attention_train keeps (n_heads, n) log-sum-exps, not (n_heads, n, n) probabilities */
    size_t peak_bytes;      /* device backends: the most device memory in use seen so far */
};

/* The CPU backend with the given number of threads (0: all cores; -1: the
 * cores no other program keeps busy now, for work whose results do not
 * depend on the thread count; OMP_NUM_THREADS, when set, for either). */
pp_status pp_backend_cpu(pp_backend **out, int threads);
void pp_backend_free(pp_backend *be);

/* A backend by name: "cpu", "cuda" or "cuda:N" (device N), or "auto" (CUDA
 * when its library loads and a device is there, else the CPU). The CUDA
 * backend is a shared library opened at run time (backend.c): its absence
 * is an error only when "cuda" was asked for (PP_E_NOINPUT). */
pp_status pp_backend_open(pp_backend **out, const char *device, int threads);

/* Ids (n) and token-sized arguments stay host memory for every backend;
 * the operations' float buffers are the backend's (alloc). */

/* Bytes of a weight's data. */
size_t pp_weight_bytes(const pp_weight *w);

#endif
