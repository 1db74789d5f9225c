#include "full.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "merge.h"

/* The weights of m in the params order: matrices, then norms; *n_mat of them
 * are matrices. Returns the count (at most 2 + 9 * n_layers + 1). */
static size_t weights(pp_llama *m, pp_weight **w, size_t *n_mat)
{
    size_t k = 0;
    w[k++] = &m->embed;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        pp_llama_layer *L = &m->layers[l];
        pp_weight *mat[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < 7; i++) w[k++] = mat[i];
    }
    if (m->lm_head.data != m->embed.data) w[k++] = &m->lm_head;
    *n_mat = k;
    for (int l = 0; l < m->cfg.n_layers; l++) w[k++] = &m->layers[l].attn_norm, w[k++] = &m->layers[l].ffn_norm;
    w[k++] = &m->norm;
    return k;
}

static size_t elems(const pp_weight *w) { return (size_t)w->rows * (size_t)w->cols; }

pp_status pp_full_init(pp_full *f, pp_llama *m)
{
    memset(f, 0, sizeof *f);
    size_t cap = 3 + 9 * (size_t)m->cfg.n_layers, n_mat;
    pp_weight **w = malloc(cap * sizeof *w);
    if (!w) return pp_fail(PP_E_NOMEM, "out of memory");
    size_t nw = weights(m, w, &n_mat);
    for (size_t i = 0; i < nw; i++) {
        if (w[i]->type == PP_W_NF4 || w[i]->type == PP_W_FP4 || w[i]->type == PP_W_INT8) {
            free(w);
            return pp_fail(PP_E_DATA, "full training needs an unquantized model (this one is %s)", m->quant);
        }
        f->n += elems(w[i]);
        if (i + 1 == n_mat) f->n_decay = f->n;
    }
    f->params = malloc(f->n * sizeof(float));
    f->grads = calloc(f->n, sizeof(float));
    f->g = *m;
    f->g.layers = malloc((size_t)m->cfg.n_layers * sizeof *f->g.layers);
    f->g.mem = f->g.fmem = NULL;
    memset(&f->g.tok, 0, sizeof f->g.tok);
    if (!f->params || !f->grads || !f->g.layers) {
        free(w);
        pp_full_free(f);
        return pp_fail(PP_E_NOMEM, "out of memory for full training (%zu MiB of weights)", f->n * 8 >> 20);
    }
    memcpy(f->g.layers, m->layers, (size_t)m->cfg.n_layers * sizeof *f->g.layers);
    /* the gradient view: the same weights of f->g, in the same order */
    pp_weight **gw = malloc(cap * sizeof *gw);
    if (!gw) {
        free(w);
        pp_full_free(f);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    size_t gn_mat;
    weights(&f->g, gw, &gn_mat);
    size_t at = 0;
    for (size_t i = 0; i < nw; i++) {
        pp_weight_widen(f->params + at, w[i]);
        w[i]->type = PP_W_F32, w[i]->data = f->params + at, w[i]->absmax = NULL, w[i]->blocksize = 0;
        *gw[i] = *w[i];
        gw[i]->data = f->grads + at;
        at += elems(w[i]);
    }
    if (m->cfg.tie_embeddings || m->lm_head.data == NULL) m->lm_head = m->embed, f->g.lm_head = f->g.embed;
    free(w);
    free(gw);
    free(m->mem); /* every weight is in f->params now */
    m->mem = NULL, m->mem_bytes = 0;
    strcpy(m->quant, "f32");
    return PP_OK;
}

/* Points m's weights at params and f->g's at grads, in the params order. */
static pp_status place(pp_full *f, pp_llama *m, float *params, float *grads)
{
    size_t cap = 3 + 9 * (size_t)m->cfg.n_layers, n_mat, gn_mat;
    pp_weight **w = malloc(2 * cap * sizeof *w), **gw = w + cap;
    if (!w) return pp_fail(PP_E_NOMEM, "out of memory");
    int tied = m->lm_head.data == m->embed.data;
    size_t nw = weights(m, w, &n_mat), at = 0;
    weights(&f->g, gw, &gn_mat);
    for (size_t i = 0; i < nw; i++) {
        w[i]->data = params + at;
        gw[i]->data = grads + at;
        at += elems(w[i]);
    }
    if (tied) m->lm_head = m->embed, f->g.lm_head = f->g.embed;
    free(w);
    return PP_OK;
}

pp_status pp_full_to_backend(pp_full *f, pp_llama *m, pp_backend *be)
{
    if (be->ops->host_memory || f->dev) return PP_OK;
    f->dev_params = be->ops->alloc(be, f->n * sizeof(float));
    f->dev_grads = be->ops->alloc(be, f->n * sizeof(float));
    if (!f->dev_params || !f->dev_grads) {
        be->ops->free(be, f->dev_params);
        be->ops->free(be, f->dev_grads);
        f->dev_params = f->dev_grads = NULL;
        return pp_fail(PP_E_NOMEM, "out of device memory for %.1f MiB of weights and gradients", f->n * 8 / 1048576.0);
    }
    be->ops->upload(be, f->dev_params, f->params, f->n * sizeof(float));
    f->dev = be;
    return place(f, m, f->dev_params, f->dev_grads);
}

void pp_full_to_host(pp_full *f, pp_llama *m)
{
    if (!f->dev) return;
    f->dev->ops->download(f->dev, f->params, f->dev_params, f->n * sizeof(float));
    place(f, m, f->params, f->grads);
}

void pp_full_free(pp_full *f)
{
    if (f->dev) {
        f->dev->ops->free(f->dev, f->dev_params);
        f->dev->ops->free(f->dev, f->dev_grads);
    }
    free(f->params);
    free(f->grads);
    free(f->g.layers);
    memset(f, 0, sizeof *f);
}

/* N(0, 1) from a splitmix64 stream, Box-Muller. */
static double gauss(uint64_t *s)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
        z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ z >> 27) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        u[i] = ((double)(z >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(2.0 * M_PI * u[1]);
}

pp_status pp_llama_random(pp_llama *m, const char *json, size_t len, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    PP_TRY(pp_config_parse(&m->cfg, json, len));
    const pp_config *c = &m->cfg;
    double std = 0.02;
    cJSON *o = cJSON_ParseWithLength(json, len);
    const cJSON *ir = cJSON_GetObjectItemCaseSensitive(o, "initializer_range");
    if (cJSON_IsNumber(ir) && ir->valuedouble > 0 && ir->valuedouble < 10) std = ir->valuedouble;
    cJSON_Delete(o);
    size_t d = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim,
           h = (size_t)c->hidden, v = (size_t)c->vocab;
    size_t per_layer = 2 * d + qd * d * 2 + kvd * d * 2 + 3 * h * d;
    size_t n = v * d * (c->tie_embeddings ? 1 : 2) + d + per_layer * (size_t)c->n_layers;
    m->mem = malloc(n * sizeof(float));
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->mem || !m->layers) {
        pp_llama_free(m);
        return pp_fail(PP_E_NOMEM, "out of memory for a model of %zu parameters", n);
    }
    m->mem_bytes = n * sizeof(float);
    strcpy(m->quant, "f32");
    float *p = m->mem;
    uint64_t s = seed * 0xD6E8FEB86659FD93ull + 0xA0761D6478BD642Full;
#define TAKE(W, R, C, NORM)                                                                  \
    do {                                                                                     \
        (W) = (pp_weight){.type = PP_W_F32, .rows = (int)(R), .cols = (int)(C), .data = p};   \
        for (size_t i_ = 0; i_ < (size_t)(R) * (C); i_++) p[i_] = NORM ? 1.0f : (float)(std * gauss(&s)); \
        p += (size_t)(R) * (C);                                                              \
    } while (0)
    TAKE(m->embed, v, d, 0);
    for (int l = 0; l < c->n_layers; l++) {
        pp_llama_layer *L = &m->layers[l];
        TAKE(L->attn_norm, 1, d, 1);
        TAKE(L->wq, qd, d, 0);
        TAKE(L->wk, kvd, d, 0);
        TAKE(L->wv, kvd, d, 0);
        TAKE(L->wo, d, qd, 0);
        TAKE(L->ffn_norm, 1, d, 1);
        TAKE(L->w_gate, h, d, 0);
        TAKE(L->w_up, h, d, 0);
        TAKE(L->w_down, d, h, 0);
    }
    TAKE(m->norm, 1, d, 1);
    if (c->tie_embeddings) m->lm_head = m->embed;
    else TAKE(m->lm_head, v, d, 0);
#undef TAKE
    return PP_OK;
}
