/* kernels.h: the CUDA kernels, one file each, with launchers callable from C
 * on a stream. Activations are row-major float32 [n, width], as everywhere in
 * pp (backend.h); weights are pp_weight with device pointers. */
#ifndef PP_CUDA_KERNELS_H
#define PP_CUDA_KERNELS_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dequant.cu: the 16-value code tables of NF4 and FP4 into constant memory,
 * with the device copy of double quantization's 256-value map. */
void pp_cuda_set_codes(const float *nf4, const float *fp4, const float *dyn);
/* Rows row0..row0+rows-1 of w widened to bf16, fp16 or fp32 (out: rows * cols). */
void pp_cuda_widen_bf16(__nv_bfloat16 *out, const pp_weight *w, int row0, int rows, cudaStream_t s);
void pp_cuda_widen_f16(__half *out, const pp_weight *w, int row0, int rows, cudaStream_t s);
void pp_cuda_widen_f32(float *out, const pp_weight *w, int row0, int rows, cudaStream_t s);
/* x (n) fp32 to bf16 or fp16 (rounded to nearest; beyond ±65504, ±inf). */
void pp_cuda_to_bf16(__nv_bfloat16 *out, const float *x, size_t n, cudaStream_t s);
void pp_cuda_to_f16(__half *out, const float *x, size_t n, cudaStream_t s);
/* x (n) bf16 or fp16 to fp32 (exact). */
void pp_cuda_from_bf16(float *out, const __nv_bfloat16 *x, size_t n, cudaStream_t s);
void pp_cuda_from_f16(float *out, const __half *x, size_t n, cudaStream_t s);

/* gemv.cu: out (n, rows) (+)= x (n, cols) · Wᵀ reading W in its stored form,
 * for n <= PP_CUDA_GEMV_MAX rows of x; returns 0 when w's layout needs the
 * general path (a block size not a multiple of 32, cols not a multiple of 32). */
#define PP_CUDA_GEMV_MAX 8
int pp_cuda_gemv(float *out, const float *x, const pp_weight *w, int n, int acc, cudaStream_t s);

/* norm.cu: RMSNorm of n rows of dim: out = x / sqrt(mean(x²) + eps) * w. */
void pp_cuda_rmsnorm(float *out, const float *x, const float *w, int n, int dim, float eps, cudaStream_t s);

/* rope.cu: q (n, n_heads*hd) and k (n, n_kv*hd) rotated by positions pos0.. */
void pp_cuda_rope(float *q, float *k, int n, int pos0, int n_heads, int n_kv, int hd, const float *inv_freq,
                  cudaStream_t s);

/* attention.cu: causal attention of n queries at pos0.. against the cache
 * kc, vc (positions 0..pos0+n-1, row stride n_kv*hd); GQA; online softmax. */
void pp_cuda_attention(float *out, const float *q, const float *kc, const float *vc, int n, int pos0, int n_heads,
                       int n_kv, int hd, cudaStream_t s);

/* attention.cu, for training without the probabilities: the forward pass
 * over n tokens from position 0, keeping lse (n_heads, n), each row's
 * log-sum-exp of its scaled scores; the backward pass from it (dq, dk, dv
 * set; D (n_heads, n) scratch). */
void pp_cuda_flash_forward(float *out, float *lse, const float *q, const float *k, const float *v, int n, int n_heads,
                           int n_kv, int hd, cudaStream_t s);
void pp_cuda_flash_backward(float *dq, float *dk, float *dv, float *D, const float *dout, const float *lse,
                            const float *q, const float *k, const float *v, int n, int n_heads, int n_kv, int hd,
                            cudaStream_t s);

/* elementwise.cu */
void pp_cuda_swiglu(float *out, const float *g, const float *u, size_t n, cudaStream_t s);
void pp_cuda_add(float *x, const float *y, size_t n, cudaStream_t s);
/* out row i = table row ids[i] widened (ids on the device). */
void pp_cuda_embed(float *out, const pp_weight *table, const uint32_t *ids, int n, cudaStream_t s);

/* rope.cu: the rotation back (rope's backward pass). */
void pp_cuda_rope_backward(float *dq, float *dk, int n, int pos0, int n_heads, int n_kv, int hd,
                           const float *inv_freq, cudaStream_t s);

/* train.cu: the training operations (backend.h says what each computes);
 * targets, ids and row indices on the device;
 * loss (n) gets each row's loss. */
void pp_cuda_rmsnorm_train(float *out, float *rstd, const float *x, const float *w, int n, int dim, float eps,
                           cudaStream_t s);
void pp_cuda_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *rstd, const float *w,
                              int n, int dim, cudaStream_t s);
/* attention's row operations over (n_heads, n, n) (its products are cuBLAS's):
 * the causal softmax of scaled scores in place; the softmax's backward in
 * place, ds = p (dp - rowsum(p dp)) scale. */
void pp_cuda_causal_softmax(float *p, int n, int n_heads, cudaStream_t s);
void pp_cuda_softmax_backward(float *ds, const float *p, int n, int n_heads, float scale, cudaStream_t s);
void pp_cuda_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n,
                             cudaStream_t s);
/* *sum (device, double) += loss[0..n) in row order. */
void pp_cuda_loss_add(double *sum, const float *loss, int n, cudaStream_t s);
void pp_cuda_cross_entropy(float *logits, float *loss, const int32_t *targets, int n, int vocab, float scale,
                           cudaStream_t s);
void pp_cuda_embed_backward(float *dtable, const float *dout, const uint32_t *ids, int n, int dim, cudaStream_t s);
void pp_cuda_rows(float *dst, const float *src, const int *idx, int count, int dim, int scatter, cudaStream_t s);
void pp_cuda_dropout(float *out, const float *x, size_t n, uint64_t key, uint32_t thr, float scale, int acc,
                     cudaStream_t s);
/* the optimizer: part (PP_CUDA_SUMSQ_BLOCKS) gets partial sums of squares in
 * double, to be added on the host in order; AdamW as pp_adamw_update (the
 * operations rounded one by one, no fused multiply-add: the CPU's results). */
#define PP_CUDA_SUMSQ_BLOCKS 256
void pp_cuda_sumsq(double *part, const float *x, size_t n, cudaStream_t s);
void pp_cuda_scale(float *x, size_t n, float f, cudaStream_t s);
void pp_cuda_adamw(float *p, const float *g, float *m, float *v, size_t n, size_t n_decay, const float h[6], cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
