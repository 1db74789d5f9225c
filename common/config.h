/* config.h: a Llama-family model's hyperparameters, from Hugging Face's
 * config.json. Architectures LlamaForCausalLM and MistralForCausalLM; RoPE
 * plain or scaled as Llama 3.x ("llama3") or linearly ("linear"); what the
 * code does not implement (another RoPE scaling, biases, another activation)
 * is refused by name, never run wrong. */
#ifndef PP_CONFIG_H
#define PP_CONFIG_H

#include <stddef.h>

#include "status.h"

typedef struct pp_config {
    char arch[48];          /* "LlamaForCausalLM" or "MistralForCausalLM" */
    int dim;                /* hidden_size */
    int hidden;             /* intermediate_size */
    int n_layers;           /* num_hidden_layers */
    int n_heads;            /* num_attention_heads */
    int n_kv_heads;         /* num_key_value_heads (GQA), default n_heads */
    int head_dim;           /* head_dim, default dim / n_heads */
    int vocab;              /* vocab_size */
    int max_pos;            /* max_position_embeddings */
    int sliding_window;     /* Mistral: 0 when absent or null */
    float norm_eps;         /* rms_norm_eps */
    float rope_theta;       /* rope_theta, default 10000 */
    int rope_type;          /* PP_ROPE_*: rope_scaling / rope_parameters' rope_type */
    double rope_factor;     /* linear, llama3: factor */
    double rope_low_freq, rope_high_freq; /* llama3: low_freq_factor, high_freq_factor */
    int rope_orig_max;      /* llama3: original_max_position_embeddings */
    int tie_embeddings;     /* tie_word_embeddings */
    int bos_id, eos_id;     /* -1 when absent; eos_id is eos_ids[0] */
    int eos_ids[8], n_eos;  /* eos_token_id, one id or a list (Llama 3 has several) */
} pp_config;

enum { PP_ROPE_DEFAULT = 0, PP_ROPE_LINEAR, PP_ROPE_LLAMA3 };

/* Parses and validates config.json text. PP_E_DATA names the key that is
 * missing or wrong, or the feature that is not implemented. */
pp_status pp_config_parse(pp_config *c, const char *json, size_t n);

/* Adds generation_config.json's eos_token_id (one id or a list) to c's eos
 * ids, those not there yet. PP_E_DATA when an id is outside the vocabulary
 * or there would be more than 8. */
pp_status pp_config_generation(pp_config *c, const char *json, size_t n);

/* 1 when id is one of c's eos ids. */
int pp_config_is_eos(const pp_config *c, int id);

/* RoPE's inverse frequencies, head_dim / 2 floats, as transformers computes
 * them in float32 (_compute_default_rope_parameters, and the linear and
 * llama3 scalings): the table the backends' rope reads. */
void pp_config_inv_freq(const pp_config *c, float *inv_freq);

/* Parameter count of the whole model. */
unsigned long long pp_config_params(const pp_config *c);

#endif
