#include "lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const modules[PP_LORA_TYPES] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

const char *pp_lora_module(int t) { return modules[t]; }

void pp_lora_key(char *buf, size_t n, int layer, int t, int is_b)
{
    snprintf(buf, n, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", layer, t < PP_LORA_GATE ? "self_attn" : "mlp",
             modules[t], is_b ? 'B' : 'A');
}

pp_status pp_lora_init(pp_lora *l, const pp_config *c, int r, float alpha, int rslora, unsigned targets)
{
    memset(l, 0, sizeof *l);
    if (r < 1 || r > 4096) return pp_fail(PP_E_USAGE, "LoRA rank %d outside 1..4096", r);
    l->r = r;
    l->alpha = alpha;
    l->rslora = rslora;
    l->scale = rslora ? alpha / sqrtf((float)r) : alpha / (float)r;
    l->targets = targets;
    l->n_layers = c->n_layers;
    int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int in[PP_LORA_TYPES] = {c->dim, c->dim, c->dim, qd, c->dim, c->dim, c->hidden};
    int out[PP_LORA_TYPES] = {qd, kvd, kvd, c->dim, c->hidden, c->hidden, c->dim};
    memcpy(l->in, in, sizeof in);
    memcpy(l->out, out, sizeof out);
    size_t per_layer = 0, slots = (size_t)c->n_layers * PP_LORA_TYPES;
    for (int t = 0; t < PP_LORA_TYPES; t++)
        if (targets >> t & 1) per_layer += (size_t)r * (in[t] + out[t]);
    l->n_params = per_layer * c->n_layers;
    l->params = calloc(l->n_params ? l->n_params : 1, sizeof *l->params);
    l->grads = calloc(l->n_params ? l->n_params : 1, sizeof *l->grads);
    l->A = calloc(4 * slots, sizeof *l->A);
    if (!l->params || !l->grads || !l->A) {
        pp_lora_free(l);
        return pp_fail(PP_E_NOMEM, "out of memory for LoRA");
    }
    l->B = l->A + slots;
    l->dA = l->B + slots;
    l->dB = l->dA + slots;
    size_t at = 0;
    for (int ly = 0; ly < c->n_layers; ly++)
        for (int t = 0; t < PP_LORA_TYPES; t++) {
            if (!(targets >> t & 1)) continue;
            size_t k = (size_t)ly * PP_LORA_TYPES + t;
            l->A[k] = l->params + at, l->dA[k] = l->grads + at;
            at += (size_t)r * in[t];
            l->B[k] = l->params + at, l->dB[k] = l->grads + at;
            at += (size_t)r * out[t];
        }
    return PP_OK;
}

void pp_lora_free(pp_lora *l)
{
    free(l->params);
    free(l->grads);
    free(l->A);
    memset(l, 0, sizeof *l);
}
