/* train.h: the forward and backward pass of a micro-batch through a Llama
 * with LoRA adapters on its frozen weights, written against the backend
 * table. A micro-batch is packed: its records are laid end to end (no
 * padding), the linear layers see every token at once, RoPE and attention
 * run per record from position 0. That is what padding to the longest
 * record with an attention mask computes, without the work on pad tokens.
 *
 * The loss is cross-entropy over the response tokens (the target at
 * position i >= prompt_len is predicted from position i - 1); the adapters'
 * gradients accumulate with the loss multiplied by the caller's scale
 * (1 / targets of the optimizer step). */
#ifndef PP_TRAIN_H
#define PP_TRAIN_H

#include <stdint.h>

#include "backend.h"
#include "llama.h"
#include "lora.h"

typedef struct pp_train_opts {
    int max_tokens;         /* tokens in one micro-batch, at most */
    int max_len;            /* tokens in one record, at most */
    int grad_checkpoint;    /* keep only each layer's input; recompute the rest in the backward pass */
    float dropout;          /* LoRA dropout on the adapters' input (PEFT's lora_dropout) */
    uint64_t seed;          /* of the dropout masks */
    int logit_rows;         /* the output layer and the loss this many rows at a time (0: all at once) */
    int attention_lse;      /* keep each attention row's log-sum-exp, not its probabilities (backend.h;
                             * backends with ops.lse_attention): (heads, T) floats a layer, not (heads, T, len) */
    int act16;              /* keep each layer's input in 16 bits (bf16, or fp16 in PP_PREC_FP16: ops.narrow),
                             * not fp32; the layer computes from the rounded value, so a recomputation
                             * sees what the forward pass saw */
} pp_train_opts;

typedef struct pp_trainer {
    const pp_llama *m;
    pp_backend *be;
    pp_lora *lora;
    pp_train_opts o;
    uint64_t mask_key;      /* the dropout masks of the next micro-batch: set by the caller per micro-batch */
    const uint8_t *const *loss_mask; /* NULL, or per record of the next micro-batch its tokens' loss mask
                             * (0: not a target, whatever prompt_len says): set by the caller */
    const pp_llama *grad;   /* full training: the weights' gradients, shaped as the model (full.h); NULL: frozen */
    float *mem;             /* activations and their gradients: one allocation */
    size_t layer_floats;    /* the activations one layer keeps (its input aside) */
    float *xs;              /* (n_layers + 1, max_tokens, dim): every layer's input, then the final norm's;
                             * with act16 in 16 bits (void *), and the layer at work reads its input in xin */
    float *xin;             /* act16: (max_tokens, dim) the input of the layer at work, widened */
    float *finb, *finr, *logits;  /* final norm output and rstd; logits (logit_rows or max_tokens, vocab) */
    float *tmp;             /* (max_tokens, dim) scratch */
    float *finc;            /* (max_tokens, dim) the final norm's rows that have a target */
    float *dx, *dxb, *dq, *dk, *dv, *datt, *dh, *dxa; /* gradients (the gate's and up's are written over
                                                         * their activations) */
    float *xd;              /* dropped-out input (with dropout only) */
    float *inv_freq;        /* (head_dim/2) RoPE's inverse frequencies (pp_config_inv_freq) */
    int32_t *targets;       /* (max_tokens) */
    uint32_t *tok;          /* (max_tokens) the packed micro-batch */
    int n_rec, *starts, *lens; /* its records */
    int *rows;              /* (max_tokens) the positions of the targets */
} pp_trainer;

/* Bytes the trainer allocates for m, lora and opts (for --dry-run). */
size_t pp_trainer_bytes(const pp_config *c, const pp_lora *lora, const pp_train_opts *o);

pp_status pp_trainer_init(pp_trainer *t, const pp_llama *m, pp_backend *be, pp_lora *lora, const pp_train_opts *o);
void pp_trainer_free(pp_trainer *t);

/* Forward and backward of a micro-batch of n records (record i: tok[i],
 * len[i] tokens, prompt_len[i] of them prompt); adds the summed loss to
 * *loss and the number of targets to *targets. With backward 0, the loss
 * only (dropout off: evaluation). */
pp_status pp_trainer_batch(pp_trainer *t, const uint32_t *const *tok, const int *len, const int *prompt_len, int n,
                           float scale, int backward, double *loss, int *targets);

/* out = dropout(x) over n values as the adapter of type ty in layer l sees
 * it in the micro-batch keyed by t->mask_key (for tests). */
void pp_trainer_dropout(const pp_trainer *t, float *out, const float *x, size_t n, int l, int ty);

#endif
