/* lora.h: LoRA adapters on the frozen linear weights of a Llama, stored as
 * Hugging Face PEFT stores them: for a module with weight W (out, in),
 * A (r, in) and B (out, r), and y = x Wᵀ + s (x Aᵀ) Bᵀ with s = alpha / r
 * (alpha / sqrt(r) with rsLoRA). */
#ifndef PP_LORA_H
#define PP_LORA_H

#include <stddef.h>

#include "config.h"
#include "status.h"

enum { PP_LORA_Q, PP_LORA_K, PP_LORA_V, PP_LORA_O, PP_LORA_GATE, PP_LORA_UP, PP_LORA_DOWN, PP_LORA_TYPES };

typedef struct pp_lora {
    int r;
    float alpha, scale;
    int rslora;
    float dropout;          /* recorded in adapter_config.json (lora_dropout) */
    unsigned targets;       /* bit t set: modules of type t are adapted */
    int n_layers;
    unsigned char *layer_on; /* (n_layers) 1 where the layer is adapted (PEFT's layers_to_transform) */
    int in[PP_LORA_TYPES], out[PP_LORA_TYPES];
    float **A, **B;         /* (n_layers * PP_LORA_TYPES) into params; NULL where not adapted */
    float **dA, **dB;       /* the same into grads */
    float *params, *grads;  /* one allocation each */
    size_t n_params;
    struct pp_backend *dev; /* A and B point into dev_params in this device backend (pp_lora_to_backend) */
    float *dev_params;
    float *dev_grads;       /* with pp_lora_to_backend_train: dA and dB point here (n_params after dev_params) */
} pp_lora;

/* Allocates zeroed adapters (and gradients) for cfg, on every layer, or on
 * the layers where on[layer] is set. */
pp_status pp_lora_init(pp_lora *l, const pp_config *cfg, int r, float alpha, int rslora, unsigned targets);
pp_status pp_lora_init_layers(pp_lora *l, const pp_config *cfg, int r, float alpha, int rslora, unsigned targets,
                              const unsigned char *on);
/* 1 when every layer is adapted. */
int pp_lora_all_layers(const pp_lora *l);
void pp_lora_free(pp_lora *l);

/* PEFT's module name of type t ("q_proj", "gate_proj", ...). */
const char *pp_lora_module(int t);
/* Copies the adapter's weights into be's memory when be is a device backend
 * and points A and B there (for inference; the gradients stay on the host).
 * Nothing to do for the CPU backend. */
pp_status pp_lora_to_backend(pp_lora *l, struct pp_backend *be);
/* The same for training: the gradients live on the device too (dA and dB
 * point into dev_grads). params and grads stay host copies, for the
 * checkpoints and the output; pp_lora_grads_to_host() fetches the gradients. */
pp_status pp_lora_to_backend_train(pp_lora *l, struct pp_backend *be);
void pp_lora_grads_to_host(pp_lora *l);

/* PEFT's key of a layer's A (is_b 0) or B: base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight */
void pp_lora_key(char *buf, size_t n, int layer, int t, int is_b);

/* Reads a PEFT adapter directory (adapter_config.json, adapter_model.safetensors)
 * for a model with cfg: LORA, r, lora_alpha, use_rslora, target_modules among
 * q/k/v/o/gate/up/down_proj, layers_to_transform; tensors F32 (F16/BF16
 * widened) of the right shapes. Anything else PEFT can express (DoRA,
 * biases, rank patterns) is refused by name. */
pp_status pp_lora_load(pp_lora *l, const pp_config *cfg, const char *dir);

/* Writes a PEFT adapter directory: adapter_config.json (the keys PEFT needs)
 * and adapter_model.safetensors (F32, PEFT's key names), each atomically.
 * base is recorded as base_model_name_or_path. */
pp_status pp_lora_save(const pp_lora *l, const char *dir, const char *base);

/* PEFT's initialisation: A Kaiming-uniform (a = sqrt(5): U(-1/sqrt(in),
 * 1/sqrt(in))), B zero, from seed. */
void pp_lora_init_weights(pp_lora *l, unsigned long long seed);

#endif
