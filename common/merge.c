#include "merge.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "quant.h"
#include "stream.h"
#include "text.h"

pp_status pp_merge_list(pp_merge_tensor **out, size_t *n, const pp_llama *m, const pp_lora *l)
{
    const pp_config *c = &m->cfg;
    size_t cap = 2 + (size_t)c->n_layers * 9 + !c->tie_embeddings, k = 0;
    pp_merge_tensor *t = calloc(cap, sizeof *t);
    *out = NULL;
    *n = 0;
    if (!t) return pp_fail(PP_E_NOMEM, "out of memory");
#define ADD(W, LAYER, TYPE, ...)                                                                                      \
    do {                                                                                                             \
        pp_merge_tensor *e = &t[k++];                                                                                \
        snprintf(e->name, sizeof e->name, __VA_ARGS__);                                                              \
        e->w = (W);                                                                                                  \
        e->layer = (LAYER);                                                                                          \
        e->type = (TYPE);                                                                                            \
        e->ndim = e->w->rows == 1 && strstr(e->name, "norm") ? 1 : 2;                                                \
        e->shape[0] = e->ndim == 1 ? (uint64_t)e->w->cols : (uint64_t)e->w->rows;                                   \
        e->shape[1] = e->ndim == 1 ? 0 : (uint64_t)e->w->cols;                                                       \
        e->nelem = (uint64_t)e->w->rows * (uint64_t)e->w->cols;                                                      \
    } while (0)
    ADD(&m->embed, -1, -1, "model.embed_tokens.weight");
    for (int i = 0; i < c->n_layers; i++) {
        const pp_llama_layer *L = &m->layers[i];
        const pp_weight *lin[PP_LORA_TYPES] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int ty = 0; ty < PP_LORA_TYPES; ty++) {
            int adapted = l && l->A[(size_t)i * PP_LORA_TYPES + ty];
            ADD(lin[ty], i, adapted ? ty : -1, "model.layers.%d.%s.%s.weight", i, ty < PP_LORA_GATE ? "self_attn" : "mlp",
                pp_lora_module(ty));
        }
        ADD(&L->attn_norm, i, -1, "model.layers.%d.input_layernorm.weight", i);
        ADD(&L->ffn_norm, i, -1, "model.layers.%d.post_attention_layernorm.weight", i);
    }
    ADD(&m->norm, -1, -1, "model.norm.weight");
    if (!c->tie_embeddings) ADD(&m->lm_head, -1, -1, "lm_head.weight");
#undef ADD
    *out = t;
    *n = k;
    return PP_OK;
}

size_t pp_merge_shard(pp_merge_tensor *t, size_t n, size_t elem_size, uint64_t max_bytes)
{
    /* huggingface_hub numbers the files in the order it closes them: a
     * tensor larger than the limit is a file at once, the open one later. */
    size_t shards = 0, first = 0;
    int open = 0;
    uint64_t size = 0;
    for (size_t i = 0; i <= n; i++) {
        uint64_t b = i < n ? t[i].nelem * elem_size : 0;
        if (i < n && b > max_bytes) {
            t[i].shard = (int)shards++;
            continue;
        }
        if (open && (i == n || size + b > max_bytes)) { /* close the open file */
            for (size_t k = first; k < i; k++)
                if (t[k].shard == -1) t[k].shard = (int)shards;
            shards++;
            open = 0;
        }
        if (i == n) break;
        if (!open) open = 1, size = 0, first = i;
        t[i].shard = -1;
        size += b;
    }
    return shards;
}

void pp_weight_widen(float *out, const pp_weight *w)
{
    size_t n = (size_t)w->rows * (size_t)w->cols;
    const uint16_t *h = w->data;
    switch (w->type) {
    case PP_W_F32: memcpy(out, w->data, n * sizeof *out); break;
    case PP_W_BF16:
        for (size_t i = 0; i < n; i++) out[i] = pp_bf16_to_f32(h[i]);
        break;
    case PP_W_F16:
        for (size_t i = 0; i < n; i++) out[i] = pp_f16_to_f32(h[i]);
        break;
    case PP_W_NF4:
    case PP_W_FP4:
        pp_dequant4(out, w->data, w->absmax, n, w->blocksize, w->type == PP_W_NF4 ? PP_Q_NF4 : PP_Q_FP4);
        break;
    case PP_W_INT8: pp_dequant_int8(out, w->data, w->absmax, n, w->blocksize); break;
    }
}

void pp_lora_delta(float *delta, const pp_lora *l, int layer, int type)
{
    size_t k = (size_t)layer * PP_LORA_TYPES + type, n = (size_t)l->out[type] * (size_t)l->in[type];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l->out[type], l->in[type], l->r, 1.0f, l->B[k], l->r, l->A[k],
                l->in[type], 0.0f, delta, l->in[type]);
    for (size_t i = 0; i < n; i++) delta[i] *= l->scale;
}

void pp_merge_tensor_values(float *out, float *delta, const pp_merge_tensor *t, const pp_lora *l)
{
    pp_weight_widen(out, t->w);
    if (t->type < 0 || !l) return;
    pp_lora_delta(delta, l, t->layer, t->type);
    for (size_t i = 0; i < (size_t)t->nelem; i++) out[i] += delta[i];
}

double pp_frobenius(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

double pp_requant_error(const float *x, size_t n, pp_wtype t, int blocksize, float *y, uint8_t *q, float *absmax)
{
    if (t == PP_W_INT8) {
        pp_quant_int8((int8_t *)q, absmax, x, n, blocksize);
        pp_dequant_int8(y, (const int8_t *)q, absmax, n, blocksize);
    } else {
        pp_qtype qt = t == PP_W_FP4 ? PP_Q_FP4 : PP_Q_NF4;
        pp_quant4(q, absmax, x, n, blocksize, qt);
        pp_dequant4(y, q, absmax, n, blocksize, qt);
    }
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)y[i];
        s += d * d;
    }
    return sqrt(s);
}

void pp_narrow(void *out, float *back, const float *x, pp_dtype dtype, size_t n)
{
    uint16_t *h = out;
    switch (dtype) {
    case PP_BF16:
        for (size_t i = 0; i < n; i++) {
            h[i] = pp_f32_to_bf16(x[i]);
            if (back) back[i] = pp_bf16_to_f32(h[i]);
        }
        break;
    case PP_F16:
        for (size_t i = 0; i < n; i++) {
            h[i] = pp_f32_to_f16(x[i]);
            if (back) back[i] = pp_f16_to_f32(h[i]);
        }
        break;
    default:
        memcpy(out, x, n * sizeof *x);
        if (back && back != x) memcpy(back, x, n * sizeof *x);
        break;
    }
}

/* ------------------------------------------------------------- config.json */

static char *join2(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The base's config text: config.json of a directory, the metadata of a file. */
static pp_status base_config_text(char **text, const char *base)
{
    struct stat st;
    pp_reader *r = NULL;
    *text = NULL;
    if (stat(base, &st) == 0 && S_ISDIR(st.st_mode)) {
        char *path = join2(base, "config.json");
        size_t n;
        pp_status s = path ? pp_reader_open(&r, path) : pp_fail(PP_E_NOMEM, "out of memory");
        if (s == PP_OK) s = pp_read_all(r, text, &n, 16u << 20);
        if (s != PP_OK) pp_fail_ctx(s, "config.json");
        pp_reader_close(r);
        free(path);
        return s;
    }
    pp_st_reader *sr = NULL;
    pp_status s = pp_reader_open(&r, base);
    if (s == PP_OK) s = pp_st_open(&sr, r); /* the header only */
    const char *cfg = s == PP_OK ? pp_st_meta(sr, "config") : NULL;
    if (s == PP_OK && !cfg) s = pp_fail(PP_E_DATA, "no config in the metadata");
    if (s == PP_OK && !(*text = strdup(cfg))) s = pp_fail(PP_E_NOMEM, "out of memory");
    pp_st_close(sr);
    pp_reader_close(r);
    return s;
}

/* The shortest decimal that reads back as f (1e-05, not 9.99999975e-06). */
static void short_float(char *buf, size_t n, float f)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f) return;
    }
}

/* A config.json from the parsed values, for a base read from standard input. */
static pp_status config_from(pp_buf *b, const pp_config *c)
{
    int mistral = strstr(c->arch, "Mistral") != NULL;
    char eps[32], theta[32];
    short_float(eps, sizeof eps, c->norm_eps);
    short_float(theta, sizeof theta, c->rope_theta);
    pp_status s = pp_buf_printf(
        b,
        "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n  \"hidden_act\": \"silu\",\n"
        "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
        "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"vocab_size\": %d,\n"
        "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %s,\n  \"rope_theta\": %s,\n"
        "  \"tie_word_embeddings\": %s,\n  \"attention_bias\": false,\n  \"mlp_bias\": false",
        c->arch, mistral ? "mistral" : "llama", c->dim, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
        c->vocab, c->max_pos, eps, theta, c->tie_embeddings ? "true" : "false");
    if (s == PP_OK && mistral) {
        if (c->sliding_window > 0) s = pp_buf_printf(b, ",\n  \"sliding_window\": %d", c->sliding_window);
        else s = pp_buf_adds(b, ",\n  \"sliding_window\": null");
    }
    if (s == PP_OK && c->bos_id >= 0) s = pp_buf_printf(b, ",\n  \"bos_token_id\": %d", c->bos_id);
    if (s == PP_OK && c->eos_id >= 0) s = pp_buf_printf(b, ",\n  \"eos_token_id\": %d", c->eos_id);
    if (s == PP_OK) s = pp_buf_adds(b, "\n}\n");
    return s;
}

pp_status pp_merge_config_json(char **json, const char *base, const pp_config *cfg, const char *torch_dtype)
{
    *json = NULL;
    char *text = NULL;
    pp_buf b = {0};
    pp_status s = PP_OK;
    if (strcmp(base, "-") == 0) {
        s = config_from(&b, cfg);
        text = b.p;
    } else {
        s = base_config_text(&text, base);
    }
    cJSON *o = s == PP_OK ? cJSON_Parse(text) : NULL;
    if (s == PP_OK && !cJSON_IsObject(o)) s = pp_fail(PP_E_DATA, "config.json: not a JSON object");
    /* transformers 5 writes "dtype"; older readers look for "torch_dtype" */
    static const char *const keys[] = {"torch_dtype", "dtype"};
    for (int i = 0; i < 2 && s == PP_OK; i++) {
        cJSON *v = cJSON_CreateString(torch_dtype);
        if (!v) s = pp_fail(PP_E_NOMEM, "out of memory");
        else if (cJSON_HasObjectItem(o, keys[i])) cJSON_ReplaceItemInObjectCaseSensitive(o, keys[i], v);
        else cJSON_AddItemToObject(o, keys[i], v);
    }
    if (s == PP_OK) {
        char *p = cJSON_Print(o);
        size_t n = p ? strlen(p) : 0;
        if (!p || !(*json = malloc(n + 2))) s = pp_fail(PP_E_NOMEM, "out of memory");
        else {
            memcpy(*json, p, n);
            memcpy(*json + n, "\n", 2);
        }
        free(p);
    }
    cJSON_Delete(o);
    free(text);
    return s;
}

/* ----------------------------------------------------------- pp-train.json */

static pp_status record_string(char *dst, size_t cap, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    dst[0] = '\0';
    if (!v || cJSON_IsNull(v)) return PP_OK;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
        return pp_fail(PP_E_DATA, "pp-train.json: \"%s\" must be a string of at most %zu characters", key, cap - 1);
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return PP_OK;
}

pp_status pp_train_record_read(pp_train_record *r, const char *dir)
{
    memset(r, 0, sizeof *r);
    char *path = join2(dir, "pp-train.json"), *text = NULL;
    if (!path) return pp_fail(PP_E_NOMEM, "out of memory");
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        free(path);
        return PP_OK;
    }
    pp_reader *rd = NULL;
    size_t n;
    pp_status s = pp_reader_open(&rd, path);
    if (s == PP_OK) s = pp_read_all(rd, &text, &n, 16u << 20);
    if (s != PP_OK) pp_fail_ctx(s, "pp-train.json");
    pp_reader_close(rd);
    cJSON *o = s == PP_OK ? cJSON_ParseWithLength(text, n) : NULL;
    if (s == PP_OK && !cJSON_IsObject(o)) s = pp_fail(PP_E_DATA, "pp-train.json: not a JSON object");
    if (s == PP_OK) s = record_string(r->base_sha256, sizeof r->base_sha256, o, "base_sha256");
    if (s == PP_OK) s = record_string(r->base_quant, sizeof r->base_quant, o, "base_quant");
    if (s == PP_OK) s = record_string(r->tokenizer_sha256, sizeof r->tokenizer_sha256, o, "tokenizer_sha256");
    r->present = s == PP_OK;
    cJSON_Delete(o);
    free(text);
    free(path);
    return s;
}
