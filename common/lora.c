#include "lora.h"

#include "backend.h"

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
    return pp_lora_init_layers(l, c, r, alpha, rslora, targets, NULL);
}

int pp_lora_all_layers(const pp_lora *l)
{
    for (int i = 0; i < l->n_layers; i++)
        if (!l->layer_on[i]) return 0;
    return 1;
}

pp_status pp_lora_init_layers(pp_lora *l, const pp_config *c, int r, float alpha, int rslora, unsigned targets,
                              const unsigned char *on)
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
    size_t per_layer = 0, slots = (size_t)c->n_layers * PP_LORA_TYPES, n_on = 0;
    for (int t = 0; t < PP_LORA_TYPES; t++)
        if (targets >> t & 1) per_layer += (size_t)r * (in[t] + out[t]);
    for (int i = 0; i < c->n_layers; i++) n_on += !on || on[i];
    l->n_params = per_layer * n_on;
    l->params = calloc(l->n_params ? l->n_params : 1, sizeof *l->params);
    l->grads = calloc(l->n_params ? l->n_params : 1, sizeof *l->grads);
    l->A = calloc(4 * slots, sizeof *l->A);
    l->layer_on = malloc(c->n_layers ? (size_t)c->n_layers : 1);
    if (!l->params || !l->grads || !l->A || !l->layer_on) {
        pp_lora_free(l);
        return pp_fail(PP_E_NOMEM, "out of memory for LoRA");
    }
    l->B = l->A + slots;
    l->dA = l->B + slots;
    l->dB = l->dA + slots;
    for (int i = 0; i < c->n_layers; i++) l->layer_on[i] = !on || on[i];
    size_t at = 0;
    for (int ly = 0; ly < c->n_layers; ly++)
        for (int t = 0; t < PP_LORA_TYPES; t++) {
            if (!(targets >> t & 1) || !l->layer_on[ly]) continue;
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
    if (l->dev) l->dev->ops->free(l->dev, l->dev_params);
    free(l->params);
    free(l->grads);
    free(l->A);
    free(l->layer_on);
    memset(l, 0, sizeof *l);
}

/* --------------------------------------------------------------- files */

#include <cjson/cJSON.h>
#include <errno.h>
#include <sys/stat.h>

#include "quant.h"
#include "safetensors.h"
#include "stream.h"
#include "text.h"

/* A config value that must be absent, null, false, empty or as given. */
static pp_status refuse(const cJSON *o, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return PP_OK;
    if ((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child) return PP_OK;
    if (cJSON_IsString(v) && (!strcmp(v->valuestring, "none") || !*v->valuestring)) return PP_OK;
    return pp_fail(PP_E_DATA, "adapter_config.json: %s (\"%s\") is not supported", what, key);
}

/* layers_to_transform: absent or null (every layer), an index or a list of
 * indices below n_layers, into on (n_layers). */
static pp_status parse_layers(const cJSON *o, int n_layers, unsigned char *on)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "layers_to_transform"), *e;
    memset(on, !v || cJSON_IsNull(v), (size_t)n_layers);
    if (!v || cJSON_IsNull(v)) return PP_OK;
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "layers_pattern");
    if (pat && !cJSON_IsNull(pat) && !(cJSON_IsString(pat) && !strcmp(pat->valuestring, "layers")) &&
        !(cJSON_IsArray(pat) && cJSON_GetArraySize(pat) == 1 && cJSON_IsString(pat->child) && !strcmp(pat->child->valuestring, "layers")))
        return pp_fail(PP_E_DATA, "adapter_config.json: layers_pattern other than \"layers\" is not supported");
    int any = 0;
    if (cJSON_IsNumber(v)) {
        if (v->valuedouble < 0 || v->valuedouble >= n_layers || v->valuedouble != (int)v->valuedouble) goto bad;
        on[v->valueint] = 1;
        return PP_OK;
    }
    if (!cJSON_IsArray(v)) goto bad;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= n_layers || e->valuedouble != (int)e->valuedouble)
            goto bad;
        on[e->valueint] = 1, any = 1;
    }
    if (any) return PP_OK;
bad:
    return pp_fail(PP_E_DATA, "adapter_config.json: layers_to_transform must be layer indices below %d", n_layers);
}

static pp_status parse_config(const char *text, size_t n, int *r, float *alpha, int *rslora, unsigned *targets,
                              int n_layers, unsigned char *on)
{
    cJSON *o = cJSON_ParseWithLength(text, n);
    pp_status s = PP_OK;
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(o, "peft_type"), *rr = cJSON_GetObjectItemCaseSensitive(o, "r"),
                *al = cJSON_GetObjectItemCaseSensitive(o, "lora_alpha"), *rs = cJSON_GetObjectItemCaseSensitive(o, "use_rslora"),
                *tm = cJSON_GetObjectItemCaseSensitive(o, "target_modules");
    if (!cJSON_IsObject(o)) s = pp_fail(PP_E_DATA, "adapter_config.json: not a JSON object");
    else if (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA"))
        s = pp_fail(PP_E_DATA, "adapter_config.json: peft_type is not \"LORA\"");
    else if (!cJSON_IsNumber(rr) || rr->valueint < 1 || rr->valueint > 4096)
        s = pp_fail(PP_E_DATA, "adapter_config.json: \"r\" must be an integer in 1..4096");
    else if (!cJSON_IsNumber(al)) s = pp_fail(PP_E_DATA, "adapter_config.json: \"lora_alpha\" is missing");
    if (s == PP_OK) s = refuse(o, "use_dora", "DoRA");
    if (s == PP_OK) s = refuse(o, "bias", "a trained bias");
    if (s == PP_OK) s = refuse(o, "lora_bias", "a LoRA bias");
    if (s == PP_OK) s = refuse(o, "rank_pattern", "per-module ranks");
    if (s == PP_OK) s = refuse(o, "alpha_pattern", "per-module alphas");
    if (s == PP_OK) s = parse_layers(o, n_layers, on);
    if (s == PP_OK) s = refuse(o, "modules_to_save", "fully trained modules");
    if (s == PP_OK) s = refuse(o, "fan_in_fan_out", "transposed weights");
    *targets = 0;
    if (s == PP_OK) {
        const cJSON *e;
        if (cJSON_IsString(tm) && !strcmp(tm->valuestring, "all-linear")) *targets = 0x7f;
        else if (!cJSON_IsArray(tm)) s = pp_fail(PP_E_DATA, "adapter_config.json: \"target_modules\" is not a list");
        else cJSON_ArrayForEach(e, tm) {
            int t = 0;
            while (t < PP_LORA_TYPES && !(cJSON_IsString(e) && !strcmp(e->valuestring, modules[t]))) t++;
            if (t == PP_LORA_TYPES) {
                s = pp_fail(PP_E_DATA, "adapter_config.json: target module \"%.40s\" is not supported",
                            cJSON_IsString(e) ? e->valuestring : "?");
                break;
            }
            *targets |= 1u << t;
        }
    }
    if (s == PP_OK) {
        *r = rr->valueint;
        *alpha = (float)al->valuedouble;
        *rslora = cJSON_IsTrue(rs);
    }
    cJSON_Delete(o);
    return s;
}

pp_status pp_lora_load(pp_lora *l, const pp_config *cfg, const char *dir)
{
    memset(l, 0, sizeof *l);
    char *cpath = pp_path_join(dir, "adapter_config.json"), *mpath = pp_path_join(dir, "adapter_model.safetensors"), *text = NULL;
    pp_reader *r = NULL;
    pp_st_reader *st = NULL;
    size_t n;
    int rank = 0, rslora = 0;
    float alpha = 0;
    unsigned targets = 0;
    pp_status s = cpath && mpath ? pp_reader_open(&r, cpath) : pp_fail(PP_E_NOMEM, "out of memory");
    if (s == PP_OK) s = pp_read_all(r, &text, &n, 1 << 20);
    pp_reader_close(r);
    r = NULL;
    if (s != PP_OK) pp_fail_ctx(s, "adapter_config.json");
    unsigned char *on = malloc(cfg->n_layers ? (size_t)cfg->n_layers : 1);
    if (s == PP_OK && !on) s = pp_fail(PP_E_NOMEM, "out of memory");
    if (s == PP_OK) s = parse_config(text, n, &rank, &alpha, &rslora, &targets, cfg->n_layers, on);
    if (s == PP_OK) s = pp_lora_init_layers(l, cfg, rank, alpha, rslora, targets, on);
    free(on);
    if (s == PP_OK && (s = pp_reader_open(&r, mpath)) != PP_OK) pp_fail_ctx(s, "adapter_model.safetensors");
    if (s == PP_OK) s = pp_st_open(&st, r);
    /* every tensor of the file must be one of ours, in file order */
    size_t used = 0;
    void *buf = NULL;
    for (size_t i = 0; s == PP_OK && st && i < pp_st_count(st); i++) {
        const pp_tensor_info *ti = pp_st_tensor(st, i);
        int ly = -1, ty = -1, isb = -1;
        for (int L = 0; L < l->n_layers && ty < 0; L++)
            for (int t = 0; t < PP_LORA_TYPES && ty < 0; t++)
                for (int b = 0; b < 2; b++) {
                    char key[256];
                    pp_lora_key(key, sizeof key, L, t, b);
                    if (!strcmp(key, ti->name)) {
                        ly = L, ty = t, isb = b;
                        break;
                    }
                }
        if (ty < 0 || !(targets >> ty & 1) || !l->layer_on[ly]) {
            s = pp_fail(PP_E_DATA, "adapter_model.safetensors: unexpected tensor (tensor %.200s)", ti->name);
            break;
        }
        size_t k = (size_t)ly * PP_LORA_TYPES + ty;
        uint64_t rows = isb ? (uint64_t)l->out[ty] : (uint64_t)l->r, cols = isb ? (uint64_t)l->r : (uint64_t)l->in[ty];
        if (ti->ndim != 2 || ti->shape[0] != rows || ti->shape[1] != cols ||
            (ti->dtype != PP_F32 && ti->dtype != PP_F16 && ti->dtype != PP_BF16)) {
            s = pp_fail(PP_E_DATA, "adapter_model.safetensors: expected a float [%llu, %llu] (tensor %.200s)",
                        (unsigned long long)rows, (unsigned long long)cols, ti->name);
            break;
        }
        float *dst = isb ? l->B[k] : l->A[k];
        size_t cnt = (size_t)(rows * cols);
        if (ti->dtype == PP_F32) {
            s = pp_st_read(st, ti, dst);
        } else {
            free(buf);
            buf = malloc(cnt * 2);
            s = buf ? pp_st_read(st, ti, buf) : pp_fail(PP_E_NOMEM, "out of memory");
            for (size_t j = 0; s == PP_OK && j < cnt; j++)
                dst[j] = ti->dtype == PP_BF16 ? pp_bf16_to_f32(((uint16_t *)buf)[j]) : pp_f16_to_f32(((uint16_t *)buf)[j]);
        }
        used++;
    }
    free(buf);
    if (s == PP_OK) s = pp_st_finish(st);
    size_t want = 0;
    size_t n_on = 0;
    for (int i = 0; i < l->n_layers; i++) n_on += l->layer_on[i];
    for (int t = 0; t < PP_LORA_TYPES; t++) want += (targets >> t & 1) ? 2u * n_on : 0;
    if (s == PP_OK && used != want)
        s = pp_fail(PP_E_DATA, "adapter_model.safetensors: %zu tensors, the config implies %zu", used, want);
    pp_st_close(st);
    pp_reader_close(r);
    free(text);
    free(cpath);
    free(mpath);
    if (s != PP_OK) pp_lora_free(l);
    return s;
}

pp_status pp_lora_save(const pp_lora *l, const char *dir, const char *base)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return pp_fail(PP_E_CANTCREAT, "cannot create: %s", strerror(errno));
    pp_buf cfg = {0};
    pp_status s = pp_buf_adds(&cfg, "{\n  \"base_model_name_or_path\": ");
    if (s == PP_OK) s = pp_buf_json_string(&cfg, base, strlen(base));
    if (s == PP_OK)
        s = pp_buf_printf(&cfg, ",\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n  \"inference_mode\": true,\n"
                                "  \"init_lora_weights\": true,\n  \"lora_alpha\": %.9g,\n  \"lora_dropout\": %.6g,\n"
                                "  \"modules_to_save\": null,\n  \"peft_type\": \"LORA\",\n  \"r\": %d,\n  \"target_modules\": [",
                          (double)l->alpha, (double)l->dropout, l->r);
    int first = 1;
    for (int t = 0; t < PP_LORA_TYPES && s == PP_OK; t++)
        if (l->targets >> t & 1) {
            s = pp_buf_printf(&cfg, "%s\"%s\"", first ? "" : ", ", modules[t]);
            first = 0;
        }
    if (s == PP_OK && !pp_lora_all_layers(l)) {
        s = pp_buf_adds(&cfg, "],\n  \"layers_pattern\": \"layers\",\n  \"layers_to_transform\": [");
        for (int i = 0, first = 1; i < l->n_layers && s == PP_OK; i++)
            if (l->layer_on[i]) s = pp_buf_printf(&cfg, "%s%d", first ? "" : ", ", i), first = 0;
    }
    if (s == PP_OK)
        s = pp_buf_printf(&cfg, "],\n  \"task_type\": \"CAUSAL_LM\",\n  \"use_dora\": false,\n  \"use_rslora\": %s\n}\n",
                          l->rslora ? "true" : "false");
    /* the tensors, in PEFT's key order per layer and module */
    size_t n = 0, cap = 2 * (size_t)l->n_layers * PP_LORA_TYPES;
    pp_st_entry *e = calloc(cap ? cap : 1, sizeof *e);
    char (*names)[128] = calloc(cap ? cap : 1, sizeof *names);
    uint64_t (*shapes)[2] = calloc(cap ? cap : 1, sizeof *shapes);
    if (!e || !names || !shapes) s = pp_fail(PP_E_NOMEM, "out of memory");
    for (int ly = 0; ly < l->n_layers && s == PP_OK; ly++)
        for (int t = 0; t < PP_LORA_TYPES; t++) {
            if (!(l->targets >> t & 1) || !l->layer_on[ly]) continue;
            size_t k = (size_t)ly * PP_LORA_TYPES + t;
            for (int b = 0; b < 2; b++, n++) {
                pp_lora_key(names[n], sizeof names[n], ly, t, b);
                shapes[n][0] = b ? (uint64_t)l->out[t] : (uint64_t)l->r;
                shapes[n][1] = b ? (uint64_t)l->r : (uint64_t)l->in[t];
                const float *src = b ? l->B[k] : l->A[k];
                if (l->dev) src = l->params + (src - l->dev_params); /* the host copy */
                e[n] = (pp_st_entry){names[n], PP_F32, 2, shapes[n], src};
            }
        }
    char *cpath = pp_path_join(dir, "adapter_config.json"), *mpath = pp_path_join(dir, "adapter_model.safetensors");
    pp_writer *w = NULL;
    const char *kv[] = {"format", "pt"};
    if (s == PP_OK && (!cpath || !mpath)) s = pp_fail(PP_E_NOMEM, "out of memory");
    if (s == PP_OK) s = pp_writer_open(&w, mpath, 0);
    if (s == PP_OK) s = pp_st_write(w, e, n, kv, 1);
    if (s == PP_OK) {
        s = pp_writer_commit(w);
        w = NULL;
    }
    if (s == PP_OK) s = pp_writer_open(&w, cpath, 0);
    if (s == PP_OK) s = pp_write(w, cfg.p, cfg.len);
    if (s == PP_OK) {
        s = pp_writer_commit(w);
        w = NULL;
    }
    pp_writer_abort(w);
    free(e);
    free(names);
    free(shapes);
    free(cpath);
    free(mpath);
    pp_buf_free(&cfg);
    return s;
}

void pp_lora_init_weights(pp_lora *l, unsigned long long seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int ly = 0; ly < l->n_layers; ly++)
        for (int t = 0; t < PP_LORA_TYPES; t++) {
            size_t k = (size_t)ly * PP_LORA_TYPES + t;
            if (!l->A[k]) continue;
            float bound = 1.0f / sqrtf((float)l->in[t]);
            for (size_t i = 0; i < (size_t)l->r * l->in[t]; i++) {
                x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
                double u = (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
                l->A[k][i] = (float)((2 * u - 1) * bound);
            }
            memset(l->B[k], 0, (size_t)l->out[t] * l->r * sizeof(float));
        }
}

/* One device block: the weights, and their gradients after them when train. */
static pp_status to_backend(pp_lora *l, pp_backend *be, int train)
{
    if (be->ops->host_memory || l->dev) return PP_OK;
    size_t n = l->n_params ? l->n_params : 1;
    float *d = be->ops->alloc(be, (train ? 2 : 1) * n * sizeof(float));
    if (!d) return pp_fail(PP_E_NOMEM, "out of device memory for the adapter");
    be->ops->upload(be, d, l->params, l->n_params * sizeof(float));
    size_t slots = (size_t)l->n_layers * PP_LORA_TYPES;
    for (size_t k = 0; k < slots; k++) {
        if (l->A[k]) l->A[k] = d + (l->A[k] - l->params);
        if (l->B[k]) l->B[k] = d + (l->B[k] - l->params);
        if (train && l->dA[k]) l->dA[k] = d + n + (l->dA[k] - l->grads);
        if (train && l->dB[k]) l->dB[k] = d + n + (l->dB[k] - l->grads);
    }
    l->dev = be, l->dev_params = d, l->dev_grads = train ? d + n : NULL;
    return PP_OK;
}

pp_status pp_lora_to_backend(pp_lora *l, pp_backend *be) { return to_backend(l, be, 0); }
pp_status pp_lora_to_backend_train(pp_lora *l, pp_backend *be) { return to_backend(l, be, 1); }

void pp_lora_grads_to_host(pp_lora *l)
{
    if (l->dev_grads) l->dev->ops->download(l->dev, l->grads, l->dev_grads, l->n_params * sizeof(float));
}

