/* full.h: every weight of a Llama trainable (pp-train --full). The weights
 * become fp32 master copies in one allocation and their gradients live in
 * another, laid out alike: the matrices first (embedding, each layer's
 * q k v o gate up down, lm_head unless tied), then the norm weights, which
 * weight decay skips as in the Hugging Face Trainer. A model-shaped view of
 * the gradients lets the trainer find each weight's gradient.
 * Also a fresh model from a config.json, initialised as transformers does,
 * for pre-training. */
#ifndef PP_FULL_H
#define PP_FULL_H

#include <stddef.h>
#include <stdint.h>

#include "llama.h"

struct pp_backend;

typedef struct pp_full {
    float *params, *grads;  /* one allocation each (host) */
    size_t n, n_decay;      /* values in all; the leading n_decay get weight decay */
    pp_llama g;             /* the gradients shaped as the model (F32 weights into grads) */
    struct pp_backend *dev; /* with pp_full_to_backend: the device holding dev_params and dev_grads */
    float *dev_params, *dev_grads;
} pp_full;

/* Makes every weight of m fp32 in f->params (m's weights then point there
 * and m's original weight memory is released). A quantized model is
 * refused: its weights cannot be trained. */
pp_status pp_full_init(pp_full *f, pp_llama *m);
void pp_full_free(pp_full *f);

/* The weights and their gradients onto a device backend: m's weights and
 * f->g's then point into dev_params and dev_grads (laid out as params and
 * grads); params stays the host copy for checkpoints. pp_full_to_host
 * copies the weights back into params and points m at them again (for the
 * output). Nothing to do on the CPU. */
pp_status pp_full_to_backend(pp_full *f, pp_llama *m, struct pp_backend *be);
void pp_full_to_host(pp_full *f, pp_llama *m);

/* A new model for config.json text: linear and embedding weights drawn from
 * N(0, initializer_range²) (0.02 when absent), norms 1, as transformers'
 * LlamaPreTrainedModel._init_weights; seeded. All weights F32. */
pp_status pp_llama_random(pp_llama *m, const char *json, size_t len, uint64_t seed);

#endif
