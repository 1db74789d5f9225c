#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* An integer key: required unless def >= 0 is given; must lie in [lo, hi]. */
static pp_status get_int(const cJSON *o, const char *key, int def, int lo, int hi, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (def < 0) return pp_fail(PP_E_DATA, "config.json: \"%s\" is missing", key);
        *out = def;
        return PP_OK;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < lo || d > hi)
        return pp_fail(PP_E_DATA, "config.json: \"%s\" must be an integer in [%d, %d]", key, lo, hi);
    *out = (int)d;
    return PP_OK;
}

static pp_status get_float(const cJSON *o, const char *key, double def, double lo, double hi, float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (def < 0) return pp_fail(PP_E_DATA, "config.json: \"%s\" is missing", key);
        *out = (float)def;
        return PP_OK;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return pp_fail(PP_E_DATA, "config.json: \"%s\" must be a number in [%g, %g]", key, lo, hi);
    *out = (float)v->valuedouble;
    return PP_OK;
}

/* A key whose presence with a truthy value means a feature pp does not run. */
static pp_status refuse_true(const cJSON *o, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v && cJSON_IsTrue(v)) return pp_fail(PP_E_DATA, "config.json: %s (\"%s\": true) is not implemented", what, key);
    return PP_OK;
}

static pp_status parse(pp_config *c, const cJSON *o)
{
    if (!cJSON_IsObject(o)) return pp_fail(PP_E_DATA, "config.json: not a JSON object");
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(o, "architectures");
    const cJSON *a0 = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : NULL;
    if (!cJSON_IsString(a0)) return pp_fail(PP_E_DATA, "config.json: \"architectures\" is missing");
    if (strcmp(a0->valuestring, "LlamaForCausalLM") != 0 && strcmp(a0->valuestring, "MistralForCausalLM") != 0)
        return pp_fail(PP_E_DATA, "config.json: architecture \"%.40s\" is not supported (LlamaForCausalLM, MistralForCausalLM)",
                       a0->valuestring);
    snprintf(c->arch, sizeof c->arch, "%s", a0->valuestring);

    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
        return pp_fail(PP_E_DATA, "config.json: hidden_act \"%.40s\" is not implemented (silu)",
                       cJSON_IsString(act) ? act->valuestring : "?");
    /* transformers 4 writes rope_scaling (null for plain RoPE) and a top-level
     * rope_theta; transformers 5 writes rope_parameters {rope_type, rope_theta}. */
    static const char *const rope_keys[] = {"rope_scaling", "rope_parameters"};
    for (int k = 0; k < 2; k++) {
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, rope_keys[k]);
        if (!rs || cJSON_IsNull(rs)) continue;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!t) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (!cJSON_IsObject(rs) || (t && !(cJSON_IsString(t) && strcmp(t->valuestring, "default") == 0)) ||
            (!t && k == 0))
            return pp_fail(PP_E_DATA, "config.json: %s \"%.40s\" is not implemented", rope_keys[k],
                           cJSON_IsString(t) ? t->valuestring : "?");
    }
    PP_TRY(refuse_true(o, "attention_bias", "a bias in attention"));
    PP_TRY(refuse_true(o, "mlp_bias", "a bias in the MLP"));

    PP_TRY(get_int(o, "hidden_size", -1, 1, 1 << 20, &c->dim));
    PP_TRY(get_int(o, "intermediate_size", -1, 1, 1 << 22, &c->hidden));
    PP_TRY(get_int(o, "num_hidden_layers", -1, 1, 4096, &c->n_layers));
    PP_TRY(get_int(o, "num_attention_heads", -1, 1, 4096, &c->n_heads));
    PP_TRY(get_int(o, "num_key_value_heads", c->n_heads, 1, 4096, &c->n_kv_heads));
    PP_TRY(get_int(o, "vocab_size", -1, 1, 1 << 24, &c->vocab));
    PP_TRY(get_int(o, "max_position_embeddings", 2048, 1, 1 << 24, &c->max_pos));
    PP_TRY(get_int(o, "sliding_window", 0, 0, 1 << 24, &c->sliding_window));
    if (c->dim % c->n_heads) return pp_fail(PP_E_DATA, "config.json: hidden_size %d is not a multiple of %d heads", c->dim, c->n_heads);
    PP_TRY(get_int(o, "head_dim", c->dim / c->n_heads, 2, 1 << 16, &c->head_dim));
    if (c->head_dim % 2) return pp_fail(PP_E_DATA, "config.json: head_dim %d is odd (RoPE rotates halves)", c->head_dim);
    if (c->n_heads % c->n_kv_heads)
        return pp_fail(PP_E_DATA, "config.json: %d attention heads are not a multiple of %d key/value heads", c->n_heads, c->n_kv_heads);
    PP_TRY(get_float(o, "rms_norm_eps", 1e-6, 0, 1, &c->norm_eps));
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(o, "rope_parameters");
    if (cJSON_GetObjectItemCaseSensitive(o, "rope_theta") || !cJSON_IsObject(rp))
        PP_TRY(get_float(o, "rope_theta", 10000, 1, 1e12, &c->rope_theta));
    else
        PP_TRY(get_float(rp, "rope_theta", 10000, 1, 1e12, &c->rope_theta));
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(o, "tie_word_embeddings");
    c->tie_embeddings = tie && cJSON_IsTrue(tie);
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(o, "eos_token_id");
    if (cJSON_IsArray(eos)) eos = cJSON_GetArrayItem(eos, 0); /* several: the first */
    c->eos_id = cJSON_IsNumber(eos) ? eos->valueint : -1;
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(o, "bos_token_id");
    c->bos_id = cJSON_IsNumber(bos) ? bos->valueint : -1;
    if (c->bos_id >= c->vocab || c->eos_id >= c->vocab)
        return pp_fail(PP_E_DATA, "config.json: bos/eos token id outside the vocabulary of %d", c->vocab);
    return PP_OK;
}

pp_status pp_config_parse(pp_config *c, const char *json, size_t n)
{
    memset(c, 0, sizeof *c);
    cJSON *o = cJSON_ParseWithLength(json, n);
    if (!o) return pp_fail(PP_E_DATA, "config.json: not valid JSON");
    pp_status s = parse(c, o);
    cJSON_Delete(o);
    return s;
}

unsigned long long pp_config_params(const pp_config *c)
{
    unsigned long long d = (unsigned long long)c->dim, q = (unsigned long long)c->n_heads * c->head_dim,
                       kv = (unsigned long long)c->n_kv_heads * c->head_dim, h = (unsigned long long)c->hidden;
    unsigned long long layer = d * q + 2 * d * kv + q * d + 3 * d * h + 2 * d;
    return (unsigned long long)c->vocab * d * (c->tie_embeddings ? 1 : 2) + c->n_layers * layer + d;
}
