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

/* A number in a RoPE dictionary: required; must lie in (lo, hi]. */
static pp_status rope_number(const cJSON *rs, const char *dict, const char *key, double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rs, key);
    if (!v || cJSON_IsNull(v)) return pp_fail(PP_E_DATA, "config.json: %s without \"%s\"", dict, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble > lo && v->valuedouble <= hi))
        return pp_fail(PP_E_DATA, "config.json: %s \"%s\" must be a number in (%g, %g]", dict, key, lo, hi);
    *out = v->valuedouble;
    return PP_OK;
}

/* One RoPE dictionary, rope_scaling or rope_parameters, into c's rope_*
 * fields. rope_scaling must name its type ("rope_type", or "type" as older
 * transformers wrote it); rope_parameters without one is plain RoPE. */
static pp_status rope_dict(pp_config *c, const cJSON *rs, const char *dict)
{
    if (!cJSON_IsObject(rs)) return pp_fail(PP_E_DATA, "config.json: %s is not an object", dict);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!t && strcmp(dict, "rope_scaling") == 0)
        return pp_fail(PP_E_DATA, "config.json: rope_scaling without a \"rope_type\"");
    if (t && !cJSON_IsString(t)) return pp_fail(PP_E_DATA, "config.json: %s \"rope_type\" is not a string", dict);
    const char *name = t ? t->valuestring : "default";
    const cJSON *prf = cJSON_GetObjectItemCaseSensitive(rs, "partial_rotary_factor");
    if (prf && !cJSON_IsNull(prf) && !(cJSON_IsNumber(prf) && prf->valuedouble == 1.0))
        return pp_fail(PP_E_DATA, "config.json: a partial rotary embedding (%s \"partial_rotary_factor\") is not implemented",
                       dict);
    c->rope_factor = 1, c->rope_low_freq = c->rope_high_freq = 0, c->rope_orig_max = 0;
    if (strcmp(name, "default") == 0) {
        c->rope_type = PP_ROPE_DEFAULT;
    } else if (strcmp(name, "linear") == 0) {
        c->rope_type = PP_ROPE_LINEAR;
        PP_TRY(rope_number(rs, dict, "factor", 0, 1e6, &c->rope_factor));
    } else if (strcmp(name, "llama3") == 0) {
        c->rope_type = PP_ROPE_LLAMA3;
        double orig;
        PP_TRY(rope_number(rs, dict, "factor", 0, 1e6, &c->rope_factor));
        PP_TRY(rope_number(rs, dict, "low_freq_factor", 0, 1e6, &c->rope_low_freq));
        PP_TRY(rope_number(rs, dict, "high_freq_factor", 0, 1e6, &c->rope_high_freq));
        const cJSON *om = cJSON_GetObjectItemCaseSensitive(rs, "original_max_position_embeddings");
        if (om && !cJSON_IsNull(om)) {
            PP_TRY(rope_number(rs, dict, "original_max_position_embeddings", 0, 1 << 24, &orig));
            if (orig != floor(orig))
                return pp_fail(PP_E_DATA, "config.json: %s \"original_max_position_embeddings\" must be an integer", dict);
            c->rope_orig_max = (int)orig;
        }
        if (!(c->rope_high_freq > c->rope_low_freq))
            return pp_fail(PP_E_DATA, "config.json: %s \"high_freq_factor\" %g is not above \"low_freq_factor\" %g", dict,
                           c->rope_high_freq, c->rope_low_freq);
    } else {
        return pp_fail(PP_E_DATA, "config.json: %s \"%.40s\" is not implemented (default, linear, llama3)", dict, name);
    }
    return PP_OK;
}

/* transformers 4 writes rope_scaling (null for plain RoPE) and a top-level
 * rope_theta; transformers 5 writes rope_parameters {rope_type, rope_theta,
 * and the scaling's own keys}. Both present: they must say the same. */
static pp_status rope_scaling(pp_config *c, const cJSON *o)
{
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(o, "rope_parameters");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "rope_scaling");
    c->rope_type = PP_ROPE_DEFAULT, c->rope_factor = 1;
    const cJSON *prf = cJSON_GetObjectItemCaseSensitive(o, "partial_rotary_factor");
    if (prf && !cJSON_IsNull(prf) && !(cJSON_IsNumber(prf) && prf->valuedouble == 1.0))
        return pp_fail(PP_E_DATA, "config.json: a partial rotary embedding (\"partial_rotary_factor\") is not implemented");
    if (rp && !cJSON_IsNull(rp)) PP_TRY(rope_dict(c, rp, "rope_parameters"));
    if (rs && !cJSON_IsNull(rs)) {
        pp_config a = *c;
        PP_TRY(rope_dict(c, rs, "rope_scaling"));
        if (rp && !cJSON_IsNull(rp) &&
            (a.rope_type != c->rope_type || a.rope_factor != c->rope_factor || a.rope_low_freq != c->rope_low_freq ||
             a.rope_high_freq != c->rope_high_freq || a.rope_orig_max != c->rope_orig_max))
            return pp_fail(PP_E_DATA, "config.json: rope_scaling and rope_parameters disagree");
    }
    return PP_OK;
}

/* Adds the eos id or ids v (a number or a list) to c's, each once. */
static pp_status add_eos(pp_config *c, const cJSON *v, const char *file)
{
    if (!v || cJSON_IsNull(v)) return PP_OK;
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, i) : v;
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 || e->valuedouble >= c->vocab)
            return pp_fail(PP_E_DATA, "%s: \"eos_token_id\" holds a value that is not a token id of the vocabulary of %d", file,
                           c->vocab);
        int id = (int)e->valuedouble;
        if (pp_config_is_eos(c, id)) continue;
        if (c->n_eos == (int)(sizeof c->eos_ids / sizeof *c->eos_ids))
            return pp_fail(PP_E_DATA, "%s: more than %d eos token ids", file, c->n_eos);
        c->eos_ids[c->n_eos++] = id;
    }
    c->eos_id = c->n_eos ? c->eos_ids[0] : -1;
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
    PP_TRY(rope_scaling(c, o));
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
    /* llama3's pre-training length: as transformers' standardize_rope_params,
     * a top-level original_max_position_embeddings first, then the
     * dictionary's, then max_position_embeddings */
    if (c->rope_type == PP_ROPE_LLAMA3) {
        int om = c->rope_orig_max ? c->rope_orig_max : c->max_pos;
        PP_TRY(get_int(o, "original_max_position_embeddings", om, 1, 1 << 24, &c->rope_orig_max));
    }
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
    c->eos_id = -1;
    PP_TRY(add_eos(c, cJSON_GetObjectItemCaseSensitive(o, "eos_token_id"), "config.json"));
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(o, "bos_token_id");
    c->bos_id = cJSON_IsNumber(bos) ? bos->valueint : -1;
    if (c->bos_id >= c->vocab)
        return pp_fail(PP_E_DATA, "config.json: bos token id outside the vocabulary of %d", c->vocab);
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

int pp_config_is_eos(const pp_config *c, int id)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return 1;
    return 0;
}

pp_status pp_config_generation(pp_config *c, const char *json, size_t n)
{
    cJSON *o = cJSON_ParseWithLength(json, n);
    pp_status s = cJSON_IsObject(o) ? add_eos(c, cJSON_GetObjectItemCaseSensitive(o, "eos_token_id"), "generation_config.json")
                                    : pp_fail(PP_E_DATA, "generation_config.json: not a JSON object");
    cJSON_Delete(o);
    return s;
}

/* Each step in float32 as torch runs it on the CPU: `1.0 / t` and `x / t`
 * for a tensor t are reciprocal(t) * x; a Python number meets a float32
 * tensor as a float32; no step is fused (C11 mode keeps a * b + c unfused). */
void pp_config_inv_freq(const pp_config *c, float *inv_freq)
{
    int hd = c->head_dim, half = hd / 2;
    float factor = (float)c->rope_factor;
    for (int j = 0; j < half; j++) {
        /* _compute_default_rope_parameters: 1 / theta^(arange(0, hd, 2) / hd) */
        float f = 1.0f / powf(c->rope_theta, (float)(2 * j) / (float)hd);
        if (c->rope_type == PP_ROPE_LINEAR) {
            f = f / factor; /* _compute_linear_scaling_rope_parameters: inv_freq /= factor */
        } else if (c->rope_type == PP_ROPE_LLAMA3) {
            /* _compute_llama3_parameters */
            float old = (float)c->rope_orig_max, low = (float)c->rope_low_freq;
            float low_wl = (float)(c->rope_orig_max / c->rope_low_freq), high_wl = (float)(c->rope_orig_max / c->rope_high_freq);
            float wavelen = 1.0f / f * (float)(2 * M_PI);
            float fl = wavelen > low_wl ? f / factor : f;
            float smooth = (1.0f / wavelen * old - low) / (float)(c->rope_high_freq - c->rope_low_freq);
            float a = (1.0f - smooth) * fl, b = smooth * fl;
            float smoothed = a / factor + b;
            f = !(wavelen < high_wl) && !(wavelen > low_wl) ? smoothed : fl;
        }
        inv_freq[j] = f;
    }
}

unsigned long long pp_config_params(const pp_config *c)
{
    unsigned long long d = (unsigned long long)c->dim, q = (unsigned long long)c->n_heads * c->head_dim,
                       kv = (unsigned long long)c->n_kv_heads * c->head_dim, h = (unsigned long long)c->hidden;
    unsigned long long layer = d * q + 2 * d * kv + q * d + 3 * d * h + 2 * d;
    return (unsigned long long)c->vocab * d * (c->tie_embeddings ? 1 : 2) + c->n_layers * layer + d;
}
