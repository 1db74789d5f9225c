/* llama.h: the Llama model, loaded from a Hugging Face directory or a pp
 * model file, and its forward pass with a KV cache, written once against the
 * backend table (backend.h). */
#ifndef PP_LLAMA_H
#define PP_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "hfdir.h"
#include "lora.h"
#include "status.h"

typedef struct pp_llama_layer {
    pp_weight attn_norm;    /* (dim) fp32 */
    pp_weight wq;           /* (n_heads*hd, dim) */
    pp_weight wk, wv;       /* (n_kv*hd, dim) */
    pp_weight wo;           /* (dim, n_heads*hd) */
    pp_weight ffn_norm;     /* (dim) fp32 */
    pp_weight w_gate, w_up; /* (hidden, dim) */
    pp_weight w_down;       /* (dim, hidden) */
} pp_llama_layer;

typedef struct pp_llama {
    pp_config cfg;
    pp_weight embed;        /* (vocab, dim) */
    pp_weight norm;         /* (dim) fp32 */
    pp_weight lm_head;      /* (vocab, dim); the embedding when tied */
    pp_llama_layer *layers; /* (n_layers) */
    pp_tokfiles tok;        /* the tokenizer's files (tok.data NULL: none) */
    char quant[16];         /* "f32", "bf16", "nf4", ... (the linear weights) */
    void *mem;              /* the weights: one allocation */
    size_t mem_bytes;
    float *fmem;            /* fp32 norms, absmax and nested absmax, then the absmax values double
                             * quantization resolves (the CPU's; a device decodes them): one allocation */
    size_t fmem_bytes, fmem_dev_bytes; /* all of it; the part a device backend gets */
    pp_backend *dev;        /* set when the weights live in a device backend's memory (pp_llama_to_backend) */
    void *dev_mem, *dev_fmem;
} pp_llama;

/* Loads path: a Hugging Face directory or a pp model file (pp-quantize's
 * output, plain or zstd, or standard input as "-"). Weights are read once
 * into one allocation and stay in their stored form (F32/F16/BF16 or
 * quantized). A directory's tokenizer.model is loaded when present. */
pp_status pp_llama_load(pp_llama *m, const char *path);
void pp_llama_free(pp_llama *m);

/* Moves the weights into be's memory when be is a device backend (CUDA):
 * one upload of each allocation, every weight pointer rebased, the host
 * copies released. Nothing to do for the CPU backend. The tokenizer and
 * config stay on the host. Call after the digest (pp_llama_sha256) if one is
 * wanted: it reads the weights on the host. */
pp_status pp_llama_to_backend(pp_llama *m, pp_backend *be);

/* SHA-256 of the weights as loaded: for each weight in model order (embed,
 * each layer's norms and linear weights, norm, lm_head) its type, shape,
 * blocksize, data bytes and absmax values. Two models give the same digest
 * when they compute the same function the same way; a bf16 directory and its
 * NF4 file differ. pp-train records it, pp-merge checks it. */
void pp_llama_sha256(const pp_llama *m, char hex[65]);
/* The same for the model loaded from path, remembered between runs in
 * $XDG_CACHE_HOME/pp/model-sha256 (~/.cache/pp/...), keyed by the identity
 * of path's files (device, inode, size, modification time; for a directory,
 * of every file in it): computed only when that changes. */
void pp_llama_sha256_cached(const pp_llama *m, const char *path, char hex[65]);

/* Values in the model's largest weight matrix: the scratch a backend needs
 * to dequantize one matrix at a time. */
size_t pp_llama_largest_weight(const pp_config *c);

/* A running sequence: the KV cache and the activations for up to max_batch
 * tokens per call. One allocation per category, on the backend. */
typedef struct pp_infer {
    const pp_llama *m;
    pp_backend *be;
    int max_seq, max_batch;
    int pos;                /* tokens in the cache */
    float *kc, *vc;         /* (n_layers, max_seq, n_kv*hd) */
    float *act;             /* the activations below, carved from one buffer */
    float *x, *xb;          /* (max_batch, dim) */
    float *q, *att;         /* (max_batch, n_heads*hd) */
    float *g, *u;           /* (max_batch, hidden) */
    float *logits;          /* (max_batch, vocab) */
    float *inv_freq;        /* (head_dim/2) RoPE's inverse frequencies (pp_config_inv_freq) */
    const pp_lora *lora;    /* an adapter applied unmerged, or NULL */
    float lora_scale;       /* multiplies the adapter's own scale */
    float *xa;              /* (max_batch, r) x Aᵀ, when an adapter is set */
} pp_infer;

pp_status pp_infer_init(pp_infer *s, const pp_llama *m, pp_backend *be, int max_seq, int max_batch);
void pp_infer_free(pp_infer *s);
/* Applies adapter l (NULL: none), its output multiplied by scale (1: as
 * trained), to every following forward pass. l must outlive s. */
pp_status pp_infer_adapter(pp_infer *s, const pp_lora *l, float scale);

/* Forgets the cached tokens. */
void pp_infer_reset(pp_infer *s);

/* Appends n tokens to the sequence (in chunks of max_batch) and computes
 * logits: of every token into logits (n, vocab) when all is set, else of the
 * last token only (vocab). logits is host memory. PP_E_DATA when the
 * sequence would pass max_seq or an id is outside the vocabulary. */
pp_status pp_infer_forward(pp_infer *s, const uint32_t *ids, int n, float *logits, int all);

#endif
