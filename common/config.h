/* config.h: a Llama-family model's hyperparameters, from Hugging Face's
 * config.json. Architectures LlamaForCausalLM and MistralForCausalLM; what
 * the code does not implement (rope_scaling, biases, another activation) is
 * refused by name, never run wrong. */
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
    int tie_embeddings;     /* tie_word_embeddings */
    int bos_id, eos_id;     /* -1 when absent */
} pp_config;

/* Parses and validates config.json text. PP_E_DATA names the key that is
 * missing or wrong, or the feature that is not implemented. */
pp_status pp_config_parse(pp_config *c, const char *json, size_t n);

/* Parameter count of the whole model. */
unsigned long long pp_config_params(const pp_config *c);

#endif
