#include "merge.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
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

/* The base's config text: config.json of a directory, the metadata of a file. */
static pp_status base_config_text(char **text, const char *base)
{
    struct stat st;
    pp_reader *r = NULL;
    *text = NULL;
    if (stat(base, &st) == 0 && S_ISDIR(st.st_mode)) {
        char *path = pp_path_join(base, "config.json");
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

/* The shortest decimal that reads back as d. */
static void short_double(char *buf, size_t n, double d)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, n, "%.*g", digits, d);
        if (strtod(buf, NULL) == d) return;
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
    if (s == PP_OK && c->n_eos == 1) s = pp_buf_printf(b, ",\n  \"eos_token_id\": %d", c->eos_id);
    for (int i = 0; s == PP_OK && c->n_eos > 1 && i < c->n_eos; i++)
        s = pp_buf_printf(b, "%s%d%s", i ? ", " : ",\n  \"eos_token_id\": [", c->eos_ids[i], i + 1 < c->n_eos ? "" : "]");
    if (s == PP_OK && c->rope_type != PP_ROPE_DEFAULT) {
        char f[32], lo[32], hi[32];
        short_double(f, sizeof f, c->rope_factor);
        short_double(lo, sizeof lo, c->rope_low_freq);
        short_double(hi, sizeof hi, c->rope_high_freq);
        if (c->rope_type == PP_ROPE_LINEAR)
            s = pp_buf_printf(b, ",\n  \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": %s}", f);
        else
            s = pp_buf_printf(b,
                              ",\n  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %s, \"low_freq_factor\": %s, "
                              "\"high_freq_factor\": %s, \"original_max_position_embeddings\": %d}",
                              f, lo, hi, c->rope_orig_max);
    }
    if (s == PP_OK) s = pp_buf_adds(b, "\n}\n");
    return s;
}

pp_status pp_merge_config_json(char **json, const char *base, const pp_config *cfg, const char *torch_dtype)
{
    *json = NULL;
    char *text = NULL;
    pp_buf b = {0};
    pp_status s = PP_OK;
    if (!base || strcmp(base, "-") == 0) {
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

/* ------------------------------------------------------ the model directory */

static const char *dtype_word(pp_dtype d) { return d == PP_F32 ? "f32" : d == PP_F16 ? "f16" : "bf16"; }
static const char *torch_dtype(pp_dtype d) { return d == PP_F32 ? "float32" : d == PP_F16 ? "float16" : "bfloat16"; }

/* Writes n bytes to dir/name atomically; *ctx names the file on failure. */
static pp_status write_file(const char *dir, const char *name, const void *data, size_t n, char **ctx)
{
    pp_writer *w = NULL;
    free(*ctx);
    *ctx = pp_path_join(dir, name);
    if (!*ctx) return pp_fail(PP_E_NOMEM, "out of memory");
    pp_status s = pp_writer_open(&w, *ctx, 0);
    if (s == PP_OK) s = pp_write(w, data, n);
    if (s == PP_OK) return pp_writer_commit(w);
    pp_writer_abort(w);
    return s;
}

/* A file of a base directory copied when present (what transformers and
 * llama.cpp read besides the weights). */
static pp_status copy_side_file(const char *base, const char *out, const char *name, char **ctx)
{
    char *src = pp_path_join(base, name), *data = NULL;
    pp_reader *r = NULL;
    size_t n = 0;
    struct stat st;
    pp_status s = PP_OK;
    if (!src) return pp_fail(PP_E_NOMEM, "out of memory");
    if (stat(src, &st) == 0 && S_ISREG(st.st_mode)) {
        free(*ctx);
        *ctx = src;
        src = NULL;
        s = pp_reader_open(&r, *ctx);
        if (s == PP_OK) s = pp_read_all(r, &data, &n, 1u << 30);
        pp_reader_close(r);
        if (s == PP_OK) s = write_file(out, name, data, n, ctx);
    }
    free(src);
    free(data);
    return s;
}

/* Removes weight files of an earlier run that this one did not write, as
 * transformers' save_pretrained does: a stale index would name old shards. */
static void remove_stale(const char *dir, char **keep, size_t n_keep)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (strcmp(nm, "model.safetensors") && strcmp(nm, "model.safetensors.index.json") &&
            fnmatch("model-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].safetensors", nm, 0))
            continue;
        int ours = 0;
        for (size_t i = 0; i < n_keep && !ours; i++) ours = !strcmp(keep[i], nm);
        if (ours) continue;
        char *p = pp_path_join(dir, nm);
        if (p && unlink(p) == 0) pp_cli_say(2, "%s: removed (left by an earlier run)", p);
        free(p);
    }
    closedir(d);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const pp_merge_tensor *const *)a)->name, (*(const pp_merge_tensor *const *)b)->name);
}

pp_status pp_merge_write(const pp_llama *m, const pp_lora *l, const char *base, const char *outdir, pp_dtype dtype,
                         uint64_t max_shard, char **fail_path)
{
    pp_merge_tensor *t = NULL, **sorted = NULL;
    pp_writer **w = NULL;
    char **files = NULL, *cfg_json = NULL, *ctx = NULL;
    float *vals = NULL, *delta = NULL, *absmax = NULL;
    uint8_t *obuf = NULL, *q = NULL;
    pp_buf idx = {0};
    size_t n_t = 0, n_files = 0, n_shards = 0;
    const char *fctx = outdir;
    pp_status s = PP_OK;
    struct stat st;
    double t0 = pp_cli_now();
    *fail_path = NULL;

    /* The plan: tensors, files. */
    size_t esize = pp_dtype_size(dtype);
    if ((s = pp_merge_list(&t, &n_t, m, l)) != PP_OK) goto fail;
    n_shards = pp_merge_shard(t, n_t, esize, max_shard);
    size_t big = 0, big_adapted = 0, blocks = 1;
    uint64_t total_size = 0, total_params = 0;
    for (size_t i = 0; i < n_t; i++) {
        if (t[i].nelem > big) big = (size_t)t[i].nelem;
        if (t[i].type >= 0 && t[i].nelem > big_adapted) big_adapted = (size_t)t[i].nelem;
        if (t[i].type >= 0) { /* absmax of the requantization: the base's blocksize, or 64 */
            size_t nb = pp_quant_blocks((size_t)t[i].nelem, t[i].w->type >= PP_W_NF4 ? t[i].w->blocksize : 64);
            if (nb > blocks) blocks = nb;
        }
        total_size += t[i].nelem * esize;
        total_params += t[i].nelem;
    }
    vals = malloc(big * sizeof *vals + 4);
    obuf = malloc(big * esize + 4);
    delta = malloc(big_adapted * sizeof *delta + 4);
    q = malloc(big_adapted + 4);
    absmax = malloc(blocks * sizeof *absmax);
    w = calloc(n_shards, sizeof *w);
    files = calloc(n_shards + 1, sizeof *files);
    sorted = calloc(n_t, sizeof *sorted);
    if (!vals || !obuf || !delta || !q || !absmax || !w || !files || !sorted) {
        s = pp_fail(PP_E_NOMEM, "out of memory (%zu MiB of scratch)", (big * (4 + esize) + big_adapted * 9) >> 20);
        goto fail;
    }
    pp_cli_say(2, "output: %s, %zu tensors in %zu file%s, %.2f MiB; scratch %.2f MiB", dtype_word(dtype), n_t,
               n_shards, n_shards == 1 ? "" : "s", total_size / 1048576.0, (big * (4 + esize) + big_adapted * 9) / 1048576.0);

    /* Every file stays a temporary until all of them are complete. */
    for (size_t k = 0; k < n_shards; k++) {
        char name[64];
        if (n_shards == 1) snprintf(name, sizeof name, "model.safetensors");
        else snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, n_shards);
        if (!(files[n_files++] = strdup(name)) || !(ctx = pp_path_join(outdir, name))) {
            s = pp_fail(PP_E_NOMEM, "out of memory");
            goto fail;
        }
        fctx = ctx;
        size_t cnt = 0;
        pp_st_entry *e = calloc(n_t, sizeof *e);
        if (!e) {
            s = pp_fail(PP_E_NOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n_t; i++)
            if (t[i].shard == (int)k) e[cnt++] = (pp_st_entry){t[i].name, dtype, t[i].ndim, t[i].shape, NULL};
        const char *kv[] = {"format", "pt"};
        s = pp_writer_open(&w[k], ctx, 0);
        if (s == PP_OK) s = pp_st_write_header(w[k], e, cnt, kv, 1);
        free(e);
        free(ctx);
        ctx = NULL;
        fctx = outdir;
        if (s != PP_OK) goto fail;
    }

    /* The tensors, one at a time, each into its file in list order. */
    const char *qname = "nf4";
    int n_adapted = 0, n_lost = 0, worst = -1;
    double worst_ratio = 0;
    if (l) pp_cli_say(2, "%-44s %11s %11s %11s %11s", "module", "|s*B*A|_F", "|W'|_F", "requant_F", "rounding_F");
    for (size_t i = 0; i < n_t; i++) {
        const pp_merge_tensor *e = &t[i];
        size_t n = (size_t)e->nelem;
        const void *bytes = obuf;
        int kept = e->type < 0 && e->ndim == 2 &&
                   ((dtype == PP_F32 && e->w->type == PP_W_F32) || (dtype == PP_BF16 && e->w->type == PP_W_BF16) ||
                    (dtype == PP_F16 && e->w->type == PP_W_F16));
        if (kept) {
            bytes = e->w->data; /* byte for byte */
        } else if (e->type < 0 || !l) {
            pp_weight_widen(vals, e->w);
            pp_narrow(obuf, NULL, vals, dtype, n);
        } else {
            pp_merge_tensor_values(vals, delta, e, l);
            double dn = pp_frobenius(delta, n), wn = pp_frobenius(vals, n);
            pp_narrow(obuf, delta, vals, dtype, n); /* delta: W' as written */
            double rnd = 0;
            for (size_t k = 0; k < n; k++) rnd += ((double)vals[k] - delta[k]) * ((double)vals[k] - delta[k]);
            pp_wtype qt = e->w->type >= PP_W_NF4 ? e->w->type : PP_W_NF4;
            int bs = e->w->type >= PP_W_NF4 ? e->w->blocksize : 64;
            qname = qt == PP_W_FP4 ? "fp4" : qt == PP_W_INT8 ? "int8" : "nf4";
            double rq = pp_requant_error(delta, n, qt, bs, vals, q, absmax);
            n_adapted++;
            if (dn < rq) {
                n_lost++;
                if (worst < 0 || dn / rq < worst_ratio) worst = (int)i, worst_ratio = dn / rq;
            }
            pp_cli_say(2, "%-44s %11.4e %11.4e %11.4e %11.4e%s", e->name, dn, wn, rq, sqrt(rnd),
                       dn < rq ? "  below requant" : "");
        }
        if ((s = pp_write(w[e->shard], bytes, n * esize)) != PP_OK) {
            fctx = files[e->shard];
            goto fail;
        }
    }

    /* The index (sorted keys, as transformers' json.dumps(sort_keys=True)). */
    if (n_shards > 1) {
        for (size_t i = 0; i < n_t; i++) sorted[i] = &t[i];
        qsort(sorted, n_t, sizeof *sorted, by_name);
        s = pp_buf_printf(&idx, "{\n  \"metadata\": {\n    \"total_parameters\": %llu,\n    \"total_size\": %llu\n  },\n"
                                "  \"weight_map\": {\n", (unsigned long long)total_params, (unsigned long long)total_size);
        for (size_t i = 0; i < n_t && s == PP_OK; i++)
            s = pp_buf_printf(&idx, "    \"%s\": \"%s\"%s\n", sorted[i]->name, files[sorted[i]->shard], i + 1 < n_t ? "," : "");
        if (s == PP_OK) s = pp_buf_adds(&idx, "  }\n}\n");
        if (s != PP_OK) goto fail;
    }
    if ((s = pp_merge_config_json(&cfg_json, base, &m->cfg, torch_dtype(dtype))) != PP_OK) {
        fctx = base;
        goto fail;
    }

    /* Commit: the weights, the index, the tokenizer and side files, config.json last. */
    for (size_t k = 0; k < n_shards; k++) {
        s = pp_writer_commit(w[k]);
        w[k] = NULL;
        if (s != PP_OK) {
            fctx = files[k];
            goto fail;
        }
    }
    if (n_shards > 1) {
        if (!(files[n_files++] = strdup("model.safetensors.index.json"))) {
            s = pp_fail(PP_E_NOMEM, "out of memory");
            goto fail;
        }
        if ((s = write_file(outdir, "model.safetensors.index.json", idx.p, idx.len, &ctx)) != PP_OK) goto fail_ctx;
    }
    if (m->tok.data && (s = write_file(outdir, pp_tokfiles_name(&m->tok), m->tok.data, m->tok.n, &ctx)) != PP_OK)
        goto fail_ctx;
    if (m->tok.config && (s = write_file(outdir, "tokenizer_config.json", m->tok.config, m->tok.nconfig, &ctx)) != PP_OK)
        goto fail_ctx;
    if (!(base && strcmp(base, "-") && stat(base, &st) == 0 && S_ISDIR(st.st_mode)) && m->cfg.n_eos > 0) {
        /* a model file's or stream's base: generate() stops at the eos ids it carried */
        pp_buf g = {0};
        s = pp_buf_printf(&g, "{\n  \"bos_token_id\": %d,\n  \"eos_token_id\": [", m->cfg.bos_id);
        for (int k = 0; k < m->cfg.n_eos && s == PP_OK; k++) s = pp_buf_printf(&g, k ? ", %d" : "%d", m->cfg.eos_ids[k]);
        if (s == PP_OK) s = pp_buf_adds(&g, "]\n}\n");
        if (s == PP_OK) s = write_file(outdir, "generation_config.json", g.p, g.len, &ctx);
        pp_buf_free(&g);
        if (s != PP_OK) goto fail_ctx;
    }
    if (base && strcmp(base, "-") && stat(base, &st) == 0 && S_ISDIR(st.st_mode)) {
        static const char *const side[] = {"generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                           "special_tokens_map.json", "added_tokens.json"};
        for (size_t i = 0; i < sizeof side / sizeof *side; i++)
            if ((s = copy_side_file(base, outdir, side[i], &ctx)) != PP_OK) goto fail_ctx;
    }
    if ((s = write_file(outdir, "config.json", cfg_json, strlen(cfg_json), &ctx)) != PP_OK) goto fail_ctx;
    remove_stale(outdir, files, n_files);

    if (n_lost > 0)
        pp_cli_say(1, "warning: in %d of %d adapted modules |s*B*A| is below the error of quantizing the merged weight "
                      "to %s again (worst: %s, %.2g times it): pp-quantize on this output would lose the adapter there%s",
                   n_lost, n_adapted, qname, t[worst].name, worst_ratio, pp_verbosity >= 2 ? "" : " (-v lists the modules)");
    if (l)
        pp_cli_say(1, "merged %d modules (r %d, scale %g) into %s: %s, %s, %zu file%s, %.2f MiB, %.1f s", n_adapted, l->r,
                   (double)l->scale, base ? pp_display_name(base) : "the model", outdir, dtype_word(dtype), n_shards,
                   n_shards == 1 ? "" : "s", total_size / 1048576.0, pp_cli_now() - t0);
    else
        pp_cli_say(1, "wrote %s: %s, %zu file%s, %.2f MiB, %.1f s", outdir, dtype_word(dtype), n_shards,
                   n_shards == 1 ? "" : "s", total_size / 1048576.0, pp_cli_now() - t0);
    goto out;
fail_ctx:
    fctx = ctx;
fail:
    if (fctx) *fail_path = strdup(fctx);
out:
    for (size_t k = 0; w && k < n_shards; k++) pp_writer_abort(w[k]);
    for (size_t k = 0; files && k < n_files; k++) free(files[k]);
    free(files);
    free(w);
    free(t);
    free(sorted);
    free(vals);
    free(obuf);
    free(delta);
    free(q);
    free(absmax);
    free(cfg_json);
    free(ctx);
    pp_buf_free(&idx);
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
    char *path = pp_path_join(dir, "pp-train.json"), *text = NULL;
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
