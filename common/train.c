#include "train.h"

#include <stdlib.h>
#include <string.h>

/* One layer's kept activations (its input x_in lives in t->xs). */
typedef struct acts {
    float *x_in, *xb1, *rstd1, *q, *k, *v, *p, *att, *x_mid, *xb2, *rstd2, *g, *u, *h;
    float *xa[PP_LORA_TYPES]; /* x Aᵀ of each adapted module (max_tokens, r) */
} acts;

typedef struct dims {
    size_t T, L, dim, qd, kvd, hid, r, vocab, H, in_max, LR; /* LR: rows of logits kept */
    int lse;                                                   /* attention keeps log-sum-exps */
    int drop, act16;                                           /* dropout on; layer inputs in 16 bits */
} dims;

static dims dims_of(const pp_config *c, const pp_lora *lora, const pp_train_opts *o)
{
    dims d = {(size_t)o->max_tokens, (size_t)o->max_len, (size_t)c->dim, (size_t)c->n_heads * c->head_dim,
              (size_t)c->n_kv_heads * c->head_dim, (size_t)c->hidden, (size_t)lora->r, (size_t)c->vocab,
              (size_t)c->n_heads, 0, 0, o->attention_lse, o->dropout > 0, o->act16};
    d.LR = o->logit_rows > 0 && (size_t)o->logit_rows < d.T ? (size_t)o->logit_rows : d.T;
    d.in_max = d.dim > d.hid ? d.dim : d.hid;
    if (d.qd > d.in_max) d.in_max = d.qd;
    return d;
}

/* A layer's block: everything but x_in. The attention probabilities of
 * records packed end to end take sum(len²) <= max_len * max_tokens per head. */
static size_t block_floats(const dims *d)
{
    return d->T * (3 * d->dim + 2 + 2 * d->qd + 2 * d->kvd + 3 * d->hid + PP_LORA_TYPES * d->r) +
           d->H * (d->lse ? 1 : d->L) * d->T;
}

/* Floats of the layers' inputs (t->xs): 16-bit values two to a float, and
 * the fp32 input of the layer at work (t->xin), with act16. */
static size_t xs_floats(const pp_config *c, const dims *d)
{
    size_t n = ((size_t)c->n_layers + 1) * d->T * d->dim;
    return d->act16 ? (n + 1) / 2 + d->T * d->dim : n;
}

static size_t total_floats(const pp_config *c, const dims *d, int ckpt)
{
    size_t blocks = block_floats(d) * (ckpt ? 1 : (size_t)c->n_layers);
    size_t fin = d->T * (d->dim + 1) + d->LR * d->vocab + 2 * d->T * d->dim + (size_t)c->head_dim / 2;
    size_t grads = d->T * (2 * d->dim + 2 * d->qd + 2 * d->kvd + d->hid + d->r + (d->drop ? d->in_max : 0));
    return blocks + xs_floats(c, d) + fin + grads;
}

size_t pp_trainer_bytes(const pp_config *c, const pp_lora *lora, const pp_train_opts *o)
{
    dims d = dims_of(c, lora, o);
    return total_floats(c, &d, o->grad_checkpoint) * sizeof(float) + d.T * (sizeof(int32_t) + sizeof(uint32_t) + 3 * sizeof(int));
}

static void carve(const pp_trainer *t, int l, acts *a)
{
    dims d = dims_of(&t->m->cfg, t->lora, &t->o);
    float *p = t->mem + (t->o.grad_checkpoint ? 0 : (size_t)l) * t->layer_floats;
    a->x_in = t->o.act16 ? t->xin : t->xs + (size_t)l * d.T * d.dim;
    a->xb1 = p, p += d.T * d.dim;
    a->rstd1 = p, p += d.T;
    a->q = p, p += d.T * d.qd;
    a->k = p, p += d.T * d.kvd;
    a->v = p, p += d.T * d.kvd;
    a->att = p, p += d.T * d.qd;
    a->x_mid = p, p += d.T * d.dim;
    a->xb2 = p, p += d.T * d.dim;
    a->rstd2 = p, p += d.T;
    a->g = p, p += d.T * d.hid;
    a->u = p, p += d.T * d.hid;
    a->h = p, p += d.T * d.hid;
    for (int k = 0; k < PP_LORA_TYPES; k++) a->xa[k] = p, p += d.T * d.r;
    a->p = p;
}

pp_status pp_trainer_init(pp_trainer *t, const pp_llama *m, pp_backend *be, pp_lora *lora, const pp_train_opts *o)
{
    memset(t, 0, sizeof *t);
    const pp_config *c = &m->cfg;
    t->m = m, t->be = be, t->lora = lora, t->o = *o;
    if (o->max_tokens < 1 || o->max_len < 1 || o->max_len > o->max_tokens)
        return pp_fail(PP_E_INTERNAL, "trainer: max_len %d, max_tokens %d", o->max_len, o->max_tokens);
    if (o->attention_lse && !be->ops->lse_attention)
        return pp_fail(PP_E_INTERNAL, "trainer: the %s backend keeps attention's probabilities", be->ops->name);
    be->attention_lse = o->attention_lse;
    dims d = dims_of(c, lora, o);
    t->layer_floats = block_floats(&d);
    size_t total = total_floats(c, &d, o->grad_checkpoint);
    t->mem = be->ops->alloc(be, total * sizeof(float));
    t->targets = malloc(d.T * sizeof *t->targets);
    t->tok = malloc(d.T * sizeof *t->tok);
    t->starts = malloc(3 * d.T * sizeof *t->starts);
    if (!t->mem || !t->targets || !t->tok || !t->starts) {
        pp_trainer_free(t);
        return pp_fail(PP_E_NOMEM, "out of memory for training activations (%zu MiB)", total * 4 >> 20);
    }
    t->lens = t->starts + d.T;
    t->rows = t->lens + d.T;
    float *p = t->mem + t->layer_floats * (o->grad_checkpoint ? 1 : (size_t)c->n_layers);
    t->xs = p, p += xs_floats(c, &d);
    if (o->act16) t->xin = t->xs + (xs_floats(c, &d) - d.T * d.dim);
    t->finb = p, p += d.T * d.dim;
    t->finr = p, p += d.T;
    t->logits = p, p += d.LR * d.vocab;
    t->tmp = p, p += d.T * d.dim;
    t->finc = p, p += d.T * d.dim;
    t->dx = p, p += d.T * d.dim;
    t->dxb = p, p += d.T * d.dim;
    t->dq = p, p += d.T * d.qd;
    t->datt = p, p += d.T * d.qd;
    t->dk = p, p += d.T * d.kvd;
    t->dv = p, p += d.T * d.kvd;
    t->dh = p, p += d.T * d.hid;
    t->dxa = p, p += d.T * d.r;
    t->inv_freq = p, p += c->head_dim / 2;
    t->xd = d.drop ? p : NULL;
    float *inv = malloc((size_t)c->head_dim / 2 * sizeof *inv);
    if (!inv) {
        pp_trainer_free(t);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    pp_config_inv_freq(c, inv);
    be->ops->upload(be, t->inv_freq, inv, (size_t)c->head_dim / 2 * sizeof *inv);
    free(inv);
    pp_status s = be->ops->reserve(be, pp_llama_largest_weight(c), o->max_len);
    if (s != PP_OK) pp_trainer_free(t);
    return s;
}

void pp_trainer_free(pp_trainer *t)
{
    if (t->be) t->be->ops->free(t->be, t->mem), t->be->attention_lse = 0;
    free(t->targets);
    free(t->tok);
    free(t->starts);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------ dropout */

/* Counter-based: element j of module (layer, type) in the micro-batch keyed
 * by t->mask_key is kept or dropped the same way in the forward pass, in a
 * recomputation and in the backward pass, with nothing stored. */
static uint64_t module_key(const pp_trainer *t, int l, int ty)
{
    return pp_dropout_mix(pp_dropout_mix(t->o.seed ^ 0x5DEECE66Dull) ^ pp_dropout_mix(t->mask_key) ^
                          ((uint64_t)l << 8 | (uint64_t)ty));
}

/* out[i] = x[i] * keep(i) / (1 - p), or out[i] += that when acc. */
static void drop(const pp_trainer *t, float *out, const float *x, size_t n, int l, int ty, int acc)
{
    uint32_t thr = (uint32_t)((double)t->o.dropout * 4294967296.0);
    t->be->ops->dropout(t->be, out, x, n, module_key(t, l, ty), thr, 1.0f / (1.0f - t->o.dropout), acc);
}

void pp_trainer_dropout(const pp_trainer *t, float *out, const float *x, size_t n, int l, int ty)
{
    drop(t, out, x, n, l, ty, 0);
}

/* ------------------------------------------------------------- the layers */

/* y = x Wᵀ (+ s (drop(x) Aᵀ) Bᵀ, keeping drop(x) Aᵀ) for the module of type ty in layer l. */
static void linear(pp_trainer *t, float *y, const float *x, const pp_weight *w, int n, int l, int ty, float *xa, int train)
{
    const pp_backend_ops *op = t->be->ops;
    const pp_lora *lo = t->lora;
    op->matmul(t->be, y, x, w, n, 0);
    size_t k = (size_t)l * PP_LORA_TYPES + ty;
    if (!lo->A[k]) return;
    const float *xin = x;
    if (train && t->o.dropout > 0) {
        drop(t, t->xd, x, (size_t)n * lo->in[ty], l, ty, 0);
        xin = t->xd;
    }
    op->gemm(t->be, xa, xin, lo->A[k], n, lo->r, lo->in[ty], 0, 1, 1.0f, 0.0f);
    op->gemm(t->be, y, xa, lo->B[k], n, lo->out[ty], lo->r, 0, 1, lo->scale, 1.0f);
}

/* dx += dy W (+ the LoRA path), and the adapter's gradients. */
static void linear_back(pp_trainer *t, float *dx, const float *dy, const float *x, const pp_weight *w, int n, int l, int ty,
                        const float *xa, const pp_weight *gw)
{
    const pp_backend_ops *op = t->be->ops;
    pp_lora *lo = t->lora;
    if (dx) op->matmul_dx(t->be, dx, dy, w, n);
    if (gw) op->gemm(t->be, (float *)gw->data, dy, x, gw->rows, gw->cols, n, 1, 0, 1.0f, 1.0f); /* dW += dyᵀ x */
    size_t k = (size_t)l * PP_LORA_TYPES + ty;
    if (!lo->A[k]) return;
    int r = lo->r, in = lo->in[ty], out = lo->out[ty];
    size_t nin = (size_t)n * in;
    op->gemm(t->be, lo->dB[k], dy, xa, out, r, n, 1, 0, lo->scale, 1.0f); /* dB += s dyᵀ (x Aᵀ) */
    op->gemm(t->be, t->dxa, dy, lo->B[k], n, r, out, 0, 0, lo->scale, 0.0f); /* d(x Aᵀ) = s dy B */
    if (t->o.dropout > 0) {
        drop(t, t->xd, x, nin, l, ty, 0);
        op->gemm(t->be, lo->dA[k], t->dxa, t->xd, r, in, n, 1, 0, 1.0f, 1.0f); /* dA += d(x Aᵀ)ᵀ drop(x) */
        if (dx) op->gemm(t->be, t->xd, t->dxa, lo->A[k], n, in, r, 0, 0, 1.0f, 0.0f);
        if (dx) drop(t, dx, t->xd, nin, l, ty, 1);                            /* dx += drop'(d(x Aᵀ) A) */
        return;
    }
    op->gemm(t->be, lo->dA[k], t->dxa, x, r, in, n, 1, 0, 1.0f, 1.0f);   /* dA += d(x Aᵀ)ᵀ x */
    if (dx) op->gemm(t->be, dx, t->dxa, lo->A[k], n, in, r, 0, 0, 1.0f, 1.0f); /* dx += d(x Aᵀ) A */
}

/* The floats attention keeps for a record of n tokens: its probabilities
 * (heads, n, n), or with attention_lse its rows' log-sum-exps (heads, n). */
static size_t kept(const pp_trainer *t, int n)
{
    return (size_t)t->m->cfg.n_heads * n * (t->o.attention_lse ? 1 : (size_t)n);
}

/* Attention of every record, each causal from its own position 0. */
static void attention(pp_trainer *t, acts *a)
{
    const pp_config *c = &t->m->cfg;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim, pat = 0;
    for (int i = 0; i < t->n_rec; i++) {
        size_t s = (size_t)t->starts[i];
        int n = t->lens[i];
        t->be->ops->attention_train(t->be, a->att + s * qd, a->p + pat, a->q + s * qd, a->k + s * kvd, a->v + s * kvd, n,
                                    c->n_heads, c->n_kv_heads, c->head_dim);
        pat += kept(t, n);
    }
}

static void rope(pp_trainer *t, float *q, float *k, int backward)
{
    const pp_config *c = &t->m->cfg;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    for (int i = 0; i < t->n_rec; i++) {
        size_t s = (size_t)t->starts[i];
        (backward ? t->be->ops->rope_backward : t->be->ops->rope)(t->be, q + s * qd, k + s * kvd, t->lens[i], 0, c->n_heads,
                                                                  c->n_kv_heads, c->head_dim, t->inv_freq);
    }
}

/* Layer l's input (l = n_layers: the final norm's) in 16 bits (act16). */
static void *input16(const pp_trainer *t, int l)
{
    return (uint16_t *)(void *)t->xs + (size_t)l * t->o.max_tokens * t->m->cfg.dim;
}

/* Where layer l's forward pass writes its output, the next layer's input. */
static float *output_of(const pp_trainer *t, int l)
{
    return t->o.act16 ? t->xin : t->xs + (size_t)(l + 1) * t->o.max_tokens * t->m->cfg.dim;
}

/* Keeps x (n rows), the input of layer l, when act16: rounded to 16 bits
 * into t->xs, and x itself replaced by the rounded values, so the layer
 * computes from what its recomputation and backward pass will see. (In
 * fp32 it is already in place: output_of.) */
static void keep_input(pp_trainer *t, int l, float *x, int n)
{
    if (!t->o.act16) return;
    size_t k = (size_t)n * t->m->cfg.dim;
    t->be->ops->narrow(t->be, input16(t, l), x, k);
    t->be->ops->widen(t->be, x, input16(t, l), k);
}

/* Layer l forward from a->x_in; writes the next layer's input to next
 * unless it is NULL (a recomputation). */
static void layer_forward(pp_trainer *t, int l, acts *a, int n, float *next, int train)
{
    const pp_config *c = &t->m->cfg;
    const pp_llama_layer *L = &t->m->layers[l];
    pp_backend *be = t->be;
    const pp_backend_ops *op = be->ops;
    size_t dim = (size_t)c->dim, hid = (size_t)c->hidden;
    op->rmsnorm_train(be, a->xb1, a->rstd1, a->x_in, &L->attn_norm, n, c->norm_eps);
    linear(t, a->q, a->xb1, &L->wq, n, l, PP_LORA_Q, a->xa[PP_LORA_Q], train);
    linear(t, a->k, a->xb1, &L->wk, n, l, PP_LORA_K, a->xa[PP_LORA_K], train);
    linear(t, a->v, a->xb1, &L->wv, n, l, PP_LORA_V, a->xa[PP_LORA_V], train);
    rope(t, a->q, a->k, 0);
    attention(t, a);
    op->copy(be, a->x_mid, a->x_in, (size_t)n * dim);
    linear(t, t->tmp, a->att, &L->wo, n, l, PP_LORA_O, a->xa[PP_LORA_O], train);
    op->add(be, a->x_mid, t->tmp, (size_t)n * dim);
    op->rmsnorm_train(be, a->xb2, a->rstd2, a->x_mid, &L->ffn_norm, n, c->norm_eps);
    linear(t, a->g, a->xb2, &L->w_gate, n, l, PP_LORA_GATE, a->xa[PP_LORA_GATE], train);
    linear(t, a->u, a->xb2, &L->w_up, n, l, PP_LORA_UP, a->xa[PP_LORA_UP], train);
    op->swiglu(be, a->h, a->g, a->u, (size_t)n * hid);
    if (!next) {
        /* the down projection's output is not needed again, only its x Aᵀ */
        size_t k = (size_t)l * PP_LORA_TYPES + PP_LORA_DOWN;
        const pp_lora *lo = t->lora;
        if (lo->A[k]) {
            const float *xin = a->h;
            if (train && t->o.dropout > 0) drop(t, t->xd, a->h, (size_t)n * hid, l, PP_LORA_DOWN, 0), xin = t->xd;
            op->gemm(be, a->xa[PP_LORA_DOWN], xin, lo->A[k], n, lo->r, lo->in[PP_LORA_DOWN], 0, 1, 1.0f, 0.0f);
        }
        return;
    }
    op->copy(be, next, a->x_mid, (size_t)n * dim);
    linear(t, t->tmp, a->h, &L->w_down, n, l, PP_LORA_DOWN, a->xa[PP_LORA_DOWN], train);
    op->add(be, next, t->tmp, (size_t)n * dim);
}

pp_status pp_trainer_batch(pp_trainer *t, const uint32_t *const *tok, const int *len, const int *prompt_len, int n_rec,
                           float scale, int backward, double *loss, int *n_targets)
{
    const pp_llama *m = t->m;
    const pp_config *c = &m->cfg;
    pp_backend *be = t->be;
    const pp_backend_ops *op = be->ops;
    int n = 0;
    for (int i = 0; i < n_rec; i++) {
        if (len[i] < 1 || len[i] > t->o.max_len || n + len[i] > t->o.max_tokens)
            return pp_fail(PP_E_DATA, "a micro-batch record of %d tokens (at most %d, %d in all)", len[i], t->o.max_len,
                           t->o.max_tokens);
        for (int j = 0; j < len[i]; j++) {
            if (tok[i][j] >= (uint32_t)c->vocab) return pp_fail(PP_E_DATA, "token id %u outside the vocabulary", tok[i][j]);
            t->tok[n + j] = tok[i][j];
            t->targets[n + j] = j + 1 < len[i] && j + 1 >= prompt_len[i] && (!t->loss_mask || t->loss_mask[i][j + 1])
                                    ? (int32_t)tok[i][j + 1] : -1;
        }
        t->starts[i] = n, t->lens[i] = len[i];
        n += len[i];
    }
    t->n_rec = n_rec;
    if (n == 0) return PP_OK;
    int hd = c->head_dim, H = c->n_heads, KV = c->n_kv_heads;
    size_t dim = (size_t)c->dim, hid = (size_t)c->hidden;

    /* forward, keeping what the backward pass needs */
    acts a;
    float *x0 = output_of(t, -1);
    op->embed(be, x0, &m->embed, t->tok, n);
    keep_input(t, 0, x0, n);
    for (int l = 0; l < c->n_layers; l++) {
        carve(t, l, &a);
        layer_forward(t, l, &a, n, output_of(t, l), backward);
        keep_input(t, l + 1, output_of(t, l), n);
    }
    float *fin = output_of(t, c->n_layers - 1);
    op->rmsnorm_train(be, t->finb, t->finr, fin, &m->norm, n, c->norm_eps);
    /* logits only where there is a target: the prompt's rows need none */
    int count = 0;
    for (int i = 0; i < n; i++)
        if (t->targets[i] >= 0) {
            t->rows[count] = i;
            t->targets[count++] = t->targets[i];
        }
    op->rows(be, t->finc, t->finb, t->rows, count, (int)dim, 0);
    *n_targets += count;
    if (count == 0) return PP_OK;
    /* the output layer and the loss, a block of rows at a time: each block's
     * logits become their gradient (cross_entropy, in place), which gives
     * those rows' input gradient in t->tmp at once; the vocabulary-wide
     * logits of every row are never kept */
    const pp_llama *G = t->grad;
#define GW(field) (G ? &G->field : NULL)
#define GD(field) (G ? (float *)G->field.data : NULL)
    int lr = t->o.logit_rows > 0 && t->o.logit_rows < count ? t->o.logit_rows : count;
    if (backward) op->zero(be, t->tmp, (size_t)count * dim);
    for (int r0 = 0; r0 < count; r0 += lr) {
        int nr = count - r0 < lr ? count - r0 : lr;
        const float *xr = t->finc + (size_t)r0 * dim;
        op->matmul(be, t->logits, xr, &m->lm_head, nr, 0);
        op->cross_entropy(be, t->logits, t->targets + r0, nr, c->vocab, backward ? scale : 0.0f);
        if (!backward) continue;
        op->matmul_dx(be, t->tmp + (size_t)r0 * dim, t->logits, &m->lm_head, nr);
        if (G) op->gemm(be, GD(lm_head), t->logits, xr, c->vocab, c->dim, nr, 1, 0, 1.0f, 1.0f);
    }
    if (!backward) {
        *loss += op->loss_sum(be);
        return PP_OK;
    }

    /* backward: t->dx is the gradient of the residual stream */
    op->zero(be, t->dx, (size_t)n * dim);
    op->zero(be, t->dxb, (size_t)n * dim);
    op->rows(be, t->dxb, t->tmp, t->rows, count, (int)dim, 1);
    op->rmsnorm_backward(be, t->dx, GD(norm), t->dxb, fin, t->finr, &m->norm, n);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const pp_llama_layer *L = &m->layers[l];
        carve(t, l, &a);
        if (t->o.act16) op->widen(be, t->xin, input16(t, l), (size_t)n * dim);
        if (t->o.grad_checkpoint) layer_forward(t, l, &a, n, NULL, 1);
        /* the MLP branch: dx holds d(x_out) = d(x_mid) through the residual */
        op->zero(be, t->dh, (size_t)n * hid);
        linear_back(t, t->dh, t->dx, a.h, &L->w_down, n, l, PP_LORA_DOWN, a.xa[PP_LORA_DOWN], GW(layers[l].w_down));
        op->swiglu_backward(be, a.g, a.u, t->dh, a.g, a.u, (size_t)n * hid); /* in place: a.g, a.u become the gradients */
        op->zero(be, t->dxb, (size_t)n * dim);
        linear_back(t, t->dxb, a.g, a.xb2, &L->w_gate, n, l, PP_LORA_GATE, a.xa[PP_LORA_GATE], GW(layers[l].w_gate));
        linear_back(t, t->dxb, a.u, a.xb2, &L->w_up, n, l, PP_LORA_UP, a.xa[PP_LORA_UP], GW(layers[l].w_up));
        op->rmsnorm_backward(be, t->dx, GD(layers[l].ffn_norm), t->dxb, a.x_mid, a.rstd2, &L->ffn_norm, n);
        /* the attention branch: dx now holds d(x_mid) = d(x_in) through the residual */
        op->zero(be, t->datt, (size_t)n * H * hd);
        linear_back(t, t->datt, t->dx, a.att, &L->wo, n, l, PP_LORA_O, a.xa[PP_LORA_O], GW(layers[l].wo));
        size_t qd = (size_t)H * hd, kvd = (size_t)KV * hd, pat = 0;
        for (int i = 0; i < t->n_rec; i++) {
            size_t s = (size_t)t->starts[i];
            int ni = t->lens[i];
            op->attention_backward(be, t->dq + s * qd, t->dk + s * kvd, t->dv + s * kvd, t->datt + s * qd, a.p + pat,
                                   a.q + s * qd, a.k + s * kvd, a.v + s * kvd, ni, H, KV, hd);
            pat += kept(t, ni);
        }
        rope(t, t->dq, t->dk, 1);
        /* the first layer's input gradient is wanted only to train the embedding */
        float *dxb = l > 0 || G ? t->dxb : NULL;
        if (dxb) op->zero(be, dxb, (size_t)n * dim);
        linear_back(t, dxb, t->dq, a.xb1, &L->wq, n, l, PP_LORA_Q, a.xa[PP_LORA_Q], GW(layers[l].wq));
        linear_back(t, dxb, t->dk, a.xb1, &L->wk, n, l, PP_LORA_K, a.xa[PP_LORA_K], GW(layers[l].wk));
        linear_back(t, dxb, t->dv, a.xb1, &L->wv, n, l, PP_LORA_V, a.xa[PP_LORA_V], GW(layers[l].wv));
        if (dxb) op->rmsnorm_backward(be, t->dx, GD(layers[l].attn_norm), dxb, a.x_in, a.rstd1, &L->attn_norm, n);
    }
    if (G) op->embed_backward(be, GD(embed), t->dx, t->tok, n, c->dim);
#undef GW
#undef GD
    *loss += op->loss_sum(be); /* read last: a device runs the whole backward pass without waiting */
    return PP_OK;
}
