/* train.h: one record's forward and backward pass through a Llama with LoRA
 * adapters on its frozen weights, written against the backend table. The
 * loss is cross-entropy over the record's response tokens (the target at
 * position i >= prompt_len is predicted from position i - 1); gradients of
 * the adapters accumulate, scaled by the caller (1 / targets of the step). */
#ifndef PP_TRAIN_H
#define PP_TRAIN_H

#include <stdint.h>

#include "backend.h"
#include "llama.h"
#include "lora.h"

typedef struct pp_trainer {
    const pp_llama *m;
    pp_backend *be;
    pp_lora *lora;
    int max_t;
    float *mem;             /* activations and their gradients: one allocation */
    size_t layer_floats;    /* the activations one layer keeps */
    float *fin, *finb, *finr, *logits;  /* final norm input, output, rstd; logits (max_t, vocab) */
    float *dx, *dxb, *dq, *dk, *dv, *datt, *dg, *du, *dh, *dxa; /* gradients */
    int32_t *targets;       /* (max_t) */
} pp_trainer;

pp_status pp_trainer_init(pp_trainer *t, const pp_llama *m, pp_backend *be, pp_lora *lora, int max_t);
void pp_trainer_free(pp_trainer *t);

/* Forward and backward of one record of n tokens; adds the summed loss to
 * *loss and the number of targets to *targets; LoRA gradients accumulate with
 * the loss scaled by scale. With backward 0, only the loss (and logits). */
pp_status pp_trainer_record(pp_trainer *t, const uint32_t *tok, int n, int prompt_len, float scale, int backward,
                            double *loss, int *targets);

#endif
