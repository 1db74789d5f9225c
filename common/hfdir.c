#include "hfdir.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONFIG_MAX (1u << 20)
#define TOKENIZER_MAX (64u << 20)

typedef struct shard {
    char *path;
    pp_reader *r;
    pp_st_reader *st;
} shard;

typedef struct entry {
    const pp_tensor_info *info;
    size_t shard;
} entry;

struct pp_hfdir {
    char *gen_json;         /* generation_config.json, or NULL */
    char *dir;              /* the directory, or the pp model file */
    int is_file;
    pp_tokfiles tok;        /* a pp model file's tokenizer */
    char *config_json;
    pp_config cfg;
    shard *shards;
    size_t n_shards;
    entry *t;               /* (n) in reading order */
    size_t n;
};

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* Prefixes the current message with the file's name within the directory. */
static pp_status in_file(pp_status s, const char *path)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", pp_errmsg());
    return pp_fail(s, "%s: %s", base_name(path), msg);
}

static pp_status slurp_file(const char *path, size_t max, char **data, size_t *n)
{
    pp_reader *r;
    pp_status s = pp_reader_open(&r, path);
    if (s == PP_OK) s = pp_read_all(r, data, n, max);
    pp_reader_close(r);
    return s == PP_OK ? s : in_file(s, path);
}

char **pp_llama_weight_names(const pp_config *c, size_t *n)
{
    static const char *const per_layer[] = {
        "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    };
    size_t total = 2 + (size_t)c->n_layers * 9 + !c->tie_embeddings, k = 0;
    char **names = calloc(total, sizeof *names);
    if (!names) return NULL;
    names[k++] = strdup("model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++)
        for (int j = 0; j < 9; j++) {
            char buf[128];
            snprintf(buf, sizeof buf, "model.layers.%d.%s", l, per_layer[j]);
            names[k++] = strdup(buf);
        }
    names[k++] = strdup("model.norm.weight");
    if (!c->tie_embeddings) names[k++] = strdup("lm_head.weight");
    for (size_t i = 0; i < k; i++)
        if (!names[i]) {
            pp_names_free(names, k);
            return NULL;
        }
    *n = k;
    return names;
}

void pp_names_free(char **names, size_t n)
{
    if (!names) return;
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

int pp_llama_weight_shape(const pp_config *c, const char *name, uint64_t s[2])
{
    uint64_t d = (uint64_t)c->dim, q = (uint64_t)c->n_heads * c->head_dim, kv = (uint64_t)c->n_kv_heads * c->head_dim,
             h = (uint64_t)c->hidden, v = (uint64_t)c->vocab;
    const char *p = name;
    if (!strcmp(p, "model.embed_tokens.weight") || !strcmp(p, "lm_head.weight")) {
        s[0] = v, s[1] = d;
        return 2;
    }
    if (!strcmp(p, "model.norm.weight")) {
        s[0] = d;
        return 1;
    }
    int layer, used = 0;
    if (sscanf(p, "model.layers.%d.%n", &layer, &used) != 1 || used == 0 || layer < 0 || layer >= c->n_layers) return 0;
    p += used;
    if (!strcmp(p, "input_layernorm.weight") || !strcmp(p, "post_attention_layernorm.weight")) s[0] = d;
    else if (!strcmp(p, "self_attn.q_proj.weight")) s[0] = q, s[1] = d;
    else if (!strcmp(p, "self_attn.k_proj.weight") || !strcmp(p, "self_attn.v_proj.weight")) s[0] = kv, s[1] = d;
    else if (!strcmp(p, "self_attn.o_proj.weight")) s[0] = d, s[1] = q;
    else if (!strcmp(p, "mlp.gate_proj.weight") || !strcmp(p, "mlp.up_proj.weight")) s[0] = h, s[1] = d;
    else if (!strcmp(p, "mlp.down_proj.weight")) s[0] = d, s[1] = h;
    else return 0;
    return strstr(p, "layernorm") ? 1 : 2;
}

/* The shard files: index.json's weight_map values, or model.safetensors. */
static pp_status find_shards(pp_hfdir *h, cJSON **index)
{
    *index = NULL;
    char *ipath = pp_path_join(h->dir, "model.safetensors.index.json");
    if (!ipath) return pp_fail(PP_E_NOMEM, "out of memory");
    struct stat st;
    if (stat(ipath, &st) != 0) {
        free(ipath);
        h->shards = calloc(1, sizeof *h->shards);
        if (!h->shards || !(h->shards[0].path = pp_path_join(h->dir, "model.safetensors"))) return pp_fail(PP_E_NOMEM, "out of memory");
        h->n_shards = 1;
        return PP_OK;
    }
    char *text;
    size_t n;
    pp_status s = slurp_file(ipath, 64u << 20, &text, &n);
    if (s == PP_OK) {
        *index = cJSON_ParseWithLength(text, n);
        free(text);
        const cJSON *wm = cJSON_GetObjectItemCaseSensitive(*index, "weight_map");
        if (!cJSON_IsObject(wm)) {
            s = pp_fail(PP_E_DATA, "model.safetensors.index.json: no \"weight_map\" object");
        } else {
            size_t cap = (size_t)cJSON_GetArraySize(wm) + 1;
            h->shards = calloc(cap, sizeof *h->shards);
            if (!h->shards) s = pp_fail(PP_E_NOMEM, "out of memory");
            const cJSON *e;
            cJSON_ArrayForEach(e, wm) {
                if (s != PP_OK) break;
                if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || e->valuestring[0] == '.') {
                    s = pp_fail(PP_E_DATA, "model.safetensors.index.json: weight_map[\"%.80s\"] is not a file name in the directory", e->string);
                    break;
                }
                size_t k = 0;
                while (k < h->n_shards && strcmp(base_name(h->shards[k].path), e->valuestring)) k++;
                if (k == h->n_shards && !(h->shards[h->n_shards++].path = pp_path_join(h->dir, e->valuestring)))
                    s = pp_fail(PP_E_NOMEM, "out of memory");
            }
        }
    }
    free(ipath);
    return s;
}

static int by_file_order(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->shard != y->shard) return x->shard < y->shard ? -1 : 1;
    return x->info->begin < y->info->begin ? -1 : x->info->begin > y->info->begin;
}

static pp_status index_weights(pp_hfdir *h, const cJSON *index);

static pp_status open_dir(pp_hfdir *h)
{
    char *cpath = pp_path_join(h->dir, "config.json");
    if (!cpath) return pp_fail(PP_E_NOMEM, "out of memory");
    size_t n;
    pp_status s = slurp_file(cpath, CONFIG_MAX, &h->config_json, &n);
    if (s == PP_OK) {
        s = pp_config_parse(&h->cfg, h->config_json, n);
    }
    free(cpath);
    if (s != PP_OK) return s;
    /* generate() stops at generation_config.json's eos ids (Llama 3: several) */
    char *gpath = pp_path_join(h->dir, "generation_config.json"), *gen = NULL;
    struct stat gst;
    if (!gpath) return pp_fail(PP_E_NOMEM, "out of memory");
    if (stat(gpath, &gst) == 0 && (s = slurp_file(gpath, CONFIG_MAX, &gen, &n)) == PP_OK)
        s = pp_config_generation(&h->cfg, gen, n);
    h->gen_json = gen; /* pp-quantize carries it */
    free(gpath);
    if (s != PP_OK) return s;

    cJSON *index;
    PP_TRY(find_shards(h, &index));
    for (size_t i = 0; i < h->n_shards && s == PP_OK; i++) {
        shard *sh = &h->shards[i];
        s = pp_reader_open(&sh->r, sh->path);
        if (s == PP_OK) s = pp_st_open(&sh->st, sh->r);
        if (s != PP_OK) s = in_file(s, sh->path);
    }
    if (s == PP_OK) s = index_weights(h, index);
    cJSON_Delete(index);
    return s;
}

/* Finds each weight the config implies in the shards (index: the shard
 * index, or NULL) and checks its shape and dtype; h->t gets them in file order. */
static pp_status index_weights(pp_hfdir *h, const cJSON *index)
{
    pp_status s = PP_OK;
    size_t nn = 0;
    char **names = s == PP_OK ? pp_llama_weight_names(&h->cfg, &nn) : NULL;
    if (s == PP_OK && !names) s = pp_fail(PP_E_NOMEM, "out of memory");
    if (s == PP_OK && !(h->t = calloc(nn, sizeof *h->t))) s = pp_fail(PP_E_NOMEM, "out of memory");
    const cJSON *wm = index ? cJSON_GetObjectItemCaseSensitive(index, "weight_map") : NULL;
    for (size_t k = 0; k < nn && s == PP_OK; k++) {
        const pp_tensor_info *found = NULL;
        size_t where = 0;
        for (size_t i = 0; i < h->n_shards; i++) {
            const pp_tensor_info *ti = pp_st_find(h->shards[i].st, names[k]);
            if (ti && found) {
                s = pp_fail(PP_E_DATA, "tensor in two shards, %s and %s (tensor %s)", h->shards[where].path,
                            h->shards[i].path, names[k]);
                break;
            }
            if (ti) found = ti, where = i;
        }
        if (s != PP_OK) break;
        if (!found) {
            s = pp_fail(PP_E_DATA, "tensor missing (tensor %s)", names[k]);
            break;
        }
        const cJSON *want = wm ? cJSON_GetObjectItemCaseSensitive(wm, names[k]) : NULL;
        if (wm && (!cJSON_IsString(want) || strcmp(base_name(h->shards[where].path), want->valuestring))) {
            s = pp_fail(PP_E_DATA, "%s: the index does not list the shard holding it (tensor %s)", base_name(h->shards[where].path), names[k]);
            break;
        }
        uint64_t shape[2];
        int nd = pp_llama_weight_shape(&h->cfg, names[k], shape);
        if (found->ndim != nd || found->shape[0] != shape[0] || (nd == 2 && found->shape[1] != shape[1])) {
            s = pp_fail(PP_E_DATA, "%s: shape [%llu%s%llu] where config.json implies [%llu%s%llu] (tensor %s)",
                        base_name(h->shards[where].path), (unsigned long long)found->shape[0], found->ndim > 1 ? ", " : "",
                        found->ndim > 1 ? (unsigned long long)found->shape[1] : 0ULL, (unsigned long long)shape[0],
                        nd > 1 ? ", " : "", nd > 1 ? (unsigned long long)shape[1] : 0ULL, names[k]);
            break;
        }
        if (found->dtype != PP_F32 && found->dtype != PP_F16 && found->dtype != PP_BF16) {
            s = pp_fail(PP_E_DATA, "%s: dtype %s, expected F32, F16 or BF16 (tensor %s)", base_name(h->shards[where].path),
                        pp_dtype_name(found->dtype), names[k]);
            break;
        }
        h->t[h->n++] = (entry){found, where};
    }
    pp_names_free(names, nn);
    if (s == PP_OK) qsort(h->t, h->n, sizeof *h->t, by_file_order);
    return s;
}

/* An unquantized pp model file as the one shard: the config from its
 * metadata, the tokenizer from a first pass over the file (it is stored
 * after the weights, and the second pass reads the weights as a stream). */
static pp_status open_file(pp_hfdir *h)
{
    h->is_file = 1;
    h->shards = calloc(1, sizeof *h->shards);
    if (!h->shards || !(h->shards[0].path = strdup(h->dir))) return pp_fail(PP_E_NOMEM, "out of memory");
    h->n_shards = 1;
    pp_reader *r = NULL;
    pp_st_reader *st = NULL;
    const char *cfg = NULL;
    pp_status s = pp_reader_open(&r, h->dir);
    if (s == PP_OK && (s = pp_st_open(&st, r)) != PP_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pp_errmsg());
        s = pp_fail(s, "neither a model directory nor a pp model file (%s)", msg);
    }
    if (s == PP_OK) s = pp_model_file_config(st, &cfg);
    const char *quant = s == PP_OK ? pp_st_meta(st, "quant.type") : NULL;
    if (s == PP_OK && (!quant || (strcmp(quant, "bf16") != 0 && strcmp(quant, "f16") != 0)))
        s = pp_fail(PP_E_DATA, "the model file is quantized (%.20s); quantize from the unquantized model, not again",
                    quant ? quant : "?");
    if (s == PP_OK && !(h->config_json = strdup(cfg))) s = pp_fail(PP_E_NOMEM, "out of memory");
    if (s == PP_OK) s = pp_config_parse(&h->cfg, h->config_json, strlen(h->config_json));
    if (s == PP_OK) s = pp_model_file_generation(st, &h->cfg, &h->gen_json);
    if (s == PP_OK && pp_tokfiles_from_st(&h->tok, st) != PP_OK) pp_tokfiles_free(&h->tok); /* none: runs on ids */
    pp_st_close(st);
    pp_reader_close(r);
    if (s == PP_OK) s = pp_reader_open(&h->shards[0].r, h->dir);
    if (s == PP_OK) s = pp_st_open(&h->shards[0].st, h->shards[0].r);
    if (s == PP_OK) s = index_weights(h, NULL);
    return s;
}

const char *pp_hfdir_generation_json(const pp_hfdir *h) { return h->gen_json; }

pp_status pp_model_file_generation(const pp_st_reader *st, pp_config *c, char **copy)
{
    const char *gen = pp_st_meta(st, "generation_config");
    if (!gen) return PP_OK;
    PP_TRY(pp_config_generation(c, gen, strlen(gen)));
    if (copy && !(*copy = strdup(gen))) return pp_fail(PP_E_NOMEM, "out of memory");
    return PP_OK;
}

pp_status pp_model_file_config(const pp_st_reader *st, const char **config)
{
    const char *kind = pp_st_meta(st, "pp.kind"), *ver = pp_st_meta(st, "pp.version");
    *config = pp_st_meta(st, "config");
    if (!kind || strcmp(kind, "model") != 0)
        return pp_fail(PP_E_DATA, "not a pp model file (metadata pp.kind is \"%.40s\")", kind ? kind : "");
    if (!ver || strcmp(ver, "1") != 0) return pp_fail(PP_E_DATA, "model file version \"%.20s\", this pp reads 1", ver ? ver : "");
    if (!*config) return pp_fail(PP_E_DATA, "no config in the metadata");
    return PP_OK;
}

pp_status pp_hfdir_open(pp_hfdir **out, const char *dir)
{
    *out = NULL;
    struct stat st;
    if (strcmp(dir, "-") != 0 && stat(dir, &st) != 0) return pp_fail(PP_E_NOINPUT, "%s", strerror(errno));
    pp_hfdir *h = calloc(1, sizeof *h);
    if (!h || !(h->dir = strdup(dir))) {
        free(h);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    if (!strcmp(dir, "-")) {
        pp_hfdir_close(h);
        return pp_fail(PP_E_USAGE, "a model is read twice: give a file, not standard input");
    }
    pp_status s = S_ISDIR(st.st_mode) ? open_dir(h) : open_file(h);
    if (s != PP_OK) {
        pp_hfdir_close(h);
        return s;
    }
    *out = h;
    return PP_OK;
}

void pp_hfdir_close(pp_hfdir *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->n_shards; i++) {
        pp_st_close(h->shards[i].st);
        pp_reader_close(h->shards[i].r);
        free(h->shards[i].path);
    }
    free(h->shards);
    free(h->t);
    free(h->config_json);
    pp_tokfiles_free(&h->tok);
    free(h->gen_json);
    free(h->dir);
    free(h);
}

const pp_config *pp_hfdir_config(const pp_hfdir *h) { return &h->cfg; }
const char *pp_hfdir_config_json(const pp_hfdir *h) { return h->config_json; }
size_t pp_hfdir_count(const pp_hfdir *h) { return h->n; }
const char *pp_hfdir_shard_path(const pp_hfdir *h, size_t shard) { return h->shards[shard].path; }

const pp_tensor_info *pp_hfdir_tensor(const pp_hfdir *h, size_t i, size_t *shard)
{
    if (shard) *shard = h->t[i].shard;
    return h->t[i].info;
}

pp_status pp_hfdir_read(pp_hfdir *h, size_t i, void *dst)
{
    const entry *e = &h->t[i];
    pp_status s = pp_st_read(h->shards[e->shard].st, e->info, dst);
    return s == PP_OK ? s : in_file(s, h->shards[e->shard].path);
}

pp_status pp_hfdir_finish(pp_hfdir *h)
{
    for (size_t i = 0; i < h->n_shards; i++) {
        pp_status s = pp_st_finish(h->shards[i].st);
        if (s != PP_OK) return in_file(s, h->shards[i].path);
    }
    return PP_OK;
}

const char *pp_tokfiles_name(const pp_tokfiles *f) { return f->json ? "tokenizer.json" : "tokenizer.model"; }

void pp_tokfiles_free(pp_tokfiles *f)
{
    free(f->data);
    free(f->config);
    memset(f, 0, sizeof *f);
}

static pp_status dup_bytes(char **out, const char *p, size_t n)
{
    if (!(*out = malloc(n + 1))) return pp_fail(PP_E_NOMEM, "out of memory");
    memcpy(*out, p, n);
    (*out)[n] = 0;
    return PP_OK;
}

pp_status pp_tokfiles_from_dir(pp_tokfiles *f, const char *dir)
{
    memset(f, 0, sizeof *f);
    static const char *const names[] = {"tokenizer.json", "tokenizer.model"};
    pp_status s = PP_E_NOINPUT;
    for (int k = 0; k < 2 && s == PP_E_NOINPUT; k++) {
        char *path = pp_path_join(dir, names[k]);
        if (!path) return pp_fail(PP_E_NOMEM, "out of memory");
        struct stat sb;
        s = stat(path, &sb) == 0 ? slurp_file(path, TOKENIZER_MAX, &f->data, &f->n) : PP_E_NOINPUT;
        f->json = k == 0;
        free(path);
    }
    if (s == PP_E_NOINPUT) return pp_fail(s, "no tokenizer.json or tokenizer.model in this directory");
    char *path = s == PP_OK ? pp_path_join(dir, "tokenizer_config.json") : NULL;
    struct stat sb;
    if (path && stat(path, &sb) == 0) s = slurp_file(path, TOKENIZER_MAX, &f->config, &f->nconfig);
    free(path);
    if (s != PP_OK) pp_tokfiles_free(f);
    return s;
}

pp_status pp_tokfiles_from_st(pp_tokfiles *f, pp_st_reader *st)
{
    memset(f, 0, sizeof *f);
    static const char *const names[] = {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"};
    const pp_tensor_info *t[3];
    for (int k = 0; k < 3; k++) {
        t[k] = pp_st_find(st, names[k]);
        if (t[k] && (t[k]->dtype != PP_U8 || t[k]->end - t[k]->begin > TOKENIZER_MAX))
            return pp_fail(PP_E_DATA, "tensor %s is not a file of bytes", names[k]);
    }
    if (!t[0] && !t[1]) return pp_fail(PP_E_NOINPUT, "no tokenizer.json or tokenizer.model in the model file");
    /* read in file order: the file may be a stream */
    pp_status s = PP_OK;
    for (size_t i = 0; i < pp_st_count(st) && s == PP_OK; i++) {
        const pp_tensor_info *x = pp_st_tensor(st, i);
        int k = x == t[0] ? 0 : x == t[1] ? 1 : x == t[2] ? 2 : -1;
        if (k < 0 || (k == 1 && t[0])) continue;
        size_t n = (size_t)(x->end - x->begin);
        char *buf = malloc(n + 1);
        if (!buf) {
            s = pp_fail(PP_E_NOMEM, "out of memory");
            break;
        }
        s = pp_st_read(st, x, buf);
        buf[n] = 0;
        if (k == 2) f->config = buf, f->nconfig = n;
        else f->data = buf, f->n = n, f->json = k == 0;
    }
    if (s != PP_OK) pp_tokfiles_free(f);
    return s;
}

pp_status pp_hfdir_tokenizer(const pp_hfdir *h, pp_tokfiles *f)
{
    memset(f, 0, sizeof *f);
    if (!h->is_file) return pp_tokfiles_from_dir(f, h->dir);
    if (!h->tok.data) return pp_fail(PP_E_NOINPUT, "no tokenizer in the model file");
    f->json = h->tok.json;
    PP_TRY(dup_bytes(&f->data, h->tok.data, h->tok.n));
    f->n = h->tok.n;
    if (h->tok.config) {
        pp_status s = dup_bytes(&f->config, h->tok.config, h->tok.nconfig);
        if (s != PP_OK) {
            pp_tokfiles_free(f);
            return s;
        }
        f->nconfig = h->tok.nconfig;
    }
    return PP_OK;
}
