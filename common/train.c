#include "train.h"

#include <stdlib.h>
#include <string.h>

/* One layer's kept activations, carved from the trainer's memory. */
typedef struct acts {
    float *x_in, *xb1, *rstd1, *q, *k, *v, *p, *att, *x_mid, *xb2, *rstd2, *g, *u, *h;
    float *xa[PP_LORA_TYPES]; /* x Aᵀ of each adapted module (max_t, r) */
} acts;

static size_t layer_floats(const pp_config *c, int T, int r)
{
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    return (size_t)T * (4 * c->dim + 2 + 2 * qd + 2 * kvd + 3 * c->hidden + PP_LORA_TYPES * r) +
           (size_t)c->n_heads * T * T;
}

static void carve(const pp_trainer *t, int l, acts *a)
{
    const pp_config *c = &t->m->cfg;
    size_t T = (size_t)t->max_t, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    float *p = t->mem + (size_t)l * t->layer_floats;
    a->x_in = p, p += T * c->dim;
    a->xb1 = p, p += T * c->dim;
    a->rstd1 = p, p += T;
    a->q = p, p += T * qd;
    a->k = p, p += T * kvd;
    a->v = p, p += T * kvd;
    a->att = p, p += T * qd;
    a->x_mid = p, p += T * c->dim;
    a->xb2 = p, p += T * c->dim;
    a->rstd2 = p, p += T;
    a->g = p, p += T * c->hidden;
    a->u = p, p += T * c->hidden;
    a->h = p, p += T * c->hidden;
    for (int k = 0; k < PP_LORA_TYPES; k++) a->xa[k] = p, p += T * t->lora->r;
    a->p = p;
}

pp_status pp_trainer_init(pp_trainer *t, const pp_llama *m, pp_backend *be, pp_lora *lora, int max_t)
{
    memset(t, 0, sizeof *t);
    const pp_config *c = &m->cfg;
    t->m = m, t->be = be, t->lora = lora, t->max_t = max_t;
    size_t T = (size_t)max_t, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    t->layer_floats = layer_floats(c, max_t, lora->r);
    size_t fin = T * (2 * (size_t)c->dim + 1) + T * (size_t)c->vocab;
    size_t grads = T * (2 * (size_t)c->dim + 2 * qd + 2 * kvd + 3 * (size_t)c->hidden + (size_t)lora->r);
    size_t total = t->layer_floats * c->n_layers + fin + grads;
    t->mem = be->ops->alloc(be, total * sizeof(float));
    t->targets = malloc(T * sizeof *t->targets);
    if (!t->mem || !t->targets) {
        pp_trainer_free(t);
        return pp_fail(PP_E_NOMEM, "out of memory for training activations (%zu MiB)", total * 4 >> 20);
    }
    float *p = t->mem + t->layer_floats * c->n_layers;
    t->fin = p, p += T * c->dim;
    t->finb = p, p += T * c->dim;
    t->finr = p, p += T;
    t->logits = p, p += T * c->vocab;
    t->dx = p, p += T * c->dim;
    t->dxb = p, p += T * c->dim;
    t->dq = p, p += T * qd;
    t->datt = p, p += T * qd;
    t->dk = p, p += T * kvd;
    t->dv = p, p += T * kvd;
    t->dg = p, p += T * c->hidden;
    t->du = p, p += T * c->hidden;
    t->dh = p, p += T * c->hidden;
    t->dxa = p;
    pp_status s = be->ops->reserve(be, pp_llama_largest_weight(c), max_t);
    if (s != PP_OK) pp_trainer_free(t);
    return s;
}

void pp_trainer_free(pp_trainer *t)
{
    if (t->be) t->be->ops->free(t->be, t->mem);
    free(t->targets);
    memset(t, 0, sizeof *t);
}

/* y = x Wᵀ (+ s (x Aᵀ) Bᵀ, keeping x Aᵀ) for the module of type ty in layer l. */
static void linear(pp_trainer *t, float *y, const float *x, const pp_weight *w, int n, int l, int ty, float *xa)
{
    const pp_backend_ops *op = t->be->ops;
    const pp_lora *lo = t->lora;
    op->matmul(t->be, y, x, w, n, 0);
    size_t k = (size_t)l * PP_LORA_TYPES + ty;
    if (!lo->A[k]) return;
    op->gemm(t->be, xa, x, lo->A[k], n, lo->r, lo->in[ty], 0, 1, 1.0f, 0.0f);
    op->gemm(t->be, y, xa, lo->B[k], n, lo->out[ty], lo->r, 0, 1, lo->scale, 1.0f);
}

/* dx += dy W (+ the LoRA path), and the adapter's gradients. */
static void linear_back(pp_trainer *t, float *dx, const float *dy, const float *x, const pp_weight *w, int n, int l, int ty,
                        const float *xa)
{
    const pp_backend_ops *op = t->be->ops;
    pp_lora *lo = t->lora;
    op->matmul_dx(t->be, dx, dy, w, n);
    size_t k = (size_t)l * PP_LORA_TYPES + ty;
    if (!lo->A[k]) return;
    int r = lo->r, in = lo->in[ty], out = lo->out[ty];
    op->gemm(t->be, lo->dB[k], dy, xa, out, r, n, 1, 0, lo->scale, 1.0f); /* dB += s dyᵀ (x Aᵀ) */
    op->gemm(t->be, t->dxa, dy, lo->B[k], n, r, out, 0, 0, lo->scale, 0.0f); /* d(x Aᵀ) = s dy B */
    op->gemm(t->be, lo->dA[k], t->dxa, x, r, in, n, 1, 0, 1.0f, 1.0f);   /* dA += d(x Aᵀ)ᵀ x */
    op->gemm(t->be, dx, t->dxa, lo->A[k], n, in, r, 0, 0, 1.0f, 1.0f);   /* dx += d(x Aᵀ) A */
}

pp_status pp_trainer_record(pp_trainer *t, const uint32_t *tok, int n, int prompt_len, float scale, int backward,
                            double *loss, int *n_targets)
{
    const pp_llama *m = t->m;
    const pp_config *c = &m->cfg;
    pp_backend *be = t->be;
    const pp_backend_ops *op = be->ops;
    if (n < 1 || n > t->max_t) return pp_fail(PP_E_DATA, "a record of %d tokens (at most %d)", n, t->max_t);
    for (int i = 0; i < n; i++)
        if (tok[i] >= (uint32_t)c->vocab) return pp_fail(PP_E_DATA, "token id %u outside the vocabulary", tok[i]);
    int hd = c->head_dim, H = c->n_heads, KV = c->n_kv_heads;
    size_t dim = (size_t)c->dim, hid = (size_t)c->hidden;

    /* forward, keeping what the backward pass needs */
    acts a;
    carve(t, 0, &a);
    op->embed(be, a.x_in, &m->embed, tok, n);
    for (int l = 0; l < c->n_layers; l++) {
        const pp_llama_layer *L = &m->layers[l];
        carve(t, l, &a);
        op->rmsnorm_train(be, a.xb1, a.rstd1, a.x_in, &L->attn_norm, n, c->norm_eps);
        linear(t, a.q, a.xb1, &L->wq, n, l, PP_LORA_Q, a.xa[PP_LORA_Q]);
        linear(t, a.k, a.xb1, &L->wk, n, l, PP_LORA_K, a.xa[PP_LORA_K]);
        linear(t, a.v, a.xb1, &L->wv, n, l, PP_LORA_V, a.xa[PP_LORA_V]);
        op->rope(be, a.q, a.k, n, 0, H, KV, hd, c->rope_theta);
        op->attention_train(be, a.att, a.p, a.q, a.k, a.v, n, H, KV, hd);
        memcpy(a.x_mid, a.x_in, (size_t)n * dim * sizeof(float));
        linear(t, t->dx, a.att, &L->wo, n, l, PP_LORA_O, a.xa[PP_LORA_O]);
        op->add(be, a.x_mid, t->dx, (size_t)n * dim);
        op->rmsnorm_train(be, a.xb2, a.rstd2, a.x_mid, &L->ffn_norm, n, c->norm_eps);
        linear(t, a.g, a.xb2, &L->w_gate, n, l, PP_LORA_GATE, a.xa[PP_LORA_GATE]);
        linear(t, a.u, a.xb2, &L->w_up, n, l, PP_LORA_UP, a.xa[PP_LORA_UP]);
        op->swiglu(be, a.h, a.g, a.u, (size_t)n * hid);
        float *next = l + 1 < c->n_layers ? t->mem + (size_t)(l + 1) * t->layer_floats : t->fin; /* next x_in */
        memcpy(next, a.x_mid, (size_t)n * dim * sizeof(float));
        linear(t, t->dx, a.h, &L->w_down, n, l, PP_LORA_DOWN, a.xa[PP_LORA_DOWN]);
        op->add(be, next, t->dx, (size_t)n * dim);
    }
    op->rmsnorm_train(be, t->finb, t->finr, t->fin, &m->norm, n, c->norm_eps);
    op->matmul(be, t->logits, t->finb, &m->lm_head, n, 0);

    int count = 0;
    for (int i = 0; i < n; i++) {
        t->targets[i] = i + 1 < n && i + 1 >= prompt_len ? (int32_t)tok[i + 1] : -1;
        count += t->targets[i] >= 0;
    }
    *n_targets += count;
    *loss += op->cross_entropy(be, t->logits, t->targets, n, c->vocab, backward ? scale : 0.0f);
    if (!backward) return PP_OK;

    /* backward: t->dx is the gradient of the residual stream */
    memset(t->dx, 0, (size_t)n * dim * sizeof(float));
    memset(t->dxb, 0, (size_t)n * dim * sizeof(float));
    op->matmul_dx(be, t->dxb, t->logits, &m->lm_head, n);
    op->rmsnorm_backward(be, t->dx, t->dxb, t->fin, t->finr, &m->norm, n);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const pp_llama_layer *L = &m->layers[l];
        carve(t, l, &a);
        /* the MLP branch: dx holds d(x_out) = d(x_mid) through the residual */
        memset(t->dh, 0, (size_t)n * hid * sizeof(float));
        linear_back(t, t->dh, t->dx, a.h, &L->w_down, n, l, PP_LORA_DOWN, a.xa[PP_LORA_DOWN]);
        op->swiglu_backward(be, t->dg, t->du, t->dh, a.g, a.u, (size_t)n * hid);
        memset(t->dxb, 0, (size_t)n * dim * sizeof(float));
        linear_back(t, t->dxb, t->dg, a.xb2, &L->w_gate, n, l, PP_LORA_GATE, a.xa[PP_LORA_GATE]);
        linear_back(t, t->dxb, t->du, a.xb2, &L->w_up, n, l, PP_LORA_UP, a.xa[PP_LORA_UP]);
        op->rmsnorm_backward(be, t->dx, t->dxb, a.x_mid, a.rstd2, &L->ffn_norm, n);
        /* the attention branch: dx now holds d(x_mid) = d(x_in) through the residual */
        memset(t->datt, 0, (size_t)n * H * hd * sizeof(float));
        linear_back(t, t->datt, t->dx, a.att, &L->wo, n, l, PP_LORA_O, a.xa[PP_LORA_O]);
        op->attention_backward(be, t->dq, t->dk, t->dv, t->datt, a.p, a.q, a.k, a.v, n, H, KV, hd);
        op->rope_backward(be, t->dq, t->dk, n, 0, H, KV, hd, c->rope_theta);
        memset(t->dxb, 0, (size_t)n * dim * sizeof(float));
        linear_back(t, t->dxb, t->dq, a.xb1, &L->wq, n, l, PP_LORA_Q, a.xa[PP_LORA_Q]);
        linear_back(t, t->dxb, t->dk, a.xb1, &L->wk, n, l, PP_LORA_K, a.xa[PP_LORA_K]);
        linear_back(t, t->dxb, t->dv, a.xb1, &L->wv, n, l, PP_LORA_V, a.xa[PP_LORA_V]);
        op->rmsnorm_backward(be, t->dx, t->dxb, a.x_in, a.rstd1, &L->attn_norm, n);
    }
    return PP_OK;
}
