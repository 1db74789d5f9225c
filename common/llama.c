#include "llama.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hfdir.h"
#include "quant.h"
#include "safetensors.h"
#include "sha256.h"
#include "stream.h"
#include "text.h"

/* ------------------------------------------------------------------ loading */

/* A tensor as read from the source, wherever it came from. */
typedef struct src {
    const char *name;
    pp_dtype dtype;
    int ndim;
    uint64_t shape[PP_ST_MAX_DIMS];
    size_t nbytes;
    const void *data;       /* in m->mem, 64-byte aligned */
} src;

typedef struct srcs {
    src *t;
    size_t n;
} srcs;

static const src *get(const srcs *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0) return &s->t[i];
    return NULL;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The quantization of weight name in a pp model file, from its quant-state
 * JSON; *t stays -1 for a plain tensor. */
static pp_status quant_state(const srcs *s, const char *name, int *t, int *blocksize, float *offset, int *nested)
{
    static const char *const suffix[] = {".quant_state.bitsandbytes__nf4", ".quant_state.bitsandbytes__fp4",
                                         ".quant_state.pp__int8"};
    *t = -1;
    for (int k = 0; k < 3; k++) {
        char key[512];
        snprintf(key, sizeof key, "%s%s", name, suffix[k]);
        const src *js = get(s, key);
        if (!js) continue;
        cJSON *o = cJSON_ParseWithLength(js->data, (size_t)js->shape[0]);
        const cJSON *bs = cJSON_GetObjectItemCaseSensitive(o, "blocksize");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "nested_offset");
        pp_status st = PP_OK;
        if (!cJSON_IsNumber(bs) || bs->valueint < 2 || bs->valueint > (1 << 20))
            st = pp_fail(PP_E_DATA, "quant_state without a valid blocksize (tensor %s)", key);
        else {
            *t = k == 0 ? PP_W_NF4 : k == 1 ? PP_W_FP4 : PP_W_INT8;
            *blocksize = bs->valueint;
            *nested = cJSON_IsNumber(off);
            *offset = *nested ? (float)off->valuedouble : 0.0f;
        }
        cJSON_Delete(o);
        return st;
    }
    return PP_OK;
}

/* Fills w from the source tensor name with the shape cfg implies; norms are
 * widened to fp32 into *f, fp32 absmax values copied there; double
 * quantization keeps its codes where they are read (w->absq), its nested
 * absmax in *f, and resolves the absmax values into *a (the host's copy:
 * pp_llama_to_backend leaves it behind). */
static pp_status take(const pp_config *cfg, const srcs *s, const char *name, pp_weight *w, float **f, float **a)
{
    uint64_t shape[2];
    int nd = pp_llama_weight_shape(cfg, name, shape);
    const src *t = get(s, name);
    if (!t) return pp_fail(PP_E_DATA, "tensor missing (tensor %s)", name);
    memset(w, 0, sizeof *w);
    w->rows = nd == 2 ? (int)shape[0] : 1;
    w->cols = nd == 2 ? (int)shape[1] : (int)shape[0];
    size_t n = (size_t)w->rows * (size_t)w->cols;
    int qt, bs, nested;
    float offset;
    PP_TRY(quant_state(s, name, &qt, &bs, &offset, &nested));
    if (qt >= 0) {
        char key[512];
        w->type = (pp_wtype)qt;
        w->blocksize = bs;
        w->data = t->data;
        size_t nb = pp_quant_blocks(n, bs), want = qt == PP_W_INT8 ? n : (n + 1) / 2;
        if ((qt == PP_W_INT8 ? t->dtype != PP_I8 : t->dtype != PP_U8) || t->nbytes != want)
            return pp_fail(PP_E_DATA, "quantized data of %zu bytes, the shape needs %zu (tensor %s)", t->nbytes, want, name);
        snprintf(key, sizeof key, "%s.absmax", name);
        const src *am = get(s, key);
        if (!am) return pp_fail(PP_E_DATA, "tensor missing (tensor %s)", key);
        if (!nested) {
            if (am->dtype != PP_F32 || am->shape[0] != nb) return pp_fail(PP_E_DATA, "expected F32 [%zu] (tensor %s)", nb, key);
            memcpy(*f, am->data, nb * 4);
        } else {
            snprintf(key, sizeof key, "%s.nested_absmax", name);
            const src *na = get(s, key);
            size_t nn = pp_quant_blocks(nb, PP_NESTED_BLOCKSIZE);
            if (am->dtype != PP_U8 || am->shape[0] != nb) return pp_fail(PP_E_DATA, "expected U8 [%zu] (tensor %s.absmax)", nb, name);
            if (!na || na->dtype != PP_F32 || na->shape[0] != nn) return pp_fail(PP_E_DATA, "expected F32 [%zu] (tensor %s)", nn, key);
            memcpy(*f, na->data, nn * 4); /* (the file's floats need not be aligned) */
            pp_dequant_nested(*a, am->data, *f, offset, nb);
            w->absq = am->data, w->absnest = *f, w->absoff = offset;
            w->absmax = *a;
            *f += nn, *a += nb;
            return PP_OK;
        }
        w->absmax = *f;
        *f += nb;
        return PP_OK;
    }
    if (t->ndim != nd || t->shape[0] != shape[0] || (nd == 2 && t->shape[1] != shape[1]))
        return pp_fail(PP_E_DATA, "wrong shape (tensor %s)", name);
    if (t->dtype != PP_F32 && t->dtype != PP_F16 && t->dtype != PP_BF16)
        return pp_fail(PP_E_DATA, "dtype %s, expected F32, F16 or BF16 (tensor %s)", pp_dtype_name(t->dtype), name);
    if (nd == 1) { /* a norm: fp32 */
        for (size_t i = 0; i < n; i++) {
            const uint16_t *h = t->data;
            (*f)[i] = t->dtype == PP_F32 ? ((const float *)t->data)[i] : t->dtype == PP_BF16 ? pp_bf16_to_f32(h[i]) : pp_f16_to_f32(h[i]);
        }
        w->type = PP_W_F32;
        w->data = *f;
        *f += n;
        return PP_OK;
    }
    w->type = t->dtype == PP_F32 ? PP_W_F32 : t->dtype == PP_BF16 ? PP_W_BF16 : PP_W_F16;
    w->data = t->data;
    return PP_OK;
}

/* Floats of fp32 side data the model needs: norms, absmax values, nested
 * absmax values; and in *resolved, the absmax values double quantization
 * resolves (take). */
static size_t side_floats(const pp_config *cfg, const srcs *s, char **names, size_t nn, size_t *resolved)
{
    size_t f = 0;
    *resolved = 0;
    for (size_t i = 0; i < nn; i++) {
        uint64_t shape[2];
        int nd = pp_llama_weight_shape(cfg, names[i], shape), qt, bs, nested;
        float off;
        size_t n = nd == 2 ? (size_t)(shape[0] * shape[1]) : (size_t)shape[0];
        if (nd == 1) f += n;
        else if (quant_state(s, names[i], &qt, &bs, &off, &nested) == PP_OK && qt >= 0) {
            size_t nb = pp_quant_blocks(n, bs);
            if (nested) f += pp_quant_blocks(nb, PP_NESTED_BLOCKSIZE), *resolved += nb;
            else f += nb;
        }
    }
    return f;
}

static pp_status assign(pp_llama *m, const srcs *s)
{
    const pp_config *c = &m->cfg;
    size_t nn;
    char **names = pp_llama_weight_names(c, &nn);
    if (!names) return pp_fail(PP_E_NOMEM, "out of memory");
    size_t resolved, side = side_floats(c, s, names, nn, &resolved);
    m->fmem_dev_bytes = side * sizeof(float) + 64;
    m->fmem_bytes = m->fmem_dev_bytes + resolved * sizeof(float);
    m->fmem = malloc(m->fmem_bytes);
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    pp_status st = m->fmem && m->layers ? PP_OK : pp_fail(PP_E_NOMEM, "out of memory");
    float *f = m->fmem, *a = m->fmem + m->fmem_dev_bytes / sizeof(float);
    for (size_t i = 0; i < nn && st == PP_OK; i++) {
        const char *n = names[i];
        pp_weight *w = NULL;
        int l;
        if (!strcmp(n, "model.embed_tokens.weight")) w = &m->embed;
        else if (!strcmp(n, "model.norm.weight")) w = &m->norm;
        else if (!strcmp(n, "lm_head.weight")) w = &m->lm_head;
        else if (sscanf(n, "model.layers.%d.", &l) == 1) {
            pp_llama_layer *L = &m->layers[l];
            w = strstr(n, "input_layernorm") ? &L->attn_norm : strstr(n, "post_attention_layernorm") ? &L->ffn_norm
              : strstr(n, "q_proj") ? &L->wq : strstr(n, "k_proj") ? &L->wk : strstr(n, "v_proj") ? &L->wv
              : strstr(n, "o_proj") ? &L->wo : strstr(n, "gate_proj") ? &L->w_gate : strstr(n, "up_proj") ? &L->w_up
              : &L->w_down;
        }
        st = take(c, s, n, w, &f, &a);
    }
    if (st == PP_OK && c->tie_embeddings) m->lm_head = m->embed;
    if (st == PP_OK) {
        static const char *const q[] = {"f32", "f16", "bf16", "nf4", "fp4", "int8"};
        snprintf(m->quant, sizeof m->quant, "%s", c->n_layers ? q[m->layers[0].wq.type] : "f32");
    }
    pp_names_free(names, nn);
    return st;
}

/* Appends tensor t, whose bytes go to data, to s (its name copied). */
static pp_status add_src(srcs *s, const pp_tensor_info *t, void *data)
{
    src *e = &s->t[s->n++];
    e->name = strdup(t->name);
    e->dtype = t->dtype;
    e->ndim = t->ndim;
    memcpy(e->shape, t->shape, sizeof e->shape);
    e->nbytes = (size_t)(t->end - t->begin);
    e->data = data;
    return e->name ? PP_OK : pp_fail(PP_E_NOMEM, "out of memory");
}

/* A Hugging Face directory: every weight read once into m->mem. */
static pp_status load_dir(pp_llama *m, const char *path, srcs *s)
{
    pp_hfdir *h;
    PP_TRY(pp_hfdir_open(&h, path));
    m->cfg = *pp_hfdir_config(h);
    size_t n = pp_hfdir_count(h), total = 0;
    for (size_t i = 0; i < n; i++) {
        const pp_tensor_info *t = pp_hfdir_tensor(h, i, NULL);
        total += align64((size_t)(t->end - t->begin));
    }
    pp_status st = PP_OK;
    m->mem = malloc(total ? total : 1);
    s->t = calloc(n ? n : 1, sizeof *s->t);
    if (!m->mem || !s->t) st = pp_fail(PP_E_NOMEM, "out of memory (%zu MiB of weights)", total >> 20);
    size_t at = 0;
    for (size_t i = 0; i < n && st == PP_OK; i++) {
        const pp_tensor_info *t = pp_hfdir_tensor(h, i, NULL);
        st = add_src(s, t, (char *)m->mem + at);
        if (st == PP_OK) st = pp_hfdir_read(h, i, (char *)m->mem + at);
        at += align64((size_t)(t->end - t->begin));
    }
    if (st == PP_OK) st = pp_hfdir_finish(h);
    m->mem_bytes = total;
    if (st == PP_OK && pp_hfdir_tokenizer(h, &m->tok) != PP_OK) pp_tokfiles_free(&m->tok); /* runs on ids */
    pp_hfdir_close(h);
    return st;
}

/* A pp model file, read as a stream, each tensor at an aligned place. */
static pp_status load_file(pp_llama *m, const char *path, srcs *s)
{
    pp_reader *r;
    pp_st_reader *st = NULL;
    PP_TRY(pp_reader_open(&r, path));
    pp_status e = pp_st_open(&st, r);
    const char *cfg = NULL;
    if (e == PP_OK) e = pp_model_file_config(st, &cfg);
    if (e == PP_OK) e = pp_config_parse(&m->cfg, cfg, strlen(cfg));
    if (e == PP_OK) e = pp_model_file_generation(st, &m->cfg, NULL);
    size_t n = e == PP_OK ? pp_st_count(st) : 0, total = 0;
    for (size_t i = 0; i < n; i++) total += align64((size_t)(pp_st_tensor(st, i)->end - pp_st_tensor(st, i)->begin));
    if (e == PP_OK) {
        m->mem = malloc(total ? total : 1);
        s->t = calloc(n ? n : 1, sizeof *s->t);
        if (!m->mem || !s->t) e = pp_fail(PP_E_NOMEM, "out of memory (%zu MiB of weights)", total >> 20);
    }
    size_t at = 0;
    for (size_t i = 0; i < n && e == PP_OK; i++) {
        const pp_tensor_info *t = pp_st_tensor(st, i);
        e = add_src(s, t, (char *)m->mem + at);
        if (e == PP_OK) e = pp_st_read(st, t, (char *)m->mem + at);
        at += align64((size_t)(t->end - t->begin));
    }
    if (e == PP_OK) e = pp_st_finish(st);
    m->mem_bytes = total;
    static const char *const names[] = {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"};
    for (int k = 0; k < 3 && e == PP_OK; k++) {
        const src *tok = get(s, names[k]);
        if (!tok || tok->dtype != PP_U8 || (k == 1 && m->tok.data)) continue;
        char *p = malloc(tok->nbytes + 1);
        if (!p) {
            e = pp_fail(PP_E_NOMEM, "out of memory");
            break;
        }
        memcpy(p, tok->data, tok->nbytes);
        p[tok->nbytes] = 0;
        if (k == 2) m->tok.config = p, m->tok.nconfig = tok->nbytes;
        else m->tok.data = p, m->tok.n = tok->nbytes, m->tok.json = k == 0;
    }
    pp_st_close(st);
    pp_reader_close(r);
    return e;
}

pp_status pp_llama_load(pp_llama *m, const char *path)
{
    memset(m, 0, sizeof *m);
    struct stat st;
    srcs s = {0};
    int dir = strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    pp_status e = dir ? load_dir(m, path, &s) : load_file(m, path, &s);
    if (e == PP_OK) e = assign(m, &s);
    for (size_t i = 0; i < s.n; i++) free((char *)s.t[i].name);
    free(s.t);
    if (e != PP_OK) pp_llama_free(m);
    return e;
}

void pp_llama_free(pp_llama *m)
{
    if (m->dev) {
        m->dev->ops->free(m->dev, m->dev_mem);
        m->dev->ops->free(m->dev, m->dev_fmem);
    }
    free(m->layers);
    pp_tokfiles_free(&m->tok);
    free(m->mem);
    free(m->fmem);
    memset(m, 0, sizeof *m);
}

size_t pp_llama_largest_weight(const pp_config *c)
{
    size_t d = (size_t)c->dim, big = (size_t)c->vocab * d;
    if ((size_t)c->hidden * d > big) big = (size_t)c->hidden * d;
    if ((size_t)c->n_heads * c->head_dim * d > big) big = (size_t)c->n_heads * c->head_dim * d;
    return big;
}

/* ------------------------------------------------------------------ forward */

pp_status pp_infer_init(pp_infer *s, const pp_llama *m, pp_backend *be, int max_seq, int max_batch)
{
    memset(s, 0, sizeof *s);
    const pp_config *c = &m->cfg;
    s->m = m;
    s->be = be;
    s->max_seq = max_seq;
    s->max_batch = max_batch;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, qd = (size_t)c->n_heads * c->head_dim, B = (size_t)max_batch;
    size_t cache = (size_t)c->n_layers * (size_t)max_seq * kvd;
    size_t half = (size_t)c->head_dim / 2;
    size_t act = 2 * B * (size_t)c->dim + 2 * B * qd + 2 * B * (size_t)c->hidden + B * (size_t)c->vocab + half;
    s->kc = be->ops->alloc(be, cache * sizeof(float));
    s->vc = be->ops->alloc(be, cache * sizeof(float));
    s->act = be->ops->alloc(be, act * sizeof(float));
    if (!s->kc || !s->vc || !s->act) {
        pp_infer_free(s);
        return pp_fail(PP_E_NOMEM, "out of memory for a context of %d tokens", max_seq);
    }
    float *p = s->act;
    s->x = p, p += B * c->dim;
    s->xb = p, p += B * c->dim;
    s->q = p, p += B * qd;
    s->att = p, p += B * qd;
    s->g = p, p += B * c->hidden;
    s->u = p, p += B * c->hidden;
    s->logits = p, p += B * c->vocab;
    s->inv_freq = p;
    float *inv = malloc(half * sizeof *inv);
    if (!inv) {
        pp_infer_free(s);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    pp_config_inv_freq(c, inv);
    be->ops->upload(be, s->inv_freq, inv, half * sizeof *inv);
    free(inv);
    pp_status st = be->ops->reserve(be, pp_llama_largest_weight(c), max_seq);
    if (st != PP_OK) pp_infer_free(s);
    return st;
}

void pp_infer_free(pp_infer *s)
{
    if (s->be) {
        s->be->ops->free(s->be, s->kc);
        s->be->ops->free(s->be, s->vc);
        s->be->ops->free(s->be, s->act);
        s->be->ops->free(s->be, s->xa);
    }
    memset(s, 0, sizeof *s);
}

void pp_infer_reset(pp_infer *s) { s->pos = 0; }

pp_status pp_infer_adapter(pp_infer *s, const pp_lora *l, float scale)
{
    if (s->xa) s->be->ops->free(s->be, s->xa);
    s->xa = NULL;
    s->lora = l;
    s->lora_scale = scale;
    if (!l) return PP_OK;
    if (l->n_layers != s->m->cfg.n_layers) return pp_fail(PP_E_DATA, "the adapter has %d layers, the model %d", l->n_layers, s->m->cfg.n_layers);
    s->xa = s->be->ops->alloc(s->be, (size_t)s->max_batch * l->r * sizeof(float));
    return s->xa ? PP_OK : pp_fail(PP_E_NOMEM, "out of memory");
}

/* out (+)= x Wᵀ, plus the adapter's s (x Aᵀ) Bᵀ for layer l's module ty. */
static void lin(pp_infer *s, float *out, const float *x, const pp_weight *w, int n, int acc, int l, int ty)
{
    pp_backend *be = s->be;
    be->ops->matmul(be, out, x, w, n, acc);
    const pp_lora *lo = s->lora;
    size_t k = (size_t)l * PP_LORA_TYPES + ty;
    if (!lo || !lo->A[k]) return;
    be->ops->gemm(be, s->xa, x, lo->A[k], n, lo->r, lo->in[ty], 0, 1, 1.0f, 0.0f);
    be->ops->gemm(be, out, s->xa, lo->B[k], n, lo->out[ty], lo->r, 0, 1, lo->scale * s->lora_scale, 1.0f);
}

/* One chunk of n <= max_batch tokens. */
static void forward_chunk(pp_infer *s, const uint32_t *ids, int n, float *logits, int all)
{
    const pp_llama *m = s->m;
    const pp_config *c = &m->cfg;
    pp_backend *be = s->be;
    const pp_backend_ops *op = be->ops;
    int hd = c->head_dim, kvd = c->n_kv_heads * hd, pos0 = s->pos;
    size_t per_layer = (size_t)s->max_seq * kvd;
    op->embed(be, s->x, &m->embed, ids, n);
    for (int l = 0; l < c->n_layers; l++) {
        const pp_llama_layer *L = &m->layers[l];
        float *kc = s->kc + l * per_layer, *vc = s->vc + l * per_layer;
        op->rmsnorm(be, s->xb, s->x, &L->attn_norm, n, c->norm_eps);
        lin(s, s->q, s->xb, &L->wq, n, 0, l, PP_LORA_Q);
        lin(s, kc + (size_t)pos0 * kvd, s->xb, &L->wk, n, 0, l, PP_LORA_K); /* straight into the cache */
        lin(s, vc + (size_t)pos0 * kvd, s->xb, &L->wv, n, 0, l, PP_LORA_V);
        op->rope(be, s->q, kc + (size_t)pos0 * kvd, n, pos0, c->n_heads, c->n_kv_heads, hd, s->inv_freq);
        op->attention(be, s->att, s->q, kc, vc, n, pos0, c->n_heads, c->n_kv_heads, hd);
        lin(s, s->x, s->att, &L->wo, n, 1, l, PP_LORA_O); /* the residual add is the accumulate */
        op->rmsnorm(be, s->xb, s->x, &L->ffn_norm, n, c->norm_eps);
        lin(s, s->g, s->xb, &L->w_gate, n, 0, l, PP_LORA_GATE);
        lin(s, s->u, s->xb, &L->w_up, n, 0, l, PP_LORA_UP);
        op->swiglu(be, s->g, s->g, s->u, (size_t)n * c->hidden);
        lin(s, s->x, s->g, &L->w_down, n, 1, l, PP_LORA_DOWN);
    }
    s->pos += n;
    if (!logits) return;
    int first = all ? 0 : n - 1, rows = n - first;
    op->rmsnorm(be, s->xb, s->x + (size_t)first * c->dim, &m->norm, rows, c->norm_eps);
    op->matmul(be, s->logits, s->xb, &m->lm_head, rows, 0);
    op->download(be, logits, s->logits, (size_t)rows * c->vocab * sizeof(float));
}

pp_status pp_infer_forward(pp_infer *s, const uint32_t *ids, int n, float *logits, int all)
{
    const pp_config *c = &s->m->cfg;
    if (n <= 0) return pp_fail(PP_E_USAGE, "no tokens");
    if (s->pos + n > s->max_seq)
        return pp_fail(PP_E_DATA, "%d tokens exceed the context of %d", s->pos + n, s->max_seq);
    for (int i = 0; i < n; i++)
        if (ids[i] >= (uint32_t)c->vocab) return pp_fail(PP_E_DATA, "token id %u outside the vocabulary of %d", ids[i], c->vocab);
    for (int done = 0; done < n; done += s->max_batch) {
        int k = n - done < s->max_batch ? n - done : s->max_batch, last = done + k == n;
        float *out = !logits ? NULL : all ? logits + (size_t)done * c->vocab : last ? logits : NULL;
        forward_chunk(s, ids + done, k, out, all);
    }
    return PP_OK;
}

/* A layer's nine weights in the model's order. */
#define LAYER_WEIGHTS 9
static void layer_weights(pp_llama_layer *L, pp_weight *w[LAYER_WEIGHTS])
{
    pp_weight *all[LAYER_WEIGHTS] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
    memcpy(w, all, sizeof all);
}

static void hash_weight(pp_sha256 *h, const pp_weight *w)
{
    int32_t head[4] = {(int32_t)w->type, w->rows, w->cols, w->blocksize};
    pp_sha256_update(h, head, sizeof head);
    pp_sha256_update(h, w->data, pp_weight_bytes(w));
    if (w->absmax && w->blocksize > 0)
        pp_sha256_update(h, w->absmax, ((size_t)w->rows * w->cols + w->blocksize - 1) / w->blocksize * sizeof(float));
}

void pp_llama_sha256(const pp_llama *m, char hex[65])
{
    pp_sha256 h;
    pp_sha256_init(&h);
    hash_weight(&h, &m->embed);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        pp_weight *w[LAYER_WEIGHTS];
        layer_weights(&m->layers[l], w);
        for (int i = 0; i < LAYER_WEIGHTS; i++) hash_weight(&h, w[i]);
    }
    hash_weight(&h, &m->norm);
    hash_weight(&h, &m->lm_head);
    pp_sha256_hex(&h, hex);
}

/* The identity of path's bytes, as a digest of (name, device, inode, size,
 * modification time) of path and, for a directory, of each file in it. 0 if
 * path cannot be read. */
static int files_key(const char *path, char hex[65])
{
    struct stat st;
    if (strcmp(path, "-") == 0 || stat(path, &st) != 0) return 0;
    pp_sha256 h;
    pp_sha256_init(&h);
    char line[640];
    int n = snprintf(line, sizeof line, "%s %llu %llu %llu %lld.%09ld\n", path, (unsigned long long)st.st_dev,
                     (unsigned long long)st.st_ino, (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec);
    pp_sha256_update(&h, line, (size_t)n);
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *f = pp_path_join(path, e->d_name);
            struct stat fs;
            if (f && stat(f, &fs) == 0 && S_ISREG(fs.st_mode)) {
                n = snprintf(line, sizeof line, "%s %llu %llu %lld.%09ld\n", e->d_name, (unsigned long long)fs.st_ino,
                             (unsigned long long)fs.st_size, (long long)fs.st_mtim.tv_sec, fs.st_mtim.tv_nsec);
                pp_sha256_update(&h, line, (size_t)n);
            }
            free(f);
        }
        closedir(d);
    }
    pp_sha256_hex(&h, hex);
    return 1;
}

void pp_llama_sha256_cached(const pp_llama *m, const char *path, char hex[65])
{
    char key[65], *file = NULL;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (path && files_key(path, key) && ((xdg && *xdg) || (home && *home))) {
        size_t n = strlen(xdg && *xdg ? xdg : home) + 32;
        if ((file = malloc(n))) snprintf(file, n, "%s%s/pp/model-sha256", xdg && *xdg ? xdg : home, xdg && *xdg ? "" : "/.cache");
    }
    FILE *f = file ? fopen(file, "r") : NULL;
    char line[160];
    int lines = 0;
    while (f && fgets(line, sizeof line, f)) { /* "KEY DIGEST" per line */
        lines++;
        if (strlen(line) >= 130 && memcmp(line, key, 64) == 0 && line[64] == ' ') {
            memcpy(hex, line + 65, 64);
            hex[64] = 0;
            fclose(f);
            free(file);
            return;
        }
    }
    if (f) fclose(f);
    pp_llama_sha256(m, hex);
    if (file) { /* remembered for the next run; a cache that cannot be written is no cache */
        char *dir = strdup(file);
        if (dir) {
            *strrchr(dir, '/') = 0;
            char *slash = strrchr(dir, '/');
            if (slash) { /* .cache, then pp */
                *slash = 0;
                mkdir(dir, 0700);
                *slash = '/';
            }
            mkdir(dir, 0700);
            free(dir);
        }
        f = fopen(file, lines >= 1000 ? "w" : "a"); /* a long cache starts over */
        if (f) {
            fprintf(f, "%s %s\n", key, hex);
            fclose(f);
        }
    }
    free(file);
}

static void rebase(pp_weight *w, const pp_llama *m, char *dmem, char *dfmem)
{
    const char *mem = m->mem, *fmem = (const char *)m->fmem;
    if (w->data && (const char *)w->data >= mem && (const char *)w->data < mem + m->mem_bytes)
        w->data = dmem + ((const char *)w->data - mem);
    else if (w->data && (const char *)w->data >= fmem && (const char *)w->data < fmem + m->fmem_bytes)
        w->data = dfmem + ((const char *)w->data - fmem);
    if (w->absmax && (const char *)w->absmax >= fmem && (const char *)w->absmax < fmem + m->fmem_dev_bytes)
        w->absmax = (const float *)(dfmem + ((const char *)w->absmax - fmem));
    if (w->absq) { /* the device decodes double quantization itself: the resolved copy stays behind */
        w->absmax = NULL;
        w->absq = (const uint8_t *)dmem + ((const char *)w->absq - mem);
        w->absnest = (const float *)(dfmem + ((const char *)w->absnest - fmem));
    }
}

pp_status pp_llama_to_backend(pp_llama *m, pp_backend *be)
{
    if (be->ops->host_memory || m->dev) return PP_OK;
    void *dmem = be->ops->alloc(be, m->mem_bytes ? m->mem_bytes : 1);
    void *dfmem = be->ops->alloc(be, m->fmem_dev_bytes ? m->fmem_dev_bytes : 1);
    if (!dmem || !dfmem) {
        be->ops->free(be, dmem);
        be->ops->free(be, dfmem);
        return pp_fail(PP_E_NOMEM, "out of device memory for %.1f MiB of weights", (m->mem_bytes + m->fmem_dev_bytes) / 1048576.0);
    }
    if (m->mem_bytes) be->ops->upload(be, dmem, m->mem, m->mem_bytes);
    if (m->fmem_dev_bytes) be->ops->upload(be, dfmem, m->fmem, m->fmem_dev_bytes);
    rebase(&m->embed, m, dmem, dfmem);
    rebase(&m->norm, m, dmem, dfmem);
    rebase(&m->lm_head, m, dmem, dfmem);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        pp_weight *w[LAYER_WEIGHTS];
        layer_weights(&m->layers[l], w);
        for (int i = 0; i < LAYER_WEIGHTS; i++) rebase(w[i], m, dmem, dfmem);
    }
    free(m->mem);
    free(m->fmem);
    m->mem = NULL, m->fmem = NULL;
    m->dev = be, m->dev_mem = dmem, m->dev_fmem = dfmem;
    return PP_OK;
}
